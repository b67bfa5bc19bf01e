//! `okring serve`'s arguments, as typed, and their resolution into a
//! [`ServeConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::ValueEnum;

use crate::config::{
    parse_duration, EventLoop, Mode, ServeConfig, UringTier, HLOG_INTERVAL_DEFAULT_MS,
    HLOG_INTERVAL_MIN_MS, URING_MAX_CQ_ENTRIES,
};
use crate::http::Limits;

/// Longest provided buffer accepted, bytes (1 MiB: a worker holds
/// `--uring-bufs` of them).
const URING_MAX_BUF_LEN: u32 = 1 << 20;

/// Server architecture (see docs/architecture.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Per-core threads, each owning one io_uring (multishot accept, multishot recv, provided buffer ring).
    Uring,
    /// Per-core threads, each owning one epoll instance.
    Epoll,
    /// uring where a ring can be set up here, else epoll (says why).
    Auto,
    /// A master that forks `--workers` processes, each running the epoll or
    /// uring loop (`--worker-loop`) on a shared listener (or one per worker
    /// with `--reuseport`).
    Prefork,
    /// One child process per connection, forked by an accept loop.
    Fork,
    /// One thread: blocking accept, serve the connection until it closes, then the next.
    Sequential,
}

/// io_uring feature tier to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UringTierArg {
    /// Everything the running kernel offers.
    Auto,
    /// Linux 5.19 feature set: single-shot recv with buffer select, no SINGLE_ISSUER/DEFER_TASKRUN.
    #[value(name = "5.19")]
    V5_19,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Uring => Mode::Uring,
            ModeArg::Epoll => Mode::Epoll,
            ModeArg::Auto => Mode::Auto,
            ModeArg::Prefork => Mode::Prefork,
            ModeArg::Fork => Mode::Fork,
            ModeArg::Sequential => Mode::Sequential,
        }
    }
}

