//! Events as stored ([`Event`]), as written by a caller ([`NewEvent`]) and as handed to a
//! backend ([`PendingEvent`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::query::Cursor;

/// A stored event. Immutable once stored: every read hands out its own copy (or a shared
/// `Arc` from the cache), never a handle into the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// Global position, assigned by the backend: strictly increasing, gap-free, from 1.
    pub id: u64,
    /// Schema version of `data` (1 for new events); drives migrations.
    pub version: u32,
    /// Milliseconds since the Unix epoch, from the store's clock when it was stored.
    pub datetime: i64,
    /// Who caused the event (may be empty).
    pub user: String,
    /// From where (may be empty).
    pub ip: String,
    /// The command / event type. Never empty.
    pub cmd: String,
    /// The payload, as JSON text.
    pub data: String,
    /// The transaction group this event belongs to.
    pub correlation_id: String,
    /// The event that caused this one.
    pub causation_id: Option<u64>,
    /// Free-form JSON object, as text.
    pub metadata: String,
    /// The aggregate stream, when the event was appended to one.
    pub stream: Option<String>,
    /// Position within `stream` (1 for its first event).
    pub stream_version: Option<u64>,
}

impl Event {
    /// Deserialises the payload into `T`.
    ///
    /// ```
    /// # use eventlite_core::Event;
    /// # let event = Event { id: 1, version: 1, datetime: 0, user: String::new(),
    /// #   ip: String::new(), cmd: "deposit".into(), data: r#"{"amount":5}"#.into(),
    /// #   correlation_id: "c".into(), causation_id: None, metadata: "{}".into(),
    /// #   stream: None, stream_version: None };
    /// #[derive(serde::Deserialize)]
    /// struct Deposit { amount: u64 }
    /// let deposit: Deposit = event.data()?;
    /// assert_eq!(deposit.amount, 5);
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn data<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.data)
            .map_err(|e| Error::Decode(format!("data of event {}: {e}", self.id)))
    }

    /// The payload as a dynamic JSON value.
    pub fn data_value(&self) -> Result<serde_json::Value> {
        self.data()
    }

    /// Deserialises the metadata into `T`.
    pub fn metadata<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.metadata)
            .map_err(|e| Error::Decode(format!("metadata of event {}: {e}", self.id)))
    }

    /// CRC-32 of the event's canonical encoding (every field, length-prefixed, in declaration
    /// order). Backends store it with the row and check it on every read, so a flipped bit in
    /// any field is reported as [`Error::Corrupt`] instead of being returned.
    pub fn checksum(&self) -> u32 {
        self.fields().checksum()
    }

    /// Overwrites this event with `fields`, copying the texts into the strings' existing
    /// buffers: a reader that refills the same events batch after batch (a replay) allocates
    /// nothing per event once the buffers are large enough.
    pub fn assign(&mut self, fields: EventFields<'_>) {
        fn set(to: &mut String, from: &str) {
            to.clear();
            to.push_str(from);
        }
        self.id = fields.id;
        self.version = fields.version;
        self.datetime = fields.datetime;
        set(&mut self.user, fields.user);
        set(&mut self.ip, fields.ip);
        set(&mut self.cmd, fields.cmd);
        set(&mut self.data, fields.data);
        set(&mut self.correlation_id, fields.correlation_id);
        self.causation_id = fields.causation_id;
        set(&mut self.metadata, fields.metadata);
        match (&mut self.stream, fields.stream) {
            (Some(to), Some(from)) => set(to, from),
            (to, from) => *to = from.map(str::to_owned),
        }
        self.stream_version = fields.stream_version;
    }

    /// The event's fields, borrowed.
    pub fn fields(&self) -> EventFields<'_> {
        EventFields {
            id: self.id,
            version: self.version,
            datetime: self.datetime,
            user: &self.user,
            ip: &self.ip,
            cmd: &self.cmd,
            data: &self.data,
            correlation_id: &self.correlation_id,
            causation_id: self.causation_id,
            metadata: &self.metadata,
            stream: self.stream.as_deref(),
            stream_version: self.stream_version,
        }
    }

    /// Checks `stored` against [`Event::checksum`].
    pub fn verify(self, stored: u32) -> Result<Event> {
        self.fields().verify(stored)?;
        Ok(self)
    }

    /// A keyset cursor pointing just past this event (for any [`crate::Order`]).
    pub fn cursor(&self) -> Cursor {
        Cursor {
            id: self.id,
            datetime: self.datetime,
        }
    }
}

