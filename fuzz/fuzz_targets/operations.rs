//! Random operation sequences on SQLite and redb, checked against the reference engine.
#![no_main]
use eventlite_core::{
    Backend, EventStore, ExpectedVersion, Filter, IndexConfig, IndexName, MemoryBackend, NewEvent,
    Order, Query,
};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn config(bits: u8) -> IndexConfig {
    let mut c = IndexConfig::none();
    for (i, name) in IndexName::ALL.into_iter().enumerate() {
        c.set(name, bits & (1 << i) != 0);
    }
    c
}

fn apply<B: Backend>(store: &EventStore<B>, op: &[u8]) -> String {
    let pick = |i: usize, n: u8| op.get(i).copied().unwrap_or(0) % n;
    let cmd = ["a", "b", "", "c"][pick(1, 4) as usize];
    let user = ["u", "v"][pick(2, 2) as usize];
    match pick(0, 5) {
        0 => {
            let mut e = NewEvent::new(cmd).user(user).correlation_id(["g", "h"][pick(3, 2) as usize]);
            if pick(4, 3) == 0 {
                e = e.causation_id(u64::from(pick(5, 20)));
            }
            if pick(6, 3) == 0 {
                e = e.stream("s", [ExpectedVersion::Any, ExpectedVersion::NoStream, ExpectedVersion::Exact(u64::from(pick(7, 4)))][pick(8, 3) as usize]);
            }
            format!("{:?}", store.store(e).map(|e| (e.id, e.stream_version)).map_err(|e| e.to_string()))
        }
        1 => format!("{:?}", store.store_bulk((0..pick(1, 4)).map(|_| NewEvent::new("b").user(user).correlation_id("g")).collect()).map(|v| v.len()).map_err(|e| e.to_string())),
        2 => {
            let order = [Order::IdAsc, Order::IdDesc, Order::DatetimeDesc][pick(3, 3) as usize];
            let filter = match pick(4, 4) {
                0 => Filter::cmd(cmd),
                1 => Filter::user(user),
                2 => Filter::correlation("g"),
                _ => Filter::children_of(u64::from(pick(5, 10))),
            };
            let q = Query::new(filter, order).offset(u64::from(pick(6, 5))).limit(u64::from(pick(7, 6)));
            format!("{:?}", store.query(&q).map(|v| v.iter().map(|e| e.id).collect::<Vec<_>>()).map_err(|e| e.to_string()))
        }
        3 => format!("{:?}", store.count(&Filter::user(user)).map_err(|e| e.to_string())),
        _ => format!("{:?}", store.get(u64::from(pick(1, 30))).map(|e| e.map(|e| e.id)).map_err(|e| e.to_string())),
    }
}

fuzz_target!(init: common::silence_panics(), |data: &[u8]| {
    common::abort_on_escaped_panic(|| run(data))
});

fn run(data: &[u8]) {
    let Some((&bits, ops)) = data.split_first() else { return };
    let Ok(dir) = tempfile::tempdir() else { return };
    let indexes = config(bits);
    let reference = EventStore::new(MemoryBackend::with_indexes(indexes));
    let Ok(sqlite) = eventlite_sqlite::SqliteBackend::open(dir.path().join("f.sqlite"), eventlite_sqlite::SqliteOptions { indexes, ..Default::default() }) else { return };
    let Ok(redb) = eventlite_redb::RedbBackend::open(dir.path().join("f.redb"), eventlite_redb::RedbOptions { indexes, ..Default::default() }) else { return };
    let (sqlite, redb) = (EventStore::new(sqlite), EventStore::new(redb));
    for op in ops.chunks(9).take(64) {
        let want = apply(&reference, op);
        assert_eq!(apply(&sqlite, op), want, "sqlite diverged on {op:?}");
        assert_eq!(apply(&redb, op), want, "redb diverged on {op:?}");
    }
}
