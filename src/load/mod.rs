//! The load generator (`okring load`): HTTP/1.1 GET load against one URL,
//! closed loop (each connection sends its next request, or batch of
//! pipelined requests, as soon as the previous one is answered — wrk's
//! model) or open loop at a fixed total rate (wrk2's model, with latency
//! corrected for coordinated omission).
//!
//! Layout:
//! - this file: arguments, configuration, the run (threads, merge), the
//!   result and its text / `.hgrm` / `.hlog` / JSON outputs;
//! - `worker.rs`: one thread's connections, schedule and recorders;
//! - `uring.rs`, `epoll.rs`: the two I/O engines behind one trait;
//! - responses are framed by [`crate::http::response::ResponseFramer`]
//!   (1xx interim responses, Content-Length, chunked, close-delimited);
//!   sockets and the clock are [`crate::sys::net`].
//!
//! It does not speak TLS, HTTP/2 or redirects, and sends only to the
//! address given (no DNS beyond `localhost`).

mod epoll;
mod uring;
mod worker;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use clap::builder::TypedValueParser as _;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::config::parse_duration;
use crate::stats::{self, fmt_ns, new_histogram};
use crate::sys::net as os;
use worker::{Core, Plan, StartGate, ThreadOut};

pub use worker::LATE_SEND_THRESHOLD_NS;

/// Most load threads accepted.
const MAX_THREADS: usize = 1024;
/// Most pipelined requests per batch accepted.
const MAX_PIPELINE: u32 = 1024;
/// How often `run` reports progress, ms.
const PROGRESS_EVERY_MS: u64 = 100;

/// I/O engine of the load threads: the one "uring or epoll" choice of
/// the crate ([`EventLoop`]). `Uring`: one io_uring per thread, all of an
/// iteration's sends and receives in one io_uring_enter (falls back to
/// epoll, with a notice, if no ring can be set up); `Epoll`: one epoll
/// instance per thread, nonblocking sockets.
pub use crate::config::EventLoop as Engine;

/// Arguments of `okring load`, as typed.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target URL: http://HOST:PORT/PATH with HOST an IPv4 literal, [IPv6] literal or localhost.
    pub url: String,
    /// Connections kept open, spread over the threads.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Load threads, each with its own ring (or epoll) and connections.
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Length of the measured window (humantime, e.g. 10s, 1m).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up run before the measured window; its samples are discarded.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: total requests per second (fractional allowed) on a fixed
    /// schedule; latency is measured from each request's intended send time.
    #[arg(long, short = 'R')]
    pub rate: Option<f64>,
    /// Requests sent per batch on a connection (closed loop only).
    #[arg(long, default_value_t = 1)]
    pub pipeline: u32,
    /// A request unanswered this long is a timeout: counted, recorded at its
    /// full elapsed time, and its connection replaced.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Send HTTP/1.0 requests without keep-alive (a new connection per request).
    #[arg(long = "http1.0")]
    pub http10: bool,
    /// Send `Connection: close` (a new connection per request).
    #[arg(long)]
    pub close: bool,
    /// I/O engine: `uring` (one io_uring per thread, all of an iteration's
    /// sends and receives in one io_uring_enter; falls back to epoll, with a
    /// notice, if no ring can be set up) or `epoll` (one epoll instance per
    /// thread, nonblocking sockets).
    #[arg(long, default_value = "uring", value_parser = clap::builder::PossibleValuesParser::new(["uring", "epoll"]).map(|s| s.parse::<Engine>().expect("a listed value")))]
    pub engine: Engine,
    /// Write configuration, results and histograms as JSON (schema okring.load/1).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the latency histogram as HdrHistogram percentile text (.hgrm, ms).
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (.hlog) with one histogram per --interval.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Length of each interval of --hlog.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Pin load thread i to the (i mod n)-th CPU of this list, e.g. 0,2-3.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
}

/// Parse a CPU list such as `0,2-3,8` (the taskset(1) list format).
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not a CPU number or range (write e.g. 0,2-3)");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b >= crate::sys::CPU_SETSIZE {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => {
                let c: usize = part.parse().map_err(|_| bad())?;
                if c >= crate::sys::CPU_SETSIZE {
                    return Err(bad());
                }
                cpus.push(c);
            }
        }
    }
    if cpus.is_empty() {
        return Err("empty CPU list (write e.g. 0,2-3)".into());
    }
    Ok(cpus)
}

