//! JSON Lines with upstream's field names: what `BulkOperations.exportToJSONL` and
//! `eventlite export` write.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

use eventlite_core::{Backend, Error, EventStore, ExpectedVersion, Filter, NewEvent, Result};
use serde::Deserialize;

/// How [`jsonl`] imports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonlOptions {
    /// Events stored per transaction (at least 1; default 1,000).
    pub batch: usize,
    /// Leave bad lines out (each reported) and import the rest; otherwise the first bad line
    /// is an error and nothing of the file is stored.
    pub skip_errors: bool,
    /// Check every line and report what would be imported, storing nothing.
    pub dry_run: bool,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        JsonlOptions {
            batch: 1_000,
            skip_errors: false,
            dry_run: false,
        }
    }
}

impl JsonlOptions {
    /// The defaults: batches of 1,000, the first bad line aborts.
    pub fn new() -> Self {
        JsonlOptions::default()
    }

    /// Sets the events per transaction.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// Sets whether bad lines are left out (and reported) instead of aborting.
    pub fn skip_errors(mut self, skip: bool) -> Self {
        self.skip_errors = skip;
        self
    }

    /// Sets whether to check only.
    pub fn dry_run(mut self, dry: bool) -> Self {
        self.dry_run = dry;
        self
    }
}

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// Its number in the file (from 1).
    pub line: u64,
    /// Its `id`, when it had one.
    pub id: Option<u64>,
    /// Why it was left out.
    pub reason: String,
}

/// What a JSON Lines import did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonlReport {
    /// Events stored (for a dry run: that would be stored).
    pub imported: u64,
    /// Whether every imported event kept its `id` from the file (the store was empty, the
    /// file's ids ran 1, 2, 3, … and no line was left out); otherwise see `new_ids`.
    pub ids_kept: bool,
    /// File id → stored id, for every imported line whose id changed (empty for a dry run).
    pub new_ids: HashMap<u64, u64>,
    /// Lines left out, in file order.
    pub skipped: Vec<SkippedLine>,
}

/// One line, as upstream's export writes it (ours adds `stream` and `stream_version`). Other
/// keys are ignored, so that newer exports still import.
#[derive(Debug, Deserialize)]
struct Line {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    datetime: Option<i64>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    cmd: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    causation_id: Option<u64>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    stream_version: Option<u64>,
}

impl Line {
    /// The event to store; `parents` maps file ids to stored ids (or, in the check, to
    /// themselves).
    fn to_event(&self, parents: &HashMap<u64, u64>) -> std::result::Result<NewEvent, String> {
        let mut event = NewEvent::new(self.cmd.clone())
            .version(self.version.unwrap_or(1))
            .user(self.user.clone().unwrap_or_default())
            .ip(self.ip.clone().unwrap_or_default())
            .data(self.data.as_ref().unwrap_or(&serde_json::json!({})));
        if let Some(datetime) = self.datetime {
            event = event.recorded_at(datetime);
        }
        match &self.metadata {
            None | Some(serde_json::Value::Null) => {}
            Some(m @ serde_json::Value::Object(_)) => event = event.metadata(m),
            Some(_) => return Err("metadata is not a JSON object".into()),
        }
        if let Some(correlation) = self.correlation_id.as_ref().filter(|c| !c.is_empty()) {
            event = event.correlation_id(correlation.clone());
        }
        if let Some(parent) = self.causation_id {
            let id = parents.get(&parent).ok_or_else(|| {
                format!("causation_id {parent} names no event before it in the file")
            })?;
            event = event.causation_id(*id);
        }
        match (&self.stream, self.stream_version) {
            (None, None) => {}
            (Some(stream), Some(v)) if v >= 1 => {
                event = event.stream(stream.clone(), ExpectedVersion::Exact(v - 1));
            }
            (Some(_), _) => return Err("stream without a stream_version of 1 or more".into()),
            (None, Some(_)) => return Err("stream_version without a stream".into()),
        }
        Ok(event)
    }
}

/// Reads `path` line by line: (line number, text) of every line that is not blank.
fn lines(path: &Path) -> Result<impl Iterator<Item = Result<(u64, String)>>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
    let read_err = |e: std::io::Error| Error::InvalidArgument(format!("reading the file: {e}"));
    Ok(BufReader::new(file)
        .lines()
        .enumerate()
        .filter_map(move |(i, line)| match line {
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(Ok((i as u64 + 1, l))),
            Err(e) => Some(Err(read_err(e))),
        }))
}

