//! Projections for async code: the model runs on a thread of its own, the caller awaits.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use eventlite_core::{
    Backend, Error, EventStore, FailurePolicy, Filter, Model, ProjectionStats, Result, Stopper,
};
use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::sync::oneshot;

/// What the projection's thread is asked to do.
enum Command<M> {
    CatchUp(Reply),
    Run(Reply),
    RebuildAfter(u64, Reply),
    Model(Box<dyn FnOnce(&M) + Send>),
    IntoModel(oneshot::Sender<M>),
}

/// A call's answer, or the panic it raised (the caller's, as with a blocking call).
type Reply = oneshot::Sender<std::thread::Result<Result<ProjectionStats>>>;

/// A projection being set up, from [`AsyncEventStore::projection`](crate::AsyncEventStore::projection):
/// the settings of [`eventlite_core::Projection`], then [`start`](Self::start).
#[derive(Debug)]
pub struct AsyncProjectionBuilder<B, M> {
    store: Arc<EventStore<B>>,
    name: String,
    model: M,
    policy: FailurePolicy,
    filter: Filter,
    batch_size: Option<u64>,
    poll_interval: Option<Duration>,
}

impl<B: Backend, M: Model + Send + 'static> AsyncProjectionBuilder<B, M> {
    pub(crate) fn new(store: Arc<EventStore<B>>, name: &str, model: M) -> Self {
        AsyncProjectionBuilder {
            store,
            name: name.to_owned(),
            model,
            policy: FailurePolicy::default(),
            filter: Filter::default(),
            batch_size: None,
            poll_interval: None,
        }
    }

    /// See [`eventlite_core::Projection::policy`].
    pub fn policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// See [`eventlite_core::Projection::filter`].
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// See [`eventlite_core::Projection::batch_size`].
    pub fn batch_size(mut self, n: u64) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// See [`eventlite_core::Projection::poll_interval`].
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// Starts the projection's thread, which holds the model from now on; nothing is read
    /// until a call asks for it.
    pub fn start(self) -> Result<AsyncProjection<M>> {
        let (commands, inbox) = mpsc::channel::<Command<M>>();
        let stopper = Stopper::default();
        let worker_stopper = stopper.clone();
        let (name, thread_stopper) = (self.name.clone(), stopper.clone());
        std::thread::Builder::new()
            .name("eventlite-projection".into())
            .spawn(move || {
                let mut projection = self
                    .store
                    .projection(&self.name, self.model)
                    .policy(self.policy)
                    .filter(self.filter)
                    .stopped_by(worker_stopper);
                let stopper = thread_stopper;
                if let Some(n) = self.batch_size {
                    projection = projection.batch_size(n);
                }
                if let Some(interval) = self.poll_interval {
                    projection = projection.poll_interval(interval);
                }
                let stopped = || {
                    Err(Error::InvalidArgument(format!(
                        "projection {name:?} was stopped: a new one resumes from its saved \
                         position"
                    )))
                };
                // Ends when the AsyncProjection is dropped (its sender with it).
                while let Ok(command) = inbox.recv() {
                    let (reply, id) = match command {
                        Command::CatchUp(reply) => (reply, None),
                        Command::Run(reply) => (reply, Some(None)),
                        Command::RebuildAfter(id, reply) => (reply, Some(Some(id))),
                        Command::Model(look) => {
                            // A panic in `look` is the caller's: its answer never comes.
                            let _ = catch_unwind(AssertUnwindSafe(|| look(projection.model())));
                            continue;
                        }
                        Command::IntoModel(reply) => {
                            let _ = reply.send(projection.into_model());
                            return;
                        }
                    };
                    // A call queued before the stop (its caller gone) must not write anything.
                    if stopper.is_stopped() {
                        let _ = reply.send(Ok(stopped()));
                        continue;
                    }
                    let answer = catch_unwind(AssertUnwindSafe(|| match id {
                        None => projection.catch_up(),
                        Some(None) => projection.run(),
                        Some(Some(id)) => projection.rebuild_after(id),
                    }));
                    let _ = reply.send(answer);
                }
            })
            .map_err(|e| Error::unavailable("no thread for a projection").with_source(e))?;
        Ok(AsyncProjection { commands, stopper })
    }
}

/// A projection ([`eventlite_core::Projection`]) for async code: its model lives on a thread of
/// its own, where it handles the events; each call hands that thread a job and awaits it.
///
/// Dropping the future of [`run`](Self::run) (or of `catch_up` and the rebuilds) stops the
/// projection after the batch in hand, as [`stopper`](Self::stopper) does; its position stays
/// saved, so a new projection under the same name resumes there. A stopped projection stays
/// stopped: later calls are [`Error::InvalidArgument`], and write nothing. The model can be
/// read ([`with_model`](Self::with_model)) between calls, not while one runs.
pub struct AsyncProjection<M> {
    commands: mpsc::Sender<Command<M>>,
    stopper: Stopper,
}

impl<M> std::fmt::Debug for AsyncProjection<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncProjection")
            .field("stopped", &self.stopper.is_stopped())
            .finish()
    }
}

/// Stops the projection when the call's future is dropped before it answered.
struct StopUnlessAnswered<'a>(&'a Stopper, bool);

impl Drop for StopUnlessAnswered<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.stop();
        }
    }
}

impl<M: Model + Send + 'static> AsyncProjection<M> {
    fn gone() -> Error {
        Error::Internal("the projection's thread ended".into())
    }

    async fn ask(&self, command: impl FnOnce(Reply) -> Command<M>) -> Result<ProjectionStats> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| Self::gone())?;
        let mut guard = StopUnlessAnswered(&self.stopper, false);
        let answer = answer.await.map_err(|_| Self::gone())?;
        guard.1 = true;
        answer.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// [`Projection::catch_up`](eventlite_core::Projection::catch_up).
    pub async fn catch_up(&mut self) -> Result<ProjectionStats> {
        self.ask(Command::CatchUp).await
    }

    /// [`Projection::run`](eventlite_core::Projection::run): until stopped (through
    /// [`stopper`](Self::stopper), or by dropping this future) or an event fails under
    /// [`FailurePolicy::stop`].
    pub async fn run(&mut self) -> Result<ProjectionStats> {
        self.ask(Command::Run).await
    }

    /// [`Projection::rebuild`](eventlite_core::Projection::rebuild).
    pub async fn rebuild(&mut self) -> Result<ProjectionStats> {
        self.rebuild_after(0).await
    }

    /// [`Projection::rebuild_after`](eventlite_core::Projection::rebuild_after).
    pub async fn rebuild_after(&mut self, event_id: u64) -> Result<ProjectionStats> {
        self.ask(|reply| Command::RebuildAfter(event_id, reply))
            .await
    }

    /// Reads the model (on its thread) through `look`, and returns what `look` returns.
    pub async fn with_model<T: Send + 'static>(
        &self,
        look: impl FnOnce(&M) -> T + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Model(Box::new(move |m| {
                let _ = reply.send(look(m));
            })))
            .map_err(|_| Self::gone())?;
        answer.await.map_err(|_| Self::gone())
    }

    /// The model, for the caller to keep (the projection's thread ends).
    pub async fn into_model(self) -> Result<M> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::IntoModel(reply))
            .map_err(|_| Self::gone())?;
        answer.await.map_err(|_| Self::gone())
    }

    /// A handle that stops a [`run`](Self::run) from anywhere (after the batch in hand).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }
}
