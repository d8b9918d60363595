//! An event's fields as an engine reads or writes them, their checksums, and the one way of
//! turning them into an [`Event`].

use crate::error::{Error, Result};
use crate::event::Event;

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for [u8] {}
}

/// The text type of [`EventFields`]: `str` when the engine has already checked UTF-8 (SQLite
/// hands out checked text), `[u8]` when it has not (a decoded blob), in which case the text is
/// checked as it is copied into the event's own buffer.
pub trait Text: sealed::Sealed {
    /// The text's bytes.
    fn bytes(&self) -> &[u8];
    /// Copies the text into `to`, reusing its buffer; `false`, with `to` emptied, when the
    /// bytes are not UTF-8.
    fn copy_into(&self, to: &mut String) -> bool;
    /// The text as an owned string, `None` when the bytes are not UTF-8.
    fn to_string_checked(&self) -> Option<String>;
}

impl Text for str {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    fn copy_into(&self, to: &mut String) -> bool {
        to.clear();
        to.push_str(self);
        true
    }

    fn to_string_checked(&self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl Text for [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }

    // Checked after the copy: the allocator aligns the destination, and std checks UTF-8 a
    // word at a time from an aligned address (a blob's bytes sit at any offset in a page).
    fn copy_into(&self, to: &mut String) -> bool {
        let mut buf = std::mem::take(to).into_bytes();
        buf.clear();
        buf.extend_from_slice(self);
        match String::from_utf8(buf) {
            Ok(s) => {
                *to = s;
                true
            }
            Err(_) => false,
        }
    }

    fn to_string_checked(&self) -> Option<String> {
        String::from_utf8(self.to_vec()).ok()
    }
}

/// An event's fields, borrowed from wherever an engine keeps them: what its checksum is
/// computed over, and what [`EventFields::to_event`] and [`EventFields::write_into`] copy.
///
/// `T` is `str` for checked text and `[u8]` for bytes still to be checked (see [`Text`]).
#[derive(Debug, PartialEq, Eq)]
pub struct EventFields<'a, T: ?Sized + Text = str> {
    /// See [`Event::id`].
    pub id: u64,
    /// See [`Event::version`].
    pub version: u32,
    /// See [`Event::datetime`].
    pub datetime: i64,
    /// See [`Event::user`].
    pub user: &'a T,
    /// See [`Event::ip`].
    pub ip: &'a T,
    /// See [`Event::cmd`].
    pub cmd: &'a T,
    /// See [`Event::data`].
    pub data: &'a T,
    /// See [`Event::correlation_id`].
    pub correlation_id: &'a T,
    /// See [`Event::causation_id`].
    pub causation_id: Option<u64>,
    /// See [`Event::metadata`].
    pub metadata: &'a T,
    /// See [`Event::stream`].
    pub stream: Option<&'a T>,
    /// See [`Event::stream_version`].
    pub stream_version: Option<u64>,
}

impl<T: ?Sized + Text> Clone for EventFields<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized + Text> Copy for EventFields<'_, T> {}

impl<'a> From<&'a Event> for EventFields<'a> {
    fn from(e: &'a Event) -> Self {
        EventFields {
            id: e.id,
            version: e.version,
            datetime: e.datetime,
            user: &e.user,
            ip: &e.ip,
            cmd: &e.cmd,
            data: &e.data,
            correlation_id: &e.correlation_id,
            causation_id: e.causation_id,
            metadata: &e.metadata,
            stream: e.stream.as_deref(),
            stream_version: e.stream_version,
        }
    }
}

