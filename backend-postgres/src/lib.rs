//! # eventlite-postgres
//!
//! The PostgreSQL engine for EventLite: the same event log on a server, for several
//! application servers (or processes) appending to one log.
//!
//! - **Ids** come from one counter row, updated in each append's transaction: they are
//!   gap-free (a rolled-back append leaves no hole) and commit in id order, so a reader only
//!   ever sees a complete prefix of the log, however many writers in however many processes.
//! - **Stream expectations** are checked inside that transaction; a conflict stores nothing.
//! - **The guide's eight indexes** carry the SQLite engine's names and are reconciled with the
//!   options at open; `explain` reads `EXPLAIN (FORMAT JSON)`. The connections plan with
//!   `enable_seqscan = off`, so a query uses an enabled index that serves it, as on the
//!   embedded engines.
//! - **Subscriptions** wake on `LISTEN/NOTIFY`: a listener thread per store, listening while a
//!   subscription exists, wakes them; an append notifies in its transaction when a listener of
//!   another handle (or process) is registered on the counter row.
//! - **Readers** share a pool of connections; appends go through one connection per store,
//!   sharing commits when they arrive together ([`GroupCommit`]).
//! - **Errors**: a refused or lost connection is [`Error::Unavailable`] (the next call
//!   reconnects); a connection lost during `COMMIT` is [`Error::CommitOutcomeUnknown`]: read
//!   the stream's version, or the events after the last id you saw, to learn whether it landed.
//! - Calls may come from inside a tokio runtime: they then run on a thread of their own, since
//!   the synchronous client cannot block a runtime's thread.
//!
//! Each store lives in a schema of its own (option `schema`), so one database can hold several.
//!
//! ```no_run
//! use eventlite_core::{EventStore, NewEvent};
//! use eventlite_postgres::{PostgresBackend, PostgresOptions};
//!
//! let url = std::env::var("EVENTLITE_PG_URL")?;
//! let backend = PostgresBackend::open(PostgresOptions::new(url))?;
//! let store = EventStore::new(backend);
//! let placed = store.store(NewEvent::new("order_placed").data(&serde_json::json!({"sku": 7})))?;
//! assert_eq!(store.get(placed.id)?.map(|e| e.cmd), Some("order_placed".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod conn;
mod listen;
mod read;
mod sql;
mod waiting;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use conn::{Connector, PgConn, is_connection_error, map_err};
use eventlite_core::spi::{
    CommitSignal, EventLog, GroupCommit, GroupEntry, Maintenance, Notifications, Numbered,
    PendingEvent, PositionStore, SnapshotStore, WaitHints, finish_group, group_events,
    number_group,
};
use eventlite_core::{
    Durability, Error, Event, FailedEvent, Filter, IndexConfig, IndexName, Position, Query,
    QueryPlan, Result, Snapshot,
};
use postgres::{GenericClient, Row};

pub use postgres;

pub(crate) const ENGINE: &str = "postgres";

/// The `format` value in `eventlite_meta` that marks a schema as an EventLite store.
const FORMAT: &str = "eventlite-postgres";
/// The schema version this code writes; a store with a newer one is refused, one with an
/// older one is brought up to it at open.
const SCHEMA_VERSION: i64 = 3;

