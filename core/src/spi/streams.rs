//! [`StreamVersions`]: the one optimistic-concurrency check every engine runs.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::error::{Error, Result};
use crate::event::ExpectedVersion;
use crate::spi::PendingEvent;

/// The versions of the streams an append transaction writes to, as they stand inside it.
///
/// An engine makes one per transaction, hands it each batch of the transaction in order, and
/// looks up a stream's stored version only the first time the transaction meets it. Each
/// batch is checked as a whole: on a [`Error::Conflict`] nothing of that batch is recorded, so
/// a transaction that commits several callers' batches together (a group commit) can drop the
/// losing batch and go on with the versions as the earlier batches left them.
///
/// ```
/// use eventlite_core::ExpectedVersion;
/// use eventlite_core::spi::{PendingEvent, StreamVersions};
/// let pending = |stream: &str, expected| {
///     let mut event = PendingEvent::new("deposited");
///     event.stream = Some(stream.into());
///     event.expected = expected;
///     event
/// };
/// let stored = |stream: &str| Ok(if stream == "a" { Some(2) } else { None });
/// let mut versions = StreamVersions::new();
/// let first = [pending("a", ExpectedVersion::Exact(2)), pending("b", ExpectedVersion::NoStream)];
/// assert_eq!(versions.check_batch(&first, stored)?, [Some(3), Some(1)]);
/// // A second batch in the same transaction sees the first one's events.
/// let stale = [pending("a", ExpectedVersion::Exact(2))];
/// assert!(versions.check_batch(&stale, stored).is_err());
/// assert_eq!(versions.written().collect::<Vec<_>>().len(), 2);
/// # Ok::<(), eventlite_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct StreamVersions<'a> {
    /// Each stream met so far: its version now, and whether this transaction wrote to it.
    streams: HashMap<&'a str, (Option<u64>, bool)>,
}

impl<'a> StreamVersions<'a> {
    /// No stream met yet.
    pub fn new() -> Self {
        StreamVersions::default()
    }

    /// Checks every expectation in `batch` against its stream's version (counting the batch's
    /// own earlier events and earlier batches of this transaction) and returns the
    /// `stream_version` each event gets: `None` outside a stream, counting from 1 within one.
    /// `stored(stream)` gives a stream's version in the store before the transaction (`None`
    /// when it has no events); it is asked once per stream.
    ///
    /// On a conflict the batch leaves no trace: the versions stay as they were before it.
    pub fn check_batch(
        &mut self,
        batch: &'a [PendingEvent],
        mut stored: impl FnMut(&str) -> Result<Option<u64>>,
    ) -> Result<Vec<Option<u64>>> {
        let mut assigned = Vec::with_capacity(batch.len());
        // This batch's new versions, applied only once the whole batch passed.
        let mut staged: HashMap<&'a str, u64> = HashMap::new();
        for pending in batch {
            let Some(stream) = pending.stream.as_deref() else {
                assigned.push(None);
                continue;
            };
            let current = match staged.get(stream) {
                Some(v) => Some(*v),
                None => match self.streams.entry(stream) {
                    Entry::Occupied(known) => known.get().0,
                    Entry::Vacant(slot) => slot.insert((stored(stream)?, false)).0,
                },
            };
            check(pending.expected, stream, current)?;
            let next = current.unwrap_or(0) + 1;
            staged.insert(stream, next);
            assigned.push(Some(next));
        }
        for (stream, version) in staged {
            self.streams.insert(stream, (Some(version), true));
        }
        Ok(assigned)
    }

    /// The streams this transaction wrote to, with their new last version (for engines that
    /// keep a table of stream heads).
    pub fn written(&self) -> impl Iterator<Item = (&'a str, u64)> + '_ {
        self.streams
            .iter()
            .filter_map(|(stream, (version, written))| {
                Some((*stream, (*written).then_some(*version)??))
            })
    }
}

/// Checks `actual` (a stream's current version, `None` for an empty stream) against
/// `expected`.
fn check(expected: ExpectedVersion, stream: &str, actual: Option<u64>) -> Result<()> {
    let ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual.is_none(),
        ExpectedVersion::Exact(0) => actual.is_none(),
        ExpectedVersion::Exact(n) => actual == Some(n),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Conflict {
            stream: stream.to_owned(),
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(stream: Option<&str>, expected: ExpectedVersion) -> PendingEvent {
        PendingEvent {
            stream: stream.map(str::to_owned),
            expected,
            ..PendingEvent::new("c")
        }
    }

    #[test]
    fn expectations_are_checked_against_the_stored_and_the_batch_versions() -> Result<()> {
        use ExpectedVersion::*;
        let mut asked = Vec::new();
        let mut v = StreamVersions::new();
        let batch = [
            pending(Some("a"), Exact(3)),
            pending(None, Any),
            pending(Some("a"), Exact(4)),
            pending(Some("b"), NoStream),
            pending(Some("b"), Any),
        ];
        let got = v.check_batch(&batch, |s| {
            asked.push(s.to_owned());
            Ok((s == "a").then_some(3))
        })?;
        assert_eq!(got, [Some(4), None, Some(5), Some(1), Some(2)]);
        assert_eq!(asked, ["a", "b"], "each stream looked up once");
        let mut written: Vec<_> = v.written().collect();
        written.sort();
        assert_eq!(written, [("a", 5), ("b", 2)]);
        Ok(())
    }

    #[test]
    fn a_conflicting_batch_leaves_no_trace_for_the_next_one() -> Result<()> {
        use ExpectedVersion::*;
        let mut v = StreamVersions::new();
        let first = [pending(Some("a"), NoStream)];
        v.check_batch(&first, |_| Ok(None))?;
        // Its first event passes, its second conflicts: neither may count.
        let loser = [pending(Some("a"), Exact(1)), pending(Some("a"), Exact(1))];
        match v.check_batch(&loser, |_| Ok(None)) {
            Err(Error::Conflict {
                stream,
                expected: Exact(1),
                actual: Some(2),
            }) => assert_eq!(stream, "a"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        let next = [pending(Some("a"), Exact(1)), pending(Some("c"), NoStream)];
        assert_eq!(v.check_batch(&next, |_| Ok(None))?, [Some(2), Some(1)]);
        // A stream only looked up by a losing batch was not written.
        let mut v = StreamVersions::new();
        let lost = [pending(Some("z"), Exact(9))];
        assert!(v.check_batch(&lost, |_| Ok(None)).is_err());
        assert_eq!(v.written().count(), 0);
        Ok(())
    }

    #[test]
    fn exact_zero_is_an_empty_stream_and_any_always_matches() {
        assert!(check(ExpectedVersion::Any, "s", Some(3)).is_ok());
        assert!(check(ExpectedVersion::NoStream, "s", None).is_ok());
        assert!(check(ExpectedVersion::Exact(3), "s", Some(3)).is_ok());
        assert!(check(ExpectedVersion::Exact(0), "s", None).is_ok());
        assert!(check(ExpectedVersion::Exact(0), "s", Some(1)).is_err());
        assert!(check(ExpectedVersion::NoStream, "s", Some(1)).is_err());
    }
}
