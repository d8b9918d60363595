//! The `async` table: the tokio layer (`eventlite-tokio`) against the blocking calls it wraps,
//! on the same store in the same run.
//!
//! - a durable append and a get by id (random) from one task, against the same calls made
//!   directly (the price of the layer);
//! - the same get on a current-thread runtime (where calls go to the blocking pool), run in
//!   place against the blocking pool, and through a small dedicated pool of two threads against
//!   tokio's blocking pool: how the layer should dispatch;
//! - 16 tasks appending durably, against 16 threads on the blocking store (group commit serves
//!   both);
//! - the whole log as a `Stream`, against the blocking `read_all`.
//!
//! The tasks run on a multi-thread runtime of two workers, as spawned tasks (not on the
//! bench's own thread), as a service's handlers would.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use eventlite_core::{Filter, StreamOptions};
use eventlite_tokio::{AsyncEventStore, Dispatch};
use futures::StreamExt;

use crate::cases::concurrent;
use crate::harness::{Bench, Slice, each_run, interleaved};
use crate::{BenchEvent, Engine, Setup, Store, events, new_event, open_ours};

/// The table's name in the report.
pub const TABLE: &str = "async";

/// The targets on this table: (case, least ratio). The other rows say how to dispatch
/// (in place, blocking pool, dedicated pool) and what a current-thread runtime costs.
pub const TARGETS: [(&str, f64); 4] = [(APPEND, 0.85), (GET, 0.85), (TASKS, 0.9), (STREAM, 0.85)];

const APPEND: &str = "durable append from 1 task, against the blocking call";
const GET: &str = "get by id (random) from 1 task, against the blocking call";
const TASKS: &str = "16 tasks appending durably, against 16 threads";
const STREAM: &str = "the whole log as a Stream, against the blocking read_all";

type Job = Box<dyn FnOnce() + Send>;

/// A dedicated pool: `threads` threads taking jobs from one queue.
struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        }
        Pool { jobs }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| anyhow::anyhow!("the pool is gone"))?;
        Ok(rx.await?)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs `work` as a task on `rt` and waits for it.
fn on_task<F>(rt: &tokio::runtime::Runtime, work: F) -> Result<()>
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    rt.block_on(rt.spawn(work))?
}

/// Every case of the table on `engine`.
pub fn asynchronous(b: &mut Bench, engine: Engine) -> Result<()> {
    let rt = runtime()?;
    appends(b, engine, &rt)?;
    gets(b, engine, &rt)?;
    concurrent_tasks(b, engine, &rt)?;
    read_all(b, engine, &rt)?;
    Ok(())
}

fn appends(b: &mut Bench, engine: Engine, rt: &tokio::runtime::Runtime) -> Result<()> {
    let n: u64 = if b.config.quick { 200 } else { 2_000 };
    let dir = tempfile::tempdir()?;
    let store = Arc::new(open_ours(
        engine,
        &dir.path().join(engine.file()),
        &Setup::default(),
    )?);
    let wrapped = AsyncEventStore::from_shared(Arc::clone(&store));
    let all = events(0, n);
    let (slices, per) = Slice::plan(n);
    let slice = |i: usize| -> Vec<BenchEvent> {
        let s = Slice::nth(i as u64, per, n);
        all[(s.first - 1) as usize..s.last as usize].to_vec()
    };
    let (ours, sync) = each_run(b.config.runs, |run| {
        let (o, s) = interleaved(
            slices as usize,
            run,
            |i| {
                let (store, mine) = (wrapped.clone(), slice(i));
                on_task(rt, async move {
                    for e in &mine {
                        store.store(new_event(e)).await?;
                    }
                    Ok(())
                })
            },
            |i| {
                for e in &slice(i) {
                    store.store(new_event(e))?;
                }
                Ok(())
            },
            || Ok(()),
        )?;
        Ok((n as f64 / o, n as f64 / s))
    })?;
    b.record(TABLE, APPEND, engine, "events/s", ours, Some(sync));
    Ok(())
}

/// A store of `n` events, appended in bulk, shared.
fn filled(engine: Engine, path: &std::path::Path, n: u64) -> Result<Arc<Store>> {
    Ok(Arc::new(crate::cases::subscriptions::filled(
        engine, path, n,
    )?))
}

/// Random ids in `1..=n`, the same sequence every time.
fn random_ids(n: u64, k: u64) -> Vec<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..k)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n + 1
        })
        .collect()
}

