//! EventLite for tokio: [`AsyncEventStore`] wraps a store on any engine and offers every call
//! as an `async fn`, the whole log and subscriptions as [`futures_core::Stream`]s.
//!
//! The engines are synchronous (their files and sockets are read with blocking calls). On a
//! multi-thread runtime a call runs in place under `block_in_place`, which first moves the
//! worker's other tasks to another thread; on a current-thread runtime it goes to the blocking
//! pool (`spawn_blocking`). Either way no other task waits on a disk or a server (see
//! [`Dispatch`] for the trade-off and the other choice). User code (models, callbacks, folds)
//! runs on the calling task, except a projection's model, which has a thread of its own
//! ([`AsyncProjection`]). A stream of the log reads each batch when polled (in place) or a
//! little ahead on a thread of its own; a subscription has a thread that waits for commits.
//! Dropping the facade's last handle closes the engine where it is dropped: on a worker,
//! that is blocking work (a SQLite checkpoint); drop it in `spawn_blocking` at shutdown.
//!
//! With the `eventlite` facade, enable its `tokio` feature and use `eventlite::tokio` (which
//! adds `open` for the default engine); on its own:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use eventlite_core::{EventStore, NewEvent, SubscribeOptions};
//! use eventlite_sqlite::{SqliteBackend, SqliteOptions};
//! use eventlite_tokio::AsyncEventStore;
//! use futures::StreamExt;
//!
//! let dir = tempfile::tempdir()?;
//! let engine = SqliteBackend::open(dir.path().join("events.db"), SqliteOptions::default())?;
//! let store = AsyncEventStore::new(EventStore::new(engine));
//! let mut live = store.subscribe(SubscribeOptions::new()).await?;
//! let placed = store.store(NewEvent::new("order_placed").user("ada")).await?;
//! store.store(NewEvent::new("order_paid").causation_id(placed.id)).await?;
//! let batch = live.next().await.expect("a batch")?;
//! assert_eq!(batch[0].cmd, "order_placed");
//! assert_eq!(store.transaction(&placed.correlation_id).await?.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Cancellation
//!
//! A call does nothing until its future is first polled. Run in place, it is done by the end
//! of that first poll, so there is nothing to cut short. Sent to the blocking pool, the engine
//! has the call once polled and carries it through whether or not the future is kept. Either
//! way dropping the future of an append never leaves part of a batch: the append commits whole
//! or not at all, and what it did is visible to the next read once it is done (a subscription
//! sees it arrive). Dropping the future of a read only throws its answer away. A dropped
//! stream or subscription stops its reader at the next batch.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod projection;

pub use projection::{AsyncProjection, AsyncProjectionBuilder};

use std::ops::RangeBounds;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use eventlite_core::{
    Backend, CacheStats, Callbacks, Error, Event, EventContext, EventPage, EventStore, EventStream,
    Executed, ExpectedVersion, FailedEvent, Filter, IndexConfig, Lineage, Model, NewEvent, Order,
    Page, Parked, Position, Query, QueryPlan, Related, ReplayStats, Restored, Result, Snapshot,
    Stopper, StreamOptions, SubscribeOptions, VerifyReport, WaitCheck, WaitFor, WaitState, Waiting,
    execute,
};
use futures_core::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

/// How many batches a stream or subscription holds ready for its consumer: enough to overlap
/// reading with handling, never the whole log for a slow consumer. Its reader may hold one
/// more, waiting to hand it over.
pub const READ_AHEAD: usize = 2;

/// A store for async code: every call of [`EventStore`] as an `async fn` whose blocking work
/// never holds up the runtime's other tasks (see [`Dispatch`]). Cloning it is cheap (one
/// shared store).
///
/// Build it from a store on any engine with [`AsyncEventStore::new`] (or, with the facade,
/// open the default engine with `eventlite::tokio::open`). See the [crate docs](crate) for an
/// example and for what dropping a call's future does.
///
/// # Cancellation
///
/// Reads: dropping the future throws the answer away. Writes (`store*`, `append_to_stream`,
/// snapshots, positions): the write happens whole or not at all. Run in place (the default
/// on a multi-thread runtime), it is done by the end of the poll that started it; sent to the
/// blocking pool (a current-thread runtime, or [`Dispatch::BlockingPool`]), it goes on after
/// the future is dropped and lands shortly after: a caller that gave up on it (a timeout) must
/// read the store to learn whether it landed before it tries again, or the retry stores the
/// events twice (streams with `ExpectedVersion::Exact` refuse such a retry).
pub struct AsyncEventStore<B> {
    store: Arc<EventStore<B>>,
    dispatch: Dispatch,
}

