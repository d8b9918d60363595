//! The aggregate tables: what event-sourced applications spend their time on. Appending a
//! batch to one stream with an expectation, loading a stream (as events, and decoded into a
//! user type), reading the whole log decoded; against the raw engine (`aggregates`), against
//! other calls of ours (`aggregate targets`), and the memory a process needs for them
//! (`memory`, from child processes).
//!
//! The events carry no correlation id unless a case says so: the store generates one per
//! event, as it does for real users' events (the raw baseline generates the same UUID v7).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use eventlite_core::{ExpectedVersion, Filter, NewEvent, Order, Query};
use serde::Deserialize;

use crate::cases::reads::copy_store;
use crate::harness::{Bench, SLICES, each_run, interleaved};
use crate::{BenchEvent, Engine, Setup, Store, events, open_ours, raw};

/// The table of aggregate cases against the raw engine.
pub const TABLE: &str = "aggregates";

/// The table of aggregate cases against other calls of ours (the ratio targets).
pub const TARGETS: &str = "aggregate targets";

/// The table of resident memory, ours against the raw engine (lower is better).
pub const MEMORY: &str = "memory";

/// The user type the decoded cases fold the events' data into.
#[derive(Debug, Deserialize)]
pub struct Payload {
    /// The event's number.
    pub id: u64,
    /// An amount.
    pub amount: u64,
    /// A note.
    pub note: String,
}

/// How the events of a write case are correlated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Correlation {
    /// None set: the store generates one per event.
    Generated,
    /// One id per call, set by the caller.
    PerCall,
}

/// One call of a write case: a batch, to a stream at a version or to no stream.
struct Unit {
    stream: Option<(String, u64)>,
    events: Vec<BenchEvent>,
}

/// `n` events in batches of `batch`, over streams that each get 10 batches (round robin, so
/// that a stream's batches are apart as an application's are), or over no stream.
fn units(n: u64, batch: u64, streams: bool, correlation: Correlation) -> Vec<Unit> {
    let calls = n.div_ceil(batch);
    let stream_count = (calls / 10).max(1);
    let mut all = events(0, n);
    all.iter_mut().for_each(|e| e.correlation_id.clear());
    let mut out = Vec::with_capacity(calls as usize);
    for (k, chunk) in all.chunks(batch as usize).enumerate() {
        let k = k as u64;
        let mut events = chunk.to_vec();
        if correlation == Correlation::PerCall {
            let id = format!("call-{k}");
            events
                .iter_mut()
                .for_each(|e| e.correlation_id = id.clone());
        }
        out.push(Unit {
            stream: streams.then(|| {
                (
                    format!("agg-{}", k % stream_count),
                    (k / stream_count) * batch,
                )
            }),
            events,
        });
    }
    out
}

/// Our event for a bench event: its correlation id only when it has one.
fn new_event(e: &BenchEvent) -> NewEvent {
    let event = NewEvent::new(e.cmd)
        .user(e.user.clone())
        .data_json(e.data.clone());
    match e.correlation_id.is_empty() {
        true => event,
        false => event.correlation_id(e.correlation_id.clone()),
    }
}

/// Something that writes units: ours, or a raw engine.
enum Writer {
    Ours(Store),
    Sqlite(raw::sqlite::Raw),
    Redb(raw::redb::Raw),
    Postgres(Box<raw::postgres::Raw>),
}

impl Writer {
    /// A writer of a new file at `path`; raw ones write a file laid out by ours.
    fn create(engine: Engine, path: &Path, setup: &Setup, raw: bool) -> Result<Writer> {
        let ours = open_ours(engine, path, setup)?;
        if !raw {
            return Ok(Writer::Ours(ours));
        }
        drop(ours);
        Ok(match engine {
            Engine::Sqlite => Writer::Sqlite(raw::sqlite::Raw::open(path, setup)?),
            Engine::Redb => Writer::Redb(raw::redb::Raw::open(path, setup)?),
            Engine::Postgres => Writer::Postgres(Box::new(raw::postgres::Raw::open(
                &crate::pg_url()?,
                &crate::pg_schema(path),
                setup.durability,
            )?)),
        })
    }

