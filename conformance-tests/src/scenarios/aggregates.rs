//! Aggregates: loading a stream (from a version, folded into a state) and appending a batch to
//! one stream with one expectation.

use super::*;

/// Two interleaved streams and loose events: `a` gets versions 1..=`n`, `b` half as many.
fn two_streams<F: BackendFactory>(f: &Fixture<'_, F>, n: u64) -> Result<()> {
    for i in 0..n {
        f.store(ev("added").data(&i).stream("a", ExpectedVersion::Any))?;
        if i % 2 == 0 {
            f.store(ev("added").data(&i).stream("b", ExpectedVersion::Any))?;
        }
        f.store(ev("loose").data(&i))?;
    }
    Ok(())
}

/// A stream's events are read from its index, in order: `explain` shows neither a full scan
/// nor a sort, in both id orders, with and without a limit or an offset, under every index
/// profile; and the answers are the stream's events.
pub fn stream_loads_read_the_stream_in_order<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    two_streams(&f, 20)?;
    let all = all_events(&f)?;
    for order in [Order::IdAsc, Order::IdDesc] {
        for query in [
            Query::new(Filter::stream("a"), order),
            Query::new(Filter::stream("a"), order).limit(5),
            Query::new(Filter::stream("a"), order).offset(7),
            Query::new(Filter::stream("a"), order).offset(7).limit(3),
        ] {
            let plan = f.explain(&query)?;
            ensure!(!plan.full_scan && !plan.sorts, "{query:?}: {plan:?}");
            ensure!(f.query(&query)? == reference(&all, &query), "{query:?}");
        }
    }
    // Newest first is not the stream's order: that one is sorted, and says so.
    let newest = Query::new(Filter::stream("a"), Order::DatetimeDesc).limit(5);
    let plan = f.explain(&newest)?;
    ensure!(plan.sorts, "{plan:?}");
    ensure!(f.query(&newest)? == reference(&all, &newest));
    Ok(())
}

/// A stream appended in batches holds runs of consecutive ids, next to batches of streams
/// whose names start with its own, loose events, mixed bulk batches and the log's end: every
/// load of it, with every offset, limit, id bound and cursor, answers exactly the stream's
/// events (an engine may read such runs along the log rather than key by key).
pub fn stream_loads_across_runs_of_ids<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let batch = |n: usize| (0..n).map(|i| ev("added").data(&i)).collect::<Vec<_>>();
    f.append_to_stream("a", ExpectedVersion::NoStream, batch(5))?;
    f.append_to_stream("ab", ExpectedVersion::NoStream, batch(3))?;
    f.store(ev("loose"))?;
    f.append_to_stream("a", ExpectedVersion::Exact(5), batch(4))?;
    f.append_to_stream("aa", ExpectedVersion::NoStream, batch(2))?;
    f.append_to_stream("b", ExpectedVersion::NoStream, batch(2))?;
    f.append_to_stream("a", ExpectedVersion::Exact(9), batch(1))?;
    f.append_to_stream("a", ExpectedVersion::Exact(10), batch(2))?;
    f.store_bulk(vec![
        ev("x").stream("a", ExpectedVersion::Any),
        ev("x").stream("a", ExpectedVersion::Any),
        ev("x").stream("b", ExpectedVersion::Any),
        ev("x").stream("a", ExpectedVersion::Any),
        ev("x").stream("a", ExpectedVersion::Any),
    ])?;
    f.append_to_stream("a", ExpectedVersion::Exact(16), batch(3))?;
    let all = all_events(&f)?;
    let last = all.len() as u64;
    for name in ["a", "aa", "ab", "b"] {
        let of: Vec<&Event> = all
            .iter()
            .filter(|e| e.stream.as_deref() == Some(name))
            .collect();
        let n = of.len() as u64;
        for from in 0..=n + 1 {
            let want: Vec<Event> = of
                .iter()
                .skip(from.saturating_sub(1) as usize)
                .map(|e| (*e).clone())
                .collect();
            ensure!(f.read_stream(name, from)? == want, "{name} from {from}");
        }
        let mut queries = Vec::new();
        for k in 0..=n + 1 {
            queries.push(Query::new(Filter::stream(name), Order::IdAsc).limit(k));
            queries.push(Query::new(Filter::stream(name), Order::IdAsc).offset(k));
            queries.push(
                Query::new(Filter::stream(name), Order::IdAsc)
                    .offset(k)
                    .limit(2),
            );
        }
        for lo in 0..=last + 1 {
            for hi in lo.saturating_sub(1)..=last + 1 {
                let filter = Filter {
                    id_from: Some(lo),
                    id_to: Some(hi),
                    ..Filter::stream(name)
                };
                queries.push(Query::new(filter.clone(), Order::IdAsc));
                queries.push(Query::new(filter, Order::IdAsc).offset(1).limit(3));
            }
            let after = Cursor {
                id: lo,
                datetime: 0,
            };
            queries.push(Query::new(Filter::stream(name), Order::IdAsc).after(after));
            queries.push(
                Query::new(Filter::stream(name), Order::IdAsc)
                    .after(after)
                    .limit(2),
            );
            let from = Filter {
                id_from: Some(lo),
                ..Filter::stream(name)
            };
            queries.push(Query::new(from, Order::IdAsc).limit(3));
        }
        for query in queries {
            ensure!(f.query(&query)? == reference(&all, &query), "{query:?}");
        }
        // Paged by cursor, as a reader pages, with pages that end inside runs.
        for size in 1..=4 {
            let (mut paged, mut after) = (Vec::new(), None);
            loop {
                let mut query = Query::new(Filter::stream(name), Order::IdAsc).limit(size);
                if let Some(c) = after {
                    query = query.after(c);
                }
                let page = f.query(&query)?;
                let Some(last) = page.last() else { break };
                after = Some(last.cursor());
                paged.extend(page);
            }
            ensure!(
                paged.iter().eq(of.iter().copied()),
                "{name} in pages of {size}"
            );
        }
    }
    Ok(())
}

