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
pub mod trace;

use clap::{Parser, Subcommand};

pub use serve::{ModeArg, ServeArgs, UringTierArg};

/// Printed under every subcommand's `--help`.
const EXIT_CODES: &str = "Exit status: 0 ok, 1 the run failed, 2 the arguments were refused, 3 a --fail-if budget was broken.";

/// Printed under `okring trace --help` (it has no budgets to break).
const TRACE_EXIT_CODES: &str = "Exit status: 0 ok, 1 the trace failed (strace missing or refused, the server or a request failing), 2 the arguments were refused.";

/// okring — a fixed `200 OK` HTTP/1.1 server for measuring what each server
/// architecture costs, with its own load generator and benchmark harness.
///
/// A flag given twice takes its last value (`args_override_self`), as in
/// curl and wrk, so a wrapper can append overrides to a command line.
#[derive(Parser, Debug)]
#[command(name = "okring", version, about, long_about = None, propagate_version = true, args_override_self = true, after_help = EXIT_CODES)]
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
    /// Run one server mode under strace, send it a few requests, and print
    /// the system calls it made for each, normalised (descriptors and
    /// processes named), with a per-request summary. Needs strace.
    #[command(after_help = TRACE_EXIT_CODES)]
    Trace(trace::TraceArgs),
    /// Print a shell completion script on stdout, e.g.
    /// `okring completions bash > /etc/bash_completion.d/okring`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff, section 1) on stdout: every subcommand and
    /// flag, as `--help` gives them. Read it with `okring man | man -l -`.
    Man,
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
        Command::Trace(args) => trace::run(&args),
        Command::Completions { shell } => completions(shell),
        Command::Man => man_page(),
    };
    match result {
        Ok(()) => crate::error::EXIT_OK,
        Err(e) => {
            crate::say!("okring: error: {e}");
            e.exit_code()
        }
    }
}

/// `okring completions SHELL`: clap_complete's script for `shell`.
fn completions(shell: clap_complete::Shell) -> Result<(), crate::error::Error> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "okring", &mut out);
    write_stdout(&out)
}

/// `okring man`: one roff page, `okring(1)`, with a section per subcommand
/// (clap_mangen renders each command on its own; their bodies are
/// concatenated after the top-level page).
fn man_page() -> Result<(), crate::error::Error> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut out = Vec::new();
    let render = |c: clap::Command, out: &mut Vec<u8>| {
        clap_mangen::Man::new(c)
            .render(out)
            .map_err(|e| format!("rendering the man page: {e}"))
    };
    render(cmd.clone(), &mut out)?;
    // The subcommands are sections of this page, not pages of their own.
    let mut top = String::from_utf8_lossy(&out).into_owned();
    for sub in cmd.get_subcommands() {
        top = top.replace(
            &format!("okring\\-{}(1)", sub.get_name()),
            &format!("okring {}", sub.get_name()),
        );
    }
    let mut out = top.into_bytes();
    for sub in cmd.get_subcommands() {
        if matches!(sub.get_name(), "man" | "completions" | "help") {
            continue;
        }
        let name = format!("okring {}", sub.get_name());
        let mut page = Vec::new();
        render(
            sub.clone()
                .bin_name(name.clone())
                .display_name(name.clone()),
            &mut page,
        )?;
        // Keep the body: drop the subcommand page's own `.TH` title line.
        let text = String::from_utf8_lossy(&page);
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        for line in text
            .lines()
            .filter(|l| !l.starts_with(".TH ") && !l.starts_with(".ie ") && !l.starts_with(".el "))
        {
            // Demote the subcommand's sections to subsections.
            let line = line
                .strip_prefix(".SH ")
                .map_or_else(|| line.to_string(), |rest| format!(".SS {rest}"));
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<(), crate::error::Error> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(bytes)
        .and_then(|()| o.flush())
        .map_err(|e| format!("writing stdout: {e}").into())
}

/// `PREFIX/<UTC timestamp>`, e.g. `bench-out/20250101T120000Z`: the
/// default output directory of `okring bench` and `okring report`.
pub(crate) fn timestamped_dir(prefix: &str) -> std::path::PathBuf {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    std::path::PathBuf::from(prefix).join(ts.replace([':', '-'], ""))
}