impl<T: ?Sized + Text> EventFields<'_, T> {
    /// Checks `stored` against [`EventFields::checksum`]: a mismatch is [`Error::Corrupt`].
    pub fn verify(&self, stored: u32) -> Result<()> {
        if self.checksum() == stored {
            Ok(())
        } else {
            Err(Error::corrupt(format!(
                "event {}: checksum mismatch",
                self.id
            )))
        }
    }

    fn not_utf8(&self, field: &str) -> Error {
        Error::corrupt(format!("event {}: {field} is not UTF-8", self.id))
    }

    /// An owned event with these fields. Text that is not UTF-8 is [`Error::Corrupt`].
    pub fn to_event(&self) -> Result<Event> {
        let text = |t: &T, field: &str| t.to_string_checked().ok_or_else(|| self.not_utf8(field));
        Ok(Event {
            id: self.id,
            version: self.version,
            datetime: self.datetime,
            user: text(self.user, "user")?,
            ip: text(self.ip, "ip")?,
            cmd: text(self.cmd, "cmd")?,
            data: text(self.data, "data")?,
            correlation_id: text(self.correlation_id, "correlation_id")?,
            causation_id: self.causation_id,
            metadata: text(self.metadata, "metadata")?,
            stream: self.stream.map(|s| text(s, "stream")).transpose()?,
            stream_version: self.stream_version,
        })
    }

    /// Overwrites `event` with these fields, copying the texts into its strings' existing
    /// buffers: a reader that refills the same events batch after batch (a replay) allocates
    /// nothing per event once the buffers are large enough. Text that is not UTF-8 is
    /// [`Error::Corrupt`], and leaves `event` partly overwritten.
    pub fn write_into(&self, event: &mut Event) -> Result<()> {
        let set = |from: &T, to: &mut String, field: &str| {
            if from.copy_into(to) {
                Ok(())
            } else {
                Err(self.not_utf8(field))
            }
        };
        event.id = self.id;
        event.version = self.version;
        event.datetime = self.datetime;
        set(self.user, &mut event.user, "user")?;
        set(self.ip, &mut event.ip, "ip")?;
        set(self.cmd, &mut event.cmd, "cmd")?;
        set(self.data, &mut event.data, "data")?;
        set(
            self.correlation_id,
            &mut event.correlation_id,
            "correlation_id",
        )?;
        event.causation_id = self.causation_id;
        set(self.metadata, &mut event.metadata, "metadata")?;
        match (&mut event.stream, self.stream) {
            (Some(to), Some(from)) => set(from, to, "stream")?,
            (to, from) => *to = from.map(|s| self.text_or_err(s)).transpose()?,
        }
        event.stream_version = self.stream_version;
        Ok(())
    }

    fn text_or_err(&self, t: &T) -> Result<String> {
        t.to_string_checked().ok_or_else(|| self.not_utf8("stream"))
    }

    /// CRC-32 of the canonical encoding: a fixed header (id, version, datetime, the byte length
    /// of each text field, then causation id, stream length and stream version, each behind a
    /// presence byte; integers little endian), then the text fields' bytes in declaration
    /// order. For engines that store an event's fields apart (SQLite's columns); engines that
    /// store one encoded blob per event use [`row_checksum`] over the blob instead.
    pub fn checksum(&self) -> u32 {
        // An absent stream adds no bytes; the header tells it from an empty one.
        let all = [
            self.user.bytes(),
            self.ip.bytes(),
            self.cmd.bytes(),
            self.data.bytes(),
            self.correlation_id.bytes(),
            self.metadata.bytes(),
            self.stream.map_or(&[][..], Text::bytes),
        ];
        let header = self.header();
        let body = all.iter().map(|t| t.len()).sum::<usize>();
        // crc32fast hashes short slices a byte at a time; one contiguous buffer takes its SIMD
        // path. Same bytes, same CRC. Two buffer sizes, so that a typical event does not zero
        // a kilobyte first.
        match HEADER + body {
            0..=256 => contiguous_crc::<256>(&header, all),
            257..=1024 => contiguous_crc::<1024>(&header, all),
            _ => {
                let mut h = crc32fast::Hasher::new();
                h.update(&header);
                for t in all {
                    h.update(t);
                }
                h.finalize()
            }
        }
    }

    /// The fixed part of the canonical encoding, at fixed offsets.
    fn header(&self) -> [u8; HEADER] {
        let texts = [
            self.user,
            self.ip,
            self.cmd,
            self.data,
            self.correlation_id,
            self.metadata,
        ];
        let mut h = [0u8; HEADER];
        h[0..8].copy_from_slice(&self.id.to_le_bytes());
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[12..20].copy_from_slice(&self.datetime.to_le_bytes());
        for (i, t) in texts.iter().enumerate() {
            h[20 + 8 * i..28 + 8 * i].copy_from_slice(&(t.bytes().len() as u64).to_le_bytes());
        }
        let options = [
            self.causation_id,
            self.stream.map(|s| s.bytes().len() as u64),
            self.stream_version,
        ];
        for (i, v) in options.into_iter().enumerate() {
            let at = 68 + 9 * i;
            h[at] = u8::from(v.is_some());
            h[at + 1..at + 9].copy_from_slice(&v.unwrap_or(0).to_le_bytes());
        }
        h
    }
}

