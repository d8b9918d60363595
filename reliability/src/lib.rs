//! Shared pieces of the reliability tests: the deterministic events the writer child appends,
//! and how to check what survived.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use eventlite_benches::{Engine, Setup, open_ours};
use eventlite_core::{Durability, Event, IndexConfig, NewEvent};

pub use eventlite_benches::Engine as Kind;
pub use eventlite_benches::Store;

/// A xorshift generator: the tests' random moments and damage, the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next draw below `below` (0 when `below` is 0).
    pub fn below(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// Says that a test that needs mounts (root) is skipped, or, when `EVENTLITE_REQUIRE_MOUNTS`
/// is set (as CI sets it), fails it: CI never skips them.
pub fn skipped(why: &str) {
    if std::env::var_os("EVENTLITE_REQUIRE_MOUNTS").is_some() {
        panic!("{why}, and EVENTLITE_REQUIRE_MOUNTS is set: this test must run here");
    }
    eprintln!("SKIPPED: {why}");
}

/// Parses an engine name.
pub fn engine(name: &str) -> Result<Engine> {
    match name {
        "sqlite" => Ok(Engine::Sqlite),
        "redb" => Ok(Engine::Redb),
        other => anyhow::bail!("unknown engine {other}"),
    }
}

/// Parses a durability name.
pub fn durability(name: &str) -> Result<Durability> {
    match name {
        "immediate" => Ok(Durability::Immediate),
        "relaxed" => Ok(Durability::Relaxed),
        other => anyhow::bail!("unknown durability {other}"),
    }
}

/// How the reliability tests open stores: the guide's default indexes plus cmd and user, so
/// secondary tables are exercised too.
pub fn setup(durability: Durability) -> Setup {
    Setup {
        indexes: IndexConfig {
            cmd: true,
            user: true,
            ..IndexConfig::default()
        },
        durability,
        ..Setup::default()
    }
}

/// Opens a store.
pub fn open(engine: Engine, path: &Path, durability: Durability) -> Result<Store> {
    open_ours(engine, path, &setup(durability))
}

/// The PostgreSQL server of `scripts/with-postgres` (`EVENTLITE_PG_URL`), if the tests have
/// one. Without one, says on standard error (past the test harness's capture) that `what` was
/// skipped, or, when `EVENTLITE_REQUIRE_PG` is set (as CI sets it), fails: CI never skips them.
pub fn pg_url_or_skip(what: &str) -> Option<String> {
    use std::io::Write as _;
    if let Some(url) = std::env::var("EVENTLITE_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(url);
    }
    if std::env::var_os("EVENTLITE_REQUIRE_PG").is_some() {
        panic!(
            "EVENTLITE_PG_URL is not set and EVENTLITE_REQUIRE_PG is: run through scripts/with-postgres"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "*** {what}: SKIPPED (EVENTLITE_PG_URL is not set; run `scripts/with-postgres cargo test --workspace`) ***"
    );
    None
}

/// A schema of its own for one test's store, on the server at `EVENTLITE_PG_URL`; dropped,
/// with everything in it, when this is.
#[derive(Debug)]
pub struct PgSchema(pub String);

impl PgSchema {
    /// A schema name no other test uses, tagged `tag`.
    pub fn new(tag: &str) -> PgSchema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        PgSchema(format!("r_{tag}_{}_{nanos}", std::process::id()))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(url) = std::env::var("EVENTLITE_PG_URL")
            && let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls)
        {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
        }
    }
}

/// Opens the PostgreSQL store in `schema` on the server at `EVENTLITE_PG_URL`, with the
/// reliability tests' indexes.
pub fn open_postgres(schema: &str, durability: Durability) -> Result<Store> {
    let url = std::env::var("EVENTLITE_PG_URL").context("EVENTLITE_PG_URL is not set")?;
    let options = eventlite_postgres::PostgresOptions {
        schema: schema.to_owned(),
        indexes: setup(durability).indexes,
        durability,
        ..eventlite_postgres::PostgresOptions::new(url)
    };
    let backend: Box<dyn eventlite_core::Backend> =
        Box::new(eventlite_postgres::PostgresBackend::open(options)?);
    Ok(eventlite_core::EventStore::new(backend))
}