/// How to open a PostgreSQL store.
#[derive(Clone)]
pub struct PostgresOptions {
    /// The server, as a libpq-style URL or key-value string
    /// (`postgres://user:password@host:5432/db`, `host=… user=…`). Connections are unencrypted
    /// (no TLS yet: a URL with `sslmode=require` is refused at open): use it on a trusted
    /// network, or through a tunnel.
    pub url: String,
    /// The schema that holds the store's tables (created if missing). Lower-case ASCII letters,
    /// digits and `_`, starting with a letter or `_`, at most 48 characters. Default
    /// `eventlite`.
    pub schema: String,
    /// Which of the eight secondary indexes to keep (reconciled at open).
    pub indexes: IndexConfig,
    /// Keep the indexes the store has, whatever `indexes` says (and refuse a schema that
    /// holds no store).
    pub indexes_as_found: bool,
    /// `Immediate`: `synchronous_commit = on` (an acknowledged append is on the server's
    /// disk). `Relaxed`: `off` (the server may lose its last commits, within
    /// `wal_writer_delay` times three, if it crashes; never on a client crash).
    pub durability: Durability,
    /// Most connections readers hold at once.
    pub pool_size: u32,
    /// How long to wait for a connection (to connect, or for a free one in the pool).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PostgresOptions {
    /// The URL's password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let server = match self.url.parse::<postgres::Config>() {
            Ok(c) => format!(
                "user={:?} hosts={:?} ports={:?} dbname={:?}",
                c.get_user(),
                c.get_hosts(),
                c.get_ports(),
                c.get_dbname()
            ),
            Err(_) => "(unparsable)".to_owned(),
        };
        f.debug_struct("PostgresOptions")
            .field("server", &server)
            .field("schema", &self.schema)
            .field("indexes", &self.indexes)
            .field("indexes_as_found", &self.indexes_as_found)
            .field("durability", &self.durability)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PostgresOptions {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresOptions {
            url: url.into(),
            schema: "eventlite".to_owned(),
            indexes: IndexConfig::default(),
            indexes_as_found: false,
            durability: Durability::Immediate,
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// These options with the store in `schema` (the field's rules apply).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// These options keeping the secondary indexes `indexes`.
    pub fn indexes(mut self, indexes: IndexConfig) -> Self {
        self.indexes = indexes;
        self
    }

    /// These options keeping, or not, the indexes the store has whatever `indexes` says.
    pub fn indexes_as_found(mut self, as_found: bool) -> Self {
        self.indexes_as_found = as_found;
        self
    }

    /// These options with `durability` (the field says what each means here).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// These options with at most `size` reader connections.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// These options waiting at most `timeout` for a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// An EventLite store in a PostgreSQL schema. See the [crate documentation](crate).
pub struct PostgresBackend {
    options: PostgresOptions,
    connector: Connector,
    /// `None` only while the backend is dropped.
    pool: Option<r2d2::Pool<Connector>>,
    /// The one connection appends go through (`None` after a failure: the next append
    /// reconnects).
    writer: Mutex<Option<PgConn>>,
    /// The writer connection's server process, whose notifications the listener ignores
    /// (this handle publishes its own commits).
    writer_pid: Arc<AtomicI32>,
    /// The listener connection's server process (0 when there is none): an append need not
    /// notify it, since this handle wakes its own subscriptions.
    listener_pid: Arc<AtomicI32>,
    /// The newest id [`Notifications::poll_commits`] saw.
    polled: AtomicU64,
    /// When [`Notifications::poll_commits`] last looked.
    last_poll: Mutex<Option<Instant>>,
    group: GroupCommit,
    /// What recent commits saw of the waiting records (see `waiting.rs`).
    hints: WaitHints,
    signal: Arc<CommitSignal>,
    channel: String,
    listener: listen::Listener,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("schema", &self.options.schema)
            .field("indexes", &self.options.indexes)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.listener.stop();
        self.signal.close();
        // Closing a connection blocks on the client's own runtime, which panics inside another
        // runtime: `blocking` moves the closing off such a thread.
        let writer = self
            .writer
            .get_mut()
            .map_or_else(|e| e.into_inner().take(), Option::take);
        let pool = self.pool.take();
        let _ = blocking(move || {
            drop(writer);
            drop(pool);
            Ok(())
        });
    }
}

/// Runs `f` where the synchronous client may block: here, or, when called from inside an async
/// runtime (where the client would panic), on a thread of its own.
fn blocking<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl PostgresBackend {
    /// Connects, creates the store's schema and tables if missing, and reconciles the indexes
    /// with the options (unless `indexes_as_found`).
    ///
    /// A bad URL or schema name is [`Error::InvalidArgument`]; an unreachable server
    /// [`Error::Unavailable`]; a schema holding tables that are not an EventLite store
    /// [`Error::NotAStore`].
    pub fn open(options: PostgresOptions) -> Result<Self> {
        blocking(move || Self::open_here(options))
    }

    fn open_here(options: PostgresOptions) -> Result<Self> {
        if !sql::valid_schema(&options.schema) {
            return Err(Error::InvalidArgument(format!(
                "schema name {:?}: use lower-case ASCII letters, digits and _ (at most 48, \
                 not starting with a digit or pg_)",
                options.schema
            )));
        }
        let mut config: postgres::Config = options
            .url
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("PostgreSQL URL: {e}")))?;
        if !matches!(
            config.get_ssl_mode(),
            postgres::config::SslMode::Disable | postgres::config::SslMode::Prefer
        ) {
            return Err(Error::InvalidArgument(
                "PostgreSQL URL: sslmode=require asks for TLS, which this engine does not \
                 support yet: connect over a trusted network or a tunnel, without sslmode \
                 (or with sslmode=disable)"
                    .into(),
            ));
        }
        config.connect_timeout(options.connect_timeout);
        // A connection whose peer vanished (a crashed host, a dropped NAT entry) is noticed in
        // about a minute, not the system's default two hours: the listener waits on one.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("eventlite");
        }
        let connector = Connector {
            config,
            schema: options.schema.clone(),
            durability: options.durability,
            losses: Arc::default(),
        };
        let mut writer = connector.connect()?;
        init_schema(&mut writer, &options)?;
        let writer_pid = Arc::new(AtomicI32::new(conn_pid(&mut writer)?));
        let pool = conn::pool(
            connector.clone(),
            options.pool_size,
            options.connect_timeout,
        )?;
        let signal = CommitSignal::new();
        let channel = format!("eventlite_{}", options.schema);
        let listener_pid = Arc::new(AtomicI32::new(0));
        let listener = listen::Listener::start(
            connector.clone(),
            channel.clone(),
            Arc::clone(&signal),
            Arc::clone(&writer_pid),
            Arc::clone(&listener_pid),
        );
        Ok(PostgresBackend {
            options,
            connector,
            pool: Some(pool),
            writer: Mutex::new(Some(writer)),
            writer_pid,
            listener_pid,
            polled: AtomicU64::new(0),
            last_poll: Mutex::new(None),
            group: GroupCommit::new(),
            hints: WaitHints::new(),
            signal,
            channel,
            listener,
        })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }

    fn pool(&self) -> Result<&r2d2::Pool<Connector>> {
        self.pool
            .as_ref()
            .ok_or_else(|| Error::unavailable("the store is closed"))
    }

    /// A new writer connection, whose notifications the listener then ignores.
    fn connect_writer(&self) -> Result<PgConn> {
        let mut conn = self.connector.connect()?;
        self.writer_pid
            .store(conn_pid(&mut conn)?, AtomicOrdering::Relaxed);
        Ok(conn)
    }

    /// A pooled connection, checked if a connection was lost since it was last known good.
    fn checkout(&self) -> Result<r2d2::PooledConnection<Connector>> {
        conn::checkout(self.pool()?, &self.connector.losses)
    }

    fn writer(&self) -> MutexGuard<'_, Option<PgConn>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a pooled connection. A read that fails because its connection was found
    /// closed (the server restarted, say) is tried once more, on a connection checked first:
    /// reads change nothing.
    fn read<T: Send>(&self, f: impl Fn(&mut PgConn) -> Result<T> + Send + Sync) -> Result<T> {
        blocking(|| {
            let mut conn = self.checkout()?;
            match f(&mut conn) {
                Err(Error::Unavailable { .. }) if conn.client.is_closed() => {
                    self.connector.lost();
                    drop(conn);
                    f(&mut *self.checkout()?)
                }
                other => other,
            }
        })
    }

    /// The one non-negative number `sql` selects.
    fn read_number(&self, sql: &str) -> Result<u64> {
        self.read(|conn| {
            let stmt = conn.prepare(sql)?;
            let n: i64 = conn
                .client
                .query_one(&stmt, &[])
                .and_then(|r| r.try_get(0))
                .map_err(map_err)?;
            u64::try_from(n).map_err(|_| Error::corrupt(format!("{sql}: {n}")))
        })
    }

    /// Runs one statement that changes something other than the log, on a pooled connection.
    fn write(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<u64> {
        blocking(|| {
            let mut conn = self.checkout()?;
            let outcome = conn
                .prepare(sql)
                .and_then(|stmt| conn.client.execute(&stmt, params).map_err(map_err));
            if matches!(outcome, Err(Error::Unavailable { .. })) {
                self.connector.lost();
            }
            outcome
        })
    }
}