impl<B> Clone for AsyncEventStore<B> {
    fn clone(&self) -> Self {
        AsyncEventStore {
            store: Arc::clone(&self.store),
            dispatch: self.dispatch,
        }
    }
}

impl<B: Backend> std::fmt::Debug for AsyncEventStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEventStore")
            .field("store", &self.store)
            .field("dispatch", &self.dispatch)
            .finish()
    }
}

/// How an [`AsyncEventStore`] keeps the engine's blocking work off the runtime's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dispatch {
    /// On a multi-thread runtime, a call runs in place under
    /// [`block_in_place`](tokio::task::block_in_place): the worker first hands its other tasks
    /// to another thread, so none of them waits on the engine, and the call costs no hand-off
    /// to another thread and back (a point read runs 4.5–8× faster than through the blocking
    /// pool, see `docs/benchmarks.md`). While it runs, other futures *of the same task*
    /// (`join!`, `select!`) wait. On a current-thread runtime, which cannot run blocking work
    /// in place, calls go to the blocking pool, as with [`BlockingPool`](Self::BlockingPool).
    ///
    /// # Panics
    ///
    /// Where tokio forbids `block_in_place` on a multi-thread runtime: in a task of a
    /// [`LocalSet`](tokio::task::LocalSet). Use [`BlockingPool`](Self::BlockingPool) there.
    #[default]
    Auto,
    /// Every call goes to tokio's blocking pool (`spawn_blocking`) and the task waits for its
    /// answer: other futures of the same task go on meanwhile, at the price of two thread
    /// hand-offs per call.
    BlockingPool,
}

/// Runs `f` where blocking is allowed, as [`Dispatch::Auto`] does: in place on a multi-thread
/// runtime, on tokio's blocking pool on a current-thread one, and on a thread of its own when
/// the future is polled outside a tokio runtime (another executor). Panics where
/// [`Dispatch::Auto`] does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> eventlite_core::Result<()> {
/// let answer = eventlite_tokio::run_blocking(|| Ok(std::fs::metadata(".").is_ok())).await?;
/// assert!(answer);
/// # Ok(())
/// # }
/// ```
pub async fn run_blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    run_as(Dispatch::Auto, f).await
}

/// Whether this is a multi-thread runtime's thread, where blocking work may run in place.
fn multi_thread() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

async fn run_as<T, F>(how: Dispatch, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(runtime)
            if how == Dispatch::Auto && runtime.runtime_flavor() == RuntimeFlavor::MultiThread =>
        {
            tokio::task::block_in_place(f)
        }
        Ok(runtime) => match runtime.spawn_blocking(f).await {
            Ok(answer) => answer,
            // The engine's panic is the caller's, as with the blocking store.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::unavailable(
                "the tokio runtime shut down before the call ran",
            )),
        },
        Err(_) => {
            let (tx, rx) = oneshot::channel();
            std::thread::Builder::new()
                .name("eventlite-call".into())
                .spawn(move || {
                    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                    let _ = tx.send(answer);
                })
                .map_err(|e| Error::unavailable("no thread for a call").with_source(e))?;
            match rx.await {
                Ok(Ok(answer)) => answer,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => Err(Error::Internal(
                    "a call's thread ended without answering".into(),
                )),
            }
        }
    }
}

/// Runs `job` to its end on a thread of its own, without anyone awaiting it. Not tokio's
/// blocking pool: a stream's reader lives as long as its consumer keeps the stream (a
/// subscription's, indefinitely), and would hold one of the pool's threads from the calls
/// (and the runtime's shutdown, which waits for them).
fn detach(name: &str, job: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(job)
        .map(drop)
        .map_err(|e| Error::unavailable(format!("no thread for {name}")).with_source(e))
}

