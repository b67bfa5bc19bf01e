//! Server modes. STUB.
use crate::cli::ServeConfig;
pub fn serve(_cfg: &ServeConfig) -> Result<(), String> {
    Err("not built".into())
}
