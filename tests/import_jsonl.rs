//! Importing JSON Lines: every line checked before anything is stored, with the store's own
//! rules (its size limit, the correlation a child takes from its parent), text kept as written.
#![cfg(feature = "sqlite")]

use eventlite::import::{JsonlOptions, jsonl};
use eventlite::{Error, EventStore, Filter, MemoryBackend, Order, Query};

fn file(dir: &std::path::Path, lines: &[&str]) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n"))?;
    Ok(path)
}

fn all(store: &EventStore<MemoryBackend>) -> anyhow::Result<Vec<eventlite::Event>> {
    Ok(store.query(&Query::new(Filter::default(), Order::IdAsc))?)
}

/// A child without a correlation id of its own takes its parent's, which counts toward its
/// size: the check sees the size the append will see, so a file that would fail half-way
/// fails before anything is stored.
#[test]
fn a_child_is_checked_with_its_parents_correlation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let long = "c".repeat(1_000);
    let data = "d".repeat(1_500);
    let parent = format!(r#"{{"id": 1, "cmd": "p", "correlation_id": "{long}"}}"#);
    let child = format!(r#"{{"id": 2, "cmd": "c", "causation_id": 1, "data": "{data}"}}"#);
    let path = file(dir.path(), &[&parent, &child])?;
    let store = EventStore::builder(MemoryBackend::new())
        .max_event_size(2_000)
        .build();
    let err = jsonl(&path, &store, JsonlOptions::new()).expect_err("the child is too large");
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("line 2")),
        "{err}"
    );
    assert!(all(&store)?.is_empty(), "nothing stored");
    // With room for it, the child stores under its parent's correlation.
    let store = EventStore::builder(MemoryBackend::new())
        .max_event_size(4_000)
        .build();
    let report = jsonl(&path, &store, JsonlOptions::new())?;
    assert_eq!(report.imported, 2);
    assert_eq!(all(&store)?[1].correlation_id, long);
    Ok(())
}

/// Data and metadata go in as the file writes them: key order, big numbers, exponents.
#[test]
fn json_text_is_kept_as_written() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let line = r#"{"id": 1, "cmd": "x", "data": {"z":1,"a":[1E2,123456789012345678901234567890]}, "metadata": {"b":2,"a":1}}"#;
    let path = file(dir.path(), &[line])?;
    let store = EventStore::new(MemoryBackend::new());
    jsonl(&path, &store, JsonlOptions::new())?;
    let e = &all(&store)?[0];
    assert_eq!(
        e.data,
        r#"{"z":1,"a":[1E2,123456789012345678901234567890]}"#
    );
    assert_eq!(e.metadata, r#"{"b":2,"a":1}"#);
    Ok(())
}

/// A dry run says whether ids would be kept as the import would: only for ids 1, 2, 3, … on
/// an empty store.
#[test]
fn a_dry_run_reports_ids_as_the_import_would() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (lines, kept) in [
        (
            vec![r#"{"id": 1, "cmd": "a"}"#, r#"{"id": 2, "cmd": "b"}"#],
            true,
        ),
        (
            vec![r#"{"id": 10, "cmd": "a"}"#, r#"{"id": 11, "cmd": "b"}"#],
            false,
        ),
        (
            vec![r#"{"id": 2, "cmd": "a"}"#, r#"{"id": 1, "cmd": "b"}"#],
            false,
        ),
        (vec![r#"{"cmd": "a"}"#], false),
    ] {
        let path = file(dir.path(), &lines)?;
        let dry = jsonl(
            &path,
            &EventStore::new(MemoryBackend::new()),
            JsonlOptions::new().dry_run(true),
        )?;
        let store = EventStore::new(MemoryBackend::new());
        let real = jsonl(&path, &store, JsonlOptions::new())?;
        assert_eq!((dry.ids_kept, real.ids_kept), (kept, kept), "{lines:?}");
        assert_eq!(dry.imported, real.imported);
    }
    Ok(())
}

/// A line that is not UTF-8 is a bad line like any other, with its number; a byte-order mark
/// before the first line is not one.
#[test]
fn a_line_that_is_not_text_is_a_bad_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.jsonl");
    let mut bytes = b"\xEF\xBB\xBF{\"id\": 1, \"cmd\": \"a\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"id\": 2, \"cmd\": \"\xFF\"}\n{\"id\": 3, \"cmd\": \"c\"}\n");
    std::fs::write(&path, bytes)?;
    let store = EventStore::new(MemoryBackend::new());
    let err = jsonl(&path, &store, JsonlOptions::new()).expect_err("line 2");
    assert!(err.to_string().contains("line 2: not UTF-8"), "{err}");
    let report = jsonl(&path, &store, JsonlOptions::new().skip_errors(true))?;
    assert_eq!(
        report.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(
        all(&store)?
            .iter()
            .map(|e| e.cmd.as_str())
            .collect::<Vec<_>>(),
        ["a", "c"]
    );
    // Any batch size works, however large.
    let big = jsonl(
        &path,
        &EventStore::new(MemoryBackend::new()),
        JsonlOptions::new().skip_errors(true).batch(usize::MAX),
    )?;
    assert_eq!(big.imported, 2);
    assert!(matches!(
        jsonl(&path, &store, JsonlOptions::new().batch(0)),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}
