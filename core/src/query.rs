//! Queries: what to select ([`Filter`]), in which order ([`Order`]), which page ([`Query`]).

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::event::Event;

/// Which events a query selects. Every set field must match (AND); an empty filter selects
/// every event. Ranges are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Events of this transaction group.
    pub correlation_id: Option<String>,
    /// Events directly caused by this event.
    pub causation_id: Option<u64>,
    /// Events of this command.
    pub cmd: Option<String>,
    /// Events of this user.
    pub user: Option<String>,
    /// Events at or after this time (ms since the epoch).
    pub datetime_from: Option<i64>,
    /// Events at or before this time (ms since the epoch).
    pub datetime_to: Option<i64>,
    /// Events whose data has this schema version.
    pub version: Option<u32>,
    /// Events of this aggregate stream.
    pub stream: Option<String>,
    /// Events with an id at or above this.
    pub id_from: Option<u64>,
    /// Events with an id at or below this.
    pub id_to: Option<u64>,
}

impl Filter {
    /// A filter that selects every event.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Events of one transaction group.
    pub fn correlation(id: impl Into<String>) -> Self {
        Filter {
            correlation_id: Some(id.into()),
            ..Filter::default()
        }
    }

    /// Events caused by `id`.
    pub fn children_of(id: u64) -> Self {
        Filter {
            causation_id: Some(id),
            ..Filter::default()
        }
    }

    /// Events of one command.
    pub fn cmd(cmd: impl Into<String>) -> Self {
        Filter {
            cmd: Some(cmd.into()),
            ..Filter::default()
        }
    }

    /// Events of one user.
    pub fn user(user: impl Into<String>) -> Self {
        Filter {
            user: Some(user.into()),
            ..Filter::default()
        }
    }

    /// Events with `from <= datetime <= to`.
    pub fn time_range(from: i64, to: i64) -> Self {
        Filter {
            datetime_from: Some(from),
            datetime_to: Some(to),
            ..Filter::default()
        }
    }

    /// Events of one stream.
    pub fn stream(stream: impl Into<String>) -> Self {
        Filter {
            stream: Some(stream.into()),
            ..Filter::default()
        }
    }

    /// Whether `event` is selected. The reference semantics every engine must reproduce.
    pub fn matches(&self, event: &Event) -> bool {
        fn eq<T: PartialEq + ?Sized>(want: Option<&T>, have: &T) -> bool {
            want.is_none_or(|w| w == have)
        }
        eq(
            self.correlation_id.as_deref(),
            event.correlation_id.as_str(),
        ) && (self.causation_id.is_none() || self.causation_id == event.causation_id)
            && eq(self.cmd.as_deref(), event.cmd.as_str())
            && eq(self.user.as_deref(), event.user.as_str())
            && self.datetime_from.is_none_or(|f| event.datetime >= f)
            && self.datetime_to.is_none_or(|t| event.datetime <= t)
            && eq(self.version.as_ref(), &event.version)
            && (self.stream.is_none() || self.stream == event.stream)
            && self.id_from.is_none_or(|f| event.id >= f)
            && self.id_to.is_none_or(|t| event.id <= t)
    }

    /// True when the ranges cannot match anything (`from > to`); engines may short-cut.
    pub fn is_empty_range(&self) -> bool {
        matches!((self.datetime_from, self.datetime_to), (Some(f), Some(t)) if f > t)
            || matches!((self.id_from, self.id_to), (Some(f), Some(t)) if f > t)
    }
}

/// Result order. Every order is total (ties broken by id), so pages are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Oldest first by position.
    #[default]
    IdAsc,
    /// Newest first by position.
    IdDesc,
    /// Newest first by `datetime`, ties by id descending.
    DatetimeDesc,
}

impl Order {
    /// Compares two events in this order.
    pub fn compare(self, a: &Event, b: &Event) -> Ordering {
        self.compare_keys((a.datetime, a.id), (b.datetime, b.id))
    }

    /// Compares two `(datetime, id)` keys in this order.
    pub fn compare_keys(self, a: (i64, u64), b: (i64, u64)) -> Ordering {
        match self {
            Order::IdAsc => a.1.cmp(&b.1),
            Order::IdDesc => b.1.cmp(&a.1),
            Order::DatetimeDesc => b.cmp(&a),
        }
    }

    /// Whether an event with key `(datetime, id)` comes strictly after `cursor` in this order.
    pub fn is_after(self, key: (i64, u64), cursor: Cursor) -> bool {
        self.compare_keys(key, (cursor.datetime, cursor.id)) == Ordering::Greater
    }
}

/// A keyset position: "continue after the event with this id and datetime". Deep pages by
/// cursor cost what the first page costs.
///
/// Cursors print as `datetime:id` and parse back, so they can travel through URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// Id of the last event seen.
    pub id: u64,
    /// Datetime of the last event seen.
    pub datetime: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.datetime, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument(format!("malformed cursor {s:?}"));
        let (dt, id) = s.rsplit_once(':').ok_or_else(bad)?;
        Ok(Cursor {
            datetime: dt.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// A complete query as a backend runs it: filter, order, then `after` (keyset), then
/// `offset`, then `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Query {
    /// Which events.
    pub filter: Filter,
    /// In which order.
    pub order: Order,
    /// Start strictly after this position (in `order`).
    pub after: Option<Cursor>,
    /// Skip this many events (after `after`).
    pub offset: u64,
    /// Return at most this many events (`None`: all).
    pub limit: Option<u64>,
}

impl Query {
    /// Every event selected by `filter`, in `order`.
    pub fn new(filter: Filter, order: Order) -> Self {
        Query {
            filter,
            order,
            ..Query::default()
        }
    }

    /// Sets the limit.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Sets the offset.
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Sets the keyset cursor.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Whether `event` passes the filter and the cursor (offset and limit not considered).
    pub fn admits(&self, event: &Event) -> bool {
        self.filter.matches(event)
            && self
                .after
                .is_none_or(|c| self.order.is_after((event.datetime, event.id), c))
    }
}

/// Which page of a paginated query to return. Defaults to the first 100 events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    /// Events per page (at least 1).
    pub limit: u64,
    /// Where the page starts.
    pub start: PageStart,
}

/// Where a [`Page`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageStart {
    /// Skip this many events.
    Offset(u64),
    /// Continue after this cursor (from a previous page's `next_cursor`).
    After(Cursor),
}

impl Default for Page {
    fn default() -> Self {
        Page::first(100)
    }
}

impl Page {
    /// The first `limit` events.
    pub fn first(limit: u64) -> Self {
        Page {
            limit,
            start: PageStart::Offset(0),
        }
    }

    /// `limit` events after skipping `offset`.
    pub fn offset(limit: u64, offset: u64) -> Self {
        Page {
            limit,
            start: PageStart::Offset(offset),
        }
    }

    /// `limit` events after `cursor`.
    pub fn after(limit: u64, cursor: Cursor) -> Self {
        Page {
            limit,
            start: PageStart::After(cursor),
        }
    }
}

/// One page of a paginated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events of this page, in the query's order.
    pub events: Vec<Event>,
    /// How many events the filter selects in all (not only after the cursor).
    pub total_count: u64,
    /// Whether another page follows this one.
    pub has_more: bool,
    /// The offset of the next page, when `has_more` (offset paging only).
    pub next_offset: Option<u64>,
    /// The cursor of the next page, when `has_more` (works with either kind of paging).
    pub next_cursor: Option<Cursor>,
}