/// Arguments of `okring serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Server architecture.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Worker threads [default: the number of CPUs this process may run on].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Prefork worker processes [default: the number of CPUs this process may run on].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Event loop of each prefork worker: `epoll` (the epoll mode's loop) or
    /// `uring` (the uring mode's loop, its ring created after fork, in the
    /// worker).
    #[arg(long, default_value = "epoll", value_parser = PossibleValuesParser::new(["epoll", "uring"]).map(|s| s.parse::<EventLoop>().expect("a listed value")))]
    pub worker_loop: EventLoop,
    /// Prefork: one SO_REUSEPORT listener per worker instead of one shared listener.
    #[arg(long)]
    pub reuseport: bool,
    /// Fork mode: most live children; accepting pauses while at the cap.
    #[arg(long, default_value_t = 512)]
    pub max_children: usize,
    /// Address to listen on; port 0 picks a free port (printed in the `listening on` line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Pin worker i to the i-th CPU this process may run on.
    #[arg(long)]
    pub pin: bool,
    /// Body of the fixed 200 response.
    #[arg(long, default_value = "OK")]
    pub body: String,
    /// On exit, write the merged service-time histogram here as HdrHistogram
    /// percentile distribution text (.hgrm, values in ms).
    #[arg(long, value_name = "FILE")]
    pub hist_out: Option<PathBuf>,
    /// Cap on a request head (request line + headers), bytes; over it → 414/431 and close.
    #[arg(long, default_value_t = 8192)]
    pub max_head_bytes: usize,
    /// Largest request body read and discarded, bytes; over it → 413 and close.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_body_bytes: u64,
    /// Header timeout: a connection that has not delivered a complete request
    /// head this long after accept, or after the first byte of a request, is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Idle keep-alive timeout: a connection with no request in progress and
    /// nothing to send is closed after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Body timeout: once a request head is complete, its body must keep
    /// arriving — a body with no bytes for this long is closed (counted
    /// as `timeouts_body`). The header timeout does not apply to bodies.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Slowest a request body may arrive, bytes/s on average since its
    /// start, after a first --body-timeout of grace (each BYTES received
    /// buy one more second); slower bodies are closed. 0 disables.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub body_min_rate: u64,
    /// Most connections one worker holds; further connections are closed at accept.
    #[arg(long, default_value_t = 65536)]
    pub max_conns: usize,
    /// io_uring completion queue size, entries: 8 to 65536, rounded up to a
    /// power of two (the start-up line names the size in use).
    #[arg(long, default_value_t = 16384)]
    pub uring_cq_entries: u32,
    /// Provided buffers per worker's buffer ring (a power of two, ≤ 32768).
    #[arg(long, default_value_t = 1024)]
    pub uring_bufs: u32,
    /// Length of each provided buffer, bytes.
    #[arg(long, default_value_t = 4096)]
    pub uring_buf_len: u32,
    /// io_uring feature tier; `5.19` forces the oldest supported feature set.
    #[arg(long, value_enum, default_value_t = UringTierArg::Auto)]
    pub uring_tier: UringTierArg,
    /// Batched waits: a uring worker's io_uring_enter waits up to this long
    /// for --uring-wait-cqes completions before it handles what it has, so
    /// below saturation one wake-up serves several requests. The cap is
    /// what a response may be delayed by; 0 (the default) wakes for every
    /// completion: on the machine behind docs/performance.md a short sleep
    /// cost more than the wake-ups it saved. Uses the kernel's minimum-wait
    /// timeout (IORING_FEAT_MIN_TIMEOUT, Linux 6.12) where it has one, else
    /// a timed wait (IORING_ENTER_EXT_ARG, 5.11). At most 10ms.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub uring_wait: Duration,
    /// Completions a batched wait (--uring-wait) asks for: 2 to the CQ size.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub uring_wait_cqes: u32,
    /// Serve Prometheus metrics (text format 0.0.4) at http://ADDR/metrics
    /// from a separate listener; port 0 picks a free port (printed).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Write a server-side HdrHistogram interval log of service time here,
    /// one tag per worker (`Tag=worker0`, ...).
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Length of each `--hlog` interval [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Do not record service times (no histogram per response; counters
    /// and CPU time are still kept): measures what recording costs.
    #[arg(long)]
    pub no_hist: bool,
}

impl ServeArgs {
    /// Validate and resolve. Errors are one line naming cause and fix.
    pub fn resolve(&self) -> Result<ServeConfig, String> {
        let allowed = crate::sys::allowed_cpus();
        let threads = self.threads.unwrap_or(allowed.len().max(1));
        if threads == 0 || threads > 1024 {
            return Err(format!("--threads {threads}: must be between 1 and 1024"));
        }
        let workers = self.workers.unwrap_or(allowed.len().max(1));
        if workers == 0 || workers > 1024 {
            return Err(format!("--workers {workers}: must be between 1 and 1024"));
        }
        if self.max_children == 0 || self.max_children > 65536 {
            return Err(format!(
                "--max-children {}: must be between 1 and 65536",
                self.max_children
            ));
        }
        if !self.uring_bufs.is_power_of_two() || self.uring_bufs > 32768 {
            return Err(format!(
                "--uring-bufs {}: must be a power of two between 1 and 32768 (a provided buffer ring's size)",
                self.uring_bufs
            ));
        }
        if !(64..=URING_MAX_BUF_LEN).contains(&self.uring_buf_len) {
            return Err(format!(
                "--uring-buf-len {}: must be between 64 and {URING_MAX_BUF_LEN} bytes (each worker allocates --uring-bufs of them)",
                self.uring_buf_len
            ));
        }
        if !(8..=URING_MAX_CQ_ENTRIES).contains(&self.uring_cq_entries) {
            return Err(format!(
                "--uring-cq-entries {}: must be between 8 and {URING_MAX_CQ_ENTRIES} (the kernel's IORING_MAX_CQ_ENTRIES); it is rounded up to a power of two",
                self.uring_cq_entries
            ));
        }
        if self.uring_wait > Duration::from_millis(10) {
            return Err(format!(
                "--uring-wait {:?}: at most 10ms (it delays responses by up to that much); 0 turns batched waits off",
                self.uring_wait
            ));
        }
        let batched = !self.uring_wait.is_zero();
        if batched && (self.uring_wait_cqes < 2 || self.uring_wait_cqes > self.uring_cq_entries) {
            return Err(format!(
                "--uring-wait-cqes {} with --uring-wait: must be between 2 and --uring-cq-entries ({})",
                self.uring_wait_cqes, self.uring_cq_entries
            ));
        }
        if self.max_conns == 0 || self.max_conns > (1 << 24) {
            return Err(format!(
                "--max-conns {}: must be between 1 and 16777216",
                self.max_conns
            ));
        }
        if self.header_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err("--header-timeout and --idle-timeout must be above zero".into());
        }
        if self.body_timeout.is_zero() {
            return Err("--body-timeout must be above zero".into());
        }
        if self.max_head_bytes < 64 {
            return Err(format!(
                "--max-head-bytes {}: must be at least 64",
                self.max_head_bytes
            ));
        }
        let hlog_interval = self
            .interval
            .unwrap_or(Duration::from_millis(HLOG_INTERVAL_DEFAULT_MS));
        if self.interval.is_some() && self.hlog.is_none() {
            return Err("--interval sets the --hlog interval: add --hlog FILE".into());
        }
        if hlog_interval < Duration::from_millis(HLOG_INTERVAL_MIN_MS) {
            return Err(format!(
                "--interval {hlog_interval:?}: must be at least {HLOG_INTERVAL_MIN_MS}ms (workers publish every 100 ms)"
            ));
        }
        let mode = Mode::from(self.mode);
        if self.metrics.is_some() && matches!(mode, Mode::Fork | Mode::Sequential) {
            return Err(format!(
                "--metrics is available in the uring, epoll, auto and prefork modes, not {}",
                mode.name()
            ));
        }
        if self.hlog.is_some() && matches!(mode, Mode::Fork | Mode::Sequential) {
            return Err(format!(
                "--hlog is available in the uring, epoll, auto and prefork modes, not {}",
                mode.name()
            ));
        }
        if self.no_hist && (self.hist_out.is_some() || self.hlog.is_some()) {
            return Err(
                "--no-hist records no service times: drop --hist-out and --hlog, or --no-hist"
                    .into(),
            );
        }
        Ok(ServeConfig {
            mode,
            threads,
            workers,
            worker_loop: self.worker_loop,
            reuseport: self.reuseport,
            max_children: self.max_children,
            bind: self.bind,
            pin_cpus: if self.pin { allowed } else { Vec::new() },
            body: self.body.clone().into_bytes(),
            hist_out: self.hist_out.clone(),
            limits: Limits {
                max_head_bytes: self.max_head_bytes,
                max_body_bytes: self.max_body_bytes,
            },
            uring_cq_entries: self.uring_cq_entries.next_power_of_two(),
            // Checked above: a power of two ≤ 32768 fits a u16.
            uring_bufs: self.uring_bufs as u16,
            uring_buf_len: self.uring_buf_len,
            uring_tier: match self.uring_tier {
                UringTierArg::Auto => UringTier::Auto,
                UringTierArg::V5_19 => UringTier::V5_19,
            },
            uring_wait: self.uring_wait,
            uring_wait_cqes: self.uring_wait_cqes,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            body_min_rate: self.body_min_rate,
            max_conns: self.max_conns,
            drain: Duration::from_secs(2),
            metrics: self.metrics,
            hlog: self.hlog.clone(),
            hlog_interval,
            no_hist: self.no_hist,
        })
    }
}

