//! Every shell example in README.md and docs/*.md, run as written.
//!
//! The ```sh blocks are read in order (README.md, then docs/*.md sorted) and
//! run in one scratch directory, so a file one example writes (a `.hlog`, a
//! `--json` result) is there for the next one, as it is for a reader who
//! follows along. What is changed, and nothing else:
//! - ports: `okring serve` binds port 0 (the host as written); 8080 and 9100
//!   in the block's later commands become the ports it printed. A block that
//!   talks to 8080/9100 without serving gets its own
//!   `okring serve --bind 127.0.0.1:0 --metrics 127.0.0.1:0`;
//! - length: `okring load` gets `--duration 1s` appended and `okring bench`
//!   `--duration 300ms --warmup 100ms --repeat 1` (the last occurrence of a
//!   flag wins), so the whole set runs in about a minute;
//! - `./target/release/okring` and `cargo run --release --` become the
//!   binary under test.
//!
//! A `# line` right after a command is output it promises: it must appear
//! in what the command printed (digit runs and `...` match anything).
//! A command exits 0, or 3 when it carries `--fail-if` (a broken budget is
//! the documented outcome on a loaded machine). A block behind a
//! `<!-- recipe: NAME -->` marker is a multi-machine recipe run by another
//! test, which must name the marker. Every other command either runs here
//! or is in [`NOT_RUN_HERE`] with the reason and a check that the reason
//! holds; anything else fails the test, so a new example cannot go
//! unchecked.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::signal;

const BIN: &str = env!("CARGO_BIN_EXE_okring");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Longest any one documented command may take, s (`timeout` kills it).
const COMMAND_LIMIT_S: u32 = 300;

/// A check that a reason for not running a command still holds.
type Check = fn() -> Result<(), String>;

/// Commands the docs show that this test does not run: (command, why,
/// a check that the why is true).
const NOT_RUN_HERE: &[(&str, &str, Check)] = &[
    (
        "cargo test --release",
        "the test command: ci/test.sh runs it, and this test is part of it",
        || file_has("ci/test.sh", "cargo test --release"),
    ),
    (
        "cargo build --release",
        "`cargo test --release` built the binary this test runs",
        || {
            BIN.contains("/target/release/")
                .then_some(())
                .ok_or_else(|| format!("{BIN} is not a release build"))
        },
    ),
    (
        "ci/kernels.sh all",
        ".ci/run runs it after the tests",
        || file_has(".ci/run", "ci/kernels.sh all"),
    ),
    (
        "ci/kernels.sh native",
        "`ci/kernels.sh all` includes native",
        || file_has("ci/kernels.sh", "debian-6.1 and native"),
    ),
    (
        "ci/kernels.sh /boot/vmlinuz-6.8.0-xyz",
        "a placeholder for the reader's own image; `all` boots two images by path",
        || file_has("ci/kernels.sh", "ci/kernels/bzImage-5.19"),
    ),
    (
        "cargo install cargo-fuzz",
        "fuzzing needs cargo-fuzz and a sanitizer build, ten minutes a target; CI does not fuzz",
        || file_has("docs/robustness.md", "cargo fuzz run framing"),
    ),
    (
        "cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run framing -- -max_total_time=600",
        "as above",
        || file_has("fuzz/Cargo.toml", "framing"),
    ),
    (
        "cd fuzz && mkdir -p corpus/response && RUSTC_BOOTSTRAP=1 cargo fuzz run response corpus/response seeds/response -- -dict=response.dict -max_total_time=600",
        "as above",
        || file_has("fuzz/Cargo.toml", "response"),
    ),
];

fn file_has(rel: &str, needle: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(rel))
        .map_err(|e| format!("read {rel}: {e}"))?;
    text.contains(needle)
        .then_some(())
        .ok_or_else(|| format!("{rel} no longer contains {needle:?}"))
}

