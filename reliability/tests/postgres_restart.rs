//! The PostgreSQL server restarted under a writer, on the server of `scripts/with-postgres`.
//! Alone in its test binary: the restart cuts every connection to the server, so no other test
//! may run beside it (cargo runs test binaries one after another).
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use eventlite_core::{Durability, Error};
use eventlite_reliability::{
    PgSchema, Tag, batch_event, check_store, open_postgres, pg_url_or_skip, tag,
};

/// Failed appends, by error variant.
type Failures = BTreeMap<&'static str, u64>;

/// `pg_ctl` of the test server (`scripts/with-postgres` exports where it is and whose it is).
fn pg_ctl(args: &[&str]) -> Result<()> {
    let bin = std::env::var("EVENTLITE_PG_BIN").context("EVENTLITE_PG_BIN is not set")?;
    let data = std::env::var("EVENTLITE_PG_DATA").context("EVENTLITE_PG_DATA is not set")?;
    let log = std::env::var("EVENTLITE_PG_LOG").context("EVENTLITE_PG_LOG is not set")?;
    let user = std::env::var("EVENTLITE_PG_USER").unwrap_or_default();
    let pg_ctl = format!("{bin}/pg_ctl");
    let mut command = if user.is_empty() {
        Command::new(&pg_ctl)
    } else {
        let mut c = Command::new("runuser");
        c.args(["-u", &user, "--", &pg_ctl]);
        c
    };
    let status = command
        .args(["-D", &data, "-l", &log, "-w", "-t", "60"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "pg_ctl {args:?}: {status}");
    Ok(())
}

/// The server restarted (`pg_ctl restart -m immediate`: a crash, for its clients) while a
/// writer appends: calls in flight get typed errors (`Unavailable`, or `CommitOutcomeUnknown`
/// for a commit cut off), the store reconnects by itself, every acknowledged event is there,
/// ids stay gap-free, and no batch is stored twice (the library never retries an append).
#[test]
fn server_restart_under_a_writer() -> Result<()> {
    if pg_url_or_skip("server_restart_under_a_writer").is_none() {
        return Ok(());
    }
    let schema = PgSchema::new("restart");
    let store = Arc::new(open_postgres(&schema.0, Durability::Immediate)?);
    let stop = Arc::new(AtomicBool::new(false));
    let (acks_tx, acks_rx) = mpsc::channel::<u64>();
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<(BTreeMap<u64, Tag>, Failures)> {
            let mut acked = BTreeMap::new();
            // Failed appends, by error variant.
            let mut errors = BTreeMap::new();
            let mut batch = 0u64;
            while !stop.load(Ordering::Acquire) {
                let n = batch % 3 + 1;
                let events = (0..n).map(|k| batch_event(batch, k, n, 20)).collect();
                match store.store_bulk(events) {
                    Ok(stored) => {
                        for e in &stored {
                            acked.insert(e.id, tag(e)?);
                        }
                        let _ = acks_tx.send(stored.len() as u64);
                    }
                    Err(Error::Unavailable { .. }) => {
                        *errors.entry("Unavailable").or_insert(0) += 1
                    }
                    Err(Error::CommitOutcomeUnknown { .. }) => {
                        *errors.entry("CommitOutcomeUnknown").or_insert(0) += 1;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("an untyped failure")),
                }
                batch += 1;
            }
            Ok((acked, errors))
        })
    };
    let wait_for = |n: u64| -> Result<()> {
        let mut got = 0;
        while got < n {
            got += acks_rx
                .recv_timeout(Duration::from_secs(120))
                .context("the writer stopped acknowledging")?;
        }
        Ok(())
    };
    let waited = wait_for(200)
        .and_then(|()| pg_ctl(&["restart", "-m", "immediate"]))
        // The writer comes back by itself.
        .and_then(|()| wait_for(200));
    stop.store(true, Ordering::Release);
    // The writer's own error first: it is why acknowledgements stopped, if they did.
    let (acked, errors) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    waited?;
    // The writer's connection died with the server: its next append had to fail.
    ensure!(!errors.is_empty(), "no append failed across the restart");
    let events = check_store(&store)?;
    for (id, want) in &acked {
        let e = events
            .get(*id as usize - 1)
            .with_context(|| format!("acknowledged event {id} lost"))?;
        ensure!(tag(e)? == *want, "event {id} is not what was acknowledged");
    }
    let mut batches = BTreeSet::new();
    for e in &events {
        let t = tag(e)?;
        ensure!(
            batches.insert((t.batch, t.k)),
            "batch {} stored twice",
            t.batch
        );
    }
    eprintln!(
        "restart: {} acknowledged, {} stored, errors: {errors:?}",
        acked.len(),
        events.len()
    );
    Ok(())
}
