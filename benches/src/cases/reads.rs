//! The `reads` table: one store built once, read by ours and by the raw engine from copies
//! of its file, operation by operation.

use std::time::Instant;

use anyhow::{Context, Result};
use eventlite_core::{CachePolicy, Cursor, Durability, EventStore, IndexConfig, ManualClock, Page};

use crate::cases::cursor::cursor_against_first_page;
use crate::harness::{Bench, Slice, each_run, interleaved};
use crate::{Engine, Reads, Setup, Store, events, new_event, open_ours, raw};

/// The read cases' random draws (ids, correlation groups, time ranges): a xorshift that each
/// run seeds alike for ours and raw, so that both sides draw the same sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Builds the read store: N events, correlation groups of 100, 10 users, a clock that moves
/// 1 ms per 10 events.
fn build_read_store(engine: Engine, path: &std::path::Path, setup: &Setup, n: u64) -> Result<()> {
    let clock = std::sync::Arc::new(ManualClock::new(1_700_000_000_000));
    let backend: Box<dyn eventlite_core::Backend> = match engine {
        Engine::Sqlite => Box::new(eventlite_sqlite::SqliteBackend::open(
            path,
            Setup {
                durability: Durability::Relaxed,
                ..*setup
            }
            .sqlite(),
        )?),
        Engine::Redb => Box::new(eventlite_redb::RedbBackend::open(
            path,
            Setup {
                durability: Durability::Relaxed,
                ..*setup
            }
            .redb(),
        )?),
        Engine::Postgres => Box::new(eventlite_postgres::PostgresBackend::open(
            Setup {
                durability: Durability::Relaxed,
                ..*setup
            }
            .postgres(path)?,
        )?),
    };
    let store = EventStore::builder(backend)
        .clock(std::sync::Arc::clone(&clock))
        .build();
    for chunk in events(0, n).chunks(10) {
        store.store_bulk(chunk.iter().map(new_event).collect())?;
        clock.advance(1);
    }
    if engine == Engine::Postgres {
        crate::settle_pg_store(path)?;
    }
    Ok(())
}

/// A slice of a read case's work; returns how many units (operations, pages or events) it did.
type ReadOp<'a> = Box<dyn Fn(&mut dyn Reads, &mut Rng, Slice) -> Result<u64> + 'a>;

/// A read case of operations repeated `reps` times per slice.
fn repeated<'a>(op: impl Fn(&mut dyn Reads, &mut Rng) -> Result<()> + 'a) -> ReadOp<'a> {
    Box::new(move |r, rng, s: Slice| {
        for _ in 0..s.reps {
            op(r, rng)?;
        }
        Ok(s.reps)
    })
}

