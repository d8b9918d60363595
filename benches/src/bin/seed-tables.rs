//! The performance guide's tables, measured per engine beside the raw engine underneath.
//!
//! `cargo run --release -p eventlite-benches --bin seed-tables -- [--quick] [--events N]
//! [--runs R] [--engines sqlite,redb] [--only bulk,reads,…] [--json PATH] [--markdown PATH]
//! [--svg PATH] [--scale] [--render JSON]`; `--help` prints what each flag does.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use eventlite_benches::raw;
use eventlite_benches::{
    BenchEvent, Engine, Reads, Setup, Store, events, new_event, open_ours, open_ours_with_wait,
};
use eventlite_core::{
    CachePolicy, Cursor, Durability, Event, EventStore, IndexConfig, ManualClock, NewEvent, Page,
};
use eventlite_sqlite::{JournalMode, Synchronous};
use serde::{Deserialize, Serialize};

struct Args {
    quick: bool,
    events: u64,
    runs: usize,
    engines: Vec<Engine>,
    json: Option<String>,
    markdown: Option<String>,
    svg: Option<String>,
    scale: bool,
    render: Option<String>,
    /// Only these tables (`index`, `durability`, `bulk`, `profiles`, `reads`); all when empty.
    only: Vec<String>,
}

impl Args {
    fn wants(&self, table: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|t| t == table)
    }
}

const USAGE: &str = "\
usage: seed-tables [--quick] [--events N] [--runs R] [--engines sqlite,redb]
                   [--only index,durability,bulk,profiles,reads]
                   [--json PATH] [--markdown PATH] [--svg PATH]
       seed-tables --scale [--engines sqlite,redb] [--json PATH] [--markdown PATH]
       seed-tables --render JSON [--markdown PATH] [--svg PATH]

  --quick     20,000 events, 3 runs (the CI smoke run; under 60 s)
  --events N  events per store (default 100,000)
  --runs R    runs per figure; each figure is their median (default 5)
  --scale     append windows at 0, 1M and 5M stored events, then stream them all
  --render    re-print the tables of an earlier run's JSON";

/// `None` when the user asked for the usage text.
fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        quick: false,
        events: 0,
        runs: 0,
        engines: vec![Engine::Sqlite, Engine::Redb],
        json: None,
        markdown: None,
        svg: None,
        scale: false,
        render: None,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => args.quick = true,
            "--scale" => args.scale = true,
            "--events" => args.events = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--json" => args.json = Some(value()?),
            "--markdown" => args.markdown = Some(value()?),
            "--svg" => args.svg = Some(value()?),
            "--render" => args.render = Some(value()?),
            "--only" => {
                args.only = value()?.split(',').map(str::to_owned).collect();
                let known = ["index", "durability", "bulk", "profiles", "reads"];
                if let Some(t) = args.only.iter().find(|t| !known.contains(&t.as_str())) {
                    bail!("unknown table {t} (known: {})", known.join(", "));
                }
            }
            "--engines" => {
                args.engines = value()?
                    .split(',')
                    .map(|e| match e {
                        "sqlite" => Ok(Engine::Sqlite),
                        "redb" => Ok(Engine::Redb),
                        other => bail!("unknown engine {other}"),
                    })
                    .collect::<Result<_>>()?
            }
            other => bail!("unknown argument {other}\n\n{USAGE}"),
        }
    }
    if args.events == 0 {
        args.events = if args.quick { 20_000 } else { 100_000 };
    }
    if args.runs == 0 {
        args.runs = if args.quick { 3 } else { 5 };
    }
    Ok(Some(args))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    samples: Vec<f64>,
}