impl<B: Backend> AsyncEventStore<B> {
    /// Wraps a store (opened with any engine's `open` or builder).
    pub fn new(store: EventStore<B>) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Wraps a store that other code shares.
    pub fn from_shared(store: Arc<EventStore<B>>) -> Self {
        AsyncEventStore {
            store,
            dispatch: Dispatch::Auto,
        }
    }

    /// The same store, its calls dispatched `how` (default [`Dispatch::Auto`]).
    pub fn dispatch(mut self, how: Dispatch) -> Self {
        self.dispatch = how;
        self
    }

    /// The blocking store underneath, for code on threads of its own (a projection's run
    /// loop) or a batch of calls in one `spawn_blocking`.
    pub fn blocking(&self) -> &Arc<EventStore<B>> {
        &self.store
    }

    /// Whether calls run in place here (see [`Dispatch::Auto`]).
    fn in_place(&self) -> bool {
        self.dispatch == Dispatch::Auto && multi_thread()
    }

    /// Runs `f` on the store off the runtime's workers.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&EventStore<B>) -> Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        run_as(self.dispatch, move || f(&store)).await
    }

    // ---- writing -------------------------------------------------------------------------

    /// [`EventStore::store`]: stores one event, returns it as stored.
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn store(&self, event: NewEvent) -> Result<Event> {
        self.call(move |s| s.store(event)).await
    }

    /// [`EventStore::store_with_context`].
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn store_with_context(
        &self,
        event: NewEvent,
        context: &EventContext,
    ) -> Result<Event> {
        let context = context.clone();
        self.call(move |s| s.store_with_context(event, &context))
            .await
    }

    /// [`EventStore::store_with`]: stores the event, then runs it through `model` and
    /// `callbacks` on the calling task.
    ///
    /// The future is not `Send` (a [`Callbacks`] holds closures that need not be): in a task
    /// given to `tokio::spawn`, [`store`](Self::store) and then run
    /// [`execute`] yourself.
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn store_with<M: Model>(
        &self,
        event: NewEvent,
        model: &mut M,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<Executed<M::Output>> {
        let event = self.store(event).await?;
        let result = execute(model, callbacks, &event);
        Ok(Executed { event, result })
    }

    /// [`EventStore::store_bulk`]: one transaction, all or nothing.
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn store_bulk(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        self.call(move |s| s.store_bulk(events)).await
    }

    /// [`EventStore::store_bulk_with`]: the model runs on the calling task.
    ///
    /// The future is not `Send` (a [`Callbacks`] holds closures that need not be): in a task
    /// given to `tokio::spawn`, [`store`](Self::store) and then run
    /// [`execute`] yourself.
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn store_bulk_with<M: Model>(
        &self,
        events: Vec<NewEvent>,
        model: &mut M,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<Vec<Executed<M::Output>>> {
        let stored = self.store_bulk(events).await?;
        Ok(stored
            .into_iter()
            .map(|event| {
                let result = execute(model, callbacks, &event);
                Executed { event, result }
            })
            .collect())
    }

    /// [`EventStore::append_to_stream`]: a batch for one aggregate stream, checked against
    /// `expected`.
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn append_to_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Event>> {
        let stream = stream.to_owned();
        self.call(move |s| s.append_to_stream(&stream, expected, events))
            .await
    }

    // ---- reading -------------------------------------------------------------------------

    /// [`EventStore::get`].
    pub async fn get(&self, id: u64) -> Result<Option<Event>> {
        self.call(move |s| s.get(id)).await
    }

    /// [`EventStore::get_cached`].
    pub async fn get_cached(&self, id: u64) -> Result<Option<Arc<Event>>> {
        self.call(move |s| s.get_cached(id)).await
    }

    /// [`EventStore::transaction`]: a correlation's events in id order.
    pub async fn transaction(&self, correlation_id: &str) -> Result<Vec<Event>> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.transaction(&correlation_id)).await
    }

    /// [`EventStore::transaction_cached`].
    pub async fn transaction_cached(&self, correlation_id: &str) -> Result<Arc<[Event]>> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.transaction_cached(&correlation_id))
            .await
    }

    /// [`EventStore::children`].
    pub async fn children(&self, id: u64) -> Result<Vec<Event>> {
        self.call(move |s| s.children(id)).await
    }

    /// [`EventStore::lineage`].
    pub async fn lineage(&self, id: u64) -> Result<Option<Lineage>> {
        self.call(move |s| s.lineage(id)).await
    }

    /// [`EventStore::query`].
    pub async fn query(&self, query: &Query) -> Result<Vec<Event>> {
        let query = query.clone();
        self.call(move |s| s.query(&query)).await
    }

    /// [`EventStore::count`].
    pub async fn count(&self, filter: &Filter) -> Result<u64> {
        let filter = filter.clone();
        self.call(move |s| s.count(&filter)).await
    }

    /// [`EventStore::explain`].
    pub async fn explain(&self, query: &Query) -> Result<QueryPlan> {
        let query = query.clone();
        self.call(move |s| s.explain(&query)).await
    }

    /// [`EventStore::last_id`].
    pub async fn last_id(&self) -> Result<u64> {
        self.call(|s| s.last_id()).await
    }

    /// [`EventStore::page`].
    pub async fn page(&self, filter: Filter, order: Order, page: Page) -> Result<EventPage> {
        self.call(move |s| s.page(filter, order, page)).await
    }

    /// [`EventStore::by_correlation`].
    pub async fn by_correlation(&self, correlation_id: &str, page: Page) -> Result<EventPage> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.by_correlation(&correlation_id, page))
            .await
    }

    /// [`EventStore::children_page`].
    pub async fn children_page(&self, id: u64, page: Page) -> Result<EventPage> {
        self.call(move |s| s.children_page(id, page)).await
    }

    /// [`EventStore::by_user`].
    pub async fn by_user(&self, user: &str, page: Page) -> Result<EventPage> {
        let user = user.to_owned();
        self.call(move |s| s.by_user(&user, page)).await
    }

    /// [`EventStore::by_cmd`].
    pub async fn by_cmd(&self, cmd: &str, page: Page) -> Result<EventPage> {
        let cmd = cmd.to_owned();
        self.call(move |s| s.by_cmd(&cmd, page)).await
    }

    /// [`EventStore::by_time_range`].
    pub async fn by_time_range(&self, from: i64, to: i64, page: Page) -> Result<EventPage> {
        self.call(move |s| s.by_time_range(from, to, page)).await
    }

    /// [`EventStore::read_stream`]: an aggregate stream's events from a version on.
    pub async fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<Event>> {
        let stream = stream.to_owned();
        self.call(move |s| s.read_stream(&stream, from_version))
            .await
    }

    /// [`EventStore::stream_version`]: what `ExpectedVersion::Exact` expects next.
    pub async fn stream_version(&self, stream: &str) -> Result<u64> {
        let stream = stream.to_owned();
        self.call(move |s| s.stream_version(&stream)).await
    }

    /// [`EventStore::fold_stream`]: the stream is read off the runtime's workers, then folded
    /// on the calling task.
    pub async fn fold_stream<S, D, F>(
        &self,
        stream: &str,
        init: S,
        mut apply: F,
    ) -> Result<(S, u64)>
    where
        D: DeserializeOwned,
        F: FnMut(&mut S, &Event, D),
    {
        let mut state = init;
        let mut version = 0;
        for event in self.read_stream(stream, 1).await? {
            let data: D = event.data()?;
            apply(&mut state, &event, data);
            version = event.stream_version.unwrap_or(version);
        }
        Ok((state, version))
    }

    /// [`EventStore::read_all`]: the log (or what `options` filters) in id order, as a
    /// stream of batches. Bad options are an error here, as with the blocking call.
    ///
    /// Run in place ([`Dispatch::Auto`] on a multi-thread runtime), each batch is read when
    /// the stream is polled for it, in place; otherwise a thread of its own reads at most
    /// [`READ_AHEAD`] batches ahead of the consumer. Either way a slow consumer never makes it
    /// buffer the log.
    pub async fn read_all(&self, options: StreamOptions) -> Result<ReadAll<B>> {
        if self.in_place() {
            let store = Arc::clone(&self.store);
            let batches = tokio::task::block_in_place(move || store.read_all_shared(options))?;
            return Ok(ReadAll {
                source: Source::InPlace(Box::new(batches)),
                done: false,
            });
        }
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let (ready, started) = oneshot::channel();
        let store = Arc::clone(&self.store);
        let reader = move || {
            let batches = match store.read_all(options) {
                Ok(batches) => batches,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            // The caller gave up waiting: read nothing.
            if ready.send(Ok(())).is_err() {
                return;
            }
            for batch in batches {
                // The consumer dropped the stream: stop reading.
                if tx.blocking_send(batch).is_err() {
                    break;
                }
            }
        };
        // The reader runs on its own; its answers come through the channels.
        detach("eventlite-read-all", reader)?;
        match started.await {
            Ok(Ok(())) => Ok(ReadAll {
                source: Source::Reader(rx),
                done: false,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Internal(
                "the log's reader ended before it began".into(),
            )),
        }
    }

    /// [`EventStore::replay`]: the events are read off the runtime's workers and run through
    /// `model` and `callbacks` on the calling task, a batch at a time.
    ///
    /// The future is not `Send` (a [`Callbacks`] holds closures that need not be): in a task
    /// given to `tokio::spawn`, read [`read_all`](Self::read_all) and run
    /// [`ReplayStats::execute`] on each batch, with callbacks made for the batch.
    pub async fn replay<M: Model>(
        &self,
        model: &mut M,
        ids: impl RangeBounds<u64>,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<ReplayStats> {
        let mut stats = ReplayStats::default();
        let Some(filter) = ReplayStats::filter(ids) else {
            return Ok(stats);
        };
        let mut batches = self.read_all(StreamOptions::new().filter(filter)).await?;
        while let Some(batch) = batches.next_batch().await {
            stats.execute(model, callbacks, &batch?);
        }
        Ok(stats)
    }

    /// [`EventStore::projection`]: set it up, then [`start`](AsyncProjectionBuilder::start)
    /// it; the model runs on a thread of its own (see [`AsyncProjection`]).
    pub fn projection<M: Model + Send + 'static>(
        &self,
        name: &str,
        model: M,
    ) -> AsyncProjectionBuilder<B, M> {
        AsyncProjectionBuilder::new(Arc::clone(&self.store), name, model)
    }

    /// [`EventStore::subscribe`]: follows the log as a stream of batches (see
    /// [`LiveStream`]).
    pub async fn subscribe(&self, options: SubscribeOptions) -> Result<LiveStream<B>> {
        LiveStream::start(Arc::clone(&self.store), self.dispatch, options).await
    }

    // ---- indexes and maintenance ---------------------------------------------------------

    /// [`EventStore::indexes`].
    pub async fn indexes(&self) -> Result<IndexConfig> {
        self.call(|s| s.indexes()).await
    }

    /// [`EventStore::checkpoint`].
    pub async fn checkpoint(&self) -> Result<()> {
        self.call(|s| s.checkpoint()).await
    }

    /// [`EventStore::verify`].
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.call(|s| s.verify()).await
    }

    /// [`EventStore::cache_stats`] (no I/O: answered on the calling task).
    pub fn cache_stats(&self) -> CacheStats {
        self.store.cache_stats()
    }

    /// [`EventStore::clear_cache`] (no I/O: done on the calling task).
    pub fn clear_cache(&self) {
        self.store.clear_cache()
    }

    // ---- relationships -------------------------------------------------------------------

    /// [`EventStore::roots`].
    pub async fn roots(&self, correlation_id: &str) -> Result<Vec<Event>> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.roots(&correlation_id)).await
    }

    /// [`EventStore::descendants`].
    pub async fn descendants(&self, id: u64) -> Result<Vec<Related>> {
        self.call(move |s| s.descendants(id)).await
    }

    /// [`EventStore::influence`].
    pub async fn influence(&self, id: u64) -> Result<u64> {
        self.call(move |s| s.influence(id)).await
    }

    /// [`EventStore::ancestors`].
    pub async fn ancestors(&self, id: u64) -> Result<Vec<Related>> {
        self.call(move |s| s.ancestors(id)).await
    }

    /// [`EventStore::depth`].
    pub async fn depth(&self, id: u64) -> Result<u32> {
        self.call(move |s| s.depth(id)).await
    }

    /// [`EventStore::siblings`].
    pub async fn siblings(&self, id: u64) -> Result<Vec<Event>> {
        self.call(move |s| s.siblings(id)).await
    }

    /// [`EventStore::cousins`].
    pub async fn cousins(&self, id: u64) -> Result<Vec<Event>> {
        self.call(move |s| s.cousins(id)).await
    }

    /// [`EventStore::orphans`].
    pub async fn orphans(&self, correlation_id: &str) -> Result<Vec<Event>> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.orphans(&correlation_id)).await
    }

    /// [`EventStore::branches`].
    pub async fn branches(&self, correlation_id: &str) -> Result<Vec<Vec<u64>>> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.branches(&correlation_id)).await
    }

    /// [`EventStore::critical_path`].
    pub async fn critical_path(&self, correlation_id: &str) -> Result<Vec<Event>> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.critical_path(&correlation_id)).await
    }

    /// [`EventStore::tree_report`].
    pub async fn tree_report(&self, correlation_id: &str) -> Result<String> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.tree_report(&correlation_id)).await
    }

    // ---- snapshots -----------------------------------------------------------------------

    /// [`EventStore::create_snapshot`]: `state` is encoded on the calling task.
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn create_snapshot<S: Serialize + ?Sized>(
        &self,
        name: &str,
        event_id: u64,
        state: &S,
    ) -> Result<()> {
        self.create_snapshot_with_metadata(name, event_id, state, &serde_json::json!({}))
            .await
    }

    /// [`EventStore::create_snapshot_with_metadata`]: `state` is encoded on the calling task.
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn create_snapshot_with_metadata<S: Serialize + ?Sized>(
        &self,
        name: &str,
        event_id: u64,
        state: &S,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        let state = Snapshot::encode(name, state)?;
        let (name, metadata) = (name.to_owned(), metadata.clone());
        self.call(move |s| s.create_encoded_snapshot(&name, event_id, state, &metadata))
            .await
    }

    /// [`EventStore::restore_snapshot`].
    pub async fn restore_snapshot<S: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        event_id: u64,
    ) -> Result<Option<Restored<S>>> {
        let name = name.to_owned();
        self.call(move |s| s.restore_snapshot(&name, event_id))
            .await
    }

    /// [`EventStore::list_snapshots`].
    pub async fn list_snapshots(
        &self,
        name: &str,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<Snapshot>> {
        let name = name.to_owned();
        self.call(move |s| s.list_snapshots(&name, limit, offset))
            .await
    }

    // ---- wait conditions -------------------------------------------------------------------

    /// [`EventStore::store_when`]: parks the event until `wait` holds (stored at once if it
    /// holds already).
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn store_when(&self, event: NewEvent, wait: WaitFor) -> Result<Parked> {
        self.call(move |s| s.store_when(event, wait)).await
    }

    /// [`EventStore::check_waiting`]: releases what is ready, expires what is due.
    ///
    /// Dropping the future never leaves a release in part: each is one transaction.
    pub async fn check_waiting(&self) -> Result<WaitCheck> {
        self.call(|s| s.check_waiting()).await
    }

    /// [`EventStore::waiting`].
    pub async fn waiting(&self, id: u64) -> Result<Option<Waiting>> {
        self.call(move |s| s.waiting(id)).await
    }

    /// [`EventStore::pending`]: the events of a correlation group still waiting.
    pub async fn pending(&self, correlation_id: &str) -> Result<Vec<Waiting>> {
        let correlation_id = correlation_id.to_owned();
        self.call(move |s| s.pending(&correlation_id)).await
    }

    /// [`EventStore::waiting_in`].
    pub async fn waiting_in(&self, state: Option<WaitState>) -> Result<Vec<Waiting>> {
        self.call(move |s| s.waiting_in(state)).await
    }

    /// [`EventStore::expired`]: expires what is due, then lists every expired record.
    pub async fn expired(&self) -> Result<Vec<Waiting>> {
        self.call(|s| s.expired()).await
    }

    /// [`EventStore::cancel_waiting`].
    pub async fn cancel_waiting(&self, id: u64) -> Result<bool> {
        self.call(move |s| s.cancel_waiting(id)).await
    }

    /// [`EventStore::snapshot_names`].
    pub async fn snapshot_names(&self) -> Result<Vec<String>> {
        self.call(|s| s.snapshot_names()).await
    }

    /// [`EventStore::delete_snapshot`].
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
        let name = name.to_owned();
        self.call(move |s| s.delete_snapshot(&name, event_id)).await
    }

    /// [`EventStore::delete_old_snapshots`].
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn delete_old_snapshots(&self, name: &str, event_id: u64) -> Result<u64> {
        let name = name.to_owned();
        self.call(move |s| s.delete_old_snapshots(&name, event_id))
            .await
    }

    // ---- positions and projection failures -----------------------------------------------

    /// [`EventStore::save_position`].
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn save_position(&self, name: &str, position: u64) -> Result<()> {
        let name = name.to_owned();
        self.call(move |s| s.save_position(&name, position)).await
    }

    /// [`EventStore::position`].
    pub async fn position(&self, name: &str) -> Result<Option<Position>> {
        let name = name.to_owned();
        self.call(move |s| s.position(&name)).await
    }

    /// [`EventStore::positions`].
    pub async fn positions(&self) -> Result<Vec<Position>> {
        self.call(|s| s.positions()).await
    }

    /// [`EventStore::delete_position`].
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn delete_position(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.call(move |s| s.delete_position(&name)).await
    }

    /// [`EventStore::failed_events`].
    pub async fn failed_events(&self, name: &str) -> Result<Vec<FailedEvent>> {
        let name = name.to_owned();
        self.call(move |s| s.failed_events(&name)).await
    }

    /// [`EventStore::clear_failed_events`].
    ///
    /// Dropping the future never leaves the write in part: see
    /// [Cancellation](Self#cancellation) for when it is done.
    pub async fn clear_failed_events(&self, name: &str) -> Result<u64> {
        let name = name.to_owned();
        self.call(move |s| s.clear_failed_events(&name)).await
    }
}

