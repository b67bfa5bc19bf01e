//! Starting, watching and stopping the server under test: `okring serve` in
//! any of its modes, or nginx as a peer, each as a child process pinned to
//! the server CPUs before it executes (sched_setaffinity(2) in `pre_exec`,
//! so every thread and process it creates inherits the set).
//!
//! It owns the child and, for nginx, a temporary prefix directory (config,
//! pid file, error log, temp paths) removed when the [`Server`] is dropped.
//! It does not generate load or read CPU time.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use crate::spawn::{find_on_path, parse_listening};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to say `listening on` (or, for nginx, to
/// accept a connection), ms.
pub const READY_TIMEOUT_MS: u64 = 15_000;
/// How long a server may take to exit after SIGTERM before SIGKILL, ms.
pub const STOP_TIMEOUT_MS: u64 = 15_000;

/// What to run as the server of one bench run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// `okring serve` with these arguments after `serve` (mode and loop
    /// selection, e.g. `--mode prefork --worker-loop epoll`).
    Okring { args: Vec<String> },
    /// nginx at this path, `worker_processes` = number of server CPUs.
    Nginx { bin: PathBuf },
}

/// A running server child.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its `/metrics` endpoint (okring's uring, epoll and prefork modes;
    /// fork and sequential have none, nor does nginx).
    pub metrics: Option<SocketAddr>,
    /// nginx's prefix directory, removed on drop.
    tmp: Option<PathBuf>,
}

impl Server {
    /// Pid of the child (for okring: the server; for nginx: the master).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Start `kind` pinned to `cpus`. okring's service-time histogram goes to
    /// `hist_out`; its stderr is copied to `log`. Returns once the server
    /// accepts connections. Errors: the spawn fails, the child exits before it
    /// is ready (the message quotes its last stderr line) or is not ready in
    /// [`READY_TIMEOUT_MS`].
    pub fn start(
        kind: &ServerKind,
        cpus: &[usize],
        hist_out: &Path,
        log: &Path,
    ) -> Result<Server, String> {
        match kind {
            ServerKind::Okring { args } => start_okring(args, cpus, hist_out, log),
            ServerKind::Nginx { bin } => start_nginx(bin, cpus, log),
        }
    }

