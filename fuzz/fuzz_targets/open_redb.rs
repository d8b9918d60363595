//! Arbitrary bytes opened as a redb store: typed errors, never a panic reaching the caller.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("f.redb");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(b) = eventlite_redb::RedbBackend::open(&path, Default::default()) {
        common::read_everything(&eventlite_core::EventStore::new(b));
    }
});
