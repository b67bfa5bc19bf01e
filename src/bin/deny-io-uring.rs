//! `deny-io-uring [--errno EPERM|ENOSYS] -- COMMAND [ARGS...]`: run COMMAND
//! with io_uring_setup(2) denied by a seccomp filter, as inside a Docker
//! container with the default seccomp profile. Used by okring's tests to
//! check that `--mode auto` falls back to epoll and says why, and that
//! `--mode uring` exits non-zero with a one-line cause; useful by hand for
//! the same check.

use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut errno = okring::sys::EPERM;
    while let Some(a) = args.peek() {
        match a.as_str() {
            "--errno" => {
                args.next();
                errno = match args.next().as_deref() {
                    Some("EPERM") => okring::sys::EPERM,
                    Some("ENOSYS") => okring::sys::ENOSYS,
                    other => usage(&format!("--errno {other:?}: expected EPERM or ENOSYS")),
                };
            }
            "--" => {
                args.next();
                break;
            }
            _ => break,
        }
    }
    let Some(cmd) = args.next() else {
        usage("no COMMAND given")
    };
    if let Err(e) = okring::sys::deny_io_uring_setup(errno) {
        eprintln!("deny-io-uring: cannot install the seccomp filter: {e}");
        exit(1);
    }
    let e = Command::new(&cmd).args(args).exec();
    eprintln!("deny-io-uring: cannot run {cmd}: {e}");
    exit(127);
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "deny-io-uring: {msg}\nusage: deny-io-uring [--errno EPERM|ENOSYS] -- COMMAND [ARGS...]"
    );
    exit(2);
}