    /// Writes one unit; ours takes its events already built (`prepared`), as raw's rows are.
    fn write(&mut self, unit: &Unit, prepared: Vec<NewEvent>) -> Result<()> {
        match (self, &unit.stream) {
            (Writer::Ours(s), Some((name, at))) => {
                s.append_to_stream(name, ExpectedVersion::Exact(*at), prepared)?;
            }
            (Writer::Ours(s), None) => {
                s.store_bulk(prepared)?;
            }
            (Writer::Sqlite(r), Some((name, at))) => r.append_to_stream(name, *at, &unit.events)?,
            (Writer::Sqlite(r), None) => r.insert_batch(&unit.events)?,
            (Writer::Redb(r), Some((name, at))) => r.append_to_stream(name, *at, &unit.events)?,
            (Writer::Redb(r), None) => r.insert_batch(&unit.events)?,
            (Writer::Postgres(r), Some((name, at))) => {
                r.append_to_stream(name, *at, &unit.events)?
            }
            (Writer::Postgres(r), None) => r.insert_batch(&unit.events)?,
        }
        Ok(())
    }
}

/// Events per second of writers `a` and `b` (`true`: the raw engine) writing `ua` and `ub`
/// (the same number of events) to new files, taking turns slice by slice.
fn write_pair(
    engine: Engine,
    setup: &Setup,
    (a, ua): (bool, &[Unit]),
    (b, ub): (bool, &[Unit]),
    run: usize,
) -> Result<(f64, f64)> {
    let dir = crate::StoreDir::new(engine)?;
    let mut wa = Writer::create(
        engine,
        &dir.path().join(format!("a-{}", engine.file())),
        setup,
        a,
    )?;
    let mut wb = Writer::create(
        engine,
        &dir.path().join(format!("b-{}", engine.file())),
        setup,
        b,
    )?;
    let per = ua.len().div_ceil(SLICES).max(1);
    let slices = ua.len().div_ceil(per);
    let prepare = |units: &[Unit], raw: bool| -> Vec<Vec<NewEvent>> {
        units
            .iter()
            .map(|u| match raw {
                true => Vec::new(),
                false => u.events.iter().map(new_event).collect(),
            })
            .collect()
    };
    let (mut pa, mut pb) = (prepare(ua, a), prepare(ub, b));
    let range = |i: usize, len: usize| (i * per).min(len)..((i + 1) * per).min(len);
    let (ta, tb) = interleaved(
        slices,
        run,
        |i| {
            for k in range(i, ua.len()) {
                wa.write(&ua[k], std::mem::take(&mut pa[k]))?;
            }
            Ok(())
        },
        |i| {
            for k in range(i, ub.len()) {
                wb.write(&ub[k], std::mem::take(&mut pb[k]))?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    let count = |u: &[Unit]| u.iter().map(|u| u.events.len()).sum::<usize>() as f64;
    Ok((count(ua) / ta, count(ub) / tb))
}

/// The write cases of both tables on `engine`.
fn writes(b: &mut Bench, engine: Engine) -> Result<()> {
    let setup = Setup::default();
    let full = b.config.events;
    let scaled = |n: u64| if b.config.quick { n / 5 } else { n };
    for (batch, n) in [(1, scaled(2_000)), (10, scaled(10_000)), (100, full)] {
        let ours = units(n, batch, true, Correlation::Generated);
        let (o, r) = each_run(b.config.runs, |run| {
            write_pair(engine, &setup, (false, &ours), (true, &ours), run)
        })?;
        b.record(
            TABLE,
            &format!("per-stream batches of {batch} (Exact)"),
            engine,
            "events/s",
            o,
            Some(r),
        );
    }
    let streams = units(full, 100, true, Correlation::Generated);
    let loose = units(full, 100, false, Correlation::Generated);
    let (o, r) = each_run(b.config.runs, |run| {
        write_pair(engine, &setup, (false, &streams), (false, &loose), run)
    })?;
    b.record(TARGETS, STREAMS_VS_BULK, engine, "events/s", o, Some(r));
    let per_call = units(full, 100, true, Correlation::PerCall);
    let (o, r) = each_run(b.config.runs, |run| {
        write_pair(engine, &setup, (false, &streams), (false, &per_call), run)
    })?;
    b.record(
        TARGETS,
        GENERATED_VS_PER_CALL,
        engine,
        "events/s",
        o,
        Some(r),
    );
    Ok(())
}

/// The case behind "per-stream batches of 100 ≥ 0.6× `store_bulk` batches without streams".
pub const STREAMS_VS_BULK: &str =
    "per-stream batches of 100, against store_bulk batches of 100 without streams";

/// The case behind "generated correlation ids ≥ 0.8× one id per call".
pub const GENERATED_VS_PER_CALL: &str =
    "per-stream batches of 100 with generated correlation ids, against one id per call";

/// The case behind "a 1,000-event stream load ≥ 0.85× the same events by id range".
pub const STREAM_VS_RANGE: &str = "load a 1,000-event stream, against the same events by id range";

/// The stream sizes of the load cases.
pub const SIZES: [u64; 3] = [10, 100, 1_000];

/// The streams of the read store: for each size, how many streams of it (scaled to the
/// store), and the stream written in one piece for the id-range comparison.
fn stream_plan(n: u64) -> Vec<(String, u64)> {
    let mut plan = Vec::new();
    for size in SIZES {
        // A tenth of the store per size.
        let count = (n / 10 / size).max(1);
        plan.extend((0..count).map(|j| (format!("s{size}-{j}"), size)));
    }
    plan
}

/// The name of the stream written in one piece.
const CONTIGUOUS: &str = "contiguous";

/// Builds the read store at `path`: `n` events, the planned streams' events spread among
/// loose ones in a fixed shuffle, then one 1,000-event stream written in one piece. Returns
/// the ids of that stream.
fn build_read_store(engine: Engine, path: &Path, n: u64) -> Result<std::ops::RangeInclusive<u64>> {
    let store = open_ours(engine, path, &Setup::default())?;
    let plan = stream_plan(n);
    let mut labels: Vec<Option<&str>> = plan
        .iter()
        .flat_map(|(name, size)| std::iter::repeat_n(Some(name.as_str()), *size as usize))
        .collect();
    let loose = n.saturating_sub(labels.len() as u64 + 1_000);
    labels.extend(std::iter::repeat_n(None, loose as usize));
    // A fixed shuffle (xorshift), the same every run.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..labels.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        labels.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let all = events(0, labels.len() as u64);
    for (chunk, names) in all.chunks(1_000).zip(labels.chunks(1_000)) {
        let batch = chunk
            .iter()
            .zip(names)
            .map(|(e, name)| {
                let event = new_event(e);
                match name {
                    Some(s) => event.stream(*s, ExpectedVersion::Any),
                    None => event,
                }
            })
            .collect();
        store.store_bulk(batch)?;
    }
    let piece = store.append_to_stream(
        CONTIGUOUS,
        ExpectedVersion::NoStream,
        events(labels.len() as u64, 1_000)
            .iter()
            .map(new_event)
            .collect(),
    )?;
    let first = piece
        .first()
        .map(|e| e.id)
        .context("no contiguous stream")?;
    Ok(first..=first + 999)
}

/// A reader of the read store: ours or raw.
enum Reader {
    Ours(Store),
    Sqlite(raw::sqlite::Raw),
    Redb(raw::redb::Raw),
    /// A client reads through `&mut`.
    Postgres(Box<std::cell::RefCell<raw::postgres::Raw>>),
}

impl Reader {
    fn open(engine: Engine, path: &Path, setup: &Setup, raw: bool) -> Result<Reader> {
        Ok(match (raw, engine) {
            (false, _) => Reader::Ours(open_ours(engine, path, setup)?),
            (true, Engine::Sqlite) => Reader::Sqlite(raw::sqlite::Raw::open(path, setup)?),
            (true, Engine::Redb) => Reader::Redb(raw::redb::Raw::open(path, setup)?),
            (true, Engine::Postgres) => {
                Reader::Postgres(Box::new(std::cell::RefCell::new(raw::postgres::Raw::open(
                    &crate::pg_url()?,
                    &crate::pg_schema(path),
                    setup.durability,
                )?)))
            }
        })
    }

    /// Loads a stream as events (ours) or rows (raw); how many.
    fn load(&self, stream: &str) -> Result<u64> {
        Ok(match self {
            Reader::Ours(s) => s.read_stream(stream, 1)?.len(),
            Reader::Sqlite(r) => r.load_stream(stream)?.len(),
            Reader::Redb(r) => r.load_stream(stream)?.len(),
            Reader::Postgres(r) => r.borrow_mut().load_stream(stream)?.len(),
        } as u64)
    }

    /// Loads a stream and folds its data, decoded as [`Payload`]; how many events.
    fn fold(&self, stream: &str) -> Result<u64> {
        let mut sum = 0u64;
        let n = match self {
            Reader::Ours(s) => {
                s.fold_stream(stream, (), |_, _, p: Payload| {
                    sum = sum.wrapping_add(p.amount)
                })?
                .1
            }
            Reader::Sqlite(r) => add_payloads(
                &mut sum,
                r.load_stream(stream)?.iter().map(|(_, r)| &*r.data),
            )?,
            Reader::Redb(r) => add_payloads(
                &mut sum,
                r.load_stream(stream)?.iter().map(|(_, r)| &*r.data),
            )?,
            Reader::Postgres(r) => add_payloads(
                &mut sum,
                r.borrow_mut()
                    .load_stream(stream)?
                    .iter()
                    .map(|(_, r)| &*r.data),
            )?,
        };
        std::hint::black_box(sum);
        Ok(n)
    }

    /// Reads the whole log in batches of 1,000, decoding each event's data; how many.
    fn read_all_decoded(&self) -> Result<u64> {
        let mut sum = 0u64;
        let n = match self {
            Reader::Ours(s) => {
                let mut n = 0;
                for batch in s.read_all(eventlite_core::StreamOptions::new().batch_size(1_000))? {
                    for e in batch? {
                        sum = sum.wrapping_add(e.data::<Payload>()?.amount);
                        n += 1;
                    }
                }
                n
            }
            Reader::Sqlite(r) => raw_decoded(&mut sum, row_data, |each| r.read_all(each))?,
            Reader::Redb(r) => raw_decoded(&mut sum, redb_data, |each| r.read_all(each))?,
            Reader::Postgres(r) => {
                raw_decoded(&mut sum, row_data, |each| r.borrow_mut().read_all(each))?
            }
        };
        std::hint::black_box(sum);
        Ok(n)
    }
}

/// Raw's whole log through `read_all`, a batch at a time, each event's data decoded and its
/// amount added to `sum`; how many. Raw's batch visitors cannot fail: the first decode error
/// is kept for after.
fn raw_decoded<R>(
    sum: &mut u64,
    data: fn(&R) -> &str,
    read_all: impl FnOnce(&mut dyn FnMut(&[(u64, R)]) -> u64) -> Result<u64>,
) -> Result<u64> {
    let mut failed = None;
    let n = read_all(&mut |batch| {
        add_payloads(sum, batch.iter().map(|(_, r)| data(r))).unwrap_or_else(|e| {
            failed.get_or_insert(e);
            0
        })
    })?;
    failed.map_or(Ok(n), Err)
}

fn row_data(r: &raw::Row) -> &str {
    &r.data
}

fn redb_data(r: &raw::redb::RedbRow) -> &str {
    &r.data
}

/// Decodes each of `datas` as a [`Payload`] and adds its amount to `sum`; how many.
fn add_payloads<'a>(sum: &mut u64, datas: impl Iterator<Item = &'a str>) -> Result<u64> {
    let mut n = 0;
    for data in datas {
        *sum = sum.wrapping_add(serde_json::from_str::<Payload>(data)?.amount);
        n += 1;
    }
    Ok(n)
}

/// Work done per second by `op` on readers `a` and `b` of the files `pa` and `pb`, taking
/// turns over `reps` repetitions; both must do the same work.
fn read_pair(
    (a, pa): (&Reader, &str),
    (b, pb): (&Reader, &str),
    reps: usize,
    run: usize,
    op: &dyn Fn(&Reader, usize, &str) -> Result<u64>,
) -> Result<(f64, f64)> {
    let per = reps.div_ceil(SLICES).max(1);
    let slices = reps.div_ceil(per);
    let (mut na, mut nb) = (0u64, 0u64);
    let (ta, tb) = interleaved(
        slices,
        run,
        |i| {
            for k in (i * per)..((i + 1) * per).min(reps) {
                na += op(a, k, pa)?;
            }
            Ok(())
        },
        |i| {
            for k in (i * per)..((i + 1) * per).min(reps) {
                nb += op(b, k, pb)?;
            }
            Ok(())
        },
        || Ok(()),
    )?;
    anyhow::ensure!(na == nb, "ours did {na} units of work, the other {nb}");
    Ok((na as f64 / ta, nb as f64 / tb))
}

/// The load and read cases of both tables on `engine`.
fn loads(b: &mut Bench, engine: Engine) -> Result<()> {
    let n = b.config.events;
    let dir = crate::StoreDir::new(engine)?;
    let path = dir.path().join(engine.file());
    let started = Instant::now();
    let contiguous = build_read_store(engine, &path, n)?;
    eprintln!(
        "  built a {n}-event {} store of streams in {:.1}s",
        engine.name(),
        started.elapsed().as_secs_f64()
    );
    // Ours and raw read copies of one file (redb locks its file against a second handle); on
    // a server both read the one schema.
    let raw_path = match engine {
        Engine::Postgres => {
            crate::settle_pg_store(&path)?;
            path.clone()
        }
        _ => {
            let raw_path = dir.path().join(format!("raw-{}", engine.file()));
            copy_store(&path, &raw_path)?;
            raw_path
        }
    };
    let setup = Setup::default();
    let plan = stream_plan(n);
    // Each load case reads about as many events as the store holds.
    for size in SIZES {
        let names: Vec<&str> = plan
            .iter()
            .filter(|(_, s)| *s == size)
            .map(|(name, _)| name.as_str())
            .collect();
        let reps = (n / size).max(1) as usize;
        for (case, decoded) in [("as events", false), ("decoded", true)] {
            let (o, r) = each_run(b.config.runs, |run| {
                let ours = Reader::open(engine, &path, &setup, false)?;
                let raw = Reader::open(engine, &raw_path, &setup, true)?;
                let op = |reader: &Reader, k: usize, _: &str| match decoded {
                    true => reader.fold(names[k % names.len()]),
                    false => reader.load(names[k % names.len()]),
                };
                read_pair((&ours, ""), (&raw, ""), reps, run, &op)
            })?;
            b.record(
                TABLE,
                &format!("load a stream of {size}, {case}"),
                engine,
                "events/s",
                o,
                Some(r),
            );
        }
    }
    let (o, r) = each_run(b.config.runs, |run| {
        let ours = Reader::open(engine, &path, &setup, false)?;
        let raw = Reader::open(engine, &raw_path, &setup, true)?;
        read_pair((&ours, ""), (&raw, ""), 3, run, &|reader, _, _| {
            reader.read_all_decoded()
        })
    })?;
    b.record(
        TABLE,
        "read the whole log in batches of 1,000, decoded",
        engine,
        "events/s",
        o,
        Some(r),
    );
    let reps = if b.config.quick { 20 } else { 100 };
    let (o, r) = each_run(b.config.runs, |run| {
        let ours = Reader::open(engine, &path, &setup, false)?;
        let op = |reader: &Reader, _: usize, how: &str| -> Result<u64> {
            let Reader::Ours(s) = reader else {
                anyhow::bail!("ours only")
            };
            Ok(match how {
                "stream" => s.read_stream(CONTIGUOUS, 1)?.len(),
                _ => s
                    .query(&Query::new(
                        Filter {
                            id_from: Some(*contiguous.start()),
                            id_to: Some(*contiguous.end()),
                            ..Filter::default()
                        },
                        Order::IdAsc,
                    ))?
                    .len(),
            } as u64)
        };
        read_pair((&ours, "stream"), (&ours, "range"), reps, run, &op)
    })?;
    b.record(TARGETS, STREAM_VS_RANGE, engine, "events/s", o, Some(r));
    // A server's memory is not the client's: the memory table is the file engines'.
    match engine {
        Engine::Postgres => Ok(()),
        _ => memory(b, engine, &path, &raw_path),
    }
}

/// Resident memory of this process, in KiB, from `/proc/self/status`: (peak, anonymous,
/// file-backed). Zeros where the system does not tell.
fn rss() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("RssAnon:"), field("RssFile:"))
}

