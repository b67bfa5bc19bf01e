//! The bench's outputs other than plots: the summary table (stdout and
//! report.md), results.json (schema `okring.bench/1`) and one merged
//! `.hgrm` per (server, connections) across repeats.
//!
//! Figures: requests/s and server CPU per request are the median over
//! repeats; ratios are the median of per-repeat ratios to the baseline
//! server (epoll when it ran, else the first server) measured in the same
//! repeat; latency percentiles come from the histograms of all repeats
//! merged (percentiles are never averaged). It does not measure anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::cpu::format_cpu_list;
use super::kernel::PerRequest;
use super::run::{LoadGen, RunRecord};
use super::sweep::Sweep;
use super::BenchConfig;
use crate::stats::{fmt_ns, hist_json, median, new_histogram, write_hgrm, HgrmSummary};

/// Schema name of results.json.
pub const RESULTS_SCHEMA: &str = "okring.bench/1";

/// What the machine was.
#[derive(Clone, Debug, Default)]
pub struct HostInfo {
    /// `uname -r`.
    pub kernel: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs online (`available_parallelism`).
    pub cpus: usize,
    /// `rustc --version`, when rustc is on PATH.
    pub rustc: Option<String>,
    /// okring's version (Cargo package version).
    pub okring_version: String,
    /// The git commit okring was built from (build.rs), or `unknown`.
    pub commit: String,
}

impl HostInfo {
    /// Read uname(2), /proc/cpuinfo and `rustc --version`.
    pub fn collect() -> HostInfo {
        let kernel = uname_release();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        HostInfo {
            kernel,
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rustc,
            okring_version: env!("CARGO_PKG_VERSION").to_string(),
            commit: env!("OKRING_COMMIT").to_string(),
        }
    }
}

fn uname_release() -> String {
    crate::sys::kernel_release().unwrap_or_else(|| "unknown".into())
}

/// The figures of one (server, connections, load generator) group.
#[derive(Clone, Debug)]
pub struct Summary {
    pub server: String,
    pub connections: usize,
    pub load: LoadGen,
    /// Successful runs in the group.
    pub runs: usize,
    /// Median requests/s over repeats.
    pub requests_per_sec: f64,
    /// Median server CPU µs per request over repeats.
    pub cpu_us_per_req: f64,
    /// Median server CPU use (1.0 = one CPU).
    pub cpu_util: f64,
    /// Median of per-repeat (requests/s ÷ baseline's); `None` without a baseline run.
    pub rps_ratio: Option<f64>,
    /// Median of per-repeat (CPU/request ÷ baseline's).
    pub cpu_ratio: Option<f64>,
    /// okring load: every repeat's latency merged, ns.
    pub latency: Option<Histogram<u64>>,
    /// wrk: median over repeats of each printed percentile, (percentile, ns).
    pub peer_percentiles_ns: Vec<(f64, u64)>,
    /// Sum of errors over repeats.
    pub errors: u64,
    /// Sum of requests sent over repeats.
    pub sent: u64,
    /// Medians over repeats of what the kernel did per request.
    pub kernel: PerRequest,
}

/// The baseline server label: `epoll` when it ran, else the first server.
pub fn baseline(cfg: &BenchConfig) -> String {
    if cfg.servers.iter().any(|s| s.label == "epoll") {
        "epoll".into()
    } else {
        cfg.servers
            .first()
            .map(|s| s.label.clone())
            .unwrap_or_default()
    }
}

