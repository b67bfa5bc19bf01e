//! End-to-end tests of `okring serve`: the real binary, real sockets, every
//! mode.
//!
//! What it covers:
//! - Every request vector V01–V28 of `tests/data/requests.md` (copied below
//!   as data with its expectations), and the conformance vectors H01–H10
//!   (Host syntax, request-target forms, CONNECT, HTTP/1.x minor and other
//!   major versions, chunk-extension grammar: `docs/http.md`), sent whole, split into two writes at
//!   byte boundaries, and (when under [`BYTE_AT_A_TIME_MAX_BYTES`]) one byte
//!   per write; each attempt on a fresh connection, one server per
//!   vector × mode. After every attempt that ends in EOF a new connection
//!   must still get `OK`; after every "then open" one the connection must
//!   serve a further request and nothing else (see [`probe_open`]).
//! - 1000 keep-alive requests on one connection; 200 concurrent clients;
//!   SIGTERM under load (exit 0 within 3 s, summary, `--hist-out`); the
//!   header (V27, V28), body (a paced 40 MiB upload, a stalled body) and
//!   idle timeouts; `--body`; bad command-line input.
//!
//! What it does not cover: third-party clients and load generators (that is
//! `tests/interop.rs`), the framer on its own (unit tests in `src/http/request/tests.rs`).

#[macro_use]
mod common;

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::ops::Range;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;

/// Pause between two writes of one request, so that with TCP_NODELAY they
/// leave as separate segments and usually arrive in separate reads, ms.
const SPLIT_PAUSE_MS: u64 = 1;
/// Vectors shorter than this are also sent one byte per write, bytes.
const BYTE_AT_A_TIME_MAX_BYTES: usize = 200;
/// The request a "then open" connection must still answer.
const V01: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
/// Header timeout given to the servers of the timeout vectors (V27, V28).
const SHORT_HEADER_TIMEOUT: &str = "1s";

// ---------------------------------------------------------------- vectors

/// How a connection must end after the expected responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Stays usable ("then open").
    Open,
    /// The server closes ("then EOF").
    Eof,
}

/// One acceptable outcome: these statuses in order, then `end`.
#[derive(Clone, Debug)]
struct Outcome {
    statuses: Vec<u16>,
    end: End,
}

fn open(statuses: &[u16]) -> Outcome {
    Outcome {
        statuses: statuses.to_vec(),
        end: End::Open,
    }
}

fn eof(statuses: &[u16]) -> Outcome {
    Outcome {
        statuses: statuses.to_vec(),
        end: End::Eof,
    }
}

/// Which split points (a first write of `bytes[..k]`, then the rest) to try.
#[derive(Clone, Debug)]
enum Splits {
    /// Every k in 1..len.
    Every,
    /// These k only (long vectors, see [`sampled_splits`]).
    Sample(Vec<usize>),
}

/// A request vector and what it must get back.
#[derive(Clone, Debug)]
struct Vector {
    id: &'static str,
    bytes: Vec<u8>,
    /// Write boundaries of the whole sending besides the end (V12's 64 KiB
    /// body writes, V21's streaming); split points are added to these.
    chunks: Vec<usize>,
    /// `shutdown(SHUT_WR)` after the last write.
    half_close: bool,
    /// The vector's requests are HEAD: responses carry no body.
    head: bool,
    /// Any one of these is correct.
    outcomes: Vec<Outcome>,
    /// A header the first response must carry (name, value).
    first_header: Option<(&'static str, &'static str)>,
    splits: Splits,
}

fn v(id: &'static str, bytes: impl Into<Vec<u8>>, outcomes: Vec<Outcome>) -> Vector {
    Vector {
        id,
        bytes: bytes.into(),
        chunks: vec![],
        half_close: false,
        head: false,
        outcomes,
        first_header: None,
        splits: Splits::Every,
    }
}

