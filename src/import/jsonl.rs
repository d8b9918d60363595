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
    /// The event to store; `parent` maps a file id to the id that stands in for its stored
    /// one (the file id itself until it is stored), `None` for an id no earlier line has.
    fn into_event(
        self,
        parent: impl Fn(u64) -> Option<u64>,
    ) -> std::result::Result<NewEvent, String> {
        let mut event = NewEvent::new(self.cmd)
            .version(self.version.unwrap_or(1))
            .user(self.user.unwrap_or_default())
            .ip(self.ip.unwrap_or_default());
        // Raw values were checked as JSON when the line was read: their text goes in byte for
        // byte and is not parsed again. A missing or null data is `{}`, as upstream's
        // importer makes of a NULL column.
        event = match self.data {
            Some(data) => event.data_raw(data),
            None => event.data_json("{}"),
        };
        if let Some(datetime) = self.datetime {
            event = event.recorded_at(datetime);
        }
        if let Some(metadata) = self.metadata {
            if !metadata.get().trim_start().starts_with('{') {
                return Err("metadata is not a JSON object".into());
            }
            event = event.metadata_raw(metadata);
        }
        if let Some(correlation) = self.correlation_id.filter(|c| !c.is_empty()) {
            event = event.correlation_id(correlation);
        }
        if let Some(file_id) = self.causation_id {
            let id = parent(file_id).ok_or_else(|| {
                format!("causation_id {file_id} names no event before it in the file")
            })?;
            event = event.causation_id(id);
        }
        match (self.stream, self.stream_version) {
            (None, None) => {}
            (Some(stream), Some(v)) if v >= 1 => {
                event = event.stream(stream, ExpectedVersion::Exact(v - 1));
            }
            (Some(_), _) => return Err("stream without a stream_version of 1 or more".into()),
            (None, Some(_)) => return Err("stream_version without a stream".into()),
        }
        Ok(event)
    }
}

/// A file read line by line into one buffer: every line that is not blank, with its number
/// and the bytes read up to its end. A byte-order mark before the first line is dropped.
struct Lines {
    reader: BufReader<std::fs::File>,
    buffer: Vec<u8>,
    number: u64,
    offset: u64,
}

impl Lines {
    fn open(path: &Path) -> Result<Lines> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
        Ok(Lines {
            reader: BufReader::new(file),
            buffer: Vec::new(),
            number: 0,
            offset: 0,
        })
    }

    /// The next line that is not blank: its number, the bytes read so far, and its text or
    /// why it is not text; `None` at the end.
    #[allow(clippy::type_complexity)]
    fn next_line(&mut self) -> Option<Result<(u64, u64, std::result::Result<&str, &'static str>)>> {
        // Where the text starts in the buffer, once a line that is not blank is read.
        let start = loop {
            self.buffer.clear();
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(n) => self.offset += n as u64,
                Err(e) => {
                    return Some(Err(Error::InvalidArgument(format!(
                        "reading line {}: {e}",
                        self.number + 1
                    ))));
                }
            }
            self.number += 1;
            let start = if self.number == 1 && self.buffer.starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            };
            let line = &self.buffer[start..];
            // Most lines start with `{`: decided without decoding. Otherwise blank is what
            // `str::trim` takes away, as it was for every line.
            let blank = !line
                .iter()
                .any(|b| b.is_ascii() && !b.is_ascii_whitespace() && *b != 0x0B)
                && std::str::from_utf8(line).is_ok_and(|t| t.trim().is_empty());
            if !blank {
                break start;
            }
        };
        let text = std::str::from_utf8(&self.buffer[start..]).map_err(|_| "not UTF-8 text");
        Some(Ok((self.number, self.offset, text)))
    }
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
    progress: impl FnMut(Progress),
) -> Result<JsonlReport> {
    import(path.as_ref(), store, options, progress, KEEP_BYTES)
}

