//! Importing the JavaScript EventLite Sourcing's SQLite file: every column kept, NULLs and
//! upstream's bulk rows (no correlation id) taken, bad rows reported with their ids.
#![cfg(feature = "sqlite")]

use eventlite::import::upstream_sqlite;
use eventlite::sqlite::rusqlite::{Connection, params};
use eventlite::{Error, Filter};

/// Upstream's schema, as its `initQueue` creates it.
const UPSTREAM: &str = "
CREATE TABLE queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version INTEGER DEFAULT 1,
    datetime INTEGER NOT NULL,
    user TEXT,
    ip TEXT,
    cmd TEXT NOT NULL,
    data TEXT,
    correlation_id TEXT,
    causation_id INTEGER,
    metadata TEXT
);
CREATE INDEX idx_correlation_id ON queue(correlation_id);
CREATE INDEX idx_causation_id ON queue(causation_id);";

type Row<'a> = (
    i64,
    Option<i64>,
    i64,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<&'a str>,
);

fn upstream_file(dir: &std::path::Path, rows: &[Row<'_>]) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("upstream.sqlite");
    let conn = Connection::open(&path)?;
    conn.execute_batch(UPSTREAM)?;
    for r in rows {
        conn.execute(
            "INSERT INTO queue VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9],
        )?;
    }
    Ok(path)
}

#[test]
fn a_clean_file_keeps_every_column_and_every_id() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = 1_700_000_000_000;
    let source = upstream_file(
        dir.path(),
        &[
            (
                1,
                Some(1),
                t,
                Some("zoë"),
                Some("10.0.0.1"),
                "order_placed",
                Some(r#"{"item":"茶","total":12}"#),
                Some("c-1"),
                None,
                Some(r#"{"via":"web"}"#),
            ),
            (
                2,
                Some(2),
                t + 5,
                None,
                None,
                "payment_received",
                Some("12"),
                Some("c-1"),
                Some(1),
                None,
            ),
            // Upstream's bulk store wrote no correlation id: the child inherits its parent's,
            // a root gets a new one.
            (
                3,
                None,
                t + 9,
                Some("bob"),
                None,
                "shipped",
                None,
                None,
                Some(2),
                None,
            ),
            (
                4,
                Some(1),
                t + 9,
                Some("bob"),
                None,
                "note",
                Some(r#"["a"]"#),
                None,
                None,
                None,
            ),
        ],
    )?;
    let store = eventlite::open(dir.path().join("ours.sqlite"))?;
    let report = upstream_sqlite(&source, &store)?;
    assert!(report.ids_kept && report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.imported, 4);
    let e = |id| -> anyhow::Result<eventlite::Event> {
        store
            .get(id)?
            .ok_or_else(|| anyhow::anyhow!("event {id} missing"))
    };
    let first = e(1)?;
    assert_eq!(
        (
            first.user.as_str(),
            first.ip.as_str(),
            first.datetime,
            first.version
        ),
        ("zoë", "10.0.0.1", t, 1)
    );
    assert_eq!(first.data_value()?["item"], "茶");
    assert_eq!(first.metadata::<serde_json::Value>()?["via"], "web");
    let second = e(2)?;
    assert_eq!(
        (second.version, second.causation_id, second.data.as_str()),
        (2, Some(1), "12")
    );
    assert_eq!((second.user.as_str(), second.metadata.as_str()), ("", "{}"));
    let third = e(3)?;
    assert_eq!(
        (
            third.correlation_id.as_str(),
            third.data.as_str(),
            third.version
        ),
        ("c-1", "{}", 1)
    );
    assert!(!e(4)?.correlation_id.is_empty());
    assert_eq!(store.transaction("c-1")?.len(), 3);
    Ok(())
}

#[test]
fn bad_rows_are_reported_and_the_rest_imported_with_mapped_ids() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = 1_700_000_000_000;
    let source = upstream_file(
        dir.path(),
        &[
            (
                1,
                Some(1),
                t,
                None,
                None,
                "ok",
                Some("{}"),
                Some("c"),
                None,
                None,
            ),
            (
                2,
                Some(1),
                t,
                None,
                None,
                "",
                Some("{}"),
                Some("c"),
                None,
                None,
            ),
            (
                3,
                Some(1),
                t,
                None,
                None,
                "bad_json",
                Some("{nope"),
                Some("c"),
                None,
                None,
            ),
            (
                4,
                Some(1),
                t,
                None,
                None,
                "child_of_bad",
                Some("{}"),
                Some("c"),
                Some(3),
                None,
            ),
            (
                5,
                Some(1),
                t,
                None,
                None,
                "bad_meta",
                Some("{}"),
                Some("c"),
                None,
                Some("[1]"),
            ),
            // A gap: row 6 was never there.
            (
                7,
                Some(1),
                t,
                None,
                None,
                "child_of_ok",
                Some("{}"),
                None,
                Some(1),
                None,
            ),
        ],
    )?;
    let store = eventlite::open(dir.path().join("ours.sqlite"))?;
    let report = upstream_sqlite(&source, &store)?;
    let skipped: Vec<i64> = report.skipped.iter().map(|s| s.source_id).collect();
    assert_eq!(skipped, [2, 3, 4, 5], "{report:?}");
    assert!(report.skipped[1].reason.contains("not valid JSON"));
    assert!(report.skipped[2].reason.contains("causation id 3"));
    assert_eq!(report.imported, 2);
    assert!(!report.ids_kept);
    assert_eq!(report.new_ids.get(&7), Some(&2));
    let child = store.get(2)?.ok_or_else(|| anyhow::anyhow!("missing"))?;
    assert_eq!(
        (child.cmd.as_str(), child.causation_id),
        ("child_of_ok", Some(1))
    );
    assert_eq!(store.count(&Filter::all())?, 2);
    Ok(())
}

#[test]
fn a_file_that_is_not_upstreams_is_refused_and_left_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let other = dir.path().join("other.sqlite");
    Connection::open(&other)?.execute_batch("CREATE TABLE t (x)")?;
    let before = std::fs::read(&other)?;
    let store = eventlite::open(dir.path().join("ours.sqlite"))?;
    assert!(matches!(
        upstream_sqlite(&other, &store),
        Err(Error::NotAStore { .. })
    ));
    assert_eq!(std::fs::read(&other)?, before);
    assert_eq!(store.last_id()?, 0);
    Ok(())
}
