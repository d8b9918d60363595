//! What the async layer promises beyond answering: cancellation never leaves half a batch,
//! streams read only a little ahead of a slow consumer, calls work outside tokio.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{all_ids, watched};
use eventlite_core::{Error, NewEvent, StreamOptions, SubscribeOptions};
use eventlite_tokio::{AsyncEventStore, Dispatch, READ_AHEAD};
use futures::StreamExt;

fn batch(n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| NewEvent::new("n").data(&i)).collect()
}

/// A future never polled never reached the engine: nothing is stored.
#[tokio::test]
async fn an_append_never_polled_stores_nothing() -> Result<()> {
    let (store, _engine) = watched();
    let store = AsyncEventStore::new(store);
    let dropped = store.store_bulk(batch(10));
    drop(dropped);
    assert_eq!(store.store(NewEvent::new("next")).await?.id, 1);
    Ok(())
}

/// Dropped while the engine holds it (sent to the blocking pool): the append still commits
/// whole, and a reader sees either none of the batch or all of it, never part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_dropped_in_flight_commits_whole() -> Result<()> {
    let (store, engine) = watched();
    let store = AsyncEventStore::new(store).dispatch(Dispatch::BlockingPool);
    engine.gate.close();
    let mut append = Box::pin(store.store_bulk(batch(100)));
    // Polled once: handed to the engine, which waits at the gate.
    assert!(futures::poll!(append.as_mut()).is_pending());
    let gate = engine.gate.clone();
    tokio::task::spawn_blocking(move || gate.wait_entered(1)).await?;
    drop(append);
    assert_eq!(
        store.last_id().await?,
        0,
        "held at the gate: nothing committed yet"
    );
    let mut live = store.subscribe(SubscribeOptions::new()).await?;
    engine.gate.open();
    let mut seen = 0;
    while seen < 100 {
        let batch = live.next().await.expect("the batch")?;
        seen += batch.len();
    }
    assert_eq!(seen, 100);
    assert_eq!(all_ids(store.blocking()), (1..=100).collect::<Vec<u64>>());
    Ok(())
}

/// Cancelled by a timeout while the engine holds it: the caller cannot tell the outcome
/// from the error, but the store can, once the engine is done.
#[tokio::test(flavor = "current_thread")]
async fn an_append_timed_out_is_decided_by_the_store() -> Result<()> {
    let (store, engine) = watched();
    let store = AsyncEventStore::new(store);
    engine.gate.close();
    let attempt = tokio::time::timeout(Duration::from_millis(20), store.store_bulk(batch(5))).await;
    assert!(attempt.is_err(), "the append waits at the gate");
    engine.gate.open();
    let gate = engine.gate.clone();
    tokio::task::spawn_blocking(move || gate.wait_finished(1)).await?;
    assert_eq!(store.count(&Default::default()).await?, 5);
    Ok(())
}

/// Run in place (a multi-thread runtime's default), a call is done within the poll that
/// starts it: a timeout cannot cut it short, and it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_run_in_place_finishes_in_its_first_poll() -> Result<()> {
    let (store, engine) = watched();
    let store = AsyncEventStore::new(store);
    engine.gate.close();
    let gate = engine.gate.clone();
    // Opens the gate once the append waits there; this task is inside the append meanwhile.
    let opener = std::thread::spawn(move || {
        gate.wait_entered(1);
        gate.open();
    });
    let attempt = tokio::time::timeout(Duration::ZERO, store.store_bulk(batch(5))).await;
    opener.join().expect("the opener");
    assert_eq!(attempt.map(|stored| stored.map(|s| s.len()))??, 5);
    assert_eq!(store.count(&Default::default()).await?, 5);
    Ok(())
}

/// A slow consumer holds the reading back. Read in place (the default here), a batch is read
/// only when the consumer asks for it; read by a thread of its own (the blocking pool's
/// dispatch), at most `READ_AHEAD` batches wait beyond the one in the consumer's hands (and
/// the one the reader waits to hand over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reads_only_a_little_ahead_of_its_consumer() -> Result<()> {
    for (dispatch, bound) in [
        (Dispatch::Auto, 1),
        (Dispatch::BlockingPool, 1 + READ_AHEAD as u64 + 1),
    ] {
        let (store, engine) = watched();
        let store = AsyncEventStore::new(store).dispatch(dispatch);
        store.store_bulk(batch(1_000)).await?;
        let before = engine.queries();
        let mut batches = store.read_all(StreamOptions::new().batch_size(10)).await?;
        assert_eq!(batches.next().await.expect("a batch")?.len(), 10);
        // Wait for the reader to fill what it may, then give it time to overrun if it would.
        tokio::time::timeout(Duration::from_secs(10), async {
            while engine.queries() - before < bound {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            engine.queries() - before,
            bound,
            "{dispatch:?}: read ahead of a consumer that waits"
        );
        // The rest arrives as it is consumed.
        let mut total = 10;
        while let Some(batch) = batches.next().await {
            total += batch?.len();
        }
        assert_eq!(total, 1_000);
    }
    Ok(())
}

/// A dropped stream stops its reader instead of reading the rest of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_stops_reading() -> Result<()> {
    let (store, engine) = watched();
    let store = AsyncEventStore::new(store).dispatch(Dispatch::BlockingPool);
    store.store_bulk(batch(1_000)).await?;
    let before = engine.queries();
    let mut batches = store.read_all(StreamOptions::new().batch_size(10)).await?;
    batches.next().await.expect("a batch")?;
    drop(batches);
    tokio::time::timeout(Duration::from_secs(10), async {
        while std::sync::Arc::strong_count(store.blocking()) > 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await?;
    assert!(engine.queries() - before <= 1 + READ_AHEAD as u64 + 1);
    Ok(())
}

/// Another executor than tokio: each call runs on a thread of its own.
#[test]
fn calls_work_outside_a_tokio_runtime() -> Result<()> {
    let (store, _engine) = watched();
    let store = AsyncEventStore::new(store);
    futures::executor::block_on(async {
        let event = store.store(NewEvent::new("outside")).await?;
        assert_eq!(
            store.get(event.id).await?.map(|e| e.cmd),
            Some("outside".into())
        );
        let mut live = store.subscribe(SubscribeOptions::new()).await?;
        assert_eq!(live.next().await.expect("a batch")?[0].id, event.id);
        let mut all = store.read_all(StreamOptions::new()).await?;
        assert_eq!(all.next().await.expect("a batch")?.len(), 1);
        Ok::<_, Error>(())
    })?;
    Ok(())
}

/// An engine panic reaches the caller as a panic, as with the blocking store (and the
/// runtime goes on).
#[tokio::test]
async fn a_panic_in_a_call_is_the_callers() -> Result<()> {
    let (store, _engine) = watched();
    let store = AsyncEventStore::new(store);
    let caller = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .call(|_| -> eventlite_core::Result<()> { panic!("engine bug") })
                .await
        }
    });
    let joined = caller.await;
    assert!(joined.is_err_and(|e| e.is_panic()));
    assert_eq!(store.store(NewEvent::new("after")).await?.id, 1);
    Ok(())
}

