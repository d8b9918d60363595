//! Many threads at once: unique, gap-free ids, and pages that agree with their totals.

use super::*;

/// Threads sharing one store get unique, gap-free ids, and batches stay contiguous.
pub fn concurrent_writers_get_unique_gapless_ids<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let store = &f.store;
    let results: Vec<Vec<Event>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || -> eventlite_core::Result<Vec<Event>> {
                    let mut mine = Vec::new();
                    for i in 0..25 {
                        if i % 5 == 0 {
                            mine.extend(store.store_bulk(
                                (0..3).map(|_| ev("bulk").user(format!("t{t}"))).collect(),
                            )?);
                        } else {
                            mine.push(store.store(ev("one").user(format!("t{t}")))?);
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::unavailable("thread panicked")))
            })
            .collect::<eventlite_core::Result<_>>()
    })?;
    let mut all: Vec<u64> = results.iter().flat_map(|r| ids(r)).collect();
    all.sort_unstable();
    ensure!(all == (1..=140).collect::<Vec<_>>());
    for r in &results {
        for w in r.windows(3) {
            if w.iter().all(|e| e.cmd == "bulk") && w[0].id + 1 == w[1].id {
                ensure!(w[1].id + 1 == w[2].id || w[2].cmd != "bulk");
            }
        }
    }
    ensure!(f.last_id()? == 140 && f.count(&Filter::user("t2"))? == 35);
    Ok(())
}

/// A page's total and its events come from one snapshot: while a writer appends whole batches,
/// a page large enough for everything holds exactly `total_count` events, a multiple of the
/// batch size.
pub fn page_total_agrees_with_its_events_during_writes<F: BackendFactory>(
    ctx: &Ctx<F>,
) -> Result<()> {
    let f = ctx.fixture_with(ctx.profile, CachePolicy::disabled())?;
    let store = &f.store;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (written, pages) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> eventlite_core::Result<u64> {
            let mut n = 0;
            for _ in 0..150 {
                n += store
                    .store_bulk((0..4).map(|_| ev("w").user("writer")).collect())?
                    .len() as u64;
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(n)
        });
        let mut pages = 0u64;
        let mut check = || -> Result<()> {
            for page in [
                store.by_user("writer", Page::first(1_000_000))?,
                store.by_cmd("w", Page::first(1_000_000))?,
            ] {
                ensure!(
                    page.events.len() as u64 == page.total_count
                        && page.total_count % 4 == 0
                        && !page.has_more,
                    "{} events, total {}",
                    page.events.len(),
                    page.total_count
                );
            }
            pages += 2;
            Ok(())
        };
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            check()?;
        }
        check()?;
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::unavailable("writer panicked")))?;
        Ok::<_, anyhow::Error>((written, pages))
    })?;
    ensure!(written == 600 && pages >= 2);
    ensure!(store.by_user("writer", Page::first(1_000))?.total_count == 600);
    Ok(())
}
