//! The `concurrent writers` table: threads each appending single events under `Immediate`,
//! so that every append must be durable before it returns. With group commit, the appends
//! that arrive while a commit syncs share the next one.
//!
//! Each run measures, on fresh stores, ours with 1, 4, 16 and 64 threads, and the raw engine
//! with 16 threads each committing its own transaction (plain rusqlite connections waiting on
//! SQLite's write lock; one redb database whose write transactions queue): what a user gets
//! without us. Rows: ours with N threads against ours with one (the speed-up), and ours with
//! 16 threads against the raw engine with 16.

use std::sync::{Barrier, Mutex};
use std::time::Instant;

use anyhow::Result;

use crate::harness::Bench;
use crate::{BenchEvent, Engine, Setup, events, new_event, open_ours, raw};

/// The table's name in the report.
pub const TABLE: &str = "concurrent writers";

/// The thread counts of the table.
pub const THREADS: [usize; 4] = [1, 4, 16, 64];

/// The thread counts compared with one writer committing their events that many at a time.
pub const BOUNDS: [usize; 2] = [16, 64];

/// The case comparing `threads` writers with one writer committing their events `threads` at a
/// time: a group commit that never misses a writer, writing the same pages per commit (the
/// events built beforehand, as the writers build theirs while a commit syncs).
pub fn bound_case(threads: usize) -> String {
    format!("{threads} threads, against one writer committing their events {threads} at a time")
}

/// Appends per second by `threads` threads released by one barrier, thread `t` appending `per`
/// single events with `append(t, event)`.
pub(crate) fn rate(
    threads: usize,
    per: u64,
    append: &(dyn Fn(usize, &BenchEvent) -> Result<()> + Sync),
) -> Result<f64> {
    let work: Vec<Vec<BenchEvent>> = (0..threads).map(|t| events(t as u64 * per, per)).collect();
    let start = Barrier::new(threads + 1);
    let (started, results) = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .iter()
            .enumerate()
            .map(|(t, mine)| {
                let start = &start;
                s.spawn(move || -> Result<()> {
                    start.wait();
                    mine.iter().try_for_each(|e| append(t, e))
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        let results: Vec<Result<()>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("writer panicked")))
            })
            .collect();
        (started, results)
    });
    let elapsed = started.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<()>>()?;
    Ok((threads as u64 * per) as f64 / elapsed)
}

/// Every case of the table on `engine`.
pub fn concurrent(b: &mut Bench, engine: Engine) -> Result<()> {
    let total: u64 = if b.config.quick { 1_024 } else { 8_192 };
    let setup = Setup::default();
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); THREADS.len()];
    let mut raws = Vec::new();
    let mut bounds: Vec<Vec<f64>> = vec![Vec::new(); BOUNDS.len()];
    for _ in 0..b.config.runs {
        for (slot, &threads) in THREADS.iter().enumerate() {
            let dir = tempfile::tempdir()?;
            let store = open_ours(engine, &dir.path().join(engine.file()), &setup)?;
            let per = total / threads as u64;
            let append = |_: usize, e: &BenchEvent| -> Result<()> {
                store.store(new_event(e))?;
                Ok(())
            };
            ours[slot].push(rate(threads, per, &append)?);
        }
        // The reference: one writer committing the writers' events, interleaved as they
        // arrive, `threads` to a commit (a group commit that never misses a writer).
        for (slot, &threads) in BOUNDS.iter().enumerate() {
            let dir = tempfile::tempdir()?;
            let store = open_ours(engine, &dir.path().join(engine.file()), &setup)?;
            let per = total / threads as u64;
            let work: Vec<Vec<BenchEvent>> =
                (0..threads).map(|t| events(t as u64 * per, per)).collect();
            let interleaved: Vec<&BenchEvent> = (0..per as usize)
                .flat_map(|j| work.iter().map(move |w| &w[j]))
                .collect();
            // The events are built before the clock starts: the threads build theirs while
            // a commit syncs, so a group commit does not wait for that work either.
            let commits: Vec<Vec<eventlite_core::NewEvent>> = interleaved
                .chunks(threads)
                .map(|c| c.iter().map(|e| new_event(e)).collect())
                .collect();
            let started = Instant::now();
            for commit in commits {
                store.store_bulk(commit)?;
            }
            bounds[slot].push(total as f64 / started.elapsed().as_secs_f64());
        }
        // The raw engine, 16 threads, one transaction each, on a store laid out by ours.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(engine.file());
        drop(open_ours(engine, &path, &setup)?);
        let per = total / 16;
        raws.push(match engine {
            Engine::Sqlite => {
                let conns = (0..16)
                    .map(|_| raw::sqlite::Raw::open(&path, &setup).map(Mutex::new))
                    .collect::<Result<Vec<_>>>()?;
                let next = std::sync::atomic::AtomicUsize::new(0);
                thread_local! {
                    static MINE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
                }
                let append = |_: usize, e: &BenchEvent| -> Result<()> {
                    // Each thread its own connection, as a hand-written service would have.
                    let i = MINE.with(|m| {
                        *m.get().get_or_insert_with(|| {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            m.set(Some(i));
                            i
                        })
                    });
                    let mut conn = conns[i % conns.len()]
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?;
                    conn.insert_one(e)
                };
                rate(16, per, &append)?
            }
            Engine::Redb => {
                let db = Mutex::new(raw::redb::Raw::open(&path, &setup)?);
                let append = |_: usize, e: &BenchEvent| -> Result<()> {
                    db.lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .insert_batch(std::slice::from_ref(e))
                };
                rate(16, per, &append)?
            }
            Engine::Postgres => anyhow::bail!("on the server, concurrent writers are in the postgres table"),
        });
    }
    b.record(
        TABLE,
        "1 thread",
        engine,
        "appends/s",
        ours[0].clone(),
        None,
    );
    for (slot, &threads) in THREADS.iter().enumerate().skip(1) {
        b.record(
            TABLE,
            &format!("{threads} threads, against one thread"),
            engine,
            "appends/s",
            ours[slot].clone(),
            Some(ours[0].clone()),
        );
    }
    for (slot, &threads) in BOUNDS.iter().enumerate() {
        let Some(i) = THREADS.iter().position(|&t| t == threads) else {
            continue;
        };
        b.record(
            TABLE,
            &bound_case(threads),
            engine,
            "appends/s",
            ours[i].clone(),
            Some(bounds[slot].clone()),
        );
    }
    b.record(
        TABLE,
        "16 threads, against the raw engine's 16 (a transaction each)",
        engine,
        "appends/s",
        ours[2].clone(),
        Some(raws),
    );
    Ok(())
}
