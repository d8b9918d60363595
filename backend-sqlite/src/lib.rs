//! # eventlite-sqlite
//!
//! The SQLite engine for [EventLite](eventlite_core): one `queue` table with the upstream
//! columns, the performance guide's eight indexes under their names, WAL by default, one writer
//! connection behind a mutex (write transactions begun `IMMEDIATE`) and a pool of reader
//! connections that run while a write commits. SQLite is compiled in (rusqlite's `bundled`).
//!
//! ```
//! use eventlite_core::{EventStore, NewEvent, IndexConfig};
//! use eventlite_sqlite::{SqliteBackend, SqliteOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let options = SqliteOptions { indexes: IndexConfig::balanced(), ..SqliteOptions::default() };
//! let store = EventStore::new(SqliteBackend::open(dir.path().join("events.sqlite"), options)?);
//! let event = store.store(NewEvent::new("hello").user("ada"))?;
//! assert_eq!(store.get(event.id)?.unwrap().user, "ada");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod checkpoint;
mod conn;
mod insert;
mod options;
mod projection;
mod select;
mod sql;
mod stmt;
mod tx;
mod waiting;
mod wal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use checkpoint::Checkpointer;
use conn::{ReaderConn, WriterConn, WriterParts};
use eventlite_core::spi::files::create_or_find_store;
use eventlite_core::spi::{
    CommitSignal, EventLog, GroupCommit, GroupEntry, Maintenance, Notifications, Numbered,
    PendingEvent, PositionStore, SnapshotStore, WaitHints, finish_group, group_events,
    number_group,
};
use eventlite_core::{
    Error, Event, FailedEvent, Filter, IndexConfig, IndexName, Position, Query, QueryPlan, Result,
    Snapshot,
};
use insert::InsertStmt;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use select::Selects;
use tx::TxStmts;

pub use options::{JournalMode, SqliteOptions, Synchronous};
pub use projection::{Handler, SqliteProjection};
/// The rusqlite this engine is built on, for [`SqliteProjection`] handlers.
pub use rusqlite;

const ENGINE: &str = "sqlite";
/// The least time between two looks at the file's change counter (see
/// [`Notifications::poll_commits`]).
const POLL_SPACING: Duration = Duration::from_millis(5);
/// The layout this code writes; files with a greater one are refused.
const SCHEMA_VERSION: i64 = 1;
const FORMAT: &str = "eventlite-sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS eventlite_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    datetime INTEGER NOT NULL,
    user TEXT NOT NULL,
    ip TEXT NOT NULL,
    cmd TEXT NOT NULL,
    data TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    causation_id INTEGER,
    metadata TEXT NOT NULL,
    stream TEXT,
    stream_version INTEGER,
    checksum INTEGER NOT NULL
);
-- WITHOUT ROWID, as every table here but queue: damage that puts another table's empty root
-- page in place of queue's is then a page of the wrong kind, refused, not an empty log.
CREATE TABLE IF NOT EXISTS waiting (
    id INTEGER PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    state INTEGER NOT NULL,
    closed_at INTEGER,
    event_id INTEGER,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS waiting_by_correlation ON waiting (correlation_id, id);
CREATE TABLE IF NOT EXISTS waiting_keys (
    cmd TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    waiting_id INTEGER NOT NULL,
    PRIMARY KEY (cmd, correlation_id, waiting_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS waiting_keys_by_record ON waiting_keys (waiting_id);
CREATE UNIQUE INDEX IF NOT EXISTS eventlite_stream ON queue (stream, stream_version)
    WHERE stream IS NOT NULL;
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    state BLOB NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projection_failures (
    projection TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (projection, event_id)
) WITHOUT ROWID;
";

/// Maps SQLite's errors to the variants a caller can act on, keeping SQLite's error as the
/// source.
pub(crate) fn map_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let msg = e.to_string();
    let variant = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => Error::busy(msg),
            C::DiskFull => Error::storage_full(msg),
            C::ReadOnly | C::PermissionDenied => Error::read_only(msg),
            C::DatabaseCorrupt => Error::corrupt(msg),
            C::NotADatabase => Error::not_a_store(msg),
            _ => return Error::backend(ENGINE, msg, e),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnType(..) => Error::corrupt(msg),
        _ => return Error::backend(ENGINE, msg, e),
    };
    variant.with_source(e)
}

/// Maps an error of a write on `conn`: SQLite reports a write that failed for a file-size limit
/// (EFBIG) as a plain I/O error, so the OS error it saw decides. A value over SQLite's length
/// limit is the event's own fault ([`Error::InvalidEvent`]), which the group commit reports to
/// its writer alone.
fn map_write_err(conn: &Connection, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::TooBig
    {
        return Error::invalid_event(e.to_string()).with_source(e);
    }
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::SystemIoFailure
    {
        // SAFETY: the handle is valid while `conn` lives; the call only reads its last errno.
        let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
        let io = std::io::Error::from_raw_os_error(errno);
        if matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::FileTooLarge
        ) {
            return eventlite_core::spi::io_error(ENGINE, &e.to_string(), io).with_source(e);
        }
    }
    map_err(e)
}

