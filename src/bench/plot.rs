//! The plots of a bench, drawn with the shared [`crate::plot`]:
//!
//! - `latency-c<conns>.svg`: the latency percentile spectrum, one line per
//!   server, like HdrHistogram's plotFiles.html: x is 1/(1-p) on a log scale
//!   labelled with percentiles, y is latency in ms.
//! - `requests-per-sec.svg`: median requests/s per server (bars), each
//!   repeat as a dot.
//! - `cpu-per-request.svg`: median server CPU µs per request, likewise.
//! - `cpu-user-system.svg`, `syscalls-per-request.svg`,
//!   `context-switches-per-request.svg`: the per-request kernel accounting
//!   as stacked bars in each server's colour (system/user; the calls made
//!   most, then the rest; switches).
//!
//! Only okring's load generator's runs are plotted (wrk prints too few
//! percentiles for a spectrum). It does not compute any figure.

use hdrhistogram::Histogram;

use super::report::{by_connections, Summary};
use super::run::{LoadGen, RunData, RunRecord};
use super::BenchConfig;
use crate::plot::{bars_svg, spectrum_svg, stacked_bars_svg, StackedBar};

/// Write every plot of the bench into `cfg.out`.
pub fn write_all(
    cfg: &BenchConfig,
    records: &[RunRecord],
    summary: &[Summary],
) -> Result<(), String> {
    let groups = by_connections(summary, LoadGen::Okring);
    let multi = groups.len() > 1;
    let mut rps = Vec::new();
    let mut cpu = Vec::new();
    for (conns, sums) in &groups {
        let series: Vec<(String, &Histogram<u64>)> = sums
            .iter()
            .filter_map(|s| s.latency.as_ref().map(|h| (s.server.clone(), h)))
            .collect();
        let title = format!("client latency by percentile, {conns} connections");
        spectrum_svg(
            &cfg.out.join(format!("latency-c{conns}.svg")),
            &title,
            &series,
        )?;
        for s in sums {
            let each = |f: fn(&RunData) -> f64| -> Vec<f64> {
                records
                    .iter()
                    .filter(|r| {
                        r.server == s.server && r.connections == *conns && r.load == LoadGen::Okring
                    })
                    .filter_map(|r| r.outcome.as_ref().ok().map(f))
                    .collect()
            };
            let label = if multi {
                format!("{} c{conns}", s.server)
            } else {
                s.server.clone()
            };
            rps.push((
                label.clone(),
                s.requests_per_sec,
                each(|d| d.requests_per_sec),
            ));
            cpu.push((label, s.cpu_us_per_req, each(|d| d.server_cpu_us_per_req)));
        }
    }
    bars_svg(
        &cfg.out.join("requests-per-sec.svg"),
        "requests/s (median; dots: each repeat)",
        "requests/s",
        &rps,
    )?;
    bars_svg(
        &cfg.out.join("cpu-per-request.svg"),
        "server CPU per request (median; dots: each repeat)",
        "server CPU µs per request",
        &cpu,
    )?;
    kernel_plots(cfg, &groups)
}

/// The per-request kernel accounting as stacked bars, one per (server,
/// connections), in each server's colour: CPU split user/system,
/// system calls by name, context switches.
fn kernel_plots(
    cfg: &BenchConfig,
    groups: &std::collections::BTreeMap<usize, Vec<&Summary>>,
) -> Result<(), String> {
    let multi = groups.len() > 1;
    let colour = |server: &str| {
        cfg.servers
            .iter()
            .position(|s| s.label == server)
            .unwrap_or(0)
    };
    let mut cpu = Vec::new();
    let mut calls = Vec::new();
    let mut switches = Vec::new();
    for (conns, sums) in groups {
        for s in sums.iter().filter(|s| s.runs > 0) {
            let k = &s.kernel;
            let label = if multi {
                format!("{} c{conns}", s.server)
            } else {
                s.server.clone()
            };
            let bar = |segments: Vec<(String, f64)>| StackedBar {
                label: label.clone(),
                colour: colour(&s.server),
                segments,
            };
            cpu.push(bar(match (k.sys_us, k.user_us) {
                (Some(sys), Some(user)) => vec![("system".into(), sys), ("user".into(), user)],
                _ => vec![("user + system".into(), k.cpu_us)],
            }));
            if let Some(total) = k.syscalls {
                let mut segs: Vec<(String, f64)> = k
                    .syscalls_by_name
                    .iter()
                    .take(super::report::SYSCALLS_NAMED)
                    .cloned()
                    .collect();
                let named: f64 = segs.iter().map(|x| x.1).sum();
                if total - named > 0.005 {
                    segs.push(("other".into(), total - named));
                }
                calls.push(bar(segs));
            }
            switches.push(bar(match k.context_switches {
                Some(cs) => vec![("on the server CPUs".into(), cs)],
                None => vec![
                    ("voluntary".into(), k.voluntary_switches),
                    ("involuntary".into(), k.involuntary_switches),
                ],
            }));
        }
    }
    stacked_bars_svg(
        &cfg.out.join("cpu-user-system.svg"),
        "server CPU per request: system and user time (median)",
        "server CPU µs per request",
        &cpu,
    )?;
    if !calls.is_empty() {
        stacked_bars_svg(
            &cfg.out.join("syscalls-per-request.svg"),
            "system calls per request on the server CPUs, by call (median)",
            "system calls per request",
            &calls,
        )?;
    }
    stacked_bars_svg(
        &cfg.out.join("context-switches-per-request.svg"),
        "context switches per request (median)",
        "context switches per request",
        &switches,
    )
}
