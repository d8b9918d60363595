//! [`EventStore`]: the event log as callers use it.

use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, FailedEvent, Position, Snapshot};
use crate::cache::{Cache, CacheStats};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::event::{Event, NewEvent};
use crate::index::{IndexConfig, QueryPlan};
use crate::integrity;
use crate::model::{Callbacks, Executed, Model, execute};
use crate::policy::CachePolicy;
use crate::query::{EventPage, Filter, Order, Page, PageStart, Query};
use crate::spi::{CommitListener, PendingEvent};

/// The default size limit of one event's caller-supplied content: 16 MiB.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// The longest cmd, user, correlation id or stream name an event may have, in bytes (and the
/// longest name of a snapshot or saved position). They are identifiers, and keys on every
/// engine: PostgreSQL's index entries hold at most about
/// 2.7 KB, so one limit for all engines keeps them interchangeable. Longer ones are refused
/// with [`Error::InvalidEvent`].
pub const MAX_KEY_LEN: usize = 1024;

/// Refuses an empty name of a snapshot or position, or one over [`MAX_KEY_LEN`] bytes (a key on
/// every engine, as an event's cmd is).
fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} name is empty")));
    }
    if name.len() > MAX_KEY_LEN {
        return Err(Error::InvalidArgument(format!(
            "{what} name is {} bytes, over the limit of {MAX_KEY_LEN} bytes",
            name.len()
        )));
    }
    Ok(())
}

/// How deeply an event's data or metadata may nest arrays and objects. serde_json reads at most
/// 127 levels back (its recursion limit), so anything deeper could be stored but never read:
/// it is refused with [`Error::InvalidEvent`] instead.
pub const MAX_JSON_DEPTH: usize = 100;

/// Refuses JSON text (valid, as checked before) that nests deeper than [`MAX_JSON_DEPTH`].
fn check_depth(field: &str, json: &str) -> Result<()> {
    // No deeper than it has brackets: most JSON is decided by a count, no parse.
    let opening = json.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if opening <= MAX_JSON_DEPTH {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(Error::invalid_event(format!(
                        "{field} nests deeper than {MAX_JSON_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a key field of `event` (`cmd`, `user`, its correlation id `correlation`, a stream
/// name) over [`MAX_KEY_LEN`] bytes.
fn check_keys(event: &NewEvent, correlation: Option<&str>) -> Result<()> {
    for (field, value) in [
        ("cmd", Some(event.cmd.as_str())),
        ("user", Some(event.user.as_str())),
        ("correlation_id", correlation),
        (
            "stream",
            event.stream.as_ref().map(|(name, _)| name.as_str()),
        ),
    ] {
        if let Some(v) = value.filter(|v| v.len() > MAX_KEY_LEN) {
            return Err(Error::invalid_event(format!(
                "{field} is {} bytes, over the limit of {MAX_KEY_LEN} bytes",
                v.len()
            )));
        }
    }
    Ok(())
}

/// The bytes of `event`'s content the size limit counts (as [`PendingEvent::content_len`]
/// does), with a correlation id of `correlation_len` bytes.
fn content_len(event: &NewEvent, correlation_len: usize) -> usize {
    let text = |r: &std::result::Result<String, crate::event::SerializeError>| {
        r.as_ref().map_or(0, String::len)
    };
    event.user.len()
        + event.ip.len()
        + event.cmd.len()
        + text(&event.data)
        + correlation_len
        + text(&event.metadata)
        + event.stream.as_ref().map_or(0, |(name, _)| name.len())
}

/// The event log: validation, correlation ids, clock, cache and model execution over any
/// [`Backend`]. `Arc<EventStore<_>>` is shareable across threads.
#[derive(Debug)]
pub struct EventStore<B> {
    backend: B,
    clock: Arc<dyn Clock>,
    cache: Arc<Cache>,
    max_event_size: usize,
}

/// Builds an [`EventStore`] with a non-default clock, cache policy or size limit.
#[derive(Debug)]
pub struct EventStoreBuilder<B> {
    backend: B,
    clock: Arc<dyn Clock>,
    cache: CachePolicy,
    max_event_size: usize,
    check_waiting: bool,
}

impl<B: Backend> EventStoreBuilder<B> {
    /// Whether [`build`](Self::build) releases the parked events whose conditions came to
    /// hold while no handle was looking, and expires those past their deadline (default: it
    /// does; turn it off for a handle that must not write, or to do it later with
    /// [`EventStore::check_waiting`]).
    pub fn check_waiting_at_open(mut self, yes: bool) -> Self {
        self.check_waiting = yes;
        self
    }

    /// Takes timestamps (and cache ages) from `clock`.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the cache policy.
    pub fn cache(mut self, policy: CachePolicy) -> Self {
        self.cache = policy;
        self
    }

    /// Rejects events whose caller-supplied content exceeds `bytes`.
    pub fn max_event_size(mut self, bytes: usize) -> Self {
        self.max_event_size = bytes;
        self
    }

    /// The store.
    pub fn build(self) -> EventStore<B> {
        let cache = Arc::new(Cache::new(self.cache));
        if cache.enabled() {
            // Every commit the engine publishes, by this store or another over the same
            // engine, evicts the transactions it touched.
            let listener: Arc<dyn CommitListener> = cache.clone();
            self.backend.commit_signal().listen(&listener);
        }
        let store = EventStore {
            backend: self.backend,
            clock: self.clock,
            cache,
            max_event_size: self.max_event_size,
        };
        if self.check_waiting {
            // A store that cannot be written now still opens: its records wait for a look
            // that can write.
            let _ = store.check_waiting();
        }
        store
    }
}

/// An event with its parent and direct children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The event.
    pub event: Event,
    /// The event that caused it.
    pub parent: Option<Event>,
    /// The events it caused, in id order.
    pub children: Vec<Event>,
}

/// A decoded snapshot and where replay resumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored<S> {
    /// The decoded state.
    pub state: S,
    /// The last event folded into `state`.
    pub event_id: u64,
    /// The first event to replay on top (`event_id + 1`).
    pub replay_from: u64,
    /// The snapshot's metadata, as JSON text.
    pub metadata: String,
    /// When the snapshot was taken (ms since the epoch).
    pub created_at: i64,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayStats {
    /// Events run through the model.
    pub events: u64,
    /// Of those, how many failed to execute.
    pub errors: u64,
    /// The id of the last event replayed.
    pub last_id: Option<u64>,
}

impl ReplayStats {
    /// The events a replay of `ids` reads (`None`: none, as for `..1`), for code that replays
    /// from a stream of its own (an async replay).
    pub fn filter(ids: impl RangeBounds<u64>) -> Option<Filter> {
        let id_from = match ids.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => Some(s.saturating_add(1)),
            Bound::Unbounded => None,
        };
        let id_to = match ids.end_bound() {
            Bound::Included(&e) => Some(e),
            Bound::Excluded(&0) => return None,
            Bound::Excluded(&e) => Some(e - 1),
            Bound::Unbounded => None,
        };
        Some(Filter {
            id_from,
            id_to,
            ..Filter::default()
        })
    }

    /// Runs `events` through `model` and `callbacks` and counts them, as a replay does: a
    /// failure is counted (and reported to the callbacks), and the replay goes on.
    pub fn execute<M: Model>(
        &mut self,
        model: &mut M,
        callbacks: &mut Callbacks<'_, M::Output>,
        events: &[Event],
    ) {
        for event in events {
            if execute(model, callbacks, event).is_err() {
                self.errors += 1;
            }
            self.events += 1;
            self.last_id = Some(event.id);
        }
    }
}

/// What [`EventStore::read_all`] reads: batches of events in id order, selected by a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// Events per batch (at least 1; default 1,000).
    pub batch_size: u64,
    /// Which events (id range, correlation, user, cmd, … combined).
    pub filter: Filter,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            batch_size: 1_000,
            filter: Filter::default(),
        }
    }
}

