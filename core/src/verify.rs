//! [`EventStore::verify`](crate::EventStore::verify): a full check of a store, reported rather
//! than raised.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::event::Event;
use crate::query::{Filter, Order, Query};
use crate::spi::{EventLog, Maintenance};

/// At most this many problems are listed; the rest are counted in
/// [`VerifyReport::unlisted`].
pub const MAX_LISTED_PROBLEMS: usize = 1_000;

/// What [`EventStore::verify`](crate::EventStore::verify) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The last id the store reports.
    pub last_id: u64,
    /// Events read and checked.
    pub events_checked: u64,
    /// What is wrong, in the order found (at most [`MAX_LISTED_PROBLEMS`]). An `Err` from
    /// `verify` means the events could not be read at all; a failure of the engine's own check
    /// is listed here.
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    pub unlisted: u64,
}

impl VerifyReport {
    /// Whether the store passed every check.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn add(&mut self, kind: ProblemKind, event_id: Option<u64>, detail: impl Into<String>) {
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(Problem {
                kind,
                event_id,
                detail: detail.into(),
            });
        } else {
            self.unlisted += 1;
        }
    }
}

/// One problem [`EventStore::verify`](crate::EventStore::verify) found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The event it concerns, when it concerns one.
    pub event_id: Option<u64>,
    /// A description.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.event_id {
            Some(id) => write!(f, "{:?}, event {id}: {}", self.kind, self.detail),
            None => write!(f, "{:?}: {}", self.kind, self.detail),
        }
    }
}

/// The kinds of [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// An event cannot be read: its checksum fails or it does not decode.
    Unreadable,
    /// An id at or below the last is missing (ids are gap-free from 1).
    Missing,
    /// The engine answered an event where another belongs.
    Misplaced,
    /// A stream's versions do not count up from 1 in id order.
    StreamVersion,
    /// A causation id that names no earlier event.
    Causation,
    /// The engine's own check failed: a damaged page, or an index that disagrees with the
    /// events (an entry missing, or one too many).
    Engine,
}

/// Ids read per query.
const CHUNK: u64 = 1_000;

pub(crate) fn verify<B: EventLog + Maintenance + ?Sized>(backend: &B) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        last_id: backend.last_id()?,
        ..VerifyReport::default()
    };
    let mut streams: HashMap<String, u64> = HashMap::new();
    let mut absent: HashSet<u64> = HashSet::new();
    let mut causes: Vec<(u64, u64)> = Vec::new();
    let mut check = |e: &Event, report: &mut VerifyReport| {
        report.events_checked += 1;
        if let (Some(stream), Some(version)) = (&e.stream, e.stream_version) {
            let last = streams.entry(stream.clone()).or_insert(0);
            if version != *last + 1 {
                report.add(
                    ProblemKind::StreamVersion,
                    Some(e.id),
                    format!(
                        "version {version} of stream {stream:?} follows version {}",
                        *last
                    ),
                );
            }
            *last = version;
        } else if e.stream.is_some() != e.stream_version.is_some() {
            report.add(
                ProblemKind::StreamVersion,
                Some(e.id),
                "a stream without a version, or a version without a stream",
            );
        }
        if let Some(cause) = e.causation_id {
            causes.push((e.id, cause));
        }
    };
    let mut start = 1;
    while start <= report.last_id {
        let end = start.saturating_add(CHUNK - 1).min(report.last_id);
        let range = Query::new(
            Filter {
                id_from: Some(start),
                id_to: Some(end),
                ..Filter::default()
            },
            Order::IdAsc,
        );
        let read = backend.query(&range);
        match read {
            Ok(events)
                if events.len() as u64 == end - start + 1
                    && events.iter().zip(start..).all(|(e, id)| e.id == id) =>
            {
                events.iter().for_each(|e| check(e, &mut report));
            }
            // Something in this range is wrong: look at each id on its own.
            _ => {
                for id in start..=end {
                    match backend.get(id) {
                        Ok(Some(e)) if e.id == id => check(&e, &mut report),
                        Ok(Some(e)) => {
                            absent.insert(id);
                            report.add(
                                ProblemKind::Misplaced,
                                Some(id),
                                format!("event {} was answered in its place", e.id),
                            );
                        }
                        Ok(None) => {
                            absent.insert(id);
                            report.add(ProblemKind::Missing, Some(id), "no event with this id");
                        }
                        Err(err) => {
                            absent.insert(id);
                            report.add(ProblemKind::Unreadable, Some(id), err.to_string());
                        }
                    }
                }
            }
        }
        start = end + 1;
    }
    for (id, cause) in causes {
        if cause >= id || cause == 0 || absent.contains(&cause) {
            report.add(
                ProblemKind::Causation,
                Some(id),
                format!("caused by event {cause}, which is not an earlier event of the store"),
            );
        }
    }
    // An engine check that cannot run on a damaged file is a finding, not a reason to lose
    // the report.
    match backend.check_storage() {
        Ok(problems) => problems
            .into_iter()
            .for_each(|p| report.add(ProblemKind::Engine, None, p)),
        Err(e) => report.add(
            ProblemKind::Engine,
            None,
            format!("the engine's check failed: {e}"),
        ),
    }
    Ok(report)
}
