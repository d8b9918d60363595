//! PostgreSQL-specific behaviour: options and errors that need no server, then, on the server
//! of `scripts/with-postgres`, handles that share a store, foreign schemas, and calls from
//! inside an async runtime.
mod common;

use std::sync::Arc;
use std::time::Duration;

use eventlite_core::{
    Error, EventStore, ExpectedVersion, Filter, IndexConfig, NewEvent, Order, Query,
    SubscribeOptions,
};
use eventlite_postgres::{PostgresBackend, PostgresOptions};

/// Runs `test` with the server's URL, or says it was skipped (see `common::unavailable`).
fn with_server(test: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    match common::unavailable() {
        Some(why) => {
            eventlite_conformance::skipped("the PostgreSQL tests of tests/postgres.rs were", &why);
            Ok(())
        }
        None => test(),
    }
}

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Options whose connections carry an application name of their own, by which
/// [`wait_for_lock_waits`] finds them. Their lock waits end after 30 s: a test that fails while
/// another connection holds a lock they wait for then fails instead of hanging.
fn named_options(schema: &common::Schema, name: &str) -> PostgresOptions {
    let options = schema.options(IndexConfig::all());
    let url = with_param(&options.url, &format!("application_name={name}"));
    PostgresOptions {
        url: with_param(&url, "options=-c%20lock_timeout%3D30000"),
        ..options
    }
}

/// Waits (up to a deadline) until `n` connections named `name` wait for a lock.
fn wait_for_lock_waits(admin: &mut postgres::Client, name: &str, n: i64) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&name],
            )?
            .try_get(0)?;
        if waiting == n {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{waiting} connections named {name} wait for a lock, not {n}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Holds the counter row of `schema`'s store, as an append in flight does, until committed.
fn hold_counter(client: &mut postgres::Client, schema: &str) -> anyhow::Result<()> {
    client.batch_execute(&format!(
        "BEGIN; SELECT last_id FROM \"{schema}\".eventlite_head FOR UPDATE"
    ))?;
    Ok(())
}

/// What a scoped thread returned, its panic turned into an error naming `what`.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>, what: &str) -> anyhow::Result<T> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("{what} panicked"))
}

/// Runs `sql` with `schema` as the search path.
fn in_schema(admin: &mut postgres::Client, schema: &str, sql: &str) -> anyhow::Result<()> {
    admin.batch_execute(&format!(
        "SET search_path TO \"{schema}\"; {sql}; RESET search_path"
    ))?;
    Ok(())
}

#[test]
fn bad_options_are_invalid_arguments() {
    for schema in [
        "",
        "Upper",
        "1digit",
        "pg_catalog",
        "semi;colon",
        "quote\"d",
    ] {
        let options = PostgresOptions {
            schema: schema.into(),
            ..PostgresOptions::new("postgres://nobody@127.0.0.1:1/x")
        };
        let err = PostgresBackend::open(options).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{schema:?}: {err:?}"
        );
    }
    let err = PostgresBackend::open(PostgresOptions::new("postgres://a@b:notaport/x")).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    // TLS is not supported: a URL that requires it is refused before any connection.
    let tls = PostgresOptions::new("postgres://nobody@127.0.0.1:1/x?sslmode=require").schema("s");
    let err = PostgresBackend::open(tls).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("TLS")),
        "{err:?}"
    );
}

#[test]
fn options_set_one_by_one_are_the_fields() {
    let options = PostgresOptions::new("postgres://app@db/app")
        .schema("orders")
        .indexes(IndexConfig::all())
        .indexes_as_found(true)
        .durability(eventlite_core::Durability::Relaxed)
        .pool_size(3)
        .connect_timeout(Duration::from_secs(9));
    assert_eq!(options.schema, "orders");
    assert_eq!(options.indexes, IndexConfig::all());
    assert!(options.indexes_as_found);
    assert_eq!(options.durability, eventlite_core::Durability::Relaxed);
    assert_eq!(
        (options.pool_size, options.connect_timeout),
        (3, Duration::from_secs(9))
    );
}

#[test]
fn a_server_that_refuses_is_unavailable() {
    // Port 1 on the loopback: nothing listens there, so the connection is refused.
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(2),
        ..PostgresOptions::new("postgres://nobody@127.0.0.1:1/x")
    };
    let err = PostgresBackend::open(options).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the client's error is kept"
    );
    // The message says where it looked, and why it failed, not only "error connecting".
    let message = err.to_string();
    assert!(
        message.contains("127.0.0.1:1") && message.to_lowercase().contains("refused"),
        "{message}"
    );
}

/// A login the server refuses (no such role, no such database) is the URL's fault, not an
/// unavailable server: callers should not retry it.
#[test]
fn a_refused_login_is_an_invalid_argument() -> anyhow::Result<()> {
    with_server(|| {
        let config: postgres::Config = common::require_url()?.parse()?;
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            other => anyhow::bail!("the test server is not on TCP: {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres");
        for (user, dbname) in [("no_such_role", "postgres"), (user, "no_such_database")] {
            let url = format!("host={host} port={port} user={user} dbname={dbname}");
            let err = PostgresBackend::open(PostgresOptions::new(url)).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.contains("refused the login")),
                "{user}/{dbname}: {err:?}"
            );
        }
        Ok(())
    })
}

