//! [`MemoryBackend`]: the reference engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backend::{FailedEvent, Position, Snapshot};
use crate::error::Result;
use crate::event::Event;
use crate::index::{IndexConfig, QueryPlan};
use crate::query::{Filter, Order, Query};
use crate::spi::{
    Claim, CommitSignal, EventLog, Maintenance, NewWaiting, Notifications, PendingEvent,
    PositionStore, SnapshotStore, StreamVersions, WaitKey, WaitingRecord, WaitingStore, planner,
};
use crate::wait::WaitState;

#[derive(Debug, Default)]
struct State {
    events: Vec<Event>,
    /// Each stream's event ids, in order (its version is their number).
    streams: HashMap<String, Vec<u64>>,
    snapshots: BTreeMap<(String, u64), Snapshot>,
    positions: BTreeMap<String, Position>,
    failures: BTreeMap<(String, u64), FailedEvent>,
    /// Waiting records; record `id` is at `id - 1`.
    waiting: Vec<WaitingRecord>,
    /// The open records by key.
    wait_keys: HashMap<WaitKey, BTreeSet<u64>>,
    /// Each open record's keys.
    keys_of: HashMap<u64, Vec<WaitKey>>,
    /// The indexes of the last open, as a file records them.
    indexes: IndexConfig,
}

/// An in-memory engine that keeps every contract in the most direct way (a `Vec` in id order,
/// filtered per query, and each stream's ids). It is the reference the other engines are
/// checked against, and a handy engine for users' own tests.
///
/// It keeps no real indexes, but reports the configured ones and explains which it would use,
/// with [`spi::planner`](crate::spi::planner), as the redb engine does; a query of a stream
/// reads that stream's ids.
///
/// Clones share the same events, like two connections to one file.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    state: Arc<RwLock<State>>,
    indexes: IndexConfig,
    signal: Arc<CommitSignal>,
}

impl MemoryBackend {
    /// An empty store with the default indexes.
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    /// An empty store with these indexes.
    pub fn with_indexes(indexes: IndexConfig) -> Self {
        MemoryBackend {
            state: Arc::new(RwLock::new(State {
                indexes,
                ..State::default()
            })),
            indexes,
            signal: CommitSignal::new(),
        }
    }

    /// The same events, opened again with another index configuration (what reopening a file
    /// with a new `IndexConfig` does on the real engines).
    pub fn reopen(&self, indexes: IndexConfig) -> Self {
        self.write().indexes = indexes;
        MemoryBackend {
            state: Arc::clone(&self.state),
            indexes,
            signal: Arc::clone(&self.signal),
        }
    }

