//! What `okring load` is asked to do: the target URL ([`Target`],
//! [`parse_url`]), the CPU list syntax, and the validated configuration a
//! run takes ([`LoadConfig`]). The arguments as typed are
//! `crate::cli::load::LoadArgs`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::live::IntervalLine;
use crate::config::EventLoop as Engine;

/// `--spin`'s default: the open-loop polling window before a due send.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Most load threads accepted.
pub(crate) const MAX_THREADS: usize = 1024;
/// Most pipelined requests per batch accepted.
pub(crate) const MAX_PIPELINE: u32 = 1024;

/// Parse a CPU list such as `0,2-3,8` (the taskset(1) list format).
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not a CPU number or range (write e.g. 0,2-3)");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b >= crate::sys::CPU_SETSIZE {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => {
                let c: usize = part.parse().map_err(|_| bad())?;
                if c >= crate::sys::CPU_SETSIZE {
                    return Err(bad());
                }
                cpus.push(c);
            }
        }
    }
    if cpus.is_empty() {
        return Err("empty CPU list (write e.g. 0,2-3)".into());
    }
    Ok(cpus)
}

/// A parsed target URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The host as it is looked up: a name, an IPv4 literal, or an IPv6
    /// literal without brackets.
    pub host: String,
    pub port: u16,
    /// Value of the `Host` header: the URL's host and, if given, port.
    pub host_header: String,
    /// Request target (origin form), starting with `/`.
    pub path: String,
}

impl Target {
    /// Every address `host:port` resolves to (getaddrinfo(3), through
    /// std's `ToSocketAddrs`), in the resolver's order, duplicates
    /// dropped. Errors name the host and the resolver's cause.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let found = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "cannot resolve {}: {e}; check the name, or give --connect-to IP:PORT",
                    self.host
                )
            })?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for a in found {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        if addrs.is_empty() {
            return Err(format!(
                "{} resolves to no address; give --connect-to IP:PORT",
                self.host
            ));
        }
        Ok(addrs)
    }
}

/// Parse `http://HOST[:PORT][/PATH][?QUERY]` (RFC 9110 §4.2.1) with the
/// `url` crate; HOST is a name, an IPv4 literal or a bracketed IPv6
/// literal. PORT defaults to 80, PATH to `/`; a fragment is dropped.
/// Errors are one line naming the fix: another scheme, user info, no host,
/// a bad port.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let u = url::Url::parse(url)
        .map_err(|e| format!("{url}: not a URL ({e}); write e.g. http://127.0.0.1:8080/"))?;
    match u.scheme() {
        "http" => {}
        "https" => {
            return Err(format!(
                "{url}: https is not supported (okring load speaks plain HTTP/1.1); use http://"
            ))
        }
        _ => {
            return Err(format!(
                "{url}: not an http:// URL; write e.g. http://127.0.0.1:8080/"
            ))
        }
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "{url}: user info is not supported; remove the user@ part"
        ));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{url}: no host; write e.g. http://127.0.0.1:8080/")),
    };
    let port = u.port_or_known_default().unwrap_or(80);
    if port == 0 {
        return Err(format!("{url}: port must be 1..65535"));
    }
    let host_str = u.host_str().unwrap_or_default();
    let host_header = match u.port() {
        Some(p) => format!("{host_str}:{p}"),
        None => host_str.to_string(),
    };
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok(Target {
        host,
        port,
        host_header,
        path,
    })
}

/// The live-output callback of [`LoadConfig::on_interval`].
pub type OnInterval = Box<dyn Fn(&IntervalLine) + Send + Sync>;