/// Split points for a long vector: every boundary in its first and last
/// `EDGE` bytes (where heads start and end), every boundary within `EDGE`
/// of each `near` offset (a cap), and a prime stride through the rest. Every
/// boundary of a 9 KiB–1 MiB vector would cost minutes per mode and mostly
/// repeat the same framer path (the middle of one long field or body); the
/// edges, the cap and a stride that lands at varied offsets keep the cases
/// that differ.
fn sampled_splits(len: usize, near: &[usize], stride: usize) -> Splits {
    const EDGE: usize = 40;
    let mut ks: Vec<usize> = (1..EDGE.min(len)).collect();
    ks.extend(len.saturating_sub(EDGE)..len);
    for &n in near {
        ks.extend(n.saturating_sub(EDGE)..(n + EDGE).min(len));
    }
    ks.extend((EDGE..len).step_by(stride));
    ks.retain(|&k| k > 0 && k < len);
    ks.sort_unstable();
    ks.dedup();
    Splits::Sample(ks)
}

/// Vector `id` of `tests/data/requests.md`, with its expectations.
fn vector(id: &str) -> Vector {
    const CAP: usize = 8192; // the default --max-head-bytes
    let ok = || vec![open(&[200])];
    match id {
        "V01" => v("V01", V01, ok()),
        "V02" => v(
            "V02",
            "GET /x?y=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
            ok(),
        ),
        "V03" => v("V03", V01.repeat(16), vec![open(&[200; 16])]),
        "V04" => {
            let bytes = V01.repeat(1024);
            let len = bytes.len();
            Vector { splits: sampled_splits(len, &[], 997), ..v("V04", bytes, vec![open(&[200; 1024])]) }
        }
        "V05" => v("V05", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ok()),
        "V06" => v("V06", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", vec![eof(&[200])]),
        "V07" => Vector {
            first_header: Some(("Connection", "keep-alive")),
            ..v("V07", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n", ok())
        },
        "V08" => Vector {
            first_header: Some(("Connection", "close")),
            ..v("V08", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", vec![eof(&[200])])
        },
        "V09" => Vector {
            first_header: Some(("Connection", "close")),
            ..v(
                "V09",
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: TE, Close\r\n\r\n",
                vec![eof(&[200])],
            )
        },
        "V10" => Vector { head: true, ..v("V10", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", ok()) },
        "V11" => v(
            "V11",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            vec![open(&[200, 200])],
        ),
        "V12" => {
            let mut bytes = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n".to_vec();
            let head = bytes.len();
            bytes.extend(std::iter::repeat_n(b'z', 1 << 20));
            bytes.extend_from_slice(V01);
            let len = bytes.len();
            let mut chunks: Vec<usize> = (0..16).map(|i| head + (i << 16)).collect();
            chunks.push(head + (1 << 20));
            Vector {
                chunks,
                splits: sampled_splits(len, &[head, head + (1 << 20)], 65_537),
                ..v("V12", bytes, vec![open(&[200, 200]), eof(&[413])])
            }
        }
        "V13" => v(
            "V13",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            vec![open(&[200, 200]), eof(&[501])],
        ),
        "V14" => v(
            "V14",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1c\r\nGET /s HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n",
            vec![open(&[200]), eof(&[501])],
        ),
        "V15" => v(
            "V15",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
            vec![eof(&[400])],
        ),
        "V16" => v(
            "V16",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
            vec![eof(&[400])],
        ),
        "V17" => v(
            "V17",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            vec![eof(&[400]), eof(&[413])],
        ),
        "V18" => v(
            "V18",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n",
            vec![eof(&[400]), eof(&[413]), eof(&[501])],
        ),
        "V19" => {
            let bytes = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
            let len = bytes.len();
            Vector {
                splits: sampled_splits(len, &[CAP], 97),
                ..v("V19", bytes, vec![eof(&[414]), eof(&[431]), eof(&[400])])
            }
        }
        "V20" => {
            let bytes = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "x".repeat(9000));
            let len = bytes.len();
            Vector { splits: sampled_splits(len, &[CAP], 97), ..v("V20", bytes, vec![eof(&[431])]) }
        }
        "V21" => {
            // 1 MiB of header lines of 1000 bytes each and no end of head,
            // streamed in 16 KiB writes. Split points: a few around the
            // start and the cap; the streaming already delivers it in pieces.
            let mut bytes = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            let line = format!("X-Pad: {}\r\n", "p".repeat(991));
            while bytes.len() + line.len() <= 1 << 20 {
                bytes.extend_from_slice(line.as_bytes());
            }
            let len = bytes.len();
            Vector {
                chunks: (1..len / (16 << 10)).map(|i| i * (16 << 10)).collect(),
                splits: Splits::Sample(vec![1, 16, CAP - 1, CAP, CAP + 1]),
                ..v("V21", bytes, vec![eof(&[431])])
            }
        }
        "V22" => v("V22", "GARBAGE\r\n\r\n", vec![eof(&[400])]),
        "V23" => v("V23", "GET / HTTP/1.1\nHost: a\n\n", vec![open(&[200]), eof(&[400])]),
        "V24" => Vector { half_close: true, ..v("V24", V01, vec![eof(&[200])]) },
        "V25" => Vector { half_close: true, ..v("V25", V01.repeat(2), vec![eof(&[200, 200])]) },
        "V26" => Vector { half_close: true, ..v("V26", "GET / HTT", vec![eof(&[]), eof(&[400])]) },
        // Conformance vectors (docs/http.md, "Framing policy").
        "H01" => v("H01", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", vec![eof(&[400])]),
        "H02" => v("H02", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", vec![eof(&[400])]),
        "H03" => v("H03", "GET / HTTP/1.0\r\nHost: [::1\r\n\r\n", vec![eof(&[400])]),
        "H04" => v("H04", "GET / HTTP/1.1\r\nHost:\r\n\r\n", vec![eof(&[400])]),
        "H05" => v(
            "H05",
            "OPTIONS * HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n\
             GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n\
             GET / HTTP/1.2\r\nHost: a:80\r\n\r\n",
            vec![open(&[200, 200, 200])],
        ),
        "H06" => v("H06", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", vec![eof(&[400])]),
        "H07" => v("H07", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", vec![eof(&[501])]),
        "H08" => v(
            "H08",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
             5 ; a=\"b;\\\"c\" ; d\r\nhello\r\n0\r\n\r\n\
             POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;a=\r\nhello\r\n0\r\n\r\n",
            vec![eof(&[200, 400])],
        ),
        "H09" => v("H09", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", vec![eof(&[505])]),
        "H10" => v("H10", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", vec![eof(&[400])]),
        other => panic!("no vector {other}"),
    }
}

/// The write ranges of one attempt: the vector's own chunks plus `extra`
/// boundaries.
fn pieces(v: &Vector, extra: &[usize]) -> Vec<Range<usize>> {
    let mut cuts: Vec<usize> = v.chunks.iter().chain(extra).copied().collect();
    cuts.retain(|&k| k > 0 && k < v.bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for k in cuts.into_iter().chain([v.bytes.len()]) {
        out.push(at..k);
        at = k;
    }
    out
}

/// Send `v` as `writes` on a fresh connection (from a writer thread, so a
/// deep pipeline is read as it is written) and check what comes back.
fn attempt(addr: SocketAddr, v: &Arc<Vector>, writes: Vec<Range<usize>>, how: &str) {
    let ctx = format!("{} sent {how}", v.id);
    let mut c = Client::connect(addr);
    let mut w = c.stream().try_clone().expect("clone socket");
    let writer = {
        let v = v.clone();
        std::thread::spawn(move || {
            let n = writes.len();
            for (i, r) in writes.into_iter().enumerate() {
                // The server may close while we write (after an error
                // response); the reader judges the outcome.
                if w.write_all(&v.bytes[r]).is_err() {
                    return;
                }
                if i + 1 < n {
                    std::thread::sleep(Duration::from_millis(SPLIT_PAUSE_MS));
                }
            }
            if v.half_close {
                let _ = w.shutdown(Shutdown::Write);
            }
        })
    };
    let end = read_outcome(&mut c, v, &ctx);
    if end == End::Eof {
        // Unblock a writer still streaming into a closed connection.
        let _ = c.stream().shutdown(Shutdown::Both);
    }
    writer.join().expect("writer thread");
    match end {
        End::Open => probe_open(&mut c, &ctx),
        End::Eof => assert_serving(addr),
    }
}

/// Read responses until they match one of `v.outcomes`; returns how the
/// connection is to end (EOF already seen, or still to be probed as open).
fn read_outcome(c: &mut Client, v: &Vector, ctx: &str) -> End {
    let mut got: Vec<u16> = Vec::new();
    loop {
        let alive: Vec<&Outcome> = v
            .outcomes
            .iter()
            .filter(|o| o.statuses.starts_with(&got))
            .collect();
        assert!(
            !alive.is_empty(),
            "{ctx}: got statuses {got:?}, want one of {:?}",
            v.outcomes
        );
        if alive
            .iter()
            .any(|o| o.end == End::Open && o.statuses == got)
        {
            return End::Open;
        }
        match read_response(&mut c.r, v.head) {
            Ok(None) => {
                assert!(
                    alive.iter().any(|o| o.end == End::Eof && o.statuses == got),
                    "{ctx}: EOF after statuses {got:?}, want one of {:?}",
                    v.outcomes
                );
                return End::Eof;
            }
            Ok(Some(r)) => {
                if got.is_empty() {
                    if let Some((name, value)) = v.first_header {
                        let have = r.header(name).unwrap_or("");
                        assert!(
                            have.eq_ignore_ascii_case(value),
                            "{ctx}: want {name}: {value}: {r:?}"
                        );
                    }
                }
                if r.status == 200 {
                    assert_fixed_ok(&r, b"OK", v.head);
                } else {
                    assert_common_headers(&r);
                    assert_eq!(
                        r.header("Connection"),
                        Some("close"),
                        "{ctx}: error response {r:?}"
                    );
                }
                got.push(r.status);
            }
            Err(e) => panic!("{ctx}: after statuses {got:?}: {e}"),
        }
    }
}

/// A "then open" connection: a further `GET /` gets `OK`, and a following
/// `Connection: close` request gets the second `OK` and then EOF — so no
/// response beyond the expected ones was queued (e.g. from body bytes
/// parsed as a request).
fn probe_open(c: &mut Client, ctx: &str) {
    let mut probe = V01.to_vec();
    probe.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    if let Err(e) = c.r.get_mut().write_all(&probe) {
        panic!("{ctx}: connection not open: {e}");
    }
    for i in 0..2 {
        match read_response(&mut c.r, false) {
            Ok(Some(r)) => assert_fixed_ok(&r, b"OK", false),
            other => panic!("{ctx}: probe request {i} on the open connection: {other:?}"),
        }
    }
    c.expect_eof();
}

/// Every way vector `id` is sent: whole, split in two at each chosen
/// boundary, and one byte per write when short. One server for them all.
fn run_vector(mode: &Mode, id: &str) {
    let v = Arc::new(vector(id));
    let server = mode.start(&[]);
    let addr = server.addr();
    let rss_before = server.rss_bytes();
    attempt(addr, &v, pieces(&v, &[]), "whole");
    let ks: Vec<usize> = match &v.splits {
        Splits::Every => (1..v.bytes.len()).collect(),
        Splits::Sample(ks) => ks.clone(),
    };
    for k in ks {
        attempt(addr, &v, pieces(&v, &[k]), &format!("split at {k}"));
    }
    if v.bytes.len() < BYTE_AT_A_TIME_MAX_BYTES {
        let every: Vec<usize> = (1..v.bytes.len()).collect();
        attempt(addr, &v, pieces(&v, &every), "one byte per write");
    }
    if id == "V21" {
        // Six MiB of unterminated head later, memory has stayed flat: the
        // head cap bounds what a connection holds.
        let grown = server.rss_bytes().saturating_sub(rss_before);
        assert!(grown < 8 << 20, "server RSS grew by {grown} bytes over V21");
    }
    let (status, stderr) = server.stop();
    assert!(
        status.success(),
        "{}: exit {status}; stderr:\n{stderr}",
        mode.name
    );
}

macro_rules! vector_tests {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(
            fn $name(mode: &Mode) {
                run_vector(mode, $id)
            }
            mode_test!($name);
        )*
    };
}

vector_tests! {
    v01 => "V01", v02 => "V02", v03 => "V03", v04 => "V04", v05 => "V05", v06 => "V06",
    v07 => "V07", v08 => "V08", v09 => "V09", v10 => "V10", v11 => "V11", v12 => "V12",
    v13 => "V13", v14 => "V14", v15 => "V15", v16 => "V16", v17 => "V17", v18 => "V18",
    v19 => "V19", v20 => "V20", v21 => "V21", v22 => "V22", v23 => "V23", v24 => "V24",
    v25 => "V25", v26 => "V26",
    h01 => "H01", h02 => "H02", h03 => "H03", h04 => "H04", h05 => "H05", h06 => "H06",
    h07 => "H07", h08 => "H08", h09 => "H09", h10 => "H10",
}

/// Read until the server closes: `Ok(())` on EOF (optionally after one
/// `408`), `Err` with what came instead.
fn wait_closed(c: &mut Client) -> Result<(), String> {
    match read_response(&mut c.r, false) {
        Ok(None) => Ok(()),
        Ok(Some(r)) if r.status == 408 => match read_response(&mut c.r, false) {
            Ok(None) => Ok(()),
            other => Err(format!("after 408: {other:?}")),
        },
        other => Err(format!("{other:?}")),
    }
}

/// The stop summary counts `timeouts_header` at least `n` times.
fn assert_header_timeouts(server: Server, n: u64) {
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    let got = counter(&stderr, "timeouts_header").unwrap_or(0);
    assert!(
        got >= n,
        "timeouts_header={got}, want ≥ {n}; stderr:\n{stderr}"
    );
}

/// The body rule (docs/http.md, "Connections"): a body that keeps
/// arriving is read to its end however long past the header timeout — 40
/// MiB paced over about 3 s against a 1 s header timeout gets its 200 — and
/// a body that stalls is closed at the body timeout (2 s), counted as
/// `timeouts_body`, not as a header timeout.
fn body_progress(mode: &Mode) {
    const TOTAL: usize = 40 << 20;
    const STEP: usize = 512 << 10;
    const PAUSE_MS: u64 = 40;
    let server = mode.start(&["--header-timeout", "1s", "--body-timeout", "2s"]);
    let mut c = Client::connect(server.addr());
    let t0 = Instant::now();
    c.send(format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes());
    let step = vec![b'b'; STEP];
    for _ in 0..TOTAL / STEP {
        std::thread::sleep(Duration::from_millis(PAUSE_MS));
        c.send(&step);
    }
    let took = t0.elapsed();
    match read_response(&mut c.r, false) {
        Ok(Some(r)) => assert_fixed_ok(&r, b"OK", false),
        other => panic!("the steady 40 MiB upload ({took:?}) got {other:?}"),
    }
    assert!(
        took > Duration::from_secs(2),
        "paced over {took:?}: not past the header timeout"
    );
    // One connection at a time in sequential mode: free the server.
    drop(c);

    let mut stalled = Client::connect(server.addr());
    stalled.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345");
    let t1 = Instant::now();
    let r = wait_closed(&mut stalled);
    let waited = t1.elapsed();
    assert!(r.is_ok(), "stalled body: {r:?} after {waited:?}");
    assert!(
        waited >= Duration::from_millis(1600),
        "closed after {waited:?}, before the 2 s body timeout"
    );
    assert!(
        waited < Duration::from_secs(8),
        "closed only after {waited:?}"
    );
    assert_serving(server.addr());
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(counter(&stderr, "timeouts_body"), Some(1), "{stderr}");
    assert_eq!(counter(&stderr, "timeouts_header"), None, "{stderr}");
}
mode_test!(body_progress);

/// V27: connect, send nothing → closed when the (1 s) header timeout
/// expires: not before 0.8 s, and within 5 s.
fn v27(mode: &Mode) {
    let server = mode.start(&["--header-timeout", SHORT_HEADER_TIMEOUT]);
    let t0 = Instant::now();
    let mut c = Client::connect(server.addr());
    let r = wait_closed(&mut c);
    let took = t0.elapsed();
    assert!(r.is_ok(), "V27: {r:?} after {took:?}");
    assert!(
        took >= Duration::from_millis(800),
        "V27: closed after {took:?}, before the 1 s timeout"
    );
    assert!(
        took < Duration::from_secs(5),
        "V27: closed only after {took:?}"
    );
    assert_serving(server.addr());
    assert_header_timeouts(server, 1);
}
mode_test!(v27);

/// V28: `GET / HTTP/1.1\r\n`, then one byte of `Host: a\r\n\r\n` every
/// 400 ms → closed when the header timeout (1 s, from the first byte)
/// expires. Each byte arriving must not restart it: the whole head would be
/// complete after 4.4 s, so closing before 3.5 s (and without a 200) shows
/// the timeout counts from the start of the request.
fn v28(mode: &Mode) {
    const DRIP_MS: u64 = 400;
    let server = mode.start(&["--header-timeout", SHORT_HEADER_TIMEOUT]);
    let mut c = Client::connect(server.addr());
    let t0 = Instant::now();
    c.send(b"GET / HTTP/1.1\r\n");
    let mut w = c.stream().try_clone().expect("clone socket");
    let dripper = std::thread::spawn(move || {
        for b in b"Host: a\r\n\r\n" {
            std::thread::sleep(Duration::from_millis(DRIP_MS));
            if w.write_all(&[*b]).is_err() {
                return;
            }
        }
    });
    let r = wait_closed(&mut c);
    let took = t0.elapsed();
    let _ = c.stream().shutdown(Shutdown::Both);
    dripper.join().expect("drip thread");
    assert!(r.is_ok(), "V28: {r:?} after {took:?}");
    assert!(
        took >= Duration::from_millis(800),
        "V28: closed after {took:?}, before the timeout"
    );
    assert!(
        took < Duration::from_millis(3500),
        "V28: closed only after {took:?}"
    );
    assert_serving(server.addr());
    assert_header_timeouts(server, 1);
}
mode_test!(v28);

// ---------------------------------------------------------------- scenarios

/// 1000 requests on one keep-alive connection, each answered in order; the
/// summary counts exactly 1000 requests on 1 connection.
fn keepalive_1000(mode: &Mode) {
    let server = mode.start(&[]);
    let mut c = Client::connect(server.addr());
    for _ in 0..1000 {
        c.get_ok();
    }
    drop(c);
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(counter(&stderr, "requests"), Some(1000), "{stderr}");
    assert_eq!(counter(&stderr, "conns_accepted"), Some(1), "{stderr}");
}
mode_test!(keepalive_1000);

/// `--uring-wait`: every response still comes, and a wait that asked for
/// more CQEs than one connection can produce ends at its cap and is
/// counted; the start-up line names the kernel's flavour (the minimum-wait
/// timeout from Linux 6.12, a timed wait before).
fn batched_waits(mode: &Mode) {
    let server = mode.start(&["--uring-wait", "500us", "--uring-wait-cqes", "64"]);
    let mut c = Client::connect(server.addr());
    for _ in 0..200 {
        c.get_ok();
    }
    drop(c);
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(counter(&stderr, "requests"), Some(200), "{stderr}");
    let expired = counter(&stderr, "wait_cap_expired").unwrap_or(0);
    assert!(
        expired >= 100,
        "one connection has at most 2 CQEs in flight: nearly every wait for 64 ends at the cap; got {expired}:\n{stderr}"
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let flavour = if (major, minor) >= (6, 12) {
        "(min-wait)"
    } else {
        "(timed wait)"
    };
    assert!(
        stderr.contains(&format!("waits ≤500µs for 64 CQEs {flavour}")),
        "start-up line should name {flavour} on Linux {major}.{minor}:\n{stderr}"
    );
}
stamp!(batched_waits: uring = URING, uring_5_19 = URING_5_19);

/// 200 clients connected at once (threads released together), each making
/// 5 keep-alive requests; all get OK and the summary counts them all.
fn concurrent_200(mode: &Mode) {
    const CLIENTS: usize = 200;
    const EACH: usize = 5;
    let server = mode.start(&[]);
    let addr = server.addr();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let mut c = Client::connect(addr);
                    barrier.wait();
                    for _ in 0..EACH {
                        c.get_ok();
                    }
                })
                .expect("spawn client thread")
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(
        counter(&stderr, "requests"),
        Some((CLIENTS * EACH) as u64),
        "{stderr}"
    );
    assert_eq!(
        counter(&stderr, "conns_accepted"),
        Some(CLIENTS as u64),
        "{stderr}"
    );
}
mode_test!(concurrent_200);

/// SIGTERM while 4 clients hammer keep-alive requests: exit 0 within 3 s,
/// the summary lines, and a `--hist-out` whose footer counts > 0 values.
fn sigterm_under_load(mode: &Mode) {
    let dir =
        std::env::temp_dir().join(format!("okring-test-{}-{}", std::process::id(), mode.name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let hist = dir.join("service.hgrm");
    let _ = std::fs::remove_file(&hist);
    let server = mode.start(&["--hist-out", hist.to_str().expect("utf-8 temp path")]);
    let addr = server.addr();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut ok = 0u64;
                let mut c = Client::connect(addr);
                loop {
                    // Errors are the expected end: the server is stopping.
                    if c.r.get_mut().write_all(V01).is_err() {
                        return ok;
                    }
                    match read_response(&mut c.r, false) {
                        Ok(Some(r)) if r.status == 200 => ok += 1,
                        _ => return ok,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let (status, stderr) = server.stop();
    let took = t0.elapsed();
    let served: u64 = clients.into_iter().map(|t| t.join().expect("client")).sum();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    assert!(served > 0, "no request was answered before SIGTERM");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("okring:") && l.contains("requests")),
        "{stderr}"
    );
    assert!(stderr
        .lines()
        .any(|l| l.starts_with("okring:") && l.contains("service time")));
    let requests = counter(&stderr, "requests").expect("requests counter");
    assert!(
        requests >= served,
        "summary requests={requests} < {served} answered"
    );
    for p in ["p50", "p90", "p99", "max"] {
        assert!(
            stderr.contains(&format!("{p}=")),
            "no {p} in the summary:\n{stderr}"
        );
    }
    let text = std::fs::read_to_string(&hist).expect("--hist-out written");
    let total: u64 = text
        .lines()
        .find(|l| l.starts_with("#[Max") && l.contains("Total count"))
        .and_then(|l| l.split('=').nth(2))
        .and_then(|v| v.trim().trim_end_matches(']').trim().parse().ok())
        .unwrap_or_else(|| panic!("no `#[Max ... Total count = N]` footer in:\n{text}"));
    // Every response a client read was fully sent, so its service time was
    // recorded; a response whose send failed (client gone) is not.
    assert!(total > 0, "histogram total count is 0");
    assert!(
        (served..=requests).contains(&total),
        "histogram count {total} outside [{served} read by clients, {requests} requests]"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
mode_test!(sigterm_under_load);

/// `--idle-timeout 1s`: a keep-alive connection with no request in progress
/// is closed after about 1 s (not before 0.8 s, within 5 s), counted as
/// `timeouts_idle`.
fn idle_timeout(mode: &Mode) {
    let server = mode.start(&["--idle-timeout", "1s"]);
    let mut c = Client::connect(server.addr());
    c.get_ok();
    let t0 = Instant::now();
    let r = wait_closed(&mut c);
    let took = t0.elapsed();
    assert!(r.is_ok(), "idle connection: {r:?} after {took:?}");
    assert!(
        took >= Duration::from_millis(800),
        "closed after {took:?}, before the idle timeout"
    );
    assert!(took < Duration::from_secs(5), "closed only after {took:?}");
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(counter(&stderr, "timeouts_idle"), Some(1), "{stderr}");
    assert_eq!(counter(&stderr, "timeouts_header"), None, "{stderr}");
}
mode_test!(idle_timeout);

/// `--body` changes the body and `Content-Length` of GET and HEAD answers.
fn body_flag(mode: &Mode) {
    let body = "hello, okring\n";
    let server = mode.start(&["--body", body]);
    let mut c = Client::connect(server.addr());
    c.send(V01);
    assert_fixed_ok(&c.response(), body.as_bytes(), false);
    c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = read_response(&mut c.r, true)
        .expect("read")
        .expect("a response");
    assert_fixed_ok(&r, body.as_bytes(), true);
    c.send(V01);
    assert_fixed_ok(&c.response(), body.as_bytes(), false);
}
mode_test!(body_flag);

/// Exactly one stderr line, starting `okring: error:`, and exit status
/// `code` (2: arguments refused, 1: the run failed).
fn assert_cli_error(args: &[&str], mentions: &str, code: i32) {
    let (status, stderr) = run_okring(args);
    assert_eq!(status.code(), Some(code), "{args:?}; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want one stderr line, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("okring: error:"), "{args:?}: {stderr}");
    assert!(
        lines[0].contains(mentions),
        "{args:?}: error does not mention {mentions:?}: {stderr}"
    );
}

/// Invalid values and a bind to a port already in use fail at once with a
/// one-line error.
fn bad_cli(mode: &Mode) {
    let base = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["serve", "--bind", "127.0.0.1:0"];
        a.extend_from_slice(mode.args);
        a.extend_from_slice(extra);
        a
    };
    assert_cli_error(&base(&["--threads", "0"]), "--threads", 2);
    assert_cli_error(&base(&["--max-head-bytes", "10"]), "--max-head-bytes", 2);
    assert_cli_error(&base(&["--uring-bufs", "3"]), "--uring-bufs", 2);
    // A listener without SO_REUSEPORT holds the port: the server's bind
    // must fail with EADDRINUSE, not share it.
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("local addr").to_string();
    let mut args = vec!["serve", "--bind", addr.as_str(), "--threads", "2"];
    args.extend_from_slice(mode.args);
    assert_cli_error(&args, &addr, 1);
}
mode_test!(bad_cli);

/// The harness's own checks can fail: near-miss dates are rejected, and a
/// truncated response is an error, not a response.
#[test]
fn imf_fixdate_shape_check_rejects_near_misses() {
    assert!(is_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"));
    for bad in [
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
    ] {
        assert!(!is_imf_fixdate(bad), "{bad:?} accepted");
    }
    let mut r = BufReader::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"[..]);
    assert_eq!(read_response(&mut r, false).unwrap().unwrap().body, b"OK");
    assert_eq!(read_response(&mut r, false).unwrap().unwrap().status, 400);
    assert!(read_response(&mut r, false).unwrap().is_none());
    let mut partial = BufReader::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nOK"[..]);
    assert!(read_response(&mut partial, false).is_err());
}
