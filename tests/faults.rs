//! The fault suite: each kind of bad input, misbehaving peer, resource
//! shortage and kernel restriction that has broken real servers, as one
//! test per kind, stamped for every mode it applies to (docs/robustness.md
//! maps each kind to its policy and test).
//!
//! Every load loop here is bounded in count and time and talks only to the
//! server on 127.0.0.1. Pauses between writes are part of a scenario (a slow
//! client), never a wait for readiness.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{counter, eventually, signal, Client, Mode, Server};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// Open descriptors of `pid` (entries of /proc/PID/fd).
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Descriptors of `pid` and all its descendants (prefork workers).
fn tree_fd_count(pid: u32) -> usize {
    let mut total = fd_count(pid);
    for child in children(pid) {
        total += tree_fd_count(child);
    }
    total
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let p = t.path().join("children");
            if let Ok(s) = std::fs::read_to_string(p) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// CPU time (user + system) of `pid` and its descendants, in clock ticks.
fn tree_cpu_ticks(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    own + children(pid).into_iter().map(tree_cpu_ticks).sum::<u64>()
}

fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf takes an integer and touches no memory.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// One keep-alive request on a fresh connection; how long the answer took.
fn timed_get(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    let mut c = Client::connect(addr);
    c.send(GET);
    let r = c.response();
    assert_eq!(r.status, 200);
    t.elapsed()
}

/// Whether the server has closed `s` (EOF or reset; nothing else is sent).
fn is_closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(5))).ok();
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Bytes waiting in the receive queue of the server's side of the
/// connection from `peer` (/proc/net/tcp or tcp6, `rx_queue`), if found.
fn server_rx_queue(server: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (local, remote) = (hex(server), hex(peer));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(2) == Some(&remote.as_str()))
            .then(|| u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

/// Set SO_LINGER {on, 0 s} so that close(2) sends RST instead of FIN.
fn set_linger_zero(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

// ---------------------------------------------------------------------------
// Timeouts: 500 slowloris connections while a normal client is served.
// ---------------------------------------------------------------------------

fn slowloris(mode: &Mode) {
    let server = mode.start(&["--header-timeout", "2s"]);
    let addr = server.addr();
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
                .expect("write");
            s
        })
        .collect();
    // Trickle one more header byte on each, as slowloris does, while a
    // normal client keeps asking.
    let mut worst = Duration::ZERO;
    for round in 0..10 {
        for s in slow.iter_mut().skip(round % 2).step_by(2) {
            let _ = s.write_all(b"X");
        }
        worst = worst.max(timed_get(addr));
    }
    assert!(
        worst < Duration::from_secs(1),
        "a normal client waited {worst:?} behind 500 slow ones"
    );
    // Every slow connection is closed once the header timeout expires.
    let closed = eventually(Duration::from_secs(8), || slow.iter_mut().all(is_closed));
    assert!(
        closed,
        "slow connections still open after the header timeout"
    );
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
    if !mode.name.starts_with("prefork") {
        assert!(
            counter(&err, "timeouts_header").unwrap_or(0) >= 500,
            "header timeouts not counted: {err}"
        );
    }
}
event_loop_test!(slowloris);

// ---------------------------------------------------------------------------
// Connect-and-reset flood: 10k cycles, no descriptor leaks.
// ---------------------------------------------------------------------------