    /// The same events, opened again with the indexes of the last open (what the real
    /// engines' `indexes_as_found` option does).
    pub fn reopen_as_found(&self) -> Self {
        let indexes = self.read().indexes;
        MemoryBackend {
            state: Arc::clone(&self.state),
            indexes,
            signal: Arc::clone(&self.signal),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic cannot leave State half-written (append mutates only after all checks), so a
        // poisoned lock still guards consistent data.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl EventLog for MemoryBackend {
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>> {
        let mut state = self.write();
        let events = append_locked(&mut state, batch)?;
        drop(state);
        self.signal.publish(&events);
        Ok(events)
    }

    fn get(&self, id: u64) -> Result<Option<Event>> {
        let state = self.read();
        Ok(id
            .checked_sub(1)
            .and_then(|i| state.events.get(usize::try_from(i).ok()?))
            .cloned())
    }

    fn query(&self, query: &Query) -> Result<Vec<Event>> {
        Ok(select(&self.read(), query))
    }

    fn query_with_total(&self, query: &Query) -> Result<(Vec<Event>, u64)> {
        let state = self.read();
        Ok((select(&state, query), count(&state.events, &query.filter)))
    }

    fn count(&self, filter: &Filter) -> Result<u64> {
        Ok(count(&self.read().events, filter))
    }

    fn explain(&self, query: &Query) -> Result<QueryPlan> {
        let mut plan = planner::plan(&self.indexes, &query.filter, "events");
        if query.filter.stream.is_some() {
            plan.index = None;
            plan.full_scan = false;
            plan.detail = "SEARCH events USING the stream's ids".to_owned();
        }
        // Events and streams are kept in id order; newest-first by datetime is sorted.
        plan.sorts = query.order == Order::DatetimeDesc;
        Ok(plan)
    }

    fn indexes(&self) -> Result<IndexConfig> {
        Ok(self.indexes)
    }

    fn last_id(&self) -> Result<u64> {
        Ok(self.read().events.len() as u64)
    }
}

impl PositionStore for MemoryBackend {
    fn save_position(&self, name: &str, position: u64, at: i64) -> Result<()> {
        let saved = Position {
            name: name.to_owned(),
            position,
            updated_at: at,
        };
        self.write().positions.insert(name.to_owned(), saved);
        Ok(())
    }

    fn load_position(&self, name: &str) -> Result<Option<Position>> {
        Ok(self.read().positions.get(name).cloned())
    }

    fn list_positions(&self) -> Result<Vec<Position>> {
        Ok(self.read().positions.values().cloned().collect())
    }

    fn delete_position(&self, name: &str) -> Result<bool> {
        Ok(self.write().positions.remove(name).is_some())
    }

    fn record_failure(&self, failure: FailedEvent) -> Result<()> {
        let key = (failure.projection.clone(), failure.event_id);
        self.write().failures.insert(key, failure);
        Ok(())
    }

    fn failures(&self, projection: &str) -> Result<Vec<FailedEvent>> {
        let state = self.read();
        Ok(state
            .failures
            .range((projection.to_owned(), 0)..=(projection.to_owned(), u64::MAX))
            .map(|(_, f)| f.clone())
            .collect())
    }

    fn clear_failures(&self, projection: &str) -> Result<u64> {
        let mut state = self.write();
        let before = state.failures.len();
        state.failures.retain(|(p, _), _| p != projection);
        Ok((before - state.failures.len()) as u64)
    }
}

impl Notifications for MemoryBackend {
    fn commit_signal(&self) -> Arc<CommitSignal> {
        Arc::clone(&self.signal)
    }

    /// Every commit goes through a clone of this backend, which signals it.
    fn poll_commits(&self) -> Result<()> {
        Ok(())
    }

    fn external_commits(&self) -> Result<u64> {
        Ok(0)
    }
}

impl Maintenance for MemoryBackend {
    /// Nothing to bring up to date: the events live in memory only.
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    /// Nothing beyond the events to check: the reference engine answers from them alone.
    fn check_storage(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

impl SnapshotStore for MemoryBackend {
    fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let key = (snapshot.name.clone(), snapshot.event_id);
        self.write().snapshots.insert(key, snapshot);
        Ok(())
    }

    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>> {
        let state = self.read();
        Ok(state
            .snapshots
            .range((name.to_owned(), 0)..=(name.to_owned(), event_id))
            .next_back()
            .map(|(_, s)| s.clone()))
    }

    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>> {
        let state = self.read();
        Ok(state
            .snapshots
            .range((name.to_owned(), 0)..=(name.to_owned(), u64::MAX))
            .rev()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(_, s)| s.clone())
            .collect())
    }

    fn snapshot_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .read()
            .snapshots
            .keys()
            .map(|(name, _)| name.clone())
            .collect();
        names.dedup();
        Ok(names)
    }

    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
        Ok(self
            .write()
            .snapshots
            .remove(&(name.to_owned(), event_id))
            .is_some())
    }

    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64> {
        let mut state = self.write();
        let doomed: Vec<_> = state
            .snapshots
            .range((name.to_owned(), 0)..(name.to_owned(), event_id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &doomed {
            state.snapshots.remove(key);
        }
        Ok(doomed.len() as u64)
    }
}

/// Appends `batch` to the locked state, checking its streams.
fn append_locked(state: &mut State, batch: Vec<PendingEvent>) -> Result<Vec<Event>> {
    let mut versions = StreamVersions::new();
    let assigned = versions.check_batch(&batch, |stream| {
        Ok(state.streams.get(stream).map(|ids| ids.len() as u64))
    })?;
    drop(versions);
    let first = state.events.len() as u64 + 1;
    let events = PendingEvent::into_events(batch, first, &assigned);
    for event in &events {
        if let Some(stream) = &event.stream {
            state
                .streams
                .entry(stream.clone())
                .or_default()
                .push(event.id);
        }
    }
    state.events.extend(events.iter().cloned());
    Ok(events)
}

impl State {
    fn record_mut(&mut self, id: u64) -> Option<&mut WaitingRecord> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        self.waiting.get_mut(i)
    }

    /// Closes record `id` if it is open (and, for a release, not expired at `at`).
    fn close(&mut self, id: u64, state: WaitState, at: i64, event_id: Option<u64>) -> bool {
        let Some(record) = self.record_mut(id) else {
            return false;
        };
        let expired = state == WaitState::Released && record.expires_at.is_some_and(|e| e <= at);
        if record.state != WaitState::Waiting || expired {
            return false;
        }
        record.state = state;
        record.closed_at = Some(at);
        record.event_id = event_id;
        for key in self.keys_of.remove(&id).unwrap_or_default() {
            if let Some(ids) = self.wait_keys.get_mut(&key) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.wait_keys.remove(&key);
                }
            }
        }
        true
    }
}

