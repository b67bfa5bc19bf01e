//! `--mode sequential`: one thread, one connection at a time — accept,
//! serve the connection until it closes or times out, then accept the next.
//! The seed's first server, kept as the floor every other mode is compared
//! with: no concurrency at all, so a second client waits in the listen
//! backlog until the first one leaves.
//!
//! This file also holds [`serve_conn`], the blocking driver: the
//! poll(2)-driven loop that serves one connection's [`Session`] from its
//! own thread of control; the fork mode's children run the same function.
//! The session (shared with the event loops) decides keep-alive,
//! pipelining, timeouts and the lingering close (RFC 9112 §9.6).
//!
//! Signals: SIGINT/SIGTERM are blocked and read from a signalfd (see
//! [`sys::SignalFd`]); the first one lets the current connection finish its
//! response (at most `cfg.drain`), then the summary is printed and the
//! process exits 0; a second one exits 130 at once.
//!
//! Owns: the listener, the signalfd, and the one connection being served.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};

use super::session::{Action, Session};
use super::worker::WorkerCtx;
use crate::config::ServeConfig;
use crate::sys::{self, SignalFd};

/// poll(2) timeout of the connection and accept loops: the timer tick that
/// refreshes the Date header and checks timeouts, ms.
pub(super) const TICK_MS: i32 = 100;
/// Bytes read per read(2).
pub(super) const READ_BUF_LEN: usize = 64 * 1024;
/// Interval of the Date header refresh, ns.
const DATE_REFRESH_NS: u64 = 1_000_000_000;

/// SIGINT/SIGTERM bookkeeping for a process that reads its signals from a
/// [`SignalFd`].
pub(super) struct StopSignals {
    pub sigfd: SignalFd,
    /// SIGINT/SIGTERM received so far.
    pub seen: u32,
    /// When the first one arrived, ns on the worker clock.
    pub since_ns: u64,
    /// A second signal exits the process (130) at once.
    pub force_on_second: bool,
    /// A SIGCHLD was read (for the fork parent's reaping).
    pub child: bool,
}

impl StopSignals {
    pub fn new(sigfd: SignalFd, force_on_second: bool) -> Self {
        StopSignals {
            sigfd,
            seen: 0,
            since_ns: 0,
            force_on_second,
            child: false,
        }
    }

    /// Read the pending signals and update the state.
    pub fn check(&mut self, now_ns: u64) {
        for sig in self.sigfd.read_all() {
            match sig {
                sys::SIGINT | sys::SIGTERM => {
                    if self.seen > 0
                        && !super::is_second_signal(std::time::Duration::from_nanos(
                            now_ns.saturating_sub(self.since_ns),
                        ))
                    {
                        // The same stop request delivered twice.
                        continue;
                    }
                    self.seen += 1;
                    if self.seen == 1 {
                        self.since_ns = now_ns;
                    } else if self.force_on_second {
                        crate::say!("okring: second signal: exiting without draining");
                        sys::exit_now(130);
                    }
                }
                sys::SIGCHLD => self.child = true,
                _ => {}
            }
        }
    }

    #[inline]
    pub fn raised(&self) -> bool {
        self.seen > 0
    }
}

/// Run `--mode sequential` until SIGINT/SIGTERM; prints the summary and
/// writes `--hist-out`. Errors: bind failure, signalfd failure, pinning.
pub fn run(cfg: &ServeConfig) -> Result<super::Report, String> {
    let (mut sig, listener, local) = open_single_acceptor(cfg, true)?;
    crate::say!(
        "okring: sequential mode (one connection at a time, poll), 1 worker, listening on {local}"
    );

    let frame = super::Frame::start();
    let mut ctx = WorkerCtx::new(cfg, None);
    let mut session = Session::new(0);
    let mut rbuf = vec![0u8; READ_BUF_LEN];
    let drain_ns = cfg.drain.as_nanos() as u64;
    while !sig.raised() {
        let Some(fd) = accept_one(&listener, &mut sig, &mut ctx) else {
            continue;
        };
        serve_conn(fd, &mut ctx, &mut session, &mut rbuf, &mut sig, drain_ns);
    }
    drop(listener);
    Ok(frame.report("sequential", ctx.stats))
}

/// Start-up of the modes with one acceptor (sequential, fork): the
/// SIGINT/SIGTERM/SIGCHLD signalfd (`force_on_second`: see
/// [`StopSignals`]), pinning to the first `--pin` CPU, and the nonblocking
/// listener on `cfg.bind` with its bound address (port 0 resolved).
/// Errors: one line naming the failed step (signalfd, pinning, bind,
/// getsockname).
pub(super) fn open_single_acceptor(
    cfg: &ServeConfig,
    force_on_second: bool,
) -> Result<(StopSignals, TcpListener, SocketAddr), String> {
    let sigfd = SignalFd::for_stop_and_child().map_err(|e| format!("signalfd: {e}"))?;
    let sig = StopSignals::new(sigfd, force_on_second);
    if let Some(&cpu) = cfg.pin_cpus.first() {
        sys::pin_current_thread(cpu).map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))?;
    }
    let listener = sys::reuseport_listeners(cfg.bind, 1, true)?.remove(0);
    let local = listener
        .local_addr()
        .map_err(|e| format!("getsockname: {e}"))?;
    Ok((sig, listener, local))
}

