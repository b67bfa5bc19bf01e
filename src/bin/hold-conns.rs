//! `hold-conns --conns N [--hold SECONDS] ADDR...`: open N keep-alive
//! connections to an HTTP/1.1 server, spread round-robin over the ADDRs
//! (e.g. `127.0.0.1:8080 127.0.0.2:8080`: each destination address has its
//! own ephemeral ports), send `GET /` on each and read a complete `200`
//! response, 128 connections at a time; then print
//! `hold-conns: N connections open, every one answered`, keep them all open
//! for `--hold` seconds (default 5), ask once more on every connection
//! (again 128 at a time) and exit 0. Any connect error, non-200 status, short or malformed response,
//! or a connection closed by the server exits 1 with a one-line cause.
//!
//! Used by the real-kernel matrix (`ci/kernel-suite.sh`) to measure a
//! server's resident memory per idle keep-alive connection; the caller
//! raises RLIMIT_NOFILE (one descriptor per connection).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::exit;
use std::time::Duration;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: hold-conns\r\n\r\n";
/// Connections opened (and asked) per batch; below common listen backlogs.
const BATCH: usize = 128;
/// A progress line every this many connections.
const PROGRESS_EVERY: usize = 5 * BATCH * 16;
/// Longest wait for one answer, s: generous, for emulated VMs (TCG).
const READ_TIMEOUT_S: u64 = 300;
/// Longest response head accepted, bytes.
const MAX_HEAD: usize = 8192;

fn fail(msg: String) -> ! {
    eprintln!("hold-conns: error: {msg}");
    exit(1)
}

/// Read one complete response; `Err` names what was wrong.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(head)) => {
                if r.code != Some(200) {
                    return Err(format!("status {:?}", r.code));
                }
                let len = r
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
                    .ok_or("no Content-Length in the response")?;
                if buf.len() >= head + len {
                    if buf.len() > head + len {
                        return Err("bytes after the response".into());
                    }
                    return Ok(());
                }
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err("response head too long".into()),
            Err(e) => return Err(format!("malformed response: {e}")),
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed by the server".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Send one request on every connection of `conns` (numbered from
/// `first`), then read every answer, [`BATCH`] connections at a time (so
/// that no answer waits behind thousands of others); exits on the first
/// failure.
fn ask_all(conns: &mut [TcpStream], first: usize, buf: &mut Vec<u8>, what: &str) {
    for (b, batch) in conns.chunks_mut(BATCH).enumerate() {
        let first = first + b * BATCH;
        for (i, s) in batch.iter_mut().enumerate() {
            s.write_all(REQUEST)
                .unwrap_or_else(|e| fail(format!("connection {}{what}: write: {e}", first + i)));
        }
        for (i, s) in batch.iter_mut().enumerate() {
            read_response(s, buf)
                .unwrap_or_else(|e| fail(format!("connection {}{what}: {e}", first + i)));
        }
    }
}

fn main() {
    let mut conns: Option<usize> = None;
    let mut hold = Duration::from_secs(5);
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--conns" => {
                conns = args.next().and_then(|v| v.parse().ok());
                if conns.is_none() {
                    fail("--conns needs a count".into());
                }
            }
            "--hold" => {
                hold = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .map(Duration::from_secs)
                    .unwrap_or_else(|| fail("--hold needs whole seconds".into()));
            }
            _ => addrs.push(
                a.parse()
                    .unwrap_or_else(|_| fail(format!("{a:?}: expected IP:PORT"))),
            ),
        }
    }
    let Some(n) = conns else {
        fail("usage: hold-conns --conns N [--hold SECONDS] ADDR...".into())
    };
    if addrs.is_empty() {
        fail("name at least one ADDR (IP:PORT)".into());
    }
    let mut buf = Vec::with_capacity(MAX_HEAD);
    let mut open: Vec<TcpStream> = Vec::with_capacity(n);
    let t0 = std::time::Instant::now();
    // In batches: connect (completed by the kernel alone, into the accept
    // queue), then send on each, then read each answer, so that the server
    // handles a batch per wake-up instead of one connection per round trip.
    while open.len() < n {
        let first = open.len();
        let batch = BATCH.min(n - first);
        for i in first..first + batch {
            let addr = addrs[i % addrs.len()];
            let s = TcpStream::connect(addr)
                .unwrap_or_else(|e| fail(format!("connection {i} to {addr}: connect: {e}")));
            s.set_read_timeout(Some(Duration::from_secs(READ_TIMEOUT_S)))
                .unwrap_or_else(|e| fail(format!("SO_RCVTIMEO: {e}")));
            open.push(s);
        }
        ask_all(&mut open[first..], first, &mut buf, "");
        if open.len().is_multiple_of(PROGRESS_EVERY) && open.len() < n {
            println!(
                "hold-conns: {} connections open and answered ({:.1} s)",
                open.len(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    println!("hold-conns: {n} connections open, every one answered");
    std::thread::sleep(hold);
    ask_all(&mut open, 0, &mut buf, ", second request");
    println!(
        "hold-conns: {n} connections answered again after {} s",
        hold.as_secs()
    );
}
