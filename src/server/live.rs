//! Live statistics of a running server: per-worker snapshots, the
//! `/metrics` HTTP endpoint (Prometheus text exposition format 0.0.4) and
//! the server-side HdrHistogram interval log (`--hlog`).
//!
//! # How statistics leave the workers
//!
//! Only when `--metrics` or `--hlog` is given: each worker's `run_worker`
//! gets a [`Publisher`], kept in its [`super::worker::WorkerCtx`]. On its
//! timer tick (every 100 ms in both loops) the worker copies its
//! [`WorkerStats`] into its slot of the shared [`Live`] object, at most
//! every [`PUBLISH_INTERVAL_NS`]. Without the flags there is no publisher
//! and the tick does nothing more than before. When a worker
//! stops, its final statistics are published too, so a scrape or the last
//! log interval after shutdown counts every request.
//!
//! Prefork workers are processes: each one publishes into a one-slot
//! [`Live`] of its own, and its signal thread sends the slot to the master
//! as a snapshot frame over the worker's pipe (see `prefork.rs`); the
//! master keeps the latest snapshot per worker in its own [`Live`]. When a
//! worker process dies, [`Live::retire`] moves its last snapshot into the
//! slot's retired part, so counters and histograms only grow across
//! restarts.
//!
//! # Readers
//!
//! - [`Live::prometheus`] merges every slot (histogram `add`, counters
//!   summed) and renders [`crate::stats::prometheus_text`] with prefix
//!   `okring` plus the gauges `okring_connections_active` (accepted −
//!   closed), `okring_workers` and `okring_uptime_seconds`.
//! - [`spawn_metrics_thread`] answers `GET /metrics` on its own thread, one
//!   connection at a time (thread modes); [`answer_one`] answers one
//!   accepted connection (the prefork master calls it from its poll loop,
//!   because the master stays single-threaded so that it can fork).
//! - [`HlogRecorder`] writes one interval per worker (`Tag=worker<i>`)
//!   every `--interval`: the difference of the worker's consecutive
//!   cumulative snapshots ([`Histogram::subtract`]). Interval edges are
//!   therefore as precise as the publish interval (≤ 100 ms late).
//!
//! It does not record anything on the request path, and the endpoint does
//! not keep connections alive or speak TLS.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use hdrhistogram::Histogram;

use crate::http::{read_request_head, Limits, RequestHead, Status};
use crate::stats::{prometheus_text, HlogWriter, WorkerStats};

/// Shortest time between two snapshots of one worker, ns (100 ms).
pub const PUBLISH_INTERVAL_NS: u64 = 100_000_000;
/// Largest request head the metrics endpoint reads, bytes.
pub const METRICS_MAX_HEAD_BYTES: usize = 8192;
/// How long the metrics thread waits for a scraper's request, ms.
pub const METRICS_THREAD_IO_TIMEOUT_MS: u64 = 2000;
/// `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Metric name prefix of everything okring exports.
pub const METRICS_PREFIX: &str = "okring";

/// One worker slot: what earlier incarnations of the worker (prefork
/// restarts) left, plus the current incarnation's latest snapshot.
#[derive(Default)]
struct Slot {
    retired: WorkerStats,
    current: WorkerStats,
    /// Bumped on every publish.
    version: u64,
}

/// The latest statistics of every worker of one server, shared between the
/// workers (writers) and the metrics endpoint and interval log (readers).
pub struct Live {
    started: Instant,
    slots: Vec<Mutex<Slot>>,
}

