//! SQLite-specific behaviour: index sync on reopen, refusing foreign files, options, busy
//! files. (Readers during writes: `reliability/tests/concurrency.rs`, on both engines.)
use eventlite_core::spi::{EventFields, EventLog};
use eventlite_core::{
    Durability, Error, EventStore, ExpectedVersion, Filter, IndexConfig, IndexName, NewEvent,
    Order, Query,
};
use eventlite_sqlite::{JournalMode, SqliteBackend, SqliteOptions, Synchronous};

fn options(indexes: IndexConfig) -> SqliteOptions {
    SqliteOptions {
        indexes,
        durability: Durability::Relaxed,
        ..SqliteOptions::default()
    }
}

/// The `idx_*` indexes in the file, read with a plain connection.
fn sqlite_indexes(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let conn = rusqlite::Connection::open(path)?;
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names)
}

fn populate(store: &EventStore<SqliteBackend>) -> anyhow::Result<()> {
    for i in 0..200u64 {
        store.store(
            NewEvent::new(["a", "b", "c"][(i % 3) as usize])
                .user(["u1", "u2"][(i % 2) as usize])
                .correlation_id(format!("g{}", i % 7))
                .version((i % 2) as u32 + 1),
        )?;
    }
    Ok(())
}

fn answers(store: &EventStore<SqliteBackend>) -> anyhow::Result<Vec<Vec<u64>>> {
    let queries = [
        Query::new(Filter::correlation("g3"), Order::IdAsc),
        Query::new(Filter::cmd("b"), Order::DatetimeDesc)
            .limit(17)
            .offset(3),
        Query::new(Filter::user("u2"), Order::IdDesc),
        Query::new(
            Filter {
                correlation_id: Some("g1".into()),
                cmd: Some("a".into()),
                ..Filter::default()
            },
            Order::IdAsc,
        ),
    ];
    queries
        .iter()
        .map(|q| Ok(store.query(q)?.iter().map(|e| e.id).collect()))
        .collect()
}

#[test]
fn reopening_with_another_index_config_changes_indexes_not_answers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.sqlite");
    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::none()))?);
    populate(&store)?;
    let want = answers(&store)?;
    drop(store);
    for config in [
        IndexConfig::high_volume(),
        IndexConfig::high_volume(), // reopening with the same config changes nothing
        IndexConfig {
            cmd: true,
            ..IndexConfig::high_volume()
        },
        IndexConfig::all(),
        IndexConfig::none(),
        IndexConfig::query_optimized(),
    ] {
        let backend = SqliteBackend::open(&path, options(config))?;
        assert_eq!(backend.indexes()?, config);
        let store = EventStore::new(backend);
        assert_eq!(answers(&store)?, want, "answers under {config:?}");
        drop(store);
        let mut expected: Vec<String> = config
            .enabled()
            .into_iter()
            .map(|n| match n {
                IndexName::CorrelationCmd => "idx_composite_correlation_cmd".to_owned(),
                IndexName::UserDatetime => "idx_composite_user_datetime".to_owned(),
                other => format!("idx_{other}"),
            })
            .collect();
        expected.sort();
        assert_eq!(sqlite_indexes(&path)?, expected);
    }
    Ok(())
}

#[test]
fn an_old_store_opened_with_default_options_keeps_its_events() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.sqlite");
    let custom = SqliteOptions {
        indexes: IndexConfig::all(),
        journal_mode: JournalMode::Delete,
        synchronous: Some(Synchronous::Off),
        ..SqliteOptions::default()
    };
    let store = EventStore::new(SqliteBackend::open(&path, custom)?);
    populate(&store)?;
    let before: Vec<_> = store.query(&Query::default())?;
    drop(store);
    let store = EventStore::new(SqliteBackend::open(&path, SqliteOptions::default())?);
    assert_eq!(store.query(&Query::default())?, before);
    assert_eq!(store.indexes()?, IndexConfig::default());
    assert_eq!(store.store(NewEvent::new("next"))?.id, 201);
    store.backend().integrity_check()?;
    Ok(())
}

