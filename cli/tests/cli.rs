//! The `eventlite` command on real stores of every engine.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, ensure};
use assert_cmd::cargo::cargo_bin;
use eventlite::{ExpectedVersion, IndexConfig, NewEvent};
use serde_json::Value;

const ENGINES: [&str; 2] = ["sqlite", "redb"];

/// A store of `engine` in `dir` with 6 events: a correlation of three (1 ← 2 ← 3), a stream of
/// two, and a loose one.
fn make_store(dir: &Path, engine: &str, indexes: IndexConfig) -> Result<PathBuf> {
    let path = dir.join(format!("events.{engine}"));
    let store: eventlite::AnyStore = match engine {
        "sqlite" => eventlite::EventStore::new(Box::new(eventlite::sqlite::SqliteBackend::open(
            &path,
            eventlite::sqlite::SqliteOptions {
                indexes,
                ..Default::default()
            },
        )?)),
        _ => eventlite::EventStore::new(Box::new(eventlite::redb::RedbBackend::open(
            &path,
            eventlite::redb::RedbOptions {
                indexes,
                ..Default::default()
            },
        )?)),
    };
    let order = store.store(
        NewEvent::new("order_placed")
            .correlation_id("order-1")
            .user("ada")
            .data(&serde_json::json!({"total": 12})),
    )?;
    let paid = store.store(NewEvent::new("paid").causation_id(order.id).user("ada"))?;
    store.store(NewEvent::new("shipped").causation_id(paid.id))?;
    store.append_to_stream(
        "cart-1",
        ExpectedVersion::NoStream,
        vec![NewEvent::new("added"), NewEvent::new("added")],
    )?;
    store.store(NewEvent::new("loose").metadata(&serde_json::json!({"k": 1})))?;
    Ok(path)
}

/// A child process that is killed when the test lets go of it, whatever happened.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn eventlite(args: &[&str]) -> std::process::Output {
    Command::new(cargo_bin("eventlite"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn lines(out: &std::process::Output) -> Result<Vec<Value>> {
    String::from_utf8(out.stdout.clone())?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

fn ids(values: &[Value]) -> Vec<u64> {
    values.iter().filter_map(|v| v["id"].as_u64()).collect()
}

#[test]
fn info_get_tx_query_on_every_engine() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let path = make_store(dir.path(), engine, IndexConfig::default())?;
        let store = path.to_str().unwrap_or_default();
        let info = eventlite(&["info", store]);
        ensure!(info.status.success(), "{info:?}");
        let info = &lines(&info)?[0];
        ensure!(info["engine"] == engine && info["events"] == 6, "{info}");
        ensure!(
            info["last_id"] == 6 && info["first_datetime"].is_i64(),
            "{info}"
        );
        let lineage = eventlite(&["lineage", store, "2"]);
        ensure!(ids(&lines(&lineage)?) == vec![1, 2, 3]);
        let got = eventlite(&["get", store, "2"]);
        let got = lines(&got)?;
        ensure!(
            ids(&got) == vec![2] && got[0]["causation_id"] == 1,
            "{got:?}"
        );
        ensure!(got[0]["data"] == serde_json::json!({}));
        let tx = eventlite(&["tx", store, "order-1"]);
        ensure!(ids(&lines(&tx)?) == vec![1, 2, 3]);
        let query = eventlite(&["query", store, "--user", "ada", "--order", "id-desc"]);
        ensure!(ids(&lines(&query)?) == vec![2, 1]);
        let stream = eventlite(&["query", store, "--stream", "cart-1", "--limit", "1"]);
        let stream = lines(&stream)?;
        ensure!(ids(&stream) == vec![4] && stream[0]["stream_version"] == 1);
        let explain = eventlite(&["query", store, "--correlation", "order-1", "--explain"]);
        let plan = &lines(&explain)?[0];
        ensure!(
            plan["index"] == "correlation_id" && plan["full_scan"] == false,
            "{plan}"
        );
        let missing = eventlite(&["get", store, "99"]);
        ensure!(missing.status.code() == Some(2));
        ensure!(String::from_utf8(missing.stderr)?.contains("no event 99"));
    }
    Ok(())
}

#[test]
fn tail_prints_after_an_id_and_follows_new_events() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let path = make_store(dir.path(), engine, IndexConfig::default())?;
        let store = path.to_str().unwrap_or_default();
        let tail = eventlite(&["tail", store, "--from", "3"]);
        ensure!(ids(&lines(&tail)?) == vec![4, 5, 6]);
        let filtered = eventlite(&["tail", store, "--from", "0", "--cmd", "added"]);
        ensure!(ids(&lines(&filtered)?) == vec![4, 5]);
        if engine == "redb" {
            // redb locks its file: no other process could append while `tail -f` held it.
            let follow = eventlite(&["tail", store, "-f"]);
            ensure!(follow.status.code() == Some(2));
            ensure!(String::from_utf8(follow.stderr)?.contains("needs a SQLite store"));
            continue;
        }
        let mut follower = Child(
            Command::new(cargo_bin("eventlite"))
                .args(["tail", store, "--from", "6", "-f"])
                .stdout(Stdio::piped())
                .spawn()?,
        );
        let stdout = follower
            .0
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let writer = eventlite::sqlite::open(&path, Default::default())?;
        writer.store(NewEvent::new("late"))?;
        writer.store(NewEvent::new("later"))?;
        let mut seen = Vec::new();
        while seen.len() < 2 {
            // A bound on a failing run, not a wait for the event: it returns at once.
            let line = rx.recv_timeout(Duration::from_secs(30))??;
            seen.push(serde_json::from_str::<Value>(&line)?["cmd"].clone());
        }
        drop(follower);
        ensure!(seen == vec!["late", "later"], "{seen:?}");
    }
    Ok(())
}

