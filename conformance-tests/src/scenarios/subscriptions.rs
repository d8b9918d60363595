//! Following the log: subscriptions from every start, live delivery across threads, stops,
//! durable positions, skipped-event records, and projections resuming after a reopen.

use std::time::Duration;

use eventlite_core::{FailedEvent, Start, SubscribeOptions};

use super::*;

/// Long enough never to end a healthy wait on a loaded machine; a wait that needs it failed.
const PATIENCE: Duration = Duration::from_secs(20);

/// Collects batches until `n` events arrived, each batch within [`PATIENCE`].
fn collect<B: eventlite_core::Backend>(
    sub: &mut eventlite_core::Subscription<'_, B>,
    n: usize,
) -> Result<Vec<Event>> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = sub
            .next_batch(PATIENCE)?
            .ok_or_else(|| anyhow::anyhow!("waited {PATIENCE:?} with {} of {n}", got.len()))?;
        got.extend(batch);
    }
    Ok(got)
}

/// Catch-up reads the stored events in id order and in batches of at most the batch size; then
/// the subscription is at the end and waits.
pub fn subscription_catches_up_in_batches<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let events = populate(&f)?;
    let mut sub = f.subscribe(SubscribeOptions::new().batch_size(7))?;
    let mut got = Vec::new();
    while let Some(batch) = sub.next_batch(Duration::ZERO)? {
        ensure!(
            !batch.is_empty() && batch.len() <= 7,
            "batch of {}",
            batch.len()
        );
        got.extend(batch);
    }
    ensure!(got == events, "catch-up differs from the log");
    ensure!(sub.current_position() == 60);
    ensure!(sub.next_batch(Duration::from_millis(1))?.is_none());
    Ok(())
}

/// Every start: the beginning, after an id, at the end, after a saved position; and the starts
/// that cannot be (an unknown name, a position past the end, a batch size of 0) are typed
/// errors.
pub fn subscription_starts<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    for _ in 0..5 {
        f.store(ev("e"))?;
    }
    let first_id = |start: Start| -> Result<Option<u64>> {
        let mut sub = f.subscribe(SubscribeOptions::new().start(start))?;
        Ok(sub.next_batch(Duration::ZERO)?.map(|b| b[0].id))
    };
    ensure!(first_id(Start::Beginning)? == Some(1));
    ensure!(first_id(Start::After(0))? == Some(1));
    ensure!(first_id(Start::After(3))? == Some(4));
    ensure!(first_id(Start::After(5))?.is_none());
    ensure!(first_id(Start::End)?.is_none());
    f.save_position("reader", 2)?;
    ensure!(first_id(Start::Saved("reader".into()))? == Some(3));
    assert_err(
        f.subscribe(SubscribeOptions::new().start(Start::Saved("nobody".into()))),
        |e| matches!(e, Error::NotFound(_)),
    )?;
    assert_err(
        f.subscribe(SubscribeOptions::new().start(Start::After(6))),
        |e| matches!(e, Error::InvalidArgument(_)),
    )?;
    assert_err(f.subscribe(SubscribeOptions::new().batch_size(0)), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    // At the end: only what is appended from now on.
    let mut live = f.subscribe(SubscribeOptions::new().start(Start::End))?;
    f.store(ev("new"))?;
    ensure!(ids(&collect(&mut live, 1)?) == [6]);
    Ok(())
}

