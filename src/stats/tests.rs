//! Tests of the stats module's formats against the layouts of the tools that
//! read them (Java HdrHistogram, Prometheus 0.0.4 text format).

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use super::hgrm::java_fixed;
use super::hlog::java_date_utc;
use super::*;

/// 1..=10 ms, one sample each.
fn ten_ms() -> Histogram<u64> {
    let mut h = new_histogram();
    for i in 1..=10 {
        record_ns(&mut h, i * 1_000_000, 1);
    }
    h
}

/// Deterministic spread of values from 1 µs to ~40 s with varied counts.
fn spread(seed: u64, n: usize) -> Vec<(u64, u64)> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    };
    (0..n)
        .map(|_| {
            let e = next() % 30;
            (1000 + (next() % (1 << e)) * 37, 1 + next() % 3)
        })
        .collect()
}

fn hist_of(samples: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = new_histogram();
    for &(v, c) in samples {
        record_ns(&mut h, v, c);
    }
    h
}

fn hgrm_string(h: &Histogram<u64>, ticks: u32) -> String {
    let mut out = Vec::new();
    write_hgrm(&mut out, h, ticks).unwrap();
    String::from_utf8(out).unwrap()
}

/// Output of Java HdrHistogram 2.x `new Histogram(1, 60_000_000_000L, 3)`
/// with 1..=10 ms recorded once each, `outputPercentileDistribution(ps, 5, 1e6)`.
/// Note the 0.3 row at 3.000 ms: Java steps in percent (10+10+10 == 30), so
/// the third sample reaches 30% exactly.
const JAVA_TEN_MS_HGRM: &str = "       Value     Percentile TotalCount 1/(1-Percentile)

       1.000 0.000000000000          1           1.00
       1.000 0.100000000000          1           1.11
       2.001 0.200000000000          2           1.25
       3.000 0.300000000000          3           1.43
       4.002 0.400000000000          4           1.67
       5.001 0.500000000000          5           2.00
       6.001 0.550000000000          6           2.22
       6.001 0.600000000000          6           2.50
       7.000 0.650000000000          7           2.86
       7.000 0.700000000000          7           3.33
       8.004 0.750000000000          8           4.00
       8.004 0.775000000000          8           4.44
       8.004 0.800000000000          8           5.00
       9.003 0.825000000000          9           5.71
       9.003 0.850000000000          9           6.67
       9.003 0.875000000000          9           8.00
       9.003 0.887500000000          9           8.89
       9.003 0.900000000000          9          10.00
      10.002 0.912500000000         10          11.43
      10.002 1.000000000000         10
#[Mean    =        5.500, StdDeviation   =        2.872]
#[Max     =       10.002, Total count    =           10]
#[Buckets =           26, SubBuckets     =         2048]
";

#[test]
fn hgrm_matches_java_output_line_by_line() {
    let ours = hgrm_string(&ten_ms(), 5);
    for (i, (a, b)) in ours.lines().zip(JAVA_TEN_MS_HGRM.lines()).enumerate() {
        assert_eq!(a, b, "line {}", i + 1);
    }
    assert_eq!(ours, JAVA_TEN_MS_HGRM);
}

#[test]
fn hgrm_columns_have_java_widths() {
    let h = hist_of(&spread(7, 20_000));
    let text = hgrm_string(&h, 5);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "       Value     Percentile TotalCount 1/(1-Percentile)"
    );
    assert_eq!(lines[1], "");
    let rows: Vec<&str> = lines[2..]
        .iter()
        .copied()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(rows.len() > 30, "{} rows", rows.len());
    let (last, body) = rows.split_last().unwrap();
    for row in body {
        // %12.3f %2.12f %10d %14.2f while values fit the widths.
        assert_eq!(row.len(), 12 + 1 + 14 + 1 + 10 + 1 + 14, "{row:?}");
        assert_eq!(row.as_bytes()[12], b' ');
        let value = &row[..12];
        assert_eq!(
            value.trim_start().split('.').nth(1).unwrap().len(),
            3,
            "{row:?}"
        );
        let pct = &row[13..27];
        assert!(pct.starts_with("0.") && pct.len() == 14, "{row:?}");
        assert!(row[28..38].trim().parse::<u64>().is_ok(), "{row:?}");
        assert!(row[39..].trim().parse::<f64>().unwrap() >= 1.0, "{row:?}");
    }
    // Final row: percentile 1.0 and no 1/(1-p) column.
    assert_eq!(last.len(), 12 + 1 + 14 + 1 + 10, "{last:?}");
    assert_eq!(&last[13..27], "1.000000000000");
    assert_eq!(last[28..].trim(), h.len().to_string());
    assert_eq!(last[..12].trim(), java_fixed(h.max() as f64 / 1e6, 3, 0));
    let n = lines.len();
    assert!(
        lines[n - 3].starts_with("#[Mean    = ") && lines[n - 3].contains(", StdDeviation   = ")
    );
    assert_eq!(
        lines[n - 2],
        format!(
            "#[Max     = {:>12}, Total count    = {:>12}]",
            java_fixed(h.max() as f64 / 1e6, 3, 0),
            h.len()
        )
    );
    assert_eq!(
        lines[n - 1],
        "#[Buckets =           26, SubBuckets     =         2048]"
    );
}