/// Bytes in the canonical encoding's header: id (8), version (4), datetime (8), six text
/// lengths (48), three presence-tagged options (27).
const HEADER: usize = 95;

/// The CRC of `header` then `texts`, copied into one buffer of `N` bytes (which they fit).
fn contiguous_crc<const N: usize>(header: &[u8; HEADER], texts: [&[u8]; 7]) -> u32 {
    let mut buf = [0u8; N];
    buf[..HEADER].copy_from_slice(header);
    let mut at = HEADER;
    for t in texts {
        buf[at..at + t.len()].copy_from_slice(t);
        at += t.len();
    }
    crc32fast::hash(&buf[..at])
}

/// CRC-32 of an event's id (little endian) followed by `row`, the bytes an engine stored for
/// it: for engines that keep each event as one encoded blob (redb), checked over the stored
/// bytes before anything is decoded from them. The id is included so that a row copied under
/// another key is caught too.
pub fn row_checksum(id: u64, row: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(row);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spi::PendingEvent;

    fn sample() -> Event {
        PendingEvent {
            version: 2,
            datetime: 7,
            user: "u".into(),
            ip: "i".into(),
            correlation_id: "g".into(),
            causation_id: Some(3),
            stream: Some("s".into()),
            ..PendingEvent::new("c")
        }
        .into_event(9, Some(1))
    }

    fn empty() -> Event {
        Event {
            id: 0,
            version: 0,
            datetime: 0,
            user: String::new(),
            ip: String::new(),
            cmd: String::new(),
            data: String::new(),
            correlation_id: String::new(),
            causation_id: None,
            metadata: String::new(),
            stream: None,
            stream_version: None,
        }
    }

    fn sum(e: &Event) -> u32 {
        EventFields::from(e).checksum()
    }

    /// The pending form of a stored event.
    fn pending_of(e: &Event) -> PendingEvent {
        PendingEvent {
            version: e.version,
            datetime: e.datetime,
            user: e.user.clone(),
            ip: e.ip.clone(),
            data: e.data.clone(),
            correlation_id: e.correlation_id.clone(),
            causation_id: e.causation_id,
            metadata: e.metadata.clone(),
            stream: e.stream.clone(),
            ..PendingEvent::new(e.cmd.clone())
        }
    }

    #[test]
    fn checksum_covers_every_field_and_matches_the_pending_form() {
        let e = sample();
        assert_eq!(pending_of(&e).fields(9, Some(1)).checksum(), sum(&e));
        type Change = Box<dyn Fn(&mut Event)>;
        let changes: Vec<Change> = vec![
            Box::new(|e| e.id += 1),
            Box::new(|e| e.version += 1),
            Box::new(|e| e.datetime += 1),
            Box::new(|e| e.user.push('x')),
            Box::new(|e| e.ip.push('x')),
            Box::new(|e| e.cmd.push('x')),
            Box::new(|e| e.data = "[]".into()),
            Box::new(|e| e.correlation_id.push('x')),
            Box::new(|e| e.causation_id = None),
            Box::new(|e| e.metadata = "{ }".into()),
            Box::new(|e| e.stream = None),
            Box::new(|e| e.stream_version = Some(2)),
            // Moving a byte between adjacent strings changes the checksum (length prefixes).
            Box::new(|e| {
                e.user = "ui".into();
                e.ip = String::new();
            }),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = sample();
            change(&mut changed);
            assert_ne!(sum(&changed), sum(&e), "change {i} went unnoticed");
            assert!(matches!(
                EventFields::from(&changed).verify(sum(&e)),
                Err(Error::Corrupt { .. })
            ));
        }
        assert!(EventFields::from(&sample()).verify(sum(&e)).is_ok());
    }

    /// The documented encoding, built the slow way: stored checksums depend on it.
    fn canonical(e: &Event) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(e.id.to_le_bytes());
        b.extend(e.version.to_le_bytes());
        b.extend(e.datetime.to_le_bytes());
        let texts = [
            &e.user,
            &e.ip,
            &e.cmd,
            &e.data,
            &e.correlation_id,
            &e.metadata,
        ];
        for t in texts {
            b.extend((t.len() as u64).to_le_bytes());
        }
        for v in [
            e.causation_id,
            e.stream.as_ref().map(|s| s.len() as u64),
            e.stream_version,
        ] {
            b.push(u8::from(v.is_some()));
            b.extend(v.unwrap_or(0).to_le_bytes());
        }
        for t in texts.into_iter().chain(&e.stream) {
            b.extend(t.as_bytes());
        }
        b
    }

    #[test]
    fn checksum_is_the_crc_of_the_canonical_encoding_for_small_and_large_events() {
        let small = sample();
        let mut large = sample();
        large.data = format!("\"{}\"", "x".repeat(5_000));
        let mut no_options = sample();
        no_options.causation_id = None;
        no_options.stream = None;
        no_options.stream_version = None;
        // Every size across both buffer tiers and into the streaming path.
        let sized = (0..1_100).map(|n| {
            let mut e = sample();
            e.data = format!("\"{}\"", "y".repeat(n));
            e
        });
        for e in [small, large, no_options].into_iter().chain(sized) {
            assert_eq!(sum(&e), crc32fast::hash(&canonical(&e)), "{}", e.data.len());
        }
    }

    fn as_bytes<'a>(f: EventFields<'a>) -> EventFields<'a, [u8]> {
        EventFields {
            id: f.id,
            version: f.version,
            datetime: f.datetime,
            user: f.user.as_bytes(),
            ip: f.ip.as_bytes(),
            cmd: f.cmd.as_bytes(),
            data: f.data.as_bytes(),
            correlation_id: f.correlation_id.as_bytes(),
            causation_id: f.causation_id,
            metadata: f.metadata.as_bytes(),
            stream: f.stream.map(str::as_bytes),
            stream_version: f.stream_version,
        }
    }

    #[test]
    fn text_and_byte_fields_give_one_event_and_one_checksum() -> Result<()> {
        let mut e = sample();
        e.user = "zoë ☕".into();
        let fields = EventFields::from(&e);
        let bytes = as_bytes(fields);
        assert_eq!(bytes.checksum(), fields.checksum());
        assert_eq!(bytes.to_event()?, e);
        // In place, over events with more, fewer and other fields than the source.
        let mut other = sample();
        other.stream = None;
        other.data = "x".repeat(100);
        for mut slot in [other, empty()] {
            bytes.write_into(&mut slot)?;
            assert_eq!(slot, e);
        }
        let mut no_stream = e.clone();
        no_stream.stream = None;
        let mut slot = sample();
        as_bytes(EventFields::from(&no_stream)).write_into(&mut slot)?;
        assert_eq!(slot, no_stream);
        Ok(())
    }

    #[test]
    fn bytes_that_are_not_utf8_are_corrupt() {
        let e = sample();
        let mut bytes = as_bytes(EventFields::from(&e));
        let bad = [0x80u8, 0xC3];
        bytes.cmd = &bad;
        match bytes.to_event() {
            Err(Error::Corrupt { message, .. }) => assert!(message.contains("cmd is not UTF-8")),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let mut slot = sample();
        assert!(matches!(
            bytes.write_into(&mut slot),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn row_checksum_covers_the_id_and_every_byte() {
        let row = b"row bytes";
        assert_ne!(row_checksum(1, row), row_checksum(2, row));
        assert_ne!(row_checksum(1, row), row_checksum(1, b"row bytez"));
        assert_eq!(row_checksum(1, row), {
            let mut all = 1u64.to_le_bytes().to_vec();
            all.extend_from_slice(row);
            crc32fast::hash(&all)
        });
    }
}