/// Opens a store of `engine` (`sqlite`, `redb`, or `postgres`, whose `path` is then a schema
/// on the server at `EVENTLITE_PG_URL`).
pub fn open_named(engine_name: &str, path: &str, durability: Durability) -> Result<Store> {
    match engine_name {
        "postgres" => open_postgres(path, durability),
        other => open(engine(other)?, path.as_ref(), durability),
    }
}

/// Event `k` of a batch of `n` with number `batch`: its content is a function of those three,
/// so that a checker can tell what every stored event must contain.
pub fn batch_event(batch: u64, k: u64, n: u64, pad: usize) -> NewEvent {
    NewEvent::new("crash")
        .user(format!("b{batch}"))
        .correlation_id(format!("batch-{batch}"))
        .data(&serde_json::json!({ "batch": batch, "k": k, "n": n, "pad": "x".repeat(pad) }))
}

/// What a stored crash event says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Batch number.
    pub batch: u64,
    /// Position in the batch.
    pub k: u64,
    /// Batch length.
    pub n: u64,
}

/// Reads an event's tag, checking that its other fields agree with it.
pub fn tag(e: &Event) -> Result<Tag> {
    let v: serde_json::Value = e.data()?;
    let get = |f: &str| {
        v[f].as_u64()
            .with_context(|| format!("event {} has no {f}", e.id))
    };
    let t = Tag {
        batch: get("batch")?,
        k: get("k")?,
        n: get("n")?,
    };
    ensure!(
        e.cmd == "crash" && e.user == format!("b{}", t.batch),
        "event {} fields",
        e.id
    );
    ensure!(
        e.correlation_id == format!("batch-{}", t.batch),
        "event {} correlation",
        e.id
    );
    Ok(t)
}

/// An acknowledgement line from the writer: `ack <id> <batch> <k> <n>`.
pub fn parse_acks(stdout: &str) -> BTreeMap<u64, Tag> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "ack").then_some(())?;
            let mut num = || w.next()?.parse::<u64>().ok();
            let id = num()?;
            Some((
                id,
                Tag {
                    batch: num()?,
                    k: num()?,
                    n: num()?,
                },
            ))
        })
        .collect()
}

/// What a reopened store holds: every event 1..=last, read and checksum-verified, gap-free,
/// whole batches only. Returns the events.
pub fn check_store(store: &Store) -> Result<Vec<Event>> {
    let last = store.last_id()?;
    // One keyset scan reads (and checksum-verifies) every event; spot gets check the id path.
    let mut events = Vec::with_capacity(last as usize);
    for batch in store.read_all(eventlite_core::StreamOptions::new().batch_size(1_000))? {
        events.extend(batch?);
    }
    for (i, e) in events.iter().enumerate() {
        ensure!(e.id == i as u64 + 1, "gap: event {} missing", i + 1);
    }
    ensure!(
        events.len() as u64 == last,
        "{} events read, last id {last}",
        events.len()
    );
    for id in [1, last / 2, last]
        .into_iter()
        .filter(|id| (1..=last).contains(id))
    {
        let e = store
            .get(id)?
            .with_context(|| format!("event {id} missing"))?;
        ensure!(
            events[id as usize - 1] == e,
            "get({id}) differs from the scan"
        );
    }
    ensure!(store.get(last + 1)?.is_none(), "an event after the last id");
    let mut batches: BTreeMap<u64, (u64, Vec<u64>)> = BTreeMap::new();
    for e in &events {
        let t = tag(e)?;
        let entry = batches.entry(t.batch).or_insert((t.n, Vec::new()));
        ensure!(entry.0 == t.n, "batch {} has two lengths", t.batch);
        // A batch's events have consecutive ids (no other batch between them).
        ensure!(
            t.k == 0
                || events[e.id as usize - 2].id + 1 == e.id
                    && tag(&events[e.id as usize - 2])?.batch == t.batch,
            "event {} of batch {} does not follow its batch's previous event",
            e.id,
            t.batch
        );
        entry.1.push(t.k);
    }
    for (batch, (n, ks)) in &batches {
        ensure!(
            *ks == (0..*n).collect::<Vec<_>>(),
            "batch {batch} is partial or out of order: {ks:?} of {n}"
        );
    }
    Ok(events)
}
