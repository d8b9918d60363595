//! The storage-engine contract.

use std::fmt::Debug;

use crate::error::Result;
use crate::event::{Event, PendingEvent};
use crate::index::{IndexConfig, QueryPlan};
use crate::query::{Filter, Query};

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

/// A storage engine. Synchronous, object-safe, shareable across threads.
///
/// The contract every implementation keeps (the conformance suite checks it):
/// - [`append`](Backend::append) stores a whole batch in one transaction or nothing of it;
///   ids are strictly increasing and gap-free from 1; stream expectations are checked with
///   [`crate::ExpectedVersion::check`] inside that transaction, against the stream's version
///   including earlier events of the same batch, and `stream_version` counts from 1.
/// - [`query`](Backend::query) returns exactly the events of the reference semantics
///   ([`Query::admits`], [`crate::Order::compare`], then offset and limit), whatever indexes are
///   enabled.
/// - Opening, paths and engine options belong to each backend's constructor, not to this trait.
pub trait Backend: Send + Sync + Debug + 'static {
    /// Appends a validated batch atomically and returns the stored events, in batch order.
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>>;

    /// The event with this id.
    fn get(&self, id: u64) -> Result<Option<Event>>;

    /// Runs a query.
    fn query(&self, query: &Query) -> Result<Vec<Event>>;

    /// [`query`](Self::query) into `out`, which ends up holding exactly the query's events.
    /// Events already in `out` are overwritten in place ([`Event::assign`]), so a caller that
    /// reads batch after batch into one vector (a replay) allocates nothing per event once
    /// warm. On an error, what `out` holds is unspecified. The default runs `query`.
    fn query_into(&self, query: &Query, out: &mut Vec<Event>) -> Result<()> {
        *out = self.query(query)?;
        Ok(())
    }

    /// How many events `filter` selects.
    fn count(&self, filter: &Filter) -> Result<u64>;

    /// Brings the main file up to date with everything committed and waits for the engine's
    /// background work on it (SQLite: its WAL checkpoints, which run on their own thread), so
    /// that the file alone holds the store, e.g. before it is copied. Engines with nothing to
    /// bring up to date return at once, which is the default.
    fn checkpoint(&self) -> Result<()> {
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

    /// How the engine would run `query`.
    fn explain(&self, query: &Query) -> Result<QueryPlan>;

    /// The indexes the store actually has.
    fn indexes(&self) -> Result<IndexConfig>;

    /// The id of the newest event (0 for an empty store).
    fn last_id(&self) -> Result<u64>;

    /// Stores a snapshot, replacing one with the same name and event id.
    fn put_snapshot(&self, snapshot: Snapshot) -> Result<()>;

    /// The snapshot of `name` with the greatest event id at or before `event_id`.
    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>>;

    /// Snapshots of `name`, newest (greatest event id) first.
    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>>;

    /// Deletes the snapshot of `name` at exactly `event_id`; whether one existed.
    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool>;

    /// Deletes the snapshots of `name` with an event id below `event_id`; how many.
    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64>;
}

macro_rules! forward_backend {
    ($($ty:ty),*) => {$(
        impl<B: Backend + ?Sized> Backend for $ty {
            fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>> { (**self).append(batch) }
            fn get(&self, id: u64) -> Result<Option<Event>> { (**self).get(id) }
            fn query(&self, query: &Query) -> Result<Vec<Event>> { (**self).query(query) }
            fn query_into(&self, query: &Query, out: &mut Vec<Event>) -> Result<()> {
                (**self).query_into(query, out)
            }
            fn count(&self, filter: &Filter) -> Result<u64> { (**self).count(filter) }
            fn checkpoint(&self) -> Result<()> { (**self).checkpoint() }
            fn query_with_total(&self, query: &Query) -> Result<(Vec<Event>, u64)> {
                (**self).query_with_total(query)
            }
            fn explain(&self, query: &Query) -> Result<QueryPlan> { (**self).explain(query) }
            fn indexes(&self) -> Result<IndexConfig> { (**self).indexes() }
            fn last_id(&self) -> Result<u64> { (**self).last_id() }
            fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> { (**self).put_snapshot(snapshot) }
            fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>> {
                (**self).snapshot_at_or_before(name, event_id)
            }
            fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>> {
                (**self).list_snapshots(name, limit, offset)
            }
            fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
                (**self).delete_snapshot(name, event_id)
            }
            fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64> {
                (**self).delete_snapshots_before(name, event_id)
            }
        }
    )*};
}

forward_backend!(Box<B>, std::sync::Arc<B>);
