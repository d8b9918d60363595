//! The `waiting` table: what parked events (wait conditions) cost the appends that do not
//! concern them. Single appends to a store where 10,000 events are parked, each waiting on a
//! cmd nobody appends in the appended events' own correlation groups, against the same
//! appends to a store where nothing is parked, in the same run, interleaved.
//!
//! Appends are `Relaxed` (no sync), where the look for records to release is the largest part
//! of an append it can be; under `Immediate` the sync hides it. PostgreSQL runs the case too,
//! from the `postgres` table's code (it needs the server).

use std::collections::BTreeSet;

use anyhow::Result;
use eventlite_core::{Condition, Durability, WaitFor};

use crate::harness::{Bench, Slice, each_run, interleaved};
use crate::{Engine, Setup, Store, Wait, events, new_event, open_ours_with_wait};

/// The table's name in the report.
pub const TABLE: &str = "waiting";

/// The target: the case, and the least ratio (an append slowed by at most a tenth).
pub const TARGET: (&str, f64) = (APPEND, 0.9);

const APPEND: &str =
    "single appends (Relaxed) with 10,000 events parked on other cmds, against none";

/// Every case of the table on `engine` (a file engine).
pub fn waiting(b: &mut Bench, engine: Engine) -> Result<()> {
    let setup = Setup {
        durability: Durability::Relaxed,
        ..Setup::default()
    };
    let dir = tempfile::tempdir()?;
    let open = |name: &str| {
        open_ours_with_wait(
            engine,
            &dir.path().join(format!("{name}-{}", engine.file())),
            &setup,
        )
    };
    let (with, wait_with) = open("with")?;
    let (without, wait_without) = open("without")?;
    let n: u64 = if b.config.quick { 1_000 } else { 10_000 };
    parked_against_none(b, engine, n, (&with, &wait_with), (&without, &wait_without))
}

/// The case on two empty stores of `engine`: `n` single appends to `with`, where 10,000
/// events (1,000 in a quick run) are parked first, against the same appends to `without`.
/// Each store comes with what waits for its background work (see [`crate::Wait`]).
pub fn parked_against_none(
    b: &mut Bench,
    engine: Engine,
    n: u64,
    (with, wait_with): (&Store, &Wait),
    (without, wait_without): (&Store, &Wait),
) -> Result<()> {
    let parked: u64 = if b.config.quick { 1_000 } else { 10_000 };
    let all = events(0, n);
    // Parked in the groups the appends go to, so that only the cmd tells them apart.
    let groups: BTreeSet<&str> = all.iter().map(|e| e.correlation_id.as_str()).collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    for i in 0..parked {
        let group = groups[i as usize % groups.len()];
        with.store_when(
            eventlite_core::NewEvent::new("parked").correlation_id(group),
            WaitFor::new().all([Condition::new(format!("never_{}", i % 7))]),
        )?;
    }
    anyhow::ensure!(with.waiting_in(None)?.len() as u64 == parked);
    let (slices, per) = Slice::plan(n);
    let slice = |i: usize| {
        let s = Slice::nth(i as u64, per, n);
        (s.first - 1) as usize..s.last as usize
    };
    let (ours, base) = each_run(b.config.runs, |run| {
        let (o, s) = interleaved(
            slices as usize,
            run,
            |i| {
                for e in &all[slice(i)] {
                    with.store(new_event(e))?;
                }
                Ok(())
            },
            |i| {
                for e in &all[slice(i)] {
                    without.store(new_event(e))?;
                }
                Ok(())
            },
            || {
                wait_with();
                wait_without();
                Ok(())
            },
        )?;
        Ok((n as f64 / o, n as f64 / s))
    })?;
    b.record(TABLE, APPEND, engine, "events/s", ours, Some(base));
    Ok(())
}
