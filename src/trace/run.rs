//! Running a server under strace for `okring trace` and `okring bench
//! --trace`: start `okring serve` under `strace -f -ttt`, send it requests
//! from a small blocking client, stop it, and hand the log to
//! [`super::parse`], [`super::normalise`] and [`super::group`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use super::Grouped;

/// How long the traced server may take to print `listening on`, ms
/// (strace slows every call of its start-up).
const START_TIMEOUT_MS: u64 = 20_000;
/// Kinds of shared call listed (most frequent first); the rest are summed.
const SHARED_SHOWN: usize = 12;
/// Client socket timeouts, ms.
const CLIENT_TIMEOUT_MS: u64 = 5_000;
/// After the last response, how long the server's reaction to it (a fork
/// server's child seeing the close, exiting and being reaped) may take and
/// still be counted, ms. The window ends at the last call that belongs to
/// a connection within it, so idle timer calls after that are not counted.
const GRACE_MS: u64 = 500;

/// What to trace and how to drive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSpec {
    /// Arguments after `okring serve` (mode and its flags); `--bind
    /// 127.0.0.1:0` is added.
    pub serve_args: Vec<String>,
    /// Requests in all (≥ 1).
    pub requests: u64,
    /// Connections sending at once (1 ≤ connections ≤ requests).
    pub connections: usize,
    /// A new connection per request.
    pub close: bool,
    /// Requests per write on each connection (≥ 1).
    pub pipeline: u32,
}

/// A finished trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Traced {
    pub grouped: Grouped,
}

/// strace on PATH, or the one-line error saying how to install it.
pub fn find_strace() -> Result<PathBuf, String> {
    crate::spawn::find_on_path("strace").ok_or_else(|| {
        "strace not found on PATH: install it (apt-get install strace) and run again".into()
    })
}

/// Run `spec` under strace, keeping strace's log at `log` (removed when
/// `keep_log` is false). Errors: strace missing or refused (ptrace), the
/// server not starting, a request failing — one line each.
pub fn run(spec: &TraceSpec, log: &Path, keep_log: bool) -> Result<Traced, String> {
    let strace = find_strace()?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the okring binary: {e}"))?;
    let mut child = Command::new(&strace)
        .args(["-f", "-ttt", "-qq", "-e", "signal=none", "-o"])
        .arg(log)
        .arg(&exe)
        .arg("serve")
        .args(&spec.serve_args)
        .args(["--bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", strace.display()))?;
    let stderr = child.stderr.take().ok_or("strace: no stderr pipe")?;
    let (tx, rx) = mpsc::channel::<Result<SocketAddr, String>>();
    std::thread::spawn(move || {
        let mut last = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(a) = crate::spawn::parse_listening(&line) {
                    let _ = tx.send(Ok(a));
                    sent = true;
                }
            }
            last = line;
        }
        if !sent {
            let _ = tx.send(Err(last));
        }
    });
    let addr = match rx.recv_timeout(Duration::from_millis(START_TIMEOUT_MS)) {
        Ok(Ok(a)) => a,
        Ok(Err(last)) => {
            let _ = child.wait();
            return Err(format!(
                "the traced server did not start: {} (strace needs ptrace: run as root or \
                 set kernel.yama.ptrace_scope=0 where it refuses)",
                last.trim()
            ));
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the traced server did not print `listening on` within {START_TIMEOUT_MS} ms"
            ));
        }
    };
    let server_pid = std::fs::read_to_string(format!("/proc/{}/task/{0}/children", child.id()))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<i32>().ok());

    let from = SystemTime::now();
    let sent = send_all(
        addr,
        spec.requests,
        spec.connections,
        spec.close,
        spec.pipeline,
    );
    let to = SystemTime::now();
    std::thread::sleep(Duration::from_millis(GRACE_MS));
    match server_pid {
        Some(pid) => crate::sys::kill(pid, crate::sys::SIGTERM),
        None => {
            let _ = child.kill();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    sent.map_err(|e| format!("a request to the traced server failed: {e}"))?;

    let text = std::fs::read_to_string(log)
        .map_err(|e| format!("cannot read strace's log {}: {e}", log.display()))?;
    if !keep_log {
        let _ = std::fs::remove_file(log);
    }
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let raw = super::parse(&text);
    // The window: the first connect to the last response, or to the last
    // call a connection made within GRACE_MS of it (a close, a reap).
    let all = super::normalise(&raw, secs(from), secs(to) + GRACE_MS as f64 / 1e3);
    let end = all
        .iter()
        .filter(|c| c.conn.is_some())
        .map(|c| c.ts)
        .fold(secs(to), f64::max);
    let calls: Vec<_> = all.into_iter().filter(|c| c.ts <= end).collect();
    Ok(Traced {
        grouped: super::group(&calls),
    })
}

/// The report `okring trace` prints: the first `show` connections in full,
/// the shared calls counted, the summary line.
pub fn render(mode: &str, spec: &TraceSpec, show: usize, g: &Grouped) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let shape = if spec.close {
        format!("a new connection for each, {} at a time", spec.connections)
    } else if spec.pipeline > 1 {
        format!("keep-alive, {} pipelined per write", spec.pipeline)
    } else {
        "keep-alive".to_string()
    };
    let _ = writeln!(
        s,
        "okring trace: {mode} mode, {} requests{}, {shape}; traced with strace -f \
         (every call slowed: never time a traced run)",
        spec.requests,
        if spec.close {
            String::new()
        } else {
            format!(" over {} connection(s)", spec.connections)
        }
    );
    let _ = writeln!(
        s,
        "System calls from the first connect to the last response; start-up and shutdown left out.\n"
    );
    for c in g.conns.iter().take(show) {
        let _ = writeln!(s, "conn{}", c.conn);
        for (i, req) in c.requests.iter().enumerate() {
            for (j, call) in req.iter().enumerate() {
                let head = match (i, j) {
                    (0, 0) => "  before".to_string(),
                    (_, 0) => format!("  request {i}"),
                    _ => String::new(),
                };
                let _ = writeln!(s, "{head:<12}{:<8} {}", call.who, call.text);
            }
        }
    }
    if g.by_name.contains_key("io_uring_enter") {
        let _ = writeln!(
            s,
            "(io_uring does each connection's accept, recv, send and close as SQEs inside \
             io_uring_enter, which strace sees only as the enter: a connection shows just the \
             calls made directly)"
        );
    }
    if g.conns.len() > show {
        let _ = writeln!(
            s,
            "… {} more connection(s), in the counts below (--show N prints more)",
            g.conns.len() - show
        );
    }
    if !g.shared.is_empty() {
        let _ = writeln!(
            s,
            "\nshared by all requests (event loop, timers, statistics):"
        );
        let mut shared: Vec<(&String, &usize)> = g.shared.iter().collect();
        shared.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (text, n) in shared.iter().take(SHARED_SHOWN) {
            let _ = writeln!(s, "  {n:>6}  {text}");
        }
        if shared.len() > SHARED_SHOWN {
            let rest: usize = shared[SHARED_SHOWN..].iter().map(|x| *x.1).sum();
            let _ = writeln!(
                s,
                "  {rest:>6}  … calls of {} other kinds",
                shared.len() - SHARED_SHOWN
            );
        }
    }
    let _ = writeln!(s, "\n{}", super::summary(mode, g, spec.requests));
    s
}

