//! HdrHistogram percentile distribution text (`.hgrm`): writer and reader.
//!
//! The writer reproduces Java HdrHistogram's
//! `AbstractHistogram.outputPercentileDistribution(PrintStream, int, Double)`
//! (HdrHistogram 2.x, `src/main/java/org/HdrHistogram/AbstractHistogram.java`)
//! byte for byte, including its `PercentileIterator` step rule and the
//! rounding of `java.util.Formatter`'s `%f` (half-up on the shortest decimal
//! representation), so files can be compared with, and plotted next to, files
//! written by the Java tools (`plotFiles.html`, `HistogramLogProcessor`).
//! The reader parses that layout back into numbers; it does not rebuild a
//! histogram (the text is lossy; use the base64 forms for lossless transfer).

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Value unit scaling applied by [`write_hgrm`]: recorded ns / 1e6 = ms, the
/// `outputValueUnitScalingRatio` okring passes to the Java layout.
pub const HGRM_NS_PER_OUTPUT_UNIT: f64 = 1e6;

/// Write `h` (values in ns) as HdrHistogram's percentile distribution text,
/// values shown in milliseconds, exactly as Java
/// `h.outputPercentileDistribution(out, ticks_per_half_distance, 1e6)` prints:
///
/// ```text
///        Value     Percentile TotalCount 1/(1-Percentile)
///
///        0.001 0.000000000000          1           1.00
///        ...
///        1.000 1.000000000000      10000
/// #[Mean    =        0.500, StdDeviation   =        0.289]
/// #[Max     =        1.000, Total count    =        10000]
/// #[Buckets =           26, SubBuckets     =         2048]
/// ```
///
/// Rows are `%12.Nf %2.12f %10d %14.2f` (N = the histogram's significant
/// digits, 3 for okring histograms); the final 100% row omits the last column.
/// Percentile steps follow Java's `PercentileIterator` (5 ticks per half
/// distance is Java's default). An empty histogram prints the header and
/// footer only. Errors: `InvalidInput` if `ticks_per_half_distance` is 0, or
/// the writer's error.
pub fn write_hgrm<W: Write>(
    w: &mut W,
    h: &Histogram<u64>,
    ticks_per_half_distance: u32,
) -> io::Result<()> {
    if ticks_per_half_distance == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "percentile ticks per half distance must be > 0",
        ));
    }
    let scale = HGRM_NS_PER_OUTPUT_UNIT;
    let digits = usize::from(h.sigfig());
    let mut out = String::with_capacity(8192);
    out.push_str(&format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    ));
    for step in java_percentile_steps(h, ticks_per_half_distance) {
        let value = java_fixed(step.value as f64 / scale, digits, 12);
        let pct = java_fixed(step.percentile / 100.0, 12, 2);
        #[allow(clippy::float_cmp)] // Java compares with `!= 100.0D` exactly.
        if step.percentile != 100.0 {
            let inv = java_fixed(1.0 / (1.0 - step.percentile / 100.0), 2, 14);
            out.push_str(&format!("{value} {pct} {:>10} {inv}\n", step.total_count));
        } else {
            out.push_str(&format!("{value} {pct} {:>10}\n", step.total_count));
        }
    }
    let (mean, stdev) = java_mean_stdev(h);
    let max = if h.is_empty() { 0 } else { h.max() };
    out.push_str(&format!(
        "#[Mean    = {}, StdDeviation   = {}]\n",
        java_fixed(mean / scale, digits, 12),
        java_fixed(stdev / scale, digits, 12)
    ));
    out.push_str(&format!(
        "#[Max     = {}, Total count    = {:>12}]\n",
        java_fixed(max as f64 / scale, digits, 12),
        h.len()
    ));
    // Java's countsArrayLength = (bucketCount + 1) * (subBucketCount / 2).
    let buckets = usize::from(h.buckets());
    let sub_buckets = 2 * h.distinct_values() / (buckets + 1);
    out.push_str(&format!(
        "#[Buckets = {buckets:>12}, SubBuckets     = {sub_buckets:>12}]\n"
    ));
    w.write_all(out.as_bytes())
}

/// One data row of a `.hgrm` file.
#[derive(Clone, Debug, PartialEq)]
pub struct HgrmRow {
    /// The row's value in the file's unit (ms for okring files).
    pub value_ms: f64,
    /// Percentile as a fraction, 0.0..=1.0.
    pub percentile: f64,
    /// Samples at or below this value.
    pub total_count: u64,
}

