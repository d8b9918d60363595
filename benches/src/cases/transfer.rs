//! The `transfer` table: what the `eventlite` command's long work costs beside the library
//! calls it is made of (issue #18). Export against streaming the same events into a
//! discarding sink; import against `store_bulk` of the same events built in memory; export
//! and convert with a progress bar drawn against none; and the rate of a conversion of
//! 1,000,000 events (N in a quick run) with its bar.
//!
//! The bar is the command's own ([`eventlite_cli::Bars`]), drawn at the rate it draws on a
//! terminal (20 redraws a second) to a terminal that discards what it is given, so that the
//! figure is the bar's cost and not the terminal's.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use eventlite::export::Format;
use eventlite_cli::Bars;
use eventlite_core::{Event, Filter, IndexConfig, NewEvent, StreamOptions};
use indicatif::{ProgressDrawTarget, TermLike};

use crate::harness::{Bench, Slice, each_run, interleaved, interleaved_settling_both};
use crate::{Engine, Setup, Store, events, new_event, open_ours, open_ours_with_wait};

/// The table's name in the report.
pub const TABLE: &str = "transfer";

/// Export against streaming.
pub const EXPORT: &str = "export JSONL into a discarding sink, against streaming the same events";
/// Import against `store_bulk`.
pub const IMPORT: &str =
    "import JSONL (batches of 1,000), against store_bulk of the same events built in memory";
/// Export with a bar against none.
pub const EXPORT_BAR: &str = "export with a progress bar drawn, against none";
/// Convert with a bar against none.
pub const CONVERT_BAR: &str = "convert (copy and compare) with a progress bar drawn, against none";
/// The large conversion.
pub const CONVERT_MILLION: &str = "convert into the other engine with a progress bar";

/// The targets: each case and the least ratio.
pub const TARGETS: [(&str, f64); 4] = [
    (EXPORT, 0.7),
    (IMPORT, 0.7),
    (EXPORT_BAR, 0.97),
    (CONVERT_BAR, 0.97),
];

/// A terminal that takes what is drawn and keeps nothing.
#[derive(Debug)]
struct Discard;

impl TermLike for Discard {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        std::io::sink().write_all(black_box(s).as_bytes())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        std::io::sink().write_all(black_box(s).as_bytes())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The command's bars, drawn as on a terminal (20 redraws a second) to [`Discard`].
fn drawn_bars() -> Bars {
    Bars::to(|| ProgressDrawTarget::term_like_with_hz(Box::new(Discard), 20))
}

/// How the command makes its stores: the default indexes.
fn setup() -> Setup {
    Setup {
        indexes: IndexConfig::default(),
        ..Setup::default()
    }
}

/// A store of `engine` at `path` holding `n` events.
fn seeded(engine: Engine, path: &std::path::Path, n: u64) -> Result<Store> {
    let store = open_ours(engine, path, &setup())?;
    let all = events(0, n);
    for chunk in all.chunks(1_000) {
        store.store_bulk(chunk.iter().map(new_event).collect())?;
    }
    Ok(store)
}

/// The events of ids `first..=last`.
fn ids(first: u64, last: u64) -> Filter {
    Filter {
        id_from: Some(first),
        id_to: Some(last),
        ..Filter::default()
    }
}

/// Every case of the table on `engine` (a file engine).
pub fn transfer(b: &mut Bench, engine: Engine) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let n = b.config.events;
    let store = seeded(engine, &dir.path().join(engine.file()), n)?;
    let (slices, per) = Slice::plan(n);
    let slice = |i: usize| Slice::nth(i as u64, per, n);
    // Slice `i` exported into a discarding sink, its progress reported to `progress`.
    let export = |i: usize, progress: &mut dyn FnMut(eventlite::progress::Progress)| {
        let s = slice(i);
        let filter = ids(s.first, s.last);
        eventlite::export::write_with(&store, filter, Format::Jsonl, std::io::sink(), progress)
            .map(drop)
    };

    // Export against streaming, slice by slice over the same ids.
    let (ours, base) = each_run(b.config.runs, |run| {
        let (o, s) = interleaved(
            slices as usize,
            run,
            |i| Ok(export(i, &mut |_| {})?),
            |i| {
                let s = slice(i);
                for batch in store.read_all(StreamOptions::new().filter(ids(s.first, s.last)))? {
                    for e in batch? {
                        black_box(&e);
                    }
                }
                Ok(())
            },
            || Ok(()),
        )?;
        Ok((n as f64 / o, n as f64 / s))
    })?;
    b.record(TABLE, EXPORT, engine, "events/s", ours, Some(base));

    // Export with the bar against none: one bar for the whole run, as the command draws.
    let (ours, base) = each_run(b.config.runs, |run| {
        let mut bars = drawn_bars();
        let (o, s) = interleaved(
            slices as usize,
            run,
            |i| Ok(export(i, &mut |p| bars.report(p))?),
            |i| Ok(export(i, &mut |_| {})?),
            || Ok(()),
        )?;
        bars.finish();
        Ok((n as f64 / o, n as f64 / s))
    })?;
    b.record(TABLE, EXPORT_BAR, engine, "events/s", ours, Some(base));

