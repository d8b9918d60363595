//! Reading: transactions, lineage, pages by offset and by cursor, filters, counts.

use super::*;

/// A transaction is its group's events in id order, however interleaved.
pub fn transaction_groups_in_id_order<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn children_and_lineage<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn correlation_offset_paging_across_pages<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn correlation_cursor_paging_matches_offset<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn children_page<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn by_user_newest_first_ties_by_id<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn by_cmd_orders_by_datetime_not_id<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn by_time_range_is_inclusive<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn cursor_paging_through_ties<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn page_edge_cases<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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

/// Every combination of filter fields, order and page matches the reference semantics.
pub fn combined_filters_match_reference<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn cursors_and_bounds_combine_at_the_extremes<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn count_matches_query<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    for query in varied_queries() {
        let want = all.iter().filter(|e| query.filter.matches(e)).count() as u64;
        ensure!(f.count(&query.filter)? == want, "count {:?}", query.filter);
    }
    Ok(())
}

/// `Filter::stream` selects a stream's events in order.
pub fn stream_filter_selects_stream_events<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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

/// A commit to a correlation evicts its cached transaction (upstream served stale data): the
/// engine publishes every commit, and the store's cache listens. The cache does serve a repeat.
pub fn cache_never_serves_stale_transaction<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("a").correlation_id("g"))?;
    ensure!(f.transaction_cached("g")?.len() == 1);
    let hits = f.cache_stats().hits;
    ensure!(f.transaction_cached("g")?.len() == 1 && f.cache_stats().hits == hits + 1);
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