/// A parsed target URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// Value of the `Host` header: the URL's authority as written.
    pub host_header: String,
    /// Request target (origin form), starting with `/`.
    pub path: String,
}

/// Parse `http://HOST[:PORT][/PATH]` (RFC 9110 §4.2.1); HOST is an IPv4
/// literal, a bracketed IPv6 literal, or `localhost` (127.0.0.1). PORT
/// defaults to 80, PATH to `/`. Errors are one line naming the fix.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        if url.starts_with("https://") {
            return Err(format!(
                "{url}: https is not supported (okring load speaks plain HTTP/1.1); use http://"
            ));
        }
        return Err(format!(
            "{url}: not an http:// URL; write e.g. http://127.0.0.1:8080/"
        ));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.contains('@') {
        return Err(format!(
            "{url}: user info is not supported; remove the user@ part"
        ));
    }
    let bad_host = || {
        format!(
            "{url}: host must be an IPv4 literal, [IPv6] literal or localhost \
             (no DNS); write e.g. http://127.0.0.1:8080/"
        )
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or_else(bad_host)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad_host())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (ip, port)
    } else {
        let (h, p) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let ip = if h.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V4(h.parse().map_err(|_| bad_host())?)
        };
        (ip, p)
    };
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{url}: port must be 1..65535"))?,
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "{url}: the path contains spaces or control characters; percent-encode them"
        ));
    }
    Ok(Target {
        addr: SocketAddr::new(host, port),
        host_header: authority.to_string(),
        path,
    })
}

/// Configuration of one load run (validated by [`run`]).
pub struct LoadConfig {
    /// The URL as given, for reports.
    pub url: String,
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host_header: String,
    /// Request target, starting with `/`.
    pub path: String,
    /// Connections in all, ≥ `threads`.
    pub connections: usize,
    /// Load threads, 1..=1024.
    pub threads: usize,
    /// Measured window.
    pub duration: Duration,
    /// Warm-up before the measured window (may be zero).
    pub warmup: Duration,
    /// Open loop: total requests/s (finite, > 0). `None`: closed loop.
    pub rate: Option<f64>,
    /// Requests per batch, 1..=1024; must be 1 in open loop and with `close`/`http10`.
    pub pipeline: u32,
    /// Request timeout (> 0).
    pub timeout: Duration,
    /// Send `HTTP/1.0` requests (no keep-alive).
    pub http10: bool,
    /// Send `Connection: close`.
    pub close: bool,
    pub engine: Engine,
    /// Pin thread i to `cpus[i % len]`; empty: no pinning.
    pub cpus: Vec<usize>,
    /// Keep a histogram per interval of this length (`LoadResult::intervals`).
    pub interval: Option<Duration>,
    /// Called about every 100 ms from the calling thread with the fraction
    /// (0.0..=1.0) of warm-up + duration elapsed.
    pub progress: Option<Box<dyn Fn(f64) + Send + Sync>>,
}

impl LoadConfig {
    /// A closed-loop configuration for `url` with the CLI's defaults.
    pub fn new(url: &str) -> Result<LoadConfig, String> {
        let t = parse_url(url)?;
        Ok(LoadConfig {
            url: url.to_string(),
            addr: t.addr,
            host_header: t.host_header,
            path: t.path,
            connections: 64,
            threads: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            rate: None,
            pipeline: 1,
            timeout: Duration::from_secs(2),
            http10: false,
            close: false,
            engine: Engine::Uring,
            cpus: Vec::new(),
            interval: None,
            progress: None,
        })
    }

