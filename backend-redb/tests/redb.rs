//! redb-specific behaviour: back-fill on reopen, one opener at a time, foreign files, relaxed
//! durability bookkeeping.
use eventlite_core::{
    Durability, Error, EventStore, Filter, IndexConfig, IndexName, NewEvent, Order, Query,
};
use eventlite_redb::{RedbBackend, RedbOptions};

fn options(indexes: IndexConfig) -> RedbOptions {
    RedbOptions {
        indexes,
        durability: Durability::Relaxed,
        ..RedbOptions::default()
    }
}

fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for name in IndexName::ALL {
        let filter = match name {
            IndexName::CorrelationId => Filter::correlation("g3"),
            IndexName::CausationId => Filter::children_of(5),
            IndexName::Cmd => Filter::cmd("b"),
            IndexName::User => Filter::user("u1"),
            IndexName::Datetime => Filter::time_range(1_000, 1_050),
            IndexName::Version => Filter {
                version: Some(2),
                ..Filter::default()
            },
            IndexName::CorrelationCmd => Filter {
                correlation_id: Some("g1".into()),
                cmd: Some("a".into()),
                ..Filter::default()
            },
            IndexName::UserDatetime => Filter {
                user: Some("u2".into()),
                datetime_from: Some(1_020),
                datetime_to: Some(1_150),
                ..Filter::default()
            },
        };
        for order in [Order::IdAsc, Order::IdDesc, Order::DatetimeDesc] {
            out.push(Query::new(filter.clone(), order));
            out.push(Query::new(filter.clone(), order).offset(3).limit(5));
        }
    }
    out
}

#[test]
fn back_fill_on_reopen_keeps_answers_and_uses_the_indexes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.redb");
    let clock = std::sync::Arc::new(eventlite_core::ManualClock::new(1_000));
    let store = EventStore::builder(RedbBackend::open(&path, options(IndexConfig::none()))?)
        .clock(std::sync::Arc::clone(&clock))
        .build();
    for i in 0..300u64 {
        clock.set(1_000 + (i * 7 % 200) as i64);
        let mut e = NewEvent::new(["a", "b", "c"][(i % 3) as usize])
            .user(["u1", "u2"][(i % 2) as usize])
            .correlation_id(format!("g{}", i % 7))
            .version((i % 2) as u32 + 1);
        if i > 10 && i % 4 == 0 {
            e = e.causation_id(5);
        }
        store.store(e)?;
    }
    let want: Vec<_> = queries()
        .iter()
        .map(|q| store.query(q))
        .collect::<Result<_, _>>()?;
    for q in queries() {
        assert!(store.explain(&q)?.full_scan, "no index yet: {q:?}");
    }
    drop(store);

    let store = EventStore::new(RedbBackend::open(&path, options(IndexConfig::all()))?);
    assert_eq!(store.indexes()?, IndexConfig::all());
    for (q, want) in queries().iter().zip(&want) {
        assert_eq!(&store.query(q)?, want, "{q:?}");
        let plan = store.explain(q)?;
        assert!(plan.index.is_some() && !plan.full_scan, "{q:?}: {plan:?}");
    }
    for name in IndexName::ALL {
        let q = Query::new(
            queries()[IndexName::ALL.iter().position(|n| *n == name).unwrap_or(0) * 6]
                .filter
                .clone(),
            Order::IdAsc,
        );
        assert_eq!(store.explain(&q)?.index, Some(name), "{name}");
    }
    drop(store);

    // And back to none: the index tables are dropped, the answers stay.
    let store = EventStore::new(RedbBackend::open(&path, options(IndexConfig::none()))?);
    assert_eq!(store.indexes()?, IndexConfig::none());
    for (q, want) in queries().iter().zip(&want) {
        assert_eq!(&store.query(q)?, want);
    }
    Ok(())
}

#[test]
fn a_second_opener_gets_a_typed_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.redb");
    let first = RedbBackend::open(&path, RedbOptions::default())?;
    let err = RedbBackend::open(&path, RedbOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    drop(first);
    RedbBackend::open(&path, RedbOptions::default())?;
    Ok(())
}

#[test]
fn foreign_files_are_refused_and_left_unchanged() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(
        &garbage,
        (0..10_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )?;
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"")?;
    let other = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&other)?;
        let txn = db.begin_write()?;
        txn.open_table(redb::TableDefinition::<u64, u64>::new("people"))?
            .insert(1, 2)?;
        txn.commit()?;
    }
    for path in [&garbage, &empty, &other] {
        let before = std::fs::read(path)?;
        let err = RedbBackend::open(path, RedbOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::NotAStore { .. } | Error::Corrupt { .. }),
            "{}: {err:?}",
            path.display()
        );
        assert!(std::fs::read(path)? == before, "{} changed", path.display());
    }
    let err = RedbBackend::open(dir.path(), RedbOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 3, "nothing created");
    Ok(())
}

#[test]
fn relaxed_commits_survive_a_clean_close() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("e.redb");
    let opts = RedbOptions {
        relaxed_max_commits: 1_000,
        relaxed_max_delay: std::time::Duration::from_secs(3_600),
        ..options(IndexConfig::default())
    };
    let store = EventStore::new(RedbBackend::open(&path, opts.clone())?);
    for _ in 0..10 {
        store.store(NewEvent::new("e"))?;
    }
    store.checkpoint()?;
    store.store(NewEvent::new("after-flush"))?;
    drop(store);
    let store = EventStore::new(RedbBackend::open(&path, opts)?);
    assert_eq!(store.last_id()?, 11);
    Ok(())
}