/// Configuration of one load run (validated by [`run`]).
pub struct LoadConfig {
    /// The URL as given, for reports.
    pub url: String,
    /// Where the connections go: every address the URL's host resolved to
    /// (or `--connect-to`). The run keeps those that accept a first
    /// connection and spreads its threads over them (thread i → i mod n).
    pub addrs: Vec<SocketAddr>,
    /// `Host` header value.
    pub host_header: String,
    /// Request target, starting with `/`.
    pub path: String,
    /// Connections in all, ≥ `threads`.
    pub connections: usize,
    /// Load threads, 1..=1024.
    pub threads: usize,
    /// Measured window.
    pub duration: Duration,
    /// Warm-up before the measured window (may be zero).
    pub warmup: Duration,
    /// Open loop: total requests/s (finite, > 0). `None`: closed loop.
    pub rate: Option<f64>,
    /// Open loop: a send due within this long is waited for by polling
    /// (io_uring_enter or epoll_wait that does not sleep), and a sleep until
    /// a later one ends this much early. A timed sleep wakes late by its
    /// timer's latency and costs a timer per send; zero: always sleep.
    pub spin: Duration,
    /// Requests per batch, 1..=1024; must be 1 in open loop and with `close`/`http10`.
    pub pipeline: u32,
    /// Request timeout (> 0).
    pub timeout: Duration,
    /// Send `HTTP/1.0` requests (no keep-alive).
    pub http10: bool,
    /// Send `Connection: close`.
    pub close: bool,
    pub engine: Engine,
    /// Pin thread i to `cpus[i % len]`; empty: no pinning.
    pub cpus: Vec<usize>,
    /// Keep a histogram per interval of this length (`LoadResult::intervals`).
    pub interval: Option<Duration>,
    /// Stop after this many requests sent in the window (a multiple of
    /// `pipeline`); `duration` is then a cap.
    pub requests: Option<u64>,
    /// Request method, a token.
    pub method: String,
    /// Extra header fields (name, value); a `Host` replaces the URL's.
    pub headers: Vec<(String, String)>,
    /// Request body, sent with its Content-Length.
    pub body: Option<Vec<u8>>,
    /// `--shard I/N`: this run is shard I (1-based) of N that together make
    /// one run: it opens its share of `connections` (a contiguous block of
    /// the global numbering) and, in open loop, sends its share of the
    /// global schedule (`rate` is the total over all shards).
    pub shard: Option<(usize, usize)>,
    /// `--start-at`: the wall-clock time the measured window starts (after
    /// connecting, the run waits until `start_at - warmup`).
    pub start_at: Option<std::time::SystemTime>,
    /// Called from the calling thread with each interval (of `interval`)
    /// as soon as every load thread has completed it: live output.
    pub on_interval: Option<OnInterval>,
    /// Called about every 100 ms from the calling thread with the fraction
    /// (0.0..=1.0) done: of warm-up + duration elapsed, or with `requests`
    /// of the request budget handed out.
    pub progress: Option<Box<dyn Fn(f64) + Send + Sync>>,
}

impl LoadConfig {
    /// A closed-loop configuration for `url` with the CLI's defaults, its
    /// host resolved. Errors: the URL's, or the resolver's.
    pub fn new(url: &str) -> Result<LoadConfig, String> {
        let addrs = parse_url(url)?.resolve()?;
        LoadConfig::with_addrs(url, addrs)
    }

    /// As [`new`](Self::new), connecting to `addrs` instead of resolving
    /// the URL's host (`--connect-to`); the URL still gives Host and path.
    pub fn with_addrs(url: &str, addrs: Vec<SocketAddr>) -> Result<LoadConfig, String> {
        let t = parse_url(url)?;
        if addrs.is_empty() {
            return Err("no address to connect to".into());
        }
        Ok(LoadConfig {
            url: url.to_string(),
            addrs,
            host_header: t.host_header,
            path: t.path,
            connections: 64,
            threads: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            rate: None,
            spin: DEFAULT_SPIN,
            pipeline: 1,
            timeout: Duration::from_secs(2),
            http10: false,
            close: false,
            engine: Engine::Uring,
            cpus: Vec::new(),
            interval: None,
            requests: None,
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            on_interval: None,
            shard: None,
            start_at: None,
            progress: None,
        })
    }

