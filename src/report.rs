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
use crate::stats::{fmt_ns, hist_from_json, new_histogram, read_hlog_log};

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
    /// From `okring load --json`; `None` for interval logs and bench results.
    pub counts: Option<Counts>,
    /// Where the run sits on the wall clock, and which shard it was; `None`
    /// for bench results and logs without a StartTime.
    pub run: Option<RunInfo>,
    /// An interval log's intervals on the wall clock (the same series the
    /// histogram sums); empty for JSON inputs.
    pub intervals: Vec<WallInterval>,
}

/// The counts of one `okring load --json` result (`results.*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    /// Requests written (`sent`).
    pub sent: u64,
    /// Responses received in the measured window (`requests`).
    pub requests: u64,
    /// Every error kind summed (`errors.*`).
    pub errors: u64,
    /// `requests_per_sec`.
    pub rps: f64,
}

/// One run's place on the wall clock.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Start of the measured window, seconds since the epoch (UTC): the
    /// JSON's `start_unix_ns`, an interval log's StartTime.
    pub start_unix_s: f64,
    /// Length of the measured window in s: the JSON's `elapsed_s`, the end
    /// of a log's last interval.
    pub length_s: f64,
    /// The load machine's host name (`results.host`, `#[Host: ...]`).
    pub host: Option<String>,
    /// `--shard I/N` as (I, N) (`results.shard`, `#[Shard: I/N]`).
    pub shard: Option<(u32, u32)>,
}

/// One interval of an interval log, on the wall clock.
#[derive(Clone, Debug)]
pub struct WallInterval {
    /// Seconds since the epoch.
    pub start_unix_s: f64,
    /// Seconds.
    pub length_s: f64,
    /// Every series of the log that the input's row sums, added.
    pub hist: Histogram<u64>,
}

