//! Wait conditions: parked events released exactly once, when their conditions hold, on every
//! engine; expiry, cancelling and listing; records that survive a reopen.

use std::sync::Barrier;
use std::time::Duration;

use eventlite_core::spi::{EventLog, WaitKey, WaitingStore};
use eventlite_core::{Cmp, Condition, WaitFor, WaitState};

use super::*;

fn cmds_of<B: eventlite_core::Backend>(
    store: &EventStore<B>,
    correlation: &str,
) -> Result<Vec<String>> {
    Ok(store
        .transaction(correlation)?
        .into_iter()
        .map(|e| e.cmd)
        .collect())
}

/// `all`, `any`, `count` and `sequence` each release their event when, and only when, they
/// hold; the released event keeps the correlation and causation its caller gave it.
pub fn waiting_kinds_release_when_they_hold<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("order_placed").correlation_id("o-1"))?;
    let all = f.store_when(
        ev("ship").causation_id(root.id).user("u"),
        WaitFor::new().all([Condition::new("paid"), Condition::new("packed")]),
    )?;
    let any = f.store_when(
        ev("notify").correlation_id("o-1"),
        WaitFor::new().any([Condition::new("paid"), Condition::new("cancelled")]),
    )?;
    let count = f.store_when(
        ev("approved").correlation_id("o-1"),
        WaitFor::new().count(Condition::new("vote"), 3),
    )?;
    let seq = f.store_when(
        ev("deployed").correlation_id("o-1"),
        WaitFor::new().sequence([Condition::new("built"), Condition::new("tested")]),
    )?;
    ensure!(all.released.is_none() && any.released.is_none());
    ensure!(all.id + 1 == any.id && any.id + 1 == count.id && count.id + 1 == seq.id);
    ensure!(f.pending("o-1")?.len() == 4);

    f.store(ev("paid").correlation_id("o-1"))?;
    ensure!(cmds_of(&f, "o-1")? == ["order_placed", "paid", "notify"]);
    // Events of another group do not count.
    f.store(ev("packed").correlation_id("o-2"))?;
    ensure!(f.waiting(all.id)?.map(|w| w.state) == Some(WaitState::Waiting));
    f.store(ev("packed").correlation_id("o-1"))?;
    let ship = f
        .transaction("o-1")?
        .into_iter()
        .find(|e| e.cmd == "ship")
        .ok_or_else(|| anyhow::anyhow!("ship was not released"))?;
    ensure!(ship.causation_id == Some(root.id) && ship.user == "u");
    let record = f
        .waiting(all.id)?
        .ok_or_else(|| anyhow::anyhow!("no record"))?;
    ensure!(record.state == WaitState::Released && record.event_id == Some(ship.id));

    // A second `paid` releases nothing more: each record is released once.
    f.store(ev("paid").correlation_id("o-1"))?;
    for _ in 0..2 {
        f.store(ev("vote").correlation_id("o-1"))?;
    }
    ensure!(!cmds_of(&f, "o-1")?.contains(&"approved".to_owned()));
    f.store(ev("vote").correlation_id("o-1"))?;
    ensure!(
        cmds_of(&f, "o-1")?
            .iter()
            .filter(|c| *c == "approved")
            .count()
            == 1
    );

    // Out of order first: `tested` before any `built` does not start the sequence.
    f.store(ev("tested").correlation_id("o-1"))?;
    f.store(ev("built").correlation_id("o-1"))?;
    ensure!(!cmds_of(&f, "o-1")?.contains(&"deployed".to_owned()));
    f.store(ev("tested").correlation_id("o-1"))?;
    let cmds = cmds_of(&f, "o-1")?;
    ensure!(
        cmds.iter().filter(|c| *c == "deployed").count() == 1,
        "{cmds:?}"
    );
    ensure!(f.pending("o-1")?.is_empty());
    ensure!(f.waiting_in(Some(WaitState::Released))?.len() == 4);
    Ok(())
}

/// `where` tests compare data fields; conditions that already hold release at once; a
/// released event can complete another record in turn.
pub fn waiting_where_tests_and_chains<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let big = f.store_when(
        ev("big_sale").correlation_id("a"),
        WaitFor::from_json(&json!({
            "count": { "pattern": "bid", "count": 2, "where": { "amount": { "$gte": 100 }, "ok": true } }
        }))?,
    )?;
    let _ = big;
    let chained = f.store_when(
        ev("report").correlation_id("a"),
        WaitFor::new().all([Condition::new("big_sale").field("k", Cmp::Ne, "x")]),
    )?;
    for (amount, ok) in [
        (json!(150), false),
        (json!(99), true),
        (json!(100), true),
        (json!(99.5), true),
    ] {
        f.store(
            ev("bid")
                .correlation_id("a")
                .data(&json!({ "amount": amount, "ok": ok })),
        )?;
    }
    ensure!(!cmds_of(&f, "a")?.contains(&"big_sale".to_owned()));
    f.store(
        ev("bid")
            .correlation_id("a")
            .data(&json!({ "amount": 1e3, "ok": true })),
    )?;
    let cmds = cmds_of(&f, "a")?;
    ensure!(
        cmds.ends_with(&["bid".into(), "big_sale".into(), "report".into()]),
        "{cmds:?}"
    );
    ensure!(f.waiting(chained.id)?.map(|w| w.state) == Some(WaitState::Released));
    let now = f.store_when(
        ev("again").correlation_id("a"),
        WaitFor::new().all([Condition::new("report")]),
    )?;
    ensure!(now.released.as_ref().map(|e| e.cmd.as_str()) == Some("again"));
    ensure!(f.waiting(now.id)?.map(|w| w.state) == Some(WaitState::Released));
    Ok(())
}

