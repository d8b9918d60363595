//! Arbitrary bytes opened as a redb store: typed errors, never a panic reaching the caller.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(init: common::silence_panics(), |data: &[u8]| {
    common::abort_on_escaped_panic(|| run(data))
});

fn run(data: &[u8]) {
    common::open_bytes(data, "f.redb", |p| {
        eventlite_redb::RedbBackend::open(p, Default::default())
    });
}
