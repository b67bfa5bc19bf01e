//! The command line: every clap struct, their resolution into the
//! library's configuration ([`crate::config`], [`crate::load::LoadConfig`],
//! [`crate::bench::BenchConfig`]), and the front doors that write the files
//! a user named. The only module that imports clap; nothing in the library
//! imports it.
//!
//! Two layers, as typed → resolved: the `*Args` structs hold what the user
//! typed; their `resolve` checks them and produces the configuration a run
//! takes, or an [`crate::error::Error::Usage`] that names the flag and the fix.
//!
//! Exit status ([`main`]): 0 ok, 1 the run failed, 2 the arguments were
//! refused (by clap or by `resolve`), 3 a `--fail-if` budget was broken.

pub mod bench;
pub mod load;
pub mod report;
pub mod serve;

use clap::{Parser, Subcommand};

pub use serve::{ModeArg, ServeArgs, UringTierArg};

/// Printed under every subcommand's `--help`.
const EXIT_CODES: &str = "Exit status: 0 ok, 1 the run failed, 2 the arguments were refused, 3 a --fail-if budget was broken.";

/// okring — a fixed `200 OK` HTTP/1.1 server for measuring what each server
/// architecture costs, with its own load generator and benchmark harness.
#[derive(Parser, Debug)]
#[command(name = "okring", version, about, long_about = None, propagate_version = true, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the fixed 200 OK response in one of the server modes.
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Generate HTTP load against a URL (closed loop, or open loop at a fixed rate).
    #[command(after_help = EXIT_CODES)]
    Load(load::LoadArgs),
    /// Compare server modes side by side on pinned CPUs: requests/s, latency,
    /// server CPU per request, as ratios to epoll; writes a report and plots.
    #[command(after_help = EXIT_CODES)]
    Bench(bench::BenchArgs),
    /// Merge latency histograms from .hlog files and okring JSON results
    /// (several load machines, several runs) and print percentiles.
    #[command(after_help = EXIT_CODES)]
    Report(report::ReportArgs),
}

/// Parse the process arguments, run the subcommand, print a failure as
/// `okring: error: MESSAGE` on stderr, and return the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Report(args) => report::run(&args),
    };
    match result {
        Ok(()) => crate::error::EXIT_OK,
        Err(e) => {
            crate::say!("okring: error: {e}");
            e.exit_code()
        }
    }
}

/// `PREFIX/<UTC timestamp>`, e.g. `bench-out/20250101T120000Z`: the
/// default output directory of `okring bench` and `okring report`.
pub(crate) fn timestamped_dir(prefix: &str) -> std::path::PathBuf {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    std::path::PathBuf::from(prefix).join(ts.replace([':', '-'], ""))
}