/// An id column that must hold a non-negative integer.
fn u64_column(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

fn row_to_position(row: &rusqlite::Row<'_>) -> rusqlite::Result<Position> {
    Ok(Position {
        name: row.get(0)?,
        position: u64_column(row, 1)?,
        updated_at: row.get(2)?,
    })
}

fn row_to_snapshot(row: &rusqlite::Row<'_>) -> rusqlite::Result<Snapshot> {
    let event_id: i64 = row.get(1)?;
    Ok(Snapshot {
        name: row.get(0)?,
        event_id: u64::try_from(event_id)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(1, event_id))?,
        state: row.get(2)?,
        metadata: row.get(3)?,
        created_at: row.get(4)?,
    })
}

/// An EventLite store in one SQLite file.
#[derive(Debug)]
pub struct SqliteBackend {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<WriterConn>,
    readers: Mutex<Vec<ReaderConn>>,
    signal: Arc<CommitSignal>,
    /// Writers waiting to share a commit.
    group: GroupCommit,
    /// What recent commits saw of the waiting records (see `waiting.rs`).
    hints: WaitHints,
    /// What watches the file for other connections' commits (opened by the first look).
    watcher: Mutex<Option<Watch>>,
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.signal.close();
    }
}

/// The prepared statement in `slot`, prepared on first use.
fn prepared<'s, 'c>(
    slot: &'s mut Option<InsertStmt<'c>>,
    conn: &'c Connection,
    rows: usize,
) -> Result<&'s mut InsertStmt<'c>> {
    Ok(match slot {
        Some(stmt) => stmt,
        None => slot.insert(InsertStmt::prepare(conn, rows).map_err(map_err)?),
    })
}

/// Begins an `IMMEDIATE` write transaction on `conn` (waiting up to the busy timeout for the
/// write lock); it rolls back when dropped uncommitted.
fn write_tx(conn: &Connection) -> Result<Transaction<'_>> {
    Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(map_err)
}

