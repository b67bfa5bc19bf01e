//! Integration tests of `okring serve --metrics/--hlog` and `okring
//! report`, run against the real binary on 127.0.0.1 with ephemeral ports.
//!
//! - `/metrics` scraped during a 2 s `okring load` run (as a child
//!   process) in the epoll, uring (skipped where io_uring cannot be set up)
//!   and prefork modes: the exposition parses (promtool and the Python
//!   prometheus_client parser, each where installed; under `CI=true`
//!   promtool is required), counters only grow between scrapes, and after
//!   the load `okring_requests_total` and the histogram's `_count` equal the
//!   requests the load generator saw answered.
//! - The server's `--hlog` holds, over all intervals and workers, exactly
//!   the requests the server counted.
//! - `okring report a.hlog b.hlog` writes a merged histogram equal to one
//!   built from both sets of samples.
//! - The endpoint's 404 and Content-Type.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{signal, Server};
use okring::stats::{new_histogram, read_hlog, record_ns, write_hgrm, HlogWriter};

const BIN: &str = env!("CARGO_BIN_EXE_okring");
/// Longest wait for the workers' snapshots to catch up with the load.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /metrics` from the endpoint at `metrics`: the parsed exposition,
/// after checking the status line and the Content-Type.
fn scrape(metrics: SocketAddr) -> Exposition {
    let raw = http_get(metrics, "/metrics");
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    Exposition::parse(body)
}

/// One request to `addr`, the whole response as text.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the response");
    out
}

/// A parsed exposition: the text and its samples by full name (with
/// labels), checked for the 0.0.4 structure okring produces.
struct Exposition {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (name, value) = line.rsplit_once(' ').expect("`name value` sample line");
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?}"));
            assert!(
                samples.insert(name.to_string(), v).is_none(),
                "{name} twice"
            );
        }
        Exposition {
            text: text.to_string(),
            samples,
        }
    }

    fn get(&self, name: &str) -> f64 {
        *self
            .samples
            .get(name)
            .unwrap_or_else(|| panic!("no sample {name} in\n{}", self.text))
    }

    /// Every counter and histogram series (they must never go down).
    fn monotone(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.samples
            .iter()
            .filter(|(n, _)| n.contains("_total") || n.contains("service_time_seconds"))
    }
}

