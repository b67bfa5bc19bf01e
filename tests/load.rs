//! Integration tests of `okring load`: the library entry point
//! (`okring::load::run`) and the real binary, against a small in-test HTTP
//! server on 127.0.0.1:0 (std threads, blocking sockets) whose behaviour
//! each test chooses and whose response count it checks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use okring::load::{run, Engine, LoadConfig, LoadResult};

mod common;

const OK_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK";
const ERR_RESPONSE: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!";

#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 to every request.
    Ok,
    /// 200 to every request; the response to request number `nth` (counted
    /// over the whole server from 1) is held back for `delay` first.
    DelayOnce { nth: u64, delay: Duration },
    /// 200 to every request, each held back for `delay` first.
    Slow { delay: Duration },
    /// 500 to every request (framed by Content-Length).
    Status500,
    /// Half a response, then close.
    CloseMidResponse,
    /// Reads requests, never answers.
    Silent,
    /// Answers `n` requests per connection, then closes it: the last
    /// response says `Connection: close` when `announce`; the close is a
    /// reset (SO_LINGER 0) when `reset`, else a FIN.
    CloseAfter { n: u64, announce: bool, reset: bool },
    /// Two interim responses (103, 100) before each 200 (RFC 9110 §15.2).
    Interim,
    /// Every 200 with a chunked body: extensions, several chunks, trailers.
    Chunked,
    /// Answers the first request on a connection with a body delimited by
    /// the close (no Content-Length, RFC 9112 §6.3 item 8), then closes.
    CloseDelimited,
}

const OK_CLOSE_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK";

struct TestServer {
    addr: SocketAddr,
    /// Responses written (counted before the write, so a client that got a
    /// response always finds it counted).
    served: Arc<AtomicU64>,
}

fn server(b: Behaviour) -> TestServer {
    server_on(
        TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"),
        b,
    )
}

fn server_on(listener: TcpListener, b: Behaviour) -> TestServer {
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let s = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (s, seen) = (s.clone(), seen.clone());
            std::thread::spawn(move || serve_conn(stream, b, &s, &seen));
        }
    });
    TestServer { addr, served }
}

fn serve_conn(mut stream: TcpStream, b: Behaviour, served: &AtomicU64, seen: &AtomicU64) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut on_this_conn = 0u64;
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let nth = seen.fetch_add(1, Ordering::SeqCst) + 1;
            match b {
                Behaviour::Silent => continue,
                Behaviour::CloseMidResponse => {
                    let _ = stream.write_all(&OK_RESPONSE[..20]);
                    return;
                }
                Behaviour::DelayOnce { nth: when, delay } if nth == when => {
                    served.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(&out);
                    out.clear();
                    std::thread::sleep(delay);
                    out.extend_from_slice(OK_RESPONSE);
                    continue;
                }
                Behaviour::Slow { delay } => {
                    std::thread::sleep(delay);
                    out.extend_from_slice(OK_RESPONSE);
                }
                Behaviour::Status500 => out.extend_from_slice(ERR_RESPONSE),
                Behaviour::Interim => {
                    out.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n");
                    out.extend_from_slice(OK_RESPONSE);
                }
                Behaviour::Chunked => out.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                      2;ext=\"a b\"\r\nOK\r\n3\r\n!!!\r\n0\r\nX-Trailer: t\r\n\r\n",
                ),
                Behaviour::CloseDelimited => {
                    served.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until the close",
                    );
                    return;
                }
                Behaviour::CloseAfter { n, announce, reset } => {
                    on_this_conn += 1;
                    let last = on_this_conn == n;
                    out.extend_from_slice(if last && announce {
                        OK_CLOSE_RESPONSE
                    } else {
                        OK_RESPONSE
                    });
                    served.fetch_add(1, Ordering::SeqCst);
                    if last {
                        let _ = stream.write_all(&out);
                        if reset {
                            // Let the responses leave before the RST.
                            std::thread::sleep(Duration::from_millis(20));
                            let _ =
                                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        }
                        return;
                    }
                    continue;
                }
                _ => out.extend_from_slice(OK_RESPONSE),
            }
            served.fetch_add(1, Ordering::SeqCst);
        }
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn config(addr: SocketAddr, connections: usize, duration_ms: u64) -> LoadConfig {
    let mut cfg = LoadConfig::new(&format!("http://{addr}/")).unwrap();
    cfg.connections = connections;
    cfg.duration = Duration::from_millis(duration_ms);
    cfg.warmup = Duration::ZERO;
    cfg
}

