//! The JavaScript EventLite Sourcing's SQLite file.

use std::collections::HashMap;
use std::path::Path;

use eventlite_core::{Backend, Error, EventStore, NewEvent, Result};
use eventlite_sqlite::rusqlite::{self, Connection, OpenFlags};

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    /// The row's id in the source.
    pub source_id: i64,
    /// Why it was left out.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// Events stored.
    pub imported: u64,
    /// Whether every imported event kept its source id (the store was empty, the source's ids
    /// ran 1, 2, 3, … and no row was skipped); otherwise see `new_ids`.
    pub ids_kept: bool,
    /// Source id → stored id, for every imported row whose id changed.
    pub new_ids: HashMap<i64, u64>,
    /// Rows left out, in source order.
    pub skipped: Vec<SkippedRow>,
}

/// Rows read and stored per transaction.
const BATCH: usize = 1_000;

/// Imports the `queue` table of an EventLite Sourcing (JavaScript) SQLite file into `store`,
/// in id order, keeping every column: version, datetime, user, ip, cmd, data, correlation and
/// causation ids (mapped to the new ids when ids change), metadata. The source is opened
/// read-only and never changed.
///
/// Upstream's NULLs become EventLite's defaults (empty user and ip, data and metadata `{}`,
/// version 1); a row without a correlation id (upstream's bulk store wrote none) gets its
/// parent's, or a new one. A row EventLite cannot take (an empty cmd, data or metadata that is
/// not valid JSON, metadata that is not an object, a causation id naming no imported event) is
/// left out and listed in the report with its source id; the rest is imported. An EventLite
/// store given as the source is refused ([`Error::InvalidArgument`]): its streams would be
/// lost; copy it with [`convert`](crate::convert) instead.
///
/// ```
/// use eventlite_sqlite::rusqlite::Connection;
///
/// let dir = tempfile::tempdir()?;
/// let source = dir.path().join("events.sqlite");
/// let js = Connection::open(&source)?;
/// js.execute_batch(
///     "CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER DEFAULT 1,
///          datetime INTEGER NOT NULL, user TEXT, ip TEXT, cmd TEXT NOT NULL, data TEXT,
///          correlation_id TEXT, causation_id INTEGER, metadata TEXT);
///      INSERT INTO queue (datetime, cmd, data, correlation_id)
///          VALUES (1700000000000, 'order_placed', '{\"total\":12}', 'c-1');",
/// )?;
/// drop(js);
/// let store = eventlite::open(dir.path().join("ours.sqlite"))?;
/// let report = eventlite::import::upstream_sqlite(&source, &store)?;
/// assert!(report.ids_kept && report.skipped.is_empty());
/// assert_eq!(store.get(1)?.map(|e| e.datetime), Some(1_700_000_000_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn upstream_sqlite<B: Backend>(
    source: impl AsRef<Path>,
    store: &EventStore<B>,
) -> Result<ImportReport> {
    let source = source.as_ref();
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| source_err(source, e))?;
    // An EventLite store has what upstream's file lacks; imported as upstream's, its streams
    // would be dropped without a word.
    let ours: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('queue') WHERE name = 'stream')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| source_err(source, e))?;
    if ours {
        return Err(Error::InvalidArgument(format!(
            "{} is an EventLite store, not an EventLite Sourcing (JavaScript) file: copy it \
             with `convert`, or `export` it and import the JSON Lines",
            source.display()
        )));
    }
    let mut report = ImportReport {
        ids_kept: store.last_id()? == 0,
        ..ImportReport::default()
    };
    // Source id -> stored id, for causation ids (every imported row, while the import runs).
    let mut stored: HashMap<i64, u64> = HashMap::new();
    let mut after = i64::MIN;
    loop {
        let rows = read_rows(&conn, after).map_err(|e| source_err(source, e))?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut pending: Vec<(i64, NewEvent)> = Vec::with_capacity(rows.len());
        for row in rows {
            // A child of an event still pending needs its parent's new id: store what is
            // pending first.
            if row
                .causation_id
                .is_some_and(|p| pending.iter().any(|(id, _)| *id == p))
            {
                flush(store, &mut pending, &mut stored, &mut report)?;
            }
            match row.to_event(&stored) {
                Ok(event) => pending.push((row.id, event)),
                Err(reason) => report.skipped.push(SkippedRow {
                    source_id: row.id,
                    reason,
                }),
            }
        }
        flush(store, &mut pending, &mut stored, &mut report)?;
    }
    if !report.skipped.is_empty() {
        report.ids_kept = false;
    }
    report.skipped.sort_by_key(|s| s.source_id);
    Ok(report)
}

