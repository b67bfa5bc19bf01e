//! `okring bench --rates`: an offered-load sweep. After the closed-loop
//! runs, each server is run open loop (coordinated-omission corrected
//! latency) at a list of rates — `auto`: 10 % to 120 % of the requests/s
//! its own closed-loop runs reached — and the report gets, per server, the
//! latency percentiles and server CPU per request against the achieved
//! rate, and its capacity at a latency objective (`--slo p99=1ms`): the
//! highest achieved rate at which the objective held, with no errors and
//! the schedule kept (achieved ≥ [`HELD_SHARE`] of the target).
//!
//! Files: `sweep-<server>-c<conns>-<rate>.hgrm`/`.hlog` per point, and
//! `sweep-p50.svg`, `sweep-p99.svg`, `sweep-p99.9.svg`, `sweep-cpu.svg`
//! (one line per server and connection count).

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::run::{one_server_run, LoadGen};
use super::BenchConfig;
use crate::plot::{lines_svg, Line};
use crate::stats::fmt_ns;

/// `--rates auto`: these shares of each server's closed-loop requests/s.
pub const AUTO_FRACTIONS: [f64; 8] = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.2];
/// A point kept its schedule when it achieved at least this share of the
/// target rate; one that did not cannot count toward capacity.
pub const HELD_SHARE: f64 = 0.99;

/// The rates a sweep offers.
#[derive(Clone, Debug, PartialEq)]
pub enum Rates {
    /// [`AUTO_FRACTIONS`] of each server's closed-loop requests/s.
    Auto,
    /// These total requests/s, for every server.
    List(Vec<f64>),
}

impl Rates {
    /// `auto`, or requests/s comma-separated (`20000,50k,1.5M`). Errors
    /// name the entry.
    pub fn parse(s: &str) -> Result<Rates, String> {
        if s.trim() == "auto" {
            return Ok(Rates::Auto);
        }
        let mut v = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (num, mult) = match part.strip_suffix(['k', 'K']) {
                Some(n) => (n, 1e3),
                None => match part.strip_suffix('M') {
                    Some(n) => (n, 1e6),
                    None => (part, 1.0),
                },
            };
            match num.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => v.push(r * mult),
                _ => {
                    return Err(format!(
                        "--rates: {part:?} is not a positive number of requests/s (write auto, or e.g. 20000,50k,100k)"
                    ))
                }
            }
        }
        v.sort_by(f64::total_cmp);
        v.dedup();
        Ok(Rates::List(v))
    }

    /// The targets for a server whose closed loop reached `capacity` req/s.
    pub fn targets(&self, capacity: f64) -> Vec<f64> {
        match self {
            Rates::Auto => AUTO_FRACTIONS
                .iter()
                .map(|f| (f * capacity).round())
                .filter(|&r| r >= 1.0)
                .collect(),
            Rates::List(v) => v.clone(),
        }
    }
}

/// A latency objective: the `quantile` of corrected latency at most `bound_ns`.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// As written: `p99`, `p99.9`, `p50`.
    pub label: String,
    /// 0.99 for `p99`.
    pub quantile: f64,
    pub bound_ns: u64,
}

impl Slo {
    /// `pNN=DURATION`, e.g. `p99=1ms`, `p99.9=5ms`, `p50=200us`.
    pub fn parse(s: &str) -> Result<Slo, String> {
        let bad =
            || format!("--slo {s:?}: write a percentile and a bound, e.g. p99=1ms or p99.9=5ms");
        let (p, d) = s.split_once('=').ok_or_else(bad)?;
        let pct: f64 = p
            .trim()
            .strip_prefix('p')
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        if !(pct > 0.0 && pct < 100.0) {
            return Err(format!(
                "--slo {s:?}: the percentile must be above 0 and below 100"
            ));
        }
        let bound = crate::config::parse_duration(d.trim()).map_err(|e| format!("--slo: {e}"))?;
        if bound.is_zero() {
            return Err(format!("--slo {s:?}: the bound must be above zero"));
        }
        Ok(Slo {
            label: p.trim().to_string(),
            quantile: pct / 100.0,
            bound_ns: bound.as_nanos() as u64,
        })
    }
}

/// One open-loop run of the sweep, or why it failed.
#[derive(Clone, Debug)]
pub struct Point {
    pub server: String,
    pub connections: usize,
    /// Offered requests/s.
    pub target: f64,
    pub outcome: Result<Measured, String>,
}

