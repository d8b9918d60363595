//! The planner for engines without one of their own: which index serves a filter, and the
//! plan `explain` reports for it.

use crate::index::{IndexConfig, IndexName, QueryPlan};
use crate::query::Filter;

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