/// One ```sh block.
struct Block {
    /// `file:line` of the opening fence.
    at: String,
    /// Commands (continuation lines joined), each with the output lines it
    /// promises.
    commands: Vec<(String, Vec<String>)>,
    /// A `<!-- recipe: NAME (run by tests/FILE.rs) -->` marker above the
    /// fence: (NAME, tests/FILE.rs).
    recipe: Option<(String, String)>,
}

fn blocks(rel: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```sh" {
            i += 1;
            continue;
        }
        let recipe = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().strip_prefix("<!-- recipe: "))
            .map(|l| {
                let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
                let by = rest
                    .strip_prefix("(run by ")
                    .and_then(|r| r.strip_suffix(") -->"))
                    .unwrap_or_else(|| {
                        panic!("{rel}:{i}: write `<!-- recipe: NAME (run by tests/FILE.rs) -->`")
                    });
                (name.to_string(), by.to_string())
            });
        let at = format!("{rel}:{}", i + 1);
        let mut commands: Vec<(String, Vec<String>)> = Vec::new();
        let mut pending = String::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            let line = lines[i].trim();
            i += 1;
            if let Some(said) = line.strip_prefix("# ") {
                let (_, promised) = commands
                    .last_mut()
                    .unwrap_or_else(|| panic!("{at}: output line before any command"));
                promised.push(said.to_string());
                continue;
            }
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head.trim_end());
                pending.push(' ');
                continue;
            }
            pending.push_str(strip_comment(line));
            let cmd = std::mem::take(&mut pending).trim().to_string();
            if !cmd.is_empty() {
                commands.push((cmd, Vec::new()));
            }
        }
        i += 1;
        out.push(Block {
            at,
            commands,
            recipe,
        });
    }
    out
}

/// A trailing `   # remark` (two or more spaces before the `#`).
fn strip_comment(line: &str) -> &str {
    match line.find("  #") {
        Some(at) => line[..at].trim_end(),
        None => line,
    }
}

/// Whether `text` matches `pattern`, where a digit run in the pattern
/// matches any digit run and `...` matches anything.
fn promise_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => true, // a prefix of the line is enough
            Some('.') if p.starts_with(&['.', '.', '.']) => {
                (0..=t.len()).any(|k| go(&p[3..], &t[k..]))
            }
            Some(c) if c.is_ascii_digit() => {
                let pd = p.iter().take_while(|c| c.is_ascii_digit()).count();
                let td = t.iter().take_while(|c| c.is_ascii_digit()).count();
                td > 0 && go(&p[pd..], &t[td..])
            }
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    text.lines().any(|l| {
        let t: Vec<char> = l.chars().collect();
        (0..t.len()).any(|k| go(&p, &t[k..]))
    })
}

/// `okring serve` as the docs wrote it, in the background.
struct Background {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
    metrics_port: Option<u16>,
}