    /// Check every field; the error is one line naming the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(format!(
                "--threads {}: must be between 1 and {MAX_THREADS}",
                self.threads
            ));
        }
        if self.connections < self.threads {
            return Err(format!(
                "--connections {} is less than --threads {}: every thread needs a connection; \
                 raise --connections or lower --threads",
                self.connections, self.threads
            ));
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return Err(format!(
                "--pipeline {}: must be between 1 and {MAX_PIPELINE}",
                self.pipeline
            ));
        }
        if self.duration.is_zero() {
            return Err("--duration must be greater than zero".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be greater than zero".into());
        }
        if self.interval.is_some_and(|i| i < Duration::from_millis(1)) {
            return Err("--interval must be at least 1ms".into());
        }
        if self.duration + self.warmup > Duration::from_secs(365 * 86400) {
            return Err("--duration + --warmup must be under a year".into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "--rate {r}: must be a positive number of requests/s"
                ));
            }
            if self.pipeline > 1 {
                return Err(
                    "--pipeline with --rate is not supported: the open loop sends one \
                            request per connection at a time; raise --connections instead"
                        .into(),
                );
            }
        }
        if (self.close || self.http10) && self.pipeline > 1 {
            return Err(
                "--pipeline > 1 with --close or --http1.0 is not possible: the server \
                        closes after the first response; drop one of them"
                    .into(),
            );
        }
        let bad = |s: &str| s.bytes().any(|b| b < b' ' || b == 0x7f);
        if self.path.is_empty() || !self.path.starts_with('/') || bad(&self.path) {
            return Err(format!(
                "path {:?}: must start with / and have no control characters",
                self.path
            ));
        }
        if bad(&self.host_header) {
            return Err("Host header has control characters".into());
        }
        Ok(())
    }

    /// The exact bytes of one request.
    pub fn request_bytes(&self) -> Vec<u8> {
        let version = if self.http10 { "1.0" } else { "1.1" };
        let mut r = format!(
            "GET {} HTTP/{version}\r\nHost: {}\r\n",
            self.path, self.host_header
        );
        if self.close && !self.http10 {
            r.push_str("Connection: close\r\n");
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    fn mode_text(&self) -> String {
        match self.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None if self.pipeline > 1 => format!("closed loop, pipeline {}", self.pipeline),
            None => "closed loop".into(),
        }
    }
}

impl LoadArgs {
    /// Resolve into a [`LoadConfig`]; errors are one line naming the fix.
    pub fn resolve(&self) -> Result<LoadConfig, String> {
        let mut cfg = LoadConfig::new(&self.url)?;
        cfg.connections = self.connections;
        cfg.threads = self.threads;
        cfg.duration = self.duration;
        cfg.warmup = self.warmup;
        cfg.rate = self.rate;
        cfg.pipeline = self.pipeline;
        cfg.timeout = self.timeout;
        cfg.http10 = self.http10;
        cfg.close = self.close;
        cfg.engine = self.engine;
        cfg.cpus = match &self.cpus {
            Some(list) => parse_cpus(list).map_err(|e| format!("--cpus: {e}"))?,
            None => Vec::new(),
        };
        cfg.interval = Some(self.interval);
        cfg.validate()?;
        if self.hlog.is_some() && self.interval.is_zero() {
            return Err("--hlog needs a non-zero --interval".into());
        }
        Ok(cfg)
    }
}

/// Errors by kind, each a count of events in the measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCounts {
    /// Failed or timed-out connects (each retried after 10 ms).
    pub connect: u64,
    /// Connections that failed or hit EOF while responses were outstanding.
    pub read: u64,
    /// Failed sends.
    pub write: u64,
    /// Responses with a status other than 200 (also counted in `requests`).
    pub status: u64,
    /// Requests unanswered after `timeout` (each also a latency sample).
    pub timeout: u64,
    /// Malformed, unsupported or unsolicited responses.
    pub parse: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout + self.parse
    }

    fn add(&mut self, o: &ErrorCounts) {
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.status += o.status;
        self.timeout += o.timeout;
        self.parse += o.parse;
    }
}