/// A filtered subscription delivers exactly the matching events, in order, and moves its
/// position past the events it skipped, so an idle filter does not rescan them.
pub fn subscription_filter_delivers_exactly_the_matches<F: BackendFactory>(
    ctx: &Ctx<F>,
) -> Result<()> {
    let f = ctx.fixture()?;
    let events = populate(&f)?;
    let filter = Filter {
        user: Some("bob".into()),
        ..Filter::cmd("deposit")
    };
    let want = reference(&events, &Query::new(filter.clone(), Order::IdAsc));
    let mut sub = f.subscribe(SubscribeOptions::new().filter(filter.clone()).batch_size(2))?;
    let mut got = Vec::new();
    while let Some(batch) = sub.next_batch(Duration::ZERO)? {
        got.extend(batch);
    }
    ensure!(got == want);
    ensure!(
        sub.current_position() == 60,
        "position {} after the scan",
        sub.current_position()
    );
    // Events that do not match move the position without being delivered.
    f.store(ev("withdraw").user("bob"))?;
    ensure!(sub.next_batch(Duration::from_millis(1))?.is_none() && sub.current_position() == 61);
    f.store(ev("deposit").user("bob"))?;
    ensure!(ids(&collect(&mut sub, 1)?) == [62]);
    // A filter with its own id range stops there.
    let bounded = Filter {
        id_from: Some(10),
        id_to: Some(12),
        ..Filter::default()
    };
    let mut sub = f.subscribe(SubscribeOptions::new().filter(bounded))?;
    ensure!(ids(&collect(&mut sub, 3)?) == [10, 11, 12]);
    ensure!(sub.next_batch(Duration::from_millis(1))?.is_none());
    Ok(())
}

/// Live delivery across threads: four writers append single events and batches while a
/// subscriber follows; it gets every event once, in id order, and never one whose batch is not
/// wholly committed.
pub fn subscription_follows_concurrent_writers<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let store = &f.store;
    let total = 4 * (15 + 5 * 3);
    let mut sub = store.subscribe(SubscribeOptions::new().batch_size(4))?;
    let got = std::thread::scope(|s| -> Result<Vec<Event>> {
        for t in 0..4 {
            s.spawn(move || -> eventlite_core::Result<()> {
                for i in 0..20 {
                    if i % 4 == 0 {
                        let n = 3;
                        store.store_bulk(
                            (0..n)
                                .map(|k| {
                                    ev("bulk").data(&json!({ "t": t, "i": i, "k": k, "n": n }))
                                })
                                .collect(),
                        )?;
                    } else {
                        store.store(ev("one").data(&json!({ "t": t, "i": i, "k": 0, "n": 1 })))?;
                    }
                }
                Ok(())
            });
        }
        let mut got = Vec::new();
        while got.len() < total {
            let batch = sub
                .next_batch(PATIENCE)?
                .ok_or_else(|| anyhow::anyhow!("stalled at {} of {total}", got.len()))?;
            // Every event of a delivered event's batch is committed already.
            for e in &batch {
                let k: u64 = e.data_value()?["k"].as_u64().unwrap_or(0);
                let n: u64 = e.data_value()?["n"].as_u64().unwrap_or(1);
                for sibling in (e.id - k)..(e.id - k + n) {
                    ensure!(
                        store.get(sibling)?.is_some(),
                        "event {sibling} of a delivered batch is missing"
                    );
                }
            }
            got.extend(batch);
        }
        Ok(got)
    })?;
    ensure!(ids(&got) == (1..=total as u64).collect::<Vec<_>>());
    ensure!(sub.next_batch(Duration::from_millis(1))?.is_none());
    Ok(())
}

/// A subscription blocked in another thread returns at once when stopped (not at its next
/// poll: the poll interval is an hour), and delivers nothing after; so does its iterator.
pub fn subscription_stops_from_another_thread<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let hour = Duration::from_secs(3600);
    let mut sub = f.subscribe(
        SubscribeOptions::new()
            .start(Start::End)
            .poll_interval(hour),
    )?;
    let stopper = sub.stopper();
    let (tx, rx) = std::sync::mpsc::channel();
    let blocked = std::thread::scope(|s| {
        s.spawn(move || {
            let _ = tx.send(sub.next_batch(Duration::MAX).map(|b| (b, sub)));
        });
        stopper.stop();
        let woke = rx.recv_timeout(PATIENCE);
        if woke.is_err() {
            // Let the waiter go, so that the scope can end and report the failure.
            f.store(ev("unblock")).ok();
        }
        woke
    });
    let (batch, mut sub) =
        blocked.map_err(|_| anyhow::anyhow!("the stop did not wake the subscriber"))??;
    ensure!(batch.is_none() && sub.is_stopped());
    f.store(ev("after"))?;
    ensure!(sub.next_batch(Duration::from_millis(1))?.is_none());
    ensure!(sub.next().is_none(), "a stopped iterator ends");
    Ok(())
}