#[test]
fn foreign_files_are_refused_and_left_unchanged() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Another application's SQLite database.
    let other = dir.path().join("other.sqlite");
    {
        let conn = rusqlite::Connection::open(&other)?;
        conn.execute_batch("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('x');")?;
    }
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(
        &garbage,
        (0..10_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )?;
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"")?;
    for path in [&other, &garbage, &empty] {
        let before = std::fs::read(path)?;
        let err = SqliteBackend::open(path, SqliteOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::NotAStore { .. }),
            "{}: {err:?}",
            path.display()
        );
        assert!(std::fs::read(path)? == before, "{} changed", path.display());
    }
    let err = SqliteBackend::open(dir.path(), SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err:?}");
    let names: Vec<_> = std::fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
    assert_eq!(
        names.len(),
        3,
        "nothing was created beside the refused files"
    );
    Ok(())
}

#[test]
fn new_files_and_parent_directories_are_created() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a/b/events.sqlite");
    let store = EventStore::new(SqliteBackend::open(&path, SqliteOptions::default())?);
    store.store(NewEvent::new("x"))?;
    assert!(path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "store files are private to their owner");
    }
    Ok(())
}

#[test]
fn delete_journal_and_full_sync_work_too() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = SqliteOptions {
        journal_mode: JournalMode::Delete,
        ..SqliteOptions::default()
    };
    assert_eq!(opts.effective_synchronous(), Synchronous::Full);
    let store = EventStore::new(SqliteBackend::open(dir.path().join("d.sqlite"), opts)?);
    store.store_bulk((0..10).map(|_| NewEvent::new("e")).collect())?;
    assert_eq!(store.count(&Filter::all())?, 10);
    Ok(())
}

#[test]
fn a_busy_file_gives_a_typed_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("busy.sqlite");
    let opts = SqliteOptions {
        busy_timeout: std::time::Duration::from_millis(50),
        ..options(IndexConfig::default())
    };
    let store = EventStore::new(SqliteBackend::open(&path, opts)?);
    store.store(NewEvent::new("first"))?;
    // Another process (here: another connection) holds the write lock.
    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    let err = store.store(NewEvent::new("blocked")).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    other.execute_batch("ROLLBACK")?;
    assert_eq!(store.store(NewEvent::new("after"))?.id, 2);
    Ok(())
}

#[test]
fn absent_values_are_null_after_appends_that_had_them() -> anyhow::Result<()> {
    // The insert statements leave an absent causation or stream unbound, relying on every
    // append clearing its parameters: nothing of one append may leak into the next, through
    // the 32-row statement or the one-row one.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nulls.sqlite");
    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::default()))?);
    let root = store.store(NewEvent::new("root"))?;
    let with = |i: usize| {
        NewEvent::new("with")
            .causation_id(root.id)
            .stream(format!("s{i}"), ExpectedVersion::Any)
    };
    for _ in 0..2 {
        store.store_bulk((0..33).map(with).collect())?;
        store.store_bulk((0..33).map(|_| NewEvent::new("without")).collect())?;
        store.store(with(99))?;
        store.store(NewEvent::new("without"))?;
    }
    let conn = rusqlite::Connection::open(&path)?;
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM queue WHERE cmd = 'without' AND (causation_id IS NOT NULL \
             OR stream IS NOT NULL OR stream_version IS NOT NULL)"
        )?,
        0
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM queue WHERE cmd = 'with' AND causation_id = 1 \
             AND stream IS NOT NULL AND stream_version IS NOT NULL"
        )?,
        68
    );
    for e in store.query(&Query::new(Filter::all(), Order::IdAsc))? {
        assert_eq!(e.stream.is_some(), e.cmd == "with", "{e:?}");
        assert_eq!(e.causation_id.is_some(), e.cmd == "with", "{e:?}");
    }
    Ok(())
}