/// A subscription from the log's end, found empty, that only a notification can wake within
/// a test: its poll interval is an hour.
fn deaf_subscription(
    store: &EventStore<PostgresBackend>,
) -> anyhow::Result<eventlite_core::Subscription<'_, PostgresBackend>> {
    let mut sub = store.subscribe(
        SubscribeOptions::new()
            .start(eventlite_core::Start::End)
            .poll_interval(Duration::from_secs(3600)),
    )?;
    assert_eq!(sub.next_batch(Duration::ZERO)?, None);
    Ok(sub)
}

/// The ids of the subscription's next batch, waiting up to a minute for it. A batch that
/// came only with the look the subscription takes at its deadline is an error: nothing woke it.
fn next_ids(
    sub: &mut eventlite_core::Subscription<'_, PostgresBackend>,
) -> anyhow::Result<Option<Vec<u64>>> {
    let wait = Duration::from_secs(60);
    let asked = std::time::Instant::now();
    let batch = sub.next_batch(wait)?;
    anyhow::ensure!(
        batch.is_none() || asked.elapsed() < wait,
        "the batch came with the look at the deadline: no wake-up"
    );
    Ok(batch.map(|b| b.into_iter().map(|e| e.id).collect()))
}

/// Two handles on one store (as two application servers would have): ids stay one sequence,
/// stream checks see the other handle's events, and a subscription on one handle is woken
/// by the other's commit through `LISTEN/NOTIFY`, not by polling (its poll interval is an
/// hour).
#[test]
fn two_handles_share_one_log() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let a = schema.store()?;
        let b = schema.store()?;
        let first = a.store(NewEvent::new("opened").stream("acct", ExpectedVersion::NoStream))?;
        let second =
            b.store(NewEvent::new("deposited").stream("acct", ExpectedVersion::Exact(1)))?;
        assert_eq!((first.id, second.id), (1, 2));
        let stale = a.store(NewEvent::new("deposited").stream("acct", ExpectedVersion::Exact(1)));
        assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");

        // Appends made while the subscription waits (its listener registered) wake it.
        let mut sub = deaf_subscription(&b)?;
        let mut admin = schema.admin()?;
        wait_for_listeners(&mut admin, &schema.name, 1)?;
        std::thread::scope(|s| {
            let appender = s.spawn(|| {
                (0..20)
                    .map(|_| a.store(NewEvent::new("tick")).map(|e| e.id))
                    .collect::<Result<Vec<_>, _>>()
            });
            let mut got = Vec::new();
            while got.len() < 20 {
                got.extend(next_ids(&mut sub)?.ok_or_else(|| anyhow::anyhow!("no batch"))?);
            }
            let appended = joined(appender, "the appender")??;
            assert_eq!(got, appended);
            anyhow::Ok(())
        })
    })
}

/// A store's id counter set to `last`, as if that many ids had been given.
fn set_counter(admin: &mut postgres::Client, schema: &str, last: u64) -> anyhow::Result<()> {
    in_schema(
        admin,
        schema,
        &format!("UPDATE eventlite_head SET last_id = {last}"),
    )
}

/// A store's id counter and its number of events.
fn counter_and_rows(admin: &mut postgres::Client, schema: &str) -> anyhow::Result<(u64, u64)> {
    let row = admin.query_one(
        &format!(
            "SELECT (SELECT last_id FROM \"{schema}\".eventlite_head), \
             (SELECT count(*) FROM \"{schema}\".queue)"
        ),
        &[],
    )?;
    let (counter, rows): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((u64::try_from(counter)?, u64::try_from(rows)?))
}

/// The last ids a store can give are given, and no more: a batch that does not fit is
/// refused whole with `StorageFull` (the counter and the log as they were), one that fits
/// exactly is stored, and a stream's expectation is still checked at the edge.
#[test]
fn the_last_ids_are_given_and_no_more() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let store = schema.store()?;
        let mut admin = schema.admin()?;
        let edge = i64::MAX as u64 - 3;
        set_counter(&mut admin, &schema.name, edge)?;
        let batch = |n: usize| (0..n).map(|_| NewEvent::new("tick")).collect::<Vec<_>>();
        let full = store.store_bulk(batch(4));
        assert!(matches!(full, Err(Error::StorageFull { .. })), "{full:?}");
        assert_eq!(counter_and_rows(&mut admin, &schema.name)?, (edge, 0));
        let stale = store.store(NewEvent::new("x").stream("s", ExpectedVersion::Exact(3)));
        assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
        let ids: Vec<u64> = store.store_bulk(batch(3))?.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![edge + 1, edge + 2, edge + 3]);
        let full = store.store(NewEvent::new("one more"));
        assert!(matches!(full, Err(Error::StorageFull { .. })), "{full:?}");
        assert_eq!(
            counter_and_rows(&mut admin, &schema.name)?,
            (i64::MAX as u64, 3)
        );
        Ok(())
    })
}