/// The log read in batches, from [`AsyncEventStore::read_all`]: a [`Stream`] of
/// `Result<Vec<Event>>` that ends after the last batch (or after an error). Dropping it stops
/// the reading.
///
/// One made to read in place that is then polled where blocking in place is not allowed (a
/// current-thread runtime, another executor) hands its reading to a thread of its own. In a
/// [`LocalSet`](tokio::task::LocalSet) on a multi-thread runtime, which cannot be told apart,
/// it panics, as [`Dispatch::Auto`] does: make it with [`Dispatch::BlockingPool`] there.
#[derive(Debug)]
pub struct ReadAll<B: 'static> {
    source: Source<B>,
    done: bool,
}

/// Where a [`ReadAll`]'s batches come from.
#[derive(Debug)]
enum Source<B: 'static> {
    /// Read when polled, in place.
    InPlace(Box<EventStream<'static, B>>),
    /// Read ahead by a thread of its own.
    Reader(mpsc::Receiver<Result<Vec<Event>>>),
}

impl<B: Backend> ReadAll<B> {
    /// The next batch; `None` at the end.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<Event>>> {
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Vec<Event>>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if matches!(self.source, Source::InPlace(_)) && !multi_thread() {
            // Moved to where nothing may block in place (a current-thread runtime, another
            // executor): a thread reads on from here.
            let (tx, rx) = mpsc::channel(READ_AHEAD);
            let Source::InPlace(batches) = std::mem::replace(&mut self.source, Source::Reader(rx))
            else {
                unreachable!("matched just above")
            };
            let read = detach("eventlite-read-all", move || {
                for batch in *batches {
                    if tx.blocking_send(batch).is_err() {
                        break;
                    }
                }
            });
            if let Err(e) = read {
                self.done = true;
                return Poll::Ready(Some(Err(e)));
            }
        }
        let next = match &mut self.source {
            Source::InPlace(batches) => Poll::Ready(tokio::task::block_in_place(|| batches.next())),
            Source::Reader(rx) => rx.poll_recv(cx),
        };
        if let Poll::Ready(None) = next {
            self.done = true;
        }
        next
    }
}

