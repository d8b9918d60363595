//! An engine that lets a test see and hold its calls: the memory engine, with the queries it
//! ran counted and appends able to wait at a gate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use eventlite_core::WaitState;
use eventlite_core::spi::{
    Claim, CommitSignal, NewWaiting, PendingEvent, WaitKey, WaitingRecord, WaitingStore,
};
use eventlite_core::{Event, Order};
use eventlite_core::{
    EventStore, FailedEvent, Filter, IndexConfig, MemoryBackend, Position, Query, QueryPlan,
    Result, Snapshot,
    spi::{EventLog, Maintenance, Notifications, PositionStore, SnapshotStore},
};

/// Whether appends wait, and how far the waiting one got.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    /// Appends that reached the engine.
    entered: u64,
    /// Appends the engine finished (committed or failed).
    finished: u64,
}

impl Gate {
    /// Makes appends wait until [`open`](Self::open).
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
    }

    /// Lets waiting and later appends through.
    pub fn open(&self) {
        self.state.lock().unwrap().closed = false;
        self.changed.notify_all();
    }

    /// Blocks until `n` appends reached the engine.
    pub fn wait_entered(&self, n: u64) {
        let mut s = self.state.lock().unwrap();
        while s.entered < n {
            s = self.changed.wait(s).unwrap();
        }
    }

    /// Blocks until `n` appends finished.
    pub fn wait_finished(&self, n: u64) {
        let mut s = self.state.lock().unwrap();
        while s.finished < n {
            s = self.changed.wait(s).unwrap();
        }
    }

    fn enter(&self) {
        let mut s = self.state.lock().unwrap();
        s.entered += 1;
        self.changed.notify_all();
        while s.closed {
            s = self.changed.wait(s).unwrap();
        }
    }

    fn finish(&self) {
        self.state.lock().unwrap().finished += 1;
        self.changed.notify_all();
    }
}

/// The memory engine, watched.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    inner: MemoryBackend,
    pub queries: Arc<AtomicU64>,
    pub gate: Arc<Gate>,
}

impl Watched {
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

/// A watched store, and the engine to watch it through.
pub fn watched() -> (EventStore<Watched>, Watched) {
    let engine = Watched::default();
    (EventStore::new(engine.clone()), engine)
}

impl EventLog for Watched {
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>> {
        self.gate.enter();
        let stored = self.inner.append(batch);
        self.gate.finish();
        stored
    }
    fn get(&self, id: u64) -> Result<Option<Event>> {
        self.inner.get(id)
    }
    fn query(&self, query: &Query) -> Result<Vec<Event>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.query(query)
    }
    fn count(&self, filter: &Filter) -> Result<u64> {
        self.inner.count(filter)
    }
    fn explain(&self, query: &Query) -> Result<QueryPlan> {
        self.inner.explain(query)
    }
    fn indexes(&self) -> Result<IndexConfig> {
        self.inner.indexes()
    }
    fn last_id(&self) -> Result<u64> {
        self.inner.last_id()
    }
}

impl SnapshotStore for Watched {
    fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.put_snapshot(snapshot)
    }
    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>> {
        self.inner.snapshot_at_or_before(name, event_id)
    }
    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>> {
        self.inner.list_snapshots(name, limit, offset)
    }
    fn snapshot_names(&self) -> Result<Vec<String>> {
        self.inner.snapshot_names()
    }
    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
        self.inner.delete_snapshot(name, event_id)
    }
    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64> {
        self.inner.delete_snapshots_before(name, event_id)
    }
}

impl PositionStore for Watched {
    fn save_position(&self, name: &str, position: u64, at: i64) -> Result<()> {
        self.inner.save_position(name, position, at)
    }
    fn load_position(&self, name: &str) -> Result<Option<Position>> {
        self.inner.load_position(name)
    }
    fn list_positions(&self) -> Result<Vec<Position>> {
        self.inner.list_positions()
    }
    fn delete_position(&self, name: &str) -> Result<bool> {
        self.inner.delete_position(name)
    }
    fn record_failure(&self, failure: FailedEvent) -> Result<()> {
        self.inner.record_failure(failure)
    }
    fn failures(&self, projection: &str) -> Result<Vec<FailedEvent>> {
        self.inner.failures(projection)
    }
    fn clear_failures(&self, projection: &str) -> Result<u64> {
        self.inner.clear_failures(projection)
    }
}

impl WaitingStore for Watched {
    fn park(&self, record: NewWaiting) -> Result<u64> {
        self.inner.park(record)
    }
    fn waiting_record(&self, id: u64) -> Result<Option<WaitingRecord>> {
        self.inner.waiting_record(id)
    }
    fn waiting_on(&self, keys: &[WaitKey]) -> Result<Vec<WaitingRecord>> {
        self.inner.waiting_on(keys)
    }
    fn list_waiting(
        &self,
        correlation_id: Option<&str>,
        state: Option<WaitState>,
    ) -> Result<Vec<WaitingRecord>> {
        self.inner.list_waiting(correlation_id, state)
    }
    fn release_waiting(
        &self,
        batch: Vec<PendingEvent>,
        claim: Claim,
    ) -> Result<Option<Vec<Event>>> {
        self.inner.release_waiting(batch, claim)
    }
    fn close_waiting(&self, id: u64, state: WaitState, at: i64) -> Result<bool> {
        self.inner.close_waiting(id, state, at)
    }
}

impl Notifications for Watched {
    fn commit_signal(&self) -> Arc<CommitSignal> {
        self.inner.commit_signal()
    }
    fn poll_commits(&self) -> Result<()> {
        self.inner.poll_commits()
    }
    fn external_commits(&self) -> Result<u64> {
        self.inner.external_commits()
    }
}

impl Maintenance for Watched {
    fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint()
    }
    fn check_storage(&self) -> Result<Vec<String>> {
        self.inner.check_storage()
    }
}

/// Every event of `store`, in id order.
pub fn all_ids<B: eventlite_core::Backend>(store: &EventStore<B>) -> Vec<u64> {
    store
        .query(&Query::new(Filter::default(), Order::IdAsc))
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}
