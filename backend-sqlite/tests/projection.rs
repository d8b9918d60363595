//! `SqliteProjection`: a read model in the caller's SQLite database, its position committed
//! with its rows; failures handled by policy without leaving half an event behind.
use std::time::Duration;

use eventlite_core::{Error, EventStore, FailurePolicy, MemoryBackend, NewEvent};
use eventlite_sqlite::SqliteProjection;
use eventlite_sqlite::rusqlite::Connection;

fn store_with(fails: &[&str]) -> anyhow::Result<EventStore<MemoryBackend>> {
    let store = EventStore::new(MemoryBackend::new());
    for how in fails {
        store.store(NewEvent::new("e").data(&serde_json::json!({ "fail": how })))?;
    }
    Ok(store)
}

fn model() -> anyhow::Result<Connection> {
    let db = Connection::open_in_memory()?;
    db.execute_batch("CREATE TABLE applied (id INTEGER NOT NULL)")?;
    Ok(db)
}

/// Writes a row, then fails (or panics) if the event says so: a failed event's row must not
/// stay.
fn handler(conn: &Connection, e: &eventlite_core::Event) -> Result<(), eventlite_core::BoxError> {
    conn.execute("INSERT INTO applied (id) VALUES (?1)", [e.id as i64])?;
    match e.data_value()?["fail"].as_str() {
        Some("error") => Err(format!("cannot apply {}", e.id).into()),
        Some("panic") => panic!("gave up on {}", e.id),
        _ => Ok(()),
    }
}

fn applied(db: &Connection) -> anyhow::Result<Vec<i64>> {
    let mut stmt = db.prepare("SELECT id FROM applied ORDER BY id")?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

#[test]
fn stop_keeps_what_came_before_and_resumes_at_the_failing_event() -> anyhow::Result<()> {
    let store = store_with(&["", "", "error", ""])?;
    let mut db = model()?;
    let mut p = SqliteProjection::new(&mut db, "p")?.batch_size(10);
    match p.catch_up(&store, &mut handler) {
        Err(Error::ProjectionFailed { event_id: 3, .. }) => {}
        other => anyhow::bail!("expected a stop at event 3, got {other:?}"),
    }
    assert_eq!(p.position()?, 2);
    drop(p);
    assert_eq!(applied(&db)?, [1, 2]);
    Ok(())
}

#[test]
fn skip_records_the_event_and_leaves_none_of_its_writes() -> anyhow::Result<()> {
    let store = store_with(&["", "error", "", "panic", ""])?;
    let mut db = model()?;
    let mut p = SqliteProjection::new(&mut db, "p")?
        .policy(FailurePolicy::retry(2, Duration::ZERO).then_skip());
    let stats = p.catch_up(&store, &mut handler)?;
    assert_eq!((stats.events, stats.skipped, stats.retries), (3, 2, 4));
    assert_eq!(p.position()?, 5);
    drop(p);
    assert_eq!(applied(&db)?, [1, 3, 5]);
    let failed: Vec<_> = store
        .failed_events("p")?
        .into_iter()
        .map(|f| (f.event_id, f.attempts))
        .collect();
    assert_eq!(failed, [(2, 3), (4, 3)]);
    Ok(())
}

#[test]
fn a_new_projection_resumes_where_the_database_says_and_reset_starts_over() -> anyhow::Result<()> {
    let store = store_with(&["", ""])?;
    let mut db = model()?;
    SqliteProjection::new(&mut db, "p")?.catch_up(&store, &mut handler)?;
    store.store(NewEvent::new("e").data(&serde_json::json!({ "fail": "" })))?;
    let mut again = SqliteProjection::new(&mut db, "p")?;
    assert_eq!(again.catch_up(&store, &mut handler)?.events, 1);
    again.reset(&store, |tx| Ok(tx.execute_batch("DELETE FROM applied")?))?;
    assert_eq!(again.position()?, 0);
    assert_eq!(again.catch_up(&store, &mut handler)?.events, 3);
    drop(again);
    assert_eq!(applied(&db)?, [1, 2, 3]);
    assert!(matches!(
        SqliteProjection::new(&mut db, ""),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}