/// What a memory child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Loads every stream of the read store, decoded, twice.
    Streams,
    /// Reads the whole log decoded.
    Log,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Streams => "streams",
            Work::Log => "log",
        }
    }
}

/// The child process of the memory table: opens the store at `path` (of `n` events) as ours
/// or as plain raw code with the engine's default cache, does `work`, and prints its peak,
/// anonymous and file-backed resident memory in KiB.
pub fn rss_child(engine: Engine, raw: bool, work: Work, n: u64, path: &Path) -> Result<()> {
    let reader = match (raw, engine) {
        (false, _) => Reader::Ours(open_ours(engine, path, &Setup::default())?),
        (true, Engine::Sqlite) => Reader::Sqlite(raw::sqlite::Raw::open_plain(path)?),
        (true, Engine::Redb) => Reader::Redb(raw::redb::Raw::open_plain(path)?),
        (true, Engine::Postgres) => anyhow::bail!("the memory table is the file engines'"),
    };
    let done = match work {
        Work::Streams => {
            let mut done = 0;
            for _ in 0..2 {
                for (name, _) in stream_plan(n) {
                    done += reader.fold(&name)?;
                }
                done += reader.fold(CONTIGUOUS)?;
            }
            done
        }
        Work::Log => reader.read_all_decoded()?,
    };
    anyhow::ensure!(done > 0, "the child read nothing");
    let (peak, anon, file) = rss();
    println!("{peak} {anon} {file}");
    Ok(())
}

