//! The plots of a bench, drawn with the shared [`crate::plot`]:
//!
//! - `latency-c<conns>.svg`: the latency percentile spectrum, one line per
//!   server, like HdrHistogram's plotFiles.html: x is 1/(1-p) on a log scale
//!   labelled with percentiles, y is latency in ms.
//! - `requests-per-sec.svg`: median requests/s per server (bars), each
//!   repeat as a dot.
//! - `cpu-per-request.svg`: median server CPU µs per request, likewise.
//!
//! Only okring's load generator's runs are plotted (wrk prints too few
//! percentiles for a spectrum). It does not compute any figure.

use hdrhistogram::Histogram;

use super::report::{by_connections, Summary};
use super::run::{LoadGen, RunData, RunRecord};
use super::BenchConfig;
use crate::plot::{bars_svg, spectrum_svg};

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
    )
}