#[test]
fn after_a_checkpoint_the_main_file_alone_holds_the_store() -> anyhow::Result<()> {
    // Commits go to the write-ahead log, which is copied into the main file once it passes
    // 1,000 pages: inline after small commits, on a background thread after one that wrote
    // that much itself. `checkpoint` waits for the thread and copies whatever is left.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ckpt.sqlite");
    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::default()))?);
    let pad = "x".repeat(400);
    // Small commits, then one of ~6 MB (~1,500 pages).
    for _ in 0..2 {
        store.store_bulk(
            (0..500)
                .map(|i| NewEvent::new("bulk").data_json(format!(r#"{{"i":{i},"pad":"{pad}"}}"#)))
                .collect(),
        )?;
    }
    store.store_bulk(
        (0..11_000)
            .map(|i| NewEvent::new("bulk").data_json(format!(r#"{{"i":{i},"pad":"{pad}"}}"#)))
            .collect(),
    )?;
    let main_file_count = |name: &str| -> anyhow::Result<i64> {
        // Only the main file: a copy without the log sees what was checkpointed.
        let copy = dir.path().join(name);
        std::fs::copy(&path, &copy)?;
        let conn = rusqlite::Connection::open(&copy)?;
        Ok(conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?)
    };
    store.checkpoint()?;
    assert_eq!(main_file_count("a.sqlite")?, 12_000);
    // A few more commits stay in the log (far below the threshold) until the next checkpoint.
    for _ in 0..10 {
        store.store(NewEvent::new("late"))?;
    }
    // Waiting for background checkpoints starts none (the benches' hook, built with the
    // workspace's features).
    #[cfg(feature = "bench-hooks")]
    store.backend().wait_for_checkpoints();
    assert_eq!(main_file_count("b.sqlite")?, 12_000);
    store.checkpoint()?;
    assert_eq!(main_file_count("c.sqlite")?, 12_010);
    assert_eq!(store.count(&Filter::all())?, 12_010);
    Ok(())
}

#[test]
fn a_commit_that_cannot_lock_the_file_stores_nothing() -> anyhow::Result<()> {
    // In rollback-journal mode a commit needs every reader gone; a reader that stays past the
    // busy timeout makes COMMIT itself fail, after the rows were inserted.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("commit.sqlite");
    let opts = SqliteOptions {
        journal_mode: JournalMode::Delete,
        busy_timeout: std::time::Duration::from_millis(50),
        ..options(IndexConfig::default())
    };
    let store = EventStore::new(SqliteBackend::open(&path, opts)?);
    store.store(NewEvent::new("first"))?;
    let reader = rusqlite::Connection::open(&path)?;
    reader.execute_batch("BEGIN")?;
    let seen: i64 = reader.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?;
    assert_eq!(seen, 1);
    for attempt in [
        store.store(NewEvent::new("blocked")),
        store
            .store_bulk((0..40).map(|_| NewEvent::new("bulk")).collect())
            .map(|mut v| v.remove(0)),
    ] {
        let err = attempt.unwrap_err();
        assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    }
    reader.execute_batch("COMMIT")?;
    assert_eq!(store.count(&Filter::all())?, 1);
    assert_eq!(store.store(NewEvent::new("after"))?.id, 2);
    let again: i64 = reader.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?;
    assert_eq!(again, 2);
    Ok(())
}

#[test]
fn an_index_made_by_another_definition_is_rebuilt() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.sqlite");
    let with_cmd = IndexConfig {
        cmd: true,
        ..IndexConfig::default()
    };
    drop(SqliteBackend::open(&path, options(with_cmd))?);
    {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch("DROP INDEX idx_cmd; CREATE INDEX idx_cmd ON queue (cmd);")?;
    }
    let backend = SqliteBackend::open(&path, options(with_cmd))?;
    assert_eq!(backend.indexes()?, with_cmd);
    let plan = backend.explain(&Query::new(Filter::cmd("x"), Order::DatetimeDesc))?;
    assert!(
        !plan.detail.contains("TEMP B-TREE"),
        "newest-first by cmd needs no sort: {plan:?}"
    );
    drop(backend);
    let conn = rusqlite::Connection::open(&path)?;
    let sql: String = conn.query_row(
        "SELECT sql FROM sqlite_master WHERE name = 'idx_cmd'",
        [],
        |r| r.get(0),
    )?;
    assert!(sql.contains("(cmd, datetime)"), "{sql}");
    Ok(())
}

fn stream_events(store: &EventStore<SqliteBackend>, stream: &str) -> anyhow::Result<Vec<u64>> {
    Ok(store
        .query(&Query::new(Filter::stream(stream), Order::IdAsc))?
        .iter()
        .map(|e| e.stream_version.unwrap_or(0))
        .collect())
}

#[test]
fn stream_versions_are_unique_in_the_file_and_looked_up_by_index() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.sqlite");
    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::none()))?);
    store.store(NewEvent::new("plain"))?;
    store.store(NewEvent::new("opened").stream("acct-1", ExpectedVersion::NoStream))?;
    store.store(NewEvent::new("moved").stream("acct-1", ExpectedVersion::Exact(1)))?;
    drop(store);

    let conn = rusqlite::Connection::open(&path)?;
    let plan: String = conn.query_row(
        "EXPLAIN QUERY PLAN SELECT MAX(stream_version) FROM queue WHERE stream = 'acct-1'",
        [],
        |r| r.get(3),
    )?;
    assert!(plan.contains("eventlite_stream"), "{plan}");
    // The engine itself refuses a second event at a taken stream version, whatever wrote it.
    let dup = conn.execute(
        "INSERT INTO queue (version, datetime, user, ip, cmd, data, correlation_id, metadata, \
         stream, stream_version, checksum) \
         VALUES (1, 0, '', '', 'x', '{}', 'c', '{}', 'acct-1', 2, 0)",
        [],
    );
    assert!(
        matches!(&dup, Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation),
        "{dup:?}"
    );
    // Events outside streams may share the NULL key as before.
    conn.execute(
        "INSERT INTO queue (version, datetime, user, ip, cmd, data, correlation_id, metadata, \
         checksum) VALUES (1, 0, '', '', 'x', '{}', 'c', '{}', 0)",
        [],
    )?;
    Ok(())
}

