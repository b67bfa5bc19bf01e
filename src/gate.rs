//! `--fail-if` gates: budgets a run must keep, for CI jobs. Pure: a gate
//! list is parsed once ([`Gates::parse`]) and judged against a run's
//! [`Figures`]; a broken budget is an [`Error::GateFailed`] (exit 3).
//!
//! Grammar (comma-separated, no spaces needed):
//!
//! ```text
//! gate    = metric op value
//! metric  = "p" NUMBER (p50, p99, p99.9, …) | "max" | "mean"   latency
//!         | "errors"                                           count, or % of sent
//!         | "rps"                                              requests/s
//! op      = ">" | ">=" | "<" | "<="
//! value   = NUMBER [ "ns" | "us" | "µs" | "ms" | "s" ]          latency (default ms)
//!         | NUMBER [ "%" ]                                     errors, rps
//!         | ( "+" | "-" ) NUMBER "%"                           relative to a baseline
//! ```
//!
//! A relative value (`p99>+10%`, `rps<-5%`) compares with a baseline run
//! (`okring report --baseline`): the threshold is the baseline's figure
//! times (1 ± the fraction).
//!
//! A gate states when the run fails: `p99>2ms` fails a run whose p99 is
//! above 2 ms, `rps<50000` one under 50 000 requests/s.

use std::fmt;

use hdrhistogram::Histogram;

use crate::error::Error;

/// What gates are judged against: one run's figures.
#[derive(Clone, Copy, Debug)]
pub struct Figures<'a> {
    /// Latency, ns.
    pub latency_ns: &'a Histogram<u64>,
    /// Requests sent in the measured window (the base of `errors` in %).
    pub sent: u64,
    /// Errors of every kind.
    pub errors: u64,
    /// Answered requests per second.
    pub rps: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Metric {
    /// Latency at this percentile (0..=100).
    Percentile(f64),
    Max,
    Mean,
    Errors,
    Rps,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }
}

/// One gate: fail when `metric op value`.
#[derive(Clone, Debug, PartialEq)]
struct Gate {
    text: String,
    metric: Metric,
    op: Op,
    /// ns for latency, a count or requests/s otherwise.
    value: f64,
    /// `errors` given in % of requests sent.
    percent: bool,
    /// `value` is a signed fraction of the baseline's figure.
    relative: bool,
}

/// A parsed `--fail-if` list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gates(Vec<Gate>);

impl Gates {
    /// Parse `p99>2ms,errors>0.1%,rps<50000`. Errors name the gate and
    /// what is wrong with it, in one line.
    pub fn parse(list: &str) -> Result<Gates, String> {
        let mut gates = Vec::new();
        for text in list.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            gates.push(parse_gate(text)?);
        }
        if gates.is_empty() {
            return Err("--fail-if: no gate given (write e.g. 'p99>2ms,errors>0')".into());
        }
        Ok(Gates(gates))
    }

    /// Whether no gate was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a gate judges errors or the rate (not only latency).
    pub fn needs_counts(&self) -> bool {
        self.0
            .iter()
            .any(|g| matches!(g.metric, Metric::Errors | Metric::Rps))
    }

    /// Whether a gate is relative to a baseline (`+10%`).
    pub fn needs_baseline(&self) -> bool {
        self.0.iter().any(|g| g.relative)
    }

    /// Judge `f`: `Ok` when every budget is kept, else
    /// [`Error::GateFailed`] listing each broken gate with the measured
    /// value, e.g. `p99>2ms (p99 = 2.41ms)`. A relative gate without a
    /// baseline is an [`Error::Usage`].
    pub fn check(&self, f: &Figures<'_>) -> Result<(), Error> {
        self.check_against(f, None)
    }

    /// [`check`](Self::check), relative gates against `base`.
    pub fn check_against(&self, f: &Figures<'_>, base: Option<&Figures<'_>>) -> Result<(), Error> {
        if self.needs_baseline() && base.is_none() {
            return Err(Error::Usage(
                "--fail-if: a relative gate (+N%, -N%) needs a baseline: okring report --baseline OLD NEW"
                    .into(),
            ));
        }
        let failed: Vec<String> = self
            .0
            .iter()
            .filter_map(|g| {
                let (got, shown) = measure(g, f);
                let limit = match base {
                    Some(b) if g.relative => measure(g, b).0 * (1.0 + g.value),
                    _ => g.value,
                };
                g.op.holds(got, limit)
                    .then(|| format!("{} ({shown})", g.text))
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::GateFailed(format!(
                "--fail-if: {}",
                failed.join(", ")
            )))
        }
    }
}