#[test]
fn hgrm_percentiles_rise_and_counts_match_histogram() {
    let h = hist_of(&spread(11, 5_000));
    let s = read_hgrm(&hgrm_string(&h, 5)).unwrap();
    assert_eq!(s.total_count, h.len());
    assert_eq!(
        s.max_ms,
        java_fixed(h.max() as f64 / 1e6, 3, 0)
            .parse::<f64>()
            .unwrap()
    );
    assert!(
        (s.mean_ms - h.mean() / 1e6).abs() < 0.001,
        "{} vs {}",
        s.mean_ms,
        h.mean()
    );
    assert_eq!((s.buckets, s.sub_buckets), (26, 2048));
    for w in s.rows.windows(2) {
        assert!(w[0].percentile <= w[1].percentile);
        assert!(w[0].total_count <= w[1].total_count);
        assert!(w[0].value_ms <= w[1].value_ms);
    }
    // Each row's count is the histogram's count up to that row's value.
    let steps = super::hgrm::java_percentile_steps(&h, 5);
    assert_eq!(steps.len(), s.rows.len());
    for (step, row) in steps.iter().zip(&s.rows) {
        assert_eq!(step.total_count, h.count_between(0, step.value), "{step:?}");
        assert_eq!(row.total_count, step.total_count);
        assert!(
            (row.value_ms - step.value as f64 / 1e6).abs() <= 0.0005,
            "{row:?} {step:?}"
        );
        assert!(row.total_count as f64 >= row.percentile * h.len() as f64 - 1e-9);
    }
    let last = s.rows.last().unwrap();
    assert_eq!((last.percentile, last.total_count), (1.0, h.len()));
}

