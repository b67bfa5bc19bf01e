//! Shared integration-test harness: spawns the real `okring serve` binary on
//! an ephemeral loopback port, talks HTTP/1.1 to it over plain blocking
//! sockets, and stamps each scenario once per server mode.
//!
//! What it does:
//! - [`Server`]: start (`--bind 127.0.0.1:0 --threads 2` plus the mode's
//!   arguments), learn the port from the one `listening on <ip>:<port>`
//!   stderr line (a channel with a 10 s bound, never a fixed port or a sleep
//!   loop), forward every stderr line to the test's output, stop with
//!   SIGTERM and collect the exit status and stderr; `Drop` kills it;
//!   [`Server::metrics_addr`] reads the `--metrics` endpoint's address.
//! - [`eventually`]: poll a condition with a time bound.
//! - Client helpers: [`connect`] (TCP_NODELAY, a read timeout),
//!   [`read_response`] (one response framed by `Content-Length`; a HEAD
//!   response carries no body), [`expect_eof`], [`assert_fixed_ok`].
//! - [`mode_test!`]: the list of modes. Adding a mode is one line there.
//!
//! What it does not do: judge the server's answers to each request vector
//! (that is `tests/serve.rs`), or drive external tools (`tests/interop.rs`).
#![allow(dead_code, unused_macros)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line, ms.
pub const START_TIMEOUT_MS: u64 = 10_000;
/// How long `stop` waits for exit after SIGTERM before SIGKILL, ms. The
/// server drains for at most 2 s.
pub const STOP_TIMEOUT_MS: u64 = 5_000;
/// Client read timeout, ms: below the server's default 10 s header timeout,
/// so a server that hangs on a request fails the test instead of being
/// rescued by its own timer.
pub const READ_TIMEOUT_MS: u64 = 5_000;

/// Every server configuration the suites run, by test name.
pub const URING: Mode = Mode::new("uring", &["--mode", "uring"]);
pub const URING_5_19: Mode = Mode::new("uring_5_19", &["--mode", "uring", "--uring-tier", "5.19"]);
pub const EPOLL: Mode = Mode::new("epoll", &["--mode", "epoll"]);
pub const PREFORK_EPOLL: Mode = Mode::new(
    "prefork_epoll",
    &[
        "--mode",
        "prefork",
        "--workers",
        "2",
        "--worker-loop",
        "epoll",
    ],
);
pub const PREFORK_URING: Mode = Mode::new(
    "prefork_uring",
    &[
        "--mode",
        "prefork",
        "--workers",
        "2",
        "--worker-loop",
        "uring",
    ],
);
pub const FORK: Mode = Mode::new("fork", &["--mode", "fork"]);
pub const SEQUENTIAL: Mode = Mode::new("sequential", &["--mode", "sequential"]);

/// Stamp a scenario for a list of modes: `stamp!(name: uring = URING,
/// epoll = EPOLL)`, after `fn name(mode: &Mode)`, makes a module `name`
/// with one `#[test]` per listed mode, each calling `name(&MODE)`. A mode
/// whose kernel facility is missing here (io_uring in a container) is
/// skipped outside CI, see [`run_mode`].
macro_rules! stamp {
    ($name:ident: $($test:ident = $mode:ident),+ $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $test() {
                    $crate::common::run_mode(&$crate::common::$mode, super::$name)
                }
            )+
        }
    };
}

/// Stamp a scenario for every server mode (`stamp!` with the whole list).
macro_rules! mode_test {
    ($name:ident) => {
        stamp!($name: uring = URING, uring_5_19 = URING_5_19, epoll = EPOLL,
            prefork_epoll = PREFORK_EPOLL, prefork_uring = PREFORK_URING,
            fork = FORK, sequential = SEQUENTIAL);
    };
}

/// Stamp a scenario for the modes with an event loop per worker (threads
/// or prefork processes): the faults that concern concurrency apply only
/// to them.
macro_rules! event_loop_test {
    ($name:ident) => {
        stamp!($name: uring = URING, uring_5_19 = URING_5_19, epoll = EPOLL,
            prefork_epoll = PREFORK_EPOLL, prefork_uring = PREFORK_URING);
    };
}