impl Stat {
    fn of(mut samples: Vec<f64>) -> Stat {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if !n.is_multiple_of(2) {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Stat {
            median,
            min: samples[0],
            max: samples[n - 1],
            samples,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    table: String,
    case: String,
    engine: String,
    unit: String,
    ours: Stat,
    raw: Option<Stat>,
    ratio: Option<f64>,
}

struct Bench {
    args: Args,
    rows: Vec<Row>,
    /// Two of our own operations timed against each other (in `raw`'s place), for targets
    /// that compare ours with ours; not printed among the tables.
    paired: Vec<Row>,
}

/// How a write case writes.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Individual,
    Bulk(usize),
}

impl Row {
    /// A case's figures: `ours[i]` and `raw[i]` were measured in run `i`.
    fn new(
        table: &str,
        case: &str,
        engine: Engine,
        unit: &str,
        ours: Vec<f64>,
        raw: Option<Vec<f64>>,
    ) -> Row {
        // Run i measured ours and raw in interleaved slices (see `interleaved`), so each pair
        // shares the machine's state of that moment; the median of the pairs' ratios cancels
        // drift between runs.
        let ratio = raw.as_ref().map(|raw| {
            let pairs = ours.iter().zip(raw).map(|(o, r)| o / r).collect();
            Stat::of(pairs).median
        });
        Row {
            table: table.to_owned(),
            case: case.to_owned(),
            engine: engine.name().to_owned(),
            unit: unit.to_owned(),
            ours: Stat::of(ours),
            raw: raw.map(Stat::of),
            ratio,
        }
    }

    /// The progress line for this row.
    fn print(&self) {
        eprintln!(
            "  {:<10} {:<44} {:<6} ours {:>12.0}  raw {:>12}  ratio {}",
            self.table,
            self.case,
            self.engine,
            self.ours.median,
            self.raw
                .as_ref()
                .map_or("-".into(), |r| format!("{:.0}", r.median)),
            self.ratio.map_or("-".into(), |r| format!("{r:.2}")),
        );
    }
}

fn rate(n: u64, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

impl Bench {
    fn record(
        &mut self,
        table: &'static str,
        case: &str,
        engine: Engine,
        unit: &'static str,
        ours: Vec<f64>,
        raw: Option<Vec<f64>>,
    ) {
        let row = Row::new(table, case, engine, unit, ours, raw);
        row.print();
        self.rows.push(row);
    }

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
        if !self.args.wants(table) {
            return Ok(());
        }
        let data = events(0, n);
        let (ours, raws) = each_run(self.args.runs, |run| {
            write_pair(engine, &setup, mode, &data, run)
        })?;
        self.record(table, case, engine, "events/s", ours, Some(raws));
        Ok(())
    }
}

/// `runs` measurements of (ours, raw), as two lists.
fn each_run(
    runs: usize,
    mut pair: impl FnMut(usize) -> Result<(f64, f64)>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut o, mut r) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for run in 0..runs {
        let (ours, raw) = pair(run)?;
        o.push(ours);
        r.push(raw);
    }
    Ok((o, r))
}

/// How many slices a case's work is cut into, at most.
const SLICES: usize = 20;

/// Ours and raw, both open, take turns on equal slices of the work: A B, B A, A B, …, with
/// the first turn alternating by `run` too. Each side's time is the sum of its turns. A slow
/// spell of this shared machine (a neighbour's job, a slow fsync) then falls on both sides
/// within a slice, where timing all of ours and then all of raw let it fall on one side.
/// Whichever goes second in a turn finds the heap and CPU caches the first one left, hence
/// the alternation. `ours(i)` and `raw(i)` do slice `i`; returns their (ours, raw) seconds.
/// `settle()` runs after each of our turns, off the clock: it waits for the background work
/// our turn started (a SQLite checkpoint still running), so that it never runs during raw's
/// turn.
fn interleaved(
    slices: usize,
    run: usize,
    mut ours: impl FnMut(usize) -> Result<()>,
    mut raw: impl FnMut(usize) -> Result<()>,
    mut settle: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    fn timed(f: &mut dyn FnMut(usize) -> Result<()>, i: usize) -> Result<f64> {
        let started = Instant::now();
        f(i)?;
        Ok(started.elapsed().as_secs_f64())
    }
    let (mut o, mut r) = (0.0, 0.0);
    for i in 0..slices {
        if (i + run).is_multiple_of(2) {
            o += timed(&mut ours, i)?;
            settle()?;
            r += timed(&mut raw, i)?;
        } else {
            r += timed(&mut raw, i)?;
            o += timed(&mut ours, i)?;
            settle()?;
        }
    }
    Ok((o, r))
}

/// A raw writer of either engine.
enum RawWriter {
    Sqlite(raw::sqlite::Raw),
    Redb(raw::redb::Raw),
}

impl RawWriter {
    /// A raw writer of a new file at `path`, which our backend lays out first (schema and
    /// indexes), so that raw code writes the same file ours does.
    fn create(engine: Engine, path: &std::path::Path, setup: &Setup) -> Result<Self> {
        drop(open_ours(engine, path, setup)?);
        Ok(match engine {
            Engine::Sqlite => RawWriter::Sqlite(raw::sqlite::Raw::open(path, setup)?),
            Engine::Redb => RawWriter::Redb(raw::redb::Raw::open(path, setup)?),
        })
    }