/// Whether the engine asked for is the one that ran; a uring run that fell
/// back to epoll (no io_uring here) is a skip, and a failure under CI=true.
fn ran(r: &LoadResult, engine: Engine) -> bool {
    if r.engine == engine {
        return true;
    }
    common::skip(&format!(
        "the {} engine did not run ({} ran): {:?}",
        engine.name(),
        r.engine.name(),
        r.warnings
    ));
    false
}

fn closed_loop_counts_exactly(engine: Engine, pipeline: u32) {
    let srv = server(Behaviour::Ok);
    let mut cfg = config(srv.addr, 4, 400);
    cfg.engine = engine;
    cfg.pipeline = pipeline;
    cfg.threads = 2;
    let r = run(&cfg).expect("run");
    if !ran(&r, engine) {
        return;
    }
    assert!(r.requests > 100, "too few responses: {}", r.requests);
    assert_eq!(r.requests, srv.served.load(Ordering::SeqCst));
    assert!(r.accounted(), "{r:?}");
    assert_eq!(r.sent, r.requests);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert_eq!(r.latency_ns.len(), r.requests);
    assert_eq!(r.requests % pipeline as u64, 0);
    assert_eq!(r.bytes_read, r.requests * OK_RESPONSE.len() as u64);
}

#[test]
fn closed_loop_counts_every_response_uring() {
    closed_loop_counts_exactly(Engine::Uring, 1);
}

#[test]
fn closed_loop_counts_every_response_epoll() {
    closed_loop_counts_exactly(Engine::Epoll, 1);
}

#[test]
fn closed_loop_pipelined_counts_every_response() {
    closed_loop_counts_exactly(Engine::Uring, 8);
    closed_loop_counts_exactly(Engine::Epoll, 8);
}

/// RFC 9112 §9.3.2: a server may close a keep-alive connection after any
/// response, with or without `Connection: close`, with a FIN or a reset,
/// while requests are pipelined behind it. Every request sent is
/// answered, or counted as unanswered: `sent` = answered + unanswered, and
/// the answered ones are exactly the server's count. With a warm-up, a
/// request belongs to the window by its send time, so the identity holds
/// across the boundary too.
#[test]
fn requests_behind_a_server_close_are_counted_never_lost() {
    for engine in [Engine::Uring, Engine::Epoll] {
        for (announce, reset) in [(true, false), (false, false), (false, true)] {
            let srv = server(Behaviour::CloseAfter {
                n: 5,
                announce,
                reset,
            });
            let mut cfg = config(srv.addr, 4, 400);
            cfg.engine = engine;
            cfg.pipeline = 8;
            cfg.warmup = Duration::from_millis(100);
            let r = run(&cfg).expect("run");
            if !ran(&r, engine) {
                break;
            }
            let what = format!("{} announce={announce} reset={reset}", engine.name());
            assert!(r.accounted(), "{what}: {r:?}");
            assert!(r.requests > 20, "{what}: {}", r.requests);
            assert!(r.errors.unanswered > 0, "{what}: {:?}", r.errors);
            assert_eq!(r.errors.parse, 0, "{what}: {:?}", r.errors);
            assert_eq!(r.errors.timeout, 0, "{what}: {:?}", r.errors);
            // The server answers 5 of each 8-request batch (a reset may
            // also discard answers the client had not read yet).
            if !reset {
                assert_eq!(r.requests * 3, r.errors.unanswered * 5, "{what}: {r:?}");
            }
            assert!(r.requests <= srv.served.load(Ordering::SeqCst));
        }
    }
}

