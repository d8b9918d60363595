//! Stores that others write to: subscribers and caches see another process's and another
//! handle's appends to the same SQLite file; a store dropped under its subscribers wakes them.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use eventlite_core::spi::{Notifications, Wakeup};
use eventlite_core::{Durability, Filter, Start, SubscribeOptions};
use eventlite_reliability::{Kind, open};

/// Long enough never to end a healthy wait on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Four processes append to one SQLite file while this one follows it: every event arrives
/// once, in id order, each batch soon after its commit (the poll interval bounds the wait).
#[test]
fn a_subscriber_sees_other_processes_appends() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(Kind::Sqlite.file());
    let store = open(Kind::Sqlite, &path, Durability::Immediate)?;
    let mut sub = store.subscribe(
        SubscribeOptions::new()
            .start(Start::End)
            .poll_interval(Duration::from_millis(20)),
    )?;
    let writers: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_crash-writer"))
                .args(["multi", &path.display().to_string(), "100"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let mut ids = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while ids.len() < 400 {
        ensure!(
            Instant::now() < deadline,
            "{} of 400 events after {PATIENCE:?}",
            ids.len()
        );
        if let Some(batch) = sub.next_batch(Duration::from_secs(1))? {
            ids.extend(batch.iter().map(|e| e.id));
        }
    }
    for w in writers {
        let out = w.wait_with_output()?;
        ensure!(
            out.status.success(),
            "a writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ensure!(ids == (1..=400).collect::<Vec<_>>());
    ensure!(store.count(&Filter::cmd("multi"))? == 400);
    Ok(())
}

/// A second handle on the same file in this process: its appends reach the first handle's
/// subscriber too.
#[test]
fn a_subscriber_sees_another_handles_appends() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(Kind::Sqlite.file());
    let reader = open(Kind::Sqlite, &path, Durability::Relaxed)?;
    let writer = open(Kind::Sqlite, &path, Durability::Relaxed)?;
    let mut sub =
        reader.subscribe(SubscribeOptions::new().poll_interval(Duration::from_millis(10)))?;
    for i in 0..50 {
        writer.store(eventlite_core::NewEvent::new("other").data(&i))?;
    }
    let mut got = 0;
    let deadline = Instant::now() + PATIENCE;
    while got < 50 {
        ensure!(
            Instant::now() < deadline,
            "{got} of 50 events after {PATIENCE:?}"
        );
        got += sub
            .next_batch(Duration::from_secs(1))?
            .map_or(0, |b| b.len());
    }
    Ok(())
}

/// Dropping a store closes its commit signal: a waiter returns at once instead of hanging
/// (a subscription then reports `Error::Unavailable`).
#[test]
fn dropping_a_store_wakes_its_waiters() -> Result<()> {
    for kind in [Kind::Sqlite, Kind::Redb] {
        let dir = tempfile::tempdir()?;
        let store = open(kind, &dir.path().join(kind.file()), Durability::Relaxed)?;
        let watcher = store.backend().commit_signal().watch(Filter::all(), 0);
        let seen = watcher.seen();
        let waiter = std::thread::spawn(move || watcher.wait(seen, Instant::now() + PATIENCE));
        drop(store);
        let woke = waiter
            .join()
            .map_err(|_| anyhow::anyhow!("the waiter panicked"))?;
        ensure!(woke == Wakeup::Closed, "{}: {woke:?}", kind.name());
    }
    Ok(())
}

/// A cached transaction is never served stale: another handle, then another process, append to
/// it, and the next `transaction_cached` has their events.
#[test]
fn a_cached_transaction_sees_other_handles_and_processes() -> Result<()> {
    use eventlite_core::{CachePolicy, EventStore, NewEvent};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(Kind::Sqlite.file());
    let options = eventlite_reliability::setup(Durability::Relaxed).sqlite();
    let reader = EventStore::builder(eventlite_sqlite::SqliteBackend::open(
        &path,
        options.clone(),
    )?)
    .cache(CachePolicy::read_optimized())
    .build();
    let other = open(Kind::Sqlite, &path, Durability::Relaxed)?;
    reader.store(NewEvent::new("first").correlation_id("order-1"))?;
    ensure!(reader.transaction_cached("order-1")?.len() == 1);
    ensure!(
        reader.transaction_cached("order-1")?.len() == 1,
        "a repeat is served from the cache"
    );
    let hits = reader.cache_stats().hits;
    ensure!(hits >= 1);
    other.store(NewEvent::new("second").correlation_id("order-1"))?;
    ensure!(
        reader.transaction_cached("order-1")?.len() == 2,
        "stale after another handle's append"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .args(["correlated", &path.display().to_string(), "order-1", "3"])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        reader.transaction_cached("order-1")?.len() == 5,
        "stale after another process's append"
    );
    // With nothing new, the cache serves again.
    reader.transaction_cached("order-1")?;
    ensure!(reader.cache_stats().hits > hits);
    Ok(())
}
