//! okring's entry point: parse the command line, dispatch, map errors to an
//! exit code. Everything else lives in the library.

use clap::Parser;
use okring::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(|cfg| okring::server::serve(&cfg)),
        Command::Load(args) => okring::load::main(&args),
        Command::Bench(args) => okring::bench::main(&args),
        Command::Report(args) => okring::report::main(&args),
    };
    if let Err(msg) = result {
        okring::say!("okring: error: {msg}");
        std::process::exit(1);
    }
}
