//! The child process of the reliability tests. Modes:
//!
//! - `append ENGINE PATH DURABILITY FIRST_BATCH SEED`: appends random batches of 1–3 events
//!   forever, printing `ack <id> <batch> <k> <n>` for each event once the append returned.
//! - `concurrent ENGINE PATH DURABILITY FIRST_BATCH SEED`: as `append`, from 8 threads at once
//!   (thread `t` numbers its batches `FIRST_BATCH + t + 8k`), so that commits are shared.
//! - `fill ENGINE PATH FSIZE_LIMIT FIRST_BATCH`: ignores SIGXFSZ, limits the size of files it
//!   writes to FSIZE_LIMIT bytes, appends until an append fails, prints `err <variant>` and exits.
//! - `streams ENGINE PATH STREAM,STREAM,... COUNT`: appends COUNT single events round-robin to
//!   the streams with expected versions, retrying on conflicts; prints `<id> <stream>
//!   <version>` per event and `conflicts <n>` at the end. ENGINE `postgres`: PATH is a schema on
//!   the server at `EVENTLITE_PG_URL` (so in every mode that takes ENGINE PATH).
//! - `multi PATH COUNT`: appends COUNT single events to a SQLite store, printing each id.
//! - `checkpoint ENGINE PATH DURABILITY COUNT`: appends COUNT single events, calls
//!   `checkpoint`, prints `checkpointed <last id>` and waits to be killed.
//! - `correlated PATH CORRELATION COUNT`: appends COUNT events of one correlation to a SQLite
//!   store.
//! - `paced PATH DELAY_MS SEED`: appends single events to a redb `Relaxed` store whose
//!   `relaxed_max_delay` is DELAY_MS (and whose commit count never forces a flush), pausing
//!   now and then for up to 1.5 × DELAY_MS; prints `ack <id> <batch> 0 1 <µs since epoch>`.
//! - `create ENGINE PATH`: opens (creates) the store at PATH, prints `open` and waits to be
//!   killed.
//! - `project ENGINE STORE READ_MODEL`: brings a read model in the SQLite file READ_MODEL up to
//!   date with the store (`SqliteProjection`, batches of 25), prints `done <position>`.
use std::io::Write;

use anyhow::{Context, Result};
use eventlite_core::{Durability, Error, NewEvent};
use eventlite_reliability::{batch_event, durability, engine, open, open_named};

