//! The scenarios. Each takes a [`Ctx`] and fails (returns `Err` or panics) when the engine
//! breaks the contract.

use std::cell::RefCell;
use std::collections::HashSet;

use anyhow::{Result, ensure};
use eventlite_core::{
    Backend, BoxError, CachePolicy, Callbacks, Cursor, Error, Event, EventData, EventStore,
    ExpectedVersion, Filter, FnModel, IndexConfig, IndexName, Model, NewEvent, Order, Page, Query,
    Stage, StreamOptions,
};
use serde_json::json;

use crate::{Ctx, Engine, Fixture, T0};

fn ev(cmd: &str) -> NewEvent {
    NewEvent::new(cmd)
}

/// Every event of the store, in id order, read with plain gets (the simplest path).
fn all_events<B: eventlite_core::Backend>(store: &EventStore<B>) -> Result<Vec<Event>> {
    let last = store.last_id()?;
    (1..=last)
        .map(|id| {
            store
                .get(id)?
                .ok_or_else(|| anyhow::anyhow!("event {id} missing"))
        })
        .collect()
}

fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id).collect()
}

/// Applies a query to a list the plain way: the reference semantics.
fn reference(events: &[Event], query: &Query) -> Vec<Event> {
    let mut hits: Vec<Event> = events.iter().filter(|e| query.admits(e)).cloned().collect();
    hits.sort_by(|a, b| query.order.compare(a, b));
    hits.into_iter()
        .skip(query.offset as usize)
        .take(query.limit.map_or(usize::MAX, |l| l as usize))
        .collect()
}

/// A store with a varied population: 3 correlations, 3 users, 4 cmds, datetimes that are not
/// monotonic in id, ties, versions 1-3, causation chains.
fn populate<E: Engine>(f: &Fixture<'_, E>) -> Result<Vec<Event>> {
    let users = ["ada", "bob", "cy"];
    let cmds = ["open", "deposit", "withdraw", "close"];
    let corrs = ["c-a", "c-b", "c-c"];
    let mut out = Vec::new();
    for i in 0..60u64 {
        // Time jumps back every 7th event and repeats every 3rd: order by datetime differs
        // from order by id and has ties.
        f.clock.set(T0 + ((i * 37) % 23) as i64 * 1_000);
        let mut e = ev(cmds[(i % 4) as usize])
            .user(users[(i % 3) as usize])
            .version((i % 3) as u32 + 1)
            .correlation_id(corrs[(i % 5 % 3) as usize])
            .data(&json!({ "i": i }));
        if i >= 10 && i % 4 == 1 {
            e = e.causation_id(i - 5);
        }
        out.push(f.store(e)?);
    }
    Ok(out)
}

fn assert_err<T: std::fmt::Debug>(
    r: eventlite_core::Result<T>,
    pred: impl Fn(&Error) -> bool,
) -> Result<()> {
    match r {
        Err(e) if pred(&e) => Ok(()),
        other => anyhow::bail!("unexpected result {other:?}"),
    }
}

// ---- storing ---------------------------------------------------------------------------------

/// Ids start at 1 and grow by one; defaults are version 1, empty user/ip, `{}` data and metadata.
pub fn store_assigns_sequential_ids<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    for n in 1..=5 {
        let e = f.store(ev("tick"))?;
        ensure!(e.id == n, "id {} != {n}", e.id);
        ensure!(e.version == 1 && e.user.is_empty() && e.ip.is_empty());
        ensure!(e.data == "{}" && e.metadata == "{}");
        ensure!(e.stream.is_none() && e.stream_version.is_none());
    }
    ensure!(f.last_id()? == 5);
    Ok(())
}

/// What was stored is what is read back, field for field.
pub fn store_roundtrips_every_field<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let parent = f.store(ev("parent").correlation_id("corr-1"))?;
    let stored = f.store(
        ev("child")
            .data_json(r#"{ "a" : [1, 2.5, "x"], "b": null }"#)
            .user("ada")
            .ip("10.0.0.1")
            .version(3)
            .correlation_id("corr-1")
            .causation_id(parent.id)
            .metadata(&json!({"source": "test"}))
            .stream("acct-1", ExpectedVersion::NoStream),
    )?;
    let read = f
        .get(stored.id)?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    ensure!(read == stored, "{read:?} != {stored:?}");
    // Raw JSON text is kept byte for byte.
    ensure!(read.data == r#"{ "a" : [1, 2.5, "x"], "b": null }"#);
    ensure!(read.user == "ada" && read.ip == "10.0.0.1" && read.version == 3);
    ensure!(read.causation_id == Some(parent.id) && read.correlation_id == "corr-1");
    ensure!(read.stream.as_deref() == Some("acct-1") && read.stream_version == Some(1));
    ensure!(read.metadata::<serde_json::Value>()? == json!({"source": "test"}));
    #[derive(serde::Deserialize)]
    struct Data {
        a: Vec<serde_json::Value>,
    }
    ensure!(read.data::<Data>()?.a.len() == 3);
    Ok(())
}

/// Unknown ids are `None`, not errors.
pub fn get_missing_is_none<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("a"))?;
    ensure!(f.get(0)?.is_none() && f.get(2)?.is_none() && f.get(u64::MAX)?.is_none());
    ensure!(f.get_cached(2)?.is_none() && f.lineage(9)?.is_none());
    Ok(())
}

/// An empty store answers every read with nothing.
pub fn empty_store_answers_empty<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    ensure!(f.last_id()? == 0 && f.count(&Filter::all())? == 0);
    ensure!(f.stream(StreamOptions::new())?.next().is_none());
    let page = f.by_user("nobody", Page::default())?;
    ensure!(page.events.is_empty() && page.total_count == 0 && !page.has_more);
    ensure!(page.next_cursor.is_none() && page.next_offset.is_none());
    ensure!(f.transaction("x")?.is_empty() && f.transaction_cached("x")?.is_empty());
    Ok(())
}

/// `datetime` is the store's clock at the time of the call.
pub fn datetime_comes_from_the_clock<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let a = f.store(ev("a"))?;
    f.clock.advance(1_234);
    let b = f.store_bulk(vec![ev("b"), ev("c")])?;
    ensure!(a.datetime == T0);
    ensure!(b.iter().all(|e| e.datetime == T0 + 1_234));
    ensure!(f.get(3)?.map(|e| e.datetime) == Some(T0 + 1_234));
    Ok(())
}

// ---- correlation and causation ---------------------------------------------------------------

/// Without correlation and causation, each event starts a new group (a UUID v4).
pub fn correlation_generated_when_absent<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let a = f.store(ev("a"))?;
    let b = f.store(ev("b"))?;
    let bulk = f.store_bulk(vec![ev("c"), ev("d")])?;
    let all: HashSet<&str> = [&a, &b, &bulk[0], &bulk[1]]
        .iter()
        .map(|e| e.correlation_id.as_str())
        .collect();
    ensure!(all.len() == 4, "correlation ids must be distinct");
    for c in all {
        ensure!(
            c.len() == 36 && c.as_bytes()[14] == b'4',
            "not a UUID v4: {c}"
        );
    }
    Ok(())
}

/// With only a causation id, the event joins its parent's group (single and bulk).
pub fn correlation_inherited_from_causation<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("root").correlation_id("order-7"))?;
    let child = f.store(ev("child").causation_id(root.id))?;
    let grandchild = f.store(ev("grandchild").causation_id(child.id))?;
    let bulk = f.store_bulk(vec![
        ev("x").causation_id(root.id),
        ev("y").causation_id(child.id),
    ])?;
    for e in [&child, &grandchild, &bulk[0], &bulk[1]] {
        ensure!(e.correlation_id == "order-7", "{e:?}");
    }
    ensure!(f.transaction("order-7")?.len() == 5);
    Ok(())
}

/// An explicit correlation id wins over the parent's.
pub fn explicit_correlation_wins_over_causation<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("root").correlation_id("one"))?;
    let other = f.store(ev("other").causation_id(root.id).correlation_id("two"))?;
    ensure!(other.correlation_id == "two" && other.causation_id == Some(root.id));
    ensure!(f.children(root.id)?.len() == 1);
    Ok(())
}

