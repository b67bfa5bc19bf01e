//! okring: a Linux HTTP/1.1 server that answers every request with one fixed
//! `200 OK`, built to measure what each server architecture costs.
//!
//! Layout:
//! - [`http`]: request framing and response bytes — pure, no I/O, shared by
//!   every mode.
//! - [`stats`]: HdrHistograms, counters, merging and export formats.
//! - [`sys`]: the kernel edge: every `libc::` call and every `unsafe`
//!   block, except the SQE pushes of the two io_uring drivers
//!   (`server::uring`, `load::uring`), whose soundness rests on the
//!   buffers they own (`ci/lint.sh` enforces this).
//! - [`server`]: the serving modes, one file each, behind one entry point.
//! - [`load`]: the load generator (`okring load`).
//! - [`bench`]: the side-by-side harness (`okring bench`): report and plots.
//! - [`report`]: `okring report`, merging histograms of several runs.
//! - [`plot`]: the SVG plots `bench` and `report` share.
//! - [`html`]: the self-contained report.html of `bench` and `report`.
//! - [`spawn`]: finding executables and okring serve's `listening on` line.
//! - [`trace`]: `okring trace`'s reading of strace output (pure).
//! - [`config`]: the resolved configuration the library takes (no clap).
//! - [`error`]: the one error type of the front doors and the exit status.
//! - [`gate`]: `--fail-if` budgets, judged against a run's figures.
//! - [`cli`]: every clap struct, their resolution into configuration, and
//!   the front doors that write the files a user named; imported by
//!   `main.rs` only.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod bench;
/// `eprintln!` in one write(2): Rust's stderr is unbuffered, so
/// `eprintln!` can split a line into several writes, and a script reading
/// the `listening on` line may see half of it. Status lines go through
/// this instead.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

pub mod cli;
pub mod config;
pub mod error;
pub mod gate;
pub mod html;
pub mod http;
pub mod load;
pub mod plot;
pub mod report;
pub mod server;
pub mod spawn;
pub mod stats;
pub mod sys;
pub mod trace;
