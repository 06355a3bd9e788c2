//! Reading the files a command is given.

use std::path::{Path, PathBuf};

/// A file that could not be read: which file, and what it was for. Never
/// its content.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {}: {source}", path.display())]
pub struct ReadError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// The bytes of `path`, which holds `what` ("secret file", "manifest"...).
pub fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, ReadError> {
    std::fs::read(path).map_err(|source| ReadError {
        what,
        path: path.to_owned(),
        source,
    })
}
