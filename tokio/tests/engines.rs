//! The async store on each embedded engine, on both tokio runtimes: every call answers as the
//! blocking store does, streams and subscriptions deliver the log, concurrent tasks append.

use std::sync::Arc;

use anyhow::Result;
use eventlite_core::{
    Backend, Callbacks, Error, EventContext, EventStore, ExpectedVersion, Filter, FnModel,
    NewEvent, Order, Page, Query, Start, StreamOptions, SubscribeOptions,
};
use eventlite_redb::{RedbBackend, RedbOptions};
use eventlite_sqlite::{SqliteBackend, SqliteOptions};
use eventlite_tokio::AsyncEventStore;
use futures::StreamExt;
use serde_json::json;

type Store = AsyncEventStore<Box<dyn Backend>>;

fn open(engine: &str, dir: &tempfile::TempDir) -> Result<Store> {
    let backend: Box<dyn Backend> = match engine {
        "sqlite" => Box::new(SqliteBackend::open(
            dir.path().join("e.sqlite"),
            SqliteOptions::default(),
        )?),
        _ => Box::new(RedbBackend::open(
            dir.path().join("e.redb"),
            RedbOptions::default(),
        )?),
    };
    Ok(AsyncEventStore::new(EventStore::new(backend)))
}

/// One test per scenario, engine and runtime flavour.
macro_rules! on_every_engine {
    ($($scenario:ident),* $(,)?) => {
        mod current_thread {
            $(
                #[test]
                fn $scenario() -> anyhow::Result<()> {
                    for engine in ["sqlite", "redb"] {
                        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                        let dir = tempfile::tempdir()?;
                        rt.block_on(super::$scenario(super::open(engine, &dir)?))
                            .map_err(|e| e.context(format!("on {engine}")))?;
                    }
                    Ok(())
                }
            )*
        }
        mod multi_thread {
            $(
                #[test]
                fn $scenario() -> anyhow::Result<()> {
                    for engine in ["sqlite", "redb"] {
                        let rt = tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .enable_all()
                            .build()?;
                        let dir = tempfile::tempdir()?;
                        // On a worker, as a service's task runs (not on the runtime's caller).
                        let scenario = rt.spawn(super::$scenario(super::open(engine, &dir)?));
                        rt.block_on(scenario)?
                            .map_err(|e| e.context(format!("on {engine}")))?;
                    }
                    Ok(())
                }
            )*
        }
    };
}

on_every_engine!(
    every_call_answers_as_the_blocking_store,
    read_all_streams_the_log_in_batches,
    bad_input_is_a_typed_error_and_stores_nothing,
    a_subscription_delivers_the_stored_then_the_new,
    a_subscription_saves_only_what_it_delivered,
    concurrent_tasks_append_without_gaps,
    a_projection_runs_on_its_thread_until_dropped,
);

/// A little causation tree, a stream, a snapshot and a position: something for every call.
async fn seed(store: &Store) -> Result<u64> {
    let root = store
        .store(
            NewEvent::new("order_placed")
                .user("ada")
                .data(&json!({"total": 12})),
        )
        .await?;
    let paid = store
        .store(NewEvent::new("paid").causation_id(root.id).data(&12))
        .await?;
    store
        .store_bulk(vec![NewEvent::new("shipped").causation_id(paid.id); 2])
        .await?;
    store
        .store_with_context(
            NewEvent::new("noted").metadata(&json!({"by": "event"})),
            &EventContext::new()
                .causation_id(root.id)
                .metadata(&json!({"by": "context"})),
        )
        .await?;
    store
        .append_to_stream(
            "cart-1",
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new("added").data(&3),
                NewEvent::new("added").data(&4),
            ],
        )
        .await?;
    store
        .create_snapshot("totals", 2, &vec![1u32, 2, 3])
        .await?;
    store.save_position("mailer", 3).await?;
    Ok(root.id)
}