/// [`jsonl_with`], keeping at most `keep_bytes` of lines' events from the first pass for the
/// second.
fn import<B: Backend>(
    path: &Path,
    store: &EventStore<B>,
    options: JsonlOptions,
    mut progress: impl FnMut(Progress),
    keep_bytes: u64,
) -> Result<JsonlReport> {
    if options.batch == 0 {
        return Err(Error::InvalidArgument("batch must be at least 1".into()));
    }
    // The size now; for a file that grows meanwhile, the total is raised to what was read.
    let total = std::fs::metadata(path).ok().map(|m| m.len());
    let mut report_at =
        |step: Step, done: u64| progress(Progress::new(step, done, total.map(|t| t.max(done))));
    let every = options.batch as u64;
    // First pass: check every line. The ids of the good lines stand in for their stored ids.
    let mut check = Check {
        store,
        seen: IdMap::default(),
        streams: HashMap::new(),
    };
    // Bad lines' numbers, in file order (only with `skip_errors`: otherwise the first ends it).
    let mut bad: Vec<u64> = Vec::new();
    let mut skipped: Vec<SkippedLine> = Vec::new();
    let first_id = store.last_id()? + 1;
    // Whether the k-th good line has the id the k-th stored event will have.
    let mut ids_kept = true;
    let mut count = 0u64;
    let mut read = 0u64;
    // The good lines' events up to a memory budget, already in their transactions: the
    // second pass stores them without reading and parsing their lines again.
    let mut kept: Vec<Batch> = Vec::new();
    let mut batches = Batcher::new(options.batch);
    let mut kept_bytes = 0u64;
    let mut kept_until = 0u64;
    // The last good line: the second pass reads no further (a line added meanwhile was never
    // checked).
    let mut last_good = 0u64;
    let mut keeping = true;
    // Lines are read and parsed on a thread of their own, a chunk at a time, while this one
    // checks them in order: on two cores the parse costs the check no time.
    let lines = Lines::open(path)?;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        scope.spawn(move || read_and_parse(lines, tx));
        for chunk in rx {
            for (number, offset, parsed) in chunk? {
                let length = offset - read;
                read = offset;
                if number % every == 0 {
                    report_at(Step::Checking, offset);
                }
                let checked = match parsed.parsed() {
                    Ok(line) => check.line(line, number)?,
                    Err(bad) => Err(bad),
                };
                match checked {
                    Ok(line) => {
                        ids_kept &= line.id == Some(first_id + count);
                        count += 1;
                        last_good = number;
                        if keeping && kept_bytes + length > keep_bytes {
                            keeping = false;
                            kept.extend(batches.finish());
                        }
                        if keeping {
                            kept.extend(batches.push(line));
                            kept_bytes += length;
                            kept_until = number;
                        }
                    }
                    Err((id, reason)) if options.skip_errors => {
                        bad.push(number);
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
        }
        Ok(())
    })?;
    kept.extend(batches.finish());
    // The file's size when the import began, or what was read past it: never backwards.
    report_at(Step::Checking, total.map_or(read, |t| t.max(read)));
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
    let mut ids = Ids {
        same: ids_kept,
        stored: IdMap::default(),
    };
    let kept_batches = kept.len() as u64;
    for (i, batch) in kept.into_iter().enumerate() {
        store_batch(store, batch, &mut ids, &mut report)?;
        // Bytes, as the step counts them: the kept lines' share of the file.
        report_at(Step::Importing, kept_bytes * (i as u64 + 1) / kept_batches);
    }
    let mut batches = Batcher::new(options.batch);
    // Only when the first pass could not keep every good line.
    let mut lines = if kept_until < last_good {
        Some(Lines::open(path)?)
    } else {
        None
    };
    while let Some(item) = lines.as_mut().and_then(Lines::next_line) {
        let (number, offset, text) = item?;
        if number > last_good {
            break;
        }
        read = offset;
        if number <= kept_until || bad.binary_search(&number).is_ok() {
            continue;
        }
        let changed = || Error::InvalidArgument(format!("line {number} changed during the import"));
        let line: Line = text
            .ok()
            .and_then(|t| serde_json::from_str(t).ok())
            .ok_or_else(changed)?;
        let (id, causation_id) = (line.id, line.causation_id);
        // What the first pass saw: this line's id on this line, a parent on a line before.
        let line_of = |id: u64| check.seen.get(&id).map(|seen| seen.line);
        let known = id.is_none_or(|id| line_of(id) == Some(number))
            && causation_id.is_none_or(|p| line_of(p).is_some_and(|l| l < number));
        if !known {
            return Err(changed());
        }
        // The file's ids stand in for the stored ones until the batch is stored.
        let event = line.into_event(Some).map_err(|_| changed())?;
        let good = Good {
            id,
            causation_id,
            event,
        };
        if let Some(full) = batches.push(good) {
            store_batch(store, full, &mut ids, &mut report)?;
        }
        if number % every == 0 {
            report_at(Step::Importing, offset);
        }
    }
    if let Some(last) = batches.finish() {
        store_batch(store, last, &mut ids, &mut report)?;
    }
    report_at(Step::Importing, total.map_or(read, |t| t.max(read)));
    Ok(report)
}

/// The events of one transaction: each with its id and causation id in the file (which stand
/// in for the stored ones in the events until they are known).
#[derive(Default)]
struct Batch {
    ids: Vec<Option<u64>>,
    causes: Vec<Option<u64>>,
    events: Vec<NewEvent>,
}

/// Gathers checked lines into transactions of at most `size` events, cut before an event
/// caused by one of the same batch: its parent must be stored first, for its stored id.
struct Batcher {
    size: usize,
    current: Batch,
    members: IdSet,
}

impl Batcher {
    fn new(size: usize) -> Batcher {
        Batcher {
            size,
            current: Batch::default(),
            members: IdSet::default(),
        }
    }

    /// Adds `line`; the batch before it, when it had to be cut there.
    fn push(&mut self, line: Good) -> Option<Batch> {
        let cut = !self.current.events.is_empty()
            && (self.current.events.len() >= self.size
                || line.causation_id.is_some_and(|p| self.members.contains(&p)));
        let done = cut.then(|| self.take());
        if let Some(id) = line.id {
            self.members.insert(id);
        }
        self.current.ids.push(line.id);
        self.current.causes.push(line.causation_id);
        self.current.events.push(line.event);
        done
    }

    /// The batch being gathered, if it has any event.
    fn finish(&mut self) -> Option<Batch> {
        (!self.current.events.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        self.members.clear();
        std::mem::take(&mut self.current)
    }
}

/// What the second pass knows of the file's ids: whether every event so far was stored under
/// its file id (`same`), and the stored id of each that was not, or that came after one that
/// was not.
struct Ids {
    same: bool,
    stored: IdMap<u64>,
}

impl Ids {
    /// The stored id of the event with file id `id`, once stored.
    fn stored(&self, id: u64) -> u64 {
        self.stored.get(&id).copied().unwrap_or(id)
    }
}

/// Stores `batch` in one transaction, its causation ids mapped to stored ids, and records the
/// ids it was given.
fn store_batch<B: Backend>(
    store: &EventStore<B>,
    batch: Batch,
    ids: &mut Ids,
    report: &mut JsonlReport,
) -> Result<()> {
    let Batch {
        ids: file_ids,
        causes,
        mut events,
    } = batch;
    if !ids.same {
        events = events
            .into_iter()
            .zip(&causes)
            .map(|(event, cause)| match cause {
                Some(parent) => event.causation_id(ids.stored(*parent)),
                None => event,
            })
            .collect();
    }
    // Every line was checked: what fails here is the store itself (a full disk) or another
    // writer (a stream it wrote to meanwhile), and the error says so as it is. The events
    // stored before it are `report.imported`, lost with the report: say how many.
    let done = report.imported;
    let stored = store.store_bulk(events).map_err(|e| match e {
        Error::InvalidEvent { reason, source } => Error::InvalidEvent {
            reason: format!("{reason} (the first {done} events of the file are stored)"),
            source,
        },
        e => e,
    })?;
    for (file_id, event) in file_ids.into_iter().zip(stored) {
        report.imported += 1;
        match file_id {
            Some(id) if id == event.id && ids.same => {}
            Some(id) => {
                if id != event.id {
                    ids.same = false;
                    report.ids_kept = false;
                    report.new_ids.insert(id, event.id);
                }
                ids.stored.insert(id, event.id);
            }
            None => report.ids_kept = false,
        }
    }
    Ok(())
}

/// Hashes ids with one multiplication by a per-process random key, where SipHash would be
/// most of a map insert; folding the high half of the product into the low half keeps ids a
/// file chose (all multiples of 2²⁰, say) from landing in one bucket.
#[derive(Clone)]
struct IdHashing(u64);

impl Default for IdHashing {
    fn default() -> Self {
        use std::hash::BuildHasher;
        static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        IdHashing(
            *KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64)),
        )
    }
}

