//! okring's entry point; the command line lives in [`okring::cli`].

fn main() {
    std::process::exit(okring::cli::main());
}