/// A parsed `.hgrm` file ([`read_hgrm`]). Values are in the file's unit
/// (ms for files written by [`write_hgrm`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HgrmSummary {
    /// Data rows in file order.
    pub rows: Vec<HgrmRow>,
    /// `Total count` from the footer.
    pub total_count: u64,
    /// `Max` from the footer, ms.
    pub max_ms: f64,
    /// `Mean` from the footer, ms.
    pub mean_ms: f64,
    /// `StdDeviation` from the footer, ms.
    pub stdev_ms: f64,
    /// `Buckets` from the footer.
    pub buckets: u64,
    /// `SubBuckets` from the footer.
    pub sub_buckets: u64,
}

/// Parse HdrHistogram percentile distribution text (the [`write_hgrm`] /
/// Java `outputPercentileDistribution` layout). Accepts both `\n` and `\r\n`.
/// Errors (as a message naming the line): a row that is not 3 or 4 numbers,
/// a malformed footer, or a missing `Mean`/`Max`/`Buckets` footer line.
pub fn read_hgrm(text: &str) -> Result<HgrmSummary, String> {
    let mut rows = Vec::new();
    let (mut mean_sd, mut max_count, mut buckets) = (None, None, None);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = i + 1;
        if line.is_empty() || line.starts_with("Value") {
            continue;
        }
        if let Some(footer) = line.strip_prefix("#[") {
            let footer = footer
                .strip_suffix(']')
                .ok_or_else(|| format!("line {lineno}: footer without ']'"))?;
            let mut kv = Vec::new();
            for part in footer.split(',') {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| format!("line {lineno}: footer field without '='"))?;
                kv.push((k.trim(), v.trim()));
            }
            let num = |k: &str| -> Result<f64, String> {
                let v = kv
                    .iter()
                    .find(|(name, _)| *name == k)
                    .ok_or_else(|| format!("line {lineno}: footer lacks {k}"))?
                    .1;
                v.parse::<f64>()
                    .map_err(|e| format!("line {lineno}: {k}: {e}"))
            };
            match kv.first().map(|(k, _)| *k) {
                Some("Mean") => mean_sd = Some((num("Mean")?, num("StdDeviation")?)),
                Some("Max") => max_count = Some((num("Max")?, num("Total count")? as u64)),
                Some("Buckets") => {
                    buckets = Some((num("Buckets")? as u64, num("SubBuckets")? as u64))
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 3 && cols.len() != 4 {
            return Err(format!(
                "line {lineno}: expected 3 or 4 columns, got {}",
                cols.len()
            ));
        }
        let f = |s: &str| {
            s.parse::<f64>()
                .map_err(|e| format!("line {lineno}: {s:?}: {e}"))
        };
        rows.push(HgrmRow {
            value_ms: f(cols[0])?,
            percentile: f(cols[1])?,
            total_count: cols[2]
                .parse::<u64>()
                .map_err(|e| format!("line {lineno}: {:?}: {e}", cols[2]))?,
        });
    }
    let (mean_ms, stdev_ms) = mean_sd.ok_or("missing #[Mean ...] footer")?;
    let (max_ms, total_count) = max_count.ok_or("missing #[Max ...] footer")?;
    let (buckets, sub_buckets) = buckets.ok_or("missing #[Buckets ...] footer")?;
    Ok(HgrmSummary {
        rows,
        total_count,
        max_ms,
        mean_ms,
        stdev_ms,
        buckets,
        sub_buckets,
    })
}

/// One step of Java's `PercentileIterator`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PercentileStep {
    /// Highest equivalent value of the bucket reached, ns.
    pub value: u64,
    /// Percentile level iterated to, 0.0..=100.0.
    pub percentile: f64,
    /// Samples at or below `value`.
    pub total_count: u64,
}

