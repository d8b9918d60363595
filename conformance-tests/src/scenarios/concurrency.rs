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

/// Many writers at once, with batches of mixed sizes and stream expectations of which some
/// must fail (engines commit concurrent appends in groups): every accepted batch is stored
/// exactly once, whole and contiguous, a rejected one not at all, ids stay gap-free, and each
/// stream's versions count up from 1 in id order.
pub fn concurrent_batches_with_conflicts_commit_each_batch_alone<F: BackendFactory>(
    ctx: &Ctx<F>,
) -> Result<()> {
    let f = ctx.fixture()?;
    let store = &f.store;
    const THREADS: usize = 8;
    const ROUNDS: usize = 30;
    // Per writer: (round, batch length, outcome).
    type Attempt = (usize, usize, eventlite_core::Result<Vec<Event>>);
    let outcomes: Vec<Vec<Attempt>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    let mut own_version = 0u64;
                    for r in 0..ROUNDS {
                        let n = 1 + (t * 7 + r) % 4;
                        // Every thread races for a contested stream with `NoStream` (one
                        // wins), and appends to its own stream with `Any`, with its current
                        // version (which must succeed, whatever the group around it) or with
                        // a stale one (which must fail alone). The expectation is the first
                        // event's; the rest of the batch follows it.
                        let expect = match r % 6 {
                            0 | 3 => (format!("shared-{r}"), ExpectedVersion::NoStream),
                            1 | 4 => (format!("own-{t}"), ExpectedVersion::Any),
                            2 => (format!("own-{t}"), ExpectedVersion::Exact(own_version)),
                            _ => (
                                format!("own-{t}"),
                                ExpectedVersion::Exact(own_version.saturating_sub(1)),
                            ),
                        };
                        let batch: Vec<NewEvent> = (0..n)
                            .map(|k| {
                                let e = ev("g")
                                    .user(format!("t{t}"))
                                    .data(&json!({ "t": t, "r": r, "k": k }));
                                if k == 0 {
                                    e.stream(expect.0.clone(), expect.1)
                                } else {
                                    e.stream(expect.0.clone(), ExpectedVersion::Any)
                                }
                            })
                            .collect();
                        let outcome = store.store_bulk(batch);
                        if r % 3 != 0 && outcome.is_ok() {
                            own_version += n as u64;
                        }
                        mine.push((r, n, outcome));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    ensure!(
        outcomes.iter().all(|o| o.len() == ROUNDS),
        "a writer panicked"
    );
    let mut accepted_ids = Vec::new();
    let mut winners_per_shared = std::collections::HashMap::new();
    for (t, mine) in outcomes.iter().enumerate() {
        for (r, n, outcome) in mine {
            match outcome {
                Ok(events) => {
                    ensure!(
                        events.len() == *n,
                        "a batch of {n} came back as {}",
                        events.len()
                    );
                    for (k, e) in events.iter().enumerate() {
                        ensure!(e.data == json!({ "t": t, "r": r, "k": k }).to_string());
                        ensure!(f.get(e.id)?.as_ref() == Some(e), "event {} differs", e.id);
                    }
                    ensure!(events.windows(2).all(|w| w[1].id == w[0].id + 1));
                    accepted_ids.extend(events.iter().map(|e| e.id));
                    if r % 3 == 0 {
                        *winners_per_shared.entry(*r).or_insert(0) += 1;
                    }
                }
                Err(Error::Conflict { .. }) => {
                    ensure!(
                        r % 3 == 0 || r % 6 == 5,
                        "round {r} of writer {t}: a current or `Any` expectation failed"
                    );
                }
                Err(e) => anyhow::bail!("unexpected error {e}"),
            }
        }
    }
    for mine in &outcomes {
        for (r, _, outcome) in mine {
            ensure!(
                r % 6 != 5 || outcome.is_err(),
                "round {r}: a stale expectation succeeded"
            );
        }
    }
    accepted_ids.sort_unstable();
    let last = f.last_id()?;
    ensure!(
        accepted_ids == (1..=last).collect::<Vec<_>>(),
        "{} accepted events, last id {last}: every id once, none of a rejected batch",
        accepted_ids.len()
    );
    ensure!(
        (0..ROUNDS)
            .filter(|r| r % 3 == 0)
            .all(|r| winners_per_shared.get(&r) == Some(&1)),
        "exactly one writer wins each contested stream: {winners_per_shared:?}"
    );
    // Versions count up from 1 in id order in every stream.
    let mut seen = std::collections::HashMap::new();
    for e in f.query(&Query::default())? {
        let (Some(stream), Some(v)) = (e.stream.clone(), e.stream_version) else {
            anyhow::bail!("event {} has no stream", e.id);
        };
        let last = seen.entry(stream).or_insert(0u64);
        ensure!(
            v == *last + 1,
            "event {}: version {v} after {}",
            e.id,
            *last
        );
        *last = v;
    }
    Ok(())
}
