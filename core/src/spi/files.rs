//! Helpers for engines that keep a store in one local file.
//!
//! A new store is built whole under a temporary name in the target's directory, synced, and
//! only then linked into place: a crash at any moment leaves the path holding either nothing
//! or a complete empty store, never a half-initialised file that no engine can open.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::spi::io_error;

/// Whether [`create_or_find_store`] created the store or found a file there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFile {
    /// A new store was built and moved into place.
    Created,
    /// The file existed, is not empty, and can be opened for writing: the engine must check
    /// that it is one of its stores before writing to it.
    Existing,
}

/// The marker in the names of stores under construction: `.<file name><MARKER><pid>-<n>`.
const MARKER: &str = ".eventlite-new-";

/// Finds the file at `path`, or creates a new store there atomically.
///
/// An existing path is checked without changing a byte: a directory or an empty file is
/// [`Error::NotAStore`]; a file that cannot be opened for writing (read-only mount,
/// permissions) is [`Error::ReadOnly`]. A missing path gets its parent directories, then
/// `build` is called with a fresh empty file (mode 0600) in the same directory and must turn
/// it into a complete, closed store (any side files it leaves, such as a drained `-wal`, are
/// removed). That file is synced and hard-linked to `path`, which never replaces a file: if
/// another opener created the store first, its store is kept and this returns
/// [`StoreFile::Existing`]. The directory is synced so that the new name survives a crash.
///
/// Temporary files left by a creator that was killed are removed by a later open once their
/// process is gone and they are [`ABANDONED_AFTER`] old (checked on Linux; elsewhere they
/// stay, named `.<file name>.eventlite-new-*`).
pub fn create_or_find_store(
    path: &Path,
    engine: &'static str,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<StoreFile> {
    let io = |what: &Path, e: std::io::Error| io_error(engine, &what.display().to_string(), e);
    let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    let prefix = path
        .file_name()
        .map(|name| format!(".{}{MARKER}", name.to_string_lossy()));
    if let Some(found) = existing(path, engine)? {
        // A creator killed between linking its store and removing the temporary name
        // leaves that name behind.
        if let Some(prefix) = &prefix {
            remove_abandoned(&parent, prefix);
        }
        return Ok(found);
    }
    let prefix = prefix
        .ok_or_else(|| Error::InvalidArgument(format!("{} names no file", path.display())))?;
    std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
    remove_abandoned(&parent, &prefix);
    let temp = unique_temp(&parent, &prefix).map_err(|e| io(&parent, e))?;
    let outcome = build(&temp)
        .and_then(|()| sync_file(&temp).map_err(|e| io(&temp, e)))
        .and_then(|()| link_into_place(&temp, path).map_err(|e| io(path, e)));
    remove_with_side_files(&temp);
    let created = outcome?;
    if !created {
        // Another opener's store got there first; it is checked like any existing file.
        return existing(path, engine)?.ok_or_else(|| {
            Error::unavailable(format!("{} vanished while it was opened", path.display()))
        });
    }
    // The link is a directory entry: sync the directory so that it outlives a crash. A
    // filesystem that cannot sync directories has nothing to sync.
    if let Ok(dir) = std::fs::File::open(&parent) {
        let _ = dir.sync_all();
    }
    Ok(StoreFile::Created)
}

/// `Some` when something is at `path` (a usable file, or an error saying why not).
fn existing(path: &Path, engine: &'static str) -> Result<Option<StoreFile>> {
    let io = |e: std::io::Error| io_error(engine, &path.display().to_string(), e);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(Error::not_a_store(format!(
            "{} is a directory",
            path.display()
        ))),
        Ok(meta) if meta.len() == 0 => Err(Error::not_a_store(format!(
            "{} is an empty file",
            path.display()
        ))),
        // Opening for writing neither truncates nor writes; it tells a read-only file or
        // mount apart before the engine tries (and fails in its own words).
        Ok(_) => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(|_| Some(StoreFile::Existing))
            .map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e)),
    }
}