async fn every_call_answers_as_the_blocking_store(store: Store) -> Result<()> {
    let root = seed(&store).await?;
    let sync = Arc::clone(store.blocking());
    let correlation = sync.get(root)?.expect("the root").correlation_id;
    let query = Query::new(Filter::cmd("shipped"), Order::IdDesc);

    assert_eq!(store.get(2).await?, sync.get(2)?);
    assert_eq!(store.get(999).await?, None);
    assert_eq!(store.get_cached(2).await?, sync.get_cached(2)?);
    assert_eq!(store.get_cached(2).await?.map(|e| e.id), Some(2));
    assert_eq!(
        store.transaction(&correlation).await?,
        sync.transaction(&correlation)?
    );
    assert_eq!(
        store.transaction_cached(&correlation).await?,
        sync.transaction_cached(&correlation)?
    );
    assert_eq!(store.children(2).await?, sync.children(2)?);
    assert_eq!(store.lineage(2).await?, sync.lineage(2)?);
    assert_eq!(store.query(&query).await?, sync.query(&query)?);
    assert_eq!(store.count(&query.filter).await?, 2);
    assert_eq!(store.explain(&query).await?, sync.explain(&query)?);
    assert_eq!(store.last_id().await?, sync.last_id()?);
    assert_eq!(store.last_id().await?, 7);
    let page = store
        .page(Filter::default(), Order::IdAsc, Page::first(3))
        .await?;
    assert_eq!(
        page,
        sync.page(Filter::default(), Order::IdAsc, Page::first(3))?
    );
    assert_eq!(page.total_count, 7);
    assert_eq!(
        store.by_correlation(&correlation, Page::first(10)).await?,
        sync.by_correlation(&correlation, Page::first(10))?
    );
    assert_eq!(
        store.children_page(1, Page::first(10)).await?,
        sync.children_page(1, Page::first(10))?
    );
    assert_eq!(store.by_user("ada", Page::first(10)).await?.total_count, 1);
    assert_eq!(store.by_cmd("added", Page::first(10)).await?.total_count, 2);
    assert_eq!(
        store.by_time_range(0, i64::MAX, Page::first(10)).await?,
        sync.by_time_range(0, i64::MAX, Page::first(10))?
    );
    assert_eq!(
        store.read_stream("cart-1", 2).await?,
        sync.read_stream("cart-1", 2)?
    );
    let (sum, version) = store
        .fold_stream("cart-1", 0i64, |sum, _e, n: i64| *sum += n)
        .await?;
    assert_eq!((sum, version), (7, 2));
    assert_eq!(store.stream_version("cart-1").await?, version);
    // Relationships.
    assert_eq!(store.roots(&correlation).await?, sync.roots(&correlation)?);
    assert_eq!(store.descendants(root).await?, sync.descendants(root)?);
    assert_eq!(store.influence(root).await?, 4);
    assert_eq!(store.ancestors(4).await?, sync.ancestors(4)?);
    assert_eq!(store.depth(4).await?, 2);
    assert_eq!(store.siblings(3).await?, sync.siblings(3)?);
    assert_eq!(store.cousins(3).await?, sync.cousins(3)?);
    assert_eq!(
        store.orphans(&correlation).await?,
        sync.orphans(&correlation)?
    );
    assert_eq!(
        store.branches(&correlation).await?,
        sync.branches(&correlation)?
    );
    assert_eq!(
        store.critical_path(&correlation).await?,
        sync.critical_path(&correlation)?
    );
    assert_eq!(
        store.tree_report(&correlation).await?,
        sync.tree_report(&correlation)?
    );
    // Snapshots.
    let restored = store
        .restore_snapshot::<Vec<u32>>("totals", 7)
        .await?
        .expect("the snapshot");
    assert_eq!((restored.state, restored.replay_from), (vec![1, 2, 3], 3));
    assert_eq!(
        store.list_snapshots("totals", 10, 0).await?,
        sync.list_snapshots("totals", 10, 0)?
    );
    store
        .create_snapshot_with_metadata("totals", 5, &vec![9u32], &json!({"why": "test"}))
        .await?;
    assert_eq!(store.delete_old_snapshots("totals", 5).await?, 1);
    assert!(store.delete_snapshot("totals", 5).await?);
    assert!(!store.delete_snapshot("totals", 5).await?);
    // Positions and failures.
    assert_eq!(store.position("mailer").await?.map(|p| p.position), Some(3));
    assert_eq!(store.positions().await?, sync.positions()?);
    assert!(store.delete_position("mailer").await?);
    assert_eq!(store.position("mailer").await?, None);
    assert!(store.failed_events("mailer").await?.is_empty());
    assert_eq!(store.clear_failed_events("mailer").await?, 0);
    // Maintenance.
    assert_eq!(store.indexes().await?, sync.indexes()?);
    store.checkpoint().await?;
    assert!(store.verify().await?.is_ok());
    let hits = store.cache_stats().hits;
    store.get_cached(2).await?;
    assert_eq!(
        store.cache_stats().hits,
        hits + 1,
        "a cached event is a cache hit"
    );
    store.clear_cache();
    Ok(())
}

