//! wrk as a second load generator: its command line, the Lua script that
//! pipelines requests, and a parser for the figures it prints.
//!
//! wrk (github.com/wg/wrk, 4.x) is a closed-loop generator: its latency is
//! measured from each request's actual send, so it is not corrected for
//! coordinated omission. It prints four percentiles with `--latency`.
//! This module does not start servers (see `server.rs`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

/// What one wrk run reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WrkResult {
    /// `N requests in Xs` (responses completed).
    pub requests: u64,
    /// The `X` of that line, s.
    pub elapsed_s: f64,
    /// `Requests/sec:`.
    pub requests_per_sec: f64,
    /// `Latency Distribution` rows: (percentile, ns), e.g. (50.0, 812_000).
    pub percentiles_ns: Vec<(f64, u64)>,
    /// `Socket errors` plus `Non-2xx or 3xx responses`.
    pub errors: u64,
}

/// The Lua script that makes wrk send `depth` requests per write
/// (the pipelining script from wrk's `scripts/pipeline.lua`, for `/`).
pub fn pipeline_script(depth: u32) -> String {
    format!(
        "-- Send {depth} pipelined GET / requests per write.\n\
         init = function(args)\n  local r = {{}}\n  for i = 1, {depth} do\n    \
         r[i] = wrk.format(nil, \"/\")\n  end\n  req = table.concat(r)\nend\n\n\
         request = function()\n  return req\nend\n"
    )
}

/// Run wrk against `url` with `threads` threads, `connections` connections
/// for `duration` (whole seconds, at least 1), pinned to `cpus`, with the
/// Lua `script` when given. Errors: wrk cannot start, exits non-zero, or
/// prints no `Requests/sec` line (the message quotes its output).
pub fn run_wrk(
    bin: &Path,
    url: &str,
    threads: usize,
    connections: usize,
    duration: Duration,
    script: Option<&Path>,
    cpus: &[usize],
) -> Result<(WrkResult, String), String> {
    let secs = duration.as_secs().max(1);
    let mut cmd = Command::new(bin);
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{}", connections.max(threads)))
        .arg(format!("-d{secs}s"))
        .arg("--latency");
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::sys::pin_child(&mut cmd, cpus);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("wrk failed ({}): {}", out.status, err.trim()));
    }
    parse_wrk(&text).map(|r| (r, text))
}

/// A wrk duration such as `812.00us`, `1.23ms`, `2.00s`, `1.5m` in ns.
pub fn parse_wrk_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    Some((v * mult).round() as u64)
}

/// Parse wrk's `--latency` report. Errors: no `Requests/sec:` line.
pub fn parse_wrk(text: &str) -> Result<WrkResult, String> {
    let mut r = WrkResult::default();
    let mut in_dist = false;
    let mut have_rps = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            if let Some((p, v)) = t.split_once(char::is_whitespace) {
                if let (Some(p), Some(ns)) = (
                    p.strip_suffix('%').and_then(|p| p.parse().ok()),
                    parse_wrk_duration(v),
                ) {
                    r.percentiles_ns.push((p, ns));
                    continue;
                }
            }
            in_dist = false;
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v
                .trim()
                .parse()
                .map_err(|_| format!("wrk: bad line {t:?}"))?;
            have_rps = true;
        } else if let Some((n, rest)) = t.split_once(" requests in ") {
            r.requests = n.trim().parse().unwrap_or(0);
            let d = rest.split(',').next().unwrap_or("");
            r.elapsed_s = parse_wrk_duration(d).map_or(0.0, |ns| ns as f64 / 1e9);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // connect 0, read 0, write 0, timeout 0
            r.errors += v
                .split(',')
                .filter_map(|kv| kv.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    // wrk prints `0.00us` for a percentile its histogram lost (seen with
    // pipelining); a percentile below a lower one is not a measurement.
    let mut top = 0;
    r.percentiles_ns.retain(|&(_, ns)| {
        let ok = ns >= top;
        top = top.max(ns);
        ok
    });
    if !have_rps {
        let last = text.lines().last().unwrap_or("");
        return Err(format!(
            "wrk printed no Requests/sec line (last line: {last:?})"
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   471.89us  101.53us   3.07ms   83.07%
    Req/Sec   138.57k     4.53k  144.29k    80.00%
  Latency Distribution
     50%  454.00us
     75%  499.00us
     90%  573.00us
     99%    1.02ms
  689527 requests in 5.00s, 98.64MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 137895.19
Transfer/sec:     19.73MB
";

    #[test]
    fn parses_a_wrk_report() {
        let r = parse_wrk(SAMPLE).unwrap();
        assert_eq!(r.requests, 689_527);
        assert!((r.elapsed_s - 5.0).abs() < 1e-9);
        assert!((r.requests_per_sec - 137_895.19).abs() < 1e-6);
        assert_eq!(
            r.percentiles_ns,
            vec![
                (50.0, 454_000),
                (75.0, 499_000),
                (90.0, 573_000),
                (99.0, 1_020_000)
            ]
        );
        assert_eq!(r.errors, 7);
        assert!(parse_wrk("Running 1s test\n").is_err());
    }

    #[test]
    fn pipeline_script_repeats_the_request() {
        let s = pipeline_script(16);
        assert!(s.contains("for i = 1, 16 do"));
        assert!(s.contains("request = function()"));
    }
}
