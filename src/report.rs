//! `okring report`'s library half: merge latency histograms recorded in
//! several runs or on several machines, losslessly (HdrHistogram `add` of
//! the exact histograms, never an average of percentiles), and render the
//! percentile table. The files it writes (`merged.hgrm`, the spectrum plot)
//! are written by `crate::cli::report`.
//!
//! Inputs, told apart by content (a JSON document starts with `{`):
//! - HdrHistogram interval logs (`.hlog`, from `okring load --hlog`,
//!   `okring serve --hlog` or Java's `HistogramLogWriter`): the untagged
//!   intervals when there are any (okring serve's per-worker tagged lines
//!   break them down), else every interval of every tag, added into one
//!   row per file;
//! - `okring load --json` documents (schema `okring.load/1`): the
//!   `histograms.latency` blob, one row;
//! - bench `results.json` (schema `okring.bench/1`): each successful run's
//!   `histograms.latency` blob, one row per run.
//!
//! Values are ns throughout; the table prints them with automatic units.
//! The plot is the shared spectrum ([`crate::plot::spectrum_svg`]).
//! It does not read `.hgrm` files: they hold percentiles, not the
//! histogram, and cannot be merged exactly.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::error::Error;
use crate::gate::Figures;
use crate::stats::{fmt_ns, hist_from_json, new_histogram, read_hlog};

/// One row of the report: a label and a histogram of ns values.
#[derive(Debug)]
pub struct Input {
    /// `FILE` or, for bench results, `FILE: server c<conns> #<repeat>`.
    pub label: String,
    pub hist: Histogram<u64>,
    /// What the histogram measures: `client latency` (load generator) or
    /// `server service time` (an `okring serve --hlog`, tagged `workerN`),
    /// and for bench results the server, so mixed merges can be flagged.
    pub kind: String,
    /// From `okring load --json`: (requests sent, errors, requests/s);
    /// `None` for interval logs and bench results.
    pub counts: Option<(u64, u64, f64)>,
}

/// Percentiles of the table: (column header, quantile).
pub const REPORT_PERCENTILES: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p75", 0.75),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// An empty histogram that grows past 60 s if an input holds larger
/// values (a Java log with other bounds), so merging never drops samples.
fn merge_target() -> Histogram<u64> {
    let mut h = new_histogram();
    h.auto(true);
    h
}

fn add(into: &mut Histogram<u64>, h: &Histogram<u64>, what: &str) -> Result<(), String> {
    into.add(h)
        .map_err(|e| format!("{what}: cannot merge histogram: {e:?}"))
}

/// Read one input file into one or more rows (module docs list the
/// formats). Errors name the file: unreadable, unknown JSON schema, missing
/// or undecodable histogram, malformed log.
pub fn read_input(path: &Path) -> Result<Vec<Input>, String> {
    let name = path.display().to_string();
    let data = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        let text = String::from_utf8_lossy(&data);
        if text.trim_start().starts_with("Value") || text.contains("#[Mean") {
            return Err(format!(
                "{name} is a percentile distribution (.hgrm): it holds percentiles, not a histogram, so it cannot be merged; pass the run's .hlog or --json file instead"
            ));
        }
        let ivs = read_hlog(data.as_slice()).map_err(|e| format!("{name}: {e}"))?;
        let mut hist = merge_target();
        // With untagged lines present, the tagged ones are their breakdown
        // (okring serve's per-worker lines): merge the untagged only, as
        // HistogramLogProcessor does without -tag. Otherwise every tag.
        let untagged = ivs.iter().any(|iv| iv.tag.is_none());
        for iv in ivs.iter().filter(|iv| !untagged || iv.tag.is_none()) {
            add(&mut hist, &iv.hist, &name)?;
        }
        let server = ivs
            .iter()
            .any(|iv| iv.tag.as_deref().is_some_and(|t| t.starts_with("worker")));
        let kind = if server {
            "server service time"
        } else {
            "client latency"
        };
        return Ok(vec![Input {
            label: name,
            hist,
            kind: kind.into(),
            counts: None,
        }]);
    }
    let v: Value =
        serde_json::from_slice(&data).map_err(|e| format!("{name}: invalid JSON: {e}"))?;
    match v.get("schema").and_then(Value::as_str) {
        Some("okring.load/1") => {
            let h = v
                .pointer("/histograms/latency")
                .ok_or_else(|| format!("{name}: no histograms.latency"))?;
            let hist = hist_from_json(h).map_err(|e| format!("{name}: {e}"))?;
            let num = |p: &str| v.pointer(p).and_then(Value::as_f64);
            let errors = v
                .pointer("/results/errors")
                .and_then(Value::as_object)
                .map(|e| e.values().filter_map(Value::as_u64).sum::<u64>());
            let counts = match (
                num("/results/sent"),
                errors,
                num("/results/requests_per_sec"),
            ) {
                (Some(sent), Some(errors), Some(rps)) => Some((sent as u64, errors, rps)),
                _ => None,
            };
            Ok(vec![Input {
                label: name,
                hist,
                kind: "client latency".into(),
                counts,
            }])
        }
        Some("okring.bench/1") => {
            let runs = v
                .get("runs")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{name}: no runs array"))?;
            let mut out = Vec::new();
            for r in runs {
                let Some(h) = r.pointer("/histograms/latency") else {
                    continue;
                };
                let hist = hist_from_json(h).map_err(|e| format!("{name}: {e}"))?;
                let field = |k: &str| r.get(k).map(|x| x.to_string().replace('"', ""));
                out.push(Input {
                    kind: format!("client latency of {}", field("server").unwrap_or_default()),
                    label: format!(
                        "{name}: {} c{} #{}",
                        field("server").unwrap_or_default(),
                        field("connections").unwrap_or_default(),
                        field("repeat").unwrap_or_default(),
                    ),
                    hist,
                    counts: None,
                });
            }
            if out.is_empty() {
                return Err(format!("{name}: no run with a latency histogram"));
            }
            Ok(out)
        }
        Some(other) => Err(format!(
            "{name}: schema {other:?} is not okring.load/1 or okring.bench/1"
        )),
        None => Err(format!(
            "{name}: JSON without a \"schema\" field (expected okring.load/1 or okring.bench/1)"
        )),
    }
}

