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
//! results.json), `plot` (SVG). This module holds the arguments, their
//! validation and the loop over runs. It does not implement a server or a
//! load generator.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{parse_duration, Mode};

pub mod cpu;
pub mod peers;
pub mod plot;
pub mod report;
pub mod run;
pub mod server;

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

/// Arguments of `okring bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Servers to compare, comma-separated: any `okring serve --mode` value
    /// (`prefork` = prefork with epoll workers, `prefork-uring` = with
    /// io_uring workers), and `nginx` when nginx is installed.
    #[arg(long, value_delimiter = ',', default_value = "uring,epoll")]
    pub modes: Vec<String>,
    /// Connection counts to run each server with, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256")]
    pub connections: Vec<usize>,
    /// Measured window of each run [default: 10s; 3s with --quick].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before each measured window, not counted [default: 2s; 1s with --quick].
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Open loop at this many requests/s in all (coordinated-omission
    /// corrected latency); without it, closed loop at full speed.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests pipelined per write on each connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: u32,
    /// A new connection per request (`Connection: close`): measures what
    /// accepting and closing cost, where the process models differ most.
    #[arg(long)]
    pub close: bool,
    /// Peers, comma-separated: `nginx` (a server to compare with), `wrk`
    /// (a second load generator on the same server runs). Missing peers are
    /// skipped with a note on how to install them.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Directory for report.md, results.json, .hgrm/.hlog files and SVG
    /// plots [default: bench-out/<UTC timestamp>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Short runs (1s warm-up + 3s, 1 repeat) for a first look, ~15 s in all.
    #[arg(long)]
    pub quick: bool,
    /// CPUs for the server, e.g. `1` or `2-3` [default: the upper half of the allowed CPUs].
    #[arg(long, value_parser = cpu::parse_cpu_list)]
    pub server_cpus: Option<::std::vec::Vec<usize>>,
    /// CPUs for the load generator [default: the lower half of the allowed CPUs].
    #[arg(long, value_parser = cpu::parse_cpu_list)]
    pub client_cpus: Option<::std::vec::Vec<usize>>,
    /// Runs per (server, connections); the order of servers alternates
    /// [default: 2; 1 with --quick].
    #[arg(long)]
    pub repeat: Option<usize>,
}

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
}

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

impl BenchArgs {
    /// Validate and resolve. Errors are one line naming cause and fix;
    /// missing peers are not errors but lines in `notes`.
    pub fn resolve(&self) -> Result<BenchConfig, String> {
        let mut notes = Vec::new();
        let mut servers: Vec<ServerSpec> = Vec::new();
        let mut want_nginx = false;
        for m in self
            .modes
            .iter()
            .map(|m| m.trim())
            .filter(|m| !m.is_empty())
        {
            if m == "nginx" {
                want_nginx = true;
            } else {
                let s = server_for(m)?;
                if servers.iter().any(|x| x.label == s.label) {
                    return Err(format!("--modes: {m:?} is listed twice"));
                }
                servers.push(s);
            }
        }
        let mut wrk = None;
        for p in self
            .peers
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            match p {
                "nginx" => want_nginx = true,
                "wrk" => match server::find_on_path("wrk") {
                    Some(b) => wrk = Some(b),
                    None => {
                        notes.push("wrk not found on PATH: skipped (apt-get install wrk)".into())
                    }
                },
                other => {
                    return Err(format!(
                        "--peers: unknown peer {other:?} (known: nginx, wrk)"
                    ));
                }
            }
        }
        if want_nginx {
            match server::find_nginx() {
                Some(bin) => servers.push(ServerSpec { label: "nginx".into(), kind: ServerKind::Nginx { bin } }),
                None => notes.push(
                    "nginx not found on PATH or at /usr/sbin/nginx: skipped (apt-get install nginx-light)".into(),
                ),
            }
        }
        if servers.is_empty() {
            return Err("--modes: nothing to run (give e.g. --modes uring,epoll)".into());
        }
        if self.connections.is_empty() || self.connections.iter().any(|&c| c == 0 || c > 1 << 20) {
            return Err("--connections: each count must be between 1 and 1048576".into());
        }
        let mut connections = self.connections.clone();
        connections.dedup();
        let ms = |d: u64| Duration::from_millis(d);
        let duration = self.duration.unwrap_or(ms(if self.quick {
            QUICK_DURATION_MS
        } else {
            DEFAULT_DURATION_MS
        }));
        let warmup = self.warmup.unwrap_or(ms(if self.quick {
            QUICK_WARMUP_MS
        } else {
            DEFAULT_WARMUP_MS
        }));
        if duration < Duration::from_millis(100) {
            return Err(format!("--duration {duration:?}: must be at least 100ms"));
        }
        let repeat = self
            .repeat
            .unwrap_or(if self.quick { 1 } else { DEFAULT_REPEAT });
        if repeat == 0 || repeat > 100 {
            return Err(format!("--repeat {repeat}: must be between 1 and 100"));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "--rate {r}: must be a positive number of requests/s"
                ));
            }
            if self.pipeline != 1 {
                return Err(
                    "--rate with --pipeline: an open loop sends one request at a time; drop one"
                        .into(),
                );
            }
        }
        if self.close && self.pipeline != 1 {
            return Err(
                "--close with --pipeline: a closing connection carries one request; drop one"
                    .into(),
            );
        }
        if self.pipeline == 0 || self.pipeline > 1024 {
            return Err(format!(
                "--pipeline {}: must be between 1 and 1024",
                self.pipeline
            ));
        }
        let allowed = crate::sys::allowed_cpus();
        let (def_server, def_client) = cpu::default_split(&allowed);
        let server_cpus = self.server_cpus.clone().unwrap_or(def_server);
        let client_cpus = self.client_cpus.clone().unwrap_or(def_client);
        for (name, set) in [
            ("--server-cpus", &server_cpus),
            ("--client-cpus", &client_cpus),
        ] {
            if let Some(c) = set.iter().find(|c| !allowed.contains(c)) {
                return Err(format!(
                    "{name}: CPU {c} is not one this process may run on (allowed: {})",
                    cpu::format_cpu_list(&allowed)
                ));
            }
        }
        if server_cpus.iter().any(|c| client_cpus.contains(c)) {
            notes.push(format!(
                "server CPUs {} and client CPUs {} overlap: server and load generator compete for them",
                cpu::format_cpu_list(&server_cpus),
                cpu::format_cpu_list(&client_cpus)
            ));
        }
        if let Some(c) = connections.iter().find(|&&c| c < client_cpus.len()) {
            return Err(format!(
                "--connections {c}: fewer connections than client CPUs ({}); raise it or pass fewer --client-cpus",
                client_cpus.len()
            ));
        }
        let out = self.out.clone().unwrap_or_else(default_out_dir);
        Ok(BenchConfig {
            servers,
            connections,
            duration,
            warmup,
            rate: self.rate,
            pipeline: self.pipeline,
            close: self.close,
            wrk,
            out,
            server_cpus,
            client_cpus,
            repeat,
            notes,
        })
    }
}