/// Named positions: saved, loaded, listed by name, replaced, deleted; kept across a reopen;
/// an empty name or a position past the end is refused.
pub fn positions_are_saved_listed_and_deleted<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let mut f = ctx.fixture()?;
    for _ in 0..4 {
        f.store(ev("e"))?;
    }
    f.clock.set(T0 + 5);
    f.save_position("b", 3)?;
    f.save_position("a", 1)?;
    f.save_position("a", 2)?;
    let listed: Vec<(String, u64)> = f
        .positions()?
        .into_iter()
        .map(|p| (p.name, p.position))
        .collect();
    ensure!(listed == [("a".to_owned(), 2), ("b".to_owned(), 3)]);
    ensure!(f.position("b")?.map(|p| (p.position, p.updated_at)) == Some((3, T0 + 5)));
    ensure!(f.position("c")?.is_none());
    assert_err(f.save_position("", 1), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    assert_err(f.save_position("a", 5), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    f = f.reopen(ctx.profile)?;
    ensure!(f.position("a")?.map(|p| p.position) == Some(2));
    ensure!(f.delete_position("a")? && !f.delete_position("a")?);
    ensure!(f.positions()?.len() == 1);
    Ok(())
}

/// A subscription resumed from its saved position after a reopen goes on with the next event.
pub fn subscription_resumes_after_reopen<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let mut f = ctx.fixture()?;
    for i in 0..10 {
        f.store(ev("e").data(&i))?;
    }
    {
        let mut sub = f.subscribe(SubscribeOptions::new().batch_size(4))?;
        ensure!(ids(&collect(&mut sub, 4)?) == [1, 2, 3, 4]);
        sub.save_position("reader")?;
    }
    f = f.reopen(ctx.profile)?;
    let mut sub = f.subscribe(SubscribeOptions::new().start(Start::Saved("reader".into())))?;
    ensure!(ids(&collect(&mut sub, 6)?) == [5, 6, 7, 8, 9, 10]);
    Ok(())
}

/// What a projection skipped is recorded per projection and event, replaced on a repeat,
/// listed in event order, cleared per projection, and kept across a reopen.
pub fn skipped_events_are_recorded<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    use eventlite_core::spi::PositionStore;
    let mut f = ctx.fixture()?;
    let failure = |projection: &str, event_id: u64, attempts: u32| FailedEvent {
        projection: projection.to_owned(),
        event_id,
        attempts,
        error: format!("boom {event_id}"),
        at: T0,
    };
    let backend = f.backend();
    backend.record_failure(failure("p", 9, 1))?;
    backend.record_failure(failure("p", 3, 1))?;
    backend.record_failure(failure("p", 3, 4))?;
    backend.record_failure(failure("q", 1, 1))?;
    f = f.reopen(ctx.profile)?;
    let p = f.failed_events("p")?;
    ensure!(p == [failure("p", 3, 4), failure("p", 9, 1)], "{p:?}");
    ensure!(f.backend().clear_failures("p")? == 2);
    ensure!(f.failed_events("p")?.is_empty() && f.failed_events("q")?.len() == 1);
    Ok(())
}

/// A projection saves its position after each batch: another instance under the same name
/// (after a reopen) handles only what came after.
pub fn projection_resumes_from_its_position<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let mut f = ctx.fixture()?;
    let counter = || {
        FnModel::new(Vec::<u64>::new()).on_default(|seen, e, _| {
            seen.push(e.id);
            Ok(())
        })
    };
    for _ in 0..5 {
        f.store(ev("e"))?;
    }
    let mut first = f.projection("ids", counter()).batch_size(2);
    let stats = first.catch_up()?;
    ensure!(stats.events == 5 && stats.position == 5);
    ensure!(first.model().state() == &[1, 2, 3, 4, 5]);
    drop(first);
    f = f.reopen(ctx.profile)?;
    for _ in 0..3 {
        f.store(ev("e"))?;
    }
    let mut second = f.projection("ids", counter());
    second.catch_up()?;
    ensure!(second.model().state() == &[6, 7, 8]);
    ensure!(f.position("ids")?.map(|p| p.position) == Some(8));
    Ok(())
}
