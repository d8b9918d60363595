//! Projections: a [`Model`] fed from a subscription, with its position saved in the store after
//! each batch and a policy for events it fails on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use crate::backend::{Backend, FailedEvent};
use crate::error::{BoxError, Error, Result};
use crate::event::Event;
use crate::model::{Callbacks, Model, execute};
use crate::query::Filter;
use crate::store::EventStore;
use crate::subscription::{Start, Stopper, SubscribeOptions, Subscription};

/// What a projection does with an event its model fails on (an error or a panic).
///
/// ```
/// use std::time::Duration;
/// use eventlite_core::FailurePolicy;
///
/// // Try three more times, 10 ms apart and doubling, then record the event and go on.
/// let policy = FailurePolicy::retry(3, Duration::from_millis(10)).then_skip();
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    retries: u32,
    backoff: Duration,
    skip: bool,
}

impl Default for FailurePolicy {
    /// [`FailurePolicy::stop`].
    fn default() -> Self {
        FailurePolicy::stop()
    }
}

impl FailurePolicy {
    /// Stop at once with the error; the position stays before the event.
    pub fn stop() -> Self {
        FailurePolicy {
            retries: 0,
            backoff: Duration::ZERO,
            skip: false,
        }
    }

    /// Record the event (see [`EventStore::failed_events`]) and go on with the next one.
    pub fn skip() -> Self {
        FailurePolicy {
            skip: true,
            ..FailurePolicy::stop()
        }
    }

    /// Try the event up to `retries` more times, waiting `backoff` before the first retry and
    /// twice as long before each next one (at most 32 × `backoff`); then stop, unless
    /// [`then_skip`](Self::then_skip).
    pub fn retry(retries: u32, backoff: Duration) -> Self {
        FailurePolicy {
            retries,
            backoff,
            skip: false,
        }
    }

    /// After the retries, record the event and go on instead of stopping.
    pub fn then_skip(mut self) -> Self {
        self.skip = true;
        self
    }

    /// How many times a failing event is tried again.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Whether an event that still fails after the retries is skipped (else the run stops).
    pub fn skips(&self) -> bool {
        self.skip
    }

    /// How long to wait before retry number `retry` (from 1).
    pub fn delay_before(&self, retry: u32) -> Duration {
        self.backoff
            .saturating_mul(1 << retry.saturating_sub(1).min(5))
    }
}

/// What a projection run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProjectionStats {
    /// Events handled successfully.
    pub events: u64,
    /// Events skipped after failing (recorded in the store).
    pub skipped: u64,
    /// Retries made.
    pub retries: u64,
    /// The position saved last.
    pub position: u64,
}

/// A [`Model`] kept up to date from the log under a name: it resumes after the position saved
/// under that name, handles each batch, then saves its position. A failing or panicking event
/// is retried, skipped or stops the run, as its [`FailurePolicy`] says.
///
/// The saved position says which events the model has seen, so it suits a model whose state
/// lives outside the process (it writes to another system as it handles events: after a crash
/// the events of the last unsaved batch are handled again, at least once). A model whose state
/// lives in memory starts empty in a new process: [`rebuild`](Self::rebuild) it (or restore a
/// snapshot and [`rebuild_after`](Self::rebuild_after) its event). Within one `Projection`
/// nothing is handled twice, even when saving the position failed and the run is tried again.
///
/// For a read model kept in the user's own SQLite database, with its position committed in
/// the same transaction as its rows (exactly once), see `eventlite_sqlite::SqliteProjection`.
///
/// ```
/// use eventlite_core::{EventStore, FnModel, MemoryBackend, NewEvent};
///
/// let store = EventStore::new(MemoryBackend::new());
/// store.store(NewEvent::new("deposited").data(&5))?;
/// store.store(NewEvent::new("deposited").data(&7))?;
/// let balance = FnModel::new(0i64)
///     .on("deposited", |total, _event, data| { *total += data.get::<i64>()?; Ok(()) });
/// let mut projection = store.projection("balance", balance);
/// let stats = projection.catch_up()?;
/// assert_eq!((stats.events, *projection.model().state()), (2, 12));
/// assert_eq!(store.position("balance")?.map(|p| p.position), Some(2));
/// # Ok::<(), eventlite_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Projection<'s, B, M> {
    store: &'s EventStore<B>,
    name: String,
    model: M,
    policy: FailurePolicy,
    filter: Filter,
    batch_size: u64,
    poll_interval: Duration,
    stopper: Stopper,
    /// Every event up to this went into the model (it may be ahead of the saved position when
    /// saving failed).
    applied: Option<u64>,
}

impl<B: Backend> EventStore<B> {
    /// A projection of `model` named `name` (see [`Projection`]).
    pub fn projection<M: Model>(&self, name: &str, model: M) -> Projection<'_, B, M> {
        Projection {
            store: self,
            name: name.to_owned(),
            model,
            policy: FailurePolicy::default(),
            filter: Filter::default(),
            batch_size: 1_000,
            poll_interval: SubscribeOptions::default().poll_interval,
            stopper: Stopper::default(),
            applied: None,
        }
    }
}

impl<'s, B: Backend, M: Model> Projection<'s, B, M> {
    /// Sets what happens to failing events.
    pub fn policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Handles only the events `filter` selects (the position still moves past the others).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets how many events are handled between two saves of the position (default 1,000).
    pub fn batch_size(mut self, n: u64) -> Self {
        self.batch_size = n;
        self
    }

