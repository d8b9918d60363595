//! The `eventlite` command on real stores of every engine.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
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

/// Every event of the store at `path`, as stored.
fn events_of(path: &Path) -> Result<Vec<eventlite::Event>> {
    let store = match path.extension().and_then(|e| e.to_str()) {
        Some("redb") => eventlite::EventStore::new(Box::new(eventlite::redb::RedbBackend::open(
            path,
            eventlite::redb::RedbOptions::default(),
        )?) as Box<dyn eventlite::Backend>),
        _ => eventlite::EventStore::new(Box::new(eventlite::sqlite::SqliteBackend::open(
            path,
            eventlite::sqlite::SqliteOptions::default(),
        )?) as Box<dyn eventlite::Backend>),
    };
    Ok(store.query(&eventlite::Query::new(
        eventlite::Filter::default(),
        eventlite::Order::IdAsc,
    ))?)
}

#[test]
fn export_then_import_round_trips_on_every_engine_pair() -> Result<()> {
    for from in ENGINES {
        for to in ENGINES {
            let dir = tempfile::tempdir()?;
            let src = make_store(dir.path(), from, IndexConfig::default())?;
            let file = dir.path().join("events.jsonl");
            let out = eventlite(&["export", p(&src), "--out", p(&file)]);
            ensure!(out.status.success(), "export: {out:?}");
            let dst = dir.path().join(format!("copy.{to}"));
            let out = eventlite(&["import", p(&dst), p(&file), "--batch", "2"]);
            ensure!(out.status.success(), "{from} → {to}: {out:?}");
            let report: Value = serde_json::from_slice(&out.stdout)?;
            assert_eq!(
                (report["imported"].clone(), report["ids_kept"].clone()),
                (6.into(), true.into())
            );
            // Every field comes back, streams and versions too.
            assert_eq!(events_of(&dst)?, events_of(&src)?, "{from} → {to}");
            // Into a store that has events: appended, causation ids follow the new ids.
            let out = eventlite(&["import", p(&dst), p(&file)]);
            ensure!(
                !out.status.success(),
                "a stream that exists already is refused"
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("cart-1"),
                "{out:?}"
            );
            assert_eq!(
                events_of(&dst)?.len(),
                6,
                "nothing of the refused file was stored"
            );
        }
    }
    Ok(())
}