/// Creates a new store's schema and tables, checks an existing store's format (upgrading an
/// older layout), and reconciles the indexes: in one transaction, under a lock that other
/// openers of the same schema wait for.
fn init_schema(conn: &mut PgConn, options: &PostgresOptions) -> Result<()> {
    let schema = options.schema.as_str();
    let mut tx = conn.client.transaction().map_err(map_err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('eventlite:' || $1::text))",
        &[&schema],
    )
    .map_err(map_err)?;
    let tables: Vec<String> = tx
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .map_err(map_err)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .map_err(map_err)?;
    if !tables.is_empty() && !tables.iter().any(|t| t == "eventlite_meta") {
        return Err(Error::not_a_store(format!(
            "schema {schema:?} holds tables but no EventLite store"
        )));
    }
    if tables.is_empty() && options.indexes_as_found {
        return Err(Error::not_a_store(format!(
            "schema {schema:?} holds no EventLite store to open with the indexes it has"
        )));
    }
    let version = if tables.is_empty() {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .map_err(map_err)?;
        0
    } else {
        stored_version(&mut tx)?
    };
    // An existing store's tables are touched only to upgrade it (`SCHEMA` would lock them to
    // learn that its indexes exist), and then only once the counter's table is locked (see
    // `sql::UPGRADE`). `SCHEMA` then adds what an early store of version 1 lacked.
    if version < SCHEMA_VERSION {
        if version > 0 {
            tx.batch_execute("LOCK TABLE eventlite_head IN ACCESS EXCLUSIVE MODE")
                .map_err(map_err)?;
        }
        tx.batch_execute(sql::SCHEMA).map_err(map_err)?;
        tx.batch_execute(sql::UPGRADE).map_err(map_err)?;
        tx.execute(
            "INSERT INTO eventlite_meta (key, value) VALUES ('format', $1), \
             ('schema_version', $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&FORMAT, &SCHEMA_VERSION.to_string()],
        )
        .map_err(map_err)?;
    }
    if !options.indexes_as_found {
        sync_indexes(&mut tx, options.indexes)?;
    }
    tx.commit().map_err(map_err)
}

/// The layout version of an existing store, from its `eventlite_meta`.
fn stored_version(tx: &mut postgres::Transaction<'_>) -> Result<i64> {
    let meta: HashMap<String, String> = tx
        .query("SELECT key::text, value::text FROM eventlite_meta", &[])
        .map_err(|e| match e.code() {
            // Another application's table of that name.
            Some(&postgres::error::SqlState::UNDEFINED_COLUMN) => {
                Error::not_a_store("eventlite_meta is not EventLite's").with_source(e)
            }
            _ => map_err(e),
        })?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<std::result::Result<_, postgres::Error>>()
        .map_err(|e| Error::not_a_store("unreadable eventlite_meta").with_source(e))?;
    match (meta.get("format"), meta.get("schema_version")) {
        (Some(f), Some(v)) if f == FORMAT => match v.parse::<i64>() {
            Ok(v) if (1..=SCHEMA_VERSION).contains(&v) => Ok(v),
            Ok(v) => Err(Error::not_a_store(format!(
                "schema version {v} is not one this EventLite reads (1..={SCHEMA_VERSION})"
            ))),
            Err(e) => Err(Error::corrupt("unreadable schema version").with_source(e)),
        },
        (format, _) => Err(Error::not_a_store(format!(
            "unknown store format {format:?}"
        ))),
    }
}

/// The secondary indexes on `queue` (by SQL name), with the definition EventLite recorded
/// on each.
fn index_definitions(
    client: &mut impl postgres::GenericClient,
) -> Result<HashMap<String, Option<String>>> {
    client
        .query(
            "SELECT c.relname::text, obj_description(c.oid, 'pg_class') \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = 'queue'::regclass",
            &[],
        )
        .map_err(map_err)?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<std::result::Result<_, _>>()
        .map_err(map_err)
}

fn sync_indexes(tx: &mut postgres::Transaction<'_>, want: IndexConfig) -> Result<()> {
    let present = index_definitions(tx)?;
    for name in IndexName::ALL {
        let (sql_name, def) = sql::index_def(name);
        let wanted = want.is_enabled(name);
        let have = present.get(sql_name).map(|d| d.as_deref());
        let same = have == Some(Some(def));
        if have.is_some() && (!wanted || !same) {
            tx.batch_execute(&format!("DROP INDEX {sql_name}"))
                .map_err(map_err)?;
        }
        if wanted && !same {
            // The definition is ours (no caller text): quoting it as a literal is safe.
            tx.batch_execute(&format!(
                "CREATE INDEX {sql_name} ON queue {def}; COMMENT ON INDEX {sql_name} IS '{}'",
                def.replace('\'', "''")
            ))
            .map_err(map_err)?;
        }
    }
    Ok(())
}

/// The versions of `streams` in the store, read inside the append's transaction with
/// [`STREAM_VERSION`] for a single stream, [`STREAM_VERSIONS`] otherwise (and no statement
/// at all for appends without streams).
fn stored_versions(conn: &mut PgConn, streams: &[&[u8]]) -> Result<HashMap<Vec<u8>, u64>> {
    let rows = match streams {
        [] => return Ok(HashMap::new()),
        [stream] => {
            let one = conn.prepare(STREAM_VERSION)?;
            conn.client.query(&one, &[stream])
        }
        _ => {
            let many = conn.prepare(STREAM_VERSIONS)?;
            conn.client.query(&many, &[&streams])
        }
    }
    .map_err(map_err)?;
    let mut out = HashMap::with_capacity(streams.len());
    for row in rows {
        let stream: Vec<u8> = row.try_get(0).map_err(map_err)?;
        let version: Option<i64> = row.try_get(1).map_err(map_err)?;
        if let Some(v) = version {
            let v = u64::try_from(v)
                .map_err(|_| Error::corrupt(format!("stream version {v} out of range")))?;
            out.insert(stream, v);
        }
    }
    Ok(out)
}

/// How often [`Notifications::poll_commits`] looks at the server at most.
const POLL_SPACING: Duration = Duration::from_secs(1);