/// Interim 1xx responses are skipped and counted, chunked bodies (with
/// extensions and trailers) framed: no parse error, and exact counts equal
/// to the server's, pipelined too, on both engines.
#[test]
fn interim_and_chunked_responses_are_framed_with_exact_counts() {
    for engine in [Engine::Uring, Engine::Epoll] {
        for (b, name) in [(Behaviour::Interim, "1xx"), (Behaviour::Chunked, "chunked")] {
            for pipeline in [1, 4] {
                let srv = server(b);
                let mut cfg = config(srv.addr, 2, 300);
                cfg.engine = engine;
                cfg.pipeline = pipeline;
                let r = run(&cfg).expect("run");
                if !ran(&r, engine) {
                    return;
                }
                let what = format!("{name} pipeline {pipeline} {}", engine.name());
                assert!(r.requests > 50, "{what}: {r:?}");
                assert_eq!(r.errors.total(), 0, "{what}: {:?}", r.errors);
                assert_eq!(r.requests, srv.served.load(Ordering::SeqCst), "{what}");
                assert!(r.accounted(), "{what}: {r:?}");
                let want_interim = if name == "1xx" { 2 * r.requests } else { 0 };
                assert_eq!(r.interim_responses, want_interim, "{what}");
            }
        }
    }
}

/// A close-delimited body ends at the server's FIN and is one answer; the
/// requests pipelined behind it are counted as unanswered.
#[test]
fn a_close_delimited_body_behind_pipelined_requests_loses_no_count() {
    let srv = server(Behaviour::CloseDelimited);
    let mut cfg = config(srv.addr, 2, 300);
    cfg.pipeline = 4;
    let r = run(&cfg).expect("run");
    assert!(r.accounted(), "{r:?}");
    assert!(r.requests > 5, "{r:?}");
    assert_eq!(r.requests, srv.served.load(Ordering::SeqCst));
    assert_eq!(r.errors.unanswered, r.requests * 3, "{r:?}");
    assert_eq!(r.errors.parse + r.errors.read, 0, "{:?}", r.errors);
}

#[test]
fn close_mode_reconnects_per_request() {
    let srv = server(Behaviour::Ok);
    let mut cfg = config(srv.addr, 2, 300);
    cfg.close = true;
    let r = run(&cfg).expect("run");
    // The test server ignores `Connection: close` and keeps the connection:
    // the client closes it itself after each response and reconnects.
    assert!(r.requests > 10, "{}", r.requests);
    assert_eq!(r.requests, srv.served.load(Ordering::SeqCst));
    assert!(
        r.reconnects + 2 >= r.requests,
        "{} reconnects",
        r.reconnects
    );
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
}

#[test]
fn open_loop_shows_coordinated_omission() {
    let srv = server(Behaviour::DelayOnce {
        nth: 100,
        delay: Duration::from_secs(1),
    });
    let mut cfg = config(srv.addr, 2, 2500);
    cfg.rate = Some(200.0);
    let r = run(&cfg).expect("run");
    let at_least = |h: &hdrhistogram::Histogram<u64>, ns: u64| {
        h.iter_recorded()
            .filter(|v| v.value_iterated_to() >= ns)
            .map(|v| v.count_at_value())
            .sum::<u64>()
    };
    let slow_ns = 100_000_000;
    let corrected = at_least(&r.latency_ns, slow_ns);
    let uncorrected = at_least(r.uncorrected_ns.as_ref().unwrap(), slow_ns);
    // About 100 requests were due on the stalled connection during the 1 s stall.
    assert!(corrected >= 60, "corrected samples >= 100ms: {corrected}");
    assert!(
        uncorrected <= 2,
        "uncorrected samples >= 100ms: {uncorrected}"
    );
    assert!(r.latency_ns.max() >= 1_000_000_000);
    assert!(r.late_sends >= 60, "late sends {}", r.late_sends);
    // The schedule is absolute: every due request is sent (500 = 200/s * 2.5 s).
    assert!((495..=500).contains(&r.sends), "sends {}", r.sends);
    assert!(r.accounted(), "{r:?}");
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
}