/// `okring serve`: resolve, then serve until SIGINT/SIGTERM (the summary
/// and `--hist-out` are written by the mode's frame).
pub fn run(args: &ServeArgs) -> Result<(), crate::error::Error> {
    let cfg = args.resolve().map_err(crate::error::Error::Usage)?;
    crate::server::serve(&cfg).map(|_| ())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    fn serve(args: &[&str]) -> Result<crate::config::ServeConfig, String> {
        let mut argv = vec!["okring", "serve"];
        argv.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let crate::cli::Command::Serve(s) = cli.command else {
            panic!("not serve");
        };
        s.resolve()
    }

    /// Every check of `okring serve`'s flags fails with the flag named.
    #[test]
    fn serve_flags_are_checked_with_the_flag_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["--threads", "0"], "--threads 0"),
            (&["--workers", "2000"], "--workers 2000"),
            (
                &["--uring-bufs", "1000"],
                "--uring-bufs 1000: must be a power of two",
            ),
            (&["--uring-buf-len", "8"], "--uring-buf-len 8"),
            (&["--uring-bufs", "65536"], "between 1 and 32768"),
            (&["--uring-buf-len", "4294967295"], "between 64 and 1048576"),
            (&["--uring-bufs", "100000"], "between 1 and 32768"),
            (&["--uring-cq-entries", "4"], "--uring-cq-entries 4"),
            (&["--uring-cq-entries", "131072"], "IORING_MAX_CQ_ENTRIES"),
            (&["--uring-wait", "20ms"], "--uring-wait 20ms: at most 10ms"),
            (
                &["--uring-wait", "50us", "--uring-wait-cqes", "1"],
                "--uring-wait-cqes 1 with --uring-wait: must be between 2",
            ),
            (
                &["--uring-wait", "50us", "--uring-cq-entries", "8"],
                "--uring-wait-cqes 32 with --uring-wait: must be between 2 and --uring-cq-entries (8)",
            ),
            (&["--max-conns", "0"], "--max-conns 0"),
            (&["--header-timeout", "0s"], "must be above zero"),
            (
                &["--body-timeout", "0s"],
                "--body-timeout must be above zero",
            ),
            (&["--max-head-bytes", "10"], "--max-head-bytes 10"),
            (&["--interval", "1s"], "add --hlog FILE"),
            (
                &["--hlog", "x.hlog", "--interval", "10ms"],
                "at least 100ms",
            ),
            (&["--mode", "fork", "--metrics", "127.0.0.1:0"], "not fork"),
            (
                &["--mode", "sequential", "--hlog", "x.hlog"],
                "not sequential",
            ),
            (
                &["--no-hist", "--hist-out", "x.hgrm"],
                "--no-hist records no service times",
            ),
        ];
        for (args, want) in cases {
            let err = serve(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn serve_defaults_resolve_to_the_documented_configuration() {
        use crate::config::{EventLoop, Mode, UringTier};
        let c = serve(&[
            "--mode",
            "prefork",
            "--worker-loop",
            "uring",
            "--uring-cq-entries",
            "3000",
        ])
        .expect("valid");
        assert_eq!(c.mode, Mode::Prefork);
        assert_eq!(c.worker_loop, EventLoop::Uring);
        assert_eq!(c.uring_tier, UringTier::Auto);
        assert_eq!(c.uring_cq_entries, 4096, "rounded up to a power of two");
        assert_eq!(c.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.idle_timeout, std::time::Duration::from_secs(60));
        assert_eq!(c.body_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.body_min_rate, 1024);
        assert_eq!(c.limits.max_head_bytes, 8192);
        assert!(c.pin_cpus.is_empty(), "no pinning unless --pin");
        assert!(c.uring_wait.is_zero(), "batched waits are opt-in");
        assert_eq!(c.uring_wait_cqes, 32);
    }
}