/// The caller text an INSERT statement carries at most (past one event's worth).
const INSERT_CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// What an append reads of the counter row: the last id; the cmds that waiting records wait
/// on, each as `x` and its hex, comma-separated (null past [`sql::MAX_WAITING_CMDS`]: then
/// every append looks); and the registered listeners' server processes, comma-separated.
static HEAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "last_id, CASE WHEN cardinality(waiting_cmds) <= {} THEN \
         array_to_string(ARRAY(SELECT 'x' || encode(c, 'hex') FROM unnest(waiting_cmds) AS c), \
         ',') END, array_to_string(listeners, ',')",
        sql::MAX_WAITING_CMDS
    )
});
/// Takes `$1` ids, if that many are left: adds them to the counter row, whose lock then holds
/// other appends off to the end of the transaction, and returns its [`HEAD`] (the last id
/// being the last one taken). Taking them with the update rather than locking the row first
/// and updating it at the commit spares the server a statement and a lock record per append
/// (see docs/benchmarks.md, 2026-12-03).
static TAKE_IDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE eventlite_head SET last_id = last_id + $1 WHERE last_id <= {} - $1 \
         RETURNING {}",
        i64::MAX,
        *HEAD
    )
});
/// The counter row's [`HEAD`], locked, for when [`TAKE_IDS`] found fewer ids left than asked.
static LOCK_HEAD: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM eventlite_head FOR UPDATE", *HEAD));
/// The versions of the streams in `$1`, for an append with many streams. The server plans it
/// again at every call (100 µs or more, in a statement log: a plan made without the array's
/// length is costed higher than one made with it), so that appends of one stream read
/// theirs with [`STREAM_VERSION`] instead.
const STREAM_VERSIONS: &str = "SELECT s, (SELECT max(stream_version) FROM queue WHERE stream = s) \
     FROM unnest($1::bytea[]) AS s";
/// The version of the stream `$1`; the server keeps one plan for it.
const STREAM_VERSION: &str =
    "SELECT $1::bytea, (SELECT max(stream_version) FROM queue WHERE stream = $1)";
/// Sets the counter row to `$1`, the last id stored, when that is not what [`TAKE_IDS`] left
/// there: ids taken for batches rejected since are given back.
const SET_HEAD: &str = "UPDATE eventlite_head SET last_id = $1";

/// Stores the batches of a group in one transaction: the ids are taken from the counter row
/// first, whose lock makes appends from every process commit one at a time, in id order; each
/// batch is checked against the stream versions as the batches before it left them, a failing
/// one is rejected alone (its ids given back), and the rest get consecutive ids in queue order.
fn append_on(
    conn: &mut PgConn,
    channel: &str,
    listener_pid: i32,
    entries: &mut [GroupEntry],
) -> Result<(Vec<Numbered>, bool)> {
    let insert = conn.prepare(sql::INSERT)?;
    // The counter row's statements are prepared on the server, so that the simple queries
    // below, which the server parses and plans whole every time, plan only `BEGIN`,
    // `EXECUTE`s and `COMMIT`.
    if !conn.head_prepared {
        conn.client
            .batch_execute(&format!(
                "PREPARE eventlite_take_ids(int8) AS {}; \
                 PREPARE eventlite_lock_head AS {}; \
                 PREPARE eventlite_set_head(int8) AS {SET_HEAD}",
                *TAKE_IDS, *LOCK_HEAD
            ))
            .map_err(map_err)?;
        conn.head_prepared = true;
    }
    let wanted: u64 = entries
        .iter()
        .filter(|e| !e.is_rejected())
        .map(|e| e.batch().len() as u64)
        .sum();
    // The transaction is begun, and the ids taken, in one round trip. The session is read
    // committed (see `Connector::connect`): after waiting for the counter's lock, the next
    // statements see the commit that held it. On an error the caller drops this connection,
    // and the server rolls the transaction back.
    let taking = match i64::try_from(wanted) {
        Ok(wanted) if wanted > 0 => conn
            .client
            .simple_query(&format!("BEGIN; EXECUTE eventlite_take_ids({wanted})"))
            .map_err(map_err)?,
        _ => Vec::new(),
    };
    let locking;
    let (counter, taken) = match first_row(&taking) {
        Some(row) => (row, wanted),
        None => {
            // Fewer ids left than asked (or no transaction begun, for none to take or a count
            // past any id): the row is locked as it is, and the batches that do not fit are
            // rejected.
            let begin = match taking.is_empty() {
                true => "BEGIN; ",
                false => "",
            };
            locking = conn
                .client
                .simple_query(&format!("{begin}EXECUTE eventlite_lock_head"))
                .map_err(map_err)?;
            let row = first_row(&locking)
                .ok_or_else(|| Error::corrupt("the id counter row is missing"))?;
            (row, 0)
        }
    };
    let head = counter.try_get(0).ok().flatten().unwrap_or_default();
    let head: u64 = head
        .parse()
        .map_err(|_| Error::corrupt(format!("the id counter holds {head:?}")))?;
    let last = head
        .checked_sub(taken)
        .ok_or_else(|| Error::corrupt(format!("the id counter holds {head}")))?;
    let look = waits_on_any(counter.try_get(1).ok().flatten(), entries);
    let notify = others_listen(counter.try_get(2).ok().flatten(), listener_pid);
    waiting::check_claims(conn, entries)?;
    let mut streams: Vec<&[u8]> = entries
        .iter()
        .flat_map(|e| e.batch().iter().filter_map(|p| p.stream.as_deref()))
        .map(str::as_bytes)
        .collect();
    streams.sort_unstable();
    streams.dedup();
    let stored_streams = stored_versions(conn, &streams)?;
    let client = &mut conn.client;
    let stored = number_group(entries, last, i64::MAX as u64, |stream| {
        Ok(stored_streams.get(stream.as_bytes()).copied())
    })?;
    if stored.is_empty() {
        // Every batch was rejected: nothing to commit.
        client.batch_execute("ROLLBACK").map_err(map_err)?;
        return Ok((stored, true));
    }
    let rows = stored.iter().flat_map(|(i, first, sv)| {
        entries[*i]
            .batch()
            .iter()
            .zip(sv)
            .enumerate()
            .map(move |(k, (p, v))| p.fields(first + k as u64, *v))
    });
    let stored_events: u64 = stored
        .iter()
        .map(|(i, _, _)| entries[*i].batch().len() as u64)
        .sum();
    let new_last = last + stored_events;
    // One statement per chunk: a bound array must stay under PostgreSQL's 1 GB per value.
    let mut cols = read::Columns::default();
    for fields in rows {
        cols.push(fields);
        if cols.bytes() >= INSERT_CHUNK_BYTES {
            client
                .execute(&insert, &cols.params())
                .map_err(map_insert_err)?;
            cols = read::Columns::default();
        }
    }
    if !cols.is_empty() {
        client
            .execute(&insert, &cols.params())
            .map_err(map_insert_err)?;
    }
    if stored.iter().any(|(i, _, _)| entries[*i].claim().is_some()) {
        waiting::close_claims(conn, entries, &stored)?;
    }
    // The ids of rejected batches are given back, the listeners notified, and whether a
    // record waits on these rows asked (its keys written out as hex) in the COMMIT's round
    // trip. A store where no record waits on the rows' cmds is not asked at all; one with too
    // many keys to ask is looked at after the append.
    let keys = match look {
        true => Some(waiting::keys_query(entries, &stored)),
        false => None,
    };
    let mut finish = String::with_capacity(96);
    if new_last != head {
        let _ = write!(finish, "EXECUTE eventlite_set_head({new_last}); ");
    }
    if notify {
        let _ = write!(finish, "NOTIFY \"{channel}\", '{new_last}'; ");
    }
    finish.push_str("COMMIT");
    let client = &mut conn.client;
    let committed = match &keys {
        Some(Some(query)) => client
            .simple_query(&format!("{query}; {finish}"))
            .map(|messages| waiting::answer(&messages)),
        Some(None) => client.batch_execute(&finish).map(|()| true),
        None => client.batch_execute(&finish).map(|()| false),
    };
    let may_wait = committed.map_err(|e| {
        if is_connection_error(&e) {
            Error::commit_outcome_unknown(format!(
                "the connection was lost while committing events {}..={}: read the stream's \
                 version or the events after id {last} to learn whether they were stored",
                last + 1,
                new_last
            ))
            .with_source(e)
        } else {
            map_err(e)
        }
    })?;
    Ok((stored, may_wait))
}

