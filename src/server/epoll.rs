//! `--mode epoll`: one thread per worker, each owning one epoll instance,
//! its SO_REUSEPORT listener and its connections — the baseline that the
//! io_uring mode must beat. Works on any Linux kernel okring supports.
//!
//! Level-triggered epoll (epoll(7)): one read per readiness event into a
//! per-worker buffer; the responses produced by that read go out in one
//! send(2) with MSG_NOSIGNAL; on EAGAIN the rest waits for EPOLLOUT and the
//! connection stops being read (backpressure) until it is sent.
//! A 100 ms epoll_wait timeout drives the Date refresh, timeouts and accept
//! back-off.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::conn::{count_expiry, ConnCore, Slab, WorkerCtx, GEN_MASK};
use super::{setup_failed, Ready, Stop};
use crate::cli::ServeConfig;
use crate::stats::WorkerStats;
use crate::sys;

/// epoll token of the listener.
const TOKEN_LISTENER: u64 = u64::MAX;
/// epoll token of the shutdown eventfd.
const TOKEN_WAKER: u64 = u64::MAX - 1;
/// Listener interest: EPOLLEXCLUSIVE (Linux 4.5) so that a listener shared
/// by several prefork workers wakes one of them per connection, not all.
const LISTENER_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32;
/// Events fetched per epoll_wait.
const EVENTS_PER_WAIT: usize = 1024;
/// epoll_wait timeout: the timer tick, ms.
const TICK_MS: i32 = 100;
/// Interval of the timeout sweep over all connections, ns.
const SWEEP_NS: u64 = 1_000_000_000;
/// Bytes read per read(2).
const READ_BUF_LEN: usize = 64 * 1024;
/// Connections accepted per listener readiness event before serving others.
const ACCEPT_BURST: usize = 64;
/// How long accepting pauses after EMFILE/ENFILE if no connection closes, ns.
const ACCEPT_BACKOFF_NS: u64 = 100_000_000;

struct Conn {
    fd: RawFd,
    core: ConnCore,
    /// Bytes of the send in progress (responses of one or more reads).
    sendbuf: Vec<u8>,
    /// How much of `sendbuf` the kernel took.
    sent: usize,
    /// Registered for EPOLLOUT instead of EPOLLIN.
    want_out: bool,
    /// The peer sent its FIN.
    peer_eof: bool,
}

/// The epoll instance, with the few epoll_ctl(2) calls the loop needs.
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nobody else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: `events` is a valid writable array of the length passed.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        // EINTR (a signal landed on this thread) is an empty wake-up.
        n.max(0) as usize
    }
}