/// What an open-loop point measured.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Achieved requests/s (responses in the window ÷ its length).
    pub achieved: f64,
    pub errors: u64,
    /// Server CPU µs per request.
    pub cpu_us_per_req: f64,
    /// Corrected latency (from each request's intended send time), ns.
    pub latency: Histogram<u64>,
    /// Schedule lag p99, ns.
    pub lag_p99_ns: Option<u64>,
}

impl Point {
    /// Whether this point counts toward capacity at `slo`: measured, no
    /// errors, the schedule kept, and the objective met.
    pub fn meets(&self, slo: &Slo) -> bool {
        self.outcome.as_ref().is_ok_and(|m| {
            m.errors == 0
                && m.achieved >= HELD_SHARE * self.target
                && m.latency.value_at_quantile(slo.quantile) <= slo.bound_ns
        })
    }
}

/// Every point of a sweep, in run order, and its objective.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub slo: Slo,
    pub points: Vec<Point>,
}

/// Run the sweep: for each server and connection count, one open-loop run
/// per target rate (wrk does not take part). `capacity` gives each
/// (server, connections)'s closed-loop requests/s for `--rates auto`; a
/// pair without one is skipped with a note on stderr.
pub fn run(
    cfg: &BenchConfig,
    rates: &Rates,
    slo: &Slo,
    capacity: &[(String, usize, f64)],
) -> Sweep {
    let mut points = Vec::new();
    for &conns in &cfg.connections {
        for spec in &cfg.servers {
            let cap = capacity
                .iter()
                .find(|(s, c, _)| *s == spec.label && *c == conns)
                .map(|x| x.2)
                .filter(|&r| r > 0.0);
            let targets = match (rates, cap) {
                (Rates::Auto, None) => {
                    eprintln!(
                        "okring bench: sweep: {} c{conns} has no closed-loop rate to sweep from; skipped",
                        spec.label
                    );
                    continue;
                }
                (r, c) => r.targets(c.unwrap_or(0.0)),
            };
            for target in targets {
                let one = BenchConfig {
                    rate: Some(target),
                    wrk: None,
                    ..cfg.clone()
                };
                let id = format!("sweep-{}-c{conns}-{target:.0}", spec.label);
                let outcome = one_server_run(&one, spec, conns, &id, None, None)
                    .into_iter()
                    .find(|(l, _)| *l == LoadGen::Okring)
                    .map_or_else(|| Err("no okring load result".to_string()), |(_, r)| r)
                    .and_then(|d| {
                        Ok(Measured {
                            achieved: d.requests_per_sec,
                            errors: d.errors,
                            cpu_us_per_req: d.server_cpu_us_per_req,
                            latency: d.latency.ok_or("no latency histogram")?,
                            lag_p99_ns: d.schedule_lag.map(|h| h.value_at_quantile(0.99)),
                        })
                    });
                let p = Point {
                    server: spec.label.clone(),
                    connections: conns,
                    target,
                    outcome,
                };
                eprintln!("okring bench: {id}: {}", p.line(slo));
                points.push(p);
            }
        }
    }
    Sweep {
        slo: slo.clone(),
        points,
    }
}

impl Point {
    /// The progress line of a point.
    fn line(&self, slo: &Slo) -> String {
        match &self.outcome {
            Ok(m) => {
                format!(
                "offered {:.0}, achieved {:.0} req/s, {} {}, server {:.2} µs CPU/req, {} errors{}",
                self.target,
                m.achieved,
                slo.label,
                fmt_ns(m.latency.value_at_quantile(slo.quantile)),
                m.cpu_us_per_req,
                m.errors,
                if self.meets(slo) { "" } else { " (objective not met)" }
            )
            }
            Err(e) => format!("FAILED: {e}"),
        }
    }
}

impl Sweep {
    /// (server, connections) in run order.
    fn groups(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = Vec::new();
        for p in &self.points {
            let k = (p.server.clone(), p.connections);
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    }

    fn of<'a>(&'a self, server: &'a str, conns: usize) -> impl Iterator<Item = &'a Point> + 'a {
        self.points
            .iter()
            .filter(move |p| p.server == server && p.connections == conns)
    }

    /// The highest achieved rate among the points that meet the objective;
    /// `None` when none does.
    pub fn capacity_at_slo(&self, server: &str, conns: usize) -> Option<f64> {
        self.of(server, conns)
            .filter(|p| p.meets(&self.slo))
            .filter_map(|p| p.outcome.as_ref().ok().map(|m| m.achieved))
            .max_by(f64::total_cmp)
    }

    fn slo_text(&self) -> String {
        format!("{} ≤ {}", self.slo.label, fmt_ns(self.slo.bound_ns))
    }