    // Import against store_bulk: the file in slices, each imported into a new store as the
    // same events are stored in another, slice by slice.
    let stored: Vec<Event> = {
        let mut all = Vec::with_capacity(n as usize);
        for batch in store.read_all(StreamOptions::new())? {
            all.extend(batch?);
        }
        all
    };
    let files: Vec<std::path::PathBuf> = (0..slices as usize)
        .map(|i| {
            let s = slice(i);
            let path = dir.path().join(format!("slice-{i}.jsonl"));
            let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            eventlite::export::write(&store, ids(s.first, s.last), Format::Jsonl, file)?;
            Ok(path)
        })
        .collect::<Result<_>>()?;
    let (ours, base) = each_run(b.config.runs, |run| {
        let path = |side: &str| dir.path().join(format!("{side}-{run}-{}", engine.file()));
        let (into, wait_into) = open_ours_with_wait(engine, &path("import"), &setup())?;
        let (bulk, wait_bulk) = open_ours_with_wait(engine, &path("bulk"), &setup())?;
        // Built before the clock starts: the events as the file has them.
        let mut built: Vec<Vec<Vec<NewEvent>>> = (0..slices as usize)
            .map(|i| {
                let s = slice(i);
                stored[(s.first - 1) as usize..s.last as usize]
                    .chunks(1_000)
                    .map(|chunk| chunk.iter().map(as_new).collect())
                    .collect()
            })
            .collect::<Result<_>>()?;
        let (o, s) = interleaved_settling_both(
            slices as usize,
            run,
            |i| {
                let report = eventlite::import::jsonl(
                    &files[i],
                    &into,
                    eventlite::import::JsonlOptions::new(),
                )?;
                anyhow::ensure!(report.ids_kept && report.skipped.is_empty());
                Ok(())
            },
            |i| {
                for batch in std::mem::take(&mut built[i]) {
                    bulk.store_bulk(batch)?;
                }
                Ok(())
            },
            // Both sides' background checkpoints, off the clock.
            || {
                wait_into();
                wait_bulk();
                Ok(())
            },
        )?;
        anyhow::ensure!(into.last_id()? == n && bulk.last_id()? == n);
        Ok((n as f64 / o, n as f64 / s))
    })?;
    b.record(TABLE, IMPORT, engine, "events/s", ours, Some(base));

    // Convert with the bar against none, into new stores of the other engine; the order of
    // the two alternates by run.
    let other = match engine {
        Engine::Sqlite => Engine::Redb,
        _ => Engine::Sqlite,
    };
    let (ours, base) = each_run(b.config.runs, |run| {
        let with = open_ours(
            other,
            &dir.path().join(format!("with-{run}-{}", other.file())),
            &setup(),
        )?;
        let without = open_ours(
            other,
            &dir.path().join(format!("without-{run}-{}", other.file())),
            &setup(),
        )?;
        let timed_with = || -> Result<f64> {
            let mut bars = drawn_bars();
            let started = Instant::now();
            eventlite::convert::copy_with(&store, &with, |p| bars.report(p))?;
            bars.finish();
            Ok(started.elapsed().as_secs_f64())
        };
        let timed_without = || -> Result<f64> {
            let started = Instant::now();
            eventlite::convert::copy(&store, &without)?;
            Ok(started.elapsed().as_secs_f64())
        };
        let (o, s) = if run % 2 == 0 {
            let o = timed_with()?;
            (o, timed_without()?)
        } else {
            let s = timed_without()?;
            (timed_with()?, s)
        };
        Ok((n as f64 / o, n as f64 / s))
    })?;
    b.record(TABLE, CONVERT_BAR, engine, "events/s", ours, Some(base));

    // The large conversion, once per run (its rate only: there is nothing beneath it to
    // compare with).
    let big = if b.config.quick { n } else { 1_000_000 };
    let source = if big == n {
        store
    } else {
        drop(store);
        seeded(
            engine,
            &dir.path().join(format!("big-{}", engine.file())),
            big,
        )?
    };
    let mut rates = Vec::with_capacity(b.config.runs);
    for run in 0..b.config.runs.min(3) {
        let copy = open_ours(
            other,
            &dir.path().join(format!("big-{run}-{}", other.file())),
            &setup(),
        )?;
        let mut bars = drawn_bars();
        let started = Instant::now();
        let report = eventlite::convert::copy_with(&source, &copy, |p| bars.report(p))?;
        bars.finish();
        anyhow::ensure!(report.events == big);
        rates.push(big as f64 / started.elapsed().as_secs_f64());
        drop(copy);
    }
    let case = format!("{CONVERT_MILLION} ({big} events, to {})", other.name());
    b.record(TABLE, &case, engine, "events/s", rates, None);
    Ok(())
}

/// `e` as the import stores it: every field the file carries, its JSON taken as already
/// checked (as a value serialised in memory is), so that the append parses nothing.
fn as_new(e: &Event) -> Result<NewEvent> {
    use serde_json::value::RawValue;
    Ok(NewEvent::new(e.cmd.clone())
        .version(e.version)
        .recorded_at(e.datetime)
        .user(e.user.clone())
        .ip(e.ip.clone())
        .data_raw(RawValue::from_string(e.data.clone())?)
        .metadata_raw(RawValue::from_string(e.metadata.clone())?)
        .correlation_id(e.correlation_id.clone()))
}
