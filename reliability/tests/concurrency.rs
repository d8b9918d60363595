//! Races: readers during batch commits, writers racing on one stream, processes sharing one
//! SQLite file, a second redb opener.
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use anyhow::{Result, ensure};
use eventlite_core::spi::CommitListener;
use eventlite_core::{Durability, Error, ExpectedVersion, Filter, NewEvent, Order, Query};
use eventlite_reliability::{Kind, batch_event, check_store, open};

const BATCH: u64 = 25;

fn readers_see_whole_batches(kind: Kind) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(open(
        kind,
        &dir.path().join(kind.file()),
        Durability::Relaxed,
    )?);
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            std::thread::spawn(move || -> Result<u64> {
                let (mut seen, mut looks) = (0u64, 0u64);
                while !done.load(Ordering::Acquire) {
                    let order = if r % 2 == 0 {
                        Order::IdAsc
                    } else {
                        Order::IdDesc
                    };
                    let events = store.query(&Query::new(Filter::all(), order))?;
                    let n = events.len() as u64;
                    ensure!(n.is_multiple_of(BATCH), "partial batch: {n} events");
                    ensure!(n >= seen, "went backwards: {n} after {seen}");
                    let mut ids: Vec<u64> = events.iter().map(|e| e.id).collect();
                    ids.sort_unstable();
                    ensure!(ids == (1..=n).collect::<Vec<_>>(), "gap in ids");
                    ensure!(store.count(&Filter::all())? >= n, "count behind a read");
                    seen = n;
                    looks += 1;
                }
                Ok(looks)
            })
        })
        .collect();
    for b in 0..60 {
        store.store_bulk(
            (0..BATCH)
                .map(|i| NewEvent::new("e").data(&(b * BATCH + i)))
                .collect(),
        )?;
    }
    done.store(true, Ordering::Release);
    for r in readers {
        let looks = r.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
        ensure!(looks > 0, "a reader never looked");
    }
    ensure!(store.last_id()? == 60 * BATCH);
    Ok(())
}

#[test]
fn sqlite_readers_see_whole_batches() -> Result<()> {
    readers_see_whole_batches(Kind::Sqlite)
}

#[test]
fn redb_readers_see_whole_batches() -> Result<()> {
    readers_see_whole_batches(Kind::Redb)
}

fn stream_race(kind: Kind) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(open(
        kind,
        &dir.path().join(kind.file()),
        Durability::Relaxed,
    )?);
    store.store(NewEvent::new("opened").stream("acct", ExpectedVersion::NoStream))?;
    for round in 0..10u64 {
        let expected = round + 1;
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    store.store_bulk(vec![
                        NewEvent::new("deposit")
                            .user(format!("t{t}"))
                            .stream("acct", ExpectedVersion::Exact(expected)),
                        NewEvent::new("audit").user(format!("t{t}")),
                    ])
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("writer panicked")))
            .collect::<Result<_>>()?;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        ensure!(
            winners.len() == 1,
            "round {round}: {} winners",
            winners.len()
        );
        for r in &results {
            if let Err(e) = r {
                ensure!(
                    matches!(e, Error::Conflict { actual: Some(a), .. } if *a == expected + 1),
                    "{e:?}"
                );
            }
        }
        let winner = &winners[0][0].user;
        ensure!(
            store.count(&Filter::user(winner.clone()))? >= 2,
            "the winner's batch is whole"
        );
    }
    // Losers stored nothing: one opening event and two per round.
    ensure!(store.last_id()? == 1 + 10 * 2);
    ensure!(store.count(&Filter::stream("acct"))? == 11);
    Ok(())
}

#[test]
fn sqlite_optimistic_race_has_one_winner() -> Result<()> {
    stream_race(Kind::Sqlite)
}

#[test]
fn redb_optimistic_race_has_one_winner() -> Result<()> {
    stream_race(Kind::Redb)
}

#[test]
fn sqlite_processes_share_one_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shared.sqlite");
    drop(open(Kind::Sqlite, &path, Durability::Immediate)?);
    // Start all four before waiting for any, so that they really write at the same time.
    let running: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_crash-writer"))
                .args(["multi", &path.display().to_string(), "250"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let children: Vec<_> = running
        .into_iter()
        .map(|c| c.wait_with_output())
        .collect::<std::io::Result<_>>()?;
    let mut ids: Vec<u64> = Vec::new();
    for out in &children {
        ensure!(
            out.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.parse::<u64>())
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    ids.sort_unstable();
    ensure!(
        ids == (1..=1_000).collect::<Vec<_>>(),
        "ids are not 1..=1000, unique"
    );
    let store = open(Kind::Sqlite, &path, Durability::Immediate)?;
    ensure!(store.last_id()? == 1_000 && store.count(&Filter::cmd("multi"))? == 1_000);
    Ok(())
}

#[test]
fn redb_second_opener_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("one.redb");
    let first = open(Kind::Redb, &path, Durability::Immediate)?;
    let second = open(Kind::Redb, &path, Durability::Immediate);
    let err = second.err().map(|e| e.downcast::<Error>());
    ensure!(matches!(err, Some(Ok(Error::Busy { .. }))), "{err:?}");
    first.store(NewEvent::new("still-usable"))?;
    Ok(())
}

/// What the store's listeners (the cache, the subscriptions' wake-ups) are told: how many
/// commits, and how many events in all.
#[derive(Default)]
struct Published {
    calls: AtomicU64,
    events: AtomicU64,
}

impl CommitListener for Published {
    fn committed(&self, events: &[eventlite_core::Event]) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
    }
}

/// Durable appends from 16 threads share commits: every append is stored once with its own
/// id, there are fewer commits than appends (the group commit formed groups), and listeners
/// hear of each group once, not of each append.
fn group_commit_shares_syncs(kind: Kind) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = open(kind, &dir.path().join(kind.file()), Durability::Immediate)?;
    let published = Arc::new(Published::default());
    let listener: Arc<dyn CommitListener> = published.clone();
    store.backend().commit_signal().listen(&listener);
    const THREADS: u64 = 16;
    const EACH: u64 = 40;
    let ids: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                s.spawn(move || -> eventlite_core::Result<Vec<u64>> {
                    (0..EACH)
                        .map(|i| {
                            store
                                .store(batch_event(t * EACH + i, 0, 1, 0))
                                .map(|e| e.id)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect::<eventlite_core::Result<Vec<Vec<u64>>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    ensure!(
        sorted == (1..=THREADS * EACH).collect::<Vec<_>>(),
        "ids not gap-free"
    );
    check_store(&store)?;
    let commits = store.backend().commit_signal().commits();
    eprintln!(
        "{}: {} appends in {commits} commits",
        kind.name(),
        THREADS * EACH
    );
    ensure!(
        commits < THREADS * EACH,
        "no commit was shared: {commits} commits for {} appends",
        THREADS * EACH
    );
    let calls = published.calls.load(Ordering::Relaxed);
    let events = published.events.load(Ordering::Relaxed);
    ensure!(
        calls < THREADS * EACH && events == THREADS * EACH,
        "listeners heard {calls} commits of {events} events, for {} appends",
        THREADS * EACH
    );
    Ok(())
}

#[test]
fn sqlite_group_commit_shares_syncs() -> Result<()> {
    group_commit_shares_syncs(Kind::Sqlite)
}

#[test]
fn redb_group_commit_shares_syncs() -> Result<()> {
    group_commit_shares_syncs(Kind::Redb)
}
