//! `--mode epoll`: one thread per worker, each owning one epoll instance,
//! its SO_REUSEPORT listener and its connections — the baseline that the
//! io_uring mode must beat. Works on any Linux kernel okring supports.
//!
//! Level-triggered epoll (epoll(7)): one read per readiness event into a
//! per-worker buffer. The connection policy is the session's
//! ([`super::session`]); this worker turns its actions into system calls:
//! Send → send(2) with MSG_NOSIGNAL at once, and on EAGAIN the rest waits
//! for EPOLLOUT; PauseRead/ResumeRead → the EPOLLIN interest; Linger →
//! shutdown(2) `SHUT_WR`; Close → close(2) (dropping the [`OwnedFd`]). The
//! registered interest is kept equal to what the session wants: EPOLLIN
//! while it reads, EPOLLOUT while a send waits.
//!
//! epoll_wait's timeout is the time to the next 100 ms tick ([`Ticker`]):
//! Date refresh, the timer wheel of connection deadlines, accept back-off.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use super::session::{Action, Session};
use super::worker::{AcceptGate, Slab, Ticker, TimerWheel, WorkerCtx, GEN_MASK, NO_TIMER};
use super::{setup_failed, Ready, Stop};
use crate::config::ServeConfig;
use crate::stats::WorkerStats;
use crate::sys::{self, Epoll, Event, Interest};

/// epoll token of the listener.
const TOKEN_LISTENER: u64 = u64::MAX;
/// epoll token of the shutdown eventfd.
const TOKEN_WAKER: u64 = u64::MAX - 1;
/// Events fetched per epoll_wait.
const EVENTS_PER_WAIT: usize = 1024;
/// Bytes read per read(2).
const READ_BUF_LEN: usize = 64 * 1024;
/// Connections accepted per listener readiness event before serving others.
const ACCEPT_BURST: usize = 64;

struct Conn {
    fd: OwnedFd,
    s: Session,
    slot: u32,
    gen: u32,
    /// The interest registered for `fd`.
    interest: Interest,
    /// The tick of this connection's timer-wheel entry, or [`NO_TIMER`].
    timer: u64,
}

fn token(slot: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(slot)
}

impl Conn {
    /// What the session wants from epoll now.
    fn wanted(&self) -> Interest {
        let mut i = Interest::NONE;
        if self.s.wants_read() {
            i = i.or(Interest::READABLE);
        }
        if self.s.send_in_flight() {
            // A send that got EAGAIN waits for room.
            i = i.or(Interest::WRITABLE);
        }
        i
    }

    /// Carry out `a` (decided at `now`) and what the session gives next;
    /// true when it closed.
    fn drive(&mut self, mut a: Action, now: u64, w: &mut WorkerCtx) -> bool {
        loop {
            match a {
                Action::Wait => return false,
                Action::Send => match sys::send(self.fd.as_raw_fd(), self.s.unsent()) {
                    Ok(n) => {
                        a = self.s.on_sent(Ok(n), w.now_ns(), w);
                        continue;
                    }
                    Err(e) => {
                        if let sys::IoFailure::Failed(kind) = e.io_failure() {
                            a = self.s.on_sent(Err(kind), now, w);
                            continue;
                        }
                        // EAGAIN: the send stays in flight until EPOLLOUT.
                    }
                },
                Action::PauseRead | Action::ResumeRead => {}
                Action::Linger => sys::shutdown(self.fd.as_raw_fd(), true),
                Action::Close(_) => return true,
            }
            a = self.s.poll(now);
        }
    }
}

struct Worker<'a> {
    ep: Epoll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    ctx: WorkerCtx,
    rbuf: Vec<u8>,
    accept: AcceptGate,
    wheel: TimerWheel,
    due: Vec<(u32, u32, u64)>,
    draining: bool,
    stop: &'a Stop,
    id: usize,
}