/// Whether a waiting record may wait on a row of `entries`, by its cmd: `cmds` is what
/// [`HEAD`] says of the waited-on cmds (`None`: too many to say, or unreadable).
fn waits_on_any(cmds: Option<&str>, entries: &[GroupEntry]) -> bool {
    let Some(cmds) = cmds else {
        return true;
    };
    if cmds.is_empty() {
        return false;
    }
    let waited: Option<Vec<Vec<u8>>> = cmds
        .split(',')
        .map(|cmd| cmd.strip_prefix('x').and_then(from_hex))
        .collect();
    let Some(waited) = waited else {
        return true;
    };
    entries
        .iter()
        .filter(|e| !e.is_rejected())
        .flat_map(|e| e.batch())
        .any(|p| waited.iter().any(|w| w == p.cmd.as_bytes()))
}

/// Whether a listener other than `own` (the handle's, 0 for none) is among `listeners`, as
/// [`HEAD`] lists them. Unreadable, it says yes: a notification too many only wakes a
/// listener for nothing.
fn others_listen(listeners: Option<&str>, own: i32) -> bool {
    listeners.is_none_or(|list| {
        list.split(',')
            .filter(|p| !p.is_empty())
            .any(|p| p.parse::<i32>() != Ok(own))
    })
}

/// The first row among a simple query's messages.
fn first_row(messages: &[postgres::SimpleQueryMessage]) -> Option<&postgres::SimpleQueryRow> {
    messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

/// The bytes of lower-case hex text, as PostgreSQL's `encode(…, 'hex')` writes them.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// Maps an error of the statements that insert a group's rows: a value over one of the
/// server's limits is the event's own fault ([`Error::InvalidEvent`]), which the group commit
/// reports to its writer alone.
fn map_insert_err(e: postgres::Error) -> Error {
    if e.code() == Some(&postgres::error::SqlState::PROGRAM_LIMIT_EXCEEDED) {
        let message = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |db| db.message().to_owned());
        return Error::invalid_event(message).with_source(e);
    }
    map_err(e)
}

/// A statement and its parameters.
type Prepared = (postgres::Statement, Vec<sql::Param>);

/// The count of `filter`, prepared on `conn` (`None`: nothing can match).
fn prepare_count(conn: &mut PgConn, filter: &Filter) -> Result<Option<Prepared>> {
    if filter.is_empty_range() {
        return Ok(None);
    }
    let t = sql::where_terms(filter, None);
    let stmt = conn.prepare(&format!("SELECT count(*) FROM queue{}", t.where_sql()))?;
    Ok(Some((stmt, t.params)))
}

fn run_count(client: &mut impl GenericClient, count: Option<Prepared>) -> Result<u64> {
    let Some((stmt, params)) = count else {
        return Ok(0);
    };
    let n: i64 = client
        .query_one(&stmt, &read::params(&params))
        .and_then(|r| r.try_get(0))
        .map_err(map_err)?;
    Ok(n as u64)
}

/// The SELECT of `query`, prepared on `conn` (`None`: nothing can match).
fn prepare_select(conn: &mut PgConn, query: &Query) -> Result<Option<Prepared>> {
    if query.limit == Some(0) || query.filter.is_empty_range() {
        return Ok(None);
    }
    let (sql, params) = sql::select(query);
    Ok(Some((conn.prepare(&sql)?, params)))
}

/// Runs a prepared SELECT into `out` (see [`EventLog::query_into`]).
fn run_select(
    client: &mut impl GenericClient,
    select: Option<Prepared>,
    out: &mut Vec<Event>,
) -> Result<()> {
    let Some((stmt, params)) = select else {
        out.clear();
        return Ok(());
    };
    let rows = client
        .query(&stmt, &read::params(&params))
        .map_err(map_err)?;
    let mut n = 0;
    for row in &rows {
        match out.get_mut(n) {
            Some(event) => read::with_fields(row, |f| f.write_into(event))??,
            None => out.push(read::with_fields(row, |f| f.to_event())??),
        }
        n += 1;
    }
    out.truncate(n);
    Ok(())
}