/// Writers racing for the last ids (their appends sharing commits, so that a group asks for
/// more than is left and some of its batches fit): each batch is stored whole or refused with
/// `StorageFull`, the stored ones hold the ids after the edge without a gap, and the counter
/// is the last of them, so what is left can still be taken exactly.
#[test]
fn writers_racing_for_the_last_ids_leave_no_gap() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let store = schema.store()?;
        let mut admin = schema.admin()?;
        let room = 40u64;
        let edge = i64::MAX as u64 - room;
        set_counter(&mut admin, &schema.name, edge)?;
        let stored: Vec<Vec<u64>> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..8u64)
                .map(|t| {
                    let store = &store;
                    s.spawn(move || -> anyhow::Result<Vec<u64>> {
                        let mut ids = Vec::new();
                        for r in 0..10u64 {
                            let n = 1 + (t + r) % 3;
                            let batch = (0..n).map(|_| NewEvent::new("tick")).collect();
                            match store.store_bulk(batch) {
                                Ok(events) => {
                                    let got: Vec<u64> = events.iter().map(|e| e.id).collect();
                                    anyhow::ensure!(
                                        got.len() as u64 == n
                                            && got.windows(2).all(|w| w[1] == w[0] + 1),
                                        "a batch of {n} stored as {got:?}"
                                    );
                                    ids.extend(got);
                                }
                                Err(Error::StorageFull { .. }) => {}
                                Err(e) => return Err(e.into()),
                            }
                        }
                        Ok(ids)
                    })
                })
                .collect();
            writers
                .into_iter()
                .map(|w| joined(w, "a writer")?)
                .collect::<anyhow::Result<_>>()
        })?;
        let mut ids: Vec<u64> = stored.into_iter().flatten().collect();
        ids.sort_unstable();
        let expected: Vec<u64> = (edge + 1..=edge + ids.len() as u64).collect();
        assert_eq!(
            ids, expected,
            "the stored ids are not the ones after the edge"
        );
        let stored = ids.len() as u64;
        assert_eq!(
            counter_and_rows(&mut admin, &schema.name)?,
            (edge + stored, stored)
        );
        let left = room - stored;
        if left > 0 {
            let rest = store.store_bulk((0..left).map(|_| NewEvent::new("rest")).collect())?;
            assert_eq!(rest.last().map(|e| e.id), Some(i64::MAX as u64));
        }
        let full = store.store(NewEvent::new("one more"));
        assert!(matches!(full, Err(Error::StorageFull { .. })), "{full:?}");
        Ok(())
    })
}

/// Appends from two handles contend for the id counter's lock. Under a role whose default
/// isolation is serializable, an append that waited for the lock would fail to serialize,
/// were its transaction not read committed: every append succeeds, and ids stay gap-free.
#[test]
fn appends_stay_read_committed_under_a_serializable_default() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let options = PostgresOptions {
            url: with_param(
                &schema.url,
                "options=-c%20default_transaction_isolation%3Dserializable",
            ),
            ..schema.options(IndexConfig::default())
        };
        let handles = [
            EventStore::new(PostgresBackend::open(options.clone())?),
            EventStore::new(PostgresBackend::open(options)?),
        ];
        let (threads, each) = (4, 50);
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..threads)
                .flat_map(|_| &handles)
                .map(|store| {
                    s.spawn(move || -> anyhow::Result<()> {
                        for _ in 0..each {
                            store.store(NewEvent::new("tick"))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            writers.into_iter().try_for_each(|w| joined(w, "a writer")?)
        })?;
        let ids: Vec<u64> = handles[0]
            .query(&Query::default())?
            .iter()
            .map(|e| e.id)
            .collect();
        let n = 2 * threads * each;
        assert_eq!(ids, (1..=n).collect::<Vec<_>>());
        Ok(())
    })
}

/// A handle listens for other handles' commits only while a subscription exists on it: one
/// that only appends is not sent a notification for each of its own commits. A listening
/// connection registers on the counter row (in the transaction of its `LISTEN`) and leaves it
/// before it stops. Listening again for a later subscription, it still delivers another
/// handle's commit.
#[test]
fn a_handle_listens_only_while_a_subscription_exists() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let options = schema.options(IndexConfig::all());
        let mut admin = schema.admin()?;
        let store = EventStore::new(PostgresBackend::open(options.clone())?);
        let other = EventStore::new(PostgresBackend::open(options)?);
        store.store(NewEvent::new("opened"))?;
        // Not listening, over several of the listener's 200 ms ticks.
        let quiet = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < quiet {
            let listening = registered(&mut admin, &schema.name)?;
            anyhow::ensure!(
                listening.is_empty(),
                "a handle with no subscription listens"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let sub = store.subscribe(SubscribeOptions::new())?;
        wait_for_listeners(&mut admin, &schema.name, 1)?;
        drop(sub);
        wait_for_listeners(&mut admin, &schema.name, 0)?;
        let mut sub = deaf_subscription(&store)?;
        wait_for_listeners(&mut admin, &schema.name, 1)?;
        let appended = other.store(NewEvent::new("elsewhere"))?;
        assert_eq!(next_ids(&mut sub)?, Some(vec![appended.id]));
        Ok(())
    })
}