/// Run one epoll worker until `stop`; see the contract in `server/mod.rs`.
pub fn run_worker(
    id: usize,
    listener: TcpListener,
    cfg: &ServeConfig,
    stop: &Stop,
    ready: &Ready,
    publisher: Option<super::live::Publisher>,
) -> Result<WorkerStats, String> {
    let ep = match Epoll::new(EVENTS_PER_WAIT) {
        Ok(ep) => ep,
        Err(e) => return setup_failed(ready, format!("worker {id}: epoll_create1: {e}")),
    };
    let setup = ep
        .register(
            listener.as_raw_fd(),
            Interest::READABLE_EXCLUSIVE,
            TOKEN_LISTENER,
        )
        .and_then(|_| ep.register(stop.waker(id), Interest::READABLE, TOKEN_WAKER));
    if let Err(e) = setup {
        return setup_failed(ready, format!("worker {id}: epoll_ctl: {e}"));
    }
    let ctx = WorkerCtx::new(cfg, publisher);
    let now = ctx.now_ns();
    let mut w = Worker {
        ep,
        listener: Some(listener),
        conns: Slab::new(),
        ctx,
        rbuf: vec![0; READ_BUF_LEN],
        accept: AcceptGate::default(),
        wheel: TimerWheel::new(now),
        due: Vec::new(),
        draining: false,
        stop,
        id,
    };
    let _ = ready.send(Ok("level-triggered epoll".into()));
    w.run(cfg.drain);
    Ok(w.ctx.stats)
}

