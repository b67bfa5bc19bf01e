//! `--mode prefork --workers N --worker-loop epoll|uring`: nginx's model.
//! A master binds, forks N worker processes and supervises them; each
//! worker runs the epoll or io_uring loop of the thread modes
//! ([`super::epoll::run_worker`], [`super::uring::run_worker`]) in its own
//! process, building its epoll instance or ring after the fork — no ring or
//! epoll instance exists in the master, ever.
//!
//! Listeners: one shared listener (default) that every worker accepts from,
//! or one SO_REUSEPORT listener per worker (`--reuseport`), where the kernel
//! spreads connections by hash. A worker keeps only its own listener; the
//! master keeps all of them open (never accepting) so a restarted worker
//! finds its listener, and connections hashed to a dead worker's socket wait
//! in its backlog instead of being refused.
//!
//! The master is single-threaded (fork is safe) and has no signal handler:
//! SIGINT, SIGTERM and SIGCHLD are blocked and read from a signalfd. Each
//! worker inherits the mask and its copy of the signalfd; one extra thread in
//! the worker (started after the fork) reports readiness and turns the
//! worker's SIGTERM/SIGINT into [`Stop::raise`]. A worker also gets SIGTERM
//! if the master dies (PR_SET_PDEATHSIG).
//!
//! Master ← worker messages go through one pipe per worker, as frames
//! `u8 tag | u32 LE length | payload`: `R` ready (payload: the loop's
//! features), `E` set-up failure (payload: the message), `S` statistics at
//! exit (payload: [`crate::stats::worker_stats_to_bytes`]). One writer per
//! pipe, so frames never interleave; `R` is written before the worker
//! serves and `S` after it stops.
//!
//! With `--metrics` or `--hlog`, workers also send `P` frames (payload as
//! `S`: the worker's cumulative statistics so far) from their signal
//! thread every [`live::PUBLISH_INTERVAL_NS`] while they change; `P` and
//! `S` are written under one lock, so they never interleave either. The
//! master keeps the latest per worker in a [`live::Live`] (a dead worker's
//! last one retired into its slot, see [`live::Live::retire`]), answers
//! `/metrics` from its own poll loop — one scrape at a time, each bounded
//! by [`METRICS_IO_TIMEOUT_MS`], so the master stays single-threaded — and
//! writes the `--hlog` intervals from the same loop.
//!
//! Supervision: a worker that dies while serving is restarted — at once if
//! it had run at least [`STABLE_RUN_MS`], else after a back-off doubling
//! from [`BACKOFF_MIN_MS`] to [`BACKOFF_MAX_MS`] — with one line on stderr.
//! Its statistics die with it. The first SIGINT/SIGTERM is forwarded as
//! SIGTERM to every worker; the master waits for them (SIGKILL after
//! `cfg.drain` + [`KILL_GRACE_MS`]), merges their statistics, prints the
//! summary, writes `--hist-out`, and returns. A second signal kills the
//! workers and exits 130.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use super::sequential::StopSignals;
use super::{epoll, live, uring, Stop};
use crate::config::{EventLoop, ServeConfig};
use crate::stats::{worker_stats_from_bytes, worker_stats_to_bytes, WorkerStats};
use crate::sys::{self, ChildEnd, Pid, SignalFd};

/// A worker that ran at least this long before dying is restarted at once, ms.
pub const STABLE_RUN_MS: u64 = 1000;
/// First restart delay of a worker that keeps dying early, ms.
pub const BACKOFF_MIN_MS: u64 = 50;
/// Longest restart delay, ms.
pub const BACKOFF_MAX_MS: u64 = 5000;
/// After the drain, how long workers get before SIGKILL, ms.
pub const KILL_GRACE_MS: u64 = 1000;
/// The master's poll(2) timeout, ms.
const TICK_MS: u64 = 100;

