//! The `subscriptions` table: following the log, each figure beside the baseline its target
//! names, measured in the same run.
//!
//! - catch-up: a subscription reading the whole log, against `EventStore::read_all` of it;
//! - 100 idle subscribers (waiting on a cmd that never comes, so every commit wakes them for
//!   nothing): durable one-event appends, against the same appends with no subscriber;
//! - a projection into a SQLite read model ([`SqliteProjection`]), against a hand-written
//!   loop that streams the log and writes the same rows in the same transactions;
//! - delivery latency (append returned → subscriber has the event), p50 and p99, in-process
//!   and from another process (SQLite), beside the durable append's own latency.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use eventlite_core::{Filter, Start, StreamOptions, SubscribeOptions};
use eventlite_sqlite::SqliteProjection;
use eventlite_sqlite::rusqlite::{self, Connection, params};

use crate::harness::{Bench, Slice, each_run, interleaved};
use crate::{Engine, Setup, Store, events, new_event, open_ours};

/// The table's name in the report.
pub const TABLE: &str = "subscriptions";

/// Every case of the table on `engine`.
pub fn subscriptions(b: &mut Bench, engine: Engine) -> Result<()> {
    catch_up(b, engine)?;
    idle_subscribers(b, engine)?;
    projection(b, engine)?;
    latency(b, engine)?;
    Ok(())
}

/// The events of slice `i` of `n`, `per` a slice.
fn slice_filter(i: usize, per: u64, n: u64) -> Filter {
    let s = Slice::nth(i as u64, per, n);
    Filter {
        id_from: Some(s.first),
        id_to: Some(s.last),
        ..Filter::default()
    }
}

/// A store of `n` events at `path`, appended in bulk.
pub(crate) fn filled(engine: Engine, path: &Path, n: u64) -> Result<Store> {
    let setup = Setup {
        durability: eventlite_core::Durability::Relaxed,
        ..Setup::default()
    };
    let store = open_ours(engine, path, &setup)?;
    for chunk in events(0, n).chunks(1_000) {
        store.store_bulk(chunk.iter().map(new_event).collect())?;
    }
    Ok(store)
}

fn catch_up(b: &mut Bench, engine: Engine) -> Result<()> {
    let n = b.config.events;
    let dir = crate::StoreDir::new(engine)?;
    let store = filled(engine, &dir.path().join(engine.file()), n)?;
    let (slices, per) = Slice::plan(n);
    let range = |i: usize| slice_filter(i, per, n);
    let (ours, stream) = each_run(b.config.runs, |run| {
        let (o, r) = interleaved(
            slices as usize,
            run,
            |i| {
                let mut sub = store.subscribe(SubscribeOptions::new().filter(range(i)))?;
                while sub.next_batch(Duration::ZERO)?.is_some() {}
                Ok(())
            },
            |i| {
                for batch in store.read_all(StreamOptions::new().filter(range(i)))? {
                    batch?;
                }
                Ok(())
            },
            || Ok(()),
        )?;
        Ok((n as f64 / o, n as f64 / r))
    })?;
    b.record(
        TABLE,
        "catch-up, against read_all",
        engine,
        "events/s",
        ours,
        Some(stream),
    );
    Ok(())
}

fn idle_subscribers(b: &mut Bench, engine: Engine) -> Result<()> {
    let appends: u64 = if b.config.quick { 200 } else { 2_000 };
    let dir = crate::StoreDir::new(engine)?;
    let setup = Setup::default();
    let watched = Arc::new(open_ours(
        engine,
        &dir.path().join(format!("w-{}", engine.file())),
        &setup,
    )?);
    let alone = open_ours(engine, &dir.path().join(engine.file()), &setup)?;
    let idle = SubscribeOptions::new()
        .start(Start::End)
        .filter(Filter::cmd("never"));
    let subscribers = (0..100)
        .map(|_| watched.subscribe_shared(idle.clone()))
        .collect::<eventlite_core::Result<Vec<_>>>()?;
    let stoppers: Vec<_> = subscribers.iter().map(|s| s.stopper()).collect();
    let threads: Vec<_> = subscribers
        .into_iter()
        .map(|mut s| std::thread::spawn(move || while let Some(Ok(_)) = s.next() {}))
        .collect();
    let (slices, per) = Slice::plan(appends);
    let one = |store: &Store, i: usize| -> Result<()> {
        let s = Slice::nth(i as u64, per, appends);
        for e in events(s.first, s.reps) {
            store.store(new_event(&e))?;
        }
        Ok(())
    };
    let measured = each_run(b.config.runs, |run| {
        let (o, r) = interleaved(
            slices as usize,
            run,
            |i| one(&watched, i),
            |i| one(&alone, i),
            || Ok(()),
        )?;
        Ok((appends as f64 / o, appends as f64 / r))
    });
    for s in &stoppers {
        s.stop();
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a subscriber panicked"))?;
    }
    let (ours, without) = measured?;
    b.record(
        TABLE,
        "durable appends with 100 idle subscribers, against none",
        engine,
        "events/s",
        ours,
        Some(without),
    );
    Ok(())
}