/// The polling window before a due send (`--spin`) changes how the
/// generator waits, not what it sends: with no window, and with one of
/// 1 ms (two-fifths of the 2.5 ms between sends), every due request is
/// sent once, on both engines.
#[test]
fn open_loop_sends_the_same_schedule_with_and_without_the_spin_window() {
    for engine in [Engine::Uring, Engine::Epoll] {
        for spin in [Duration::ZERO, Duration::from_millis(1)] {
            let srv = server(Behaviour::Ok);
            let mut cfg = config(srv.addr, 2, 1000);
            cfg.rate = Some(400.0);
            cfg.spin = spin;
            cfg.engine = engine;
            let r = run(&cfg).expect("run");
            if !ran(&r, engine) {
                continue;
            }
            // 400/s over 1 s: 400 sends.
            assert!(
                (398..=400).contains(&r.sends),
                "{engine:?} spin {spin:?}: sends {}",
                r.sends
            );
            assert!(r.accounted(), "{r:?}");
            assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
        }
    }
}

#[test]
fn status_errors_are_counted_and_framed() {
    let srv = server(Behaviour::Status500);
    let r = run(&config(srv.addr, 2, 300)).expect("run");
    assert!(r.requests > 10);
    assert_eq!(r.errors.status, r.requests);
    assert_eq!(r.errors.parse + r.errors.read, 0, "{:?}", r.errors);
    assert_eq!(r.reconnects, 0);
}

#[test]
fn close_mid_response_is_a_read_error() {
    let srv = server(Behaviour::CloseMidResponse);
    let r = run(&config(srv.addr, 2, 300)).expect("run");
    assert_eq!(r.requests, 0);
    assert!(r.errors.read > 10, "{:?}", r.errors);
    assert!(r.reconnects >= r.errors.read - 2);
}

#[test]
fn timeouts_are_counted_and_recorded_at_full_time() {
    for engine in [Engine::Uring, Engine::Epoll] {
        let srv = server(Behaviour::Silent);
        let mut cfg = config(srv.addr, 2, 700);
        cfg.timeout = Duration::from_millis(200);
        cfg.engine = engine;
        let r = run(&cfg).expect("run");
        if !ran(&r, engine) {
            continue;
        }
        assert_eq!(r.requests, 0);
        // 2 connections, each times out every ~200 ms over 0.7 s plus the drain.
        assert!(r.errors.timeout >= 6, "{:?}", r.errors);
        assert_eq!(r.latency_ns.len(), r.errors.timeout);
        assert!(r.accounted(), "{r:?}");
        assert!(
            r.latency_ns.min() >= 200_000_000,
            "min {}",
            r.latency_ns.min()
        );
        assert!(
            r.latency_ns.max() < 400_000_000,
            "max {}",
            r.latency_ns.max()
        );
    }
}

