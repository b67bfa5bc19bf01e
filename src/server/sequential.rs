//! `--mode sequential`: one thread, one connection at a time — accept,
//! serve the connection until it closes or times out, then accept the next.
//! The seed's first server, kept as the floor every other mode is compared
//! with: no concurrency at all, so a second client waits in the listen
//! backlog until the first one leaves.
//!
//! This file also holds [`serve_conn`], the poll(2)-driven loop that serves
//! one connection from its own thread of control; the fork mode's children
//! run the same function. It uses the shared framing ([`ConnCore`]),
//! honours keep-alive and pipelining (the responses of one read go out in
//! one send with MSG_NOSIGNAL), the header and idle timeouts, and the
//! lingering close (RFC 9112 §9.6) of the event-loop modes.
//!
//! Signals: SIGINT/SIGTERM are blocked and read from a signalfd (see
//! [`sys::SignalFd`]); the first one lets the current connection finish its
//! response (at most `cfg.drain`), then the summary is printed and the
//! process exits 0; a second one exits 130 at once.
//!
//! Owns: the listener, the signalfd, and the one connection being served.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use super::conn::{count_expiry, ConnCore, Expiry, WorkerCtx};
use crate::cli::ServeConfig;
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
                libc::SIGINT | libc::SIGTERM => {
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
                libc::SIGCHLD => self.child = true,
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
pub fn serve(cfg: &ServeConfig) -> Result<(), String> {
    let (mut sig, listener, local) = open_single_acceptor(cfg, true)?;
    crate::say!(
        "okring: sequential mode (one connection at a time, poll), 1 worker, listening on {local}"
    );

    let started = Instant::now();
    let cpu_before = sys::process_cpu_time();
    let mut ctx = WorkerCtx::new(cfg, None);
    let mut core = ConnCore::new(0);
    let mut rbuf = vec![0u8; READ_BUF_LEN];
    let mut sendbuf = Vec::new();
    let drain_ns = cfg.drain.as_nanos() as u64;
    while !sig.raised() {
        let Some(fd) = accept_one(&listener, &mut sig, &mut ctx) else {
            continue;
        };
        serve_conn(
            fd,
            &mut ctx,
            &mut core,
            &mut rbuf,
            &mut sendbuf,
            &mut sig,
            drain_ns,
        );
    }
    drop(listener);
    let wall = started.elapsed();
    let cpu = sys::process_cpu_time().saturating_sub(cpu_before);
    super::print_summary("sequential", &ctx.stats, wall, cpu);
    if let Some(path) = &cfg.hist_out {
        super::write_hist(path, &ctx.stats)?;
    }
    Ok(())
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
fn accept_one(l: &TcpListener, sig: &mut StopSignals, ctx: &mut WorkerCtx) -> Option<RawFd> {
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
    // SAFETY: null address pointers are allowed (accept4(2)); the result
    // is checked.
    let fd = unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        match e {
            libc::EAGAIN | libc::EINTR => {}
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                ctx.stats.counters.emfile_pauses += 1;
                std::thread::sleep(std::time::Duration::from_millis(TICK_MS as u64));
            }
            _ => ctx.stats.counters.accept_errors += 1,
        }
        return None;
    }
    ctx.stats.counters.conns_accepted += 1;
    Some(fd)
}

/// Why [`send_out`] gave up.
enum SendFail {
    /// EPIPE/ECONNRESET (counted as a reset) or another send error.
    Peer,
    /// The peer stopped reading for the idle timeout, or the drain ended.
    Timeout,
}