const TAG_READY: u8 = b'R';
const TAG_ERROR: u8 = b'E';
const TAG_STATS: u8 = b'S';
const TAG_SNAPSHOT: u8 = b'P';
/// Longest the master waits on one `/metrics` scraper's read or write, ms.
pub const METRICS_IO_TIMEOUT_MS: u64 = 200;
/// Frame header: tag + u32 length, bytes.
const FRAME_HEADER_LEN: usize = 5;

/// The master's view of worker slot `id`.
struct Slot {
    pid: Option<Pid>,
    /// Read end of this worker's pipe; `None` after EOF.
    rx: Option<OwnedFd>,
    /// Bytes read from `rx`, not yet a whole frame.
    buf: Vec<u8>,
    ready: bool,
    /// When the current process was started, ns since the master's start.
    started_ns: u64,
    /// Restart due at this time, ns since the master's start.
    restart_at_ns: Option<u64>,
    backoff_ms: u64,
}

/// A message decoded from a worker's pipe.
enum Msg {
    Ready(String),
    Error(String),
    Stats(Box<WorkerStats>),
    Snapshot(Box<WorkerStats>),
}

struct Master<'a> {
    cfg: &'a ServeConfig,
    listeners: Vec<TcpListener>,
    slots: Vec<Slot>,
    sig: StopSignals,
    epoch: Instant,
    total: WorkerStats,
    features: Option<String>,
    /// Set-up failure reported by a worker before the service started.
    setup_error: Option<String>,
    serving: bool,
    /// Latest statistics per worker (`--metrics`, `--hlog`).
    live: Option<Arc<live::Live>>,
    /// The `--metrics` listener (nonblocking).
    metrics: Option<TcpListener>,
    hlog: Option<live::HlogRecorder>,
}

/// Run `--mode prefork` until SIGINT/SIGTERM. Errors: bind, signalfd,
/// pipe or fork failure at start, or a worker's set-up failure (e.g. no
/// io_uring), returned as that worker's one-line message.
pub fn run(cfg: &ServeConfig) -> Result<super::Report, String> {
    let sigfd = SignalFd::for_stop_and_child().map_err(|e| format!("signalfd: {e}"))?;
    let nonblocking = cfg.worker_loop == EventLoop::Epoll;
    let listeners = if cfg.reuseport {
        sys::reuseport_listeners(cfg.bind, cfg.workers, nonblocking)?
    } else {
        sys::reuseport_listeners(cfg.bind, 1, nonblocking)?
    };
    let local = listeners[0]
        .local_addr()
        .map_err(|e| format!("getsockname: {e}"))?;
    let live = cfg.live().then(|| live::Live::new(cfg.workers));
    let metrics = match cfg.metrics {
        Some(addr) => {
            let l = live::bind_metrics(addr)?;
            l.set_nonblocking(true)
                .map_err(|e| format!("--metrics listener: {e}"))?;
            live::announce(&l);
            Some(l)
        }
        None => None,
    };
    let hlog = match &cfg.hlog {
        Some(path) => Some(live::HlogRecorder::create(
            path,
            cfg.hlog_interval,
            cfg.workers,
        )?),
        None => None,
    };
    let frame = super::Frame::start();
    let started = Instant::now();
    let mut m = Master {
        cfg,
        listeners,
        slots: (0..cfg.workers)
            .map(|_| Slot {
                pid: None,
                rx: None,
                buf: Vec::new(),
                ready: false,
                started_ns: 0,
                restart_at_ns: None,
                backoff_ms: 0,
            })
            .collect(),
        sig: StopSignals::new(sigfd, false),
        epoch: started,
        total: WorkerStats::new(),
        features: None,
        setup_error: None,
        serving: false,
        live,
        metrics,
        hlog,
    };
    for id in 0..cfg.workers {
        if let Err(e) = m.spawn(id) {
            m.stop_all();
            return Err(e);
        }
    }
    // Start-up: every worker reports ready, or one fails and all stop.
    while !m.slots.iter().all(|s| s.ready) {
        m.step();
        if let Some(e) = m.setup_error.take() {
            m.stop_all();
            return Err(e);
        }
        if m.sig.raised() {
            m.stop_all();
            return Ok(frame.report("prefork", std::mem::take(&mut m.total)));
        }
        if let Some(id) = m.slots.iter().position(|s| s.pid.is_none() && !s.ready) {
            m.stop_all();
            return Err(format!("prefork worker {id} exited during set-up"));
        }
    }
    m.serving = true;
    let loop_name = match cfg.worker_loop {
        EventLoop::Epoll => "epoll",
        EventLoop::Uring => "uring",
    };
    crate::say!(
        "okring: prefork mode ({loop_name} workers: {}; {}), {} worker{}, listening on {local}",
        m.features.as_deref().unwrap_or(""),
        if cfg.reuseport {
            "one SO_REUSEPORT listener each"
        } else {
            "one shared listener"
        },
        cfg.workers,
        if cfg.workers == 1 { "" } else { "s" }
    );
    while !m.sig.raised() {
        m.step();
    }
    m.stop_all();

    let hlog = match (m.hlog.take(), &m.live) {
        (Some(rec), Some(live)) => rec.finish(live),
        _ => Ok(()),
    };
    let mut report = frame.report("prefork", std::mem::take(&mut m.total));
    report.output_error = hlog.err();
    Ok(report)
}