impl StreamOptions {
    /// Every event, 1,000 a batch.
    pub fn new() -> Self {
        StreamOptions::default()
    }

    /// Sets the batch size.
    pub fn batch_size(mut self, n: u64) -> Self {
        self.batch_size = n;
        self
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }
}

/// A store borrowed, or shared so that what reads it can move on its own.
pub(crate) enum StoreRef<'s, B> {
    Borrowed(&'s EventStore<B>),
    Shared(Arc<EventStore<B>>),
}

impl<B: std::fmt::Debug> std::fmt::Debug for StoreRef<'_, B> {
    // The engine only: the store's cache has nothing to say about who reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.backend.fmt(f)
    }
}

impl<B> std::ops::Deref for StoreRef<'_, B> {
    type Target = EventStore<B>;
    fn deref(&self) -> &EventStore<B> {
        match self {
            StoreRef::Borrowed(s) => s,
            StoreRef::Shared(s) => s,
        }
    }
}

/// Batches of events, read lazily with keyset paging: constant memory whatever the log's size.
#[derive(Debug)]
pub struct EventStream<'s, B> {
    store: StoreRef<'s, B>,
    query: Query,
    batch_size: u64,
    done: bool,
    /// For a read by id alone: the last id it must reach (stored before it began).
    must_reach: u64,
}

impl<'s, B: Backend> EventStream<'s, B> {
    fn new(store: StoreRef<'s, B>, options: StreamOptions) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::InvalidArgument(
                "batch_size must be at least 1".into(),
            ));
        }
        let query = Query {
            filter: options.filter,
            order: Order::IdAsc,
            after: None,
            offset: 0,
            limit: Some(options.batch_size),
        };
        // Events stored before the read began must all be read: a read by id alone that
        // ends sooner met damage.
        let must_reach = match integrity::selects_by_id_only(&query.filter) {
            true => integrity::must_reach(&query, store.backend.last_id()?),
            false => 0,
        };
        Ok(EventStream {
            must_reach,
            store,
            query,
            batch_size: options.batch_size,
            done: false,
        })
    }
}

impl<B: Backend> EventStream<'_, B> {
    /// The next batch into `batch`, overwriting the events it holds in place
    /// ([`EventLog::query_into`](crate::spi::EventLog::query_into)); `false` once the stream is
    /// done.
    fn next_into(&mut self, batch: &mut Vec<Event>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let read = self
            .store
            .backend
            .query_into(&self.query, batch)
            .and_then(|()| self.advance(batch));
        if read.is_err() {
            self.done = true;
        }
        read
    }

    /// Checks `batch`, just read, and moves the cursor past it; `false` when it was empty.
    fn advance(&mut self, batch: &[Event]) -> Result<bool> {
        integrity::check_answer(&self.query, batch)?;
        let more = match batch.last() {
            Some(last) => {
                self.query.after = Some(last.cursor());
                batch.len() as u64 == self.batch_size
            }
            None => false,
        };
        if !more {
            self.done = true;
            let reached = self.query.after.map_or(0, |c| c.id);
            integrity::check_end(reached, self.must_reach)?;
        }
        Ok(!batch.is_empty())
    }
}