/// A causation id naming no event is an error and stores nothing (upstream stored NULL).
pub fn unknown_causation_is_rejected<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("a"))?;
    assert_err(f.store(ev("b").causation_id(42)), |e| {
        matches!(e, Error::UnknownCausation(42))
    })?;
    assert_err(
        f.store(ev("b").causation_id(7).correlation_id("explicit")),
        |e| matches!(e, Error::UnknownCausation(7)),
    )?;
    assert_err(
        f.store_bulk(vec![ev("ok"), ev("bad").causation_id(2)]),
        |e| matches!(e, Error::UnknownCausation(2)),
    )?;
    ensure!(f.last_id()? == 1);
    Ok(())
}

// ---- bad input -------------------------------------------------------------------------------

/// An empty or blank cmd is a typed error; nothing is stored.
pub fn empty_cmd_is_rejected<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    for cmd in ["", "   ", "\t\n"] {
        assert_err(f.store(ev(cmd)), |e| {
            matches!(e, Error::InvalidEvent { .. })
        })?;
        let mut model = FnModel::new(()).on_default(|_, _, _| Ok(()));
        assert_err(
            f.store_with(ev(cmd), &mut model, &mut Callbacks::new()),
            |e| matches!(e, Error::InvalidEvent { .. }),
        )?;
    }
    ensure!(f.last_id()? == 0);
    Ok(())
}

/// One bad event aborts the whole bulk.
pub fn empty_cmd_in_bulk_stores_nothing<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("before"))?;
    assert_err(f.store_bulk(vec![ev("a"), ev(""), ev("c")]), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    ensure!(f.last_id()? == 1);
    ensure!(
        f.store(ev("after"))?.id == 2,
        "next id continues without a gap"
    );
    Ok(())
}

/// Malformed data, malformed or non-object metadata and unserialisable values are rejected.
pub fn malformed_json_is_rejected<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut bad_map = std::collections::HashMap::new();
    bad_map.insert(vec![1u8], 1);
    let cases = vec![
        ev("a").data_json("{not json"),
        ev("a").data_json(""),
        ev("a").data_json("{} trailing"),
        ev("a").metadata_json("[1, 2]"),
        ev("a").metadata_json("\"text\""),
        ev("a").metadata_json("{oops"),
        ev("a").metadata(&5),
        ev("a").data(&bad_map),
        ev("a").correlation_id(""),
        ev("a").stream("", ExpectedVersion::Any),
    ];
    for case in cases {
        assert_err(f.store(case), |e| matches!(e, Error::InvalidEvent { .. }))?;
    }
    ensure!(f.last_id()? == 0);
    // Any JSON value is valid data.
    for text in ["1", "\"s\"", "[]", "null", " {\"k\": true} "] {
        ensure!(f.store(ev("a").data_json(text))?.data == text);
    }
    Ok(())
}

/// Schema versions start at 1.
pub fn version_zero_is_rejected<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    assert_err(f.store(ev("a").version(0)), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    ensure!(f.store(ev("a").version(u32::MAX))?.version == u32::MAX);
    Ok(())
}

/// Events over the size limit are rejected and the store stays usable.
pub fn oversize_event_is_rejected<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let location = ctx.engine.location()?;
    let store = EventStore::builder(ctx.engine.open(&location, ctx.profile)?)
        .max_event_size(1_000)
        .build();
    store.store(ev("small").data(&"x".repeat(900)))?;
    assert_err(store.store(ev("big").data(&"x".repeat(1_000))), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    assert_err(
        store.store_bulk(vec![ev("ok"), ev("big").user("u".repeat(2_000))]),
        |e| matches!(e, Error::InvalidEvent { .. }),
    )?;
    ensure!(store.last_id()? == 1);
    ensure!(store.store(ev("next"))?.id == 2);
    Ok(())
}

/// `store_bulk(vec![])` is an error.
pub fn empty_bulk_is_rejected<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    assert_err(f.store_bulk(vec![]), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    ensure!(f.last_id()? == 0);
    Ok(())
}

// ---- bulk ------------------------------------------------------------------------------------

fn sample_batch(parent: u64) -> Vec<NewEvent> {
    vec![
        ev("a")
            .correlation_id("g1")
            .user("ada")
            .data(&json!({"n": 1})),
        ev("b").causation_id(parent).ip("1.2.3.4").version(2),
        ev("c")
            .correlation_id("g2")
            .metadata(&json!({"m": true}))
            .stream("s", ExpectedVersion::Any),
    ]
}

/// `store_bulk` writes the rows that the same `store` calls write (upstream's bulk did not
/// inherit correlation ids and stamped other datetimes).
pub fn bulk_and_single_store_write_identical_rows<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let single = ctx.fixture()?;
    let bulk = ctx.fixture()?;
    for f in [&single, &bulk] {
        f.store(ev("root").correlation_id("root-group"))?;
        f.clock.advance(5);
    }
    let one_by_one: Vec<Event> = sample_batch(1)
        .into_iter()
        .map(|e| single.store(e))
        .collect::<eventlite_core::Result<_>>()?;
    let together = bulk.store_bulk(sample_batch(1))?;
    ensure!(one_by_one == together, "{one_by_one:#?}\n!=\n{together:#?}");
    ensure!(all_events(&single)? == all_events(&bulk)?);
    ensure!(together[1].correlation_id == "root-group");
    Ok(())
}

/// What `store_bulk` returns is what is stored.
pub fn bulk_returns_rows_as_stored<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("root"))?;
    let returned = f.store_bulk(sample_batch(1))?;
    ensure!(ids(&returned) == vec![2, 3, 4]);
    for e in &returned {
        ensure!(f.get(e.id)?.as_ref() == Some(e));
    }
    Ok(())
}

/// A conflict on the last event of a bulk stores nothing of it.
pub fn bulk_is_atomic_on_conflict<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("open").stream("acct", ExpectedVersion::NoStream))?;
    let batch = vec![
        ev("a").correlation_id("g"),
        ev("b").stream("other", ExpectedVersion::NoStream),
        ev("c").stream("acct", ExpectedVersion::NoStream),
    ];
    assert_err(
        f.store_bulk(batch),
        |e| matches!(e, Error::Conflict { stream, actual: Some(1), .. } if stream == "acct"),
    )?;
    ensure!(f.last_id()? == 1 && f.transaction("g")?.is_empty());
    ensure!(f.count(&Filter::stream("other"))? == 0);
    // "other" is still a new stream.
    f.store(ev("b").stream("other", ExpectedVersion::NoStream))?;
    Ok(())
}

// ---- reading ---------------------------------------------------------------------------------

/// A transaction is its group's events in id order, however interleaved.
pub fn transaction_groups_in_id_order<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    for corr in ["c-a", "c-b", "c-c"] {
        let want: Vec<u64> = all
            .iter()
            .filter(|e| e.correlation_id == corr)
            .map(|e| e.id)
            .collect();
        ensure!(!want.is_empty());
        ensure!(ids(&f.transaction(corr)?) == want);
        ensure!(ids(&f.transaction_cached(corr)?) == want);
    }
    Ok(())
}

/// Children are the direct effects in id order; lineage gives parent and children.
pub fn children_and_lineage<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("root"))?;
    let c1 = f.store(ev("c1").causation_id(root.id))?;
    f.store(ev("noise"))?;
    let c2 = f.store(ev("c2").causation_id(root.id))?;
    let g = f.store(ev("g").causation_id(c1.id))?;
    ensure!(ids(&f.children(root.id)?) == vec![c1.id, c2.id]);
    ensure!(f.children(g.id)?.is_empty());
    let lineage = f
        .lineage(c1.id)?
        .ok_or_else(|| anyhow::anyhow!("no lineage"))?;
    ensure!(lineage.event == c1 && lineage.parent.as_ref() == Some(&root));
    ensure!(lineage.children == vec![g]);
    let top = f
        .lineage(root.id)?
        .ok_or_else(|| anyhow::anyhow!("no lineage"))?;
    ensure!(top.parent.is_none() && top.children.len() == 2);
    Ok(())
}

