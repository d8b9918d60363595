//! Damage that must never answer wrongly without an error. Copies of a checkpointed
//! 1,000-event store get one kind of damage each — a 4 KiB page copied over another, 1–8
//! flipped bits, a zeroed byte range — and every read is compared with the undamaged store's
//! answer. Per engine and kind the test counts typed errors, silent wrong answers (an event
//! that is not the one stored, or one the read does not select) and silent omissions (an
//! answer that differs otherwise: events left out, a count off), and whether `verify` finds
//! the damage. It asserts: no silent wrong answer from any read; nothing silent in `get`, the
//! whole-log reads or a stream's events; and every copy that answers anything silently
//! differently is one that `verify` reports. `EVENTLITE_DAMAGE_ITERS` sets the copies per
//! engine and kind (default 60).
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use anyhow::{Result, ensure};
use eventlite_core::{
    Durability, Event, ExpectedVersion, Filter, NewEvent, Order, Page, Query, StreamOptions,
};
use eventlite_reliability::{Kind, Rng, Store, open};

const EVENTS: u64 = 1_000;
const PAGE: usize = 4_096;

fn iterations() -> u64 {
    std::env::var("EVENTLITE_DAMAGE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// One read and what it answered: events, or a number.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Events(Vec<Event>),
    Count(u64),
}

/// Whether a silent difference in this read is held to "never" (the cheap read-path checks
/// must turn it into an error) or may be left to `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Reads,
    Verify,
}

type Probe = (
    String,
    Guard,
    Box<dyn Fn(&Store) -> eventlite_core::Result<Answer>>,
);

fn probes() -> Vec<Probe> {
    let mut out: Vec<Probe> = vec![
        (
            "get every id".into(),
            Guard::Reads,
            Box::new(move |s: &Store| {
                let mut v = Vec::new();
                for id in 1..=EVENTS + 1 {
                    v.extend(s.get(id)?);
                }
                Ok(Answer::Events(v))
            }),
        ),
        (
            "query everything".into(),
            Guard::Reads,
            Box::new(move |s: &Store| s.query(&Query::default()).map(Answer::Events)),
        ),
        (
            "stream everything".into(),
            Guard::Reads,
            Box::new(move |s: &Store| {
                let mut v = Vec::new();
                for b in s.read_all(StreamOptions::new().batch_size(128))? {
                    v.extend(b?);
                }
                Ok(Answer::Events(v))
            }),
        ),
        (
            "last id".into(),
            Guard::Verify,
            Box::new(|s: &Store| s.last_id().map(Answer::Count)),
        ),
    ];
    for cmd in ["a", "b", "c"] {
        out.push((
            format!("by cmd {cmd}"),
            Guard::Verify,
            Box::new(move |s: &Store| {
                s.query(&Query::new(Filter::cmd(cmd), Order::IdAsc))
                    .map(Answer::Events)
            }),
        ));
        out.push((
            format!("count cmd {cmd}"),
            Guard::Verify,
            Box::new(move |s: &Store| s.count(&Filter::cmd(cmd)).map(Answer::Count)),
        ));
    }
    for user in ["u0", "u3"] {
        out.push((
            format!("user {user}, first page"),
            Guard::Verify,
            Box::new(move |s: &Store| {
                s.by_user(user, Page::first(100))
                    .map(|p| Answer::Events(p.events))
            }),
        ));
        out.push((
            format!("count user {user}"),
            Guard::Verify,
            Box::new(move |s: &Store| s.count(&Filter::user(user)).map(Answer::Count)),
        ));
    }
    for g in ["g1", "g5"] {
        out.push((
            format!("transaction {g}"),
            Guard::Verify,
            Box::new(move |s: &Store| s.transaction(g).map(Answer::Events)),
        ));
    }
    out.push((
        "stream s1".into(),
        // A stream's versions are checked as read, but an index that lost its last entries
        // reads as a shorter stream: only `verify` sees that.
        Guard::Verify,
        Box::new(|s: &Store| {
            s.query(&Query::new(Filter::stream("s1"), Order::IdAsc))
                .map(Answer::Events)
        }),
    ));
    out
}

#[derive(Debug, Default)]
struct Tally {
    copies: u64,
    /// Copies refused at open with a typed error.
    refused: u64,
    /// Copies that answered every read as the undamaged store did.
    unchanged: u64,
    /// Reads that gave a typed error.
    read_errors: u64,
    /// Reads that answered an event not stored, or one they do not select, with no error.
    silent_wrong: u64,
    /// Reads that answered otherwise differently with no error.
    silent_omissions: u64,
    /// Of those, in reads held to "never".
    silent_in_guarded_reads: u64,
    /// Copies with a silent difference that `verify` reported.
    found_by_verify: u64,
    /// Copies with a silent difference that `verify` did not report.
    missed_by_verify: u64,
    /// `verify` reports on copies whose reads all agreed (damage in unused space or a page
    /// that only `verify` reads).
    verify_only: u64,
    panics: u64,
}