#[test]
fn cli_writes_hgrm_hlog_and_json_with_matching_counts() {
    let srv = server(Behaviour::Ok);
    let dir = std::env::temp_dir().join(format!("okring-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hgrm, hlog, json) = (dir.join("l.hgrm"), dir.join("l.hlog"), dir.join("l.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_okring"))
        .args([
            "load",
            &format!("http://{}/", srv.addr),
            "-c",
            "4",
            "-d",
            "600ms",
        ])
        .args(["--warmup", "100ms", "--interval", "200ms"])
        .arg("--hgrm")
        .arg(&hgrm)
        .arg("--hlog")
        .arg(&hlog)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Requests/sec:"), "{stdout}");

    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["schema"], "okring.load/1");
    let requests = doc["results"]["requests"].as_u64().unwrap();
    assert!(requests > 100);
    assert!(
        stdout.contains(&format!("{requests} requests in")),
        "{stdout}"
    );
    let h = okring::stats::hist_from_json(&doc["histograms"]["latency"]).unwrap();
    assert_eq!(h.len(), requests);

    let g = okring::stats::read_hgrm(&std::fs::read_to_string(&hgrm).unwrap()).unwrap();
    assert_eq!(g.total_count, requests);

    let intervals = okring::stats::read_hlog(std::fs::File::open(&hlog).unwrap()).unwrap();
    assert!(intervals.len() >= 3, "{} intervals", intervals.len());
    let sum: u64 = intervals.iter().map(|i| i.hist.len()).sum();
    assert_eq!(sum, requests);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_rejects_bad_input_with_one_line() {
    let srv = server(Behaviour::Ok);
    let url = format!("http://{}/", srv.addr);
    let cases: Vec<Vec<String>> = vec![
        vec!["https://127.0.0.1:1/".into()],
        // `.invalid` never resolves (RFC 6761 §6.4).
        vec!["http://nosuch.invalid/".into()],
        vec!["ftp://127.0.0.1/".into()],
        vec!["http://127.0.0.1:99999/".into()],
        vec![
            url.clone(),
            "-c".into(),
            "1".into(),
            "-t".into(),
            "2".into(),
        ],
        vec![url.clone(), "--pipeline".into(), "0".into()],
        vec![
            url.clone(),
            "--rate".into(),
            "100".into(),
            "--pipeline".into(),
            "2".into(),
        ],
        vec![url.clone(), "--rate=0".into()],
        vec![
            url.clone(),
            "--close".into(),
            "--pipeline".into(),
            "4".into(),
        ],
        vec![url.clone(), "--duration".into(), "0s".into()],
        vec![url.clone(), "--cpus".into(), "5-3".into()],
        // Nothing listens on port 1 of the loopback address.
        vec!["http://127.0.0.1:1/".into(), "-d".into(), "100ms".into()],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_okring"))
            .arg("load")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("okring: error: "), "{args:?}: {err}");
    }
    // Values clap rejects still fail with a non-zero status and name the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_okring"))
        .args(["load", &url, "--duration", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration"));
}

/// `--requests N` stops after exactly N requests sent in the window (a
/// multiple of --pipeline), every one answered and counted by the server.
#[test]
fn requests_stop_the_run_at_exactly_n() {
    for engine in [Engine::Uring, Engine::Epoll] {
        let srv = server(Behaviour::Ok);
        let mut cfg = config(srv.addr, 4, 30_000);
        cfg.engine = engine;
        cfg.pipeline = 4;
        cfg.requests = Some(2_000);
        let r = run(&cfg).expect("run");
        if !ran(&r, engine) {
            continue;
        }
        assert_eq!(r.sent, 2_000, "{r:?}");
        assert_eq!(r.requests, 2_000, "{r:?}");
        assert_eq!(srv.served.load(Ordering::SeqCst), 2_000);
        assert!(r.accounted());
        assert!(
            r.elapsed < Duration::from_secs(20),
            "stopped by the count, not the cap"
        );
    }
    let mut cfg = config("127.0.0.1:1".parse().unwrap(), 4, 100);
    cfg.pipeline = 4;
    cfg.requests = Some(10);
    let e = run(&cfg).unwrap_err();
    assert!(e.to_string().contains("multiple of --pipeline"), "{e}");
}

/// The real binary against `okring serve`: a POST with a body and extra
/// headers, a HEAD run, per-status counts, `--json -` on stdout with the
/// summary on stderr, and `--fail-if` passing (exit 0) and failing (exit 3).
#[test]
fn cli_requests_methods_bodies_json_stdout_and_gates() {
    let server = common::Server::start(&["--mode", "epoll", "--threads", "1"], &[]);
    let url = format!("http://{}/x", server.addr());
    let load = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_okring"))
            .args(["load", &url, "-c", "4", "--warmup", "0s"])
            .args(extra)
            .output()
            .expect("okring load")
    };
    let out = load(&[
        "-n",
        "2000",
        "-X",
        "POST",
        "-H",
        "X-Test: 1",
        "--body",
        "hello",
        "--json",
        "-",
        "--fail-if",
        "errors>0,p99>5s",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not the JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(doc["results"]["sent"], 2000);
    assert_eq!(doc["results"]["requests"], 2000);
    assert_eq!(doc["results"]["statuses"]["200"], 2000);
    assert!(
        doc["results"]["host"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{doc}"
    );
    assert!(doc["results"]["start_unix_ns"]
        .as_u64()
        .is_some_and(|t| t > 1_700_000_000_000_000_000));
    assert!(doc["results"]["shard"].is_null());
    assert!(
        err.contains("Sent 2000 = 2000 answered"),
        "the summary goes to stderr: {err}"
    );

    let head = load(&["-n", "400", "-X", "HEAD"]);
    let text = String::from_utf8_lossy(&head.stdout);
    assert_eq!(
        head.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&head.stderr)
    );
    assert!(text.contains("Status codes: 200: 400"), "{text}");
    assert!(text.contains("parse 0"), "{text}");

    let gated = load(&["-n", "400", "--fail-if", "rps<1000000000"]);
    let err = String::from_utf8_lossy(&gated.stderr);
    assert_eq!(gated.status.code(), Some(3), "{err}");
    assert!(
        err.contains("okring: error: --fail-if: rps<1000000000 (rps = "),
        "{err}"
    );

    let refused = load(&["--fail-if", "p99>fast"]);
    assert_eq!(refused.status.code(), Some(2));
    let (_, stderr) = server.stop();
    assert_eq!(common::counter(&stderr, "requests"), Some(2800), "{stderr}");
    assert_eq!(common::counter(&stderr, "responses_400"), None, "{stderr}");
}

/// `--fail-if` exits 3 exactly when a budget is broken: against a server
/// that holds every response 100 ms, `p99>50ms` fails (naming the measured
/// p99) and `p99>1s` passes; against a prompt one `p99>50ms` passes;
/// against one that answers 500, `errors>0` fails and the latency gate
/// alone passes.
#[test]
fn fail_if_exits_3_exactly_when_a_gate_fails() {
    let slow = server(Behaviour::Slow {
        delay: Duration::from_millis(100),
    });
    let prompt = server(Behaviour::Ok);
    let failing = server(Behaviour::Status500);
    let load = |srv: &TestServer, gate: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_okring"))
            .args(["load", &format!("http://{}/", srv.addr)])
            .args(["-c", "2", "-n", "10", "--warmup", "0s", "--fail-if", gate])
            .output()
            .expect("okring load");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = load(&slow, "p99>50ms");
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("okring: error: --fail-if: p99>50ms (p99 = "),
        "{err}"
    );
    let (code, err) = load(&slow, "p99>1s,errors>0");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = load(&prompt, "p99>50ms");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = load(&failing, "errors>0");
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--fail-if: errors>0 ("), "{err}");
    let (code, err) = load(&failing, "p99>1s");
    assert_eq!(code, Some(0), "{err}");
}

/// `--interval D` prints one line per completed interval on stderr during
/// the run, each with a rate and percentiles; without it, none.
#[test]
fn cli_interval_prints_live_lines() {
    let srv = server(Behaviour::Ok);
    let url = format!("http://{}/", srv.addr);
    let run_cli = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_okring"))
            .args([
                "load", &url, "-c", "4", "-t", "2", "-d", "1s", "--warmup", "0s",
            ])
            .args(extra)
            .output()
            .expect("okring load");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run_cli(&["--interval", "200ms"]);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("okring load: ["))
        .collect();
    assert!((4..=5).contains(&lines.len()), "{err}");
    for (i, l) in lines.iter().enumerate() {
        assert!(
            l.contains(&format!("[{:>6.1}s]", 0.2 * (i + 1) as f64)),
            "{l}"
        );
        assert!(
            l.contains(" req/s  p50 ") && l.contains("  errors 0  late 0"),
            "{l}"
        );
    }
    assert!(!run_cli(&[]).contains("okring load: ["));
}

/// Targets by name: `localhost` resolves (every address is tried, the ones
/// that refuse are left out with a notice), an IPv6 literal works, and
/// `--connect-to` sends to a given address with the URL's Host and path.
#[test]
fn names_ipv6_literals_and_connect_to() {
    let t = okring::load::parse_url("http://Server.Example:8080/a/b?c=d#frag").unwrap();
    assert_eq!(
        (
            t.host.as_str(),
            t.port,
            t.host_header.as_str(),
            t.path.as_str()
        ),
        ("server.example", 8080, "server.example:8080", "/a/b?c=d")
    );
    let t = okring::load::parse_url("http://[::1]/").unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.host_header.as_str()),
        ("::1", 80, "[::1]")
    );

    let srv = server(Behaviour::Ok);
    let port = srv.addr.port();
    let mut cfg = config(srv.addr, 2, 200);
    let by_name =
        LoadConfig::new(&format!("http://localhost:{port}/")).expect("localhost resolves");
    assert!(by_name.addrs.contains(&srv.addr), "{:?}", by_name.addrs);
    cfg.addrs = by_name.addrs.clone();
    cfg.host_header = by_name.host_header;
    let r = run(&cfg).expect("run by name");
    assert!(r.requests > 10 && r.errors.total() == 0, "{r:?}");
    if by_name.addrs.len() > 1 {
        assert!(
            r.warnings.iter().any(|w| w.starts_with("not using ")),
            "{:?}",
            r.warnings
        );
    }

    let out = Command::new(env!("CARGO_BIN_EXE_okring"))
        .args([
            "load",
            "http://server.invalid:8080/p",
            "--connect-to",
            &srv.addr.to_string(),
        ])
        .args(["-n", "100", "-c", "2", "--warmup", "0s"])
        .output()
        .expect("okring load");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Sent 100 = 100 answered"));

    match TcpListener::bind("[::1]:0") {
        Ok(l) => {
            let v6 = server_on(l, Behaviour::Ok);
            let r = run(&config(v6.addr, 2, 200)).expect("run over IPv6");
            assert!(r.requests > 10 && r.errors.total() == 0, "{r:?}");
            assert_eq!(r.requests, v6.served.load(Ordering::SeqCst));
        }
        Err(e) => {
            common::skip(&format!("no IPv6 loopback here: {e}"));
        }
    }
}

/// Two shards started together reproduce one run's open-loop schedule:
/// each sends its half of the global schedule (rate is the total), both
/// start their window at the `--start-at` time, and together they send
/// what one machine would have, every request answered.
#[test]
fn shards_split_one_schedule_and_start_together() {
    let srv = server(Behaviour::Ok);
    let at = std::time::SystemTime::now() + Duration::from_millis(400);
    let shard = |i: usize| {
        let mut cfg = config(srv.addr, 4, 1000);
        cfg.rate = Some(400.0);
        cfg.shard = Some((i, 2));
        cfg.start_at = Some(at);
        std::thread::spawn(move || run(&cfg).expect("shard run"))
    };
    let (a, b) = (shard(1), shard(2));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    for (r, i) in [(&a, 1), (&b, 2)] {
        assert!(r.accounted() && r.errors.total() == 0, "shard {i}: {r:?}");
        assert_eq!(r.shard, Some((i, 2)));
        assert!(
            (195..=200).contains(&r.sends),
            "shard {i} sent {} of its 200",
            r.sends
        );
        let off = r.start_offset_s.expect("an offset");
        assert!(off.abs() < 0.25, "shard {i} started {off} s off");
    }
    // One machine at 400/s for 1 s: 400 schedule points, split 200 + 200.
    assert!(
        (395..=400).contains(&(a.sends + b.sends)),
        "{} + {}",
        a.sends,
        b.sends
    );
    assert_eq!(a.requests + b.requests, srv.served.load(Ordering::SeqCst));
    let mut bad = config(srv.addr, 4, 100);
    bad.shard = Some((3, 2));
    assert!(run(&bad).unwrap_err().to_string().contains("--shard 3/2"));
}
