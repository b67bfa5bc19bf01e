//! The serving modes and what they share: dispatch, worker start-up,
//! shutdown, and merging of statistics.
//!
//! # The contract of a mode
//!
//! Every mode is one `run(cfg: &ServeConfig) -> Result<Report, String>`:
//! `sequential::run`, `fork::run`, `prefork::run`, and here `run_threads`
//! for uring, epoll and auto. It binds, announces its `listening on` line,
//! starts its [`Frame`] (wall clock and getrusage(2)), serves until SIGINT
//! or SIGTERM, drains for at most `cfg.drain`, and returns the merged
//! [`Report`]. [`serve`] dispatches on the mode and writes the shared end
//! once: the summary on stderr and `--hist-out`.
//!
//! Inside, the two event loops are one file each, exporting
//! `fn run_worker(id, listener, cfg, stop, ready, publisher) -> Result<WorkerStats, String>`
//! (used by the thread modes and by prefork's workers):
//! - it runs on its own thread, builds its own kernel objects there (a ring
//!   or an epoll instance — never shared, never created before the thread),
//!   and owns `listener` (its SO_REUSEPORT socket) and every connection it
//!   accepts;
//! - it reports set-up success or failure once through `ready`, before it
//!   serves;
//! - it drives [`session::Session`] (framing with [`crate::http`]), counts
//!   into its [`WorkerStats`], and records service time;
//! - when `stop` is raised (and its eventfd signalled) it stops accepting,
//!   closes idle connections, lets in-flight responses finish for at most
//!   `cfg.drain`, then returns its statistics.
//!
//! The thread modes merge their workers' statistics (histogram `add`,
//! counters summed). A second signal exits at once. With `--metrics` or
//! `--hlog`, each worker gets a [`live::Publisher`] (its
//! [`worker::WorkerCtx`] publishes on the tick), `/metrics` is served from
//! a thread of its own and the interval log written from another
//! ([`live`]).
//!
//! The process modes (`sequential`, `fork`, `prefork`) are dispatched
//! before any thread exists (they fork, and fork is only safe in a
//! single-threaded process); fork and prefork children send their
//! statistics to the parent in one codec
//! ([`crate::stats::worker_stats_to_bytes`]).

pub mod epoll;
pub mod fork;
pub mod live;
pub mod prefork;
pub mod sequential;
pub mod session;
pub mod uring;
pub mod worker;

use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::config::{EventLoop, Mode, ServeConfig};
use crate::error::Error;
use crate::stats::WorkerStats;
use crate::sys;

/// Shutdown request shared by the signal thread and the workers: a flag,
/// plus one eventfd per worker to wake its loop.
pub struct Stop {
    flag: AtomicBool,
    wakers: Vec<OwnedFd>,
}

impl Stop {
    pub fn new(workers: usize) -> Result<Arc<Stop>, String> {
        let wakers = (0..workers)
            .map(|_| sys::eventfd().map_err(|e| format!("eventfd: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Stop {
            flag: AtomicBool::new(false),
            wakers,
        }))
    }

