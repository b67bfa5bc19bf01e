//! Latency histograms, counters, merging and export formats.
//!
//! Every okring histogram holds nanoseconds (1 ns..60 s, 3 significant digits).
//! This module owns the histogram constructor, the per-worker [`Counters`] and
//! [`WorkerStats`], their merge, and the export formats users feed to other tools:
//!
//! - [`write_hgrm`] / [`read_hgrm`]: HdrHistogram's percentile distribution text
//!   (`.hgrm`), byte-for-byte the layout of Java
//!   `AbstractHistogram.outputPercentileDistribution(out, 5, 1e6)`.
//! - [`HlogWriter`] / [`read_hlog`]: the interval log (`.hlog`) of Java
//!   `HistogramLogWriter`, V2+DEFLATE histograms in standard base64.
//! - [`to_base64_v2_deflate`] / [`from_base64`]: one histogram as base64 text.
//! - [`prometheus_text`]: Prometheus text exposition format 0.0.4.
//! - [`hist_json`] / [`hist_from_json`]: a JSON summary carrying the lossless blob.
//! - [`percentile_summary`] / [`fmt_ns`]: one-line human output.
//! - [`worker_stats_to_bytes`] / [`worker_stats_from_bytes`] /
//!   [`read_worker_stats`]: a length-prefixed frame that carries one worker's
//!   counters and histogram through a pipe (prefork, fork).
//!
//! It does not record anything by itself, read clocks on the hot path, or do
//! any I/O other than writing to / reading from the writers and readers given.

use std::io::{self, Read};

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

mod hgrm;
mod hlog;
mod json;
mod prom;

pub use hgrm::{read_hgrm, write_hgrm, HgrmRow, HgrmSummary};
pub use hlog::{
    from_base64, read_hlog, read_hlog_log, to_base64_v2_deflate, HlogInterval, HlogLog, HlogWriter,
};
pub use json::{hist_from_json, hist_json};
pub use prom::{prometheus_text, PROM_BUCKETS_US};

/// Lowest discernible value of every okring histogram: 1 ns.
pub const HIST_LOW_NS: u64 = 1;
/// Highest trackable value: 60 s in ns.
pub const HIST_HIGH_NS: u64 = 60_000_000_000;
/// Significant decimal digits kept by every histogram.
pub const HIST_SIGFIG: u8 = 3;

/// A new, empty latency histogram in ns (1 ns..60 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_NS, HIST_HIGH_NS, HIST_SIGFIG)
        .expect("static bounds are valid")
}

/// Record `value_ns` (`count` times), saturating at [`HIST_HIGH_NS`] so an
/// out-of-range sample is kept at the top instead of being dropped.
#[inline]
pub fn record_ns(h: &mut Histogram<u64>, value_ns: u64, count: u64) {
    let v = value_ns.clamp(HIST_LOW_NS, HIST_HIGH_NS);
    // Cannot fail: v is within the histogram's bounds.
    let _ = h.record_n(v, count);
}

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// Server counters (http-behaviour.md, "Counters worth keeping").
        /// Each worker owns one; they are merged by adding field by field.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl Counters {
            /// Add every field of `other` into `self`.
            pub fn merge(&mut self, other: &Counters) {
                $( self.$name += other.$name; )*
            }
            /// `(name, help, value)` for every counter, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![ $( (stringify!($name), concat!($($doc),*), self.$name), )* ]
            }
            /// Every counter value, in declaration order.
            pub fn values(&self) -> Vec<u64> {
                vec![ $( self.$name, )* ]
            }
            /// Inverse of [`Counters::values`]; `None` unless `values` holds
            /// exactly one value per counter.
            pub fn from_values(values: &[u64]) -> Option<Counters> {
                let mut it = values.iter().copied();
                let c = Counters { $( $name: it.next()?, )* };
                if it.next().is_some() {
                    return None;
                }
                Some(c)
            }
        }
    };
}