#[test]
fn a_file_with_the_first_stream_constraint_layout_keeps_working() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.sqlite");
    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::all()))?);
    populate(&store)?;
    store.store(NewEvent::new("opened").stream("acct-1", ExpectedVersion::NoStream))?;
    let before = answers(&store)?;
    drop(store);
    {
        // The first layout: a table-level UNIQUE (stream, stream_version) instead of the
        // partial index.
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE queue_old (
                 id INTEGER PRIMARY KEY, version INTEGER NOT NULL, datetime INTEGER NOT NULL,
                 user TEXT NOT NULL, ip TEXT NOT NULL, cmd TEXT NOT NULL, data TEXT NOT NULL,
                 correlation_id TEXT NOT NULL, causation_id INTEGER, metadata TEXT NOT NULL,
                 stream TEXT, stream_version INTEGER, checksum INTEGER NOT NULL,
                 UNIQUE (stream, stream_version));
             INSERT INTO queue_old SELECT * FROM queue;
             DROP TABLE queue;
             ALTER TABLE queue_old RENAME TO queue;
             COMMIT;",
        )?;
    }
    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::all()))?);
    assert_eq!(answers(&store)?, before);
    store.store(NewEvent::new("moved").stream("acct-1", ExpectedVersion::Exact(1)))?;
    let stale = store.store(NewEvent::new("again").stream("acct-1", ExpectedVersion::Exact(1)));
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    store.store_bulk(
        (0..100)
            .map(|i| NewEvent::new("bulk").stream("acct-1", ExpectedVersion::Exact(2 + i)))
            .take(1)
            .chain((0..99).map(|_| NewEvent::new("bulk")))
            .collect(),
    )?;
    assert_eq!(stream_events(&store, "acct-1")?, vec![1, 2, 3]);
    assert_eq!(store.count(&Filter::default())?, 201 + 1 + 100);
    Ok(())
}