/// Every read case on `engine`, then the paired cursor case (see
/// [`cursor_against_first_page`]) when the run wants the `reads` table.
pub fn reads(b: &mut Bench, engine: Engine) -> Result<()> {
    let n = b.config.events;
    let k = if b.config.quick { 2_000 } else { 20_000 };
    let pages = if b.config.quick { 200 } else { 1_000 };
    let setup = Setup {
        indexes: IndexConfig::all(),
        cache: CachePolicy::read_optimized(),
        ..Setup::default()
    };
    let dir = crate::StoreDir::new(engine)?;
    let path = dir.path().join(engine.file());
    let started = Instant::now();
    build_read_store(engine, &path, &setup, n)?;
    eprintln!(
        "  built a {n}-event {} store in {:.1}s",
        engine.name(),
        started.elapsed().as_secs_f64()
    );
    let groups = n.div_ceil(100);
    let per_user = n / 10;
    let deep = per_user.saturating_sub(200);
    let t0 = 1_700_000_000_000i64;
    let span = (n / 10) as i64;
    let cursor: Cursor = {
        let store = open_ours(engine, &path, &setup)?;
        let page = store.by_user("user3", Page::offset(1, deep.saturating_sub(1)))?;
        page.events
            .first()
            .map(|e| e.cursor())
            .context("no event at the deep position")?
    };
    // (case, unit, units of work in all: operations, or events for a pass, the work)
    let cases: Vec<(&str, &'static str, u64, ReadOp<'_>)> = vec![
        (
            "get by id (random)",
            "ops/s",
            k,
            repeated(move |r, rng| r.get(rng.next(n) + 1).map(drop)),
        ),
        (
            "cached get (hot set of 100)",
            "ops/s",
            k,
            repeated(move |r, rng| r.get_cached(rng.next(100) + 1).map(drop)),
        ),
        (
            "cached get (random)",
            "ops/s",
            k,
            repeated(move |r, rng| r.get_cached(rng.next(n) + 1).map(drop)),
        ),
        (
            "correlation page of 100, offset 0",
            "pages/s",
            pages,
            repeated(move |r, rng| {
                r.correlation_page(&format!("corr-{}", rng.next(groups)), 0)
                    .map(drop)
            }),
        ),
        (
            "whole transaction of 100",
            "ops/s",
            pages,
            repeated(move |r, rng| {
                r.transaction(&format!("corr-{}", rng.next(groups)))
                    .map(drop)
            }),
        ),
        (
            "user page of 100, first page",
            "pages/s",
            pages,
            repeated(move |r, _| r.user_page_offset("user3", 0).map(drop)),
        ),
        (
            "user page of 100, deep by offset",
            "pages/s",
            pages,
            repeated(move |r, _| r.user_page_offset("user3", deep).map(drop)),
        ),
        (
            "user page of 100, deep by cursor",
            "pages/s",
            pages,
            repeated(move |r, _| r.user_page_after("user3", cursor).map(drop)),
        ),
        (
            "cmd page of 100",
            "pages/s",
            pages,
            repeated(move |r, _| r.cmd_page("item_shipped").map(drop)),
        ),
        (
            "time-range page of 100",
            "pages/s",
            pages,
            repeated(move |r, rng| {
                let from = t0 + rng.next(span as u64 / 2) as i64;
                r.time_page(from, from + 50).map(drop)
            }),
        ),
        (
            "stream all events",
            "events/s",
            n,
            Box::new(|r, _, s: Slice| r.stream_ids(s.first..=s.last)),
        ),
        (
            "replay through a trivial model",
            "events/s",
            n,
            Box::new(|r, _, s: Slice| r.replay_ids(s.first..=s.last)),
        ),
    ];
    // Ours and raw read copies of one file, so that both can be open at once (redb locks its
    // file against a second handle). On a server both read the one schema.
    let raw_path = match engine {
        Engine::Postgres => path.clone(),
        _ => {
            let raw_path = dir.path().join(format!("raw-{}", engine.file()));
            copy_store(&path, &raw_path)?;
            raw_path
        }
    };
    let (raw_path, setup_ref) = (&raw_path, &setup);
    let wants_reads = b.config.wants("reads");
    let against_raw = cases.iter().filter(|_| wants_reads);
    let open_raw = move || -> Result<Box<dyn Reads>> {
        Ok(match engine {
            Engine::Sqlite => Box::new(raw::sqlite::Raw::open(raw_path, setup_ref)?),
            Engine::Redb => Box::new(raw::redb::Raw::open(raw_path, setup_ref)?),
            Engine::Postgres => Box::new(raw::postgres::Raw::open(
                &crate::pg_url()?,
                &crate::pg_schema(raw_path),
                Durability::Relaxed,
            )?),
        })
    };
    run_cases(b, "reads", engine, &path, &setup, against_raw, &open_raw)?;
    if b.config.wants(CHECKS) {
        // The same reads without the answer checks: the engine's own answers, as `EventStore`
        // passed them on before it checked them.
        let unchecked = move || -> Result<Box<dyn Reads>> {
            Ok(Box::new(Unchecked(open_ours(engine, raw_path, setup_ref)?)))
        };
        let checked = cases
            .iter()
            .filter(|(case, ..)| CHECKED_CASES.contains(case));
        run_cases(b, CHECKS, engine, &path, &setup, checked, &unchecked)?;
    }
    if wants_reads {
        cursor_against_first_page(b, engine, &path, &setup, pages, cursor)?;
    }
    Ok(())
}

/// The table that prices the checks of every answer (ours against ours unchecked).
pub const CHECKS: &str = "checks";

/// The read cases of the checks table.
pub const CHECKED_CASES: [&str; 2] = ["get by id (random)", "stream all events"];

/// Ours with the engine's answers passed on unchecked, for the checks table's baseline.
struct Unchecked(Store);

