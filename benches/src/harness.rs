//! The measuring harness of `seed-tables`: what a run measures, the figures it keeps, the raw
//! writers it measures ours against, and how the two sides take turns on the same work.

use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{BenchEvent, Engine, Setup, open_ours, raw};

/// What a run measures: how much, how often, on which engines, which tables.
#[derive(Debug, Clone)]
pub struct Config {
    /// The CI smoke run: fewer events and runs, and no targets to meet.
    pub quick: bool,
    /// Events per store.
    pub events: u64,
    /// Runs per figure; each figure is their median.
    pub runs: usize,
    /// The engines measured, in the tables' column order.
    pub engines: Vec<Engine>,
    /// The scale run instead of the tables.
    pub scale: bool,
    /// Only these tables (`index`, `durability`, `bulk`, `profiles`, `reads`); all when empty.
    pub only: Vec<String>,
}

impl Config {
    /// Whether the run measures `table`.
    pub fn wants(&self, table: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|t| t == table)
    }
}

/// A figure over runs: the median, the range, and every run's sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stat {
    /// The median of the samples.
    pub median: f64,
    /// The lowest sample.
    pub min: f64,
    /// The highest sample.
    pub max: f64,
    /// Every sample, lowest first.
    pub samples: Vec<f64>,
}

impl Stat {
    /// The figure of `samples` (at least one).
    pub fn of(mut samples: Vec<f64>) -> Stat {
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

/// One case's figures on one engine, as the tables and the JSON hold them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The table the case belongs to (`index`, `reads`, `scale`, …).
    pub table: String,
    /// The case, as the table names it.
    pub case: String,
    /// The engine's name.
    pub engine: String,
    /// The unit of the figures (`events/s`, `KiB`, …).
    pub unit: String,
    /// Our store's figure.
    pub ours: Stat,
    /// The raw engine's figure on the same work, when the case has one.
    pub raw: Option<Stat>,
    /// The median of the runs' ours/raw ratios.
    pub ratio: Option<f64>,
}

/// A run in progress: what it measures and the rows measured so far.
pub struct Bench {
    /// What the run measures.
    pub config: Config,
    /// The tables' rows, in the order they were measured.
    pub rows: Vec<Row>,
    /// Two of our own operations timed against each other (in `raw`'s place), for targets
    /// that compare ours with ours; not printed among the tables.
    pub paired: Vec<Row>,
}

/// How a write case writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// One `store` call per event.
    Individual,
    /// `store_bulk` calls of this many events.
    Bulk(usize),
}

impl Row {
    /// A case's figures: `ours[i]` and `raw[i]` were measured in run `i`.
    pub(crate) fn new(
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
    pub(crate) fn print(&self) {
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

/// `n` units done since `started`, per second.
pub(crate) fn rate(n: u64, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

impl Bench {
    /// A run of `config`, nothing measured yet.
    pub fn new(config: Config) -> Bench {
        Bench {
            config,
            rows: Vec::new(),
            paired: Vec::new(),
        }
    }

    /// Prints a case's progress line and keeps its row for the tables.
    pub(crate) fn record(
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
}

/// `runs` measurements of (ours, raw), as two lists.
pub(crate) fn each_run(
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
pub(crate) const SLICES: usize = 20;

/// Ours and raw, both open, take turns on equal slices of the work: A B, B A, A B, …, with
/// the first turn alternating by `run` too. Each side's time is the sum of its turns. A slow
/// spell of this shared machine (a neighbour's job, a slow fsync) then falls on both sides
/// within a slice, where timing all of ours and then all of raw let it fall on one side.
/// Whichever goes second in a turn finds the heap and CPU caches the first one left, hence
/// the alternation. `ours(i)` and `raw(i)` do slice `i`; returns their (ours, raw) seconds.
/// `settle()` runs after each of our turns, off the clock: it waits for the background work
/// our turn started (a SQLite checkpoint still running), so that it never runs during raw's
/// turn.
pub(crate) fn interleaved(
    slices: usize,
    run: usize,
    ours: impl FnMut(usize) -> Result<()>,
    raw: impl FnMut(usize) -> Result<()>,
    settle: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    interleave(slices, run, ours, raw, settle, false)
}

/// [`interleaved`] for two sides that both start background work (both are our stores):
/// `settle()` runs after every turn, off the clock, so that neither side's work runs into the
/// other's turn.
pub(crate) fn interleaved_settling_both(
    slices: usize,
    run: usize,
    ours: impl FnMut(usize) -> Result<()>,
    raw: impl FnMut(usize) -> Result<()>,
    settle: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    interleave(slices, run, ours, raw, settle, true)
}

fn interleave(
    slices: usize,
    run: usize,
    mut ours: impl FnMut(usize) -> Result<()>,
    mut raw: impl FnMut(usize) -> Result<()>,
    mut settle: impl FnMut() -> Result<()>,
    after_raw: bool,
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
            if after_raw {
                settle()?;
            }
        } else {
            r += timed(&mut raw, i)?;
            if after_raw {
                settle()?;
            }
            o += timed(&mut ours, i)?;
            settle()?;
        }
    }
    Ok((o, r))
}

/// One slice of a read case's work of `total` units: `reps` operations, or, for a pass over
/// the log, the ids `first..=last` (`reps` of them). The slices tile `1..=total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Slice {
    /// Units of work in the slice.
    pub(crate) reps: u64,
    /// The slice's first unit (an id, for a pass over the log).
    pub(crate) first: u64,
    /// The slice's last unit.
    pub(crate) last: u64,
}

impl Slice {
    /// How many slices of how many units each (the last may hold fewer) cut `total` units
    /// into at most [`SLICES`] slices, none empty.
    pub(crate) fn plan(total: u64) -> (u64, u64) {
        let per = total.div_ceil(SLICES as u64).max(1);
        (total.div_ceil(per), per)
    }

    /// Slice `i`, of `per` units, over `total` units.
    pub(crate) fn nth(i: u64, per: u64, total: u64) -> Slice {
        let first = i * per + 1;
        let last = ((i + 1) * per).min(total);
        Slice {
            reps: (last + 1).saturating_sub(first),
            first,
            last,
        }
    }
}

/// A raw writer of either engine.
pub(crate) enum RawWriter {
    /// Plain rusqlite.
    Sqlite(raw::sqlite::Raw),
    /// Plain redb.
    Redb(raw::redb::Raw),
}

impl RawWriter {
    /// A raw writer of a new file at `path`, which our backend lays out first (schema and
    /// indexes), so that raw code writes the same file ours does.
    pub(crate) fn create(engine: Engine, path: &std::path::Path, setup: &Setup) -> Result<Self> {
        drop(open_ours(engine, path, setup)?);
        Ok(match engine {
            Engine::Sqlite => RawWriter::Sqlite(raw::sqlite::Raw::open(path, setup)?),
            Engine::Redb => RawWriter::Redb(raw::redb::Raw::open(path, setup)?),
            Engine::Postgres => {
                anyhow::bail!("on the server, writes are measured by the postgres table")
            }
        })
    }

    /// Writes `unit` as ours does in `mode`: event by event, or as one batch.
    pub(crate) fn write(&mut self, mode: Mode, unit: &[BenchEvent]) -> Result<()> {
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
}