    /// Sets how often [`run`](Self::run) looks for other processes' commits (see
    /// [`SubscribeOptions::poll_interval`]).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, for the caller to keep.
    pub fn into_model(self) -> M {
        self.model
    }

    /// A handle that stops [`run`](Self::run) from another thread (after the batch in hand).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// The same projection, stopped through `stopper`, made before it (a runner hands out its
    /// stopper before the projection exists on another thread). A stopper already used stops
    /// it at once.
    pub fn stopped_by(mut self, stopper: Stopper) -> Self {
        self.stopper = stopper;
        self
    }

    /// Handles every event after the saved position, then returns.
    pub fn catch_up(&mut self) -> Result<ProjectionStats> {
        self.go(false)
    }

    /// Handles every event after the saved position, then each new one as it commits, until
    /// stopped through [`stopper`](Self::stopper) or an event fails under
    /// [`FailurePolicy::stop`].
    pub fn run(&mut self) -> Result<ProjectionStats> {
        self.go(true)
    }

    /// Forgets the saved position and the skipped events, then handles the whole log again,
    /// into the model this projection holds (give it a fresh one).
    pub fn rebuild(&mut self) -> Result<ProjectionStats> {
        self.rebuild_after(0)
    }

    /// [`rebuild`](Self::rebuild) from after `event_id`: for a model restored from a snapshot
    /// taken at that event ([`EventStore::restore_snapshot`]).
    pub fn rebuild_after(&mut self, event_id: u64) -> Result<ProjectionStats> {
        // Stopped, it would rewind the position and then handle nothing.
        if self.stopper.is_stopped() {
            return Ok(ProjectionStats::default());
        }
        self.store.backend().clear_failures(&self.name)?;
        self.store.save_position(&self.name, event_id)?;
        self.applied = Some(event_id);
        self.catch_up()
    }

    fn subscription(&self) -> Result<Subscription<'s, B>> {
        let saved = self.store.position(&self.name)?.map(|p| p.position);
        let start = match saved.max(self.applied) {
            Some(position) => Start::After(position),
            None => Start::Beginning,
        };
        let options = SubscribeOptions::new()
            .start(start)
            .filter(self.filter.clone())
            .batch_size(self.batch_size)
            .poll_interval(self.poll_interval);
        let store: &'s EventStore<B> = self.store;
        Ok(store.subscribe(options)?.stopped_by(self.stopper.clone()))
    }

    fn go(&mut self, follow: bool) -> Result<ProjectionStats> {
        let mut stats = ProjectionStats::default();
        let mut subscription = self.subscription()?;
        stats.position = subscription.current_position();
        let wait = if follow {
            Duration::MAX
        } else {
            Duration::ZERO
        };
        loop {
            let Some(batch) = subscription.next_batch(wait)? else {
                if follow && !subscription.is_stopped() {
                    continue;
                }
                return Ok(stats);
            };
            let mut callbacks = Callbacks::new();
            for event in &batch {
                match handle(
                    &mut self.model,
                    &mut callbacks,
                    event,
                    &self.policy,
                    &mut stats,
                ) {
                    Outcome::Handled => {}
                    Outcome::Skipped { attempts, error } => {
                        stats.skipped += 1;
                        self.store.backend().record_failure(FailedEvent {
                            projection: self.name.clone(),
                            event_id: event.id,
                            attempts,
                            error,
                            at: self.store.clock().now_ms(),
                        })?;
                    }
                    Outcome::Stop(message, source) => {
                        // Everything before the failing event was handled: resume at it.
                        let before = event.id - 1;
                        self.applied = Some(before);
                        if before > stats.position {
                            self.store.save_position(&self.name, before)?;
                        }
                        return Err(Error::ProjectionFailed {
                            projection: self.name.clone(),
                            event_id: event.id,
                            message,
                            source,
                        });
                    }
                }
                self.applied = Some(event.id);
            }
            self.applied = Some(subscription.current_position());
            self.store
                .save_position(&self.name, subscription.current_position())?;
            stats.position = subscription.current_position();
        }
    }
}

/// What became of one event.
enum Outcome {
    Handled,
    /// Failed `attempts` times, last with `error`, and the policy says go on.
    Skipped {
        attempts: u32,
        error: String,
    },
    /// Failed, and the policy says stop: why, and the model's error (none for a panic).
    Stop(String, Option<BoxError>),
}

/// Runs `event` through the model, retrying as the policy says.
fn handle<M: Model>(
    model: &mut M,
    callbacks: &mut Callbacks<'_, M::Output>,
    event: &Event,
    policy: &FailurePolicy,
    stats: &mut ProjectionStats,
) -> Outcome {
    let mut attempt = 0u32;
    loop {
        let outcome = catch_unwind(AssertUnwindSafe(|| execute(model, callbacks, event)));
        let (failure, source): (String, Option<BoxError>) = match outcome {
            Ok(Ok(_)) => {
                stats.events += 1;
                return Outcome::Handled;
            }
            Ok(Err(e)) => (e.to_string(), Some(Box::new(e))),
            Err(panic) => (
                format!("the handler panicked: {}", panic_message(&panic)),
                None,
            ),
        };
        if attempt < policy.retries {
            attempt += 1;
            stats.retries += 1;
            std::thread::sleep(policy.delay_before(attempt));
            continue;
        }
        if policy.skip {
            return Outcome::Skipped {
                attempts: attempt + 1,
                error: failure,
            };
        }
        return Outcome::Stop(failure, source);
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = FailurePolicy::retry(10, Duration::from_millis(10));
        let delays: Vec<u128> = (1..=8).map(|r| p.delay_before(r).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 320, 320]);
    }
}
