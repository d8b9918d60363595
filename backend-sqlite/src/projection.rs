//! [`SqliteProjection`]: a read model in the caller's own SQLite database, kept from the log
//! exactly once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use eventlite_core::{
    Backend, BoxError, Error, Event, EventStore, FailedEvent, FailurePolicy, Filter,
    ProjectionStats, Result, Start, Stopper, SubscribeOptions,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

/// What a projection's handler gets: the read model's connection, inside the batch's open
/// transaction (write to it; do not commit or roll back), and the event.
pub type Handler<'h> = dyn FnMut(&Connection, &Event) -> std::result::Result<(), BoxError> + 'h;

const POSITIONS: &str = "CREATE TABLE IF NOT EXISTS eventlite_projections (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID";

/// A read model kept in the caller's own SQLite database (through rusqlite, re-exported as
/// [`crate::rusqlite`]), from an event store on any engine, **exactly once**: each batch's
/// writes and the projection's position commit in one transaction of that database, so a crash
/// never applies an event twice or skips one. The position lives in that database, in the table
/// `eventlite_projections`.
///
/// A handler that fails or panics is handled as its [`FailurePolicy`] says; a batch is first
/// written without savepoints, and only a batch with a failure is redone event by event, each
/// in a savepoint, so that a skipped event leaves nothing behind. A handler may therefore run
/// more than once for an event, its writes rolled back in between: keep its effects inside the
/// transaction it is given. A handler that commits or rolls back that transaction itself fails
/// the event.
///
/// ```
/// use eventlite_core::{EventStore, MemoryBackend, NewEvent};
/// use eventlite_sqlite::SqliteProjection;
/// use eventlite_sqlite::rusqlite::{Connection, params};
///
/// let store = EventStore::new(MemoryBackend::new());
/// store.store(NewEvent::new("order_placed").user("ada").data(&30))?;
/// store.store(NewEvent::new("order_placed").user("ada").data(&12))?;
///
/// let mut db = Connection::open_in_memory()?;
/// db.execute("CREATE TABLE totals (user TEXT PRIMARY KEY, total INTEGER NOT NULL)", [])?;
/// let mut totals = SqliteProjection::new(&mut db, "totals")?;
/// totals.catch_up(&store, &mut |tx, event| {
///     let amount: i64 = event.data()?;
///     tx.execute(
///         "INSERT INTO totals VALUES (?1, ?2)
///          ON CONFLICT (user) DO UPDATE SET total = total + excluded.total",
///         params![event.user, amount],
///     )?;
///     Ok(())
/// })?;
/// assert_eq!(totals.position()?, 2);
/// drop(totals);
/// let total: i64 = db.query_row("SELECT total FROM totals WHERE user = 'ada'", [], |r| r.get(0))?;
/// assert_eq!(total, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SqliteProjection<'c> {
    conn: &'c mut Connection,
    name: String,
    batch_size: u64,
    policy: FailurePolicy,
    filter: Filter,
    poll_interval: Duration,
    stopper: Stopper,
}

/// An error of the read model's database, told apart from the event store's.
fn model_err(e: rusqlite::Error) -> Error {
    Error::backend(crate::ENGINE, format!("read model: {e}"), e)
}

/// Why an event failed: the message, and the handler's error (none for a panic).
type Failure = (String, Option<BoxError>);