impl<B: Backend> Iterator for EventStream<'_, B> {
    type Item = Result<Vec<Event>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let read = self.store.backend.query(&self.query).and_then(|batch| {
            let more = self.advance(&batch)?;
            Ok(more.then_some(batch))
        });
        match read {
            Ok(batch) => batch.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<B: Backend> EventStore<B> {
    /// A store over `backend` with the default cache policy and the system clock.
    pub fn new(backend: B) -> Self {
        EventStore::builder(backend).build()
    }

    /// A builder, to set the clock, cache policy or size limit.
    pub fn builder(backend: B) -> EventStoreBuilder<B> {
        EventStoreBuilder {
            backend,
            clock: Arc::new(SystemClock),
            cache: CachePolicy::default(),
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            check_waiting: true,
        }
    }

    /// The engine underneath.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The store's clock (what stamps events, positions and cache entries).
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    // ---- writing -------------------------------------------------------------------------

    /// Stores one event and returns it as stored.
    pub fn store(&self, event: NewEvent) -> Result<Event> {
        let mut stored = self.append(vec![event])?;
        stored
            .pop()
            .ok_or_else(|| Error::Internal("the engine returned no event for an append".into()))
    }

    /// Stores one event in `context` (upstream's `storeWithContext`): the context's correlation
    /// id and causation win over the event's, and its metadata is merged into the event's,
    /// the context's keys winning. See [`EventContext`](crate::EventContext).
    pub fn store_with_context(
        &self,
        event: NewEvent,
        context: &crate::EventContext,
    ) -> Result<Event> {
        self.store(event.with_context(context))
    }

    /// Stores one event, then executes it through `model` and `callbacks`. A model failure is
    /// reported in the result (and to the error callback); the event stays stored.
    pub fn store_with<M: Model>(
        &self,
        event: NewEvent,
        model: &mut M,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<Executed<M::Output>> {
        let event = self.store(event)?;
        let result = execute(model, callbacks, &event);
        Ok(Executed { event, result })
    }

    /// Stores events in one transaction: all or nothing. An empty list is an error. The rows
    /// are exactly those `store` would have written one by one at the same moment.
    pub fn store_bulk(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        if events.is_empty() {
            return Err(Error::InvalidArgument(
                "store_bulk needs at least one event".into(),
            ));
        }
        self.append(events)
    }

    /// Appends `events` to the aggregate stream `stream` in one transaction, checking
    /// `expected` against the stream's version once for the batch (the events get the
    /// versions after it, in order). A failed expectation is [`Error::Conflict`] and stores
    /// nothing. The events must not name a stream of their own ([`Error::InvalidEvent`]); an
    /// empty name or list is [`Error::InvalidArgument`].
    pub fn append_to_stream(
        &self,
        stream: &str,
        expected: crate::ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Event>> {
        if stream.is_empty() {
            return Err(Error::InvalidArgument("stream name is empty".into()));
        }
        if events.is_empty() {
            return Err(Error::InvalidArgument(
                "append_to_stream needs at least one event".into(),
            ));
        }
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| match &event.stream {
                Some((other, _)) => Err(Error::invalid_event(format!(
                    "event {i} of an append to stream {stream:?} names stream {other:?}"
                ))),
                // Later events follow the first: the batch is atomic, so their versions are
                // the ones after it.
                None if i == 0 => Ok(event.stream(stream, expected)),
                None => Ok(event.stream(stream, crate::ExpectedVersion::Any)),
            })
            .collect::<Result<Vec<_>>>()?;
        self.append(events)
    }

    /// [`store_bulk`](Self::store_bulk), then executes every stored event in order.
    pub fn store_bulk_with<M: Model>(
        &self,
        events: Vec<NewEvent>,
        model: &mut M,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<Vec<Executed<M::Output>>> {
        let stored = self.store_bulk(events)?;
        Ok(stored
            .into_iter()
            .map(|event| {
                let result = execute(model, callbacks, &event);
                Executed { event, result }
            })
            .collect())
    }

    /// Checks `event` as an append would, without storing it: every rule of the store (an
    /// empty cmd, JSON that is not valid or too deep, keys over [`MAX_KEY_LEN`], the size
    /// limit) except that its causation id names a stored event, which is for the caller to
    /// know (an import checks it against the events it is about to store). An event without
    /// a correlation id of its own is sized with a generated one (36 bytes); one that will
    /// take its parent's is the caller's to size (an import checks a stand-in of that length).
    pub fn check_event(&self, event: &NewEvent) -> Result<()> {
        self.validate(event)?;
        check_keys(event, event.correlation_id.as_deref())?;
        // Without its own, the event gets its parent's correlation id, checked when the
        // parent was stored, or a new one (a UUID).
        let correlation_len = event.correlation_id.as_ref().map_or(36, String::len);
        self.check_size(content_len(event, correlation_len))
    }

    /// Every rule of an event's content that its own fields decide: what [`Self::prepare`]
    /// checks before it looks up a parent (the key lengths come after, in [`check_keys`]).
    fn validate(&self, event: &NewEvent) -> Result<()> {
        if event.cmd.trim().is_empty() {
            return Err(Error::invalid_event("cmd is empty"));
        }
        if event.version == 0 {
            return Err(Error::invalid_event("version must be at least 1"));
        }
        let data = event
            .data
            .as_ref()
            .map_err(|e| Error::invalid_event(format!("data: {}", e.0)).with_source(e.0.clone()))?;
        // serde_json's own output is valid JSON: only caller-supplied text is parsed again.
        if !event.data_serialized {
            serde_json::from_str::<serde::de::IgnoredAny>(data).map_err(|e| {
                Error::invalid_event(format!("data is not valid JSON: {e}")).with_source(e)
            })?;
        }
        check_depth("data", data)?;
        let metadata = event.metadata.as_ref().map_err(|e| {
            Error::invalid_event(format!("metadata: {}", e.0)).with_source(e.0.clone())
        })?;
        let is_json = event.metadata_serialized
            || serde_json::from_str::<serde::de::IgnoredAny>(metadata).is_ok();
        if !is_json || !metadata.trim_start().starts_with('{') {
            return Err(Error::invalid_event("metadata must be a JSON object"));
        }
        check_depth("metadata", metadata)?;
        if event.correlation_id.as_deref() == Some("") {
            return Err(Error::invalid_event("correlation_id is empty"));
        }
        if event
            .stream
            .as_ref()
            .is_some_and(|(name, _)| name.is_empty())
        {
            return Err(Error::invalid_event("stream name is empty"));
        }
        Ok(())
    }

    /// Refuses an event of `size` content bytes over the store's limit.
    fn check_size(&self, size: usize) -> Result<()> {
        if size > self.max_event_size {
            return Err(Error::invalid_event(format!(
                "event is {size} bytes, over the limit of {} bytes",
                self.max_event_size
            )));
        }
        Ok(())
    }

    fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        let now = self.clock.now_ms();
        let mut parents: HashMap<u64, String> = HashMap::new();
        // Collected in place from the NewEvent vector (see PendingEvent's layout).
        let batch = events
            .into_iter()
            .map(|event| self.prepare(event, now, &mut parents))
            .collect::<Result<Vec<_>>>()?;
        // The engine publishes the commit, which evicts what it touched from the cache.
        let events = self.backend.append(batch)?;
        // The events are stored whatever happens next: a record this pass fails to release
        // stays waiting, for the next append of its keys or `check_waiting` to release.
        let _ = self.after_append(&events);
        Ok(events)
    }

    /// Checks and completes `event` as an append at `now` would (its correlation id settled).
    pub(crate) fn prepare_event(&self, event: NewEvent, now: i64) -> Result<PendingEvent> {
        self.prepare(event, now, &mut HashMap::new())
    }

    fn prepare(
        &self,
        event: NewEvent,
        now: i64,
        parents: &mut HashMap<u64, String>,
    ) -> Result<PendingEvent> {
        self.validate(&event)?;
        // The parent first: an unknown one is the error a caller sees before a key's length.
        let inherited = match (&event.correlation_id, event.causation_id) {
            (Some(_), Some(parent)) => {
                self.parent_correlation(parent, parents)?;
                None
            }
            (None, Some(parent)) => Some(self.parent_correlation(parent, parents)?),
            (_, None) => None,
        };
        check_keys(
            &event,
            inherited.as_deref().or(event.correlation_id.as_deref()),
        )?;
        let NewEvent {
            cmd,
            data,
            user,
            ip,
            version,
            correlation_id,
            causation_id,
            metadata,
            stream,
            recorded_at,
            ..
        } = event;
        // Checked by `validate`: both are Ok.
        let data = data.map_err(|e| Error::invalid_event(format!("data: {}", e.0)))?;
        let metadata = metadata.map_err(|e| Error::invalid_event(format!("metadata: {}", e.0)))?;
        let (stream, expected) = match stream {
            Some((name, expected)) => (Some(name), expected),
            None => (None, Default::default()),
        };
        let correlation_id = match (correlation_id, inherited) {
            (Some(id), _) => id,
            (None, Some(parent)) => parent,
            (None, None) => uuid::Uuid::now_v7().to_string(),
        };
        let pending = PendingEvent {
            version,
            datetime: recorded_at.unwrap_or(now),
            user,
            ip,
            cmd,
            data,
            correlation_id,
            causation_id,
            metadata,
            stream,
            expected,
            _layout: 0,
        };
        self.check_size(pending.content_len())?;
        Ok(pending)
    }

    /// The correlation id of an existing parent event (events are never deleted, so a parent
    /// that exists now still exists when the append commits).
    fn parent_correlation(&self, parent: u64, seen: &mut HashMap<u64, String>) -> Result<String> {
        if let Some(c) = seen.get(&parent) {
            return Ok(c.clone());
        }
        let event = self
            .backend
            .get(parent)?
            .ok_or(Error::UnknownCausation(parent))?;
        seen.insert(parent, event.correlation_id.clone());
        Ok(event.correlation_id)
    }

    // ---- reading ---------------------------------------------------------------------------

    /// The event with this id.
    pub fn get(&self, id: u64) -> Result<Option<Event>> {
        integrity::get_checked(&self.backend, id)
    }

    /// The event with this id, from the cache when it is there.
    pub fn get_cached(&self, id: u64) -> Result<Option<Arc<Event>>> {
        if !self.cache.enabled() {
            return Ok(self.get(id)?.map(Arc::new));
        }
        let now = self.clock.now_ms();
        if let Some(event) = self.cache.event(id, now) {
            return Ok(Some(event));
        }
        let Some(event) = self.get(id)? else {
            return Ok(None);
        };
        let event = Arc::new(event);
        self.cache.put_event(Arc::clone(&event), now);
        Ok(Some(event))
    }

    /// Every event of a transaction group, in id order.
    pub fn transaction(&self, correlation_id: &str) -> Result<Vec<Event>> {
        self.query(&Query::new(
            Filter::correlation(correlation_id),
            Order::IdAsc,
        ))
    }

    /// [`transaction`](Self::transaction), from the cache when it is there. Never stale: a
    /// commit to the correlation through this engine evicts it, and one made elsewhere
    /// (another handle or process on the same file) is found before a cached copy is served.
    pub fn transaction_cached(&self, correlation_id: &str) -> Result<Arc<[Event]>> {
        if !self.cache.enabled() {
            return Ok(self.transaction(correlation_id)?.into());
        }
        let now = self.clock.now_ms();
        let elsewhere = self.backend.external_commits()?;
        if let Some(events) = self.cache.transaction(correlation_id, now, elsewhere) {
            return Ok(events);
        }
        let epoch = self.cache.epoch();
        let events: Arc<[Event]> = self.transaction(correlation_id)?.into();
        self.cache
            .put_transaction(correlation_id, Arc::clone(&events), (epoch, elsewhere), now);
        Ok(events)
    }

    /// The events directly caused by `id`, in id order.
    pub fn children(&self, id: u64) -> Result<Vec<Event>> {
        self.query(&Query::new(Filter::children_of(id), Order::IdAsc))
    }

    /// The event, its parent and its children; `None` when there is no such event.
    pub fn lineage(&self, id: u64) -> Result<Option<Lineage>> {
        let Some(event) = self.get(id)? else {
            return Ok(None);
        };
        let parent = match event.causation_id {
            Some(p) => self.get(p)?,
            None => None,
        };
        let children = self.children(id)?;
        Ok(Some(Lineage {
            event,
            parent,
            children,
        }))
    }

    /// Runs a query directly.
    pub fn query(&self, query: &Query) -> Result<Vec<Event>> {
        let must_reach = match integrity::reads_to_the_end(query) {
            true => integrity::must_reach(query, self.backend.last_id()?),
            false => 0,
        };
        let events = self.backend.query(query)?;
        integrity::check_answer(query, &events)?;
        integrity::check_end(events.last().map_or(0, |e| e.id), must_reach)?;
        Ok(events)
    }

    /// How many events `filter` selects.
    pub fn count(&self, filter: &Filter) -> Result<u64> {
        self.backend.count(filter)
    }

    /// How the engine would run `query`.
    pub fn explain(&self, query: &Query) -> Result<QueryPlan> {
        self.backend.explain(query)
    }

    /// The indexes the store has.
    pub fn indexes(&self) -> Result<IndexConfig> {
        self.backend.indexes()
    }

    /// Brings the store's main file up to date with everything committed and waits for the
    /// engine's background work on it: after it returns, the file alone holds the store (e.g.
    /// to copy it), and nothing committed before the call is lost to a crash, whatever the
    /// durability setting. See [`Maintenance::checkpoint`](crate::spi::Maintenance::checkpoint).
    pub fn checkpoint(&self) -> Result<()> {
        self.backend.checkpoint()
    }

    /// Checks the whole store and reports what is wrong, without stopping at the first
    /// problem: every event's checksum, ids gap-free from 1 to the last, each answer in its
    /// place, stream versions counting up from 1, causation ids naming earlier events, and the
    /// engine's own check (SQLite's `integrity_check`, which also compares every index with
    /// the table both ways; on redb every secondary table against the events, both ways).
    ///
    /// Reads every event: it takes time in proportion to the store's size. Reads check what
    /// they can cheaply (see [`Error::Corrupt`]); damage that leaves reads answering without
    /// an error, such as an index that lost an entry (a count one short, an event left out of
    /// a filtered query), only `verify` finds. An `Err` means the check itself could not run.
    ///
    /// ```
    /// # use eventlite_core::{EventStore, MemoryBackend, NewEvent};
    /// let store = EventStore::new(MemoryBackend::new());
    /// store.store(NewEvent::new("opened"))?;
    /// let report = store.verify()?;
    /// assert!(report.is_ok(), "{:?}", report.problems);
    /// assert_eq!(report.events_checked, 1);
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn verify(&self) -> Result<crate::VerifyReport> {
        crate::verify::verify(&self.backend)
    }

    /// The newest event's id (0 when empty).
    pub fn last_id(&self) -> Result<u64> {
        self.backend.last_id()
    }

    /// One page of any filter in any order, by offset or by cursor.
    ///
    /// `total_count` counts every event the filter selects (as upstream did), so a page of a
    /// very large group costs a count of that group; `query` with a limit skips the count.
    pub fn page(&self, filter: Filter, order: Order, page: Page) -> Result<EventPage> {
        if page.limit == 0 {
            return Err(Error::InvalidArgument(
                "page limit must be at least 1".into(),
            ));
        }
        let (after, offset) = match page.start {
            PageStart::Offset(offset) => (None, offset),
            PageStart::After(cursor) => (Some(cursor), 0),
        };
        // One more than asked tells whether another page follows, without a second count.
        let query = Query {
            filter,
            order,
            after,
            offset,
            limit: Some(page.limit.saturating_add(1)),
        };
        let (mut events, total_count) = self.backend.query_with_total(&query)?;
        integrity::check_answer(&query, &events)?;
        let has_more = events.len() as u64 > page.limit;
        events.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
        let next_cursor = has_more.then(|| events.last().map(Event::cursor)).flatten();
        let next_offset = match page.start {
            PageStart::Offset(offset) if has_more => Some(offset + page.limit),
            _ => None,
        };
        Ok(EventPage {
            events,
            total_count,
            has_more,
            next_offset,
            next_cursor,
        })
    }

    /// A transaction group, paged in id order.
    pub fn by_correlation(&self, correlation_id: &str, page: Page) -> Result<EventPage> {
        self.page(Filter::correlation(correlation_id), Order::IdAsc, page)
    }

    /// The children of an event, paged in id order.
    pub fn children_page(&self, id: u64, page: Page) -> Result<EventPage> {
        self.page(Filter::children_of(id), Order::IdAsc, page)
    }

    /// A user's events, newest first (ties by id).
    pub fn by_user(&self, user: &str, page: Page) -> Result<EventPage> {
        self.page(Filter::user(user), Order::DatetimeDesc, page)
    }

    /// A command's events, newest first (ties by id).
    pub fn by_cmd(&self, cmd: &str, page: Page) -> Result<EventPage> {
        self.page(Filter::cmd(cmd), Order::DatetimeDesc, page)
    }

    /// Events with `from <= datetime <= to`, newest first (ties by id).
    pub fn by_time_range(&self, from: i64, to: i64, page: Page) -> Result<EventPage> {
        self.page(Filter::time_range(from, to), Order::DatetimeDesc, page)
    }

    /// Batches of events of the whole log in id order (or of those `options` filters), read
    /// lazily. For one aggregate's events, see [`read_stream`](Self::read_stream).
    pub fn read_all(&self, options: StreamOptions) -> Result<EventStream<'_, B>> {
        EventStream::new(StoreRef::Borrowed(self), options)
    }

    /// [`read_all`](Self::read_all) on a shared store: the stream owns a handle to it, so it
    /// can be kept and moved on its own (an async stream that reads a batch when polled).
    pub fn read_all_shared(
        self: &Arc<Self>,
        options: StreamOptions,
    ) -> Result<EventStream<'static, B>> {
        EventStream::new(StoreRef::Shared(Arc::clone(self)), options)
    }

    /// The old name of [`read_all`](Self::read_all).
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `read_all`: a stream is an aggregate's events (`read_stream`)"
    )]
    pub fn stream(&self, options: StreamOptions) -> Result<EventStream<'_, B>> {
        self.read_all(options)
    }

    /// The events of the aggregate stream `stream` from version `from_version` on (1, or 0,
    /// for all of them), in order: the call that loads an aggregate. The engines read a
    /// stream's index in order, without a sort.
    ///
    /// ```
    /// use eventlite_core::{EventStore, ExpectedVersion, MemoryBackend, NewEvent};
    /// let store = EventStore::new(MemoryBackend::new());
    /// store.append_to_stream("cart-7", ExpectedVersion::NoStream, vec![
    ///     NewEvent::new("added").data(&"apple"),
    ///     NewEvent::new("added").data(&"pear"),
    /// ])?;
    /// let tail = store.read_stream("cart-7", 2)?;
    /// assert_eq!(tail.len(), 1);
    /// assert_eq!(tail[0].stream_version, Some(2));
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<Event>> {
        if stream.is_empty() {
            return Err(Error::InvalidArgument("stream name is empty".into()));
        }
        // Versions count up from 1 without gaps, so version v is the stream's v-th event.
        self.query(
            &Query::new(Filter::stream(stream), Order::IdAsc)
                .offset(from_version.saturating_sub(1)),
        )
    }

    /// The version of the stream `stream`: the number of its events (0 for a stream with
    /// none), which is what [`ExpectedVersion::Exact`](crate::ExpectedVersion) expects of the
    /// next [`append_to_stream`](Self::append_to_stream). One read of the stream's last event,
    /// from its index, on every engine; an empty name is [`Error::InvalidArgument`].
    ///
    /// ```
    /// use eventlite_core::{EventStore, ExpectedVersion, MemoryBackend, NewEvent};
    /// let store = EventStore::new(MemoryBackend::new());
    /// assert_eq!(store.stream_version("cart-7")?, 0);
    /// store.append_to_stream("cart-7", ExpectedVersion::NoStream, vec![
    ///     NewEvent::new("added").data(&"apple"),
    ///     NewEvent::new("added").data(&"pear"),
    /// ])?;
    /// let version = store.stream_version("cart-7")?;
    /// assert_eq!(version, 2);
    /// store.append_to_stream("cart-7", ExpectedVersion::Exact(version), vec![
    ///     NewEvent::new("removed").data(&"apple"),
    /// ])?;
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn stream_version(&self, stream: &str) -> Result<u64> {
        if stream.is_empty() {
            return Err(Error::InvalidArgument("stream name is empty".into()));
        }
        let last = self.query(&Query::new(Filter::stream(stream), Order::IdDesc).limit(1))?;
        Ok(last.first().and_then(|e| e.stream_version).unwrap_or(0))
    }

    /// Loads the aggregate stream `stream` and folds the data of its events, decoded as `D`,
    /// into `init` with `apply`: returns the state and the stream's version (0 for a stream
    /// with no events), which is what [`ExpectedVersion::Exact`](crate::ExpectedVersion)
    /// expects of the next [`append_to_stream`](Self::append_to_stream).
    ///
    /// Every event's data must decode as `D` (else [`Error::Decode`], naming the event): for
    /// an aggregate whose events carry different payloads, make `D` an enum (or
    /// `serde_json::Value`), or fold [`read_stream`](Self::read_stream)'s events yourself.
    /// The stream is read whole before the fold begins.
    ///
    /// ```
    /// use eventlite_core::{EventStore, ExpectedVersion, MemoryBackend, NewEvent};
    /// let store = EventStore::new(MemoryBackend::new());
    /// store.append_to_stream("acct-1", ExpectedVersion::NoStream, vec![
    ///     NewEvent::new("deposited").data(&50),
    ///     NewEvent::new("withdrawn").data(&20),
    /// ])?;
    /// let (balance, version) = store.fold_stream("acct-1", 0i64, |balance, event, amount: i64| {
    ///     match event.cmd.as_str() {
    ///         "deposited" => *balance += amount,
    ///         _ => *balance -= amount,
    ///     }
    /// })?;
    /// assert_eq!((balance, version), (30, 2));
    /// store.append_to_stream("acct-1", ExpectedVersion::Exact(version), vec![
    ///     NewEvent::new("withdrawn").data(&5),
    /// ])?;
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn fold_stream<S, D, F>(&self, stream: &str, init: S, mut apply: F) -> Result<(S, u64)>
    where
        D: DeserializeOwned,
        F: FnMut(&mut S, &Event, D),
    {
        let mut state = init;
        let mut version = 0;
        for event in self.read_stream(stream, 1)? {
            let data: D = event.data()?;
            apply(&mut state, &event, data);
            version = event.stream_version.unwrap_or(version);
        }
        Ok((state, version))
    }

    /// Replays the events whose ids fall in `ids` through `model` and `callbacks`, in id
    /// order (upstream's `cycleThrough`). `1..` replays everything, `..stop` the events before
    /// `stop`. Failures are reported through the callbacks and counted; replay goes on.
    pub fn replay<M: Model>(
        &self,
        model: &mut M,
        ids: impl RangeBounds<u64>,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<ReplayStats> {
        let mut stats = ReplayStats::default();
        let Some(filter) = ReplayStats::filter(ids) else {
            return Ok(stats);
        };
        let mut stream = self.read_all(StreamOptions::new().filter(filter))?;
        // One vector refilled in place: a replay reads every event once and hands the model a
        // reference, so the events' strings are reused instead of allocated and freed per event.
        let mut batch = Vec::new();
        while stream.next_into(&mut batch)? {
            stats.execute(model, callbacks, &batch);
        }
        Ok(stats)
    }

    // ---- snapshots -------------------------------------------------------------------------

    /// Saves `state` as the snapshot of `name` at `event_id` (replacing one at the same id).
    pub fn create_snapshot<S: Serialize + ?Sized>(
        &self,
        name: &str,
        event_id: u64,
        state: &S,
    ) -> Result<()> {
        self.create_snapshot_with_metadata(name, event_id, state, &serde_json::json!({}))
    }

    /// [`create_snapshot`](Self::create_snapshot) with a metadata object.
    pub fn create_snapshot_with_metadata<S: Serialize + ?Sized>(
        &self,
        name: &str,
        event_id: u64,
        state: &S,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        self.check_snapshot(name, event_id, metadata)?;
        let state = Snapshot::encode(name, state)?;
        self.put_snapshot(name, event_id, state, metadata)
    }

    /// [`create_snapshot_with_metadata`](Self::create_snapshot_with_metadata) with the state
    /// already encoded by [`Snapshot::encode`] (an async caller encodes on its own task, then
    /// hands the bytes to a blocking thread).
    pub fn create_encoded_snapshot(
        &self,
        name: &str,
        event_id: u64,
        state: Vec<u8>,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        self.check_snapshot(name, event_id, metadata)?;
        self.put_snapshot(name, event_id, state, metadata)
    }

    fn check_snapshot(
        &self,
        name: &str,
        event_id: u64,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        check_name("snapshot", name)?;
        if !metadata.is_object() {
            return Err(Error::InvalidArgument(
                "snapshot metadata must be an object".into(),
            ));
        }
        if event_id == 0 || event_id > self.backend.last_id()? {
            return Err(Error::NotFound(format!(
                "event {event_id} for snapshot {name:?}"
            )));
        }
        Ok(())
    }

    fn put_snapshot(
        &self,
        name: &str,
        event_id: u64,
        state: Vec<u8>,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        self.backend.put_snapshot(Snapshot {
            name: name.to_owned(),
            event_id,
            state,
            metadata: metadata.to_string(),
            created_at: self.clock.now_ms(),
        })
    }

    /// The latest snapshot of `name` at or before `event_id`, decoded.
    pub fn restore_snapshot<S: DeserializeOwned>(
        &self,
        name: &str,
        event_id: u64,
    ) -> Result<Option<Restored<S>>> {
        let Some(snapshot) = self.backend.snapshot_at_or_before(name, event_id)? else {
            return Ok(None);
        };
        Ok(Some(Restored {
            state: snapshot.decode()?,
            event_id: snapshot.event_id,
            replay_from: snapshot.event_id + 1,
            metadata: snapshot.metadata,
            created_at: snapshot.created_at,
        }))
    }

    /// Snapshots of `name`, newest first.
    pub fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>> {
        self.backend.list_snapshots(name, limit, offset)
    }

    /// Every name that has a snapshot, in byte order.
    pub fn snapshot_names(&self) -> Result<Vec<String>> {
        self.backend.snapshot_names()
    }

    /// Deletes the snapshot of `name` at `event_id`; whether there was one.
    pub fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
        self.backend.delete_snapshot(name, event_id)
    }

    /// Deletes the snapshots of `name` older than `event_id`; how many.
    pub fn delete_old_snapshots(&self, name: &str, event_id: u64) -> Result<u64> {
        self.backend.delete_snapshots_before(name, event_id)
    }

    // ---- positions -------------------------------------------------------------------------

    /// Saves `position` under `name` (replacing what was saved): every event at or below it
    /// has been handled by that consumer. A position past the end of the log is
    /// [`Error::InvalidArgument`].
    pub fn save_position(&self, name: &str, position: u64) -> Result<()> {
        check_name("position", name)?;
        let last = self.backend.last_id()?;
        if position > last {
            return Err(Error::InvalidArgument(format!(
                "position {position} of {name:?} is past the end of the log ({last})"
            )));
        }
        self.backend
            .save_position(name, position, self.clock.now_ms())
    }

    /// The position saved under `name`.
    pub fn position(&self, name: &str) -> Result<Option<Position>> {
        self.backend.load_position(name)
    }

    /// Every saved position, by name.
    pub fn positions(&self) -> Result<Vec<Position>> {
        self.backend.list_positions()
    }

    /// Deletes the position saved under `name`; whether there was one.
    pub fn delete_position(&self, name: &str) -> Result<bool> {
        self.backend.delete_position(name)
    }

    /// The events the projection `name` skipped after they failed (see
    /// [`FailurePolicy`](crate::FailurePolicy)), by event id.
    pub fn failed_events(&self, name: &str) -> Result<Vec<FailedEvent>> {
        self.backend.failures(name)
    }

    /// Forgets the events the projection `name` skipped; how many there were.
    pub fn clear_failed_events(&self, name: &str) -> Result<u64> {
        self.backend.clear_failures(name)
    }

    // ---- cache -----------------------------------------------------------------------------

    /// The cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Empties the cache (counters stay).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }
}