fn reset_flood(mode: &Mode) {
    // Short timeouts: on Linux 6.18 a multishot recv can miss a RST that
    // lands right behind a partial request (the data CQE arrives, the
    // reset never does; single-shot recv and epoll see it). Such a
    // connection is then closed by the header timeout, so descriptors
    // return to their baseline within the timeouts rather than at once.
    // docs/robustness.md records this.
    let server = mode.start(&["--header-timeout", "2s", "--idle-timeout", "2s"]);
    let addr = server.addr();
    assert!(timed_get(addr) < Duration::from_secs(5));
    let pid = server.pid();
    let before = tree_fd_count(pid);
    let t = Instant::now();
    for i in 0..10_000u32 {
        let mut s = TcpStream::connect(addr).expect("connect");
        set_linger_zero(&s);
        match i % 3 {
            // Reset before sending anything.
            0 => {}
            // Reset mid-request.
            1 => {
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHo");
            }
            // Reset right after a complete request, before reading its
            // response: the server writes to a reset peer (never SIGPIPE).
            _ => {
                let _ = s.write_all(GET);
            }
        }
        drop(s);
        assert!(t.elapsed() < Duration::from_secs(60), "flood took too long");
    }
    // The server still answers, and its descriptor count returns to where
    // it was once it has processed every reset.
    assert!(timed_get(addr) < Duration::from_secs(5));
    let settled = eventually(Duration::from_secs(12), || tree_fd_count(pid) <= before);
    assert!(
        settled,
        "descriptors leaked: {before} before, {} after 10k resets",
        tree_fd_count(pid)
    );
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
}
event_loop_test!(reset_flood);

// ---------------------------------------------------------------------------
// Descriptor exhaustion: RLIMIT_NOFILE 64 and 200 clients.
// ---------------------------------------------------------------------------

fn fd_exhaustion(mode: &Mode) {
    if !common::have_tool("prlimit")
        && common::skip("prlimit not installed (apt-get install util-linux)")
    {
        return;
    }
    // The limit must be in place before the server starts: a multishot
    // accept reads RLIMIT_NOFILE when it is armed, not at each accept.
    let server = Server::try_start_under(&["prlimit", "--nofile=64:64", "--"], mode.args, &[])
        .unwrap_or_else(|e| panic!("okring under prlimit did not start: {e}"));
    let addr = server.addr();
    let pid = server.pid();
    // 200 clients connect (the kernel completes the handshakes into the
    // backlog) and each sends a request.
    let clients: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            let _ = s.write_all(GET);
            s
        })
        .collect();
    // While most of them cannot be accepted, the server must not spin.
    let hz = clock_ticks_per_s();
    std::thread::sleep(Duration::from_millis(300));
    let c0 = tree_cpu_ticks(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let cpu = (tree_cpu_ticks(pid) - c0) as f64 / hz as f64;
    let share = cpu / t0.elapsed().as_secs_f64();
    assert!(
        share < 0.10,
        "server used {:.0} % CPU while out of descriptors",
        share * 100.0
    );
    // When the clients leave, service resumes.
    drop(clients);
    let served = eventually(Duration::from_secs(10), || {
        TcpStream::connect(addr)
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(GET)?;
                let mut b = [0u8; 256];
                let n = s.read(&mut b)?;
                Ok(b[..n].starts_with(b"HTTP/1.1 200"))
            })
            .unwrap_or(false)
    });
    assert!(served, "no service after the clients left");
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
    if !mode.name.starts_with("prefork") {
        assert!(
            counter(&err, "emfile_pauses").unwrap_or(0) >= 1,
            "EMFILE pauses not counted: {err}"
        );
    }
}
event_loop_test!(fd_exhaustion);

// ---------------------------------------------------------------------------
// A client that pipelines and never reads: memory stays bounded.
// ---------------------------------------------------------------------------

