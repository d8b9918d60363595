//! Streaming the log in batches, and replaying it through models.

use super::*;
use eventlite_core::spi::EventLog;

fn counter() -> FnModel<'static, Vec<u64>, u64> {
    FnModel::new(Vec::new()).on_default(|seen: &mut Vec<u64>, e: &Event, _: &EventData<'_>| {
        seen.push(e.id);
        Ok(e.id)
    })
}

/// Streams deliver full batches in id order, then the remainder, then end.
pub fn stream_batches_in_id_order<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..250).map(|i| ev("e").data(&i)).collect())?;
    let sizes: Vec<usize> = f
        .read_all(StreamOptions::new().batch_size(100))?
        .map(|b| b.map(|b| b.len()))
        .collect::<eventlite_core::Result<_>>()?;
    ensure!(sizes == vec![100, 100, 50], "{sizes:?}");
    let got: Vec<u64> = f
        .read_all(StreamOptions::new().batch_size(50))?
        .map(|b| b.map(|b| ids(&b)))
        .collect::<eventlite_core::Result<Vec<_>>>()?
        .concat();
    ensure!(got == (1..=250).collect::<Vec<_>>());
    // An exact multiple ends without an empty batch.
    let exact: Vec<usize> = f
        .read_all(StreamOptions::new().batch_size(125))?
        .map(|b| b.map(|b| b.len()))
        .collect::<eventlite_core::Result<_>>()?;
    ensure!(exact == vec![125, 125]);
    Ok(())
}

/// Stream filters combine (id range, correlation, user, cmd).
pub fn stream_with_combined_filters<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
        .read_all(StreamOptions::new().batch_size(2).filter(filter.clone()))?
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
        .read_all(
            StreamOptions::new()
                .batch_size(4)
                .filter(Filter::cmd("close")),
        )?
        .map(|b| b.map(|b| b.len()))
        .sum::<eventlite_core::Result<usize>>()?;
    ensure!(by_cmd == 15);
    Ok(())
}

/// Replay runs every event through the model in id order.
pub fn replay_everything_through_model<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..2_345).map(|_| ev("e")).collect())?;
    let mut model = counter();
    let stats = f.replay(&mut model, .., &mut Callbacks::new())?;
    ensure!(stats.events == 2_345 && stats.errors == 0 && stats.last_id == Some(2_345));
    ensure!(*model.state() == (1..=2_345).collect::<Vec<_>>());
    Ok(())
}

/// Replay windows: start only, stop only (upstream replayed nothing), both, empty, past the end.
pub fn replay_windows<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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

/// Replay hands the model every event exactly as stored, across batch boundaries, while it
/// reuses one batch's buffers for the next: texts that shrink, streams that come and go.
pub fn replay_hands_over_every_event_intact<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
pub fn query_into_overwrites_what_the_vector_held<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
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
