//! Many load machines, stood up on this one: network namespaces as the
//! load machines, each joined by a veth to a bridge in the server's
//! namespace, `okring-server` resolving to the server there (through
//! `/etc/netns/NS/hosts`, which `ip netns exec` mounts over `/etc/hosts`).
//! Each test checks that `okring report` of the shards' results gives the
//! requested total rate (within 2 %) and exactly the server's own count:
//! - three shards started directly (`--shard I/3 --start-at +2s`);
//! - the GNU parallel recipe of docs/metrics.md, run as written except for
//!   the host names, the port and the length (ssh replaced by a shim that
//!   enters the host's namespace: `PARALLEL_SSH`);
//! - the Kubernetes Indexed Job of deploy/kubernetes, its container command
//!   run once per index with `JOB_COMPLETION_INDEX` set.
//!
//! Needs root and iproute2 (skips otherwise; fails under CI=true). The
//! namespaces are private, so their traffic never leaves the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use common::*;

/// One namespace test at a time: each runs a server and three load
/// generators on this machine's cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Total rate over all shards, req/s.
const RATE: f64 = 6000.0;
/// The measured window of each shard.
const WINDOW: &str = "3s";

/// A server namespace with a bridge at 10.213.0.1/24, and load namespaces
/// at 10.213.0.2, .3, …; removed on drop.
struct Lab {
    server_ns: String,
    load_ns: Vec<String>,
    dir: PathBuf,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// `None` after [`skip`] when this machine cannot make namespaces.
    fn new(tag: &str, loads: usize) -> Option<Lab> {
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                == Some("0")
        });
        if !root || !have_tool("ip") {
            skip("network namespaces need root and iproute2 (ip)");
            return None;
        }
        let id = format!("ok{tag}{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("okring-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        let lab = Lab {
            server_ns: format!("{id}s"),
            load_ns: (1..=loads).map(|i| format!("{id}l{i}")).collect(),
            dir,
        };
        if let Err(e) = lab.build(&id) {
            skip(&format!("cannot build the namespaces: {e}"));
            return None;
        }
        Some(lab)
    }

    fn build(&self, id: &str) -> Result<(), String> {
        let s = self.server_ns.as_str();
        ip(&["netns", "add", s])?;
        ip(&["-n", s, "link", "set", "lo", "up"])?;
        ip(&["-n", s, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", s, "addr", "add", "10.213.0.1/24", "dev", "br0"])?;
        ip(&["-n", s, "link", "set", "br0", "up"])?;
        for (i, ns) in self.load_ns.iter().enumerate() {
            let (a, b) = (format!("{id}a{i}"), format!("{id}b{i}"));
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", &a, "netns", ns, "type", "veth", "peer", "name", &b, "netns", s,
            ])?;
            ip(&["-n", s, "link", "set", &b, "master", "br0", "up"])?;
            let addr = format!("10.213.0.{}/24", i + 2);
            ip(&["-n", ns, "addr", "add", &addr, "dev", &a])?;
            ip(&["-n", ns, "link", "set", &a, "up"])?;
            let etc = PathBuf::from("/etc/netns").join(ns);
            std::fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
            std::fs::write(
                etc.join("hosts"),
                "127.0.0.1 localhost\n10.213.0.1 okring-server\n",
            )
            .map_err(|e| format!("{}/hosts: {e}", etc.display()))?;
        }
        Ok(())
    }

    /// Start `okring serve` (auto mode, one worker) in the server namespace.
    fn server(&self) -> Server {
        let wrap = ["ip", "netns", "exec", self.server_ns.as_str()];
        Server::try_start_under(&wrap, &["--threads", "1"], &["--bind", "0.0.0.0:0"])
            .unwrap_or_else(|e| panic!("server in {} did not start:\n{e}", self.server_ns))
    }

    /// PATH with okring's directory first (the "remote" machines run
    /// `okring` by name).
    fn path_with_okring() -> String {
        let bin = Path::new(env!("CARGO_BIN_EXE_okring"))
            .parent()
            .expect("okring's directory")
            .to_path_buf();
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{rest}", bin.display())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.load_ns.iter().chain([&self.server_ns]) {
            let _ = ip(&["netns", "delete", ns]);
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file in `dir` with its size and its first 600 bytes: what a
/// failed recipe's jobs wrote (their stdout, `.err`, `.seq`).
fn dump_dir(dir: &Path) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    for p in names.iter().filter(|p| p.is_file()) {
        let data = std::fs::read(p).unwrap_or_default();
        let head = String::from_utf8_lossy(&data[..data.len().min(600)]).into_owned();
        out += &format!("--- {} ({} bytes)\n{head}\n", p.display(), data.len());
    }
    out
}

