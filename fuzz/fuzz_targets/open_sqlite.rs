//! Arbitrary bytes opened as a SQLite store: typed errors, never a panic, never a wrong event.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(init: common::silence_panics(), |data: &[u8]| {
    common::abort_on_escaped_panic(|| run(data))
});

fn run(data: &[u8]) {
    common::open_bytes(data, "f.sqlite", |p| {
        eventlite_sqlite::SqliteBackend::open(p, Default::default())
    });
}
