//! Shared by the fuzz targets: read a store every way; no call may panic.
#![allow(dead_code)] // each target uses a part of this module
use eventlite_core::{
    Backend, Callbacks, Event, EventData, EventStore, Filter, FnModel, NewEvent, Order, Page,
    Query, StreamOptions,
};

/// Writes `data` as a store file named `name` and, if `open` accepts it, reads it every way.
pub fn open_bytes<B: Backend>(
    data: &[u8],
    name: &str,
    open: impl Fn(&std::path::Path) -> eventlite_core::Result<B>,
) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(name);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(backend) = open(&path) {
        read_everything(&EventStore::new(backend));
    }
}

pub fn read_everything<B: Backend>(store: &EventStore<B>) {
    let last = store.last_id().unwrap_or(0).min(10_000);
    for id in 1..=last + 1 {
        if let Ok(Some(e)) = store.get(id) {
            assert_eq!(e.id, id, "get returned another event");
        }
    }
    let _ = store.query(&Query::default());
    let _ = store.query(&Query::new(Filter::cmd("a"), Order::DatetimeDesc).limit(10));
    let _ = store.by_user("u", Page::first(10));
    let _ = store.transaction("g");
    if let Ok(batches) = store.read_all(StreamOptions::new().batch_size(7)) {
        for _ in batches {}
    }
    // Replays decode into one reused batch: their own path through each engine.
    let mut seen = FnModel::new(0u64).on_default(|n: &mut u64, _: &Event, _: &EventData<'_>| {
        *n += 1;
        Ok(())
    });
    let _ = store.replay(&mut seen, .., &mut Callbacks::new());
    let _ = store.count(&Filter::user("u"));
    let _ = store.store(NewEvent::new("fuzz"));
}

/// For the fuzz target's `init`: libfuzzer-sys aborts on any panic, even one the backend
/// contains and turns into an error, so the hook is silenced ...
pub fn silence_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// ... and only a panic that reaches the caller aborts (and is reported as a crash).
pub fn abort_on_escaped_panic(run: impl FnOnce() + std::panic::UnwindSafe) {
    if std::panic::catch_unwind(run).is_err() {
        std::process::abort();
    }
}