fn arg(args: &[String], i: usize) -> Result<&str> {
    args.get(i)
        .map(String::as_str)
        .with_context(|| format!("argument {i} missing"))
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::StorageFull { .. } => "StorageFull",
        Error::ReadOnly { .. } => "ReadOnly",
        Error::Corrupt { .. } => "Corrupt",
        Error::Busy { .. } => "Busy",
        Error::Unavailable { .. } => "Unavailable",
        Error::Backend { .. } => "Backend",
        _ => "Other",
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    match arg(&args, 1)? {
        "append" => {
            let store = open_named(arg(&args, 2)?, arg(&args, 3)?, durability(arg(&args, 4)?)?)?;
            let mut batch: u64 = arg(&args, 5)?.parse()?;
            let mut seed: u64 = arg(&args, 6)?.parse::<u64>()? | 1;
            loop {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = seed % 3 + 1;
                let pad = (seed >> 8) as usize % 300;
                let stored =
                    store.store_bulk((0..n).map(|k| batch_event(batch, k, n, pad)).collect())?;
                for (k, e) in stored.iter().enumerate() {
                    writeln!(out, "ack {} {batch} {k} {n}", e.id)?;
                }
                out.flush()?;
                batch += 1;
            }
        }
        "concurrent" => {
            // The writers lock stdout per batch; the main thread must not hold it.
            drop(out);
            let store = open(
                engine(arg(&args, 2)?)?,
                arg(&args, 3)?.as_ref(),
                durability(arg(&args, 4)?)?,
            )?;
            let first: u64 = arg(&args, 5)?.parse()?;
            let seed: u64 = arg(&args, 6)?.parse::<u64>()?;
            let store = &store;
            std::thread::scope(|s| -> Result<()> {
                let writers: Vec<_> = (0..8u64)
                    .map(|t| {
                        s.spawn(move || -> Result<()> {
                            let mut seed = (seed ^ (t + 1).wrapping_mul(0x9E37_79B9)) | 1;
                            for k in 0.. {
                                seed ^= seed << 13;
                                seed ^= seed >> 7;
                                seed ^= seed << 17;
                                let (n, pad) = (seed % 3 + 1, (seed >> 8) as usize % 300);
                                let batch = first + t + 8 * k;
                                let stored = store.store_bulk(
                                    (0..n).map(|i| batch_event(batch, i, n, pad)).collect(),
                                )?;
                                let mut out = std::io::stdout().lock();
                                for (i, e) in stored.iter().enumerate() {
                                    writeln!(out, "ack {} {batch} {i} {n}", e.id)?;
                                }
                                out.flush()?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for w in writers {
                    w.join()
                        .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
                }
                Ok(())
            })
        }
        "fill" => {
            let limit: u64 = arg(&args, 4)?.parse()?;
            let mut batch: u64 = arg(&args, 5)?.parse()?;
            // SAFETY: plain libc calls with valid arguments; ignoring SIGXFSZ makes an
            // oversize write fail with EFBIG instead of killing the process.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let mut lim: libc::rlimit = std::mem::zeroed();
                libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim);
                lim.rlim_cur = limit;
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    anyhow::bail!("setrlimit failed");
                }
            }
            let store = match open(
                engine(arg(&args, 2)?)?,
                arg(&args, 3)?.as_ref(),
                Durability::Immediate,
            ) {
                Ok(s) => s,
                Err(e) => {
                    let e = e.downcast::<Error>()?;
                    writeln!(out, "err {} {e}", variant(&e))?;
                    return Ok(());
                }
            };
            loop {
                let events = (0..3).map(|k| batch_event(batch, k, 3, 4_000)).collect();
                match store.store_bulk(events) {
                    Ok(stored) => {
                        for (k, e) in stored.iter().enumerate() {
                            writeln!(out, "ack {} {batch} {k} 3", e.id)?;
                        }
                        out.flush()?;
                        batch += 1;
                    }
                    Err(e) => {
                        writeln!(out, "err {} {e}", variant(&e))?;
                        return Ok(());
                    }
                }
            }
        }
        "streams" => {
            // Optimistic concurrency across processes: each append expects the stream's version
            // this writer last saw, and on a conflict takes the version the conflict reports.
            let store = open_named(arg(&args, 2)?, arg(&args, 3)?, Durability::Immediate)?;
            let streams: Vec<String> = arg(&args, 4)?.split(',').map(str::to_owned).collect();
            let count: u64 = arg(&args, 5)?.parse()?;
            let mut seen: Vec<u64> = vec![0; streams.len()];
            let (mut stored, mut conflicts, mut turn) = (0, 0u64, 0usize);
            while stored < count {
                let s = turn % streams.len();
                turn += 1;
                let event = NewEvent::new("step").data(&stored);
                match store.append_to_stream(
                    &streams[s],
                    eventlite_core::ExpectedVersion::Exact(seen[s]),
                    vec![event],
                ) {
                    Ok(events) => {
                        for e in &events {
                            writeln!(
                                out,
                                "{} {} {}",
                                e.id,
                                streams[s],
                                e.stream_version.unwrap_or(0)
                            )?;
                        }
                        seen[s] += events.len() as u64;
                        stored += 1;
                    }
                    Err(Error::Conflict { actual, .. }) => {
                        seen[s] = actual.unwrap_or(0);
                        conflicts += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            writeln!(out, "conflicts {conflicts}")?;
            Ok(())
        }
        "multi" => {
            let store = eventlite_core::EventStore::new(eventlite_sqlite::SqliteBackend::open(
                arg(&args, 2)?,
                eventlite_sqlite::SqliteOptions {
                    busy_timeout: std::time::Duration::from_secs(30),
                    ..eventlite_sqlite::SqliteOptions::default()
                },
            )?);
            let count: u64 = arg(&args, 3)?.parse()?;
            for i in 0..count {
                let e = store.store(NewEvent::new("multi").data(&i))?;
                writeln!(out, "{}", e.id)?;
            }
            Ok(())
        }
        "correlated" => {
            let store = open(
                engine("sqlite")?,
                arg(&args, 2)?.as_ref(),
                Durability::Immediate,
            )?;
            let count: u64 = arg(&args, 4)?.parse()?;
            for i in 0..count {
                store.store(
                    NewEvent::new("correlated")
                        .correlation_id(arg(&args, 3)?)
                        .data(&i),
                )?;
            }
            Ok(())
        }
        "project" => {
            let store = open(
                engine(arg(&args, 2)?)?,
                arg(&args, 3)?.as_ref(),
                Durability::Immediate,
            )?;
            let mut db = eventlite_sqlite::rusqlite::Connection::open(arg(&args, 4)?)?;
            db.execute_batch(
                "CREATE TABLE IF NOT EXISTS applied (event_id INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS totals (n INTEGER NOT NULL, sum INTEGER NOT NULL);
                 INSERT INTO totals SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM totals);",
            )?;
            let mut projection =
                eventlite_sqlite::SqliteProjection::new(&mut db, "applied")?.batch_size(25);
            // No uniqueness anywhere: an event applied twice would show as a duplicate row.
            // Each application is reported, so that the parent knows its kill landed mid-run.
            let stats = projection.catch_up(&store, &mut |conn, event| {
                conn.execute(
                    "INSERT INTO applied (event_id) VALUES (?1)",
                    [event.id as i64],
                )?;
                conn.execute(
                    "UPDATE totals SET n = n + 1, sum = sum + ?1",
                    [event.id as i64],
                )?;
                writeln!(std::io::stdout(), "applied {}", event.id)?;
                Ok(())
            })?;
            writeln!(out, "done {}", stats.position)?;
            Ok(())
        }
        "paced" => {
            let delay = std::time::Duration::from_millis(arg(&args, 3)?.parse()?);
            let options = eventlite_redb::RedbOptions {
                relaxed_max_delay: delay,
                relaxed_max_commits: u32::MAX,
                ..eventlite_reliability::setup(Durability::Relaxed).redb()
            };
            let store = eventlite_core::EventStore::new(eventlite_redb::RedbBackend::open(
                arg(&args, 2)?,
                options,
            )?);
            let mut seed: u64 = arg(&args, 4)?.parse::<u64>()? | 1;
            for batch in 0.. {
                let e = store.store(batch_event(batch, 0, 1, 0))?;
                let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
                writeln!(out, "ack {} {batch} 0 1 {}", e.id, at.as_micros())?;
                out.flush()?;
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Mostly a steady trickle; one commit in eight is followed by a pause, the
                // writer stalls that used to stretch the window past the delay.
                let pause = if seed.is_multiple_of(8) {
                    delay.mul_f64((seed >> 8) as f64 % 1_000.0 / 1_000.0 * 1.5)
                } else {
                    std::time::Duration::from_millis(2)
                };
                std::thread::sleep(pause);
            }
            Ok(())
        }
        "create" => {
            let _store = open(
                engine(arg(&args, 2)?)?,
                arg(&args, 3)?.as_ref(),
                Durability::Immediate,
            )?;
            writeln!(out, "open")?;
            out.flush()?;
            loop {
                std::thread::park();
            }
        }
        "checkpoint" => {
            let store = open(
                engine(arg(&args, 2)?)?,
                arg(&args, 3)?.as_ref(),
                durability(arg(&args, 4)?)?,
            )?;
            let count: u64 = arg(&args, 5)?.parse()?;
            for i in 0..count {
                store.store(batch_event(i, 0, 1, 0))?;
            }
            store.checkpoint()?;
            writeln!(out, "checkpointed {}", store.last_id()?)?;
            out.flush()?;
            // Killed here: whatever the checkpoint promised must survive.
            loop {
                std::thread::park();
            }
        }
        other => anyhow::bail!("unknown mode {other}"),
    }
}