fn never_reads(mode: &Mode) {
    let server = mode.start(&["--idle-timeout", "3s"]);
    let addr = server.addr();
    let rss0 = tree_rss(server.pid());
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_write_timeout(Some(Duration::from_millis(200))).ok();
    let batch = GET.repeat(1000);
    let t = Instant::now();
    let mut sent = 0usize;
    while t.elapsed() < Duration::from_secs(2) {
        match s.write(&batch) {
            Ok(n) => sent += n,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let grown = tree_rss(server.pid()).saturating_sub(rss0);
    assert!(
        grown < 32 << 20,
        "RSS grew by {} MiB for one client that sent {} KiB and read nothing",
        grown >> 20,
        sent >> 10
    );
    // Others are still served meanwhile.
    assert!(timed_get(addr) < Duration::from_secs(2));
    // And the stuck connection is closed by the idle timeout.
    s.set_read_timeout(Some(Duration::from_millis(100))).ok();
    let closed = eventually(Duration::from_secs(15), || {
        let mut b = vec![0u8; 1 << 20];
        loop {
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    });
    assert!(closed, "a connection that never reads is never closed");
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
}
event_loop_test!(never_reads);

fn tree_rss(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    own + children(pid).into_iter().map(tree_rss).sum::<u64>()
}

// ---------------------------------------------------------------------------
// RST mid-response: a deep pipeline then a reset while responses stream.
// ---------------------------------------------------------------------------

fn reset_mid_response(mode: &Mode) {
    let server = mode.start(&[]);
    let addr = server.addr();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).expect("connect");
        let _ = s.write_all(&GET.repeat(2000));
        let mut b = [0u8; 512];
        let _ = s.read(&mut b);
        set_linger_zero(&s);
        drop(s);
    }
    assert!(timed_get(addr) < Duration::from_secs(2));
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
}
event_loop_test!(reset_mid_response);

// ---------------------------------------------------------------------------
// Connection cap.
// ---------------------------------------------------------------------------

fn max_conns(mode: &Mode) {
    // One worker so the cap is the server's total.
    let server = Server::start(mode.args, &["--threads", "1", "--max-conns", "4"]);
    let addr = server.addr();
    let mut held: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
    for c in &mut held {
        c.get_ok();
    }
    // The fifth is closed at accept, without a response.
    let mut fifth = TcpStream::connect(addr).expect("connect");
    fifth.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let _ = fifth.write_all(GET);
    let mut b = [0u8; 64];
    match fifth.read(&mut b) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("over the cap, got {:?}", String::from_utf8_lossy(&b[..n])),
    }
    // Room again once one leaves.
    drop(held.pop());
    let ok = eventually(Duration::from_secs(5), || {
        TcpStream::connect(addr)
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(1)))?;
                s.write_all(GET)?;
                let n = s.read(&mut b)?;
                Ok(b[..n].starts_with(b"HTTP/1.1 200"))
            })
            .unwrap_or(false)
    });
    assert!(ok, "no room after a connection left");
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
    assert!(counter(&err, "conns_refused").unwrap_or(0) >= 1, "{err}");
}

stamp!(max_conns: uring = URING, epoll = EPOLL);

// ---------------------------------------------------------------------------
// io_uring resources: 8 provided buffers, a tiny CQ.
// ---------------------------------------------------------------------------

/// `clients` threads each send `requests` requests carrying `pad` bytes of
/// header, one at a time, and check every answer.
fn concurrent_clients(addr: SocketAddr, clients: usize, requests: usize, pad: usize) {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(pad)
    )
    .into_bytes();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let req = req.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..requests {
                    c.send(&req);
                    assert_eq!(c.response().status, 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
}

fn tiny_buffer_ring(mode: &Mode) {
    let server = mode.start(&["--uring-bufs", "8", "--uring-buf-len", "1024"]);
    concurrent_clients(server.addr(), 64, 20, 3 * 1024);
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
    assert_eq!(counter(&err, "requests"), Some(64 * 20), "{err}");
}
stamp!(tiny_buffer_ring: uring = URING, uring_5_19 = URING_5_19);

fn tiny_cq(mode: &Mode) {
    let server = mode.start(&["--uring-cq-entries", "8"]);
    concurrent_clients(server.addr(), 64, 50, 0);
    let (st, err) = server.stop();
    assert!(st.success(), "{err}");
    assert_eq!(counter(&err, "requests"), Some(64 * 50), "{err}");
}
stamp!(tiny_cq: uring = URING, uring_5_19 = URING_5_19);

// ---------------------------------------------------------------------------
// Shutdown: a second signal forces the exit.
// ---------------------------------------------------------------------------

fn second_signal(mode: &Mode) {
    let server = mode.start(&[]);
    // A request in progress keeps the drain waiting for its full 2 s.
    let mut c = TcpStream::connect(server.addr()).expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\n").expect("write");
    // The server must have read those bytes (its side's receive queue is
    // empty) before the stop, or it would close the connection as idle.
    let local = c.local_addr().expect("local addr");
    assert!(
        common::eventually(Duration::from_secs(5), || server_rx_queue(
            server.addr(),
            local
        ) == Some(0)),
        "the server never read the partial request"
    );
    let mut probe = Client::connect(server.addr());
    probe.get_ok();
    let pid = server.pid();
    let t = Instant::now();
    signal(pid, libc::SIGTERM);
    // A repeat within 100 ms counts as the same request (timeout(1)
    // delivers its signal twice); a person's second Ctrl-C comes later.
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, libc::SIGTERM);
    let (st, err) = server.wait_exit(Duration::from_secs(5));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "the second signal did not cut the 2 s drain short ({:?})",
        t.elapsed()
    );
    assert!(!st.success(), "a forced exit is not a clean one: {st:?}");
    assert!(err.contains("second signal"), "{err}");
}
event_loop_test!(second_signal);

