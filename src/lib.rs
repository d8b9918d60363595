//! # EventLite
//!
//! An embedded event-sourcing log with pluggable storage engines. This facade is what users
//! depend on: the store ([`EventStore`]), events ([`NewEvent`], [`Event`]), queries and
//! pages, models, policies and errors, and the engines chosen with Cargo features: `sqlite`
//! (the default), `redb`, and `postgres` (a server). Engine authors implement `eventlite_core::spi` instead.
//!
//! ```
//! # #[cfg(any(feature = "sqlite", feature = "redb"))] {
//! use eventlite::{NewEvent, Page};
//!
//! let dir = tempfile::tempdir()?;
//! let store = eventlite::open(dir.path().join("events.db"))?;
//! let order = store.store(NewEvent::new("order_placed").user("ada").data(&serde_json::json!({"total": 42})))?;
//! store.store(NewEvent::new("order_paid").causation_id(order.id))?;
//! let page = store.by_correlation(&order.correlation_id, Page::first(10))?;
//! assert_eq!(page.total_count, 2);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Swapping engines is a feature change: `eventlite = { default-features = false, features =
//! ["redb"] }` makes [`open`] use redb, and every query answers the same.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use eventlite_core::{
    Backend, BoxError, CachePolicy, CacheStats, Callbacks, Clock, Cursor, DEFAULT_MAX_EVENT_SIZE,
    Durability, Error, Event, EventContext, EventData, EventPage, EventStore, EventStoreBuilder,
    EventStream, Executed, ExecutionError, ExpectedVersion, FailedEvent, FailurePolicy, Filter,
    FnModel, IndexConfig, IndexName, Lineage, MAX_JSON_DEPTH, MAX_KEY_LEN, MAX_LISTED_PROBLEMS,
    ManualClock, MemoryBackend, Migration, Model, NewEvent, Order, Page, PageStart, Position,
    Problem, ProblemKind, Projection, ProjectionStats, Query, QueryPlan, REPORT_MAX_INDENT,
    Related, ReplayStats, Restored, Result, Snapshot, Stage, Start, Stopper, StreamOptions,
    SubscribeOptions, Subscription, SystemClock, VerifyReport,
};
/// Wait conditions: events parked until other events happen ([`EventStore::store_when`]).
pub use eventlite_core::{
    Cmp, Condition, FieldTest, Parked, WaitCheck, WaitFor, WaitState, Waiting,
};

// The README's code runs as a doctest, so that it cannot drift from the API.
#[cfg(all(doctest, feature = "sqlite"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// A store on whichever engine was chosen at run time (see [`Engine::open`]).
pub type AnyStore = EventStore<Box<dyn Backend>>;

/// The storage engines EventLite knows, whether or not this build has them: code that names
/// one compiles with any features, and [`Engine::open`] says when the engine is missing.
///
/// ```
/// let engine: eventlite::Engine = "sqlite".parse()?;
/// if engine.is_available() {
///     let dir = tempfile::tempdir()?;
///     let store = engine.open(dir.path().join("events.db"))?;
///     store.store(eventlite::NewEvent::new("hello"))?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Engine {
    /// SQLite (feature `sqlite`, the default).
    Sqlite,
    /// redb (feature `redb`).
    Redb,
}

/// The engines this build has, the default first.
pub const ENGINES: &[Engine] = &[
    #[cfg(feature = "sqlite")]
    Engine::Sqlite,
    #[cfg(feature = "redb")]
    Engine::Redb,
];

impl Engine {
    /// Every engine EventLite knows.
    pub const ALL: &'static [Engine] = &[Engine::Sqlite, Engine::Redb];

    /// Its name (`"sqlite"`, `"redb"`), as [`FromStr`](std::str::FromStr) reads it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Redb => "redb",
        }
    }

    /// The Cargo feature of `eventlite` that compiles it in.
    pub fn feature(self) -> &'static str {
        self.name()
    }

    /// Whether this build has it.
    pub fn is_available(self) -> bool {
        ENGINES.contains(&self)
    }

    /// The engine [`open`] uses: SQLite when this build has it, else redb (`None` when it has
    /// no engine at all).
    pub fn default_available() -> Option<Engine> {
        ENGINES.first().copied()
    }

    /// Opens (or creates) a store of this engine at `path` with default options. An engine
    /// this build lacks is [`Error::InvalidArgument`], naming the feature to enable.
    pub fn open(self, path: impl AsRef<std::path::Path>) -> Result<AnyStore> {
        Ok(self.builder(path)?.build())
    }

    /// [`open`](Self::open), as a builder to set the store's cache, clock or size limit.
    pub fn builder(
        self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<EventStoreBuilder<Box<dyn Backend>>> {
        let path = path.as_ref();
        let backend: Box<dyn Backend> = match self {
            #[cfg(feature = "sqlite")]
            Engine::Sqlite => Box::new(eventlite_sqlite::SqliteBackend::open(
                path,
                eventlite_sqlite::SqliteOptions::default(),
            )?),
            #[cfg(feature = "redb")]
            Engine::Redb => Box::new(eventlite_redb::RedbBackend::open(
                path,
                eventlite_redb::RedbOptions::default(),
            )?),
            #[allow(unreachable_patterns)]
            missing => {
                let _ = path;
                return Err(Error::InvalidArgument(format!(
                    "engine {:?} is not compiled in: enable eventlite's `{}` feature",
                    missing.name(),
                    missing.feature()
                )));
            }
        };
        Ok(EventStore::builder(backend))
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Engine {
    type Err = Error;

    fn from_str(s: &str) -> Result<Engine> {
        Engine::ALL
            .iter()
            .copied()
            .find(|e| e.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("unknown engine {s:?} (known: sqlite, redb)"))
            })
    }
}

