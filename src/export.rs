//! Writing events out: JSON Lines with upstream's field names (what the JavaScript library's
//! `importFromJSONL` and [`crate::import::jsonl`] read), or CSV as upstream writes it.

use std::io::Write;

use eventlite_core::{Backend, Error, Event, EventStore, Filter, Result, StreamOptions};

use crate::progress::{Progress, Step};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// One JSON object a line: upstream's fields, `data` and `metadata` as the JSON text
    /// stored (key order and numbers as they are; only whitespace around it and line breaks
    /// in it are left out, which a line cannot hold), and ours (`stream`, `stream_version`)
    /// only where there is a stream, so that a file without streams is exactly upstream's and
    /// streams survive a round trip: export, import and export again give the same bytes.
    #[default]
    Jsonl,
    /// RFC 4180 CSV with upstream's header (`id,version,datetime,user,ip,cmd,data,
    /// correlation_id,causation_id,metadata`), `data` and `metadata` as JSON text.
    Csv,
}

/// Writes the events of `store` that match `filter` to `out` in id order, as `format`; the
/// number of events written. `out` is flushed at the end (wrap a file in a
/// [`std::io::BufWriter`]: events are written one at a time).
///
/// ```
/// # #[cfg(any(feature = "sqlite", feature = "redb"))] {
/// use eventlite::export::{Format, write};
/// use eventlite::{Filter, NewEvent};
///
/// let dir = tempfile::tempdir()?;
/// let store = eventlite::open(dir.path().join("events.db"))?;
/// store.store(NewEvent::new("order_placed").data(&serde_json::json!({"total": 12})))?;
/// let mut file = Vec::new();
/// assert_eq!(write(&store, Filter::default(), Format::Jsonl, &mut file)?, 1);
/// let line: serde_json::Value = serde_json::from_slice(&file)?;
/// assert_eq!((line["cmd"].as_str(), line["data"]["total"].as_u64()), (Some("order_placed"), Some(12)));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write<B: Backend>(
    store: &EventStore<B>,
    filter: Filter,
    format: Format,
    out: impl Write,
) -> Result<u64> {
    write_with(store, filter, format, out, |_| {})
}

/// [`write()`], reporting its progress to `progress` ([`Step::Exporting`], in events, after
/// every batch read). The total is the store's last id when nothing is filtered out, and
/// unknown otherwise.
pub fn write_with<B: Backend>(
    store: &EventStore<B>,
    filter: Filter,
    format: Format,
    mut out: impl Write,
    mut progress: impl FnMut(Progress),
) -> Result<u64> {
    let failed = |e: std::io::Error| eventlite_core::spi::io_error("export", "writing", e);
    let total = if filter == Filter::default() {
        Some(store.last_id()?)
    } else {
        None
    };
    if format == Format::Csv {
        writeln!(
            out,
            "id,version,datetime,user,ip,cmd,data,correlation_id,causation_id,metadata"
        )
        .map_err(failed)?;
    }
    let mut written = 0u64;
    let mut line = Vec::with_capacity(512);
    for batch in store.read_all(StreamOptions::new().filter(filter))? {
        for event in batch? {
            line.clear();
            match format {
                Format::Jsonl => jsonl_line(&event, &mut line)?,
                Format::Csv => csv_row(&event, &mut line),
            }
            line.push(b'\n');
            out.write_all(&line).map_err(failed)?;
            written += 1;
        }
        // Events appended while it runs are written too: past the total read at the start.
        progress(Progress::new(
            Step::Exporting,
            written,
            total.map(|t| t.max(written)),
        ));
    }
    out.flush().map_err(failed)?;
    // The step ends at its total, also when there was nothing to write.
    progress(Progress::new(Step::Exporting, written, Some(written)));
    Ok(written)
}

/// `e` as a JSON Lines line (without its line break), appended to `out`: the fields in
/// upstream's order, laid out as serde_json lays out a struct, with `data` and `metadata` as
/// stored. Stored JSON was checked when it was appended (and its checksum on reading), so it
/// is not parsed again; see [`one_line`] for the whitespace left out.
fn jsonl_line(e: &Event, out: &mut Vec<u8>) -> Result<()> {
    let text = |out: &mut Vec<u8>, s: &str| {
        serde_json::to_writer(&mut *out, s)
            .map_err(|err| Error::encode(format!("event {} as JSON", e.id)).with_source(err))
    };
    out.extend_from_slice(b"{\"id\":");
    number(out, e.id);
    out.extend_from_slice(b",\"version\":");
    number(out, e.version);
    out.extend_from_slice(b",\"datetime\":");
    number(out, e.datetime);
    out.extend_from_slice(b",\"user\":");
    text(out, &e.user)?;
    out.extend_from_slice(b",\"ip\":");
    text(out, &e.ip)?;
    out.extend_from_slice(b",\"cmd\":");
    text(out, &e.cmd)?;
    out.extend_from_slice(b",\"data\":");
    one_line(out, &e.data);
    out.extend_from_slice(b",\"correlation_id\":");
    text(out, &e.correlation_id)?;
    out.extend_from_slice(b",\"causation_id\":");
    match e.causation_id {
        Some(c) => number(out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"metadata\":");
    one_line(out, &e.metadata);
    if let Some(stream) = &e.stream {
        out.extend_from_slice(b",\"stream\":");
        text(out, stream)?;
    }
    if let Some(version) = e.stream_version {
        out.extend_from_slice(b",\"stream_version\":");
        number(out, version);
    }
    out.push(b'}');
    Ok(())
}

/// Appends `n` in decimal to `out` (as serde_json writes numbers: without `fmt`'s machinery).
fn number(out: &mut Vec<u8>, n: impl serde::Serialize) {
    // Writing a number to a Vec cannot fail.
    let _ = serde_json::to_writer(out, &n);
}

/// Appends the JSON text `json` to `out` as one line: without the whitespace around it (as a
/// `RawValue` holds it, so that an import of the line stores these very bytes) and without
/// line breaks (outside strings they are whitespace; a JSON string cannot hold a raw one).
fn one_line(out: &mut Vec<u8>, json: &str) {
    let json = json.trim_matches([' ', '\t', '\n', '\r']);
    if !json.contains(['\n', '\r']) {
        out.extend_from_slice(json.as_bytes());
        return;
    }
    out.extend(json.bytes().filter(|b| *b != b'\n' && *b != b'\r'));
}

/// `e` as a CSV row (without its line break), appended to `out`: fields with a comma, a quote
/// or a line break quoted, quotes doubled.
fn csv_row(e: &Event, out: &mut Vec<u8>) {
    fn field(out: &mut Vec<u8>, s: &str) {
        if s.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(s.as_bytes());
        }
    }
    number(out, e.id);
    out.push(b',');
    number(out, e.version);
    out.push(b',');
    number(out, e.datetime);
    for text in [&e.user, &e.ip, &e.cmd, &e.data, &e.correlation_id] {
        out.push(b',');
        field(out, text);
    }
    out.push(b',');
    if let Some(c) = e.causation_id {
        number(out, c);
    }
    out.push(b',');
    field(out, &e.metadata);
}
