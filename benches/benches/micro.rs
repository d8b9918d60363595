//! Micro-benchmarks: one group per operation, one function per engine.
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use eventlite_benches::{Engine, Setup, Store, events, new_event, open_ours};
use eventlite_core::{CachePolicy, Durability, IndexConfig, Page, StreamOptions};

const ENGINES: [Engine; 2] = [Engine::Sqlite, Engine::Redb];

fn store(engine: Engine, n: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = Setup {
        indexes: IndexConfig::all(),
        durability: Durability::Relaxed,
        cache: CachePolicy::read_optimized(),
        ..Setup::default()
    };
    let s = open_ours(engine, &dir.path().join(engine.file()), &setup).expect("open");
    for chunk in events(0, n).chunks(1_000) {
        s.store_bulk(chunk.iter().map(new_event).collect())
            .expect("seed");
    }
    (dir, s)
}

fn writes(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_one");
    g.throughput(Throughput::Elements(1));
    for e in ENGINES {
        let (_dir, s) = store(e, 0);
        let data = events(0, 1);
        g.bench_function(e.name(), |b| {
            b.iter(|| s.store(new_event(&data[0])).expect("store"))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("append_bulk_1000");
    g.throughput(Throughput::Elements(1_000));
    g.sample_size(20);
    for e in ENGINES {
        let (_dir, s) = store(e, 0);
        let data = events(0, 1_000);
        g.bench_function(e.name(), |b| {
            b.iter_batched(
                || data.iter().map(new_event).collect(),
                |batch| s.store_bulk(batch).expect("bulk"),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let stores: Vec<_> = ENGINES.iter().map(|e| (*e, store(*e, 20_000))).collect();
    let mut g = c.benchmark_group("get");
    for (e, (_, s)) in &stores {
        let mut id = 0;
        g.bench_function(e.name(), |b| {
            b.iter(|| {
                id = id % 20_000 + 1;
                s.get(id).expect("get")
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("get_cached");
    for (e, (_, s)) in &stores {
        let mut id = 0;
        g.bench_function(e.name(), |b| {
            b.iter(|| {
                id = id % 100 + 1;
                s.get_cached(id).expect("get")
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("page_100");
    for (e, (_, s)) in &stores {
        g.bench_function(e.name(), |b| {
            b.iter(|| s.by_correlation("corr-42", Page::first(100)).expect("page"))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("stream_10k");
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(20);
    for (e, (_, s)) in &stores {
        g.bench_function(e.name(), |b| {
            b.iter(|| {
                let filter = eventlite_core::Filter {
                    id_to: Some(10_000),
                    ..Default::default()
                };
                s.read_all(StreamOptions::new().filter(filter))
                    .expect("stream")
                    .map(|b| b.map(|b| b.len()))
                    .sum::<Result<usize, _>>()
                    .expect("batch")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, writes, reads);
criterion_main!(benches);