/// Deadlines use the store's clock: an expired event is never stored; cancelling stops one;
/// each can be listed.
pub fn waiting_expires_and_cancels<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let late = f.store_when(
        ev("late").correlation_id("c"),
        WaitFor::new()
            .all([Condition::new("go")])
            .timeout(Duration::from_millis(1_000)),
    )?;
    let cancelled = f.store_when(
        ev("cancelled").correlation_id("c"),
        WaitFor::new().all([Condition::new("go")]),
    )?;
    let kept = f.store_when(
        ev("kept").correlation_id("c"),
        WaitFor::new()
            .all([Condition::new("go")])
            .expires_at(T0 + 5_000),
    )?;
    let record = f
        .waiting(late.id)?
        .ok_or_else(|| anyhow::anyhow!("no record"))?;
    ensure!(record.expires_at == Some(T0 + 1_000) && record.created_at == T0);
    ensure!(f.cancel_waiting(cancelled.id)?);
    ensure!(!f.cancel_waiting(cancelled.id)? && !f.cancel_waiting(999)?);
    f.clock.advance(1_000);
    f.store(ev("go").correlation_id("c"))?;
    ensure!(cmds_of(&f, "c")? == ["go", "kept"]);
    ensure!(f.waiting(late.id)?.map(|w| w.state) == Some(WaitState::Expired));
    ensure!(f.waiting(cancelled.id)?.map(|w| w.state) == Some(WaitState::Cancelled));
    ensure!(f.waiting(kept.id)?.map(|w| w.state) == Some(WaitState::Released));
    ensure!(!f.cancel_waiting(kept.id)?);

    // One that nothing touches expires on a look.
    let idle = f.store_when(
        ev("idle").correlation_id("d"),
        WaitFor::new()
            .all([Condition::new("never")])
            .timeout(Duration::from_millis(10)),
    )?;
    ensure!(f.pending("d")?.len() == 1);
    f.clock.advance(10);
    let expired: Vec<u64> = f.expired()?.iter().map(|w| w.id).collect();
    ensure!(expired == [late.id, idle.id], "{expired:?}");
    ensure!(f.pending("d")?.is_empty() && f.check_waiting()?.released.is_empty());
    Ok(())
}

/// Records survive a reopen, and a condition met while no handle looked (an append made
/// beneath the store) is noticed when the store opens.
pub fn waiting_survives_reopen<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let first = f.store_when(
        ev("first").correlation_id("r"),
        WaitFor::new().all([Condition::new("a")]),
    )?;
    let second = f.store_when(
        ev("second").correlation_id("r"),
        WaitFor::new().all([Condition::new("b")]),
    )?;
    let f = f.reopen(ctx.profile)?;
    ensure!(f.pending("r")?.iter().map(|w| w.id).collect::<Vec<_>>() == [first.id, second.id]);
    let waiting = f
        .waiting(first.id)?
        .ok_or_else(|| anyhow::anyhow!("no record"))?;
    ensure!(waiting.event.cmd() == "first" && waiting.wait_for.all_of()[0].cmd() == "a");
    f.store(ev("a").correlation_id("r"))?;
    ensure!(cmds_of(&f, "r")? == ["a", "first"]);
    // Beneath the store: nothing looks at the records.
    let mut raw = eventlite_core::spi::PendingEvent::new("b");
    raw.correlation_id = "r".into();
    f.backend().append(vec![raw])?;
    ensure!(f.waiting(second.id)?.map(|w| w.state) == Some(WaitState::Waiting));
    let f = f.reopen(ctx.profile)?;
    ensure!(cmds_of(&f, "r")? == ["a", "first", "b", "second"]);
    Ok(())
}