#[test]
fn hgrm_empty_histogram_and_bad_ticks() {
    let text = hgrm_string(&new_histogram(), 5);
    let expected = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
                    #[Mean    =        0.000, StdDeviation   =        0.000]\n\
                    #[Max     =        0.000, Total count    =            0]\n\
                    #[Buckets =           26, SubBuckets     =         2048]\n";
    assert_eq!(text, expected);
    let s = read_hgrm(&text).unwrap();
    assert!(s.rows.is_empty());
    assert_eq!(s.total_count, 0);
    let err = write_hgrm(&mut Vec::new(), &ten_ms(), 0).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn read_hgrm_rejects_malformed_text() {
    assert!(read_hgrm("       1.000 0.5\n").is_err());
    assert!(read_hgrm("       1.000 x 3 1.00\n").is_err());
    // Rows but no footer.
    assert!(read_hgrm("       1.000 0.000000000000          1           1.00\n").is_err());
    let no_buckets: String = JAVA_TEN_MS_HGRM
        .lines()
        .filter(|l| !l.contains("Buckets"))
        .collect();
    assert!(read_hgrm(&no_buckets).is_err());
    // CRLF line ends are accepted.
    let crlf = JAVA_TEN_MS_HGRM.replace('\n', "\r\n");
    assert_eq!(read_hgrm(&crlf).unwrap().rows.len(), 20);
}

#[test]
fn java_fixed_rounds_half_up_on_shortest_digits() {
    assert_eq!(java_fixed(0.0015, 3, 0), "0.002");
    assert_eq!(java_fixed(1.0005, 3, 0), "1.001"); // Rust's {:.3} gives 1.000
    assert_eq!(java_fixed(0.0004, 3, 0), "0.000");
    assert_eq!(java_fixed(0.0, 3, 12), "       0.000");
    assert_eq!(java_fixed(9.9996, 3, 0), "10.000");
    assert_eq!(java_fixed(999.995, 2, 0), "1000.00");
    assert_eq!(java_fixed(1e17, 2, 14), "100000000000000000.00");
    assert_eq!(java_fixed(1.0 / 0.7, 2, 14), "          1.43");
    assert_eq!(java_fixed(0.55, 12, 2), "0.550000000000");
    assert_eq!(java_fixed(2.5, 0, 0), "3");
    assert_eq!(java_fixed(f64::INFINITY, 2, 0), "Infinity");
}

#[test]
fn base64_round_trip_is_lossless() {
    let h = hist_of(&spread(3, 10_000));
    let s = to_base64_v2_deflate(&h);
    assert!(
        s.starts_with("HISTF"),
        "V2+DEFLATE cookie 0x1c849304 encodes as HISTF: {s:.10}"
    );
    let back = from_base64(&format!(" {s}\n")).unwrap();
    assert_eq!(back, h);
    assert_eq!(back.len(), h.len());
    assert_eq!(back.value_at_quantile(0.999), h.value_at_quantile(0.999));
    assert!(from_base64("not base64!").is_err());
    assert!(from_base64("AAAAAAAAAAA=").is_err());
    assert_eq!(
        from_base64(&to_base64_v2_deflate(&new_histogram()))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn hlog_round_trip_keeps_tags_times_and_counts() {
    let a_samples = spread(1, 3_000);
    let b_samples = spread(2, 4_000);
    let (a, b) = (hist_of(&a_samples), hist_of(&b_samples));
    let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let mut w = HlogWriter::new(Vec::new(), start).unwrap();
    w.write_interval(None, Duration::ZERO, Duration::from_millis(1000), &a)
        .unwrap();
    w.write_interval(
        Some("conn"),
        Duration::from_millis(1000),
        Duration::from_millis(1500),
        &b,
    )
    .unwrap();
    let bytes = w.into_inner();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "#[Histogram log format version 1.3]");
    assert_eq!(
        lines[2],
        "#[StartTime: 1700000000.123 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]"
    );
    assert_eq!(
        lines[3],
        "#[BaseTime: 1700000000.123 (seconds since epoch)]"
    );
    assert_eq!(
        lines[4],
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    );
    let max_ms = |h: &Histogram<u64>| java_fixed(h.max() as f64 / 1e6, 3, 0);
    assert!(
        lines[5].starts_with(&format!("0.000,1.000,{},HISTF", max_ms(&a))),
        "{}",
        lines[5]
    );
    assert!(lines[6].starts_with(&format!("Tag=conn,1.000,1.500,{},HISTF", max_ms(&b))));

    let iv = read_hlog(bytes.as_slice()).unwrap();
    assert_eq!(iv.len(), 2);
    assert_eq!(
        (iv[0].tag.as_deref(), iv[0].start_s, iv[0].length_s),
        (None, 0.0, 1.0)
    );
    assert_eq!(
        (iv[1].tag.as_deref(), iv[1].start_s, iv[1].length_s),
        (Some("conn"), 1.0, 1.5)
    );
    assert_eq!(iv[0].hist.len(), a.len());
    assert_eq!(iv[1].hist.len(), b.len());
    assert_eq!(iv[0].hist, a);
    assert_eq!(iv[1].hist, b);

    // Merging the intervals equals one histogram of both sample sets.
    let mut merged = new_histogram();
    for i in &iv {
        merged.add(&i.hist).unwrap();
    }
    let both: Vec<(u64, u64)> = a_samples.iter().chain(&b_samples).copied().collect();
    assert_eq!(merged, hist_of(&both));
}

#[test]
fn hlog_rejects_bad_tags_and_reads_foreign_timestamps() {
    let mut w = HlogWriter::new(Vec::new(), UNIX_EPOCH).unwrap();
    let err = w.write_interval(Some("a b"), Duration::ZERO, Duration::ZERO, &ten_ms());
    assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert!(w
        .write_interval(Some("a,b"), Duration::ZERO, Duration::ZERO, &ten_ms())
        .is_err());

    // No BaseTime, absolute timestamps, no final newline (HistogramLogReader rules).
    let blob = to_base64_v2_deflate(&ten_ms());
    let log = format!(
        "#[StartTime: 1700000000.000 (seconds since epoch), whenever]\n\
         1700000002.500,1.000,10.002,{blob}"
    );
    let iv = read_hlog(log.as_bytes()).unwrap();
    assert_eq!(iv.len(), 1);
    assert!((iv[0].start_s - 2.5).abs() < 1e-6, "{}", iv[0].start_s);
    assert_eq!(iv[0].hist, ten_ms());
    // Relative timestamps without BaseTime are offsets from StartTime.
    let log =
        format!("#[StartTime: 1700000000.000 (seconds since epoch)]\n3.000,1.000,1.0,{blob}\n");
    assert_eq!(read_hlog(log.as_bytes()).unwrap()[0].start_s, 3.0);
    assert!(read_hlog("0.000,1.000,1.0,@@@\n".as_bytes()).is_err());
    assert!(read_hlog("garbage line\n".as_bytes()).is_err());
}

#[test]
fn java_date_layout() {
    assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
    assert_eq!(java_date_utc(1_700_000_000), "Tue Nov 14 22:13:20 UTC 2023");
    assert_eq!(java_date_utc(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
    assert_eq!(java_date_utc(-1), "Thu Jan 01 00:00:00 UTC 1970");
}

/// One parsed sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Checks one exposition (0.0.4) line by line and returns its samples.
fn validate_exposition(text: &str) -> Vec<Sample> {
    fn is_name(s: &str) -> bool {
        let mut c = s.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn is_label_name(s: &str) -> bool {
        is_name(s) && !s.contains(':')
    }
    fn parse_value(s: &str) -> Option<f64> {
        match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ if s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => s.parse().ok(),
            _ => None,
        }
    }
    assert!(text.ends_with('\n'));
    let mut types: HashMap<String, String> = HashMap::new();
    let mut seen_samples: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_name(name), "{line}");
            let mut chars = help.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    assert!(
                        matches!(chars.next(), Some('\\') | Some('n')),
                        "bad escape: {line}"
                    );
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect(line);
            assert!(is_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), ty.to_string()).is_none(),
                "dup TYPE {name}"
            );
            assert!(
                !seen_samples
                    .iter()
                    .any(|s| s == name || s.starts_with(&format!("{name}_"))),
                "TYPE after samples: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#') || line.starts_with("# "), "{line}");
        if line.starts_with('#') {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect(line);
        let value = parse_value(value).unwrap_or_else(|| panic!("bad value: {line}"));
        let (name, labels) = match head.split_once('{') {
            None => (head, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect(line);
                let mut labels = Vec::new();
                for pair in body.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').expect(line);
                    assert!(is_label_name(k), "{line}");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .expect(line);
                    assert!(!v.contains('"') && !v.contains('\n'), "{line}");
                    labels.push((k.to_string(), v.to_string()));
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "{line}");
        let family_typed = types.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|f| types.get(f).map(String::as_str) == Some("histogram"))
            });
        assert!(family_typed, "sample without TYPE: {line}");
        seen_samples.push(name.to_string());
        samples.push((name.to_string(), labels, value));
    }
    samples
}

