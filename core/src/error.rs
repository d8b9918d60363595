//! The one error type every EventLite crate returns.

use crate::event::ExpectedVersion;

/// A boxed error from user code (model handlers, migrations, callbacks) or from an engine.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across EventLite.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in EventLite.
///
/// The variants are what a caller can act on: fix the input, retry after a conflict, free disk
/// space, or give up on a damaged file. Engine-specific detail travels in the message or the
/// boxed source. New variants may be added, hence `#[non_exhaustive]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event was rejected before anything was stored (empty cmd, malformed JSON,
    /// non-object metadata, version 0, over the size limit).
    #[error("invalid event: {reason}")]
    InvalidEvent {
        /// Why the event was rejected.
        reason: String,
    },
    /// An argument other than an event was out of range (a page limit of 0, an empty bulk).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
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
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The file exists but is not an EventLite store of this engine (or of a newer layout).
    #[error("not an EventLite store: {0}")]
    NotAStore(String),
    /// The store cannot be written: a read-only file, directory or mount, or missing permission.
    #[error("store is read-only: {0}")]
    ReadOnly(String),
    /// The device or a file-size limit is full; nothing of the failed call was stored.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The store is locked by another process or connection and did not free up in time.
    #[error("store is busy: {0}")]
    Busy(String),
    /// The engine is unreachable (a lost server connection, a closed database).
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// Event data or a snapshot state could not be (de)serialised to the requested type.
    #[error("decode error: {0}")]
    Decode(String),
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

impl Error {
    /// Shorthand for [`Error::InvalidEvent`].
    pub fn invalid_event(reason: impl Into<String>) -> Self {
        Error::InvalidEvent {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Backend`] with a source.
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

    /// Maps an I/O error to the variant a caller can act on (full disk, read-only, …).
    pub fn from_io(engine: &'static str, context: &str, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let msg = format!("{context}: {err}");
        match err.kind() {
            K::StorageFull | K::FileTooLarge | K::QuotaExceeded => Error::StorageFull(msg),
            K::ReadOnlyFilesystem | K::PermissionDenied => Error::ReadOnly(msg),
            _ => match err.raw_os_error() {
                // EFBIG (27) is reported by the kernel when RLIMIT_FSIZE is hit.
                Some(27) | Some(28) => Error::StorageFull(msg),
                _ => Error::backend(engine, msg, err),
            },
        }
    }
}
