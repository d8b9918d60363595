//! Row encoding: one format byte, bincode 2 (standard config), then the row's CRC-32 (little
//! endian; [`row_checksum`] of the event id followed by everything before it). The checksum is over the stored bytes
//! themselves: one pass over one slice on every read, before decoding, so damaged bytes are
//! never decoded into an event.

use eventlite_core::spi::{EventFields, PendingEvent, row_checksum};
use eventlite_core::{Error, Event, Result, Snapshot};

/// Version of the row layout, first byte of every stored row.
pub(crate) const ROW_FORMAT: u8 = 1;

const CONFIG: bincode::config::Configuration = bincode::config::standard();

// Decoding borrows the texts from the stored bytes and copies each once into its String:
// bincode's owned decode zero-fills every String's buffer before copying into it. The texts
// are bytes here (bincode writes `&str` and `&[u8]` alike: a length, then the bytes) so that
// UTF-8 is checked on the copy, which the allocator has aligned, rather than on the
// unaligned page bytes: std's check goes a word at a time only from an aligned address.
#[derive(bincode::Encode, bincode::BorrowDecode)]
struct RowRef<'a> {
    version: u32,
    datetime: i64,
    user: &'a [u8],
    ip: &'a [u8],
    cmd: &'a [u8],
    data: &'a [u8],
    correlation_id: &'a [u8],
    causation_id: Option<u64>,
    metadata: &'a [u8],
    stream: Option<&'a [u8]>,
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
        user: p.user.as_bytes(),
        ip: p.ip.as_bytes(),
        cmd: p.cmd.as_bytes(),
        data: p.data.as_bytes(),
        correlation_id: p.correlation_id.as_bytes(),
        causation_id: p.causation_id,
        metadata: p.metadata.as_bytes(),
        stream: p.stream.as_deref().map(str::as_bytes),
        stream_version,
    };
    bincode::encode_into_std_write(&row, buf, CONFIG)
        .map_err(|e| Error::encode(format!("event {id}: {e}")).with_source(e))?;
    let sum = row_checksum(id, buf);
    buf.extend_from_slice(&sum.to_le_bytes());
    Ok(())
}

/// The checked, decoded row of event `id`, borrowing its texts from `stored`.
fn verified_row(id: u64, stored: &[u8]) -> Result<RowRef<'_>> {
    let split = stored.len().checked_sub(4).filter(|n| *n > 0);
    let Some((bytes, sum)) = split.map(|n| stored.split_at(n)) else {
        return Err(Error::corrupt(format!("event {id}: short row")));
    };
    let sum = u32::from_le_bytes(
        sum.try_into()
            .map_err(|_| Error::corrupt(format!("event {id}: short row")))?,
    );
    if row_checksum(id, bytes) != sum {
        return Err(Error::corrupt(format!("event {id}: checksum mismatch")));
    }
    let Some((&format, body)) = bytes.split_first() else {
        return Err(Error::corrupt(format!("event {id}: empty row")));
    };
    if format != ROW_FORMAT {
        return Err(Error::corrupt(format!(
            "event {id}: unknown row format {format}"
        )));
    }
    let (row, used): (RowRef<'_>, usize) = bincode::borrow_decode_from_slice(body, CONFIG)
        .map_err(|e| Error::corrupt(format!("event {id}: {e}")).with_source(e))?;
    if used != body.len() {
        return Err(Error::corrupt(format!("event {id}: trailing bytes")));
    }
    Ok(row)
}

/// The stored row of event `id`, checked, as an event.
pub(crate) fn decode_row(id: u64, stored: &[u8]) -> Result<Event> {
    fields(id, &verified_row(id, stored)?).to_event()
}

/// [`decode_row`] into `event`, reusing its strings' buffers. On an error `event` is left
/// partly overwritten.
pub(crate) fn decode_row_into(id: u64, stored: &[u8], event: &mut Event) -> Result<()> {
    fields(id, &verified_row(id, stored)?).write_into(event)
}