    /// The report.md section: capacity at the objective per server, then
    /// each server's points.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Offered-load sweep (open loop, corrected latency)\n");
        let _ = writeln!(
            s,
            "Objective: {}. A point counts toward capacity when it meets it with no errors and achieves at least {:.0} % of its offered rate.\n",
            self.slo_text(),
            HELD_SHARE * 100.0
        );
        let _ = writeln!(
            s,
            "| server | connections | capacity at {} |",
            self.slo_text()
        );
        let _ = writeln!(s, "|---|---|---|");
        for (server, conns) in self.groups() {
            let cap = self
                .capacity_at_slo(&server, conns)
                .map_or("not met at any rate".to_string(), |r| {
                    format!("{r:.0} req/s")
                });
            let _ = writeln!(s, "| {server} | {conns} | {cap} |");
        }
        for (server, conns) in self.groups() {
            let _ = writeln!(s, "\n### {server}, {conns} connections\n");
            let _ = writeln!(
                s,
                "| offered req/s | achieved req/s | p50 | p99 | p99.9 | server CPU µs/req | schedule lag p99 | errors | meets |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
            for p in self.of(&server, conns) {
                match &p.outcome {
                    Ok(m) => {
                        let q = |x: f64| fmt_ns(m.latency.value_at_quantile(x));
                        let _ = writeln!(
                            s,
                            "| {:.0} | {:.0} | {} | {} | {} | {:.2} | {} | {} | {} |",
                            p.target,
                            m.achieved,
                            q(0.5),
                            q(0.99),
                            q(0.999),
                            m.cpu_us_per_req,
                            m.lag_p99_ns.map_or("-".into(), fmt_ns),
                            m.errors,
                            if p.meets(&self.slo) { "yes" } else { "no" }
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(s, "| {:.0} | failed: {e} | | | | | | | |", p.target);
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "\nPlots: sweep-p50.svg, sweep-p99.svg, sweep-p99.9.svg (latency against achieved rate), sweep-cpu.svg (server CPU per request against achieved rate)."
        );
        s
    }

    /// results.json's `sweep` object.
    pub fn json(&self) -> Value {
        let points: Vec<Value> = self
            .points
            .iter()
            .map(|p| match &p.outcome {
                Ok(m) => {
                    let q = |x: f64| m.latency.value_at_quantile(x);
                    json!({
                        "server": p.server,
                        "connections": p.connections,
                        "offered_rps": p.target,
                        "achieved_rps": m.achieved,
                        "p50_ns": q(0.5),
                        "p99_ns": q(0.99),
                        "p99.9_ns": q(0.999),
                        "server_cpu_us_per_req": m.cpu_us_per_req,
                        "schedule_lag_p99_ns": m.lag_p99_ns,
                        "errors": m.errors,
                        "meets_slo": p.meets(&self.slo),
                    })
                }
                Err(e) => json!({
                    "server": p.server,
                    "connections": p.connections,
                    "offered_rps": p.target,
                    "error": e,
                }),
            })
            .collect();
        let capacity: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(server, conns)| {
                json!({
                    "server": server,
                    "connections": conns,
                    "capacity_rps": self.capacity_at_slo(&server, conns),
                })
            })
            .collect();
        json!({
            "slo": {
                "percentile": self.slo.label,
                "quantile": self.slo.quantile,
                "bound_ns": self.slo.bound_ns,
            },
            "held_share": HELD_SHARE,
            "points": points,
            "capacity_at_slo": capacity,
        })
    }

    /// The four plots into `cfg.out`, one line per (server, connections)
    /// in the server's colour.
    pub fn write_plots(&self, cfg: &BenchConfig) -> Result<(), String> {
        let groups = self.groups();
        let multi = cfg.connections.len() > 1;
        let lines = |f: &dyn Fn(&Measured) -> f64| -> Vec<Line> {
            groups
                .iter()
                .map(|(server, conns)| {
                    let mut points: Vec<(f64, f64)> = self
                        .of(server, *conns)
                        .filter_map(|p| p.outcome.as_ref().ok())
                        .map(|m| (m.achieved, f(m)))
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Line {
                        label: if multi {
                            format!("{server} c{conns}")
                        } else {
                            server.clone()
                        },
                        colour: cfg
                            .servers
                            .iter()
                            .position(|s| s.label == *server)
                            .unwrap_or(0),
                        points,
                    }
                })
                .collect()
        };
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            lines_svg(
                &cfg.out.join(format!("sweep-{name}.svg")),
                &format!("{name} latency (corrected) against achieved rate"),
                "achieved requests/s",
                "latency (ms, log scale)",
                &lines(&|m| m.latency.value_at_quantile(q) as f64 / 1e6),
                true,
            )?;
        }
        lines_svg(
            &cfg.out.join("sweep-cpu.svg"),
            "server CPU per request against achieved rate",
            "achieved requests/s",
            "server CPU µs per request",
            &lines(&|m| m.cpu_us_per_req),
            false,
        )
    }

    /// The plots [`Self::write_plots`] writes, with captions.
    pub fn plot_files() -> Vec<(String, &'static str)> {
        vec![
            ("sweep-p50.svg".into(), "sweep: p50 against achieved rate"),
            ("sweep-p99.svg".into(), "sweep: p99 against achieved rate"),
            (
                "sweep-p99.9.svg".into(),
                "sweep: p99.9 against achieved rate",
            ),
            (
                "sweep-cpu.svg".into(),
                "sweep: server CPU per request against achieved rate",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn rates_parse_auto_and_lists_with_suffixes() {
        assert_eq!(Rates::parse("auto"), Ok(Rates::Auto));
        assert_eq!(
            Rates::parse("50k, 20000,1.5M,50000"),
            Ok(Rates::List(vec![20000.0, 50000.0, 1.5e6]))
        );
        let e = Rates::parse("10k,fast").unwrap_err();
        assert!(e.contains("\"fast\"") && !e.contains('\n'), "{e}");
        assert!(Rates::parse("0").is_err());
        assert!(Rates::parse("-5").is_err());
    }

    #[test]
    fn auto_targets_span_a_tenth_to_six_fifths_of_capacity() {
        let t = Rates::Auto.targets(100_000.0);
        assert_eq!(t.first(), Some(&10_000.0));
        assert_eq!(t.last(), Some(&120_000.0));
        assert_eq!(t.len(), AUTO_FRACTIONS.len());
        assert_eq!(Rates::List(vec![5.0]).targets(1e9), vec![5.0]);
    }

    #[test]
    fn slo_parses_percentile_and_bound() {
        let s = Slo::parse("p99=1ms").unwrap();
        assert_eq!(
            (s.label.as_str(), s.quantile, s.bound_ns),
            ("p99", 0.99, 1_000_000)
        );
        let s = Slo::parse("p99.9=250us").unwrap();
        assert!((s.quantile - 0.999).abs() < 1e-12);
        assert_eq!(s.bound_ns, 250_000);
        for bad in ["99=1ms", "p99", "p100=1ms", "p99=0s", "p99=soon"] {
            let e = Slo::parse(bad).unwrap_err();
            assert!(e.starts_with("--slo") && !e.contains('\n'), "{bad}: {e}");
        }
    }

    fn point(target: f64, achieved: f64, p99_us: u64, errors: u64) -> Point {
        let mut h = new_histogram();
        for _ in 0..99 {
            h.record(10_000).unwrap();
        }
        h.record(p99_us * 1000).unwrap();
        h.record(p99_us * 1000).unwrap();
        Point {
            server: "uring".into(),
            connections: 8,
            target,
            outcome: Ok(Measured {
                achieved,
                errors,
                cpu_us_per_req: 3.0,
                latency: h,
                lag_p99_ns: None,
            }),
        }
    }

    #[test]
    fn capacity_is_the_highest_rate_that_meets_the_objective_on_schedule() {
        let slo = Slo::parse("p99=1ms").unwrap();
        let sweep = Sweep {
            slo,
            points: vec![
                point(10_000.0, 10_000.0, 200, 0),
                point(20_000.0, 19_950.0, 900, 0),
                // Meets the latency but fell behind its schedule.
                point(30_000.0, 25_000.0, 500, 0),
                // On schedule but with an error.
                point(40_000.0, 40_000.0, 500, 1),
                point(50_000.0, 50_000.0, 5_000, 0),
            ],
        };
        assert_eq!(sweep.capacity_at_slo("uring", 8), Some(19_950.0));
        assert_eq!(sweep.capacity_at_slo("epoll", 8), None);
        let md = sweep.markdown();
        assert!(md.contains("| uring | 8 | 19950 req/s |"), "{md}");
        let j = sweep.json();
        assert_eq!(j["capacity_at_slo"][0]["capacity_rps"], 19_950.0);
        assert_eq!(j["points"].as_array().unwrap().len(), 5);
        assert_eq!(j["points"][2]["meets_slo"], false);
    }
}
