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
}

impl PendingEvent {
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
            version: 2,
            datetime: 7,
            user: "u".into(),
            ip: "i".into(),
            cmd: "c".into(),
            data: "{}".into(),
            correlation_id: "g".into(),
            causation_id: Some(3),
            metadata: "{}".into(),
            stream: stream.map(str::to_owned),
            expected: ExpectedVersion::Any,
        }
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