// ---------------------------------------------------------------------------
// io_uring denied by seccomp (Docker's default profile).
// ---------------------------------------------------------------------------

const DENY: &str = env!("CARGO_BIN_EXE_deny-io-uring");

/// `okring serve --mode auto` under `deny-io-uring --errno ERRNO`: it must
/// start (on epoll) and serve; returns the exit code after SIGTERM and the
/// whole stderr. The server is killed if the test fails midway.
fn run_denied_auto(errno: &str) -> (Option<i32>, String) {
    let wrapper = [DENY, "--errno", errno, "--"];
    let server = Server::try_start_under(&wrapper, &["--threads", "1", "--mode", "auto"], &[])
        .unwrap_or_else(|e| panic!("auto mode did not start under {errno}: {e}"));
    assert!(timed_get(server.addr()) < Duration::from_secs(5));
    let (st, err) = server.stop();
    (st.code(), err)
}

/// `okring serve --mode uring` under `deny-io-uring --errno ERRNO`: it must
/// exit by itself (bounded wait; killed and failed otherwise).
fn run_denied_uring(errno: &str) -> (Option<i32>, String) {
    let mut child = Command::new(DENY)
        .args(["--errno", errno, "--", env!("CARGO_BIN_EXE_okring")])
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--mode",
            "uring",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn deny-io-uring");
    let exited = common::eventually(Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("--mode uring kept running with io_uring denied ({errno})");
    }
    let out = child.wait_with_output().expect("collect stderr");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn seccomp_denied_auto_falls_back_to_epoll() {
    for errno in ["EPERM", "ENOSYS"] {
        let (code, err) = run_denied_auto(errno);
        assert_eq!(code, Some(0), "{err}");
        let why = err
            .lines()
            .find(|l| l.contains("using epoll because io_uring is unavailable"))
            .unwrap_or_else(|| panic!("no fallback line: {err}"));
        assert!(why.contains(errno), "the cause names {errno}: {why}");
        assert!(err.contains("epoll mode"), "{err}");
    }
}

#[test]
fn seccomp_denied_uring_exits_with_one_line() {
    for errno in ["EPERM", "ENOSYS"] {
        let (code, err) = run_denied_uring(errno);
        assert_ne!(code, Some(0), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(
            lines[0].starts_with("okring: error: io_uring_setup: "),
            "{err}"
        );
        assert!(lines[0].contains(errno), "{err}");
    }
}

/// SO_REUSEPORT must not let a second server share a busy port: it would
/// silently take half the connections and spoil both measurements.
#[test]
fn second_server_on_a_busy_port_is_refused() {
    let first = Server::start(&["--mode", "epoll"], &[]);
    let bind = first.addr().to_string();
    for mode in [
        &["--mode", "uring"][..],
        &["--mode", "epoll"],
        &["--mode", "prefork"],
        &["--mode", "sequential"],
        &["--mode", "fork"],
    ] {
        let (st, err) = common::run_okring(&[&["serve", "--bind", &bind][..], mode].concat());
        assert!(!st.success(), "{mode:?} started on a busy port: {err}");
        assert!(
            err.starts_with("okring: error: cannot listen on") && err.contains("address in use"),
            "{mode:?}: {err}"
        );
    }
    assert!(timed_get(first.addr()) < Duration::from_secs(5));
    let (st, err) = first.stop();
    assert!(st.success(), "{err}");
}