/// Stores `pending` in one transaction (or, when one of them is refused, one by one) and
/// records what became of each.
fn flush<B: Backend>(
    store: &EventStore<B>,
    pending: &mut Vec<(i64, NewEvent)>,
    stored: &mut HashMap<i64, u64>,
    report: &mut ImportReport,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(pending);
    let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
    let results: Vec<(i64, Result<u64>)> =
        match store.store_bulk(batch.iter().map(|(_, e)| e.clone()).collect()) {
            Ok(events) => ids
                .into_iter()
                .zip(events.into_iter().map(|e| Ok(e.id)))
                .collect(),
            // One event the row checks let through was refused (too large, too deep): store
            // the batch one by one, so that only that one is left out.
            Err(Error::InvalidEvent { .. }) => batch
                .into_iter()
                .map(|(id, event)| (id, store.store(event).map(|e| e.id)))
                .collect(),
            Err(other) => return Err(other),
        };
    for (source_id, result) in results {
        match result {
            Ok(id) => {
                report.imported += 1;
                stored.insert(source_id, id);
                if u64::try_from(source_id).ok() != Some(id) {
                    report.ids_kept = false;
                    report.new_ids.insert(source_id, id);
                }
            }
            Err(e @ Error::InvalidEvent { .. }) => report.skipped.push(SkippedRow {
                source_id,
                reason: e.to_string(),
            }),
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

fn source_err(source: &Path, e: rusqlite::Error) -> Error {
    Error::not_a_store(format!(
        "{} is not an EventLite Sourcing file: {e}",
        source.display()
    ))
    .with_source(e)
}

/// One row of upstream's `queue` table.
struct Row {
    id: i64,
    version: Option<i64>,
    datetime: i64,
    user: Option<String>,
    ip: Option<String>,
    cmd: String,
    data: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<i64>,
    metadata: Option<String>,
}

fn read_rows(conn: &Connection, after: i64) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, version, datetime, user, ip, cmd, data, correlation_id, causation_id, \
         metadata FROM queue WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![after, BATCH as i64], |r| {
        Ok(Row {
            id: r.get(0)?,
            version: r.get(1)?,
            datetime: r.get(2)?,
            user: r.get(3)?,
            ip: r.get(4)?,
            cmd: r.get(5)?,
            data: r.get(6)?,
            correlation_id: r.get(7)?,
            causation_id: r.get(8)?,
            metadata: r.get(9)?,
        })
    })?;
    rows.collect()
}

impl Row {
    /// The event to store, or why the row cannot be taken.
    fn to_event(&self, stored: &HashMap<i64, u64>) -> std::result::Result<NewEvent, String> {
        if self.cmd.trim().is_empty() {
            return Err("cmd is empty".into());
        }
        let version = match self.version {
            None => 1,
            Some(v) => u32::try_from(v)
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| format!("version {v} is not 1 or more"))?,
        };
        let data = self.data.clone().unwrap_or_else(|| "{}".into());
        serde_json::from_str::<serde::de::IgnoredAny>(&data)
            .map_err(|e| format!("data is not valid JSON: {e}"))?;
        let metadata = self.metadata.clone().unwrap_or_else(|| "{}".into());
        match serde_json::from_str::<serde_json::Value>(&metadata) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Err("metadata is not a JSON object".into()),
            Err(e) => return Err(format!("metadata is not valid JSON: {e}")),
        }
        let mut event = NewEvent::new(self.cmd.clone())
            .version(version)
            .recorded_at(self.datetime)
            .user(self.user.clone().unwrap_or_default())
            .ip(self.ip.clone().unwrap_or_default())
            .data_json(data)
            .metadata_json(metadata);
        if let Some(parent) = self.causation_id {
            let id = stored
                .get(&parent)
                .ok_or_else(|| format!("causation id {parent} names no imported event"))?;
            event = event.causation_id(*id);
        }
        if let Some(correlation) = self.correlation_id.as_ref().filter(|c| !c.is_empty()) {
            event = event.correlation_id(correlation.clone());
        }
        Ok(event)
    }
}