#[test]
fn prometheus_output_is_valid_and_consistent() {
    let h = hist_of(&spread(5, 20_000));
    let counters = Counters {
        requests: 41,
        responses_200: 40,
        responses_400: 1,
        ..Counters::default()
    };
    let mut out = String::new();
    prometheus_text(
        &mut out,
        "okring",
        &counters,
        &h,
        &[
            (
                "rps",
                "Requests per second.\nMeasured \\ wall clock.",
                1234.5,
            ),
            ("x", "", f64::NAN),
        ],
    );
    let samples = validate_exposition(&out);
    let get = |n: &str| samples.iter().find(|s| s.0 == n).map(|s| s.2);
    assert_eq!(get("okring_requests_total"), Some(41.0));
    assert_eq!(get("okring_responses_400_total"), Some(1.0));
    assert_eq!(get("okring_conns_accepted_total"), Some(0.0));
    let totals = samples.iter().filter(|s| s.0.ends_with("_total")).count();
    assert_eq!(totals, counters.fields().len());
    assert!(out.contains("# TYPE okring_requests_total counter\n"));
    assert!(out.contains("# HELP okring_rps Requests per second.\\nMeasured \\\\ wall clock.\n"));
    assert_eq!(get("okring_rps"), Some(1234.5));
    assert!(get("okring_x").unwrap().is_nan());

    let buckets: Vec<(&str, f64)> = samples
        .iter()
        .filter(|s| s.0 == "okring_service_time_seconds_bucket")
        .map(|s| (s.1[0].1.as_str(), s.2))
        .collect();
    assert_eq!(buckets.len(), PROM_BUCKETS_US.len() + 1);
    assert_eq!(buckets[0].0, "0.000001");
    assert_eq!(buckets[PROM_BUCKETS_US.len() - 1].0, "10");
    assert_eq!(buckets.last().unwrap().0, "+Inf");
    let mut prev_le = 0.0;
    for w in buckets.windows(2) {
        assert!(w[0].1 <= w[1].1, "buckets not cumulative: {w:?}");
    }
    for (le, _) in &buckets[..buckets.len() - 1] {
        let le: f64 = le.parse().unwrap();
        assert!(le > prev_le);
        prev_le = le;
    }
    let count = get("okring_service_time_seconds_count").unwrap();
    assert_eq!(buckets.last().unwrap().1, count);
    assert_eq!(count, h.len() as f64);
    let sum = get("okring_service_time_seconds_sum").unwrap();
    let mean_sum = h.mean() * h.len() as f64 / 1e9;
    assert!(
        (sum - mean_sum).abs() <= mean_sum * 1e-9,
        "{sum} vs {mean_sum}"
    );
    // le="0.001" counts exactly the samples whose bucket tops are <= 1 ms.
    let le_1ms = buckets.iter().find(|b| b.0 == "0.001").unwrap().1;
    let expect: u64 = h
        .iter_recorded()
        .filter(|v| v.value_iterated_to() <= 1_000_000)
        .map(|v| v.count_at_value())
        .sum();
    assert_eq!(le_1ms, expect as f64);
}

