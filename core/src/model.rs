//! Models: what an event does once it is stored (or replayed).
//!
//! Execution keeps the upstream contract: the event is stored first (the log is the truth),
//! then its data is migrated from its `version` to the latest with the model's per-cmd
//! migrations, then the model handles it, then the callback for its `cmd` (or the default
//! callback) runs, then the model's `done`. A failure goes to the error callback and the
//! model's `error`, and never removes the event.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{BoxError, Error, Result};
use crate::event::Event;

/// One migration step: upgrades a payload by one schema version.
pub type Migration = Box<dyn Fn(Value) -> std::result::Result<Value, BoxError> + Send + Sync>;

/// An event's payload as a handler sees it: the stored JSON text when no migration applied
/// (parsed only if the handler asks), or the migrated value.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData<'a> {
    /// The stored JSON text, untouched.
    Raw(&'a str),
    /// The payload after migrations.
    Migrated(Value),
}

impl EventData<'_> {
    /// Deserialises the (migrated) payload into `T`.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T> {
        match self {
            EventData::Raw(text) => serde_json::from_str(text),
            EventData::Migrated(value) => T::deserialize(value),
        }
        .map_err(|e| Error::decode(format!("event data: {e}")).with_source(e))
    }

    /// The (migrated) payload as a dynamic value.
    pub fn value(&self) -> Result<Value> {
        self.get()
    }
}

/// A user model: state that events are applied to.
///
/// Implement it directly with a `match` on `event.cmd` (the arm `_` is the default handler),
/// or build one from closures with [`FnModel`].
pub trait Model {
    /// What handling an event returns (handed to callbacks and to `done`).
    type Output;

    /// Migrations for `cmd`: element `i` upgrades data from version `i + 1` to `i + 2`.
    fn migrations(&self, cmd: &str) -> &[Migration] {
        let _ = cmd;
        &[]
    }

    /// Applies one event.
    fn handle(
        &mut self,
        event: &Event,
        data: &EventData<'_>,
    ) -> std::result::Result<Self::Output, BoxError>;

    /// Called after the event was handled and its callback ran.
    fn done(&mut self, event: &Event, output: &Self::Output) {
        let _ = (event, output);
    }

    /// Called when migrating or handling the event failed.
    fn error(&mut self, error: &ExecutionError) {
        let _ = error;
    }
}

/// Where execution of a stored event failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The migration from this version to the next failed.
    Migration {
        /// The version the failing migration upgrades from.
        from_version: u32,
    },
    /// The model's handler failed (or there was none for the cmd).
    Handler,
    /// The command succeeded, but its callback failed.
    Callback,
}

/// A failure while executing a stored event. The event stays stored.
#[derive(Debug, thiserror::Error)]
#[error("executing event {} ({:?}) failed at {stage:?}: {message}", .event.id, .event.cmd)]
pub struct ExecutionError {
    /// Where it failed.
    pub stage: Stage,
    /// The error's message.
    pub message: String,
    /// The whole stored event (boxed: errors stay small on the happy path).
    pub event: Box<Event>,
    /// The error itself.
    #[source]
    pub source: Option<BoxError>,
}

/// A stored event with what executing it gave.
#[derive(Debug)]
pub struct Executed<O> {
    /// The stored event (stored whatever `result` says).
    pub event: Event,
    /// The model's output, or why execution failed.
    pub result: std::result::Result<O, ExecutionError>,
}

type CallbackFn<'a, O> = Box<dyn FnMut(&O, &Event) -> std::result::Result<(), BoxError> + 'a>;
type ErrorFn<'a> = Box<dyn FnMut(&ExecutionError) + 'a>;

/// Callbacks run after the model handled an event: one per cmd, a default, and one for errors.
/// `Callbacks::new()` does nothing (upstream's `void`).
pub struct Callbacks<'a, O> {
    by_cmd: HashMap<String, CallbackFn<'a, O>>,
    default: Option<CallbackFn<'a, O>>,
    on_error: Option<ErrorFn<'a>>,
}

impl<O> std::fmt::Debug for Callbacks<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("cmds", &self.by_cmd.keys().collect::<Vec<_>>())
            .field("default", &self.default.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl<O> Default for Callbacks<'_, O> {
    fn default() -> Self {
        Callbacks {
            by_cmd: HashMap::new(),
            default: None,
            on_error: None,
        }
    }
}