/// An event's fields, borrowed: what its checksum is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFields<'a> {
    /// See [`Event::id`].
    pub id: u64,
    /// See [`Event::version`].
    pub version: u32,
    /// See [`Event::datetime`].
    pub datetime: i64,
    /// See [`Event::user`].
    pub user: &'a str,
    /// See [`Event::ip`].
    pub ip: &'a str,
    /// See [`Event::cmd`].
    pub cmd: &'a str,
    /// See [`Event::data`].
    pub data: &'a str,
    /// See [`Event::correlation_id`].
    pub correlation_id: &'a str,
    /// See [`Event::causation_id`].
    pub causation_id: Option<u64>,
    /// See [`Event::metadata`].
    pub metadata: &'a str,
    /// See [`Event::stream`].
    pub stream: Option<&'a str>,
    /// See [`Event::stream_version`].
    pub stream_version: Option<u64>,
}

impl EventFields<'_> {
    /// Checks `stored` against [`EventFields::checksum`]: a mismatch is [`Error::Corrupt`].
    pub fn verify(&self, stored: u32) -> Result<()> {
        if self.checksum() == stored {
            Ok(())
        } else {
            Err(Error::Corrupt(format!(
                "event {}: checksum mismatch",
                self.id
            )))
        }
    }

    /// An owned event with these fields.
    pub fn to_event(&self) -> Event {
        Event {
            id: self.id,
            version: self.version,
            datetime: self.datetime,
            user: self.user.to_owned(),
            ip: self.ip.to_owned(),
            cmd: self.cmd.to_owned(),
            data: self.data.to_owned(),
            correlation_id: self.correlation_id.to_owned(),
            causation_id: self.causation_id,
            metadata: self.metadata.to_owned(),
            stream: self.stream.map(str::to_owned),
            stream_version: self.stream_version,
        }
    }

    /// CRC-32 of the canonical encoding: a fixed header (id, version, datetime, the byte length
    /// of each text field, then causation id, stream length and stream version, each behind a
    /// presence byte; integers little endian), then the text fields' bytes in declaration
    /// order. One hasher update per field keeps it cheap on every read.
    pub fn checksum(&self) -> u32 {
        // The body: the texts, then the stream's (an absent stream adds no bytes; the header
        // tells it from an empty one).
        let all = [
            self.user,
            self.ip,
            self.cmd,
            self.data,
            self.correlation_id,
            self.metadata,
            self.stream.unwrap_or(""),
        ];
        let header = self.header();
        let body = all.iter().map(|t| t.len()).sum::<usize>();
        // crc32fast hashes short slices a byte at a time; one contiguous buffer takes its SIMD
        // path, about a third of the instructions for a typical event. Same bytes, same CRC.
        // Two buffer sizes, so that a typical event does not zero a kilobyte first.
        match HEADER + body {
            0..=256 => contiguous_crc::<256>(&header, all),
            257..=1024 => contiguous_crc::<1024>(&header, all),
            _ => {
                let mut h = crc32fast::Hasher::new();
                h.update(&header);
                for t in all {
                    h.update(t.as_bytes());
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
            h[20 + 8 * i..28 + 8 * i].copy_from_slice(&(t.len() as u64).to_le_bytes());
        }
        let options = [
            self.causation_id,
            self.stream.map(|s| s.len() as u64),
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
fn contiguous_crc<const N: usize>(header: &[u8; HEADER], texts: [&str; 7]) -> u32 {
    let mut buf = [0u8; N];
    buf[..HEADER].copy_from_slice(header);
    let mut at = HEADER;
    for t in texts {
        buf[at..at + t.len()].copy_from_slice(t.as_bytes());
        at += t.len();
    }
    crc32fast::hash(&buf[..at])
}

/// What a writer expects of a stream before its append (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpectedVersion {
    /// No check: append at whatever version the stream has.
    #[default]
    Any,
    /// The stream must have no events yet.
    NoStream,
    /// The stream's last event must have exactly this `stream_version` (versions start at 1,
    /// so `Exact(0)` never matches).
    Exact(u64),
}

impl ExpectedVersion {
    /// Checks `actual` (the stream's current version, `None` for an empty stream) against this
    /// expectation. Every backend calls this inside its append transaction.
    pub fn check(self, stream: &str, actual: Option<u64>) -> Result<()> {
        let ok = match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(n) => actual == Some(n),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Conflict {
                stream: stream.to_owned(),
                expected: self,
                actual,
            })
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// An event to be stored, built by the caller.
///
/// ```
/// use eventlite_core::{NewEvent, ExpectedVersion};
/// let event = NewEvent::new("deposit")
///     .data(&serde_json::json!({ "amount": 10 }))
///     .user("alice")
///     .stream("account-1", ExpectedVersion::NoStream);
/// assert_eq!(event.cmd(), "deposit");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub(crate) cmd: String,
    pub(crate) data: std::result::Result<String, String>,
    /// Whether `data` came from serde_json (valid by construction: no need to parse it again).
    pub(crate) data_serialized: bool,
    pub(crate) user: String,
    pub(crate) ip: String,
    pub(crate) version: u32,
    pub(crate) correlation_id: Option<String>,
    pub(crate) causation_id: Option<u64>,
    pub(crate) metadata: std::result::Result<String, String>,
    /// Whether `metadata` came from serde_json (valid JSON; only its kind needs checking).
    pub(crate) metadata_serialized: bool,
    pub(crate) stream: Option<(String, ExpectedVersion)>,
}

impl NewEvent {
    /// A new event of type `cmd`, with data `{}`, version 1 and empty user and ip.
    pub fn new(cmd: impl Into<String>) -> Self {
        NewEvent {
            cmd: cmd.into(),
            data: Ok("{}".to_owned()),
            data_serialized: true,
            user: String::new(),
            ip: String::new(),
            version: 1,
            correlation_id: None,
            causation_id: None,
            metadata: Ok("{}".to_owned()),
            metadata_serialized: true,
            stream: None,
        }
    }

    /// Sets the payload from any serialisable value. A value that cannot be serialised to
    /// JSON makes the store call fail with [`Error::InvalidEvent`].
    pub fn data<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.data = serde_json::to_string(data).map_err(|e| e.to_string());
        self.data_serialized = true;
        self
    }

    /// Sets the payload from JSON text, stored byte for byte once validated.
    pub fn data_json(mut self, json: impl Into<String>) -> Self {
        self.data = Ok(json.into());
        self.data_serialized = false;
        self
    }

    /// Sets who caused the event.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Sets where the event came from.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = ip.into();
        self
    }

    /// Sets the schema version of the data (must be at least 1).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Puts the event into an existing transaction group.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Names the event that caused this one. Without an explicit correlation id, the event
    /// joins its parent's transaction group.
    pub fn causation_id(mut self, id: u64) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the metadata from a serialisable value, which must serialise to a JSON object.
    pub fn metadata<T: Serialize + ?Sized>(mut self, metadata: &T) -> Self {
        self.metadata = serde_json::to_string(metadata).map_err(|e| e.to_string());
        self.metadata_serialized = true;
        self
    }

    /// Sets the metadata from JSON text (must be an object).
    pub fn metadata_json(mut self, json: impl Into<String>) -> Self {
        self.metadata = Ok(json.into());
        self.metadata_serialized = false;
        self
    }

    /// Appends to an aggregate stream, checking `expected` atomically with the append.
    pub fn stream(mut self, stream: impl Into<String>, expected: ExpectedVersion) -> Self {
        self.stream = Some((stream.into(), expected));
        self
    }

    /// The command.
    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// The causation id, if any.
    pub fn get_causation_id(&self) -> Option<u64> {
        self.causation_id
    }
}

/// A validated event with everything but its id and stream version, as a [`crate::Backend`]
/// receives it. Built by [`crate::EventStore`]; backends need not validate it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// See [`Event::version`].
    pub version: u32,
    /// See [`Event::datetime`].
    pub datetime: i64,
    /// See [`Event::user`].
    pub user: String,
    /// See [`Event::ip`].
    pub ip: String,
    /// See [`Event::cmd`].
    pub cmd: String,
    /// See [`Event::data`].
    pub data: String,
    /// See [`Event::correlation_id`].
    pub correlation_id: String,
    /// See [`Event::causation_id`].
    pub causation_id: Option<u64>,
    /// See [`Event::metadata`].
    pub metadata: String,
    /// The stream to append to, if any.
    pub stream: Option<String>,
    /// The check to run against `stream`'s version inside the append transaction.
    pub expected: ExpectedVersion,
    // Pads PendingEvent to the size of NewEvent and Event, so that a batch's vector becomes
    // the next stage's vector in place (NewEvent -> PendingEvent -> Event): a 100,000-event
    // bulk append otherwise allocates, and page-faults in, two more 20 MB vectors.
    pub(crate) _layout: u64,
}