#[test]
fn import_reports_bad_lines_and_maps_ids() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("mixed.jsonl");
    std::fs::write(
        &file,
        [
            r#"{"id": 10, "cmd": "placed", "datetime": 1700000000000, "data": {"n": 1}, "correlation_id": "c-1"}"#,
            "",
            r#"{"id": 11, "cmd": "paid", "causation_id": 10}"#,
            r#"{"id": 12, "cmd": ""}"#,
            r#"not json"#,
            r#"{"id": 13, "cmd": "orphan", "causation_id": 99}"#,
            r#"{"id": 14, "cmd": "child of bad", "causation_id": 12}"#,
            r#"{"id": 11, "cmd": "twice"}"#,
            r#"{"id": 15, "cmd": "meta", "metadata": [1]}"#,
            r#"{"id": 16, "cmd": "last", "causation_id": 11, "user": "ada"}"#,
            r#"[1]"#,
        ]
        .join("\n"),
    )?;
    let dst = dir.path().join("events.sqlite");
    // Without --skip-errors: the first bad line (line 4) aborts, nothing is stored.
    let out = eventlite(&["import", p(&dst), p(&file)]);
    ensure!(out.status.code() == Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4") && err.contains("nothing was imported"),
        "{err}"
    );
    assert!(events_of(&dst)?.is_empty());
    // A dry run reports and stores nothing.
    let out = eventlite(&["import", p(&dst), p(&file), "--skip-errors", "--dry-run"]);
    ensure!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["imported"], 3);
    assert!(events_of(&dst)?.is_empty());
    // With --skip-errors: each bad line reported by number, the rest imported with new ids.
    let out = eventlite(&["import", p(&dst), p(&file), "--skip-errors"]);
    ensure!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let lines: Vec<u64> = report["skipped"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["line"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(lines, [4, 5, 6, 7, 8, 9, 11]);
    let reason = |line: u64| -> String {
        report["skipped"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["line"] == line))
            .map(|s| s["reason"].to_string())
            .unwrap_or_default()
    };
    // The file's line number, not serde's "line 1" of the line on its own.
    ensure!(
        reason(5).contains("not JSON")
            && reason(5).contains("column")
            && !reason(5).contains("line"),
        "{}",
        reason(5)
    );
    ensure!(
        reason(11).contains("a JSON object is expected, not an array"),
        "{}",
        reason(11)
    );
    assert_eq!(
        (report["imported"].clone(), report["ids_kept"].clone()),
        (3.into(), false.into())
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 6: causation_id 99"), "{stderr}");
    let stored = events_of(&dst)?;
    let cmds: Vec<&str> = stored.iter().map(|e| e.cmd.as_str()).collect();
    assert_eq!(cmds, ["placed", "paid", "last"]);
    assert_eq!(stored[0].datetime, 1_700_000_000_000);
    assert_eq!(
        (stored[1].causation_id, stored[2].causation_id),
        (Some(1), Some(2))
    );
    assert!(
        stored.iter().all(|e| e.correlation_id == "c-1"),
        "the group follows the causes"
    );
    Ok(())
}

#[test]
fn convert_copies_every_engine_into_every_other() -> Result<()> {
    for from in ENGINES {
        for to in ENGINES {
            let dir = tempfile::tempdir()?;
            let src = make_store(dir.path(), from, IndexConfig::high_volume())?;
            {
                let store = eventlite::EventStore::new(match from {
                    "redb" => Box::new(eventlite::redb::RedbBackend::open(
                        &src,
                        Default::default(),
                    )?) as Box<dyn eventlite::Backend>,
                    _ => Box::new(eventlite::sqlite::SqliteBackend::open(
                        &src,
                        Default::default(),
                    )?),
                });
                store.save_position("mailer", 4)?;
                store.create_snapshot("cart", 5, &vec!["tea", "jam"])?;
                store.create_snapshot_with_metadata(
                    "cart",
                    4,
                    &vec!["tea"],
                    &serde_json::json!({"v": 1}),
                )?;
                store.create_snapshot("totals", 6, &42u64)?;
            }
            let dst = dir.path().join(format!("copy-{from}.{to}"));
            let out = eventlite(&["convert", p(&src), p(&dst)]);
            ensure!(out.status.success(), "{from} → {to}: {out:?}");
            let report: Value = serde_json::from_slice(&out.stdout)?;
            assert_eq!(
                (report["copied"].clone(), report["to"].clone()),
                (6.into(), to.into())
            );
            assert_eq!(report["snapshots"], 3);
            let names = lines(&eventlite(&[
                "snapshots",
                "list",
                p(&dst),
                "--format",
                "jsonl",
            ]))?;
            assert_eq!(
                names,
                [
                    serde_json::json!({"name": "cart", "snapshots": 2}),
                    serde_json::json!({"name": "totals", "snapshots": 1})
                ]
            );
            let cart = lines(&eventlite(&[
                "snapshots",
                "list",
                p(&dst),
                "cart",
                "--format",
                "jsonl",
            ]))?;
            assert_eq!(
                cart.iter()
                    .map(|s| s["event_id"].clone())
                    .collect::<Vec<_>>(),
                [5, 4]
            );
            assert_eq!(cart[1]["metadata"], serde_json::json!({"v": 1}));
            let deleted = eventlite(&["snapshots", "delete", p(&dst), "cart", "4"]);
            ensure!(deleted.status.success(), "{deleted:?}");
            let again = eventlite(&["snapshots", "delete", p(&dst), "cart", "4"]);
            assert_eq!(again.status.code(), Some(2));
            assert!(
                String::from_utf8_lossy(&again.stderr)
                    .contains("no snapshot of \"cart\" at event 4")
            );
            assert_eq!(events_of(&dst)?, events_of(&src)?);
            let info = lines(&eventlite(&["info", p(&dst), "--format", "jsonl"]))?;
            assert_eq!(info[0]["positions"], 1);
            assert_eq!(
                info[0]["indexes"],
                lines(&eventlite(&["info", p(&src), "--format", "jsonl"]))?[0]["indexes"],
                "the copy has the source's indexes"
            );
            // The destination must be new.
            let again = eventlite(&["convert", p(&src), p(&dst)]);
            ensure!(again.status.code() == Some(2), "{again:?}");
            assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
        }
    }
    Ok(())
}

fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

#[test]
fn stats_and_graph_on_every_engine() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let src = make_store(dir.path(), engine, IndexConfig::default())?;
        let stats = lines(&eventlite(&[
            "stats",
            p(&src),
            "--top",
            "2",
            "--format",
            "jsonl",
        ]))?;
        let s = &stats[0];
        assert_eq!(
            (s["events"].clone(), s["cmds"].clone(), s["streams"].clone()),
            (6.into(), 5.into(), 1.into())
        );
        assert_eq!(
            s["top_cmds"][0],
            serde_json::json!({"name": "added", "events": 2})
        );
        assert_eq!(s["top_cmds"].as_array().map(Vec::len), Some(2), "--top 2");
        assert_eq!(
            s["top_users"][0],
            serde_json::json!({"name": "", "events": 4})
        );
        let table = eventlite(&["stats", p(&src), "--format", "table"]);
        ensure!(table.status.success(), "{table:?}");
        assert!(String::from_utf8_lossy(&table.stdout).contains("order_placed"));

        let dot = eventlite(&["graph", p(&src), "order-1", "--as", "dot"]);
        ensure!(dot.status.success(), "{dot:?}");
        let dot = String::from_utf8(dot.stdout)?;
        assert!(dot.starts_with("digraph \"order-1\""), "{dot}");
        assert!(
            dot.contains("e1 -> e2;") && dot.contains("e2 -> e3;"),
            "{dot}"
        );
        assert!(dot.contains("#1 order_placed\\nada"), "{dot}");
        let text = eventlite(&["graph", p(&src), "order-1"]);
        ensure!(text.status.success(), "{text:?}");
        let text = String::from_utf8(text.stdout)?;
        assert!(
            text.contains("order_placed") && text.contains("shipped"),
            "{text}"
        );
        let missing = eventlite(&["graph", p(&src), "nobody"]);
        assert_eq!(missing.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no events in correlation"));
    }
    Ok(())
}

