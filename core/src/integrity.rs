//! Cheap checks of an engine's answers against the log's contract, on every read.
//!
//! Checksums catch a damaged row, but not a genuine row in the wrong place: a page of the
//! file copied over another answers with real events where others belong, and an index that
//! disagrees with its table leaves events out. The contract makes much of that visible at
//! the cost of a comparison per event: ids are gap-free from 1, an answer holds only events
//! its query selects, in the query's order, and a stream's versions count up from 1. What
//! these checks cannot see (a count that is off, an event an index lost) is left to
//! [`EventStore::verify`](crate::EventStore::verify).

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::query::{Filter, Order, Query};

fn damaged(what: String) -> Error {
    Error::corrupt(format!(
        "{what}: the store is damaged (EventStore::verify lists what it finds)"
    ))
}

/// Whether `filter` selects by id alone: its answer in id order is a run of consecutive ids.
pub(crate) fn selects_by_id_only(filter: &Filter) -> bool {
    filter.stream.is_none() && selects_by_id_and_stream(filter)
}

/// Whether `filter` sets nothing but an id range and a stream.
fn selects_by_id_and_stream(filter: &Filter) -> bool {
    let Filter {
        correlation_id,
        causation_id,
        cmd,
        user,
        datetime_from,
        datetime_to,
        version,
        stream: _,
        id_from: _,
        id_to: _,
    } = filter;
    correlation_id.is_none()
        && causation_id.is_none()
        && cmd.is_none()
        && user.is_none()
        && datetime_from.is_none()
        && datetime_to.is_none()
        && version.is_none()
}

/// Checks an engine's answer to `query`.
pub(crate) fn check_answer(query: &Query, events: &[Event]) -> Result<()> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(());
    };
    if selects_by_id_only(&query.filter) && query.order != Order::DatetimeDesc {
        // Consecutive ids between a first and a last that the query admits: every event in
        // between is admitted and in order too, so one comparison per event is enough.
        admitted(query, first)?;
        admitted(query, last)?;
        return check_ids(query, events);
    }
    let mut previous: Option<&Event> = None;
    for event in events {
        admitted(query, event)?;
        if let Some(p) = previous
            && query.order.compare(p, event) != Ordering::Less
        {
            return Err(damaged(format!(
                "event {} follows event {} out of {:?} order",
                event.id, p.id, query.order
            )));
        }
        previous = Some(event);
    }
    if is_one_stream(&query.filter) && query.order == Order::IdAsc {
        // Version v is the stream's v-th event: an offset skips as many versions.
        if query.after.is_none() {
            check_version(first, query.offset.saturating_add(1))?;
        }
        for pair in events.windows(2) {
            check_version(
                &pair[1],
                pair[0].stream_version.unwrap_or(0).saturating_add(1),
            )?;
        }
    }
    Ok(())
}

fn admitted(query: &Query, event: &Event) -> Result<()> {
    if query.admits(event) {
        return Ok(());
    }
    Err(damaged(format!(
        "event {} was answered for {:?}, which does not select it",
        event.id, query.filter
    )))
}

/// An answer by id alone, in id order: gap-free, and ascending from the start of the range.
fn check_ids(query: &Query, events: &[Event]) -> Result<()> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    // Ascending, the first id is known: the start of the range (every id from 1 up to the
    // last exists, and the answer is not empty). Descending, it depends on the last id.
    if query.order == Order::IdAsc {
        let want = query
            .after
            .map_or(1, |c| c.id.saturating_add(1))
            .max(query.filter.id_from.unwrap_or(1))
            .saturating_add(query.offset);
        if first.id != want {
            return Err(damaged(format!(
                "the answer starts at event {} where event {want} belongs",
                first.id
            )));
        }
    }
    let step: i128 = if query.order == Order::IdAsc { 1 } else { -1 };
    for pair in events.windows(2) {
        if i128::from(pair[1].id) - i128::from(pair[0].id) != step {
            return Err(damaged(format!(
                "event {} follows event {}, but ids are gap-free",
                pair[1].id, pair[0].id
            )));
        }
    }
    Ok(())
}

/// A filter of one stream and nothing else (an id range from 1 aside): its versions count up
/// from 1 in id order.
pub(crate) fn is_one_stream(filter: &Filter) -> bool {
    filter.stream.is_some()
        && selects_by_id_and_stream(filter)
        && filter.id_from.is_none_or(|f| f <= 1)
}

fn check_version(event: &Event, want: u64) -> Result<()> {
    if event.stream_version == Some(want) {
        return Ok(());
    }
    Err(damaged(format!(
        "event {} has version {:?} of its stream where version {want} belongs",
        event.id, event.stream_version
    )))
}

/// The event `id` from `backend`, checked: an answer with another id is damage, and so is no
/// answer for an id at or below the last one (ids are gap-free and never deleted).
pub(crate) fn get_checked<B: crate::spi::EventLog + ?Sized>(
    backend: &B,
    id: u64,
) -> Result<Option<Event>> {
    let found = backend.get(id)?;
    match found {
        Some(e) if e.id == id => Ok(Some(e)),
        Some(e) => Err(damaged(format!("event {} was answered for id {id}", e.id))),
        None if id == 0 || id > backend.last_id()? => Ok(None),
        // It may have been appended between the two reads: look once more.
        None => match backend.get(id)? {
            Some(e) if e.id == id => Ok(Some(e)),
            _ => Err(damaged(format!(
                "event {id} is missing, though ids are gap-free up to the last"
            ))),
        },
    }
}