/// A listening connection that the server drops soon after each connect (a pooler's or the
/// server's idle timeout, an operator's terminate) is reconnected with a growing backoff,
/// not at once every time; once it is left alone, the handle listens and delivers again.
#[test]
fn a_listener_dropped_after_each_connect_backs_off() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let mut admin = schema.admin()?;
        let store = schema.store()?;
        let other = schema.store()?;
        let mut sub = deaf_subscription(&store)?;
        // Every listening connection that registers within 3 s is terminated at once.
        let mut terminated = std::collections::HashSet::new();
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until {
            for pid in registered(&mut admin, &schema.name)? {
                if terminated.insert(pid) {
                    admin.execute("SELECT pg_terminate_backend($1)", &[&pid])?;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Reconnecting at once, each connect lasting a few ms, would make dozens.
        anyhow::ensure!(
            (2..=12).contains(&terminated.len()),
            "{} listening connections in 3 s",
            terminated.len()
        );
        wait_for_listeners_but(&mut admin, &schema.name, &terminated)?;
        let appended = other.store(NewEvent::new("elsewhere"))?;
        assert_eq!(next_ids(&mut sub)?, Some(vec![appended.id]));
        Ok(())
    })
}

/// Waits (up to a deadline) until a listener not in `gone` is registered.
fn wait_for_listeners_but(
    admin: &mut postgres::Client,
    schema: &str,
    gone: &std::collections::HashSet<i32>,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = registered(admin, schema)?;
        if now.iter().any(|pid| !gone.contains(pid)) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no new listener: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The server processes registered as listeners on the counter row.
fn registered(admin: &mut postgres::Client, schema: &str) -> anyhow::Result<Vec<i32>> {
    let row = admin.query_one(
        &format!("SELECT listeners FROM \"{schema}\".eventlite_head"),
        &[],
    )?;
    Ok(row.try_get(0)?)
}

/// Waits (up to a deadline) until `n` listeners are registered.
fn wait_for_listeners(admin: &mut postgres::Client, schema: &str, n: usize) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = registered(admin, schema)?;
        if now.len() == n {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "listeners {now:?}, not {n} of them"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An append notifies only when a listener of another handle is registered: not for a handle
/// whose own subscriptions are the only ones (it wakes them itself), nor once that handle's
/// subscription is gone. A plain client listening on the channel (not registered) sees which
/// commits were announced, in commit order.
#[test]
fn appends_notify_only_other_handles_listeners() -> anyhow::Result<()> {
    use postgres::fallible_iterator::FallibleIterator;
    with_server(|| {
        let schema = common::Schema::new()?;
        let options = schema.options(IndexConfig::all());
        let a = EventStore::new(PostgresBackend::open(options.clone())?);
        let b = EventStore::new(PostgresBackend::open(options.clone())?);
        let mut admin = schema.admin()?;
        let mut raw = schema.admin()?;
        raw.batch_execute(&format!("LISTEN \"eventlite_{}\"", options.schema))?;
        let mut announced = move || -> anyhow::Result<String> {
            let mut notifications = raw.notifications();
            let mut waiting = notifications.timeout_iter(Duration::from_secs(30));
            let n = waiting
                .next()?
                .ok_or_else(|| anyhow::anyhow!("no notification within 30 s"))?;
            Ok(n.payload().to_owned())
        };
        let sub = deaf_subscription(&a)?;
        wait_for_listeners(&mut admin, &schema.name, 1)?;
        let own = a.store(NewEvent::new("own"))?;
        let other = b.store(NewEvent::new("other"))?;
        assert_eq!(announced()?, other.id.to_string(), "{own:?} was announced");
        drop(sub);
        wait_for_listeners(&mut admin, &schema.name, 0)?;
        let unheard = b.store(NewEvent::new("nobody listens"))?;
        let mut sub = deaf_subscription(&a)?;
        wait_for_listeners(&mut admin, &schema.name, 1)?;
        let heard = b.store(NewEvent::new("a listens"))?;
        assert_eq!(
            announced()?,
            heard.id.to_string(),
            "{unheard:?} was announced"
        );
        assert_eq!(next_ids(&mut sub)?, Some(vec![heard.id]));
        Ok(())
    })
}

/// A subscription that starts while another handle appends gets every event, across its
/// listener's registration, each batch by a wake-up (its poll interval is an hour, and
/// [`next_ids`] refuses a batch found only by the look at its deadline). A wake-up lost around
/// the registration would be made up for by the next append's: the next test covers that.
#[test]
fn a_listener_registering_during_appends_misses_nothing() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    with_server(|| {
        let schema = common::Schema::new()?;
        let options = schema.options(IndexConfig::all());
        let a = EventStore::new(PostgresBackend::open(options.clone())?);
        let b = EventStore::new(PostgresBackend::open(options)?);
        let mut admin = schema.admin()?;
        let (stop, last) = (AtomicBool::new(false), AtomicU64::new(0));
        std::thread::scope(|s| {
            let writer = s.spawn(|| -> anyhow::Result<u64> {
                while !stop.load(Ordering::Relaxed) {
                    last.store(b.store(NewEvent::new("tick"))?.id, Ordering::Relaxed);
                }
                Ok(last.load(Ordering::Relaxed))
            });
            // Stops the writer however the reading below ends, so that the scope can end.
            struct Stop<'a>(&'a AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let stopping = Stop(&stop);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while last.load(Ordering::Relaxed) < 10 {
                anyhow::ensure!(!writer.is_finished(), "the writer stopped");
                anyhow::ensure!(std::time::Instant::now() < deadline, "the writer is stuck");
                std::thread::yield_now();
            }
            let mut now = 0;
            let mut sub =
                a.subscribe(SubscribeOptions::new().poll_interval(Duration::from_secs(3600)))?;
            let mut seen = 0;
            let mut take = |sub: &mut eventlite_core::Subscription<'_, PostgresBackend>| {
                let ids =
                    next_ids(sub)?.ok_or_else(|| anyhow::anyhow!("no wake-up after id {seen}"))?;
                anyhow::ensure!(
                    ids.iter().copied().eq(seen + 1..=seen + ids.len() as u64),
                    "after {seen}: {ids:?}"
                );
                seen += ids.len() as u64;
                anyhow::Ok(seen)
            };
            // Read on until the listener has registered and 50 events have come after it.
            let mut registered_at = None;
            while registered_at.is_none_or(|r| now < r + 50) {
                now = take(&mut sub)?;
                if registered_at.is_none() && !registered(&mut admin, &schema.name)?.is_empty() {
                    registered_at = Some(now);
                }
            }
            drop(stopping);
            let total = joined(writer, "the writer")??;
            while now < total {
                now = take(&mut sub)?;
            }
            anyhow::Ok(())
        })
    })
}

