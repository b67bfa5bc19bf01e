//! One measured run (a server child, a warm-up, a measured window, CPU time
//! from /proc, the server's histogram) and the loop over all runs with the
//! progress display.
//!
//! Files written per run into the output directory, named by the run id
//! `r<repeat>-<server>-c<connections>`: `<id>.hgrm` (client latency),
//! `<id>.hlog` (client latency per 1 s interval), `<id>.server.hgrm`
//! (server service time, okring only), `<id>.server.log` (its stderr),
//! `<id>.wrk.txt` (wrk's output, with `--peers wrk`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use super::cpu::{cpu_secs_between, UsageSampler};
use super::kernel::{KernelProbe, PerRequest};
use super::peers::{self, WrkResult};
use super::server::{Server, ServerKind};
use super::{order_for_repeat, BenchConfig, ServerSpec};
use crate::load::{LoadConfig, LoadResult};
use crate::stats::{fmt_ns, read_hgrm, HgrmSummary};

/// Length of each interval in the `.hlog` files, ms.
pub const HLOG_INTERVAL_MS: u64 = 1_000;

/// Which load generator produced a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoadGen {
    /// okring's own load generator, in-process.
    Okring,
    /// wrk, as a child process, after okring's window on the same server.
    Wrk,
}

impl LoadGen {
    /// `okring` or `wrk`.
    pub fn name(self) -> &'static str {
        match self {
            LoadGen::Okring => "okring",
            LoadGen::Wrk => "wrk",
        }
    }
}

/// What one load generator measured on one server run.
#[derive(Clone, Debug)]
pub struct RunData {
    /// Responses in the measured window.
    pub requests: u64,
    /// Requests sent in the window (okring load; wrk: its responses).
    pub sent: u64,
    /// Length of the measured window, s.
    pub elapsed_s: f64,
    /// `requests / elapsed_s`.
    pub requests_per_sec: f64,
    /// Errors of any kind (connect, read, write, status, timeout, parse).
    pub errors: u64,
    /// Error counts by kind, as the load generator reports them.
    pub errors_detail: serde_json::Value,
    /// Server process tree CPU time (user + system) in the window, s.
    pub server_cpu_s: f64,
    /// Server CPU µs per request: `server_cpu_s * 1e6 / requests`.
    pub server_cpu_us_per_req: f64,
    /// Server CPU use in the window: `server_cpu_s / elapsed_s` (1.0 = one CPU busy).
    pub server_cpu_util: f64,
    /// What the kernel and the server's loop did per request in the window.
    pub kernel: PerRequest,
    /// Client latency, ns (okring's generator only).
    pub latency: Option<Histogram<u64>>,
    /// Open loop: latency from the actual send, ns.
    pub uncorrected: Option<Histogram<u64>>,
    /// Open loop: how late each request was sent, ns.
    pub schedule_lag: Option<Histogram<u64>>,
    /// Percentiles a peer generator printed: (percentile, ns).
    pub peer_percentiles_ns: Vec<(f64, u64)>,
    /// The server's service-time histogram file as parsed (okring servers).
    pub server_hist: Option<HgrmSummary>,
    /// Notices from the load generator (late sends, engine fallback).
    pub warnings: Vec<String>,
    /// Files written for this record, relative to the output directory.
    pub files: Vec<String>,
}

/// One (repeat, server, connections, load generator) cell of the bench.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// `r<repeat>-<server>-c<connections>` (plus `-wrk` for wrk records).
    pub id: String,
    /// 1-based repeat number.
    pub repeat: usize,
    /// 0-based position of the server within its repeat.
    pub order: usize,
    /// Server label (`uring`, `epoll`, `nginx`, ...).
    pub server: String,
    pub connections: usize,
    pub load: LoadGen,
    pub outcome: Result<RunData, String>,
}

