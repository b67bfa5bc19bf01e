//! The load generator (`okring load`): HTTP/1.1 GET load against one URL,
//! closed loop (each connection sends its next request, or batch of
//! pipelined requests, as soon as the previous one is answered — wrk's
//! model) or open loop at a fixed total rate (wrk2's model, with latency
//! corrected for coordinated omission).
//!
//! Layout:
//! - `config.rs`: the target URL and the validated configuration (the
//!   arguments and the front door that writes files are `crate::cli::load`);
//! - this file: the run (threads, start gate, merge);
//! - `result.rs`: the result and its text / `.hgrm` / `.hlog` / JSON
//!   renderings; `live.rs`: the per-interval lines of live output;
//! - `worker.rs`: one thread's connections, schedule and recorders;
//! - `uring.rs`, `epoll.rs`: the two I/O engines behind one trait;
//! - responses are framed by [`crate::http::response::ResponseFramer`]
//!   (1xx interim responses, Content-Length, chunked, close-delimited);
//!   sockets and the clock are [`crate::sys::net`].
//!
//! It does not speak TLS, HTTP/2 or redirects. A host name is resolved
//! once, at start (every address; `--connect-to` overrides).

mod config;
mod epoll;
mod live;
mod result;
mod uring;
mod worker;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::error::Error;
use crate::stats::{fmt_ns, new_histogram};
use crate::sys::net as os;
use worker::{Core, Plan, StartGate, ThreadOut};

/// I/O engine of the load threads: the one "uring or epoll" choice of
/// the crate ([`EventLoop`]). `Uring`: one io_uring per thread, all of an
/// iteration's sends and receives in one io_uring_enter (falls back to
/// epoll, with a notice, if no ring can be set up); `Epoll`: one epoll
/// instance per thread, nonblocking sockets.
pub use crate::config::EventLoop as Engine;
pub use config::{parse_cpus, parse_url, LoadConfig, Target, DEFAULT_SPIN};
pub use live::IntervalLine;
pub use result::{ErrorCounts, LoadResult, LATE_SEND_THRESHOLD_NS};

/// How often `run` reports progress, ms.
const PROGRESS_EVERY_MS: u64 = 100;

/// Whether an io_uring with what the engine needs can be set up here; the
/// error says why not (EPERM: `kernel.io_uring_disabled` or seccomp; ENOSYS:
/// no io_uring in this kernel or sandbox).
pub fn probe_uring() -> Result<(), String> {
    probe_uring_for(1)
}

/// [`probe_uring`] for a ring sized for `connections` (one load thread's
/// share), so a ring the kernel refuses at that size (EINVAL, ENOMEM)
/// turns into the epoll fallback, not an exit.
fn probe_uring_for(connections: usize) -> Result<(), String> {
    let addr = os::RawAddr::new(SocketAddr::from(([127, 0, 0, 1], 1)));
    uring::Uring::new(connections, addr, worker::OpBufs::new(Vec::new(), 1))
        .map(|_| ())
        .map_err(|e| crate::sys::uring::setup_error(&e))
}