/// An append that commits just before a listener registers is not announced to it: the
/// listener's look after registering finds it. Each round queues, behind a held counter row,
/// another handle's append and then the registration of a new handle's listener, whose
/// subscription waits meanwhile; no append follows. A round proves something only when the
/// subscription's first read ran before the append's commit, as it does in most.
#[test]
fn a_commit_just_before_a_registration_is_found() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let (writer_name, reader_name) =
            (format!("w_{}", schema.name), format!("r_{}", schema.name));
        let b = EventStore::new(PostgresBackend::open(named_options(&schema, &writer_name))?);
        let mut admin = schema.admin()?;
        let mut holder = schema.admin()?;
        for round in 0..4 {
            let a = EventStore::new(PostgresBackend::open(named_options(&schema, &reader_name))?);
            hold_counter(&mut holder, &schema.name)?;
            std::thread::scope(|s| {
                let append = s.spawn(|| b.store(NewEvent::new("just before")));
                wait_for_lock_waits(&mut admin, &writer_name, 1)?;
                let mut sub = deaf_subscription(&a)?;
                wait_for_lock_waits(&mut admin, &reader_name, 1)?;
                let read = s.spawn(move || next_ids(&mut sub));
                holder.batch_execute("COMMIT")?;
                let appended = joined(append, "the append")??;
                let got = joined(read, "the reader")??;
                assert_eq!(got, Some(vec![appended.id]), "round {round}");
                anyhow::Ok(())
            })?;
            // Its listener leaves the list before the next round's registers.
            drop(a);
            wait_for_listeners(&mut admin, &schema.name, 0)?;
        }
        Ok(())
    })
}