/// Offset pages of a correlation: sizes, totals, `has_more`, `next_offset`.
pub fn correlation_offset_paging_across_pages<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    for i in 0..25 {
        f.store(ev("e").correlation_id(if i % 2 == 0 { "g" } else { "h" }))?;
    }
    f.store_bulk((0..12).map(|_| ev("e").correlation_id("g")).collect())?;
    let want = ids(&f.transaction("g")?);
    ensure!(want.len() == 25);
    let mut got = Vec::new();
    let mut offset = 0;
    let mut sizes = Vec::new();
    loop {
        let page = f.by_correlation("g", Page::offset(10, offset))?;
        ensure!(page.total_count == 25);
        sizes.push(page.events.len());
        got.extend(ids(&page.events));
        ensure!(page.has_more == (offset + 10 < 25));
        match page.next_offset {
            Some(next) => offset = next,
            None => break,
        }
    }
    ensure!(sizes == vec![10, 10, 5], "{sizes:?}");
    ensure!(got == want);
    Ok(())
}

/// Cursor pages give exactly the offset pages' events.
pub fn correlation_cursor_paging_matches_offset<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    for i in 0..30 {
        f.store(ev("e").correlation_id(if i % 3 == 0 { "h" } else { "g" }))?;
    }
    let mut page = f.by_correlation("g", Page::first(7))?;
    let mut got = ids(&page.events);
    while let Some(cursor) = page.next_cursor {
        page = f.by_correlation("g", Page::after(7, cursor))?;
        ensure!(page.total_count == 20, "total counts the whole filter");
        ensure!(page.next_offset.is_none());
        got.extend(ids(&page.events));
    }
    ensure!(got == ids(&f.transaction("g")?));
    // A cursor survives a round trip through text.
    let c: Cursor = Cursor {
        id: 3,
        datetime: -5,
    }
    .to_string()
    .parse()?;
    ensure!(
        c == Cursor {
            id: 3,
            datetime: -5
        }
    );
    ensure!("junk".parse::<Cursor>().is_err());
    Ok(())
}

/// Children paginate like correlations.
pub fn children_page<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("root"))?;
    for _ in 0..5 {
        f.store(ev("kid").causation_id(root.id))?;
        f.store(ev("other"))?;
    }
    let first = f.children_page(root.id, Page::first(3))?;
    ensure!(ids(&first.events) == vec![2, 4, 6] && first.total_count == 5 && first.has_more);
    let second = f.children_page(root.id, Page::offset(3, 3))?;
    ensure!(ids(&second.events) == vec![8, 10] && !second.has_more);
    Ok(())
}

/// By user: newest first; equal datetimes ordered by id descending.
pub fn by_user_newest_first_ties_by_id<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("a").user("u"))?; // 1 @ T0
    f.store(ev("a").user("u"))?; // 2 @ T0
    f.clock.advance(10);
    f.store(ev("a").user("u"))?; // 3 @ T0+10
    f.store(ev("a").user("v"))?; // 4
    f.clock.set(T0 - 10);
    f.store(ev("a").user("u"))?; // 5 @ T0-10
    let page = f.by_user("u", Page::default())?;
    ensure!(
        ids(&page.events) == vec![3, 2, 1, 5],
        "{:?}",
        ids(&page.events)
    );
    ensure!(page.total_count == 4 && !page.has_more);
    Ok(())
}

/// By cmd orders by datetime even when ids disagree.
pub fn by_cmd_orders_by_datetime_not_id<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    let mut want: Vec<&Event> = all.iter().filter(|e| e.cmd == "deposit").collect();
    want.sort_by_key(|e| std::cmp::Reverse((e.datetime, e.id)));
    let want: Vec<u64> = want.iter().map(|e| e.id).collect();
    let page = f.by_cmd("deposit", Page::first(100))?;
    ensure!(ids(&page.events) == want);
    ensure!(
        want != {
            let mut sorted = want.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            sorted
        }
    );
    Ok(())
}

/// Time ranges include both ends.
pub fn by_time_range_is_inclusive<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    for t in 0..10 {
        f.clock.set(T0 + t * 100);
        f.store(ev("t"))?;
    }
    let page = f.by_time_range(T0 + 200, T0 + 500, Page::default())?;
    ensure!(ids(&page.events) == vec![6, 5, 4, 3]);
    ensure!(
        f.by_time_range(T0 + 201, T0 + 299, Page::default())?
            .total_count
            == 0
    );
    ensure!(
        f.by_time_range(T0 + 500, T0 + 200, Page::default())?
            .events
            .is_empty()
    );
    Ok(())
}

/// Cursor paging through many equal datetimes loses and repeats nothing.
pub fn cursor_paging_through_ties<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    for user in ["ada", "bob"] {
        let full = f.by_user(user, Page::first(1_000))?;
        let mut page = f.by_user(user, Page::first(3))?;
        let mut got = ids(&page.events);
        while let Some(c) = page.next_cursor {
            page = f.by_user(user, Page::after(3, c))?;
            got.extend(ids(&page.events));
        }
        ensure!(got == ids(&full.events));
        ensure!(got.len() == all.iter().filter(|e| e.user == user).count());
    }
    let mut page = f.by_time_range(T0, T0 + 10_000, Page::first(4))?;
    let mut got = ids(&page.events);
    while let Some(c) = page.next_cursor {
        page = f.by_time_range(T0, T0 + 10_000, Page::after(4, c))?;
        got.extend(ids(&page.events));
    }
    ensure!(got == ids(&f.by_time_range(T0, T0 + 10_000, Page::first(1_000))?.events));
    Ok(())
}

/// Limit 0 is an error; offsets past the end give an empty last page.
pub fn page_edge_cases<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    for _ in 0..5 {
        f.store(ev("e").correlation_id("g"))?;
    }
    assert_err(f.by_correlation("g", Page::first(0)), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    let past = f.by_correlation("g", Page::offset(10, 50))?;
    ensure!(past.events.is_empty() && !past.has_more && past.total_count == 5);
    let exact = f.by_correlation("g", Page::first(5))?;
    ensure!(exact.events.len() == 5 && !exact.has_more && exact.next_cursor.is_none());
    let huge = f.by_correlation("g", Page::offset(u64::MAX, u64::MAX))?;
    ensure!(huge.events.is_empty());
    Ok(())
}

fn varied_queries() -> Vec<Query> {
    let filters = vec![
        Filter::all(),
        Filter::correlation("c-b"),
        Filter::cmd("deposit"),
        Filter::user("cy"),
        Filter::time_range(T0 + 3_000, T0 + 12_000),
        Filter {
            version: Some(2),
            ..Filter::default()
        },
        Filter {
            correlation_id: Some("c-a".into()),
            cmd: Some("open".into()),
            ..Filter::default()
        },
        Filter {
            user: Some("ada".into()),
            datetime_from: Some(T0 + 2_000),
            datetime_to: Some(T0 + 15_000),
            ..Filter::default()
        },
        Filter {
            user: Some("bob".into()),
            datetime_from: Some(T0 + 5_000),
            ..Filter::default()
        },
        Filter {
            cmd: Some("withdraw".into()),
            user: Some("ada".into()),
            version: Some(3),
            id_from: Some(5),
            id_to: Some(50),
            ..Filter::default()
        },
        Filter {
            causation_id: Some(10),
            ..Filter::default()
        },
        Filter {
            id_from: Some(20),
            id_to: Some(30),
            datetime_to: Some(T0 + 9_000),
            ..Filter::default()
        },
        Filter {
            correlation_id: Some("c-c".into()),
            datetime_from: Some(T0 + 10_000),
            ..Filter::default()
        },
        Filter::cmd("no-such-cmd"),
    ];
    let mut out = Vec::new();
    for filter in filters {
        for order in [Order::IdAsc, Order::IdDesc, Order::DatetimeDesc] {
            out.push(Query::new(filter.clone(), order));
            out.push(Query::new(filter.clone(), order).limit(4).offset(2));
            out.push(Query::new(filter.clone(), order).limit(5).after(Cursor {
                id: 30,
                datetime: T0 + 11_000,
            }));
        }
    }
    out
}