#[test]
fn export_csv_as_upstream_writes_it() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let src = make_store(dir.path(), engine, IndexConfig::default())?;
        let out = eventlite(&["export", p(&src), "--csv"]);
        ensure!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout)?;
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(
            rows[0],
            "id,version,datetime,user,ip,cmd,data,correlation_id,causation_id,metadata"
        );
        assert_eq!(rows.len(), 7);
        let first = events_of(&src)?[0].clone();
        assert_eq!(
            rows[1],
            format!(
                "1,1,{},ada,,order_placed,\"{{\"\"total\"\":12}}\",order-1,,{{}}",
                first.datetime
            )
        );
        assert!(
            rows[2].starts_with("2,1,") && rows[2].ends_with(",order-1,1,{}"),
            "{}",
            rows[2]
        );
        assert!(rows[6].ends_with(",\"{\"\"k\"\":1}\""), "{}", rows[6]);
    }
    Ok(())
}

#[test]
fn backup_copies_a_store_while_it_is_written() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let src = make_store(dir.path(), engine, IndexConfig::default())?;
        let dst = dir.path().join(format!("backup.{engine}"));
        if engine == "sqlite" {
            // A writer goes on meanwhile: the copy is one consistent moment of the log.
            let writer = eventlite::EventStore::new(eventlite::sqlite::SqliteBackend::open(
                &src,
                eventlite::sqlite::SqliteOptions::default(),
            )?);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let progress = std::sync::atomic::AtomicU64::new(0);
            std::thread::scope(|s| -> Result<()> {
                let writing = s.spawn(|| -> Result<u64> {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        writer.store_bulk(vec![NewEvent::new("more"); 10])?;
                        n += 10;
                        progress.store(n, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(n)
                });
                // The writer is under way before the backup starts.
                while progress.load(std::sync::atomic::Ordering::SeqCst) < 20
                    && !writing.is_finished()
                {
                    std::thread::yield_now();
                }
                let out = eventlite(&["backup", p(&src), p(&dst)]);
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                let written = writing
                    .join()
                    .map_err(|_| anyhow::anyhow!("writer panicked"))??;
                ensure!(out.status.success(), "{out:?}");
                let report: Value = serde_json::from_slice(&out.stdout)?;
                assert_eq!(report["verified"], true);
                let copied = events_of(&dst)?;
                ensure!(copied.len() >= 6 && copied.len() as u64 <= 6 + written);
                ensure!(
                    (copied.len() - 6) % 10 == 0,
                    "whole batches only: {}",
                    copied.len()
                );
                assert_eq!(copied[..], events_of(&src)?[..copied.len()]);
                Ok(())
            })?;
        } else {
            let out = eventlite(&["backup", p(&src), p(&dst)]);
            ensure!(out.status.success(), "{out:?}");
            assert_eq!(events_of(&dst)?, events_of(&src)?);
        }
        let again = eventlite(&["backup", p(&src), p(&dst)]);
        assert_eq!(again.status.code(), Some(2), "the copy must be new");
    }
    Ok(())
}