fn unique_temp(dir: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{prefix}{}-{n}", std::process::id()));
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        match open.open(&temp) {
            Ok(_) => return Ok(temp),
            // Left by an earlier process with the same pid: take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .sync_all()
}

/// Links `temp` to `path` unless `path` exists; `Ok(false)` when it does.
fn link_into_place(temp: &Path, path: &Path) -> std::io::Result<bool> {
    match std::fs::hard_link(temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // A filesystem without hard links. A rename would replace a file that appeared in the
        // meantime; copying into a file created exclusively never does, but is not atomic: a
        // crash during the copy can leave a partial file there.
        Err(_) => {
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
            let mut target = match open.open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(e),
            };
            std::io::copy(&mut std::fs::File::open(temp)?, &mut target)?;
            target.sync_all()?;
            Ok(true)
        }
    }
}

fn remove_with_side_files(temp: &Path) {
    let _ = std::fs::remove_file(temp);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = temp.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
}

/// How old a temporary store must be before it counts as abandoned.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary stores of creators that are no longer running.
fn remove_abandoned(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        // A creator takes milliseconds. The age also guards a creator in another pid
        // namespace (a container sharing the directory), whose pid means nothing here.
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= ABANDONED_AFTER);
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if old && pid.is_some_and(process_is_gone) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(target_os = "linux")]
fn process_is_gone(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_is_gone(_pid: u32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_new_store_appears_whole_and_leaves_no_temporary_file() {
        let dir = tempfile_dir();
        let path = dir.join("sub").join("s.db");
        let found = create_or_find_store(&path, "test", |tmp| {
            std::fs::write(tmp, b"store").map_err(|e| io_error("test", "w", e))
        })
        .unwrap();
        assert_eq!(found, StoreFile::Created);
        assert_eq!(std::fs::read(&path).unwrap(), b"store");
        assert_eq!(names(&dir.join("sub")), ["s.db"]);
        // The second time the file is found, and `build` is not called.
        let again = create_or_find_store(&path, "test", |_| panic!("built twice")).unwrap();
        assert_eq!(again, StoreFile::Existing);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_build_leaves_nothing() {
        let dir = tempfile_dir();
        let path = dir.join("s.db");
        let err = create_or_find_store(&path, "test", |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::corrupt("build failed"))
        })
        .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_created_meanwhile_is_kept() {
        let dir = tempfile_dir();
        let path = dir.join("s.db");
        let found = create_or_find_store(&path, "test", |tmp| {
            // Another opener wins the race while this one builds.
            std::fs::write(&path, b"theirs").unwrap();
            std::fs::write(tmp, b"mine").map_err(|e| io_error("test", "w", e))
        })
        .unwrap();
        assert_eq!(found, StoreFile::Existing);
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        assert_eq!(names(&dir), ["s.db"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temporary_files_of_dead_creators_are_removed() {
        let dir = tempfile_dir();
        // No process has pid u32::MAX - 1 (Linux pids stop at 2^22).
        let dead = dir.join(format!(".s.db{MARKER}{}-0", u32::MAX - 1));
        let fresh = dir.join(format!(".s.db{MARKER}{}-1", u32::MAX - 1));
        let alive = dir.join(format!(".s.db{MARKER}1-0"));
        let long_ago = std::time::SystemTime::now() - 2 * ABANDONED_AFTER;
        for (file, aged) in [(&dead, true), (&fresh, false), (&alive, true)] {
            let f = std::fs::File::create(file).unwrap();
            if aged {
                f.set_modified(long_ago).unwrap();
            }
        }
        create_or_find_store(&dir.join("s.db"), "test", |tmp| {
            std::fs::write(tmp, b"x").map_err(|e| io_error("test", "w", e))
        })
        .unwrap();
        assert!(!dead.exists());
        assert!(fresh.exists(), "too young to be abandoned");
        assert!(alive.exists(), "pid 1 is running");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_files_and_directories_are_refused_untouched() {
        let dir = tempfile_dir();
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        let err = create_or_find_store(&empty, "test", |_| panic!("built")).unwrap_err();
        assert!(matches!(err, Error::NotAStore { .. }), "{err}");
        let err = create_or_find_store(&dir, "test", |_| panic!("built")).unwrap_err();
        assert!(matches!(err, Error::NotAStore { .. }), "{err}");
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory (core has no tempfile dependency).
    fn tempfile_dir() -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "eventlite-files-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
