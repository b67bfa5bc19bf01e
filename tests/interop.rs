//! Interoperability: real third-party clients against `okring serve`, in
//! every mode — curl (framing, HEAD, HTTP/1.0, bodies, connection reuse),
//! ApacheBench (keep-alive and one connection per request), wrk (256
//! connections; 16-deep pipelining via `tests/data/pipeline16.lua`) and
//! h2load (`--h1`); each test compares the tool's count with the server's.
//!
//! A missing tool skips its test with a notice, except under CI (`CI=true`),
//! where it fails: `.ci/run` installs them. Loads are short (≤ 2 s each)
//! because the suite runs on 2 cores next to the server.
//!
//! What it does not do: measure performance (that is `okring bench`), or
//! judge framing byte by byte (that is `tests/serve.rs`).

#[macro_use]
mod common;

use std::process::Command;

use common::*;

/// Run `tool args`, returning (success, stdout, stderr); `None` when the
/// tool is not installed (after printing the skip notice, or panicking
/// under CI).
fn tool(name: &str, package: &str, args: &[&str]) -> Option<(bool, String, String)> {
    if !have_tool(name) {
        skip(&format!("{name} not installed (apt-get install {package})"));
        return None;
    }
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Some((out.status.success(), stdout, stderr))
}

/// The value after `label` on the line starting with it, e.g.
/// `Failed requests:        0` → `0`.
fn field<'a>(report: &'a str, label: &str) -> Option<&'a str> {
    report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
}

/// Stop the server and check it exits 0.
fn stop_ok(server: Server) -> String {
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    stderr
}

/// curl: a GET (headers and body), a HEAD, HTTP/1.0, a POST with a body, a
/// chunked POST, and three URLs reusing one connection.
fn curl(mode: &Mode) {
    let server = mode.start(&[]);
    let url = format!("http://{}/", server.addr());
    let Some((ok, out, err)) = tool("curl", "curl", &["-si", &url]) else {
        return;
    };
    assert!(ok, "curl -si failed: {err}");
    let (head, body) = out.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(head.contains("\r\nContent-Length: 2") && head.contains("Content-Type: text/plain"));
    let date = head
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .expect("a Date header");
    assert!(is_imf_fixdate(date), "Date {date:?}");
    assert_eq!(body, "OK");

    let (ok, out, err) = tool("curl", "curl", &["-sI", &url]).expect("curl");
    assert!(
        ok && out.starts_with("HTTP/1.1 200 OK\r\n"),
        "curl -sI: {out}{err}"
    );
    assert!(
        out.contains("Content-Length: 2\r\n"),
        "HEAD keeps the GET's length: {out}"
    );

    let (ok, out, err) = tool("curl", "curl", &["-si", "--http1.0", &url]).expect("curl");
    assert!(
        ok && out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("OK"),
        "{out}{err}"
    );

    let (ok, out, err) = tool(
        "curl",
        "curl",
        &["-s", "--data-binary", "some body bytes", &url],
    )
    .expect("curl");
    assert!(ok && out == "OK", "POST with a body: {out:?} {err}");

    // A chunked upload is decoded and discarded (200) or refused (501).
    let (ok, out, err) = tool(
        "curl",
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "hello",
            &url,
        ],
    )
    .expect("curl");
    assert!(
        ok && (out == "200" || out == "501"),
        "chunked POST: {out:?} {err}"
    );

    let (ok, out, err) = tool("curl", "curl", &["-sv", &url, &url, &url]).expect("curl");
    assert!(ok && out == "OKOKOK", "three GETs: {out:?}");
    assert!(
        err.contains("Re-using existing connection"),
        "curl did not reuse the connection:\n{err}"
    );

    let stderr = stop_ok(server);
    // -si, -sI, --http1.0, POST, chunked POST on a connection each; the
    // three GETs on one.
    assert_eq!(counter(&stderr, "conns_accepted"), Some(6), "{stderr}");
}
mode_test!(curl);

/// `ab -k -n 20000 -c 50`: every request answered, all over keep-alive.
fn ab_keepalive(mode: &Mode) {
    let server = mode.start(&[]);
    let url = format!("http://{}/", server.addr());
    // The sequential server serves one connection until it closes, so 49
    // of 50 concurrent keep-alive clients would wait out the idle timeout
    // by design (docs/modes.md); it gets one client at a time.
    let concurrency = if mode.name == "sequential" { "1" } else { "50" };
    let Some((ok, out, err)) = tool(
        "ab",
        "apache2-utils",
        &["-k", "-n", "20000", "-c", concurrency, &url],
    ) else {
        return;
    };
    assert!(ok, "ab failed:\n{out}\n{err}");
    assert_eq!(field(&out, "Complete requests:"), Some("20000"), "{out}");
    assert_eq!(field(&out, "Failed requests:"), Some("0"), "{out}");
    assert_eq!(field(&out, "Keep-Alive requests:"), Some("20000"), "{out}");
    assert_eq!(field(&out, "Non-2xx responses:"), None, "{out}");
    let stderr = stop_ok(server);
    assert_eq!(counter(&stderr, "responses_200"), Some(20000), "{stderr}");
}
mode_test!(ab_keepalive);

