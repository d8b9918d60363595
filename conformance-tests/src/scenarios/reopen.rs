//! The store across reopens: nothing lost, indexes made to match the configuration,
//! checkpoints, and `explain`.

use super::*;

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

/// Closing and reopening keeps events, snapshots, stream versions and the id sequence.
pub fn reopen_keeps_everything<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn checkpoint_changes_no_answer<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn reopen_with_other_indexes_same_answers<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn indexes_match_config<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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

/// Opened with the indexes it has, a store keeps them, whatever the options ask, and answers
/// as before; a later open with a configuration still reconciles.
pub fn reopen_with_indexes_as_found_changes_nothing<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let all = populate(&f)?;
    let f = f.reopen_as_found()?;
    ensure!(f.indexes()? == ctx.profile, "{:?}", f.indexes()?);
    for query in varied_queries() {
        ensure!(f.query(&query)? == reference(&all, &query), "{query:?}");
    }
    // It writes as usual, keeping the indexes up to date.
    f.store(ev("after").correlation_id("c-a"))?;
    let f = f.reopen(IndexConfig::all())?;
    ensure!(f.indexes()? == IndexConfig::all());
    let f = f.reopen_as_found()?;
    ensure!(f.indexes()? == IndexConfig::all());
    ensure!(f.transaction("c-a")?.last().map(|e| e.cmd.as_str()) == Some("after"));
    Ok(())
}

/// For each of the eight indexes, a query that needs it uses it when (only) it is enabled, and
/// scans when it is not; the answers are the same.
pub fn explain_uses_each_index<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn explain_scans_without_index<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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

/// `verify` finds nothing wrong in a sound store: every event checked, across streams,
/// causations, more than one read chunk, and a reopen with other indexes.
pub fn verify_passes_a_sound_store<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let report = f.verify()?;
    ensure!(report.is_ok() && report.events_checked == 0 && report.last_id == 0);
    populate(&f)?;
    for i in 0..3u64 {
        f.store(ev("s").stream("acct", ExpectedVersion::Any))?;
        f.store(ev("s").stream(format!("other-{i}"), ExpectedVersion::NoStream))?;
    }
    f.store_bulk((0..1_100u64).map(|i| ev("bulk").data(&i)).collect())?;
    let last = f.last_id()?;
    let report = f.verify()?;
    ensure!(report.is_ok(), "{:?}", report.problems);
    ensure!(report.events_checked == last && report.last_id == last);
    let f = f.reopen(IndexConfig::all())?;
    let report = f.verify()?;
    ensure!(report.is_ok(), "{:?}", report.problems);
    ensure!(report.events_checked == last);
    Ok(())
}
