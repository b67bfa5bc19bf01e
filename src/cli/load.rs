//! `okring load`'s arguments, as typed, their resolution into a
//! [`LoadConfig`], and the front door: the summary on stdout and the
//! `--json`, `--hgrm` and `--hlog` files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;

use crate::config::parse_duration;
use crate::config::EventLoop as Engine;
use crate::error::Error;
use crate::load::{parse_cpus, LoadConfig};

/// Arguments of `okring load`, as typed.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target URL: http://HOST:PORT/PATH with HOST an IPv4 literal, [IPv6] literal or localhost.
    pub url: String,
    /// Connections kept open, spread over the threads.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Load threads, each with its own ring (or epoll) and connections.
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Length of the measured window (humantime, e.g. 10s, 1m).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up run before the measured window; its samples are discarded.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: total requests per second (fractional allowed) on a fixed
    /// schedule; latency is measured from each request's intended send time.
    #[arg(long, short = 'R')]
    pub rate: Option<f64>,
    /// Requests sent per batch on a connection (closed loop only).
    #[arg(long, default_value_t = 1)]
    pub pipeline: u32,
    /// A request unanswered this long is a timeout: counted, recorded at its
    /// full elapsed time, and its connection replaced.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Send HTTP/1.0 requests without keep-alive (a new connection per request).
    #[arg(long = "http1.0")]
    pub http10: bool,
    /// Send `Connection: close` (a new connection per request).
    #[arg(long)]
    pub close: bool,
    /// I/O engine: `uring` (one io_uring per thread, all of an iteration's
    /// sends and receives in one io_uring_enter; falls back to epoll, with a
    /// notice, if no ring can be set up) or `epoll` (one epoll instance per
    /// thread, nonblocking sockets).
    #[arg(long, default_value = "uring", value_parser = clap::builder::PossibleValuesParser::new(["uring", "epoll"]).map(|s| s.parse::<Engine>().expect("a listed value")))]
    pub engine: Engine,
    /// Write configuration, results and histograms as JSON (schema okring.load/1).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the latency histogram as HdrHistogram percentile text (.hgrm, ms).
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (.hlog) with one histogram per --interval.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Length of each interval of --hlog.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Pin load thread i to the (i mod n)-th CPU of this list, e.g. 0,2-3.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
}

impl LoadArgs {
    /// Resolve into a [`LoadConfig`]; errors are one line naming the fix.
    pub fn resolve(&self) -> Result<LoadConfig, String> {
        let mut cfg = LoadConfig::new(&self.url)?;
        cfg.connections = self.connections;
        cfg.threads = self.threads;
        cfg.duration = self.duration;
        cfg.warmup = self.warmup;
        cfg.rate = self.rate;
        cfg.pipeline = self.pipeline;
        cfg.timeout = self.timeout;
        cfg.http10 = self.http10;
        cfg.close = self.close;
        cfg.engine = self.engine;
        cfg.cpus = match &self.cpus {
            Some(list) => parse_cpus(list).map_err(|e| format!("--cpus: {e}"))?,
            None => Vec::new(),
        };
        cfg.interval = Some(self.interval);
        cfg.validate()?;
        if self.hlog.is_some() && self.interval.is_zero() {
            return Err("--hlog needs a non-zero --interval".into());
        }
        Ok(cfg)
    }
}

fn create(path: &PathBuf) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// `okring load`: print the summary on stdout, notices on stderr, and
/// write the requested files. Errors are one line naming cause and fix.
pub fn run(args: &LoadArgs) -> Result<(), Error> {
    let mut cfg = args.resolve().map_err(super::usage)?;
    if args.hlog.is_none() {
        cfg.interval = None;
    }
    // Open output files first so a bad path fails before the run, not after.
    let mut hgrm = args.hgrm.as_ref().map(create).transpose()?;
    let mut hlog = args.hlog.as_ref().map(create).transpose()?;
    let mut jsonf = args.json.as_ref().map(create).transpose()?;
    let result = crate::load::run(&cfg)?;
    for w in &result.warnings {
        eprintln!("okring: warning: {w}");
    }
    print!("{}", result.summary_text());
    let io_err = |what: &str, e: std::io::Error| format!("cannot write {what}: {e}");
    if let Some(w) = hgrm.as_mut() {
        result
            .write_hgrm(w)
            .and_then(|_| w.flush())
            .map_err(|e| io_err("--hgrm", e))?;
    }
    if let Some(w) = hlog.take() {
        result.write_hlog(w).map_err(|e| io_err("--hlog", e))?;
    }
    if let Some(w) = jsonf.as_mut() {
        serde_json::to_writer_pretty(&mut *w, &result.to_json(&cfg))
            .map_err(std::io::Error::from)
            .and_then(|_| w.write_all(b"\n"))
            .and_then(|_| w.flush())
            .map_err(|e| io_err("--json", e))?;
    }
    if result.requests == 0 {
        return Err(Error::Failed(format!(
            "no responses from {} ({} errors); check the URL and the server",
            cfg.url,
            result.errors.total()
        )));
    }
    Ok(())
}
