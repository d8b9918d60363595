//! The facade on whichever engine the features make the default: `cargo test -p eventlite`
//! runs it on SQLite, `--no-default-features --features redb` on redb.
#![cfg(any(feature = "sqlite", feature = "redb"))]

use eventlite::{Error, ExpectedVersion, Filter, NewEvent, Order, Page, Query};

#[test]
fn open_store_reopen_and_query_on_the_default_engine() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/events.db");
    let store = eventlite::open(&path)?;
    let root = store.store(
        NewEvent::new("opened")
            .user("ada")
            .stream("acct-1", ExpectedVersion::NoStream),
    )?;
    store.store_bulk(
        (0..20)
            .map(|i| NewEvent::new("deposited").data(&i).causation_id(root.id))
            .collect(),
    )?;
    drop(store);

    let store = eventlite::open(&path)?;
    assert_eq!(store.last_id()?, 21);
    let page = store.by_correlation(&root.correlation_id, Page::first(8))?;
    assert_eq!(
        (page.events.len(), page.total_count, page.has_more),
        (8, 21, true)
    );
    let kids = store.query(&Query::new(Filter::children_of(root.id), Order::IdDesc).limit(3))?;
    assert_eq!(
        kids.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![21, 20, 19]
    );
    let conflict = store.store(NewEvent::new("opened").stream("acct-1", ExpectedVersion::NoStream));
    assert!(matches!(conflict, Err(Error::Conflict { .. })));
    Ok(())
}

/// Engines are values: named, parsed, listed by what this build has, and opened; one this
/// build lacks is a typed error naming the feature to enable.
#[test]
fn engines_are_chosen_at_run_time() -> anyhow::Result<()> {
    use eventlite::{ENGINES, Engine};
    assert_eq!(Engine::default_available(), ENGINES.first().copied());
    assert!(!ENGINES.is_empty());
    for &engine in Engine::ALL {
        assert_eq!(engine.name().parse::<Engine>()?, engine);
        let dir = tempfile::tempdir()?;
        match engine.open(dir.path().join("events.db")) {
            Ok(store) => {
                assert!(engine.is_available());
                assert_eq!(store.store(NewEvent::new("hello"))?.id, 1);
            }
            Err(Error::InvalidArgument(message)) => {
                assert!(!engine.is_available());
                assert!(message.contains(engine.feature()), "{message}");
            }
            Err(other) => return Err(other.into()),
        }
    }
    assert!(matches!(
        "sqlserver".parse::<Engine>(),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

/// The examples are what users copy into their own crates, where `cfg(feature = ..)` tests
/// *their* features: the examples must ask the facade instead.
#[test]
fn examples_do_not_test_cargo_features() -> anyhow::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let source = std::fs::read_to_string(&path)?;
        assert!(
            !source.contains("feature ="),
            "{} tests a Cargo feature",
            path.display()
        );
    }
    Ok(())
}

/// The store's own options (cache, clock, size limit) are one call away on every engine.
#[test]
fn engine_options_and_store_options_together() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = eventlite::Engine::default_available().expect("an engine");
    let store = engine
        .builder(dir.path().join("events.db"))?
        .cache(eventlite::CachePolicy::disabled())
        .max_event_size(64)
        .build();
    assert!(!store.cache_stats().enabled);
    assert!(matches!(
        store.store(NewEvent::new("big").data(&"x".repeat(100))),
        Err(Error::InvalidEvent { .. })
    ));
    Ok(())
}
