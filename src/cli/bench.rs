//! `okring bench`'s arguments, as typed, their resolution into a
//! [`BenchConfig`], and the front door: the table on stdout and the
//! report directory (report.md, results.json, histograms, plots).

use std::path::PathBuf;
use std::time::Duration;

use crate::bench::{self, BenchConfig};
use crate::config::parse_duration;
use crate::error::Error;
use crate::gate::{Figures, Gates};

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
    /// Offered-load sweep after the closed-loop runs: each server open loop
    /// at these total requests/s (comma-separated, `50k` allowed), or
    /// `auto`: 10, 25, 50, 75, 90, 100, 110 and 120 % of what its own
    /// closed-loop runs reached. Adds latency and CPU-per-request against
    /// achieved rate (sweep-*.svg) and each server's capacity at --slo.
    #[arg(long, value_name = "auto|LIST")]
    pub rates: Option<String>,
    /// The latency objective of --rates: a percentile of corrected latency
    /// and its bound, e.g. `p99=1ms`, `p99.9=5ms` [default: p99=1ms].
    #[arg(long, value_name = "pNN=DURATION", requires = "rates")]
    pub slo: Option<String>,
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
    #[arg(long, value_parser = bench::cpu::parse_cpu_list)]
    pub server_cpus: Option<::std::vec::Vec<usize>>,
    /// CPUs for the load generator [default: the lower half of the allowed CPUs].
    #[arg(long, value_parser = bench::cpu::parse_cpu_list)]
    pub client_cpus: Option<::std::vec::Vec<usize>>,
    /// Runs per (server, connections); the order of servers alternates
    /// [default: 2; 1 with --quick].
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Fail (exit 3) when any server's row breaks a budget, e.g.
    /// 'p99>2ms,errors>0,rps<50000' (rows measured by okring load: latency
    /// of every repeat merged, median requests/s, errors summed).
    #[arg(long, value_name = "GATES")]
    pub fail_if: Option<String>,
    /// After the measured runs, run each okring mode once more under strace
    /// (20 requests, not timed) and add its system calls per request to the
    /// report. Needs strace.
    #[arg(long)]
    pub trace: bool,
    /// Count system calls with strace instead of perf counters (where those
    /// are not allowed: no root, perf_event_paranoid > 0): each okring mode
    /// runs once more under strace, 2000 requests, not timed. Needs strace.
    #[arg(long)]
    pub syscalls: bool,
}