/// An async store for tokio over any engine (the `eventlite-tokio` crate): calls off the
/// runtime's workers, the log and live subscriptions as streams.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio {
    pub use eventlite_tokio::*;

    /// Opens (or creates) a store on the default engine at `path`, as [`crate::open`] does,
    /// off the runtime's workers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = eventlite::tokio::open(dir.path().join("events.db")).await?;
    /// let event = store.store(eventlite::NewEvent::new("hello")).await?;
    /// assert_eq!(store.get(event.id).await?.map(|e| e.cmd), Some("hello".into()));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(any(feature = "sqlite", feature = "redb"))]
    pub async fn open(
        path: impl AsRef<std::path::Path>,
    ) -> crate::Result<AsyncEventStore<crate::DefaultBackend>> {
        let path = path.as_ref().to_owned();
        Ok(AsyncEventStore::new(
            run_blocking(move || crate::open(path)).await?,
        ))
    }
}

/// Bringing data over: JSON Lines, and the JavaScript EventLite Sourcing's SQLite file.
pub mod import;

pub mod convert;
pub mod export;
pub mod progress;

/// The SQLite engine and its options.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite {
    pub use eventlite_sqlite::*;

    /// Opens (or creates) a SQLite store at `path` with these options.
    pub fn open(
        path: impl AsRef<std::path::Path>,
        options: SqliteOptions,
    ) -> eventlite_core::Result<eventlite_core::EventStore<SqliteBackend>> {
        Ok(builder(path, options)?.build())
    }

    /// Opens (or creates) a SQLite store at `path` with these engine options, as a builder for
    /// the store's own (cache, clock, size limit):
    ///
    /// ```
    /// use eventlite::CachePolicy;
    /// use eventlite::sqlite::SqliteOptions;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = eventlite::sqlite::builder(dir.path().join("events.sqlite"), SqliteOptions::default())?
    ///     .cache(CachePolicy::read_optimized())
    ///     .build();
    /// assert!(store.cache_stats().enabled);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(
        path: impl AsRef<std::path::Path>,
        options: SqliteOptions,
    ) -> eventlite_core::Result<eventlite_core::EventStoreBuilder<SqliteBackend>> {
        Ok(eventlite_core::EventStore::builder(SqliteBackend::open(
            path, options,
        )?))
    }
}

/// The redb engine and its options.
#[cfg(feature = "redb")]
#[cfg_attr(docsrs, doc(cfg(feature = "redb")))]
pub mod redb {
    pub use eventlite_redb::*;

    /// Opens (or creates) a redb store at `path` with these options.
    pub fn open(
        path: impl AsRef<std::path::Path>,
        options: RedbOptions,
    ) -> eventlite_core::Result<eventlite_core::EventStore<RedbBackend>> {
        Ok(builder(path, options)?.build())
    }

    /// Opens (or creates) a redb store at `path` with these engine options, as a builder for
    /// the store's own (cache, clock, size limit).
    pub fn builder(
        path: impl AsRef<std::path::Path>,
        options: RedbOptions,
    ) -> eventlite_core::Result<eventlite_core::EventStoreBuilder<RedbBackend>> {
        Ok(eventlite_core::EventStore::builder(RedbBackend::open(
            path, options,
        )?))
    }
}

/// The PostgreSQL engine and its options: the same log on a server, for several processes
/// or machines appending to one log.
///
/// ```no_run
/// use eventlite::postgres::PostgresOptions;
///
/// let store = eventlite::postgres::open(PostgresOptions::new("postgres://app@db.internal/app"))?;
/// store.store(eventlite::NewEvent::new("order_placed"))?;
/// # Ok::<(), eventlite::Error>(())
/// ```
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres {
    pub use eventlite_postgres::*;

    /// Connects to the store these options name (creating its schema if missing).
    pub fn open(
        options: PostgresOptions,
    ) -> eventlite_core::Result<eventlite_core::EventStore<PostgresBackend>> {
        Ok(builder(options)?.build())
    }

    /// [`open`], as a builder for the store's own options (cache, clock, size limit).
    pub fn builder(
        options: PostgresOptions,
    ) -> eventlite_core::Result<eventlite_core::EventStoreBuilder<PostgresBackend>> {
        Ok(eventlite_core::EventStore::builder(PostgresBackend::open(
            options,
        )?))
    }
}

/// The engine [`open`] uses: SQLite when the `sqlite` feature is on, else redb.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "redb"))))]
pub type DefaultBackend = sqlite::SqliteBackend;

/// The engine [`open`] uses: SQLite when the `sqlite` feature is on, else redb.
#[cfg(all(feature = "redb", not(feature = "sqlite")))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "redb"))))]
pub type DefaultBackend = redb::RedbBackend;

/// Opens (or creates) a store at `path` on the default engine, with default options: the
/// guide's default indexes, durable appends, the default cache.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "redb"))))]
pub fn open(path: impl AsRef<std::path::Path>) -> Result<EventStore<DefaultBackend>> {
    sqlite::open(path, sqlite::SqliteOptions::default())
}

/// Opens (or creates) a store at `path` on the default engine, with default options: the
/// guide's default indexes, durable appends, the default cache.
#[cfg(all(feature = "redb", not(feature = "sqlite")))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "redb"))))]
pub fn open(path: impl AsRef<std::path::Path>) -> Result<EventStore<DefaultBackend>> {
    redb::open(path, redb::RedbOptions::default())
}