fn gets(b: &mut Bench, engine: Engine, rt: &tokio::runtime::Runtime) -> Result<()> {
    let n = b.config.events;
    let k: u64 = if b.config.quick { 2_000 } else { 20_000 };
    let dir = tempfile::tempdir()?;
    let store = filled(engine, &dir.path().join(engine.file()), n)?;
    let in_place = AsyncEventStore::from_shared(Arc::clone(&store));
    let blocking_pool = in_place.clone().dispatch(Dispatch::BlockingPool);
    let pool = Arc::new(Pool::new(2));
    let current = tokio::runtime::Builder::new_current_thread().build()?;
    let ids = random_ids(n, k);
    let (slices, per) = Slice::plan(k);
    let slice = |i: usize| -> Vec<u64> {
        let s = Slice::nth(i as u64, per, k);
        ids[(s.first - 1) as usize..s.last as usize].to_vec()
    };
    let through = |store: &AsyncEventStore<_>, rt: &tokio::runtime::Runtime, i: usize| {
        let (store, mine) = (store.clone(), slice(i));
        on_task(rt, async move {
            for id in mine {
                store.get(id).await?;
            }
            Ok(())
        })
    };
    let blocking_call = |i: usize| -> Result<()> {
        for id in slice(i) {
            store.get(id)?;
        }
        Ok(())
    };
    let dedicated = |i: usize| {
        let (store, pool, mine) = (Arc::clone(&store), Arc::clone(&pool), slice(i));
        on_task(rt, async move {
            for id in mine {
                let store = Arc::clone(&store);
                pool.run(move || store.get(id)).await??;
            }
            Ok(())
        })
    };
    let mut pair = |case: &str,
                    ours: &mut dyn FnMut(usize) -> Result<()>,
                    base: &mut dyn FnMut(usize) -> Result<()>|
     -> Result<()> {
        let (o, r) = each_run(b.config.runs, |run| {
            let (o, r) = interleaved(slices as usize, run, &mut *ours, &mut *base, || Ok(()))?;
            Ok((k as f64 / o, k as f64 / r))
        })?;
        b.record(TABLE, case, engine, "ops/s", o, Some(r));
        Ok(())
    };
    pair(GET, &mut |i| through(&in_place, rt, i), &mut {
        blocking_call
    })?;
    pair(
        "get by id (random) from 1 task on a current-thread runtime (blocking pool), against the blocking call",
        &mut |i| through(&in_place, &current, i),
        &mut { blocking_call },
    )?;
    pair(
        "get by id (random) in place (Dispatch::Auto), against tokio's blocking pool",
        &mut |i| through(&in_place, rt, i),
        &mut |i| through(&blocking_pool, rt, i),
    )?;
    pair(
        "get by id (random) through a dedicated pool of 2 threads, against tokio's blocking pool",
        &mut { dedicated },
        &mut |i| through(&blocking_pool, rt, i),
    )?;
    Ok(())
}

fn concurrent_tasks(b: &mut Bench, engine: Engine, rt: &tokio::runtime::Runtime) -> Result<()> {
    const N_TASKS: usize = 16;
    let total: u64 = if b.config.quick { 1_024 } else { 8_192 };
    let per = total / N_TASKS as u64;
    let setup = Setup::default();
    let (mut ours, mut threads) = (Vec::new(), Vec::new());
    for run in 0..b.config.runs {
        // Which side goes first alternates by run.
        for side in [run % 2, (run + 1) % 2] {
            let dir = tempfile::tempdir()?;
            let store = Arc::new(open_ours(engine, &dir.path().join(engine.file()), &setup)?);
            if side == 0 {
                let wrapped = AsyncEventStore::from_shared(store);
                let work: Vec<Vec<BenchEvent>> =
                    (0..N_TASKS).map(|t| events(t as u64 * per, per)).collect();
                let started = std::time::Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = work
                        .into_iter()
                        .map(|mine| {
                            let store = wrapped.clone();
                            tokio::spawn(async move {
                                for e in &mine {
                                    store.store(new_event(e)).await?;
                                }
                                Ok::<_, eventlite_core::Error>(())
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await??;
                    }
                    Ok::<_, anyhow::Error>(())
                })?;
                ours.push(total as f64 / started.elapsed().as_secs_f64());
            } else {
                let append = |_: usize, e: &BenchEvent| -> Result<()> {
                    store.store(new_event(e))?;
                    Ok(())
                };
                threads.push(concurrent::rate(N_TASKS, per, &append)?);
            }
        }
    }
    b.record(TABLE, TASKS, engine, "events/s", ours, Some(threads));
    Ok(())
}

fn read_all(b: &mut Bench, engine: Engine, rt: &tokio::runtime::Runtime) -> Result<()> {
    let n = b.config.events;
    let dir = tempfile::tempdir()?;
    let store = filled(engine, &dir.path().join(engine.file()), n)?;
    let wrapped = AsyncEventStore::from_shared(Arc::clone(&store));
    let (slices, per) = Slice::plan(n);
    let range = move |i: usize| {
        let s = Slice::nth(i as u64, per, n);
        Filter {
            id_from: Some(s.first),
            id_to: Some(s.last),
            ..Filter::default()
        }
    };
    let (ours, sync) = each_run(b.config.runs, |run| {
        let (o, s) = interleaved(
            slices as usize,
            run,
            |i| {
                let store = wrapped.clone();
                on_task(rt, async move {
                    let mut batches = store
                        .read_all(StreamOptions::new().filter(range(i)))
                        .await?;
                    while let Some(batch) = batches.next().await {
                        batch?;
                    }
                    Ok(())
                })
            },
            |i| {
                for batch in store.read_all(StreamOptions::new().filter(range(i)))? {
                    batch?;
                }
                Ok(())
            },
            || Ok(()),
        )?;
        Ok((n as f64 / o, n as f64 / s))
    })?;
    b.record(TABLE, STREAM, engine, "events/s", ours, Some(sync));
    Ok(())
}
