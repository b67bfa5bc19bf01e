//! HdrHistogram interval logs (`.hlog`) and base64 histogram blobs.
//!
//! The log layout is Java HdrHistogram's `HistogramLogWriter` (log format
//! version 1.3), the format read by `HistogramLogReader`,
//! `HistogramLogProcessor` and HistogramLogAnalyzer:
//!
//! ```text
//! #[Logged with okring 0.1.0]
//! #[Histogram log format version 1.3]
//! #[StartTime: 1700000000.123 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]
//! #[BaseTime: 1700000000.123 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! Tag=conn,0.000,1.000,0.215,HISTFAAAAC...
//! ```
//!
//! Interval lines are `[Tag=<tag>,]<start s>,<length s>,<max>,<base64>` with
//! start relative to BaseTime, the max divided by 1e6 (ns -> ms, Java's default
//! `maxValueUnitRatio`, so no `#[MaxValueDivisor]` line is written), and the
//! histogram V2+DEFLATE encoded (cookie 0x1c849304) in standard base64.
//! Encoding and decoding use the hdrhistogram crate's `V2DeflateSerializer`
//! and `Deserializer`; reading uses its `interval_log::IntervalLogIterator`.
//! Interval lines are formatted here rather than with the crate's
//! `IntervalLogWriter`, which borrows the output for its whole life and can
//! only scale the max column together with a `#[MaxValueDivisor]` header that
//! Java never writes; the crate's `Tag` still validates tags.

use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::hgrm::java_fixed;

/// Divisor applied to the ns max in each interval line (-> ms), Java
/// `HistogramLogWriter`'s default `maxValueUnitRatio`.
pub const HLOG_MAX_VALUE_DIVISOR: f64 = 1e6;

/// `Interval_Compressed_Histogram` log legend, as Java's `outputLegend()`.
const HLOG_LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";

/// `h` encoded as HdrHistogram V2 with DEFLATE compression (cookie
/// 0x1c849304), in standard base64 with padding: the blob HdrHistogram's
/// interval logs and okring's JSON carry. Lossless: [`from_base64`] returns a
/// histogram equal to `h`.
pub fn to_base64_v2_deflate(h: &Histogram<u64>) -> String {
    let mut buf = Vec::with_capacity(512);
    // Serializing a u64 histogram into memory cannot fail.
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("V2+DEFLATE serialization into memory");
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

/// Decode a standard-base64 HdrHistogram blob: V2 (0x1c849303) or V2+DEFLATE
/// (0x1c849304), as written by [`to_base64_v2_deflate`], Java
/// `Histogram.encodeIntoCompressedByteBuffer` or any HdrHistogram log.
/// Surrounding whitespace is ignored. Errors: invalid base64, unknown cookie,
/// corrupt payload, or counts that do not fit.
pub fn from_base64(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("HdrHistogram V2 decode: {e:?}"))
}

/// Writes an HdrHistogram interval log (module docs give the layout).
pub struct HlogWriter<W: Write> {
    w: W,
    ser: V2DeflateSerializer,
    buf: Vec<u8>,
}

impl<W: Write> HlogWriter<W> {
    /// Start a log whose StartTime and BaseTime are both `start` (truncated to
    /// ms, as Java keeps them): writes the comment, format version, StartTime
    /// (with the date in UTC, Java `Date.toString()` layout), BaseTime and
    /// legend lines. Errors: the writer's.
    pub fn new(mut w: W, start: SystemTime) -> io::Result<Self> {
        let ms = match start.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        };
        let secs = java_fixed(ms as f64 / 1000.0, 3, 0);
        let header = format!(
            "#[Logged with okring {}]\n\
             #[Histogram log format version 1.3]\n\
             #[StartTime: {secs} (seconds since epoch), {}]\n\
             #[BaseTime: {secs} (seconds since epoch)]\n\
             {HLOG_LEGEND}\n",
            env!("CARGO_PKG_VERSION"),
            java_date_utc(ms.div_euclid(1000)),
        );
        w.write_all(header.as_bytes())?;
        Ok(HlogWriter {
            w,
            ser: V2DeflateSerializer::new(),
            buf: Vec::with_capacity(1024),
        })
    }

    /// A comment line `#[text]` (readers skip it): where a log came from.
    /// `text` must hold no `]`, CR or LF; they are replaced by spaces.
    pub fn comment(&mut self, text: &str) -> io::Result<()> {
        let clean: String = text
            .chars()
            .map(|c| {
                if matches!(c, ']' | '\r' | '\n') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        writeln!(self.w, "#[{clean}]")
    }

    /// Append one interval: `tag` (no `,`, space, CR or LF; `None` for the
    /// default untagged series), its start as an offset from the log's
    /// StartTime, its length, and the histogram of ns values recorded in it.
    /// Times are printed in seconds with 3 decimals, the max in ms.
    /// Errors: `InvalidInput` for a bad tag, or the writer's.
    pub fn write_interval(
        &mut self,
        tag: Option<&str>,
        start_offset: Duration,
        length: Duration,
        h: &Histogram<u64>,
    ) -> io::Result<()> {
        let mut line = String::with_capacity(512);
        if let Some(t) = tag {
            let t = Tag::new(t).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("hlog tag {t:?} contains ',', ' ', CR or LF"),
                )
            })?;
            line.push_str("Tag=");
            line.push_str(t.as_str());
            line.push(',');
        }
        let max_ns = if h.is_empty() { 0 } else { h.max() };
        line.push_str(&format!(
            "{},{},{},",
            java_fixed(start_offset.as_secs_f64(), 3, 0),
            java_fixed(length.as_secs_f64(), 3, 0),
            java_fixed(max_ns as f64 / HLOG_MAX_VALUE_DIVISOR, 3, 0),
        ));
        self.buf.clear();
        self.ser
            .serialize(h, &mut self.buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        base64::engine::general_purpose::STANDARD.encode_string(&self.buf, &mut line);
        line.push('\n');
        self.w.write_all(line.as_bytes())
    }

    /// Flush the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// The underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.w
    }
}