/// Send `requests` over `conns` connections at once (each its share, in
/// batches of `pipeline`), reading every response.
fn send_all(
    addr: SocketAddr,
    requests: u64,
    conns: usize,
    close: bool,
    pipeline: u32,
) -> Result<(), String> {
    let per = requests / conns as u64;
    let extra = requests % conns as u64;
    let handles: Vec<_> = (0..conns as u64)
        .map(|i| {
            let n = per + u64::from(i < extra);
            std::thread::spawn(move || one_connection(addr, n, close, pipeline))
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| "a client thread panicked".to_string())??;
    }
    Ok(())
}

fn one_connection(addr: SocketAddr, mut n: u64, close: bool, pipeline: u32) -> Result<(), String> {
    let request: &[u8] = if close {
        b"GET / HTTP/1.1\r\nHost: okring\r\nConnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: okring\r\n\r\n"
    };
    let connect = || -> Result<TcpStream, String> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_millis(CLIENT_TIMEOUT_MS))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let t = Some(Duration::from_millis(CLIENT_TIMEOUT_MS));
        s.set_read_timeout(t)
            .and_then(|_| s.set_write_timeout(t))
            .map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        Ok(s)
    };
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::new();
    while n > 0 {
        let batch = if close { 1 } else { u64::from(pipeline).min(n) };
        if stream.is_none() {
            stream = Some(connect()?);
            buf.clear();
        }
        let s = stream.as_mut().ok_or("no connection")?;
        s.write_all(&request.repeat(batch as usize))
            .map_err(|e| format!("send: {e}"))?;
        for _ in 0..batch {
            read_response(s, &mut buf)?;
        }
        n -= batch;
        if close {
            stream = None;
        }
    }
    Ok(())
}

/// Read one response (head and `Content-Length` body) from `s`, keeping
/// bytes of the next one in `buf`.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) =
            resp.parse(buf).map_err(|e| format!("bad response: {e}"))?
        {
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0);
            if resp.code != Some(200) {
                return Err(format!("status {:?}", resp.code));
            }
            if buf.len() >= head + len {
                buf.drain(..head + len);
                return Ok(());
            }
        }
        let mut chunk = [0u8; 4096];
        let got = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if got == 0 {
            return Err("the server closed before its response ended".into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// The flags that make a mode run one worker, so its trace reads as one
/// event loop: `--threads 1` (uring, epoll, auto), `--workers 1` (prefork).
pub fn one_worker(mode: &str) -> &'static [&'static str] {
    match mode {
        "prefork" | "prefork-uring" => &["--workers", "1"],
        "fork" | "sequential" => &[],
        _ => &["--threads", "1"],
    }
}

/// `args` (after `okring serve`, with a `--mode`) plus [`one_worker`]'s
/// flags for that mode.
pub fn with_one_worker(args: &[String]) -> Vec<String> {
    let mode = args
        .windows(2)
        .find(|w| w[0] == "--mode")
        .map(|w| w[1].as_str())
        .unwrap_or_default();
    let mut out = args.to_vec();
    out.extend(one_worker(mode).iter().map(|s| s.to_string()));
    out
}