/// Group the records and compute the figures, in `cfg` order (connections,
/// then servers as listed, okring load before wrk).
pub fn summarize(cfg: &BenchConfig, records: &[RunRecord]) -> Vec<Summary> {
    let base = baseline(cfg);
    let find = |server: &str, conns: usize, load: LoadGen, rep: usize| {
        records.iter().find(|r| {
            r.server == server && r.connections == conns && r.load == load && r.repeat == rep
        })
    };
    let mut out = Vec::new();
    let loads: &[LoadGen] = if cfg.wrk.is_some() {
        &[LoadGen::Okring, LoadGen::Wrk]
    } else {
        &[LoadGen::Okring]
    };
    for &conns in &cfg.connections {
        for &load in loads {
            for spec in &cfg.servers {
                let group: Vec<&RunRecord> = records
                    .iter()
                    .filter(|r| r.server == spec.label && r.connections == conns && r.load == load)
                    .collect();
                let ok: Vec<(&RunRecord, &super::run::RunData)> = group
                    .iter()
                    .filter_map(|r| r.outcome.as_ref().ok().map(|d| (*r, d)))
                    .collect();
                let mut latency: Option<Histogram<u64>> = None;
                for (_, d) in &ok {
                    if let Some(h) = &d.latency {
                        let m = latency.get_or_insert_with(new_histogram);
                        // Cannot fail: every okring histogram has the same bounds.
                        let _ = m.add(h);
                    }
                }
                let mut rps_ratios = Vec::new();
                let mut cpu_ratios = Vec::new();
                for (r, d) in &ok {
                    if let Some(Ok(b)) = find(&base, conns, load, r.repeat).map(|b| &b.outcome) {
                        if b.requests_per_sec > 0.0 {
                            rps_ratios.push(d.requests_per_sec / b.requests_per_sec);
                        }
                        if b.server_cpu_us_per_req > 0.0 {
                            cpu_ratios.push(d.server_cpu_us_per_req / b.server_cpu_us_per_req);
                        }
                    }
                }
                let mut peer = Vec::new();
                if let Some((_, first)) = ok.first() {
                    for (p, _) in &first.peer_percentiles_ns {
                        // By percentile, not position: wrk may drop one.
                        let vals: Vec<f64> = ok
                            .iter()
                            .filter_map(|(_, d)| {
                                d.peer_percentiles_ns
                                    .iter()
                                    .find(|x| x.0 == *p)
                                    .map(|x| x.1 as f64)
                            })
                            .collect();
                        peer.push((*p, median(&vals).unwrap_or(0.0) as u64));
                    }
                }
                let col = |f: fn(&super::run::RunData) -> f64| {
                    median(&ok.iter().map(|(_, d)| f(d)).collect::<Vec<_>>()).unwrap_or(0.0)
                };
                out.push(Summary {
                    server: spec.label.clone(),
                    connections: conns,
                    load,
                    runs: ok.len(),
                    requests_per_sec: col(|d| d.requests_per_sec),
                    cpu_us_per_req: col(|d| d.server_cpu_us_per_req),
                    cpu_util: col(|d| d.server_cpu_util),
                    rps_ratio: median(&rps_ratios),
                    cpu_ratio: median(&cpu_ratios),
                    latency,
                    peer_percentiles_ns: peer,
                    errors: ok.iter().map(|(_, d)| d.errors).sum(),
                    sent: ok.iter().map(|(_, d)| d.sent).sum(),
                    kernel: PerRequest::median_of(
                        &ok.iter().map(|(_, d)| &d.kernel).collect::<Vec<_>>(),
                    ),
                });
            }
        }
    }
    out
}

/// How the client latency was measured, for labels.
pub fn loop_label(cfg: &BenchConfig) -> String {
    let label = match cfg.rate {
        Some(r) => format!(
            "open loop at {r} req/s: latency from each request's intended send time (corrected for coordinated omission)"
        ),
        None if cfg.pipeline > 1 => format!(
            "closed loop, {} requests pipelined per write: latency from each batch's send (not corrected for coordinated omission)",
            cfg.pipeline
        ),
        None => "closed loop: latency from each request's send (not corrected for coordinated omission)".into(),
    };
    if cfg.close {
        format!("{label}; a new connection per request (Connection: close)")
    } else {
        label
    }
}