#[test]
fn ids_end_at_i64_max_with_a_typed_error_and_nothing_lost() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.sqlite");
    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::none()))?);
    let mut first = store.store(NewEvent::new("first"))?;
    drop(store);
    // Move the only event to the second-to-last id SQLite has, with a matching checksum.
    first.id = i64::MAX as u64 - 1;
    rusqlite::Connection::open(&path)?.execute(
        "UPDATE queue SET id = ?1, checksum = ?2 WHERE id = 1",
        rusqlite::params![
            first.id as i64,
            i64::from(EventFields::from(&first).checksum())
        ],
    )?;

    let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::none()))?);
    let last = store.store(NewEvent::new("last"))?;
    assert_eq!(last.id, i64::MAX as u64);
    for refused in [
        store.store(NewEvent::new("one too many")),
        store
            .store_bulk(vec![NewEvent::new("a"), NewEvent::new("b")])
            .map(|mut v| v.remove(0)),
    ] {
        assert!(
            matches!(refused, Err(Error::StorageFull { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(
        store.get(first.id)?.map(|e| e.cmd),
        Some("first".to_owned())
    );
    assert_eq!(store.get(last.id)?, Some(last));
    assert_eq!(store.count(&Filter::default())?, 2);
    Ok(())
}

/// A column holding what our writer never writes (another type, bytes that are not UTF-8,
/// an out-of-range number) makes its event `Corrupt`, on a get and in a page, and leaves the
/// events around it readable.
#[test]
fn a_damaged_column_is_reported_corrupt_and_its_neighbours_still_read() -> anyhow::Result<()> {
    let damage = [
        "user = x'FF'",
        "cmd = x'C328'",
        "version = 'abc'",
        "version = -1",
        "datetime = 1.5",
        "metadata = 42",
        "causation_id = 'x'",
        "causation_id = -3",
        "stream = x'80'",
        "stream_version = -1",
        "checksum = -5",
        "checksum = 4294967296",
    ];
    for set in damage {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("e.sqlite");
        let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::none()))?);
        let root = store.store(NewEvent::new("root").user("ada"))?;
        let damaged = store.store(
            NewEvent::new("child")
                .causation_id(root.id)
                .stream("acct", ExpectedVersion::NoStream),
        )?;
        let after = store.store(NewEvent::new("after"))?;
        drop(store);
        let changed = rusqlite::Connection::open(&path)?.execute(
            &format!("UPDATE queue SET {set} WHERE id = ?1"),
            [damaged.id as i64],
        )?;
        assert_eq!(changed, 1, "{set}");

        let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::none()))?);
        let got = store.get(damaged.id);
        assert!(matches!(got, Err(Error::Corrupt { .. })), "{set}: {got:?}");
        let page = store.by_correlation(&root.correlation_id, eventlite_core::Page::first(10));
        assert!(
            matches!(page, Err(Error::Corrupt { .. })),
            "{set}: {page:?}"
        );
        // Replays read rows in place, borrowed from SQLite: the same checks apply.
        let mut ids = eventlite_core::FnModel::new(Vec::new()).on_default(
            |seen: &mut Vec<u64>, e: &eventlite_core::Event, _: &eventlite_core::EventData<'_>| {
                seen.push(e.id);
                Ok(())
            },
        );
        let replayed = store.replay(&mut ids, .., &mut eventlite_core::Callbacks::new());
        assert!(
            matches!(replayed, Err(Error::Corrupt { .. })),
            "{set}: {replayed:?}"
        );
        // A batch is read and checked whole before the model sees any of it.
        assert!(ids.state().is_empty(), "{set}: {:?}", ids.state());
        assert_eq!(store.get(root.id)?, Some(root), "{set}");
        assert_eq!(store.get(after.id)?, Some(after), "{set}");
    }
    Ok(())
}

/// Releases whatever is ready in the store at `path`, through a handle of its own.
fn release_ready(path: &std::path::Path) -> anyhow::Result<usize> {
    let store = EventStore::builder(SqliteBackend::open(path, options(IndexConfig::default()))?)
        .check_waiting_at_open(false)
        .build();
    Ok(store.check_waiting()?.released.len())
}