/// Lock a mutex, taking over a poisoned one (a panicking worker cannot
/// leave a slot half-written: slots are replaced whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Live {
    /// `workers` empty slots; uptime counts from now.
    pub fn new(workers: usize) -> Arc<Live> {
        Arc::new(Live {
            started: Instant::now(),
            slots: (0..workers).map(|_| Mutex::new(Slot::default())).collect(),
        })
    }

    /// Number of worker slots.
    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// Replace worker `id`'s current snapshot with `s` (cumulative since
    /// that worker process or thread started). Out-of-range ids are ignored.
    pub fn publish(&self, id: usize, s: &WorkerStats) {
        let Some(slot) = self.slots.get(id) else {
            return;
        };
        let snap = s.clone();
        let old = {
            let mut g = lock(slot);
            g.version += 1;
            std::mem::replace(&mut g.current, snap)
        };
        drop(old);
    }

    /// Worker `id`'s process ended: fold its last snapshot into the slot's
    /// retired part, so a replacement starting from zero adds to it. The
    /// kernel closed whatever connections the process still held, so they
    /// count as closed (`conns_closed` raised to `conns_accepted`).
    pub fn retire(&self, id: usize) {
        let Some(slot) = self.slots.get(id) else {
            return;
        };
        let mut g = lock(slot);
        let mut cur = std::mem::take(&mut g.current);
        let c = &mut cur.counters;
        c.conns_closed = c.conns_closed.max(c.conns_accepted);
        g.retired.merge(&cur);
        g.version += 1;
    }

    /// How many times worker `id`'s slot changed (0 for an unknown id).
    pub fn version(&self, id: usize) -> u64 {
        self.slots.get(id).map_or(0, |s| lock(s).version)
    }

    /// Worker `id`'s current incarnation's latest snapshot.
    pub fn current(&self, id: usize) -> Option<WorkerStats> {
        self.slots.get(id).map(|s| lock(s).current.clone())
    }

    /// Everything worker slot `id` has counted (retired + current);
    /// `None` for an unknown id.
    pub fn worker_total(&self, id: usize) -> Option<WorkerStats> {
        let slot = self.slots.get(id)?;
        let g = lock(slot);
        let mut t = g.retired.clone();
        t.merge(&g.current);
        Some(t)
    }

    /// All slots merged (histogram `add`, counters summed).
    pub fn total(&self) -> WorkerStats {
        let mut t = WorkerStats::new();
        for s in &self.slots {
            let g = lock(s);
            t.merge(&g.retired);
            t.merge(&g.current);
        }
        t
    }

    /// Seconds since [`Live::new`].
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The Prometheus 0.0.4 exposition of [`Live::total`] (module docs
    /// list the metrics).
    pub fn prometheus(&self) -> String {
        let t = self.total();
        let c = &t.counters;
        let active = c.conns_accepted.saturating_sub(c.conns_closed) as f64;
        let mut out = String::with_capacity(8192);
        prometheus_text(
            &mut out,
            METRICS_PREFIX,
            c,
            &t.service_ns,
            &[
                (
                    "connections_active",
                    "Connections open now (accepted minus closed, as of the workers' last snapshots).",
                    active,
                ),
                ("workers", "Worker threads or processes serving.", self.workers() as f64),
                (
                    "uptime_seconds",
                    "Seconds since the server started.",
                    self.uptime().as_secs_f64(),
                ),
            ],
        );
        out
    }
}

/// A worker's handle on its slot: copies the worker's statistics into it,
/// at most every [`PUBLISH_INTERVAL_NS`].
pub struct Publisher {
    live: Arc<Live>,
    id: usize,
    last_ns: Option<u64>,
}

impl Publisher {
    /// Publish into slot `id` of `live`.
    pub fn new(live: Arc<Live>, id: usize) -> Publisher {
        Publisher {
            live,
            id,
            last_ns: None,
        }
    }

    /// Publish `s` if the last publish is at least [`PUBLISH_INTERVAL_NS`]
    /// before `now_ns` (any monotonic ns clock of the calling worker).
    pub fn tick(&mut self, now_ns: u64, s: &WorkerStats) {
        if self
            .last_ns
            .is_none_or(|t| now_ns.saturating_sub(t) >= PUBLISH_INTERVAL_NS)
        {
            self.last_ns = Some(now_ns);
            self.live.publish(self.id, s);
        }
    }

    /// Publish `s` now (the worker's final statistics).
    pub fn publish_now(&mut self, s: &WorkerStats) {
        self.live.publish(self.id, s);
    }
}

/// Bind the metrics listener on `addr` (port 0 picks one). Errors: one
/// line naming the address and the cause.
pub fn bind_metrics(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| {
        format!("cannot bind --metrics {addr}: {e} (choose another port, or port 0 for any)")
    })
}

/// Print the `metrics on http://ADDR/metrics` line for `l` to stderr.
pub fn announce(l: &TcpListener) {
    if let Ok(a) = l.local_addr() {
        crate::say!("okring: metrics on http://{a}/metrics");
    }
}

