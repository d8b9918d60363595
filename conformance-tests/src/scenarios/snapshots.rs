//! Snapshots: the latest at or before an event, replacing, listing, deleting, replaying on top.

use super::*;

/// Restore gives the latest snapshot at or before the id, and where to resume.
pub fn snapshot_latest_at_or_before<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..20).map(|_| ev("e")).collect())?;
    f.create_snapshot("balance", 5, &50u64)?;
    f.create_snapshot("balance", 10, &100u64)?;
    f.create_snapshot("other", 8, &"x")?;
    let r = f
        .restore_snapshot::<u64>("balance", 9)?
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    ensure!(r.state == 50 && r.event_id == 5 && r.replay_from == 6);
    let r = f.restore_snapshot::<u64>("balance", 10)?.map(|r| r.state);
    ensure!(r == Some(100));
    ensure!(f.restore_snapshot::<u64>("balance", 4)?.is_none());
    ensure!(f.restore_snapshot::<u64>("missing", 20)?.is_none());
    ensure!(f.restore_snapshot::<String>("other", 20)?.map(|r| r.state) == Some("x".into()));
    Ok(())
}

/// A second snapshot at the same name and id replaces the first.
pub fn snapshot_replaced_on_same_id<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..5).map(|_| ev("e")).collect())?;
    f.create_snapshot("s", 3, &vec![1, 2])?;
    f.clock.advance(7);
    f.create_snapshot_with_metadata("s", 3, &vec![3], &json!({"why": "redo"}))?;
    let list = f.list_snapshots("s", 10, 0)?;
    ensure!(list.len() == 1 && list[0].decode::<Vec<i32>>()? == vec![3]);
    ensure!(list[0].created_at == T0 + 7);
    let r = f
        .restore_snapshot::<Vec<i32>>("s", 3)?
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    ensure!(serde_json::from_str::<serde_json::Value>(&r.metadata)? == json!({"why": "redo"}));
    Ok(())
}

/// Listing is newest first, with limit and offset.
pub fn snapshots_listed_newest_first<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..30).map(|_| ev("e")).collect())?;
    for id in [3, 27, 9, 15, 21] {
        f.create_snapshot("s", id, &id)?;
    }
    f.create_snapshot("t", 30, &0u64)?;
    let ids_of =
        |l: Vec<eventlite_core::Snapshot>| l.iter().map(|s| s.event_id).collect::<Vec<_>>();
    ensure!(ids_of(f.list_snapshots("s", 10, 0)?) == vec![27, 21, 15, 9, 3]);
    ensure!(ids_of(f.list_snapshots("s", 2, 1)?) == vec![21, 15]);
    ensure!(f.list_snapshots("s", 10, 5)?.is_empty());
    ensure!(f.list_snapshots("nope", 10, 0)?.is_empty());
    Ok(())
}

/// Deleting one snapshot, and all older than an id.
pub fn snapshots_deleted<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((0..10).map(|_| ev("e")).collect())?;
    for id in 1..=10 {
        f.create_snapshot("s", id, &id)?;
    }
    f.create_snapshot("t", 2, &0u64)?;
    ensure!(f.delete_snapshot("s", 4)? && !f.delete_snapshot("s", 4)?);
    ensure!(f.delete_old_snapshots("s", 7)? == 5); // 1,2,3,5,6
    let left: Vec<u64> = f
        .list_snapshots("s", 100, 0)?
        .iter()
        .map(|s| s.event_id)
        .collect();
    ensure!(left == vec![10, 9, 8, 7], "{left:?}");
    ensure!(
        f.list_snapshots("t", 10, 0)?.len() == 1,
        "other names untouched"
    );
    ensure!(f.restore_snapshot::<u64>("s", 6)?.is_none());
    Ok(())
}

/// Every name with a snapshot is listed once, in byte order; a name whose snapshots are all
/// deleted is not.
pub fn snapshot_names_listed<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    ensure!(f.snapshot_names()?.is_empty());
    f.store_bulk((0..5).map(|_| ev("e")).collect())?;
    for (name, id) in [("b", 1), ("a", 2), ("b", 3), ("é", 1), ("B", 4), ("a b", 5)] {
        f.create_snapshot(name, id, &id)?;
    }
    let names = f.snapshot_names()?;
    ensure!(names == ["B", "a", "a b", "b", "é"], "{names:?}");
    ensure!(f.delete_snapshot("B", 4)?);
    ensure!(f.delete_old_snapshots("b", 4)? == 2);
    let names = f.snapshot_names()?;
    ensure!(names == ["a", "a b", "é"], "{names:?}");
    Ok(())
}

/// Restoring a snapshot and replaying from `replay_from` equals a full replay.
pub fn snapshot_then_replay_equals_full_replay<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store_bulk((1..=40).map(|i| ev("add").data(&i)).collect())?;
    let sum_model = |start: i64| {
        FnModel::new(start).on("add", |s: &mut i64, _: &Event, d: &EventData<'_>| {
            *s += d.get::<i64>()?;
            Ok(())
        })
    };
    let mut full = sum_model(0);
    f.replay(&mut full, .., &mut Callbacks::new())?;
    let mut partial = sum_model(0);
    f.replay(&mut partial, ..=25, &mut Callbacks::new())?;
    f.create_snapshot("sum", 25, partial.state())?;
    let restored = f
        .restore_snapshot::<i64>("sum", 40)?
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    let mut resumed = sum_model(restored.state);
    f.replay(&mut resumed, restored.replay_from.., &mut Callbacks::new())?;
    ensure!(*resumed.state() == *full.state() && *full.state() == 820);
    Ok(())
}