impl SqliteBackend {
    /// Opens the store at `path`, creating it (and its parent directory) if it does not exist.
    ///
    /// An existing file must be an EventLite SQLite store: anything else (another SQLite
    /// database, another format, an empty file, a directory) is refused with
    /// [`Error::NotAStore`] and left byte for byte as it was. The file's indexes are made to
    /// match `options.indexes`.
    pub fn open(path: impl AsRef<Path>, mut options: SqliteOptions) -> Result<Self> {
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
            let fresh = Self::open_file(temp.to_path_buf(), options.clone(), false)?;
            // Move the schema from the log into the file, which is all that gets linked.
            let busy: i64 = fresh
                .writer()
                .borrow_owner()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .map_err(map_err)?;
            if busy != 0 {
                return Err(Error::busy("the new store's log could not be checkpointed"));
            }
            Ok(())
        })?;
        Self::open_file(path, options, true)
    }

    /// Opens an existing file (or an empty one, which SQLite makes a new database) as a
    /// store; `checkpoints` starts the background checkpointer.
    fn open_file(path: PathBuf, mut options: SqliteOptions, checkpoints: bool) -> Result<Self> {
        // Before SQLite recovers the log, which would drop what follows damage in it.
        if !options.truncate_damaged_log {
            check_log(&path)?;
        }
        let writer = open_connection(&path, &options)?;
        check_is_store(&writer)?;
        if options.read_only {
            // The journal mode is the file's; setting one would write.
            configure_cache(&writer, &options)?;
        } else {
            configure_writer(&writer, &options)?;
        }
        // A store being made (the build of a new file) gets `indexes`; an existing file must
        // already be a store, since opening as found never makes one of someone's database.
        let found = options.indexes_as_found && has_queue(&writer)?;
        if found {
            options.indexes = actual_indexes(&writer)?;
        } else if options.indexes_as_found && (checkpoints || options.read_only) {
            return Err(Error::not_a_store(format!(
                "{}: no EventLite tables (opened with indexes_as_found, which makes no store)",
                path.display()
            )));
        }
        let backend = SqliteBackend {
            path,
            options,
            writer: Mutex::new(WriterConn::open(writer)),
            readers: Mutex::new(Vec::new()),
            signal: CommitSignal::new(),
            group: GroupCommit::new(),
            hints: WaitHints::new(),
            watcher: Mutex::new(None),
        };
        if backend.options.read_only {
            backend.check_schema_version()?;
            return Ok(backend);
        }
        backend.init_schema()?;
        if !found {
            backend.sync_indexes()?;
        }
        if checkpoints && backend.options.journal_mode == JournalMode::Wal {
            let (path, options) = (&backend.path, &backend.options);
            backend.writer().with_dependent_mut(|conn, parts| {
                parts.checkpoints = start_checkpointer(conn, path, options);
            });
        }
        Ok(backend)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// Waits until the background checkpoint in progress, if any, has finished, without
    /// asking for one (see [`Maintenance::checkpoint`] for that). EventLite's benchmarks call
    /// it after timing appends, so that the checkpoint those started does not run into the
    /// next measurement; it is not part of the stable API.
    #[cfg(feature = "bench-hooks")]
    #[doc(hidden)]
    pub fn wait_for_checkpoints(&self) {
        self.writer().with_dependent(|_, parts| {
            if let Some(c) = &parts.checkpoints {
                c.wait();
            }
        });
    }

    /// Runs SQLite's `PRAGMA integrity_check`; `Ok(())` when the file is sound.
    pub fn integrity_check(&self) -> Result<()> {
        let verdict: String = self
            .writer()
            .borrow_owner()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(map_err)?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(Error::corrupt(verdict))
        }
    }

    fn writer(&self) -> MutexGuard<'_, WriterConn> {
        // A panic while holding the writer can only come from SQLite or rusqlite; an open
        // transaction is rolled back when its guard drops, so the connection is usable.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a pooled reader connection and its prepared statements.
    fn with_reader<T>(
        &self,
        f: impl for<'c> FnOnce(&'c Connection, &mut Selects<'c>) -> Result<T>,
    ) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut reader = match pooled {
            Some(r) => r,
            None => {
                let conn = open_connection(&self.path, &self.options)?;
                conn.pragma_update(None, "query_only", true)
                    .map_err(map_err)?;
                configure_cache(&conn, &self.options)?;
                ReaderConn::open(conn)
            }
        };
        let out = reader.with_dependent_mut(|conn, selects| f(conn, selects));
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.options.max_idle_readers {
            pool.push(reader);
        }
        out
    }

    fn init_schema(&self) -> Result<()> {
        let writer = self.writer();
        let tx = write_tx(writer.borrow_owner())?;
        tx.execute_batch(SCHEMA).map_err(map_err)?;
        let version: Option<String> = tx
            .query_row(
                "SELECT value FROM eventlite_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_err)?;
        if !schema_version_known(version)? {
            tx.execute(
                "INSERT INTO eventlite_meta (key, value) VALUES ('format', ?1), \
                 ('schema_version', ?2)",
                params![FORMAT, SCHEMA_VERSION.to_string()],
            )
            .map_err(map_err)?;
        }
        tx.commit().map_err(map_err)
    }

    /// Refuses a file of a newer layout, reading only (what [`Self::init_schema`] checks
    /// before it writes).
    fn check_schema_version(&self) -> Result<()> {
        let writer = self.writer();
        let version: Option<String> = writer
            .borrow_owner()
            .query_row(
                "SELECT value FROM eventlite_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_err)?;
        if schema_version_known(version)? {
            Ok(())
        } else {
            Err(Error::not_a_store("no schema version"))
        }
    }

    fn sync_indexes(&self) -> Result<()> {
        let writer = self.writer();
        let tx = write_tx(writer.borrow_owner())?;
        let present = index_definitions(&tx)?;
        for name in IndexName::ALL {
            let (sql_name, create) = sql::index_sql(name);
            let want = self.options.indexes.is_enabled(name);
            let have = present.get(sql_name).map(String::as_str);
            if have.is_some() && (!want || have != Some(create)) {
                // Disabled, or made by another definition: drop (and recreate below).
                tx.execute_batch(&format!("DROP INDEX {sql_name}"))
                    .map_err(map_err)?;
            }
            if want && have != Some(create) {
                tx.execute_batch(create).map_err(map_err)?;
            }
        }
        tx.commit().map_err(map_err)
    }
}

/// Whether the file records a schema version (`false`: a store being made); one newer than
/// ours, or unreadable, is refused.
fn schema_version_known(version: Option<String>) -> Result<bool> {
    match version.map(|v| v.parse::<i64>()) {
        None => Ok(false),
        Some(Ok(v)) if v <= SCHEMA_VERSION => Ok(true),
        Some(Ok(v)) => Err(Error::not_a_store(format!(
            "schema version {v} is newer than this EventLite ({SCHEMA_VERSION})"
        ))),
        Some(Err(e)) => Err(Error::corrupt("unreadable schema version").with_source(e)),
    }
}

/// Refuses a store whose write-ahead log is damaged where SQLite would silently cut it.
fn check_log(path: &Path) -> Result<()> {
    let log = wal::log_path(path);
    match wal::inspect(path) {
        Ok(None) => Ok(()),
        Ok(Some(damage)) => Err(Error::corrupt(damage.describe(&log))),
        Err(e) => Err(eventlite_core::spi::io_error(
            ENGINE,
            &log.display().to_string(),
            e,
        )),
    }
}

fn open_connection(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let access = if options.read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| match map_err(e) {
        Error::Backend { message, .. } if !path.exists() => {
            Error::NotFound(format!("{}: {message}", path.display()))
        }
        other => other,
    })?;
    conn.busy_timeout(options.busy_timeout).map_err(map_err)?;
    // Plans from the schema alone, never from bound values: otherwise SQLite re-prepares a
    // statement each time a parameter it peeked at is bound again (an equality filter with an
    // ORDER BY, a LIMIT), which costs more than most pages' reads.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Refuses, without writing a byte, a file that is not an EventLite store.
fn check_is_store(conn: &Connection) -> Result<()> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(map_err)?;
    if tables.is_empty() {
        // A valid but empty SQLite database (for instance one whose creation was interrupted).
        return Ok(());
    }
    if !tables.iter().any(|t| t == "eventlite_meta") {
        return Err(Error::not_a_store(
            "an SQLite database without EventLite's tables",
        ));
    }
    let format: Option<String> = conn
        .query_row(
            "SELECT value FROM eventlite_meta WHERE key = 'format'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    match format.as_deref() {
        Some(FORMAT) => Ok(()),
        other => Err(Error::not_a_store(format!(
            "unknown store format {other:?}"
        ))),
    }
}

fn configure_cache(conn: &Connection, options: &SqliteOptions) -> Result<()> {
    conn.pragma_update(None, "cache_size", -i64::from(options.cache_size_kib))
        .map_err(map_err)?;
    conn.pragma_update(None, "mmap_size", sql::clamp(options.mmap_size))
        .map_err(map_err)
}

