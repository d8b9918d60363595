//! The one error type every EventLite crate returns.

use crate::event::ExpectedVersion;

/// A boxed error from user code (model handlers, migrations, callbacks) or from an engine.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across EventLite.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in EventLite.
///
/// The variants are what a caller can act on: fix the input, retry after a conflict, free disk
/// space, or give up on a damaged file. Where an error has a cause (the engine's own error, an
/// I/O error, serde's error) it is kept as the [`source`](std::error::Error::source), so
/// `anyhow`'s `{:#}` or a walk of the chain shows it; the message names what failed, in the
/// cause's words too. New variants may be added, hence `#[non_exhaustive]`.
///
/// ```
/// use eventlite_core::{Error, EventStore, MemoryBackend, NewEvent};
///
/// let store = EventStore::new(MemoryBackend::new());
/// let err = store.store(NewEvent::new("order_placed").data_json("{not json")).unwrap_err();
/// assert!(matches!(err, Error::InvalidEvent { .. }));
/// // serde_json's own error travels along.
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event was rejected before anything was stored (empty cmd, malformed JSON,
    /// non-object metadata, version 0, over the size limit).
    #[error("invalid event: {reason}")]
    InvalidEvent {
        /// Why the event was rejected.
        reason: String,
        /// What rejected it (serde_json's parse error, for instance), when something did.
        #[source]
        source: Option<BoxError>,
    },
    /// An argument other than an event was out of range (a page limit of 0, an empty bulk).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A wait condition was malformed (an unknown key, a bad `where`, an empty condition
    /// list, a timeout already past): nothing was parked.
    #[error("invalid wait condition: {0}")]
    InvalidCondition(String),
    /// `causation_id` names an event that does not exist.
    #[error("unknown causation id {0}: no such event")]
    UnknownCausation(u64),
    /// Optimistic concurrency: the stream was not at the expected version. Nothing of the batch
    /// was stored.
    #[error("conflict on stream {stream:?}: expected {expected}, actual {}", fmt_version(.actual))]
    Conflict {
        /// The stream that was written to.
        stream: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's version at the time of the append (`None`: the stream has no events).
        actual: Option<u64>,
    },
    /// A thing that must exist does not (an event named by a snapshot, for instance).
    #[error("not found: {0}")]
    NotFound(String),
    /// The stored data failed a consistency check: a damaged file, a bad checksum, an
    /// undecodable row.
    #[error("corrupt store: {message}")]
    Corrupt {
        /// What was found damaged.
        message: String,
        /// The engine's report of it, when the engine found it.
        #[source]
        source: Option<BoxError>,
    },
    /// The file exists but is not an EventLite store of this engine (or of a newer layout).
    #[error("not an EventLite store: {message}")]
    NotAStore {
        /// What the file is instead, as far as can be told.
        message: String,
        /// The engine's report, when it made one.
        #[source]
        source: Option<BoxError>,
    },
    /// The store cannot be written: a read-only file, directory or mount, or missing permission.
    #[error("store is read-only: {message}")]
    ReadOnly {
        /// What could not be written.
        message: String,
        /// The I/O or engine error.
        #[source]
        source: Option<BoxError>,
    },
    /// The device or a file-size limit is full; nothing of the failed call was stored.
    #[error("storage full: {message}")]
    StorageFull {
        /// What ran out.
        message: String,
        /// The I/O or engine error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store is locked by another process or connection and did not free up in time.
    #[error("store is busy: {message}")]
    Busy {
        /// What was locked.
        message: String,
        /// The engine's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The engine is unreachable (a lost server connection, a closed database).
    #[error("engine unavailable: {message}")]
    Unavailable {
        /// Why.
        message: String,
        /// The engine's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The connection to a server engine was lost while it committed an append: the append
    /// may or may not be stored, and retrying blindly could store it twice. Find out by
    /// reading: the stream's version (an append with an expected version can simply be retried,
    /// as it fails with [`Error::Conflict`] if the first attempt landed) or the events after the
    /// last id seen. Embedded engines never return it.
    #[error("commit outcome unknown: {message}")]
    CommitOutcomeUnknown {
        /// What was being committed, and what broke.
        message: String,
        /// The engine's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Event data or a snapshot state could not be deserialised to the requested type.
    #[error("decode error: {message}")]
    Decode {
        /// What could not be decoded.
        message: String,
        /// serde's (or bincode's) error.
        #[source]
        source: Option<BoxError>,
    },
    /// A value could not be serialised (a snapshot state whose `Serialize` failed).
    #[error("encode error: {message}")]
    Encode {
        /// What could not be encoded.
        message: String,
        /// The serialiser's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A projection stopped on an event its model failed on (its
    /// [`FailurePolicy`](crate::FailurePolicy) says stop); its position stays before the event.
    #[error("projection {projection:?} stopped at event {event_id}: {message}")]
    ProjectionFailed {
        /// The projection.
        projection: String,
        /// The event it failed on.
        event_id: u64,
        /// The failure (the model's error, or the panic's message).
        message: String,
        /// The model's (or handler's) error; none for a panic.
        #[source]
        source: Option<BoxError>,
    },
    /// EventLite or an engine broke its own contract (an engine returned fewer events than it
    /// was asked to append, say). A bug: please report it.
    #[error("internal error: {0}")]
    Internal(String),
    /// Any other engine failure, with its source.
    #[error("{engine} backend error: {message}")]
    Backend {
        /// Which engine (`"sqlite"`, `"redb"`, …).
        engine: &'static str,
        /// What failed.
        message: String,
        /// The engine's own error.
        #[source]
        source: Option<BoxError>,
    },
}

fn fmt_version(v: &Option<u64>) -> String {
    match v {
        Some(n) => n.to_string(),
        None => "no stream".to_owned(),
    }
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $variant:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(message: impl Into<String>) -> Self {
            Error::$variant { message: message.into(), source: None }
        }
    )*};
}

impl Error {
    /// [`Error::InvalidEvent`] without a source.
    pub fn invalid_event(reason: impl Into<String>) -> Self {
        Error::InvalidEvent {
            reason: reason.into(),
            source: None,
        }
    }

    constructors! {
        /// [`Error::Corrupt`] without a source (add one with [`Error::with_source`]).
        corrupt => Corrupt;
        /// [`Error::NotAStore`] without a source (add one with [`Error::with_source`]).
        not_a_store => NotAStore;
        /// [`Error::ReadOnly`] without a source (add one with [`Error::with_source`]).
        read_only => ReadOnly;
        /// [`Error::StorageFull`] without a source (add one with [`Error::with_source`]).
        storage_full => StorageFull;
        /// [`Error::Busy`] without a source (add one with [`Error::with_source`]).
        busy => Busy;
        /// [`Error::Unavailable`] without a source (add one with [`Error::with_source`]).
        unavailable => Unavailable;
        /// [`Error::CommitOutcomeUnknown`] without a source (add one with [`Error::with_source`]).
        commit_outcome_unknown => CommitOutcomeUnknown;
        /// [`Error::Decode`] without a source (add one with [`Error::with_source`]).
        decode => Decode;
        /// [`Error::Encode`] without a source (add one with [`Error::with_source`]).
        encode => Encode;
    }

    /// [`Error::Backend`] with a source.
    pub fn backend(
        engine: &'static str,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            engine,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The same error with `cause` as its source. Variants without a source field (invalid
    /// arguments, conflicts, unknown causations, not found, internal) are returned unchanged.
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        match &mut self {
            Error::InvalidEvent { source, .. }
            | Error::Corrupt { source, .. }
            | Error::NotAStore { source, .. }
            | Error::ReadOnly { source, .. }
            | Error::StorageFull { source, .. }
            | Error::Busy { source, .. }
            | Error::Unavailable { source, .. }
            | Error::CommitOutcomeUnknown { source, .. }
            | Error::Decode { source, .. }
            | Error::Encode { source, .. }
            | Error::ProjectionFailed { source, .. }
            | Error::Backend { source, .. } => *source = Some(cause.into()),
            Error::InvalidArgument(_)
            | Error::InvalidCondition(_)
            | Error::UnknownCausation(_)
            | Error::Conflict { .. }
            | Error::NotFound(_)
            | Error::Internal(_) => {}
        }
        self
    }

    /// The error for each caller that one failure reached (the writers of a group commit):
    /// the same variant and fields, with a source that leads to the original's (walk
    /// `source()`: the original cause, an `std::io::Error` say, is next in the chain).
    pub(crate) fn shared(original: &std::sync::Arc<Error>) -> Error {
        /// The original error, standing in for its own cause.
        #[derive(Debug)]
        struct Shared(std::sync::Arc<Error>);
        impl std::fmt::Display for Shared {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "one failure for the whole group commit")
            }
        }
        impl std::error::Error for Shared {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                std::error::Error::source(&*self.0)
            }
        }
        let cause = |s: &Option<BoxError>| -> Option<BoxError> {
            s.as_ref()
                .map(|_| Box::new(Shared(std::sync::Arc::clone(original))) as BoxError)
        };
        match &**original {
            Error::InvalidEvent { reason, source } => Error::InvalidEvent {
                reason: reason.clone(),
                source: cause(source),
            },
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::InvalidCondition(m) => Error::InvalidCondition(m.clone()),
            Error::UnknownCausation(id) => Error::UnknownCausation(*id),
            Error::Conflict {
                stream,
                expected,
                actual,
            } => Error::Conflict {
                stream: stream.clone(),
                expected: *expected,
                actual: *actual,
            },
            Error::NotFound(m) => Error::NotFound(m.clone()),
            Error::Corrupt { message, source } => Error::Corrupt {
                message: message.clone(),
                source: cause(source),
            },
            Error::NotAStore { message, source } => Error::NotAStore {
                message: message.clone(),
                source: cause(source),
            },
            Error::ReadOnly { message, source } => Error::ReadOnly {
                message: message.clone(),
                source: cause(source),
            },
            Error::StorageFull { message, source } => Error::StorageFull {
                message: message.clone(),
                source: cause(source),
            },
            Error::Busy { message, source } => Error::Busy {
                message: message.clone(),
                source: cause(source),
            },
            Error::Unavailable { message, source } => Error::Unavailable {
                message: message.clone(),
                source: cause(source),
            },
            Error::CommitOutcomeUnknown { message, source } => Error::CommitOutcomeUnknown {
                message: message.clone(),
                source: cause(source),
            },
            Error::Decode { message, source } => Error::Decode {
                message: message.clone(),
                source: cause(source),
            },
            Error::Encode { message, source } => Error::Encode {
                message: message.clone(),
                source: cause(source),
            },
            Error::ProjectionFailed {
                projection,
                event_id,
                message,
                source,
            } => Error::ProjectionFailed {
                projection: projection.clone(),
                event_id: *event_id,
                message: message.clone(),
                source: cause(source),
            },
            Error::Internal(m) => Error::Internal(m.clone()),
            Error::Backend {
                engine,
                message,
                source,
            } => Error::Backend {
                engine,
                message: message.clone(),
                source: cause(source),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn with_source_keeps_the_cause_and_the_message() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::corrupt("event 7: checksum mismatch").with_source(io);
        assert_eq!(e.to_string(), "corrupt store: event 7: checksum mismatch");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("disk on fire")
        );
        // Variants without a source ignore it rather than lose the variant.
        let e = Error::NotFound("x".into()).with_source(std::io::Error::other("y"));
        assert!(matches!(e, Error::NotFound(_)) && e.source().is_none());
    }

    #[test]
    fn a_shared_error_keeps_variant_message_and_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
        let original = std::sync::Arc::new(Error::storage_full("appending").with_source(io));
        let copy = Error::shared(&original);
        assert!(matches!(copy, Error::StorageFull { .. }));
        assert_eq!(copy.to_string(), original.to_string());
        let mut chain = copy.source();
        let mut found = false;
        while let Some(c) = chain {
            found |= c
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull);
            chain = c.source();
        }
        assert!(found, "the io::Error is in the chain");
    }
}