/// One server mode: a name for messages and the `serve` arguments selecting it.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

impl Mode {
    pub const fn new(name: &'static str, args: &'static [&'static str]) -> Mode {
        Mode { name, args }
    }

    /// Start a server in this mode with `extra` arguments.
    pub fn start(&self, extra: &[&str]) -> Server {
        Server::start(self.args, extra)
    }
}

/// Whether running under CI (`CI=true`), where a missing tool or kernel
/// facility fails the test instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (print a notice and return `true`) or, under CI, panic.
pub fn skip(why: &str) -> bool {
    if under_ci() {
        panic!("{why} (CI=true: every test must run)");
    }
    eprintln!("skipping: {why}");
    true
}

/// Run `f` in `mode`, unless the mode cannot start here because io_uring is
/// unavailable (then skip, or fail under CI).
pub fn run_mode(mode: &Mode, f: fn(&Mode)) {
    if let Some(why) = unavailable(mode) {
        skip(&format!("{} mode unavailable here: {why}", mode.name));
        return;
    }
    f(mode)
}

/// Probe a mode once per test binary: `Some(reason)` when the server exits
/// at start-up with an io_uring set-up error; other start-up failures are
/// left for the test itself to report.
fn unavailable(mode: &Mode) -> Option<String> {
    static PROBED: OnceLock<Mutex<HashMap<&'static str, Option<String>>>> = OnceLock::new();
    let mut probed = PROBED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    probed
        .entry(mode.name)
        .or_insert_with(|| match Server::try_start(mode.args, &[]) {
            Ok(s) => {
                drop(s.stop());
                None
            }
            Err(stderr) if stderr.contains("io_uring") => Some(stderr.trim().to_string()),
            Err(_) => None,
        })
        .clone()
}

/// A running `okring serve` child process.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Spawn `okring serve --bind 127.0.0.1:0 --threads 2 <mode_args> <extra>`
    /// and wait (≤ 10 s) for its `listening on` line. Panics with the
    /// server's stderr if it exits or stays silent.
    pub fn start(mode_args: &[&str], extra: &[&str]) -> Server {
        match Server::try_start(mode_args, extra) {
            Ok(s) => s,
            Err(stderr) => panic!("okring serve {mode_args:?} {extra:?} did not start:\n{stderr}"),
        }
    }

    /// As [`Server::start`], but a failed start returns the stderr text.
    pub fn try_start(mode_args: &[&str], extra: &[&str]) -> Result<Server, String> {
        Server::try_start_under(&[], mode_args, extra)
    }

