//! Engine options.

use std::time::Duration;

use eventlite_core::{Durability, IndexConfig};

/// SQLite's journal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JournalMode {
    /// Write-ahead log: readers never block the writer, commits append to the log. The
    /// guide's recommendation (about 4x the writes of `Delete`).
    #[default]
    Wal,
    /// The rollback journal, SQLite's own default; kept for comparison.
    Delete,
}

impl JournalMode {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            JournalMode::Wal => "WAL",
            JournalMode::Delete => "DELETE",
        }
    }
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Synchronous {
    /// No fsync at all: a power loss (or, in DELETE mode, an OS crash) can corrupt the file.
    /// Only when asked for.
    Off,
    /// In WAL mode: fsync at checkpoints only; survives a process crash, a power loss may lose
    /// the last commits ([`Durability::Relaxed`]).
    Normal,
    /// fsync on every commit ([`Durability::Immediate`]).
    Full,
}

impl Synchronous {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How a [`crate::SqliteBackend`] opens its file.
///
/// ```
/// use eventlite_sqlite::{SqliteOptions, JournalMode};
/// use eventlite_core::{Durability, IndexConfig};
/// let options = SqliteOptions {
///     durability: Durability::Relaxed,
///     indexes: IndexConfig::balanced(),
///     ..SqliteOptions::default()
/// };
/// assert_eq!(options.journal_mode, JournalMode::Wal);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqliteOptions {
    /// Which indexes the file keeps (made to match at open).
    pub indexes: IndexConfig,
    /// What a successful append promises; picks `synchronous` unless that is set.
    pub durability: Durability,
    /// The journal mode (WAL by default).
    pub journal_mode: JournalMode,
    /// Overrides the `synchronous` level that `durability` implies (FULL for `Immediate`,
    /// NORMAL for `Relaxed`). `Some(Off)` is the only way to get no fsync at all.
    pub synchronous: Option<Synchronous>,
    /// Page cache per connection, in KiB (default 4 MiB; the writer and each pooled reader
    /// have one). Pages beyond it come from the operating system's file cache, at about a
    /// microsecond each. A service that can spare the memory and does many random gets from a
    /// big store gets them faster with more (64 MiB and a 256 MiB
    /// [`mmap_size`](Self::mmap_size): about 1.3× the gets per second on a 100,000-event
    /// store, with stream loads and whole-log reads no faster; see the memory section of
    /// docs/benchmarks.md).
    pub cache_size_kib: u32,
    /// Bytes of the file mapped into memory for reads (default 0: off). Mapped pages count in
    /// the process's resident memory as it reads them (the whole file, for a read of the whole
    /// log), which small services do not want; turn it on (256 MiB, say) for faster gets from
    /// big stores on a machine with memory to spare.
    pub mmap_size: u64,
    /// How long a call waits for a lock held by another connection or process before it
    /// fails with [`eventlite_core::Error::Busy`] (default 5 s).
    pub busy_timeout: Duration,
    /// Reader connections kept open for reuse (default 4; more are opened on demand).
    pub max_idle_readers: usize,
    /// Open a store whose write-ahead log is damaged anyway (default off). SQLite then ends
    /// the log at the damage, dropping the committed transactions after it, and the next
    /// append reuses their ids. Off, such a store is refused with
    /// [`eventlite_core::Error::Corrupt`] and left as it was, so that its files can be saved
    /// first; turn it on to accept the loss (also after a power loss under `Relaxed`, which
    /// can tear several unsynced transactions).
    pub truncate_damaged_log: bool,
    /// Open an existing store with the indexes its file has, whatever `indexes` says: none is
    /// created or dropped (default off). Tools that look into a store want this. A new store
    /// still gets `indexes`, but an existing database without EventLite's tables is refused
    /// with [`eventlite_core::Error::NotAStore`] instead of being made one.
    pub indexes_as_found: bool,
    /// Open an existing store without writing to it (default off): the file is opened
    /// read-only, nothing is created, migrated or reconciled (its indexes are taken as
    /// found), no checkpoint runs, and every write is refused with
    /// [`eventlite_core::Error::ReadOnly`]. A missing store is
    /// [`eventlite_core::Error::NotFound`]. SQLite may still make the log's side files
    /// (`-wal`, `-shm`) next to a store in WAL mode when they are missing, as any reader does.
    pub read_only: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            indexes: IndexConfig::default(),
            durability: Durability::Immediate,
            journal_mode: JournalMode::Wal,
            synchronous: None,
            cache_size_kib: 4 * 1024,
            mmap_size: 0,
            busy_timeout: Duration::from_secs(5),
            max_idle_readers: 4,
            indexes_as_found: false,
            truncate_damaged_log: false,
            read_only: false,
        }
    }
}

impl SqliteOptions {
    /// The `synchronous` level in force.
    pub fn effective_synchronous(&self) -> Synchronous {
        self.synchronous.unwrap_or(match self.durability {
            Durability::Immediate => Synchronous::Full,
            Durability::Relaxed => Synchronous::Normal,
        })
    }
}