    /// SIGTERM, then wait for exit (SIGKILL after [`STOP_TIMEOUT_MS`]).
    /// Returns the exit status text (`exit 0`, `signal 9`, ...).
    pub fn stop(mut self) -> Result<String, String> {
        let pid = self.child.id() as crate::sys::Pid;
        // `pid` is our own child, not yet reaped, so the id is still its own.
        crate::sys::kill(pid, crate::sys::SIGTERM);
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return Ok(status_text(st)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let st = self.child.wait().map_err(|e| format!("waitpid: {e}"))?;
                    return Err(format!(
                        "server did not exit within {STOP_TIMEOUT_MS} ms of SIGTERM; killed ({})",
                        status_text(st)
                    ));
                }
                Err(e) => return Err(format!("waitpid: {e}")),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(dir) = self.tmp.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn status_text(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

/// Whether `okring serve ARGS` has a `/metrics` endpoint (not fork or
/// sequential mode).
fn has_metrics(args: &[String]) -> bool {
    !args
        .windows(2)
        .any(|w| w[0] == "--mode" && matches!(w[1].as_str(), "fork" | "sequential"))
}

/// The address in okring's `okring: metrics on http://ADDR/metrics` line.
pub fn parse_metrics(line: &str) -> Option<SocketAddr> {
    line.split("metrics on http://")
        .nth(1)?
        .trim()
        .strip_suffix("/metrics")?
        .parse()
        .ok()
}

fn start_okring(
    args: &[String],
    cpus: &[usize],
    hist_out: &Path,
    log: &Path,
) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the okring binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .args(args)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--threads",
            &cpus.len().to_string(),
            "--pin",
        ])
        .arg("--hist-out")
        .arg(hist_out)
        .args(if has_metrics(args) {
            &["--metrics", "127.0.0.1:0"][..]
        } else {
            &[]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::sys::pin_child(&mut cmd, cpus);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start okring serve: {e}"))?;
    let stderr = child.stderr.take().ok_or("okring serve: no stderr pipe")?;
    let mut logf =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let (tx, rx) = mpsc::channel::<Result<(SocketAddr, Option<SocketAddr>), String>>();
    // The reader keeps draining stderr for the child's whole life so that the
    // child never blocks on a full pipe; every line goes to the log file.
    std::thread::Builder::new()
        .name("okring-bench-stderr".into())
        .spawn(move || {
            let mut last = String::new();
            let mut sent = false;
            let mut metrics = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(logf, "{line}");
                if !sent {
                    // `metrics on` comes before `listening on`.
                    metrics = metrics.or_else(|| parse_metrics(&line));
                    if let Some(a) = parse_listening(&line) {
                        let _ = tx.send(Ok((a, metrics)));
                        sent = true;
                    }
                }
                last = line;
            }
            if !sent {
                let _ = tx.send(Err(last));
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    match rx.recv_timeout(Duration::from_millis(READY_TIMEOUT_MS)) {
        Ok(Ok((addr, metrics))) => Ok(Server {
            child,
            addr,
            metrics,
            tmp: None,
        }),
        Ok(Err(last)) => {
            let st = child.wait().map(status_text).unwrap_or_default();
            let why = last.trim().trim_start_matches("okring: error: ");
            Err(format!(
                "okring serve {} exited before listening ({st}): {why}",
                args.join(" ")
            ))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "okring serve {} did not print `listening on` within {READY_TIMEOUT_MS} ms",
                args.join(" ")
            ))
        }
    }
}

/// nginx on PATH or at /usr/sbin/nginx.
pub fn find_nginx() -> Option<PathBuf> {
    find_on_path("nginx").or_else(|| {
        let p = PathBuf::from("/usr/sbin/nginx");
        p.is_file().then_some(p)
    })
}

/// The nginx configuration okring benches against: one worker per server
/// CPU, keep-alive for the whole run, no logging, `return 200 'OK'`, every
/// path under the temporary prefix `dir`.
pub fn nginx_config(dir: &Path, workers: usize, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{\n    worker_connections 65536;\n}}\n\
         http {{\n    access_log off;\n    keepalive_requests 1000000;\n    keepalive_timeout 75s;\n\
         \x20   client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n    default_type text/plain;\n\
         \x20   server {{\n        listen 127.0.0.1:{port} reuseport;\n\
         \x20       location / {{\n            return 200 'OK';\n        }}\n    }}\n}}\n"
    )
}

fn start_nginx(bin: &Path, cpus: &[usize], log: &Path) -> Result<Server, String> {
    // A free port: bind port 0, note it, release it for nginx.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .port();
    let dir =
        std::env::temp_dir().join(format!("okring-bench-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_config(&dir, cpus.len(), port))
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let logf =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(logf));
    crate::sys::pin_child(&mut cmd, cpus);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Server {
        child,
        addr,
        metrics: None,
        tmp: Some(dir.clone()),
    };
    let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            let err = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            let last = err.lines().last().unwrap_or("").to_string();
            return Err(format!(
                "nginx exited before listening ({}): {last}",
                status_text(st)
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(server);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nginx did not accept on {addr} within {READY_TIMEOUT_MS} ms"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_metrics_address_and_which_modes_have_one() {
        assert_eq!(
            parse_metrics("okring: metrics on http://127.0.0.1:4242/metrics"),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(parse_metrics("okring: listening on 127.0.0.1:1"), None);
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_metrics(&args(&["--mode", "uring"])));
        assert!(has_metrics(&args(&[
            "--mode",
            "prefork",
            "--worker-loop",
            "epoll"
        ])));
        assert!(!has_metrics(&args(&["--mode", "fork"])));
        assert!(!has_metrics(&args(&["--mode", "sequential"])));
    }

    #[test]
    fn finds_the_listening_address() {
        assert_eq!(
            parse_listening("okring: uring mode, 1 worker, listening on 127.0.0.1:41234"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(
            parse_listening("listening on [::1]:8080, pinned"),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(parse_listening("starting"), None);
    }

    #[test]
    fn nginx_config_has_the_fixed_response() {
        let c = nginx_config(Path::new("/tmp/x"), 2, 4242);
        assert!(c.contains("worker_processes 2;"));
        assert!(c.contains("listen 127.0.0.1:4242"));
        assert!(c.contains("return 200 'OK';"));
        assert!(c.contains("keepalive_requests 1000000;"));
        assert!(c.contains("pid /tmp/x/nginx.pid;"));
    }
}