    /// As [`Server::try_start`], with the server run by `wrapper` (e.g.
    /// `["prlimit", "--nofile=64:64", "--"]`): the wrapper's arguments come
    /// first, then the okring command line. `--bind 127.0.0.1:0` and
    /// `--threads 2` are added unless the arguments set them.
    pub fn try_start_under(
        wrapper: &[&str],
        mode_args: &[&str],
        extra: &[&str],
    ) -> Result<Server, String> {
        let okring = env!("CARGO_BIN_EXE_okring");
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(okring);
                c
            }
            None => Command::new(okring),
        };
        cmd.arg("serve");
        if !mode_args.iter().chain(extra).any(|a| *a == "--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        if !mode_args.iter().chain(extra).any(|a| *a == "--threads") {
            cmd.args(["--threads", "2"]);
        }
        let mut child = cmd
            .args(mode_args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn okring (CARGO_BIN_EXE_okring)");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = crossbeam_channel::bounded::<SocketAddr>(1);
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[okring] {line}");
                    let addr = listening_addr(&line);
                    // Keep the line before announcing readiness: callers
                    // read `lines` as soon as the address arrives.
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                    if let Some(addr) = addr {
                        let _ = tx.try_send(addr);
                    }
                }
            })
        };
        match rx.recv_timeout(Duration::from_millis(START_TIMEOUT_MS)) {
            Ok(addr) => Ok(Server {
                child,
                addr,
                lines,
                reader: Some(reader),
            }),
            Err(_) => {
                // Exited (channel closed when the pipe hit EOF) or silent.
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                let text = lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
                Err(text)
            }
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait (≤ 5 s, then SIGKILL and panic) for exit.
    /// Returns the exit status and the whole stderr.
    pub fn stop(self) -> (ExitStatus, String) {
        signal(self.child.id(), libc::SIGTERM);
        self.wait_exit(Duration::from_millis(STOP_TIMEOUT_MS))
    }

    /// Wait (≤ `limit`, then SIGKILL and panic) for an exit the test has
    /// already provoked; returns the exit status and the whole stderr.
    pub fn wait_exit(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("waitpid") {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "okring did not exit within {limit:?}; stderr:\n{}",
                    self.stderr_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status, self.stderr_so_far())
    }

    /// Every stderr line read so far, joined with newlines.
    pub fn stderr_so_far(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// The address of the `--metrics` endpoint, from the server's
    /// `metrics on http://ADDR/metrics` line. The server prints that line
    /// before `listening on`, so it is already here once `start` returns;
    /// panics (with stderr) when the server was started without `--metrics`.
    pub fn metrics_addr(&self) -> SocketAddr {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .find_map(|l| {
                let url = l.split("metrics on http://").nth(1)?;
                url.trim_end_matches("/metrics").parse().ok()
            })
            .unwrap_or_else(|| panic!("no `metrics on` line in:\n{}", lines.join("\n")))
    }

    /// Resident set size of the server process, bytes (from /proc/PID/status).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line");
        kb * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Send signal `sig` to process `pid` (kill(2)).
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is our own child, not yet reaped, so the id is still its own.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}): {}", io::Error::last_os_error());
}

/// The address in an `... listening on <ip>:<port>` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches(',')
        .parse()
        .ok()
}

/// Poll `cond` every 20 ms until it holds (`true`) or `limit` passes
/// (`false`).
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run a command to completion and return (exit status, stderr).
pub fn run_okring(args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_okring"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run okring");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of `name=<u64>` in the `okring: counters:` summary line.
pub fn counter(stderr: &str, name: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("okring: counters:"))?;
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

// ---------------------------------------------------------------- client

/// Connect with TCP_NODELAY (so each write leaves as its own segment) and a
/// read timeout of [`READ_TIMEOUT_MS`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).expect("TCP_NODELAY");
    s.set_read_timeout(Some(Duration::from_millis(READ_TIMEOUT_MS)))
        .expect("SO_RCVTIMEO");
    s
}

/// A connection with a read buffer, so pipelined responses that arrive in
/// one segment are split correctly.
pub struct Client {
    pub r: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client {
            r: BufReader::with_capacity(64 << 10, connect(addr)),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.r.get_ref()
    }

    /// Write all of `bytes`; panics on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).expect("write request");
    }

    /// Read one response to a non-HEAD request; panics on EOF or error.
    pub fn response(&mut self) -> Response {
        match read_response(&mut self.r, false) {
            Ok(Some(r)) => r,
            Ok(None) => panic!("EOF where a response was expected"),
            Err(e) => panic!("reading a response: {e}"),
        }
    }

    /// Send `GET / HTTP/1.1` and check the fixed 200 with body `OK`.
    pub fn get_ok(&mut self) {
        self.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_fixed_ok(&self.response(), b"OK", false);
    }

    pub fn expect_eof(&mut self) {
        expect_eof(&mut self.r);
    }

    pub fn shutdown_write(&self) {
        self.stream()
            .shutdown(Shutdown::Write)
            .expect("shutdown(SHUT_WR)");
    }
}

/// One parsed HTTP/1.1 response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    let n = r.read_until(b'\n', buf)?;
    if n > 0 && !buf.ends_with(b"\r\n") {
        return Err(bad(format!(
            "line not ended by CRLF: {:?}",
            String::from_utf8_lossy(buf)
        )));
    }
    Ok(n)
}