    /// Check every field; the error is one line naming the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(format!(
                "--threads {}: must be between 1 and {MAX_THREADS}",
                self.threads
            ));
        }
        if let Some((i, n)) = self.shard {
            if n == 0 || i == 0 || i > n {
                return Err(format!("--shard {i}/{n}: write I/N with 1 <= I <= N"));
            }
            if self.requests.is_some() {
                return Err("--requests with --shard: give each shard its own --requests, or use --duration".into());
            }
        }
        let (_, mine) = self.shard_range();
        if mine < self.threads {
            return Err(format!(
                "--connections {} is less than --threads {}: every thread needs a connection; \
                 raise --connections or lower --threads",
                mine, self.threads
            ));
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return Err(format!(
                "--pipeline {}: must be between 1 and {MAX_PIPELINE}",
                self.pipeline
            ));
        }
        if self.duration.is_zero() {
            return Err("--duration must be greater than zero".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be greater than zero".into());
        }
        if self.spin > Duration::from_millis(1) {
            return Err(format!(
                "--spin {:?}: at most 1ms (it is the polling window before each due send; 0 turns it off)",
                self.spin
            ));
        }
        if self.interval.is_some_and(|i| i < Duration::from_millis(1)) {
            return Err("--interval must be at least 1ms".into());
        }
        if self.duration + self.warmup > Duration::from_secs(365 * 86400) {
            return Err("--duration + --warmup must be under a year".into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!(
                    "--rate {r}: must be a positive number of requests/s"
                ));
            }
            if self.pipeline > 1 {
                return Err(
                    "--pipeline with --rate is not supported: the open loop sends one \
                            request per connection at a time; raise --connections instead"
                        .into(),
                );
            }
        }
        if (self.close || self.http10) && self.pipeline > 1 {
            return Err(
                "--pipeline > 1 with --close or --http1.0 is not possible: the server \
                        closes after the first response; drop one of them"
                    .into(),
            );
        }
        let bad = |s: &str| s.bytes().any(|b| b < b' ' || b == 0x7f);
        if self.path.is_empty() || !self.path.starts_with('/') || bad(&self.path) {
            return Err(format!(
                "path {:?}: must start with / and have no control characters",
                self.path
            ));
        }
        if bad(&self.host_header) {
            return Err("Host header has control characters".into());
        }
        let token = |s: &str| !s.is_empty() && s.bytes().all(crate::http::syntax::is_tchar);
        if !token(&self.method) {
            return Err(format!(
                "--method {:?}: must be a token, e.g. GET or POST",
                self.method
            ));
        }
        if self.method == "CONNECT" {
            return Err("--method CONNECT opens a tunnel, not a request/response exchange".into());
        }
        for (name, value) in &self.headers {
            if !token(name) {
                return Err(format!("--header {name:?}: the name must be a token"));
            }
            if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
                return Err(format!("--header {name}: the value has control characters"));
            }
            let framing = ["content-length", "transfer-encoding", "connection"];
            if framing.iter().any(|f| name.eq_ignore_ascii_case(f)) {
                return Err(format!(
                    "--header {name}: okring load sets the framing headers itself (use --body, --close, --http1.0)"
                ));
            }
        }
        if let Some(n) = self.requests {
            if n == 0 || n % u64::from(self.pipeline) != 0 {
                return Err(format!(
                    "--requests {n}: must be a positive multiple of --pipeline {}",
                    self.pipeline
                ));
            }
        }
        Ok(())
    }

    /// The exact bytes of one request.
    pub fn request_bytes(&self) -> Vec<u8> {
        let version = if self.http10 { "1.0" } else { "1.1" };
        let mut r = format!("{} {} HTTP/{version}\r\n", self.method, self.path);
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            r.push_str(&format!("Host: {}\r\n", self.host_header));
        }
        for (name, value) in &self.headers {
            r.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.close && !self.http10 {
            r.push_str("Connection: close\r\n");
        }
        if let Some(b) = &self.body {
            r.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        if let Some(b) = &self.body {
            bytes.extend_from_slice(b);
        }
        bytes
    }

    /// This run's connections in the global numbering: (first, count) —
    /// all of them without `shard`, shard I's contiguous block with it.
    pub fn shard_range(&self) -> (usize, usize) {
        match self.shard {
            Some((i, n)) if n > 0 && (1..=n).contains(&i) => {
                let c = self.connections;
                let (a, b) = (c * (i - 1) / n, c * i / n);
                (a, b - a)
            }
            _ => (0, self.connections),
        }
    }

    /// Whether the requests are HEAD (responses carry no body).
    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    pub(crate) fn mode_text(&self) -> String {
        match self.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None if self.pipeline > 1 => format!("closed loop, pipeline {}", self.pipeline),
            None => "closed loop".into(),
        }
    }
}