/// A checkpointer for the writer `conn`, or `None` when one cannot be started: then the writer
/// keeps SQLite's own checkpoints, which do the same work inline.
fn start_checkpointer<'c>(
    conn: &'c Connection,
    path: &Path,
    options: &SqliteOptions,
) -> Option<Checkpointer<'c>> {
    let own = open_connection(path, options).ok()?;
    // A checkpoint syncs as its connection's `synchronous` says: the writer's level.
    own.pragma_update(
        None,
        "synchronous",
        options.effective_synchronous().as_sql(),
    )
    .ok()?;
    Checkpointer::start(conn, own).ok()
}

fn configure_writer(conn: &Connection, options: &SqliteOptions) -> Result<()> {
    let mode: String = conn
        .query_row(
            &format!("PRAGMA journal_mode = {}", options.journal_mode.as_sql()),
            [],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case(options.journal_mode.as_sql()) {
        return Err(Error::backend(
            ENGINE,
            format!("journal mode {mode} instead of {:?}", options.journal_mode),
            std::io::Error::other("journal mode refused"),
        ));
    }
    conn.pragma_update(
        None,
        "synchronous",
        options.effective_synchronous().as_sql(),
    )
    .map_err(map_err)?;
    configure_cache(conn, options)
}

/// Our indexes in the file, by name, with the SQL that made them.
fn index_definitions(conn: &Connection) -> Result<HashMap<String, String>> {
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'queue'")
        .map_err(map_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(map_err)?;
    let mut out = HashMap::new();
    for row in rows {
        let (name, sql) = row.map_err(map_err)?;
        if sql::index_by_sql_name(&name).is_some() {
            out.insert(name, sql.unwrap_or_default());
        }
    }
    Ok(out)
}

/// Whether the file has the event table yet.
fn has_queue(conn: &Connection) -> Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'queue'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(map_err)
}

fn actual_indexes(conn: &Connection) -> Result<IndexConfig> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'queue'",
        )
        .map_err(map_err)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(map_err)?;
    let mut config = IndexConfig::none();
    for name in names {
        if let Some(index) = sql::index_by_sql_name(&name.map_err(map_err)?) {
            config.set(index, true);
        }
    }
    Ok(config)
}

fn query_on<'c>(
    selects: &mut Selects<'c>,
    conn: &'c Connection,
    query: &Query,
) -> Result<Vec<Event>> {
    // Streams and pages ask for a known number of events; don't grow the vector event by event.
    let mut out = Vec::with_capacity(query.limit.map_or(0, |l| l.min(4_096) as usize));
    query_into_on(selects, conn, query, &mut out)?;
    Ok(out)
}

fn query_into_on<'c>(
    selects: &mut Selects<'c>,
    conn: &'c Connection,
    query: &Query,
    out: &mut Vec<Event>,
) -> Result<()> {
    if query.filter.is_empty_range() || query.limit == Some(0) {
        out.clear();
        return Ok(());
    }
    let (sql, params) = sql::select(query);
    selects.events_into(conn, &sql, &params, out)
}

/// Stores the batches of a group commit in one transaction: each batch is checked against
/// the stream versions as they stand with the batches before it, a failing one is rejected
/// alone, and the rest get consecutive ids in queue order. Returns, for each stored entry,
/// its index, first id and stream versions.
fn append_on<'c>(
    conn: &'c Connection,
    parts: &mut WriterParts<'c>,
    entries: &mut [GroupEntry],
) -> Result<(Vec<Numbered>, bool)> {
    let WriterParts {
        insert_many,
        insert_one,
        tx: tx_stmts,
        ..
    } = parts;
    let tx_stmts = match tx_stmts {
        Some(stmts) => stmts,
        None => tx_stmts.insert(TxStmts::prepare(conn).map_err(map_err)?),
    };
    let mut tx = tx_stmts.begin(conn).map_err(map_err)?;
    waiting::check_claims(&tx, entries)?;
    let last = tx.last_id().map_err(map_err)?;
    // SQLite ids end at i64::MAX; past it SQLite would pick random free ids.
    let stored = number_group(entries, last as u64, i64::MAX as u64, |stream| {
        tx.prepare_cached("SELECT MAX(stream_version) FROM queue WHERE stream = ?1")
            .and_then(|mut s| s.query_row([stream], |r| r.get::<_, Option<i64>>(0)))
            .map(|v| v.map(|v| v as u64))
            .map_err(map_err)
    })?;
    // The group's rows in id order.
    let rows: Vec<(&PendingEvent, u64, Option<u64>)> = stored
        .iter()
        .flat_map(|(i, first, sv)| {
            entries[*i]
                .batch()
                .iter()
                .zip(sv)
                .enumerate()
                .map(move |(k, (p, v))| (p, first + k as u64, *v))
        })
        .collect();
    let row = |i: usize| {
        let (p, id, version) = rows[i];
        let fields = p.fields(id, version);
        let checksum = fields.checksum();
        insert::Row { fields, checksum }
    };
    // Multi-row statements cut SQLite's per-statement work for bulk appends; the tail goes one
    // row per statement. Rows are built a statement's worth at a time, so a large batch does
    // not stream a second copy of itself through the cache.
    let many = sql::ROWS_PER_INSERT;
    let full = rows.len() - rows.len() % many;
    let mut built = Vec::with_capacity(many.min(rows.len()));
    if full > 0 {
        let stmt = prepared(insert_many, conn, many)?;
        for start in (0..full).step_by(many) {
            built.clear();
            built.extend((start..start + many).map(row));
            stmt.insert(&tx, &built)
                .map_err(|e| map_write_err(&tx, e))?;
        }
    }
    if full < rows.len() {
        let stmt = prepared(insert_one, conn, 1)?;
        for i in full..rows.len() {
            stmt.insert(&tx, &[row(i)])
                .map_err(|e| map_write_err(&tx, e))?;
        }
    }
    drop(built);
    if stored.is_empty() {
        // Every batch was rejected: nothing to commit (the guard rolls back).
        return Ok((stored, true));
    }
    waiting::close_claims(&tx, entries, &stored)?;
    let may_wait = waiting::any_waiting_on(&tx, rows.iter().map(|(p, _, _)| *p))?;
    tx.commit(map_write_err)?;
    Ok((stored, may_wait))
}