#[test]
fn read_only_reads_every_engine_without_writing_and_refuses_writes() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let path = make_store(dir.path(), engine, IndexConfig::balanced())?;
        let store = p(&path);
        let before = std::fs::read(&path)?;
        for args in [
            vec!["--read-only", "info", store],
            vec!["--read-only", "query", store, "--cmd", "paid"],
            vec!["--read-only", "verify", store],
            vec!["--read-only", "export", store],
            vec!["--read-only", "indexes", "show", store],
        ] {
            let out = eventlite(&args);
            ensure!(out.status.success(), "{engine} {args:?}: {out:?}");
        }
        let query = eventlite(&["--read-only", "query", store, "--cmd", "paid"]);
        ensure!(ids(&lines(&query)?) == vec![2], "{engine}: {query:?}");
        // A dry run stores nothing, so it runs, on the store opened read-only.
        let jsonl = dir.path().join("more.jsonl");
        std::fs::write(&jsonl, "{\"cmd\":\"more\"}\n")?;
        let dry = eventlite(&["--read-only", "import", store, p(&jsonl), "--dry-run"]);
        ensure!(dry.status.success(), "{engine}: {dry:?}");
        ensure!(lines(&dry)?[0]["imported"] == 1, "{dry:?}");
        fails_cleanly(&["--read-only", "import", store, p(&jsonl)])?;
        let nowhere = dir.path().join("nowhere.db");
        fails_cleanly(&["--read-only", "import", p(&nowhere), p(&jsonl), "--dry-run"])?;
        ensure!(!nowhere.exists());
        ensure!(
            std::fs::read(&path)? == before,
            "{engine}: the file changed"
        );
        // Commands that write say so, and write nothing.
        for args in [
            vec!["--read-only", "snapshots", "delete", store, "x", "1"],
            vec!["--read-only", "indexes", "set", store, "all"],
            vec!["--read-only", "compact", store],
        ] {
            let err = fails_cleanly(&args)?;
            ensure!(err.contains("without --read-only"), "{err}");
        }
        ensure!(
            std::fs::read(&path)? == before,
            "{engine}: the file changed"
        );
        let missing = dir.path().join("missing.db");
        fails_cleanly(&["--read-only", "info", p(&missing)])?;
        ensure!(!missing.exists());
    }
    Ok(())
}

#[test]
fn indexes_show_and_set_a_profile_on_every_engine() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let path = make_store(dir.path(), engine, IndexConfig::none())?;
        let store = p(&path);
        let shown = lines(&eventlite(&["indexes", "show", store]))?;
        ensure!(shown[0]["indexes"] == serde_json::json!([]), "{shown:?}");
        ensure!(shown[0]["profile"] == "none", "{shown:?}");

        let set = eventlite(&["indexes", "set", store, "query-optimized"]);
        ensure!(set.status.success(), "{set:?}");
        let expected: Vec<String> = IndexConfig::query_optimized()
            .enabled()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let report = lines(&set)?;
        ensure!(
            report[0]["indexes"] == serde_json::json!(expected),
            "{report:?}"
        );
        ensure!(report[0]["added"] == serde_json::json!(expected));
        // Kept by the file: a later look (which reconciles nothing) sees it, and the engine's
        // check finds every index in step with the events.
        let info = lines(&eventlite(&["info", store]))?;
        ensure!(
            info[0]["indexes"] == serde_json::json!(expected),
            "{info:?}"
        );
        ensure!(eventlite(&["verify", store]).status.success());

        // A list of names; dropping the rest.
        let set = lines(&eventlite(&["indexes", "set", store, "cmd, user"]))?;
        ensure!(
            set[0]["indexes"] == serde_json::json!(["cmd", "user"]),
            "{set:?}"
        );
        ensure!(set[0]["profile"].is_null());
        ensure!(eventlite(&["verify", store]).status.success());
        let err = fails_cleanly(&["indexes", "set", store, "fastest"])?;
        ensure!(err.contains("neither a profile"), "{err}");
        let err = fails_cleanly(&["indexes", "set", store, " , "])?;
        ensure!(err.contains("say `none`"), "{err}");
        ensure!(
            lines(&eventlite(&["info", store]))?[0]["indexes"]
                == serde_json::json!(["cmd", "user"])
        );
    }
    Ok(())
}

