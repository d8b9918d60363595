//! Crash durability: a child appends random 1–3-event batches and prints each id once the append
//! returned; the parent SIGKILLs it at a random moment, reopens and verifies.
//! `EVENTLITE_CRASH_ITERS` sets the number of kills per engine (default 50).
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use eventlite_core::Durability;
use eventlite_reliability::{Kind, Tag, check_store, open, parse_acks, tag};

fn iterations() -> u64 {
    std::env::var("EVENTLITE_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn name(kind: Kind) -> &'static str {
    kind.name()
}

/// One run of the writer, killed after `delay`; its acknowledgements.
fn run_and_kill(
    kind: Kind,
    mode: &str,
    path: &Path,
    durability: &str,
    first_batch: u64,
    seed: u64,
    delay: Duration,
) -> Result<BTreeMap<u64, Tag>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .args([mode, name(kind), &path.display().to_string(), durability])
        .args([first_batch.to_string(), seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(delay);
    child.kill()?;
    let status = child.wait()?;
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err)?;
    }
    // Killed, not failed: a writer that exited by itself hit an error.
    ensure!(
        status.code().is_none(),
        "writer exited by itself ({status}): {err}"
    );
    Ok(parse_acks(&out))
}

fn integrity(kind: Kind, path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    match kind {
        Kind::Sqlite => {
            let b = eventlite_sqlite::SqliteBackend::open(
                path,
                eventlite_reliability::setup(Durability::Immediate).sqlite(),
            )?;
            b.integrity_check()?;
        }
        Kind::Redb => {
            let mut db = redb::Database::open(path)?;
            ensure!(db.check_integrity()?, "redb integrity check failed");
        }
        Kind::Postgres => anyhow::bail!("the crash loop runs on files; see tests/postgres.rs"),
    }
    Ok(())
}

struct Outcome {
    kills: u64,
    acked: usize,
    lost: usize,
    max_lost_batches: usize,
}

/// Kills the writer `iterations()` times; `may_lose` says how many acknowledged batches may be
/// missing after a kill (0 for durable appends).
fn crash_loop(kind: Kind, durability: &str, may_lose: usize) -> Result<Outcome> {
    crash_loop_with(kind, "append", 1, iterations(), durability, may_lose)
}

/// The crash loop with the writer child in `mode`, whose `writers` threads each may have a
/// batch in flight at the kill.
fn crash_loop_with(
    kind: Kind,
    mode: &str,
    writers: u64,
    kills: u64,
    durability: &str,
    may_lose: usize,
) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(kind.file());
    let mut acked: BTreeMap<u64, Tag> = BTreeMap::new();
    let mut next_batch = 0;
    let mut stored_before = 0u64;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Outcome {
        kills: 0,
        acked: 0,
        lost: 0,
        max_lost_batches: 0,
    };
    for i in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Several writers: later kills too, past a redb open's integrity check.
        let delay = Duration::from_millis(if writers > 1 {
            20 + rng % 120
        } else {
            2 + rng % 59
        });
        let new = run_and_kill(kind, mode, &path, durability, next_batch, i + 1, delay)?;
        out.kills += 1;
        out.acked += new.len();
        // Stored events may exceed the acknowledged ones by a batch in flight per writer, on top of
        // what was stored (acknowledged or not) before this run.
        let acked_max = new
            .keys()
            .last()
            .or(acked.keys().last())
            .copied()
            .unwrap_or(0);
        let in_flight_max = acked_max.max(stored_before) + 3 * writers;
        acked.extend(new);
        integrity(kind, &path)?;
        if !path.exists() {
            ensure!(acked.is_empty(), "acknowledged events but no file");
            continue;
        }
        let store = open(kind, &path, Durability::Immediate)?;
        let events = check_store(&store)?;
        let n = events.len() as u64;
        ensure!(
            n <= in_flight_max,
            "{n} events, more than acknowledged plus a batch per writer"
        );
        for e in &events {
            if let Some(t) = acked.get(&e.id) {
                ensure!(
                    tag(e)? == *t,
                    "event {} differs from what was acknowledged",
                    e.id
                );
            }
        }
        // Acknowledged events past the end were lost; only a tail may be, and only as much of it
        // as the durability level allows.
        let lost: Vec<(u64, Tag)> = acked.range(n + 1..).map(|(id, t)| (*id, *t)).collect();
        let lost_batches = lost
            .iter()
            .map(|(_, t)| t.batch)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        ensure!(
            lost_batches <= may_lose,
            "kill {i}: {lost_batches} acknowledged batches lost: {lost:?}"
        );
        out.lost += lost.len();
        out.max_lost_batches = out.max_lost_batches.max(lost_batches);
        acked.retain(|id, _| *id <= n);
        stored_before = n;
        next_batch = events
            .iter()
            .map(|e| tag(e).map(|t| t.batch + 1))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(0)
            .max(next_batch + 1_000);
        drop(store);
    }
    ensure!(out.acked > 0, "the writer never acknowledged anything");
    eprintln!(
        "{} {durability}: {} kills, {} events acknowledged, {} lost (most batches lost at once: {})",
        kind.name(),
        out.kills,
        out.acked,
        out.lost,
        out.max_lost_batches
    );
    Ok(out)
}

#[test]
fn sqlite_immediate_loses_nothing_acknowledged() -> Result<()> {
    let out = crash_loop(Kind::Sqlite, "immediate", 0)?;
    ensure!(out.lost == 0);
    Ok(())
}

#[test]
fn redb_immediate_loses_nothing_acknowledged() -> Result<()> {
    let out = crash_loop(Kind::Redb, "immediate", 0)?;
    ensure!(out.lost == 0);
    Ok(())
}