/// A subscribe call dropped before it answered leaves no reader behind (it would follow an
/// idle log forever, holding the store open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_dropped_before_it_answered_leaves_no_reader() -> Result<()> {
    let (store, _engine) = watched();
    let store = AsyncEventStore::new(store);
    store.store(NewEvent::new("only")).await?;
    for _ in 0..20 {
        let attempt = tokio::time::timeout(
            Duration::ZERO,
            store.subscribe(SubscribeOptions::new().start(eventlite_core::Start::End)),
        )
        .await;
        drop(attempt);
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while std::sync::Arc::strong_count(store.blocking()) > 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("a cancelled subscribe left its reader running"))?;
    Ok(())
}

/// In a `LocalSet` (where tokio forbids blocking in place), `Dispatch::BlockingPool` works.
#[test]
fn the_blocking_pool_serves_a_local_set() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (store, _engine) = watched();
    let store = AsyncEventStore::new(store).dispatch(Dispatch::BlockingPool);
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let not_send = std::rc::Rc::new(NewEvent::new("local"));
        let event = store.store((*not_send).clone()).await?;
        let mut live = store.subscribe(SubscribeOptions::new()).await?;
        assert_eq!(live.next().await.expect("a batch")?[0].id, event.id);
        live.save_position("local").await?;
        assert_eq!(store.position("local").await?.map(|p| p.position), Some(1));
        Ok::<_, Error>(())
    })?;
    Ok(())
}

/// A stream made to read in place, then polled where nothing may block in place (a
/// current-thread runtime, another executor), hands its reading to a thread instead of
/// panicking.
#[test]
fn a_stream_read_in_place_moves_to_a_thread_where_it_must() -> Result<()> {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (store, _engine) = watched();
    let store = AsyncEventStore::new(store);
    multi.block_on(store.store_bulk(batch(25)))?;
    let options = || StreamOptions::new().batch_size(10);
    let mut on_current = multi.block_on(store.read_all(options()))?;
    let first = multi.block_on(on_current.next_batch()).expect("a batch")?;
    let rest = current.block_on(async {
        let mut n = 0;
        while let Some(batch) = on_current.next().await {
            n += batch?.len();
        }
        Ok::<_, Error>(n)
    })?;
    assert_eq!((first.len(), rest), (10, 15));
    let elsewhere = multi.block_on(store.read_all(options()))?;
    let batches: Vec<_> = futures::executor::block_on(elsewhere.collect::<Vec<_>>());
    assert_eq!(batches.len(), 3);
    Ok(())
}

/// Parking, releasing and listing through the async layer: an append from a task releases
/// the parked event, and a live stream sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_is_released_by_an_async_append() -> Result<()> {
    use eventlite_core::{Condition, WaitFor, WaitState};
    let (store, _engine) = watched();
    let store = AsyncEventStore::new(store);
    let parked = store
        .store_when(
            NewEvent::new("ship").correlation_id("o"),
            WaitFor::new().all([Condition::new("paid")]),
        )
        .await?;
    assert!(parked.released.is_none());
    assert_eq!(store.pending("o").await?.len(), 1);
    let cancelled = store
        .store_when(
            NewEvent::new("never").correlation_id("o"),
            WaitFor::new().all([Condition::new("paid")]),
        )
        .await?;
    assert!(store.cancel_waiting(cancelled.id).await?);
    let mut live = store.subscribe(SubscribeOptions::new()).await?;
    store
        .store(NewEvent::new("paid").correlation_id("o"))
        .await?;
    let mut cmds = Vec::new();
    while cmds.len() < 2 {
        let batch = live.next().await.expect("a batch")?;
        cmds.extend(batch.into_iter().map(|e| e.cmd));
    }
    assert_eq!(cmds, ["paid", "ship"]);
    let record = store.waiting(parked.id).await?.expect("the record");
    assert_eq!(record.state, WaitState::Released);
    assert_eq!(store.waiting_in(Some(WaitState::Cancelled)).await?.len(), 1);
    assert!(store.expired().await?.is_empty());
    assert!(store.check_waiting().await?.released.is_empty());
    Ok(())
}