/// The summary table as Markdown (also what stdout shows).
pub fn table_text(cfg: &BenchConfig, summary: &[Summary]) -> String {
    let base = baseline(cfg);
    let mut s = String::new();
    let _ = writeln!(s, "Client latency: {}.", loop_label(cfg));
    let _ = writeln!(
        s,
        "Medians over {} repeat(s); latency from all repeats' histograms merged (wrk rows: medians of the percentiles wrk prints; wrk's latency is not corrected for coordinated omission); ratios are medians of per-repeat ratios to {base}.\n",
        cfg.repeat
    );
    let _ = writeln!(
        s,
        "| server | conns | load | req/s | p50 | p99 | p99.9 | max | server CPU µs/req | server CPU | req/s ÷ {base} | CPU/req ÷ {base} | errors |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let ratio = |r: Option<f64>| r.map_or("–".to_string(), |r| format!("{r:.2}"));
    for x in summary {
        if x.runs == 0 {
            let _ = writeln!(
                s,
                "| {} | {} | {} | failed | | | | | | | | | |",
                x.server,
                x.connections,
                x.load.name()
            );
            continue;
        }
        let (p50, p99, p999, max) = match &x.latency {
            Some(h) if !h.is_empty() => (
                fmt_ns(h.value_at_quantile(0.5)),
                fmt_ns(h.value_at_quantile(0.99)),
                fmt_ns(h.value_at_quantile(0.999)),
                fmt_ns(h.max()),
            ),
            _ => {
                let p = |q: f64| {
                    x.peer_percentiles_ns
                        .iter()
                        .find(|p| p.0 == q)
                        .map_or("–".to_string(), |p| fmt_ns(p.1))
                };
                (p(50.0), p(99.0), "–".into(), "–".into())
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {p50} | {p99} | {p999} | {max} | {:.2} | {:.0}% | {} | {} | {} |",
            x.server,
            x.connections,
            x.load.name(),
            x.requests_per_sec,
            x.cpu_us_per_req,
            x.cpu_util * 100.0,
            ratio(x.rps_ratio),
            ratio(x.cpu_ratio),
            x.errors
        );
    }
    s
}

/// How many system calls [`kernel_table_text`] names per row.
pub const SYSCALLS_NAMED: usize = 5;

/// The per-request kernel accounting table as Markdown (also on stdout).
pub fn kernel_table_text(summary: &[Summary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| server | conns | load | user µs | sys µs | syscalls | most made (per request) | ctx switches, server CPUs | vol / invol, server threads | minor faults | event loop | accepts | closes |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|"
    );
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    for x in summary.iter().filter(|x| x.runs > 0) {
        let k = &x.kernel;
        let named: Vec<String> = k
            .syscalls_by_name
            .iter()
            .take(SYSCALLS_NAMED)
            .map(|(n, v)| format!("{n} {v:.2}"))
            .collect();
        let event_loop = match (k.ring_enters, k.epoll_waits) {
            (Some(e), _) => format!(
                "{e:.3} io_uring_enter, {} CQEs each",
                k.cqes_per_enter.map_or("–".into(), |c| format!("{c:.1}"))
            ),
            (None, Some(w)) => format!(
                "{w:.3} epoll_wait, {} events each",
                k.events_per_wait.map_or("–".into(), |c| format!("{c:.1}"))
            ),
            (None, None) => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.2} | {:.2} | {event_loop} | {} | {} |",
            x.server,
            x.connections,
            x.load.name(),
            opt(k.user_us),
            opt(k.sys_us),
            match (&k.syscalls, k.syscalls_source.as_deref()) {
                (Some(v), Some(src)) if src != super::kernel::PERF_SOURCE => format!("{v:.2}†"),
                (v, _) => opt(*v),
            },
            if named.is_empty() { "–".into() } else { named.join(", ") },
            opt(k.context_switches),
            k.voluntary_switches,
            k.involuntary_switches,
            k.minor_faults,
            opt(k.accepts),
            opt(k.closes),
        );
    }
    let mut sources: Vec<String> = summary
        .iter()
        .filter_map(|x| x.kernel.syscalls_source.clone())
        .filter(|src| src != super::kernel::PERF_SOURCE)
        .collect();
    sources.dedup();
    for src in sources {
        let _ = writeln!(
            s,
            "\n† system calls counted by {src}; the other columns are from the timed runs."
        );
    }
    s
}

/// What [`kernel_table_text`]'s columns are and where they come from.
pub const KERNEL_METHOD: &str = "Per request, over the measured window only. user/sys µs: the server CPU µs/req of the table above \
(schedstat of every live thread plus the children reaped, from /proc), split in the proportion of the \
utime/stime tick counts (– when the window saw under 10 ticks): a sample of which mode the CPU was in at \
each timer tick, coarse for many short-lived processes (fork's children). minor faults: minflt + cminflt of the process tree. syscalls and ctx switches: perf counters on the server's CPUs \
(perf_event_open, counting mode: raw_syscalls:sys_enter, syscalls:sys_enter_NAME and the context-switch software event), \
every task there, so they include a fork server's exited children and the idle task the CPU switches to and from. \
vol / invol: voluntary and involuntary switches of the server's live threads from /proc/PID/task/*/status \
(threads and processes that have exited are not in it). event loop, accepts, closes: the server's own counters \
from its /metrics endpoint, per request it counted (uring, epoll and prefork modes).";

fn hgrm_json(h: &HgrmSummary) -> Value {
    let at = |q: f64| {
        h.rows
            .iter()
            .find(|r| r.percentile >= q)
            .map(|r| r.value_ms)
    };
    json!({
        "unit": "ms",
        "count": h.total_count,
        "max_ms": h.max_ms,
        "mean_ms": h.mean_ms,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "p99.9_ms": at(0.999),
    })
}

/// results.json: schema [`RESULTS_SCHEMA`].
pub fn results_json(
    cfg: &BenchConfig,
    host: &HostInfo,
    command: &[String],
    records: &[RunRecord],
    summary: &[Summary],
    sweep: Option<&Sweep>,
) -> Value {
    let runs: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut v = json!({
                "id": r.id,
                "repeat": r.repeat,
                "order": r.order,
                "server": r.server,
                "connections": r.connections,
                "load": r.load.name(),
                "ok": r.outcome.is_ok(),
            });
            match &r.outcome {
                Ok(d) => {
                    let mut hists = serde_json::Map::new();
                    if let Some(h) = &d.latency {
                        hists.insert("latency".into(), hist_json(h));
                    }
                    if let Some(h) = &d.uncorrected {
                        hists.insert("uncorrected".into(), hist_json(h));
                    }
                    if let Some(h) = &d.schedule_lag {
                        hists.insert("schedule_lag".into(), hist_json(h));
                    }
                    v["results"] = json!({
                        "requests": d.requests,
                        "elapsed_s": d.elapsed_s,
                        "requests_per_sec": d.requests_per_sec,
                        "errors": d.errors,
                        "errors_detail": d.errors_detail,
                        "server_cpu_s": d.server_cpu_s,
                        "server_cpu_us_per_req": d.server_cpu_us_per_req,
                        "server_cpu_util": d.server_cpu_util,
                        "kernel_per_request": d.kernel,
                        "peer_percentiles_ns": d.peer_percentiles_ns,
                        "warnings": d.warnings,
                    });
                    v["histograms"] = Value::Object(hists);
                    v["server_service_time"] =
                        d.server_hist.as_ref().map_or(Value::Null, hgrm_json);
                    v["files"] = json!(d.files);
                }
                Err(e) => v["error"] = json!(e),
            }
            v
        })
        .collect();
    let sums: Vec<Value> = summary
        .iter()
        .map(|x| {
            json!({
                "server": x.server,
                "connections": x.connections,
                "load": x.load.name(),
                "runs": x.runs,
                "requests_per_sec_median": x.requests_per_sec,
                "server_cpu_us_per_req_median": x.cpu_us_per_req,
                "server_cpu_util_median": x.cpu_util,
                "requests_per_sec_ratio": x.rps_ratio,
                "server_cpu_per_req_ratio": x.cpu_ratio,
                "kernel_per_request_median": x.kernel,
                "errors": x.errors,
                "latency_merged": x.latency.as_ref().map(hist_json),
                "peer_percentiles_ns": x.peer_percentiles_ns,
            })
        })
        .collect();
    json!({
        "schema": RESULTS_SCHEMA,
        "okring_version": host.okring_version,
        "command": command,
        "written": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "host": {
            "kernel": host.kernel,
            "cpu_model": host.cpu_model,
            "cpus": host.cpus,
            "rustc": host.rustc,
            "okring_commit": host.commit,
        },
        "config": {
            "servers": cfg.servers.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
            "connections": cfg.connections,
            "duration_s": cfg.duration.as_secs_f64(),
            "warmup_s": cfg.warmup.as_secs_f64(),
            "rate": cfg.rate,
            "pipeline": cfg.pipeline,
            "close": cfg.close,
            "repeat": cfg.repeat,
            "server_cpus": cfg.server_cpus,
            "client_cpus": cfg.client_cpus,
            "wrk": cfg.wrk.is_some(),
            "baseline": baseline(cfg),
            "latency": loop_label(cfg),
            "notes": cfg.notes,
        },
        "runs": runs,
        "summary": sums,
        "sweep": sweep.map(Sweep::json),
    })
}