/// The baseline comparison: for each of [`REPORT_PERCENTILES`] and max the
/// old and new latency, the change and the ratio; with `counted`, the rate
/// too. Values with automatic units.
pub fn delta_table(old: &Figures<'_>, new: &Figures<'_>, counted: bool) -> String {
    let q = |f: &Figures<'_>, p: f64| {
        if f.latency_ns.is_empty() {
            0
        } else {
            f.latency_ns.value_at_quantile(p)
        }
    };
    let mut s = format!(
        "{:<8} {:>10} {:>10} {:>11} {:>7}\n",
        "vs base", "baseline", "new", "change", "ratio"
    );
    let ratio = |a: f64, b: f64| {
        if a > 0.0 {
            format!("{:.3}", b / a)
        } else {
            "-".into()
        }
    };
    let mut rows: Vec<(&str, u64, u64)> = REPORT_PERCENTILES
        .iter()
        .map(|&(name, p)| (name, q(old, p), q(new, p)))
        .collect();
    rows.push(("max", old.latency_ns.max(), new.latency_ns.max()));
    for (name, a, b) in rows {
        let change = if b >= a {
            format!("+{}", fmt_ns(b - a))
        } else {
            format!("-{}", fmt_ns(a - b))
        };
        s += &format!(
            "{name:<8} {:>10} {:>10} {change:>11} {:>7}\n",
            fmt_ns(a),
            fmt_ns(b),
            ratio(a as f64, b as f64)
        );
    }
    if counted {
        s += &format!(
            "{:<8} {:>10.0} {:>10.0} {:>+11.0} {:>7}\n",
            "req/s",
            old.rps,
            new.rps,
            new.rps - old.rps,
            ratio(old.rps, new.rps)
        );
    }
    s
}

/// All histograms added into one. Errors: an input that cannot be added.
pub fn merge(inputs: &[Input]) -> Result<Histogram<u64>, String> {
    let mut m = merge_target();
    for i in inputs {
        add(&mut m, &i.hist, &i.label)?;
    }
    Ok(m)
}

/// The percentile table: a header, one line per row; columns count,
/// [`REPORT_PERCENTILES`] and max, values in automatic units ([`fmt_ns`]),
/// `-` for an empty histogram.
pub fn table(rows: &[(&str, &Histogram<u64>)]) -> String {
    let w = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut s = format!("{:<w$} {:>10}", "input", "count");
    for (label, _) in REPORT_PERCENTILES {
        s += &format!(" {label:>8}");
    }
    s += &format!(" {:>8}\n", "max");
    for (label, h) in rows {
        s += &format!("{label:<w$} {:>10}", h.len());
        for (_, q) in REPORT_PERCENTILES {
            let v = if h.is_empty() {
                "-".to_string()
            } else {
                fmt_ns(h.value_at_quantile(q))
            };
            s += &format!(" {v:>8}");
        }
        let max = if h.is_empty() {
            "-".to_string()
        } else {
            fmt_ns(h.max())
        };
        s += &format!(" {max:>8}\n");
    }
    s
}