/// The outcome of [`run`]. All latency values are ns.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// The URL as configured.
    pub url: String,
    /// What ran: "closed loop", "open loop at R req/s", ...
    pub mode: String,
    pub connections: usize,
    pub threads: usize,
    /// Engine actually used (uring may have fallen back to epoll).
    pub engine: Engine,
    /// Open-loop rate, requests/s.
    pub rate: Option<f64>,
    /// Responses received, framed and checked in the measured window (any status).
    pub requests: u64,
    /// From the start of the measured window until its last outstanding
    /// response arrived or timed out (≥ the configured duration).
    pub elapsed: Duration,
    pub errors: ErrorCounts,
    /// Closed loop: batch send → response. Open loop: intended send →
    /// response (coordinated-omission corrected). Count = `requests` +
    /// `errors.timeout`.
    pub latency_ns: Histogram<u64>,
    /// Open loop: actual send → response.
    pub uncorrected_ns: Option<Histogram<u64>>,
    /// Open loop: actual − intended send time of each request.
    pub schedule_lag_ns: Option<Histogram<u64>>,
    /// Open loop: requests sent more than [`LATE_SEND_THRESHOLD_NS`] (1 ms) late.
    pub late_sends: u64,
    /// Open loop: requests sent in the window.
    pub sends: u64,
    /// `(start offset from the window's start, length, histogram of latency_ns)`
    /// per configured interval.
    pub intervals: Vec<(Duration, Duration, Histogram<u64>)>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Connections replaced (server close, error, timeout, `--close`).
    pub reconnects: u64,
    /// Wall-clock time at the start of the measured window.
    pub started: SystemTime,
    /// One-line notices: engine fallback, an open loop that could not keep its rate.
    pub warnings: Vec<String>,
}

impl LoadResult {
    /// Responses per second over `elapsed`.
    pub fn requests_per_sec(&self) -> f64 {
        self.per_sec(self.requests)
    }

    /// Bytes read per second over `elapsed`.
    pub fn bytes_per_sec(&self) -> f64 {
        self.per_sec(self.bytes_read)
    }

    /// `n` per second over `elapsed`; 0 when no time elapsed.
    fn per_sec(&self, n: u64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }

    /// A wrk-like text report, several lines ending with a newline.
    pub fn summary_text(&self) -> String {
        let mut s = String::new();
        s += &format!("okring load @ {}\n", self.url);
        s += &format!(
            "  {} threads, {} connections, {}, engine {}\n",
            self.threads,
            self.connections,
            self.mode,
            self.engine.name()
        );
        let label = if self.rate.is_some() {
            "Latency (corrected: intended send -> response)"
        } else {
            "Latency (send -> response)"
        };
        s += &latency_block(label, &self.latency_ns);
        if let Some(h) = &self.uncorrected_ns {
            s += &latency_block("Latency (uncorrected: actual send -> response)", h);
        }
        if let Some(h) = &self.schedule_lag_ns {
            s += &latency_block("Schedule lag (actual - intended send)", h);
            s += &format!(
                "  Late sends (> {}): {} of {}\n",
                fmt_ns(LATE_SEND_THRESHOLD_NS),
                self.late_sends,
                self.sends
            );
        }
        s += &format!(
            "  {} requests in {:.2}s, {} read, {} reconnects\n",
            self.requests,
            self.elapsed.as_secs_f64(),
            fmt_bytes(self.bytes_read as f64),
            self.reconnects
        );
        let e = &self.errors;
        s += &format!(
            "  Errors: connect {}, read {}, write {}, status {}, timeout {}, parse {}\n",
            e.connect, e.read, e.write, e.status, e.timeout, e.parse
        );
        s += &format!("Requests/sec: {:.2}\n", self.requests_per_sec());
        s += &format!("Transfer/sec: {}\n", fmt_bytes(self.bytes_per_sec()));
        s
    }

    /// The JSON document of `--json` (schema `okring.load/1`).
    pub fn to_json(&self, cfg: &LoadConfig) -> serde_json::Value {
        let mut hists = serde_json::Map::new();
        hists.insert("latency".into(), stats::hist_json(&self.latency_ns));
        if let Some(h) = &self.uncorrected_ns {
            hists.insert("uncorrected".into(), stats::hist_json(h));
        }
        if let Some(h) = &self.schedule_lag_ns {
            hists.insert("schedule_lag".into(), stats::hist_json(h));
        }
        json!({
            "schema": "okring.load/1",
            "config": {
                "url": cfg.url,
                "addr": cfg.addr.to_string(),
                "connections": cfg.connections,
                "threads": cfg.threads,
                "duration_s": cfg.duration.as_secs_f64(),
                "warmup_s": cfg.warmup.as_secs_f64(),
                "rate": cfg.rate,
                "pipeline": cfg.pipeline,
                "timeout_s": cfg.timeout.as_secs_f64(),
                "http10": cfg.http10,
                "close": cfg.close,
                "engine": cfg.engine.name(),
                "cpus": cfg.cpus,
                "interval_s": cfg.interval.map(|d| d.as_secs_f64()),
            },
            "results": {
                "engine": self.engine.name(),
                "mode": self.mode,
                "requests": self.requests,
                "elapsed_s": self.elapsed.as_secs_f64(),
                "requests_per_sec": self.requests_per_sec(),
                "bytes_read": self.bytes_read,
                "bytes_written": self.bytes_written,
                "reconnects": self.reconnects,
                "errors": self.errors,
                "sends": self.sends,
                "late_sends": self.late_sends,
                "late_send_threshold_ns": LATE_SEND_THRESHOLD_NS,
                "warnings": self.warnings,
            },
            "histograms": hists,
        })
    }