impl Worker<'_> {
    fn run(&mut self, drain: Duration) {
        let mut events: Vec<Event> = Vec::with_capacity(EVENTS_PER_WAIT);
        let mut now = self.ctx.now_ns();
        let mut ticker = Ticker::new(now);
        let mut deadline = u64::MAX;
        loop {
            // `now` is the end of the last pass: the wait may end up to one
            // pass late, which the tick tolerates; no clock read per wait.
            self.ep.wait(&mut events, ticker.timeout_ms(now));
            self.ctx.stats.counters.epoll_waits += 1;
            self.ctx.stats.counters.epoll_events += events.len() as u64;
            for ev in &events {
                match ev.token {
                    TOKEN_LISTENER => self.accept_burst(),
                    TOKEN_WAKER => {
                        // Level-triggered and never read: drop it from the
                        // set, or every wait of the drain returns at once.
                        let _ = self.ep.deregister(self.stop.waker(self.id));
                    }
                    tok => self.conn_event(
                        (tok & 0xffff_ffff) as u32,
                        (tok >> 32) as u32 & GEN_MASK,
                        ev,
                    ),
                }
            }
            now = self.ctx.now_ns();
            if self.stop.raised() && !self.draining {
                self.begin_drain();
                deadline = now + drain.as_nanos() as u64;
            }
            if self.draining && (self.conns.is_empty() || now >= deadline) {
                break;
            }
            if ticker.due(now) {
                self.on_tick(now);
            }
        }
        for (slot, gen) in self.conns.live_keys() {
            self.close(slot, gen);
        }
    }

    fn on_tick(&mut self, now: u64) {
        self.ctx.tick();
        if self.accept.expired(now) {
            self.watch_listener();
        }
        self.wheel
            .fire(now, &mut self.conns, |c| &mut c.timer, &mut self.due);
        for i in 0..self.due.len() {
            let (slot, gen, _) = self.due[i];
            if let Some(c) = self.conns.get_mut(slot, gen) {
                let a = c.s.on_timer(now, &mut self.ctx);
                self.settle(slot, gen, a, now);
            }
        }
    }

    fn accept_burst(&mut self) {
        let Some(l) = &self.listener else { return };
        let lfd = l.as_raw_fd();
        for _ in 0..ACCEPT_BURST {
            let fd = match sys::accept_owned(lfd) {
                Ok(fd) => fd,
                Err(e) => match e.accept_failure() {
                    sys::AcceptFailure::WouldBlock => return,
                    sys::AcceptFailure::Exhausted => {
                        // Drop interest in the listener (no busy loop on a
                        // level-triggered readable listener) until a close
                        // or the back-off.
                        let now = self.ctx.now_ns();
                        if self.accept.exhausted(now, &mut self.ctx) {
                            let _ = self.ep.deregister(lfd);
                        }
                        return;
                    }
                    sys::AcceptFailure::Canceled | sys::AcceptFailure::Transient => {
                        self.ctx.stats.counters.accept_errors += 1;
                        continue;
                    }
                },
            };
            if self.conns.len() >= self.ctx.max_conns {
                drop(fd);
                self.ctx.stats.counters.conns_refused += 1;
                continue;
            }
            let now = self.ctx.now_ns();
            let raw = fd.as_raw_fd();
            let (slot, gen) = self.conns.insert(Conn {
                fd,
                s: Session::new(now),
                slot: 0,
                gen: 0,
                interest: Interest::READABLE,
                timer: NO_TIMER,
            });
            if self
                .ep
                .register(raw, Interest::READABLE, token(slot, gen))
                .is_err()
            {
                self.conns.remove(slot, gen);
                continue;
            }
            self.ctx.stats.counters.conns_accepted += 1;
            let c = self.conns.get_mut(slot, gen).expect("just inserted");
            (c.slot, c.gen) = (slot, gen);
            self.settle(slot, gen, Action::Wait, now);
        }
    }

    /// Watch the listener again after an accept back-off.
    fn watch_listener(&mut self) {
        if let Some(l) = &self.listener {
            let _ = self
                .ep
                .register(l.as_raw_fd(), Interest::READABLE_EXCLUSIVE, TOKEN_LISTENER);
        }
    }

    fn conn_event(&mut self, slot: u32, gen: u32, ev: &Event) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        // A send waiting for room goes on; a hang-up surfaces as its error.
        if c.s.send_in_flight()
            && (ev.writable || ev.hangup)
            && c.drive(Action::Send, self.ctx.now_ns(), &mut self.ctx)
        {
            self.close(slot, gen);
            return;
        }
        if !(c.s.wants_read() && (ev.readable || ev.hangup)) {
            let now = self.ctx.now_ns();
            self.settle(slot, gen, Action::Wait, now);
            return;
        }
        let now = self.ctx.now_ns();
        let a = match sys::read(c.fd.as_raw_fd(), &mut self.rbuf) {
            Ok(0) => c.s.on_eof(now),
            Ok(n) => c.s.on_input(&self.rbuf[..n], now, &mut self.ctx),
            Err(e) => match e.io_failure() {
                sys::IoFailure::Failed(kind) => c.s.on_recv_error(kind, &mut self.ctx),
                _ => Action::Wait,
            },
        };
        self.settle(slot, gen, a, now);
    }

    /// Carry out `a` for the connection, then close it, or bring its epoll
    /// interest and timer up to date.
    fn settle(&mut self, slot: u32, gen: u32, a: Action, now: u64) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        if c.drive(a, now, &mut self.ctx) {
            self.close(slot, gen);
            return;
        }
        let want = c.wanted();
        if want != c.interest {
            c.interest = want;
            let _ = self.ep.reregister(c.fd.as_raw_fd(), want, token(slot, gen));
        }
        if let Some((at, _)) = c.s.deadline(&self.ctx) {
            self.wheel.arm(slot, gen, at, &mut c.timer);
        }
    }

    fn close(&mut self, slot: u32, gen: u32) {
        // Dropping the fd closes it, which also removes it from the epoll set.
        if self.conns.remove(slot, gen).is_some() {
            self.ctx.stats.counters.conns_closed += 1;
            if self.accept.release() {
                self.watch_listener();
            }
        }
    }

    fn begin_drain(&mut self) {
        self.draining = true;
        if let Some(l) = self.listener.take() {
            let _ = self.ep.deregister(l.as_raw_fd());
            sys::close_fd(l.into_raw_fd());
        }
        self.accept.release();
        let now = self.ctx.now_ns();
        for (slot, gen) in self.conns.live_keys() {
            if let Some(c) = self.conns.get_mut(slot, gen) {
                let a = c.s.drain(now);
                self.settle(slot, gen, a, now);
            }
        }
    }
}
