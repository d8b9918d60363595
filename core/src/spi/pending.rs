//! [`PendingEvent`]: an event as an engine receives it to append.

use crate::event::{Event, ExpectedVersion};
use crate::spi::EventFields;

/// A validated event with everything but its id and stream version, as
/// [`EventLog::append`](crate::spi::EventLog::append) receives it. Built by
/// [`crate::EventStore`]; engines need not validate it again.
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
    /// The check to run against `stream`'s version inside the append transaction (see
    /// [`StreamVersions`](crate::spi::StreamVersions)).
    pub expected: ExpectedVersion,
    // Pads PendingEvent to the size of NewEvent and Event, so that a batch's vector becomes
    // the next stage's vector in place (NewEvent -> PendingEvent -> Event) through std's
    // in-place `collect`; a large bulk append otherwise allocates and page-faults in two more
    // vectors as large as itself. std does not promise the reuse: the tests below check that
    // it happens, so that losing it fails loudly rather than slows silently.
    pub(crate) _layout: u64,
}

impl PendingEvent {
    /// A pending event of type `cmd` with everything else empty or default (version 1, data
    /// and metadata `{}`, no stream): for engines' own tests, which then set the fields they
    /// need.
    pub fn new(cmd: impl Into<String>) -> Self {
        PendingEvent {
            version: 1,
            datetime: 0,
            user: String::new(),
            ip: String::new(),
            cmd: cmd.into(),
            data: "{}".into(),
            correlation_id: String::new(),
            causation_id: None,
            metadata: "{}".into(),
            stream: None,
            expected: ExpectedVersion::Any,
            _layout: 0,
        }
    }

    /// The events a batch became once stored with ids `first..` and `stream_versions` (one per
    /// event, in order).
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

    /// Turns the pending event into the stored one, once the engine assigned its positions.
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

    /// The fields the event will have once stored with this id and stream version, borrowed:
    /// what an engine writes, and checksums with [`EventFields::checksum`].
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
    pub(crate) fn content_len(&self) -> usize {
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

    fn pending(stream: Option<&str>) -> PendingEvent {
        PendingEvent {
            stream: stream.map(str::to_owned),
            ..PendingEvent::new("c")
        }
    }

    #[test]
    fn batch_stages_have_one_size_so_vectors_convert_in_place() {
        use crate::event::NewEvent;
        use std::mem::{align_of, size_of};
        assert_eq!(size_of::<NewEvent>(), size_of::<PendingEvent>());
        assert_eq!(size_of::<PendingEvent>(), size_of::<Event>());
        assert_eq!(align_of::<NewEvent>(), align_of::<PendingEvent>());
        assert_eq!(align_of::<PendingEvent>(), align_of::<Event>());
    }

    #[test]
    fn stored_events_reuse_the_pending_batch_allocation() {
        let batch: Vec<PendingEvent> = (0..1_000).map(|_| pending(None)).collect();
        let at = batch.as_ptr().cast::<u8>();
        let events = PendingEvent::into_events(batch, 1, &[]);
        assert_eq!(
            events.as_ptr().cast::<u8>(),
            at,
            "std stopped collecting in place"
        );
    }

    #[test]
    fn into_events_numbers_the_batch_and_keeps_its_order() {
        let events = PendingEvent::into_events(
            vec![pending(None), pending(Some("s"))],
            41,
            &[None, Some(7)],
        );
        assert_eq!(
            events
                .iter()
                .map(|e| (e.id, e.stream_version, e.stream.as_deref()))
                .collect::<Vec<_>>(),
            [(41, None, None), (42, Some(7), Some("s"))]
        );
    }
}