/// `read_stream` answers a stream's events from a version on, in order, with their versions;
/// past the end, or for a stream never written, it answers nothing.
pub fn read_stream_from_a_version<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    two_streams(&f, 30)?;
    let all = all_events(&f)?;
    let of_a: Vec<&Event> = all
        .iter()
        .filter(|e| e.stream.as_deref() == Some("a"))
        .collect();
    for from in [0u64, 1, 2, 15, 30, 31, 1_000, u64::MAX] {
        let got = f.read_stream("a", from)?;
        let want: Vec<Event> = of_a
            .iter()
            .skip(from.saturating_sub(1) as usize)
            .map(|e| (*e).clone())
            .collect();
        ensure!(got == want, "from {from}: {:?}", ids(&got));
        let versions: Vec<Option<u64>> = got.iter().map(|e| e.stream_version).collect();
        let counted: Vec<Option<u64>> = (from.max(1)..).take(got.len()).map(Some).collect();
        ensure!(versions == counted, "from {from}: {versions:?}");
    }
    ensure!(f.read_stream("b", 1)?.len() == 15);
    // A stream whose name starts with another's stays apart from it, on both sides.
    f.append_to_stream("ab", ExpectedVersion::NoStream, vec![ev("x"), ev("y")])?;
    f.append_to_stream("a", ExpectedVersion::Exact(30), vec![ev("z")])?;
    ensure!(f.read_stream("a", 30)?.len() == 2);
    ensure!(
        f.read_stream("ab", 1)?
            .iter()
            .all(|e| e.stream.as_deref() == Some("ab"))
    );
    ensure!(f.read_stream("ab", 1)?.len() == 2);
    ensure!(f.read_stream("never", 1)?.is_empty());
    ensure!(matches!(
        f.read_stream("", 1),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

/// `append_to_stream` checks one expectation for the batch and numbers the batch after it; a
/// stale expectation stores none of the batch; events that name a stream of their own, and
/// an empty batch, are refused without storing anything.
pub fn append_to_stream_checks_the_batch_once<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let first = f.append_to_stream(
        "cart",
        ExpectedVersion::NoStream,
        (0..3).map(|i| ev("added").data(&i)).collect(),
    )?;
    let versions: Vec<Option<u64>> = first.iter().map(|e| e.stream_version).collect();
    ensure!(versions == vec![Some(1), Some(2), Some(3)], "{versions:?}");
    ensure!(first.iter().all(|e| e.stream.as_deref() == Some("cart")));
    let next = f.append_to_stream(
        "cart",
        ExpectedVersion::Exact(3),
        vec![ev("added").data(&3), ev("checked-out")],
    )?;
    ensure!(next.iter().map(|e| e.stream_version).collect::<Vec<_>>() == vec![Some(4), Some(5)]);
    let last = f.last_id()?;
    // Stale: the stream is at 5.
    let stale = f.append_to_stream(
        "cart",
        ExpectedVersion::Exact(3),
        vec![ev("added"), ev("added")],
    );
    ensure!(
        matches!(
            &stale,
            Err(Error::Conflict {
                actual: Some(5),
                ..
            })
        ),
        "{stale:?}"
    );
    let foreign = f.append_to_stream(
        "cart",
        ExpectedVersion::Exact(5),
        vec![
            ev("added"),
            ev("added").stream("other", ExpectedVersion::Any),
        ],
    );
    ensure!(
        matches!(&foreign, Err(Error::InvalidEvent { .. })),
        "{foreign:?}"
    );
    ensure!(matches!(
        f.append_to_stream("cart", ExpectedVersion::Exact(5), Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
    ensure!(matches!(
        f.append_to_stream("", ExpectedVersion::Any, vec![ev("added")]),
        Err(Error::InvalidArgument(_))
    ));
    ensure!(f.last_id()? == last, "a refused append stored something");
    ensure!(f.read_stream("cart", 1)?.len() == 5);
    Ok(())
}

/// `stream_version` is the stream's count of events, whatever else is appended around it (other
/// streams, one whose name extends it, loose events), and what `Exact` expects next: one less
/// conflicts. A stream with no events is at 0; an empty name is refused.
pub fn stream_version_is_what_the_next_append_expects<F: BackendFactory>(
    ctx: &Ctx<F>,
) -> Result<()> {
    let f = ctx.fixture()?;
    ensure!(f.stream_version("acct")? == 0);
    two_streams(&f, 6)?;
    f.store(ev("opened").stream("ab", ExpectedVersion::NoStream))?;
    ensure!(f.stream_version("a")? == 6, "{}", f.stream_version("a")?);
    ensure!(f.stream_version("b")? == 3, "{}", f.stream_version("b")?);
    ensure!(f.stream_version("ab")? == 1);
    let version = f.stream_version("a")?;
    let stale = f.append_to_stream("a", ExpectedVersion::Exact(version - 1), vec![ev("late")]);
    ensure!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    f.append_to_stream(
        "a",
        ExpectedVersion::Exact(version),
        vec![ev("next"), ev("next")],
    )?;
    ensure!(f.stream_version("a")? == version + 2);
    ensure!(matches!(
        f.stream_version(""),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

/// `fold_stream` decodes each event's data into the caller's type and folds it in order, and
/// returns the stream's version for the next append; data of another type is a decode error.
pub fn fold_stream_loads_an_aggregate<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let (empty, version) = f.fold_stream("acct", 0i64, |_, _, _: i64| {})?;
    ensure!((empty, version) == (0, 0));
    f.append_to_stream(
        "acct",
        ExpectedVersion::Exact(version),
        vec![
            ev("deposited").data(&50),
            ev("withdrawn").data(&20),
            ev("deposited").data(&7),
        ],
    )?;
    f.store(
        ev("deposited")
            .data(&1_000)
            .stream("other", ExpectedVersion::Any),
    )?;
    let mut seen = Vec::new();
    let (balance, version) = f.fold_stream("acct", 0i64, |balance, event, amount: i64| {
        seen.push(event.stream_version);
        match event.cmd.as_str() {
            "deposited" => *balance += amount,
            _ => *balance -= amount,
        }
    })?;
    ensure!((balance, version) == (37, 3), "{balance} {version}");
    ensure!(seen == vec![Some(1), Some(2), Some(3)]);
    f.append_to_stream(
        "acct",
        ExpectedVersion::Exact(version),
        vec![ev("noted").data(&"not a number")],
    )?;
    let bad = f.fold_stream("acct", 0i64, |_, _, _: i64| {});
    ensure!(matches!(&bad, Err(Error::Decode { .. })), "{bad:?}");
    Ok(())
}