impl PendingEvent {
    /// The events a batch became once stored with ids `first..` and `stream_versions` (one per
    /// event, in order), reusing the batch's allocation.
    pub fn into_events(
        batch: Vec<PendingEvent>,
        first: u64,
        stream_versions: &[Option<u64>],
    ) -> Vec<Event> {
        batch
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let sv = stream_versions.get(i).copied().flatten();
                p.into_event(first + i as u64, sv)
            })
            .collect()
    }

    /// Turns the pending event into the stored one, once the backend assigned its positions.
    pub fn into_event(self, id: u64, stream_version: Option<u64>) -> Event {
        Event {
            id,
            version: self.version,
            datetime: self.datetime,
            user: self.user,
            ip: self.ip,
            cmd: self.cmd,
            data: self.data,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            metadata: self.metadata,
            stream: self.stream,
            stream_version,
        }
    }

    /// The checksum the event will have once stored with this id and stream version.
    pub fn checksum(&self, id: u64, stream_version: Option<u64>) -> u32 {
        self.fields(id, stream_version).checksum()
    }

    /// The fields the event will have once stored with this id and stream version, borrowed.
    pub fn fields(&self, id: u64, stream_version: Option<u64>) -> EventFields<'_> {
        EventFields {
            id,
            version: self.version,
            datetime: self.datetime,
            user: &self.user,
            ip: &self.ip,
            cmd: &self.cmd,
            data: &self.data,
            correlation_id: &self.correlation_id,
            causation_id: self.causation_id,
            metadata: &self.metadata,
            stream: self.stream.as_deref(),
            stream_version,
        }
    }

    /// Bytes of caller-supplied content: what the store's size limit counts.
    pub fn content_len(&self) -> usize {
        self.user.len()
            + self.ip.len()
            + self.cmd.len()
            + self.data.len()
            + self.correlation_id.len()
            + self.metadata.len()
            + self.stream.as_ref().map_or(0, String::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        PendingEvent {
            version: 2,
            datetime: 7,
            user: "u".into(),
            ip: "i".into(),
            cmd: "c".into(),
            data: "{}".into(),
            correlation_id: "g".into(),
            causation_id: Some(3),
            metadata: "{}".into(),
            stream: Some("s".into()),
            expected: ExpectedVersion::Any,
            _layout: 0,
        }
        .into_event(9, Some(1))
    }

    /// The pending form of a stored event.
    fn pending_of(e: &Event) -> PendingEvent {
        PendingEvent {
            version: e.version,
            datetime: e.datetime,
            user: e.user.clone(),
            ip: e.ip.clone(),
            cmd: e.cmd.clone(),
            data: e.data.clone(),
            correlation_id: e.correlation_id.clone(),
            causation_id: e.causation_id,
            metadata: e.metadata.clone(),
            stream: e.stream.clone(),
            expected: ExpectedVersion::Any,
            _layout: 0,
        }
    }

    #[test]
    fn checksum_covers_every_field_and_matches_the_pending_form() {
        let e = sample();
        assert_eq!(pending_of(&e).checksum(9, Some(1)), e.checksum());
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
            assert_ne!(
                changed.checksum(),
                e.checksum(),
                "change {i} went unnoticed"
            );
            assert!(matches!(
                changed.verify(e.checksum()),
                Err(Error::Corrupt(_))
            ));
        }
        assert!(sample().verify(e.checksum()).is_ok());
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
            assert_eq!(
                e.checksum(),
                crc32fast::hash(&canonical(&e)),
                "{}",
                e.data.len()
            );
        }
    }

    #[test]
    fn batch_stages_have_one_size_so_vectors_convert_in_place() {
        use std::mem::{align_of, size_of};
        assert_eq!(size_of::<NewEvent>(), size_of::<PendingEvent>());
        assert_eq!(size_of::<PendingEvent>(), size_of::<Event>());
        assert_eq!(align_of::<NewEvent>(), align_of::<PendingEvent>());
        assert_eq!(align_of::<PendingEvent>(), align_of::<Event>());
    }

    #[test]
    fn into_events_numbers_the_batch_and_keeps_its_order() {
        let mut a = sample();
        a.stream = None;
        let b = sample();
        let events =
            PendingEvent::into_events(vec![pending_of(&a), pending_of(&b)], 41, &[None, Some(7)]);
        assert_eq!(
            events
                .iter()
                .map(|e| (e.id, e.stream_version))
                .collect::<Vec<_>>(),
            [(41, None), (42, Some(7))]
        );
        assert_eq!(
            (events[0].stream.as_deref(), events[1].stream.as_deref()),
            (None, Some("s"))
        );
    }

    #[test]
    fn expected_version_checks() {
        assert!(ExpectedVersion::Any.check("s", Some(3)).is_ok());
        assert!(ExpectedVersion::NoStream.check("s", None).is_ok());
        assert!(ExpectedVersion::Exact(3).check("s", Some(3)).is_ok());
        assert!(matches!(
            ExpectedVersion::Exact(2).check("s", Some(3)),
            Err(Error::Conflict {
                actual: Some(3),
                ..
            })
        ));
        assert!(ExpectedVersion::Exact(0).check("s", None).is_err());
    }
}
