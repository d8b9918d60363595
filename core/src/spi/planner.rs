//! The planner for engines without one of their own: which index serves a filter, and the
//! plan `explain` reports for it.

use crate::index::{IndexConfig, IndexName, QueryPlan};
use crate::query::{Cursor, Filter, Order, Query};

/// The index an engine without its own planner should use for `filter`: the most selective
/// enabled one. A composite that covers two filter fields beats a single one, an equality
/// beats a range, and `None` means a scan (of the id range, if the filter has one).
pub fn choose_index(indexes: &IndexConfig, filter: &Filter) -> Option<IndexName> {
    let corr = filter.correlation_id.is_some();
    let cmd = filter.cmd.is_some();
    let user = filter.user.is_some();
    let time = filter.datetime_from.is_some() || filter.datetime_to.is_some();
    let both_times = filter.datetime_from.is_some() && filter.datetime_to.is_some();
    let score = |name: IndexName| -> Option<u32> {
        match name {
            IndexName::CorrelationCmd if corr && cmd => Some(100),
            IndexName::UserDatetime if user && time => Some(90),
            IndexName::CausationId if filter.causation_id.is_some() => Some(80),
            IndexName::CorrelationId if corr => Some(70),
            IndexName::CorrelationCmd if corr => Some(60),
            IndexName::Cmd if cmd => Some(52),
            IndexName::User if user => Some(51),
            IndexName::UserDatetime if user => Some(50),
            IndexName::Datetime if both_times => Some(40),
            IndexName::Datetime if time => Some(35),
            IndexName::Version if filter.version.is_some() => Some(30),
            _ => None,
        }
    };
    IndexName::ALL
        .into_iter()
        .filter(|n| indexes.is_enabled(*n))
        .filter_map(|n| score(n).map(|s| (s, n)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, n)| n)
}

/// The plan an engine that follows [`choose_index`] reports: the chosen index, or a
/// primary-key range when the filter bounds ids, or a full scan of `table`.
pub fn plan(indexes: &IndexConfig, filter: &Filter, table: &str) -> QueryPlan {
    let index = choose_index(indexes, filter);
    let id_range = filter.id_from.is_some() || filter.id_to.is_some();
    let detail = match index {
        Some(name) => format!("SEARCH {table} USING INDEX {name}"),
        None if id_range => format!("SEARCH {table} USING PRIMARY KEY (id range)"),
        None => format!("SCAN {table}"),
    };
    QueryPlan {
        index,
        full_scan: index.is_none() && !id_range,
        sorts: false,
        detail,
    }
}

/// The bounds an SQL engine's `WHERE` gets from a filter and a query's keyset cursor: one bound
/// per side of each column, so that a planner that seeks to one of them has nothing else to
/// compare row by row (a cursor beside `id_from` would otherwise make each batch of a stream
/// scan from `id_from` up to the cursor again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// Ids at or above (the filter's, raised past an ascending cursor).
    pub id_from: Option<u64>,
    /// Ids at or below (the filter's, lowered before a descending cursor).
    pub id_to: Option<u64>,
    /// Datetimes at or below (dropped when a newest-first cursor implies it).
    pub datetime_to: Option<i64>,
    /// `(datetime, id)` strictly below this (a newest-first cursor).
    pub before: Option<Cursor>,
    /// Nothing can match (a cursor at the very end of the id space).
    pub empty: bool,
}

impl Bounds {
    /// The bounds of `filter`, narrowed by `query`'s cursor when there is one.
    pub fn new(filter: &Filter, query: Option<&Query>) -> Bounds {
        let mut b = Bounds {
            id_from: filter.id_from,
            id_to: filter.id_to,
            datetime_to: filter.datetime_to,
            before: None,
            empty: false,
        };
        match query.and_then(|q| Some((q.order, q.after?))) {
            None => {}
            Some((Order::IdAsc, c)) => match c.id.checked_add(1) {
                Some(next) => b.id_from = Some(b.id_from.map_or(next, |lo| lo.max(next))),
                None => b.empty = true,
            },
            Some((Order::IdDesc, c)) => match c.id.checked_sub(1) {
                Some(prev) => b.id_to = Some(b.id_to.map_or(prev, |hi| hi.min(prev))),
                None => b.empty = true,
            },
            Some((Order::DatetimeDesc, c)) => match b.datetime_to {
                // Every event at or before `to` comes before the cursor.
                Some(to) if to < c.datetime => {}
                // The cursor implies `datetime <= to`.
                _ => {
                    b.datetime_to = None;
                    b.before = Some(c);
                }
            },
        }
        b
    }
}

/// Whether `filter` selects one stream and nothing else.
pub fn one_stream(filter: &Filter) -> bool {
    filter.stream.is_some()
        && *filter
            == Filter {
                stream: filter.stream.clone(),
                ..Filter::default()
            }
}

/// Whether `filter` selects one stream, within an id range at most: its events can be read in
/// stream-version order, which is their id order.
pub fn stream_and_ids(filter: &Filter) -> bool {
    filter.stream.is_some()
        && *filter
            == Filter {
                stream: filter.stream.clone(),
                id_from: filter.id_from,
                id_to: filter.id_to,
                ..Filter::default()
            }
}