/// Java `PercentileIterator` (HdrHistogram 2.x) over `h`: percent levels start
/// at 0 and grow in fixed ticks that halve every time half the remaining
/// distance to 100% is crossed; a level is reached at the first non-empty
/// bucket whose cumulative percentage is `>=` it, and one extra 100% step
/// follows the last recorded value.
///
/// The hdrhistogram crate's `iter_quantiles` follows the same rule but in
/// quantile fractions (0.1 + 0.1 + 0.1 != 0.3) where Java counts in percent
/// (10 + 10 + 10 == 30), so its rows differ from Java's at exact boundaries;
/// hence this port.
pub(crate) fn java_percentile_steps(h: &Histogram<u64>, ticks: u32) -> Vec<PercentileStep> {
    let n = h.len();
    let mut steps = Vec::new();
    if n == 0 {
        return steps;
    }
    let mut level = 0.0_f64;
    let mut total = 0_u64;
    for v in h.iter_recorded() {
        total += v.count_at_value();
        let value = v.value_iterated_to();
        loop {
            let current = (100.0 * total as f64) / n as f64;
            if current < level {
                break;
            }
            steps.push(PercentileStep {
                value,
                percentile: level,
                total_count: total,
            });
            level = java_next_level(level, ticks);
            // Java's hasNext(): stop regular steps once every sample is counted.
            if total >= n {
                break;
            }
        }
        if total >= n {
            steps.push(PercentileStep {
                value,
                percentile: 100.0,
                total_count: total,
            });
            break;
        }
    }
    steps
}

/// `PercentileIterator.incrementIterationLevel` in Java's arithmetic.
fn java_next_level(level: f64, ticks: u32) -> f64 {
    let halvings = ((100.0 / (100.0 - level)).ln() / 2f64.ln()) as i64;
    let pow = 2f64.powf(halvings.wrapping_add(1) as f64) as i64;
    let reporting_ticks = i64::from(ticks).wrapping_mul(pow);
    level + 100.0 / reporting_ticks as f64
}

/// Java `getMean()` and `getStdDeviation()`: sums of median equivalent values
/// in the same order and association as Java (the crate's `mean()` divides
/// each term, which rounds differently).
pub(crate) fn java_mean_stdev(h: &Histogram<u64>) -> (f64, f64) {
    let n = h.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mut total = 0.0_f64;
    for v in h.iter_recorded() {
        total += h.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64;
    }
    let mean = total / n as f64;
    let mut dev_total = 0.0_f64;
    for v in h.iter_recorded() {
        let d = h.median_equivalent(v.value_iterated_to()) as f64 - mean;
        dev_total += (d * d) * v.count_since_last_iteration() as f64;
    }
    (mean, (dev_total / n as f64).sqrt())
}

/// `String.format(Locale.US, "%<width>.<prec>f", x)` as Java prints it:
/// the shortest decimal digits that round-trip `x` (Java's `FloatingDecimal`),
/// rounded half-up to `prec` fraction digits, right-aligned in `width`.
/// Rust's `{:.prec$}` rounds the exact binary value instead, which differs on
/// ties such as 0.0015 (Java: `0.002`).
pub(crate) fn java_fixed(x: f64, prec: usize, width: usize) -> String {
    let body = if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        let neg = x.is_sign_negative();
        // `{:e}` gives the shortest round-trip digits: "d.ddde<exp>".
        let sci = format!("{:e}", x.abs());
        let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i64 = exp.parse().unwrap_or(0);
        let digits: Vec<u8> = mant
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        // Value = 0.d1d2d3... × 10^point.
        let point = exp + 1;
        let (mut int_part, mut frac): (Vec<u8>, Vec<u8>) = if point <= 0 {
            let mut f = vec![0; (-point) as usize];
            f.extend_from_slice(&digits);
            (vec![0], f)
        } else if point as usize >= digits.len() {
            let mut i = digits.clone();
            i.resize(point as usize, 0);
            (i, Vec::new())
        } else {
            (
                digits[..point as usize].to_vec(),
                digits[point as usize..].to_vec(),
            )
        };
        if frac.len() > prec {
            let round_up = frac[prec] >= 5;
            frac.truncate(prec);
            if round_up {
                let mut carry = true;
                for d in frac.iter_mut().rev().chain(int_part.iter_mut().rev()) {
                    if *d == 9 {
                        *d = 0;
                    } else {
                        *d += 1;
                        carry = false;
                        break;
                    }
                }
                if carry {
                    int_part.insert(0, 1);
                }
            }
        }
        frac.resize(prec, 0);
        let mut s = String::with_capacity(int_part.len() + prec + 2);
        if neg {
            s.push('-');
        }
        s.extend(int_part.iter().map(|d| char::from(b'0' + d)));
        if prec > 0 {
            s.push('.');
            s.extend(frac.iter().map(|d| char::from(b'0' + d)));
        }
        s
    };
    format!("{body:>width$}")
}
