//! Shared pieces of the EventLite benchmarks: the engines under test, the generated events,
//! and the raw baselines (the same rows, schema, indexes and pragmas, written and read with
//! plain rusqlite / plain redb code); and the `seed-tables` run built on them: its
//! [`harness`], its [`cases`] and its [`report`]s.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::ops::RangeInclusive;
use std::path::Path;

use anyhow::{Context, Result};
use eventlite_core::{
    Backend, CachePolicy, Callbacks, Cursor, Durability, EventStore, Filter, FnModel, IndexConfig,
    NewEvent, Page, StreamOptions,
};
use eventlite_postgres::{PostgresBackend, PostgresOptions};
use eventlite_redb::{RedbBackend, RedbOptions};
use eventlite_sqlite::{JournalMode, SqliteBackend, SqliteOptions, Synchronous};

pub mod cases;
pub mod harness;
pub mod raw;
pub mod report;

/// An engine under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite (rusqlite, bundled).
    Sqlite,
    /// redb.
    Redb,
    /// PostgreSQL, on the server at `EVENTLITE_PG_URL`: its own table ([`cases::postgres`]),
    /// and the `reads`, `aggregates` and `subscriptions` tables, whose stores are schemas
    /// named for their paths ([`pg_schema`]).
    Postgres,
}

impl Engine {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Redb => "redb",
            Engine::Postgres => "postgres",
        }
    }

    /// The file name of a store.
    pub fn file(self) -> &'static str {
        match self {
            Engine::Sqlite => "bench.sqlite",
            Engine::Redb => "bench.redb",
            Engine::Postgres => "bench.postgres",
        }
    }
}

/// How a store is opened for a write case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Indexes.
    pub indexes: IndexConfig,
    /// Durability.
    pub durability: Durability,
    /// SQLite only: the journal mode.
    pub journal: JournalMode,
    /// SQLite only: an explicit synchronous level.
    pub synchronous: Option<Synchronous>,
    /// The store's cache.
    pub cache: CachePolicy,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            indexes: IndexConfig::high_volume(),
            durability: Durability::Immediate,
            journal: JournalMode::Wal,
            synchronous: None,
            cache: CachePolicy::disabled(),
        }
    }
}

impl Setup {
    /// SQLite options for this setup.
    pub fn sqlite(&self) -> SqliteOptions {
        SqliteOptions {
            indexes: self.indexes,
            durability: self.durability,
            journal_mode: self.journal,
            synchronous: self.synchronous,
            ..SqliteOptions::default()
        }
    }

    /// PostgreSQL options for this setup, for the store that stands for `path`
    /// ([`pg_schema`]) on the server at `EVENTLITE_PG_URL`.
    pub fn postgres(&self, path: &Path) -> Result<PostgresOptions> {
        Ok(PostgresOptions {
            schema: pg_schema(path),
            indexes: self.indexes,
            durability: self.durability,
            ..PostgresOptions::new(pg_url()?)
        })
    }

    /// redb options for this setup.
    pub fn redb(&self) -> RedbOptions {
        RedbOptions {
            indexes: self.indexes,
            durability: self.durability,
            ..RedbOptions::default()
        }
    }
}

/// The server the PostgreSQL cases run on.
pub fn pg_url() -> Result<String> {
    std::env::var("EVENTLITE_PG_URL").context(
        "the postgres engine needs a server: run the benchmarks through scripts/with-postgres",
    )
}

/// The schema that stands for the store at `path` on the server. The tables name their stores
/// by path, in temporary directories of their own ([`StoreDir`]): the directory's name and the
/// file's make a schema name that no other store of the run has.
pub fn pg_schema(path: &Path) -> String {
    let part = |p: Option<&std::ffi::OsStr>| schema_part(&p.unwrap_or_default().to_string_lossy());
    format!(
        "bench{}_{}",
        part(path.parent().and_then(Path::file_name)),
        part(path.file_name())
    )
}

/// `name` as a part of a schema name: lowercase letters, digits and underscores.
fn schema_part(name: &str) -> String {
    name.chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect()
}