    /// Writes `unit` as ours does in `mode`: event by event, or as one batch.
    fn write(&mut self, mode: Mode, unit: &[BenchEvent]) -> Result<()> {
        match (self, mode) {
            (RawWriter::Sqlite(r), Mode::Individual) => {
                unit.iter().try_for_each(|e| r.insert_one(e))
            }
            (RawWriter::Redb(r), Mode::Individual) => unit.iter().try_for_each(|e| r.insert_one(e)),
            (RawWriter::Sqlite(r), Mode::Bulk(_)) => r.insert_batch(unit),
            (RawWriter::Redb(r), Mode::Bulk(_)) => r.insert_batch(unit),
        }
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

fn writes(b: &mut Bench, engine: Engine) -> Result<()> {
    let n_single = if b.args.quick { 300 } else { 2_000 };
    let n_bulk = b.args.events;
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
    };
    let store = EventStore::builder(backend)
        .clock(std::sync::Arc::clone(&clock))
        .build();
    for chunk in events(0, n).chunks(10) {
        store.store_bulk(chunk.iter().map(new_event).collect())?;
        clock.advance(1);
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

/// One slice of a read case's work of `total` units: `reps` operations, or, for a pass over
/// the log, the ids `first..=last` (`reps` of them). The slices tile `1..=total`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slice {
    reps: u64,
    first: u64,
    last: u64,
}

impl Slice {
    /// How many slices of how many units each (the last may hold fewer) cut `total` units
    /// into at most [`SLICES`] slices, none empty.
    fn plan(total: u64) -> (u64, u64) {
        let per = total.div_ceil(SLICES as u64).max(1);
        (total.div_ceil(per), per)
    }

    /// Slice `i`, of `per` units, over `total` units.
    fn nth(i: u64, per: u64, total: u64) -> Slice {
        let first = i * per + 1;
        let last = ((i + 1) * per).min(total);
        Slice {
            reps: (last + 1).saturating_sub(first),
            first,
            last,
        }
    }
}

fn reads(b: &mut Bench, engine: Engine) -> Result<()> {
    let n = b.args.events;
    let k = if b.args.quick { 2_000 } else { 20_000 };
    let pages = if b.args.quick { 200 } else { 1_000 };
    let setup = Setup {
        indexes: IndexConfig::all(),
        cache: CachePolicy::read_optimized(),
        ..Setup::default()
    };
    let dir = tempfile::tempdir()?;
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
    // file against a second handle).
    let raw_path = dir.path().join(format!("raw-{}", engine.file()));
    copy_store(&path, &raw_path)?;
    for (case, unit, total, op) in &cases {
        let (ours, raws) = each_run(b.args.runs, |run| {
            let mut store: Store = open_ours(engine, &path, &setup)?;
            let mut raw: Box<dyn Reads> = match engine {
                Engine::Sqlite => Box::new(raw::sqlite::Raw::open(&raw_path, &setup)?),
                Engine::Redb => Box::new(raw::redb::Raw::open(&raw_path, &setup)?),
            };
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
        b.record("reads", case, engine, unit, ours, Some(raws));
    }
    if b.args.wants("reads") {
        cursor_against_first_page(b, engine, &path, &setup, pages, cursor)?;
    }
    Ok(())
}

/// Name of the paired case behind the cursor target.
const DEEP_VS_FIRST: &str = "user page of 100: deep by cursor, against the first page";

/// The cursor target (a deep page by cursor costs what the first page costs), measured on
/// our store alone: the two pages take turns in interleaved slices of each run, as ours and
/// raw do, because the medians of two cases timed at different moments differ by the
/// machine's drift (0.84× and 1.47× in two runs of the same code).
fn cursor_against_first_page(
    b: &mut Bench,
    engine: Engine,
    path: &std::path::Path,
    setup: &Setup,
    pages: u64,
    cursor: Cursor,
) -> Result<()> {
    let (deep, first) = each_run(b.args.runs, |run| {
        let store = std::cell::RefCell::new(open_ours(engine, path, setup)?);
        let (slices, per) = Slice::plan(pages);
        let reps = |i: usize| Slice::nth(i as u64, per, pages).reps;
        let (t_deep, t_first) = interleaved(
            slices as usize,
            run,
            |i| {
                for _ in 0..reps(i) {
                    store.borrow_mut().user_page_after("user3", cursor)?;
                }
                Ok(())
            },
            |i| {
                for _ in 0..reps(i) {
                    store.borrow_mut().user_page_offset("user3", 0)?;
                }
                Ok(())
            },
            || Ok(()),
        )?;
        Ok((pages as f64 / t_deep, pages as f64 / t_first))
    })?;
    // In `raw`'s place: the first page.
    let row = Row::new(
        "cursor",
        DEEP_VS_FIRST,
        engine,
        "pages/s",
        deep,
        Some(first),
    );
    row.print();
    b.paired.push(row);
    Ok(())
}

/// Copies a closed store's file (and a SQLite write-ahead log, should one be left).
fn copy_store(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
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

/// Resident memory from `/proc/self/status`, in KiB: (anonymous, file-backed). Anonymous is
/// the heap (caches, buffers); file-backed is mapped file pages, which the kernel can drop.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// Windows of bulk appends measured at each level of stored events.
const SCALE_WINDOWS: usize = 3;

fn scale(b: &mut Bench, engine: Engine) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(engine.file());
    let setup = Setup::default();
    let store = open_ours(engine, &path, &setup)?;
    let window = 100_000u64;
    let mut stored = 0u64;
    for level in [0u64, 1_000_000, 5_000_000] {
        while stored < level {
            let n = (level - stored).min(10_000);
            store.store_bulk(events(stored, n).iter().map(new_event).collect())?;
            stored += n;
        }
        let mut rates = Vec::with_capacity(SCALE_WINDOWS);
        for _ in 0..SCALE_WINDOWS {
            let batches: Vec<Vec<NewEvent>> = events(stored, window)
                .chunks(1_000)
                .map(|c| c.iter().map(new_event).collect())
                .collect();
            let started = Instant::now();
            for batch in batches {
                store.store_bulk(batch)?;
            }
            rates.push(rate(window, started));
            stored += window;
        }
        b.record(
            "scale",
            &format!("bulk append at {level} stored"),
            engine,
            "events/s",
            rates,
            None,
        );
        if level > 0 {
            scale_stream(b, engine, &store)?;
        }
    }
    Ok(())
}

/// Streams every stored event, recording the rate and how much resident memory grew: flat
/// memory means the same growth at 1M and at 5M events.
fn scale_stream(b: &mut Bench, engine: Engine, store: &Store) -> Result<()> {
    let before = rss_kib();
    let mut peak = before;
    let started = Instant::now();
    let mut n = 0;
    for batch in store.stream(eventlite_core::StreamOptions::new().batch_size(1_000))? {
        n += batch?.len() as u64;
        if n.is_multiple_of(100_000) {
            let now = rss_kib();
            peak = (peak.0.max(now.0), peak.1.max(now.1));
        }
    }
    let r = rate(n, started);
    // One decimal: the levels hold 1.3M and 5.3M events (their appended windows included).
    let millions = format!("{:.1}", n as f64 / 1e6);
    b.record(
        "scale",
        &format!("stream all ({millions}M stored)"),
        engine,
        "events/s",
        vec![r],
        None,
    );
    for (what, grew) in [
        ("anonymous", peak.0 - before.0),
        ("file-backed", peak.1 - before.1),
    ] {
        b.record(
            "scale",
            &format!("RSS growth, {what}, streaming {millions}M (KiB)"),
            engine,
            "KiB",
            vec![grew as f64],
            None,
        );
    }
    Ok(())
}

fn fmt_num(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The distinct items, in first-seen order.
fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

/// Whether a smaller figure in `unit` is the better one (memory, as opposed to rates).
fn lower_is_better(unit: &str) -> bool {
    unit == "KiB"
}

fn markdown(b: &Bench) -> String {
    let engines: Vec<&str> = b.args.engines.iter().map(|e| e.name()).collect();
    let mut out = String::new();
    if b.args.scale {
        let _ = writeln!(
            out,
            "Bulk appends: {SCALE_WINDOWS} windows of 100,000 events per level (median, \
             min–max in brackets); streams: one pass over every stored event.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "N = {} events, {} runs per figure (median, min–max in brackets).\n",
            b.args.events, b.args.runs
        );
    }
    for table in unique(b.rows.iter().map(|r| r.table.as_str())) {
        let _ = writeln!(out, "### {table}\n");
        let mut header = "| case | unit |".to_owned();
        let mut rule = "|---|---|".to_owned();
        for e in &engines {
            let _ = write!(header, " {e} | {e} raw | ours/raw |");
            rule.push_str("---:|---:|---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        let mut cases: Vec<&str> = b
            .rows
            .iter()
            .filter(|r| r.table == table)
            .map(|r| r.case.as_str())
            .collect();
        cases.dedup();
        let mut seen = std::collections::HashSet::new();
        for case in cases.into_iter().filter(|c| seen.insert(*c)) {
            let rows: Vec<&Row> = b
                .rows
                .iter()
                .filter(|r| r.table == table && r.case == case)
                .collect();
            let unit = rows.first().map_or("", |r| r.unit.as_str());
            let medians = rows.iter().map(|r| r.ours.median);
            let best = if lower_is_better(unit) {
                medians.fold(f64::MAX, f64::min)
            } else {
                medians.fold(f64::MIN, f64::max)
            };
            let mut line = format!("| {case} | {unit} |");
            for e in &engines {
                match rows.iter().find(|r| r.engine == *e) {
                    Some(r) => {
                        let v = if r.ours.min == r.ours.max {
                            fmt_num(r.ours.median)
                        } else {
                            format!(
                                "{} ({}–{})",
                                fmt_num(r.ours.median),
                                fmt_num(r.ours.min),
                                fmt_num(r.ours.max)
                            )
                        };
                        let v = if rows.len() > 1 && r.ours.median == best {
                            format!("**{v}**")
                        } else {
                            v
                        };
                        let raw = r.raw.as_ref().map_or("–".into(), |s| fmt_num(s.median));
                        let ratio = r.ratio.map_or("–".into(), |x| format!("{x:.2}"));
                        let _ = write!(line, " {v} | {raw} | {ratio} |");
                    }
                    None => line.push_str(" – | – | – |"),
                }
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    out.push_str(&checks_markdown(&checks(b)));
    out
}

/// One of the benchmark issue's targets, checked against a run's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Check {
    target: String,
    engine: String,
    /// What the run measured, as printed.
    measured: String,
    met: bool,
}

/// The lowest ours/raw ratio a case may have.
const MIN_RATIO: f64 = 0.85;

/// Checks the run's figures against the targets (issue #5). Absolute figures are the medians
/// of the run; the targets were set for 100,000 events on the project's 2-core machine, so a
/// quick run or another N is not held to them and gets no checks.
///
/// "A deep page by cursor costs what the first page costs" is judged on the paired case (see
/// [`cursor_against_first_page`]): the median of its per-run ratios, with the same slack as
/// the ratio floor (a deep page by offset runs at ~0.5× the first page's rate).
fn checks(b: &Bench) -> Vec<Check> {
    if b.args.quick || b.args.scale || b.args.events != 100_000 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let engines = unique(b.rows.iter().map(|r| r.engine.as_str()));
    for engine in engines {
        let rows: Vec<&Row> = b.rows.iter().filter(|r| r.engine == engine).collect();
        let find = |table: &str, case: &str| {
            rows.iter()
                .find(|r| r.table == table && r.case.starts_with(case))
                .map(|r| (r.ours.median, r.ours.max))
        };
        let mut push = |target: String, measured: String, met: bool| {
            out.push(Check {
                target,
                engine: engine.to_owned(),
                measured,
                met,
            })
        };
        let ratios: Vec<(&str, f64)> = rows
            .iter()
            .filter_map(|r| r.ratio.map(|x| (r.case.as_str(), x)))
            .collect();
        if let Some(&(case, lowest)) = ratios.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
            let below = ratios.iter().filter(|(_, x)| *x < MIN_RATIO).count();
            push(
                format!("ours/raw ≥ {MIN_RATIO} in every case"),
                format!(
                    "lowest {lowest:.3} ({case}); {below} of {} below",
                    ratios.len()
                ),
                below == 0,
            );
        }
        let mut at_least = |target: &str, table: &str, case: &str, min: f64, unit: &str| {
            if let Some((v, best)) = find(table, case) {
                // The best run shows what the code does when the shared machine is quiet;
                // the target is judged on the median.
                push(
                    format!("{target} ≥ {} {unit}", fmt_num(min)),
                    format!("{} {unit} (best run {})", fmt_num(v), fmt_num(best)),
                    v >= min,
                );
            }
        };
        if engine == Engine::Sqlite.name() {
            at_least(
                "one-call `store_bulk`, high-volume profile,",
                "bulk",
                "store_bulk, one call of",
                500_000.0,
                "events/s",
            );
        }
        at_least(
            "stream",
            "reads",
            "stream all events",
            1_000_000.0,
            "events/s",
        );
        at_least(
            "replay",
            "reads",
            "replay through a trivial model",
            1_000_000.0,
            "events/s",
        );
        at_least(
            "get by id",
            "reads",
            "get by id (random)",
            150_000.0,
            "ops/s",
        );
        at_least(
            "cached get (hot set)",
            "reads",
            "cached get (hot set of 100)",
            5_000_000.0,
            "ops/s",
        );
        let paired = b
            .paired
            .iter()
            .find(|r| r.engine == engine && r.case == DEEP_VS_FIRST);
        if let Some(ratio) = paired.and_then(|r| r.ratio) {
            push(
                format!(
                    "a deep page by cursor costs what the first page costs (≥ {MIN_RATIO}× its rate, paired)"
                ),
                format!("{ratio:.2}× the first page's rate"),
                ratio >= MIN_RATIO,
            );
        }
    }
    out
}

/// The checks as a Markdown table (empty when there are none).
fn checks_markdown(checks: &[Check]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut out =
        "### targets\n\n| target | engine | this run | met |\n|---|---|---|---|\n".to_owned();
    for c in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.target,
            c.engine,
            c.measured,
            if c.met { "yes" } else { "**no**" }
        );
    }
    out.push('\n');
    out
}

fn svg(b: &Bench) -> String {
    let rows: Vec<&Row> = b
        .rows
        .iter()
        .filter(|r| {
            matches!(
                r.table.as_str(),
                "index" | "durability" | "bulk" | "profiles"
            )
        })
        .collect();
    let bar_h = 14.0;
    let label_w = 330.0;
    let width = 1000.0;
    let mut y = 30.0;
    let mut body = String::new();
    for table in unique(rows.iter().map(|r| r.table.as_str())) {
        let in_table: Vec<&&Row> = rows.iter().filter(|r| r.table == table).collect();
        let max = in_table
            .iter()
            .flat_map(|r| [Some(r.ours.median), r.raw.as_ref().map(|s| s.median)])
            .flatten()
            .fold(1.0, f64::max);
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{table} (events/s, scale to {})</text>"#,
            fmt_num(max)
        );
        y += 10.0;
        for r in in_table {
            let scale = (width - label_w - 120.0) / max;
            let _ = writeln!(
                body,
                r#"<text x="10" y="{}" font-size="11">{} · {}</text>"#,
                y + 11.0,
                r.engine,
                r.case
            );
            let color = if r.engine == "sqlite" {
                "#3572A5"
            } else {
                "#B7410E"
            };
            let _ = writeln!(
                body,
                r#"<rect x="{label_w}" y="{y}" width="{:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{}" font-size="10">{}</text>"#,
                r.ours.median * scale,
                bar_h - 3.0,
                label_w + r.ours.median * scale + 4.0,
                y + 9.0,
                fmt_num(r.ours.median)
            );
            y += bar_h;
            if let Some(raw) = &r.raw {
                let _ = writeln!(
                    body,
                    r#"<rect x="{label_w}" y="{y}" width="{:.1}" height="{}" fill="{color}" fill-opacity="0.35"/><text x="{:.1}" y="{}" font-size="10">raw {}</text>"#,
                    raw.median * scale,
                    bar_h - 3.0,
                    label_w + raw.median * scale + 4.0,
                    y + 9.0,
                    fmt_num(raw.median)
                );
                y += bar_h;
            }
            y += 4.0;
        }
        y += 16.0;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14">EventLite write throughput: ours (solid) vs raw engine (light)</text>{body}</svg>"#,
        y + 10.0
    )
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        println!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    let mut b = Bench {
        args,
        rows: Vec::new(),
        paired: Vec::new(),
    };
    let engines = b.args.engines.clone();
    if let Some(path) = b.args.render.clone() {
        // Re-render the tables of an earlier run's JSON.
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        b.rows = serde_json::from_value(doc["rows"].clone())?;
        if let Some(paired) = doc.get("paired") {
            b.paired = serde_json::from_value(paired.clone())?;
        }
        b.args.events = doc["events"].as_u64().unwrap_or(b.args.events);
        b.args.runs = doc["runs"].as_u64().map_or(b.args.runs, |r| r as usize);
        b.args.quick = doc["quick"].as_bool().unwrap_or(b.args.quick);
    } else if b.args.scale {
        for &e in &engines {
            scale(&mut b, e)?;
        }
    } else {
        for &e in &engines {
            eprintln!("== {} writes", e.name());
            writes(&mut b, e)?;
        }
        let read_engines = if b.args.wants("reads") {
            engines
        } else {
            Vec::new()
        };
        for e in read_engines {
            eprintln!("== {} reads", e.name());
            reads(&mut b, e)?;
        }
    }
    let md = markdown(&b);
    println!("{md}");
    if let Some(p) = &b.args.markdown {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &b.args.json {
        let doc = serde_json::json!({
            "events": b.args.events,
            "runs": b.args.runs,
            "quick": b.args.quick,
            "sqlite_version": rusqlite::version(),
            "pragmas": {
                "sqlite": format!("{:?}", Setup::default().sqlite()),
                "redb": format!("{:?}", Setup::default().redb()),
            },
            "eventlite_version": env!("CARGO_PKG_VERSION"),
            "seconds": started.elapsed().as_secs_f64(),
            "rows": b.rows,
            "paired": b.paired,
            "targets": checks(&b),
        });
        std::fs::write(p, serde_json::to_string_pretty(&doc)?)?;
    }
    if let Some(p) = &b.args.svg {
        std::fs::write(p, svg(&b))?;
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn slices_tile_the_work_without_gaps_or_overlap() {
        for total in [100_000, 20_000, 1_001, 21, 7, 1] {
            let (count, per) = Slice::plan(total);
            assert!(count <= SLICES as u64, "{total}: {count} slices");
            let mut next = 1;
            for i in 0..count {
                let s = Slice::nth(i, per, total);
                assert!(s.reps > 0, "{total}: slice {i} is empty");
                assert_eq!((s.first, s.reps), (next, s.last + 1 - s.first), "{total}");
                next = s.last + 1;
            }
            assert_eq!(next, total + 1, "{total}: the slices cover 1..={total}");
        }
        let (count, per) = Slice::plan(100_000);
        assert_eq!(
            Slice::nth(count - 1, per, 100_000),
            Slice {
                reps: 5_000,
                first: 95_001,
                last: 100_000
            }
        );
    }

    #[test]
    fn interleaved_slices_take_turns_and_the_first_turn_alternates_by_run() {
        for (run, want) in [
            (0, "o0 s r0 r1 o1 s o2 s r2 r3 o3 s"),
            (1, "r0 o0 s o1 s r1 r2 o2 s o3 s r3"),
        ] {
            let order = RefCell::new(Vec::new());
            let (o, r) = interleaved(
                4,
                run,
                |i| {
                    order.borrow_mut().push(format!("o{i}"));
                    Ok(())
                },
                |i| {
                    order.borrow_mut().push(format!("r{i}"));
                    Ok(())
                },
                || {
                    order.borrow_mut().push("s".into());
                    Ok(())
                },
            )
            .expect("no slice fails");
            assert_eq!(order.into_inner().join(" "), want);
            assert!(o > 0.0 && r > 0.0);
        }
        let failing = interleaved(
            3,
            0,
            |_| Ok(()),
            |i| {
                anyhow::ensure!(i < 1, "slice {i}");
                Ok(())
            },
            || Ok(()),
        );
        assert_eq!(failing.expect_err("slice 1 fails").to_string(), "slice 1");
    }

    fn bench(scale: bool) -> Bench {
        Bench {
            args: Args {
                quick: false,
                events: 1_000,
                runs: 3,
                engines: vec![Engine::Sqlite, Engine::Redb],
                json: None,
                markdown: None,
                svg: None,
                scale,
                render: None,
                only: Vec::new(),
            },
            rows: Vec::new(),
            paired: Vec::new(),
        }
    }

    fn line<'a>(md: &'a str, case: &str) -> &'a str {
        md.lines()
            .find(|l| l.starts_with(&format!("| {case} |")))
            .unwrap_or_default()
    }

    #[test]
    fn the_best_rate_is_the_highest_and_the_best_memory_the_lowest() {
        let mut b = bench(true);
        for (engine, rate, kib) in [(Engine::Sqlite, 10.0, 900.0), (Engine::Redb, 20.0, 64.0)] {
            b.record(
                "scale",
                "append",
                engine,
                "events/s",
                vec![rate, rate + 1.0, rate + 2.0],
                None,
            );
            b.record("scale", "RSS growth", engine, "KiB", vec![kib], None);
        }
        let md = markdown(&b);
        assert!(line(&md, "append").contains("| **21 (20–22)** |"), "{md}");
        assert!(line(&md, "append").contains("| 11 (10–12) |"), "{md}");
        // A single measurement has no range; less memory is the better figure.
        assert!(line(&md, "RSS growth").contains("| **64** |"), "{md}");
        assert!(line(&md, "RSS growth").contains("| 900 |"), "{md}");
        assert!(md.starts_with("Bulk appends: 3 windows"), "{md}");
        assert!(markdown(&bench(false)).starts_with("N = 1000 events, 3 runs per figure"));
    }

    #[test]
    fn targets_are_checked_against_the_medians_of_a_full_run() {
        let mut b = bench(false);
        b.args.events = 100_000;
        let rate = |v: f64| vec![v * 0.9, v, v * 1.1];
        for (engine, bulk, stream) in [
            (Engine::Sqlite, 499_999.0, 1_000_000.0),
            (Engine::Redb, 900_000.0, 999_999.0),
        ] {
            b.record(
                "bulk",
                "store_bulk, one call of 100000",
                engine,
                "events/s",
                rate(bulk),
                Some(rate(bulk)),
            );
            b.record(
                "reads",
                "stream all events",
                engine,
                "events/s",
                rate(stream),
                None,
            );
        }
        // One pair of runs below the ratio floor is not enough to sink a median above it.
        b.record(
            "durability",
            "Immediate",
            Engine::Redb,
            "events/s",
            vec![84.0, 90.0, 90.0],
            Some(vec![100.0, 100.0, 100.0]),
        );
        let got: Vec<(String, String, bool)> = checks(&b)
            .into_iter()
            .map(|c| {
                (
                    c.engine,
                    c.target.split(' ').next().unwrap_or_default().to_owned(),
                    c.met,
                )
            })
            .collect();
        let want = [
            ("sqlite", "ours/raw", true),
            ("sqlite", "one-call", false),
            ("sqlite", "stream", true),
            ("redb", "ours/raw", true),
            ("redb", "stream", false),
        ];
        let want: Vec<(String, String, bool)> = want
            .iter()
            .map(|(e, t, m)| ((*e).to_owned(), (*t).to_owned(), *m))
            .collect();
        assert_eq!(got, want);
        let redb_ratio = &checks(&b)[3];
        assert_eq!(
            redb_ratio.measured,
            "lowest 0.900 (Immediate); 0 of 2 below"
        );

        // A case below the floor fails the ratio target, and is named.
        b.record(
            "reads",
            "cmd page of 100",
            Engine::Redb,
            "pages/s",
            vec![84.0; 3],
            Some(vec![100.0; 3]),
        );
        let ratio = &checks(&b)[3];
        assert!(!ratio.met);
        assert_eq!(
            ratio.measured,
            "lowest 0.840 (cmd page of 100); 1 of 3 below"
        );
        let md = markdown(&b);
        assert!(md.contains("| ours/raw ≥ 0.85 in every case | redb | lowest 0.840 (cmd page of 100); 1 of 3 below | **no** |"), "{md}");
        assert!(
            md.contains("| stream ≥ 1,000,000 events/s | redb | 999,999 events/s (best run 1,099,999) | **no** |"),
            "{md}"
        );

        // The cursor target comes from the paired case, ours against ours.
        let paired = |engine: Engine, ratio: f64| Row {
            table: "cursor".into(),
            case: DEEP_VS_FIRST.into(),
            engine: engine.name().into(),
            unit: "pages/s".into(),
            ours: Stat::of(vec![ratio * 100.0]),
            raw: Some(Stat::of(vec![100.0])),
            ratio: Some(ratio),
        };
        b.paired = vec![paired(Engine::Sqlite, 0.98), paired(Engine::Redb, 0.6)];
        let cursor: Vec<(String, bool, String)> = checks(&b)
            .into_iter()
            .filter(|c| c.target.starts_with("a deep page by cursor"))
            .map(|c| (c.engine, c.met, c.measured))
            .collect();
        assert_eq!(
            cursor,
            [
                ("sqlite".into(), true, "0.98× the first page's rate".into()),
                ("redb".into(), false, "0.60× the first page's rate".into()),
            ]
        );
        // Paired cases are no table of their own.
        assert!(!markdown(&b).contains("### cursor"));

        // A quick run, or another N, is not held to the targets.
        b.args.quick = true;
        assert!(checks(&b).is_empty());
        assert!(!markdown(&b).contains("### targets"));
        b.args.quick = false;
        b.args.events = 20_000;
        assert!(checks(&b).is_empty());
    }
}
