//! The paired case behind the cursor target: two of our own pages timed against each other.

use anyhow::Result;
use eventlite_core::Cursor;

use crate::harness::{Bench, Row, Slice, each_run, interleaved};
use crate::{Engine, Reads, Setup, open_ours};

/// Name of the paired case behind the cursor target.
pub const DEEP_VS_FIRST: &str = "user page of 100: deep by cursor, against the first page";

/// The cursor target (a deep page by cursor costs what the first page costs), measured on
/// our store alone: the two pages take turns in interleaved slices of each run, as ours and
/// raw do, because the medians of two cases timed at different moments differ by the
/// machine's drift (0.84× and 1.47× in two runs of the same code).
pub fn cursor_against_first_page(
    b: &mut Bench,
    engine: Engine,
    path: &std::path::Path,
    setup: &Setup,
    pages: u64,
    cursor: Cursor,
) -> Result<()> {
    let (deep, first) = each_run(b.config.runs, |run| {
        let store = std::cell::RefCell::new(open_ours(engine, path, setup)?);
        let (slices, per) = Slice::plan(pages);
        let reps = |i: usize| Slice::nth(i as u64, per, pages).reps;
        let (t_deep, t_first) = interleaved(
            slices as usize,
            run,
            |i| {
                for _ in 0..reps(i) {
                    store.borrow_mut().user_page_after("user3", cursor)?;
                }
                Ok(())
            },
            |i| {
                for _ in 0..reps(i) {
                    store.borrow_mut().user_page_offset("user3", 0)?;
                }
                Ok(())
            },
            || Ok(()),
        )?;
        Ok((pages as f64 / t_deep, pages as f64 / t_first))
    })?;
    // In `raw`'s place: the first page.
    let row = Row::new(
        "cursor",
        DEEP_VS_FIRST,
        engine,
        "pages/s",
        deep,
        Some(first),
    );
    row.print();
    b.paired.push(row);
    Ok(())
}