/// The read model both sides write: one row per event, and one total per user.
const READ_MODEL: &str = "
CREATE TABLE IF NOT EXISTS orders (id INTEGER NOT NULL, user TEXT NOT NULL, cmd TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS totals (user TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hand_position (name TEXT PRIMARY KEY, position INTEGER NOT NULL);";

fn write_row(conn: &Connection, e: &eventlite_core::Event) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO orders (id, user, cmd) VALUES (?1, ?2, ?3)")?
        .execute(params![e.id as i64, e.user, e.cmd])?;
    conn.prepare_cached(
        "INSERT INTO totals VALUES (?1, 1) ON CONFLICT (user) DO UPDATE SET n = n + 1",
    )?
    .execute([&e.user])?;
    Ok(())
}

fn projection(b: &mut Bench, engine: Engine) -> Result<()> {
    let n = b.config.events;
    let dir = crate::StoreDir::new(engine)?;
    let store = filled(engine, &dir.path().join(engine.file()), n)?;
    let (slices, per) = Slice::plan(n);
    let (ours, hand) = each_run(b.config.runs, |run| {
        let mut ours_db = Connection::open(dir.path().join(format!("ours-{run}.sqlite")))?;
        let mut hand_db = Connection::open(dir.path().join(format!("hand-{run}.sqlite")))?;
        ours_db.execute_batch(READ_MODEL)?;
        hand_db.execute_batch(READ_MODEL)?;
        let (o, r) = interleaved(
            slices as usize,
            run,
            |i| {
                let s = Slice::nth(i as u64, per, n);
                let bounded = Filter {
                    id_to: Some(s.last),
                    ..Filter::default()
                };
                let mut p = SqliteProjection::new(&mut ours_db, "orders")?.filter(bounded);
                p.catch_up(&store, &mut |conn, e| Ok(write_row(conn, e)?))?;
                Ok(())
            },
            |i| {
                let range = slice_filter(i, per, n);
                for batch in store.read_all(StreamOptions::new().filter(range))? {
                    let batch = batch?;
                    let tx = hand_db.transaction()?;
                    for e in &batch {
                        write_row(&tx, e)?;
                    }
                    if let Some(last) = batch.last() {
                        tx.execute(
                            "INSERT OR REPLACE INTO hand_position VALUES ('orders', ?1)",
                            [last.id as i64],
                        )?;
                    }
                    tx.commit()?;
                }
                Ok(())
            },
            || Ok(()),
        )?;
        Ok((n as f64 / o, n as f64 / r))
    })?;
    b.record(
        TABLE,
        "projection into a SQLite read model, against a hand-written loop",
        engine,
        "events/s",
        ours,
        Some(hand),
    );
    Ok(())
}

/// Microseconds since the epoch, comparable across processes on this machine.
fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// The `q`-quantile of `v` (sorted here).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Appends `count` events one at a time, durably, each once the subscriber has the previous
/// one; `received(id)` blocks until it does and returns when (µs since the epoch). Returns
/// the append latencies and the delivery latencies (received − append returned, µs).
fn timed_appends(
    store: &Store,
    count: u64,
    mut received: impl FnMut(u64) -> Result<u128>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut append, mut delivery) = (Vec::new(), Vec::new());
    for e in events(0, count) {
        let started = now_us();
        let stored = store.store(new_event(&e))?;
        let returned = now_us();
        let got = received(stored.id)?;
        append.push(returned.saturating_sub(started) as f64);
        delivery.push(got.saturating_sub(returned) as f64);
    }
    Ok((append, delivery))
}