/// One interval read back by [`read_hlog`].
#[derive(Clone, Debug)]
pub struct HlogInterval {
    /// The line's `Tag=`, if any.
    pub tag: Option<String>,
    /// Interval start in seconds from the log's StartTime (Java
    /// `HistogramLogReader`'s offset timestamps).
    pub start_s: f64,
    /// Interval length in seconds.
    pub length_s: f64,
    /// The interval's histogram (ns for okring logs).
    pub hist: Histogram<u64>,
}

/// An interval log read whole by [`read_hlog_log`].
#[derive(Clone, Debug)]
pub struct HlogLog {
    /// The log's StartTime in seconds since the epoch; without a StartTime
    /// line, the first interval's timestamp when that is absolute; `None`
    /// when neither places the log on the wall clock.
    pub start_time_s: Option<f64>,
    /// The text of every other `#[...]` comment line, in order (okring's
    /// `Host: NAME`, `Shard: I/N`; Java's `Logged with ...`).
    pub comments: Vec<String>,
    /// Every interval, in file order.
    pub intervals: Vec<HlogInterval>,
}

/// Read every interval of an HdrHistogram interval log (this module's
/// writer, Java `HistogramLogWriter`, or the hdrhistogram crate's writer).
/// Timestamps are resolved like Java `HistogramLogReader`: relative to
/// BaseTime when one is given; without BaseTime, a timestamp more than a year
/// before StartTime is taken as relative, otherwise as absolute; `start_s` is
/// then the offset from StartTime (the first interval's start if the log has
/// no StartTime). Errors: read errors, a malformed line (with its byte
/// offset), or an undecodable histogram.
pub fn read_hlog(r: impl Read) -> Result<Vec<HlogInterval>, String> {
    read_hlog_log(r).map(|l| l.intervals)
}

/// As [`read_hlog`], keeping the StartTime and the comment lines, so logs
/// from several machines can be lined up on the wall clock.
pub fn read_hlog_log(mut r: impl Read) -> Result<HlogLog, String> {
    let mut data = Vec::new();
    r.read_to_end(&mut data)
        .map_err(|e| format!("reading hlog: {e}"))?;
    if !data.is_empty() && !data.ends_with(b"\n") {
        data.push(b'\n');
    }
    let comments = data
        .split(|&b| b == b'\n')
        .filter_map(|l| l.strip_prefix(b"#["))
        .map(|l| String::from_utf8_lossy(l.trim_ascii_end()).into_owned())
        .map(|l| l.strip_suffix(']').map(str::to_string).unwrap_or(l))
        .filter(|l| !l.starts_with("StartTime:") && !l.starts_with("BaseTime:"))
        .collect();
    let mut explicit_start: Option<f64> = None;
    let mut start_time: Option<f64> = None;
    let mut base_time: Option<f64> = None;
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&data) {
        match entry.map_err(|e| format!("hlog parse error: {e:?}"))? {
            LogEntry::StartTime(d) => {
                start_time = Some(d.as_secs_f64());
                explicit_start = start_time;
            }
            LogEntry::BaseTime(d) => base_time = Some(d.as_secs_f64()),
            LogEntry::Interval(iv) => {
                let ts = iv.start_timestamp().as_secs_f64();
                let start = *start_time.get_or_insert(ts);
                let base = *base_time.get_or_insert(if ts < start - 365.0 * 24.0 * 3600.0 {
                    start
                } else {
                    0.0
                });
                let hist = from_base64(iv.encoded_histogram())
                    .map_err(|e| format!("hlog interval at {ts:.3} s: {e}"))?;
                out.push(HlogInterval {
                    tag: iv.tag().map(|t| t.as_str().to_string()),
                    start_s: ts + base - start,
                    length_s: iv.duration().as_secs_f64(),
                    hist,
                });
            }
        }
    }
    // A start before 2001 is a relative timestamp, not a wall-clock time.
    let start_time_s = explicit_start.or(start_time).filter(|&s| s > 978_307_200.0);
    Ok(HlogLog {
        start_time_s,
        comments,
        intervals: out,
    })
}

/// `secs` since the epoch as Java `Date.toString()` prints it in UTC:
/// `EEE MMM dd HH:mm:ss zzz yyyy`, e.g. `Tue Nov 14 22:13:20 UTC 2023`: the
/// fields of `httpdate`'s IMF-fixdate, reordered. Times before the epoch
/// print as the epoch.
pub(crate) fn java_date_utc(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    // "Tue, 14 Nov 2023 22:13:20 GMT"
    let imf = httpdate::fmt_http_date(t);
    let f: Vec<&str> = imf.split([' ', ',']).filter(|x| !x.is_empty()).collect();
    match f.as_slice() {
        [day, dd, mon, year, hms, _] => format!("{day} {mon} {dd} {hms} UTC {year}"),
        _ => imf,
    }
}