/// Whether a read of `query` must reach the last id stored before it began: an ascending
/// read by id alone without a limit.
pub(crate) fn reads_to_the_end(query: &Query) -> bool {
    query.order == Order::IdAsc && query.limit.is_none() && selects_by_id_only(&query.filter)
}

/// The last id that a read of `query` to the end must reach, when `last_id` was the last
/// before it began; 0 when its range holds nothing.
pub(crate) fn must_reach(query: &Query, last_id: u64) -> u64 {
    let start = query
        .after
        .map_or(1, |c| c.id.saturating_add(1))
        .max(query.filter.id_from.unwrap_or(1))
        .saturating_add(query.offset);
    let end = last_id.min(query.filter.id_to.unwrap_or(u64::MAX));
    if end >= start { end } else { 0 }
}

/// A whole-log read that ended at `reached` although events up to `must_reach` were stored
/// before it began.
pub(crate) fn check_end(reached: u64, must_reach: u64) -> Result<()> {
    if reached >= must_reach {
        return Ok(());
    }
    Err(damaged(format!(
        "the log reads to event {reached}, but event {must_reach} was stored before the read began"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Cursor;

    fn event(id: u64) -> Event {
        let mut e = crate::spi::PendingEvent::new("c").into_event(id, None);
        e.datetime = 1_000 + id as i64;
        e
    }

    fn ids(ids: &[u64]) -> Vec<Event> {
        ids.iter().map(|&i| event(i)).collect()
    }

    #[test]
    fn a_whole_log_read_must_be_gap_free_from_its_start() {
        let all = Query::new(Filter::all(), Order::IdAsc);
        assert!(check_answer(&all, &ids(&[1, 2, 3])).is_ok());
        assert!(check_answer(&all, &ids(&[])).is_ok());
        for bad in [&[2, 3][..], &[1, 3], &[1, 2, 2], &[1, 609, 610]] {
            let err = check_answer(&all, &ids(bad)).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{bad:?}: {err}");
        }
        let after = Query::new(Filter::all(), Order::IdAsc).after(Cursor {
            id: 10,
            datetime: 0,
        });
        assert!(check_answer(&after, &ids(&[11, 12])).is_ok());
        assert!(check_answer(&after, &ids(&[12, 13])).is_err());
        let desc = Query::new(
            Filter {
                id_to: Some(5),
                ..Filter::default()
            },
            Order::IdDesc,
        );
        assert!(check_answer(&desc, &ids(&[5, 4, 3])).is_ok());
        assert!(
            check_answer(&desc, &ids(&[2, 1])).is_ok(),
            "the log may end below id_to"
        );
        assert!(check_answer(&desc, &ids(&[5, 3])).is_err());
    }

    #[test]
    fn a_read_to_the_end_must_reach_the_last_id_of_its_range() {
        let range = |from, to| Query {
            filter: Filter {
                id_from: from,
                id_to: to,
                ..Filter::default()
            },
            ..Query::default()
        };
        assert!(reads_to_the_end(&Query::default()));
        assert!(!reads_to_the_end(&Query::default().limit(5)));
        assert!(!reads_to_the_end(&Query::new(
            Filter::cmd("c"),
            Order::IdAsc
        )));
        assert_eq!(must_reach(&Query::default(), 10), 10);
        assert_eq!(must_reach(&range(Some(3), Some(5)), 10), 5);
        assert_eq!(must_reach(&range(Some(20), None), 10), 0);
        assert_eq!(must_reach(&Query::default().offset(9), 10), 10);
        assert_eq!(must_reach(&Query::default().offset(10), 10), 0);
        assert!(check_end(9, 10).is_err() && check_end(10, 10).is_ok() && check_end(0, 0).is_ok());
    }

    #[test]
    fn an_event_the_filter_does_not_select_is_damage() {
        let mut e = event(7);
        e.cmd = "other".into();
        let q = Query::new(Filter::cmd("c"), Order::IdAsc);
        assert!(check_answer(&q, &[event(3), event(7)]).is_ok());
        assert!(matches!(
            check_answer(&q, &[event(3), e]),
            Err(Error::Corrupt { .. })
        ));
        // Out of order.
        assert!(check_answer(&q, &[event(7), event(3)]).is_err());
    }

    #[test]
    fn stream_versions_count_up_from_one() {
        let versioned = |pairs: &[(u64, u64)]| -> Vec<Event> {
            pairs
                .iter()
                .map(|&(id, v)| {
                    let mut e = event(id);
                    e.stream = Some("s".into());
                    e.stream_version = Some(v);
                    e
                })
                .collect()
        };
        let q = Query::new(Filter::stream("s"), Order::IdAsc);
        assert!(check_answer(&q, &versioned(&[(4, 1), (9, 2), (20, 3)])).is_ok());
        assert!(check_answer(&q, &versioned(&[(4, 1), (20, 3)])).is_err());
        assert!(check_answer(&q, &versioned(&[(9, 2), (20, 3)])).is_err());
        let later = q.clone().after(Cursor { id: 5, datetime: 0 });
        assert!(check_answer(&later, &versioned(&[(9, 2), (20, 3)])).is_ok());
        // From a version (an offset): the answer starts at that version.
        let from_three = q.clone().offset(2);
        assert!(check_answer(&from_three, &versioned(&[(20, 3), (31, 4)])).is_ok());
        assert!(check_answer(&from_three, &versioned(&[(31, 4)])).is_err());
        assert!(check_answer(&from_three, &versioned(&[(9, 2), (20, 3)])).is_err());
    }
}
