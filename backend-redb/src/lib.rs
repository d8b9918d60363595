//! # eventlite-redb
//!
//! The redb engine for [EventLite](eventlite_core): events in a `u64 -> row` table (bincode 2
//! with a format byte), and one secondary table per enabled index, keyed by a tuple that ends
//! in the event id, so that a prefix range yields ids in order (`cmd`, `user`, `datetime` and
//! `user_datetime` put the datetime before the id, for newest-first pages). Every append writes
//! the event and all its index entries in one write transaction. A planner picks the most
//! selective enabled index; offset and cursor pages, counts and streams run on range scans.
//!
//! ```
//! use eventlite_core::{EventStore, NewEvent, IndexConfig, Filter, Order, Query};
//! use eventlite_redb::{RedbBackend, RedbOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let options = RedbOptions { indexes: IndexConfig::all(), ..RedbOptions::default() };
//! let store = EventStore::new(RedbBackend::open(dir.path().join("events.redb"), options)?);
//! store.store(NewEvent::new("hello").user("ada"))?;
//! let plan = store.explain(&Query::new(Filter::user("ada"), Order::DatetimeDesc))?;
//! assert!(plan.index.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod exec;
mod options;
mod waiting;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use eventlite_core::spi::files::create_or_find_store;
use eventlite_core::spi::{
    CommitSignal, EventFields, EventLog, GroupCommit, GroupEntry, Maintenance, Notifications,
    PendingEvent, PositionStore, SnapshotStore, StreamVersions, finish_group, group_events,
    io_error,
};
use eventlite_core::{
    Durability, Error, Event, FailedEvent, Filter, IndexConfig, IndexName, Position, Query,
    QueryPlan, Result, Snapshot,
};
/// The redb crate this engine is built on, for what EventLite does not wrap (compacting a
/// closed file, say).
pub use redb;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

pub use options::RedbOptions;

const ENGINE: &str = "redb";
const FORMAT: &str = "eventlite-redb";
/// The layout this code writes; files with a greater one are refused.
const SCHEMA_VERSION: u32 = 1;

pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, &str> = TableDefinition::new("eventlite_meta");
const STREAMS: TableDefinition<&str, u64> = TableDefinition::new("streams");
pub(crate) const STREAM_IDX: TableDefinition<(&str, u64), ()> = TableDefinition::new("idx_stream");
const SNAPSHOTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("snapshots");
/// name -> (position, updated at).
const POSITIONS: TableDefinition<&str, (u64, i64)> = TableDefinition::new("positions");
/// (projection, event id) -> (attempts, error, at).
const FAILURES: TableDefinition<(&str, u64), (u32, &str, i64)> =
    TableDefinition::new("projection_failures");
pub(crate) const IDX_CORRELATION: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("idx_correlation_id");
pub(crate) const IDX_CAUSATION: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("idx_causation_id");
pub(crate) const IDX_CMD: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("idx_cmd");
pub(crate) const IDX_USER: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("idx_user");
pub(crate) const IDX_DATETIME: TableDefinition<(i64, u64), ()> =
    TableDefinition::new("idx_datetime");
pub(crate) const IDX_VERSION: TableDefinition<(u32, u64), ()> = TableDefinition::new("idx_version");
pub(crate) const IDX_CORRELATION_CMD: TableDefinition<(&str, &str, u64), ()> =
    TableDefinition::new("idx_composite_correlation_cmd");
pub(crate) const IDX_USER_DATETIME: TableDefinition<(&str, i64, u64), ()> =
    TableDefinition::new("idx_composite_user_datetime");

/// Maps redb's errors to the variants a caller can act on, keeping redb's error as the source.
pub(crate) fn map_err(e: impl Into<redb::Error>) -> Error {
    let e: redb::Error = e.into();
    let e = match e {
        redb::Error::Io(io) => return io_error(ENGINE, "redb I/O", io),
        other => other,
    };
    let msg = e.to_string();
    let variant = match &e {
        redb::Error::DatabaseAlreadyOpen => Error::busy(format!("already open: {msg}")),
        redb::Error::Corrupted(_) => Error::corrupt(msg),
        redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. } => Error::not_a_store(msg),
        redb::Error::ValueTooLarge(_) => Error::invalid_event(msg),
        redb::Error::DatabaseClosed | redb::Error::PreviousIo => Error::unavailable(msg),
        _ => return Error::backend(ENGINE, msg, e),
    };
    variant.with_source(e)
}

/// Opening errors: redb reports a file of another format as invalid data.
fn map_open_err(e: redb::DatabaseError) -> Error {
    match e.into() {
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Error::not_a_store(io.to_string()).with_source(io)
        }
        other => map_err(other),
    }
}

/// Runs `f`, turning a panic inside redb (which it raises on some damaged files) into
/// [`Error::Corrupt`].
pub(crate) fn contain<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        Err(Error::corrupt(format!("{what}: {detail}")))
    })
}

#[derive(Debug, Default)]
struct Relaxed {
    /// Appends committed relaxed since the last durable commit.
    pending: u32,
    /// When the first of them was made.
    since: Option<Instant>,
}