counters! {
    /// Connections accepted.
    conns_accepted,
    /// Connections closed (any reason).
    conns_closed,
    /// Complete requests framed (each gets exactly one response).
    requests,
    /// 200 responses sent.
    responses_200,
    /// 400 Bad Request responses (malformed request line, headers or framing).
    responses_400,
    /// 413 Content Too Large responses (body over the discard limit).
    responses_413,
    /// 414 URI Too Long responses.
    responses_414,
    /// 431 Request Header Fields Too Large responses.
    responses_431,
    /// 501 Not Implemented responses (unsupported transfer coding, CONNECT).
    responses_501,
    /// 505 HTTP Version Not Supported responses (a major version other than 1).
    responses_505,
    /// Connections closed because the header timeout expired.
    timeouts_header,
    /// Connections closed because a request body stalled for the body
    /// timeout or arrived slower than the minimum rate.
    timeouts_body,
    /// Connections closed because the idle keep-alive timeout expired.
    timeouts_idle,
    /// Connections ended by the peer with ECONNRESET or EPIPE.
    resets,
    /// Transient accept errors (ECONNABORTED, EPROTO, EINTR, ...).
    accept_errors,
    /// Times accepting was paused for EMFILE/ENFILE.
    emfile_pauses,
    /// Connections refused because the worker's connection cap was reached.
    conns_refused,
    /// Multishot accept/recv operations re-armed after a CQE without F_MORE.
    multishot_rearms,
    /// Times a recv ended with ENOBUFS (provided buffer ring empty).
    enobufs,
    /// CQ overflow events seen (kernel had to buffer CQEs).
    cq_overflow,
    /// Sends that completed short and were resumed.
    short_sends,
    /// io_uring_enter(2) calls (uring): each submits the queued SQEs and
    /// waits for at least one CQE, or only submits when the SQ is full.
    ring_enters,
    /// CQEs reaped from the completion queue (uring).
    cqes,
    /// Batched waits (`--uring-wait`) that returned with fewer CQEs than
    /// `--uring-wait-cqes` because the cap expired (uring).
    wait_cap_expired,
    /// epoll_wait(2) calls (epoll), including those that time out.
    epoll_waits,
    /// Readiness events returned by epoll_wait(2) (epoll).
    epoll_events,
}

/// Everything one worker hands to the merger when it stops.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    /// Service time in ns: from the completion that delivers the end of a
    /// request to the completion of the send carrying its response.
    pub service_ns: Histogram<u64>,
    /// The worker's counters.
    pub counters: Counters,
}

impl WorkerStats {
    /// Empty stats: a [`new_histogram`] and all counters zero.
    pub fn new() -> Self {
        WorkerStats {
            service_ns: new_histogram(),
            counters: Counters::default(),
        }
    }
    /// Merge `other` into `self` (histogram `add`, counters summed).
    pub fn merge(&mut self, other: &WorkerStats) {
        // Cannot fail: both histograms share the same bounds.
        let _ = self.service_ns.add(&other.service_ns);
        self.counters.merge(&other.counters);
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Median of `v` (mean of the middle two for even lengths); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Format a duration given in ns with an automatic unit (`ns`, `µs`, `ms`, `s`)
/// and 3 significant digits: `850ns`, `1.23µs`, `12.3µs`, `123µs`, `4.56ms`,
/// `1.00s`. Values of 1000 s and more are shown in whole seconds.
pub fn fmt_ns(ns: u64) -> String {
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    const UNITS: [(f64, &str); 3] = [(1e3, "µs"), (1e6, "ms"), (1e9, "s")];
    for (i, (div, unit)) in UNITS.iter().enumerate() {
        let v = ns as f64 / div;
        let decimals = if v < 10.0 {
            2
        } else if v < 100.0 {
            1
        } else {
            0
        };
        let text = format!("{v:.decimals$}");
        // Rounding may carry into the next unit (999.7µs -> "1000µs").
        let rounded: f64 = text.parse().unwrap_or(v);
        if rounded < 1000.0 || i == UNITS.len() - 1 {
            return format!("{text}{unit}");
        }
    }
    unreachable!("the last unit always returns")
}

/// One compact human line of a ns histogram:
/// `n=1000 p50=12.3µs p90=20.1µs p99=45.0µs p99.9=101µs p99.99=130µs max=131µs`
/// (values are the histogram's highest equivalent values, units chosen by
/// [`fmt_ns`]). An empty histogram gives `n=0`.
pub fn percentile_summary(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "n=0".to_string();
    }
    let mut s = format!("n={}", h.len());
    for (label, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("p99.99", 0.9999),
    ] {
        s.push_str(&format!(" {label}={}", fmt_ns(h.value_at_quantile(q))));
    }
    s.push_str(&format!(" max={}", fmt_ns(h.max())));
    s
}

/// Upper bound on one [`worker_stats_to_bytes`] frame's payload: 64 MiB.
pub const WORKER_FRAME_MAX_BYTES: usize = 64 << 20;

/// Serialize one worker's stats into a self-delimiting frame for a pipe:
///
/// ```text
/// u32 LE  payload length in bytes (everything after this field)
/// u32 LE  number of counters K
/// K × u64 LE  counter values in `Counters` declaration order
/// ...     the histogram, HdrHistogram V2 encoding (uncompressed, cookie 0x1c849303)
/// ```
///
/// [`worker_stats_from_bytes`] and [`read_worker_stats`] read it back exactly.
pub fn worker_stats_to_bytes(ws: &WorkerStats) -> Vec<u8> {
    let values = ws.counters.values();
    let mut out = Vec::with_capacity(8 + values.len() * 8 + 256);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in &values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    // Writing into a Vec cannot fail, and a u64 histogram always serializes.
    V2Serializer::new()
        .serialize(&ws.service_ns, &mut out)
        .expect("V2 serialization into memory");
    let payload = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&payload.to_le_bytes());
    out
}

