//! The resolved configuration the library takes: plain data, no clap. The
//! command line (`cli`) fills these in after checking every flag; tests and
//! other front ends may build them directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::http::Limits;

/// Server architecture, as `okring serve --mode` names it (see
/// docs/architecture.md and docs/modes.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Per-core threads, each owning one io_uring.
    Uring,
    /// Per-core threads, each owning one epoll instance.
    Epoll,
    /// [`Mode::Uring`] where a ring can be set up here, else [`Mode::Epoll`].
    Auto,
    /// A master forking worker processes that each run an [`EventLoop`].
    Prefork,
    /// One child process per connection.
    Fork,
    /// One thread, one connection at a time.
    Sequential,
}

impl Mode {
    /// Every mode, in `--help` order.
    pub const ALL: [Mode; 6] = [
        Mode::Uring,
        Mode::Epoll,
        Mode::Auto,
        Mode::Prefork,
        Mode::Fork,
        Mode::Sequential,
    ];

    /// The name `--mode` takes.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Uring => "uring",
            Mode::Epoll => "epoll",
            Mode::Auto => "auto",
            Mode::Prefork => "prefork",
            Mode::Fork => "fork",
            Mode::Sequential => "sequential",
        }
    }

    /// The event loop of a thread mode; `None` for auto (decided by a
    /// probe) and the process modes.
    pub fn event_loop(self) -> Option<EventLoop> {
        match self {
            Mode::Uring => Some(EventLoop::Uring),
            Mode::Epoll => Some(EventLoop::Epoll),
            _ => None,
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    /// A `--mode` name; the error lists the known ones.
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!("unknown mode {s:?} (known: {})", known.join(", "))
            })
    }
}

/// The event loop a worker runs: the one "uring or epoll" choice, for the
/// thread modes, prefork workers and the load generator's engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventLoop {
    /// io_uring (the ring is created in the worker, after any fork).
    Uring,
    /// Level-triggered epoll.
    Epoll,
}

impl EventLoop {
    /// `uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            EventLoop::Uring => "uring",
            EventLoop::Epoll => "epoll",
        }
    }
}

impl FromStr for EventLoop {
    type Err = String;

    /// `uring` or `epoll`.
    fn from_str(s: &str) -> Result<EventLoop, String> {
        match s {
            "uring" => Ok(EventLoop::Uring),
            "epoll" => Ok(EventLoop::Epoll),
            _ => Err(format!("unknown event loop {s:?} (known: uring, epoll)")),
        }
    }
}

/// io_uring feature tier to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UringTier {
    /// Everything the running kernel offers.
    Auto,
    /// The Linux 5.19 feature set: single-shot recv with buffer select, no
    /// SINGLE_ISSUER/DEFER_TASKRUN.
    V5_19,
}

/// Parse a duration like `10s`, `250ms`, `1m` (humantime syntax); the
/// error names the input and how to write one.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. 10s, 250ms, 1m)"))
}

/// Default `--interval` of `--hlog`.
pub const HLOG_INTERVAL_DEFAULT_MS: u64 = 1000;

/// Largest completion queue io_uring_setup(2) accepts with
/// IORING_SETUP_CQSIZE: IORING_MAX_CQ_ENTRIES = 2 × 32768 (every kernel
/// since 5.5), entries.
pub const URING_MAX_CQ_ENTRIES: u32 = 65536;
/// Shortest `--interval`: the workers' publish interval, ms.
pub const HLOG_INTERVAL_MIN_MS: u64 = 100;

/// Resolved configuration of `okring serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub mode: Mode,
    pub threads: usize,
    /// Prefork worker processes.
    pub workers: usize,
    pub worker_loop: EventLoop,
    /// Prefork: one SO_REUSEPORT listener per worker.
    pub reuseport: bool,
    /// Fork mode: most live children.
    pub max_children: usize,
    pub bind: SocketAddr,
    /// CPUs to pin worker i to (`cpus[i % len]`); empty when not pinning.
    pub pin_cpus: Vec<usize>,
    pub body: Vec<u8>,
    pub hist_out: Option<PathBuf>,
    pub limits: Limits,
    pub uring_cq_entries: u32,
    pub uring_bufs: u16,
    pub uring_buf_len: u32,
    pub uring_tier: UringTier,
    /// `--uring-wait`: most a worker's io_uring_enter waits for
    /// [`Self::uring_wait_cqes`] completions once one is there; zero: wake
    /// for every completion.
    pub uring_wait: Duration,
    /// `--uring-wait-cqes`: completions a batched wait asks for.
    pub uring_wait_cqes: u32,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// A request body that receives nothing for this long is closed.
    pub body_timeout: Duration,
    /// Slowest average a request body may arrive at, bytes/s, after a
    /// first `body_timeout` of grace; 0: no minimum.
    pub body_min_rate: u64,
    pub max_conns: usize,
    /// How long shutdown waits for in-flight responses.
    pub drain: Duration,
    /// `--metrics`: address of the Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
    /// `--hlog`: server-side interval log path.
    pub hlog: Option<PathBuf>,
    /// `--interval`: length of each `--hlog` interval.
    pub hlog_interval: Duration,
    /// `--no-hist`: service times are not recorded.
    pub no_hist: bool,
}

impl ServeConfig {
    /// Whether workers publish live snapshots (`--metrics` or `--hlog`).
    pub fn live(&self) -> bool {
        self.metrics.is_some() || self.hlog.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_names() {
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>(), Ok(m));
        }
        let err = "nginx".parse::<Mode>().unwrap_err();
        assert!(
            err.contains("known: uring, epoll, auto, prefork, fork, sequential"),
            "{err}"
        );
        assert_eq!(Mode::Uring.event_loop(), Some(EventLoop::Uring));
        assert_eq!(Mode::Auto.event_loop(), None);
    }

    #[test]
    fn durations_parse_or_say_how_to_write_one() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        let err = parse_duration("ten").unwrap_err();
        assert!(
            err.starts_with("\"ten\":") && err.contains("write e.g. 10s"),
            "{err}"
        );
    }
}