    /// Write `--hgrm` (percentile text of `latency_ns`, values in ms).
    pub fn write_hgrm(&self, w: &mut impl Write) -> std::io::Result<()> {
        stats::write_hgrm(w, &self.latency_ns, 5)
    }

    /// Write `--hlog`: one interval line per entry of `intervals`.
    pub fn write_hlog(&self, w: impl Write) -> std::io::Result<()> {
        let mut log = stats::HlogWriter::new(w, self.started)?;
        for (start, len, h) in &self.intervals {
            log.write_interval(None, *start, *len, h)?;
        }
        log.flush()
    }
}

fn latency_block(label: &str, h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("  {label}: no samples\n");
    }
    let q = |p: f64| fmt_ns(h.value_at_quantile(p));
    format!(
        "  {label}\n    mean {}  stdev {}  max {}\n    p50 {}  p75 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}\n",
        fmt_ns(h.mean() as u64),
        fmt_ns(h.stdev() as u64),
        fmt_ns(h.max()),
        q(0.5),
        q(0.75),
        q(0.9),
        q(0.99),
        q(0.999),
        q(0.9999),
    )
}

fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2}{}", UNITS[i])
}

/// Whether an io_uring with what the engine needs can be set up here; the
/// error says why not (EPERM: `kernel.io_uring_disabled` or seccomp; ENOSYS:
/// no io_uring in this kernel or sandbox).
pub fn probe_uring() -> Result<(), String> {
    let addr = os::RawAddr::new(SocketAddr::from(([127, 0, 0, 1], 1)));
    uring::Uring::new(1, addr, worker::OpBufs::new(Vec::new(), 1))
        .map(|_| ())
        .map_err(|e| crate::sys::uring::setup_error(&e))
}