/// Two processes and two handles of this one race to release the same parked events: each is
/// stored exactly once, and ids stay gap-free.
#[test]
fn handles_and_processes_racing_release_each_parked_event_once() -> anyhow::Result<()> {
    const CHILD: &str = "EVENTLITE_TEST_RELEASE_IN";
    const NAME: &str = "handles_and_processes_racing_release_each_parked_event_once";
    if let Some(path) = std::env::var_os(CHILD) {
        release_ready(std::path::Path::new(&path))?;
        return Ok(());
    }
    use eventlite_core::{Condition, WaitFor, WaitState};
    const RECORDS: u64 = 100;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.sqlite");
    {
        let store = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::default()))?);
        for i in 0..RECORDS {
            store.store_when(
                NewEvent::new("released")
                    .correlation_id("g")
                    .data(&serde_json::json!({ "i": i })),
                WaitFor::new().all([Condition::new("go")]),
            )?;
        }
        // Beneath the store, so that no handle has released anything yet.
        let mut go = eventlite_core::spi::PendingEvent::new("go");
        go.correlation_id = "g".into();
        store.backend().append(vec![go])?;
    }
    let children = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe()?)
                .args(["--exact", NAME, "--test-threads", "1"])
                .env(CHILD, &path)
                .stdout(std::process::Stdio::null())
                .spawn()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let here: Vec<usize> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2).map(|_| s.spawn(|| release_ready(&path))).collect();
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| anyhow::anyhow!("a handle panicked"))?)
            .collect::<anyhow::Result<_>>()
    })?;
    for mut child in children {
        anyhow::ensure!(child.wait()?.success(), "a releasing process failed");
    }
    let store = EventStore::builder(SqliteBackend::open(&path, options(IndexConfig::default()))?)
        .check_waiting_at_open(false)
        .build();
    let events = store.query(&Query::new(Filter::cmd("released"), Order::IdAsc))?;
    let mut seen: Vec<u64> = events
        .iter()
        .map(|e| Ok(e.data_value()?["i"].as_u64().unwrap_or(u64::MAX)))
        .collect::<eventlite_core::Result<_>>()?;
    seen.sort_unstable();
    anyhow::ensure!(
        seen == (0..RECORDS).collect::<Vec<_>>(),
        "released: {seen:?}"
    );
    anyhow::ensure!(store.last_id()? == RECORDS + 1, "ids are not gap-free");
    let released = store.waiting_in(Some(WaitState::Released))?;
    anyhow::ensure!(released.len() == RECORDS as usize);
    // Each record names the event it released.
    for w in released {
        let event = store.get(w.event_id.unwrap_or(0))?;
        anyhow::ensure!(event.is_some_and(|e| e.cmd == "released"));
    }
    eprintln!("released by this process's two handles: {here:?}");
    Ok(())
}

/// A handle releases what another handle parked on the same file, once it appends the
/// completing event: its append learns of the record in its own transaction.
#[test]
fn a_parked_event_is_released_by_another_handles_append() -> anyhow::Result<()> {
    use eventlite_core::{Condition, WaitFor, WaitState};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.sqlite");
    let a = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::default()))?);
    let b = EventStore::new(SqliteBackend::open(&path, options(IndexConfig::default()))?);
    // b's appends learn there is nothing to look for...
    b.store(NewEvent::new("paid").correlation_id("o-0"))?;
    // ...until a parks a record that b's next append completes.
    let parked = a.store_when(
        NewEvent::new("ship").correlation_id("o-1"),
        WaitFor::new().all([Condition::new("paid")]),
    )?;
    let paid = b.store(NewEvent::new("paid").correlation_id("o-1"))?;
    assert_eq!(b.get(paid.id + 1)?.map(|e| e.cmd).as_deref(), Some("ship"));
    assert_eq!(
        a.waiting(parked.id)?.map(|w| (w.state, w.event_id)),
        Some((WaitState::Released, Some(paid.id + 1)))
    );
    Ok(())
}
