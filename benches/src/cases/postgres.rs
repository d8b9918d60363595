//! The `postgres` table: the PostgreSQL engine against plain `postgres` client code doing the
//! same rows in the same schema, with the same indexes and session settings (see
//! [`crate::raw::postgres`]), on the server at `EVENTLITE_PG_URL` (started by
//! `scripts/with-postgres`). Ours and raw take turns on slices of the same work, each on a
//! store of its own.
//!
//! Cases: durable single appends, durable bulk appends of 1,000, gets by id, whole
//! transactions of 100 events, and 16 threads appending single durable events (ours: one
//! handle, whose appends share commits; raw: 16 connections, a transaction each). The
//! 16-thread case also runs on one thread, and, on the same machine in the same run, on a
//! SQLite file, for the docs' comparison.

use std::sync::Mutex;

use anyhow::Result;
use eventlite_core::{Backend, Durability, EventStore, IndexConfig};
use eventlite_postgres::{PostgresBackend, PostgresOptions};

use crate::cases::concurrent::rate;
use crate::harness::{Bench, Slice, each_run, interleaved};
use crate::{BenchEvent, Engine, Setup, Store, events, new_event, open_ours, pg_url as url, raw};

/// The table's name in the report.
pub const TABLE: &str = "postgres";

/// The 16-thread case's name.
pub const CONCURRENT: &str = "16 threads, single durable appends";

/// The 16-thread case against other baselines than raw client code: ours with one thread, and
/// ours on a SQLite file on this machine (held to no ratio: they say what the server costs).
pub const AGAINST_OTHERS: [&str; 2] = [
    "16 threads, against ours with 1 thread",
    "16 threads, against SQLite (ours, a file on this machine) with 16",
];

/// A fresh schema on the server, dropped with this value.
struct Schema(String);

impl Schema {
    fn new(tag: &str) -> Schema {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Schema(format!("bench_{tag}_{}_{n}", std::process::id()))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        crate::drop_pg_schemas(|_| vec![self.0.clone()]);
    }
}

/// Our store in `schema`, with the tables' default indexes.
fn ours(schema: &Schema, durability: Durability) -> Result<Store> {
    let options = PostgresOptions {
        schema: schema.0.clone(),
        indexes: IndexConfig::high_volume(),
        durability,
        ..PostgresOptions::new(url()?)
    };
    let backend: Box<dyn Backend> = Box::new(PostgresBackend::open(options)?);
    Ok(EventStore::new(backend))
}

/// A raw connection to a store laid out by ours in `schema`.
fn raw_in(schema: &Schema, durability: Durability) -> Result<raw::postgres::Raw> {
    drop(ours(schema, durability)?);
    raw::postgres::Raw::open(&url()?, &schema.0, durability)
}

