//! The load generator (`okring load`). INTERFACE STUB.

/// Arguments of `okring load`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target URL, e.g. http://127.0.0.1:8080/
    pub url: String,
}

/// Run `okring load`; errors are one line naming cause and fix.
pub fn main(_args: &LoadArgs) -> Result<(), String> {
    Err("not built yet".into())
}
