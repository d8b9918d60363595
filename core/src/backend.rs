//! The storage-engine contract, split by capability.

use std::fmt::Debug;
use std::sync::Arc;

use crate::error::Result;
use crate::event::Event;
use crate::index::{IndexConfig, QueryPlan};
use crate::query::{Filter, Query};
use crate::spi::{CommitSignal, PendingEvent};

/// A stored snapshot of some model state at an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The model / projection the snapshot belongs to.
    pub name: String,
    /// The last event folded into `state`.
    pub event_id: u64,
    /// The encoded state (bincode 2, written by [`crate::EventStore::create_snapshot`]).
    pub state: Vec<u8>,
    /// Free-form JSON object, as text.
    pub metadata: String,
    /// When the snapshot was taken (ms since the epoch).
    pub created_at: i64,
}

/// A named position in the log: how far a consumer (a subscription, a projection) has read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The consumer's name.
    pub name: String,
    /// Every event with an id at or below this has been handled (0: none yet).
    pub position: u64,
    /// When it was saved (ms since the epoch, the store's clock).
    pub updated_at: i64,
}

/// An event a projection gave up on and skipped (its failure policy said so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEvent {
    /// The projection.
    pub projection: String,
    /// The event it skipped.
    pub event_id: u64,
    /// How many times it was tried.
    pub attempts: u32,
    /// The last failure, as text.
    pub error: String,
    /// When it was skipped (ms since the epoch, the store's clock).
    pub at: i64,
}

/// A storage engine with every capability [`crate::EventStore`] uses: the event log,
/// snapshots, positions, commit notifications and maintenance. Implemented for every type that implements the capability
/// traits of [`crate::spi`]; engines implement those, never this one.
///
/// Object-safe (`Box<dyn Backend>` and `Arc<dyn Backend>` are backends too), synchronous, and
/// shareable across threads. Opening, paths and engine options belong to each engine's
/// constructor, not to these traits.
///
/// ```
/// use eventlite_core::{Backend, EventStore, MemoryBackend, NewEvent};
///
/// // Code that works on any engine.
/// fn count_orders<B: Backend>(store: &EventStore<B>) -> eventlite_core::Result<u64> {
///     store.count(&eventlite_core::Filter::cmd("order_placed"))
/// }
/// let store: EventStore<Box<dyn Backend>> = EventStore::new(Box::new(MemoryBackend::new()));
/// store.store(NewEvent::new("order_placed"))?;
/// assert_eq!(count_orders(&store)?, 1);
/// # Ok::<(), eventlite_core::Error>(())
/// ```
pub trait Backend:
    EventLog + SnapshotStore + PositionStore + WaitingStore + Notifications + Maintenance
{
}

impl<T> Backend for T where
    T: EventLog
        + SnapshotStore
        + PositionStore
        + WaitingStore
        + Notifications
        + Maintenance
        + ?Sized
{
}

/// The event log: appends, reads, queries and the indexes behind them.
///
/// The contract every implementation keeps (the conformance suite checks it):
/// - [`append`](EventLog::append) stores a whole batch in one transaction or nothing of it;
///   ids are strictly increasing and gap-free from 1; stream expectations are checked with
///   [`StreamVersions`](crate::spi::StreamVersions) inside that transaction, and
///   `stream_version` counts from 1.
/// - Every stored event carries a checksum that every read checks
///   ([`EventFields::checksum`](crate::spi::EventFields::checksum) over its fields, or
///   [`row_checksum`](crate::spi::row_checksum) over its encoded row); damage is
///   [`Error::Corrupt`](crate::Error::Corrupt), never a changed event.
/// - [`query`](EventLog::query) returns exactly the events of the reference semantics
///   ([`Query::admits`], [`crate::Order::compare`], then offset and limit), whatever indexes
///   are enabled.
pub trait EventLog: Send + Sync + Debug + 'static {
    /// Appends a validated batch atomically and returns the stored events, in batch order.
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>>;

    /// The event with this id.
    fn get(&self, id: u64) -> Result<Option<Event>>;

    /// Runs a query.
    fn query(&self, query: &Query) -> Result<Vec<Event>>;

    /// [`query`](Self::query) into `out`, which ends up holding exactly the query's events.
    /// Events already in `out` are overwritten in place
    /// ([`EventFields::write_into`](crate::spi::EventFields::write_into)), so a caller that
    /// reads batch after batch into one vector (a replay) allocates nothing per event once
    /// warm. On an error, what `out` holds is unspecified. The default runs `query`.
    fn query_into(&self, query: &Query, out: &mut Vec<Event>) -> Result<()> {
        *out = self.query(query)?;
        Ok(())
    }

    /// A query's events and how many events its filter selects, read from one snapshot, so
    /// that a page's total agrees with its events while writers append. The default runs
    /// [`count`](Self::count) then [`query`](Self::query); engines with read transactions
    /// override it.
    fn query_with_total(&self, query: &Query) -> Result<(Vec<Event>, u64)> {
        let total = self.count(&query.filter)?;
        Ok((self.query(query)?, total))
    }

    /// How many events `filter` selects.
    fn count(&self, filter: &Filter) -> Result<u64>;

    /// How the engine would run `query`.
    fn explain(&self, query: &Query) -> Result<QueryPlan>;

    /// The indexes the store actually has.
    fn indexes(&self) -> Result<IndexConfig>;

    /// The id of the newest event (0 for an empty store).
    fn last_id(&self) -> Result<u64>;
}