/// Every combination of filter fields, order and page matches the reference semantics.
pub fn combined_filters_match_reference<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    for query in varied_queries() {
        let got = f.query(&query)?;
        let want = reference(&all, &query);
        ensure!(
            got == want,
            "query {query:?}: got {:?}, want {:?}",
            ids(&got),
            ids(&want)
        );
    }
    Ok(())
}

/// A cursor and the filter's own bounds on the same column combine as both conditions, up to
/// the ends of the id and time ranges, where arithmetic on a bound could overflow.
pub fn cursors_and_bounds_combine_at_the_extremes<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    let mid = &all[29];
    let cursor_ids = [
        0,
        1,
        2,
        30,
        59,
        60,
        61,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX,
    ];
    let times = [i64::MIN, T0 - 1, T0, mid.datetime, T0 + 22_000, i64::MAX];
    let mut filters = vec![Filter::all()];
    for &id in &[1, 30, 60, i64::MAX as u64, u64::MAX] {
        filters.push(Filter {
            id_from: Some(id),
            ..Filter::default()
        });
        filters.push(Filter {
            id_to: Some(id),
            ..Filter::default()
        });
    }
    for &t in &times {
        filters.push(Filter {
            datetime_to: Some(t),
            ..Filter::default()
        });
        filters.push(Filter {
            datetime_from: Some(t),
            ..Filter::user("ada")
        });
    }
    for filter in &filters {
        for order in [Order::IdAsc, Order::IdDesc, Order::DatetimeDesc] {
            for &id in &cursor_ids {
                for &datetime in &times {
                    let q = Query::new(filter.clone(), order)
                        .limit(7)
                        .after(Cursor { id, datetime });
                    let (got, want) = (f.query(&q)?, reference(&all, &q));
                    ensure!(
                        got == want,
                        "{q:?}: got {:?}, want {:?}",
                        ids(&got),
                        ids(&want)
                    );
                }
            }
        }
    }
    Ok(())
}

/// `count` agrees with the query it counts.
pub fn count_matches_query<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    for query in varied_queries() {
        let want = all.iter().filter(|e| query.filter.matches(e)).count() as u64;
        ensure!(f.count(&query.filter)? == want, "count {:?}", query.filter);
    }
    Ok(())
}

/// Streams deliver full batches in id order, then the remainder, then end.
pub fn stream_batches_in_id_order<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..250).map(|i| ev("e").data(&i)).collect())?;
    let sizes: Vec<usize> = f
        .stream(StreamOptions::new().batch_size(100))?
        .map(|b| b.map(|b| b.len()))
        .collect::<eventlite_core::Result<_>>()?;
    ensure!(sizes == vec![100, 100, 50], "{sizes:?}");
    let got: Vec<u64> = f
        .stream(StreamOptions::new().batch_size(50))?
        .map(|b| b.map(|b| ids(&b)))
        .collect::<eventlite_core::Result<Vec<_>>>()?
        .concat();
    ensure!(got == (1..=250).collect::<Vec<_>>());
    // An exact multiple ends without an empty batch.
    let exact: Vec<usize> = f
        .stream(StreamOptions::new().batch_size(125))?
        .map(|b| b.map(|b| b.len()))
        .collect::<eventlite_core::Result<_>>()?;
    ensure!(exact == vec![125, 125]);
    Ok(())
}

/// Stream filters combine (id range, correlation, user, cmd).
pub fn stream_with_combined_filters<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    let filter = Filter {
        correlation_id: Some("c-a".into()),
        user: Some("bob".into()),
        id_from: Some(5),
        id_to: Some(55),
        ..Filter::default()
    };
    let got: Vec<u64> = f
        .stream(StreamOptions::new().batch_size(2).filter(filter.clone()))?
        .map(|b| b.map(|b| ids(&b)))
        .collect::<eventlite_core::Result<Vec<_>>>()?
        .concat();
    let want: Vec<u64> = all
        .iter()
        .filter(|e| filter.matches(e))
        .map(|e| e.id)
        .collect();
    ensure!(!want.is_empty() && got == want, "{got:?} != {want:?}");
    let by_cmd: usize = f
        .stream(
            StreamOptions::new()
                .batch_size(4)
                .filter(Filter::cmd("close")),
        )?
        .map(|b| b.map(|b| b.len()))
        .sum::<eventlite_core::Result<usize>>()?;
    ensure!(by_cmd == 15);
    Ok(())
}

/// A batch size of 0 is an error.
pub fn stream_rejects_zero_batch<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    assert_err(
        f.stream(StreamOptions::new().batch_size(0)).map(|_| ()),
        |e| matches!(e, Error::InvalidArgument(_)),
    )
}

// ---- replay and models -----------------------------------------------------------------------

fn counter() -> FnModel<Vec<u64>, u64> {
    FnModel::new(Vec::new()).on_default(|seen: &mut Vec<u64>, e: &Event, _: &EventData<'_>| {
        seen.push(e.id);
        Ok(e.id)
    })
}

/// Replay runs every event through the model in id order.
pub fn replay_everything_through_model<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..2_345).map(|_| ev("e")).collect())?;
    let mut model = counter();
    let stats = f.replay(&mut model, .., &mut Callbacks::new())?;
    ensure!(stats.events == 2_345 && stats.errors == 0 && stats.last_id == Some(2_345));
    ensure!(*model.state() == (1..=2_345).collect::<Vec<_>>());
    Ok(())
}

/// Replay hands the model every event exactly as stored, across batch boundaries, while it
/// reuses one batch's buffers for the next: texts that shrink, streams that come and go.
pub fn replay_hands_over_every_event_intact<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let batch = (0..2_345u64)
        .map(|i| {
            // Lengths cycle with another period than the 1,000-event batches.
            let e = ev(["a", "deposit-with-a-long-name", "cmd"][(i % 3) as usize])
                .user("u".repeat((i % 7) as usize * 9))
                .correlation_id(format!("c-{}", i % 11))
                .data(&json!({ "i": i, "pad": "x".repeat((i % 13) as usize * 5) }));
            // Period 7: a slot of one batch and the same slot of the next differ.
            if i % 7 < 3 {
                e.stream(format!("s-{}", i % 7), ExpectedVersion::Any)
            } else {
                e
            }
        })
        .collect();
    f.store_bulk(batch)?;
    let stored = all_events(&f)?;
    let mut model = FnModel::new(Vec::new()).on_default(
        |seen: &mut Vec<Event>, e: &Event, _: &EventData<'_>| {
            seen.push(e.clone());
            Ok(())
        },
    );
    let stats = f.replay(&mut model, .., &mut Callbacks::new())?;
    ensure!(stats.events == 2_345 && stats.errors == 0);
    ensure!(
        *model.state() == stored,
        "replayed events differ from stored ones"
    );
    Ok(())
}

/// `query_into` leaves exactly `query`'s events in the vector, whatever it held before:
/// longer or shorter, with or without streams and causations.
pub fn query_into_overwrites_what_the_vector_held<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut all = populate(&f)?;
    for i in 0..4u64 {
        all.push(f.store(ev("moved").user("bob").stream("acct", ExpectedVersion::Any))?);
        all.push(f.store(ev("noted").causation_id(i + 1))?);
    }
    let junk = |stream: bool| Event {
        id: 999,
        version: 9,
        datetime: -1,
        user: "j".repeat(300),
        ip: "10.0.0.1".into(),
        cmd: "junk".into(),
        data: "[1,2,3]".into(),
        correlation_id: "junk-correlation".into(),
        causation_id: Some(999),
        metadata: r#"{"junk":true}"#.into(),
        stream: stream.then(|| "junk-stream".to_string()),
        stream_version: stream.then_some(7),
    };
    let mid = all[30].cursor();
    let queries = [
        Query::new(Filter::all(), Order::IdAsc),
        Query::new(Filter::all(), Order::IdAsc).limit(7),
        Query::new(Filter::all(), Order::IdAsc).after(mid).limit(9),
        Query::new(Filter::all(), Order::IdDesc).offset(3).limit(5),
        Query::new(Filter::all(), Order::DatetimeDesc)
            .after(mid)
            .limit(6),
        Query::new(Filter::user("bob"), Order::IdAsc).offset(2),
        Query::new(Filter::user("bob"), Order::DatetimeDesc).limit(4),
        Query::new(Filter::cmd("deposit"), Order::IdDesc),
        Query::new(Filter::correlation("c-b"), Order::DatetimeDesc)
            .offset(1)
            .limit(3),
        Query::new(Filter::stream("acct"), Order::IdAsc),
        Query::new(
            Filter::time_range(T0 + 3_000, T0 + 9_000),
            Order::DatetimeDesc,
        ),
        Query::new(Filter::all(), Order::IdAsc).limit(0),
        Query::new(Filter::user("nobody"), Order::IdAsc),
    ];
    for query in &queries {
        let want = f.backend().query(query)?;
        ensure!(
            want == reference(&all, query),
            "query disagrees with reference: {query:?}"
        );
        let starts = [
            Vec::new(),
            vec![junk(false)],
            vec![junk(true); 3],
            (0..80).map(|i| junk(i % 2 == 0)).collect(),
        ];
        for mut out in starts {
            let held = out.len();
            f.backend().query_into(query, &mut out)?;
            ensure!(
                out == want,
                "query_into over {held} events differs from query: {query:?}"
            );
        }
    }
    Ok(())
}