fn parse_shard(s: &str) -> Option<(u32, u32)> {
    let (i, n) = s.trim().split_once('/')?;
    Some((i.trim().parse().ok()?, n.trim().parse().ok()?))
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
    if first.is_none() {
        return Err(format!(
            "{name} is empty: expected the JSON of okring load --json, okring bench's results.json or an interval log (--hlog); was the run that writes it cut short?"
        ));
    }
    if first != Some(&b'{') {
        let text = String::from_utf8_lossy(&data);
        if text.trim_start().starts_with("Value") || text.contains("#[Mean") {
            return Err(format!(
                "{name} is a percentile distribution (.hgrm): it holds percentiles, not a histogram, so it cannot be merged; pass the run's .hlog or --json file instead"
            ));
        }
        let log = read_hlog_log(data.as_slice()).map_err(|e| format!("{name}: {e}"))?;
        let ivs = &log.intervals;
        let mut hist = merge_target();
        // With untagged lines present, the tagged ones are their breakdown
        // (okring serve's per-worker lines): merge the untagged only, as
        // HistogramLogProcessor does without -tag. Otherwise every tag.
        let untagged = ivs.iter().any(|iv| iv.tag.is_none());
        // The same series on the wall clock, tags of one start added (keyed
        // by µs from StartTime).
        let mut by_start: std::collections::BTreeMap<i64, (f64, f64, Histogram<u64>)> =
            Default::default();
        for iv in ivs.iter().filter(|iv| !untagged || iv.tag.is_none()) {
            add(&mut hist, &iv.hist, &name)?;
            if log.start_time_s.is_some() {
                let key = (iv.start_s * 1e6).round() as i64;
                let slot = by_start
                    .entry(key)
                    .or_insert_with(|| (iv.start_s, iv.length_s, merge_target()));
                slot.1 = slot.1.max(iv.length_s);
                add(&mut slot.2, &iv.hist, &name)?;
            }
        }
        let server = ivs
            .iter()
            .any(|iv| iv.tag.as_deref().is_some_and(|t| t.starts_with("worker")));
        let kind = if server {
            "server service time"
        } else {
            "client latency"
        };
        let comment = |key: &str| {
            log.comments
                .iter()
                .find_map(|c| c.strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let (run, intervals) = match log.start_time_s {
            Some(t0) => {
                let intervals: Vec<WallInterval> = by_start
                    .into_values()
                    .map(|(start, len, hist)| WallInterval {
                        start_unix_s: t0 + start,
                        length_s: len,
                        hist,
                    })
                    .collect();
                let end = intervals
                    .iter()
                    .map(|i| i.start_unix_s + i.length_s)
                    .fold(t0, f64::max);
                let run = RunInfo {
                    start_unix_s: t0,
                    length_s: end - t0,
                    host: comment("Host:"),
                    shard: comment("Shard:").as_deref().and_then(parse_shard),
                };
                (Some(run), intervals)
            }
            None => (None, Vec::new()),
        };
        return Ok(vec![Input {
            label: name,
            hist,
            kind: kind.into(),
            counts: None,
            run,
            intervals,
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
                num("/results/requests"),
                errors,
                num("/results/requests_per_sec"),
            ) {
                (Some(sent), Some(requests), Some(errors), Some(rps)) => Some(Counts {
                    sent: sent as u64,
                    requests: requests as u64,
                    errors,
                    rps,
                }),
                _ => None,
            };
            let run = match (num("/results/start_unix_ns"), num("/results/elapsed_s")) {
                (Some(ns), Some(len)) if ns > 0.0 => Some(RunInfo {
                    start_unix_s: ns / 1e9,
                    length_s: len,
                    host: v
                        .pointer("/results/host")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    shard: v
                        .pointer("/results/shard")
                        .and_then(Value::as_str)
                        .and_then(parse_shard),
                }),
                _ => None,
            };
            Ok(vec![Input {
                label: name,
                hist,
                kind: "client latency".into(),
                counts,
                run,
                intervals: Vec::new(),
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
                    run: None,
                    intervals: Vec::new(),
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

/// The inputs that sit on the wall clock ([`Input::run`]), taken together.
#[derive(Clone, Debug, PartialEq)]
pub struct Combined {
    /// How many inputs have a [`RunInfo`].
    pub inputs: usize,
    /// Earliest start, seconds since the epoch.
    pub start_unix_s: f64,
    /// From the earliest start to the latest end, s.
    pub span_s: f64,
    /// The window every input covers (latest start to earliest end), s;
    /// negative when two inputs do not overlap at all.
    pub overlap_s: f64,
    /// Responses counted: `results.requests` of JSON inputs, the histogram
    /// count of interval logs.
    pub requests: u64,
}

impl Combined {
    /// Requests per second of wall clock: `requests / span_s`.
    pub fn rate(&self) -> f64 {
        if self.span_s > 0.0 {
            self.requests as f64 / self.span_s
        } else {
            0.0
        }
    }

    /// `combined: N inputs, R requests in S s of wall clock from T UTC: X req/s`.
    pub fn line(&self) -> String {
        format!(
            "combined: {} input{}, {} requests in {:.3} s of wall clock from {}: {:.1} req/s\n",
            self.inputs,
            if self.inputs == 1 { "" } else { "s" },
            self.requests,
            self.span_s,
            utc_datetime(self.start_unix_s),
            self.rate()
        )
    }
}

/// [`Combined`] of the inputs that have a [`RunInfo`]; `None` when none has.
pub fn combined(inputs: &[Input]) -> Option<Combined> {
    let runs: Vec<(&Input, &RunInfo)> = inputs
        .iter()
        .filter_map(|i| i.run.as_ref().map(|r| (i, r)))
        .collect();
    let spans = runs
        .iter()
        .map(|(_, r)| (r.start_unix_s, r.start_unix_s + r.length_s));
    let (start, end, last_start, first_end) = spans.clone().next().map(|(s, e)| {
        spans.fold((s, e, s, e), |a, (s, e)| {
            (a.0.min(s), a.1.max(e), a.2.max(s), a.3.min(e))
        })
    })?;
    let requests = runs
        .iter()
        .map(|(i, _)| i.counts.map_or(i.hist.len(), |c| c.requests))
        .sum();
    Some(Combined {
        inputs: runs.len(),
        start_unix_s: start,
        span_s: end - start,
        overlap_s: first_end - last_start,
        requests,
    })
}

/// Interval logs lined up on the wall clock: one row per interval slot,
/// each the exact merge of every log's interval that starts in it.
#[derive(Debug)]
pub struct Timeline {
    /// Slot length, s: the commonest interval length of the logs.
    pub slot_s: f64,
    /// How many inputs contribute intervals.
    pub sources: usize,
    /// In time order; slots no log covers are left out.
    pub rows: Vec<TimelineRow>,
}

/// One slot of a [`Timeline`].
#[derive(Debug)]
pub struct TimelineRow {
    /// Slot start, seconds since the epoch.
    pub start_unix_s: f64,
    /// Longest interval placed in the slot, s (the last one may be short).
    pub length_s: f64,
    /// How many inputs have an interval in the slot.
    pub sources: usize,
    /// Their histograms, added.
    pub hist: Histogram<u64>,
}

/// The [`Timeline`] of every input's [`Input::intervals`]; `None` when no
/// input has any. An interval goes to the slot nearest its start, so logs
/// started a few ms apart share rows. Errors: a histogram that cannot be
/// added.
pub fn timeline(inputs: &[Input]) -> Result<Option<Timeline>, String> {
    let mut lengths: Vec<i64> = inputs
        .iter()
        .flat_map(|i| &i.intervals)
        .map(|iv| (iv.length_s * 1e3).round() as i64)
        .filter(|&ms| ms > 0)
        .collect();
    if lengths.is_empty() {
        return Ok(None);
    }
    lengths.sort_unstable();
    let mut commonest = (lengths[0], 0usize);
    let mut run = (lengths[0], 0usize);
    for &l in &lengths {
        run = if l == run.0 { (l, run.1 + 1) } else { (l, 1) };
        if run.1 > commonest.1 {
            commonest = run;
        }
    }
    let slot_s = commonest.0 as f64 / 1e3;
    let t0 = inputs
        .iter()
        .flat_map(|i| &i.intervals)
        .map(|iv| iv.start_unix_s)
        .fold(f64::INFINITY, f64::min);
    let mut slots: std::collections::BTreeMap<i64, (TimelineRow, Vec<usize>)> = Default::default();
    let mut sources = 0;
    for (n, input) in inputs.iter().enumerate() {
        sources += usize::from(!input.intervals.is_empty());
        // A log's last interval can be a sliver past the window's end
        // with nothing in it: not a row.
        for iv in input
            .intervals
            .iter()
            .filter(|iv| !iv.hist.is_empty() || iv.length_s >= slot_s / 2.0)
        {
            let k = ((iv.start_unix_s - t0) / slot_s).round() as i64;
            let (row, from) = slots.entry(k).or_insert_with(|| {
                (
                    TimelineRow {
                        start_unix_s: t0 + k as f64 * slot_s,
                        length_s: 0.0,
                        sources: 0,
                        hist: merge_target(),
                    },
                    Vec::new(),
                )
            });
            row.length_s = row.length_s.max(iv.length_s);
            add(&mut row.hist, &iv.hist, &input.label)?;
            if !from.contains(&n) {
                from.push(n);
            }
        }
    }
    Ok(Some(Timeline {
        slot_s,
        sources,
        rows: slots
            .into_values()
            .map(|(row, from)| TimelineRow {
                sources: from.len(),
                ..row
            })
            .collect(),
    }))
}

impl Timeline {
    /// The per-interval table: slot start (UTC time of day), inputs
    /// contributing out of [`Timeline::sources`], count, req/s (count over
    /// the slot's length), p50, p99, p99.9, max.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<14} {:>6} {:>10} {:>11} {:>8} {:>8} {:>8} {:>8}\n",
            "interval (UTC)", "inputs", "count", "req/s", "p50", "p99", "p99.9", "max"
        );
        for r in &self.rows {
            let q = |p: f64| {
                if r.hist.is_empty() {
                    "-".to_string()
                } else {
                    fmt_ns(r.hist.value_at_quantile(p))
                }
            };
            let max = if r.hist.is_empty() {
                "-".to_string()
            } else {
                fmt_ns(r.hist.max())
            };
            let rate = if r.length_s > 0.0 {
                r.hist.len() as f64 / r.length_s
            } else {
                0.0
            };
            s += &format!(
                "{:<14} {:>6} {:>10} {:>11.1} {:>8} {:>8} {:>8} {:>8}\n",
                utc_time_of_day(r.start_unix_s),
                format!("{}/{}", r.sources, self.sources),
                r.hist.len(),
                rate,
                q(0.5),
                q(0.99),
                q(0.999),
                max
            );
        }
        s
    }
}

/// `HH:MM:SS.mmm` of a time in seconds since the epoch, UTC.
fn utc_time_of_day(unix_s: f64) -> String {
    let ms = (unix_s * 1e3).round() as i64;
    let sod = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// The IMF-fixdate date and the time of day with ms, e.g.
/// `Wed, 02 Dec 2026 10:00:00.250 UTC`.
fn utc_datetime(unix_s: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(unix_s.max(0.0));
    let date = httpdate::fmt_http_date(t);
    let day = date.get(..16).unwrap_or(&date);
    format!("{day} {} UTC", utc_time_of_day(unix_s))
}

/// What is off about inputs meant to be one run's shards: the same run
/// given twice (a JSON result and its interval log: counted twice), shards
/// of different totals, a shard given twice, a shard missing, and inputs
/// that share less than 90 % of their wall-clock span.
pub fn shard_warnings(inputs: &[Input]) -> Vec<String> {
    let runs: Vec<(&str, &RunInfo)> = inputs
        .iter()
        .filter_map(|i| i.run.as_ref().map(|r| (i.label.as_str(), r)))
        .collect();
    let mut w = Vec::new();
    let same_run = |a: &RunInfo, b: &RunInfo| {
        a.host == b.host && a.shard == b.shard && (a.start_unix_s - b.start_unix_s).abs() < 0.002
    };
    let mut twice = vec![false; runs.len()];
    for a in 0..runs.len() {
        for b in a + 1..runs.len() {
            if same_run(runs[a].1, runs[b].1) {
                twice[b] = true;
                w.push(format!(
                    "{} and {} are the same run (host, shard and start agree): merged, its requests count twice; pass one of them",
                    runs[a].0, runs[b].0
                ));
            }
        }
    }
    let shards: Vec<(&str, (u32, u32))> = runs
        .iter()
        .zip(&twice)
        .filter(|(_, &t)| !t)
        .filter_map(|((l, r), _)| r.shard.map(|s| (*l, s)))
        .collect();
    let mut totals: Vec<u32> = shards.iter().map(|(_, (_, n))| *n).collect();
    totals.sort_unstable();
    totals.dedup();
    if totals.len() > 1 {
        let list: Vec<String> = totals.iter().map(|n| format!("/{n}")).collect();
        w.push(format!(
            "the inputs are shards of different runs ({}): merge one run's shards",
            list.join(", ")
        ));
    }
    for &n in &totals {
        for i in 1..=n {
            let with: Vec<&str> = shards
                .iter()
                .filter(|(_, s)| *s == (i, n))
                .map(|(l, _)| *l)
                .collect();
            match with.len() {
                0 => w.push(format!(
                    "shard {i}/{n} is missing: the merge holds {} of {n} shards, so it is not the whole run",
                    shards.iter().filter(|(_, (_, m))| *m == n).count()
                )),
                1 => {}
                _ => w.push(format!("shard {i}/{n} appears more than once: {}", with.join(", "))),
            }
        }
    }
    if let Some(c) = combined(inputs) {
        if c.inputs > 1 && c.overlap_s < 0.9 * c.span_s {
            w.push(format!(
                "the inputs share only {:.3} s of their {:.3} s wall-clock span ({:.0} %): the combined rate and the per-interval rows mix unlike load; start them together (okring load --start-at)",
                c.overlap_s.max(0.0),
                c.span_s,
                100.0 * c.overlap_s.max(0.0) / c.span_s
            ));
        }
    }
    w
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
        let all: Option<Vec<Counts>> = self.inputs.iter().map(|i| i.counts).collect();
        let (sent, errors, rps) = all
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .fold((0, 0, 0.0), |a, c| {
                (a.0 + c.sent, a.1 + c.errors, a.2 + c.rps)
            });
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
    warnings.extend(shard_warnings(&inputs));
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
        // An empty file (a shard whose stdout was lost) is an error, not an
        // interval log with no intervals.
        std::fs::write(&bench, " \n").unwrap();
        let err = read_input(&bench).unwrap_err();
        assert!(err.contains("is empty"), "{err}");
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
                run: None,
                intervals: Vec::new(),
            },
            Input {
                label: "b".into(),
                hist: b,
                kind: "client latency".into(),
                counts: None,
                run: None,
                intervals: Vec::new(),
            },
        ])
        .unwrap();
        assert_eq!(m.len(), 11);
        assert_eq!(m.count_at(1_000), 10);
        assert_eq!(m.max(), m.highest_equivalent(50_000_000));
    }

    fn log_input(label: &str, t0: f64, per_interval: &[u64], shard: Option<(u32, u32)>) -> Input {
        let mut hist = new_histogram();
        let intervals: Vec<WallInterval> = per_interval
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                let mut h = new_histogram();
                if n > 0 {
                    record_ns(&mut h, 1_000 * (k as u64 + 1), n);
                }
                hist.add(&h).unwrap();
                WallInterval {
                    start_unix_s: t0 + k as f64,
                    length_s: 1.0,
                    hist: h,
                }
            })
            .collect();
        Input {
            label: label.into(),
            hist,
            kind: "client latency".into(),
            counts: None,
            run: Some(RunInfo {
                start_unix_s: t0,
                length_s: per_interval.len() as f64,
                host: Some("h".into()),
                shard,
            }),
            intervals,
        }
    }

    const T0: f64 = 1_796_203_402.406;

    #[test]
    fn timeline_lines_up_logs_started_apart_by_ms() {
        let a = log_input("a", T0, &[10, 20, 30], Some((1, 2)));
        let b = log_input("b", T0 + 0.004, &[1, 2, 3], Some((2, 2)));
        let inputs = [a, b];
        let t = timeline(&inputs).unwrap().unwrap();
        assert_eq!(t.slot_s, 1.0);
        assert_eq!(t.sources, 2);
        let counts: Vec<u64> = t.rows.iter().map(|r| r.hist.len()).collect();
        assert_eq!(counts, [11, 22, 33]);
        assert!(t.rows.iter().all(|r| r.sources == 2));
        assert_eq!(t.rows[1].hist.count_at(2_000), 22);
        let table = t.table();
        assert!(
            table.lines().nth(1).unwrap().starts_with("09:23:22.406"),
            "{table}"
        );
        let c = combined(&inputs).unwrap();
        assert_eq!(c.requests, 66);
        assert!((c.span_s - 3.004).abs() < 1e-6, "{c:?}");
        assert!((c.overlap_s - 2.996).abs() < 1e-6, "{c:?}");
        assert!(c.line().contains("66 requests in 3.004 s"), "{}", c.line());
        assert!(shard_warnings(&inputs).is_empty());
    }

    #[test]
    fn shard_warnings_name_what_is_off() {
        let w = shard_warnings(&[
            log_input("a", T0, &[1], Some((1, 3))),
            log_input("b", T0, &[1], Some((3, 3))),
        ]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("shard 2/3 is missing"), "{w:?}");
        let w = shard_warnings(&[
            log_input("a", T0, &[1], Some((1, 2))),
            log_input("b", T0 + 0.5, &[1], Some((1, 2))),
        ]);
        assert!(
            w.iter()
                .any(|m| m.contains("shard 1/2 appears more than once: a, b")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|m| m.contains("shard 2/2 is missing")),
            "{w:?}"
        );
        assert!(w.iter().any(|m| m.contains("share only 0.500 s")), "{w:?}");
        // A JSON result and its own interval log: the same run twice.
        let mut json = log_input("run.json", T0 + 0.0004, &[5], Some((1, 1)));
        json.intervals.clear();
        let w = shard_warnings(&[log_input("run.hlog", T0, &[5], Some((1, 1))), json]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("run.hlog and run.json are the same run"),
            "{w:?}"
        );
        let w = shard_warnings(&[
            log_input("a", T0, &[1], Some((1, 1))),
            log_input("b", T0, &[1], Some((1, 2))),
            log_input("c", T0, &[1], Some((2, 2))),
        ]);
        assert!(
            w.iter().any(|m| m.contains("different runs (/1, /2)")),
            "{w:?}"
        );
    }
}