impl std::hash::BuildHasher for IdHashing {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// The hasher of [`IdHashing`].
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

type IdMap<V> = HashMap<u64, V, IdHashing>;
type IdSet = HashSet<u64, IdHashing>;

/// Lines handed from the reading thread to the checking one at a time.
const CHUNK: usize = 256;

/// Of every this many chunks, the reading thread parses all but the last, which the checking
/// thread parses itself: the two then take about as long per chunk.
const SHARE: usize = 3;

/// A line as the reading thread hands it over: its number, the bytes read to its end, and the
/// line parsed or its text.
type Parsed = (u64, u64, Item);

/// A line parsed ([`parse`]'s answer), or its text (or why it is not text) to be parsed.
enum Item {
    Parsed(std::result::Result<Line, (Option<u64>, String)>),
    Text(std::result::Result<String, &'static str>),
}

impl Item {
    /// The line parsed.
    fn parsed(self) -> std::result::Result<Line, (Option<u64>, String)> {
        match self {
            Item::Parsed(parsed) => parsed,
            Item::Text(text) => parse(text.as_deref().map_err(|reason| *reason)),
        }
    }
}

/// Reads every line of `lines` and parses most of them (see [`SHARE`]), sending them in
/// chunks to `to`; stops when the receiver is gone (the check ended early).
fn read_and_parse(mut lines: Lines, to: std::sync::mpsc::SyncSender<Result<Vec<Parsed>>>) {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut chunks = 0usize;
    while let Some(item) = lines.next_line() {
        let ours = chunks % SHARE != SHARE - 1;
        match item {
            Ok((number, offset, text)) if ours => {
                chunk.push((number, offset, Item::Parsed(parse(text))));
            }
            Ok((number, offset, text)) => {
                chunk.push((number, offset, Item::Text(text.map(str::to_owned))));
            }
            Err(e) => {
                // What came before the error, then the error.
                let _ = to.send(Ok(chunk));
                let _ = to.send(Err(e));
                return;
            }
        }
        if chunk.len() == CHUNK {
            chunks += 1;
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if to.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    let _ = to.send(Ok(chunk));
}

/// One line's text (or why it is not text) as a [`Line`], or (its id when it has one, why it
/// is not an event).
fn parse(
    text: std::result::Result<&str, &str>,
) -> std::result::Result<Line, (Option<u64>, String)> {
    let text = text.map_err(|reason| (None, reason.to_owned()))?;
    serde_json::from_str(text).map_err(|e| {
        use serde_json::Value;
        // serde_json places the error at "line 1", the line on its own: the caller gives the
        // file's line number, so only the column is worth saying.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        let value = serde_json::from_str::<Value>(text).ok();
        let id = value
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_u64);
        let why = match value {
            None => format!("not JSON: {message} at column {}", e.column()),
            Some(Value::Object(_)) => format!("not an event: {message}"),
            Some(other) => {
                let kind = match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                };
                format!("not an event: a JSON object is expected, not {kind}")
            }
        };
        (id, why)
    })
}

/// The most line bytes whose events the first pass keeps for the second (their events take
/// about as much memory again).
const KEEP_BYTES: u64 = 64 << 20;

/// What the first pass knows of the lines it checked (the second reads it too).
struct Check<'s, B> {
    store: &'s EventStore<B>,
    /// The good lines' ids (standing in for their stored ids), each with the length of its
    /// correlation id: a child without one of its own takes its parent's, and its size
    /// depends on it.
    seen: IdMap<Seen>,
    /// Each stream's last version in the file so far.
    streams: HashMap<String, u64>,
}

impl<B: Backend> Check<'_, B> {
    /// Checks one line: its id, or (its id, why it is bad); the store's own errors (reading
    /// it) are errors.
    #[allow(clippy::type_complexity)]
    fn line(
        &mut self,
        line: Line,
        number: u64,
    ) -> Result<std::result::Result<Good, (Option<u64>, String)>> {
        let (id, causation_id) = (line.id, line.causation_id);
        let bad = |reason: String| Ok(Err((id, reason)));
        if let Some(id) = id
            && self.seen.contains_key(&id)
        {
            return bad(format!("id {id} appears twice"));
        }
        let own = line
            .correlation_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(str::len);
        let stream = line.stream.clone().zip(line.stream_version);
        let seen = &self.seen;
        let event = match line.into_event(|p| seen.contains_key(&p).then_some(p)) {
            Ok(event) => event,
            Err(reason) => return bad(reason),
        };
        // What is checked, when it is not the event itself.
        let mut stand_in = None;
        let correlation_len = match (own, causation_id) {
            (Some(len), _) => len,
            (None, Some(parent)) => {
                let len = self
                    .seen
                    .get(&parent)
                    .map_or(36, |seen| seen.correlation_len);
                // The parent's correlation id, as the append will give it (by length: the
                // checks look at sizes).
                stand_in = Some(event.clone().correlation_id("x".repeat(len)));
                len
            }
            // A generated one: a UUID.
            (None, None) => 36,
        };
        if let Err(e) = self.store.check_event(stand_in.as_ref().unwrap_or(&event)) {
            return bad(e.to_string());
        }
        if let Some((stream, version)) = stream {
            let last = match self.streams.get(&stream) {
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
            self.streams.insert(stream, version);
        }
        if let Some(id) = id {
            self.seen.insert(
                id,
                Seen {
                    line: number,
                    correlation_len,
                },
            );
        }
        Ok(Ok(Good {
            id,
            causation_id,
            event,
        }))
    }
}

/// A good line's id, as the first pass saw it: on which line, and how long its correlation id
/// is (see [`Check::seen`]).
#[derive(Clone, Copy)]
struct Seen {
    line: u64,
    correlation_len: usize,
}

/// A line that passed the check: its id and causation id in the file, and its event (with
/// the file's ids standing in for stored ones).
struct Good {
    id: Option<u64>,
    causation_id: Option<u64>,
    event: NewEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventlite_core::{MemoryBackend, StreamOptions};