    /// Whether shutdown was requested.
    #[inline]
    pub fn raised(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Request shutdown and wake every worker.
    pub fn raise(&self) {
        self.flag.store(true, Ordering::Release);
        for w in &self.wakers {
            sys::eventfd_signal(w.as_raw_fd());
        }
    }

    /// Undo [`raise`](Self::raise) before new workers start: clear the flag
    /// and drain every eventfd. The caller orders this against the signal
    /// thread (a real stop request must not be undone).
    fn rearm(&self) {
        self.flag.store(false, Ordering::Release);
        for w in &self.wakers {
            sys::eventfd_drain(w.as_raw_fd());
        }
    }

    /// Worker `id`'s wake-up eventfd (readable once shutdown is raised).
    pub fn waker(&self, id: usize) -> std::os::fd::RawFd {
        self.wakers[id].as_raw_fd()
    }
}

/// A repeat of the stop signal within this long is the same request
/// delivered twice — `timeout(1)` signals the command and then its whole
/// process group, which includes the command — not a second request, ms.
pub const SIGNAL_REPEAT_MS: u64 = 100;

/// Whether a stop signal `since` the first one is a second request (which
/// forces an exit without draining) rather than a duplicate delivery.
pub fn is_second_signal(since: Duration) -> bool {
    since >= Duration::from_millis(SIGNAL_REPEAT_MS)
}

/// How long `--mode auto` waits for its port to be free again when it
/// falls back from uring workers to epoll workers, ms.
const REBIND_WAIT_MS: u64 = 2000;

/// Set-up outcome a worker reports before it serves: the kernel features
/// in use (for the start-up line), or why it could not start.
pub type Ready = Sender<Result<String, String>>;

/// Report a set-up failure through `ready` (so `serve` can say it before
/// any `listening on` line) and return it as the worker's error.
pub fn setup_failed<T>(ready: &Ready, msg: String) -> Result<T, String> {
    // The receiver outlives set-up; a closed channel means serve is gone.
    let _ = ready.send(Err(msg.clone()));
    Err(msg)
}

/// Decide the mode: `auto` tries to set up a ring here and falls back to
/// epoll, saying why in one line on stderr.
pub fn resolve_mode(cfg: &ServeConfig) -> Result<EventLoop, String> {
    match cfg.mode {
        Mode::Epoll => Ok(EventLoop::Epoll),
        Mode::Uring => uring::probe(cfg).map(|_| EventLoop::Uring),
        Mode::Auto => match uring::probe(cfg) {
            Ok(()) => Ok(EventLoop::Uring),
            Err(why) => {
                crate::say!(
                    "okring: auto mode: using epoll because io_uring is unavailable: {why}"
                );
                Ok(EventLoop::Epoll)
            }
        },
        Mode::Prefork | Mode::Fork | Mode::Sequential => Err(format!(
            "--mode {} is a process mode without per-core threads",
            cfg.mode.name()
        )),
    }
}

/// Run `okring serve` until SIGINT/SIGTERM: the mode's `run`, then the
/// summary on stderr and `--hist-out`. Errors: the mode's set-up or run
/// (one line), `--hist-out` or `--hlog` that could not be written.
pub fn serve(cfg: &ServeConfig) -> Result<Report, Error> {
    let report = match cfg.mode {
        Mode::Sequential => sequential::run(cfg),
        Mode::Fork => fork::run(cfg),
        Mode::Prefork => prefork::run(cfg),
        Mode::Uring | Mode::Epoll | Mode::Auto => run_threads(cfg),
    }?;
    report.print_summary();
    if let Some(path) = &cfg.hist_out {
        write_hist(path, &report.stats)?;
    }
    match &report.output_error {
        Some(e) => Err(Error::Failed(e.clone())),
        None => Ok(report),
    }
}

/// The thread modes (uring, epoll, auto): one worker thread per
/// `--threads`, each with its own SO_REUSEPORT listener and event loop.
fn run_threads(cfg: &ServeConfig) -> Result<Report, String> {
    let mode = resolve_mode(cfg)?;
    let listeners = sys::reuseport_listeners(cfg.bind, cfg.threads, mode == EventLoop::Epoll)?;
    let local = listeners[0]
        .local_addr()
        .map_err(|e| format!("getsockname: {e}"))?;
    let stop = Stop::new(cfg.threads)?;
    let live = cfg.live().then(|| live::Live::new(cfg.threads));
    if let (Some(addr), Some(live)) = (cfg.metrics, &live) {
        let l = live::bind_metrics(addr)?;
        live::announce(&l);
        live::spawn_metrics_thread(l, live.clone())?;
    }
    let hlog = match (&cfg.hlog, &live) {
        (Some(path), Some(live)) => Some(
            live::HlogRecorder::create(path, cfg.hlog_interval, cfg.threads)?
                .spawn(live.clone())?,
        ),
        _ => None,
    };

    // Signals: the first SIGINT/SIGTERM starts a graceful stop, a second one
    // exits at once. `--mode auto` re-arms `stop` when it falls back to
    // epoll after a uring worker failed its set-up (stopping the others);
    // `gate` orders a signal against that re-arming.
    let gate = Arc::new(std::sync::Mutex::new(()));
    let signalled = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let sig_handle = signals.handle();
    {
        let stop = stop.clone();
        let gate = gate.clone();
        let signalled = signalled.clone();
        std::thread::Builder::new()
            .name("okring-signals".into())
            .spawn(move || {
                let mut first: Option<Instant> = None;
                for _ in signals.forever() {
                    match first {
                        None => {
                            first = Some(Instant::now());
                            signalled.store(true, Ordering::Release);
                            let _g = gate.lock().unwrap_or_else(|e| e.into_inner());
                            stop.raise();
                        }
                        Some(t) if is_second_signal(t.elapsed()) => {
                            crate::say!("okring: second signal: exiting without draining");
                            std::process::exit(130);
                        }
                        Some(_) => {}
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    }

    let frame = Frame::start();
    let mut mode = mode;
    // Statistics of workers of a failed start that did serve before it was
    // stopped (a uring start that `--mode auto` abandons): kept, not lost.
    let mut total = WorkerStats::new();
    let mut listeners = listeners;
    let (handles, features, stats_rx) = loop {
        match start_workers(mode, listeners, cfg, &stop, &live, &mut total) {
            Ok(started) => break started,
            Err(failure) if mode == EventLoop::Uring && cfg.mode == Mode::Auto => {
                // Every worker of the failed start has exited and closed its
                // listener; bind the same port again for epoll workers. A
                // closed ring is torn down asynchronously and holds its
                // listener (the armed multishot accept) until then, so the
                // port can stay busy for a few milliseconds.
                crate::say!(
                    "okring: auto mode: using epoll because a uring worker's set-up failed: {failure}"
                );
                mode = EventLoop::Epoll;
                let deadline = Instant::now() + Duration::from_millis(REBIND_WAIT_MS);
                listeners = loop {
                    match sys::reuseport_listeners(local, cfg.threads, true) {
                        Ok(l) => break l,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => return Err(e),
                    }
                };
                let _g = gate.lock().unwrap_or_else(|e| e.into_inner());
                if !signalled.load(Ordering::Acquire) {
                    stop.rearm();
                }
            }
            Err(failure) => {
                sig_handle.close();
                return Err(failure);
            }
        }
    };
    crate::say!(
        "okring: {} mode{} ({features}), {} worker{}, listening on {local}",
        mode.name(),
        if cfg.mode == Mode::Auto {
            ", chosen by --mode auto"
        } else {
            ""
        },
        cfg.threads,
        if cfg.threads == 1 { "" } else { "s" }
    );

    let mut first_err = None;
    for _ in 0..cfg.threads {
        match stats_rx.recv() {
            Ok(Ok(s)) => total.merge(&s),
            Ok(Err(e)) => {
                stop.raise();
                first_err.get_or_insert(e);
            }
            Err(_) => break,
        }
    }
    for h in handles {
        let _ = h.join();
    }
    sig_handle.close();
    let hlog_result = match (hlog, &live) {
        (Some(t), Some(live)) => t.stop().and_then(|rec| rec.finish(live)),
        _ => Ok(()),
    };
    if let Some(e) = first_err {
        return Err(e);
    }
    let mut report = frame.report(mode.name(), total);
    report.output_error = hlog_result.err();
    Ok(report)
}

/// Handles of started workers, the kernel features they named, and the
/// channel each sends its statistics (or its run-time error) on at exit.
type Started = (
    Vec<std::thread::JoinHandle<()>>,
    String,
    crossbeam_channel::Receiver<Result<WorkerStats, String>>,
);

/// Spawn one worker thread per listener and wait for each to report its
/// set-up. On the first failure, stops and joins every worker (each closes
/// its listener), merges into `served` the statistics of those that had
/// started, and returns the failed worker's one-line cause.
fn start_workers(
    mode: EventLoop,
    listeners: Vec<TcpListener>,
    cfg: &ServeConfig,
    stop: &Arc<Stop>,
    live: &Option<Arc<live::Live>>,
    served: &mut WorkerStats,
) -> Result<Started, String> {
    let (ready_tx, ready_rx) = bounded(listeners.len());
    let (stats_tx, stats_rx) = bounded(listeners.len());
    let mut handles = Vec::with_capacity(listeners.len());
    for (id, listener) in listeners.into_iter().enumerate() {
        let cfg = cfg.clone();
        let stop = stop.clone();
        let ready = ready_tx.clone();
        let stats_tx = stats_tx.clone();
        let live = live.clone();
        let h = std::thread::Builder::new()
            .name(format!("okring-{}-{id}", mode.name()))
            .spawn(move || {
                let publisher = live.as_ref().map(|l| live::Publisher::new(l.clone(), id));
                let r = run_worker(mode, id, listener, &cfg, &stop, &ready, publisher);
                if let (Some(live), Ok(s)) = (&live, &r) {
                    live.publish(id, s);
                }
                // The channel has room for every worker; a send cannot block.
                let _ = stats_tx.send(r);
            })
            .map_err(|e| format!("cannot start worker thread {id}: {e}"))?;
        handles.push(h);
    }
    drop(ready_tx);
    drop(stats_tx);
    let mut features = String::new();
    for _ in 0..handles.len() {
        let failure = match ready_rx.recv() {
            Ok(Ok(f)) => {
                features = f;
                continue;
            }
            Ok(Err(e)) => e,
            Err(_) => "a worker thread exited during set-up".to_string(),
        };
        stop.raise();
        for h in handles {
            let _ = h.join();
        }
        // Set-up failures were reported through `ready`; keep the counts of
        // workers that served before the stop.
        for s in stats_rx.try_iter().flatten() {
            served.merge(&s);
        }
        return Err(failure);
    }
    Ok((handles, features, stats_rx))
}

fn run_worker(
    mode: EventLoop,
    id: usize,
    listener: TcpListener,
    cfg: &ServeConfig,
    stop: &Stop,
    ready: &Ready,
    publisher: Option<live::Publisher>,
) -> Result<WorkerStats, String> {
    if !cfg.pin_cpus.is_empty() {
        let cpu = cfg.pin_cpus[id % cfg.pin_cpus.len()];
        if let Err(e) = sys::pin_current_thread(cpu) {
            return setup_failed(ready, format!("worker {id}: cannot pin to CPU {cpu}: {e}"));
        }
    }
    match mode {
        EventLoop::Uring => uring::run_worker(id, listener, cfg, stop, ready, publisher),
        EventLoop::Epoll => epoll::run_worker(id, listener, cfg, stop, ready, publisher),
    }
}

/// The summary printed to stderr at exit: `name` is the mode, `wall` the
/// serving time, `cpu` the server's CPU time (user + system).
/// The frame every mode's run shares, written once: wall-clock and CPU
/// time from start to finish (getrusage(2) of the process, all its
/// threads, and its reaped children), then the summary line and
/// `--hist-out`.
pub(crate) struct Frame {
    started: std::time::Instant,
    me: sys::Usage,
    kids: sys::Usage,
}

impl Frame {
    /// Start measuring now.
    pub(crate) fn start() -> Frame {
        Frame {
            started: std::time::Instant::now(),
            me: sys::usage(false),
            kids: sys::usage(true),
        }
    }

    /// Usage since the start: (this process, its reaped children).
    pub(crate) fn usage(&self) -> (sys::Usage, sys::Usage) {
        let (me, kids) = (sys::usage(false), sys::usage(true));
        let d = |now: sys::Usage, then: &sys::Usage| sys::Usage {
            cpu: now.cpu.saturating_sub(then.cpu),
            minflt: now.minflt.saturating_sub(then.minflt),
            nvcsw: now.nvcsw.saturating_sub(then.nvcsw),
            nivcsw: now.nivcsw.saturating_sub(then.nivcsw),
        };
        (d(me, &self.me), d(kids, &self.kids))
    }

    /// End the frame: the [`Report`] of mode `name` over the frame's window.
    pub(crate) fn report(&self, name: &'static str, stats: WorkerStats) -> Report {
        let (me, kids) = self.usage();
        Report {
            mode: name,
            stats,
            wall: self.started.elapsed(),
            cpu: me.cpu + kids.cpu,
            output_error: None,
        }
    }
}

/// What every mode's `run` returns after a graceful stop, and
/// [`serve`] after printing it: the merged statistics over the serving
/// window (from the `listening on` line to the stop).
#[derive(Debug)]
pub struct Report {
    /// The mode that served, as printed (`uring`, `epoll`, `prefork`, ...;
    /// `--mode auto` reports the loop it chose).
    pub mode: &'static str,
    /// Counters and the service-time histogram (ns), merged over every
    /// worker, thread or child.
    pub stats: WorkerStats,
    /// Wall-clock length of the serving window.
    pub wall: Duration,
    /// CPU time (user + system) of the process, its threads and its reaped
    /// children over the window (getrusage(2)).
    pub cpu: Duration,
    /// An output of the run that failed at its end (the `--hlog` writer):
    /// the summary is still printed, then [`serve`] returns it as its error.
    pub output_error: Option<String>,
}

impl Report {
    /// The summary on stderr: requests, rate, CPU per request, service-time
    /// percentiles, the non-zero counters.
    pub fn print_summary(&self) {
        print_summary(self.mode, &self.stats, self.wall, self.cpu);
    }
}

fn print_summary(name: &str, s: &WorkerStats, wall: Duration, cpu: Duration) {
    let c = &s.counters;
    let secs = wall.as_secs_f64().max(1e-9);
    crate::say!(
        "okring: {} mode stopped after {:.1} s: {} requests ({:.0}/s), {} connections, CPU {:.2} s ({:.2} µs/request)",
        name,
        secs,
        c.requests,
        c.requests as f64 / secs,
        c.conns_accepted,
        cpu.as_secs_f64(),
        if c.requests > 0 { cpu.as_secs_f64() * 1e6 / c.requests as f64 } else { 0.0 },
    );
    crate::say!(
        "okring: service time (server side, not client latency): {}",
        crate::stats::percentile_summary(&s.service_ns)
    );
    let nonzero: Vec<String> = c
        .fields()
        .into_iter()
        .filter(|&(_, _, v)| v > 0)
        .map(|(n, _, v)| format!("{n}={v}"))
        .collect();
    if nonzero.is_empty() {
        crate::say!("okring: counters: all zero");
    } else {
        crate::say!("okring: counters: {}", nonzero.join(" "));
    }
}

/// Write `--hist-out`: the merged service-time histogram as `.hgrm` text.
fn write_hist(path: &std::path::Path, s: &WorkerStats) -> Result<(), String> {
    let mut buf = Vec::new();
    crate::stats::write_hgrm(&mut buf, &s.service_ns, 5)
        .map_err(|e| format!("formatting {}: {e}", path.display()))?;
    std::fs::write(path, buf).map_err(|e| {
        format!(
            "cannot write --hist-out {}: {e} (check the directory exists and is writable)",
            path.display()
        )
    })
}
