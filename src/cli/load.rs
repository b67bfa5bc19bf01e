//! `okring load`'s arguments, as typed, their resolution into a
//! [`LoadConfig`], and the front door: the summary on stdout and the
//! `--json`, `--hgrm` and `--hlog` files.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::parse_duration;
use crate::config::EventLoop as Engine;
use crate::error::Error;
use crate::gate::{Figures, Gates};
use crate::load::{parse_cpus, LoadConfig};

/// Arguments of `okring load`, as typed.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target URL: http://HOST[:PORT][/PATH]; HOST a name (every address it
    /// resolves to is tried; threads spread over those that answer), an IPv4
    /// literal or an [IPv6] literal.
    pub url: String,
    /// Connect here (IP:PORT, repeatable) instead of resolving the URL's
    /// host; Host header and path still come from the URL.
    #[arg(long, value_name = "IP:PORT")]
    pub connect_to: Vec<std::net::SocketAddr>,
    /// Connections kept open, spread over the threads.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Load threads, each with its own ring (or epoll) and connections.
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,
    /// Length of the measured window (humantime, e.g. 10s, 1m) [default:
    /// 10s; with --requests, a cap of 30 days].
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests sent in the measured window (a
    /// multiple of --pipeline), instead of after --duration.
    #[arg(long, short = 'n', value_name = "N")]
    pub requests: Option<u64>,
    /// Request method (a token: GET, HEAD, POST, …).
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// Extra header field, `Name: value`; repeat for more. A `Host` given
    /// here replaces the URL's.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Request body: TEXT, or @FILE for a file's bytes; sent with its
    /// Content-Length.
    #[arg(long, value_name = "TEXT|@FILE")]
    pub body: Option<String>,
    /// Fail (exit 3) when a budget is broken, e.g. 'p99>2ms,errors>0.1%,rps<50000'
    /// (latency pNN, max, mean with ns/us/ms/s; errors as a count or % of
    /// requests sent; rps).
    #[arg(long, value_name = "GATES")]
    pub fail_if: Option<String>,
    /// Warm-up run before the measured window; its samples are discarded.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: total requests per second (fractional allowed) on a fixed
    /// schedule; latency is measured from each request's intended send time.
    #[arg(long, short = 'R')]
    pub rate: Option<f64>,
    /// Open loop: poll, without sleeping, for a send due within this long,
    /// and end a sleep until a later one this much early. A timed sleep wakes
    /// a timer's latency late (tens of µs on a VM) and costs a timer per
    /// send; polling holds the schedule at the price of client CPU. 0: always
    /// sleep.
    #[arg(long, default_value = "50us", value_parser = parse_duration)]
    pub spin: Duration,
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
    /// Write configuration, results and histograms as JSON (schema
    /// okring.load/1); `-` writes it to stdout and the summary to stderr.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the latency histogram as HdrHistogram percentile text (.hgrm, ms).
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (.hlog) with one histogram per --interval.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Print one line per interval during the run on stderr (req/s, p50,
    /// p99, max, errors, late sends); also the length of each --hlog
    /// interval [default for --hlog: 1s; no live lines unless given].
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Run shard I of N (1 <= I <= N) of one load spread over N machines:
    /// this shard opens its share of --connections and, with --rate (the
    /// total over all shards), sends its share of the one global schedule,
    /// so the shards together make one machine's arrival process.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Start the measured window at this wall-clock time: RFC 3339
    /// (2026-12-02T10:00:00Z) or +DURATION from now (+5s). Connections are
    /// opened first; the summary says how far off the start was.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// Pin load thread i to the (i mod n)-th CPU of this list, e.g. 0,2-3.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
}

impl LoadArgs {
    /// Resolve into a [`LoadConfig`]; errors are one line naming the fix.
    pub fn resolve(&self) -> Result<LoadConfig, String> {
        let mut cfg = if self.connect_to.is_empty() {
            LoadConfig::new(&self.url)?
        } else {
            LoadConfig::with_addrs(&self.url, self.connect_to.clone())?
        };
        cfg.connections = self.connections;
        cfg.threads = self.threads;
        cfg.duration = match (self.duration, self.requests) {
            (Some(d), _) => d,
            (None, Some(_)) => Duration::from_secs(REQUESTS_CAP_S),
            (None, None) => Duration::from_secs(10),
        };
        cfg.requests = self.requests;
        cfg.shard = self.shard;
        cfg.start_at = self.start_at;
        cfg.method = self.method.clone();
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("--header {h:?}: write it as 'Name: value'"))?;
            cfg.headers
                .push((name.trim().to_string(), value.trim().to_string()));
        }
        cfg.body = match self.body.as_deref() {
            None => None,
            Some(b) => Some(match b.strip_prefix('@') {
                Some(path) => std::fs::read(path)
                    .map_err(|e| format!("--body @{path}: cannot read it: {e}"))?,
                None => b.as_bytes().to_vec(),
            }),
        };
        cfg.warmup = self.warmup;
        cfg.rate = self.rate;
        cfg.spin = self.spin;
        cfg.pipeline = self.pipeline;
        cfg.timeout = self.timeout;
        cfg.http10 = self.http10;
        cfg.close = self.close;
        cfg.engine = self.engine;
        cfg.cpus = match &self.cpus {
            Some(list) => parse_cpus(list).map_err(|e| format!("--cpus: {e}"))?,
            None => Vec::new(),
        };
        let interval = self.interval.unwrap_or(Duration::from_secs(1));
        cfg.interval = Some(interval);
        cfg.validate()?;
        if interval.is_zero() {
            return Err("--interval must be above zero".into());
        }
        Ok(cfg)
    }
}

