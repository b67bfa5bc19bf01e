//! `--mode fork`: the parent accepts; every connection is served by a
//! child process forked for it, which exits when the connection ends — the
//! seed's fork server, kept to measure what a process per connection costs
//! (a fork, copy-on-write page faults, an exit and a reap per connection).
//!
//! The parent is single-threaded for its whole life, so fork(2) is safe:
//! no other thread can hold the allocator's lock at the moment of the fork.
//! It never installs a signal handler: SIGINT, SIGTERM and SIGCHLD are
//! blocked and read from a signalfd, and its loop poll(2)s the listener
//! (only while fewer than `--max-children` children live), the signalfd and
//! the statistics socket. On every wake it reaps with
//! `waitpid(-1, WNOHANG)` until none is left, since one SIGCHLD can stand
//! for several children. It closes its copy of each accepted socket right
//! after the fork, so the child's close is the last one and sends the FIN.
//!
//! A child closes the listener, serves its connection with
//! [`super::sequential::serve_conn`] (same framing, keep-alive, pipelining,
//! timeouts and lingering close as every mode), sends its statistics to the
//! parent and leaves with `_exit`. SIGPIPE stays ignored (Rust's runtime
//! set it before `main`, the disposition survives fork) and every send uses
//! MSG_NOSIGNAL. The child reads its own SIGTERM from its inherited copy of
//! the signalfd.
//!
//! Statistics travel over one AF_UNIX SOCK_DGRAM socket pair shared by all
//! children: each child sends one datagram holding
//! [`crate::stats::worker_stats_to_bytes`] of its connection. A datagram is
//! delivered whole or not at all, so concurrent children never interleave,
//! whatever the frame's size (a pipe is atomic only up to PIPE_BUF, 4096
//! bytes, which a busy keep-alive connection's histogram can exceed), and it
//! costs no descriptor per child in the parent.
//!
//! Stop: the first SIGINT/SIGTERM closes the listener and forwards SIGTERM
//! to the children, which finish their current response and exit; children
//! still alive `cfg.drain` + [`KILL_GRACE_MS`] later are killed. A second
//! signal kills the children and exits 130 at once.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use super::sequential::{open_single_acceptor, serve_conn, StopSignals, READ_BUF_LEN, TICK_MS};
use super::session::Session;
use super::worker::WorkerCtx;
use crate::config::ServeConfig;
use crate::stats::{worker_stats_from_bytes, worker_stats_to_bytes, WorkerStats};
use crate::sys::{self, Pid};

/// Connections accepted per listener wake-up before the loop looks at
/// signals and statistics again.
const ACCEPT_BURST: usize = 64;
/// After the drain, how long children get before SIGKILL, ms.
pub const KILL_GRACE_MS: u64 = 500;
/// Receive buffer for one statistics datagram, bytes (a frame of a
/// connection's counters and histogram is a few hundred bytes to a few KiB).
const STATS_DGRAM_MAX_BYTES: usize = 1 << 20;