impl BenchArgs {
    /// Validate and resolve. Errors are one line naming cause and fix;
    /// missing peers are not errors but lines in `notes`.
    pub fn resolve(&self) -> Result<BenchConfig, String> {
        let mut notes = Vec::new();
        let mut servers: Vec<bench::ServerSpec> = Vec::new();
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
                let s = bench::server_for(m)?;
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
                "wrk" => match bench::server::find_on_path("wrk") {
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
            match bench::server::find_nginx() {
                Some(bin) => servers.push(bench::ServerSpec { label: "nginx".into(), kind: bench::server::ServerKind::Nginx { bin } }),
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
            bench::QUICK_DURATION_MS
        } else {
            bench::DEFAULT_DURATION_MS
        }));
        let warmup = self.warmup.unwrap_or(ms(if self.quick {
            bench::QUICK_WARMUP_MS
        } else {
            bench::DEFAULT_WARMUP_MS
        }));
        if duration < Duration::from_millis(100) {
            return Err(format!("--duration {duration:?}: must be at least 100ms"));
        }
        let repeat = self
            .repeat
            .unwrap_or(if self.quick { 1 } else { bench::DEFAULT_REPEAT });
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
        let sweep = match &self.rates {
            None => None,
            Some(r) => {
                if self.rate.is_some() {
                    return Err(
                        "--rates with --rate: the sweep sets each run's rate; drop --rate".into(),
                    );
                }
                if self.pipeline != 1 {
                    return Err(
                        "--rates with --pipeline: an open loop sends one request at a time; drop one"
                            .into(),
                    );
                }
                let slo = bench::sweep::Slo::parse(self.slo.as_deref().unwrap_or("p99=1ms"))?;
                Some((bench::sweep::Rates::parse(r)?, slo))
            }
        };
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
        let (def_server, def_client) = bench::cpu::default_split(&allowed);
        let server_cpus = self.server_cpus.clone().unwrap_or(def_server);
        let client_cpus = self.client_cpus.clone().unwrap_or(def_client);
        for (name, set) in [
            ("--server-cpus", &server_cpus),
            ("--client-cpus", &client_cpus),
        ] {
            if let Some(c) = set.iter().find(|c| !allowed.contains(c)) {
                return Err(format!(
                    "{name}: CPU {c} is not one this process may run on (allowed: {})",
                    bench::cpu::format_cpu_list(&allowed)
                ));
            }
        }
        if server_cpus.iter().any(|c| client_cpus.contains(c)) {
            notes.push(format!(
                "server CPUs {} and client CPUs {} overlap: server and load generator compete for them, and the per-request kernel counts include the load generator",
                bench::cpu::format_cpu_list(&server_cpus),
                bench::cpu::format_cpu_list(&client_cpus)
            ));
        }
        if let Some(c) = connections.iter().find(|&&c| c < client_cpus.len()) {
            return Err(format!(
                "--connections {c}: fewer connections than client CPUs ({}); raise it or pass fewer --client-cpus",
                client_cpus.len()
            ));
        }
        if let Some(n) = bench::kernel::KernelProbe::open(&server_cpus).note() {
            notes.push(n.to_string());
        }
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| super::timestamped_dir("bench-out"));
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
            trace: self.trace,
            syscalls: self.syscalls,
            sweep,
        })
    }
}
/// `okring bench`: resolve, create the output directory, measure
/// ([`bench::run`]), print the table, write the report files. Errors: bad
/// arguments (exit 2), an output directory that cannot be written, or any
/// run failing (after the report is written, so the failure is on record).
pub fn run(args: &BenchArgs) -> Result<(), Error> {
    let cfg = args.resolve().map_err(Error::Usage)?;
    let gates = match &args.fail_if {
        Some(list) => Some(Gates::parse(list).map_err(Error::Usage)?),
        None => None,
    };
    if gates.as_ref().is_some_and(Gates::needs_baseline) {
        return Err(Error::Usage(
            "--fail-if: okring bench has no baseline run; relative gates are okring report --baseline's".into(),
        ));
    }
    let command: Vec<String> = std::env::args().collect();
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| format!("cannot create --out {}: {e}", cfg.out.display()))?;
    for n in &cfg.notes {
        eprintln!("okring bench: {n}");
    }
    let b = bench::run(&cfg)?;
    println!("{}", bench::report::table_text(&cfg, &b.summary));
    println!("What the kernel did per request (server side):\n");
    println!("{}", bench::report::kernel_table_text(&b.summary));
    let sweep = b.sweep.as_ref();
    if let Some(sw) = sweep {
        println!("{}", sw.markdown());
    }
    bench::report::write_all(
        &cfg, &b.host, &command, &b.records, &b.summary, &b.traces, sweep,
    )?;
    bench::plot::write_all(&cfg, &b.records, &b.summary)?;
    if let Some(sw) = sweep {
        sw.write_plots(&cfg)?;
    }
    bench::report::write_html(
        &cfg, &b.host, &command, &b.records, &b.summary, &b.traces, sweep,
    )?;
    eprintln!("okring bench: wrote {}", cfg.out.display());
    b.outcome()?;
    let Some(gates) = gates else {
        return Ok(());
    };
    let mut broken = Vec::new();
    for s in b
        .summary
        .iter()
        .filter(|s| s.load == bench::run::LoadGen::Okring)
    {
        let Some(latency) = &s.latency else { continue };
        let fig = Figures {
            latency_ns: latency,
            sent: s.sent,
            errors: s.errors,
            rps: s.requests_per_sec,
        };
        if let Err(e) = gates.check(&fig) {
            broken.push(format!("{} c{}: {e}", s.server, s.connections));
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(Error::GateFailed(broken.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// `okring bench`'s CPU lists.
    #[test]
    fn bench_cpu_lists_parse_as_one_value_each() {
        let cli = crate::cli::Cli::try_parse_from([
            "okring",
            "bench",
            "--server-cpus",
            "1",
            "--client-cpus",
            "0,2-3",
        ])
        .expect("parses");
        let crate::cli::Command::Bench(b) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(b.server_cpus, Some(vec![1]));
        assert_eq!(b.client_cpus, Some(vec![0, 2, 3]));
    }
}