/// Wait (poll) for a connection or a signal; accept one connection,
/// nonblocking. `None` after a signal, a tick, or a failed accept (counted;
/// EMFILE/ENFILE also sleep one tick so a full descriptor table is not a
/// busy loop).
fn accept_one(l: &TcpListener, sig: &mut StopSignals, ctx: &mut WorkerCtx) -> Option<OwnedFd> {
    let mut fds = [sys::pollin(l.as_raw_fd()), sys::pollin(sig.sigfd.fd())];
    if sys::poll(&mut fds, TICK_MS).is_err() {
        return None;
    }
    if fds[1].revents != 0 {
        sig.check(ctx.now_ns());
        return None;
    }
    if fds[0].revents == 0 {
        return None;
    }
    match sys::accept_owned(l.as_raw_fd()) {
        Ok(fd) => {
            ctx.stats.counters.conns_accepted += 1;
            Some(fd)
        }
        Err(e) => {
            match e.accept_failure() {
                sys::AcceptFailure::WouldBlock => {}
                sys::AcceptFailure::Exhausted => {
                    ctx.stats.counters.emfile_pauses += 1;
                    std::thread::sleep(std::time::Duration::from_millis(TICK_MS as u64));
                }
                sys::AcceptFailure::Canceled | sys::AcceptFailure::Transient => {
                    ctx.stats.counters.accept_errors += 1
                }
            }
            None
        }
    }
}

/// Serve one accepted, nonblocking connection `fd` to its end and close it:
/// the blocking driver of a [`Session`], waiting in poll(2) on the
/// connection and the signalfd. Actions: Send → send(2) at once, and on
/// EAGAIN wait for POLLOUT; Pause/ResumeRead → the POLLIN interest; Linger
/// → shutdown(2) `SHUT_WR`; Close → close(2). Once a stop signal is seen the
/// session drains (closes when quiet), and after `drain_ns` the connection
/// is dropped. Counts into `ctx.stats`. `s` and `rbuf` are reused between
/// connections.
pub(super) fn serve_conn(
    fd: OwnedFd,
    ctx: &mut WorkerCtx,
    s: &mut Session,
    rbuf: &mut [u8],
    sig: &mut StopSignals,
    drain_ns: u64,
) {
    let raw = fd.as_raw_fd();
    let accepted_ns = ctx.now_ns();
    let mut last_date = accepted_ns;
    ctx.tick();
    s.reset(accepted_ns);
    let mut drained = false;
    let mut a = Action::Wait;
    'conn: loop {
        loop {
            match a {
                Action::Wait => break,
                Action::Send => match sys::send(raw, s.unsent()) {
                    Ok(n) => {
                        a = s.on_sent(Ok(n), ctx.now_ns(), ctx);
                        continue;
                    }
                    Err(e) => {
                        if let sys::IoFailure::Failed(kind) = e.io_failure() {
                            a = s.on_sent(Err(kind), ctx.now_ns(), ctx);
                            continue;
                        }
                        // EAGAIN: the send stays in flight until POLLOUT.
                    }
                },
                Action::PauseRead | Action::ResumeRead => {}
                Action::Linger => sys::shutdown(raw, true),
                Action::Close(_) => break 'conn,
            }
            a = s.poll(ctx.now_ns());
        }
        let now = ctx.now_ns();
        if sig.raised() {
            if !drained {
                drained = true;
                a = s.drain(now);
                continue;
            }
            if now.saturating_sub(sig.since_ns) >= drain_ns {
                break;
            }
        }
        let Some((at, _)) = s.deadline(ctx) else {
            break;
        };
        if now >= at {
            a = s.on_timer(now, ctx);
            continue;
        }
        if now.saturating_sub(last_date) >= DATE_REFRESH_NS {
            last_date = now;
            ctx.tick();
        }
        let wait_ms = (at - now).div_ceil(1_000_000).min(TICK_MS as u64) as i32;
        let mut fds = [
            sys::pollfd(raw, s.wants_read(), s.send_in_flight()),
            sys::pollin(sig.sigfd.fd()),
        ];
        if sys::poll(&mut fds, wait_ms).is_err() {
            break;
        }
        if fds[1].revents != 0 {
            sig.check(ctx.now_ns());
        }
        let (readable, writable, hangup) = sys::revents(&fds[0]);
        if s.send_in_flight() && (writable || hangup) {
            // Room to send, or a hang-up that the send will report.
            a = Action::Send;
            continue;
        }
        if !(s.wants_read() && (readable || hangup)) {
            continue;
        }
        let now = ctx.now_ns();
        a = match sys::read(raw, rbuf) {
            Ok(0) => s.on_eof(now),
            Ok(n) => s.on_input(&rbuf[..n], now, ctx),
            Err(e) => match e.io_failure() {
                sys::IoFailure::Failed(kind) => s.on_recv_error(kind, ctx),
                _ => Action::Wait,
            },
        };
    }
    drop(fd);
    ctx.stats.counters.conns_closed += 1;
}