/// Read one response. `Ok(None)`: clean EOF before its first byte. `head`:
/// the request was HEAD, so no body follows whatever `Content-Length` says.
/// Errors: a timeout, EOF inside a response, or a malformed response
/// (`InvalidData`). Interim `1xx` responses are returned like any other.
pub fn read_response<R: BufRead>(r: &mut R, head: bool) -> io::Result<Option<Response>> {
    let mut line = Vec::new();
    if read_line(r, &mut line)? == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
    let mut parts = text.splitn(3, ' ');
    let (Some("HTTP/1.1"), Some(code), reason) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(format!("bad status line {text:?}")));
    };
    let status: u16 = code
        .parse()
        .map_err(|_| bad(format!("bad status code in {text:?}")))?;
    let mut headers = Vec::new();
    loop {
        if read_line(r, &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == b"\r\n" {
            break;
        }
        let h = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {h:?}")))?;
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        reason: reason.unwrap_or("").into(),
        headers,
        body: vec![],
    };
    if (100..200).contains(&status) {
        return Ok(Some(resp));
    }
    let len: usize = resp
        .header("Content-Length")
        .ok_or_else(|| bad(format!("{status} response without Content-Length")))?
        .parse()
        .map_err(|_| bad("bad Content-Length".into()))?;
    if !head {
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)?;
    }
    Ok(Some(resp))
}

/// Assert the next read is a clean EOF (not a timeout, not more bytes).
pub fn expect_eof<R: Read>(r: &mut R) {
    let mut b = [0u8; 256];
    match r.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected EOF, got {n} more bytes: {:?}",
            String::from_utf8_lossy(&b[..n])
        ),
        Err(e) => panic!("expected EOF, got error: {e}"),
    }
}

/// Whether `s` has the IMF-fixdate shape `Sun, 06 Nov 1994 08:49:37 GMT`
/// (RFC 9110 §5.6.7).
pub fn is_imf_fixdate(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 29
        && DAYS.contains(&&s[0..3])
        && &s[3..5] == ", "
        && digits(5..7)
        && b[7] == b' '
        && MONTHS.contains(&&s[8..11])
        && b[11] == b' '
        && digits(12..16)
        && b[16] == b' '
        && digits(17..19)
        && b[19] == b':'
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
        && &s[25..] == " GMT"
}

/// Assert `r` is okring's fixed 200 carrying `body` (for HEAD: the headers
/// announce `body.len()` and no body came): `Date` in IMF-fixdate shape,
/// `Content-Type: text/plain`, a matching `Content-Length`.
pub fn assert_fixed_ok(r: &Response, body: &[u8], head: bool) {
    assert_eq!((r.status, r.reason.as_str()), (200, "OK"), "response {r:?}");
    assert_common_headers(r);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain"),
        "response {r:?}"
    );
    assert_eq!(
        r.header("Content-Length"),
        Some(body.len().to_string().as_str())
    );
    let want: &[u8] = if head { b"" } else { body };
    assert_eq!(r.body, want, "response body");
}

/// Headers every okring response carries: one `Date` (IMF-fixdate), one
/// `Content-Length`.
pub fn assert_common_headers(r: &Response) {
    let count = |n: &str| {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .count()
    };
    assert_eq!(count("Date"), 1, "one Date header in {r:?}");
    assert!(
        is_imf_fixdate(r.header("Date").unwrap_or("")),
        "Date not IMF-fixdate: {r:?}"
    );
    assert_eq!(count("Content-Length"), 1, "one Content-Length in {r:?}");
}

/// A fresh connection gets the fixed 200 (the server still serves others).
pub fn assert_serving(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.get_ok();
}

/// Whether `tool` is on PATH (runs `tool --version`-free: looks it up).
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(tool);
            std::fs::metadata(&f).is_ok_and(|m| m.is_file())
        })
    })
}