fn count_on(conn: &Connection, filter: &Filter) -> Result<u64> {
    let (where_sql, params) = sql::where_clause(filter, None);
    let sql = format!("SELECT COUNT(*) FROM queue{where_sql}");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0)))
        .map(|n| n as u64)
        .map_err(map_err)
}

impl EventLog for SqliteBackend {
    /// Concurrent appends share a transaction and its sync ([`GroupCommit`]).
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>> {
        self.group
            .append(batch, |entries| self.commit_group(entries))
    }

    fn get(&self, id: u64) -> Result<Option<Event>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        self.with_reader(|conn, selects| selects.by_id(conn, id))
    }

    fn query(&self, query: &Query) -> Result<Vec<Event>> {
        self.with_reader(|conn, selects| query_on(selects, conn, query))
    }

    fn query_into(&self, query: &Query, out: &mut Vec<Event>) -> Result<()> {
        self.with_reader(|conn, selects| query_into_on(selects, conn, query, out))
    }

    fn count(&self, filter: &Filter) -> Result<u64> {
        self.with_reader(|conn, _| count_on(conn, filter))
    }

    fn query_with_total(&self, query: &Query) -> Result<(Vec<Event>, u64)> {
        self.with_reader(|conn, selects| {
            // One read transaction: both statements see the same snapshot. Dropped unfinished
            // on an error, it rolls back, so the pooled connection holds no snapshot.
            let tx = conn.unchecked_transaction().map_err(map_err)?;
            let total = count_on(conn, &query.filter)?;
            let events = query_on(selects, conn, query)?;
            tx.commit().map_err(map_err)?;
            Ok((events, total))
        })
    }

    fn explain(&self, query: &Query) -> Result<QueryPlan> {
        let (sql, params) = sql::select(query);
        let details: Vec<String> = self.with_reader(|conn, _| {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .map_err(map_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })?;
        let index = details.iter().find_map(|d| {
            d.split_whitespace()
                .find(|w| w.starts_with("idx_"))
                .and_then(sql::index_by_sql_name)
        });
        Ok(QueryPlan {
            index,
            full_scan: details.iter().any(|d| d.starts_with("SCAN queue")),
            sorts: details.iter().any(|d| d.contains("TEMP B-TREE")),
            detail: details.join("; "),
        })
    }

    fn indexes(&self) -> Result<IndexConfig> {
        self.with_reader(|conn, _| actual_indexes(conn))
    }

    /// `MAX(id)` reads the rightmost leaf of the table alone: were it replaced by a copy of
    /// another leaf (damage), the log would look shorter. A seek past that id descends by the
    /// interior pages' keys instead, and finds a row exactly when the tail is damaged so; both
    /// in one statement, one snapshot.
    fn last_id(&self) -> Result<u64> {
        let (last, beyond) = self.with_reader(|conn, _| {
            conn.prepare_cached(
                "SELECT m, (SELECT id FROM queue WHERE id > m LIMIT 1) \
                 FROM (SELECT COALESCE(MAX(id), 0) AS m FROM queue)",
            )
            .and_then(|mut s| {
                s.query_row([], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
                })
            })
            .map_err(map_err)
        })?;
        if let Some(id) = beyond {
            return Err(Error::corrupt(format!(
                "event {id} lies past the last id {last}: the end of the log is damaged"
            )));
        }
        Ok(last as u64)
    }
}

impl PositionStore for SqliteBackend {
    fn save_position(&self, name: &str, position: u64, at: i64) -> Result<()> {
        let writer = self.writer();
        writer
            .borrow_owner()
            .prepare_cached(
                "INSERT OR REPLACE INTO positions (name, position, updated_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![name, sql::clamp(position), at]))
            .map(drop)
            .map_err(map_err)
    }

    fn load_position(&self, name: &str) -> Result<Option<Position>> {
        self.with_reader(|conn, _| {
            conn.prepare_cached("SELECT name, position, updated_at FROM positions WHERE name = ?1")
                .and_then(|mut s| s.query_row([name], row_to_position).optional())
                .map_err(map_err)
        })
    }

    fn list_positions(&self) -> Result<Vec<Position>> {
        self.with_reader(|conn, _| {
            let mut stmt = conn
                .prepare_cached("SELECT name, position, updated_at FROM positions ORDER BY name")
                .map_err(map_err)?;
            let rows = stmt.query_map([], row_to_position).map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
    }

    fn delete_position(&self, name: &str) -> Result<bool> {
        let writer = self.writer();
        writer
            .borrow_owner()
            .prepare_cached("DELETE FROM positions WHERE name = ?1")
            .and_then(|mut s| s.execute([name]))
            .map(|n| n > 0)
            .map_err(map_err)
    }

    fn record_failure(&self, f: FailedEvent) -> Result<()> {
        let writer = self.writer();
        writer
            .borrow_owner()
            .prepare_cached(
                "INSERT OR REPLACE INTO projection_failures \
                 (projection, event_id, attempts, error, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    f.projection,
                    sql::clamp(f.event_id),
                    f.attempts,
                    f.error,
                    f.at
                ])
            })
            .map(drop)
            .map_err(map_err)
    }