impl Master<'_> {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Fork worker `id`. Errors: pipe or fork failure.
    fn spawn(&mut self, id: usize) -> Result<(), String> {
        let (rx, tx) = sys::pipe(true).map_err(|e| format!("pipe: {e}"))?;
        // Descriptors the worker must not keep: the other workers'
        // listeners and every pipe read end (its own included).
        let own = if self.cfg.reuseport { id } else { 0 };
        let mut close: Vec<RawFd> = self
            .listeners
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != own)
            .map(|(_, l)| l.as_raw_fd())
            .collect();
        close.extend(
            self.slots
                .iter()
                .filter_map(|s| s.rx.as_ref().map(|r| r.as_raw_fd())),
        );
        close.push(rx.as_raw_fd());
        close.extend(self.metrics.as_ref().map(|l| l.as_raw_fd()));
        // The master never starts a thread (signals come through a
        // signalfd), as fork_child checks; the child leaves through
        // `worker_main`, which ends in _exit.
        let (listener, sigfd, txfd, cfg) = (
            &self.listeners[own],
            &self.sig.sigfd,
            tx.as_raw_fd(),
            self.cfg,
        );
        match sys::fork_child(|| worker_main(id, listener, &close, sigfd, txfd, cfg)) {
            Ok(pid) => {
                drop(tx);
                let now = self.now_ns();
                let s = &mut self.slots[id];
                s.pid = Some(pid);
                s.rx = Some(rx);
                s.buf.clear();
                s.ready = false;
                s.started_ns = now;
                s.restart_at_ns = None;
                Ok(())
            }
            Err(e) => Err(format!("cannot fork prefork worker {id}: {e}")),
        }
    }

    /// One turn of the supervision loop: wait (≤ one tick or until the
    /// next restart), read signals and worker pipes, reap, restart.
    fn step(&mut self) {
        let now = self.now_ns();
        let next_restart = self.slots.iter().filter_map(|s| s.restart_at_ns).min();
        let timeout_ms = match next_restart {
            Some(t) => (t.saturating_sub(now) / 1_000_000).min(TICK_MS),
            None => TICK_MS,
        };
        let timeout_ms = match &self.hlog {
            Some(h) => {
                let due = h.next_due().saturating_duration_since(Instant::now());
                timeout_ms.min(due.as_millis() as u64)
            }
            None => timeout_ms,
        };
        let mut fds = vec![sys::pollin(self.sig.sigfd.fd())];
        fds.extend(self.metrics.as_ref().map(|l| sys::pollin(l.as_raw_fd())));
        fds.extend(
            self.slots
                .iter()
                .filter_map(|s| s.rx.as_ref().map(|r| sys::pollin(r.as_raw_fd()))),
        );
        // poll fails only with EINVAL/ENOMEM; the next turn retries.
        let _ = sys::poll(&mut fds, timeout_ms as i32);
        if fds[0].revents != 0 {
            self.sig.check(self.now_ns());
            if self.sig.seen >= 2 {
                crate::say!("okring: second signal: killing the workers, exiting without draining");
                self.signal_all(sys::SIGKILL);
                sys::exit_now(130);
            }
        }
        for id in 0..self.slots.len() {
            self.read_pipe(id);
        }
        if self.metrics.is_some() && fds[1].revents != 0 {
            self.answer_scrapes();
        }
        self.write_hlog_if_due();
        while let Some((pid, end)) = sys::reap_any() {
            self.reaped(pid, end);
        }
        if !self.sig.raised() {
            let now = self.now_ns();
            for id in 0..self.slots.len() {
                if self.slots[id].restart_at_ns.is_some_and(|t| t <= now) {
                    if let Err(e) = self.spawn(id) {
                        let s = &mut self.slots[id];
                        s.backoff_ms = (s.backoff_ms * 2).clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
                        s.restart_at_ns = Some(now + s.backoff_ms * 1_000_000);
                        crate::say!("okring: prefork: {e}; retrying in {} ms", s.backoff_ms);
                    }
                }
            }
        }
    }

    /// Read what worker `id`'s pipe holds and act on its whole frames.
    fn read_pipe(&mut self, id: usize) {
        let Some(rx) = self.slots[id].rx.as_ref().map(|r| r.as_raw_fd()) else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        let eof = loop {
            match sys::read(rx, &mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.slots[id].buf.extend_from_slice(&chunk[..n]),
                Err(e) => break e.io_failure() != sys::IoFailure::Again,
            }
        };
        while let Some(msg) = take_frame(&mut self.slots[id].buf) {
            match msg {
                Ok(Msg::Ready(f)) => {
                    self.slots[id].ready = true;
                    self.features.get_or_insert(f);
                }
                Ok(Msg::Error(e)) => {
                    if self.serving {
                        crate::say!("okring: prefork: worker {id}: {e}");
                    } else {
                        self.setup_error.get_or_insert(e);
                    }
                }
                Ok(Msg::Stats(s)) => {
                    self.total.merge(&s);
                    if let Some(l) = &self.live {
                        l.publish(id, &s);
                    }
                }
                Ok(Msg::Snapshot(s)) => {
                    if let Some(l) = &self.live {
                        l.publish(id, &s);
                    }
                }
                Err(e) => crate::say!("okring: prefork: worker {id}: unreadable message: {e}"),
            }
        }
        if eof {
            // Every write end is closed: the worker is gone (or going).
            self.slots[id].rx = None;
        }
    }

    /// A child ended: collect its last messages and schedule a restart.
    fn reaped(&mut self, pid: Pid, end: ChildEnd) {
        let Some(id) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
            return;
        };
        self.read_pipe(id);
        if let Some(l) = &self.live {
            l.retire(id);
        }
        let now = self.now_ns();
        let s = &mut self.slots[id];
        s.pid = None;
        s.rx = None;
        if self.sig.raised() || !self.serving {
            return;
        }
        let lived_ms = now.saturating_sub(s.started_ns) / 1_000_000;
        s.backoff_ms = if lived_ms >= STABLE_RUN_MS {
            0
        } else {
            (s.backoff_ms * 2).clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS)
        };
        s.restart_at_ns = Some(now + s.backoff_ms * 1_000_000);
        let how = match end {
            ChildEnd::Exited(c) => format!("exited with status {c}"),
            ChildEnd::Signaled(sig) => format!("was killed by signal {sig}"),
        };
        crate::say!(
            "okring: prefork: worker {id} (pid {pid}) {how} after {lived_ms} ms; restarting in {} ms",
            s.backoff_ms
        );
    }

    /// Answer every pending `/metrics` connection, one at a time.
    fn answer_scrapes(&self) {
        let (Some(l), Some(live)) = (&self.metrics, &self.live) else {
            return;
        };
        let t = Duration::from_millis(METRICS_IO_TIMEOUT_MS);
        while let Ok((s, _)) = l.accept() {
            live::answer_one(s, t, || live.prometheus());
        }
    }

    /// Write the `--hlog` interval if it is due; on a write error, say so
    /// once and stop logging.
    fn write_hlog_if_due(&mut self) {
        let (Some(h), Some(live)) = (&mut self.hlog, &self.live) else {
            return;
        };
        if Instant::now() >= h.next_due() {
            if let Err(e) = h.write_interval(live) {
                crate::say!("okring: prefork: {e}; the interval log stops here");
                self.hlog = None;
            }
        }
    }

    fn signal_all(&self, sig: i32) {
        for pid in self.slots.iter().filter_map(|s| s.pid) {
            sys::kill(pid, sig);
        }
    }

    /// Forward SIGTERM, wait for every worker (SIGKILL after the drain and
    /// the grace), collecting their statistics.
    fn stop_all(&mut self) {
        for s in &mut self.slots {
            s.restart_at_ns = None;
        }
        self.signal_all(sys::SIGTERM);
        let t0 = self.now_ns();
        let limit_ns = self.cfg.drain.as_nanos() as u64 + KILL_GRACE_MS * 1_000_000;
        let mut killed = false;
        while self.slots.iter().any(|s| s.pid.is_some()) {
            self.step();
            if !killed && self.now_ns().saturating_sub(t0) > limit_ns {
                self.signal_all(sys::SIGKILL);
                killed = true;
            }
        }
        for id in 0..self.slots.len() {
            self.read_pipe(id);
        }
    }
}