/// Runs [`rss_child`] in a new process of this program; its (peak, anonymous, file-backed).
fn measure_rss(engine: Engine, raw: bool, work: Work, n: u64, path: &Path) -> Result<[f64; 3]> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--rss-child",
            engine.name(),
            if raw { "raw" } else { "ours" },
        ])
        .args([work.name(), &n.to_string()])
        .arg(path)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "memory child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let figures: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    match figures[..] {
        [peak, anon, file] => Ok([peak, anon, file]),
        _ => anyhow::bail!("memory child printed {text:?}"),
    }
}

/// The memory table on `engine`: ours and raw, each a new process, on copies of one store.
fn memory(b: &mut Bench, engine: Engine, path: &Path, raw_path: &Path) -> Result<()> {
    let n = b.config.events;
    for work in [Work::Streams, Work::Log] {
        let mut ours: [Vec<f64>; 3] = Default::default();
        let mut raws: [Vec<f64>; 3] = Default::default();
        for _ in 0..b.config.runs {
            let o = measure_rss(engine, false, work, n, path)?;
            let r = measure_rss(engine, true, work, n, raw_path)?;
            for i in 0..3 {
                ours[i].push(o[i]);
                raws[i].push(r[i]);
            }
        }
        let what = match work {
            Work::Streams => "loading every stream twice",
            Work::Log => "reading the whole log",
        };
        for (i, figure) in ["peak RSS", "RSS after, anonymous", "RSS after, file-backed"]
            .iter()
            .enumerate()
        {
            b.record(
                MEMORY,
                &format!("{figure}, {what}"),
                engine,
                "KiB",
                std::mem::take(&mut ours[i]),
                Some(std::mem::take(&mut raws[i])),
            );
        }
    }
    Ok(())
}

/// The case behind "peak RSS loading streams within 2× of plain code".
pub const PEAK_LOADING: &str = "peak RSS, loading every stream twice";

/// Every aggregate case on `engine`.
pub fn aggregates(b: &mut Bench, engine: Engine) -> Result<()> {
    writes(b, engine)?;
    loads(b, engine)?;
    Ok(())
}
