//! Connections: how one is opened and set up, the pool readers share, and how the client's
//! errors become EventLite's.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventlite_core::{Durability, Error, Result};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls, Statement};

use crate::ENGINE;

/// Statements kept per connection; past this the cache starts over.
const STATEMENTS: usize = 64;

/// A connection set up for one store, with the statements prepared on it.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    statements: HashMap<String, Statement>,
    /// The [`Connector::losses`] count this connection was last known good at.
    pub(crate) checked_at: u64,
    /// Whether the counter row's statements are prepared on the server (`PREPARE`), for
    /// appends.
    pub(crate) head_prepared: bool,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

impl PgConn {
    /// The statement for `sql`, prepared on first use.
    pub(crate) fn prepare(&mut self, sql: &str) -> Result<Statement> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        if self.statements.len() >= STATEMENTS {
            self.statements.clear();
        }
        let stmt = self.client.prepare(sql).map_err(map_err)?;
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

/// How to open a store's connections.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) config: Config,
    pub(crate) schema: String,
    pub(crate) durability: Durability,
    /// How many times a connection of this store was found lost: pooled connections last
    /// checked before the latest loss are checked again before use (a server restart closes
    /// them all, and each would otherwise fail one call).
    pub(crate) losses: Arc<AtomicU64>,
}

impl Connector {
    /// Notes that a connection was found lost.
    pub(crate) fn lost(&self) {
        self.losses.fetch_add(1, Ordering::Relaxed);
    }
}

impl Connector {
    /// A new connection in the store's schema.
    pub(crate) fn connect(&self) -> Result<PgConn> {
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(|e| connect_err(&self.config, e))?;
        // Queries use the store's indexes whenever one serves them, as on the embedded engines
        // (whose planners always prefer an index): without this, PostgreSQL scans small tables
        // whatever the indexes, and `explain` could not show the index policy at work. A filter
        // no index serves still scans. That scan's cost then carries the penalty PostgreSQL
        // gives disabled plans, far past the threshold for compiling the query with JIT, which
        // would cost each short query tens of milliseconds: JIT is off.
        //
        // Transactions are read committed whatever the role's default, so that an append that
        // waited for the id counter's lock sees the commit that held it. Set once here, a plain
        // `BEGIN` costs the server less than one that names its level, whose setting is undone
        // at every commit.
        let commit = match self.durability {
            Durability::Immediate => "on",
            Durability::Relaxed => "off",
        };
        client
            .batch_execute(&format!(
                "SET search_path TO \"{}\"; SET enable_seqscan = off; SET jit = off; \
                 SET synchronous_commit = {commit}; \
                 SET default_transaction_isolation = 'read committed'",
                self.schema
            ))
            .map_err(map_err)?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
            checked_at: self.losses.load(Ordering::Relaxed),
            head_prepared: false,
        })
    }
}

impl r2d2::ManageConnection for Connector {
    type Connection = PgConn;
    type Error = Error;

    fn connect(&self) -> Result<PgConn> {
        Connector::connect(self)
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<()> {
        conn.client.simple_query("").map(drop).map_err(map_err)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// A pooled connection that is not known to be lost: one last checked before the store's
/// latest loss is checked with an empty query first, and a closed one is passed over (the pool
/// drops it when it comes back).
pub(crate) fn checkout(
    pool: &r2d2::Pool<Connector>,
    losses: &AtomicU64,
) -> Result<r2d2::PooledConnection<Connector>> {
    for _ in 0..=pool.max_size() {
        let mut conn = pool.get().map_err(pool_err)?;
        let losses = losses.load(Ordering::Relaxed);
        if conn.checked_at >= losses || conn.client.simple_query("").is_ok() {
            conn.checked_at = losses;
            return Ok(conn);
        }
    }
    Err(Error::unavailable(
        "every pooled connection to PostgreSQL was lost, and so was a new one",
    ))
}

/// The pool readers share.
pub(crate) fn pool(
    connector: Connector,
    size: u32,
    timeout: Duration,
) -> Result<r2d2::Pool<Connector>> {
    Ok(r2d2::Pool::builder()
        .max_size(size.max(1))
        // Connections open as readers need them, not all at once when the store opens.
        .min_idle(Some(0))
        .connection_timeout(timeout)
        // A broken connection is dropped when its failure shows (`has_broken`); checking each
        // one out with a round trip would double the cost of a short read.
        .test_on_check_out(false)
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build_unchecked(connector))
}

/// Whether the error means the connection is gone (refused, reset, closed, timed out, or the
/// server shutting down).
pub(crate) fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    // Errors from the socket (refused, reset, timeouts) carry an io::Error.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    // Errors the client raises without a server reply (a closed connection, a timeout).
    e.code().is_none()
        && matches!(
            e.to_string().as_str(),
            s if s.contains("connection") || s.contains("timeout") || s.contains("timed out")
        )
}

/// The server a configuration names, as `host:port` (several comma-separated).
fn address(config: &Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                postgres::config::Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The EventLite error for a failed connection attempt: one the server refused to log in (a
/// wrong user, password or database) is the URL's fault; one that found no server says where
/// it looked and why it failed, which the client's own message ("error connecting to
/// server") leaves to its sources.
fn connect_err(config: &Config, e: postgres::Error) -> Error {
    let login = [
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        SqlState::INVALID_PASSWORD,
        SqlState::INVALID_CATALOG_NAME,
    ];
    if let Some(db) = e.as_db_error().filter(|db| login.contains(db.code())) {
        return Error::InvalidArgument(format!(
            "PostgreSQL at {} refused the login: {} ({}): check the URL's user, password and \
             database",
            address(config),
            db.message(),
            db.code().code()
        ));
    }
    if !is_connection_error(&e) {
        return map_err(e);
    }
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        source = s.source();
    }
    Error::unavailable(format!(
        "cannot connect to PostgreSQL at {}: {cause}",
        address(config)
    ))
    .with_source(e)
}

/// The EventLite error for a client error, keeping it as the source.
pub(crate) fn map_err(e: postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    if is_connection_error(&e) {
        return Error::unavailable(message).with_source(e);
    }
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL => Error::storage_full(message).with_source(e),
        Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => {
            Error::unavailable(message).with_source(e)
        }
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            Error::read_only(message).with_source(e)
        }
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::LOCK_NOT_AVAILABLE
                || *c == SqlState::QUERY_CANCELED =>
        {
            Error::busy(message).with_source(e)
        }
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => Error::backend(
            ENGINE,
            format!(
                "{message}: the role lacks a privilege the store needs (docs/postgres.md, \
                 Privileges)"
            ),
            e,
        ),
        _ => Error::backend(ENGINE, message, e),
    }
}

/// The EventLite error for a pool that could not hand out a connection in time.
pub(crate) fn pool_err(e: r2d2::Error) -> Error {
    Error::unavailable(format!("no connection to PostgreSQL: {e}")).with_source(e)
}