/// `ab -n 5000 -c 20`: HTTP/1.0 without keep-alive, one connection per
/// request, each closed by the server after its response.
fn ab_close(mode: &Mode) {
    let server = mode.start(&[]);
    let url = format!("http://{}/", server.addr());
    let Some((ok, out, err)) = tool("ab", "apache2-utils", &["-n", "5000", "-c", "20", &url])
    else {
        return;
    };
    assert!(ok, "ab failed:\n{out}\n{err}");
    assert_eq!(field(&out, "Complete requests:"), Some("5000"), "{out}");
    assert_eq!(field(&out, "Failed requests:"), Some("0"), "{out}");
    assert_eq!(field(&out, "Non-2xx responses:"), None, "{out}");
    let stderr = stop_ok(server);
    // ab opens a few connections beyond -n near the end and closes them
    // unused, so count requests, and connections only from below.
    assert_eq!(counter(&stderr, "responses_200"), Some(5000), "{stderr}");
    assert!(
        counter(&stderr, "conns_accepted").unwrap_or(0) >= 5000,
        "{stderr}"
    );
}
mode_test!(ab_close);

/// Check a wrk report: requests were made, and no socket errors or
/// non-2xx/3xx responses were reported.
fn assert_wrk_clean(out: &str) {
    let requests: u64 = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `N requests in` line:\n{out}"));
    assert!(requests > 0, "wrk made no requests:\n{out}");
    assert!(!out.contains("Socket errors"), "{out}");
    assert!(!out.contains("Non-2xx"), "{out}");
}

/// `wrk -t1 -c256 -d2s`: 256 keep-alive connections, no errors.
fn wrk_256(mode: &Mode) {
    let server = mode.start(&[]);
    let url = format!("http://{}/", server.addr());
    let Some((ok, out, err)) = tool("wrk", "wrk", &["-t1", "-c256", "-d2s", &url]) else {
        return;
    };
    assert!(ok, "wrk failed:\n{out}\n{err}");
    if mode.name == "sequential" {
        // One connection at a time: the other 255 wait in the backlog and
        // some of their requests pass wrk's 2 s timeout. What must hold is
        // no hang: wrk ends on time with a throughput figure, and the
        // server answered requests.
        assert!(out.contains("Requests/sec:"), "{out}");
        let stderr = stop_ok(server);
        assert!(
            counter(&stderr, "responses_200").unwrap_or(0) > 0,
            "{stderr}"
        );
        return;
    }
    assert_wrk_clean(&out);
    let stderr = stop_ok(server);
    assert!(
        counter(&stderr, "conns_accepted").unwrap_or(0) >= 256,
        "{stderr}"
    );
}
mode_test!(wrk_256);

/// wrk with `tests/data/pipeline16.lua`: requests 16 deep on 32
/// connections, no errors.
fn wrk_pipeline16(mode: &Mode) {
    let server = mode.start(&[]);
    let url = format!("http://{}/", server.addr());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pipeline16.lua");
    let args = ["-t1", "-c32", "-d2s", "-s", script, &url, "--", "16"];
    let Some((ok, out, err)) = tool("wrk", "wrk", &args) else {
        return;
    };
    assert!(ok, "wrk failed:\n{out}\n{err}");
    assert_wrk_clean(&out);
    stop_ok(server);
}
mode_test!(wrk_pipeline16);

/// `h2load --h1 -n 4000 -c 8` (nghttp2's load tool speaking HTTP/1.1,
/// pipelining off): every request succeeds with a 2xx, and the server's
/// own count equals h2load's.
fn h2load_h1(mode: &Mode) {
    let server = mode.start(&[]);
    let url = format!("http://{}/", server.addr());
    // One connection at a time in sequential mode (see ab_keepalive).
    let clients = if mode.name == "sequential" { "1" } else { "8" };
    let Some((ok, out, err)) = tool(
        "h2load",
        "nghttp2-client",
        &["--h1", "-n", "4000", "-c", clients, &url],
    ) else {
        return;
    };
    assert!(ok, "h2load failed:\n{out}\n{err}");
    assert!(
        out.contains("requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{out}"
    );
    assert!(
        out.contains("status codes: 4000 2xx, 0 3xx, 0 4xx, 0 5xx"),
        "{out}"
    );
    let stderr = stop_ok(server);
    assert_eq!(counter(&stderr, "responses_200"), Some(4000), "{stderr}");
    assert_eq!(counter(&stderr, "requests"), Some(4000), "{stderr}");
}
mode_test!(h2load_h1);
