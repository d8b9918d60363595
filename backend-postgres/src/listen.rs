//! The listener: one connection per store that `LISTEN`s on the store's channel and wakes
//! the store's subscriptions when another handle or process commits. It listens only while a
//! subscription exists, and registers its server process on the counter row meanwhile:
//! appends notify only when another handle's listener is registered, so neither a handle that
//! only appends nor one whose subscriptions only follow its own commits pays for
//! notifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use eventlite_core::spi::CommitSignal;
use postgres::fallible_iterator::FallibleIterator;

use crate::conn::{Connector, PgConn};
use crate::sql;

/// How long the listener waits for a notification before it looks whether it should stop.
const TICK: Duration = Duration::from_millis(200);
/// The first wait before an attempt to reconnect.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Ticks without a subscription before the listening connection is closed: subscriptions
/// that come and go in quick succession keep one connection.
const IDLE_TICKS: u32 = 10;
/// Ticks between looks at whether the listener is still registered (see [`reregister`]).
const CHECK_TICKS: u32 = 5;
/// How long a listening connection must have lasted for its loss to be reconnected at once:
/// one that a server (or a pooler in front of it) drops soon after each connect is
/// reconnected with a growing backoff instead.
const STABLE: Duration = Duration::from_secs(10);

/// The listener thread's handle; the thread ends soon after [`Listener::stop`].
#[derive(Debug)]
pub(crate) struct Listener {
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Starts listening on `channel`, ignoring the notifications of the server process
    /// `writer_pid` (the handle's own commits, which it publishes itself). While registered,
    /// the listener's own server process is in `listener_pid`.
    pub(crate) fn start(
        connector: Connector,
        channel: String,
        signal: Arc<CommitSignal>,
        writer_pid: Arc<AtomicI32>,
        listener_pid: Arc<AtomicI32>,
    ) -> Listener {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("eventlite-pg-listen".into())
            .spawn(move || {
                let pids = Pids {
                    writer: &writer_pid,
                    listener: &listener_pid,
                };
                listen(&connector, &channel, &signal, pids, &flag)
            });
        if spawned.is_err() {
            // No thread: subscriptions still see this handle's commits, and other processes'
            // at their next read.
            stop.store(true, Ordering::Relaxed);
        }
        Listener { stop }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The server processes of the handle's writer and listener connections.
#[derive(Clone, Copy)]
struct Pids<'a> {
    writer: &'a AtomicI32,
    listener: &'a AtomicI32,
}

/// Listens on `channel` and registers the connection's server process, in one transaction,
/// after putting it in `pid` (so that the handle's appends know it for their own). An append
/// that committed before the registration was not announced to it: the caller looks then.
fn register(conn: &mut PgConn, channel: &str, pid: &AtomicI32) -> eventlite_core::Result<()> {
    pid.store(crate::conn_pid(conn)?, Ordering::Relaxed);
    conn.client
        .batch_execute(&format!("LISTEN \"{channel}\"; {}", sql::REGISTER_LISTENER))
        .map_err(crate::conn::map_err)
}

/// Registers the connection again if its process is no longer on the list (another
/// registration can drop it: each prunes the processes its snapshot of `pg_stat_activity`
/// lacks, and that snapshot may predate this connection); whether it had to.
fn reregister(conn: &mut PgConn) -> eventlite_core::Result<bool> {
    let listed = conn
        .client
        .query_one(sql::STILL_REGISTERED, &[])
        .and_then(|row| row.try_get::<_, bool>(0))
        .map_err(crate::conn::map_err)?;
    if !listed {
        conn.client
            .batch_execute(sql::REGISTER_LISTENER)
            .map_err(crate::conn::map_err)?;
    }
    Ok(!listed)
}

fn listen(
    connector: &Connector,
    channel: &str,
    signal: &CommitSignal,
    pids: Pids<'_>,
    stop: &AtomicBool,
) {
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        if !signal.watching() {
            std::thread::sleep(TICK);
            continue;
        }
        let listening = connector.connect().and_then(|mut conn| {
            register(&mut conn, channel, pids.listener)?;
            Ok(conn)
        });
        let Ok(mut conn) = listening else {
            pids.listener.store(0, Ordering::Relaxed);
            // The server is away (or refuses LISTEN, as a standby does): try again later.
            pause(&mut backoff, stop);
            continue;
        };
        let connected = Instant::now();
        // Commits made while nobody listened are not announced again: look now.
        signal.notify();
        let mut idle = 0;
        let mut ticks: u32 = 0;
        let mut broken = false;
        'connected: while !stop.load(Ordering::Relaxed) {
            idle = if signal.watching() { 0 } else { idle + 1 };
            if idle > IDLE_TICKS {
                break;
            }
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(CHECK_TICKS) {
                match reregister(&mut conn) {
                    // What was committed while it was off the list was not announced to it.
                    Ok(true) => signal.notify(),
                    Ok(false) => {}
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            let mut notifications = conn.client.notifications();
            let mut waiting = notifications.timeout_iter(TICK);
            // A steady flow of notifications never times out: look up every tick regardless.
            let tick = Instant::now();
            while tick.elapsed() < TICK {
                match waiting.next() {
                    Ok(Some(n)) => {
                        if n.process_id() != pids.writer.load(Ordering::Relaxed) {
                            signal.notify();
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        broken = true;
                        break 'connected;
                    }
                }
            }
        }
        // A broken connection's process is dropped from the list by the next registration.
        if !broken {
            let _ = conn.client.batch_execute(sql::UNREGISTER_LISTENER);
        }
        pids.listener.store(0, Ordering::Relaxed);
        drop(conn);
        if !broken || connected.elapsed() >= STABLE {
            backoff = FIRST_BACKOFF;
        } else {
            pause(&mut backoff, stop);
        }
    }
}

/// Waits `backoff` (looking at `stop` meanwhile), then doubles it up to [`MAX_BACKOFF`].
fn pause(backoff: &mut Duration, stop: &AtomicBool) {
    let mut waited = Duration::ZERO;
    while waited < *backoff && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK.min(*backoff));
        waited += TICK.min(*backoff);
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}
