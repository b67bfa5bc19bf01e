//! `okring trace`'s arguments and front door: [`crate::trace::run`] on one
//! server mode, the report on stdout.

use std::path::PathBuf;

use clap::ValueEnum;

use super::ModeArg;
use crate::error::Error;

/// Arguments of `okring trace`.
#[derive(clap::Args, Debug, Clone)]
pub struct TraceArgs {
    /// The server mode to trace.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// Requests to send in all.
    #[arg(long, default_value_t = 3)]
    pub requests: u64,
    /// Connections the requests are spread over, all sending at once
    /// [default: the requests, at most 16].
    #[arg(long)]
    pub connections: Option<usize>,
    /// A new connection per request (`Connection: close`).
    #[arg(long)]
    pub close: bool,
    /// Requests pipelined per write on each connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: u32,
    /// Connections printed in full; the rest are counted in the summary.
    #[arg(long, default_value_t = 3)]
    pub show: usize,
    /// Keep strace's own log here [default: a temporary file, removed].
    #[arg(long, value_name = "FILE")]
    pub strace_log: Option<PathBuf>,
}

/// `okring trace`. Errors: strace missing or unable to trace (exit 1),
/// bad arguments (exit 2), the server or a request failing (exit 1).
pub fn run(args: &TraceArgs) -> Result<(), Error> {
    if args.requests == 0 {
        return Err(Error::Usage(
            "--requests 0: send at least one request".into(),
        ));
    }
    if args.pipeline == 0 {
        return Err(Error::Usage(
            "--pipeline 0: send at least one request per write".into(),
        ));
    }
    if args.connections == Some(0) {
        return Err(Error::Usage(
            "--connections 0: use at least one connection".into(),
        ));
    }
    if args.close && args.pipeline > 1 {
        return Err(Error::Usage(format!(
            "--close and --pipeline {} cannot be combined: a connection that closes carries one request; drop one",
            args.pipeline
        )));
    }
    let connections = args
        .connections
        .unwrap_or(args.requests.min(16) as usize)
        .clamp(1, args.requests as usize);
    let mode = args
        .mode
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let serve_args = crate::trace::run::with_one_worker(&["--mode".to_string(), mode.clone()]);
    let spec = crate::trace::run::TraceSpec {
        serve_args,
        requests: args.requests,
        connections,
        close: args.close,
        pipeline: args.pipeline,
    };
    let log = args.strace_log.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("okring-trace-{}.strace", std::process::id()))
    });
    let t =
        crate::trace::run::run(&spec, &log, args.strace_log.is_some()).map_err(Error::Failed)?;
    print!(
        "{}",
        crate::trace::run::render(&mode, &spec, args.show, &t.grouped)
    );
    Ok(())
}
