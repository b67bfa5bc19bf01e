//! Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`),
//! as specified in Prometheus' "Exposition formats" documentation: `# HELP` /
//! `# TYPE` lines, then samples `name{label="value"} number`, one per line,
//! `\n` line ends, histogram buckets cumulative with a final `le="+Inf"`.
//!
//! It renders a snapshot into a `String`; serving it over HTTP and the
//! OpenMetrics variant (`# EOF`, `_created`) are not done here.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::Counters;

/// Upper bounds (`le`) of the exported service-time buckets, in µs: 1, 2, 5 ×
/// 10^k from 1 µs to 10 s. Rendered in seconds (`le="0.000001"` ... `le="10"`),
/// followed by `le="+Inf"`.
pub const PROM_BUCKETS_US: [u64; 22] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
    200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000,
];

/// Append a Prometheus 0.0.4 text exposition of okring's stats to `out`:
///
/// - every field of `counters` as a counter `<prefix>_<field>_total` (HELP is
///   the field's doc text);
/// - `service_ns` (values in ns) as the histogram `<prefix>_service_time_seconds`:
///   cumulative `_bucket{le="<s>"}` for each bound in [`PROM_BUCKETS_US`] and
///   `+Inf`, `_sum` in seconds and `_count`. A sample counts toward a bucket
///   when the highest value of its HdrHistogram bucket is `<=` the bound, so
///   a sample is never reported faster than it was; `_count` and the `+Inf`
///   bucket equal the histogram's total count. `_sum` is computed exactly (in
///   integer ns) from each HdrHistogram bucket's median equivalent value, the
///   value the histogram's mean uses, so it is `mean × count` without float
///   drift, and within the histogram's resolution (0.1%) of the true sum;
/// - each `(name, help, value)` of `extra_gauges` as a gauge `<prefix>_<name>`.
///
/// `prefix` and names are made valid metric names (`[a-zA-Z_:][a-zA-Z0-9_:]*`)
/// by replacing other characters with `_` (and prepending `_` to a leading
/// digit); an empty `prefix` adds nothing. HELP text escapes `\` and newline.
/// Gauge values print as Go's parser reads them (`NaN`, `+Inf`, `-Inf`).
pub fn prometheus_text(
    out: &mut String,
    prefix: &str,
    counters: &Counters,
    service_ns: &Histogram<u64>,
    extra_gauges: &[(&str, &str, f64)],
) {
    let name = |suffix: &str| -> String {
        if prefix.is_empty() {
            metric_name(suffix)
        } else {
            metric_name(&format!("{prefix}_{suffix}"))
        }
    };
    for (field, help, value) in counters.fields() {
        let n = name(&format!("{field}_total"));
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {n} {}", escape_help(help.trim()));
        let _ = writeln!(out, "# TYPE {n} counter");
        let _ = writeln!(out, "{n} {value}");
    }

    let h = name("service_time_seconds");
    let _ = writeln!(
        out,
        "# HELP {h} Service time per request in seconds, from the end of the request to the \
         completion of its response's send."
    );
    let _ = writeln!(out, "# TYPE {h} histogram");
    let mut cumulative = vec![0_u64; PROM_BUCKETS_US.len()];
    let mut sum_ns: u128 = 0;
    for v in service_ns.iter_recorded() {
        let top_ns = v.value_iterated_to();
        let count = v.count_at_value();
        sum_ns += u128::from(service_ns.median_equivalent(top_ns)) * u128::from(count);
        // First bound that holds the whole HdrHistogram bucket.
        if let Some(i) = PROM_BUCKETS_US
            .iter()
            .position(|&us| top_ns <= us.saturating_mul(1_000))
        {
            cumulative[i] += count;
        }
    }
    let mut running = 0_u64;
    for (us, c) in PROM_BUCKETS_US.iter().zip(&cumulative) {
        running += c;
        let _ = writeln!(out, "{h}_bucket{{le=\"{}\"}} {running}", us_as_seconds(*us));
    }
    let total = service_ns.len();
    let _ = writeln!(out, "{h}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{h}_sum {}", prom_float(sum_ns as f64 / 1e9));
    let _ = writeln!(out, "{h}_count {total}");

    for (gauge, help, value) in extra_gauges {
        let n = name(gauge);
        let _ = writeln!(out, "# HELP {n} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {n} gauge");
        let _ = writeln!(out, "{n} {}", prom_float(*value));
    }
}

/// `s` with every character outside `[a-zA-Z0-9_:]` replaced by `_`, and `_`
/// prepended if it would start with a digit (or be empty).
fn metric_name(s: &str) -> String {
    let mut n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() || n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    n
}

/// HELP text escaping of the 0.0.4 format: `\` -> `\\`, newline -> `\n`.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus' (Go `strconv.ParseFloat`) parser reads it.
fn prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// `us` microseconds as an exact decimal number of seconds: 1 -> `0.000001`,
/// 10_000_000 -> `10`.
fn us_as_seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:06}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}