/// `bench-out/<UTC timestamp>`, e.g. `bench-out/20250101T120000Z`.
fn default_out_dir() -> PathBuf {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    PathBuf::from("bench-out").join(ts.replace([':', '-'], ""))
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

/// Run `okring bench`: resolve, run every (repeat, connections, server) in
/// alternating order, write the report files, print the table. Errors: bad
/// arguments, an output directory that cannot be written, or every run
/// failing; a failed run alone is reported and the rest go on (exit status
/// 1 at the end).
pub fn main(args: &BenchArgs) -> Result<(), String> {
    let cfg = args.resolve()?;
    let command: Vec<String> = std::env::args().collect();
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| format!("cannot create --out {}: {e}", cfg.out.display()))?;
    for n in &cfg.notes {
        eprintln!("okring bench: {n}");
    }
    // Before pinning: the CPU count must not reflect the client set.
    let host = report::HostInfo::collect();
    // Everything the harness runs on its own threads (CPU sampler, log
    // readers) inherits the client set; the load threads pin themselves.
    if let Err(e) = crate::sys::pin_current_thread_to(&cfg.client_cpus) {
        return Err(format!(
            "cannot pin to client CPUs {}: {e}",
            cpu::format_cpu_list(&cfg.client_cpus)
        ));
    }
    let records = run::run_all(&cfg)?;
    let summary = report::summarize(&cfg, &records);
    let table = report::table_text(&cfg, &summary);
    println!("{table}");
    report::write_all(&cfg, &host, &command, &records, &summary)?;
    plot::write_all(&cfg, &records, &summary)?;
    eprintln!("okring bench: wrote {}", cfg.out.display());
    let failed: Vec<&run::RunRecord> = records.iter().filter(|r| r.outcome.is_err()).collect();
    if failed.len() == records.len() {
        return Err(format!("every run failed; first: {}", first_error(&failed)));
    }
    if !failed.is_empty() {
        return Err(format!(
            "{} of {} runs failed; first: {}",
            failed.len(),
            records.len(),
            first_error(&failed)
        ));
    }
    Ok(())
}

fn first_error(failed: &[&run::RunRecord]) -> String {
    failed
        .first()
        .and_then(|r| r.outcome.as_ref().err())
        .map(|e| e.to_string())
        .unwrap_or_default()
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
