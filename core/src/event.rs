//! Events as stored ([`Event`]) and as written by a caller ([`NewEvent`]).

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::query::Cursor;

/// A stored event. Immutable once stored: every read hands out its own copy (or a shared
/// `Arc` from the cache), never a handle into the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// Global position, assigned by the backend: strictly increasing, gap-free, from 1.
    pub id: u64,
    /// Schema version of `data` (1 for new events); drives migrations.
    pub version: u32,
    /// Milliseconds since the Unix epoch, from the store's clock when it was stored.
    pub datetime: i64,
    /// Who caused the event (may be empty).
    pub user: String,
    /// From where (may be empty).
    pub ip: String,
    /// The command / event type. Never empty.
    pub cmd: String,
    /// The payload, as JSON text.
    pub data: String,
    /// The transaction group this event belongs to: its parent's, the caller's, or for a new
    /// group a time-ordered UUID v7 (so the correlation index grows at its end).
    pub correlation_id: String,
    /// The event that caused this one.
    pub causation_id: Option<u64>,
    /// Free-form JSON object, as text.
    pub metadata: String,
    /// The aggregate stream, when the event was appended to one.
    pub stream: Option<String>,
    /// Position within `stream` (1 for its first event).
    pub stream_version: Option<u64>,
}

impl Event {
    /// Deserialises the payload into `T`.
    ///
    /// ```
    /// # use eventlite_core::Event;
    /// # let event = Event { id: 1, version: 1, datetime: 0, user: String::new(),
    /// #   ip: String::new(), cmd: "deposit".into(), data: r#"{"amount":5}"#.into(),
    /// #   correlation_id: "c".into(), causation_id: None, metadata: "{}".into(),
    /// #   stream: None, stream_version: None };
    /// #[derive(serde::Deserialize)]
    /// struct Deposit { amount: u64 }
    /// let deposit: Deposit = event.data()?;
    /// assert_eq!(deposit.amount, 5);
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn data<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.data)
            .map_err(|e| Error::decode(format!("data of event {}: {e}", self.id)).with_source(e))
    }

    /// The payload as a dynamic JSON value.
    pub fn data_value(&self) -> Result<serde_json::Value> {
        self.data()
    }

    /// Deserialises the metadata into `T`.
    pub fn metadata<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.metadata).map_err(|e| {
            Error::decode(format!("metadata of event {}: {e}", self.id)).with_source(e)
        })
    }

    /// A keyset cursor pointing just past this event (for any [`crate::Order`]).
    pub fn cursor(&self) -> Cursor {
        Cursor {
            id: self.id,
            datetime: self.datetime,
        }
    }
}

/// What a writer expects of a stream before its append (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpectedVersion {
    /// No check: append at whatever version the stream has.
    #[default]
    Any,
    /// The stream must have no events yet.
    NoStream,
    /// The stream's last event must have exactly this `stream_version`. Versions start at 1,
    /// so `Exact(0)` means the stream has no events yet, like [`NoStream`](Self::NoStream)
    /// (what a fresh aggregate at version 0 expects).
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// An event to be stored, built by the caller.
///
/// ```
/// use eventlite_core::{NewEvent, ExpectedVersion};
/// let event = NewEvent::new("deposit")
///     .data(&serde_json::json!({ "amount": 10 }))
///     .user("alice")
///     .stream("account-1", ExpectedVersion::NoStream);
/// assert_eq!(event.cmd(), "deposit");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub(crate) cmd: String,
    pub(crate) data: std::result::Result<String, SerializeError>,
    /// Whether `data` came from serde_json (valid by construction: no need to parse it again).
    pub(crate) data_serialized: bool,
    pub(crate) user: String,
    pub(crate) ip: String,
    pub(crate) version: u32,
    pub(crate) correlation_id: Option<String>,
    pub(crate) causation_id: Option<u64>,
    pub(crate) metadata: std::result::Result<String, SerializeError>,
    /// Whether `metadata` came from serde_json (valid JSON; only its kind needs checking).
    pub(crate) metadata_serialized: bool,
    pub(crate) stream: Option<(String, ExpectedVersion)>,
    /// A datetime given by the caller (an import), instead of the store's clock.
    pub(crate) recorded_at: Option<i64>,
}