/// Snapshots of model state, by name and event id.
pub trait SnapshotStore: Send + Sync + Debug + 'static {
    /// Stores a snapshot, replacing one with the same name and event id.
    fn put_snapshot(&self, snapshot: Snapshot) -> Result<()>;

    /// The snapshot of `name` with the greatest event id at or before `event_id`.
    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>>;

    /// Snapshots of `name`, newest (greatest event id) first.
    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>>;

    /// Every name that has a snapshot, once each, in byte order.
    fn snapshot_names(&self) -> Result<Vec<String>>;

    /// Deletes the snapshot of `name` at exactly `event_id`; whether one existed.
    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool>;

    /// Deletes the snapshots of `name` with an event id below `event_id`; how many.
    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64>;
}

/// Named positions of consumers, and the events projections skipped, kept in the store so that
/// they survive a restart.
pub trait PositionStore: Send + Sync + Debug + 'static {
    /// Saves `name`'s position (replacing what was saved), stamped `at`.
    fn save_position(&self, name: &str, position: u64, at: i64) -> Result<()>;

    /// `name`'s saved position.
    fn load_position(&self, name: &str) -> Result<Option<Position>>;

    /// Every saved position, by name.
    fn list_positions(&self) -> Result<Vec<Position>>;

    /// Deletes `name`'s position; whether there was one.
    fn delete_position(&self, name: &str) -> Result<bool>;

    /// Records that a projection skipped an event (replacing a record of the same projection
    /// and event).
    fn record_failure(&self, failure: FailedEvent) -> Result<()>;

    /// The events `projection` skipped, by event id.
    fn failures(&self, projection: &str) -> Result<Vec<FailedEvent>>;

    /// Forgets the events `projection` skipped; how many records there were.
    fn clear_failures(&self, projection: &str) -> Result<u64>;
}

/// Wait-condition records: events parked until other events happen
/// ([`EventStore::store_when`](crate::EventStore::store_when)).
///
/// The engine stores records and their keys; the store decides when a record's conditions
/// hold. The contract (the conformance suite checks it):
/// - ids are given from 1 in parking order;
/// - [`waiting_on`](WaitingStore::waiting_on) finds an open record by any of its keys, without
///   reading the records that have none of them (an index on the keys);
/// - [`release_waiting`](WaitingStore::release_waiting) appends and closes in one transaction,
///   exactly once however many handles or processes race to release the same record;
/// - a closed record stays closed: its state never changes again.
pub trait WaitingStore: Send + Sync + Debug + 'static {
    /// Stores an open record, and returns its id.
    fn park(&self, record: crate::spi::NewWaiting) -> Result<u64>;

    /// The record with this id, open or closed.
    fn waiting_record(&self, id: u64) -> Result<Option<crate::spi::WaitingRecord>>;

    /// The open records with at least one of `keys`, each once, in id order.
    fn waiting_on(&self, keys: &[crate::spi::WaitKey]) -> Result<Vec<crate::spi::WaitingRecord>>;

    /// The open records waiting on the (cmd, correlation id) of any of `events`, which one
    /// append just stored: [`waiting_on`](WaitingStore::waiting_on) their keys, unless the
    /// engine knows there are none (its commit saw none: [`WaitHints`](crate::spi::WaitHints)).
    fn waiting_for(&self, events: &[Event]) -> Result<Vec<crate::spi::WaitingRecord>> {
        self.waiting_on(&crate::wait::keys_of(events))
    }

    /// The records of `correlation_id` (every record when `None`) in `state` (any state when
    /// `None`), in id order.
    fn list_waiting(
        &self,
        correlation_id: Option<&str>,
        state: Option<crate::WaitState>,
    ) -> Result<Vec<crate::spi::WaitingRecord>>;

    /// In one transaction: if record `claim.id` is open and not expired at `claim.at`, appends
    /// `batch` (as [`EventLog::append`] would) and closes the record as released at
    /// `claim.at`, with the first stored event's id. `Ok(None)` if the record was not open
    /// (nothing appended). Engines with a [`GroupCommit`](crate::spi::GroupCommit) pass the
    /// claim through [`GroupCommit::release`](crate::spi::GroupCommit::release).
    fn release_waiting(
        &self,
        batch: Vec<PendingEvent>,
        claim: crate::spi::Claim,
    ) -> Result<Option<Vec<Event>>>;

    /// Closes an open record as `state` ([`Expired`](crate::WaitState::Expired) or
    /// [`Cancelled`](crate::WaitState::Cancelled)) at `at`; `false` if it was not open.
    fn close_waiting(&self, id: u64, state: crate::WaitState, at: i64) -> Result<bool>;
}