/// Serve `GET /metrics` from `live` on a thread of its own, one connection
/// at a time, until the process exits. Errors: the thread cannot start.
pub fn spawn_metrics_thread(listener: TcpListener, live: Arc<Live>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("okring-metrics".into())
        .spawn(move || {
            let t = Duration::from_millis(METRICS_THREAD_IO_TIMEOUT_MS);
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => answer_one(s, t, || live.prometheus()),
                    // EMFILE and friends: do not spin.
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the metrics thread: {e}"))
}

/// What the metrics listener answers to one request.
enum MetricsReply {
    /// `GET`/`HEAD /metrics` (query ignored): 200 with the exposition text.
    Metrics { head_only: bool },
    /// Another method on `/metrics`: 405 with `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// Another path: 404.
    NotFound,
    /// A head the request framer refuses (400, 414, 431, 501, ...).
    Invalid(Status),
}

impl MetricsReply {
    fn route(method: &str, target: &str) -> MetricsReply {
        let path = target.split('?').next().unwrap_or("");
        match (path, method) {
            ("/metrics", "GET") => MetricsReply::Metrics { head_only: false },
            ("/metrics", "HEAD") => MetricsReply::Metrics { head_only: true },
            ("/metrics", _) => MetricsReply::MethodNotAllowed,
            _ => MetricsReply::NotFound,
        }
    }

    /// (status code, reason phrase).
    fn status(&self) -> (u16, &'static str) {
        match self {
            MetricsReply::Metrics { .. } => (200, "OK"),
            MetricsReply::MethodNotAllowed => (405, "Method Not Allowed"),
            MetricsReply::NotFound => (404, "Not Found"),
            MetricsReply::Invalid(s) => (s.code(), s.reason()),
        }
    }
}

/// Answer one HTTP/1.1 exchange on `s` and close it: the request head is
/// read by [`crate::http::read_request_head`] (the request framer's rules,
/// head cap [`METRICS_MAX_HEAD_BYTES`]); `GET` or `HEAD` `/metrics` (query
/// ignored) → 200 with `render()`'s text and [`METRICS_CONTENT_TYPE`];
/// another method on `/metrics` → 405; any other path → 404; a head the
/// framer refuses → its status (400, 414, 431, ...). Every response
/// carries `Connection: close`. `io_timeout` bounds each read and write; a
/// peer that sends nothing in time gets no answer. Errors are not reported
/// (the scraper sees the connection close).
pub fn answer_one(mut s: TcpStream, io_timeout: Duration, render: impl FnOnce() -> String) {
    let _ = s.set_read_timeout(Some(io_timeout));
    let _ = s.set_write_timeout(Some(io_timeout));
    let limits = Limits {
        max_head_bytes: METRICS_MAX_HEAD_BYTES,
        ..Limits::default()
    };
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let reply = loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match read_request_head(&buf, &limits) {
            RequestHead::Partial => {}
            RequestHead::Complete { method, target } => {
                break MetricsReply::route(&method, &target)
            }
            RequestHead::Invalid(status) => break MetricsReply::Invalid(status),
        }
    };
    let (code, reason) = reply.status();
    let (ctype, body, head_only) = match reply {
        MetricsReply::Metrics { head_only } => (METRICS_CONTENT_TYPE, render(), head_only),
        MetricsReply::MethodNotAllowed => (TEXT, "only GET and HEAD\n".to_string(), false),
        MetricsReply::NotFound => (TEXT, "not found: try /metrics\n".to_string(), false),
        MetricsReply::Invalid(_) => (TEXT, format!("{}\n", reason.to_lowercase()), false),
    };
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut resp = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len(),
    )
    .into_bytes();
    if !head_only {
        resp.extend_from_slice(body.as_bytes());
    }
    let _ = s.write_all(&resp);
    let _ = s.shutdown(std::net::Shutdown::Write);
    // Let the peer read the response before the close, so unread request
    // bytes do not turn our FIN into a reset.
    let _ = s.read(&mut chunk);
}

/// Content type of the listener's error and 404/405 bodies.
const TEXT: &str = "text/plain; charset=utf-8";