/// Serve one accepted, nonblocking connection `fd` to its end and close it:
/// read → frame → send every response of that read in one send, until the
/// peer closes, a timeout expires, an error, or — once a stop signal is
/// seen — the connection is quiet or `drain_ns` has passed. Counts into
/// `ctx.stats` (closes, resets, timeouts, service times). `core`, `rbuf`
/// and `sendbuf` are reused between connections.
pub(super) fn serve_conn(
    fd: RawFd,
    ctx: &mut WorkerCtx,
    core: &mut ConnCore,
    rbuf: &mut [u8],
    sendbuf: &mut Vec<u8>,
    sig: &mut StopSignals,
    drain_ns: u64,
) {
    let accepted_ns = ctx.now_ns();
    let mut last_date = accepted_ns;
    ctx.tick();
    core.reset(accepted_ns);
    // No byte yet: the header timeout runs from accept (ConnCore would
    // apply the idle timeout, which suits an event loop holding many
    // connections, not a server that holds only this one).
    let mut silent = true;
    let sigfd = sig.sigfd.fd();
    loop {
        let now = ctx.now_ns();
        if sig.raised()
            && (core.is_quiet() || core.lingering || now.saturating_sub(sig.since_ns) >= drain_ns)
        {
            break;
        }
        if silent && now.saturating_sub(accepted_ns) > ctx.header_timeout_ns {
            count_expiry(Expiry::Header, ctx);
            break;
        }
        if let Some(e) = core.expired(now, ctx) {
            count_expiry(e, ctx);
            break;
        }
        if now.saturating_sub(last_date) >= DATE_REFRESH_NS {
            last_date = now;
            ctx.tick();
        }
        let mut fds = [sys::pollin(fd), sys::pollin(sigfd)];
        if sys::poll(&mut fds, TICK_MS).is_err() {
            break;
        }
        if fds[1].revents != 0 {
            sig.check(ctx.now_ns());
        }
        if fds[0].revents == 0 {
            continue;
        }
        // SAFETY: `rbuf` is a valid writable buffer of the length passed.
        let n = unsafe { libc::read(fd, rbuf.as_mut_ptr().cast(), rbuf.len()) };
        if n == 0 {
            // The peer's FIN: every complete request has been answered
            // already (responses are sent right after each read).
            break;
        }
        if n < 0 {
            match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
                libc::EAGAIN | libc::EINTR => continue,
                libc::ECONNRESET => {
                    ctx.stats.counters.resets += 1;
                    break;
                }
                _ => break,
            }
        }
        silent = false;
        if core.lingering {
            // Discard input after our FIN until the peer's FIN.
            continue;
        }
        let now = ctx.now_ns();
        core.input(&rbuf[..n as usize], now, ctx);
        if core.has_out() {
            core.begin_send();
            std::mem::swap(&mut core.out, sendbuf);
            let sent = send_out(fd, sendbuf, ctx, sig, drain_ns);
            sendbuf.clear();
            match sent {
                Ok(()) => core.end_send(ctx.now_ns(), ctx),
                Err(SendFail::Peer) => break,
                Err(SendFail::Timeout) => {
                    ctx.stats.counters.timeouts_idle += 1;
                    break;
                }
            }
        }
        if core.close_after && !core.lingering {
            // Lingering close (RFC 9112 §9.6): our FIN now, then drain
            // input until the peer's FIN or the linger timeout, so unread
            // request bytes never turn into a RST that destroys the
            // response before the client reads it.
            // SAFETY: shutdown(2) on the descriptor this function owns.
            unsafe { libc::shutdown(fd, libc::SHUT_WR) };
            core.lingering = true;
            core.since_ns = ctx.now_ns();
        }
    }
    sys::close_fd(fd);
    ctx.stats.counters.conns_closed += 1;
}

/// Send all of `buf` on nonblocking `fd` with MSG_NOSIGNAL (a closed peer
/// gives EPIPE, never SIGPIPE), waiting for POLLOUT when the socket buffer
/// is full: at most the idle timeout, or until the drain ends once a stop
/// signal was seen.
fn send_out(
    fd: RawFd,
    buf: &[u8],
    ctx: &mut WorkerCtx,
    sig: &mut StopSignals,
    drain_ns: u64,
) -> Result<(), SendFail> {
    let mut sent = 0;
    let mut waiting_since = None;
    while sent < buf.len() {
        let rest = &buf[sent..];
        // SAFETY: `rest` is a valid readable slice of the length passed.
        let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if n > 0 {
            sent += n as usize;
            if sent < buf.len() {
                ctx.stats.counters.short_sends += 1;
            }
            waiting_since = None;
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
            libc::EINTR => continue,
            libc::EAGAIN => {}
            libc::EPIPE | libc::ECONNRESET => {
                ctx.stats.counters.resets += 1;
                return Err(SendFail::Peer);
            }
            _ => return Err(SendFail::Peer),
        }
        let now = ctx.now_ns();
        let since = *waiting_since.get_or_insert(now);
        if now.saturating_sub(since) > ctx.idle_timeout_ns
            || (sig.raised() && now.saturating_sub(sig.since_ns) >= drain_ns)
        {
            return Err(SendFail::Timeout);
        }
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            },
            sys::pollin(sig.sigfd.fd()),
        ];
        if sys::poll(&mut fds, TICK_MS).is_err() {
            return Err(SendFail::Peer);
        }
        if fds[1].revents != 0 {
            sig.check(ctx.now_ns());
        }
    }
    Ok(())
}