/// Run `--mode fork` until SIGINT/SIGTERM; prints the summary (with the
/// children's page faults and context switches) and writes `--hist-out`.
/// Errors: bind, signalfd or socketpair failure, pinning.
pub fn run(cfg: &ServeConfig) -> Result<super::Report, String> {
    let (mut sig, listener, local) = open_single_acceptor(cfg, false)?;
    let (stats_rx, stats_tx) = sys::dgram_pair().map_err(|e| format!("socketpair: {e}"))?;
    crate::say!(
        "okring: fork mode (one process per connection, at most {} live), 1 acceptor, listening on {local}",
        cfg.max_children
    );

    let frame = super::Frame::start();
    // Built once here and inherited by every child copy-on-write, so a
    // child touches only the pages it writes (histogram buckets it records
    // into, the buffers it uses) instead of allocating its own.
    let mut template = WorkerCtx::new(cfg, None);
    let mut session = Session::new(0);
    let mut rbuf = vec![0u8; READ_BUF_LEN];
    let mut dgram = vec![0u8; STATS_DGRAM_MAX_BYTES];
    let mut total = WorkerStats::new();
    let mut live: HashSet<Pid> = HashSet::new();
    let mut listener = Some(listener);
    let (mut forked, mut reports) = (0u64, 0u64);
    let drain_ns = cfg.drain.as_nanos() as u64;
    let mut killed = false;
    loop {
        let now = template.now_ns();
        let accepting = listener.is_some() && live.len() < cfg.max_children;
        let mut fds = vec![
            sys::pollin(sig.sigfd.fd()),
            sys::pollin(stats_rx.as_raw_fd()),
        ];
        if let (true, Some(l)) = (accepting, &listener) {
            fds.push(sys::pollin(l.as_raw_fd()));
        }
        sys::poll(&mut fds, TICK_MS).map_err(|e| format!("poll: {e}"))?;
        if fds[0].revents != 0 {
            sig.check(now);
            if sig.seen >= 2 {
                crate::say!(
                    "okring: second signal: killing {} children, exiting without draining",
                    live.len()
                );
                for &pid in &live {
                    sys::kill(pid, sys::SIGKILL);
                }
                sys::exit_now(130);
            }
        }
        while let Some((pid, _)) = sys::reap_any() {
            live.remove(&pid);
        }
        reports += drain_stats(stats_rx.as_raw_fd(), &mut dgram, &mut total);
        if fds.len() == 3 && fds[2].revents != 0 && !sig.raised() {
            if let Some(l) = &listener {
                let lfd = l.as_raw_fd();
                let sfd = stats_rx.as_raw_fd();
                for _ in 0..ACCEPT_BURST {
                    if live.len() >= cfg.max_children {
                        break;
                    }
                    let Some(fd) = accept(lfd, &mut total) else {
                        break;
                    };
                    // This process never starts a thread (signals come
                    // through a signalfd, not a handler thread), as
                    // fork_child checks. The child leaves through
                    // `child_main`, which ends in _exit; in the parent the
                    // closure, and with it the connection, is dropped.
                    let tx = stats_tx.as_raw_fd();
                    let child = || {
                        child_main(
                            fd,
                            &[lfd, sfd],
                            &mut template,
                            &mut session,
                            &mut rbuf,
                            &mut sig,
                            tx,
                            drain_ns,
                        )
                    };
                    match sys::fork_child(child) {
                        Ok(pid) => {
                            live.insert(pid);
                            forked += 1;
                            total.counters.conns_accepted += 1;
                        }
                        Err(_) => {
                            // EAGAIN/ENOMEM: no process for this connection.
                            total.counters.conns_refused += 1;
                            break;
                        }
                    }
                }
            }
        }
        if sig.raised() {
            if let Some(l) = listener.take() {
                sys::close_fd(l.into_raw_fd());
                for &pid in &live {
                    sys::kill(pid, sys::SIGTERM);
                }
            }
            if live.is_empty() {
                break;
            }
            let waited_ns = template.now_ns().saturating_sub(sig.since_ns);
            if !killed && waited_ns > drain_ns + KILL_GRACE_MS * 1_000_000 {
                for &pid in &live {
                    sys::kill(pid, sys::SIGKILL);
                }
                killed = true;
            }
        }
    }
    reports += drain_stats(stats_rx.as_raw_fd(), &mut dgram, &mut total);

    let (me, kids) = frame.usage();
    let per = |v: u64, n: u64| if n > 0 { v as f64 / n as f64 } else { 0.0 };
    let kid_minflt = kids.minflt;
    let switches = me.nvcsw + me.nivcsw + kids.nvcsw + kids.nivcsw;
    crate::say!(
        "okring: fork: {forked} children, {reports} reported statistics; {:.1} minor page faults per child, {:.2} context switches per request (parent + children)",
        per(kid_minflt, forked),
        per(switches, total.counters.requests),
    );
    Ok(frame.report("fork", total))
}

/// Accept one connection, nonblocking; `None` when none is waiting or on a
/// failed accept (counted; EMFILE/ENFILE counted as a pause: the loop's
/// next poll tick is the back-off).
fn accept(lfd: RawFd, total: &mut WorkerStats) -> Option<OwnedFd> {
    match sys::accept_owned(lfd) {
        Ok(fd) => return Some(fd),
        Err(e) => match e.accept_failure() {
            sys::AcceptFailure::WouldBlock => {}
            sys::AcceptFailure::Exhausted => total.counters.emfile_pauses += 1,
            sys::AcceptFailure::Canceled | sys::AcceptFailure::Transient => {
                total.counters.accept_errors += 1
            }
        },
    }
    None
}

/// Receive every queued statistics datagram and merge it into `total`;
/// returns how many were merged. A malformed one is reported once per call.
fn drain_stats(rx: RawFd, buf: &mut [u8], total: &mut WorkerStats) -> u64 {
    let mut merged = 0;
    loop {
        let n = match sys::recv_dontwait(rx, buf) {
            Some(n) if n > 0 => n,
            _ => return merged,
        };
        match worker_stats_from_bytes(&buf[..n]) {
            Ok(s) => {
                total.merge(&s);
                merged += 1;
            }
            Err(e) => crate::say!("okring: fork: a child's statistics were unreadable: {e}"),
        }
    }
}

/// The child: serve connection `fd`, report, `_exit`. `close` are the
/// parent's descriptors the child must not keep (the listener — else the
/// port stays open after the parent closes it — and the statistics
/// receive end).
#[allow(clippy::too_many_arguments)]
fn child_main(
    fd: OwnedFd,
    close: &[RawFd],
    ctx: &mut WorkerCtx,
    session: &mut Session,
    rbuf: &mut [u8],
    sig: &mut StopSignals,
    stats_tx: RawFd,
    drain_ns: u64,
) -> ! {
    for &c in close {
        sys::close_fd(c);
    }
    // A panic must end here, in _exit, not unwind into the parent's loop.
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve_conn(fd, ctx, session, rbuf, sig, drain_ns)
    }));
    if served.is_err() {
        sys::exit_now(101);
    }
    let frame = worker_stats_to_bytes(&ctx.stats);
    // A blocking send waits while the parent's receive queue is full;
    // MSG_NOSIGNAL: a gone parent gives an error, not SIGPIPE.
    if let Err(e) = sys::send(stats_tx, &frame) {
        // ECONNREFUSED/EPIPE: the parent is gone; nobody wants the figures.
        if !e.is_peer_gone() {
            crate::say!(
                "okring: fork child: cannot report statistics ({} bytes): {}",
                frame.len(),
                e
            );
        }
    }
    sys::exit_now(0)
}