/// The server-side interval log of `--hlog` (module docs).
pub struct HlogRecorder {
    w: HlogWriter<BufWriter<File>>,
    origin: Instant,
    interval: Duration,
    /// End of the last interval written, from `origin`.
    last: Duration,
    /// Each worker's cumulative histogram at the end of the last interval.
    prev: Vec<Histogram<u64>>,
}

impl HlogRecorder {
    /// Create `path` and write the log header; intervals of `interval`
    /// follow for `workers` workers. Errors: the file cannot be created.
    pub fn create(path: &Path, interval: Duration, workers: usize) -> Result<Self, String> {
        let f = File::create(path).map_err(|e| {
            format!(
                "cannot create --hlog {}: {e} (check the directory exists and is writable)",
                path.display()
            )
        })?;
        let w = HlogWriter::new(BufWriter::new(f), SystemTime::now())
            .map_err(|e| format!("writing --hlog {}: {e}", path.display()))?;
        Ok(HlogRecorder {
            w,
            origin: Instant::now(),
            interval,
            last: Duration::ZERO,
            prev: (0..workers)
                .map(|_| crate::stats::new_histogram())
                .collect(),
        })
    }

    /// When the next interval is due.
    pub fn next_due(&self) -> Instant {
        self.origin + self.last + self.interval
    }

    /// Write the interval from the end of the last one to now: first an
    /// untagged line with every worker's requests (what HdrHistogram's
    /// `HistogramLogProcessor` reads by default), then one line per worker
    /// (`Tag=worker<i>`), empty intervals included. Errors: the file's.
    pub fn write_interval(&mut self, live: &Live) -> Result<(), String> {
        let now = self.origin.elapsed();
        let len = now.saturating_sub(self.last);
        let mut lines = Vec::with_capacity(self.prev.len());
        let mut all = crate::stats::new_histogram();
        for (id, prev) in self.prev.iter_mut().enumerate() {
            let Some(total) = live.worker_total(id) else {
                continue;
            };
            let cur = total.service_ns;
            let mut delta = cur.clone();
            // Snapshots are cumulative, so each bucket only grows; if a
            // histogram ever did shrink, the whole snapshot is logged.
            if delta.subtract(&*prev).is_err() {
                delta = cur.clone();
            }
            // Cannot fail: every worker's histogram has the same bounds.
            let _ = all.add(&delta);
            lines.push((format!("worker{id}"), delta));
            *prev = cur;
        }
        self.w
            .write_interval(None, self.last, len, &all)
            .map_err(|e| format!("writing --hlog: {e}"))?;
        for (tag, delta) in &lines {
            self.w
                .write_interval(Some(tag), self.last, len, delta)
                .map_err(|e| format!("writing --hlog: {e}"))?;
        }
        self.last = now;
        self.w.flush().map_err(|e| format!("writing --hlog: {e}"))
    }

    /// Write the final (partial) interval and flush. Call after every
    /// worker's final statistics are published.
    pub fn finish(mut self, live: &Live) -> Result<(), String> {
        self.write_interval(live)?;
        self.w
            .into_inner()
            .into_inner()
            .map_err(|e| format!("writing --hlog: {}", e.error()))?
            .sync_all()
            .map_err(|e| format!("writing --hlog: {e}"))
    }

    /// Write intervals on a thread of its own until the returned
    /// [`HlogThread`] is stopped.
    pub fn spawn(self, live: Arc<Live>) -> Result<HlogThread, String> {
        let (tx, rx) = bounded::<()>(1);
        let handle = std::thread::Builder::new()
            .name("okring-hlog".into())
            .spawn(move || {
                let mut rec = self;
                loop {
                    let wait = rec.next_due().saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => rec.write_interval(&live)?,
                        _ => return Ok(rec),
                    }
                }
            })
            .map_err(|e| format!("cannot start the hlog thread: {e}"))?;
        Ok(HlogThread { tx, handle })
    }
}

/// A running [`HlogRecorder::spawn`] thread.
pub struct HlogThread {
    tx: Sender<()>,
    handle: JoinHandle<Result<HlogRecorder, String>>,
}