impl Snapshot {
    /// Encodes the state of snapshot `name` as [`EventStore::create_snapshot`] stores it (and
    /// [`decode`](Self::decode) reads it back).
    pub fn encode<S: Serialize + ?Sized>(name: &str, state: &S) -> Result<Vec<u8>> {
        bincode::serde::encode_to_vec(state, bincode::config::standard())
            .map_err(|e| Error::encode(format!("snapshot state of {name:?}: {e}")).with_source(e))
    }

    /// Decodes the state written by [`EventStore::create_snapshot`].
    pub fn decode<S: DeserializeOwned>(&self) -> Result<S> {
        bincode::serde::decode_from_slice(&self.state, bincode::config::standard())
            .map(|(s, _)| s)
            .map_err(|e| {
                Error::decode(format!("snapshot {:?}@{}: {e}", self.name, self.event_id))
                    .with_source(e)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;

    /// Two stores over one engine (clones of a backend share its events and its signal): an
    /// append through either evicts the other's cached transaction.
    #[test]
    fn an_append_through_another_store_evicts_the_cached_transaction() -> Result<()> {
        let engine = MemoryBackend::new();
        let reader = EventStore::new(engine.clone());
        let writer = EventStore::new(engine);
        writer.store(NewEvent::new("a").correlation_id("g"))?;
        assert_eq!(reader.transaction_cached("g")?.len(), 1);
        assert_eq!(reader.transaction_cached("g")?.len(), 1);
        writer.store(NewEvent::new("b").correlation_id("g"))?;
        assert_eq!(reader.transaction_cached("g")?.len(), 2);
        Ok(())
    }

    /// The bulk path converts the caller's vector in place: NewEvent -> PendingEvent here,
    /// PendingEvent -> Event in the engine (see PendingEvent's layout).
    #[test]
    fn a_batch_is_prepared_in_the_callers_allocation() -> Result<()> {
        let store = EventStore::new(MemoryBackend::new());
        let events: Vec<NewEvent> = (0..1_000).map(|_| NewEvent::new("e")).collect();
        let at = events.as_ptr().cast::<u8>();
        let now = store.clock().now_ms();
        let mut parents = HashMap::new();
        let batch = events
            .into_iter()
            .map(|event| store.prepare(event, now, &mut parents))
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(
            batch.as_ptr().cast::<u8>(),
            at,
            "std stopped collecting in place"
        );
        Ok(())
    }
}
