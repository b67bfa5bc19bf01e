//! What a run of `okring load` measured ([`LoadResult`], [`ErrorCounts`])
//! and its text, `.hgrm`, `.hlog` and JSON renderings.

use std::io::Write;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde_json::json;

use super::config::LoadConfig;
use crate::config::EventLoop as Engine;
use crate::stats::{self, fmt_ns};

/// A send that starts more than this after its intended time is a late
/// send (open loop), ns.
pub const LATE_SEND_THRESHOLD_NS: u64 = 1_000_000;

/// Errors by kind, each a count of events in the measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCounts {
    /// Failed or timed-out connects (each retried after 10 ms).
    pub connect: u64,
    /// Connections that failed (a reset) or ended inside a response.
    pub read: u64,
    /// Failed sends.
    pub write: u64,
    /// Responses with a status outside 200–399 (also counted in
    /// `requests`; wrk's rule).
    pub status: u64,
    /// Requests unanswered after `timeout` (each also a latency sample).
    pub timeout: u64,
    /// Malformed, unsupported or unsolicited responses.
    pub parse: u64,
    /// Requests outstanding when their connection ended before answering
    /// them (the server's close behind pipelined requests, a reset, a
    /// malformed response, a failed send): each one counted, never dropped.
    pub unanswered: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect
            + self.read
            + self.write
            + self.status
            + self.timeout
            + self.parse
            + self.unanswered
    }

    pub(crate) fn add(&mut self, o: &ErrorCounts) {
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.status += o.status;
        self.timeout += o.timeout;
        self.parse += o.parse;
        self.unanswered += o.unanswered;
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
    /// Responses (any status) to requests sent in the measured window.
    pub requests: u64,
    /// Requests sent in the measured window. A request belongs to the
    /// window by its send time, whenever its answer comes, so
    /// `sent = requests + errors.timeout + errors.unanswered + unfinished`
    /// holds exactly ([`LoadResult::accounted`]).
    pub sent: u64,
    /// Requests of the window still outstanding when the run ended (the
    /// drain gives each up to `--timeout`; normally 0).
    pub unfinished: u64,
    /// Interim (1xx) responses received before final ones (RFC 9110
    /// §15.2); skipped, not counted in `requests`.
    pub interim_responses: u64,
    /// Final responses by status code.
    pub statuses: std::collections::BTreeMap<u16, u64>,
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
    /// `--shard I/N` of this run, if any.
    pub shard: Option<(usize, usize)>,
    /// With `--start-at`: how far the window's start was from it, s
    /// (positive: late).
    pub start_offset_s: Option<f64>,
    /// This machine's host name (/proc/sys/kernel/hostname).
    pub host: String,
    /// One-line notices: engine fallback, an open loop that could not keep its rate.
    pub warnings: Vec<String>,
}

impl LoadResult {
    /// Whether every request sent in the window is accounted for: answered,
    /// timed out, unanswered, or unfinished.
    pub fn accounted(&self) -> bool {
        self.sent == self.requests + self.errors.timeout + self.errors.unanswered + self.unfinished
    }

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
            "  Errors: connect {}, read {}, write {}, status {}, timeout {}, parse {}, unanswered {}\n",
            e.connect, e.read, e.write, e.status, e.timeout, e.parse, e.unanswered
        );
        s += &format!(
            "  Sent {} = {} answered + {} timed out + {} unanswered + {} unfinished\n",
            self.sent, self.requests, e.timeout, e.unanswered, self.unfinished
        );
        let codes: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        if !codes.is_empty() {
            s += &format!("  Status codes: {}\n", codes.join(", "));
        }
        if self.interim_responses > 0 {
            s += &format!(
                "  Interim (1xx) responses skipped: {}\n",
                self.interim_responses
            );
        }
        if let Some(off) = self.start_offset_s {
            s += &format!(
                "  Window started {:.3} ms {} --start-at\n",
                off.abs() * 1e3,
                if off >= 0.0 { "after" } else { "before" }
            );
        }
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
                "addrs": cfg.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "connections": cfg.connections,
                "threads": cfg.threads,
                "duration_s": cfg.duration.as_secs_f64(),
                "warmup_s": cfg.warmup.as_secs_f64(),
                "rate": cfg.rate,
                "spin_us": cfg.rate.map(|_| cfg.spin.as_secs_f64() * 1e6),
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
                "start_unix_ns": self.started.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
                "start_offset_s": self.start_offset_s,
                "host": self.host,
                "shard": self.shard.map(|(i, n)| format!("{i}/{n}")),
                "sent": self.sent,
                "unfinished": self.unfinished,
                "interim_responses": self.interim_responses,
                "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
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
        log.comment(&format!("Host: {}", self.host))?;
        if let Some((i, n)) = self.shard {
            log.comment(&format!("Shard: {i}/{n}"))?;
        }
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