impl HlogThread {
    /// Stop the thread and take the recorder back (for
    /// [`HlogRecorder::finish`]). Errors: a write error the thread hit.
    pub fn stop(self) -> Result<HlogRecorder, String> {
        let _ = self.tx.send(());
        self.handle
            .join()
            .map_err(|_| "the hlog thread panicked".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{read_hlog, record_ns};

    fn stats(reqs: u64, values: &[u64]) -> WorkerStats {
        let mut s = WorkerStats::new();
        s.counters.requests = reqs;
        s.counters.conns_accepted = reqs + 1;
        for &v in values {
            record_ns(&mut s.service_ns, v, 1);
        }
        s
    }

    #[test]
    fn retire_keeps_totals_growing() {
        let live = Live::new(2);
        live.publish(0, &stats(3, &[1000, 2000, 3000]));
        live.publish(1, &stats(1, &[5000]));
        assert_eq!(live.total().counters.requests, 4);
        live.retire(0);
        // stats(3, ..) accepted 4 and closed none: the process's death closed them.
        assert_eq!(
            live.worker_total(0).map(|s| s.counters.conns_closed),
            Some(4)
        );
        // The replacement starts from zero; the total must not drop.
        live.publish(0, &stats(1, &[7000]));
        let t = live.total();
        assert_eq!(t.counters.requests, 5);
        assert_eq!(t.service_ns.len(), 5);
        assert_eq!(live.worker_total(0).map(|s| s.service_ns.len()), Some(4));
    }

    #[test]
    fn publisher_rate_limits() {
        let live = Live::new(1);
        let mut p = Publisher::new(live.clone(), 0);
        p.tick(0, &stats(1, &[]));
        p.tick(PUBLISH_INTERVAL_NS - 1, &stats(2, &[]));
        assert_eq!(live.total().counters.requests, 1);
        p.tick(PUBLISH_INTERVAL_NS, &stats(3, &[]));
        assert_eq!(live.total().counters.requests, 3);
        p.publish_now(&stats(4, &[]));
        assert_eq!(live.total().counters.requests, 4);
    }

    #[test]
    fn prometheus_has_gauges() {
        let live = Live::new(3);
        live.publish(2, &stats(2, &[1000, 1000]));
        let text = live.prometheus();
        assert!(text.contains("\nokring_requests_total 2\n"), "{text}");
        assert!(text.contains("\nokring_service_time_seconds_count 2\n"));
        assert!(text.contains("\nokring_connections_active 3\n"));
        assert!(text.contains("\nokring_workers 3\n"));
        assert!(text.contains("# TYPE okring_uptime_seconds gauge\n"));
    }

    #[test]
    fn hlog_intervals_are_differences() {
        let dir = std::env::temp_dir().join(format!("okring-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.hlog");
        let live = Live::new(2);
        let mut rec = HlogRecorder::create(&path, Duration::from_secs(1), 2).unwrap();
        live.publish(0, &stats(2, &[1000, 2000]));
        rec.write_interval(&live).unwrap();
        live.publish(0, &stats(3, &[1000, 2000, 9000]));
        live.publish(1, &stats(1, &[4000]));
        rec.finish(&live).unwrap();
        let ivs = read_hlog(File::open(&path).unwrap()).unwrap();
        let counts: Vec<(String, u64)> = ivs
            .iter()
            .map(|i| (i.tag.clone().unwrap_or_default(), i.hist.len()))
            .collect();
        assert_eq!(
            counts,
            [
                (String::new(), 2),
                ("worker0".to_string(), 2),
                ("worker1".to_string(), 0),
                (String::new(), 2),
                ("worker0".to_string(), 1),
                ("worker1".to_string(), 1),
            ]
        );
        assert_eq!(ivs[4].hist.max(), ivs[4].hist.highest_equivalent(9000));
        assert_eq!(
            ivs[3].hist.max(),
            ivs[3].hist.highest_equivalent(9000),
            "the aggregate"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoint_answers_and_rejects() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let live = Live::new(1);
        spawn_metrics_thread(l, live).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(ok.contains("Connection: close\r\n"));
        assert!(ok.contains("okring_requests_total 0\n"));
        let nf = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(nf.starts_with("HTTP/1.1 404 "), "{nf}");
        let na = get("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert!(na.starts_with("HTTP/1.1 405 "), "{na}");
        let head = get("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }
}