impl<'a, O> Callbacks<'a, O> {
    /// No callbacks.
    pub fn new() -> Self {
        Callbacks::default()
    }

    /// Runs `f` after events of `cmd` were handled.
    pub fn on(
        mut self,
        cmd: impl Into<String>,
        f: impl FnMut(&O, &Event) -> std::result::Result<(), BoxError> + 'a,
    ) -> Self {
        self.by_cmd.insert(cmd.into(), Box::new(f));
        self
    }

    /// Runs `f` after events whose cmd has no callback of its own.
    pub fn on_default(
        mut self,
        f: impl FnMut(&O, &Event) -> std::result::Result<(), BoxError> + 'a,
    ) -> Self {
        self.default = Some(Box::new(f));
        self
    }

    /// Runs `f` when executing an event failed.
    pub fn on_error(mut self, f: impl FnMut(&ExecutionError) + 'a) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }

    fn report(&mut self, error: &ExecutionError) {
        if let Some(f) = self.on_error.as_mut() {
            f(error);
        }
    }
}

/// Runs one stored event through `model` and `callbacks`, as
/// [`store_with`](crate::EventStore::store_with) and [`replay`](crate::EventStore::replay) do:
/// migrations, then the handler, then the callbacks. For code that reads the events itself (an
/// async replay, a loop of its own).
///
/// ```
/// use eventlite_core::{execute, Callbacks, EventStore, FnModel, MemoryBackend, NewEvent};
/// let store = EventStore::new(MemoryBackend::new());
/// let event = store.store(NewEvent::new("deposited").data(&5))?;
/// let mut total = FnModel::new(0i64).on("deposited", |total, _event, data| {
///     *total += data.get::<i64>()?;
///     Ok(*total)
/// });
/// assert_eq!(execute(&mut total, &mut Callbacks::new(), &event).ok(), Some(5));
/// # Ok::<(), eventlite_core::Error>(())
/// ```
pub fn execute<M: Model>(
    model: &mut M,
    callbacks: &mut Callbacks<'_, M::Output>,
    event: &Event,
) -> std::result::Result<M::Output, ExecutionError> {
    let fail = |stage: Stage, source: BoxError| ExecutionError {
        stage,
        message: source.to_string(),
        event: Box::new(event.clone()),
        source: Some(source),
    };
    let migrated = migrate(model.migrations(&event.cmd), event);
    let output = migrated
        .map_err(|(from_version, e)| fail(Stage::Migration { from_version }, e))
        .and_then(|data| {
            model
                .handle(event, &data)
                .map_err(|e| fail(Stage::Handler, e))
        });
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            callbacks.report(&error);
            model.error(&error);
            return Err(error);
        }
    };
    // Empty maps are the common case in replays: skip hashing the cmd for them.
    let by_cmd = if callbacks.by_cmd.is_empty() {
        None
    } else {
        callbacks.by_cmd.get_mut(event.cmd.as_str())
    };
    let callback = match by_cmd {
        Some(f) => Some(f),
        None => callbacks.default.as_mut(),
    };
    if let Some(f) = callback
        && let Err(e) = f(&output, event)
    {
        // The command itself succeeded: report the callback's failure as such, and keep the
        // output.
        callbacks.report(&fail(Stage::Callback, e));
    }
    model.done(event, &output);
    Ok(output)
}

fn migrate<'e>(
    migrations: &[Migration],
    event: &'e Event,
) -> std::result::Result<EventData<'e>, (u32, BoxError)> {
    let start = event.version.saturating_sub(1) as usize;
    if start >= migrations.len() {
        return Ok(EventData::Raw(&event.data));
    }
    let mut value: Value =
        serde_json::from_str(&event.data).map_err(|e| (event.version, Box::new(e) as BoxError))?;
    for (i, step) in migrations.iter().enumerate().skip(start) {
        value = step(value).map_err(|e| (i as u32 + 1, e))?;
    }
    Ok(EventData::Migrated(value))
}

