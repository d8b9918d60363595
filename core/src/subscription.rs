//! Subscriptions: follow the log as it grows, from any point, resumable from a saved position.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::query::{Filter, Order, Query};
use crate::spi::{Wakeup, Watcher};
use crate::store::{EventStore, StoreRef};

/// Where a subscription starts reading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Start {
    /// From the first event.
    #[default]
    Beginning,
    /// After the event with this id (`After(0)` is the beginning). An id past the end of the
    /// log is [`Error::InvalidArgument`] (a position from another store, say).
    After(u64),
    /// After the position saved under this name ([`EventStore::save_position`]); a name with
    /// no saved position is [`Error::NotFound`].
    Saved(String),
    /// After the newest event at the time of subscribing: only events appended from then on.
    End,
}

/// What [`EventStore::subscribe`] follows and how (build it with [`SubscribeOptions::new`] and
/// its setters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Where to start.
    pub start: Start,
    /// Which events to deliver (all when empty). Every filter works; one that an enabled index
    /// serves keeps each wake-up cheap (see [`EventStore::explain`]).
    pub filter: Filter,
    /// The most events per batch (at least 1; default 1,000).
    pub batch_size: u64,
    /// How often a waiting subscription looks for commits the engine could not signal (another
    /// process's, on SQLite): about the longest such a commit waits to be seen (an engine may
    /// add a few ms when many subscriptions poll at once). Commits through the same store
    /// wake the subscriptions they concern at once. Default 50 ms.
    pub poll_interval: Duration,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            start: Start::Beginning,
            filter: Filter::default(),
            batch_size: 1_000,
            poll_interval: Duration::from_millis(50),
        }
    }
}

impl SubscribeOptions {
    /// Every event from the beginning, 1,000 a batch.
    pub fn new() -> Self {
        SubscribeOptions::default()
    }

    /// Sets where to start.
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets the batch size.
    pub fn batch_size(mut self, n: u64) -> Self {
        self.batch_size = n;
        self
    }

    /// Sets the poll interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

/// Stops a [`Subscription`] (or a projection's run) from another thread: its blocked call
/// returns at once, and it delivers nothing more. A stop is final: what it stopped stays
/// stopped.
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    state: Arc<StopState>,
}

#[derive(Debug, Default)]
struct StopState {
    stopped: AtomicBool,
    /// The watcher of the subscription to wake, once there is one.
    watcher: std::sync::Mutex<Option<std::sync::Weak<Watcher>>>,
}

impl Stopper {
    /// Stops the subscription.
    pub fn stop(&self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        let watcher = self
            .state
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(std::sync::Weak::upgrade);
        if let Some(w) = watcher {
            w.wake();
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.state.stopped.load(Ordering::SeqCst)
    }

    /// Wakes `watcher` when stopped (the latest subscription this stopper stops).
    fn attach(&self, watcher: &Arc<Watcher>) {
        *self.state.watcher.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::downgrade(watcher));
        if self.is_stopped() {
            watcher.wake();
        }
    }
}

/// A live view of the log: the events after its position that match its filter, in id order,
/// in batches, first those already stored (catch-up, at the speed of
/// [`EventStore::read_all`]), then each as it commits.
///
/// Because ids are global, gap-free and assigned in commit order, reading `id > position`
/// never skips an event that commits late: every event at or below the newest id a
/// subscription has seen is already visible to it. Delivery is at least once across restarts
/// (save the position after handling a batch) and exactly once within one subscription. A
/// slow consumer costs nothing: nothing is buffered beyond the batch being read.
///
/// ```
/// use std::time::Duration;
/// use eventlite_core::{EventStore, MemoryBackend, NewEvent, SubscribeOptions, Start};
///
/// let store = EventStore::new(MemoryBackend::new());
/// store.store(NewEvent::new("opened"))?;
/// let mut orders = store.subscribe(SubscribeOptions::new().start(Start::Beginning))?;
/// let batch = orders.next_batch(Duration::ZERO)?.expect("the stored event");
/// assert_eq!(batch[0].cmd, "opened");
/// assert!(orders.next_batch(Duration::from_millis(1))?.is_none()); // nothing new yet
/// store.store(NewEvent::new("paid"))?;
/// assert_eq!(orders.next_batch(Duration::from_secs(5))?.map(|b| b.len()), Some(1));
/// orders.save_position("orders")?; // a later `Start::Saved("orders")` resumes after "paid"
/// # Ok::<(), eventlite_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Subscription<'s, B> {
    store: StoreRef<'s, B>,
    filter: Filter,
    batch_size: u64,
    poll_interval: Duration,
    /// Every event at or below this was delivered or does not match the filter.
    position: u64,
    watcher: Arc<Watcher>,
    stopper: Stopper,
}

impl<B: Backend> EventStore<B> {
    /// Follows the log (see [`Subscription`]).
    pub fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription<'_, B>> {
        Subscription::new(StoreRef::Borrowed(self), options)
    }

    /// [`subscribe`](Self::subscribe) on a shared store: the subscription owns a handle to it,
    /// so it can move to a thread of its own.
    pub fn subscribe_shared(
        self: &Arc<Self>,
        options: SubscribeOptions,
    ) -> Result<Subscription<'static, B>> {
        Subscription::new(StoreRef::Shared(Arc::clone(self)), options)
    }
}