async fn read_all_streams_the_log_in_batches(store: Store) -> Result<()> {
    let events: Vec<NewEvent> = (0..2_500).map(|i| NewEvent::new("n").data(&i)).collect();
    store.store_bulk(events).await?;
    let mut batches = store
        .read_all(StreamOptions::new().batch_size(1_000))
        .await?;
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        sizes.push(batch.len());
        ids.extend(batch.iter().map(|e| e.id));
    }
    assert_eq!(sizes, [1_000, 1_000, 500]);
    assert_eq!(ids, (1..=2_500).collect::<Vec<u64>>());
    let sync: Vec<_> = store
        .blocking()
        .read_all(StreamOptions::new().batch_size(1_000).filter(Filter {
            id_from: Some(10),
            id_to: Some(20),
            ..Filter::default()
        }))?
        .collect::<eventlite_core::Result<_>>()?;
    let mut batches = store
        .read_all(StreamOptions::new().batch_size(1_000).filter(Filter {
            id_from: Some(10),
            id_to: Some(20),
            ..Filter::default()
        }))
        .await?;
    assert_eq!(
        batches.next_batch().await.transpose()?,
        sync.first().cloned()
    );
    assert!(batches.next_batch().await.is_none());
    Ok(())
}

async fn bad_input_is_a_typed_error_and_stores_nothing(store: Store) -> Result<()> {
    store.store(NewEvent::new("first")).await?;
    let unknown_parent = store.store(NewEvent::new("x").causation_id(99)).await;
    assert!(
        matches!(unknown_parent, Err(Error::UnknownCausation(99))),
        "{unknown_parent:?}"
    );
    let half_bad = store
        .store_bulk(vec![NewEvent::new("ok"), NewEvent::new("")])
        .await;
    assert!(
        matches!(half_bad, Err(Error::InvalidEvent { .. })),
        "{half_bad:?}"
    );
    let stale = store
        .append_to_stream("s", ExpectedVersion::Exact(3), vec![NewEvent::new("a")])
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    let batch = store.read_all(StreamOptions::new().batch_size(0)).await;
    assert!(matches!(batch, Err(Error::InvalidArgument(_))), "{batch:?}");
    let start = store
        .subscribe(SubscribeOptions::new().start(Start::After(50)))
        .await;
    assert!(matches!(start, Err(Error::InvalidArgument(_))), "{start:?}");
    let saved = store
        .subscribe(SubscribeOptions::new().start(Start::Saved("nobody".into())))
        .await;
    assert!(matches!(saved, Err(Error::NotFound(_))), "{saved:?}");
    let snapshot = store.create_snapshot("s", 40, &1u8).await;
    assert!(matches!(snapshot, Err(Error::NotFound(_))), "{snapshot:?}");
    assert_eq!(
        store.last_id().await?,
        1,
        "nothing of the bad calls was stored"
    );
    Ok(())
}