impl WaitingStore for MemoryBackend {
    fn park(&self, record: NewWaiting) -> Result<u64> {
        let mut state = self.write();
        let id = state.waiting.len() as u64 + 1;
        for key in &record.keys {
            state.wait_keys.entry(key.clone()).or_default().insert(id);
        }
        state.keys_of.insert(id, record.keys);
        state.waiting.push(WaitingRecord {
            id,
            correlation_id: record.correlation_id,
            created_at: record.created_at,
            expires_at: record.expires_at,
            state: WaitState::Waiting,
            closed_at: None,
            event_id: None,
            body: record.body,
        });
        Ok(id)
    }

    fn waiting_record(&self, id: u64) -> Result<Option<WaitingRecord>> {
        let state = self.read();
        Ok(id
            .checked_sub(1)
            .and_then(|i| state.waiting.get(usize::try_from(i).ok()?))
            .cloned())
    }

    fn waiting_for(&self, events: &[Event]) -> Result<Vec<WaitingRecord>> {
        // Nothing waits in most stores: no keys to gather then.
        if self.read().wait_keys.is_empty() {
            return Ok(Vec::new());
        }
        self.waiting_on(&crate::wait::keys_of(events))
    }

    fn waiting_on(&self, keys: &[WaitKey]) -> Result<Vec<WaitingRecord>> {
        let state = self.read();
        if state.wait_keys.is_empty() {
            return Ok(Vec::new());
        }
        let ids: BTreeSet<u64> = keys
            .iter()
            .filter_map(|k| state.wait_keys.get(k))
            .flatten()
            .copied()
            .collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| state.waiting.get(id as usize - 1).cloned())
            .collect())
    }

    fn list_waiting(
        &self,
        correlation_id: Option<&str>,
        wait_state: Option<WaitState>,
    ) -> Result<Vec<WaitingRecord>> {
        let state = self.read();
        Ok(state
            .waiting
            .iter()
            .filter(|r| correlation_id.is_none_or(|c| r.correlation_id == c))
            .filter(|r| wait_state.is_none_or(|s| r.state == s))
            .cloned()
            .collect())
    }

    fn release_waiting(
        &self,
        batch: Vec<PendingEvent>,
        claim: Claim,
    ) -> Result<Option<Vec<Event>>> {
        let mut state = self.write();
        let open = state.record_mut(claim.id).is_some_and(|r| {
            r.state == WaitState::Waiting && r.expires_at.is_none_or(|e| e > claim.at)
        });
        if !open {
            return Ok(None);
        }
        let events = append_locked(&mut state, batch)?;
        state.close(
            claim.id,
            WaitState::Released,
            claim.at,
            events.first().map(|e| e.id),
        );
        drop(state);
        self.signal.publish(&events);
        Ok(Some(events))
    }

    fn close_waiting(&self, id: u64, wait_state: WaitState, at: i64) -> Result<bool> {
        crate::wait::check_closing_state(wait_state)?;
        Ok(self.write().close(id, wait_state, at, None))
    }
}

/// The events of `query`, in its order, past its offset and within its limit.
fn select(state: &State, query: &Query) -> Vec<Event> {
    let mut hits: Vec<&Event> = match &query.filter.stream {
        Some(stream) => state
            .streams
            .get(stream)
            .into_iter()
            .flatten()
            .filter_map(|id| state.events.get(usize::try_from(id.checked_sub(1)?).ok()?))
            .filter(|e| query.admits(e))
            .collect(),
        None => state.events.iter().filter(|e| query.admits(e)).collect(),
    };
    // Both lists are in id order.
    match query.order {
        Order::IdAsc => {}
        Order::IdDesc => hits.reverse(),
        Order::DatetimeDesc => hits.sort_by(|a, b| query.order.compare(a, b)),
    }
    let skip = usize::try_from(query.offset).unwrap_or(usize::MAX);
    let take = query
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    hits.into_iter().skip(skip).take(take).cloned().collect()
}

/// How many events `filter` selects.
fn count(events: &[Event], filter: &Filter) -> u64 {
    events.iter().filter(|e| filter.matches(e)).count() as u64
}