/// Replay windows: start only, stop only (upstream replayed nothing), both, empty, past the end.
pub fn replay_windows<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..10).map(|_| ev("e")).collect())?;
    let run = |range: (std::ops::Bound<u64>, std::ops::Bound<u64>)| -> Result<Vec<u64>> {
        let mut model = counter();
        f.replay(&mut model, range, &mut Callbacks::new())?;
        Ok(model.into_state())
    };
    use std::ops::Bound::*;
    ensure!(run((Included(4), Unbounded))? == (4..=10).collect::<Vec<_>>());
    ensure!(run((Unbounded, Excluded(4)))? == vec![1, 2, 3]);
    ensure!(run((Included(3), Excluded(6)))? == vec![3, 4, 5]);
    ensure!(run((Included(3), Included(6)))? == vec![3, 4, 5, 6]);
    ensure!(run((Included(5), Excluded(5)))?.is_empty());
    ensure!(run((Unbounded, Excluded(0)))?.is_empty());
    ensure!(run((Included(11), Unbounded))?.is_empty());
    Ok(())
}

/// Migrations run from the event's version to the latest, before the handler; the stored data
/// stays as written.
pub fn migrations_chain<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("renamed").version(1).data(&json!({"name": "ada"})))?;
    f.store(ev("renamed").version(2).data(&json!({"full_name": "bob"})))?;
    f.store(
        ev("renamed")
            .version(3)
            .data(&json!({"full_name": "cy", "v3": true})),
    )?;
    f.store(ev("other").data(&json!({"name": "untouched"})))?;
    let mut model = FnModel::new(Vec::<serde_json::Value>::new())
        .migration("renamed", |mut v| {
            let name = v["name"].take();
            Ok(json!({ "full_name": name }))
        })
        .migration("renamed", |mut v| {
            v["v3"] = json!(true);
            Ok(v)
        })
        .on_default(|seen, _, data| {
            seen.push(data.value()?);
            Ok(())
        });
    f.replay(&mut model, .., &mut Callbacks::new())?;
    ensure!(
        *model.state()
            == vec![
                json!({"full_name": "ada", "v3": true}),
                json!({"full_name": "bob", "v3": true}),
                json!({"full_name": "cy", "v3": true}),
                json!({"name": "untouched"}),
            ],
        "{:?}",
        model.state()
    );
    ensure!(f.get(1)?.map(|e| e.data) == Some(r#"{"name":"ada"}"#.to_owned()));
    Ok(())
}

struct Recording {
    handled: Vec<String>,
    done: Vec<u64>,
    errors: Vec<Stage>,
}

impl Model for Recording {
    type Output = String;
    fn handle(&mut self, event: &Event, _: &EventData<'_>) -> Result<String, BoxError> {
        match event.cmd.as_str() {
            "fail" => Err("handler refused".into()),
            "known" => {
                self.handled.push("known".into());
                Ok("known-result".into())
            }
            _ => {
                self.handled.push(format!("default:{}", event.cmd));
                Ok("default-result".into())
            }
        }
    }
    fn done(&mut self, event: &Event, _: &String) {
        self.done.push(event.id);
    }
    fn error(&mut self, error: &eventlite_core::ExecutionError) {
        self.errors.push(error.stage);
    }
}

fn recording() -> Recording {
    Recording {
        handled: vec![],
        done: vec![],
        errors: vec![],
    }
}

/// A failing handler is reported (result, error callback, model `error`) and the event stays.
pub fn model_error_keeps_event<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let reported = RefCell::new(Vec::new());
    let mut callbacks = Callbacks::new().on_error(|e| reported.borrow_mut().push(e.event.id));
    let mut model = recording();
    let out = f.store_with(ev("fail"), &mut model, &mut callbacks)?;
    let err = out
        .result
        .err()
        .ok_or_else(|| anyhow::anyhow!("expected failure"))?;
    ensure!(err.stage == Stage::Handler && err.message.contains("handler refused"));
    ensure!(*err.event == out.event);
    drop(callbacks);
    ensure!(*reported.borrow() == vec![1] && model.errors == vec![Stage::Handler]);
    ensure!(model.done.is_empty());
    ensure!(f.get(1)?.is_some_and(|e| e.cmd == "fail"));
    Ok(())
}

/// A failing migration is reported with the version it started from.
pub fn migration_error_is_reported<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut model = FnModel::new(0)
        .migration("m", Ok)
        .migration("m", |_| Err("cannot upgrade v2".into()))
        .on_default(|n, _, _| {
            *n += 1;
            Ok(())
        });
    let out = f.store_with(ev("m").version(1), &mut model, &mut Callbacks::new())?;
    let err = out
        .result
        .err()
        .ok_or_else(|| anyhow::anyhow!("expected failure"))?;
    ensure!(
        err.stage == Stage::Migration { from_version: 2 },
        "{:?}",
        err.stage
    );
    ensure!(*model.state() == 0 && f.last_id()? == 1);
    let ok = f.store_with(ev("m").version(3), &mut model, &mut Callbacks::new())?;
    ensure!(ok.result.is_ok() && *model.state() == 1);
    Ok(())
}

/// A failing callback is reported as such; the command's result stands (upstream reported it
/// as a failing command).
pub fn callback_error_is_not_a_command_error<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let stages = RefCell::new(Vec::new());
    let mut callbacks = Callbacks::new()
        .on("known", |_, _| Err("callback broke".into()))
        .on_error(|e| stages.borrow_mut().push(e.stage));
    let mut model = recording();
    let out = f.store_with(ev("known"), &mut model, &mut callbacks)?;
    ensure!(out.result.as_deref().ok() == Some("known-result"));
    drop(callbacks);
    ensure!(*stages.borrow() == vec![Stage::Callback]);
    ensure!(model.errors.is_empty() && model.done == vec![1]);
    Ok(())
}

/// Unknown commands, including names of built-in properties, go to the default handler.
pub fn unknown_and_builtin_cmds_dispatch_to_default<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut model = recording();
    for cmd in [
        "toString",
        "constructor",
        "__proto__",
        "hasOwnProperty",
        "known",
    ] {
        let out = f.store_with(ev(cmd), &mut model, &mut Callbacks::new())?;
        ensure!(out.result.is_ok());
    }
    ensure!(
        model.handled
            == vec![
                "default:toString",
                "default:constructor",
                "default:__proto__",
                "default:hasOwnProperty",
                "known"
            ]
    );
    // A closure model without a default reports unknown commands.
    let mut strict = FnModel::new(()).on("known", |_, _, _| Ok(()));
    let out = f.store_with(ev("toString"), &mut strict, &mut Callbacks::new())?;
    ensure!(out.result.is_err_and(|e| e.stage == Stage::Handler));
    Ok(())
}