impl Background {
    fn start(cmd: &str, cwd: &Path, path_env: &str) -> Background {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .current_dir(cwd)
            .env("PATH", path_env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bash");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = crossbeam_channel::bounded::<u16>(1);
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[serve] {line}");
                    let port = line
                        .split("listening on ")
                        .nth(1)
                        .and_then(|rest| rest.rsplit(':').next()?.parse::<u16>().ok());
                    // Keep the line before announcing the port: the reader
                    // of `port` checks promises against `lines` at once.
                    lines.lock().unwrap().push(line);
                    if let Some(port) = port {
                        let _ = tx.try_send(port);
                    }
                }
            });
        }
        let port = rx
            .recv_timeout(Duration::from_millis(common::START_TIMEOUT_MS))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "`{cmd}` did not start:\n{}",
                    lines.lock().unwrap().join("\n")
                )
            });
        let metrics_port = lines.lock().unwrap().iter().find_map(|l| {
            let url = l.split("metrics on http://").nth(1)?;
            url.trim_end_matches("/metrics")
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        });
        Background {
            child,
            lines,
            port,
            metrics_port,
        }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit status must be 0 (the drain writes `--hlog`).
    fn stop(&mut self, cmd: &str) {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_millis(common::STOP_TIMEOUT_MS);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "`{cmd}` exited {st}:\n{}", self.output());
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("`{cmd}` ignored SIGTERM:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Background {
    /// A failed assertion must not leave a server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The documented command with the binary under test spelled `okring`.
fn as_okring(cmd: &str) -> String {
    let cmd = cmd.replace("./target/release/okring ", "okring ");
    match cmd.strip_prefix("cargo run --release -- ") {
        Some(rest) => format!("okring {rest}"),
        None => cmd,
    }
}

/// `--bind HOST:PORT` and `--metrics HOST:PORT` with port 0; without a
/// `--bind`, `--bind 127.0.0.1:0` in place of the default 127.0.0.1:8080.
fn ephemeral_ports(cmd: &str) -> String {
    if !cmd.contains(" --bind ") {
        return ephemeral_ports(&format!("{cmd} --bind 127.0.0.1:0"));
    }
    let mut words: Vec<String> = cmd.split(' ').map(str::to_string).collect();
    for i in 1..words.len() {
        if matches!(words[i - 1].as_str(), "--bind" | "--metrics") {
            if let Some((host, _)) = words[i].rsplit_once(':') {
                words[i] = format!("{host}:0");
            }
        }
    }
    words.join(" ")
}

fn shortened(cmd: &str) -> String {
    if cmd.starts_with("okring load ") && !cmd.contains("--requests") {
        format!("{cmd} --duration 1s")
    } else if cmd.starts_with("okring bench") {
        format!("{cmd} --duration 300ms --warmup 100ms --repeat 1")
    } else {
        cmd.to_string()
    }
}

fn run(cmd: &str, cwd: &Path, path_env: &str) -> (i32, String) {
    let out = Command::new("timeout")
        .arg(COMMAND_LIMIT_S.to_string())
        .args(["bash", "-o", "pipefail", "-c", cmd])
        .current_dir(cwd)
        .env("PATH", path_env)
        .stdin(Stdio::null())
        .output()
        .expect("spawn timeout bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Files an example reads that a reader would have from earlier work:
/// two okring load results for `okring report new.json --baseline old.json`.
fn fixtures(cwd: &Path, path_env: &str) {
    let mut server = Background::start("okring serve --bind 127.0.0.1:0", cwd, path_env);
    for name in ["old.json", "new.json"] {
        let (code, text) = run(
            &format!(
                "okring load http://127.0.0.1:{}/ -c 8 --requests 2000 --json {name}",
                server.port
            ),
            cwd,
            path_env,
        );
        assert_eq!(code, 0, "fixture {name}:\n{text}");
    }
    server.stop("fixture server");
}

#[test]
fn every_documented_command_runs_as_written() {
    let scratch = std::env::temp_dir().join(format!("okring-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let bin_dir = scratch.join("bin");
    let cwd = scratch.join("work");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.join("okring")).unwrap();
    let path_env = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    let mut files = vec!["README.md".to_string()];
    files.extend(
        docs.iter()
            .map(|p| format!("docs/{}", p.file_name().unwrap().to_string_lossy())),
    );

    fixtures(&cwd, &path_env);

    let mut ran = 0;
    for block in files.iter().flat_map(|f| blocks(f)) {
        if let Some((name, by)) = &block.recipe {
            let call = format!("recipe(\"{name}\")");
            file_has(by, &call).unwrap_or_else(|e| {
                panic!(
                    "{}: the `{name}` recipe is said to be run by {by}, but {e}",
                    block.at
                )
            });
            eprintln!("{}: recipe `{name}`, run by {by}", block.at);
            continue;
        }
        let mut server: Option<(Background, String)> = None;
        for (documented, promised) in &block.commands {
            let cmd = as_okring(documented);
            if let Some((_, why, check)) = NOT_RUN_HERE.iter().find(|(c, ..)| *c == cmd) {
                check().unwrap_or_else(|e| {
                    panic!("{}: `{cmd}` not run because {why}, but {e}", block.at)
                });
                eprintln!("{}: not run: `{cmd}`: {why}", block.at);
                continue;
            }
            assert!(
                cmd.starts_with("okring ") || cmd.starts_with("curl "),
                "{}: `{documented}` is neither run by this test nor in NOT_RUN_HERE: \
                 add a way to run it (or a reason it cannot be run, with a check)",
                block.at
            );
            if cmd.starts_with("okring serve") {
                assert!(server.is_none(), "{}: two servers in one block", block.at);
                let bg = Background::start(&ephemeral_ports(&cmd), &cwd, &path_env);
                server = Some((bg, cmd.clone()));
                let (bg, _) = server.as_ref().unwrap();
                for want in promised {
                    let want = want
                        .replace(":8080", &format!(":{}", bg.port))
                        .replace(":9100", &format!(":{}", bg.metrics_port.unwrap_or(0)));
                    assert!(
                        promise_matches(&want, &bg.output()),
                        "{}: `{cmd}` promises `{want}`; it printed:\n{}",
                        block.at,
                        bg.output()
                    );
                }
                ran += 1;
                continue;
            }
            let needs_server = cmd.contains(":8080") || cmd.contains(":9100");
            if needs_server && server.is_none() {
                let spec = "okring serve --bind 127.0.0.1:0 --metrics 127.0.0.1:0".to_string();
                server = Some((Background::start(&spec, &cwd, &path_env), spec));
            }
            let mut cmd = shortened(&cmd);
            if let Some((bg, _)) = &server {
                cmd = cmd.replace(":8080", &format!(":{}", bg.port));
                if let Some(m) = bg.metrics_port {
                    cmd = cmd.replace(":9100", &format!(":{m}"));
                }
            }
            eprintln!("{}: $ {cmd}", block.at);
            let started = Instant::now();
            let (code, text) = run(&cmd, &cwd, &path_env);
            eprintln!("{}: exit {code} after {:.1?}", block.at, started.elapsed());
            let allowed: &[i32] = if cmd.contains("--fail-if") {
                &[0, 3]
            } else {
                &[0]
            };
            assert!(
                allowed.contains(&code),
                "{}: `{cmd}` (documented as `{documented}`) exited {code}:\n{text}",
                block.at
            );
            // In CI every peer the example names is installed (ci/deps.sh):
            // a skipped peer there is an example that did not really run.
            assert!(
                !(common::under_ci() && text.contains(": skipped (apt-get install")),
                "{}: `{cmd}` skipped a peer under CI:\n{text}",
                block.at
            );
            for want in promised {
                assert!(
                    promise_matches(want, &text),
                    "{}: `{cmd}` promises `{want}`; it printed:\n{text}",
                    block.at
                );
            }
            ran += 1;
        }
        if let Some((mut bg, cmd)) = server {
            bg.stop(&cmd);
        }
    }
    assert!(ran >= 20, "only {ran} documented commands ran");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn promised_output_matching() {
    let line =
        "okring: uring mode (multishot recv, CQ 16384), 2 workers, listening on 127.0.0.1:41234";
    assert!(promise_matches(
        "okring: uring mode (...), 8 workers, listening on 127.0.0.1:8080",
        line
    ));
    assert!(promise_matches(
        "okring: uring mode (multishot recv, CQ 16384), 2 workers",
        line
    ));
    assert!(!promise_matches("okring: epoll mode (...)", line));
    assert!(!promise_matches("okring: uring mode (...), workers", line));
    assert_eq!(
        strip_comment("okring bench    # uring vs epoll"),
        "okring bench"
    );
    assert_eq!(
        ephemeral_ports("okring serve --mode uring --bind 0.0.0.0:8080 --metrics 127.0.0.1:9100"),
        "okring serve --mode uring --bind 0.0.0.0:0 --metrics 127.0.0.1:0"
    );
}
