//! Records the git commit okring is built from (`OKRING_COMMIT`), for the
//! method section of `okring bench`'s report. Outside a git checkout, or
//! without git, it is `unknown`.

use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let commit = Command::new("git")
        .args(["-C", &dir, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=OKRING_COMMIT={commit}");
    // A new commit moves the branch ref (or HEAD itself when detached).
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={dir}/{path}");
    }
}
