//! `okring bench`: every server mode side by side, in one run, on pinned
//! CPUs, with the load generator in-process, reporting requests/s, client
//! latency percentiles and server CPU time per request as ratios to the
//! epoll mode; plus report files and SVG plots.
//!
//! Method (docs/benchmarking.md): each run starts `okring serve --mode M`
//! (or a peer server) as a child pinned to the server CPUs, warms it up,
//! measures for `--duration` with the load generator pinned to the client
//! CPUs, reads the server's CPU time from `/proc` at the edges of the
//! measured window only, stops it with SIGTERM and collects its service-time
//! histogram. Repeats alternate the order of the servers (A B, then B A) and
//! the report quotes medians and the median of per-repeat ratios.
//!
//! Submodules: `cpu` (CPU lists, /proc CPU time), `server` (children),
//! `peers` (wrk), `run` (one measured run), `report` (table, report.md,
//! results.json), `plot` (SVG), `sweep` (`--rates`: open-loop runs at a
//! list of rates, capacity at a latency objective). This module holds the arguments, their
//! validation and the loop over runs. It does not implement a server or a
//! load generator.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Mode;
use crate::error::Error;

pub mod cpu;
pub mod kernel;
pub mod peers;
pub mod plot;
pub mod report;
pub mod run;
pub mod server;
pub mod sweep;

use server::ServerKind;

/// Measured window of one run without `--quick`.
pub const DEFAULT_DURATION_MS: u64 = 10_000;
/// Warm-up of one run without `--quick`.
pub const DEFAULT_WARMUP_MS: u64 = 2_000;
/// Repeats without `--quick`.
pub const DEFAULT_REPEAT: usize = 2;
/// Measured window with `--quick`.
pub const QUICK_DURATION_MS: u64 = 3_000;
/// Warm-up with `--quick`.
pub const QUICK_WARMUP_MS: u64 = 1_000;

/// One server to measure, with its label in reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// As typed in `--modes` (`uring`, `prefork-uring`, `nginx`).
    pub label: String,
    pub kind: ServerKind,
}

/// Resolved configuration of `okring bench`.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub servers: Vec<ServerSpec>,
    pub connections: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub pipeline: u32,
    /// A new connection per request.
    pub close: bool,
    /// wrk binary, when `--peers wrk` and it is installed.
    pub wrk: Option<PathBuf>,
    pub out: PathBuf,
    pub server_cpus: Vec<usize>,
    pub client_cpus: Vec<usize>,
    pub repeat: usize,
    /// One line per peer that was asked for and is not installed.
    pub notes: Vec<String>,
    /// After the measured runs, run each okring mode once more under
    /// strace ([`TRACE_REQUESTS`] requests) and add its trace to the report.
    pub trace: bool,
    /// After the measured runs, count each okring mode's system calls with
    /// strace in an extra, untimed run of [`SYSCALL_REQUESTS`] requests, and
    /// report those in place of the perf counters' figures.
    pub syscalls: bool,
    /// `--rates` and `--slo`: after the closed-loop runs, an offered-load
    /// sweep ([`sweep`]).
    pub sweep: Option<(sweep::Rates, sweep::Slo)>,
}

/// Requests of each `--syscalls` run.
pub const SYSCALL_REQUESTS: u64 = 2000;
/// At most this many connections carry them.
pub const SYSCALL_CONNECTIONS: usize = 16;

/// Requests each mode's `--trace` run sends.
pub const TRACE_REQUESTS: u64 = 20;
/// Connections they are spread over.
pub const TRACE_CONNECTIONS: usize = 4;

