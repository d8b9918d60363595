//! Row encoding: one format byte, bincode 2 (standard config), then a CRC-32 (little endian)
//! of the event id followed by everything before it. The checksum is over the stored bytes
//! themselves: one pass over one slice on every read, before decoding, so damaged bytes are
//! never decoded into an event.

use eventlite_core::{Error, Event, PendingEvent, Result, Snapshot};

/// Version of the row layout, first byte of every stored row.
pub(crate) const ROW_FORMAT: u8 = 1;

const CONFIG: bincode::config::Configuration = bincode::config::standard();

// Decoding borrows the texts from the stored bytes and copies each once into its String:
// bincode's owned decode zero-fills every String's buffer before copying into it.
#[derive(bincode::Encode, bincode::BorrowDecode)]
struct RowRef<'a> {
    version: u32,
    datetime: i64,
    user: &'a str,
    ip: &'a str,
    cmd: &'a str,
    data: &'a str,
    correlation_id: &'a str,
    causation_id: Option<u64>,
    metadata: &'a str,
    stream: Option<&'a str>,
    stream_version: Option<u64>,
}

/// Encodes the row of event `id`, with its checksum.
pub(crate) fn encode_row(
    p: &PendingEvent,
    id: u64,
    stream_version: Option<u64>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    buf.clear();
    buf.push(ROW_FORMAT);
    let row = RowRef {
        version: p.version,
        datetime: p.datetime,
        user: &p.user,
        ip: &p.ip,
        cmd: &p.cmd,
        data: &p.data,
        correlation_id: &p.correlation_id,
        causation_id: p.causation_id,
        metadata: &p.metadata,
        stream: p.stream.as_deref(),
        stream_version,
    };
    bincode::encode_into_std_write(&row, buf, CONFIG)
        .map_err(|e| Error::backend("redb", "encoding a row", e))?;
    let sum = checksum(id, buf);
    buf.extend_from_slice(&sum.to_le_bytes());
    Ok(())
}

fn checksum(id: u64, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(bytes);
    h.finalize()
}

pub(crate) fn decode_row(id: u64, stored: &[u8]) -> Result<Event> {
    let split = stored.len().checked_sub(4).filter(|n| *n > 0);
    let Some((bytes, sum)) = split.map(|n| stored.split_at(n)) else {
        return Err(Error::Corrupt(format!("event {id}: short row")));
    };
    let sum = u32::from_le_bytes(
        sum.try_into()
            .map_err(|_| Error::Corrupt(format!("event {id}: short row")))?,
    );
    if checksum(id, bytes) != sum {
        return Err(Error::Corrupt(format!("event {id}: checksum mismatch")));
    }
    let Some((&format, body)) = bytes.split_first() else {
        return Err(Error::Corrupt(format!("event {id}: empty row")));
    };
    if format != ROW_FORMAT {
        return Err(Error::Corrupt(format!(
            "event {id}: unknown row format {format}"
        )));
    }
    let (row, used): (RowRef<'_>, usize) = bincode::borrow_decode_from_slice(body, CONFIG)
        .map_err(|e| Error::Corrupt(format!("event {id}: {e}")))?;
    if used != body.len() {
        return Err(Error::Corrupt(format!("event {id}: trailing bytes")));
    }
    Ok(Event {
        id,
        version: row.version,
        datetime: row.datetime,
        user: row.user.to_owned(),
        ip: row.ip.to_owned(),
        cmd: row.cmd.to_owned(),
        data: row.data.to_owned(),
        correlation_id: row.correlation_id.to_owned(),
        causation_id: row.causation_id,
        metadata: row.metadata.to_owned(),
        stream: row.stream.map(str::to_owned),
        stream_version: row.stream_version,
    })
}

pub(crate) fn encode_snapshot(s: &Snapshot) -> Result<Vec<u8>> {
    bincode::encode_to_vec((&s.state, &s.metadata, s.created_at), CONFIG)
        .map_err(|e| Error::backend("redb", "encoding a snapshot", e))
}

pub(crate) fn decode_snapshot(name: &str, event_id: u64, bytes: &[u8]) -> Result<Snapshot> {
    let ((state, metadata, created_at), _): ((Vec<u8>, String, i64), usize) =
        bincode::decode_from_slice(bytes, CONFIG)
            .map_err(|e| Error::Corrupt(format!("snapshot {name:?}@{event_id}: {e}")))?;
    Ok(Snapshot {
        name: name.to_owned(),
        event_id,
        state,
        metadata,
        created_at,
    })
}
