//! A read model in the user's own SQLite database, kept by `SqliteProjection`, is applied
//! exactly once across SIGKILLs: the child projects while the parent kills it at random
//! moments and appends more events between runs; afterwards every event is applied once and
//! none twice. `EVENTLITE_PROJECTION_KILLS` sets the number of kills (default 100).
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, ensure};
use eventlite_core::{Durability, NewEvent};
use eventlite_reliability::{Kind, open};

fn kills() -> u64 {
    std::env::var("EVENTLITE_PROJECTION_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn child(store: &std::path::Path, model: &std::path::Path) -> Result<std::process::Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .args(["project", Kind::Sqlite.name()])
        .arg(store)
        .arg(model)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

#[test]
fn a_killed_projection_applies_every_event_exactly_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store_path = dir.path().join(Kind::Sqlite.file());
    let model = dir.path().join("read-model.sqlite");
    let store = open(Kind::Sqlite, &store_path, Durability::Relaxed)?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut killed_mid_run = 0;
    for _ in 0..kills() {
        store.store_bulk((0..200).map(|i| NewEvent::new("tick").data(&i)).collect())?;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut run = child(&store_path, &model)?;
        std::thread::sleep(Duration::from_millis(1 + rng % 40));
        run.kill()?;
        let status = run.wait()?;
        let mut said = String::new();
        if let Some(mut s) = run.stdout.take() {
            s.read_to_string(&mut said)?;
        }
        // Killed after it applied something and before it finished.
        if status.code().is_none() && said.contains("applied") && !said.contains("done") {
            killed_mid_run += 1;
        }
    }
    // The last run finishes.
    // Read while it runs: its report of every event it applies outgrows a pipe's buffer.
    let last = child(&store_path, &model)?.wait_with_output()?;
    let out = String::from_utf8_lossy(&last.stdout);
    let err = String::from_utf8_lossy(&last.stderr);
    ensure!(last.status.success(), "the last run failed: {err}");
    let total = store.last_id()?;
    ensure!(
        out.lines().last() == Some(format!("done {total}").as_str()),
        "the last run ended with {:?}",
        out.lines().last()
    );
    let db = eventlite_sqlite::rusqlite::Connection::open(&model)?;
    let (rows, distinct, lowest, highest): (i64, i64, i64, i64) = db.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT event_id), MIN(event_id), MAX(event_id) FROM applied",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let total = total as i64;
    ensure!(
        (rows, distinct, lowest, highest) == (total, total, 1, total),
        "{rows} rows, {distinct} distinct, ids {lowest}..={highest}, for {total} events"
    );
    let (n, sum): (i64, i64) = db.query_row("SELECT n, sum FROM totals", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    ensure!(n == total && sum == total * (total + 1) / 2);
    eprintln!(
        "{killed_mid_run} of {} runs killed after applying events, before finishing; {total} events applied once",
        kills()
    );
    ensure!(
        killed_mid_run >= kills() / 10,
        "only {killed_mid_run} runs were killed mid-way: the test proved little"
    );
    Ok(())
}