    fn failures(&self, projection: &str) -> Result<Vec<FailedEvent>> {
        self.with_reader(|conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT projection, event_id, attempts, error, at FROM projection_failures \
                     WHERE projection = ?1 ORDER BY event_id",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map([projection], |r| {
                    Ok(FailedEvent {
                        projection: r.get(0)?,
                        event_id: u64_column(r, 1)?,
                        attempts: r.get(2)?,
                        error: r.get(3)?,
                        at: r.get(4)?,
                    })
                })
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
    }

    fn clear_failures(&self, projection: &str) -> Result<u64> {
        let writer = self.writer();
        writer
            .borrow_owner()
            .prepare_cached("DELETE FROM projection_failures WHERE projection = ?1")
            .and_then(|mut s| s.execute([projection]))
            .map(|n| n as u64)
            .map_err(map_err)
    }
}

impl SqliteBackend {
    /// Commits a group of appends (and releases of waiting records) in one transaction.
    fn commit_group(&self, entries: &mut [GroupEntry]) -> Result<Vec<Result<Vec<Event>>>> {
        let mut guard = self.writer();
        let (stored, may_wait) =
            guard.with_dependent_mut(|conn, parts| append_on(conn, parts, entries))?;
        let events = group_events(entries, stored);
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            self.hints.note(first.id, last.id, may_wait);
        }
        // Published under the writer's lock, once for the group: `look_elsewhere` counts on
        // every commit of this backend being published once the lock is free.
        self.signal.publish(&events);
        drop(guard);
        Ok(finish_group(entries, events))
    }
}

impl Notifications for SqliteBackend {
    fn commit_signal(&self) -> Arc<CommitSignal> {
        Arc::clone(&self.signal)
    }

    /// Looks for other connections' commits (`PRAGMA data_version`, then the log's size); a poll
    /// within 5 ms of the previous one is skipped, since that one woke everyone a commit from
    /// elsewhere concerns (many subscribers poll, each at its own pace).
    fn poll_commits(&self) -> Result<()> {
        self.look_elsewhere(POLL_SPACING).map(drop)
    }

    fn external_commits(&self) -> Result<u64> {
        self.look_elsewhere(Duration::ZERO)
    }
}

impl SqliteBackend {
    /// Compares SQLite's `data_version` (which moves when another connection commits to the
    /// file: this backend's writer, another handle, another process) with what it was at the
    /// last look, unless that was within `spacing`. When it moved, the log's size tells whether
    /// anyone but this backend appended (ids are gap-free: the newest id is the number of
    /// events); if so, wakes every subscriber. Returns how many events were appended by others
    /// (as of the last look), which grows with every commit from elsewhere.
    fn look_elsewhere(&self, spacing: Duration) -> Result<u64> {
        let mut watcher = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        let w = match watcher.as_mut() {
            Some(w) => w,
            None => {
                let conn = open_connection(&self.path, &self.options)?;
                conn.pragma_update(None, "query_only", true)
                    .map_err(map_err)?;
                watcher.insert(Watch {
                    conn,
                    version: None,
                    at: Instant::now(),
                    others: None,
                })
            }
        };
        if w.version.is_some() && w.at.elapsed() < spacing {
            return Ok(w.others.unwrap_or(0));
        }
        let version: i64 = w
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(map_err)?;
        w.at = Instant::now();
        if w.version == Some(version) {
            return Ok(w.others.unwrap_or(0));
        }
        // Under the writer's lock, every commit of this backend is published: the newest id
        // and the published count then agree unless someone else appended.
        let _writer = self.writer();
        let newest: i64 = w
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM queue", [], |r| r.get(0))
            .map_err(map_err)?;
        let others = u64::try_from(newest)
            .unwrap_or(0)
            .saturating_sub(self.signal.published());
        if w.others != Some(others) {
            // The first look counts too: what was appended before it was never published.
            w.others = Some(others);
            self.signal.notify();
        }
        // Only now: a look that failed above leaves the change to be found by the next one.
        w.version = Some(version);
        Ok(others)
    }
}

/// The connection that watches a SQLite file for other connections' commits.
#[derive(Debug)]
struct Watch {
    conn: Connection,
    /// `data_version` at the last look (`None` before the first).
    version: Option<i64>,
    /// When that look was.
    at: Instant,
    /// Events in the log not published by this backend, at the last look.
    others: Option<u64>,
}

