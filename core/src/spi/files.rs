//! Helpers for engines that keep a store in one local file.

use std::path::Path;

use crate::error::{Error, Result};
use crate::spi::io_error;

/// Whether [`prepare_store_file`] created the file or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFile {
    /// A new, empty file (owner read/write only) was created: the engine initialises it.
    Created,
    /// The file existed, is not empty, and can be opened for writing: the engine must check
    /// that it is one of its stores before writing to it.
    Existing,
}

/// Prepares `path` for an engine to open, without changing an existing file's bytes.
///
/// A directory or an empty file is [`Error::NotAStore`]; a file that cannot be opened for
/// writing (read-only mount, permissions) is [`Error::ReadOnly`]. A missing file is created
/// with mode 0600, with its parent directories.
pub fn prepare_store_file(path: &Path, engine: &'static str) -> Result<StoreFile> {
    let io = |what: &Path, e: std::io::Error| io_error(engine, &what.display().to_string(), e);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::not_a_store(format!(
                "{} is a directory",
                path.display()
            )));
        }
        Ok(meta) if meta.len() == 0 => {
            return Err(Error::not_a_store(format!(
                "{} is an empty file",
                path.display()
            )));
        }
        Ok(_) => {
            // Opening for writing neither truncates nor writes; it tells a read-only file or
            // mount apart before the engine tries (and fails in its own words).
            return std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map(|_| StoreFile::Existing)
                .map_err(|e| io(path, e));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path, e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(StoreFile::Created),
        // Another opener won the race: the file exists now.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(StoreFile::Existing),
        Err(e) => Err(io(path, e)),
    }
}