impl PostgresBackend {
    /// Commits a group of appends (and releases of waiting records) in one transaction.
    fn commit_group(&self, entries: &mut [GroupEntry]) -> Result<Vec<Result<Vec<Event>>>> {
        let mut guard = self.writer();
        // The connection is out of the slot while it appends: if anything panics
        // midway, it is dropped (and the server rolls the transaction back) instead of
        // staying there inside a transaction that holds the counter's lock.
        let mut conn = match guard.take() {
            Some(conn) => conn,
            None => self.connect_writer()?,
        };
        let losses = self.connector.losses.load(AtomicOrdering::Relaxed);
        if conn.checked_at < losses {
            // Another connection of this store was found lost (a server restart,
            // say): look at this one before appending on it.
            conn = match conn.client.simple_query("") {
                Ok(_) => conn,
                Err(_) => self.connect_writer()?,
            };
            conn.checked_at = losses;
        }
        let listener_pid = self.listener_pid.load(AtomicOrdering::Relaxed);
        let stored = match append_on(&mut conn, &self.channel, listener_pid, entries) {
            Ok(stored) => stored,
            Err(e) => {
                // Whatever broke, the next append starts on a fresh connection.
                drop(conn);
                if matches!(
                    e,
                    Error::Unavailable { .. } | Error::CommitOutcomeUnknown { .. }
                ) {
                    self.connector.lost();
                }
                // The commit may have landed (its outcome unknown): its notification
                // must not be taken for this handle's own, and this handle's
                // subscriptions look for themselves.
                self.writer_pid.store(0, AtomicOrdering::Relaxed);
                self.signal.notify();
                return Err(e);
            }
        };
        *guard = Some(conn);
        let (stored, may_wait) = stored;
        let events = group_events(entries, stored);
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            self.hints.note(first.id, last.id, may_wait);
        }
        self.signal.publish(&events);
        drop(guard);
        Ok(finish_group(entries, events))
    }
}

impl EventLog for PostgresBackend {
    /// Concurrent appends share a transaction ([`GroupCommit`]).
    fn append(&self, batch: Vec<PendingEvent>) -> Result<Vec<Event>> {
        blocking(|| {
            self.group
                .append(batch, |entries| self.commit_group(entries))
        })
    }

    fn get(&self, id: u64) -> Result<Option<Event>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        self.read(|conn| {
            let stmt =
                conn.prepare(&format!("SELECT {} FROM queue WHERE id = $1", sql::COLUMNS))?;
            let row = conn.client.query_opt(&stmt, &[&id]).map_err(map_err)?;
            row.map(|r| read::with_fields(&r, |f| f.to_event())?)
                .transpose()
        })
    }

    fn query(&self, query: &Query) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.query_into(query, &mut out)?;
        Ok(out)
    }

    fn query_into(&self, query: &Query, out: &mut Vec<Event>) -> Result<()> {
        blocking(|| {
            let mut conn = self.checkout()?;
            let select = prepare_select(&mut conn, query)?;
            match run_select(&mut conn.client, select, out) {
                Err(Error::Unavailable { .. }) if conn.client.is_closed() => {
                    // As `read` does; `out` is then refilled from scratch.
                    self.connector.lost();
                    drop(conn);
                    let mut conn = self.checkout()?;
                    let select = prepare_select(&mut conn, query)?;
                    run_select(&mut conn.client, select, out)
                }
                other => other,
            }
        })
    }

    fn count(&self, filter: &Filter) -> Result<u64> {
        self.read(|conn| {
            let count = prepare_count(conn, filter)?;
            run_count(&mut conn.client, count)
        })
    }

    /// The page and its total in one statement, which sees one snapshot: one round trip,
    /// where a transaction around two statements takes four.
    fn query_with_total(&self, query: &Query) -> Result<(Vec<Event>, u64)> {
        if query.filter.is_empty_range() {
            return Ok((Vec::new(), 0));
        }
        self.read(|conn| {
            if query.limit != Some(0) {
                let (sql, params) = sql::select_with_total(query);
                let stmt = conn.prepare(&sql)?;
                let rows = conn
                    .client
                    .query(&stmt, &read::params(&params))
                    .map_err(map_err)?;
                if let Some(first) = rows.first() {
                    let total: i64 = first.try_get(sql::COLUMN_COUNT).map_err(map_err)?;
                    let events = rows
                        .iter()
                        .map(|row| read::with_fields(row, |f| f.to_event())?)
                        .collect::<Result<Vec<_>>>()?;
                    return Ok((events, u64::try_from(total).unwrap_or(0)));
                }
            }
            // An empty page carries no count: the count and the page again, in one read-only
            // snapshot. A transaction that fails (or unwinds) rolls back when dropped, so the
            // connection goes back to the pool outside one.
            let count = prepare_count(conn, &query.filter)?;
            let select = prepare_select(conn, query)?;
            let mut tx = conn
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(map_err)?;
            let total = run_count(&mut tx, count)?;
            let mut events = Vec::new();
            run_select(&mut tx, select, &mut events)?;
            tx.commit().map_err(map_err)?;
            Ok((events, total))
        })
    }

    fn explain(&self, query: &Query) -> Result<QueryPlan> {
        let (sql, params) = sql::select(query);
        let plan: serde_json::Value = self.read(|conn| {
            let stmt = conn.prepare(&format!("EXPLAIN (FORMAT JSON) {sql}"))?;
            conn.client
                .query_one(&stmt, &read::params(&params))
                .and_then(|r| r.try_get(0))
                .map_err(map_err)
        })?;
        Ok(read::plan(&plan))
    }

    fn indexes(&self) -> Result<IndexConfig> {
        self.read(|conn| {
            let present = index_definitions(&mut conn.client)?;
            Ok(IndexConfig::from_names(
                present.keys().filter_map(|n| sql::index_by_sql_name(n)),
            ))
        })
    }

    fn last_id(&self) -> Result<u64> {
        self.read_number("SELECT COALESCE(max(id), 0) FROM queue")
    }
}