/// Kills during 8 concurrent durable writers, whose appends share commits: nothing
/// acknowledged is lost and no batch is partial. `EVENTLITE_GROUP_KILLS` sets the kills per
/// engine (default 30; the by-hand run is 100).
fn concurrent_writers_lose_nothing(kind: Kind) -> Result<()> {
    let kills = std::env::var("EVENTLITE_GROUP_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let out = crash_loop_with(kind, "concurrent", 8, kills, "immediate", 0)?;
    ensure!(out.lost == 0);
    Ok(())
}

#[test]
fn sqlite_concurrent_writers_lose_nothing_acknowledged() -> Result<()> {
    concurrent_writers_lose_nothing(Kind::Sqlite)
}

#[test]
fn redb_concurrent_writers_lose_nothing_acknowledged() -> Result<()> {
    concurrent_writers_lose_nothing(Kind::Redb)
}

/// WAL + synchronous=NORMAL: a process crash loses nothing (only a power loss could).
#[test]
fn sqlite_relaxed_loses_nothing_on_a_process_crash() -> Result<()> {
    let out = crash_loop(Kind::Sqlite, "relaxed", 0)?;
    ensure!(out.lost == 0);
    Ok(())
}

/// redb `Relaxed` commits without fsync and redb drops such commits on a crash; the backend
/// bounds the loss to `relaxed_max_commits - 1` commits (63 by default) or 100 ms.
#[test]
fn redb_relaxed_loses_at_most_its_window() -> Result<()> {
    let window = eventlite_redb::RedbOptions::default().relaxed_max_commits as usize - 1;
    crash_loop(Kind::Redb, "relaxed", window)?;
    Ok(())
}

/// `checkpoint()` makes every commit before it survive a crash, whatever the durability: on
/// redb `Relaxed` the commits of the last moments would otherwise be dropped by the kill.
#[test]
fn nothing_before_a_checkpoint_is_lost_to_a_kill() -> Result<()> {
    use std::io::BufRead;
    for kind in [Kind::Sqlite, Kind::Redb] {
        for durability in ["relaxed", "immediate"] {
            for round in 0..3 {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join(kind.file());
                let count = 40 + round * 7;
                let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
                    .args([
                        "checkpoint",
                        name(kind),
                        &path.display().to_string(),
                        durability,
                    ])
                    .arg(count.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()?;
                let mut line = String::new();
                if let Some(out) = child.stdout.take() {
                    std::io::BufReader::new(out).read_line(&mut line)?;
                }
                // Killed as soon as the checkpoint returned, before any background flush.
                child.kill()?;
                child.wait()?;
                let acked: u64 = line
                    .strip_prefix("checkpointed ")
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("writer said {line:?}"))?;
                ensure!(
                    acked == count,
                    "{acked} events before the checkpoint, not {count}"
                );
                let store = open(kind, &path, Durability::Immediate)?;
                let events = check_store(&store)?;
                ensure!(
                    events.len() as u64 == acked,
                    "{} {durability}: {} of {acked} checkpointed events survived the kill",
                    kind.name(),
                    events.len()
                );
            }
        }
    }
    Ok(())
}

/// redb `Relaxed`'s time bound itself: a commit acknowledged more than `relaxed_max_delay`
/// (plus the time one flush takes) before a kill survives it, also when the writer stalls.
/// `EVENTLITE_RELAXED_KILLS` sets the number of kills (default 20).
#[test]
fn redb_relaxed_loses_nothing_older_than_its_delay() -> Result<()> {
    use std::io::BufRead;
    use std::time::{SystemTime, UNIX_EPOCH};
    const DELAY_MS: u64 = 300;
    // One flush (an fsync) and the flusher's wake-up on a loaded machine; the bug this guards
    // against lost commits up to twice the delay old.
    const SLACK_MS: u64 = 150;
    let kills: u64 = std::env::var("EVENTLITE_RELAXED_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let (mut lost_total, mut oldest_lost_us) = (0usize, 0u128);
    for i in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(Kind::Redb.file());
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .args(["paced", &path.display().to_string()])
            .args([DELAY_MS.to_string(), (i + 1).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let reader = std::thread::spawn(move || -> std::io::Result<Vec<(u64, u128)>> {
            let mut acks = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line?;
                let w: Vec<&str> = line.split_whitespace().collect();
                if let (Some(id), Some(at)) = (w.get(1), w.get(5)) {
                    acks.push((id.parse().unwrap_or(0), at.parse().unwrap_or(0)));
                }
            }
            Ok(acks)
        });
        std::thread::sleep(Duration::from_millis(300 + rng % 900));
        let killed_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros();
        child.kill()?;
        child.wait()?;
        let acks = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
        ensure!(
            !acks.is_empty(),
            "kill {i}: the writer acknowledged nothing"
        );
        let store = open(Kind::Redb, &path, Durability::Immediate)?;
        let stored = check_store(&store)?.len() as u64;
        for (id, at) in acks.iter().filter(|(id, _)| *id > stored) {
            let age = killed_at.saturating_sub(*at);
            lost_total += 1;
            oldest_lost_us = oldest_lost_us.max(age);
            ensure!(
                age <= u128::from(DELAY_MS + SLACK_MS) * 1_000,
                "kill {i}: event {id}, acknowledged {} ms before the kill, was lost \
                 (relaxed_max_delay {DELAY_MS} ms)",
                age / 1_000
            );
        }
    }
    eprintln!(
        "redb relaxed, delay {DELAY_MS} ms: {kills} kills, {lost_total} commits lost, the oldest \
         acknowledged {:.1} ms before its kill",
        oldest_lost_us as f64 / 1_000.0
    );
    Ok(())
}