/// Vacuums and analyzes the store just loaded at `path`, as autovacuum does in time: the
/// timed reads then run on the plans of a settled table, whether or not autovacuum happened
/// to come by first.
pub fn settle_pg_store(path: &Path) -> Result<()> {
    let mut client = ::postgres::Client::connect(&pg_url()?, ::postgres::NoTls)?;
    client.batch_execute(&format!("VACUUM ANALYZE \"{}\".queue", pg_schema(path)))?;
    Ok(())
}

/// Drops the schemas named by `names` from the schemas on the server. A bench's server is a
/// throwaway cluster: what cannot be dropped goes with it.
pub fn drop_pg_schemas(names: impl FnOnce(&mut ::postgres::Client) -> Vec<String>) {
    if let Ok(url) = pg_url()
        && let Ok(mut client) = ::postgres::Client::connect(&url, ::postgres::NoTls)
    {
        for name in names(&mut client) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
        }
    }
}

/// A case's temporary directory. A file engine's stores are files in it, gone with it; a
/// PostgreSQL store is the schema named for its path ([`pg_schema`]), and the schemas of the
/// directory's paths are dropped with this value.
pub struct StoreDir {
    dir: tempfile::TempDir,
    server: bool,
}

impl StoreDir {
    /// A new directory for `engine`'s stores.
    pub fn new(engine: Engine) -> Result<StoreDir> {
        Ok(StoreDir {
            dir: tempfile::tempdir()?,
            server: engine == Engine::Postgres,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        if !self.server {
            return;
        }
        let dir = self.dir.path().file_name().unwrap_or_default();
        let prefix = format!("bench{}_", schema_part(&dir.to_string_lossy()));
        drop_pg_schemas(|client| {
            let sql = "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)";
            client
                .query(sql, &[&prefix])
                .map(|rows| rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
                .unwrap_or_default()
        });
    }
}

/// Any store, behind one type.
pub type Store = EventStore<Box<dyn Backend>>;

/// Opens our store.
pub fn open_ours(engine: Engine, path: &Path, setup: &Setup) -> Result<Store> {
    Ok(open_ours_with_wait(engine, path, setup)?.0)
}

/// A function that waits for the background work a store's appends started.
pub type Wait = Box<dyn Fn()>;

/// Our store, and a function that waits for the background work its appends started
/// (SQLite's checkpoint in progress) without starting any: write cases call it after our turn,
/// off the clock, so that the work never runs into raw's turn. Checkpoints that run during our
/// turn are timed as part of it, as in an application that keeps appending.
pub fn open_ours_with_wait(engine: Engine, path: &Path, setup: &Setup) -> Result<(Store, Wait)> {
    let (backend, wait): (Box<dyn Backend>, Wait) = match engine {
        Engine::Sqlite => {
            let backend = std::sync::Arc::new(SqliteBackend::open(path, setup.sqlite())?);
            let waiter = std::sync::Arc::clone(&backend);
            (
                Box::new(backend),
                Box::new(move || waiter.wait_for_checkpoints()),
            )
        }
        Engine::Redb => (
            Box::new(RedbBackend::open(path, setup.redb())?),
            Box::new(|| {}),
        ),
        Engine::Postgres => (
            Box::new(PostgresBackend::open(setup.postgres(path)?)?),
            Box::new(|| {}),
        ),
    };
    Ok((
        EventStore::builder(backend).cache(setup.cache).build(),
        wait,
    ))
}

/// One generated event, as both our store and the raw code write it.
#[derive(Debug, Clone)]
pub struct BenchEvent {
    /// Command.
    pub cmd: &'static str,
    /// User (10 users).
    pub user: String,
    /// Correlation (groups of 100).
    pub correlation_id: String,
    /// JSON payload.
    pub data: String,
}

/// The commands used.
pub const CMDS: [&str; 4] = ["order_placed", "payment_received", "item_shipped", "refund"];

/// Events `from..from + n`.
pub fn events(from: u64, n: u64) -> Vec<BenchEvent> {
    (from..from + n)
        .map(|i| BenchEvent {
            cmd: CMDS[(i % 4) as usize],
            user: format!("user{}", i % 10),
            correlation_id: format!("corr-{}", i / 100),
            data: format!(
                r#"{{"id":{i},"amount":{},"note":"benchmark event"}}"#,
                i % 1_000
            ),
        })
        .collect()
}

/// Our `NewEvent` for a bench event.
pub fn new_event(e: &BenchEvent) -> NewEvent {
    NewEvent::new(e.cmd)
        .user(e.user.clone())
        .correlation_id(e.correlation_id.clone())
        .data_json(e.data.clone())
}

/// Now, in ms since the epoch (raw writers stamp rows like our store does).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The read operations measured, implemented by our store and by each raw reader.
pub trait Reads {
    /// Get one event by id; whether it exists.
    fn get(&mut self, id: u64) -> Result<bool>;
    /// Get one event through the cache.
    fn get_cached(&mut self, id: u64) -> Result<bool>;
    /// A correlation page of 100 at `offset`, with its total count.
    fn correlation_page(&mut self, corr: &str, offset: u64) -> Result<usize>;
    /// A user's page of 100 (newest first) at `offset`, with its total count.
    fn user_page_offset(&mut self, user: &str, offset: u64) -> Result<usize>;
    /// A user's page of 100 after `cursor`, with its total count.
    fn user_page_after(&mut self, user: &str, cursor: Cursor) -> Result<usize>;
    /// A whole transaction.
    fn transaction(&mut self, corr: &str) -> Result<usize>;
    /// A cmd page of 100 (newest first), with its total count.
    fn cmd_page(&mut self, cmd: &str) -> Result<usize>;
    /// A time-range page of 100 (newest first), with its total count.
    fn time_page(&mut self, from: i64, to: i64) -> Result<usize>;
    /// The events with ids in `ids`, streamed in batches of 1,000; how many.
    fn stream_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64>;
    /// The events with ids in `ids` through a trivial model; how many.
    fn replay_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64>;
}

impl Reads for Store {
    fn get(&mut self, id: u64) -> Result<bool> {
        Ok(EventStore::get(self, id)?.is_some())
    }
    fn get_cached(&mut self, id: u64) -> Result<bool> {
        Ok(EventStore::get_cached(self, id)?.is_some())
    }
    fn correlation_page(&mut self, corr: &str, offset: u64) -> Result<usize> {
        Ok(self
            .by_correlation(corr, Page::offset(100, offset))?
            .events
            .len())
    }
    fn user_page_offset(&mut self, user: &str, offset: u64) -> Result<usize> {
        Ok(self.by_user(user, Page::offset(100, offset))?.events.len())
    }
    fn user_page_after(&mut self, user: &str, cursor: Cursor) -> Result<usize> {
        Ok(self.by_user(user, Page::after(100, cursor))?.events.len())
    }
    fn transaction(&mut self, corr: &str) -> Result<usize> {
        Ok(EventStore::transaction(self, corr)?.len())
    }
    fn cmd_page(&mut self, cmd: &str) -> Result<usize> {
        Ok(self.by_cmd(cmd, Page::first(100))?.events.len())
    }
    fn time_page(&mut self, from: i64, to: i64) -> Result<usize> {
        Ok(self.by_time_range(from, to, Page::first(100))?.events.len())
    }
    fn stream_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
        let filter = Filter {
            id_from: Some(*ids.start()),
            id_to: Some(*ids.end()),
            ..Filter::default()
        };
        let mut n = 0;
        for batch in self.read_all(StreamOptions::new().batch_size(1_000).filter(filter))? {
            n += batch?.len() as u64;
        }
        Ok(n)
    }
    fn replay_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
        let mut model = FnModel::new(0u64).on_default(|n: &mut u64, _, _| {
            *n += 1;
            Ok(())
        });
        let stats = self.replay(&mut model, ids, &mut Callbacks::new())?;
        Ok(stats.events)
    }
}