/// The server process behind a connection.
pub(crate) fn conn_pid(conn: &mut PgConn) -> Result<i32> {
    conn.client
        .query_one("SELECT pg_backend_pid()", &[])
        .and_then(|r| r.try_get(0))
        .map_err(map_err)
}

fn u64_of(row: &Row, i: usize) -> Result<u64> {
    let v: i64 = row.try_get(i).map_err(map_err)?;
    u64::try_from(v).map_err(|_| Error::corrupt(format!("negative value {v} in column {i}")))
}

fn text_of(row: &Row, i: usize) -> Result<String> {
    let bytes: &[u8] = row.try_get(i).map_err(map_err)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::corrupt(format!("column {i} is not UTF-8")))
}

fn row_to_snapshot(row: &Row) -> Result<Snapshot> {
    Ok(Snapshot {
        name: text_of(row, 0)?,
        event_id: u64_of(row, 1)?,
        state: row.try_get(2).map_err(map_err)?,
        metadata: row.try_get(3).map_err(map_err)?,
        created_at: row.try_get(4).map_err(map_err)?,
    })
}

fn row_to_position(row: &Row) -> Result<Position> {
    Ok(Position {
        name: text_of(row, 0)?,
        position: u64_of(row, 1)?,
        updated_at: row.try_get(2).map_err(map_err)?,
    })
}

impl SnapshotStore for PostgresBackend {
    fn put_snapshot(&self, s: Snapshot) -> Result<()> {
        self.write(
            "INSERT INTO eventlite_snapshots (name, event_id, state, metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, event_id) DO UPDATE SET \
             state = EXCLUDED.state, metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at",
            &[
                &s.name.as_bytes(),
                &sql::clamp(s.event_id),
                &s.state,
                &s.metadata,
                &s.created_at,
            ],
        )
        .map(drop)
    }

    fn snapshot_at_or_before(&self, name: &str, event_id: u64) -> Result<Option<Snapshot>> {
        let event_id = sql::clamp(event_id);
        self.read(|conn| {
            let stmt = conn.prepare(
                "SELECT name, event_id, state, metadata, created_at FROM eventlite_snapshots \
                 WHERE name = $1 AND event_id <= $2 ORDER BY event_id DESC LIMIT 1",
            )?;
            conn.client
                .query_opt(&stmt, &[&name.as_bytes(), &event_id])
                .map_err(map_err)?
                .map(|r| row_to_snapshot(&r))
                .transpose()
        })
    }

    fn list_snapshots(&self, name: &str, limit: u64, offset: u64) -> Result<Vec<Snapshot>> {
        let (limit, offset) = (sql::clamp(limit), sql::clamp(offset));
        self.read(|conn| {
            let stmt = conn.prepare(
                "SELECT name, event_id, state, metadata, created_at FROM eventlite_snapshots \
                 WHERE name = $1 ORDER BY event_id DESC LIMIT $2 OFFSET $3",
            )?;
            conn.client
                .query(&stmt, &[&name.as_bytes(), &limit, &offset])
                .map_err(map_err)?
                .iter()
                .map(row_to_snapshot)
                .collect()
        })
    }

    fn snapshot_names(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            // bytea orders bytewise, as the other engines order names.
            let stmt =
                conn.prepare("SELECT DISTINCT name FROM eventlite_snapshots ORDER BY name")?;
            conn.client
                .query(&stmt, &[])
                .map_err(map_err)?
                .iter()
                .map(|r| text_of(r, 0))
                .collect()
        })
    }

    fn delete_snapshot(&self, name: &str, event_id: u64) -> Result<bool> {
        self.write(
            "DELETE FROM eventlite_snapshots WHERE name = $1 AND event_id = $2",
            &[&name.as_bytes(), &sql::clamp(event_id)],
        )
        .map(|n| n > 0)
    }

    fn delete_snapshots_before(&self, name: &str, event_id: u64) -> Result<u64> {
        self.write(
            "DELETE FROM eventlite_snapshots WHERE name = $1 AND event_id < $2",
            &[&name.as_bytes(), &sql::clamp(event_id)],
        )
    }
}

impl PositionStore for PostgresBackend {
    fn save_position(&self, name: &str, position: u64, at: i64) -> Result<()> {
        self.write(
            "INSERT INTO eventlite_positions (name, position, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, \
             updated_at = EXCLUDED.updated_at",
            &[&name.as_bytes(), &sql::clamp(position), &at],
        )
        .map(drop)
    }

    fn load_position(&self, name: &str) -> Result<Option<Position>> {
        self.read(|conn| {
            let stmt = conn.prepare(
                "SELECT name, position, updated_at FROM eventlite_positions WHERE name = $1",
            )?;
            conn.client
                .query_opt(&stmt, &[&name.as_bytes()])
                .map_err(map_err)?
                .map(|r| row_to_position(&r))
                .transpose()
        })
    }

    fn list_positions(&self) -> Result<Vec<Position>> {
        self.read(|conn| {
            let stmt = conn.prepare(
                "SELECT name, position, updated_at FROM eventlite_positions ORDER BY name",
            )?;
            conn.client
                .query(&stmt, &[])
                .map_err(map_err)?
                .iter()
                .map(row_to_position)
                .collect()
        })
    }

    fn delete_position(&self, name: &str) -> Result<bool> {
        self.write(
            "DELETE FROM eventlite_positions WHERE name = $1",
            &[&name.as_bytes()],
        )
        .map(|n| n > 0)
    }

    fn record_failure(&self, f: FailedEvent) -> Result<()> {
        self.write(
            "INSERT INTO eventlite_failures (projection, event_id, attempts, error, at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (projection, event_id) DO UPDATE SET \
             attempts = EXCLUDED.attempts, error = EXCLUDED.error, at = EXCLUDED.at",
            &[
                &f.projection.as_bytes(),
                &sql::clamp(f.event_id),
                &i64::from(f.attempts),
                &f.error.as_bytes(),
                &f.at,
            ],
        )
        .map(drop)
    }