/// An open redb file: read-write, or read-only (`RedbOptions::read_only`).
enum Handle {
    Write(redb::Database),
    Read(redb::ReadOnlyDatabase),
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handle::Write(db) => f.debug_tuple("Write").field(db).finish(),
            Handle::Read(_) => f.write_str("Read"),
        }
    }
}

impl Handle {
    fn begin_read(&self) -> std::result::Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Write(db) => db.begin_read(),
            Handle::Read(db) => db.begin_read(),
        }
    }

    fn begin_write(&self) -> std::result::Result<WriteTransaction, redb::TransactionError> {
        match self {
            Handle::Write(db) => db.begin_write(),
            // `Shared::begin_write` refuses writes first; this only keeps the types whole.
            Handle::Read(_) => Err(redb::TransactionError::Storage(redb::StorageError::Io(
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, "opened read-only"),
            ))),
        }
    }
}

/// The database, and what became of it.
#[derive(Debug)]
struct Slot {
    /// `None` once closed, or while a reopen after an I/O error has not succeeded yet.
    db: Option<Handle>,
    /// Counts the reopens: a failure seen on an older database says nothing of this one.
    generation: u64,
    /// Why no reopen may happen: the handle was dropped, or an I/O error lost relaxed commits
    /// that were acknowledged (their ids would be given out again).
    gone: Option<String>,
}

#[derive(Debug)]
struct Shared {
    /// Behind a lock so that it can be reopened after an I/O error (see [`Shared::begin`]);
    /// taken out in `Drop` so that closing can be contained.
    slot: RwLock<Slot>,
    path: PathBuf,
    options: RedbOptions,
    relaxed: Mutex<Relaxed>,
    /// The generation (plus one) of a database that failed on its file: redb may have latched
    /// the failure, refusing every later access until the file is opened again.
    suspect: AtomicU64,
    /// The last failure on the file, for the message of a handle given up.
    last_failure: Mutex<Option<String>>,
}

/// The error for a slot without a database.
fn gone(slot: &Slot) -> Error {
    Error::unavailable(
        slot.gone
            .clone()
            .unwrap_or_else(|| "the store could not be reopened".into()),
    )
}

fn is_previous_io(e: &redb::TransactionError) -> bool {
    matches!(
        e,
        redb::TransactionError::Storage(redb::StorageError::PreviousIo)
    )
}

/// Whether `e` came from the file: an I/O error, or redb's refusal after one.
fn is_file_failure(e: &Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>()
            || c.downcast_ref::<redb::Error>()
                .is_some_and(|r| matches!(r, redb::Error::PreviousIo | redb::Error::Io(_)))
        {
            return true;
        }
        cause = c.source();
    }
    false
}