    /// Events kept from the first pass or read again in the second are stored alike: the
    /// same fields, causation ids mapped to the stored ids across the boundary between the
    /// two, and into a store that already has events (so every id changes).
    #[test]
    fn kept_and_reread_lines_are_stored_alike() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("events.jsonl");
        let mut text = String::new();
        for i in 1..=40u64 {
            let cause = if i > 1 && i % 3 != 0 {
                format!(r#","causation_id":{}"#, i - 1)
            } else {
                String::new()
            };
            text.push_str(&format!(
                r#"{{"id":{i},"cmd":"c{}","data":{{"n":{i}}},"correlation_id":"g{}"{cause}}}"#,
                i % 4,
                i / 10
            ));
            text.push('\n');
        }
        std::fs::write(&file, &text)?;
        let mut stored: Vec<Vec<eventlite_core::Event>> = Vec::new();
        for keep in [u64::MAX, 700, 0] {
            let store = EventStore::new(MemoryBackend::new());
            store.store_bulk((0..3).map(|_| NewEvent::new("before")).collect())?;
            let options = JsonlOptions::new().batch(7);
            let report = import(&file, &store, options, |_| {}, keep)?;
            assert_eq!(
                (report.imported, report.ids_kept),
                (40, false),
                "keep {keep}"
            );
            assert_eq!(report.new_ids.get(&1), Some(&4));
            let mut events = Vec::new();
            for batch in store.read_all(StreamOptions::new())? {
                events.extend(batch?);
            }
            for e in &events[3..] {
                let line = e.id - 3;
                let cause = (line > 1 && line % 3 != 0).then(|| e.id - 1);
                assert_eq!(e.causation_id, cause, "keep {keep}: event {}", e.id);
            }
            // Datetimes are the store's clock: compare the rest.
            stored.push(
                events
                    .into_iter()
                    .skip(3)
                    .map(|e| eventlite_core::Event { datetime: 0, ..e })
                    .collect(),
            );
        }
        assert!(stored.windows(2).all(|w| w[0] == w[1]));
        Ok(())
    }

