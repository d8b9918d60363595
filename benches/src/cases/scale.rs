//! The scale run: bulk appends measured as the log grows to 1M and 5M events, and a stream
//! over everything stored, with the resident memory it took.

use std::time::Instant;

use anyhow::Result;
use eventlite_core::NewEvent;

use crate::harness::{Bench, rate};
use crate::{Engine, Setup, Store, events, new_event, open_ours};

/// Resident memory from `/proc/self/status`, in KiB: (anonymous, file-backed). Anonymous is
/// the heap (caches, buffers); file-backed is mapped file pages, which the kernel can drop.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// Windows of bulk appends measured at each level of stored events.
pub const SCALE_WINDOWS: usize = 3;

/// Windows of bulk appends at 0, 1M and 5M stored events, each level followed (past 0) by a
/// stream over everything stored.
pub fn scale(b: &mut Bench, engine: Engine) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(engine.file());
    let setup = Setup::default();
    let store = open_ours(engine, &path, &setup)?;
    let window = 100_000u64;
    let mut stored = 0u64;
    for level in [0u64, 1_000_000, 5_000_000] {
        while stored < level {
            let n = (level - stored).min(10_000);
            store.store_bulk(events(stored, n).iter().map(new_event).collect())?;
            stored += n;
        }
        let mut rates = Vec::with_capacity(SCALE_WINDOWS);
        for _ in 0..SCALE_WINDOWS {
            let batches: Vec<Vec<NewEvent>> = events(stored, window)
                .chunks(1_000)
                .map(|c| c.iter().map(new_event).collect())
                .collect();
            let started = Instant::now();
            for batch in batches {
                store.store_bulk(batch)?;
            }
            rates.push(rate(window, started));
            stored += window;
        }
        b.record(
            "scale",
            &format!("bulk append at {level} stored"),
            engine,
            "events/s",
            rates,
            None,
        );
        if level > 0 {
            scale_stream(b, engine, &store)?;
        }
    }
    Ok(())
}

/// Streams every stored event, recording the rate and how much resident memory grew: flat
/// memory means the same growth at 1M and at 5M events.
fn scale_stream(b: &mut Bench, engine: Engine, store: &Store) -> Result<()> {
    let before = rss_kib();
    let mut peak = before;
    let started = Instant::now();
    let mut n = 0;
    for batch in store.read_all(eventlite_core::StreamOptions::new().batch_size(1_000))? {
        n += batch?.len() as u64;
        if n.is_multiple_of(100_000) {
            let now = rss_kib();
            peak = (peak.0.max(now.0), peak.1.max(now.1));
        }
    }
    let r = rate(n, started);
    // One decimal: the levels hold 1.3M and 5.3M events (their appended windows included).
    let millions = format!("{:.1}", n as f64 / 1e6);
    b.record(
        "scale",
        &format!("stream all ({millions}M stored)"),
        engine,
        "events/s",
        vec![r],
        None,
    );
    for (what, grew) in [
        ("anonymous", peak.0 - before.0),
        ("file-backed", peak.1 - before.1),
    ] {
        b.record(
            "scale",
            &format!("RSS growth, {what}, streaming {millions}M (KiB)"),
            engine,
            "KiB",
            vec![grew as f64],
            None,
        );
    }
    Ok(())
}