/// Run the load described by `cfg` and return the merged result.
///
/// Errors (one line): invalid configuration, the target refusing a first
/// probe connection, a thread that could not start its engine or pin
/// itself. Per-request problems are counted in `LoadResult::errors`.
pub fn run(cfg: &LoadConfig) -> Result<LoadResult, String> {
    cfg.validate()?;
    let mut warnings = Vec::new();
    let mut engine = cfg.engine;
    if engine == Engine::Uring {
        if let Err(why) = probe_uring() {
            warnings.push(format!("no io_uring, using the epoll engine: {why}"));
            engine = Engine::Epoll;
        }
    }
    TcpStream::connect_timeout(&cfg.addr, cfg.timeout).map_err(|e| {
        format!(
            "cannot connect to {}: {e}; is the server running and listening there?",
            cfg.addr
        )
    })?;

    let plan = Arc::new(Plan {
        addr: cfg.addr,
        request: cfg.request_bytes(),
        pipeline: cfg.pipeline,
        close_each: cfg.close || cfg.http10,
        total_connections: cfg.connections,
        rate: cfg.rate,
        warmup_ns: cfg.warmup.as_nanos() as u64,
        duration_ns: cfg.duration.as_nanos() as u64,
        timeout_ns: cfg.timeout.as_nanos() as u64,
        interval_ns: cfg.interval.map(|d| (d.as_nanos() as u64).max(1)),
    });
    let gate = Arc::new(StartGate {
        connected: Barrier::new(cfg.threads + 1),
        go: Barrier::new(cfg.threads + 1),
        t0_ns: AtomicU64::new(0),
    });
    let mut handles = Vec::with_capacity(cfg.threads);
    let mut first = 0;
    for i in 0..cfg.threads {
        let n = cfg.connections / cfg.threads + usize::from(i < cfg.connections % cfg.threads);
        let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[i % cfg.cpus.len()]);
        let (plan, gate) = (plan.clone(), gate.clone());
        let h = std::thread::Builder::new()
            .name(format!("okring-load-{i}"))
            .spawn(move || thread_main(&plan, &gate, first, n, cpu, engine))
            .map_err(|e| format!("cannot start load thread: {e}"))?;
        handles.push(h);
        first += n;
    }
    gate.connected.wait();
    let t0 = os::now_ns();
    gate.t0_ns.store(t0, Ordering::Release);
    gate.go.wait();

    let total_ns = (plan.warmup_ns + plan.duration_ns).max(1);
    while !handles.iter().all(|h| h.is_finished()) {
        if let Some(p) = &cfg.progress {
            p(((os::now_ns() - t0) as f64 / total_ns as f64).min(1.0));
        }
        std::thread::sleep(Duration::from_millis(PROGRESS_EVERY_MS));
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

fn thread_main(
    plan: &Plan,
    gate: &StartGate,
    first: usize,
    conns: usize,
    cpu: Option<usize>,
    engine: Engine,
) -> Result<ThreadOut, String> {
    let addr = os::RawAddr::new(plan.addr);
    let pinned = cpu.map_or(Ok(()), |c| {
        crate::sys::pin_current_thread(c).map_err(|e| {
            format!("--cpus: cannot pin to CPU {c}: {e}; pick CPUs this process may use (see taskset -p $$)")
        })
    });
    let mut core = Core::new(plan, first, conns);
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
            match uring::Uring::new(conns, addr, worker::OpBufs::new(plan.batch(), conns)) {
                Ok(mut io) => core.drive(&mut io, gate),
                Err(e) => fail(format!("io_uring setup failed in a load thread: {e}")),
            }
        }
        Engine::Epoll => {
            match epoll::Epoll::new(conns, addr, worker::OpBufs::new(plan.batch(), conns)) {
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
    let mut measure_start = u64::MAX;
    let mut finished = 0;
    for o in &outs {
        // Cannot fail: every histogram has the same bounds.
        let _ = latency.add(&o.latency);
        let _ = uncorrected.add(&o.uncorrected);
        let _ = lag.add(&o.lag);
        errors.add(&o.errors);
        requests += o.requests;
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
            warnings.push(format!(
                "{late} of {sends} requests ({:.1}%) were sent more than {} late: the target \
                 rate was not held; raise --connections (rate x mean latency = {needed:.1} \
                 busy connections needed, {} available) or lower --rate",
                late as f64 * 100.0 / sends as f64,
                fmt_ns(LATE_SEND_THRESHOLD_NS),
                cfg.connections
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
        warnings,
    }
}

fn create(path: &PathBuf) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Run `okring load`: print the summary on stdout, notices on stderr, and
/// write the requested files. Errors are one line naming cause and fix.
pub fn main(args: &LoadArgs) -> Result<(), String> {
    let mut cfg = args.resolve()?;
    if args.hlog.is_none() {
        cfg.interval = None;
    }
    // Open output files first so a bad path fails before the run, not after.
    let mut hgrm = args.hgrm.as_ref().map(create).transpose()?;
    let mut hlog = args.hlog.as_ref().map(create).transpose()?;
    let mut jsonf = args.json.as_ref().map(create).transpose()?;
    let result = run(&cfg)?;
    for w in &result.warnings {
        eprintln!("okring: warning: {w}");
    }
    print!("{}", result.summary_text());
    let io_err = |what: &str, e: std::io::Error| format!("cannot write {what}: {e}");
    if let Some(w) = hgrm.as_mut() {
        result
            .write_hgrm(w)
            .and_then(|_| w.flush())
            .map_err(|e| io_err("--hgrm", e))?;
    }
    if let Some(w) = hlog.take() {
        result.write_hlog(w).map_err(|e| io_err("--hlog", e))?;
    }
    if let Some(w) = jsonf.as_mut() {
        serde_json::to_writer_pretty(&mut *w, &result.to_json(&cfg))
            .map_err(std::io::Error::from)
            .and_then(|_| w.write_all(b"\n"))
            .and_then(|_| w.flush())
            .map_err(|e| io_err("--json", e))?;
    }
    if result.requests == 0 {
        return Err(format!(
            "no responses from {} ({} errors); check the URL and the server",
            cfg.url,
            result.errors.total()
        ));
    }
    Ok(())
}