fn latency(b: &mut Bench, engine: Engine) -> Result<()> {
    let count: u64 = if b.config.quick { 100 } else { 500 };
    let mut results = Vec::new();
    for _ in 0..b.config.runs {
        let dir = crate::StoreDir::new(engine)?;
        let path = dir.path().join(engine.file());
        let store = Arc::new(open_ours(engine, &path, &Setup::default())?);
        // In-process: a subscriber thread that reports each event's arrival.
        let (tx, rx) = std::sync::mpsc::channel();
        let mut sub = store.subscribe_shared(SubscribeOptions::new().start(Start::End))?;
        let stop = sub.stopper();
        let follower = std::thread::spawn(move || -> Result<()> {
            for batch in &mut sub {
                let at = now_us();
                for e in batch? {
                    tx.send((e.id, at))?;
                }
            }
            Ok(())
        });
        let in_process = timed_appends(&store, count, |id| {
            loop {
                let (got, at) = rx.recv_timeout(Duration::from_secs(30))?;
                if got == id {
                    return Ok(at);
                }
            }
        });
        stop.stop();
        follower
            .join()
            .map_err(|_| anyhow::anyhow!("the follower panicked"))??;
        let in_process = in_process?;
        // Across processes (SQLite only: redb locks its file to one process).
        let across = if engine == Engine::Sqlite {
            Some(across_processes(&store, &path, count)?)
        } else {
            None
        };
        results.push((in_process, across));
    }
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        let (mut x_ours, mut x_base) = (Vec::new(), Vec::new());
        for ((append, delivery), across) in &results {
            ours.push(quantile(&mut delivery.clone(), q));
            base.push(quantile(&mut append.clone(), q));
            if let Some((append, delivery)) = across {
                x_ours.push(quantile(&mut delivery.clone(), q));
                x_base.push(quantile(&mut append.clone(), q));
            }
        }
        let in_name = if name == "p50" {
            "in-process delivery latency p50, against the append's"
        } else {
            "in-process delivery latency p99, against the append's"
        };
        rows.push((in_name, ours, base));
        if !x_ours.is_empty() {
            let x_name = if name == "p50" {
                "cross-process delivery latency p50, against the append's"
            } else {
                "cross-process delivery latency p99, against the append's"
            };
            rows.push((x_name, x_ours, x_base));
        }
    }
    for (case, ours, base) in rows {
        b.record(TABLE, case, engine, "µs", ours, Some(base));
    }
    Ok(())
}

/// Timed appends while a subscriber in another process (this program, `--follow PATH N`)
/// reports each arrival on its standard output.
fn across_processes(store: &Store, path: &Path, count: u64) -> Result<(Vec<f64>, Vec<f64>)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--follow")
        .arg(path)
        .arg(count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    // The follower says it is subscribed before the first append.
    match lines.next() {
        Some(Ok(l)) if l == "ready" => {}
        other => bail!("the follower did not start: {other:?}"),
    }
    let out = timed_appends(store, count, |id| {
        loop {
            let line = lines.next().context("the follower stopped")??;
            let mut parts = line.split_whitespace();
            let (got, at): (u64, u128) = (
                parts.next().context("no id")?.parse()?,
                parts.next().context("no time")?.parse()?,
            );
            if got == id {
                return Ok(at);
            }
        }
    });
    let _ = child.kill();
    child.wait()?;
    out
}

/// The follower process of the cross-process latency case: subscribes to the SQLite store at `path` from
/// its end and prints `<id> <µs since the epoch>` as each of `count` events arrives.
pub fn follow(path: &Path, count: u64) -> Result<()> {
    use std::io::Write;
    let store = open_ours(Engine::Sqlite, path, &Setup::default())?;
    let mut sub = store.subscribe(SubscribeOptions::new().start(Start::End))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < count && Instant::now() < deadline {
        if let Some(batch) = sub.next_batch(Duration::from_secs(1))? {
            let at = now_us();
            for e in batch {
                writeln!(out, "{} {at}", e.id)?;
                seen += 1;
            }
            out.flush()?;
        }
    }
    Ok(())
}