impl Shared {
    fn slot(&self) -> std::sync::RwLockReadGuard<'_, Slot> {
        self.slot.read().unwrap_or_else(|e| e.into_inner())
    }

    fn generation(&self) -> u64 {
        self.slot().generation
    }

    /// Begins a transaction. After a failed write (a full disk, say) redb refuses every later
    /// call until the database is opened again; this reopens it first, so that the handle
    /// recovers by itself once the cause is gone, as SQLite's does.
    fn begin<T>(
        &self,
        begin: impl Fn(&Handle) -> std::result::Result<T, redb::TransactionError>,
    ) -> Result<T> {
        let attempt = || {
            let slot = self.slot();
            let needs_reopen =
                slot.db.is_none() || self.suspect.load(Ordering::Acquire) == slot.generation + 1;
            match (&slot.db, needs_reopen) {
                (Some(db), false) => Ok((slot.generation, begin(db))),
                _ => Err(slot.generation),
            }
        };
        let (generation, first) = match attempt() {
            Ok(done) => done,
            Err(generation) => {
                self.reopen(generation)?;
                attempt().map_err(|_| Error::unavailable("the store could not be reopened"))?
            }
        };
        match first {
            Err(e) if is_previous_io(&e) => {
                self.reopen(generation)?;
                let slot = self.slot();
                let db = slot.db.as_ref().ok_or_else(|| gone(&slot))?;
                begin(db).map_err(map_err)
            }
            other => other.map_err(map_err),
        }
    }

    /// After an I/O error on database `generation`: checks it with an empty durable commit,
    /// and reopens the file when that fails (redb recovers it to its last durable commit), as
    /// a fresh `open` would. Relaxed commits not yet flushed cannot survive a reopen: the
    /// handle is then given up, with an error that says so.
    fn reopen(&self, generation: u64) -> Result<()> {
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &slot.gone {
            return Err(Error::unavailable(why.clone()));
        }
        if slot.generation != generation && slot.db.is_some() {
            return Ok(()); // Another caller reopened it meanwhile.
        }
        if let Some(Handle::Write(db)) = &slot.db {
            let probe = contain("checking the file", || {
                let mut txn = db.begin_write().map_err(map_err)?;
                txn.set_durability(redb::Durability::Immediate)
                    .map_err(map_err)?;
                txn.commit().map_err(map_err)
            });
            if probe.is_ok() {
                // Sound after all; the durable commit also made every relaxed one durable.
                *self.relaxed() = Relaxed::default();
                self.suspect.store(0, Ordering::Release);
                return Ok(());
            }
        }
        let old = slot.db.take();
        let _ = contain("closing after an I/O error", move || {
            drop(old);
            Ok(())
        });
        let pending = std::mem::take(&mut *self.relaxed()).pending;
        if pending > 0 {
            let cause = self
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| "an I/O error".into());
            let why = format!(
                "{cause}: lost the last {pending} relaxed commits before they were made \
                 durable; open the store again (its file holds everything before them)"
            );
            slot.gone = Some(why.clone());
            return Err(Error::unavailable(why));
        }
        let mut builder = redb::Builder::new();
        builder.set_cache_size(self.options.cache_size);
        // A failure leaves the slot empty: the next call tries again.
        let db = contain("reopening after an I/O error", || {
            if self.options.read_only {
                let db = builder.open_read_only(&self.path).map_err(map_open_err)?;
                check_is_store(&db)?;
                return Ok(Handle::Read(db));
            }
            let db = builder.open(&self.path).map_err(map_open_err)?;
            check_is_store(&db)?;
            Ok(Handle::Write(db))
        })?;
        slot.db = Some(db);
        slot.generation += 1;
        self.suspect.store(0, Ordering::Release);
        Ok(())
    }

    /// Marks database `generation` for a check (and a reopen) when `result` failed on the
    /// file.
    fn note<T>(&self, generation: u64, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && is_file_failure(e)
        {
            self.suspect.store(generation + 1, Ordering::Release);
            *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
        result
    }

    fn begin_write(&self) -> Result<WriteTransaction> {
        if self.options.read_only {
            return Err(Error::read_only(format!(
                "{}: the store was opened read-only",
                self.path.display()
            )));
        }
        self.begin(|db| db.begin_write())
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        self.begin(|db| db.begin_read())
    }

    fn relaxed(&self) -> MutexGuard<'_, Relaxed> {
        self.relaxed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits `txn`, which carries `appends` appends, with the durability the options call
    /// for.
    fn commit(&self, mut txn: WriteTransaction, appends: u32) -> Result<()> {
        if self.options.durability == Durability::Immediate {
            return txn.commit().map_err(map_err);
        }
        let mut relaxed = self.relaxed();
        let overdue = relaxed.pending.saturating_add(appends)
            >= self.options.relaxed_max_commits.max(1)
            || relaxed
                .since
                .is_some_and(|t| t.elapsed() >= self.options.relaxed_max_delay);
        if overdue {
            txn.set_durability(redb::Durability::Immediate)
                .map_err(map_err)?;
            txn.commit().map_err(map_err)?;
            *relaxed = Relaxed {
                pending: 0,
                since: None,
            };
        } else {
            txn.set_durability(redb::Durability::None)
                .map_err(map_err)?;
            txn.commit().map_err(map_err)?;
            relaxed.pending = relaxed.pending.saturating_add(appends);
            relaxed.since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Makes every relaxed commit durable.
    fn flush(&self) -> Result<()> {
        if self.relaxed().pending == 0 {
            return Ok(());
        }
        // Same lock order as `commit`: the write slot first, then the counters.
        let txn = self.begin_write()?;
        let mut relaxed = self.relaxed();
        if relaxed.pending == 0 {
            return txn.abort().map_err(map_err);
        }
        txn.commit().map_err(map_err)?;
        *relaxed = Relaxed {
            pending: 0,
            since: None,
        };
        Ok(())
    }
}

/// An EventLite store in one redb file. redb locks the file: one `RedbBackend` per file at a
/// time (a second opener gets [`Error::Busy`]); share it across threads with `Arc`.
#[derive(Debug)]
pub struct RedbBackend {
    path: PathBuf,
    shared: Arc<Shared>,
    flusher: Option<(Sender<()>, JoinHandle<()>)>,
    signal: Arc<CommitSignal>,
    /// Writers waiting to share a commit.
    group: GroupCommit,
    /// How many open waiting records have each key. redb gives a file to one handle at a time,
    /// so this handle sees every park and close: an append looks only for the keys here.
    open_keys: Mutex<waiting::OpenKeys>,
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        self.signal.close();
        if let Some((stop, handle)) = self.flusher.take() {
            drop(stop);
            let _ = handle.join();
        }
        // Nothing can report an error from drop; a failed flush leaves the relaxed window as
        // documented.
        let _ = contain("closing", || self.shared.flush());
        // redb writes its allocator state when the database closes, and panics doing so on
        // some damaged files: close inside `contain` too.
        let slot = Arc::get_mut(&mut self.shared)
            .map(|s| s.slot.get_mut().unwrap_or_else(|e| e.into_inner()));
        if let Some(db) = slot.and_then(|slot| {
            slot.gone = Some("the store is closed".into());
            slot.db.take()
        }) {
            let _ = contain("closing", move || {
                drop(db);
                Ok(())
            });
        }
    }
}

fn flusher(shared: Arc<Shared>, stop: Receiver<()>) {
    let delay = shared.options.relaxed_max_delay;
    let mut failed = false;
    loop {
        // Sleep until the oldest relaxed commit comes due. A fixed tick would flush only what
        // is already `delay` old, so a commit made just after a tick would wait almost two.
        // After a failed flush, wait a whole delay: the next try would fail alike at once.
        let wait = match shared.relaxed().since {
            Some(t) if !failed => delay.saturating_sub(t.elapsed()),
            _ => delay,
        };
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {
                let due = shared.relaxed().since.is_some_and(|t| t.elapsed() >= delay);
                if due {
                    let generation = shared.generation();
                    failed = shared.note(generation, shared.flush()).is_err();
                }
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Refuses a redb file that is not an EventLite store, before anything is written to it.
fn check_is_store(db: &impl ReadableDatabase) -> Result<()> {
    let txn = db.begin_read().map_err(map_err)?;
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(map_err)?
        .map(|t| t.name().to_owned())
        .collect();
    if tables.is_empty() {
        return Ok(());
    }
    if !tables.iter().any(|t| t == META.name()) {
        return Err(Error::not_a_store("a redb file without EventLite's tables"));
    }
    let meta = txn.open_table(META).map_err(map_err)?;
    let format = meta.get("format").map_err(map_err)?;
    match format.as_ref().map(|f| f.value()) {
        Some(FORMAT) => {}
        other => {
            return Err(Error::not_a_store(format!(
                "unknown store format {other:?}"
            )));
        }
    }
    let version = meta
        .get("schema_version")
        .map_err(map_err)?
        .and_then(|v| v.value().parse::<u32>().ok())
        .ok_or_else(|| Error::corrupt("unreadable schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(Error::not_a_store(format!(
            "schema version {version} is newer than this EventLite ({SCHEMA_VERSION})"
        )));
    }
    Ok(())
}

fn config_to_text(config: &IndexConfig) -> String {
    config
        .enabled()
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn config_from_text(text: &str) -> IndexConfig {
    IndexConfig::from_names(text.split(',').filter_map(IndexName::parse))
}

fn delete_index(txn: &WriteTransaction, name: IndexName) -> Result<()> {
    let deleted = match name {
        IndexName::CorrelationId => txn.delete_table(IDX_CORRELATION),
        IndexName::CausationId => txn.delete_table(IDX_CAUSATION),
        IndexName::Cmd => txn.delete_table(IDX_CMD),
        IndexName::User => txn.delete_table(IDX_USER),
        IndexName::Datetime => txn.delete_table(IDX_DATETIME),
        IndexName::Version => txn.delete_table(IDX_VERSION),
        IndexName::CorrelationCmd => txn.delete_table(IDX_CORRELATION_CMD),
        IndexName::UserDatetime => txn.delete_table(IDX_USER_DATETIME),
    };
    deleted.map(|_| ()).map_err(map_err)
}

impl RedbBackend {
    /// Opens the store at `path`, creating it (and its parent directory) if it does not exist.
    ///
    /// An existing file must be an EventLite redb store: anything else is refused with
    /// [`Error::NotAStore`] (or [`Error::Corrupt`] for a damaged redb file) before a byte is
    /// written. The file's indexes are made to match `options.indexes`: a newly enabled index
    /// is back-filled from the events in one transaction, a disabled one is deleted.
    pub fn open(path: impl AsRef<Path>, mut options: RedbOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if options.read_only {
            if !path.is_file() {
                return Err(Error::NotFound(format!(
                    "{}: no store (opened read-only, which makes none)",
                    path.display()
                )));
            }
            options.indexes_as_found = true;
            return Self::open_file(path, options, false);
        }
        create_or_find_store(&path, ENGINE, |temp| {
            // Built with an immediate commit and closed, so the file is complete on disk.
            let fresh = RedbOptions {
                durability: Durability::Immediate,
                ..options.clone()
            };
            Self::open_file(temp.to_path_buf(), fresh, true).map(drop)
        })?;
        Self::open_file(path, options, false)
    }

    /// Opens the store in `path`; `created` when the file is new and empty.
    fn open_file(path: PathBuf, mut options: RedbOptions, created: bool) -> Result<Self> {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(options.cache_size);
        let db = contain("opening the file", || {
            if created {
                builder
                    .create(&path)
                    .map_err(map_open_err)
                    .map(Handle::Write)
            } else if options.read_only {
                let db = builder.open_read_only(&path).map_err(|e| match e {
                    redb::DatabaseError::RepairAborted => Error::read_only(format!(
                        "{}: needs redb's repair after a crash, which writes; open it for \
                         writing once first",
                        path.display()
                    ))
                    .with_source(e),
                    e => map_open_err(e),
                })?;
                check_is_store(&db)?;
                Ok(Handle::Read(db))
            } else {
                // Check the file through a read-only handle first: a read-write open may
                // already write to it (redb updates its header), and a foreign file must be
                // left as it was. A file that needs repair cannot be opened read-only; the
                // read-write open below repairs it and checks it again.
                match builder.open_read_only(&path).map_err(map_open_err) {
                    Ok(ro) => check_is_store(&ro)?,
                    Err(e @ Error::NotAStore { .. }) => return Err(e),
                    Err(_) => {}
                }
                let mut db = builder.open(&path).map_err(map_open_err)?;
                // Ok(false) from check_integrity means redb repaired the file; events are
                // still checked by their own checksums on every read.
                let checked = check_is_store(&db).and_then(|()| {
                    if options.verify_on_open {
                        db.check_integrity().map(drop).map_err(map_err)
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = checked {
                    // Closing a redb database writes to it, and on a damaged file that write
                    // can panic while unwinding and abort the process. Leaking the handle (a
                    // file descriptor and its lock) is the lesser harm.
                    std::mem::forget(db);
                    return Err(e);
                }
                Ok(Handle::Write(db))
            }
        })?;
        if options.indexes_as_found && !created {
            let found = contain("reading the store's indexes", || stored_indexes(&db));
            match found {
                Ok(Some(indexes)) => options.indexes = indexes,
                Ok(None) => {
                    return Err(Error::not_a_store(format!(
                        "{}: no EventLite tables (opened with indexes_as_found, which makes \
                         no store)",
                        path.display()
                    )));
                }
                Err(e) => {
                    // As above: a handle on a file that failed a check is not closed.
                    std::mem::forget(db);
                    return Err(e);
                }
            }
        }
        let shared = Arc::new(Shared {
            slot: RwLock::new(Slot {
                db: Some(db),
                generation: 0,
                gone: None,
            }),
            path: path.clone(),
            options,
            relaxed: Mutex::new(Relaxed::default()),
            suspect: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        });
        // From here on the backend owns the database, so that a failure closes it inside
        // `contain` (see `Drop`).
        let mut backend = RedbBackend {
            path,
            shared,
            flusher: None,
            signal: CommitSignal::new(),
            group: GroupCommit::new(),
            open_keys: Mutex::default(),
        };
        if !backend.shared.options.read_only {
            contain("preparing the store", || init(&backend.shared))?;
        }
        let open_keys = contain("reading the waiting records", || {
            waiting::load_open_keys(&backend.shared.begin_read()?)
        })?;
        backend.open_keys = Mutex::new(open_keys);
        if backend.shared.options.durability == Durability::Relaxed
            && !backend.shared.options.read_only
        {
            let (stop, rx) = channel();
            let for_thread = Arc::clone(&backend.shared);
            let handle = std::thread::Builder::new()
                .name("eventlite-redb-flush".into())
                .spawn(move || flusher(for_thread, rx))
                .map_err(|e| io_error(ENGINE, "starting the flush thread", e))?;
            backend.flusher = Some((stop, handle));
        }
        Ok(backend)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &RedbOptions {
        &self.shared.options
    }

    pub(crate) fn config(&self) -> &IndexConfig {
        &self.shared.options.indexes
    }

    /// Stores a group commit's batches in one transaction (see [`EventLog::append`]).
    fn commit_group(&self, entries: &mut [GroupEntry]) -> Result<Vec<Result<Vec<Event>>>> {
        let txn = self.shared.begin_write()?;
        waiting::check_claims(&txn, entries)?;
        let mut stored: Vec<(usize, u64, Vec<Option<u64>>)> = Vec::with_capacity(entries.len());
        let mut rejected = Vec::new();
        let mut closed_claims = Vec::new();
        let written: Vec<(String, u64)> = {
            let events = txn.open_table(EVENTS).map_err(map_err)?;
            let last = events
                .last()
                .map_err(map_err)?
                .map_or(0, |(k, _)| k.value());
            let streams = txn.open_table(STREAMS).map_err(map_err)?;
            let mut versions = StreamVersions::new();
            let mut claimed = HashSet::new();
            let mut next = last + 1;
            for (i, entry) in entries.iter().enumerate() {
                if entry.is_rejected() {
                    continue;
                }
                // A record an earlier batch of the group releases is closed for this one.
                if entry.claim().is_some_and(|c| claimed.contains(&c.id)) {
                    closed_claims.push(i);
                    continue;
                }
                let checked = versions.check_batch(entry.batch(), |stream| {
                    Ok(streams.get(stream).map_err(map_err)?.map(|v| v.value()))
                });
                match checked {
                    Ok(stream_versions) => {
                        claimed.extend(entry.claim().map(|c| c.id));
                        stored.push((i, next, stream_versions));
                        next += entry.batch().len() as u64;
                    }
                    // A stream expectation fails this batch alone; anything else (a page
                    // that cannot be read, say) fails the group, before a row is written.
                    Err(e @ Error::Conflict { .. }) => rejected.push((i, e)),
                    Err(e) => return Err(e),
                }
            }
            versions
                .written()
                .map(|(stream, version)| (stream.to_owned(), version))
                .collect()
        };
        // Marked once the checks, which borrow the batches, are done.
        for (i, error) in rejected {
            entries[i].reject(error);
        }
        for i in closed_claims {
            entries[i].reject_claim();
        }
        if stored.is_empty() {
            txn.abort().map_err(map_err)?;
            return Ok(finish_group(entries, Vec::new()));
        }
        {
            let mut events = txn.open_table(EVENTS).map_err(map_err)?;
            let mut streams = txn.open_table(STREAMS).map_err(map_err)?;
            let mut stream_idx = txn.open_table(STREAM_IDX).map_err(map_err)?;
            let mut buf = Vec::with_capacity(256);
            for (i, first, stream_versions) in &stored {
                for (k, (p, sv)) in entries[*i].batch().iter().zip(stream_versions).enumerate() {
                    let id = first + k as u64;
                    codec::encode_row(p, id, *sv, &mut buf)?;
                    events.insert(id, buf.as_slice()).map_err(map_err)?;
                    if let Some(stream) = p.stream.as_deref() {
                        stream_idx.insert((stream, id), ()).map_err(map_err)?;
                    }
                }
            }
            for (stream, version) in &written {
                streams.insert(stream.as_str(), version).map_err(map_err)?;
            }
        }
        for name in self.config().enabled() {
            for (i, first, stream_versions) in &stored {
                exec::index_batch(&txn, name, *first, entries[*i].batch(), stream_versions)?;
            }
        }
        let closed = waiting::close_claims(&txn, entries, &stored)?;
        // `Relaxed` bounds the appends it may lose, not the commits that carried them.
        self.shared.commit(txn, stored.len() as u32)?;
        self.forget_keys(closed);
        let events = group_events(entries, stored);
        // Published before the next group's leader starts: subscribers see commits in order,
        // and are woken once per group.
        self.signal.publish(&events);
        Ok(finish_group(entries, events))
    }

    /// Runs one operation: panics inside redb contained, file failures noted for a reopen.
    fn run<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let generation = self.shared.generation();
        self.shared.note(generation, contain(what, f))
    }

    fn read(&self) -> Result<redb::ReadTransaction> {
        self.shared.begin_read()
    }
}

/// The indexes an existing store's meta table records (`None` before its first open wrote
/// them).
fn stored_indexes(db: &Handle) -> Result<Option<IndexConfig>> {
    let txn = db.begin_read().map_err(map_err)?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(map_err(e)),
    };
    Ok(meta
        .get("indexes")
        .map_err(map_err)?
        .map(|v| config_from_text(v.value())))
}

/// Creates the tables, writes the meta rows and syncs the indexes, in one durable transaction.
fn init(shared: &Shared) -> Result<()> {
    let mut txn = shared.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(map_err)?;
    let present = {
        let mut meta = txn.open_table(META).map_err(map_err)?;
        if meta.get("format").map_err(map_err)?.is_none() {
            meta.insert("format", FORMAT).map_err(map_err)?;
            meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())
                .map_err(map_err)?;
        }
        let present = meta
            .get("indexes")
            .map_err(map_err)?
            .map_or_else(IndexConfig::none, |v| config_from_text(v.value()));
        meta.insert("indexes", config_to_text(&shared.options.indexes).as_str())
            .map_err(map_err)?;
        present
    };
    txn.open_table(EVENTS).map_err(map_err)?;
    txn.open_table(STREAMS).map_err(map_err)?;
    txn.open_table(STREAM_IDX).map_err(map_err)?;
    txn.open_table(SNAPSHOTS).map_err(map_err)?;
    txn.open_table(POSITIONS).map_err(map_err)?;
    txn.open_table(FAILURES).map_err(map_err)?;
    waiting::touch(&txn)?;
    let wanted = shared.options.indexes;
    let added: Vec<IndexName> = IndexName::ALL
        .into_iter()
        .filter(|n| wanted.is_enabled(*n) && !present.is_enabled(*n))
        .collect();
    for name in IndexName::ALL {
        if !wanted.is_enabled(name) && present.is_enabled(name) {
            delete_index(&txn, name)?;
        }
    }
    if !added.is_empty() {
        // Back-fill the new indexes from the events table, a chunk of rows at a time.
        let events = txn.open_table(EVENTS).map_err(map_err)?;
        let mut rows = events.iter().map_err(map_err)?;
        loop {
            let chunk: Vec<Event> = rows
                .by_ref()
                .take(4_096)
                .map(|entry| {
                    let (k, v) = entry.map_err(map_err)?;
                    codec::decode_row(k.value(), v.value())
                })
                .collect::<Result<_>>()?;
            if chunk.is_empty() {
                break;
            }
            for name in &added {
                exec::index_entries(&txn, *name, chunk.iter().map(EventFields::from))?;
            }
        }
    }
    // Tables of enabled indexes exist even when the store is empty.
    for name in wanted.enabled() {
        exec::touch_index(&txn, name)?;
    }
    txn.commit().map_err(map_err)
}

impl EventLog for RedbBackend {
    /// Concurrent appends share a transaction and its sync ([`GroupCommit`]): each batch is
    /// checked against the stream versions as they stand with the batches before it, a
    /// failing one is rejected alone, and the rest get consecutive ids in queue order.
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>> {
        self.group.append(batch, |entries| {
            self.run("append", || self.commit_group(entries))
        })
    }

    fn get(&self, id: u64) -> Result<Option<Event>> {
        self.run("get", || {
            let txn = self.read()?;
            let events = txn.open_table(EVENTS).map_err(map_err)?;
            let row = events.get(id).map_err(map_err)?;
            row.map(|v| codec::decode_row(id, v.value())).transpose()
        })
    }

    fn query(&self, query: &Query) -> Result<Vec<Event>> {
        self.run("query", || exec::query(self, &self.read()?, query))
    }

    fn query_into(&self, query: &Query, out: &mut Vec<Event>) -> Result<()> {
        self.run("query", || {
            exec::query_into(self, &self.read()?, query, out)
        })
    }

    fn count(&self, filter: &Filter) -> Result<u64> {
        self.run("count", || exec::count(self, &self.read()?, filter))
    }

    fn query_with_total(&self, query: &Query) -> Result<(Vec<Event>, u64)> {
        self.run("query", || {
            let txn = self.read()?;
            let total = exec::count(self, &txn, &query.filter)?;
            Ok((exec::query(self, &txn, query)?, total))
        })
    }

    fn explain(&self, query: &Query) -> Result<QueryPlan> {
        Ok(exec::explain(self.config(), query))
    }

    fn indexes(&self) -> Result<IndexConfig> {
        self.run("indexes", || {
            let txn = self.read()?;
            let meta = txn.open_table(META).map_err(map_err)?;
            let text = meta.get("indexes").map_err(map_err)?;
            Ok(text.map_or_else(IndexConfig::none, |v| config_from_text(v.value())))
        })
    }

    fn last_id(&self) -> Result<u64> {
        self.run("last_id", || {
            let txn = self.read()?;
            let events = txn.open_table(EVENTS).map_err(map_err)?;
            Ok(events
                .last()
                .map_err(map_err)?
                .map_or(0, |(k, _)| k.value()))
        })
    }
}

impl PositionStore for RedbBackend {
    fn save_position(&self, name: &str, position: u64, at: i64) -> Result<()> {
        self.run("save_position", || {
            let txn = self.shared.begin_write()?;
            txn.open_table(POSITIONS)
                .map_err(map_err)?
                .insert(name, (position, at))
                .map_err(map_err)?;
            self.shared.commit(txn, 1)
        })
    }

    fn load_position(&self, name: &str) -> Result<Option<Position>> {
        self.run("load_position", || {
            let txn = self.read()?;
            let table = txn.open_table(POSITIONS).map_err(map_err)?;
            Ok(table.get(name).map_err(map_err)?.map(|v| {
                let (position, updated_at) = v.value();
                Position {
                    name: name.to_owned(),
                    position,
                    updated_at,
                }
            }))
        })
    }

    fn list_positions(&self) -> Result<Vec<Position>> {
        self.run("list_positions", || {
            let txn = self.read()?;
            let table = txn.open_table(POSITIONS).map_err(map_err)?;
            table
                .iter()
                .map_err(map_err)?
                .map(|entry| {
                    let (k, v) = entry.map_err(map_err)?;
                    let (position, updated_at) = v.value();
                    Ok(Position {
                        name: k.value().to_owned(),
                        position,
                        updated_at,
                    })
                })
                .collect()
        })
    }

    fn delete_position(&self, name: &str) -> Result<bool> {
        self.run("delete_position", || {
            let txn = self.shared.begin_write()?;
            let existed = txn
                .open_table(POSITIONS)
                .map_err(map_err)?
                .remove(name)
                .map_err(map_err)?
                .is_some();
            self.shared.commit(txn, 1)?;
            Ok(existed)
        })
    }

    fn record_failure(&self, f: FailedEvent) -> Result<()> {
        self.run("record_failure", || {
            let txn = self.shared.begin_write()?;
            txn.open_table(FAILURES)
                .map_err(map_err)?
                .insert(
                    (f.projection.as_str(), f.event_id),
                    (f.attempts, f.error.as_str(), f.at),
                )
                .map_err(map_err)?;
            self.shared.commit(txn, 1)
        })
    }

    fn failures(&self, projection: &str) -> Result<Vec<FailedEvent>> {
        self.run("failures", || {
            let txn = self.read()?;
            let table = txn.open_table(FAILURES).map_err(map_err)?;
            table
                .range((projection, 0u64)..=(projection, u64::MAX))
                .map_err(map_err)?
                .map(|entry| {
                    let (k, v) = entry.map_err(map_err)?;
                    let (attempts, error, at) = v.value();
                    Ok(FailedEvent {
                        projection: projection.to_owned(),
                        event_id: k.value().1,
                        attempts,
                        error: error.to_owned(),
                        at,
                    })
                })
                .collect()
        })
    }

    fn clear_failures(&self, projection: &str) -> Result<u64> {
        self.run("clear_failures", || {
            let txn = self.shared.begin_write()?;
            let mut removed = 0;
            {
                let mut table = txn.open_table(FAILURES).map_err(map_err)?;
                for entry in table
                    .extract_from_if((projection, 0u64)..=(projection, u64::MAX), |_, _| true)
                    .map_err(map_err)?
                {
                    entry.map_err(map_err)?;
                    removed += 1;
                }
            }
            self.shared.commit(txn, 1)?;
            Ok(removed)
        })
    }
}

impl Notifications for RedbBackend {
    fn commit_signal(&self) -> Arc<CommitSignal> {
        Arc::clone(&self.signal)
    }

    /// redb locks its file to one handle, through which every commit goes and is signalled.
    fn poll_commits(&self) -> Result<()> {
        Ok(())
    }

    fn external_commits(&self) -> Result<u64> {
        Ok(0)
    }
}

impl Maintenance for RedbBackend {
    /// Makes every relaxed commit durable; redb keeps no log apart from its file, so that is
    /// all there is to bring up to date.
    fn checkpoint(&self) -> Result<()> {
        let generation = self.shared.generation();
        self.shared.note(generation, self.shared.flush())
    }

    /// Every secondary table (and the stream table) against the events, both ways, and each
    /// stream's recorded version against its events. redb checks each page's checksum as it
    /// reads it, and its whole-file check runs when the store is opened for writing
    /// ([`RedbOptions::verify_on_open`]; redb's read-only handle has no such check).
    fn check_storage(&self) -> Result<Vec<String>> {
        self.run("check_storage", || {
            let txn = self.read()?;
            let mut problems = Vec::new();
            exec::check_indexes(self.config(), &txn, &mut problems)?;
            check_streams(&txn, &mut problems)?;
            Ok(problems)
        })
    }
}

/// Each stream's recorded version is its newest event's, and every recorded stream has events.
fn check_streams(txn: &redb::ReadTransaction, problems: &mut Vec<String>) -> Result<()> {
    let mut newest: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let events = txn.open_table(EVENTS).map_err(map_err)?;
    for row in events.iter().map_err(map_err)? {
        let Ok((id, stored)) = row else {
            return Ok(());
        };
        if let Ok(e) = codec::decode_row(id.value(), stored.value())
            && let (Some(s), Some(v)) = (e.stream, e.stream_version)
        {
            let slot = newest.entry(s).or_insert(0);
            *slot = (*slot).max(v);
        }
    }
    let streams = txn.open_table(STREAMS).map_err(map_err)?;
    let mut recorded = 0usize;
    for row in streams.iter().map_err(map_err)? {
        let Ok((name, version)) = row else {
            problems.push("streams: a page cannot be read".into());
            return Ok(());
        };
        recorded += 1;
        let (name, version) = (name.value(), version.value());
        if newest.get(name) != Some(&version) {
            problems.push(format!(
                "streams: {name:?} is recorded at version {version}, its events reach {:?}",
                newest.get(name)
            ));
        }
    }
    if recorded != newest.len() {
        problems.push(format!(
            "streams: {recorded} recorded, the events name {}",
            newest.len()
        ));
    }
    Ok(())
}

impl SnapshotStore for RedbBackend {
    fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.run("put_snapshot", || {
            let value = codec::encode_snapshot(&snapshot)?;
            let txn = self.shared.begin_write()?;
            txn.open_table(SNAPSHOTS)
                .map_err(map_err)?
                .insert(
                    (snapshot.name.as_str(), snapshot.event_id),
                    value.as_slice(),
                )
                .map_err(map_err)?;
            self.shared.commit(txn, 1)
        })
    }

    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>> {
        self.run("snapshot_at_or_before", || {
            let txn = self.read()?;
            let table = txn.open_table(SNAPSHOTS).map_err(map_err)?;
            let mut range = table
                .range((name, 0u64)..=(name, event_id))
                .map_err(map_err)?;
            match range.next_back() {
                Some(entry) => {
                    let (k, v) = entry.map_err(map_err)?;
                    codec::decode_snapshot(name, k.value().1, v.value()).map(Some)
                }
                None => Ok(None),
            }
        })
    }

    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>> {
        self.run("list_snapshots", || {
            let txn = self.read()?;
            let table = txn.open_table(SNAPSHOTS).map_err(map_err)?;
            let range = table
                .range((name, 0u64)..=(name, u64::MAX))
                .map_err(map_err)?;
            range
                .rev()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|entry| {
                    let (k, v) = entry.map_err(map_err)?;
                    codec::decode_snapshot(name, k.value().1, v.value())
                })
                .collect()
        })
    }

    fn snapshot_names(&self) -> Result<Vec<String>> {
        self.run("snapshot_names", || {
            let txn = self.read()?;
            let table = txn.open_table(SNAPSHOTS).map_err(map_err)?;
            let mut names: Vec<String> = Vec::new();
            // Keys are (name, event id) in order: each name's snapshots are together.
            for entry in table.iter().map_err(map_err)? {
                let (k, _) = entry.map_err(map_err)?;
                let name = k.value().0;
                if names.last().map(String::as_str) != Some(name) {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
    }

    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
        self.run("delete_snapshot", || {
            let txn = self.shared.begin_write()?;
            let existed = txn
                .open_table(SNAPSHOTS)
                .map_err(map_err)?
                .remove((name, event_id))
                .map_err(map_err)?
                .is_some();
            self.shared.commit(txn, 1)?;
            Ok(existed)
        })
    }

    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64> {
        self.run("delete_snapshots_before", || {
            let txn = self.shared.begin_write()?;
            let mut removed = 0;
            {
                let mut table = txn.open_table(SNAPSHOTS).map_err(map_err)?;
                for entry in table
                    .extract_from_if((name, 0u64)..(name, event_id), |_, _| true)
                    .map_err(map_err)?
                {
                    entry.map_err(map_err)?;
                    removed += 1;
                }
            }
            self.shared.commit(txn, 1)?;
            Ok(removed)
        })
    }
}