#[test]
fn verify_and_export_on_every_engine() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let path = make_store(dir.path(), engine, IndexConfig::default())?;
        let store = path.to_str().unwrap_or_default();
        let verify = eventlite(&["verify", store]);
        ensure!(verify.status.success());
        ensure!(String::from_utf8(verify.stdout)?.starts_with("ok: 6 events checked"));
        let json = eventlite(&["verify", store, "--json"]);
        let report = &lines(&json)?[0];
        ensure!(
            report["ok"] == true && report["events_checked"] == 6,
            "{report}"
        );
        let file = dir.path().join("out.jsonl");
        let export = eventlite(&["export", store, "--out", file.to_str().unwrap_or_default()]);
        ensure!(export.status.success(), "{export:?}");
        let exported: Vec<Value> = std::fs::read_to_string(&file)?
            .lines()
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()?;
        ensure!(ids(&exported) == vec![1, 2, 3, 4, 5, 6]);
        let first = &exported[0];
        let mut keys: Vec<&str> = first
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        ensure!(
            keys == [
                "causation_id",
                "cmd",
                "correlation_id",
                "data",
                "datetime",
                "id",
                "ip",
                "metadata",
                "user",
                "version"
            ],
            "{keys:?}"
        );
        ensure!(first["data"]["total"] == 12 && exported[5]["metadata"]["k"] == 1);
        let filtered = eventlite(&["export", store, "--cmd", "added"]);
        ensure!(ids(&lines(&filtered)?) == vec![4, 5]);
        let over = eventlite(&["export", store, "--out", store]);
        ensure!(over.status.code() == Some(2));
        ensure!(String::from_utf8(over.stderr)?.contains("refusing to export over the store"));
        ensure!(lines(&eventlite(&["info", store]))?[0]["events"] == 6);
    }
    Ok(())
}

#[test]
fn stores_are_never_created_nor_their_indexes_changed() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("nothing.here");
        let out = eventlite(&["info", missing.to_str().unwrap_or_default()]);
        ensure!(out.status.code() == Some(2) && !missing.exists());
        ensure!(String::from_utf8(out.stderr)?.contains("no store at"));
        // A store without indexes keeps having none.
        let path = make_store(dir.path(), engine, IndexConfig::none())?;
        let store = path.to_str().unwrap_or_default();
        let info = eventlite(&["info", store]);
        ensure!(
            lines(&info)?[0]["indexes"] == serde_json::json!([]),
            "{info:?}"
        );
        ensure!(
            eventlite(&["query", store, "--cmd", "paid"])
                .status
                .success()
        );
        let again = eventlite(&["info", store]);
        ensure!(lines(&again)?[0]["indexes"] == serde_json::json!([]));
    }
    Ok(())
}

/// Runs `args`, which must fail with exit code 2 and a one-line error, no panic report.
fn fails_cleanly(args: &[&str]) -> Result<String> {
    let out = eventlite(args);
    let err = String::from_utf8(out.stderr)?;
    ensure!(out.status.code() == Some(2), "{err}");
    ensure!(
        err.starts_with("eventlite: ") && !err.contains("panicked"),
        "{err}"
    );
    Ok(err)
}

#[test]
fn bad_files_give_a_clear_error_and_no_panic() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, not a store")?;
    let err = fails_cleanly(&["info", text.to_str().unwrap_or_default()])?;
    ensure!(err.contains("neither a SQLite nor a redb file"), "{err}");
    // A SQLite header followed by garbage.
    let broken = dir.path().join("broken.sqlite");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..8_192u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&broken, &bytes)?;
    fails_cleanly(&["verify", broken.to_str().unwrap_or_default()])?;
    // A redb header followed by garbage.
    let broken = dir.path().join("broken.redb");
    let mut bytes = b"redb\x1a\x0a\xa9\x0d\x0a".to_vec();
    bytes.extend((0..16_384u32).map(|i| (i * 13 % 251) as u8));
    std::fs::write(&broken, &bytes)?;
    fails_cleanly(&["verify", broken.to_str().unwrap_or_default()])?;
    // An empty file named as a SQLite store is not made one.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"")?;
    let out = eventlite(&[
        "--engine",
        "sqlite",
        "info",
        empty.to_str().unwrap_or_default(),
    ]);
    ensure!(out.status.code() == Some(2));
    ensure!(
        std::fs::metadata(&empty)?.len() == 0,
        "the empty file was written to"
    );
    Ok(())
}
