//! The write tables (`index`, `durability`, `bulk`, `profiles`): each case writes the same
//! events through our store and through the raw engine, each to a fresh file.

use anyhow::Result;
use eventlite_core::{CachePolicy, Durability, Event, IndexConfig, NewEvent};
use eventlite_sqlite::{JournalMode, Synchronous};

use crate::harness::{Bench, Mode, RawWriter, SLICES, each_run, interleaved};
use crate::{BenchEvent, Engine, Setup, events, new_event, open_ours_with_wait};

impl Bench {
    /// One write case: `runs` runs, each writing the data to a fresh file of ours and a fresh
    /// file of raw, in interleaved slices (see [`interleaved`]).
    fn write_case(
        &mut self,
        table: &'static str,
        case: &str,
        engine: Engine,
        setup: Setup,
        mode: Mode,
        n: u64,
    ) -> Result<()> {
        if !self.config.wants(table) {
            return Ok(());
        }
        let data = events(0, n);
        let (ours, raws) = each_run(self.config.runs, |run| {
            write_pair(engine, &setup, mode, &data, run)
        })?;
        self.record(table, case, engine, "events/s", ours, Some(raws));
        Ok(())
    }
}

/// Times a case whose work is one call (a `store_bulk` of everything) is repeated with, on
/// fresh files each time, taking turns like slices: one pair of calls per run left a ratio at
/// the mercy of one slow spell (a redb one-call ratio read 0.73, 0.86 and 1.00 in three runs).
const ONE_CALL_ROUNDS: usize = 3;

/// One run of a write case: `data` written by ours and by raw, each to a new file of its own,
/// in interleaved slices of whole calls (a slice is some `store` calls, or some `store_bulk`
/// batches). One call of everything is one slice, so it is done [`ONE_CALL_ROUNDS`] times.
/// Returns (ours, raw) in events/s.
fn write_pair(
    engine: Engine,
    setup: &Setup,
    mode: Mode,
    data: &[BenchEvent],
    run: usize,
) -> Result<(f64, f64)> {
    let one_call = matches!(mode, Mode::Bulk(size) if size >= data.len());
    let rounds = if one_call { ONE_CALL_ROUNDS } else { 1 };
    let (mut ours, mut raw) = (0.0, 0.0);
    for round in 0..rounds {
        let (o, r) = write_pair_once(engine, setup, mode, data, run * rounds + round)?;
        ours += o;
        raw += r;
    }
    let n = (data.len() * rounds) as f64;
    Ok((n / ours, n / raw))
}

/// [`write_pair`] on one pair of new files; returns (ours, raw) in seconds.
fn write_pair_once(
    engine: Engine,
    setup: &Setup,
    mode: Mode,
    data: &[BenchEvent],
    run: usize,
) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let (store, wait) = open_ours_with_wait(engine, &dir.path().join(engine.file()), setup)?;
    let raw_path = dir.path().join(format!("raw-{}", engine.file()));
    let mut raw = RawWriter::create(engine, &raw_path, setup)?;
    let unit = match mode {
        Mode::Individual => 1,
        Mode::Bulk(size) => size.max(1),
    };
    let units: Vec<&[BenchEvent]> = data.chunks(unit).collect();
    let slices: Vec<&[&[BenchEvent]]> = units.chunks(units.len().div_ceil(SLICES).max(1)).collect();
    // Ours takes its events by value: they are built before the clock starts, as raw's rows
    // are. The stored events it returns hold those same strings, so they are kept until the
    // clock stops: raw's rows are freed after it too.
    let mut ours_slices: Vec<Vec<Vec<NewEvent>>> = slices
        .iter()
        .map(|s| {
            s.iter()
                .map(|u| u.iter().map(new_event).collect())
                .collect()
        })
        .collect();
    let (mut kept, mut kept_batches): (Vec<Event>, Vec<Vec<Event>>) = match mode {
        Mode::Individual => (Vec::with_capacity(data.len()), Vec::new()),
        Mode::Bulk(_) => (Vec::new(), Vec::with_capacity(units.len())),
    };
    let (ours, raw) = interleaved(
        slices.len(),
        run,
        |i| {
            for unit in std::mem::take(&mut ours_slices[i]) {
                match mode {
                    Mode::Individual => {
                        for e in unit {
                            kept.push(store.store(e)?);
                        }
                    }
                    Mode::Bulk(_) => kept_batches.push(store.store_bulk(unit)?),
                }
            }
            Ok(())
        },
        |i| slices[i].iter().try_for_each(|u| raw.write(mode, u)),
        || {
            wait();
            Ok(())
        },
    )?;
    drop((kept, kept_batches));
    Ok((ours, raw))
}

/// Every write case on `engine`, table by table, skipping the tables the run leaves out.
pub fn writes(b: &mut Bench, engine: Engine) -> Result<()> {
    let n_single = if b.config.quick { 300 } else { 2_000 };
    let n_bulk = b.config.events;
    let base = Setup::default();
    for (case, indexes) in [
        ("minimal indexes (2)", IndexConfig::high_volume()),
        (
            "query-optimized indexes (7)",
            IndexConfig::query_optimized(),
        ),
        ("all indexes (8)", IndexConfig::all()),
    ] {
        b.write_case(
            "index",
            case,
            engine,
            Setup { indexes, ..base },
            Mode::Individual,
            n_single,
        )?;
    }
    let durability: Vec<(&str, Setup)> = match engine {
        Engine::Sqlite => vec![
            (
                "DELETE journal, FULL",
                Setup {
                    journal: JournalMode::Delete,
                    ..base
                },
            ),
            ("WAL, FULL (Immediate)", base),
            (
                "WAL, NORMAL (Relaxed)",
                Setup {
                    durability: Durability::Relaxed,
                    ..base
                },
            ),
            (
                "WAL, OFF",
                Setup {
                    synchronous: Some(Synchronous::Off),
                    ..base
                },
            ),
        ],
        Engine::Redb => vec![
            ("Immediate", base),
            (
                "Relaxed",
                Setup {
                    durability: Durability::Relaxed,
                    ..base
                },
            ),
        ],
        Engine::Postgres => Vec::new(),
    };
    for (case, setup) in durability {
        b.write_case(
            "durability",
            case,
            engine,
            setup,
            Mode::Individual,
            n_single,
        )?;
    }
    b.write_case(
        "bulk",
        "individual store",
        engine,
        base,
        Mode::Individual,
        n_single,
    )?;
    b.write_case(
        "bulk",
        &format!("store_bulk, one call of {n_bulk}"),
        engine,
        base,
        Mode::Bulk(n_bulk as usize),
        n_bulk,
    )?;
    b.write_case(
        "bulk",
        "store_bulk, batches of 1000",
        engine,
        base,
        Mode::Bulk(1_000),
        n_bulk,
    )?;
    b.write_case(
        "bulk",
        "store_bulk, batches of 100",
        engine,
        base,
        Mode::Bulk(100),
        n_bulk,
    )?;
    for (case, indexes, cache) in [
        (
            "high-volume (cache off)",
            IndexConfig::high_volume(),
            CachePolicy::write_optimized(),
        ),
        (
            "balanced (cache 1000/5min)",
            IndexConfig::balanced(),
            CachePolicy::balanced(),
        ),
        (
            "query-optimized (cache 5000/10min)",
            IndexConfig::query_optimized(),
            CachePolicy::query_optimized(),
        ),
    ] {
        b.write_case(
            "profiles",
            case,
            engine,
            Setup {
                indexes,
                cache,
                ..base
            },
            Mode::Individual,
            n_single,
        )?;
    }
    Ok(())
}