/// One `--trace` result: the server label and its rendered trace, or why
/// it could not be traced.
pub type Trace = (String, Result<String, String>);

/// report.md: command, host, pinning, the table, failures and file list.
pub fn report_md(
    cfg: &BenchConfig,
    host: &HostInfo,
    command: &[String],
    records: &[RunRecord],
    summary: &[Summary],
    traces: &[Trace],
    sweep: Option<&Sweep>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# okring bench\n");
    let _ = writeln!(s, "- command: `{}`", command.join(" "));
    let _ = writeln!(
        s,
        "- okring: {} (commit {})",
        host.okring_version, host.commit
    );
    let _ = writeln!(s, "- kernel: {}", host.kernel);
    let _ = writeln!(s, "- CPU: {} ({} online)", host.cpu_model, host.cpus);
    let _ = writeln!(
        s,
        "- rustc: {}",
        host.rustc.as_deref().unwrap_or("not on PATH")
    );
    let _ = writeln!(
        s,
        "- pinning: server on CPU {}, load generator on CPU {} (sched_setaffinity)",
        format_cpu_list(&cfg.server_cpus),
        format_cpu_list(&cfg.client_cpus)
    );
    let _ = writeln!(
        s,
        "- each run: {} warm-up (not measured), {} measured, repeat {} (order alternates)",
        humantime::format_duration(cfg.warmup),
        humantime::format_duration(cfg.duration),
        cfg.repeat
    );
    if cfg.wrk.is_some() {
        let _ = writeln!(
            s,
            "- wrk drove each server for a further {} after okring's window",
            humantime::format_duration(cfg.duration)
        );
    }
    for n in &cfg.notes {
        let _ = writeln!(s, "- note: {n}");
    }
    let _ = writeln!(s, "\n## Results\n");
    s.push_str(&table_text(cfg, summary));
    let _ = writeln!(
        s,
        "\nServer CPU is the CPU time of the server's whole process tree from /proc (schedstat of every \
         live thread, plus the children it has reaped), over the measured window only; µs/req divides it \
         by the requests the load generator counted."
    );
    let _ = writeln!(s, "\n## What the kernel did per request\n");
    s.push_str(&kernel_table_text(summary));
    let _ = writeln!(s, "\n{KERNEL_METHOD}");
    if !traces.is_empty() {
        let _ = writeln!(
            s,
            "\n## System calls per request, traced\n\nEach okring mode once more under `strace -f` \
             ({} requests over {} connections, one worker; not timed), the first connection in full \
             (`okring trace` prints the same).\n",
            super::TRACE_REQUESTS,
            super::TRACE_CONNECTIONS
        );
        for (label, t) in traces {
            let _ = writeln!(s, "### {label}\n");
            match t {
                Ok(text) => {
                    let _ = writeln!(s, "```\n{}```\n", text);
                }
                Err(e) => {
                    let _ = writeln!(s, "not traced: {e}\n");
                }
            }
        }
    }
    if let Some(sw) = sweep {
        let _ = writeln!(s);
        s.push_str(&sw.markdown());
    }
    let failed: Vec<&RunRecord> = records.iter().filter(|r| r.outcome.is_err()).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\n## Failed runs\n");
        for r in failed {
            let _ = writeln!(
                s,
                "- {}: {}",
                r.id,
                r.outcome.as_ref().err().map_or("", |e| e.as_str())
            );
        }
    }
    let _ = writeln!(s, "\n## Files\n");
    let _ = writeln!(s, "- results.json: every run with its configuration, figures and histograms (V2+DEFLATE base64)");
    let _ = writeln!(
        s,
        "- `<server>-c<conns>.hgrm`: client latency of all repeats merged (plotFiles.html)"
    );
    let _ = writeln!(s, "- `r<N>-<server>-c<conns>.hgrm` / `.hlog`: one run's client latency / per-second interval log");
    let _ = writeln!(
        s,
        "- `r<N>-<server>-c<conns>.server.hgrm`: the server's service time (not client latency)"
    );
    let _ = writeln!(
        s,
        "- latency-c<conns>.svg, requests-per-sec.svg, cpu-per-request.svg, cpu-user-system.svg, \
         syscalls-per-request.svg, context-switches-per-request.svg: plots"
    );
    let _ = writeln!(
        s,
        "- report.html: this report with every plot inline, one file"
    );
    s
}

