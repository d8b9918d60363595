//! Arbitrary bytes opened as a SQLite store: typed errors, never a panic, never a wrong event.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on any panic, even one the backend contains and turns into an
        // error; silence the hook and abort only for a panic that reaches this caller.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
    if std::panic::catch_unwind(|| run(data)).is_err() {
        std::process::abort();
    }
});

fn run(data: &[u8]) {
    common::open_bytes(data, "f.sqlite", |p| {
        eventlite_sqlite::SqliteBackend::open(p, Default::default())
    });
}