async fn a_subscription_delivers_the_stored_then_the_new(store: Store) -> Result<()> {
    store.store(NewEvent::new("before")).await?;
    let mut all = store.subscribe(SubscribeOptions::new()).await?;
    let mut paid = store
        .subscribe(
            SubscribeOptions::new()
                .start(Start::End)
                .filter(Filter::cmd("paid")),
        )
        .await?;
    assert_eq!(all.next().await.expect("a batch")?[0].cmd, "before");
    store.store(NewEvent::new("placed")).await?;
    store.store(NewEvent::new("paid")).await?;
    // A commit through the blocking store, from a thread of its own, wakes it too.
    let sync = Arc::clone(store.blocking());
    std::thread::spawn(move || sync.store(NewEvent::new("paid")))
        .join()
        .expect("the writer")?;
    let mut cmds = Vec::new();
    while cmds.len() < 3 {
        cmds.extend(
            all.next()
                .await
                .expect("a batch")?
                .into_iter()
                .map(|e| e.cmd),
        );
    }
    assert_eq!(cmds, ["placed", "paid", "paid"]);
    let mut ids = Vec::new();
    while ids.len() < 2 {
        ids.extend(
            paid.next_batch()
                .await
                .expect("a batch")?
                .into_iter()
                .map(|e| e.id),
        );
    }
    assert_eq!(ids, [3, 4]);
    // Stopped: what was read is delivered, then the stream ends.
    paid.stopper().stop();
    assert!(paid.next().await.is_none());
    Ok(())
}

async fn a_subscription_saves_only_what_it_delivered(store: Store) -> Result<()> {
    store
        .store_bulk((0..20).map(|_| NewEvent::new("n")).collect())
        .await?;
    let mut live = store
        .subscribe(SubscribeOptions::new().batch_size(2))
        .await?;
    assert_eq!(live.current_position(), 0);
    let first = live.next().await.expect("a batch")?;
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
    // Batches read ahead are not delivered: the position is the consumer's.
    assert_eq!(live.current_position(), 2);
    live.save_position("consumer").await?;
    assert_eq!(
        store.position("consumer").await?.map(|p| p.position),
        Some(2)
    );
    drop(live);
    let mut resumed = store
        .subscribe(SubscribeOptions::new().start(Start::Saved("consumer".into())))
        .await?;
    assert_eq!(resumed.next().await.expect("a batch")?[0].id, 3);
    // The reader thread lets go of the store once the stream is dropped.
    drop(resumed);
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while Arc::strong_count(store.blocking()) > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("a dropped subscription's reader kept running"))?;
    Ok(())
}

async fn concurrent_tasks_append_without_gaps(store: Store) -> Result<()> {
    let mut tasks = Vec::new();
    for task in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                store
                    .store(NewEvent::new("n").user(format!("t{task}")).data(&i))
                    .await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let ids: Vec<u64> = store
        .query(&Query::new(Filter::default(), Order::IdAsc))
        .await?
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        ids,
        (1..=320).collect::<Vec<u64>>(),
        "every append once, no gaps"
    );
    assert_eq!(store.by_user("t7", Page::first(1)).await?.total_count, 20);
    Ok(())
}

/// Model calls take `Callbacks`, which need not be `Send`: run on the runtime's caller.
#[test]
fn models_run_on_the_calling_task_on_both_runtimes() -> Result<()> {
    for engine in ["sqlite", "redb"] {
        let dir = tempfile::tempdir()?;
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        current.block_on(models_run_on_the_calling_task(open(engine, &dir)?))?;
        let dir = tempfile::tempdir()?;
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        multi.block_on(models_run_on_the_calling_task(open(engine, &dir)?))?;
    }
    Ok(())
}