impl fmt::Display for Gates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.0.iter().map(|g| g.text.as_str()).collect();
        f.write_str(&texts.join(","))
    }
}

/// The gate's metric in `f`: (value in the gate's unit, text for the user).
fn measure(g: &Gate, f: &Figures<'_>) -> (f64, String) {
    let h = f.latency_ns;
    let lat = |ns: f64, name: &str| (ns, format!("{name} = {}", crate::stats::fmt_ns(ns as u64)));
    match g.metric {
        Metric::Percentile(p) => {
            let ns = if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(p / 100.0) as f64
            };
            lat(ns, &format!("p{}", trim_float(p)))
        }
        Metric::Max => lat(h.max() as f64, "max"),
        Metric::Mean => lat(h.mean(), "mean"),
        Metric::Errors if g.percent => {
            let pct = if f.sent == 0 {
                0.0
            } else {
                f.errors as f64 * 100.0 / f.sent as f64
            };
            (pct, format!("errors = {pct:.3}% of {} sent", f.sent))
        }
        Metric::Errors => (f.errors as f64, format!("errors = {}", f.errors)),
        Metric::Rps => (f.rps, format!("rps = {:.0}", f.rps)),
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn parse_gate(text: &str) -> Result<Gate, String> {
    let bad = |why: &str| {
        format!("--fail-if {text:?}: {why} (write e.g. p99>2ms, errors>0.1%, rps<50000)")
    };
    let at = text
        .find(['<', '>'])
        .ok_or_else(|| bad("no comparison (>, >=, <, <=)"))?;
    let (name, rest) = text.split_at(at);
    let (op, value) = match rest.as_bytes() {
        [b'>', b'=', ..] => (Op::Ge, &rest[2..]),
        [b'<', b'=', ..] => (Op::Le, &rest[2..]),
        [b'>', ..] => (Op::Gt, &rest[1..]),
        _ => (Op::Lt, &rest[1..]),
    };
    let (name, value) = (name.trim(), value.trim());
    let metric = match name {
        "max" => Metric::Max,
        "mean" => Metric::Mean,
        "errors" => Metric::Errors,
        "rps" => Metric::Rps,
        p if p.starts_with('p') => {
            let v: f64 = p[1..].parse().map_err(|_| bad("unknown percentile"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(bad("a percentile is between p0 and p100"));
            }
            Metric::Percentile(v)
        }
        _ => return Err(bad("unknown metric (pNN, max, mean, errors, rps)")),
    };
    let latency = matches!(metric, Metric::Percentile(_) | Metric::Max | Metric::Mean);
    if let Some(sign) = value.chars().next().filter(|c| *c == '+' || *c == '-') {
        let pct = value[1..]
            .strip_suffix('%')
            .ok_or_else(|| bad("a relative value is +N% or -N%"))?;
        let num: f64 = pct
            .trim()
            .parse()
            .map_err(|_| bad("the value is not a number"))?;
        if !num.is_finite() {
            return Err(bad("the value must be a number"));
        }
        let frac = if sign == '-' {
            -num / 100.0
        } else {
            num / 100.0
        };
        return Ok(Gate {
            text: text.to_string(),
            metric,
            op,
            value: frac,
            percent: false,
            relative: true,
        });
    }
    let (num, unit) = split_number(value);
    let num: f64 = num.parse().map_err(|_| bad("the value is not a number"))?;
    if !num.is_finite() || num < 0.0 {
        return Err(bad("the value must be a non-negative number"));
    }
    let (value, percent) = match (latency, metric, unit) {
        (true, _, "" | "ms") => (num * 1e6, false),
        (true, _, "ns") => (num, false),
        (true, _, "us" | "µs") => (num * 1e3, false),
        (true, _, "s") => (num * 1e9, false),
        (true, _, _) => return Err(bad("a latency unit is ns, us, ms or s")),
        (false, Metric::Errors, "%") => (num, true),
        (false, _, "") => (num, false),
        (false, _, _) => return Err(bad("errors take a count or a %; rps a number")),
    };
    Ok(Gate {
        text: text.to_string(),
        metric,
        op,
        value,
        percent,
        relative: false,
    })
}

/// `2.5ms` → (`2.5`, `ms`).
fn split_number(v: &str) -> (&str, &str) {
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    (&v[..end], v[end..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record_ns};

    fn figures(h: &Histogram<u64>) -> Figures<'_> {
        Figures {
            latency_ns: h,
            sent: 10_000,
            errors: 20,
            rps: 48_000.0,
        }
    }

    #[test]
    fn gates_fail_exactly_when_their_budget_is_broken() {
        let mut h = new_histogram();
        record_ns(&mut h, 1_000_000, 990); // 1 ms
        record_ns(&mut h, 3_000_000, 10); // 3 ms: p99.9 and max
        let f = figures(&h);
        let ok = |s: &str| Gates::parse(s).unwrap().check(&f);
        assert!(ok("p99>2ms").is_ok(), "p99 is 1 ms");
        assert!(ok("p99.9>2ms").is_err());
        assert!(ok("max>=3ms").is_err());
        assert!(ok("max>3.1ms").is_ok());
        assert!(ok("mean>1ms").is_err(), "the mean is 1.02 ms");
        assert!(ok("mean>1100us").is_ok());
        assert!(ok("errors>0.1%").is_err(), "0.2 % of 10 000");
        assert!(ok("errors>0.5%").is_ok());
        assert!(ok("errors>19").is_err());
        assert!(ok("errors>20").is_ok());
        assert!(ok("rps<50000").is_err());
        assert!(ok("rps<40000").is_ok());
        let e = ok("p99>2ms, rps<50000,errors>0").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_GATE_FAILED);
        let msg = e.to_string();
        assert!(
            msg.contains("rps<50000 (rps = 48000)") && msg.contains("errors>0 (errors = 20)"),
            "{msg}"
        );
        assert!(!msg.contains("p99>2ms"), "{msg}");
    }

    #[test]
    fn relative_gates_compare_with_the_baseline() {
        let mut old = new_histogram();
        record_ns(&mut old, 1_000_000, 100);
        let mut new = new_histogram();
        record_ns(&mut new, 1_150_000, 100);
        let (fo, fnew) = (figures(&old), figures(&new));
        let g = |s: &str| Gates::parse(s).unwrap();
        assert!(
            g("p99>+10%").check_against(&fnew, Some(&fo)).is_err(),
            "15 % slower"
        );
        assert!(g("p99>+20%").check_against(&fnew, Some(&fo)).is_ok());
        assert!(
            g("rps<-5%").check_against(&fnew, Some(&fo)).is_ok(),
            "same rate"
        );
        let e = g("p99>+10%").check(&fnew).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        assert!(Gates::parse("p99>+10").is_err());
    }

    #[test]
    fn bad_gates_are_refused_with_the_gate_named() {
        for bad in [
            "p99",
            "p101>1ms",
            "x>1",
            "p99>fast",
            "p99>2kg",
            "rps<5%",
            "errors>-1",
            "",
        ] {
            let e = Gates::parse(bad).unwrap_err();
            assert!(e.starts_with("--fail-if"), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
        assert_eq!(
            Gates::parse("p99.9<=250us").unwrap().to_string(),
            "p99.9<=250us"
        );
    }
}