impl Reads for Unchecked {
    fn get(&mut self, id: u64) -> Result<bool> {
        Ok(self.0.backend().get(id)?.is_some())
    }
    fn get_cached(&mut self, id: u64) -> Result<bool> {
        Reads::get_cached(&mut self.0, id)
    }
    fn correlation_page(&mut self, corr: &str, offset: u64) -> Result<usize> {
        Reads::correlation_page(&mut self.0, corr, offset)
    }
    fn user_page_offset(&mut self, user: &str, offset: u64) -> Result<usize> {
        Reads::user_page_offset(&mut self.0, user, offset)
    }
    fn user_page_after(&mut self, user: &str, cursor: Cursor) -> Result<usize> {
        Reads::user_page_after(&mut self.0, user, cursor)
    }
    fn transaction(&mut self, corr: &str) -> Result<usize> {
        Reads::transaction(&mut self.0, corr)
    }
    fn cmd_page(&mut self, cmd: &str) -> Result<usize> {
        Reads::cmd_page(&mut self.0, cmd)
    }
    fn time_page(&mut self, from: i64, to: i64) -> Result<usize> {
        Reads::time_page(&mut self.0, from, to)
    }
    /// Keyset batches of 1,000 straight from the engine, a new batch each, as `EventStream`
    /// reads them when iterated.
    fn stream_ids(&mut self, ids: std::ops::RangeInclusive<u64>) -> Result<u64> {
        let mut query = eventlite_core::Query::new(
            eventlite_core::Filter {
                id_from: Some(*ids.start()),
                id_to: Some(*ids.end()),
                ..eventlite_core::Filter::default()
            },
            eventlite_core::Order::IdAsc,
        )
        .limit(1_000);
        let mut n = 0;
        loop {
            let batch = self.0.backend().query(&query)?;
            n += batch.len() as u64;
            match batch.last() {
                Some(last) if batch.len() == 1_000 => query.after = Some(last.cursor()),
                _ => return Ok(n),
            }
        }
    }
    fn replay_ids(&mut self, ids: std::ops::RangeInclusive<u64>) -> Result<u64> {
        Reads::replay_ids(&mut self.0, ids)
    }
}

/// Runs `cases` on `engine`, ours (`path`) against `baseline`, into `table`.
fn run_cases<'c>(
    b: &mut Bench,
    table: &'static str,
    engine: Engine,
    path: &std::path::Path,
    setup: &Setup,
    cases: impl Iterator<Item = &'c (&'c str, &'static str, u64, ReadOp<'c>)>,
    baseline: &dyn Fn() -> Result<Box<dyn Reads>>,
) -> Result<()> {
    for (case, unit, total, op) in cases {
        let (ours, raws) = each_run(b.config.runs, |run| {
            let mut store: Store = open_ours(engine, path, setup)?;
            let mut raw = baseline()?;
            // Both sides draw the same ids from the same sequence.
            let seed = || Rng(0x9E37_79B9_7F4A_7C15 ^ run as u64);
            let (mut rng_ours, mut rng_raw) = (seed(), seed());
            let (slices, per) = Slice::plan(*total);
            let slice = |i: usize| Slice::nth(i as u64, per, *total);
            let (mut done_ours, mut done_raw) = (0, 0);
            let (t_ours, t_raw) = interleaved(
                slices as usize,
                run,
                |i| {
                    done_ours += op(&mut store, &mut rng_ours, slice(i))?;
                    Ok(())
                },
                |i| {
                    done_raw += op(raw.as_mut(), &mut rng_raw, slice(i))?;
                    Ok(())
                },
                // Reads start no background work.
                || Ok(()),
            )?;
            anyhow::ensure!(
                done_ours == done_raw,
                "{case}: ours did {done_ours} units of work, raw {done_raw}"
            );
            Ok((done_ours as f64 / t_ours, done_raw as f64 / t_raw))
        })?;
        b.record(table, case, engine, unit, ours, Some(raws));
    }
    Ok(())
}

/// Copies a closed store's file (and a SQLite write-ahead log, should one be left).
pub(crate) fn copy_store(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::copy(from, to)?;
    let wal = |p: &std::path::Path| {
        let mut name = p.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    if wal(from).exists() {
        std::fs::copy(wal(from), wal(to))?;
    }
    Ok(())
}