/// The cmd's callback (else the default) gets the model's output, then `done` runs.
pub fn callbacks_run_per_cmd_then_done<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let log = RefCell::new(Vec::<String>::new());
    let mut callbacks = Callbacks::new()
        .on("known", |out: &String, e| {
            log.borrow_mut().push(format!("known:{out}:{}", e.id));
            Ok(())
        })
        .on_default(|out: &String, e| {
            log.borrow_mut().push(format!("default:{out}:{}", e.id));
            Ok(())
        });
    let mut model = recording();
    f.store_with(ev("known"), &mut model, &mut callbacks)?;
    f.store_with(ev("else"), &mut model, &mut callbacks)?;
    drop(callbacks);
    ensure!(*log.borrow() == vec!["known:known-result:1", "default:default-result:2"]);
    ensure!(model.done == vec![1, 2]);
    Ok(())
}

/// `store_bulk_with` stores all, then executes each in order; a failure stays per event.
pub fn bulk_with_model_executes_in_order<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut model = recording();
    let out = f.store_bulk_with(
        vec![ev("known"), ev("fail"), ev("x")],
        &mut model,
        &mut Callbacks::new(),
    )?;
    ensure!(ids(&out.iter().map(|o| o.event.clone()).collect::<Vec<_>>()) == vec![1, 2, 3]);
    ensure!(out[0].result.is_ok() && out[1].result.is_err() && out[2].result.is_ok());
    ensure!(model.handled == vec!["known", "default:x"] && f.last_id()? == 3);
    Ok(())
}

// ---- cache -----------------------------------------------------------------------------------

/// Hits and misses are counted; the hit rate follows.
pub fn cache_counts_hits_and_misses<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let e = f.store(ev("a").correlation_id("g"))?;
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e)); // miss
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e)); // hit
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e)); // hit
    f.transaction_cached("g")?; // miss
    f.transaction_cached("g")?; // hit
    let stats = f.cache_stats();
    ensure!(
        stats.enabled && stats.hits == 3 && stats.misses == 2,
        "{stats:?}"
    );
    ensure!((stats.hit_rate - 0.6).abs() < 1e-9 && stats.size == 2);
    ensure!(stats.max_size == 1_000 && stats.ttl == CachePolicy::default().ttl);
    Ok(())
}

/// An append to a correlation evicts its cached transaction (upstream served stale data).
pub fn cache_never_serves_stale_transaction<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("a").correlation_id("g"))?;
    ensure!(f.transaction_cached("g")?.len() == 1);
    f.store(ev("b").correlation_id("g"))?;
    ensure!(f.transaction_cached("g")?.len() == 2);
    f.store(ev("c").causation_id(root.id))?;
    ensure!(f.transaction_cached("g")?.len() == 3);
    f.store_bulk(vec![
        ev("d").correlation_id("g"),
        ev("e").correlation_id("z"),
    ])?;
    ensure!(ids(&f.transaction_cached("g")?) == vec![1, 2, 3, 4]);
    Ok(())
}

/// Entries expire after the TTL (measured on the store's clock).
pub fn cache_entries_expire_after_ttl<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let policy = CachePolicy {
        enabled: true,
        max_size: 10,
        ttl: std::time::Duration::from_millis(1_000),
    };
    let f = ctx.fixture_with(ctx.profile, policy)?;
    f.store(ev("a"))?;
    f.get_cached(1)?;
    f.clock.advance(999);
    f.get_cached(1)?;
    ensure!(f.cache_stats().hits == 1);
    f.clock.advance(1);
    ensure!(f.get_cached(1)?.is_some());
    let stats = f.cache_stats();
    ensure!(stats.hits == 1 && stats.misses == 2, "{stats:?}");
    Ok(())
}

/// With the cache off, cached reads still answer, and the stats say so.
pub fn cache_disabled_still_answers<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture_with(ctx.profile, CachePolicy::disabled())?;
    let e = f.store(ev("a").correlation_id("g"))?;
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e));
    ensure!(f.transaction_cached("g")?.len() == 1);
    f.store(ev("a").correlation_id("g"))?;
    ensure!(f.transaction_cached("g")?.len() == 2);
    let stats = f.cache_stats();
    ensure!(!stats.enabled && stats.size == 0 && stats.hits == 0);
    Ok(())
}

/// The cache holds at most `max_size` entries; `clear_cache` empties it.
pub fn cache_bounded_and_clearable<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let policy = CachePolicy {
        max_size: 8,
        ..CachePolicy::default()
    };
    let f = ctx.fixture_with(ctx.profile, policy)?;
    f.store_bulk((0..50).map(|_| ev("e")).collect())?;
    for id in 1..=50 {
        ensure!(f.get_cached(id)?.is_some_and(|e| e.id == id));
    }
    ensure!(f.cache_stats().size <= 8, "{:?}", f.cache_stats());
    f.clear_cache();
    ensure!(f.cache_stats().size == 0);
    ensure!(f.get_cached(50)?.is_some());
    Ok(())
}

// ---- snapshots -------------------------------------------------------------------------------

/// Restore gives the latest snapshot at or before the id, and where to resume.
pub fn snapshot_latest_at_or_before<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..20).map(|_| ev("e")).collect())?;
    f.create_snapshot("balance", 5, &50u64)?;
    f.create_snapshot("balance", 10, &100u64)?;
    f.create_snapshot("other", 8, &"x")?;
    let r = f
        .restore_snapshot::<u64>("balance", 9)?
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    ensure!(r.state == 50 && r.event_id == 5 && r.replay_from == 6);
    let r = f.restore_snapshot::<u64>("balance", 10)?.map(|r| r.state);
    ensure!(r == Some(100));
    ensure!(f.restore_snapshot::<u64>("balance", 4)?.is_none());
    ensure!(f.restore_snapshot::<u64>("missing", 20)?.is_none());
    ensure!(f.restore_snapshot::<String>("other", 20)?.map(|r| r.state) == Some("x".into()));
    Ok(())
}

/// A second snapshot at the same name and id replaces the first.
pub fn snapshot_replaced_on_same_id<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..5).map(|_| ev("e")).collect())?;
    f.create_snapshot("s", 3, &vec![1, 2])?;
    f.clock.advance(7);
    f.create_snapshot_with_metadata("s", 3, &vec![3], &json!({"why": "redo"}))?;
    let list = f.list_snapshots("s", 10, 0)?;
    ensure!(list.len() == 1 && list[0].decode::<Vec<i32>>()? == vec![3]);
    ensure!(list[0].created_at == T0 + 7);
    let r = f
        .restore_snapshot::<Vec<i32>>("s", 3)?
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    ensure!(serde_json::from_str::<serde_json::Value>(&r.metadata)? == json!({"why": "redo"}));
    Ok(())
}

/// Listing is newest first, with limit and offset.
pub fn snapshots_listed_newest_first<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..30).map(|_| ev("e")).collect())?;
    for id in [3, 27, 9, 15, 21] {
        f.create_snapshot("s", id, &id)?;
    }
    f.create_snapshot("t", 30, &0u64)?;
    let ids_of =
        |l: Vec<eventlite_core::Snapshot>| l.iter().map(|s| s.event_id).collect::<Vec<_>>();
    ensure!(ids_of(f.list_snapshots("s", 10, 0)?) == vec![27, 21, 15, 9, 3]);
    ensure!(ids_of(f.list_snapshots("s", 2, 1)?) == vec![21, 15]);
    ensure!(f.list_snapshots("s", 10, 5)?.is_empty());
    ensure!(f.list_snapshots("nope", 10, 0)?.is_empty());
    Ok(())
}

/// Deleting one snapshot, and all older than an id.
pub fn snapshots_deleted<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..10).map(|_| ev("e")).collect())?;
    for id in 1..=10 {
        f.create_snapshot("s", id, &id)?;
    }
    f.create_snapshot("t", 2, &0u64)?;
    ensure!(f.delete_snapshot("s", 4)? && !f.delete_snapshot("s", 4)?);
    ensure!(f.delete_old_snapshots("s", 7)? == 5); // 1,2,3,5,6
    let left: Vec<u64> = f
        .list_snapshots("s", 100, 0)?
        .iter()
        .map(|s| s.event_id)
        .collect();
    ensure!(left == vec![10, 9, 8, 7], "{left:?}");
    ensure!(
        f.list_snapshots("t", 10, 0)?.len() == 1,
        "other names untouched"
    );
    ensure!(f.restore_snapshot::<u64>("s", 6)?.is_none());
    Ok(())
}