impl<'s, B: Backend> Subscription<'s, B> {
    fn new(store: StoreRef<'s, B>, options: SubscribeOptions) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::InvalidArgument(
                "batch_size must be at least 1".into(),
            ));
        }
        if options.poll_interval.is_zero() {
            return Err(Error::InvalidArgument(
                "poll_interval must be above zero (a waiting subscription would spin)".into(),
            ));
        }
        let last = store.last_id()?;
        let position = match options.start {
            Start::Beginning => 0,
            Start::End => last,
            Start::After(id) => id,
            Start::Saved(ref name) => {
                store
                    .position(name)?
                    .ok_or_else(|| Error::NotFound(format!("no saved position named {name:?}")))?
                    .position
            }
        };
        if position > last {
            return Err(Error::InvalidArgument(format!(
                "start after event {position}, but the log ends at {last}: there is no event \
                 {position} yet (a position from another store?)"
            )));
        }
        // Registered at `position`: a commit after it that matches wakes the subscription.
        let watcher = store
            .backend()
            .commit_signal()
            .watch(options.filter.clone(), position);
        let stopper = Stopper::default();
        stopper.attach(&watcher);
        Ok(Subscription {
            store,
            filter: options.filter,
            batch_size: options.batch_size,
            poll_interval: options.poll_interval,
            position,
            watcher,
            stopper,
        })
    }

    /// The same subscription, stopped through `stopper`, which was made before it (a runner
    /// hands out its stopper before it subscribes). A stopper already used stops it at once.
    pub fn stopped_by(mut self, stopper: Stopper) -> Self {
        stopper.attach(&self.watcher);
        self.stopper = stopper;
        self
    }

    /// Every event with an id at or below this was delivered or does not match the filter:
    /// what to save to resume after what was handled.
    pub fn current_position(&self) -> u64 {
        self.position
    }

    /// Saves [`current_position`](Self::current_position) under `name` in the store.
    pub fn save_position(&self, name: &str) -> Result<()> {
        self.store.save_position(name, self.position)
    }

    /// A handle that stops this subscription from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Whether it was stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopper.is_stopped()
    }

    /// The next batch: at once when events are waiting, else as soon as one commits, else
    /// `None` once `timeout` passed (or the subscription was stopped). An engine that closes
    /// while a subscription waits on it (one whose handle it does not keep alive) is
    /// [`Error::Unavailable`].
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Option<Vec<Event>>> {
        let deadline = Instant::now().checked_add(timeout);
        // Whether the log may hold something new for this subscription: at first, and after
        // each wake-up; not after a poll that found no commit from elsewhere (commits through
        // this engine wake it themselves when they concern it).
        let mut may_have_news = true;
        loop {
            let seen = self.watcher.seen();
            if self.is_stopped() {
                return Ok(None);
            }
            if may_have_news {
                if let Some(batch) = self.read()? {
                    return Ok(Some(batch));
                }
            } else {
                self.position = self.position.max(self.watcher.covered());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let poll = now.checked_add(self.poll_interval);
            let until = match (deadline, poll) {
                (Some(d), Some(p)) => d.min(p),
                (d, p) => d.or(p).unwrap_or(now + Duration::from_secs(3600)),
            };
            may_have_news = match self.watcher.wait(seen, until) {
                Wakeup::Woken => true,
                Wakeup::TimedOut => {
                    self.store.backend().poll_commits()?;
                    self.watcher.seen() != seen
                }
                Wakeup::Closed => {
                    return Err(Error::unavailable(
                        "the store was closed under the subscription",
                    ));
                }
            };
        }
    }

    /// The events past the position, up to a batch; `None` when there are none (the position
    /// still moves past what was looked at).
    fn read(&mut self) -> Result<Option<Vec<Event>>> {
        // Events the engine told the watcher hold nothing for this filter need no query.
        self.position = self.position.max(self.watcher.covered());
        // Every event at or below the newest id is committed and visible to the query below
        // (ids are assigned in commit order), so the scan can end there and move past it.
        let head = self.store.last_id()?;
        let from = self
            .position
            .saturating_add(1)
            .max(self.filter.id_from.unwrap_or(0));
        let to = head.min(self.filter.id_to.unwrap_or(u64::MAX));
        if from > to {
            self.position = self
                .position
                .max(head.min(self.filter.id_to.unwrap_or(head)));
            self.watcher.advance(self.position);
            return Ok(None);
        }
        let query = Query {
            filter: Filter {
                id_from: Some(from),
                id_to: Some(to),
                ..self.filter.clone()
            },
            order: Order::IdAsc,
            after: None,
            offset: 0,
            limit: Some(self.batch_size),
        };
        let batch = self.store.query(&query)?;
        self.position = match batch.last() {
            // A full batch: more may match before `to`.
            Some(last) if batch.len() as u64 == self.batch_size => last.id,
            _ => to,
        };
        self.watcher.advance(self.position);
        Ok((!batch.is_empty()).then_some(batch))
    }
}

impl<B: Backend> Iterator for Subscription<'_, B> {
    type Item = Result<Vec<Event>>;

    /// Blocks until the next batch; `None` once stopped. After an error it ends.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_batch(Duration::MAX) {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) if self.is_stopped() => return None,
                Ok(None) => {}
                Err(e) => {
                    self.stopper.stop();
                    return Some(Err(e));
                }
            }
        }
    }
}