/// The cmds the counter row says records wait on, and those of the keys themselves.
type Cmds = Vec<Vec<u8>>;
fn waiting_cmds(admin: &mut postgres::Client, schema: &str) -> anyhow::Result<(Cmds, Cmds)> {
    let row = admin.query_one(
        &format!(
            "SELECT (SELECT waiting_cmds FROM \"{schema}\".eventlite_head), \
             ARRAY(SELECT DISTINCT cmd FROM \"{schema}\".eventlite_waiting_keys ORDER BY cmd)"
        ),
        &[],
    )?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// The counter row follows the cmds that waiting records wait on, through parks, releases and
/// cancels (appends of other cmds skip looking for records). Past 64 such cmds it no longer
/// names them, and every append looks.
#[test]
fn the_counter_row_names_the_waited_on_cmds() -> anyhow::Result<()> {
    use eventlite_core::{Condition, WaitFor, WaitState};
    with_server(|| {
        let schema = common::Schema::new()?;
        let store = schema.store()?;
        let mut admin = schema.admin()?;
        let cmds =
            |names: &[&str]| -> Cmds { names.iter().map(|n| n.as_bytes().to_vec()).collect() };
        let both = WaitFor::new().all([Condition::new("paid"), Condition::new("packed")]);
        let first = store.store_when(NewEvent::new("ship").correlation_id("o-1"), both.clone())?;
        let second = store.store_when(NewEvent::new("ship").correlation_id("o-2"), both)?;
        let third = store.store_when(
            NewEvent::new("refund").correlation_id("o-3"),
            WaitFor::new().all([Condition::new("returned")]),
        )?;
        let all = cmds(&["packed", "paid", "returned"]);
        assert_eq!(waiting_cmds(&mut admin, &schema.name)?, (all.clone(), all));
        store.store(NewEvent::new("paid").correlation_id("o-1"))?;
        store.store(NewEvent::new("packed").correlation_id("o-1"))?;
        let released = store.waiting(first.id)?.map(|w| w.state);
        assert_eq!(released, Some(WaitState::Released));
        assert!(store.cancel_waiting(second.id)?);
        let left = cmds(&["returned"]);
        assert_eq!(
            waiting_cmds(&mut admin, &schema.name)?,
            (left.clone(), left)
        );
        store.store(NewEvent::new("returned").correlation_id("o-3"))?;
        let released = store.waiting(third.id)?.map(|w| w.state);
        assert_eq!(released, Some(WaitState::Released));
        assert_eq!(waiting_cmds(&mut admin, &schema.name)?, (vec![], vec![]));

        // 65 waited-on cmds: the counter row no longer names them, and appends look anyway.
        let many: Vec<_> = (0..65)
            .map(|i| {
                store.store_when(
                    NewEvent::new("done").correlation_id(format!("m-{i}")),
                    WaitFor::new().all([Condition::new(format!("step-{i}"))]),
                )
            })
            .collect::<Result<_, _>>()?;
        store.store(NewEvent::new("step-64").correlation_id("m-64"))?;
        let released = store.waiting(many[64].id)?.map(|w| w.state);
        assert_eq!(released, Some(WaitState::Released));
        Ok(())
    })
}

/// Turns the store in `schema` back into one of layout version 1.
fn to_version_1(admin: &mut postgres::Client, schema: &str) -> anyhow::Result<()> {
    in_schema(
        admin,
        schema,
        "DROP TRIGGER eventlite_waiting_keys_added ON eventlite_waiting_keys; \
         DROP TRIGGER eventlite_waiting_keys_removed ON eventlite_waiting_keys; \
         DROP TRIGGER eventlite_waiting_keys_truncated ON eventlite_waiting_keys; \
         DROP FUNCTION eventlite_waiting_keys_added(); \
         DROP FUNCTION eventlite_waiting_keys_removed(); \
         DROP FUNCTION eventlite_waiting_keys_truncated(); \
         ALTER TABLE eventlite_head DROP COLUMN waiting_cmds; \
         ALTER TABLE eventlite_head DROP COLUMN listeners; \
         DROP TABLE eventlite_waiting_cmds; \
         UPDATE eventlite_meta SET value = '1' WHERE key = 'schema_version'",
    )
}

/// A store of layout version 1 (no count on the counter row) is brought up to date at open:
/// the keys already there are counted, and an append that completes a record parked before
/// the upgrade still releases it.
#[test]
fn a_version_1_store_is_upgraded_at_open() -> anyhow::Result<()> {
    use eventlite_core::{Condition, WaitFor, WaitState};
    with_server(|| {
        let schema = common::Schema::new()?;
        let parked = {
            let store = schema.store()?;
            store.store_when(
                NewEvent::new("ship").correlation_id("o-1"),
                WaitFor::new().all([Condition::new("paid")]),
            )?
        };
        let mut admin = schema.admin()?;
        to_version_1(&mut admin, &schema.name)?;
        let store = schema.store()?;
        let paid = vec![b"paid".to_vec()];
        assert_eq!(
            waiting_cmds(&mut admin, &schema.name)?,
            (paid.clone(), paid)
        );
        let paid = store.store(NewEvent::new("paid").correlation_id("o-1"))?;
        assert_eq!(
            store.waiting(parked.id)?.map(|w| (w.state, w.event_id)),
            Some((WaitState::Released, Some(paid.id + 1)))
        );
        assert_eq!(waiting_cmds(&mut admin, &schema.name)?, (vec![], vec![]));
        let version: String = admin
            .query_one(
                &format!(
                    "SELECT value FROM \"{}\".eventlite_meta WHERE key = 'schema_version'",
                    schema.name
                ),
                &[],
            )?
            .try_get(0)?;
        assert_eq!(version, "3");
        Ok(())
    })
}

/// Stores of earlier layouts are brought up to date at open: one of an early version 1 (made
/// before the waiting tables existed) gets them, and one made by the first build of version 2
/// gets the current triggers (a bounded list, and one for TRUNCATE).
#[test]
fn early_layouts_get_what_they_lack() -> anyhow::Result<()> {
    use eventlite_core::{Condition, WaitFor};
    with_server(|| {
        let schema = common::Schema::new()?;
        drop(PostgresBackend::open(schema.options(IndexConfig::all()))?);
        let mut admin = schema.admin()?;
        to_version_1(&mut admin, &schema.name)?;
        admin.batch_execute(&format!(
            "DROP TABLE \"{0}\".eventlite_waiting_keys, \"{0}\".eventlite_waiting",
            schema.name
        ))?;
        let store = schema.store()?;
        store.store_when(
            NewEvent::new("ship").correlation_id("o-1"),
            WaitFor::new().all([Condition::new("paid")]),
        )?;
        drop(store);
        // The first build of version 2: no TRUNCATE trigger, and an unbounded list.
        in_schema(
            &mut admin,
            &schema.name,
            "DROP TRIGGER eventlite_waiting_keys_truncated ON eventlite_waiting_keys; \
             DROP FUNCTION eventlite_waiting_keys_truncated(); \
             CREATE OR REPLACE FUNCTION eventlite_waiting_keys_added() RETURNS trigger \
                 LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$ \
             BEGIN \
                 INSERT INTO eventlite_waiting_cmds (cmd, keys) \
                     SELECT cmd, count(*) FROM added GROUP BY cmd ON CONFLICT (cmd) \
                     DO UPDATE SET keys = eventlite_waiting_cmds.keys + EXCLUDED.keys; \
                 UPDATE eventlite_head \
                     SET waiting_cmds = ARRAY(SELECT cmd FROM eventlite_waiting_cmds ORDER BY cmd); \
                 RETURN NULL; \
             END $f$; \
             ALTER TABLE eventlite_head DROP COLUMN listeners; \
             UPDATE eventlite_meta SET value = '2' WHERE key = 'schema_version'",
        )?;
        let bounded = |admin: &mut postgres::Client| -> anyhow::Result<bool> {
            let definition: String = admin
                .query_one(
                    &format!(
                        "SELECT pg_get_functiondef('\"{}\".eventlite_waiting_keys_added()'\
                         ::regprocedure)",
                        schema.name
                    ),
                    &[],
                )?
                .try_get(0)?;
            Ok(definition.contains("LIMIT 65"))
        };
        assert!(!bounded(&mut admin)?);
        drop(PostgresBackend::open(schema.options(IndexConfig::all()))?);
        assert!(
            bounded(&mut admin)?,
            "the trigger functions were not replaced"
        );
        let paid = vec![b"paid".to_vec()];
        assert_eq!(
            waiting_cmds(&mut admin, &schema.name)?,
            (paid.clone(), paid)
        );
        admin.batch_execute(&format!(
            "TRUNCATE \"{}\".eventlite_waiting_keys",
            schema.name
        ))?;
        assert_eq!(waiting_cmds(&mut admin, &schema.name)?, (vec![], vec![]));
        Ok(())
    })
}

/// An upgrade at open waits for an append in flight, which holds the counter row and then
/// writes the log: the upgrade locks nothing else before the counter's table, so the two do
/// not deadlock, and both complete.
#[test]
fn an_upgrade_waits_for_an_append_in_flight() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        drop(PostgresBackend::open(schema.options(IndexConfig::all()))?);
        let mut admin = schema.admin()?;
        to_version_1(&mut admin, &schema.name)?;
        let mut append = schema.admin()?;
        hold_counter(&mut append, &schema.name)?;
        let name = format!("upgrade_{}", schema.name);
        let opened = std::thread::scope(|s| {
            let opener = s.spawn(|| PostgresBackend::open(named_options(&schema, &name)));
            wait_for_lock_waits(&mut admin, &name, 1)?;
            // What an append writes after taking the counter row.
            append.batch_execute(&format!(
                "INSERT INTO \"{0}\".eventlite_waiting_keys VALUES ('paid', 'o-1', 1); \
                 INSERT INTO \"{0}\".queue (id, version, datetime, \"user\", ip, cmd, data, \
                 correlation_id, metadata, checksum) \
                 VALUES (1, 1, 0, '', '', 'tick', '{{}}', '', '{{}}', 0); ROLLBACK",
                schema.name
            ))?;
            joined(opener, "the opener")?.map_err(anyhow::Error::from)
        })?;
        let store = EventStore::new(opened);
        assert_eq!(store.store(NewEvent::new("tick"))?.id, 1);
        assert_eq!(waiting_cmds(&mut admin, &schema.name)?, (vec![], vec![]));
        Ok(())
    })
}