fn token(slot: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(slot)
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

struct Worker<'a> {
    ep: Epoll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    ctx: WorkerCtx,
    rbuf: Vec<u8>,
    /// Accepting is paused (EMFILE/ENFILE) until a close or this time, ns.
    accept_paused_until: Option<u64>,
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
    let ep = match Epoll::new() {
        Ok(ep) => ep,
        Err(e) => return setup_failed(ready, format!("worker {id}: epoll_create1: {e}")),
    };
    let setup = ep
        .ctl(
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            LISTENER_EVENTS,
            TOKEN_LISTENER,
        )
        .and_then(|_| {
            ep.ctl(
                libc::EPOLL_CTL_ADD,
                stop.waker(id),
                libc::EPOLLIN as u32,
                TOKEN_WAKER,
            )
        });
    if let Err(e) = setup {
        return setup_failed(ready, format!("worker {id}: epoll_ctl: {e}"));
    }
    let mut w = Worker {
        ep,
        listener: Some(listener),
        conns: Slab::new(),
        ctx: WorkerCtx::new(cfg, publisher),
        rbuf: vec![0; READ_BUF_LEN],
        accept_paused_until: None,
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
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        let mut last_sweep = self.ctx.now_ns();
        let mut deadline = u64::MAX;
        loop {
            let n = self.ep.wait(&mut events, TICK_MS);
            for ev in &events[..n] {
                let (mask, tok) = (ev.events, ev.u64);
                match tok {
                    TOKEN_LISTENER => self.accept_burst(),
                    TOKEN_WAKER => {
                        // Level-triggered and never read: drop it from the
                        // set, or every wait of the drain returns at once.
                        let _ = self
                            .ep
                            .ctl(libc::EPOLL_CTL_DEL, self.stop.waker(self.id), 0, 0);
                    }
                    _ => self.conn_event(
                        (tok & 0xffff_ffff) as u32,
                        (tok >> 32) as u32 & GEN_MASK,
                        mask,
                    ),
                }
            }
            let now = self.ctx.now_ns();
            if self.stop.raised() && !self.draining {
                self.begin_drain();
                deadline = now + drain.as_nanos() as u64;
            }
            if self.draining && (self.conns.is_empty() || now >= deadline) {
                break;
            }
            if let Some(t) = self.accept_paused_until {
                if now >= t {
                    self.resume_accept();
                }
            }
            if now.saturating_sub(last_sweep) >= SWEEP_NS / 10 {
                self.ctx.tick();
            }
            if now.saturating_sub(last_sweep) >= SWEEP_NS {
                last_sweep = now;
                self.sweep(now);
            }
        }
        for (slot, _) in self.conns.live_keys() {
            self.close(slot);
        }
    }

    fn accept_burst(&mut self) {
        let Some(l) = &self.listener else { return };
        let lfd = l.as_raw_fd();
        for _ in 0..ACCEPT_BURST {
            let fd = match sys::accept_nonblocking(lfd) {
                Ok(fd) => fd,
                Err(libc::EAGAIN) => return,
                Err(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    self.pause_accept();
                    return;
                }
                // ECONNABORTED, EPROTO, EINTR, EPERM (firewall), ...: that
                // one connection failed; the listener is fine.
                Err(_) => {
                    self.ctx.stats.counters.accept_errors += 1;
                    continue;
                }
            };
            if self.conns.len() >= self.ctx.max_conns {
                sys::close_fd(fd);
                self.ctx.stats.counters.conns_refused += 1;
                continue;
            }
            let now = self.ctx.now_ns();
            let (slot, gen) = self.conns.insert_with(|_, _| Conn {
                fd,
                core: ConnCore::new(now),
                sendbuf: Vec::new(),
                sent: 0,
                want_out: false,
                peer_eof: false,
            });
            if self
                .ep
                .ctl(
                    libc::EPOLL_CTL_ADD,
                    fd,
                    libc::EPOLLIN as u32,
                    token(slot, gen),
                )
                .is_err()
            {
                self.conns.remove(slot);
                sys::close_fd(fd);
                continue;
            }
            self.ctx.stats.counters.conns_accepted += 1;
        }
    }

    /// EMFILE/ENFILE: drop interest in the listener (no busy loop on a
    /// level-triggered readable listener) until a close or the back-off.
    fn pause_accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        if let Some(l) = &self.listener {
            let _ = self.ep.ctl(libc::EPOLL_CTL_DEL, l.as_raw_fd(), 0, 0);
        }
        self.ctx.stats.counters.emfile_pauses += 1;
        self.accept_paused_until = Some(self.ctx.now_ns() + ACCEPT_BACKOFF_NS);
    }

    fn resume_accept(&mut self) {
        if self.accept_paused_until.take().is_none() {
            return;
        }
        if let Some(l) = &self.listener {
            let _ = self.ep.ctl(
                libc::EPOLL_CTL_ADD,
                l.as_raw_fd(),
                LISTENER_EVENTS,
                TOKEN_LISTENER,
            );
        }
    }

    fn conn_event(&mut self, slot: u32, gen: u32, mask: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        let readable = mask & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
        if c.want_out && mask & libc::EPOLLOUT as u32 != 0 {
            self.flush(slot, gen);
            return;
        }
        if readable && !c.want_out {
            self.read(slot, gen);
        }
    }

    fn read(&mut self, slot: u32, gen: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        // SAFETY: rbuf is a valid writable buffer of the length passed.
        let n = unsafe { libc::read(c.fd, self.rbuf.as_mut_ptr().cast(), self.rbuf.len()) };
        if n > 0 {
            let now = self.ctx.now_ns();
            c.core.input(&self.rbuf[..n as usize], now, &mut self.ctx);
            if c.core.has_out() {
                self.flush(slot, gen);
            }
            return;
        }
        if n == 0 {
            // FIN from the peer: every complete request is already answered
            // (or in `sendbuf`); close once that is sent.
            c.peer_eof = true;
            if c.sendbuf.is_empty() {
                self.close(slot);
            }
            return;
        }
        match errno() {
            libc::EAGAIN | libc::EINTR => {}
            libc::ECONNRESET | libc::EPIPE => {
                self.ctx.stats.counters.resets += 1;
                self.close(slot);
            }
            _ => self.close(slot),
        }
    }

    /// Send what is pending; the responses of one read go out in one send.
    fn flush(&mut self, slot: u32, gen: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        loop {
            if c.sendbuf.is_empty() {
                if !c.core.has_out() {
                    break;
                }
                c.core.begin_send();
                std::mem::swap(&mut c.core.out, &mut c.sendbuf);
                c.sent = 0;
            }
            let rest = &c.sendbuf[c.sent..];
            // SAFETY: `rest` is a valid readable slice of the length passed;
            // MSG_NOSIGNAL turns SIGPIPE into EPIPE (send(2)).
            let n =
                unsafe { libc::send(c.fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            if n < 0 {
                match errno() {
                    libc::EAGAIN | libc::EINTR => {
                        if !c.want_out {
                            c.want_out = true;
                            let _ = self.ep.ctl(
                                libc::EPOLL_CTL_MOD,
                                c.fd,
                                libc::EPOLLOUT as u32,
                                token(slot, gen),
                            );
                        }
                        return;
                    }
                    libc::EPIPE | libc::ECONNRESET => {
                        self.ctx.stats.counters.resets += 1;
                        self.close(slot);
                        return;
                    }
                    _ => {
                        self.close(slot);
                        return;
                    }
                }
            }
            c.sent += n as usize;
            if c.sent < c.sendbuf.len() {
                self.ctx.stats.counters.short_sends += 1;
                continue;
            }
            let now = self.ctx.now_ns();
            c.core.end_send(now, &mut self.ctx);
            c.sendbuf.clear();
            c.sent = 0;
        }
        if c.want_out {
            c.want_out = false;
            let _ = self.ep.ctl(
                libc::EPOLL_CTL_MOD,
                c.fd,
                libc::EPOLLIN as u32,
                token(slot, gen),
            );
        }
        if c.peer_eof || (self.draining && c.core.is_quiet() && !c.core.close_after) {
            self.close(slot);
        } else if c.core.close_after && !c.core.lingering {
            self.linger(slot, gen);
        }
    }

    /// Lingering close (RFC 9112 §9.6): send our FIN after the last
    /// response, then discard input until the peer's FIN (or the linger
    /// timeout), so unread request bytes never turn into a RST that could
    /// destroy the response before the client reads it.
    fn linger(&mut self, slot: u32, gen: u32) {
        let Some(c) = self.conns.get_mut(slot, gen) else {
            return;
        };
        // SAFETY: shutdown(2) on a descriptor this worker owns.
        unsafe { libc::shutdown(c.fd, libc::SHUT_WR) };
        c.core.lingering = true;
        c.core.since_ns = self.ctx.now_ns();
    }

    fn close(&mut self, slot: u32) {
        if let Some(c) = self.conns.remove(slot) {
            // close(2) also removes the fd from the epoll set.
            sys::close_fd(c.fd);
            self.ctx.stats.counters.conns_closed += 1;
            self.resume_accept();
        }
    }

    fn begin_drain(&mut self) {
        self.draining = true;
        if let Some(l) = self.listener.take() {
            let _ = self.ep.ctl(libc::EPOLL_CTL_DEL, l.as_raw_fd(), 0, 0);
            sys::close_fd(l.into_raw_fd());
        }
        self.accept_paused_until = None;
        for (slot, gen) in self.conns.live_keys() {
            if let Some(c) = self.conns.get_mut(slot, gen) {
                if c.sendbuf.is_empty() && c.core.is_quiet() {
                    self.close(slot);
                }
            }
        }
    }

    fn sweep(&mut self, now: u64) {
        for (slot, gen) in self.conns.live_keys() {
            let Some(c) = self.conns.get_mut(slot, gen) else {
                continue;
            };
            if let Some(e) = c.core.expired(now, &self.ctx) {
                count_expiry(e, &mut self.ctx);
                self.close(slot);
            }
        }
    }
}
