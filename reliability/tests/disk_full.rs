//! Full disks: a file-size limit (EFBIG) and a 1 MiB tmpfs (ENOSPC). The failing append gets a
//! typed error (no panic, no abort); afterwards the store opens, holds every acknowledged event,
//! and the next append gets the next id.
use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};
use eventlite_core::Durability;
use eventlite_reliability::{Kind, batch_event, check_store, open, parse_acks, tag};

/// Runs the writer in `fill` mode; returns (acknowledgements, error line).
fn fill(
    kind: Kind,
    path: &Path,
    limit: u64,
) -> Result<(
    std::collections::BTreeMap<u64, eventlite_reliability::Tag>,
    String,
)> {
    let out = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .args([
            "fill",
            kind.name(),
            &path.display().to_string(),
            &limit.to_string(),
            "0",
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "writer failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let err = stdout
        .lines()
        .find(|l| l.starts_with("err "))
        .unwrap_or_default()
        .to_owned();
    Ok((parse_acks(&stdout), err))
}

fn verify_after(
    kind: Kind,
    path: &Path,
    acked: &std::collections::BTreeMap<u64, eventlite_reliability::Tag>,
) -> Result<()> {
    let store = open(kind, path, Durability::Immediate)?;
    let events = check_store(&store)?;
    for (id, t) in acked {
        let e = events
            .get(*id as usize - 1)
            .ok_or_else(|| anyhow::anyhow!("acknowledged event {id} lost"))?;
        ensure!(tag(e)? == *t, "event {id} changed");
    }
    let next = store.store(batch_event(1_000_000, 0, 1, 10))?;
    ensure!(
        next.id == events.len() as u64 + 1,
        "next id {} after {} events",
        next.id,
        events.len()
    );
    Ok(())
}

fn file_size_limit(kind: Kind) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(kind.file());
    // Lay the store out first, so the limit bites on appends, not on creation.
    drop(open(kind, &path, Durability::Immediate)?);
    let base = std::fs::metadata(&path)?.len();
    let (acked, err) = fill(kind, &path, base + 256 * 1024)?;
    ensure!(
        err.starts_with("err StorageFull"),
        "expected a typed StorageFull error, got {err:?}"
    );
    ensure!(!acked.is_empty(), "nothing was appended before the limit");
    verify_after(kind, &path, &acked)?;
    eprintln!(
        "{}: {} events acknowledged before EFBIG ({err})",
        kind.name(),
        acked.len()
    );
    Ok(())
}

#[test]
fn sqlite_file_size_limit() -> Result<()> {
    file_size_limit(Kind::Sqlite)
}

#[test]
fn redb_file_size_limit() -> Result<()> {
    file_size_limit(Kind::Redb)
}

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            eventlite_reliability::skipped(
                "cannot mount a tmpfs here (not root, or no permission)",
            );
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }

    fn resize(&self, size: &str) -> Result<()> {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()?
            .success();
        ensure!(ok, "remount failed");
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn full_device(kind: Kind) -> Result<()> {
    let Some(fs) = Tmpfs::mount("1m") else {
        return Ok(());
    };
    let path = fs.0.join(kind.file());
    let (acked, err) = fill(kind, &path, u64::MAX)?;
    ensure!(
        err.starts_with("err StorageFull"),
        "expected a typed StorageFull error, got {err:?}"
    );
    fs.resize("64m")?;
    if path.exists() {
        verify_after(kind, &path, &acked)?;
    } else {
        ensure!(acked.is_empty(), "acknowledged events but no file");
    }
    eprintln!(
        "{}: {} events acknowledged before ENOSPC ({err})",
        kind.name(),
        acked.len()
    );
    Ok(())
}

#[test]
fn sqlite_full_device() -> Result<()> {
    full_device(Kind::Sqlite)
}

#[test]
fn redb_full_device() -> Result<()> {
    full_device(Kind::Redb)
}

/// The handle that hit the full disk recovers by itself once space is freed: no reopen by
/// the user, every acknowledged event kept, the next append takes the next id.
fn same_handle_recovers(kind: Kind) -> Result<()> {
    let Some(fs) = Tmpfs::mount("1m") else {
        return Ok(());
    };
    let path = fs.0.join(kind.file());
    let store = open(kind, &path, Durability::Immediate)?;
    let mut acked = std::collections::BTreeMap::new();
    let mut failure = None;
    for batch in 0..10_000u64 {
        match store.store_bulk((0..3).map(|k| batch_event(batch, k, 3, 4_000)).collect()) {
            Ok(stored) => {
                for (k, e) in stored.into_iter().enumerate() {
                    acked.insert(e.id, (batch, k));
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.ok_or_else(|| anyhow::anyhow!("1 MiB never filled"))?;
    ensure!(
        matches!(failure, eventlite_core::Error::StorageFull { .. }),
        "expected StorageFull, got {failure:?}"
    );
    // A single event may still fit where a batch of three did not: fill what is left.
    for n in 0.. {
        match store.store(batch_event(999_000 + n, 0, 1, 4_000)) {
            Ok(e) => {
                acked.insert(e.id, (999_000 + n, 0));
            }
            Err(eventlite_core::Error::StorageFull { .. }) => break,
            Err(other) => anyhow::bail!("an append on a nearly full disk gave {other:?}"),
        }
        ensure!(n < 1_000, "1 MiB never filled with single events");
    }
    // Still full: appends keep failing with the same typed error, and reads keep working.
    for _ in 0..3 {
        match store.store(batch_event(999_999, 0, 1, 4_000)) {
            Err(eventlite_core::Error::StorageFull { .. }) => {}
            other => anyhow::bail!("an append on a full disk gave {other:?}"),
        }
        ensure!(store.last_id()? == acked.len() as u64);
    }
    fs.resize("64m")?;
    // The same handle, no reopen.
    let next = store.store(batch_event(1_000_000, 0, 1, 10))?;
    ensure!(
        next.id == acked.len() as u64 + 1,
        "next id {} after {} acknowledged events",
        next.id,
        acked.len()
    );
    let events = check_store(&store)?;
    ensure!(events.len() == acked.len() + 1);
    for (id, (batch, k)) in &acked {
        let t = tag(&events[*id as usize - 1])?;
        ensure!((t.batch, t.k) == (*batch, *k as u64), "event {id} changed");
    }
    ensure!(store.verify()?.is_ok(), "verify after recovery");
    eprintln!(
        "{}: {} events acknowledged before ENOSPC; the same handle appended event {} after",
        kind.name(),
        acked.len(),
        next.id
    );
    Ok(())
}

#[test]
fn sqlite_handle_recovers_after_a_full_device() -> Result<()> {
    same_handle_recovers(Kind::Sqlite)
}

#[test]
fn redb_handle_recovers_after_a_full_device() -> Result<()> {
    same_handle_recovers(Kind::Redb)
}

/// Under `Relaxed`, a full disk may cost the commits not yet flushed; the handle then must
/// not go on as if they were stored (their ids would be given out again): it recovers with
/// nothing lost, or it says that it lost them and must be opened again.
fn relaxed_handle_never_reuses_ids(kind: Kind) -> Result<()> {
    let Some(fs) = Tmpfs::mount("1m") else {
        return Ok(());
    };
    let path = fs.0.join(kind.file());
    let store = open(kind, &path, Durability::Relaxed)?;
    let mut acked = 0u64;
    let failure = loop {
        match store.store_bulk((0..3).map(|k| batch_event(acked, k, 3, 4_000)).collect()) {
            Ok(stored) => acked += stored.len() as u64,
            Err(e) => break e,
        }
        ensure!(acked < 30_000, "1 MiB never filled");
    };
    let given_up = |e: &eventlite_core::Error| {
        matches!(e, eventlite_core::Error::Unavailable { .. })
            && e.to_string().contains("open the store again")
    };
    // The failed append's own error, or (when the background flush failed first) the
    // handle giving up.
    ensure!(
        matches!(failure, eventlite_core::Error::StorageFull { .. }) || given_up(&failure),
        "{failure:?}"
    );
    fs.resize("64m")?;
    let next = if given_up(&failure) {
        Err(failure)
    } else {
        store.store(batch_event(1_000_000, 0, 1, 10))
    };
    let outcome = match next {
        Ok(next) => {
            ensure!(next.id == acked + 1, "next id {} after {acked}", next.id);
            check_store(&store)?;
            format!("recovered, next id {}", next.id)
        }
        Err(e) => {
            ensure!(given_up(&e), "{e:?}");
            ensure!(store.last_id().is_err(), "a given-up handle still answers");
            drop(store);
            let again = open(kind, &path, Durability::Relaxed)?;
            let kept = check_store(&again)?.len() as u64;
            ensure!(kept <= acked, "{kept} events kept, {acked} acknowledged");
            format!("gave up, {} of {acked} kept on reopening", kept)
        }
    };
    eprintln!(
        "{} relaxed: {acked} acknowledged before ENOSPC; {outcome}",
        kind.name()
    );
    Ok(())
}

#[test]
fn sqlite_relaxed_handle_never_reuses_ids() -> Result<()> {
    relaxed_handle_never_reuses_ids(Kind::Sqlite)
}

#[test]
fn redb_relaxed_handle_never_reuses_ids() -> Result<()> {
    relaxed_handle_never_reuses_ids(Kind::Redb)
}