/// Telling subscriptions that the log grew.
pub trait Notifications: Send + Sync + Debug + 'static {
    /// The signal this engine raises after each of its commits (once per commit). Every call
    /// returns the same signal.
    fn commit_signal(&self) -> Arc<CommitSignal>;

    /// Looks for commits the signal did not see (made through another handle or by another
    /// process) and raises it if there were any. Subscriptions call it each poll interval while
    /// they wait, so it must be cheap: a change counter, not a query of the log. Engines that
    /// see every commit (one handle per file) or are told of them (a server's notifications)
    /// do nothing.
    fn poll_commits(&self) -> Result<()>;

    /// A number that moves whenever the store changed in a way this engine did not
    /// [`publish`](CommitSignal::publish) (a commit by another handle or process), looking now.
    /// Caches check it before they serve anything such a commit could have made stale. Engines
    /// that see every commit return 0.
    fn external_commits(&self) -> Result<u64>;
}

/// Work on the store as a whole.
pub trait Maintenance: Send + Sync + Debug + 'static {
    /// Makes everything committed durable and brings the store's files up to date, waiting for
    /// the engine's background work on them. After it returns, a process crash or power loss
    /// loses nothing committed before the call, whatever the durability setting, and the
    /// store's main file alone holds the store (to copy it, say). An engine with nothing to
    /// bring up to date returns at once.
    fn checkpoint(&self) -> Result<()>;

    /// Checks the engine's own structures, beyond what reading the events shows: the file's
    /// pages, and that every index agrees with the events both ways (no entry missing, none
    /// too many). Returns a description of each problem found; empty when sound. Called by
    /// [`EventStore::verify`](crate::EventStore::verify), which checks the events themselves.
    fn check_storage(&self) -> Result<Vec<String>>;
}

// Smart pointers to a capability have it too, so that `EventStore<Box<dyn Backend>>` and
// `EventStore<Arc<B>>` work. Each capability forwards its own methods here.

macro_rules! forward {
    ($cap:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }) => {
        impl<B: $cap + ?Sized> $cap for Box<B> {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret { (**self).$name($($arg),*) })*
        }
        impl<B: $cap + ?Sized> $cap for Arc<B> {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret { (**self).$name($($arg),*) })*
        }
    };
}

forward!(EventLog {
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>>;
    fn get(&self, id: u64) -> Result<Option<Event>>;
    fn query(&self, query: &Query) -> Result<Vec<Event>>;
    fn query_into(&self, query: &Query, out: &mut Vec<Event>) -> Result<()>;
    fn query_with_total(&self, query: &Query) -> Result<(Vec<Event>, u64)>;
    fn count(&self, filter: &Filter) -> Result<u64>;
    fn explain(&self, query: &Query) -> Result<QueryPlan>;
    fn indexes(&self) -> Result<IndexConfig>;
    fn last_id(&self) -> Result<u64>;
});

forward!(SnapshotStore {
    fn put_snapshot(&self, snapshot: Snapshot) -> Result<()>;
    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>>;
    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>>;
    fn snapshot_names(&self) -> Result<Vec<String>>;
    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool>;
    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64>;
});

forward!(PositionStore {
    fn save_position(&self, name: &str, position: u64, at: i64) -> Result<()>;
    fn load_position(&self, name: &str) -> Result<Option<Position>>;
    fn list_positions(&self) -> Result<Vec<Position>>;
    fn delete_position(&self, name: &str) -> Result<bool>;
    fn record_failure(&self, failure: FailedEvent) -> Result<()>;
    fn failures(&self, projection: &str) -> Result<Vec<FailedEvent>>;
    fn clear_failures(&self, projection: &str) -> Result<u64>;
});

forward!(WaitingStore {
    fn park(&self, record: crate::spi::NewWaiting) -> Result<u64>;
    fn waiting_record(&self, id: u64) -> Result<Option<crate::spi::WaitingRecord>>;
    fn waiting_on(&self, keys: &[crate::spi::WaitKey]) -> Result<Vec<crate::spi::WaitingRecord>>;
    fn waiting_for(&self, events: &[Event]) -> Result<Vec<crate::spi::WaitingRecord>>;
    fn list_waiting(
        &self,
        correlation_id: Option<&str>,
        state: Option<crate::WaitState>
    ) -> Result<Vec<crate::spi::WaitingRecord>>;
    fn release_waiting(
        &self,
        batch: Vec<PendingEvent>,
        claim: crate::spi::Claim
    ) -> Result<Option<Vec<Event>>>;
    fn close_waiting(&self, id: u64, state: crate::WaitState, at: i64) -> Result<bool>;
});

forward!(Notifications {
    fn commit_signal(&self) -> Arc<CommitSignal>;
    fn poll_commits(&self) -> Result<()>;
    fn external_commits(&self) -> Result<u64>;
});

forward!(Maintenance {
    fn checkpoint(&self) -> Result<()>;
    fn check_storage(&self) -> Result<Vec<String>>;
});
