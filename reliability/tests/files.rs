//! Files that are not what they should be: the other engine's format, garbage, empty, a
//! directory, a read-only mount. Typed errors, bytes unchanged, nothing created. And new store
//! files are private to their owner.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, ensure};
use eventlite_core::{Durability, Error, NewEvent};
use eventlite_reliability::{Kind, open};

fn open_err(kind: Kind, path: &Path) -> Result<Error> {
    match open(kind, path, Durability::Immediate) {
        Ok(_) => anyhow::bail!("{} opened {}", kind.name(), path.display()),
        Err(e) => Ok(e.downcast::<Error>()?),
    }
}

fn listing(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

fn make_store(kind: Kind, path: &Path) -> Result<()> {
    let store = open(kind, path, Durability::Immediate)?;
    store.store_bulk((0..50).map(|i| NewEvent::new("e").data(&i)).collect())?;
    Ok(())
}

#[test]
fn wrong_formats_are_refused_untouched() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite_file = dir.path().join("real.sqlite");
    let redb_file = dir.path().join("real.redb");
    make_store(Kind::Sqlite, &sqlite_file)?;
    make_store(Kind::Redb, &redb_file)?;
    let garbage = dir.path().join("garbage");
    std::fs::write(
        &garbage,
        (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )?;
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"")?;
    let subdir = dir.path().join("a-directory");
    std::fs::create_dir(&subdir)?;
    let cases = [
        (Kind::Sqlite, &redb_file),
        (Kind::Redb, &sqlite_file),
        (Kind::Sqlite, &garbage),
        (Kind::Redb, &garbage),
        (Kind::Sqlite, &empty),
        (Kind::Redb, &empty),
        (Kind::Sqlite, &subdir),
        (Kind::Redb, &subdir),
    ];
    let before_listing = listing(dir.path())?;
    for (kind, path) in cases {
        let before = if path.is_file() {
            std::fs::read(path)?
        } else {
            Vec::new()
        };
        let err = open_err(kind, path)?;
        ensure!(
            matches!(err, Error::NotAStore { .. }),
            "{} on {}: {err:?}",
            kind.name(),
            path.display()
        );
        if path.is_file() {
            ensure!(std::fs::read(path)? == before, "{} changed", path.display());
        }
        ensure!(
            listing(dir.path())? == before_listing,
            "a file was created beside {}",
            path.display()
        );
        ensure!(
            listing(&subdir)?.is_empty(),
            "a file was created in the directory"
        );
    }
    Ok(())
}

struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn of(src: &Path) -> Option<ReadOnlyMount> {
        let dst = tempfile::tempdir().ok()?.keep();
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(src)
            .arg(&dst)
            .status();
        if !bind.is_ok_and(|s| s.success()) {
            eventlite_reliability::skipped("cannot bind-mount here (not root, or no permission)");
            return None;
        }
        let m = ReadOnlyMount(dst);
        let ro = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&m.0)
            .status();
        if !ro.is_ok_and(|s| s.success()) {
            eventlite_reliability::skipped("cannot remount read-only here");
            return None;
        }
        Some(m)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn read_only_stores_give_a_typed_error() -> Result<()> {
    for kind in [Kind::Sqlite, Kind::Redb] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(kind.file());
        make_store(kind, &path)?;
        let before = std::fs::read(&path)?;
        let before_listing = listing(dir.path())?;
        let Some(ro) = ReadOnlyMount::of(dir.path()) else {
            return Ok(());
        };
        let err = open_err(kind, &ro.0.join(kind.file()))?;
        ensure!(
            matches!(err, Error::ReadOnly { .. }),
            "{}: {err:?}",
            kind.name()
        );
        drop(ro);
        ensure!(
            std::fs::read(&path)? == before,
            "{} store changed",
            kind.name()
        );
        ensure!(listing(dir.path())? == before_listing, "files appeared");
    }
    Ok(())
}

#[cfg(unix)]
#[test]
fn new_store_files_are_private() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for kind in [Kind::Sqlite, Kind::Redb] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(kind.file());
        let store = open(kind, &path, Durability::Immediate)?;
        store.store(NewEvent::new("e"))?;
        for file in listing(dir.path())? {
            let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
            ensure!(mode == 0o600, "{} is {mode:o}", file.display());
        }
    }
    Ok(())
}