impl NewEvent {
    /// A new event of type `cmd`, with data `{}`, version 1 and empty user and ip.
    pub fn new(cmd: impl Into<String>) -> Self {
        NewEvent {
            cmd: cmd.into(),
            data: Ok("{}".to_owned()),
            data_serialized: true,
            user: String::new(),
            ip: String::new(),
            version: 1,
            correlation_id: None,
            causation_id: None,
            metadata: Ok("{}".to_owned()),
            metadata_serialized: true,
            stream: None,
            recorded_at: None,
        }
    }

    /// Sets the payload from any serialisable value. A value that cannot be serialised to
    /// JSON makes the store call fail with [`Error::InvalidEvent`].
    pub fn data<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.data = serde_json::to_string(data).map_err(SerializeError::new);
        self.data_serialized = true;
        self
    }

    /// Sets the payload from JSON text, stored byte for byte once validated.
    pub fn data_json(mut self, json: impl Into<String>) -> Self {
        self.data = Ok(json.into());
        self.data_serialized = false;
        self
    }

    /// Sets the payload from JSON that serde_json has already checked (a field read as a
    /// [`RawValue`](serde_json::value::RawValue)): stored byte for byte, without copying or
    /// parsing it again. What an importer reading JSON Lines wants.
    pub fn data_raw(mut self, json: Box<serde_json::value::RawValue>) -> Self {
        self.data = Ok(String::from(Box::<str>::from(json)));
        self.data_serialized = true;
        self
    }

    /// Sets who caused the event.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Sets where the event came from.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = ip.into();
        self
    }

    /// Sets the schema version of the data (must be at least 1).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Puts the event into an existing transaction group.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Names the event that caused this one. Without an explicit correlation id, the event
    /// joins its parent's transaction group.
    pub fn causation_id(mut self, id: u64) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the metadata from a serialisable value, which must serialise to a JSON object.
    pub fn metadata<T: Serialize + ?Sized>(mut self, metadata: &T) -> Self {
        self.metadata = serde_json::to_string(metadata).map_err(SerializeError::new);
        self.metadata_serialized = true;
        self
    }

    /// Sets the metadata from JSON text (must be an object).
    pub fn metadata_json(mut self, json: impl Into<String>) -> Self {
        self.metadata = Ok(json.into());
        self.metadata_serialized = false;
        self
    }

    /// Sets the metadata from JSON that serde_json has already checked (see
    /// [`Self::data_raw`]); it must be an object.
    pub fn metadata_raw(mut self, json: Box<serde_json::value::RawValue>) -> Self {
        self.metadata = Ok(String::from(Box::<str>::from(json)));
        self.metadata_serialized = true;
        self
    }

    /// Stamps the event with `ms` (since the Unix epoch) instead of the store's clock: for
    /// bringing history over from elsewhere (see `eventlite::import`), not for new events.
    pub fn recorded_at(mut self, ms: i64) -> Self {
        self.recorded_at = Some(ms);
        self
    }

    /// Appends to an aggregate stream, checking `expected` atomically with the append.
    pub fn stream(mut self, stream: impl Into<String>, expected: ExpectedVersion) -> Self {
        self.stream = Some((stream.into(), expected));
        self
    }

    /// The command.
    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// Puts the event into `context`: the context's correlation id and causation win over
    /// the event's own, and its metadata is merged into the event's, the context's keys
    /// winning (upstream's `storeWithContext`). The store still checks the result as any
    /// event: an unknown causation is [`Error::UnknownCausation`](crate::Error).
    ///
    /// Call it last: a builder call after it (`.metadata(…)`, `.correlation_id(…)`) replaces
    /// what the context set. A context with a causation but no correlation id leaves an event
    /// that names its own correlation id in that group (as upstream does); without one, the
    /// event joins its cause's group. Merged metadata is written anew, its keys in order; the
    /// event's own metadata must then be a JSON object that serde_json reads into a map
    /// (otherwise the store refuses the event with [`Error::InvalidEvent`](crate::Error)).
    pub fn with_context(mut self, context: &EventContext) -> Self {
        if let Some(id) = &context.correlation_id {
            self.correlation_id = Some(id.clone());
        }
        if let Some(id) = context.causation_id {
            self.causation_id = Some(id);
        }
        match &context.metadata {
            Err(e) => {
                self.metadata = Err(e.clone());
            }
            Ok(extra) if extra.is_empty() => {}
            Ok(extra) => {
                if let Ok(text) = &self.metadata {
                    // Metadata the merge cannot read is refused rather than stored without
                    // the context's keys.
                    self.metadata =
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                            .map(|mut merged| {
                                merged.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                                merged
                            })
                            .and_then(|merged| serde_json::to_string(&merged))
                            .map_err(SerializeError::new);
                    self.metadata_serialized = true;
                }
            }
        }
        self
    }
}