#[test]
fn compact_gives_deleted_space_back_and_keeps_every_event() -> Result<()> {
    for engine in ENGINES {
        let dir = tempfile::tempdir()?;
        let path = make_store(dir.path(), engine, IndexConfig::default())?;
        let events = events_of(&path)?;
        {
            let store = engine.parse::<eventlite::Engine>()?.open(&path)?;
            // 4 MB of snapshots, then deleted: pages the file keeps until compacted.
            for i in 1..=4u64 {
                store.backend().put_snapshot(eventlite::Snapshot {
                    name: "big".into(),
                    event_id: i,
                    state: vec![b'x'; 1 << 20],
                    metadata: "{}".into(),
                    created_at: 0,
                })?;
            }
            for i in 1..=4u64 {
                ensure!(store.delete_snapshot("big", i)?);
            }
        }
        let out = eventlite(&["compact", p(&path)]);
        ensure!(out.status.success(), "{engine}: {out:?}");
        let report = lines(&out)?;
        let (before, after) = (
            report[0]["bytes_before"].as_u64().unwrap_or(0),
            report[0]["bytes_after"].as_u64().unwrap_or(u64::MAX),
        );
        ensure!(after < before, "{engine}: {report:?}");
        ensure!(events_of(&path)? == events, "{engine}");
        ensure!(eventlite(&["verify", p(&path)]).status.success());
    }
    Ok(())
}

#[test]
fn format_json_is_one_value() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = make_store(dir.path(), "sqlite", IndexConfig::default())?;
    let out = eventlite(&["--format", "json", "query", p(&path), "--user", "ada"]);
    let all: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        ids(all.as_array().context("an array")?) == vec![1, 2],
        "{all}"
    );
    let info: Value =
        serde_json::from_slice(&eventlite(&["--format", "json", "info", p(&path)]).stdout)?;
    ensure!(info["events"] == 6 && info["snapshots"] == 0, "{info}");
    Ok(())
}

