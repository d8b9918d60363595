//! [`WaitHints`]: what an engine's recent commits learned about waiting records, so that the
//! look after an append can be skipped when the append's own transaction saw no record
//! waiting on its events.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::event::Event;

/// How many commits a [`WaitHints`] remembers.
const REMEMBERED: usize = 64;

/// The recent commits of one engine handle, each with whether any open waiting record had a
/// key (cmd, correlation id) of its events when it committed.
///
/// Sound when parks are serialized with appends (the same write lock, or the same counter
/// row): a record parked before a commit is seen by its transaction, and a record parked
/// after it looks at the log itself when it is parked (see
/// [`EventStore::store_when`](crate::EventStore::store_when)). So a commit that saw no such
/// record leaves nothing to release for its events.
#[derive(Debug, Default)]
pub struct WaitHints {
    recent: Mutex<VecDeque<(u64, u64, bool)>>,
}

impl WaitHints {
    /// Empty: every look is made.
    pub fn new() -> Self {
        WaitHints::default()
    }

    /// Notes a commit of the events with ids `first..=last`, and whether its transaction saw
    /// an open record with a key of one of them.
    pub fn note(&self, first: u64, last: u64, may_match: bool) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back((first, last, may_match));
    }

    /// Whether `events` (one append's, so one commit's) were committed by a transaction that
    /// saw no record waiting on them: then there is nothing to look for.
    pub fn none_waiting(&self, events: &[Event]) -> bool {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return true;
        };
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .rev()
            .find(|(from, to, _)| *from <= first.id && last.id <= *to)
            .is_some_and(|(_, _, may_match)| !may_match)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spi::PendingEvent;

    fn events(ids: std::ops::RangeInclusive<u64>) -> Vec<Event> {
        let first = *ids.start();
        let n = ids.count();
        PendingEvent::into_events(
            (0..n).map(|_| PendingEvent::new("e")).collect(),
            first,
            &vec![None; n],
        )
    }

    #[test]
    fn only_a_commit_known_to_have_seen_no_record_skips_the_look() {
        let hints = WaitHints::new();
        assert!(
            !hints.none_waiting(&events(1..=3)),
            "unknown commits are looked at"
        );
        hints.note(1, 5, false);
        hints.note(6, 6, true);
        assert!(hints.none_waiting(&events(1..=3)));
        assert!(hints.none_waiting(&events(4..=5)));
        assert!(!hints.none_waiting(&events(6..=6)));
        assert!(!hints.none_waiting(&events(5..=6)), "spanning two commits");
        for i in 0..REMEMBERED as u64 {
            hints.note(100 + i, 100 + i, false);
        }
        assert!(
            !hints.none_waiting(&events(1..=3)),
            "forgotten commits are looked at"
        );
        assert!(hints.none_waiting(&events(
            100 + REMEMBERED as u64 - 1..=100 + REMEMBERED as u64 - 1
        )));
    }
}