/// An append queued for the counter row behind a park sees the park's record once it has the
/// row, and looks for it: the waited-on cmds are read with the lock, not before it. The park
/// looks too, once committed, and may be the one that releases the record, so an append that
/// does not look is caught only in the rounds where the park's look ran before the append's
/// commit: two of three single rounds, with a build that read the cmds before the lock.
#[test]
fn an_append_queued_behind_a_park_releases_its_record() -> anyhow::Result<()> {
    use eventlite_core::{Condition, WaitFor, WaitState};
    with_server(|| {
        let schema = common::Schema::new()?;
        let name = format!("queued_{}", schema.name);
        let store = EventStore::new(PostgresBackend::open(named_options(&schema, &name))?);
        let mut admin = schema.admin()?;
        let mut holder = schema.admin()?;
        for round in 0..6 {
            let order = format!("o-{round}");
            hold_counter(&mut holder, &schema.name)?;
            let (parked, paid) = std::thread::scope(|s| {
                let park = s.spawn(|| {
                    store.store_when(
                        NewEvent::new("ship").correlation_id(&order),
                        WaitFor::new().all([Condition::new("paid")]),
                    )
                });
                wait_for_lock_waits(&mut admin, &name, 1)?;
                let pay = s.spawn(|| store.store(NewEvent::new("paid").correlation_id(&order)));
                wait_for_lock_waits(&mut admin, &name, 2)?;
                holder.batch_execute("COMMIT")?;
                let parked = joined(park, "the park")??;
                let paid = joined(pay, "the append")??;
                anyhow::Ok((parked, paid))
            })?;
            assert_eq!(
                store.waiting(parked.id)?.map(|w| (w.state, w.event_id)),
                Some((WaitState::Released, Some(paid.id + 1))),
                "round {round}"
            );
        }
        Ok(())
    })
}

/// Emptying the keys with TRUNCATE (which fires no row trigger) empties the counts too; counts
/// changed behind the triggers' back are reported by the store's check.
#[test]
fn the_waited_on_cmds_survive_a_truncate_and_drift_is_reported() -> anyhow::Result<()> {
    use eventlite_core::spi::Maintenance;
    use eventlite_core::{Condition, WaitFor};
    with_server(|| {
        let schema = common::Schema::new()?;
        let store = schema.store()?;
        let mut admin = schema.admin()?;
        let park = |correlation: &str| {
            store.store_when(
                NewEvent::new("ship").correlation_id(correlation),
                WaitFor::new().all([Condition::new("paid")]),
            )
        };
        park("o-1")?;
        park("o-2")?;
        admin.batch_execute(&format!(
            "TRUNCATE \"{}\".eventlite_waiting_keys",
            schema.name
        ))?;
        assert_eq!(waiting_cmds(&mut admin, &schema.name)?, (vec![], vec![]));
        assert_eq!(store.backend().check_storage()?, Vec::<String>::new());
        park("o-3")?;
        assert_eq!(store.backend().check_storage()?, Vec::<String>::new());
        for (drift, mend) in [
            (
                "UPDATE eventlite_waiting_cmds SET keys = 2",
                "UPDATE eventlite_waiting_cmds SET keys = 1",
            ),
            (
                "UPDATE eventlite_head SET waiting_cmds = '{}'",
                "UPDATE eventlite_head SET waiting_cmds = '{paid}'",
            ),
        ] {
            in_schema(&mut admin, &schema.name, drift)?;
            let problems = store.backend().check_storage()?;
            assert!(
                problems.len() == 1 && problems[0].contains("waited-on cmds"),
                "after {drift}: {problems:?}"
            );
            in_schema(&mut admin, &schema.name, mend)?;
            assert_eq!(store.backend().check_storage()?, Vec::<String>::new());
        }
        Ok(())
    })
}