impl<'c> SqliteProjection<'c> {
    /// The projection `name` into `conn`'s database (creating its position table there if
    /// needed). It resumes after the position committed there.
    pub fn new(conn: &'c mut Connection, name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("projection name is empty".into()));
        }
        conn.execute(POSITIONS, []).map_err(model_err)?;
        Ok(SqliteProjection {
            conn,
            name: name.to_owned(),
            batch_size: 1_000,
            policy: FailurePolicy::default(),
            filter: Filter::default(),
            poll_interval: SubscribeOptions::default().poll_interval,
            stopper: Stopper::default(),
        })
    }

    /// Sets how many events one transaction of the read model holds (default 1,000).
    pub fn batch_size(mut self, n: u64) -> Self {
        self.batch_size = n;
        self
    }

    /// Sets what happens to events the handler fails on (default: stop).
    pub fn policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Handles only the events `filter` selects.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets how often [`run`](Self::run) looks for other processes' commits.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The position committed in the read model's database: every event at or below it has
    /// been applied (0: none yet).
    pub fn position(&self) -> Result<u64> {
        position_in(self.conn, &self.name)
    }

    /// A handle that stops [`run`](Self::run) from another thread (after the batch in hand).
    /// A stop is final for this projection.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Applies every event of `store` after the position, then returns.
    pub fn catch_up<B: Backend>(
        &mut self,
        store: &EventStore<B>,
        handler: &mut Handler<'_>,
    ) -> Result<ProjectionStats> {
        self.drive(store, handler, Duration::ZERO)
    }

    /// Applies every event of `store` after the position, then each new one as it commits,
    /// until stopped through [`stopper`](Self::stopper) or an event fails under
    /// [`FailurePolicy::stop`]. Called again after an error, it goes on from the position the
    /// read model holds.
    pub fn run<B: Backend>(
        &mut self,
        store: &EventStore<B>,
        handler: &mut Handler<'_>,
    ) -> Result<ProjectionStats> {
        self.drive(store, handler, Duration::MAX)
    }

    /// Sets the position back to 0 in one transaction with `clear` (which empties the read
    /// model's tables), and forgets the events the projection skipped: the next run rebuilds
    /// the read model from the whole log.
    pub fn reset<B: Backend>(
        &mut self,
        store: &EventStore<B>,
        clear: impl FnOnce(&Transaction<'_>) -> std::result::Result<(), BoxError>,
    ) -> Result<()> {
        let name = self.name.clone();
        let tx = self.begin()?;
        clear(&tx).map_err(|e| Error::backend(crate::ENGINE, "clearing the read model", e))?;
        save_position(&tx, &name, 0)?;
        tx.commit().map_err(model_err)?;
        store.clear_failed_events(&self.name)?;
        Ok(())
    }

    fn begin(&mut self) -> Result<Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(model_err)
    }

    fn drive<B: Backend>(
        &mut self,
        store: &EventStore<B>,
        handler: &mut Handler<'_>,
        wait: Duration,
    ) -> Result<ProjectionStats> {
        // The subscription starts at the position the read model committed, so that whatever
        // happened before (an error, a crash) nothing is skipped or applied twice.
        let options = SubscribeOptions::new()
            .start(Start::After(self.position()?))
            .filter(self.filter.clone())
            .batch_size(self.batch_size)
            .poll_interval(self.poll_interval);
        let mut subscription = store.subscribe(options)?.stopped_by(self.stopper.clone());
        let mut stats = ProjectionStats {
            position: subscription.current_position(),
            ..ProjectionStats::default()
        };
        loop {
            let Some(batch) = subscription.next_batch(wait)? else {
                if wait == Duration::MAX && !subscription.is_stopped() {
                    continue;
                }
                return Ok(stats);
            };
            let through = subscription.current_position();
            if self.apply_all(&batch, through, handler)? {
                stats.events += batch.len() as u64;
            } else {
                self.apply_one_by_one(store, &batch, through, handler, &mut stats)?;
            }
            stats.position = through;
        }
    }

    /// The fast path: the whole batch in one transaction, without savepoints. `false` (and
    /// nothing committed) when an event failed.
    fn apply_all(
        &mut self,
        batch: &[Event],
        through: u64,
        handler: &mut Handler<'_>,
    ) -> Result<bool> {
        let name = self.name.clone();
        let tx = self.begin()?;
        for event in batch {
            if attempt(&tx, event, handler).is_err() {
                return Ok(false);
            }
        }
        save_position(&tx, &name, through)?;
        tx.commit().map_err(model_err)?;
        Ok(true)
    }

    /// The batch again, each event in a savepoint, with the failure policy. Before waiting to
    /// retry, what came before the failing event is committed, so that the wait holds no lock
    /// on the read model. Skipped events are recorded in the event store once the read model
    /// committed (it may live in the same file).
    fn apply_one_by_one<B: Backend>(
        &mut self,
        store: &EventStore<B>,
        batch: &[Event],
        through: u64,
        handler: &mut Handler<'_>,
        stats: &mut ProjectionStats,
    ) -> Result<()> {
        let (name, policy) = (self.name.clone(), self.policy);
        let mut skipped = Vec::new();
        let mut tx = self.begin()?;
        for event in batch {
            let mut tries = 0u32;
            let failure = loop {
                tries += 1;
                let mut sp = tx.savepoint().map_err(model_err)?;
                match attempt(&sp, event, handler) {
                    Ok(()) => {
                        sp.commit().map_err(model_err)?;
                        stats.events += 1;
                        break None;
                    }
                    Err(why) => {
                        sp.rollback().map_err(model_err)?;
                        drop(sp);
                        if tries > policy.retries() {
                            break Some(why);
                        }
                        stats.retries += 1;
                        save_position(&tx, &name, event.id - 1)?;
                        tx.commit().map_err(model_err)?;
                        std::thread::sleep(policy.delay_before(tries));
                        tx = self
                            .conn
                            .transaction_with_behavior(TransactionBehavior::Immediate)
                            .map_err(model_err)?;
                    }
                }
            };
            let Some((message, source)) = failure else {
                continue;
            };
            if policy.skips() {
                stats.skipped += 1;
                skipped.push(FailedEvent {
                    projection: name.clone(),
                    event_id: event.id,
                    attempts: tries,
                    error: message,
                    at: store.clock().now_ms(),
                });
                continue;
            }
            // Stop: keep what came before the failing event, and resume at it.
            save_position(&tx, &name, event.id - 1)?;
            tx.commit().map_err(model_err)?;
            record(store, skipped)?;
            return Err(Error::ProjectionFailed {
                projection: name,
                event_id: event.id,
                message,
                source,
            });
        }
        save_position(&tx, &name, through)?;
        tx.commit().map_err(model_err)?;
        record(store, skipped)
    }
}