impl<B: Backend> Stream for ReadAll<B> {
    type Item = Result<Vec<Event>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_batch(cx)
    }
}

impl<B: Backend> futures_core::FusedStream for ReadAll<B> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// Stops a subscription's reader when dropped: from the moment it exists, so that a
/// `subscribe` call dropped before it answered leaves no reader behind.
#[derive(Debug)]
struct StopOnDrop(Stopper);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // Wakes the reader if it waits for commits; one blocked on the channel sees it closed.
        self.0.stop();
    }
}

/// A live view of the log, from [`AsyncEventStore::subscribe`]: a [`Stream`] of batches, first
/// those already stored, then each as it commits (see [`eventlite_core::Subscription`] for
/// what is delivered and when).
///
/// A thread of its own waits for commits and reads at most [`READ_AHEAD`] batches ahead of the
/// consumer: a slow consumer holds the reader back instead of buffering the log. Dropping the
/// stream (or [`Stopper::stop`]) stops that thread. After an error the stream ends.
#[derive(Debug)]
pub struct LiveStream<B> {
    store: Arc<EventStore<B>>,
    dispatch: Dispatch,
    batches: mpsc::Receiver<Result<(Vec<Event>, u64)>>,
    stop: StopOnDrop,
    /// Every event at or below this was delivered to the consumer or does not match.
    position: u64,
    done: bool,
}