    fn failures(&self, projection: &str) -> Result<Vec<FailedEvent>> {
        self.read(|conn| {
            let stmt = conn.prepare(
                "SELECT projection, event_id, attempts, error, at FROM eventlite_failures \
                 WHERE projection = $1 ORDER BY event_id",
            )?;
            conn.client
                .query(&stmt, &[&projection.as_bytes()])
                .map_err(map_err)?
                .iter()
                .map(|r| {
                    let attempts = u64_of(r, 2)?;
                    Ok(FailedEvent {
                        projection: text_of(r, 0)?,
                        event_id: u64_of(r, 1)?,
                        attempts: u32::try_from(attempts).map_err(|_| {
                            Error::corrupt(format!("{attempts} attempts out of range"))
                        })?,
                        error: text_of(r, 3)?,
                        at: r.try_get(4).map_err(map_err)?,
                    })
                })
                .collect()
        })
    }

    fn clear_failures(&self, projection: &str) -> Result<u64> {
        self.write(
            "DELETE FROM eventlite_failures WHERE projection = $1",
            &[&projection.as_bytes()],
        )
    }
}

impl Notifications for PostgresBackend {
    fn commit_signal(&self) -> Arc<CommitSignal> {
        Arc::clone(&self.signal)
    }

    /// Other handles' commits arrive as notifications, which wake the subscriptions; this
    /// looks at the counter row too (one round trip, at most once a second), so that a
    /// listener cut off without noticing (a half-open connection, a proxy without
    /// notifications) delays a wake-up by about a second, instead of losing it.
    fn poll_commits(&self) -> Result<()> {
        // At most once a second per handle, however many subscriptions poll: the listener is
        // the way commits are noticed, this only bounds how late a lost notification makes one.
        {
            let mut last = self.last_poll.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < POLL_SPACING) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let head = match self.read_number("SELECT last_id FROM eventlite_head") {
            Ok(head) => head,
            // The server is away: the subscriptions wait on, and the listener wakes them when
            // it is back.
            Err(Error::Unavailable { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let before = self.polled.fetch_max(head, AtomicOrdering::Relaxed);
        if head > before.max(self.signal.head()) {
            self.signal.notify();
        }
        Ok(())
    }

    /// The log's newest id, read from the server: it moves with every commit, whoever made
    /// it, so a cached answer is never served after any commit (one round trip per check).
    fn external_commits(&self) -> Result<u64> {
        self.read_number("SELECT last_id FROM eventlite_head")
    }
}

impl Maintenance for PostgresBackend {
    /// Relaxed commits are made durable by one synchronous commit (which flushes the server's
    /// log up to it); with `Immediate` there is nothing to do, but the commit is cheap.
    fn checkpoint(&self) -> Result<()> {
        blocking(|| {
            let mut conn = self.checkout()?;
            // A transaction rolls back if anything in it fails, so the connection goes back to
            // the pool outside one.
            let mut tx = conn
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::ReadCommitted)
                .start()
                .map_err(map_err)?;
            tx.batch_execute(
                "SET LOCAL synchronous_commit = on; UPDATE eventlite_head SET last_id = last_id",
            )
            .map_err(map_err)?;
            tx.commit().map_err(map_err)
        })
    }

    /// Checks that the counter row agrees with the log (ids 1..=last, no gaps) and with the
    /// waiting records' keys, and, when the server has the `amcheck` extension, every index of
    /// the log against the table.
    fn check_storage(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut problems = Vec::new();
            let row = conn
                .client
                .query_one(
                    "SELECT (SELECT last_id FROM eventlite_head), COALESCE(max(id), 0), \
                     count(*), COALESCE(min(id), 1) FROM queue",
                    &[],
                )
                .map_err(map_err)?;
            let head: i64 = row.try_get(0).map_err(map_err)?;
            let max: i64 = row.try_get(1).map_err(map_err)?;
            let count: i64 = row.try_get(2).map_err(map_err)?;
            let min: i64 = row.try_get(3).map_err(map_err)?;
            if head != max {
                problems.push(format!(
                    "the id counter is at {head}, the newest event is {max}"
                ));
            }
            if count != max || min != 1 {
                problems.push(format!(
                    "ids are not 1..={max} without gaps: {count} events from id {min}"
                ));
            }
            let agree: bool = conn
                .client
                .query_one(sql::WAITING_CMDS_AGREE, &[])
                .map_err(map_err)?
                .try_get(0)
                .map_err(map_err)?;
            if !agree {
                problems.push(
                    "the waited-on cmds (eventlite_waiting_cmds and the counter row's list) \
                     disagree with the waiting records' keys"
                        .to_owned(),
                );
            }
            let amcheck = conn
                .client
                .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])
                .map_err(map_err)?
                .is_some();
            if amcheck {
                let indexes: Vec<String> = conn
                    .client
                    .query(
                        "SELECT c.relname::text FROM pg_index i \
                         JOIN pg_class c ON c.oid = i.indexrelid \
                         WHERE i.indrelid = 'queue'::regclass",
                        &[],
                    )
                    .map_err(map_err)?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(map_err)?;
                for index in indexes {
                    if let Err(e) = conn.client.execute(
                        "SELECT bt_index_check(c.oid, true) FROM pg_class c \
                         WHERE c.oid = to_regclass($1)",
                        &[&index],
                    ) {
                        // Corruption is a finding; anything else (no permission to run
                        // amcheck, a timeout) says nothing about the index.
                        let corrupt = e.code().is_some_and(|c| {
                            *c == postgres::error::SqlState::DATA_CORRUPTED
                                || *c == postgres::error::SqlState::INDEX_CORRUPTED
                        });
                        if corrupt {
                            problems.push(format!("index {index}: {e}"));
                        } else if is_connection_error(&e) {
                            return Err(map_err(e));
                        }
                    }
                }
            }
            Ok(problems)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{from_hex, others_listen};

    #[test]
    fn only_another_listener_is_notified() {
        assert!(!others_listen(Some(""), 0));
        assert!(!others_listen(Some("42"), 42));
        assert!(others_listen(Some("42"), 0));
        assert!(others_listen(Some("7,42"), 42));
        assert!(others_listen(Some("x"), 42));
        assert!(others_listen(None, 42));
    }

    #[test]
    fn hex_reads_what_postgres_encodes_and_nothing_else() {
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("00ff7a"), Some(vec![0, 255, b'z']));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("0G"), None);
        assert_eq!(from_hex("FF"), None);
    }
}
