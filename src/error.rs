//! The error every front door returns ([`crate::server::serve`],
//! [`crate::load::run`], [`crate::bench::run`], [`crate::report::merge_files`]
//! and the CLI): a one-line message naming the cause and the fix, and
//! whether the arguments were wrong or the run failed. The exit status is
//! decided here and nowhere else.

use std::fmt;

/// Exit status of a run that did what it was asked.
pub const EXIT_OK: i32 = 0;
/// Exit status of a run that failed: a set-up step, I/O, the target, a
/// server mode's worker.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of arguments that were refused (clap's own parse errors use
/// the same status).
pub const EXIT_USAGE: i32 = 2;
/// Exit status of a run that finished but broke a `--fail-if` budget.
pub const EXIT_GATE_FAILED: i32 = 3;

/// One-line error of a front door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The arguments or the configuration are wrong; nothing ran. Exit 2.
    Usage(String),
    /// The run started and failed, or could not start. Exit 1.
    Failed(String),
    /// The run finished, and broke a `--fail-if` budget. Exit 3.
    GateFailed(String),
}

impl Error {
    /// The process exit status for this error ([`EXIT_USAGE`] or
    /// [`EXIT_FAILED`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Failed(_) => EXIT_FAILED,
            Error::GateFailed(_) => EXIT_GATE_FAILED,
        }
    }

    /// The message, one line.
    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m) | Error::Failed(m) | Error::GateFailed(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

/// A failure message from inside a run (the library's internal `String`
/// errors) is a [`Error::Failed`].
impl From<String> for Error {
    fn from(msg: String) -> Error {
        Error::Failed(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_failure_map_to_distinct_exit_codes() {
        assert_eq!(Error::Usage("--threads 0".into()).exit_code(), EXIT_USAGE);
        let e: Error = String::from("bind: address in use").into();
        assert_eq!(e.exit_code(), EXIT_FAILED);
        assert_eq!(e.to_string(), "bind: address in use");
        assert_ne!(EXIT_USAGE, EXIT_FAILED);
        assert_ne!(EXIT_OK, EXIT_FAILED);
    }
}