fn build(kind: Kind, path: &Path) -> Result<BTreeMap<String, Answer>> {
    let store = open(kind, path, Durability::Immediate)?;
    let mut batch = Vec::new();
    for i in 0..EVENTS {
        let mut e = NewEvent::new(["a", "b", "c"][(i % 3) as usize])
            .user(format!("u{}", i % 7))
            .correlation_id(format!("g{}", i % 9))
            .data(&serde_json::json!({ "i": i, "text": "x".repeat((i % 40) as usize) }));
        if i % 10 == 0 {
            e = e.stream(format!("s{}", i % 3), ExpectedVersion::Any);
        }
        if i % 50 == 0 && !batch.is_empty() {
            store.store_bulk(std::mem::take(&mut batch))?;
        }
        batch.push(e);
    }
    store.store_bulk(batch)?;
    ensure!(store.last_id()? == EVENTS);
    store.checkpoint()?;
    let answers = probes()
        .into_iter()
        .map(|(name, _, probe)| Ok((name, probe(&store)?)))
        .collect::<Result<_>>()?;
    ensure!(store.verify()?.is_ok());
    Ok(answers)
}

/// Whether `got` holds an event that the undamaged store's answer `want` does not: one that
/// is not as stored, or one this read does not select.
fn has_wrong_event(got: &Answer, want: &Answer) -> bool {
    match (got, want) {
        (Answer::Events(got), Answer::Events(want)) => {
            let want: std::collections::HashMap<u64, &Event> =
                want.iter().map(|e| (e.id, e)).collect();
            got.iter().any(|e| want.get(&e.id) != Some(&e))
        }
        _ => false,
    }
}

fn damage(bytes: &mut [u8], how: &str, next: &mut impl FnMut(u64) -> u64) {
    let len = bytes.len() as u64;
    match how {
        "page copy" => {
            let pages = len / PAGE as u64;
            let from = next(pages) as usize * PAGE;
            let mut to = next(pages) as usize * PAGE;
            if to == from {
                to = (to + PAGE) % (pages as usize * PAGE);
            }
            let page = bytes[from..from + PAGE].to_vec();
            bytes[to..to + PAGE].copy_from_slice(&page);
        }
        "bit flips" => {
            for _ in 0..1 + next(8) {
                let bit = next(len * 8);
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
        }
        _ => {
            let at = next(len) as usize;
            let n = (1 + next(PAGE as u64) as usize).min(bytes.len() - at);
            bytes[at..at + n].fill(0);
        }
    }
}

fn run(kind: Kind) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(kind.file());
    let original = build(kind, &path)?;
    // The checkpoint left the whole store in the main file; a log left beside it is empty.
    let bytes = std::fs::read(&path)?;
    let probes = probes();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut next = |below: u64| rng.below(below);
    let mut failures = Vec::new();
    for how in ["page copy", "bit flips", "zeroed range"] {
        let mut t = Tally::default();
        for copy_no in 0..iterations() {
            let mut copy = bytes.clone();
            damage(&mut copy, how, &mut next);
            let case = tempfile::tempdir()?;
            let damaged = case.path().join(kind.file());
            std::fs::write(&damaged, &copy)?;
            t.copies += 1;
            let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
                let store = match open(kind, &damaged, Durability::Immediate) {
                    Ok(s) => s,
                    Err(e) => {
                        e.downcast::<eventlite_core::Error>()?;
                        t.refused += 1;
                        return Ok(());
                    }
                };
                let mut silent = Vec::new();
                for (name, guard, probe) in &probes {
                    match probe(&store) {
                        Err(_) => t.read_errors += 1,
                        Ok(got) if got == original[name] => {}
                        Ok(got) => {
                            if has_wrong_event(&got, &original[name]) {
                                t.silent_wrong += 1;
                            } else {
                                t.silent_omissions += 1;
                            }
                            if *guard == Guard::Reads {
                                t.silent_in_guarded_reads += 1;
                                eprintln!(
                                    "{} {how} #{copy_no}: {name} differs silently",
                                    kind.name()
                                );
                            }
                            silent.push(name.clone());
                        }
                    }
                }
                let verified = store.verify().map(|r| !r.is_ok()).unwrap_or(true);
                match (silent.is_empty(), verified) {
                    (true, false) => t.unchanged += 1,
                    (true, true) => t.verify_only += 1,
                    (false, true) => t.found_by_verify += 1,
                    (false, false) => {
                        t.missed_by_verify += 1;
                        failures.push(format!(
                            "{} {how} #{copy_no}: {silent:?} differ silently and verify is clean",
                            kind.name()
                        ));
                    }
                }
                Ok(())
            }));
            match outcome {
                Ok(r) => r?,
                Err(_) => t.panics += 1,
            }
        }
        eprintln!("{} {how}: {t:?}", kind.name());
        ensure!(t.panics == 0, "{} {how}: panics", kind.name());
        ensure!(
            t.silent_wrong == 0,
            "{} {how}: {} silent wrong answers",
            kind.name(),
            t.silent_wrong
        );
        ensure!(
            t.silent_in_guarded_reads == 0,
            "{} {how}: {} silent differences in get, whole-log or stream reads",
            kind.name(),
            t.silent_in_guarded_reads
        );
    }
    ensure!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn sqlite_damage_never_answers_silently() -> Result<()> {
    run(Kind::Sqlite)
}

#[test]
fn redb_damage_never_answers_silently() -> Result<()> {
    run(Kind::Redb)
}