#[test]
fn prometheus_bucket_edges_and_names() {
    let mut h = new_histogram();
    record_ns(&mut h, 1_000, 3); // exactly 1 µs: in le="0.000001"
    record_ns(&mut h, 1_001, 1); // just above: in le="0.000002"
    record_ns(&mut h, 30_000_000_000, 2); // above 10 s: only in +Inf
    let mut out = String::new();
    prometheus_text(
        &mut out,
        "my-app.v2",
        &Counters::default(),
        &h,
        &[("9lives", "x", 1.0)],
    );
    let samples = validate_exposition(&out);
    let bucket = |le: &str| {
        samples
            .iter()
            .find(|s| s.0 == "my_app_v2_service_time_seconds_bucket" && s.1[0].1 == le)
            .unwrap()
            .2
    };
    assert_eq!(bucket("0.000001"), 3.0);
    assert_eq!(bucket("0.000002"), 4.0);
    assert_eq!(bucket("10"), 4.0);
    assert_eq!(bucket("+Inf"), 6.0);
    assert!(samples.iter().any(|s| s.0 == "my_app_v2_9lives"));
    let mut bare = String::new();
    prometheus_text(&mut bare, "", &Counters::default(), &new_histogram(), &[]);
    let samples = validate_exposition(&bare);
    assert!(samples.iter().any(|s| s.0 == "requests_total"));
    assert!(samples
        .iter()
        .any(|s| s.0 == "service_time_seconds_count" && s.2 == 0.0));
    assert!(samples
        .iter()
        .any(|s| s.0 == "service_time_seconds_sum" && s.2 == 0.0));
}