impl Maintenance for SqliteBackend {
    /// SQLite's `PRAGMA integrity_check` (at most 1,000 problems): the pages, and every index
    /// against the table both ways. Runs on a reader connection, beside writers.
    fn check_storage(&self) -> Result<Vec<String>> {
        self.with_reader(|conn, _| {
            let mut stmt = conn
                .prepare("PRAGMA integrity_check(1000)")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>());
            let log = wal::log_path(&self.path);
            let log_damage = match wal::inspect(&self.path) {
                Ok(damage) => damage.map(|d| d.describe(&log)),
                Err(e) => Some(format!("{}: cannot be read: {e}", log.display())),
            };
            match rows {
                Ok(rows) => Ok(rows
                    .into_iter()
                    .filter(|r| r != "ok")
                    .chain(log_damage)
                    .collect()),
                // A file too damaged to check is a finding, not a failure to check.
                Err(e) => Ok(vec![format!("integrity_check failed: {e}")]),
            }
        })
    }

    /// Waits for a background checkpoint in progress, then copies what is left of the log
    /// into the main file. Every commit is durable once it returns (under `Relaxed` too: a
    /// checkpoint syncs the main file), and the main file alone holds the store.
    fn checkpoint(&self) -> Result<()> {
        let writer = self.writer();
        writer.with_dependent(|conn, parts| {
            // A background checkpoint in progress would make ours busy: wait for it, then copy
            // whatever is left here, where what could not be copied is reported.
            if let Some(c) = &parts.checkpoints {
                c.wait();
            }
            if self.options.journal_mode != JournalMode::Wal {
                return Ok(());
            }
            let (busy, log, copied): (i64, i64, i64) = conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(map_err)?;
            if busy != 0 || copied < log {
                return Err(Error::busy(format!(
                    "checkpoint copied {copied} of {log} log pages: a reader holds older ones"
                )));
            }
            Ok(())
        })
    }
}