fn fields<'a>(id: u64, row: &RowRef<'a>) -> EventFields<'a, [u8]> {
    EventFields {
        id,
        version: row.version,
        datetime: row.datetime,
        user: row.user,
        ip: row.ip,
        cmd: row.cmd,
        data: row.data,
        correlation_id: row.correlation_id,
        causation_id: row.causation_id,
        metadata: row.metadata,
        stream: row.stream,
        stream_version: row.stream_version,
    }
}

pub(crate) fn encode_snapshot(s: &Snapshot) -> Result<Vec<u8>> {
    bincode::encode_to_vec((&s.state, &s.metadata, s.created_at), CONFIG).map_err(|e| {
        Error::encode(format!("snapshot {:?}@{}: {e}", s.name, s.event_id)).with_source(e)
    })
}

pub(crate) fn decode_snapshot(name: &str, event_id: u64, bytes: &[u8]) -> Result<Snapshot> {
    let ((state, metadata, created_at), _): ((Vec<u8>, String, i64), usize) =
        bincode::decode_from_slice(bytes, CONFIG).map_err(|e| {
            Error::corrupt(format!("snapshot {name:?}@{event_id}: {e}")).with_source(e)
        })?;
    Ok(Snapshot {
        name: name.to_owned(),
        event_id,
        state,
        metadata,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row as earlier versions declared it, with texts as `&str`.
    #[derive(bincode::Encode)]
    struct StrRow<'a> {
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

    const DATA: &str = r#"{"total":12.5,"note":"naïve ☕"}"#;

    fn str_row(user: &str) -> StrRow<'_> {
        StrRow {
            version: 3,
            datetime: 1_700_000_000_123,
            user,
            ip: "10.0.0.1",
            cmd: "order_placed",
            data: DATA,
            correlation_id: "corr-1",
            causation_id: Some(7),
            metadata: "{}",
            stream: Some("order-9"),
            stream_version: Some(5),
        }
    }

    /// A stored row, as the `&str` declaration wrote it, with its checksum.
    fn stored(row: &StrRow<'_>, id: u64) -> Vec<u8> {
        let mut buf = vec![ROW_FORMAT];
        bincode::encode_into_std_write(row, &mut buf, CONFIG).expect("encodes");
        let sum = row_checksum(id, &buf);
        buf.extend_from_slice(&sum.to_le_bytes());
        buf
    }

    #[test]
    fn rows_are_byte_for_byte_what_the_str_layout_wrote() {
        let s = str_row("zoë");
        let bytes = RowRef {
            version: s.version,
            datetime: s.datetime,
            user: s.user.as_bytes(),
            ip: s.ip.as_bytes(),
            cmd: s.cmd.as_bytes(),
            data: s.data.as_bytes(),
            correlation_id: s.correlation_id.as_bytes(),
            causation_id: s.causation_id,
            metadata: s.metadata.as_bytes(),
            stream: s.stream.map(str::as_bytes),
            stream_version: s.stream_version,
        };
        assert_eq!(
            bincode::encode_to_vec(&bytes, CONFIG).expect("encodes"),
            bincode::encode_to_vec(&s, CONFIG).expect("encodes"),
        );

        let e = decode_row(42, &stored(&s, 42)).expect("decodes");
        assert_eq!(
            (e.id, e.user.as_str(), e.data.as_str(), e.stream.as_deref()),
            (42, "zoë", DATA, Some("order-9"))
        );
        assert_eq!((e.causation_id, e.stream_version), (Some(7), Some(5)));
    }

    #[test]
    fn invalid_utf8_under_a_valid_checksum_is_corrupt() {
        let mut row = stored(&str_row("AB"), 1);
        // A lone continuation byte and a dangling lead byte in place of the user, checksummed
        // again so that only the UTF-8 check can catch them.
        let at = row
            .windows(2)
            .position(|w| w == b"AB")
            .expect("user bytes present");
        row[at..at + 2].copy_from_slice(&[0x80, 0xC3]);
        let body = row.len() - 4;
        let sum = row_checksum(1, &row[..body]);
        row[body..].copy_from_slice(&sum.to_le_bytes());
        match decode_row(1, &row) {
            Err(Error::Corrupt { message, .. }) => {
                assert!(message.contains("user is not UTF-8"), "{message}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
