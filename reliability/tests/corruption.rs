//! Damaged files: mutated copies of a store (25% truncated, 75% with 1–8 flipped bits). No
//! panic may reach the caller, and every event a damaged store returns must be the original
//! event (the per-event checksum turns a flipped payload bit into Error::Corrupt).
//! `EVENTLITE_CORRUPT_ITERS` sets the copies per engine (default 500: 1,000 in all).
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use anyhow::{Result, ensure};
use eventlite_core::{
    Callbacks, Durability, Event, EventData, ExpectedVersion, Filter, FnModel, NewEvent, Order,
    Page, Query, StreamOptions,
};
use eventlite_reliability::{Kind, open};

fn iterations() -> u64 {
    std::env::var("EVENTLITE_CORRUPT_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

#[derive(Debug, Default)]
struct Tally {
    copies: u64,
    opened: u64,
    errors: u64,
    panics: u64,
    events_verified: u64,
    wrong_events: u64,
}

/// Opens a damaged copy and reads it every way; counts what came back.
fn probe(kind: Kind, path: &Path, original: &[Event], t: &mut Tally) {
    let check = |e: &Event, t: &mut Tally| {
        if original.get((e.id as usize).wrapping_sub(1)) == Some(e) {
            t.events_verified += 1;
        } else {
            t.wrong_events += 1;
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| -> eventlite_core::Result<()> {
        let store = match open(kind, path, Durability::Immediate) {
            Ok(s) => s,
            Err(e) => {
                return Err(e
                    .downcast::<eventlite_core::Error>()
                    .unwrap_or_else(|e| eventlite_core::Error::corrupt(e.to_string())));
            }
        };
        t.opened += 1;
        let mut first_err = None;
        let mut note = |r: eventlite_core::Result<Vec<Event>>, t: &mut Tally| match r {
            Ok(events) => events.iter().for_each(|e| check(e, t)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        };
        let last = store.last_id().unwrap_or(original.len() as u64);
        for id in 1..=last.min(original.len() as u64 + 5) {
            note(store.get(id).map(|e| e.into_iter().collect()), t);
        }
        note(store.query(&Query::default()), t);
        note(
            store.query(&Query::new(Filter::cmd("b"), Order::DatetimeDesc)),
            t,
        );
        note(store.by_user("u1", Page::first(50)).map(|p| p.events), t);
        note(store.transaction("g3"), t);
        note(
            store.query(&Query::new(Filter::stream("s1"), Order::IdDesc)),
            t,
        );
        match store.read_all(StreamOptions::new().batch_size(64)) {
            Ok(batches) => {
                for b in batches {
                    note(b, t);
                }
            }
            Err(e) => first_err = Some(e),
        }
        // A replay reads rows into one reused batch, on its own decoding path.
        let mut model =
            FnModel::new(0u64).on_default(|n: &mut u64, e: &Event, _: &EventData<'_>| {
                *n += e.data.len() as u64;
                Ok(())
            });
        if let Err(e) = store.replay(&mut model, .., &mut Callbacks::new()) {
            first_err.get_or_insert(e);
        }
        let _ = store.count(&Filter::user("u2"));
        let _ = store.store(NewEvent::new("after-damage"));
        first_err.map_or(Ok(()), Err)
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => t.errors += 1,
        Err(_) => t.panics += 1,
    }
}

fn corrupt(kind: Kind) -> Result<Tally> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(kind.file());
    let original = {
        let store = open(kind, &path, Durability::Immediate)?;
        for i in 0..300u64 {
            let mut e = NewEvent::new(["a", "b", "c"][(i % 3) as usize])
                .user(format!("u{}", i % 4))
                .correlation_id(format!("g{}", i % 9))
                .data(&serde_json::json!({ "i": i, "text": "x".repeat((i % 50) as usize) }));
            if i % 10 == 0 {
                e = e.stream(format!("s{}", i % 3), ExpectedVersion::Any);
            }
            store.store(e)?;
        }
        store.query(&Query::default())?
    };
    let bytes = std::fs::read(&path)?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below.max(1)
    };
    let mut tally = Tally::default();
    for _ in 0..iterations() {
        let mut copy = bytes.clone();
        if next(4) == 0 {
            copy.truncate(next(copy.len() as u64) as usize);
        } else {
            for _ in 0..1 + next(8) {
                let bit = next(copy.len() as u64 * 8);
                copy[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
        }
        let case = tempfile::tempdir()?;
        let damaged = case.path().join(kind.file());
        std::fs::write(&damaged, &copy)?;
        tally.copies += 1;
        probe(kind, &damaged, &original, &mut tally);
    }
    eprintln!("{}: {tally:?}", kind.name());
    ensure!(
        tally.panics == 0,
        "{} panics reached the caller",
        tally.panics
    );
    ensure!(
        tally.wrong_events == 0,
        "{} wrong events returned",
        tally.wrong_events
    );
    Ok(tally)
}

#[test]
fn sqlite_damaged_files() -> Result<()> {
    corrupt(Kind::Sqlite).map(drop)
}

#[test]
fn redb_damaged_files() -> Result<()> {
    corrupt(Kind::Redb).map(drop)
}

/// Damaged redb files the fuzzer found: redb panicked on them, once inside a `Drop` while
/// unwinding, which aborts the process. They must give a typed error.
#[test]
fn redb_files_found_by_the_fuzzer_give_typed_errors() -> Result<()> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures)? {
        let src = entry?.path();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("damaged.redb");
        std::fs::copy(&src, &path)?;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            open(Kind::Redb, &path, Durability::Immediate).map(drop)
        }));
        let err = match outcome {
            Ok(Err(e)) => e.downcast::<eventlite_core::Error>()?,
            Ok(Ok(())) => anyhow::bail!("{} opened", src.display()),
            Err(_) => anyhow::bail!("{} panicked", src.display()),
        };
        ensure!(
            matches!(
                err,
                eventlite_core::Error::Corrupt { .. } | eventlite_core::Error::NotAStore { .. }
            ),
            "{}: {err:?}",
            src.display()
        );
        seen += 1;
    }
    ensure!(seen >= 3, "fixtures missing");
    Ok(())
}
