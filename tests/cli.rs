//! The command line's own outputs: shell completions, the man page, and
//! the progress bar `okring load` shows only on a terminal (seen through a
//! pseudo-terminal made by `script`, util-linux).

mod common;

use std::process::{Command, Stdio};

use common::*;

fn okring_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_okring"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run okring");
    assert!(out.status.success(), "okring {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn bash_completion_is_valid_bash_and_knows_the_subcommands_and_flags() {
    let script = okring_stdout(&["completions", "bash"]);
    for word in ["serve", "load", "bench", "report", "--fail-if", "--shard"] {
        assert!(script.contains(word), "{word} missing from the completion");
    }
    let path = std::env::temp_dir().join(format!("okring-compl-{}.bash", std::process::id()));
    std::fs::write(&path, &script).unwrap();
    let st = Command::new("bash").arg("-n").arg(&path).status().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(st.success(), "bash -n rejects the completion script");
    for shell in ["zsh", "fish"] {
        assert!(okring_stdout(&["completions", shell]).contains("okring"));
    }
    let (st, err) = run_okring(&["completions", "tcsh"]);
    assert_eq!(st.code(), Some(2), "{err}");
}

#[test]
fn man_page_has_every_subcommand_and_renders() {
    let page = okring_stdout(&["man"]);
    assert!(
        page.contains(".TH okring 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for section in [
        "OKRING SERVE",
        "OKRING LOAD",
        "OKRING BENCH",
        "OKRING REPORT",
    ] {
        assert!(page.contains(&format!(".SH \"{section}\"")), "no {section}");
    }
    if !have_tool("man") {
        skip("man (man-db) is not installed");
        return;
    }
    let mut child = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn man");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "man: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("--fail-if"), "{text}");
    assert!(text.contains("Exit status: 0 ok"), "{text}");
}

#[test]
fn load_shows_a_progress_bar_on_a_terminal_only() {
    if !have_tool("script") {
        skip("script (util-linux) is not installed");
        return;
    }
    let server = Server::start(&["--mode", "epoll"], &[]);
    let url = format!("http://{}/", server.addr());
    let okring = env!("CARGO_BIN_EXE_okring");
    let cmd = format!("{okring} load {url} -c 2 -d 1s --warmup 0");
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let seen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{seen}");
    assert!(
        seen.contains("% of the window"),
        "no bar on a terminal:\n{seen}"
    );
    assert!(seen.contains("Requests/sec"), "{seen}");
    let piped = Command::new(okring)
        .args(["load", &url, "-c", "2", "-d", "1s", "--warmup", "0"])
        .stdin(Stdio::null())
        .output()
        .expect("okring load");
    assert!(piped.status.success());
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("% of the window"), "a bar on a pipe:\n{err}");
    drop(server.stop());
}