/// A snapshot must name a stored event; a bad name or metadata is rejected.
pub fn snapshot_of_unknown_event_is_rejected<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("e"))?;
    assert_err(f.create_snapshot("s", 2, &1), |e| {
        matches!(e, Error::NotFound(_))
    })?;
    assert_err(f.create_snapshot("s", 0, &1), |e| {
        matches!(e, Error::NotFound(_))
    })?;
    assert_err(f.create_snapshot("", 1, &1), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    assert_err(
        f.create_snapshot_with_metadata("s", 1, &1, &json!([1])),
        |e| matches!(e, Error::InvalidArgument(_)),
    )?;
    ensure!(f.list_snapshots("s", 10, 0)?.is_empty());
    // A state too short for the requested type is a decode error, not a panic.
    f.create_snapshot("s", 1, &"text")?;
    assert_err(
        f.restore_snapshot::<(u64, u64, u64, u64, u64, String)>("s", 1),
        |e| matches!(e, Error::Decode(_)),
    )?;
    Ok(())
}

/// Restoring a snapshot and replaying from `replay_from` equals a full replay.
pub fn snapshot_then_replay_equals_full_replay<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((1..=40).map(|i| ev("add").data(&i)).collect())?;
    let sum_model = |start: i64| {
        FnModel::new(start).on("add", |s: &mut i64, _: &Event, d: &EventData<'_>| {
            *s += d.get::<i64>()?;
            Ok(())
        })
    };
    let mut full = sum_model(0);
    f.replay(&mut full, .., &mut Callbacks::new())?;
    let mut partial = sum_model(0);
    f.replay(&mut partial, ..=25, &mut Callbacks::new())?;
    f.create_snapshot("sum", 25, partial.state())?;
    let restored = f
        .restore_snapshot::<i64>("sum", 40)?
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    let mut resumed = sum_model(restored.state);
    f.replay(&mut resumed, restored.replay_from.., &mut Callbacks::new())?;
    ensure!(*resumed.state() == *full.state() && *full.state() == 820);
    Ok(())
}

// ---- optimistic concurrency ------------------------------------------------------------------

/// `NoStream` succeeds once.
pub fn optimistic_no_stream<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let first = f.store(ev("open").stream("acct", ExpectedVersion::NoStream))?;
    ensure!(first.stream_version == Some(1));
    assert_err(
        f.store(ev("open").stream("acct", ExpectedVersion::NoStream)),
        |e| {
            matches!(
                e,
                Error::Conflict {
                    expected: ExpectedVersion::NoStream,
                    actual: Some(1),
                    ..
                }
            )
        },
    )?;
    ensure!(f.last_id()? == 1);
    Ok(())
}

/// `Exact(n)` succeeds only at version n; a stale writer loses.
pub fn optimistic_exact<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("a").stream("s", ExpectedVersion::NoStream))?;
    let second = f.store(ev("b").stream("s", ExpectedVersion::Exact(1)))?;
    ensure!(second.stream_version == Some(2));
    assert_err(
        f.store(ev("c").stream("s", ExpectedVersion::Exact(1))),
        |e| {
            matches!(
                e,
                Error::Conflict {
                    actual: Some(2),
                    expected: ExpectedVersion::Exact(1),
                    ..
                }
            )
        },
    )?;
    assert_err(
        f.store(ev("c").stream("new", ExpectedVersion::Exact(0))),
        |e| matches!(e, Error::Conflict { actual: None, .. }),
    )?;
    ensure!(f.last_id()? == 2);
    ensure!(
        f.store(ev("c").stream("s", ExpectedVersion::Exact(2)))?
            .stream_version
            == Some(3)
    );
    Ok(())
}

/// `Any` appends at whatever version, per stream.
pub fn optimistic_any<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let versions: Vec<Option<u64>> = ["x", "y", "x", "x", "y"]
        .iter()
        .map(|s| {
            f.store(ev("e").stream(*s, ExpectedVersion::Any))
                .map(|e| e.stream_version)
        })
        .collect::<eventlite_core::Result<_>>()?;
    ensure!(versions == vec![Some(1), Some(1), Some(2), Some(3), Some(2)]);
    Ok(())
}

/// Within one bulk, each event's expectation sees the events before it.
pub fn optimistic_batch_on_one_stream<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let batch = f.store_bulk(vec![
        ev("a").stream("s", ExpectedVersion::NoStream),
        ev("b").stream("s", ExpectedVersion::Exact(1)),
        ev("c").stream("s", ExpectedVersion::Any),
    ])?;
    let v: Vec<_> = batch.iter().map(|e| e.stream_version).collect();
    ensure!(v == vec![Some(1), Some(2), Some(3)]);
    assert_err(
        f.store_bulk(vec![
            ev("d").stream("s", ExpectedVersion::Exact(3)),
            ev("e").stream("s", ExpectedVersion::Exact(3)),
        ]),
        |e| {
            matches!(
                e,
                Error::Conflict {
                    actual: Some(4),
                    ..
                }
            )
        },
    )?;
    ensure!(f.last_id()? == 3);
    Ok(())
}

/// `Filter::stream` selects a stream's events in order.
pub fn stream_filter_selects_stream_events<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    for i in 0..12 {
        let name = if i % 3 == 0 { "a" } else { "b" };
        f.store(ev("e").stream(name, ExpectedVersion::Any))?;
        f.store(ev("loose"))?;
    }
    let a = f.query(&Query::new(Filter::stream("a"), Order::IdAsc))?;
    ensure!(ids(&a) == vec![1, 7, 13, 19]);
    let versions: Vec<_> = a.iter().map(|e| e.stream_version).collect();
    ensure!(versions == vec![Some(1), Some(2), Some(3), Some(4)]);
    ensure!(f.count(&Filter::stream("b"))? == 8);
    Ok(())
}

// ---- durability of the store itself ----------------------------------------------------------

/// Closing and reopening keeps events, snapshots, stream versions and the id sequence.
pub fn reopen_keeps_everything<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    f.store(ev("s").stream("acct", ExpectedVersion::NoStream))?;
    f.create_snapshot("snap", 10, &"state")?;
    let before = all_events(&f)?;
    let f = f.reopen(ctx.profile)?;
    ensure!(all_events(&f)? == before);
    ensure!(before[..all.len()] == all[..]);
    ensure!(f.restore_snapshot::<String>("snap", 100)?.map(|r| r.state) == Some("state".into()));
    assert_err(
        f.store(ev("s").stream("acct", ExpectedVersion::NoStream)),
        |e| matches!(e, Error::Conflict { .. }),
    )?;
    let next = f.store(ev("s").stream("acct", ExpectedVersion::Exact(1)))?;
    ensure!(next.id == 62 && next.stream_version == Some(2));
    Ok(())
}

/// A checkpoint changes no answer, repeats harmlessly, and appends go on after it.
pub fn checkpoint_changes_no_answer<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    f.checkpoint()?;
    ensure!(all_events(&f)? == all);
    let next = f.store(ev("after"))?;
    f.checkpoint()?;
    f.checkpoint()?;
    let f = f.reopen(ctx.profile)?;
    ensure!(f.get(next.id)?.as_ref() == Some(&next));
    ensure!(all_events(&f)?[..all.len()] == all[..]);
    Ok(())
}