/// Decode the first whole frame of `buf`, removing it; `None` until one is
/// complete.
fn take_frame(buf: &mut Vec<u8>) -> Option<Result<Msg, String>> {
    if buf.len() < FRAME_HEADER_LEN {
        return None;
    }
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < FRAME_HEADER_LEN + len {
        return None;
    }
    let tag = buf[0];
    let payload: Vec<u8> = buf
        .drain(..FRAME_HEADER_LEN + len)
        .skip(FRAME_HEADER_LEN)
        .collect();
    let text = || String::from_utf8_lossy(&payload).into_owned();
    Some(match tag {
        TAG_READY => Ok(Msg::Ready(text())),
        TAG_ERROR => Ok(Msg::Error(text())),
        TAG_STATS => worker_stats_from_bytes(&payload).map(|s| Msg::Stats(Box::new(s))),
        TAG_SNAPSHOT => worker_stats_from_bytes(&payload).map(|s| Msg::Snapshot(Box::new(s))),
        t => Err(format!("unknown frame tag {t:#04x}")),
    })
}

/// Write one `tag | u32 LE length | payload` frame to a worker's pipe.
fn write_frame(fd: RawFd, tag: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut f = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    f.push(tag);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    sys::write_all_fd(fd, &f)
}

/// The worker process: run the chosen loop on `listener` until SIGTERM,
/// report statistics, `_exit`. `close` are inherited descriptors it must
/// not keep; `tx` is the write end of its pipe to the master.
fn worker_main(
    id: usize,
    listener: &TcpListener,
    close: &[RawFd],
    sigfd: &SignalFd,
    tx: RawFd,
    cfg: &ServeConfig,
) -> ! {
    for &fd in close {
        sys::close_fd(fd);
    }
    sys::die_with_parent(sys::SIGTERM);
    // A panic must end here, in _exit: unwinding further would return
    // into the master's code (and drop the master's copies of descriptors).
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        worker_run(id, listener, sigfd, tx, cfg)
    }));
    let code = match run {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            crate::say!("okring: prefork worker {id}: {e}");
            1
        }
        Err(_) => 101,
    };
    sys::exit_now(code)
}