/// Parse one frame written by [`worker_stats_to_bytes`]. `bytes` must hold
/// exactly one frame. Errors: truncated or oversized frame, a counter count
/// different from this build's, trailing bytes, or an invalid V2 histogram.
pub fn worker_stats_from_bytes(bytes: &[u8]) -> Result<WorkerStats, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "worker stats frame: {} bytes, need at least 4",
            bytes.len()
        ));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len != bytes.len() - 4 {
        return Err(format!(
            "worker stats frame: header says {len} payload bytes, got {}",
            bytes.len() - 4
        ));
    }
    parse_worker_payload(&bytes[4..])
}

/// Read one [`worker_stats_to_bytes`] frame from `r` (a pipe from a worker).
/// `Ok(None)` on a clean end of stream before the first byte of a frame;
/// `InvalidData` for a malformed frame, `UnexpectedEof` for a truncated one.
pub fn read_worker_stats<R: Read>(r: &mut R) -> io::Result<Option<WorkerStats>> {
    let mut hdr = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut hdr[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(hdr) as usize;
    if len > WORKER_FRAME_MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("worker stats frame of {len} bytes exceeds {WORKER_FRAME_MAX_BYTES}"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    parse_worker_payload(&payload)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn parse_worker_payload(p: &[u8]) -> Result<WorkerStats, String> {
    if p.len() > WORKER_FRAME_MAX_BYTES {
        return Err(format!(
            "worker stats frame of {} bytes is too large",
            p.len()
        ));
    }
    let k = p
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("worker stats frame: missing counter count")?;
    let expected = Counters::default().values().len();
    if k != expected {
        return Err(format!(
            "worker stats frame: {k} counters, this build has {expected}"
        ));
    }
    let end = 4 + 8 * k;
    let raw = p
        .get(4..end)
        .ok_or("worker stats frame: truncated counters")?;
    let values: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    let counters = Counters::from_values(&values).ok_or("worker stats frame: counter count")?;
    let mut rest = &p[end..];
    let service_ns: Histogram<u64> = Deserializer::new()
        .deserialize(&mut rest)
        .map_err(|e| format!("worker stats frame: histogram: {e:?}"))?;
    if !rest.is_empty() {
        return Err(format!("worker stats frame: {} trailing bytes", rest.len()));
    }
    Ok(WorkerStats {
        service_ns,
        counters,
    })
}

#[cfg(test)]
mod tests;