impl SnapshotStore for SqliteBackend {
    fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let writer = self.writer();
        writer
            .borrow_owner()
            .prepare_cached(
                "INSERT OR REPLACE INTO snapshots (name, event_id, state, metadata, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    snapshot.name,
                    sql::clamp(snapshot.event_id),
                    snapshot.state,
                    snapshot.metadata,
                    snapshot.created_at
                ])
            })
            .map(|_| ())
            .map_err(map_err)
    }

    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>> {
        self.with_reader(|conn, _| {
            conn.prepare_cached(
                "SELECT name, event_id, state, metadata, created_at FROM snapshots \
                 WHERE name = ?1 AND event_id <= ?2 ORDER BY event_id DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![name, sql::clamp(event_id)], row_to_snapshot)
                    .optional()
            })
            .map_err(map_err)
        })
    }

    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>> {
        self.with_reader(|conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name, event_id, state, metadata, created_at FROM snapshots \
                     WHERE name = ?1 ORDER BY event_id DESC LIMIT ?2 OFFSET ?3",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(
                    params![name, sql::clamp(limit), sql::clamp(offset)],
                    row_to_snapshot,
                )
                .map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_err)
        })
    }

    fn snapshot_names(&self) -> Result<Vec<String>> {
        self.with_reader(|conn, _| {
            let mut stmt = conn
                .prepare_cached("SELECT DISTINCT name FROM snapshots ORDER BY name")
                .map_err(map_err)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(map_err)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(map_err)
        })
    }

    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
        let writer = self.writer();
        writer
            .borrow_owner()
            .prepare_cached("DELETE FROM snapshots WHERE name = ?1 AND event_id = ?2")
            .and_then(|mut s| s.execute(params![name, sql::clamp(event_id)]))
            .map(|n| n > 0)
            .map_err(map_err)
    }

    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64> {
        let writer = self.writer();
        writer
            .borrow_owner()
            .prepare_cached("DELETE FROM snapshots WHERE name = ?1 AND event_id < ?2")
            .and_then(|mut s| s.execute(params![name, sql::clamp(event_id)]))
            .map(|n| n as u64)
            .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventlite_core::Order;

    /// An event over SQLite's length limit (lowered here, so that the test stays small) fails
    /// its own append with `InvalidEvent`, and the writers whose appends shared its group
    /// commit store theirs.
    #[test]
    fn an_event_over_sqlites_limit_fails_its_writer_alone() -> anyhow::Result<()> {
        use eventlite_core::{EventStore, NewEvent};
        let dir = tempfile::tempdir()?;
        let backend = SqliteBackend::open(dir.path().join("e.sqlite"), SqliteOptions::default())?;
        {
            let writer = backend.writer();
            // SAFETY: the handle is valid while the writer's guard lives.
            unsafe {
                rusqlite::ffi::sqlite3_limit(
                    writer.borrow_owner().handle(),
                    rusqlite::ffi::SQLITE_LIMIT_LENGTH,
                    10_000,
                );
            }
        }
        let store = EventStore::new(backend);
        let big = format!("\"{}\"", "x".repeat(20_000));
        const THREADS: usize = 8;
        const EACH: usize = 20;
        let outcomes: Vec<(bool, eventlite_core::Result<u64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (store, big) = (&store, &big);
                    s.spawn(move || {
                        (0..EACH)
                            .map(|i| {
                                let huge = t == 0 && i % 5 == 0;
                                let data = if huge { big.clone() } else { format!("{i}") };
                                let event = NewEvent::new("e").data_json(data);
                                (huge, store.store(event).map(|e| e.id))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a writer panicked"))
                .collect()
        });
        let mut ids = Vec::new();
        for (huge, outcome) in outcomes {
            match (huge, outcome) {
                (true, Err(Error::InvalidEvent { .. })) => {}
                (false, Ok(id)) => ids.push(id),
                (huge, other) => anyhow::bail!("huge: {huge}, outcome: {other:?}"),
            }
        }
        ids.sort_unstable();
        let stored = THREADS * EACH - EACH / 5;
        assert_eq!(ids, (1..=stored as u64).collect::<Vec<_>>());
        assert_eq!(store.last_id()?, stored as u64);
        Ok(())
    }

    /// A keyset page costs the same wherever its cursor is, also when the filter bounds the
    /// same column the cursor does: SQLite seeks to one bound per side and checks any other
    /// row by row, so a cursor beside a filter's `id_from` or `datetime_to` must be the bound
    /// it seeks to. Measured in virtual machine steps, which count the rows visited.
    #[test]
    fn a_deep_cursor_page_visits_what_a_shallow_one_does() -> anyhow::Result<()> {
        use eventlite_core::{Cursor, EventStore, ManualClock, NewEvent};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("e.sqlite");
        let options = SqliteOptions {
            indexes: IndexConfig::all(),
            ..SqliteOptions::default()
        };
        {
            let clock = std::sync::Arc::new(ManualClock::new(1_000));
            let store = EventStore::builder(SqliteBackend::open(&path, options.clone())?)
                .clock(clock.clone())
                .build();
            for i in 0..3_000 {
                store.store(NewEvent::new("tick").user("ada").correlation_id("c"))?;
                if i % 2 == 1 {
                    clock.advance(1);
                }
            }
        }
        let backend = SqliteBackend::open(&path, options)?;
        let all = backend.query(&Query::new(Filter::default(), Order::IdAsc))?;
        let (shallow, deep) = (&all[150], &all[2_850]);
        let (shallow_desc, deep_desc) = (&all[2_850], &all[150]);
        type Shape = fn() -> (Filter, Order);
        let shapes: [(&str, Shape); 5] = [
            ("a stream from an id", || {
                (
                    Filter {
                        id_from: Some(1),
                        ..Filter::default()
                    },
                    Order::IdAsc,
                )
            }),
            ("newest first up to an id", || {
                (
                    Filter {
                        id_to: Some(3_000),
                        ..Filter::default()
                    },
                    Order::IdDesc,
                )
            }),
            ("a correlation from an id", || {
                (
                    Filter {
                        id_from: Some(1),
                        ..Filter::correlation("c")
                    },
                    Order::IdAsc,
                )
            }),
            ("a time range, newest first", || {
                let f = Filter {
                    datetime_from: Some(0),
                    datetime_to: Some(10_000),
                    ..Filter::default()
                };
                (f, Order::DatetimeDesc)
            }),
            ("a user's time range, newest first", || {
                (
                    Filter {
                        datetime_to: Some(10_000),
                        ..Filter::user("ada")
                    },
                    Order::DatetimeDesc,
                )
            }),
        ];
        let mut costly = Vec::new();
        for (what, shape) in shapes {
            let (filter, order) = shape();
            let (near, far) = if order == Order::IdAsc {
                (shallow, deep)
            } else {
                (shallow_desc, deep_desc)
            };
            let steps = |c: &eventlite_core::Event| -> anyhow::Result<i64> {
                let q = Query {
                    after: Some(Cursor {
                        id: c.id,
                        datetime: c.datetime,
                    }),
                    ..Query::new(filter.clone(), order).limit(100)
                };
                assert_eq!(backend.query(&q)?.len(), 100, "{what}");
                let (sql, _) = sql::select(&q);
                let steps = backend.with_reader(|_, selects| Ok(selects.take_vm_steps(&sql)))?;
                Ok(i64::from(steps.expect("the query's statement is cached")))
            };
            steps(near)?; // resets the counter
            let (near_steps, far_steps) = (steps(near)?, steps(far)?);
            if far_steps > 2 * near_steps {
                costly.push(format!(
                    "{what}: {far_steps} steps 2,700 events deep, {near_steps} near the start"
                ));
            }
        }
        assert!(costly.is_empty(), "{costly:#?}");
        Ok(())
    }

    /// A page query is prepared once and reused as its parameters (values, offsets) change.
    /// SQLite re-prepares a statement whose plan peeked at a bound value each time that value
    /// is bound again; an equality filter with an ORDER BY did that on every page.
    #[test]
    fn pages_reuse_their_prepared_statement() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let backend = SqliteBackend::open(dir.path().join("e.sqlite"), SqliteOptions::default())?;
        type Shape = fn(i64) -> Query;
        let shapes: [Shape; 3] = [
            // A user's time window, newest first, a page deep.
            |i| Query {
                filter: Filter {
                    datetime_from: Some(i),
                    datetime_to: Some(i + 50),
                    user: Some(format!("user{i}")),
                    ..Filter::default()
                },
                order: Order::DatetimeDesc,
                after: None,
                offset: i as u64 * 100,
                limit: Some(101),
            },
            // A whole transaction group.
            |i| Query::new(Filter::correlation(format!("corr-{i}")), Order::IdAsc),
            // A cmd page.
            |i| Query::new(Filter::cmd(format!("cmd{i}")), Order::DatetimeDesc).limit(101),
        ];
        for shape in shapes {
            for i in 0..5 {
                backend.query_with_total(&shape(i))?;
            }
            let (sql, _) = sql::select(&shape(0));
            let reprepared = backend.with_reader(|_, selects| Ok(selects.reprepares(&sql)))?;
            assert_eq!(reprepared, Some(0), "{sql}");
        }
        Ok(())
    }
}