/// Run the load described by `cfg` and return the merged result.
///
/// Errors (one line): invalid configuration, the target refusing a first
/// probe connection, a thread that could not start its engine or pin
/// itself. Per-request problems are counted in `LoadResult::errors`.
pub fn run(cfg: &LoadConfig) -> Result<LoadResult, Error> {
    cfg.validate().map_err(Error::Usage)?;
    let mut warnings = Vec::new();
    let mut engine = cfg.engine;
    if engine == Engine::Uring {
        let per_thread = cfg.connections.div_ceil(cfg.threads);
        if let Err(why) = probe_uring_for(per_thread) {
            warnings.push(format!("no io_uring, using the epoll engine: {why}"));
            engine = Engine::Epoll;
        }
    }
    // Keep the addresses that accept a first connection (a name may
    // resolve to ::1 and 127.0.0.1 with the server on only one).
    let mut reachable = Vec::new();
    let mut refused = Vec::new();
    for &a in &cfg.addrs {
        match TcpStream::connect_timeout(&a, cfg.timeout) {
            Ok(_) => reachable.push(a),
            Err(e) => refused.push(format!("{a}: {e}")),
        }
    }
    if reachable.is_empty() {
        return Err(Error::Failed(format!(
            "cannot connect to {}; is the server running and listening there?",
            refused.join("; ")
        )));
    }
    if !refused.is_empty() {
        warnings.push(format!(
            "not using {} (the first connection failed)",
            refused.join("; ")
        ));
    }

    let (live_tx, live_rx) = match (&cfg.on_interval, cfg.interval) {
        (Some(_), Some(_)) => {
            let (tx, rx) = crossbeam_channel::unbounded();
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let plan = Arc::new(Plan {
        request: cfg.request_bytes(),
        pipeline: cfg.pipeline,
        close_each: cfg.close || cfg.http10,
        total_connections: cfg.connections,
        rate: cfg.rate,
        spin_ns: cfg.spin.as_nanos() as u64,
        warmup_ns: cfg.warmup.as_nanos() as u64,
        duration_ns: cfg.duration.as_nanos() as u64,
        timeout_ns: cfg.timeout.as_nanos() as u64,
        interval_ns: cfg.interval.map(|d| (d.as_nanos() as u64).max(1)),
        requests: cfg.requests,
        budget_used: AtomicU64::new(0),
        head: cfg.is_head(),
        live: live_tx,
    });
    let gate = Arc::new(StartGate {
        connected: Barrier::new(cfg.threads + 1),
        go: Barrier::new(cfg.threads + 1),
        t0_ns: AtomicU64::new(0),
    });
    let mut handles = Vec::with_capacity(cfg.threads);
    let (mut first, mine) = cfg.shard_range();
    for i in 0..cfg.threads {
        let n = mine / cfg.threads + usize::from(i < mine % cfg.threads);
        let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[i % cfg.cpus.len()]);
        let (plan, gate) = (plan.clone(), gate.clone());
        let addr = reachable[i % reachable.len()];
        let h = std::thread::Builder::new()
            .name(format!("okring-load-{i}"))
            .spawn(move || thread_main(&plan, &gate, addr, first, n, cpu, engine))
            .map_err(|e| format!("cannot start load thread: {e}"))?;
        handles.push(h);
        first += n;
    }
    gate.connected.wait();
    if let Some(at) = cfg.start_at {
        // Every shard's measured window starts at `at`: wait out the rest.
        let go = at.checked_sub(cfg.warmup).unwrap_or(at);
        if let Ok(left) = go.duration_since(SystemTime::now()) {
            std::thread::sleep(left);
        }
    }
    let t0 = os::now_ns();
    gate.t0_ns.store(t0, Ordering::Release);
    gate.go.wait();

    let total_ns = (plan.warmup_ns + plan.duration_ns).max(1);
    let mut live = LiveMerge::default();
    while !handles.iter().all(|h| h.is_finished()) {
        if let Some(p) = &cfg.progress {
            let done = match cfg.requests {
                // Requests handed out so far (sends past the budget
                // included, hence the cap).
                Some(n) => plan.budget_used.load(Ordering::Relaxed) as f64 / n.max(1) as f64,
                None => (os::now_ns() - t0) as f64 / total_ns as f64,
            };
            p(done.min(1.0));
        }
        if let (Some(rx), Some(f)) = (&live_rx, &cfg.on_interval) {
            live.drain(rx, cfg.threads, f.as_ref());
        }
        std::thread::sleep(Duration::from_millis(PROGRESS_EVERY_MS));
    }
    if let (Some(rx), Some(f)) = (&live_rx, &cfg.on_interval) {
        live.drain(rx, cfg.threads, f.as_ref());
    }
    let mut outs = Vec::with_capacity(handles.len());
    for h in handles {
        outs.push(
            h.join()
                .map_err(|_| "a load thread panicked".to_string())??,
        );
    }
    let result = merge(cfg, engine, outs, warnings);
    if let Some(p) = &cfg.progress {
        p(1.0);
    }
    Ok(result)
}

/// Intervals reported by the load threads, merged until every thread has
/// reported one; then it is handed on, in order.
#[derive(Default)]
struct LiveMerge {
    /// By interval index: (threads reported, merged report).
    pending: std::collections::BTreeMap<usize, (usize, worker::IntervalReport)>,
    next: usize,
    /// Errors and late sends up to the last interval handed on.
    errors_before: u64,
    late_before: u64,
}

impl LiveMerge {
    fn drain(
        &mut self,
        rx: &crossbeam_channel::Receiver<worker::IntervalReport>,
        threads: usize,
        f: &(dyn Fn(&IntervalLine) + Send + Sync),
    ) {
        while let Ok(r) = rx.try_recv() {
            match self.pending.get_mut(&r.index) {
                Some((n, m)) => {
                    *n += 1;
                    // Cannot fail: every histogram has the same bounds.
                    let _ = m.hist.add(&r.hist);
                    m.errors_total += r.errors_total;
                    m.late_total += r.late_total;
                }
                None => {
                    self.pending.insert(r.index, (1, r));
                }
            }
        }
        while self
            .pending
            .get(&self.next)
            .is_some_and(|(n, _)| *n == threads)
        {
            let (_, m) = self.pending.remove(&self.next).expect("present");
            f(&IntervalLine {
                start: Duration::from_nanos(m.start_ns),
                len: Duration::from_nanos(m.len_ns),
                latency_ns: m.hist,
                errors: m.errors_total.saturating_sub(self.errors_before),
                late_sends: m.late_total.saturating_sub(self.late_before),
            });
            self.errors_before = m.errors_total;
            self.late_before = m.late_total;
            self.next += 1;
        }
    }
}

fn thread_main(
    plan: &Plan,
    gate: &StartGate,
    addr: SocketAddr,
    first: usize,
    conns: usize,
    cpu: Option<usize>,
    engine: Engine,
) -> Result<ThreadOut, String> {
    let raw = os::RawAddr::new(addr);
    let pinned = cpu.map_or(Ok(()), |c| {
        crate::sys::pin_current_thread(c).map_err(|e| {
            format!("--cpus: cannot pin to CPU {c}: {e}; pick CPUs this process may use (see taskset -p $$)")
        })
    });
    // The open-loop schedule's wake-ups are hrtimers: without this they may
    // fire up to the default 50 µs slack late.
    crate::sys::set_timer_slack_ns(1);
    let mut core = Core::new(plan, addr, first, conns);
    let fail = |e: String| {
        gate.connected.wait();
        gate.go.wait();
        Err(e)
    };
    if let Err(e) = pinned {
        return fail(e);
    }
    match engine {
        Engine::Uring => {
            match uring::Uring::new(conns, raw, worker::OpBufs::new(plan.batch(), conns)) {
                Ok(mut io) => core.drive(&mut io, gate),
                Err(e) => fail(format!("io_uring setup failed in a load thread: {e}")),
            }
        }
        Engine::Epoll => {
            match epoll::Epoll::new(conns, raw, worker::OpBufs::new(plan.batch(), conns)) {
                Ok(mut io) => core.drive(&mut io, gate),
                Err(e) => fail(format!("epoll_create1 failed: {e}")),
            }
        }
    }
}

fn merge(
    cfg: &LoadConfig,
    engine: Engine,
    outs: Vec<ThreadOut>,
    mut warnings: Vec<String>,
) -> LoadResult {
    let open = cfg.rate.is_some();
    let mut latency = new_histogram();
    let mut uncorrected = new_histogram();
    let mut lag = new_histogram();
    let mut errors = ErrorCounts::default();
    let mut intervals: Vec<(Duration, Duration, Histogram<u64>)> = Vec::new();
    let (mut requests, mut late, mut sends, mut rd, mut wr, mut rc) = (0, 0, 0, 0, 0, 0);
    let (mut sent, mut unfinished, mut interim) = (0, 0, 0);
    let mut statuses = std::collections::BTreeMap::new();
    let mut measure_start = u64::MAX;
    let mut finished = 0;
    for o in &outs {
        // Cannot fail: every histogram has the same bounds.
        let _ = latency.add(&o.latency);
        let _ = uncorrected.add(&o.uncorrected);
        let _ = lag.add(&o.lag);
        errors.add(&o.errors);
        requests += o.requests;
        sent += o.sent;
        unfinished += o.unfinished;
        interim += o.interim;
        for (&code, &n) in &o.statuses {
            *statuses.entry(code).or_insert(0) += n;
        }
        late += o.late_sends;
        sends += o.sends;
        rd += o.bytes_read;
        wr += o.bytes_written;
        rc += o.reconnects;
        measure_start = measure_start.min(o.measure_start_ns);
        finished = finished.max(o.finished_ns);
        for (i, (start, len, h)) in o.intervals.iter().enumerate() {
            if intervals.len() <= i {
                intervals.push((
                    Duration::from_nanos(*start),
                    Duration::ZERO,
                    new_histogram(),
                ));
            }
            let slot = &mut intervals[i];
            slot.1 = slot.1.max(Duration::from_nanos(*len));
            let _ = slot.2.add(h);
        }
    }
    let elapsed_ns = finished.saturating_sub(measure_start);
    let started =
        SystemTime::now() - Duration::from_nanos(os::now_ns().saturating_sub(measure_start));
    if let Some(rate) = cfg.rate {
        let mean_s = uncorrected.mean() / 1e9;
        let needed = rate * mean_s;
        if sends > 0 && late * 100 > sends {
            let fix = if needed > cfg.connections as f64 {
                format!(
                    "raise --connections (rate x mean latency = {needed:.1} busy connections \
                     needed, {} available) or lower --rate",
                    cfg.connections
                )
            } else {
                format!(
                    "connections were not the limit ({needed:.1} busy of {} on average), the \
                     load generator's CPU was: give it more CPUs (--threads) or lower --rate",
                    cfg.connections
                )
            };
            warnings.push(format!(
                "{late} of {sends} requests ({:.1}%) were sent more than {} late: the target \
                 rate was not held; {fix}",
                late as f64 * 100.0 / sends as f64,
                fmt_ns(LATE_SEND_THRESHOLD_NS),
            ));
        } else if needed > cfg.connections as f64 {
            warnings.push(format!(
                "rate x mean latency = {needed:.1} connections busy on average, more than the \
                 {} available: raise --connections",
                cfg.connections
            ));
        }
    }
    LoadResult {
        url: cfg.url.clone(),
        mode: cfg.mode_text(),
        connections: cfg.connections,
        threads: cfg.threads,
        engine,
        rate: cfg.rate,
        requests,
        sent,
        unfinished,
        interim_responses: interim,
        statuses,
        elapsed: Duration::from_nanos(elapsed_ns),
        errors,
        latency_ns: latency,
        uncorrected_ns: open.then_some(uncorrected),
        schedule_lag_ns: open.then_some(lag),
        late_sends: late,
        sends,
        intervals,
        bytes_read: rd,
        bytes_written: wr,
        reconnects: rc,
        started,
        shard: cfg.shard,
        start_offset_s: cfg.start_at.map(|at| match started.duration_since(at) {
            Ok(late) => late.as_secs_f64(),
            Err(early) => -early.duration().as_secs_f64(),
        }),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        warnings,
    }
}