/// Reopening with other indexes changes the indexes, never the answers.
pub fn reopen_with_other_indexes_same_answers<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let mut f = ctx.fixture()?;
    populate(&f)?;
    let queries = varied_queries();
    let answers: Vec<Vec<Event>> = queries
        .iter()
        .map(|q| f.query(q))
        .collect::<eventlite_core::Result<_>>()?;
    let populated = all_events(&f)?;
    for (q, want) in queries.iter().zip(&answers) {
        ensure!(*want == reference(&populated, q), "{q:?}");
    }
    for config in [
        IndexConfig::all(),
        IndexConfig::none(),
        IndexConfig::balanced(),
        IndexConfig::query_optimized(),
        ctx.profile,
    ] {
        f = f.reopen(config)?;
        ensure!(f.indexes()? == config);
        let everything = all_events(&f)?;
        for q in &queries {
            ensure!(
                f.query(q)? == reference(&everything, q),
                "reopened with {config:?}: {q:?}"
            );
        }
        // Appends maintain the (new) indexes; the next reopen checks them.
        f.store(
            ev("deposit")
                .user("ada")
                .correlation_id("c-a")
                .causation_id(10),
        )?;
    }
    let answers_now: Vec<Vec<Event>> = queries
        .iter()
        .map(|q| f.query(q))
        .collect::<eventlite_core::Result<_>>()?;
    ensure!(
        answers_now != answers,
        "the appends were visible to the queries"
    );
    Ok(())
}

/// The store reports exactly the configured indexes.
pub fn indexes_match_config<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    ensure!(f.indexes()? == ctx.profile);
    for name in IndexName::ALL {
        let only = IndexConfig::from_names([name]);
        let g = ctx.fixture_with(only, CachePolicy::default())?;
        ensure!(g.indexes()? == only, "{name}");
        ensure!(g.indexes()?.enabled() == vec![name]);
    }
    Ok(())
}

/// The query that needs an index, per index.
pub fn query_needing(index: IndexName) -> Query {
    let f = match index {
        IndexName::CorrelationId => Filter::correlation("c-a"),
        IndexName::CausationId => Filter::children_of(3),
        IndexName::Cmd => Filter::cmd("deposit"),
        IndexName::User => Filter::user("ada"),
        IndexName::Datetime => Filter::time_range(T0 + 1_000, T0 + 2_000),
        IndexName::Version => Filter {
            version: Some(2),
            ..Filter::default()
        },
        IndexName::CorrelationCmd => Filter {
            correlation_id: Some("c-a".into()),
            cmd: Some("deposit".into()),
            ..Filter::default()
        },
        IndexName::UserDatetime => Filter {
            user: Some("ada".into()),
            datetime_from: Some(T0 + 1_000),
            datetime_to: Some(T0 + 2_000),
            ..Filter::default()
        },
    };
    let order = match index {
        IndexName::Datetime | IndexName::UserDatetime => Order::DatetimeDesc,
        _ => Order::IdAsc,
    };
    Query::new(f, order).limit(100)
}

/// For each of the eight indexes, a query that needs it uses it when (only) it is enabled, and
/// scans when it is not; the answers are the same.
pub fn explain_uses_each_index<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    for name in IndexName::ALL {
        let query = query_needing(name);
        let with = ctx.fixture_with(IndexConfig::from_names([name]), CachePolicy::disabled())?;
        let all = populate(&with)?;
        let plan = with.explain(&query)?;
        ensure!(
            plan.index == Some(name) && !plan.full_scan,
            "{name}: {plan:?}"
        );
        let without = with.reopen(IndexConfig::none())?;
        let plan = without.explain(&query)?;
        ensure!(
            plan.index.is_none() && plan.full_scan,
            "{name} off: {plan:?}"
        );
        ensure!(without.query(&query)? == reference(&all, &query));
    }
    Ok(())
}

/// Without indexes a filter scans; an id range alone is not a full scan.
pub fn explain_scans_without_index<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture_with(IndexConfig::none(), CachePolicy::disabled())?;
    populate(&f)?;
    let plan = f.explain(&Query::new(Filter::correlation("c-a"), Order::IdAsc))?;
    ensure!(plan.full_scan && plan.index.is_none() && !plan.detail.is_empty());
    let range = Filter {
        id_from: Some(5),
        id_to: Some(9),
        ..Filter::default()
    };
    let plan = f.explain(&Query::new(range, Order::IdAsc))?;
    ensure!(!plan.full_scan && plan.index.is_none(), "{plan:?}");
    Ok(())
}

/// A page's total and its events come from one snapshot: while a writer appends whole batches,
/// a page large enough for everything holds exactly `total_count` events, a multiple of the
/// batch size.
pub fn page_total_agrees_with_its_events_during_writes<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture_with(ctx.profile, CachePolicy::disabled())?;
    let store = &f.store;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (written, pages) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> eventlite_core::Result<u64> {
            let mut n = 0;
            for _ in 0..150 {
                n += store
                    .store_bulk((0..4).map(|_| ev("w").user("writer")).collect())?
                    .len() as u64;
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(n)
        });
        let mut pages = 0u64;
        let mut check = || -> Result<()> {
            for page in [
                store.by_user("writer", Page::first(1_000_000))?,
                store.by_cmd("w", Page::first(1_000_000))?,
            ] {
                ensure!(
                    page.events.len() as u64 == page.total_count
                        && page.total_count % 4 == 0
                        && !page.has_more,
                    "{} events, total {}",
                    page.events.len(),
                    page.total_count
                );
            }
            pages += 2;
            Ok(())
        };
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            check()?;
        }
        check()?;
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::Unavailable("writer panicked".into())))?;
        Ok::<_, anyhow::Error>((written, pages))
    })?;
    ensure!(written == 600 && pages >= 2);
    ensure!(store.by_user("writer", Page::first(1_000))?.total_count == 600);
    Ok(())
}

/// Threads sharing one store get unique, gap-free ids, and batches stay contiguous.
pub fn concurrent_writers_get_unique_gapless_ids<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let store = &f.store;
    let results: Vec<Vec<Event>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || -> eventlite_core::Result<Vec<Event>> {
                    let mut mine = Vec::new();
                    for i in 0..25 {
                        if i % 5 == 0 {
                            mine.extend(store.store_bulk(
                                (0..3).map(|_| ev("bulk").user(format!("t{t}"))).collect(),
                            )?);
                        } else {
                            mine.push(store.store(ev("one").user(format!("t{t}")))?);
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Unavailable("thread panicked".into())))
            })
            .collect::<eventlite_core::Result<_>>()
    })?;
    let mut all: Vec<u64> = results.iter().flat_map(|r| ids(r)).collect();
    all.sort_unstable();
    ensure!(all == (1..=140).collect::<Vec<_>>());
    for r in &results {
        for w in r.windows(3) {
            if w.iter().all(|e| e.cmd == "bulk") && w[0].id + 1 == w[1].id {
                ensure!(w[1].id + 1 == w[2].id || w[2].cmd != "bulk");
            }
        }
    }
    ensure!(f.last_id()? == 140 && f.count(&Filter::user("t2"))? == 35);
    Ok(())
}

/// Injection-looking text, NUL, control and bidi characters, emoji and a 1 MiB string round
/// trip exactly, in every field and through every index.
pub fn hostile_strings_roundtrip<E: Engine>(ctx: &Ctx<E>) -> Result<()> {
    let f = ctx.fixture()?;
    let nasty = [
        "'; DROP TABLE events; --",
        "\" OR 1=1 --",
        "nul\0inside",
        "ctrl\u{1}\u{7f}\r\n\t",
        "bidi \u{202e}txet\u{202c}",
        "emoji 🦀👩‍👩‍👧",
        "%_\\*?[]",
    ];
    for s in nasty {
        let e = f.store(
            ev(s)
                .user(s)
                .ip(s)
                .correlation_id(s)
                .data(&json!({ "s": s }))
                .metadata(&json!({ s: s }))
                .stream(s, ExpectedVersion::Any),
        )?;
        ensure!(f.get(e.id)?.as_ref() == Some(&e));
        ensure!(f.transaction(s)? == vec![e.clone()]);
        ensure!(f.by_user(s, Page::default())?.events == vec![e.clone()]);
        ensure!(f.by_cmd(s, Page::default())?.events == vec![e.clone()]);
        ensure!(f.query(&Query::new(Filter::stream(s), Order::IdAsc))? == vec![e.clone()]);
    }
    let big = "λ".repeat(512 * 1024);
    let e = f.store(ev("big").data(&big).user(&big[..1_000]))?;
    let back = f.get(e.id)?.ok_or_else(|| anyhow::anyhow!("missing"))?;
    ensure!(back.data::<String>()? == big && back == e);
    ensure!(f.last_id()? == nasty.len() as u64 + 1);
    Ok(())
}