impl<B: Backend> LiveStream<B> {
    async fn start(
        store: Arc<EventStore<B>>,
        dispatch: Dispatch,
        options: SubscribeOptions,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let (ready, started) = oneshot::channel();
        let stop = StopOnDrop(Stopper::default());
        let reader_store = Arc::clone(&store);
        let reader_stopper = stop.0.clone();
        let reader = move || {
            let mut live = match reader_store.subscribe_shared(options) {
                Ok(live) => live.stopped_by(reader_stopper),
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            // The caller gave up waiting: follow nothing.
            if ready.send(Ok(live.current_position())).is_err() {
                return;
            }
            loop {
                let sent = match live.next_batch(std::time::Duration::MAX) {
                    Ok(Some(batch)) => tx.blocking_send(Ok((batch, live.current_position()))),
                    Ok(None) if live.is_stopped() => return,
                    Ok(None) => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                // The consumer dropped the stream.
                if sent.is_err() {
                    return;
                }
            }
        };
        detach("eventlite-subscription", reader)?;
        // `stop` stops the reader if this future is dropped while it waits here.
        let position = match started.await {
            Ok(started) => started?,
            Err(_) => {
                return Err(Error::Internal(
                    "the subscription's reader ended before it began".into(),
                ));
            }
        };
        Ok(LiveStream {
            store,
            dispatch,
            batches: rx,
            stop,
            position,
            done: false,
        })
    }

    /// The next batch; `None` once stopped, or after an error.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<Event>>> {
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Vec<Event>>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.batches.poll_recv(cx) {
            Poll::Ready(Some(Ok((batch, position)))) => {
                self.position = position;
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Every event with an id at or below this was delivered by this stream or does not match
    /// its filter: what to save after handling what it delivered. It moves with each batch
    /// delivered (batches read ahead and not yet delivered do not count), so with a narrow
    /// filter it may lag behind events that did not match: a resume reads them again, to no
    /// effect.
    pub fn current_position(&self) -> u64 {
        self.position
    }

    /// Saves [`current_position`](Self::current_position) under `name`.
    pub async fn save_position(&self, name: &str) -> Result<()> {
        let (store, name, position) = (Arc::clone(&self.store), name.to_owned(), self.position);
        run_as(self.dispatch, move || store.save_position(&name, position)).await
    }

    /// A handle that stops this stream from anywhere: it ends after what was already read.
    pub fn stopper(&self) -> Stopper {
        self.stop.0.clone()
    }
}

impl<B: Backend> Stream for LiveStream<B> {
    type Item = Result<Vec<Event>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_batch(cx)
    }
}

impl<B: Backend> futures_core::FusedStream for LiveStream<B> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
