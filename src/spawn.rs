//! Starting okring and the tools it drives as child processes: finding an
//! executable on `$PATH`, and reading the address from okring serve's
//! `listening on` line. Shared by the bench harness and `okring trace`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The address in a `listening on <ip>:<port>` line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let word = rest
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .next()?;
    word.parse().ok()
}

/// An executable named `name` in a directory of `$PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