#[test]
fn json_round_trip() {
    let h = hist_of(&spread(9, 5_000));
    let v = hist_json(&h);
    assert_eq!(v["unit"], "ns");
    assert_eq!(v["count"], h.len());
    assert_eq!(v["min"], h.min());
    assert_eq!(v["max"], h.max());
    assert_eq!(v["percentiles"]["99.9"], h.value_at_quantile(0.999));
    assert_eq!(v["percentiles"]["100"], h.max());
    assert_eq!(v["percentiles"].as_object().unwrap().len(), 7);
    assert!((v["mean"].as_f64().unwrap() - h.mean()).abs() < 1e-6);
    let text = serde_json::to_string(&v).unwrap();
    let back = hist_from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(back, h);

    let empty = hist_json(&new_histogram());
    assert_eq!(
        (empty["count"].as_u64(), empty["max"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(hist_from_json(&empty).unwrap().len(), 0);
    assert!(hist_from_json(&serde_json::json!({"unit": "ns"})).is_err());
    let mut wrong_unit = v.clone();
    wrong_unit["unit"] = "us".into();
    assert!(hist_from_json(&wrong_unit).is_err());
    assert!(hist_from_json(&serde_json::json!([1, 2])).is_err());
}

#[test]
fn fmt_ns_picks_units_with_three_digits() {
    assert_eq!(fmt_ns(0), "0ns");
    assert_eq!(fmt_ns(999), "999ns");
    assert_eq!(fmt_ns(1_000), "1.00µs");
    assert_eq!(fmt_ns(12_345), "12.3µs");
    assert_eq!(fmt_ns(123_456), "123µs");
    assert_eq!(fmt_ns(999_700), "1.00ms");
    assert_eq!(fmt_ns(4_560_000), "4.56ms");
    assert_eq!(fmt_ns(1_500_000_000), "1.50s");
    assert_eq!(fmt_ns(60_000_000_000), "60.0s");
    assert_eq!(fmt_ns(5_000_000_000_000), "5000s");
}

#[test]
fn percentile_summary_line() {
    assert_eq!(percentile_summary(&new_histogram()), "n=0");
    let mut h = new_histogram();
    record_ns(&mut h, 500, 990);
    record_ns(&mut h, 2_000_000, 10);
    assert_eq!(
        percentile_summary(&h),
        "n=1000 p50=500ns p90=500ns p99=500ns p99.9=2.00ms p99.99=2.00ms max=2.00ms"
    );
}

#[test]
fn worker_stats_frames_round_trip() {
    let mut ws = WorkerStats::new();
    for (v, c) in spread(4, 2_000) {
        record_ns(&mut ws.service_ns, v, c);
    }
    ws.counters.requests = 12_345;
    ws.counters.short_sends = u64::MAX / 4;
    ws.counters.conns_accepted = 7;
    let frame = worker_stats_to_bytes(&ws);
    let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    let back = worker_stats_from_bytes(&frame).unwrap();
    assert_eq!(back.counters, ws.counters);
    assert_eq!(back.service_ns, ws.service_ns);

    // The parent merges what it reads into a fresh WorkerStats.
    let mut total = WorkerStats::new();
    total.merge(&back);
    total.merge(&back);
    assert_eq!(total.counters.requests, 24_690);
    assert_eq!(total.service_ns.len(), 2 * ws.service_ns.len());

    // Truncated, extended and garbage frames are errors.
    assert!(worker_stats_from_bytes(&frame[..frame.len() - 1]).is_err());
    assert!(worker_stats_from_bytes(&frame[..3]).is_err());
    let mut longer = frame.clone();
    longer.push(0);
    assert!(worker_stats_from_bytes(&longer).is_err());
    let mut bad_k = frame.clone();
    bad_k[4] ^= 1;
    assert!(worker_stats_from_bytes(&bad_k).is_err());

    // A pipe carries frames back to back.
    let empty = WorkerStats::new();
    let mut pipe = frame.clone();
    pipe.extend_from_slice(&worker_stats_to_bytes(&empty));
    let mut r = pipe.as_slice();
    assert_eq!(
        read_worker_stats(&mut r).unwrap().unwrap().counters,
        ws.counters
    );
    assert_eq!(
        read_worker_stats(&mut r).unwrap().unwrap().service_ns.len(),
        0
    );
    assert!(read_worker_stats(&mut r).unwrap().is_none());
    let mut cut = &frame[..10];
    assert_eq!(
        read_worker_stats(&mut cut).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    let huge = (WORKER_FRAME_MAX_BYTES as u32 + 1).to_le_bytes();
    assert_eq!(
        read_worker_stats(&mut &huge[..]).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn counters_values_round_trip() {
    let c = Counters {
        resets: 3,
        cq_overflow: 9,
        ..Counters::default()
    };
    let v = c.values();
    assert_eq!(v.len(), c.fields().len());
    assert_eq!(Counters::from_values(&v), Some(c));
    assert_eq!(Counters::from_values(&v[1..]), None);
    let mut longer = v.clone();
    longer.push(1);
    assert_eq!(Counters::from_values(&longer), None);
}