/// Inputs read and merged: one row per input, the merged histogram, and
/// warnings (inputs that measure different things).
pub struct Merged {
    pub inputs: Vec<Input>,
    pub merged: Histogram<u64>,
    pub warnings: Vec<String>,
}

impl Merged {
    /// The figures `--fail-if` judges: the merged latency and, when every
    /// input is an `okring load --json` result, the summed requests sent,
    /// errors and requests/s (the shards of one run add up).
    pub fn figures(&self) -> (Figures<'_>, bool) {
        let all: Option<Vec<(u64, u64, f64)>> = self.inputs.iter().map(|i| i.counts).collect();
        let (sent, errors, rps) = all
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .fold((0, 0, 0.0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        (
            Figures {
                latency_ns: &self.merged,
                sent,
                errors,
                rps,
            },
            all.is_some(),
        )
    }

    /// The table: one row per input and a `merged` row ([`table`]).
    pub fn table(&self) -> String {
        table(&self.rows())
    }

    /// (label, histogram) of every input, then `merged`.
    pub fn rows(&self) -> Vec<(&str, &Histogram<u64>)> {
        let mut rows: Vec<(&str, &Histogram<u64>)> = self
            .inputs
            .iter()
            .map(|i| (i.label.as_str(), &i.hist))
            .collect();
        rows.push(("merged", &self.merged));
        rows
    }
}

/// Read every file ([`read_input`]) and merge them ([`merge`]). Writes
/// nothing. Errors: any input's (the message names the file).
pub fn merge_files(files: &[PathBuf]) -> Result<Merged, Error> {
    let mut inputs = Vec::new();
    for f in files {
        inputs.extend(read_input(f)?);
    }
    let mut kinds: Vec<&str> = inputs.iter().map(|i| i.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut warnings = Vec::new();
    if kinds.len() > 1 {
        warnings.push(format!(
            "the merged row mixes {} — they measure different things; merge like with like",
            kinds.join(", ")
        ));
    }
    let merged = merge(&inputs)?;
    Ok(Merged {
        inputs,
        merged,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::record_ns;

    #[test]
    fn table_has_merged_counts_and_dashes() {
        let mut a = new_histogram();
        record_ns(&mut a, 1_000, 3);
        let b = new_histogram();
        let t = table(&[("a", &a), ("empty", &b)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("input"));
        assert!(
            lines[1].contains(" 3 ") && lines[1].contains("1.00µs"),
            "{t}"
        );
        assert!(lines[2].trim_end().ends_with('-'));
    }

    #[test]
    fn reads_load_and_bench_json() {
        let mut h = new_histogram();
        record_ns(&mut h, 2_000, 7);
        let blob = crate::stats::hist_json(&h);
        let dir = std::env::temp_dir().join(format!("okring-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = dir.join("load.json");
        let doc = serde_json::json!({"schema": "okring.load/1", "histograms": {"latency": blob}});
        std::fs::write(&load, doc.to_string()).unwrap();
        let rows = read_input(&load).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].hist.count_at(2_000), 7);
        let bench = dir.join("results.json");
        let doc = serde_json::json!({"schema": "okring.bench/1", "runs": [
            {"server": "uring", "connections": 8, "repeat": 0, "histograms": {"latency": blob}},
            {"server": "epoll", "connections": 8, "repeat": 0, "ok": false},
            {"server": "epoll", "connections": 8, "repeat": 1, "histograms": {"latency": blob}},
        ]});
        std::fs::write(&bench, doc.to_string()).unwrap();
        let rows = read_input(&bench).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(
            rows[1].label.ends_with(": epoll c8 #1"),
            "{}",
            rows[1].label
        );
        std::fs::write(&bench, r#"{"schema": "other/1"}"#).unwrap();
        assert!(read_input(&bench).unwrap_err().contains("other/1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn merge_adds_exactly() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        record_ns(&mut a, 1_000, 10);
        record_ns(&mut b, 50_000_000, 1);
        let m = merge(&[
            Input {
                label: "a".into(),
                hist: a.clone(),
                kind: "client latency".into(),
                counts: None,
            },
            Input {
                label: "b".into(),
                hist: b,
                kind: "client latency".into(),
                counts: None,
            },
        ])
        .unwrap();
        assert_eq!(m.len(), 11);
        assert_eq!(m.count_at(1_000), 10);
        assert_eq!(m.max(), m.highest_equivalent(50_000_000));
    }
}