/// Imports a JSON Lines file (upstream's field names, as `eventlite export` and the JavaScript
/// library's `exportToJSONL` write them) into `store`, in file order, keeping every field:
/// version, datetime, user, ip, cmd, data, correlation id, causation id (mapped to the new ids
/// when ids change), metadata, and stream with its version.
///
/// Every line is checked before anything is stored: a line that is not JSON, lacks `cmd`,
/// breaks a rule of the store (see [`EventStore::check_event`]), repeats an id, names a
/// causation id that no earlier line has, or continues a stream out of order (or one the store
/// already has) is bad. Without `skip_errors` the first bad line is an
/// [`Error::InvalidArgument`] naming it, and nothing is stored; with it, bad lines (and the
/// lines caused by them) are left out and listed in the report. Blank lines are skipped.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("events.jsonl");
/// std::fs::write(&file, concat!(
///     r#"{"id": 1, "cmd": "order_placed", "datetime": 1700000000000, "data": {"total": 12}}"#, "\n",
///     r#"{"id": 2, "cmd": "paid", "causation_id": 1}"#, "\n",
/// ))?;
/// let store = eventlite::open(dir.path().join("events.db"))?;
/// let report = eventlite::import::jsonl(&file, &store, eventlite::import::JsonlOptions::new())?;
/// assert_eq!((report.imported, report.ids_kept), (2, true));
/// assert_eq!(store.get(2)?.and_then(|e| e.causation_id), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn jsonl<B: Backend>(
    path: impl AsRef<Path>,
    store: &EventStore<B>,
    options: JsonlOptions,
) -> Result<JsonlReport> {
    let path = path.as_ref();
    if options.batch == 0 {
        return Err(Error::InvalidArgument("batch must be at least 1".into()));
    }
    // First pass: check every line. The ids of the good lines stand in for their stored ids.
    let mut good: HashSet<u64> = HashSet::new();
    let mut skipped: Vec<SkippedLine> = Vec::new();
    let mut seen_ids: HashSet<u64> = HashSet::new();
    let mut streams: HashMap<String, u64> = HashMap::new();
    let mut parents: HashMap<u64, u64> = HashMap::new();
    let mut count = 0u64;
    for item in lines(path)? {
        let (number, text) = item?;
        let checked = check_line(&text, store, &parents, &mut seen_ids, &mut streams);
        match checked {
            Ok(id) => {
                count += 1;
                good.insert(number);
                if let Some(id) = id {
                    parents.insert(id, id);
                }
            }
            Err((id, reason)) if options.skip_errors => {
                skipped.push(SkippedLine {
                    line: number,
                    id,
                    reason,
                });
            }
            Err((_, reason)) => {
                return Err(Error::InvalidArgument(format!(
                    "{} line {number}: {reason} (nothing was imported)",
                    path.display()
                )));
            }
        }
    }
    let mut report = JsonlReport {
        imported: 0,
        ids_kept: skipped.is_empty() && store.last_id()? == 0,
        new_ids: HashMap::new(),
        skipped,
    };
    if options.dry_run {
        report.imported = count;
        return Ok(report);
    }
    // Second pass: store the good lines in batches, mapping causation ids to stored ids.
    let mut stored: HashMap<u64, u64> = HashMap::new();
    let mut pending: Vec<(Option<u64>, NewEvent)> = Vec::with_capacity(options.batch);
    for item in lines(path)? {
        let (number, text) = item?;
        if !good.contains(&number) {
            continue;
        }
        let line: Line = serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("line {number} changed under the import: {e}")))?;
        // A child of an event still pending needs its parent's stored id: store those first.
        if line
            .causation_id
            .is_some_and(|p| pending.iter().any(|(id, _)| *id == Some(p)))
        {
            flush(store, &mut pending, &mut stored, &mut report)?;
        }
        let event = line
            .to_event(&stored)
            .map_err(|reason| Error::Internal(format!("line {number}: {reason}")))?;
        pending.push((line.id, event));
        if pending.len() >= options.batch {
            flush(store, &mut pending, &mut stored, &mut report)?;
        }
    }
    flush(store, &mut pending, &mut stored, &mut report)?;
    Ok(report)
}

/// Checks one line: its id, or (its id, why it is bad).
fn check_line<B: Backend>(
    text: &str,
    store: &EventStore<B>,
    parents: &HashMap<u64, u64>,
    seen_ids: &mut HashSet<u64>,
    streams: &mut HashMap<String, u64>,
) -> std::result::Result<Option<u64>, (Option<u64>, String)> {
    let line: Line = serde_json::from_str(text).map_err(|e| {
        let id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64));
        (id, format!("not an event: {e}"))
    })?;
    let bad = |reason: String| (line.id, reason);
    if let Some(id) = line.id
        && !seen_ids.insert(id)
    {
        return Err(bad(format!("id {id} appears twice")));
    }
    let event = line.to_event(parents).map_err(bad)?;
    store.check_event(&event).map_err(|e| bad(e.to_string()))?;
    if let (Some(stream), Some(version)) = (&line.stream, line.stream_version) {
        let last = match streams.get(stream) {
            Some(v) => *v,
            None => {
                let stored = store
                    .count(&Filter::stream(stream.clone()))
                    .map_err(|e| bad(e.to_string()))?;
                if stored > 0 {
                    return Err(bad(format!(
                        "stream {stream:?} already has events in the store"
                    )));
                }
                0
            }
        };
        if version != last + 1 {
            return Err(bad(format!(
                "stream {stream:?} version {version} does not follow version {last}"
            )));
        }
        streams.insert(stream.clone(), version);
    }
    Ok(line.id)
}

/// Stores `pending` in one transaction and records the new ids.
fn flush<B: Backend>(
    store: &EventStore<B>,
    pending: &mut Vec<(Option<u64>, NewEvent)>,
    stored: &mut HashMap<u64, u64>,
    report: &mut JsonlReport,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(pending);
    let ids: Vec<Option<u64>> = batch.iter().map(|(id, _)| *id).collect();
    let events = store
        .store_bulk(batch.into_iter().map(|(_, e)| e).collect())
        .map_err(|e| {
            let done = report.imported;
            match e {
                // Checked before: only a concurrent writer gets here (a stream it wrote to).
                Error::Conflict { .. } => Error::InvalidArgument(format!(
                    "{e} (another writer? the first {done} events of the file are stored)"
                )),
                e => e,
            }
        })?;
    for (file_id, event) in ids.into_iter().zip(events) {
        report.imported += 1;
        match file_id {
            Some(id) => {
                stored.insert(id, event.id);
                if id != event.id {
                    report.ids_kept = false;
                    report.new_ids.insert(id, event.id);
                }
            }
            None => report.ids_kept = false,
        }
    }
    Ok(())
}
