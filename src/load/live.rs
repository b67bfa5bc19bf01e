//! Live output of a run: [`IntervalLine`], one per interval, handed to
//! `LoadConfig::on_interval` while the run goes on.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::fmt_ns;

/// One interval of a run, as it completes (every thread's share merged),
/// for live output (`LoadConfig::on_interval`).
#[derive(Clone, Debug)]
pub struct IntervalLine {
    /// Start from the measured window's start, and length.
    pub start: Duration,
    pub len: Duration,
    /// Latency samples of the interval (answers and timeouts), ns.
    pub latency_ns: Histogram<u64>,
    /// Errors of every kind and late sends during the interval.
    pub errors: u64,
    pub late_sends: u64,
}

impl IntervalLine {
    /// One human line: `[  3.0s] 51234 req/s  p50 1.20ms  p99 3.40ms  max 9.10ms  errors 0  late 0`.
    pub fn text(&self) -> String {
        let h = &self.latency_ns;
        let rate = h.len() as f64 / self.len.as_secs_f64().max(1e-9);
        let q = |p: f64| {
            if h.is_empty() {
                "-".to_string()
            } else {
                fmt_ns(h.value_at_quantile(p))
            }
        };
        format!(
            "[{:>6.1}s] {:>9.0} req/s  p50 {:>8}  p99 {:>8}  max {:>8}  errors {}  late {}",
            (self.start + self.len).as_secs_f64(),
            rate,
            q(0.5),
            q(0.99),
            if h.is_empty() {
                "-".to_string()
            } else {
                fmt_ns(h.max())
            },
            self.errors,
            self.late_sends
        )
    }
}