fn record<B: Backend>(store: &EventStore<B>, skipped: Vec<FailedEvent>) -> Result<()> {
    for failure in skipped {
        store.backend().record_failure(failure)?;
    }
    Ok(())
}

/// Runs the handler on one event inside `tx`; a panic, or a handler that ended the
/// transaction itself, is a failure too.
fn attempt(
    tx: &Connection,
    event: &Event,
    handler: &mut Handler<'_>,
) -> std::result::Result<(), Failure> {
    match catch_unwind(AssertUnwindSafe(|| handler(tx, event))) {
        Ok(Ok(())) if tx.is_autocommit() => Err((
            format!(
                "the handler ended the read model's transaction at event {}",
                event.id
            ),
            None,
        )),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((e.to_string(), Some(e))),
        Err(panic) => Err((
            format!(
                "the handler panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            ),
            None,
        )),
    }
}

fn position_in(conn: &Connection, name: &str) -> Result<u64> {
    let saved: Option<i64> = conn
        .query_row(
            "SELECT position FROM eventlite_projections WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(model_err)?;
    match saved {
        None => Ok(0),
        Some(p) => u64::try_from(p).map_err(|_| {
            Error::corrupt(format!("read model: projection {name:?} has position {p}"))
        }),
    }
}

fn save_position(tx: &Connection, name: &str, position: u64) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO eventlite_projections (name, position) VALUES (?1, ?2)",
    )
    .and_then(|mut s| s.execute(params![name, crate::sql::clamp(position)]))
    .map(drop)
    .map_err(model_err)
}
