//! Latency histograms, counters, merging and export formats.
//!
//! INTERFACE STUB (histogram export functions are being written).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

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
    /// 501 Not Implemented responses (unsupported transfer coding).
    responses_501,
    /// Connections closed because the header timeout expired.
    timeouts_header,
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
}

/// Everything one worker hands to the merger when it stops.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    /// Service time in ns: from the completion that delivers the end of a
    /// request to the completion of the send carrying its response.
    pub service_ns: Histogram<u64>,
    pub counters: Counters,
}

impl WorkerStats {
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