/// Appends per second by ours and by raw, each on a fresh store, `batch` events per append.
fn appends(run: usize, total: u64, batch: u64) -> Result<(f64, f64)> {
    let (ours_schema, raw_schema) = (Schema::new("ours"), Schema::new("raw"));
    let store = ours(&ours_schema, Durability::Immediate)?;
    let mut raw = raw_in(&raw_schema, Durability::Immediate)?;
    let work = events(0, total);
    let batches: Vec<&[BenchEvent]> = work.chunks(batch as usize).collect();
    let (slices, per) = Slice::plan(batches.len() as u64);
    let slice = |i: usize| {
        let from = (i as u64 * per) as usize;
        &batches[from.min(batches.len())..((i as u64 + 1) * per).min(batches.len() as u64) as usize]
    };
    let (o, r) = interleaved(
        slices as usize,
        run,
        |i| {
            for es in slice(i) {
                if es.len() == 1 {
                    store.store(new_event(&es[0]))?;
                } else {
                    store.store_bulk(es.iter().map(new_event).collect())?;
                }
            }
            Ok(())
        },
        |i| {
            for es in slice(i) {
                raw.insert_batch(es)?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    Ok((total as f64 / o, total as f64 / r))
}

/// Reads per second by ours and by raw, `reps` reads each: `ours_op(store, i)` and
/// `raw_op(raw, i)` do the `i`th read on each side and say how many events it found.
fn reads(
    run: usize,
    reps: u64,
    ours_op: impl Fn(&Store, u64) -> Result<usize>,
    raw_op: impl Fn(&mut raw::postgres::Raw, u64) -> Result<usize>,
    stores: &(Store, Mutex<raw::postgres::Raw>),
) -> Result<(f64, f64)> {
    let (slices, per) = Slice::plan(reps);
    let (store, raw) = stores;
    let mut raw = raw.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let (mut ours_n, mut raw_n) = (0usize, 0usize);
    let (o, r) = interleaved(
        slices as usize,
        run,
        |i| {
            for k in i as u64 * per..((i as u64 + 1) * per).min(reps) {
                ours_n += ours_op(store, k)?;
            }
            Ok(())
        },
        |i| {
            for k in i as u64 * per..((i as u64 + 1) * per).min(reps) {
                raw_n += raw_op(&mut raw, k)?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    anyhow::ensure!(ours_n == raw_n, "ours read {ours_n} events, raw {raw_n}");
    Ok((reps as f64 / o, reps as f64 / r))
}

/// Every case of the table.
pub fn postgres(b: &mut Bench) -> Result<()> {
    {
        // The `waiting` table's case, on the server.
        let (with_schema, without_schema) = (Schema::new("parked"), Schema::new("none"));
        let with = ours(&with_schema, Durability::Relaxed)?;
        let without = ours(&without_schema, Durability::Relaxed)?;
        let none: crate::Wait = Box::new(|| {});
        let n = if b.config.quick { 300 } else { 3_000 };
        crate::cases::waiting::parked_against_none(
            b,
            Engine::Postgres,
            n,
            (&with, &none),
            (&without, &none),
        )?;
    }
    let quick = b.config.quick;
    let runs = b.config.runs;
    let singles: u64 = if quick { 200 } else { 2_000 };
    let (o, r) = each_run(runs, |run| appends(run, singles, 1))?;
    b.record(
        TABLE,
        "single durable appends",
        Engine::Postgres,
        "events/s",
        o,
        Some(r),
    );

    let bulk: u64 = if quick { 5_000 } else { 50_000 };
    let (o, r) = each_run(runs, |run| appends(run, bulk, 1_000))?;
    b.record(
        TABLE,
        "durable bulk appends of 1,000",
        Engine::Postgres,
        "events/s",
        o,
        Some(r),
    );

    // Reads: one store each, loaded the same way.
    let stored: u64 = if quick {
        5_000
    } else {
        b.config.events.clamp(100, 50_000)
    };
    let (ours_schema, raw_schema) = (Schema::new("rours"), Schema::new("rraw"));
    let store = ours(&ours_schema, Durability::Relaxed)?;
    let mut raw = raw_in(&raw_schema, Durability::Relaxed)?;
    for chunk in events(0, stored).chunks(1_000) {
        store.store_bulk(chunk.iter().map(new_event).collect())?;
        raw.insert_batch(chunk)?;
    }
    let stores = (store, Mutex::new(raw));
    let gets: u64 = if quick { 500 } else { 5_000 };
    let id = |k: u64| k * 7_919 % stored + 1;
    let (o, r) = each_run(runs, |run| {
        reads(
            run,
            gets,
            |s, k| Ok(usize::from(s.get(id(k))?.is_some())),
            |raw, k| Ok(usize::from(raw.get(id(k))?.is_some())),
            &stores,
        )
    })?;
    b.record(TABLE, "get by id", Engine::Postgres, "reads/s", o, Some(r));
    let groups = stored / 100;
    let transactions: u64 = if quick { 100 } else { 1_000 };
    let corr = |k: u64| format!("corr-{}", k * 31 % groups);
    let (o, r) = each_run(runs, |run| {
        reads(
            run,
            transactions,
            |s, k| Ok(s.transaction(&corr(k))?.len()),
            |raw, k| Ok(raw.transaction(&corr(k))?.len()),
            &stores,
        )
    })?;
    b.record(
        TABLE,
        "whole transaction (100 events)",
        Engine::Postgres,
        "reads/s",
        o,
        Some(r),
    );
    drop(stores);

    // Concurrent durable appends.
    let total: u64 = if quick { 1_024 } else { 4_096 };
    let per = total / 16;
    // The four measurements take turns in an order that rotates with the run, so that the
    // server's background work one of them leaves (a WAL checkpoint) does not always fall on
    // the same next one.
    let mut figures: [Vec<f64>; 4] = Default::default();
    for run in 0..runs {
        for k in 0..4 {
            let which = (k + run) % 4;
            let figure = match which {
                0 | 1 => {
                    let threads = if which == 0 { 1 } else { 16 };
                    let schema = Schema::new("c");
                    let store = ours(&schema, Durability::Immediate)?;
                    rate(threads, total / threads as u64, &|_, e| {
                        store.store(new_event(e))?;
                        Ok(())
                    })?
                }
                2 => {
                    let schema = Schema::new("r16");
                    drop(ours(&schema, Durability::Immediate)?);
                    let conns = (0..16)
                        .map(|_| {
                            raw::postgres::Raw::open(&url()?, &schema.0, Durability::Immediate)
                                .map(Mutex::new)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    rate(16, per, &|t, e| {
                        let mut conn = conns[t].lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                        conn.insert_batch(std::slice::from_ref(e))
                    })?
                }
                _ => {
                    let dir = tempfile::tempdir()?;
                    let lite = open_ours(
                        Engine::Sqlite,
                        &dir.path().join(Engine::Sqlite.file()),
                        &Setup::default(),
                    )?;
                    rate(16, per, &|_, e| {
                        lite.store(new_event(e))?;
                        Ok(())
                    })?
                }
            };
            figures[which].push(figure);
        }
    }
    let [o1, o16, r16, lite16] = figures;
    b.record(
        TABLE,
        CONCURRENT,
        Engine::Postgres,
        "events/s",
        o16.clone(),
        Some(r16),
    );
    b.record(
        TABLE,
        AGAINST_OTHERS[0],
        Engine::Postgres,
        "events/s",
        o16.clone(),
        Some(o1),
    );
    b.record(
        TABLE,
        AGAINST_OTHERS[1],
        Engine::Postgres,
        "events/s",
        o16,
        Some(lite16),
    );
    Ok(())
}