/// Many threads append the events that complete the same records and look at them at once:
/// each record is released exactly once, and ids stay gap-free.
pub fn waiting_release_is_exactly_once_under_races<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    const RECORDS: usize = 20;
    const THREADS: usize = 4;
    for i in 0..RECORDS {
        f.store_when(
            ev("released")
                .correlation_id(format!("g{}", i % 5))
                .data(&json!({ "i": i })),
            WaitFor::new().all([Condition::new("go")]),
        )?;
    }
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| -> Result<()> {
        let store = &f.store;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (f, barrier) = (store, &barrier);
                s.spawn(move || -> Result<()> {
                    barrier.wait();
                    for g in 0..5 {
                        f.store(ev("go").correlation_id(format!("g{}", (g + t) % 5)))?;
                        f.check_waiting()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    })?;
    let events = all_events(&f)?;
    ensure!(ids(&events) == (1..=events.len() as u64).collect::<Vec<_>>());
    let mut released: Vec<u64> = events
        .iter()
        .filter(|e| e.cmd == "released")
        .map(|e| e.data_value().map(|d| d["i"].as_u64().unwrap_or(u64::MAX)))
        .collect::<eventlite_core::Result<_>>()?;
    released.sort_unstable();
    ensure!(
        released == (0..RECORDS as u64).collect::<Vec<_>>(),
        "{released:?}"
    );
    ensure!(f.waiting_in(Some(WaitState::Released))?.len() == RECORDS);
    Ok(())
}

/// The engine finds records by their keys alone: none for keys nobody waits on, each once
/// for several of its keys, none once closed.
pub fn waiting_records_are_found_by_their_keys<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let key = |cmd: &str, c: &str| WaitKey {
        cmd: cmd.into(),
        correlation_id: c.into(),
    };
    ensure!(f.backend().waiting_on(&[key("x", "k")])?.is_empty());
    for i in 0..200 {
        f.store_when(
            ev("e").correlation_id(format!("k{i}")),
            WaitFor::new().all([Condition::new("x"), Condition::new("y")]),
        )?;
    }
    let both = f.store_when(
        ev("e").correlation_id("k"),
        WaitFor::new().all([
            Condition::new("x"),
            Condition::new("y").correlation_id("other"),
        ]),
    )?;
    let found = f
        .backend()
        .waiting_on(&[key("x", "k"), key("y", "other"), key("z", "k")])?;
    ensure!(found.len() == 1 && found[0].id == both.id && found[0].correlation_id == "k");
    ensure!(
        f.backend()
            .waiting_on(&[key("x", "nobody"), key("e", "k")])?
            .is_empty()
    );
    let found = f.backend().waiting_on(&[key("y", "k7"), key("x", "k9")])?;
    ensure!(found.iter().map(|r| r.id).collect::<Vec<_>>() == [8, 10]);
    // Releases close records themselves; a close is an expiry or a cancel.
    let e = f.backend().close_waiting(8, WaitState::Released, T0).err();
    ensure!(matches!(e, Some(Error::InvalidArgument(_))), "{e:?}");
    ensure!(f.cancel_waiting(8)?);
    ensure!(f.backend().waiting_on(&[key("y", "k7")])?.is_empty());
    ensure!(f.backend().list_waiting(Some("k7"), None)?.len() == 1);
    ensure!(
        f.backend()
            .list_waiting(None, Some(WaitState::Cancelled))?
            .len()
            == 1
    );
    Ok(())
}

/// A record parked while another thread appends the events that complete it is released
/// without any explicit look: either the append sees the record, or the park sees the event.
/// A batch of several keys releases what it completes too.
pub fn waiting_parks_racing_appends_are_released<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    const N: usize = 40;
    let store = &f.store;
    std::thread::scope(|s| -> Result<()> {
        let parker = s.spawn(move || -> Result<()> {
            for i in 0..N {
                store.store_when(
                    ev("released").correlation_id(format!("p{i}")),
                    WaitFor::new().all([Condition::new("go")]),
                )?;
            }
            Ok(())
        });
        let appender = s.spawn(move || -> Result<()> {
            for i in 0..N {
                store.store(ev("go").correlation_id(format!("p{i}")))?;
            }
            Ok(())
        });
        parker
            .join()
            .map_err(|_| anyhow::anyhow!("the parker panicked"))??;
        appender
            .join()
            .map_err(|_| anyhow::anyhow!("the appender panicked"))??;
        Ok(())
    })?;
    for i in 0..N {
        let cmds = cmds_of(&f, &format!("p{i}"))?;
        ensure!(
            cmds.iter().filter(|c| *c == "released").count() == 1,
            "p{i}: {cmds:?}"
        );
    }
    let both = f.store_when(
        ev("both").correlation_id("m"),
        WaitFor::new().all([Condition::new("a"), Condition::new("b")]),
    )?;
    f.store_bulk(vec![
        ev("a").correlation_id("m"),
        ev("x").correlation_id("other"),
        ev("b").correlation_id("m"),
    ])?;
    ensure!(f.waiting(both.id)?.map(|w| w.state) == Some(WaitState::Released));
    ensure!(cmds_of(&f, "m")? == ["a", "b", "both"]);
    Ok(())
}