/// The plots [`crate::bench::plot::write_all`] writes, in the order the
/// HTML report shows them, with captions.
pub fn plot_files(summary: &[Summary]) -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = by_connections(summary, LoadGen::Okring)
        .keys()
        .map(|c| (format!("latency-c{c}.svg"), "client latency by percentile"))
        .collect();
    v.extend([
        ("requests-per-sec.svg".to_string(), "requests/s"),
        ("cpu-per-request.svg".to_string(), "server CPU per request"),
        (
            "cpu-user-system.svg".to_string(),
            "server CPU per request, system and user",
        ),
        (
            "syscalls-per-request.svg".to_string(),
            "system calls per request, by call",
        ),
        (
            "context-switches-per-request.svg".to_string(),
            "context switches per request",
        ),
    ]);
    v
}

/// report.html: report.md's content and every plot in `cfg.out` inline.
/// Call after the plots are written; a plot that is not there (system
/// calls without perf counters) is left out.
pub fn write_html(
    cfg: &BenchConfig,
    host: &HostInfo,
    command: &[String],
    records: &[RunRecord],
    summary: &[Summary],
    traces: &[Trace],
    sweep: Option<&Sweep>,
) -> Result<(), String> {
    let mut body = crate::html::markdown(&report_md(
        cfg, host, command, records, summary, traces, sweep,
    ));
    body.push_str("<h2>Plots</h2>\n");
    let mut plots = plot_files(summary);
    if sweep.is_some() {
        plots.extend(Sweep::plot_files());
    }
    for (name, caption) in plots {
        if let Ok(svg) = std::fs::read_to_string(cfg.out.join(&name)) {
            body.push_str(&crate::html::figure(&svg, &format!("{caption} ({name})")));
        }
    }
    let p = cfg.out.join("report.html");
    std::fs::write(&p, crate::html::page("okring bench", &body))
        .map_err(|e| format!("cannot write {}: {e}", p.display()))
}

