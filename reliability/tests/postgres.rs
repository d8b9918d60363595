//! The PostgreSQL engine when things go wrong, on the server of `scripts/with-postgres`:
//! processes appending to one store at once, and appending clients killed.
//! `EVENTLITE_PG_KILLS` sets the number of kills (default 10; the by-hand run uses 100). The
//! server restart is in `postgres_restart.rs`: alone in its test binary, since it cuts every
//! connection to the server.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use eventlite_core::{Durability, Filter, Order, Query};
use eventlite_reliability::{
    PgSchema, Tag, check_store, open_postgres, parse_acks, pg_url_or_skip, tag,
};

/// Four processes append round-robin to two shared streams with expected versions, retrying
/// on conflicts: the log holds ids 1..=N without gaps, each stream's versions are 1..=k, and
/// every id a process was told is the event it stored.
#[test]
fn four_processes_append_to_one_store() -> Result<()> {
    if pg_url_or_skip("four_processes_append_to_one_store").is_none() {
        return Ok(());
    }
    let schema = PgSchema::new("procs");
    // Created once, so that the writers do not all create it.
    drop(open_postgres(&schema.0, Durability::Immediate)?);
    const EACH: u64 = 150;
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_crash-writer"))
                .args([
                    "streams",
                    "postgres",
                    &schema.0,
                    "left,right",
                    &EACH.to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let mut told: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut conflicts = 0u64;
    for child in children {
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "a writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout)?.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["conflicts", n] => conflicts += n.parse::<u64>()?,
                [id, stream, version] => {
                    let previous = told.insert(id.parse()?, ((*stream).into(), version.parse()?));
                    ensure!(previous.is_none(), "id {id} told to two writers");
                }
                _ => anyhow::bail!("unexpected line {line:?}"),
            }
        }
    }
    let store = open_postgres(&schema.0, Durability::Immediate)?;
    let events = store.query(&Query::new(Filter::all(), Order::IdAsc))?;
    ensure!(
        events.iter().map(|e| e.id).eq(1..=4 * EACH),
        "ids are not 1..={}: {} events",
        4 * EACH,
        events.len()
    );
    ensure!(store.verify()?.is_ok(), "verify found problems");
    ensure!(told.len() as u64 == 4 * EACH);
    for e in &events {
        let (stream, version) = told.get(&e.id).context("an event nobody stored")?;
        ensure!(e.stream.as_deref() == Some(stream.as_str()) && e.stream_version == Some(*version));
    }
    for stream in ["left", "right"] {
        let versions: Vec<u64> = store
            .query(&Query::new(Filter::stream(stream), Order::IdAsc))?
            .iter()
            .filter_map(|e| e.stream_version)
            .collect();
        ensure!(
            versions == (1..=versions.len() as u64).collect::<Vec<_>>(),
            "{stream}: versions {versions:?}"
        );
    }
    eprintln!(
        "4 processes, {} events, {conflicts} conflicts retried",
        events.len()
    );
    Ok(())
}

fn kills() -> u64 {
    std::env::var("EVENTLITE_PG_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// An appending client killed (`kill -9`) after a random number of acknowledged batches, again
/// and again: every acknowledged event is stored as acknowledged, and no batch is stored in
/// part (a killed client's transaction rolls back on the server).
#[test]
fn killed_clients_lose_nothing_acknowledged() -> Result<()> {
    if pg_url_or_skip("killed_clients_lose_nothing_acknowledged").is_none() {
        return Ok(());
    }
    let schema = PgSchema::new("kill");
    drop(open_postgres(&schema.0, Durability::Immediate)?);
    let mut acked: BTreeMap<u64, Tag> = BTreeMap::new();
    let mut next_batch = 0u64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..kills() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wanted = 1 + rng % 40;
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .args(["append", "postgres", &schema.0, "immediate"])
            .args([next_batch.to_string(), (i + 1).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Killed once it has acknowledged `wanted` events: while a next append is in flight.
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut out = String::new();
        let mut seen = 0;
        while seen < wanted {
            let Some(line) = lines.next().transpose()? else {
                break;
            };
            out.push_str(&line);
            out.push('\n');
            seen += 1;
        }
        child.kill()?;
        let status = child.wait()?;
        for line in lines {
            out.push_str(&line?);
            out.push('\n');
        }
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            s.read_to_string(&mut err)?;
        }
        ensure!(
            status.code().is_none(),
            "writer exited by itself ({status}): {err}"
        );
        let new = parse_acks(&out);
        ensure!(!new.is_empty(), "run {i} acknowledged nothing: {err}");
        next_batch = new
            .values()
            .map(|t| t.batch + 1)
            .max()
            .unwrap_or(next_batch)
            + 1;
        acked.extend(new);
    }
    let store = open_postgres(&schema.0, Durability::Immediate)?;
    let events = check_store(&store)?;
    for (id, want) in &acked {
        let e = events
            .get(*id as usize - 1)
            .with_context(|| format!("acknowledged event {id} lost"))?;
        ensure!(tag(e)? == *want, "event {id} is not what was acknowledged");
    }
    eprintln!(
        "{} kills, {} acknowledged events, {} stored",
        kills(),
        acked.len(),
        events.len()
    );
    Ok(())
}