/// The context an event is stored in, usually that of the event a handler reacts to: its
/// correlation id, its causation (the event that led to it) and metadata to carry along. See
/// [`NewEvent::with_context`] and
/// [`EventStore::store_with_context`](crate::EventStore::store_with_context).
///
/// ```
/// use eventlite_core::{EventContext, EventStore, MemoryBackend, NewEvent};
/// let store = EventStore::new(MemoryBackend::new());
/// let order = store.store(NewEvent::new("order_placed").metadata(&serde_json::json!({"tenant": "a"})))?;
/// // A handler reacting to the order: its event joins the order's group, caused by it.
/// let context = EventContext::caused_by(&order).metadata(&serde_json::json!({"handler": "mailer"}));
/// let mail = store.store_with_context(NewEvent::new("mail_sent"), &context)?;
/// assert_eq!(mail.correlation_id, order.correlation_id);
/// assert_eq!(mail.causation_id, Some(order.id));
/// assert_eq!(mail.metadata, r#"{"handler":"mailer"}"#);
/// # Ok::<(), eventlite_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EventContext {
    correlation_id: Option<String>,
    causation_id: Option<u64>,
    metadata: std::result::Result<serde_json::Map<String, serde_json::Value>, SerializeError>,
}

impl Default for EventContext {
    fn default() -> Self {
        EventContext::new()
    }
}

impl EventContext {
    /// An empty context: it changes nothing.
    pub fn new() -> Self {
        EventContext {
            correlation_id: None,
            causation_id: None,
            metadata: Ok(serde_json::Map::new()),
        }
    }

    /// The context of a reaction to `event`: its group, caused by it.
    pub fn caused_by(event: &Event) -> Self {
        EventContext::new()
            .correlation_id(event.correlation_id.clone())
            .causation_id(event.id)
    }

    /// The transaction group.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The event that caused the events stored in this context (upstream's `causationId`
    /// or `parentEventId`).
    pub fn causation_id(mut self, id: u64) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Metadata merged into each event's own, these keys winning. It must serialise to a JSON
    /// object; anything else makes the store call fail with [`Error::InvalidEvent`].
    pub fn metadata<T: Serialize + ?Sized>(mut self, metadata: &T) -> Self {
        self.metadata = match serde_json::to_value(metadata) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(SerializeError::new(
                <serde_json::Error as serde::ser::Error>::custom(
                    "context metadata must be a JSON object",
                ),
            )),
            Err(e) => Err(SerializeError::new(e)),
        };
        self
    }
}

/// serde_json's error from serialising a payload, kept until the store call reports it (as the
/// source of its [`Error::InvalidEvent`]).
#[derive(Debug, Clone)]
pub(crate) struct SerializeError(pub(crate) Arc<serde_json::Error>);

impl SerializeError {
    fn new(e: serde_json::Error) -> Self {
        SerializeError(Arc::new(e))
    }
}

impl PartialEq for SerializeError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}
