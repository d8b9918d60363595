//! JSON Lines with upstream's field names: what `BulkOperations.exportToJSONL` and
//! `eventlite export` write.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

use eventlite_core::{Backend, Error, EventStore, ExpectedVersion, Filter, NewEvent, Result};

use crate::progress::{Progress, Step};
use serde::Deserialize;
use serde_json::value::RawValue;

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
    // Raw: the text goes in as the file has it (key order, number precision kept).
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    causation_id: Option<u64>,
    #[serde(default)]
    metadata: Option<Box<RawValue>>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    stream_version: Option<u64>,
}

impl Line {
    /// The event to store; `parents` maps file ids to stored ids (or, in the check, to
    /// themselves).
    fn to_event(&self, parents: &HashMap<u64, u64>) -> std::result::Result<NewEvent, String> {
        // A missing or null data is `{}`, as upstream's importer makes of a NULL column.
        let data = self.data.as_ref().map_or("{}", |d| d.get());
        let mut event = NewEvent::new(self.cmd.clone())
            .version(self.version.unwrap_or(1))
            .user(self.user.clone().unwrap_or_default())
            .ip(self.ip.clone().unwrap_or_default())
            .data_json(data.to_owned());
        if let Some(datetime) = self.datetime {
            event = event.recorded_at(datetime);
        }
        if let Some(metadata) = &self.metadata {
            if !metadata.get().trim_start().starts_with('{') {
                return Err("metadata is not a JSON object".into());
            }
            event = event.metadata_json(metadata.get().to_owned());
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

/// One line of the file: its number, the bytes read up to its end, and its text or why it is
/// not text.
type NumberedLine = (u64, u64, std::result::Result<String, String>);

/// Reads `path` line by line, every line that is not blank. A byte-order mark before the first
/// line is dropped.
fn lines(path: &Path) -> Result<impl Iterator<Item = Result<NumberedLine>>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut number = 0u64;
    let mut offset = 0u64;
    Ok(std::iter::from_fn(move || {
        loop {
            let mut bytes = Vec::new();
            match reader.read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(n) => offset += n as u64,
                Err(e) => {
                    return Some(Err(Error::InvalidArgument(format!(
                        "reading line {}: {e}",
                        number + 1
                    ))));
                }
            }
            number += 1;
            if number == 1 && bytes.starts_with(b"\xEF\xBB\xBF") {
                bytes.drain(..3);
            }
            let text = match String::from_utf8(bytes) {
                Ok(t) if t.trim().is_empty() => continue,
                Ok(t) => Ok(t),
                Err(_) => Err("not UTF-8 text".to_owned()),
            };
            return Some(Ok((number, offset, text)));
        }
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
/// # #[cfg(any(feature = "sqlite", feature = "redb"))] {
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
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn jsonl<B: Backend>(
    path: impl AsRef<Path>,
    store: &EventStore<B>,
    options: JsonlOptions,
) -> Result<JsonlReport> {
    jsonl_with(path, store, options, |_| {})
}

/// [`jsonl`], reporting its progress to `progress`: [`Step::Checking`] then
/// [`Step::Importing`] (only the first for a dry run), each in bytes of the file, at most once
/// per batch of lines.
pub fn jsonl_with<B: Backend>(
    path: impl AsRef<Path>,
    store: &EventStore<B>,
    options: JsonlOptions,
    mut progress: impl FnMut(Progress),
) -> Result<JsonlReport> {
    let path = path.as_ref();
    if options.batch == 0 {
        return Err(Error::InvalidArgument("batch must be at least 1".into()));
    }
    // The size now; a file that grows meanwhile ends its bar past the end, nothing worse.
    let total = std::fs::metadata(path).ok().map(|m| m.len());
    let mut report_at = |step: Step, done: u64| progress(Progress::new(step, done, total));
    let every = options.batch as u64;
    // First pass: check every line. The ids of the good lines stand in for their stored ids.
    let mut check = Check {
        store,
        parents: HashMap::new(),
        correlation_len: HashMap::new(),
        seen_ids: HashSet::new(),
        streams: HashMap::new(),
    };
    let mut good: HashSet<u64> = HashSet::new();
    let mut skipped: Vec<SkippedLine> = Vec::new();
    let first_id = store.last_id()? + 1;
    // Whether the k-th good line has the id the k-th stored event will have.
    let mut ids_kept = true;
    let mut count = 0u64;
    let mut read = 0u64;
    for item in lines(path)? {
        let (number, offset, text) = item?;
        read = offset;
        if number % every == 0 {
            report_at(Step::Checking, offset);
        }
        let checked = match text {
            Ok(text) => check.line(&text)?,
            Err(reason) => Err((None, reason)),
        };
        match checked {
            Ok(id) => {
                ids_kept &= id == Some(first_id + count);
                count += 1;
                good.insert(number);
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
    report_at(Step::Checking, total.unwrap_or(read));
    let mut report = JsonlReport {
        imported: 0,
        ids_kept: ids_kept && skipped.is_empty(),
        new_ids: HashMap::new(),
        skipped,
    };
    if options.dry_run {
        report.imported = count;
        return Ok(report);
    }
    // Second pass: store the good lines in batches, mapping causation ids to stored ids.
    let mut stored: HashMap<u64, u64> = HashMap::new();
    let mut pending: Vec<(Option<u64>, NewEvent)> = Vec::with_capacity(options.batch.min(1_024));
    let mut pending_ids: HashSet<u64> = HashSet::new();
    for item in lines(path)? {
        let (number, offset, text) = item?;
        read = offset;
        if !good.contains(&number) {
            continue;
        }
        let changed = || Error::InvalidArgument(format!("line {number} changed during the import"));
        let line: Line = text
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(changed)?;
        // A child of an event still pending needs its parent's stored id: store those first.
        if line.causation_id.is_some_and(|p| pending_ids.contains(&p)) {
            flush(store, &mut pending, &mut stored, &mut report)?;
            pending_ids.clear();
        }
        let event = line.to_event(&stored).map_err(|_| changed())?;
        if let Some(id) = line.id {
            pending_ids.insert(id);
        }
        pending.push((line.id, event));
        if pending.len() >= options.batch {
            flush(store, &mut pending, &mut stored, &mut report)?;
            pending_ids.clear();
        }
        if number % every == 0 {
            report_at(Step::Importing, offset);
        }
    }
    flush(store, &mut pending, &mut stored, &mut report)?;
    report_at(Step::Importing, total.unwrap_or(read));
    Ok(report)
}

/// What the first pass knows of the lines before the one it checks.
struct Check<'s, B> {
    store: &'s EventStore<B>,
    /// Good lines' ids, standing in for their stored ids.
    parents: HashMap<u64, u64>,
    /// Good lines' correlation ids, by length: a child without one of its own takes its
    /// parent's, and its size depends on it.
    correlation_len: HashMap<u64, usize>,
    seen_ids: HashSet<u64>,
    /// Each stream's last version in the file so far.
    streams: HashMap<String, u64>,
}

impl<B: Backend> Check<'_, B> {
    /// Checks one line: its id, or (its id, why it is bad); the store's own errors (reading
    /// it) are errors.
    #[allow(clippy::type_complexity)]
    fn line(
        &mut self,
        text: &str,
    ) -> Result<std::result::Result<Option<u64>, (Option<u64>, String)>> {
        let line: Line = match serde_json::from_str(text) {
            Ok(line) => line,
            Err(e) => {
                let id = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64));
                return Ok(Err((id, format!("not an event: {e}"))));
            }
        };
        let bad = |reason: String| Ok(Err((line.id, reason)));
        if let Some(id) = line.id
            && self.seen_ids.contains(&id)
        {
            return bad(format!("id {id} appears twice"));
        }
        let mut event = match line.to_event(&self.parents) {
            Ok(event) => event,
            Err(reason) => return bad(reason),
        };
        let own = line.correlation_id.as_ref().filter(|c| !c.is_empty());
        let correlation_len = match (own, line.causation_id) {
            (Some(c), _) => c.len(),
            (None, Some(parent)) => {
                let len = self.correlation_len.get(&parent).copied().unwrap_or(36);
                // The parent's correlation id, as the append will give it (by length: the
                // checks look at sizes).
                event = event.correlation_id("x".repeat(len));
                len
            }
            // A generated one: a UUID.
            (None, None) => 36,
        };
        if let Err(e) = self.store.check_event(&event) {
            return bad(e.to_string());
        }
        if let (Some(stream), Some(version)) = (&line.stream, line.stream_version) {
            let last = match self.streams.get(stream) {
                Some(v) => *v,
                None if self.store.count(&Filter::stream(stream.clone()))? > 0 => {
                    return bad(format!("stream {stream:?} already has events in the store"));
                }
                None => 0,
            };
            if version != last + 1 {
                return bad(format!(
                    "stream {stream:?} version {version} does not follow version {last}"
                ));
            }
            self.streams.insert(stream.clone(), version);
        }
        if let Some(id) = line.id {
            self.seen_ids.insert(id);
            self.parents.insert(id, id);
            self.correlation_len.insert(id, correlation_len);
        }
        Ok(Ok(line.id))
    }
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
    // Every line was checked: what fails here is the store itself (a full disk) or another
    // writer (a stream it wrote to meanwhile), and the error says so as it is. The events
    // stored before it are `report.imported`, lost with the report: say how many.
    let done = report.imported;
    let events = store
        .store_bulk(batch.into_iter().map(|(_, e)| e).collect())
        .map_err(|e| match e {
            Error::InvalidEvent { reason, source } => Error::InvalidEvent {
                reason: format!("{reason} (the first {done} events of the file are stored)"),
                source,
            },
            e => e,
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
