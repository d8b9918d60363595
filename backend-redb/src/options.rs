//! Engine options.

use std::time::Duration;

use eventlite_core::{Durability, IndexConfig};

/// How a [`crate::RedbBackend`] opens its file.
///
/// `Durability::Relaxed` on redb commits without fsync (`redb::Durability::None`), which redb
/// loses on a process crash as well as on a power loss. To bound that loss, a relaxed store
/// makes a durable commit after at most `relaxed_max_commits` relaxed appends (calls; one group
/// commit carries several), and a background
/// thread starts one when the oldest relaxed commit is `relaxed_max_delay` old. A crash loses
/// at most the relaxed commits acknowledged within `relaxed_max_delay` plus the time one flush
/// (an fsync) takes before it, and never more than `relaxed_max_commits - 1` of them. (A
/// machine too loaded to run the flush thread on time stretches the window by that delay.)
///
/// ```
/// use eventlite_redb::RedbOptions;
/// use eventlite_core::Durability;
/// let options = RedbOptions { durability: Durability::Relaxed, ..RedbOptions::default() };
/// assert_eq!(options.relaxed_max_commits, 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedbOptions {
    /// Which indexes the file keeps (made to match at open, back-filling new ones).
    pub indexes: IndexConfig,
    /// What a successful append promises.
    pub durability: Durability,
    /// redb's page cache, in bytes (default 64 MiB; filled as pages are read, so a small store
    /// uses less).
    pub cache_size: usize,
    /// Relaxed mode: a durable commit after at most this many relaxed appends (at least 1).
    pub relaxed_max_commits: u32,
    /// Relaxed mode: a durable commit starts when the oldest relaxed one is this old.
    pub relaxed_max_delay: Duration,
    /// Check every page of an existing file (redb's `check_integrity`) before using it
    /// (default on; about 35 ms for a 70 MB store here). redb can abort the process — a panic
    /// while unwinding from a panic — when it writes to some damaged files; checking first
    /// turns that damage into [`eventlite_core::Error::Corrupt`] at open.
    pub verify_on_open: bool,
    /// Open an existing store with the indexes its file has, whatever `indexes` says: none is
    /// built or deleted (default off). Tools that look into a store want this. A new store
    /// still gets `indexes`, but an existing redb file without EventLite's tables is refused
    /// with [`eventlite_core::Error::NotAStore`] instead of being made one.
    pub indexes_as_found: bool,
    /// Open an existing store without writing to it (default off), through redb's read-only
    /// handle: nothing is created, migrated or reconciled (its indexes are taken as found),
    /// and every write is refused with [`eventlite_core::Error::ReadOnly`]. A missing store is
    /// [`eventlite_core::Error::NotFound`]; a file that needs redb's repair (after a crash
    /// while it was written) cannot be opened read-only, and the error says so. redb's
    /// whole-file check (`verify_on_open`) needs a writable handle and does not run: pages
    /// are still checked as they are read, and events by their checksums.
    pub read_only: bool,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            indexes: IndexConfig::default(),
            durability: Durability::Immediate,
            cache_size: 64 * 1024 * 1024,
            relaxed_max_commits: 64,
            relaxed_max_delay: Duration::from_millis(100),
            verify_on_open: true,
            indexes_as_found: false,
            read_only: false,
        }
    }
}