/// What a user's slips meet: a new store, copy or backup in a directory that does not exist
/// is refused (not made, with its directories, as a new empty store); an error names its
/// cause once; a JSON reader that goes away (`| head`) ends the command quietly; a backup is
/// as private as its store.
#[test]
fn slips_are_refused_clearly_and_pipes_may_close() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = make_store(dir.path(), "sqlite", IndexConfig::default())?;
    let missing = dir.path().join("typo");
    let lines = dir.path().join("one.jsonl");
    std::fs::write(&lines, "{\"cmd\":\"x\"}\n")?;
    for args in [
        vec!["import", "typo/new.sqlite", p(&lines)],
        vec!["convert", p(&path), "typo/copy.redb"],
        vec!["backup", p(&path), "typo/copy.sqlite"],
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.strip_prefix("typo/") {
                Some(name) => missing.join(name).display().to_string(),
                None => (*a).to_owned(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails_cleanly(&args)?;
        ensure!(err.contains("no directory"), "{args:?}: {err}");
        ensure!(!missing.exists(), "{args:?} made {}", missing.display());
    }
    // A redb store held open elsewhere: the lock's cause is said once.
    let redb = make_store(dir.path(), "redb", IndexConfig::default())?;
    let held = eventlite::redb::RedbBackend::open(&redb, Default::default())?;
    let err = fails_cleanly(&["info", p(&redb)])?;
    ensure!(err.contains("already open"), "{err}");
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    let mut unique = parts.clone();
    unique.sort_unstable();
    unique.dedup();
    ensure!(unique.len() == parts.len(), "a cause said twice: {err}");
    drop(held);
    // More JSON than a pipe holds, its reader gone after the first bytes.
    let big = dir.path().join("big.sqlite");
    let store = eventlite::EventStore::new(eventlite::sqlite::SqliteBackend::open(
        &big,
        Default::default(),
    )?);
    store.store_bulk(
        (0..3_000)
            .map(|i| {
                NewEvent::new("filler").data(&serde_json::json!({"i": i, "pad": "x".repeat(64)}))
            })
            .collect(),
    )?;
    drop(store);
    let mut child = Command::new(cargo_bin("eventlite"))
        .args(["--format", "json", "query", p(&big)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().context("stdout")?, &mut first)?;
    drop(child.stdout.take());
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // A full disk under the export's file is the file's, not the store's.
    #[cfg(target_os = "linux")]
    {
        let err = fails_cleanly(&["export", p(&path), "--out", "/dev/full"])?;
        ensure!(err.contains("exporting to /dev/full"), "{err}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let copy = dir.path().join("backup.sqlite");
        ensure!(eventlite(&["backup", p(&path), p(&copy)]).status.success());
        let mode = std::fs::metadata(&copy)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "the backup is {mode:o}");
        // A write-protected store still gets a backup (its owner may write the copy).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))?;
        let copy = dir.path().join("backup-of-protected.sqlite");
        let out = eventlite(&["backup", p(&path), p(&copy)]);
        ensure!(out.status.success(), "{out:?}");
        let mode = std::fs::metadata(&copy)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "the backup is {mode:o}");
    }
    Ok(())
}

/// A path of the wrong kind is named for what it is: a directory, a file of the other engine
/// than `--engine` says, our own store given as upstream's file, a position past the log's
/// end, an empty list of indexes.
#[test]
fn wrong_kinds_of_input_are_named_for_what_they_are() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = make_store(dir.path(), "sqlite", IndexConfig::default())?;
    let err = fails_cleanly(&["info", p(dir.path())])?;
    ensure!(err.contains("is a directory"), "{err}");
    let err = fails_cleanly(&["--engine", "redb", "info", p(&path)])?;
    ensure!(err.contains("is a SQLite file, not redb"), "{err}");
    let target = dir.path().join("target.sqlite");
    let err = fails_cleanly(&["import", p(&target), "--from-upstream", p(&path)])?;
    ensure!(err.contains("is an EventLite store"), "{err}");
    ensure!(!target.exists(), "the refused import left {}", p(&target));
    let err = fails_cleanly(&["tail", p(&path), "--from", "7"])?;
    ensure!(
        err.contains("ends at 6") && err.contains("no event 7 yet"),
        "{err}"
    );
    let err = fails_cleanly(&["indexes", "set", p(&path), ""])?;
    ensure!(err.contains(r#"in """#), "{err}");
    Ok(())
}

/// A new store, copy or backup is whole or absent under its name: killed midway, `import`
/// into a new file and `convert` leave nothing there (only their hidden file under
/// construction, which a later run removes once its process is gone), and running them again
/// works.
#[test]
fn an_interrupted_copy_leaves_nothing_under_its_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let big = dir.path().join("big.sqlite");
    let store = eventlite::EventStore::new(eventlite::sqlite::SqliteBackend::open(
        &big,
        Default::default(),
    )?);
    for chunk in 0..10 {
        store.store_bulk(
            (0..10_000)
                .map(|i| {
                    NewEvent::new("filler").data(&serde_json::json!({"i": chunk * 10_000 + i}))
                })
                .collect(),
        )?;
    }
    drop(store);
    let lines = dir.path().join("big.jsonl");
    let text: String = (0..100_000)
        .map(|i| format!("{{\"cmd\":\"filler\",\"data\":{{\"i\":{i}}}}}\n"))
        .collect();
    std::fs::write(&lines, text)?;
    let copy = dir.path().join("copy.redb");
    let new = dir.path().join("new.sqlite");
    for (args, dst) in [
        (vec!["convert", p(&big), p(&copy)], &copy),
        (vec!["import", p(&new), p(&lines)], &new),
    ] {
        let hidden = format!(
            ".{}.eventlite-new-",
            dst.file_name().and_then(|n| n.to_str()).unwrap_or_default()
        );
        let building = || -> Result<bool> {
            for entry in std::fs::read_dir(dir.path())? {
                if entry?.file_name().to_string_lossy().starts_with(&hidden) {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let mut child = Child(
            Command::new(cargo_bin("eventlite"))
                .args(&args)
                .arg("--no-progress")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !building()? {
            ensure!(
                std::time::Instant::now() < deadline,
                "{args:?} built nothing aside"
            );
            ensure!(
                child.0.try_wait()?.is_none(),
                "{args:?} ended before its copy began"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.0.kill()?;
        child.0.wait()?;
        ensure!(!dst.exists(), "{args:?} killed midway left {}", p(dst));
        let out = eventlite(&args);
        ensure!(out.status.success(), "{args:?} again: {out:?}");
        ensure!(events_of(dst)?.len() == 100_000, "{args:?}");
    }
    Ok(())
}