/// `I/N` of `--shard`.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?}: write I/N, e.g. 2/4 (shard 2 of 4)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("{s:?}: I must be between 1 and N"));
    }
    Ok((i, n))
}

/// `--start-at`: RFC 3339, or `+DURATION` from now.
fn parse_start_at(s: &str) -> Result<std::time::SystemTime, String> {
    match s.strip_prefix('+') {
        Some(d) => Ok(std::time::SystemTime::now() + parse_duration(d)?),
        None => humantime::parse_rfc3339_weak(s)
            .map_err(|e| format!("{s:?}: {e}; write RFC 3339 (2026-12-02T10:00:00Z) or +5s")),
    }
}

/// Resolution of the progress bar (positions per run).
const PROGRESS_STEPS: u64 = 1000;

/// The measured window's cap with --requests and no --duration, s.
const REQUESTS_CAP_S: u64 = 30 * 86_400;

fn create(path: &PathBuf) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// `okring load`: print the summary on stdout, notices on stderr, and
/// write the requested files. Errors are one line naming cause and fix.
pub fn run(args: &LoadArgs) -> Result<(), Error> {
    let mut cfg = args.resolve().map_err(Error::Usage)?;
    let gates = match &args.fail_if {
        Some(list) => Some(Gates::parse(list).map_err(Error::Usage)?),
        None => None,
    };
    if args.hlog.is_none() && args.interval.is_none() {
        cfg.interval = None;
    }
    // A progress bar only when a person watches stderr; live lines print
    // above it.
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(PROGRESS_STEPS);
        let what = if cfg.requests.is_some() {
            "requests"
        } else {
            "window"
        };
        b.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{percent}}% of the {what} (eta {{eta}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    if let Some(b) = &bar {
        let b = b.clone();
        cfg.progress = Some(Box::new(move |f: f64| {
            b.set_position((f * PROGRESS_STEPS as f64) as u64)
        }));
    }
    if args.interval.is_some() {
        let b = bar.clone();
        cfg.on_interval = Some(Box::new(move |line: &crate::load::IntervalLine| {
            let text = format!("okring load: {}", line.text());
            match &b {
                Some(b) => b.println(text),
                None => crate::say!("{text}"),
            }
        }));
    }
    let json_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    // Open output files first so a bad path fails before the run, not after.
    let mut hgrm = args.hgrm.as_ref().map(create).transpose()?;
    let mut hlog = args.hlog.as_ref().map(create).transpose()?;
    let mut jsonf: Option<Box<dyn Write>> = match &args.json {
        None => None,
        Some(_) if json_stdout => Some(Box::new(std::io::stdout().lock())),
        Some(p) => Some(Box::new(create(p)?)),
    };
    let result = crate::load::run(&cfg);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let result = result?;
    for w in &result.warnings {
        eprintln!("okring: warning: {w}");
    }
    if json_stdout {
        eprint!("{}", result.summary_text());
    } else {
        print!("{}", result.summary_text());
    }
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
    match gates {
        Some(g) => g.check(&Figures {
            latency_ns: &result.latency_ns,
            sent: result.sent,
            errors: result.errors.total(),
            rps: result.requests_per_sec(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    fn parse(args: &[&str]) -> super::LoadArgs {
        let cli = crate::cli::Cli::try_parse_from(
            ["okring", "load", "http://127.0.0.1:1/"].iter().chain(args),
        )
        .expect("parses");
        let crate::cli::Command::Load(l) = cli.command else {
            panic!("not load");
        };
        l
    }

    /// The CLI's `--spin` default is the library's, and a window over 1 ms
    /// is refused with the flag named.
    #[test]
    fn spin_defaults_to_the_library_default_and_is_bounded() {
        let cfg = parse(&[]).resolve().expect("resolves");
        assert_eq!(cfg.spin, crate::load::DEFAULT_SPIN);
        let cfg = parse(&["--spin", "0s", "--rate", "1000"])
            .resolve()
            .expect("resolves");
        assert!(cfg.spin.is_zero());
        let e = parse(&["--spin", "5ms"])
            .resolve()
            .and_then(|c| c.validate().map(|_| c));
        assert!(e.is_err_and(|e| e.contains("--spin")), "5ms accepted");
    }
}