    /// A line added to the file after the check (here: as the check ends) is not stored,
    /// whether the second pass reads the file again or not.
    #[test]
    fn lines_added_after_the_check_are_not_stored() -> anyhow::Result<()> {
        use std::io::Write as _;
        for keep in [u64::MAX, 0] {
            let dir = tempfile::tempdir()?;
            let file = dir.path().join("events.jsonl");
            std::fs::write(
                &file,
                "{\"id\":1,\"cmd\":\"a\"}\n{\"id\":2,\"cmd\":\"b\"}\n",
            )?;
            let store = EventStore::new(MemoryBackend::new());
            let mut grown = false;
            let mut last = 0;
            let report = import(
                &file,
                &store,
                JsonlOptions::new(),
                |p| {
                    assert!(p.total.is_none_or(|t| p.done <= t), "{p:?}");
                    if p.step == Step::Checking && p.total == Some(p.done) && !grown {
                        grown = true;
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .open(&file)
                            .unwrap();
                        f.write_all(b"{\"id\":3,\"cmd\":\"late\"}\n").unwrap();
                    }
                    last = p.done;
                },
                keep,
            )?;
            assert!(grown);
            assert_eq!((report.imported, store.last_id()?), (2, 2), "keep {keep}");
            assert!(last > 0);
        }
        Ok(())
    }

