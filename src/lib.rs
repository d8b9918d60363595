//! # EventLite
//!
//! An embedded event-sourcing log with pluggable storage engines. This facade is what users
//! depend on: the store ([`EventStore`]), events ([`NewEvent`], [`Event`]), queries and
//! pages, models, policies and errors, and the engines chosen with Cargo features: `sqlite`
//! (the default) and `redb`. Engine authors implement `eventlite_core::spi` instead.
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
    Durability, Error, Event, EventData, EventPage, EventStore, EventStoreBuilder, EventStream,
    Executed, ExecutionError, ExpectedVersion, FailedEvent, FailurePolicy, Filter, FnModel,
    IndexConfig, IndexName, Lineage, ManualClock, MemoryBackend, Migration, Model, NewEvent, Order,
    Page, PageStart, Position, Projection, ProjectionStats, Query, QueryPlan, ReplayStats,
    Restored, Result, Snapshot, Stage, Start, Stopper, StreamOptions, SubscribeOptions,
    Subscription, SystemClock,
};

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
        Ok(eventlite_core::EventStore::new(SqliteBackend::open(
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
        Ok(eventlite_core::EventStore::new(RedbBackend::open(
            path, options,
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