/// A handle releases what another handle parked, once it appends the completing event: its
/// append learns of the record in its own transaction. Racing handles release it once.
#[test]
fn a_parked_event_is_released_by_another_handles_append() -> anyhow::Result<()> {
    use eventlite_core::{Condition, WaitFor, WaitState};
    with_server(|| {
        let schema = common::Schema::new()?;
        let a = schema.store()?;
        let b = schema.store()?;
        // b's appends learn there is nothing to look for...
        b.store(NewEvent::new("paid").correlation_id("o-0"))?;
        // ...until a parks a record that b's next append completes.
        let parked = a.store_when(
            NewEvent::new("ship").correlation_id("o-1"),
            WaitFor::new().all([Condition::new("paid")]),
        )?;
        let paid = b.store(NewEvent::new("paid").correlation_id("o-1"))?;
        let shipped = b.get(paid.id + 1)?.map(|e| e.cmd);
        assert_eq!(shipped.as_deref(), Some("ship"));
        assert_eq!(
            a.waiting(parked.id)?.map(|w| (w.state, w.event_id)),
            Some((WaitState::Released, Some(paid.id + 1)))
        );
        // Both look at once: one release.
        for i in 0..20 {
            a.store_when(
                NewEvent::new("late").correlation_id(format!("r-{i}")),
                WaitFor::new().all([Condition::new("go")]),
            )?;
            let mut go = eventlite_core::spi::PendingEvent::new("go");
            go.correlation_id = format!("r-{i}");
            eventlite_core::spi::EventLog::append(a.backend(), vec![go])?;
        }
        std::thread::scope(|s| {
            let (ta, tb) = (s.spawn(|| a.check_waiting()), s.spawn(|| b.check_waiting()));
            let released = ta.join().expect("a").map(|c| c.released.len())?
                + tb.join().expect("b").map(|c| c.released.len())?;
            assert_eq!(released, 20);
            anyhow::Ok(())
        })?;
        assert_eq!(a.count(&Filter::cmd("late"))?, 20);
        Ok(())
    })
}

/// A schema that holds other tables is not turned into a store, and keeps its tables.
#[test]
fn a_foreign_schema_is_refused() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let mut client = schema.admin()?;
        client.batch_execute(&format!(
            "CREATE SCHEMA {0}; CREATE TABLE {0}.orders (id int); INSERT INTO {0}.orders VALUES (7)",
            schema.name
        ))?;
        let err = PostgresBackend::open(schema.options(IndexConfig::default())).unwrap_err();
        assert!(matches!(err, Error::NotAStore { .. }), "{err:?}");
        let tables: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
                &[&schema.name],
            )?
            .get(0);
        assert_eq!(tables, 1);
        // Opening a schema that does not exist with the indexes it has finds no store.
        let missing = common::Schema::new()?;
        let options = PostgresOptions {
            indexes_as_found: true,
            ..missing.options(IndexConfig::default())
        };
        let err = PostgresBackend::open(options).unwrap_err();
        assert!(matches!(err, Error::NotAStore { .. }), "{err:?}");
        Ok(())
    })
}

/// The synchronous client panics when it blocks inside an async runtime; the backend's calls
/// (and its drop) then run on a thread of their own, on both kinds of runtime.
#[test]
fn calls_from_inside_a_tokio_runtime_work() -> anyhow::Result<()> {
    with_server(|| {
        let schema = common::Schema::new()?;
        let options = schema.options(IndexConfig::default());
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let store = current.block_on(async {
            let store = Arc::new(EventStore::new(PostgresBackend::open(options)?));
            store.store(NewEvent::new("from_async"))?;
            anyhow::Ok(store)
        })?;
        let shared = Arc::clone(&store);
        let n = multi.block_on(async move {
            let task = tokio::spawn(async move {
                shared.store(NewEvent::new("from_a_task"))?;
                shared.count(&Filter::all())
            });
            anyhow::Ok(task.await??)
        })?;
        assert_eq!(n, 2);
        let cmds: Vec<String> = store
            .query(&Query::new(Filter::all(), Order::IdAsc))?
            .into_iter()
            .map(|e| e.cmd)
            .collect();
        assert_eq!(cmds, ["from_async", "from_a_task"]);
        // Dropped inside a runtime too: closing its connections blocks on the client.
        current.block_on(async move { drop(store) });
        Ok(())
    })
}