    /// A line the second pass reads again must be what the first pass checked: its id on
    /// its line, its parent on a line before it. Lines of only whitespace (`str::trim`'s,
    /// vertical tab included) are blank.
    #[test]
    fn a_line_changed_after_the_check_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("events.jsonl");
        let lines = [
            r#"{"id":1,"cmd":"a"}"#,
            "\u{0B} \u{A0}",
            r#"{"id":2,"cmd":"b","causation_id":1}"#,
            r#"{"id":3,"cmd":"c"}"#,
        ];
        std::fs::write(&file, lines.join("\n"))?;
        let store = EventStore::new(MemoryBackend::new());
        let report = import(&file, &store, JsonlOptions::new(), |_| {}, 0)?;
        assert_eq!(report.imported, 3);
        // The same number of lines, but line 3 now names a parent that comes after it.
        for changed in [
            r#"{"id":2,"cmd":"b","causation_id":3}"#,
            r#"{"id":3,"cmd":"b","causation_id":1}"#,
        ] {
            std::fs::write(&file, lines.join("\n"))?;
            let store = EventStore::new(MemoryBackend::new());
            let mut done = false;
            let outcome = import(
                &file,
                &store,
                JsonlOptions::new(),
                |p| {
                    if p.step == Step::Checking && p.total == Some(p.done) && !done {
                        done = true;
                        let mut edited = lines;
                        edited[2] = changed;
                        std::fs::write(&file, edited.join("\n")).unwrap();
                    }
                },
                0,
            );
            let message = outcome.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("line 3 changed"), "{changed}: {message}");
            // Nothing of the changed line or after it.
            assert!(store.last_id()? <= 1, "{changed}");
        }
        Ok(())
    }
}