/// Validate with `promtool check metrics` (required under CI=true,
/// otherwise skipped with a notice when missing) and with the Python
/// prometheus_client parser where importable.
fn validate(text: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut p) => {
            p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = p.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics rejected the exposition:\n{}{}\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) if ci => panic!("promtool is required under CI=true: {e}"),
        Err(_) => eprintln!("note: promtool not installed; skipping its check"),
    }
    let py = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families as p\n\
        fams = {f.name: f for f in p(sys.stdin.read())}\n\
        h = fams['okring_service_time_seconds']\n\
        assert h.type == 'histogram', h.type\n\
        assert fams['okring_requests'].type == 'counter'\n\
        print(len(fams))\n";
    let Ok(mut p) = Command::new("python3")
        .args(["-c", py])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        common::skip("python3 not installed: the prometheus_client check cannot run");
        return;
    };
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No module named 'prometheus_client'") {
        common::skip("prometheus_client not importable (pip install prometheus_client)");
        return;
    }
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {err}\n{text}"
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("okring-metrics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Scrape until `ok` holds for the exposition or [`SETTLE_TIMEOUT`] passes
/// (the last scrape is returned either way; the caller asserts).
fn scrape_until(metrics: SocketAddr, ok: impl Fn(&Exposition) -> bool) -> Exposition {
    let t0 = Instant::now();
    loop {
        let e = scrape(metrics);
        if ok(&e) || t0.elapsed() > SETTLE_TIMEOUT {
            return e;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `okring load` for 2 s (no warm-up) against `addr` as a child;
/// returns the child and its JSON path.
fn start_load(addr: SocketAddr, dir: &Path) -> (Child, PathBuf) {
    let json = dir.join("load.json");
    let child = Command::new(BIN)
        .args(["load", &format!("http://{addr}/")])
        .args(["-c", "4", "-d", "2s", "--warmup", "0s", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn okring load");
    (child, json)
}

/// The scenario shared by every mode: scrape during and after a load run,
/// compare with the load generator's count; then stop the server and
/// check its `--hlog`.
fn scrape_during_load(server: Server, dir: &Path, hlog: &Path) {
    let metrics = server.metrics_addr();
    let before = scrape(metrics);
    validate(&before.text);
    assert_eq!(before.get("okring_requests_total"), 0.0);
    let (load, json) = start_load(server.addr(), dir);
    // Readiness, not sleeps: wait (bounded) for a snapshot that counts
    // requests, then for a later one that counts more, while the 2 s load
    // still runs (workers publish every 100 ms).
    let mid1 = scrape_until(metrics, |e| e.get("okring_requests_total") > 0.0);
    let first = mid1.get("okring_requests_total");
    let mid2 = scrape_until(metrics, |e| e.get("okring_requests_total") > first);
    validate(&mid2.text);
    assert!(
        mid1.get("okring_requests_total") > 0.0,
        "a snapshot during the load counts requests"
    );
    assert!(
        mid2.get("okring_requests_total") > first,
        "a later snapshot during the load counts more"
    );
    for (name, v) in mid1.monotone() {
        assert!(
            mid2.get(name) >= *v,
            "{name} went down: {v} -> {}",
            mid2.get(name)
        );
    }
    assert!(mid2.get("okring_connections_active") >= 1.0);
    let out = load.wait_with_output().expect("okring load");
    assert!(
        out.status.success(),
        "okring load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let answered = doc["results"]["requests"]
        .as_u64()
        .expect("results.requests");
    let sent = doc["results"]["sent"].as_u64().expect("results.sent");
    assert!(answered > 0, "the load generator got answers");

    // Snapshots trail the workers by up to a few ticks: wait for them.
    let t0 = Instant::now();
    let after = loop {
        let e = scrape(metrics);
        if e.get("okring_requests_total") as u64 == answered || t0.elapsed() > SETTLE_TIMEOUT {
            break e;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    validate(&after.text);
    // Every answer the client counted, the server counted. A request the
    // client gave up on (timed out, unanswered, unfinished: `sent` -
    // `requests`) the server may still have answered, so on a starved
    // machine the server can count up to `sent`; with none given up, the
    // two counts are equal.
    let served = after.get("okring_requests_total") as u64;
    assert!(
        (answered..=sent).contains(&served),
        "the server counted {served}; the load generator's results: {}",
        doc["results"]
    );
    if sent == answered {
        assert_eq!(served, answered, "{}", doc["results"]);
    }
    let sent = served;
    assert_eq!(after.get("okring_service_time_seconds_count") as u64, sent);
    assert_eq!(
        after.get("okring_service_time_seconds_bucket{le=\"+Inf\"}") as u64,
        sent
    );
    assert_eq!(after.get("okring_responses_200_total") as u64, sent);
    for (name, v) in mid2.monotone() {
        assert!(after.get(name) >= *v, "{name} went down");
    }
    assert!(after.get("okring_uptime_seconds") > mid2.get("okring_uptime_seconds"));

    let (_, stderr) = server.stop();
    assert!(
        stderr.contains(&format!(" {sent} requests (")),
        "the exit summary counts {sent} requests:\n{stderr}"
    );
    let ivs = read_hlog(std::fs::File::open(hlog).unwrap()).expect("the server's --hlog");
    let logged: u64 = ivs
        .iter()
        .filter(|i| i.tag.is_none())
        .map(|i| i.hist.len())
        .sum();
    assert_eq!(logged, sent, "the untagged lines hold every request");
    let by_worker: u64 = ivs
        .iter()
        .filter(|i| i.tag.is_some())
        .map(|i| i.hist.len())
        .sum();
    assert_eq!(by_worker, sent, "so do the per-worker lines together");
    assert!(ivs
        .iter()
        .filter_map(|i| i.tag.as_deref())
        .all(|t| t.starts_with("worker")));
    assert!(ivs.iter().any(|i| i.tag.as_deref() == Some("worker1")));
    assert!(ivs.iter().any(|i| i.tag.is_none()));
}

/// Start `okring serve MODE_ARGS --metrics 127.0.0.1:0 --hlog DIR/server.hlog`
/// in a fresh temporary directory, drive it with `okring load` and check
/// the scrapes and the log (`scrape_during_load`). `Err` when the server
/// could not start.
fn metrics_case(name: &str, mode_args: &[&str]) -> Result<(), String> {
    let dir = temp_dir(name);
    let hlog = dir.join("server.hlog");
    let mut args = mode_args.to_vec();
    args.extend(["--metrics", "127.0.0.1:0", "--hlog", hlog.to_str().unwrap()]);
    let server = Server::try_start(&args, &[])?;
    scrape_during_load(server, &dir, &hlog);
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

#[test]
fn epoll_metrics_match_the_load_generator() {
    let args = ["--mode", "epoll", "--threads", "2", "--interval", "500ms"];
    if let Err(e) = metrics_case("epoll", &args) {
        panic!("okring serve did not start:\n{e}");
    }
}

#[test]
fn uring_metrics_match_the_load_generator() {
    if let Err(e) = metrics_case("uring", &["--mode", "uring", "--threads", "2"]) {
        common::skip(&format!("uring case: io_uring is unavailable here:\n{e}"));
    }
}

#[test]
fn prefork_metrics_are_merged_across_workers() {
    if let Err(e) = metrics_case("prefork", &["--mode", "prefork", "--workers", "2"]) {
        panic!("okring serve did not start:\n{e}");
    }
}

#[test]
fn prefork_counters_survive_a_worker_restart() {
    let server = Server::start(
        &[
            "--mode",
            "prefork",
            "--workers",
            "1",
            "--metrics",
            "127.0.0.1:0",
        ],
        &[],
    );
    let metrics = server.metrics_addr();
    let send = |n: usize| {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(n - 1)
            + "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), n);
    };
    let wait_for = |n: f64| {
        let t0 = Instant::now();
        loop {
            let e = scrape(metrics);
            if e.get("okring_requests_total") == n || t0.elapsed() > SETTLE_TIMEOUT {
                return e;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    send(5);
    assert_eq!(wait_for(5.0).get("okring_requests_total"), 5.0);
    // Kill the worker: its counts stay, its replacement adds to them.
    let master = server.pid();
    let worker = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .expect("/proc children list")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .expect("a worker process");
    signal(worker, libc::SIGKILL);
    let t0 = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(server.addr()) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .is_ok()
            {
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.1 200 OK") {
                    break;
                }
            }
        }
        assert!(t0.elapsed() < SETTLE_TIMEOUT, "no replacement worker");
        std::thread::sleep(Duration::from_millis(50));
    }
    send(3);
    let e = wait_for(9.0);
    assert_eq!(e.get("okring_requests_total"), 9.0, "5 + 1 + 3 requests");
    assert_eq!(e.get("okring_service_time_seconds_count"), 9.0);
    validate(&e.text);
}

#[test]
fn endpoint_answers_only_metrics() {
    let server = Server::start(
        &[
            "--mode",
            "epoll",
            "--threads",
            "1",
            "--metrics",
            "127.0.0.1:0",
        ],
        &[],
    );
    let nf = http_get(server.metrics_addr(), "/");
    assert!(nf.starts_with("HTTP/1.1 404 "), "{nf}");
    assert!(nf.contains("\r\nConnection: close\r\n"), "{nf}");
    let ok = http_get(server.metrics_addr(), "/metrics?x=1");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    let raw = |req: &[u8]| {
        let mut s = TcpStream::connect(server.metrics_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read the response");
        out
    };
    let post = raw(b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    // The request framer's rules: HTTP/1.1 needs a Host; a head over the
    // cap is refused by its size.
    let no_host = raw(b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(
        no_host.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{no_host}"
    );
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    big.resize(9000, b'a');
    let too_big = raw(&big);
    assert!(too_big.starts_with("HTTP/1.1 431 "), "{too_big}");
    assert!(!server.stderr_so_far().contains("listening on http"));
}

#[test]
fn report_merges_two_hlogs_losslessly() {
    let dir = temp_dir("report");
    // Two "machines": different sample sets, several intervals and tags.
    let mut expected = new_histogram();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut paths = Vec::new();
    for (m, scale) in [(0, 10_000_u64), (1, 3_000_000)] {
        let path = dir.join(format!("m{m}.hlog"));
        let f = std::fs::File::create(&path).unwrap();
        let mut w = HlogWriter::new(f, SystemTime::now()).unwrap();
        for i in 0..4_u64 {
            for tag in ["a", "b"] {
                let mut h = new_histogram();
                for _ in 0..500 {
                    let v = 1 + next() % scale;
                    record_ns(&mut h, v, 1);
                    record_ns(&mut expected, v, 1);
                }
                let start = Duration::from_secs(i);
                w.write_interval(Some(tag), start, Duration::from_secs(1), &h)
                    .unwrap();
            }
        }
        w.flush().unwrap();
        paths.push(path);
    }
    let out_dir = dir.join("out");
    let out = Command::new(BIN)
        .arg("report")
        .args(&paths)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("okring report");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged_row = stdout
        .lines()
        .find(|l| l.starts_with("merged"))
        .unwrap_or_else(|| panic!("no merged row:\n{stdout}"));
    assert_eq!(
        merged_row.split_whitespace().nth(1),
        Some("8000"),
        "{stdout}"
    );
    // Three blocks: the percentile table (header, two files, merged), the
    // wall-clock interval table (header, one row per second), the total.
    let blocks: Vec<Vec<&str>> = stdout
        .split("\n\n")
        .map(|b| b.lines().filter(|l| !l.is_empty()).collect())
        .filter(|b: &Vec<&str>| !b.is_empty())
        .collect();
    assert_eq!(blocks.len(), 3, "{stdout}");
    assert_eq!(blocks[0].len(), 4, "header, two files, merged:\n{stdout}");
    let rows = &blocks[1][2..];
    assert_eq!(rows.len(), 4, "one row per 1 s interval:\n{stdout}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1..3], ["2/2", "2000"], "{row}\n{stdout}");
    }
    assert!(
        blocks[2][0].starts_with("combined: 2 inputs, 8000 requests"),
        "{stdout}"
    );
    let mut want = Vec::new();
    write_hgrm(&mut want, &expected, 5).unwrap();
    let got = std::fs::read(out_dir.join("merged.hgrm")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "merged.hgrm equals the histogram of all samples"
    );
    let svg = std::fs::read_to_string(out_dir.join("spectrum.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("merged"));
    // Without --out: the same table, and the files in a new timestamped
    // directory under report-out/, nothing loose in the current one.
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let bare = Command::new(BIN)
        .arg("report")
        .args(&paths)
        .current_dir(&cwd)
        .output()
        .expect("okring report");
    assert!(bare.status.success());
    assert_eq!(String::from_utf8_lossy(&bare.stdout), stdout);
    let top: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        top,
        ["report-out"],
        "only report-out/ in the current directory"
    );
    let runs: Vec<_> = std::fs::read_dir(cwd.join("report-out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(std::fs::read(runs[0].join("merged.hgrm")).unwrap(), got);
    assert!(runs[0].join("spectrum.svg").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Where Debian's `libhdrhistogram-java` puts HdrHistogram's jar.
const HDR_JAR: &str = "/usr/share/java/hdrhistogram.jar";

/// The total of the `#[Max = …, Total count = N]` footer of a `.hgrm`.
fn hgrm_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.contains("Total count"))?;
    line.rsplit('=')
        .next()?
        .trim()
        .trim_end_matches(']')
        .trim()
        .parse()
        .ok()
}

/// HdrHistogram's reference readers agree with okring on every count:
/// Java's `HistogramLogProcessor`, with its default options, merges the
/// server's `--hlog` (the untagged lines) to the server's request count,
/// and turns the load generator's `--hlog` into exactly the percentile
/// distribution of its `--hgrm`; the Python `hdrhistogram` package reads
/// both logs (untagged lines) and the `--json` blob with the same totals.
#[test]
fn hdrhistogram_reference_readers_agree_with_okring() {
    let dir = temp_dir("reference");
    let srv_hlog = dir.join("server.hlog");
    let server = Server::start(
        &[
            "--mode",
            "epoll",
            "--threads",
            "2",
            "--hlog",
            srv_hlog.to_str().unwrap(),
            "--interval",
            "200ms",
        ],
        &[],
    );
    let (cli_hlog, cli_hgrm, cli_json) = (
        dir.join("cli.hlog"),
        dir.join("cli.hgrm"),
        dir.join("cli.json"),
    );
    let out = Command::new(BIN)
        .args([
            "load",
            &format!("http://{}/", server.addr()),
            "-c",
            "8",
            "-d",
            "1s",
            "--warmup",
            "0s",
        ])
        .arg("--hlog")
        .arg(&cli_hlog)
        .arg("--hgrm")
        .arg(&cli_hgrm)
        .arg("--json")
        .arg(&cli_json)
        .output()
        .expect("okring load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cli_json).unwrap()).unwrap();
    let answered = doc["results"]["requests"].as_u64().unwrap();
    assert!(answered > 1000, "{answered}");
    let (_, stderr) = server.stop();
    assert_eq!(
        common::counter(&stderr, "requests"),
        Some(answered),
        "{stderr}"
    );

    if !common::have_tool("java") || !Path::new(HDR_JAR).exists() {
        common::skip("java or HdrHistogram's jar missing (apt-get install default-jre-headless libhdrhistogram-java)");
    } else {
        let java = |hlog: &Path, out: &Path| {
            let o = Command::new("java")
                .args([
                    "-cp",
                    HDR_JAR,
                    "org.HdrHistogram.HistogramLogProcessor",
                    "-i",
                ])
                .arg(hlog)
                .arg("-o")
                .arg(out)
                .output()
                .expect("run java");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::fs::read_to_string(out.with_extension("hgrm"))
                .expect("HistogramLogProcessor's .hgrm")
        };
        let srv = java(&srv_hlog, &dir.join("java-server"));
        assert_eq!(hgrm_total(&srv), Some(answered), "{srv}");
        let cli = java(&cli_hlog, &dir.join("java-client"));
        // The Java file adds two header comments (the time range).
        let body: String = cli
            .lines()
            .filter(|l| !l.starts_with("#[Overall") && !l.starts_with("#[StartTime"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            body,
            std::fs::read_to_string(&cli_hgrm).unwrap(),
            "Java's .hgrm of our .hlog = our --hgrm"
        );
    }

    if !common::have_tool("python3")
        || !Command::new("python3")
            .args(["-c", "import hdrh"])
            .status()
            .is_ok_and(|s| s.success())
    {
        common::skip("the Python hdrhistogram package is missing (pip install hdrhistogram)");
        return;
    }
    const PY: &str = r#"
import json, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
def untagged(path):
    r = HistogramLogReader(path, HdrHistogram(1, 3_600_000_000_000, 3))
    total = 0
    while True:
        h = r.get_next_interval_histogram()
        if h is None:
            return total
        if not h.get_tag():
            total += h.get_total_count()
blob = json.load(open(sys.argv[3]))["histograms"]["latency"]["hdr_v2_deflate_base64"]
print(untagged(sys.argv[1]), untagged(sys.argv[2]), HdrHistogram.decode(blob).get_total_count())
"#;
    let o = Command::new("python3")
        .args(["-c", PY])
        .arg(&srv_hlog)
        .arg(&cli_hlog)
        .arg(&cli_json)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(got, format!("{answered} {answered} {answered}"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `okring report --baseline OLD NEW`: the change per percentile and in
/// rate with the ratio, and `--fail-if` budgets absolute or relative to
/// the baseline (exit 3 when broken, 2 when a gate cannot be judged).
#[test]
fn report_compares_with_a_baseline_and_gates_regressions() {
    let dir = temp_dir("baseline");
    let doc = |name: &str, ns: u64, rps: f64| {
        let mut h = new_histogram();
        record_ns(&mut h, ns, 1000);
        let d = serde_json::json!({
            "schema": "okring.load/1",
            "results": {"sent": 1000, "requests": 1000, "requests_per_sec": rps,
                        "errors": {"connect": 0, "read": 0, "timeout": 0}},
            "histograms": {"latency": okring::stats::hist_json(&h)},
        });
        let p = dir.join(name);
        std::fs::write(&p, d.to_string()).unwrap();
        p
    };
    let old = doc("old.json", 1_000_000, 1000.0);
    let new = doc("new.json", 1_500_000, 900.0);
    let report = |extra: &[&str]| {
        Command::new(BIN)
            .arg("report")
            .arg(&new)
            .arg("--baseline")
            .arg(&old)
            .arg("--out")
            .arg(dir.join("out"))
            .args(extra)
            .output()
            .expect("okring report")
    };
    let out = report(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let p99 = text
        .lines()
        .find(|l| l.starts_with("p99 "))
        .unwrap_or_else(|| panic!("no p99 delta row:\n{text}"));
    let ratio: f64 = p99.split_whitespace().last().unwrap().parse().unwrap();
    assert!((1.49..=1.51).contains(&ratio) && p99.contains('+'), "{p99}");
    let rate = text
        .lines()
        .find(|l| l.starts_with("req/s"))
        .expect("a rate row");
    assert!(rate.contains("-100") && rate.ends_with("0.900"), "{rate}");
    let code = |extra: &[&str]| report(extra).status.code();
    assert_eq!(code(&["--fail-if", "p99>+10%"]), Some(3));
    assert_eq!(code(&["--fail-if", "p99>+60%"]), Some(0));
    assert_eq!(code(&["--fail-if", "rps<-5%"]), Some(3));
    assert_eq!(code(&["--fail-if", "rps<-20%,errors>0"]), Some(0));
    assert_eq!(code(&["--fail-if", "p99>1ms"]), Some(3));
    // No baseline for a relative gate, and no counts in an interval log.
    let alone = Command::new(BIN)
        .args(["report", new.to_str().unwrap(), "--fail-if", "p99>+10%"])
        .arg("--out")
        .arg(dir.join("out2"))
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
