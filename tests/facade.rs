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