/// Write report.md, results.json and the merged `.hgrm` files into `cfg.out`.
pub fn write_all(
    cfg: &BenchConfig,
    host: &HostInfo,
    command: &[String],
    records: &[RunRecord],
    summary: &[Summary],
    traces: &[Trace],
    sweep: Option<&Sweep>,
) -> Result<(), String> {
    let write = |name: &str, data: &[u8]| {
        let p = cfg.out.join(name);
        std::fs::write(&p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write(
        "report.md",
        report_md(cfg, host, command, records, summary, traces, sweep).as_bytes(),
    )?;
    let j = results_json(cfg, host, command, records, summary, sweep);
    let text = serde_json::to_string_pretty(&j).map_err(|e| format!("results.json: {e}"))?;
    write("results.json", text.as_bytes())?;
    for x in summary {
        if let Some(h) = &x.latency {
            write_merged(
                &cfg.out,
                &format!("{}-c{}.hgrm", x.server, x.connections),
                h,
            )?;
        }
    }
    Ok(())
}

fn write_merged(dir: &Path, name: &str, h: &Histogram<u64>) -> Result<(), String> {
    let mut buf = Vec::new();
    write_hgrm(&mut buf, h, 5).map_err(|e| format!("{name}: {e}"))?;
    std::fs::write(dir.join(name), buf).map_err(|e| format!("cannot write {name}: {e}"))
}

/// Summaries of one load generator grouped by connection count (for plots), servers in report order.
pub fn by_connections(summary: &[Summary], load: LoadGen) -> BTreeMap<usize, Vec<&Summary>> {
    let mut m: BTreeMap<usize, Vec<&Summary>> = BTreeMap::new();
    for x in summary.iter().filter(|x| x.load == load) {
        m.entry(x.connections).or_default().push(x);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