/// `okring report FILES` in `dir`: (stdout, stderr).
fn report(dir: &Path, files: &[&str]) -> (String, String) {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_okring"))
            .current_dir(dir)
            .arg("report")
            .args(files)
            .args(["--out", "merged"]),
        "okring report",
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (requests, req/s) of the report's `combined:` line.
fn combined(report: &str) -> (u64, f64) {
    let line = report
        .lines()
        .find(|l| l.starts_with("combined:"))
        .unwrap_or_else(|| panic!("no combined line in:\n{report}"));
    let requests = line
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {line:?}"));
    let rate = line
        .rsplit(": ")
        .next()
        .and_then(|s| s.strip_suffix(" req/s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line:?}"));
    (requests, rate)
}

/// The merged report equals the server's count and the requested rate,
/// with no warning.
fn assert_whole_run(stdout: &str, stderr: &str, server_stderr: &str, inputs: usize) {
    let served = counter(server_stderr, "requests").expect("server's requests counter");
    let (requests, rate) = combined(stdout);
    assert!(
        stdout.contains(&format!("combined: {inputs} inputs,")),
        "{stdout}"
    );
    assert_eq!(requests, served, "merged count vs the server's:\n{stdout}");
    assert!(
        (rate - RATE).abs() <= 0.02 * RATE,
        "combined rate {rate} vs {RATE}:\n{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    // The merged row holds every response too.
    let merged: u64 = stdout
        .lines()
        .find(|l| l.starts_with("merged "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no merged row:\n{stdout}"));
    assert_eq!(merged, served, "{stdout}");
}

#[test]
fn three_namespaces_as_three_shards_add_up_to_one_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = Lab::new("d", 3) else { return };
    let server = lab.server();
    let url = format!("http://okring-server:{}/", server.addr().port());
    let rate = RATE.to_string();
    let children: Vec<_> = lab
        .load_ns
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let shard = format!("{}/3", i + 1);
            let hlog = lab.dir.join(format!("s{}.hlog", i + 1));
            Command::new("ip")
                .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_okring"), "load"])
                .args([url.as_str(), "-c", "12", "-d", WINDOW, "--warmup", "0"])
                .args(["--rate", &rate, "--shard", &shard, "--start-at", "+2s"])
                .arg("--hlog")
                .arg(&hlog)
                .args(["--json", "-"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ip netns exec okring load")
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait for a shard");
        assert!(
            out.status.success(),
            "shard {} failed: {}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("--json - is JSON only");
        assert_eq!(doc["results"]["shard"], format!("{}/3", i + 1));
        std::fs::write(lab.dir.join(format!("s{}.json", i + 1)), &out.stdout).unwrap();
    }
    let (_, server_err) = server.stop();
    let (out, err) = report(&lab.dir, &["s1.hlog", "s2.hlog", "s3.hlog"]);
    assert_whole_run(&out, &err, &server_err, 3);
    // Lined up: three full 1 s intervals, each covered by all three shards.
    let full: Vec<&str> = out.lines().filter(|l| l.contains(" 3/3 ")).collect();
    assert_eq!(full.len(), 3, "{out}");
    let (out, err) = report(&lab.dir, &["s1.json", "s2.json", "s3.json"]);
    assert_whole_run(&out, &err, &server_err, 3);
    // A missing shard is named.
    let (_, err) = report(&lab.dir, &["s1.json", "s3.json"]);
    assert!(err.contains("shard 2/3 is missing"), "{err}");
}

/// The fenced block after `<!-- recipe: NAME` in docs/metrics.md.
fn recipe(name: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let marker = format!("<!-- recipe: {name} ");
    let at = doc.find(&marker).unwrap_or_else(|| panic!("no {marker:?}"));
    let block = &doc[at..];
    let start = block.find("```sh\n").expect("fenced block") + "```sh\n".len();
    let len = block[start..].find("```").expect("closing fence");
    block[start..start + len].to_string()
}

/// Replace `from` (which must occur) with `to`.
fn subst(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in:\n{text}");
    text.replace(from, to)
}

#[test]
fn the_gnu_parallel_recipe_runs_as_documented() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !have_tool("parallel") {
        skip("GNU parallel is not installed (Debian package parallel)");
        return;
    }
    let Some(lab) = Lab::new("p", 3) else { return };
    let server = lab.server();
    // ssh HOST -- COMMAND becomes: enter namespace HOST, run COMMAND with sh.
    // Like sshd, the shim sets SHELL (the login shell): GNU parallel's
    // remote worker runs each job with $SHELL, and with SHELL unset (as in
    // a CI job's environment) it runs nothing and still exits 0.
    let shim = lab.dir.join("netns-ssh");
    std::fs::write(
        &shim,
        "#!/bin/sh\nhost=$1; shift\n[ \"$1\" = -- ] && shift\nexport SHELL=/bin/sh\nexec ip netns exec \"$host\" sh -c \"$*\"\n",
    )
    .unwrap();
    run(
        Command::new("chmod").arg("+x").arg(&shim),
        "chmod the ssh shim",
    );
    let mut script = recipe("parallel");
    script = subst(&script, "load1,load2,load3", &lab.load_ns.join(","));
    script = subst(
        &script,
        "okring-server:8080",
        &format!("okring-server:{}", server.addr().port()),
    );
    script = subst(&script, "-d 60s", &format!("-d {WINDOW} --warmup 0"));
    script = subst(&script, "--rate 50000", &format!("--rate {RATE}"));
    script = subst(&script, "+15 seconds", "+3 seconds");
    // The documented tail budget is for load machines of their own; here a
    // server and three generators share two cores, so the gate is widened
    // (errors>0 is still judged).
    script = subst(&script, "p99>5ms", "p99>1s");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&lab.dir)
        .env("PARALLEL_SSH", &shim)
        .env("PATH", Lab::path_with_okring())
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "the GNU parallel recipe failed ({}):\nstdout:\n{}\nstderr:\n{}\nwhat the jobs left:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        dump_dir(&lab.dir)
    );
    let (_, server_err) = server.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_whole_run(&stdout, &stderr, &server_err, 3);
    for i in 1..=3 {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(lab.dir.join(format!("shard-{i}"))).unwrap())
                .expect("each shard's stdout is its JSON result");
        assert_eq!(doc["results"]["shard"], format!("{i}/3"));
    }
}

#[test]
fn the_kubernetes_indexed_job_runs_one_shard_per_index() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/okring-load-job.yaml"
    );
    // The manifest as JSON (PyYAML, Debian package python3-yaml).
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            manifest,
        ])
        .output();
    let job: serde_json::Value = match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).expect("YAML as JSON"),
        _ => {
            skip("python3 with PyYAML (python3-yaml) is needed to read the manifest");
            return;
        }
    };
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no env {k}"))
    };
    let shards: u64 = var("SHARDS").parse().unwrap();
    assert_eq!(job["spec"]["completions"], shards, "completions = SHARDS");
    assert_eq!(job["spec"]["parallelism"], shards, "parallelism = SHARDS");
    assert_eq!(container["command"], serde_json::json!(["sh", "-c"]));
    let script = container["args"][0].as_str().expect("args[0]").to_string();
    let Some(lab) = Lab::new("k", shards as usize) else {
        return;
    };
    let server = lab.server();
    let target = subst(
        &var("TARGET"),
        ":8080/",
        &format!(":{}/", server.addr().port()),
    );
    let at = utc_in(3);
    let children: Vec<_> = lab
        .load_ns
        .iter()
        .enumerate()
        .map(|(k, ns)| {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "sh", "-c", &script]);
            for (n, v) in &env {
                c.env(n, v);
            }
            c.env("TARGET", &target)
                .env("DURATION", WINDOW)
                .env("WARMUP", "0")
                .env("RATE", RATE.to_string())
                .env("START_AT", &at)
                .env("JOB_COMPLETION_INDEX", k.to_string())
                .env("PATH", Lab::path_with_okring())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a pod's command")
        })
        .collect();
    let mut files = Vec::new();
    for (k, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().expect("wait for a pod's command");
        assert!(
            out.status.success(),
            "index {k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("a pod's log is its JSON result");
        assert_eq!(doc["results"]["shard"], format!("{}/{shards}", k + 1));
        let name = format!("shard-{k}.json");
        std::fs::write(lab.dir.join(&name), &out.stdout).unwrap();
        files.push(name);
    }
    let (_, server_err) = server.stop();
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    let (out, err) = report(&lab.dir, &names);
    assert_whole_run(&out, &err, &server_err, shards as usize);
}

/// RFC 3339 UTC, `secs` from now, whole seconds (as `date -u -d '+N
/// seconds' +%Y-%m-%dT%H:%M:%SZ` writes it).
fn utc_in(secs: u64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("+{secs} seconds"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
