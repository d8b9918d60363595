//! The engine-author interface: what a storage engine implements, and the pieces every engine
//! shares so that each algorithm lives in one place.
//!
//! Users of EventLite need none of this: they open a store through an engine's constructor
//! and call [`EventStore`](crate::EventStore). An engine implements the capability traits
//! ([`EventLog`], [`SnapshotStore`], [`PositionStore`], [`Notifications`], [`Maintenance`]);
//! together they make a
//! [`Backend`](crate::Backend), which `EventStore` runs on. The conformance suite
//! (`eventlite-conformance`) checks that an engine keeps every contract written here.
//!
//! Shared pieces:
//! - [`PendingEvent`]: a validated event as `append` receives it;
//! - [`EventFields`]: an event's fields borrowed from the engine's storage, its checksum, and
//!   the one way of turning them into an [`Event`](crate::Event), owned or in place;
//! - [`StreamVersions`]: the optimistic-concurrency check, run inside the append transaction;
//! - [`GroupCommit`]: concurrent appends sharing one transaction and one sync;
//! - [`CommitSignal`]: how an engine wakes the subscriptions waiting for its commits;
//! - [`planner`]: index choice and `explain` for engines without a planner of their own;
//! - [`files`]: preparing a local store file without touching a foreign one;
//! - [`io_error`]: an I/O error as the [`Error`] variant a caller can act on.

mod fields;
pub mod files;
mod group;
mod hints;
mod pending;
pub mod planner;
mod signal;
mod streams;

pub use crate::backend::{
    EventLog, Maintenance, Notifications, PositionStore, SnapshotStore, WaitingStore,
};
pub use crate::wait::{NewWaiting, WaitKey, WaitingRecord, check_closing_state, keys_of};
pub use fields::{EventFields, Text, row_checksum};
pub use group::{
    Claim, GroupCommit, GroupEntry, Numbered, finish_group, group_events, number_group,
};
pub use hints::WaitHints;
pub use pending::PendingEvent;
pub use signal::{CommitListener, CommitSignal, Seen, Wakeup, Watcher};
pub use streams::StreamVersions;

use crate::error::Error;

/// Maps an I/O error to the variant a caller can act on (a full disk, a read-only file),
/// keeping it as the source; `context` says what was being done.
pub fn io_error(engine: &'static str, context: &str, err: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let message = format!("{context}: {err}");
    match err.kind() {
        // The kernel reports a write past RLIMIT_FSIZE as EFBIG (FileTooLarge).
        K::StorageFull | K::FileTooLarge | K::QuotaExceeded => {
            Error::storage_full(message).with_source(err)
        }
        K::ReadOnlyFilesystem | K::PermissionDenied => Error::read_only(message).with_source(err),
        _ => Error::backend(engine, message, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ENOSPC, EFBIG (a file-size limit) and EACCES, as the kernel reports them.
    #[cfg(target_os = "linux")]
    #[test]
    fn io_errors_map_by_kind_and_keep_their_source() {
        use std::error::Error as _;
        for (errno, full) in [(28, true), (27, true), (13, false)] {
            let e = io_error("x", "writing", std::io::Error::from_raw_os_error(errno));
            match (&e, full) {
                (Error::StorageFull { .. }, true) | (Error::ReadOnly { .. }, false) => {}
                _ => panic!("errno {errno} gave {e:?}"),
            }
            assert!(e.source().is_some());
        }
    }
}