type HandlerFn<'a, S, O> =
    Box<dyn FnMut(&mut S, &Event, &EventData<'_>) -> std::result::Result<O, BoxError> + Send + 'a>;

/// A [`Model`] built from closures, for dynamic cmd dispatch.
///
/// Events whose cmd has no handler go to the default handler; without one, their execution
/// fails with a [`Stage::Handler`] error (the event stays stored).
///
/// ```
/// use eventlite_core::{FnModel, Model};
/// let mut balance = FnModel::new(0i64)
///     .on("deposit", |total, _event, data| {
///         *total += data.get::<i64>()?;
///         Ok(*total)
///     })
///     .on_default(|total, _event, _data| Ok(*total));
/// assert_eq!(*balance.state(), 0);
/// ```
///
/// Handlers may borrow what outlives the model (`'a`), such as a local log of what happened:
///
/// ```
/// use eventlite_core::{Callbacks, EventStore, FnModel, MemoryBackend, NewEvent};
///
/// let store = EventStore::new(MemoryBackend::new());
/// store.store(NewEvent::new("opened"))?;
/// let mut seen = Vec::new();
/// let mut model = FnModel::new(()).on_default(|_, event, _| {
///     seen.push(event.cmd.clone());
///     Ok(())
/// });
/// store.replay(&mut model, 1.., &mut Callbacks::new())?;
/// drop(model);
/// assert_eq!(seen, ["opened"]);
/// # Ok::<(), eventlite_core::Error>(())
/// ```
pub struct FnModel<'a, S, O = ()> {
    state: S,
    handlers: HashMap<String, HandlerFn<'a, S, O>>,
    default: Option<HandlerFn<'a, S, O>>,
    migrations: HashMap<String, Vec<Migration>>,
}

impl<S: std::fmt::Debug, O> std::fmt::Debug for FnModel<'_, S, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnModel")
            .field("state", &self.state)
            .field("cmds", &self.handlers.keys().collect::<Vec<_>>())
            .field("default", &self.default.is_some())
            .finish()
    }
}

impl<'a, S, O> FnModel<'a, S, O> {
    /// A model over `state`, with no handlers yet.
    pub fn new(state: S) -> Self {
        FnModel {
            state,
            handlers: HashMap::new(),
            default: None,
            migrations: HashMap::new(),
        }
    }

    /// Handles events of `cmd` with `f`.
    pub fn on(
        mut self,
        cmd: impl Into<String>,
        f: impl FnMut(&mut S, &Event, &EventData<'_>) -> std::result::Result<O, BoxError> + Send + 'a,
    ) -> Self {
        self.handlers.insert(cmd.into(), Box::new(f));
        self
    }

    /// Handles events whose cmd has no handler of its own.
    pub fn on_default(
        mut self,
        f: impl FnMut(&mut S, &Event, &EventData<'_>) -> std::result::Result<O, BoxError> + Send + 'a,
    ) -> Self {
        self.default = Some(Box::new(f));
        self
    }

    /// Adds the next migration step for `cmd` (the first call upgrades version 1 to 2).
    pub fn migration(
        mut self,
        cmd: impl Into<String>,
        f: impl Fn(Value) -> std::result::Result<Value, BoxError> + Send + Sync + 'static,
    ) -> Self {
        self.migrations
            .entry(cmd.into())
            .or_default()
            .push(Box::new(f));
        self
    }

    /// The model's state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The model's state, mutably.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// Gives the state back.
    pub fn into_state(self) -> S {
        self.state
    }
}

impl<S, O> Model for FnModel<'_, S, O> {
    type Output = O;

    fn migrations(&self, cmd: &str) -> &[Migration] {
        if self.migrations.is_empty() {
            return &[];
        }
        self.migrations.get(cmd).map_or(&[], Vec::as_slice)
    }

    fn handle(&mut self, event: &Event, data: &EventData<'_>) -> std::result::Result<O, BoxError> {
        let own = if self.handlers.is_empty() {
            None
        } else {
            self.handlers.get_mut(event.cmd.as_str())
        };
        let handler = match own {
            Some(h) => h,
            None => match self.default.as_mut() {
                Some(h) => h,
                None => return Err(format!("no handler for cmd {:?}", event.cmd).into()),
            },
        };
        handler(&mut self.state, event, data)
    }
}
