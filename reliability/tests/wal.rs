//! SQLite's write-ahead log. A clean close leaves no log behind. A damaged log is refused at
//! open (`Error::Corrupt`, files untouched) whenever SQLite would otherwise cut committed
//! transactions after the damage silently; only the last transaction, which a crash can tear
//! too, may go without an error (or the last two, when the damage destroyed the next-to-last
//! one's commit frame). Counts per kind of damage: refused, intact, last one or two
//! transactions cut, cut further (must be 0). `EVENTLITE_WAL_ITERS` sets the copies per kind
//! (default 100).
use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use eventlite_core::{Durability, Event, NewEvent, Query};
use eventlite_reliability::{Kind, Rng, open};

const BATCHES: u64 = 60;
const BATCH: u64 = 10;

fn iterations() -> u64 {
    std::env::var("EVENTLITE_WAL_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn wal(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn batch(b: u64) -> Vec<NewEvent> {
    (0..BATCH)
        .map(|k| {
            NewEvent::new("w")
                .user(format!("u{}", k % 3))
                .data(&serde_json::json!({ "b": b, "k": k, "pad": "y".repeat((b % 30) as usize) }))
        })
        .collect()
}

#[test]
fn a_clean_close_leaves_no_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(Kind::Sqlite.file());
    for durability in [Durability::Immediate, Durability::Relaxed] {
        let store = open(Kind::Sqlite, &path, durability)?;
        for b in 0..20 {
            store.store_bulk(batch(b))?;
        }
        // Readers and the change watcher open connections of their own.
        store.query(&Query::default())?;
        store.backend().poll_commits()?;
        ensure!(std::fs::metadata(wal(&path)).is_ok_and(|m| m.len() > 0));
        drop(store);
        let left = std::fs::metadata(wal(&path)).map(|m| m.len()).unwrap_or(0);
        ensure!(
            left == 0,
            "{durability:?}: a {left}-byte log is left after a clean close"
        );
    }
    Ok(())
}

/// The events of the store at `path`, opened with `truncate_damaged_log`.
fn truncated(path: &Path) -> Result<Vec<Event>> {
    let options = eventlite_sqlite::SqliteOptions {
        truncate_damaged_log: true,
        ..eventlite_reliability::setup(Durability::Immediate).sqlite()
    };
    let store =
        eventlite_core::EventStore::new(eventlite_sqlite::SqliteBackend::open(path, options)?);
    Ok(store.query(&Query::default())?)
}

#[derive(Debug, Default)]
struct Tally {
    copies: u64,
    refused: u64,
    intact: u64,
    last_transaction_cut: u64,
    last_two_cut: u64,
    silently_cut: u64,
    read_errors: u64,
    wrong_events: u64,
}

#[test]
fn a_damaged_log_is_refused_rather_than_cut() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(Kind::Sqlite.file());
    let store = open(Kind::Sqlite, &path, Durability::Immediate)?;
    for b in 0..BATCHES {
        store.store_bulk(batch(b))?;
    }
    let original: Vec<Event> = store.query(&Query::default())?;
    let total = BATCHES * BATCH;
    ensure!(original.len() as u64 == total);
    // Copied while open, nothing in flight: the log holds every transaction (no checkpoint
    // has run; the log is far below its threshold).
    let db_bytes = std::fs::read(&path)?;
    let log_bytes = std::fs::read(wal(&path))?;
    ensure!(
        log_bytes.len() > 100 * 4_096,
        "the log holds {} bytes",
        log_bytes.len()
    );
    drop(store);
    // Controls: the undamaged copy opens whole; damage at the very end (the last
    // transaction's commit frame, which a crash can tear) opens without that transaction.
    for (cut_tail, want_at_least) in [(0, total), (100, total - BATCH)] {
        let case = tempfile::tempdir()?;
        let copy = case.path().join(Kind::Sqlite.file());
        std::fs::write(&copy, &db_bytes)?;
        let mut log = log_bytes.clone();
        let n = log.len();
        log[n - cut_tail..].fill(0);
        std::fs::write(wal(&copy), &log)?;
        let store = open(Kind::Sqlite, &copy, Durability::Immediate)?;
        let events = store.query(&Query::default())?;
        ensure!(
            events.len() as u64 >= want_at_least && events[..] == original[..events.len()],
            "control with {cut_tail} bytes zeroed: {} events",
            events.len()
        );
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut next = |below: u64| rng.below(below);
    for how in ["bit flips", "zeroed range", "frame copy"] {
        let mut t = Tally::default();
        for _ in 0..iterations() {
            let mut log = log_bytes.clone();
            let len = log.len() as u64;
            match how {
                "bit flips" => {
                    for _ in 0..1 + next(8) {
                        let bit = next(len * 8);
                        log[(bit / 8) as usize] ^= 1 << (bit % 8);
                    }
                }
                "zeroed range" => {
                    let at = next(len) as usize;
                    let n = (1 + next(4_096) as usize).min(log.len() - at);
                    log[at..at + n].fill(0);
                }
                _ => {
                    let frame = 24 + 4_096;
                    let frames = (log.len() - 32) / frame;
                    let from = 32 + next(frames as u64) as usize * frame;
                    let to = 32 + next(frames as u64) as usize * frame;
                    let copy = log[from..from + frame].to_vec();
                    log[to..to + frame].copy_from_slice(&copy);
                }
            }
            let case = tempfile::tempdir()?;
            let damaged = case.path().join(Kind::Sqlite.file());
            std::fs::write(&damaged, &db_bytes)?;
            std::fs::write(wal(&damaged), &log)?;
            t.copies += 1;
            let store = match open(Kind::Sqlite, &damaged, Durability::Immediate) {
                Ok(s) => s,
                Err(e) => {
                    let e = e.downcast::<eventlite_core::Error>()?;
                    ensure!(
                        matches!(e, eventlite_core::Error::Corrupt { .. }),
                        "{how}: refused with {e:?}"
                    );
                    // Refused without a change: the log is as it was.
                    ensure!(
                        std::fs::read(wal(&damaged))? == log,
                        "{how}: the log was changed"
                    );
                    t.refused += 1;
                    // Asked to, the store opens with what precedes the damage.
                    let kept = truncated(&damaged)?;
                    ensure!(
                        kept.iter().zip(&original).all(|(a, b)| a == b),
                        "{how}: truncating kept other events"
                    );
                    continue;
                }
            };
            let events = match store.query(&Query::default()) {
                Ok(events) => events,
                Err(_) => {
                    t.read_errors += 1;
                    continue;
                }
            };
            if events
                .iter()
                .any(|e| original.get(e.id as usize - 1) != Some(e))
            {
                t.wrong_events += 1;
            }
            match total - events.len() as u64 {
                0 => t.intact += 1,
                n if n <= BATCH => t.last_transaction_cut += 1,
                // Damage that destroys the header of the next-to-last transaction's commit
                // frame reads like the last transaction torn by a crash.
                n if n <= 2 * BATCH => t.last_two_cut += 1,
                _ => t.silently_cut += 1,
            }
        }
        eprintln!("sqlite log, {how}: {t:?}");
        ensure!(
            t.silently_cut == 0,
            "{how}: {} logs cut silently",
            t.silently_cut
        );
        ensure!(t.wrong_events == 0, "{how}: wrong events");
        ensure!(
            t.refused > 0,
            "{how}: no damage was found: the test proved little"
        );
    }
    Ok(())
}