/// Run every cell, showing progress on stderr. Errors only for output
/// files that cannot be written; a failing server or load run becomes an
/// `Err` outcome in its record.
pub fn run_all(cfg: &BenchConfig) -> Result<Vec<RunRecord>, String> {
    let per_run =
        cfg.warmup + cfg.duration + cfg.wrk.as_ref().map_or(Duration::ZERO, |_| cfg.duration);
    let cells = cfg.repeat * cfg.connections.len() * cfg.servers.len();
    let total_ms = per_run.as_millis() as u64 * cells as u64;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(total_ms.max(1));
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let script = match (&cfg.wrk, cfg.pipeline) {
        (Some(_), p) if p > 1 => {
            let path = cfg.out.join(format!("pipeline-{p}.lua"));
            std::fs::write(&path, peers::pipeline_script(p))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Some(path)
        }
        _ => None,
    };
    let mut records = Vec::new();
    let mut done_ms = 0u64;
    for r in 0..cfg.repeat {
        for &conns in &cfg.connections {
            for (order, spec) in order_for_repeat(&cfg.servers, r).iter().enumerate() {
                let id = format!("r{}-{}-c{conns}", r + 1, spec.label);
                if let Some(b) = &bar {
                    b.set_message(id.clone());
                }
                let progress = bar.clone().map(|b| {
                    let (base, span) = (done_ms, (cfg.warmup + cfg.duration).as_millis() as u64);
                    Arc::new(move |f: f64| b.set_position(base + (f * span as f64) as u64))
                        as Arc<dyn Fn(f64) + Send + Sync>
                });
                let out = one_server_run(cfg, spec, conns, &id, script.as_deref(), progress);
                done_ms += per_run.as_millis() as u64;
                if let Some(b) = &bar {
                    b.set_position(done_ms);
                }
                for (load, outcome) in out {
                    let rec = RunRecord {
                        id: if load == LoadGen::Wrk {
                            format!("{id}-wrk")
                        } else {
                            id.clone()
                        },
                        repeat: r + 1,
                        order,
                        server: spec.label.clone(),
                        connections: conns,
                        load,
                        outcome,
                    };
                    let line = run_line(&rec);
                    match &bar {
                        Some(b) => b.println(line),
                        None => eprintln!("{line}"),
                    }
                    records.push(rec);
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(records)
}

/// The one line printed when a record is done.
pub fn run_line(rec: &RunRecord) -> String {
    let head = format!("okring bench: {} ({} load)", rec.id, rec.load.name());
    match &rec.outcome {
        Ok(d) => {
            let p99 = d
                .latency
                .as_ref()
                .map(|h| h.value_at_quantile(0.99))
                .or_else(|| {
                    d.peer_percentiles_ns
                        .iter()
                        .find(|p| p.0 == 99.0)
                        .map(|p| p.1)
                })
                .map_or("-".to_string(), fmt_ns);
            format!(
                "{head}: {:.0} req/s, p99 {p99}, server {:.2} µs CPU/req ({:.0}% CPU), {} errors",
                d.requests_per_sec,
                d.server_cpu_us_per_req,
                d.server_cpu_util * 100.0,
                d.errors
            )
        }
        Err(e) => format!("{head}: FAILED: {e}"),
    }
}

type Outcomes = Vec<(LoadGen, Result<RunData, String>)>;
/// A load generator's data with its measured window's wall-clock edges.
type Windowed = Result<(RunData, SystemTime, SystemTime), String>;

pub(super) fn one_server_run(
    cfg: &BenchConfig,
    spec: &ServerSpec,
    conns: usize,
    id: &str,
    script: Option<&Path>,
    progress: Option<Arc<dyn Fn(f64) + Send + Sync>>,
) -> Outcomes {
    let mut loads = vec![LoadGen::Okring];
    if cfg.wrk.is_some() {
        loads.push(LoadGen::Wrk);
    }
    let fail = |e: String| {
        loads
            .iter()
            .map(|&l| (l, Err(e.clone())))
            .collect::<Outcomes>()
    };
    let server_hgrm = format!("{id}.server.hgrm");
    let server_log = format!("{id}.server.log");
    let server = match Server::start(
        &spec.kind,
        &cfg.server_cpus,
        &cfg.out.join(&server_hgrm),
        &cfg.out.join(&server_log),
    ) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let probe = KernelProbe::open(&cfg.server_cpus);
    let series = probe.series();
    let sampler = match UsageSampler::start(
        server.pid(),
        Some(Box::new(move || probe.read())),
        server.metrics,
        &cfg.client_cpus,
    ) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut results: Vec<(LoadGen, Windowed)> = Vec::new();
    let okr = okring_load(cfg, server.addr, conns, id, progress);
    results.push((LoadGen::Okring, okr));
    if let Some(wrk) = &cfg.wrk {
        let url = format!("http://{}/", server.addr);
        let from = SystemTime::now();
        let w = peers::run_wrk(
            wrk,
            &url,
            cfg.client_cpus.len(),
            conns,
            cfg.duration,
            script,
            &cfg.client_cpus,
        );
        let to = SystemTime::now();
        let w = w.and_then(|(r, text)| {
            let name = format!("{id}.wrk.txt");
            std::fs::write(cfg.out.join(&name), text)
                .map_err(|e| format!("cannot write {name}: {e}"))?;
            Ok((wrk_data(&r, name), from, to))
        });
        results.push((LoadGen::Wrk, w));
    }
    let samples = sampler.finish();
    let stopped = server.stop();
    let is_okring = matches!(spec.kind, ServerKind::Okring { .. });
    let server_hist = if is_okring {
        std::fs::read_to_string(cfg.out.join(&server_hgrm))
            .ok()
            .and_then(|t| read_hgrm(&t).ok())
    } else {
        let _ = std::fs::remove_file(cfg.out.join(&server_hgrm));
        None
    };
    results
        .into_iter()
        .map(|(load, r)| {
            let r = r.and_then(|(mut d, from, to)| {
                if let Err(e) = &stopped {
                    return Err(e.clone());
                }
                d.server_cpu_s = cpu_secs_between(&samples, from, to);
                d.kernel = PerRequest::from_samples(&samples, &series, from, to, d.requests);

                if d.requests > 0 {
                    d.server_cpu_us_per_req = d.server_cpu_s * 1e6 / d.requests as f64;
                }
                if d.elapsed_s > 0.0 {
                    d.server_cpu_util = d.server_cpu_s / d.elapsed_s;
                }
                d.server_hist = server_hist.clone();
                if server_hist.is_some() {
                    d.files.push(server_hgrm.clone());
                }
                d.files.push(server_log.clone());
                Ok(d)
            });
            (load, r)
        })
        .collect()
}

/// Run okring's load generator on `addr`; returns the data and the
/// measured window's wall-clock edges.
fn okring_load(
    cfg: &BenchConfig,
    addr: std::net::SocketAddr,
    conns: usize,
    id: &str,
    progress: Option<Arc<dyn Fn(f64) + Send + Sync>>,
) -> Windowed {
    let mut lc = LoadConfig::new(&format!("http://{addr}/"))?;
    lc.connections = conns;
    lc.threads = cfg.client_cpus.len().min(conns).max(1);
    lc.duration = cfg.duration;
    lc.warmup = cfg.warmup;
    lc.rate = cfg.rate;
    lc.pipeline = cfg.pipeline;
    lc.close = cfg.close;
    lc.cpus = cfg.client_cpus.clone();
    lc.interval = Some(Duration::from_millis(HLOG_INTERVAL_MS));
    lc.progress = progress.map(|p| Box::new(move |f: f64| p(f)) as Box<dyn Fn(f64) + Send + Sync>);
    let res = crate::load::run(&lc).map_err(|e| e.to_string())?;
    let from = res.started;
    let to = res.started + res.elapsed;
    let files = write_client_files(&cfg.out, id, &res)?;
    Ok((okring_data(&res, files), from, to))
}

fn write_client_files(out: &Path, id: &str, res: &LoadResult) -> Result<Vec<String>, String> {
    let create = |name: &str| -> Result<(PathBuf, std::fs::File), String> {
        let p = out.join(name);
        let f =
            std::fs::File::create(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok((p, f))
    };
    let hgrm = format!("{id}.hgrm");
    let (p, mut f) = create(&hgrm)?;
    res.write_hgrm(&mut f)
        .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    let hlog = format!("{id}.hlog");
    let (p, f) = create(&hlog)?;
    res.write_hlog(std::io::BufWriter::new(f))
        .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(vec![hgrm, hlog])
}

fn okring_data(res: &LoadResult, files: Vec<String>) -> RunData {
    let elapsed_s = res.elapsed.as_secs_f64();
    RunData {
        requests: res.requests,
        sent: res.sent,
        elapsed_s,
        requests_per_sec: res.requests_per_sec(),
        errors: res.errors.total(),
        errors_detail: serde_json::to_value(res.errors).unwrap_or(serde_json::Value::Null),
        server_cpu_s: 0.0,
        server_cpu_us_per_req: 0.0,
        server_cpu_util: 0.0,
        kernel: PerRequest::default(),
        latency: Some(res.latency_ns.clone()),
        uncorrected: res.uncorrected_ns.clone(),
        schedule_lag: res.schedule_lag_ns.clone(),
        peer_percentiles_ns: Vec::new(),
        server_hist: None,
        warnings: res.warnings.clone(),
        files,
    }
}

fn wrk_data(r: &WrkResult, file: String) -> RunData {
    RunData {
        requests: r.requests,
        sent: r.requests,
        elapsed_s: r.elapsed_s,
        requests_per_sec: r.requests_per_sec,
        errors: r.errors,
        errors_detail: serde_json::json!({ "total": r.errors }),
        server_cpu_s: 0.0,
        server_cpu_us_per_req: 0.0,
        server_cpu_util: 0.0,
        kernel: PerRequest::default(),
        latency: None,
        uncorrected: None,
        schedule_lag: None,
        peer_percentiles_ns: r.percentiles_ns.clone(),
        server_hist: None,
        warnings: Vec::new(),
        files: vec![file],
    }
}