/// Turn one `--modes` entry into `okring serve` arguments, checking the
/// mode name against those `okring serve --mode` accepts.
pub fn server_for(label: &str) -> Result<ServerSpec, String> {
    let (mode, extra): (&str, &[&str]) = match label {
        "prefork" | "prefork-epoll" => ("prefork", &["--worker-loop", "epoll"]),
        "prefork-uring" => ("prefork", &["--worker-loop", "uring"]),
        m => (m, &[]),
    };
    if mode.parse::<Mode>().is_err() {
        let mut known: Vec<String> = Mode::ALL.iter().map(|m| m.name().to_string()).collect();
        if known.iter().any(|k| k == "prefork") {
            known.push("prefork-uring".into());
        }
        known.push("nginx".into());
        return Err(format!(
            "--modes: unknown mode {label:?} (known: {})",
            known.join(", ")
        ));
    }
    let mut args = vec!["--mode".to_string(), mode.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Ok(ServerSpec {
        label: label.to_string(),
        kind: ServerKind::Okring { args },
    })
}

/// The order of servers in repeat `r` (0-based): as listed on even
/// repeats, reversed on odd ones (A B, B A, A B, ...), so a slow drift of
/// the machine's speed biases no server.
pub fn order_for_repeat<T: Clone>(items: &[T], r: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if r % 2 == 1 {
        v.reverse();
    }
    v
}

/// What one `okring bench` measured: the host, every run (failed ones
/// included, with their cause) and the per-(server, connections) summary.
pub struct Bench {
    pub host: report::HostInfo,
    pub records: Vec<run::RunRecord>,
    pub summary: Vec<report::Summary>,
    /// `--trace`: per okring server label, the rendered trace or why it failed.
    pub traces: Vec<(String, Result<String, String>)>,
    /// `--rates`: the offered-load sweep.
    pub sweep: Option<sweep::Sweep>,
}

impl Bench {
    /// The runs that failed, in run order.
    pub fn failed(&self) -> Vec<&run::RunRecord> {
        self.records.iter().filter(|r| r.outcome.is_err()).collect()
    }

    /// `Err` when any run failed: how many, and the first cause (exit 1).
    pub fn outcome(&self) -> Result<(), Error> {
        let failed = self.failed();
        let sweep_failed: Vec<String> = self
            .sweep
            .iter()
            .flat_map(|sw| &sw.points)
            .filter_map(|p| {
                p.outcome.as_ref().err().map(|e| {
                    format!(
                        "sweep {} c{} at {:.0} req/s: {e}",
                        p.server, p.connections, p.target
                    )
                })
            })
            .collect();
        if failed.is_empty() && !sweep_failed.is_empty() {
            return Err(Error::Failed(format!(
                "{} sweep runs failed; first: {}",
                sweep_failed.len(),
                sweep_failed[0]
            )));
        }
        let first = failed
            .first()
            .and_then(|r| r.outcome.as_ref().err())
            .map(|e| e.to_string())
            .unwrap_or_default();
        if failed.is_empty() {
            Ok(())
        } else if failed.len() == self.records.len() {
            Err(Error::Failed(format!("every run failed; first: {first}")))
        } else {
            Err(Error::Failed(format!(
                "{} of {} runs failed; first: {first}",
                failed.len(),
                self.records.len()
            )))
        }
    }
}

/// Measure: collect the host, pin this thread (and what it starts) to the
/// client CPUs, run every (repeat, connections, server) in alternating
/// order, and summarize. Writes nothing; the caller writes the report
/// ([`report::write_all`], [`plot::write_all`]). A failed run is recorded
/// and the rest go on. Errors: pinning, or a run that cannot be started at
/// all.
pub fn run(cfg: &BenchConfig) -> Result<Bench, Error> {
    // Before pinning: the CPU count must not reflect the client set.
    let host = report::HostInfo::collect();
    // Everything the harness runs on its own threads (CPU sampler, log
    // readers) inherits the client set; the load threads pin themselves.
    if let Err(e) = crate::sys::pin_current_thread_to(&cfg.client_cpus) {
        return Err(Error::Failed(format!(
            "cannot pin to client CPUs {}: {e}",
            cpu::format_cpu_list(&cfg.client_cpus)
        )));
    }
    let records = run::run_all(cfg)?;
    let mut summary = report::summarize(cfg, &records);
    if cfg.syscalls {
        count_syscalls_with_strace(cfg, &mut summary);
    }
    let traces = if cfg.trace {
        trace_all(cfg)
    } else {
        Vec::new()
    };
    let sweep = cfg.sweep.as_ref().map(|(rates, slo)| {
        let capacity: Vec<(String, usize, f64)> = summary
            .iter()
            .filter(|s| s.load == run::LoadGen::Okring && s.runs > 0)
            .map(|s| (s.server.clone(), s.connections, s.requests_per_sec))
            .collect();
        sweep::run(cfg, rates, slo, &capacity)
    });
    Ok(Bench {
        host,
        records,
        summary,
        traces,
        sweep,
    })
}

/// `--syscalls`: per okring server, an extra run under strace (not timed,
/// not pinned) whose system calls per request replace the perf counters'
/// in every row of that server. A server that cannot be traced keeps its
/// figures, and its rows say why in `syscalls_source`.
fn count_syscalls_with_strace(cfg: &BenchConfig, summary: &mut [report::Summary]) {
    use crate::trace::run::{run, with_one_worker, TraceSpec};
    let connections = cfg
        .connections
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .clamp(1, SYSCALL_CONNECTIONS);
    for spec in &cfg.servers {
        let server::ServerKind::Okring { args } = &spec.kind else {
            continue;
        };
        let t = TraceSpec {
            serve_args: with_one_worker(args),
            requests: SYSCALL_REQUESTS,
            connections,
            close: cfg.close,
            pipeline: if cfg.close { 1 } else { cfg.pipeline },
        };
        eprintln!(
            "okring bench: counting {}'s system calls under strace ({SYSCALL_REQUESTS} requests, not timed)",
            spec.label
        );
        let log = std::env::temp_dir().join(format!(
            "okring-bench-syscalls-{}-{}.strace",
            std::process::id(),
            spec.label
        ));
        let counted = run(&t, &log, false).map(|traced| {
            let n = SYSCALL_REQUESTS as f64;
            let g = traced.grouped;
            let mut by_name: Vec<(String, f64)> = g
                .by_name
                .iter()
                .map(|(k, v)| (k.clone(), *v as f64 / n))
                .filter(|(_, v)| *v >= kernel::SYSCALL_SHOWN_PER_REQUEST)
                .collect();
            by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
            (g.total as f64 / n, by_name)
        });
        for row in summary.iter_mut().filter(|s| s.server == spec.label) {
            match &counted {
                Ok((total, by_name)) => {
                    row.kernel.syscalls = Some(*total);
                    row.kernel.syscalls_by_name = by_name.clone();
                    row.kernel.syscalls_source = Some(format!(
                        "strace -f: an extra, untimed run of {SYSCALL_REQUESTS} requests over {connections} connections, one worker"
                    ));
                }
                Err(e) => {
                    row.kernel.syscalls_source = Some(format!("strace run failed: {e}"));
                }
            }
        }
    }
}

/// `--trace`: each okring server once more, under strace, unpinned and not
/// timed; its log is kept as `<label>.strace` in the output directory.
fn trace_all(cfg: &BenchConfig) -> Vec<(String, Result<String, String>)> {
    use crate::trace::run::{render, run, with_one_worker, TraceSpec};
    let mut out = Vec::new();
    for spec in &cfg.servers {
        let server::ServerKind::Okring { args } = &spec.kind else {
            continue;
        };
        let t = TraceSpec {
            serve_args: with_one_worker(args),
            requests: TRACE_REQUESTS,
            connections: TRACE_CONNECTIONS,
            close: cfg.close,
            pipeline: if cfg.close { 1 } else { cfg.pipeline },
        };
        let log = cfg.out.join(format!("{}.strace", spec.label));
        eprintln!(
            "okring bench: tracing {} under strace ({TRACE_REQUESTS} requests, not timed)",
            spec.label
        );
        let r = run(&t, &log, true).map(|traced| render(&spec.label, &t, 1, &traced.grouped));
        out.push((spec.label.clone(), r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_serve_arguments() {
        let s = server_for("epoll").unwrap();
        assert_eq!(
            s.kind,
            ServerKind::Okring {
                args: vec!["--mode".into(), "epoll".into()]
            }
        );
        let e = server_for("nosuch").unwrap_err();
        assert!(e.contains("unknown mode \"nosuch\""), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn repeats_alternate_the_order() {
        let v = ["a", "b", "c"];
        assert_eq!(order_for_repeat(&v, 0), vec!["a", "b", "c"]);
        assert_eq!(order_for_repeat(&v, 1), vec!["c", "b", "a"]);
        assert_eq!(order_for_repeat(&v, 2), vec!["a", "b", "c"]);
    }
}