async fn models_run_on_the_calling_task(store: Store) -> Result<()> {
    let mut total = FnModel::new(0i64).on("deposit", |total, _e, data| {
        *total += data.get::<i64>()?;
        Ok(*total)
    });
    let mut seen = Vec::new();
    {
        let mut callbacks = Callbacks::new().on_default(|output: &i64, _e| {
            seen.push(*output);
            Ok(())
        });
        let one = store
            .store_with(
                NewEvent::new("deposit").data(&5),
                &mut total,
                &mut callbacks,
            )
            .await?;
        assert_eq!(one.result.ok(), Some(5));
        let more = store
            .store_bulk_with(
                vec![
                    NewEvent::new("deposit").data(&2),
                    NewEvent::new("deposit").data(&"x"),
                ],
                &mut total,
                &mut callbacks,
            )
            .await?;
        assert_eq!(more.len(), 2);
        assert!(
            more[1].result.is_err(),
            "a payload the model cannot read is its error"
        );
    }
    assert_eq!(seen, [5, 7]);
    assert_eq!(*total.state(), 7);
    let mut replayed = FnModel::new(0i64).on("deposit", |total, _e, data| {
        *total += data.get::<i64>()?;
        Ok(())
    });
    let stats = store
        .replay(&mut replayed, 1.., &mut Callbacks::new())
        .await?;
    assert_eq!((stats.events, stats.errors, stats.last_id), (3, 1, Some(3)));
    assert_eq!(*replayed.state(), 7);
    let none = store
        .replay(&mut replayed, ..1, &mut Callbacks::new())
        .await?;
    assert_eq!(none.events, 0);
    Ok(())
}

async fn a_projection_runs_on_its_thread_until_dropped(store: Store) -> Result<()> {
    let deposit = |n: i64| NewEvent::new("deposit").data(&n);
    for n in [1, 2, 3] {
        store.store(deposit(n)).await?;
    }
    let balance = || {
        FnModel::new(0i64).on("deposit", |total, _e, data| {
            *total += data.get::<i64>()?;
            Ok(())
        })
    };
    let mut projection = store
        .projection("balance", balance())
        .batch_size(2)
        .start()?;
    let stats = projection.catch_up().await?;
    assert_eq!((stats.events, stats.position), (3, 3));
    assert_eq!(projection.with_model(|m| *m.state()).await?, 6);
    // Run, follow two more appends, then drop the run's future: the projection stops.
    tokio::select! {
        ran = projection.run() => anyhow::bail!("the run ended on its own: {ran:?}"),
        followed = async {
            store.store(deposit(4)).await?;
            store.store(deposit(5)).await?;
            while store.position("balance").await?.map(|p| p.position) != Some(5) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Ok::<_, Error>(())
        } => followed?,
    }
    assert!(
        projection.stopper().is_stopped(),
        "dropping the run stopped it"
    );
    // Calls run in order on the projection's thread: this one waits for the run to end.
    assert_eq!(projection.with_model(|m| *m.state()).await?, 15);
    store.store(deposit(6)).await?;
    let again = projection.catch_up().await;
    assert!(
        matches!(again, Err(Error::InvalidArgument(_))),
        "stays stopped: {again:?}"
    );
    let rebuilt = projection.rebuild().await;
    assert!(
        rebuilt.is_err(),
        "a stopped projection rewinds nothing: {rebuilt:?}"
    );
    assert_eq!(
        store.position("balance").await?.map(|p| p.position),
        Some(5)
    );
    assert_eq!(*projection.into_model().await?.state(), 15);
    // A new projection under the name resumes after the saved position.
    let mut resumed = store.projection("balance", balance()).start()?;
    assert_eq!(resumed.catch_up().await?.events, 1);
    assert_eq!(resumed.with_model(|m| *m.state()).await?, 6);
    assert_eq!(resumed.rebuild().await?.events, 6);
    assert_eq!(resumed.with_model(|m| *m.state()).await?, 6 + 21);
    // Dropped, its thread ends and lets go of the store.
    drop(resumed);
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while Arc::strong_count(store.blocking()) > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("a dropped projection's thread kept the store"))?;
    Ok(())
}