fn worker_run(
    id: usize,
    listener: &TcpListener,
    sigfd: &SignalFd,
    tx: RawFd,
    cfg: &ServeConfig,
) -> Result<(), String> {
    let listener = listener
        .try_clone()
        .map_err(|e| format!("dup listener: {e}"))?;
    // `run_worker` wakes itself through `stop.waker(id)`: one eventfd per
    // index up to `id` (a few descriptors; only the last is used).
    let stop = Stop::new(id + 1)?;
    let (ready_tx, ready_rx) = bounded::<Result<String, String>>(1);
    // Live snapshots: the loop publishes into a one-slot Live, the signal
    // thread forwards it as `P` frames; `P` and `S` writes share a lock.
    let live = cfg.live().then(|| live::Live::new(1));
    let publisher = live.as_ref().map(|l| live::Publisher::new(l.clone(), 0));
    let write_lock = Arc::new(Mutex::new(()));
    {
        let stop = stop.clone();
        let sfd = sigfd.fd();
        let live = live.clone();
        let write_lock = write_lock.clone();
        // This thread exists only after the fork, in the worker; the
        // worker never forks.
        std::thread::Builder::new()
            .name(format!("okring-prefork-{id}-signals"))
            .spawn(move || {
                match ready_rx.recv() {
                    Ok(Ok(f)) => {
                        let _ = write_frame(tx, TAG_READY, f.as_bytes());
                    }
                    Ok(Err(e)) => {
                        let _ = write_frame(tx, TAG_ERROR, e.as_bytes());
                        return;
                    }
                    Err(_) => return,
                }
                // SIGINT/SIGTERM (from the master, a terminal's process
                // group or the master's death) stop the worker; further
                // ones change nothing — the master decides when to kill.
                let wait_ms = if live.is_some() {
                    (live::PUBLISH_INTERVAL_NS / 1_000_000) as i32
                } else {
                    -1
                };
                let mut sent_version = 0;
                loop {
                    let mut fds = [sys::pollin(sfd)];
                    if sys::poll(&mut fds, wait_ms).is_err() {
                        return;
                    }
                    if let Some(l) = &live {
                        let v = l.version(0);
                        if v != sent_version {
                            sent_version = v;
                            if let Some(snap) = l.current(0) {
                                let _g = write_lock.lock().unwrap_or_else(|e| e.into_inner());
                                let _ =
                                    write_frame(tx, TAG_SNAPSHOT, &worker_stats_to_bytes(&snap));
                            }
                        }
                    }
                    if fds[0].revents == 0 {
                        continue;
                    }
                    // The SignalFd stays open until the process's _exit.
                    let sigs = sys::read_signals(sfd);
                    if sigs.iter().any(|&s| s == sys::SIGINT || s == sys::SIGTERM) {
                        stop.raise();
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    }
    if !cfg.pin_cpus.is_empty() {
        let cpu = cfg.pin_cpus[id % cfg.pin_cpus.len()];
        sys::pin_current_thread(cpu).map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))?;
    }
    let stats = match cfg.worker_loop {
        EventLoop::Epoll => epoll::run_worker(id, listener, cfg, &stop, &ready_tx, publisher)?,
        EventLoop::Uring => uring::run_worker(id, listener, cfg, &stop, &ready_tx, publisher)?,
    };
    let _g = write_lock.lock().unwrap_or_else(|e| e.into_inner());
    write_frame(tx, TAG_STATS, &worker_stats_to_bytes(&stats))
        .map_err(|e| format!("cannot report statistics: {e}"))
}
