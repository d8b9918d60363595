//! SQL text for queries. Only column names and placeholders are ever formatted into SQL; every
//! value a caller supplies is bound as a parameter.

use eventlite_core::spi::planner::{Bounds, one_stream, stream_and_ids};
use eventlite_core::{Filter, IndexName, Order, Query};
use rusqlite::types::Value;

/// Rows per multi-row INSERT statement in a bulk append (12 parameters each).
pub(crate) const ROWS_PER_INSERT: usize = 32;

/// `INSERT INTO queue … VALUES (…), (…), …` for `rows` rows, every column but `id` (SQLite
/// assigns it: see `insert::InsertStmt::insert`).
pub(crate) fn insert_sql(rows: usize) -> String {
    let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT OR ROLLBACK INTO queue ({}) VALUES {}",
        INSERTED_COLUMNS,
        vec![one; rows].join(", ")
    )
}

/// The columns an append binds, in [`insert::Row`](crate::insert::Row) order.
const INSERTED_COLUMNS: &str = "version, datetime, user, ip, cmd, data, correlation_id, \
     causation_id, metadata, stream, stream_version, checksum";

pub(crate) const COLUMNS: &str = "id, version, datetime, user, ip, cmd, data, correlation_id, \
     causation_id, metadata, stream, stream_version, checksum";

/// An index's name and the `CREATE INDEX` statement that makes it.
///
/// `idx_cmd` and `idx_user` carry `datetime` after their key, so that newest-first pages by cmd
/// or user read the index in order instead of sorting every match (the redb engine's keys do
/// the same). `idx_causation_id` is partial: root events (no causation) stay out of it, and
/// `causation_id = ?` still uses it.
pub(crate) fn index_sql(name: IndexName) -> (&'static str, &'static str) {
    match name {
        IndexName::CorrelationId => (
            "idx_correlation_id",
            "CREATE INDEX idx_correlation_id ON queue (correlation_id)",
        ),
        IndexName::CausationId => (
            "idx_causation_id",
            "CREATE INDEX idx_causation_id ON queue (causation_id) WHERE causation_id IS NOT NULL",
        ),
        IndexName::Cmd => ("idx_cmd", "CREATE INDEX idx_cmd ON queue (cmd, datetime)"),
        IndexName::User => (
            "idx_user",
            "CREATE INDEX idx_user ON queue (user, datetime)",
        ),
        IndexName::Datetime => (
            "idx_datetime",
            "CREATE INDEX idx_datetime ON queue (datetime)",
        ),
        IndexName::Version => ("idx_version", "CREATE INDEX idx_version ON queue (version)"),
        IndexName::CorrelationCmd => (
            "idx_composite_correlation_cmd",
            "CREATE INDEX idx_composite_correlation_cmd ON queue (correlation_id, cmd)",
        ),
        IndexName::UserDatetime => (
            "idx_composite_user_datetime",
            "CREATE INDEX idx_composite_user_datetime ON queue (user, datetime)",
        ),
    }
}

pub(crate) fn index_by_sql_name(name: &str) -> Option<IndexName> {
    IndexName::ALL.into_iter().find(|n| index_sql(*n).0 == name)
}

/// Clamps a u64 into SQLite's i64 (ids, offsets and limits beyond i64::MAX cannot exist).
pub(crate) fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `WHERE …` for a filter (and an optional keyset cursor), with its parameters.
pub(crate) fn where_clause(filter: &Filter, query: Option<&Query>) -> (String, Vec<Value>) {
    let mut terms: Vec<&str> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut text = |col: &'static str, v: &Option<String>, terms: &mut Vec<&str>| {
        if let Some(v) = v {
            terms.push(col);
            params.push(Value::Text(v.clone()));
        }
    };
    text("correlation_id = ?", &filter.correlation_id, &mut terms);
    text("cmd = ?", &filter.cmd, &mut terms);
    text("user = ?", &filter.user, &mut terms);
    text("stream = ?", &filter.stream, &mut terms);
    let mut int = |col: &'static str, v: Option<i64>| {
        if let Some(v) = v {
            terms.push(col);
            params.push(Value::Integer(v));
        }
    };
    int("causation_id = ?", filter.causation_id.map(clamp));
    // One bound per side of a column: SQLite seeks to one of them and checks any other row by
    // row, and, planning without bound values (see `open_connection`), it cannot tell which
    // is tighter.
    let Bounds {
        id_from: id_lo,
        id_to: id_hi,
        datetime_to: dt_hi,
        before,
        mut empty,
    } = Bounds::new(filter, query);
    // Ids are never above i64::MAX, so a lower bound past it matches nothing.
    empty |= id_lo.is_some_and(|lo| lo > i64::MAX as u64);
    int("datetime >= ?", filter.datetime_from);
    int("datetime <= ?", dt_hi);
    int("version = ?", filter.version.map(i64::from));
    int("id >= ?", id_lo.map(clamp));
    int("id <= ?", id_hi.map(clamp));
    if let Some(c) = before {
        terms.push("(datetime, id) < (?, ?)");
        params.push(Value::Integer(c.datetime));
        params.push(Value::Integer(clamp(c.id)));
    }
    if empty {
        terms.push("0");
    }
    if terms.is_empty() {
        (String::new(), params)
    } else {
        (format!(" WHERE {}", terms.join(" AND ")), params)
    }
}

/// The full SELECT for a query.
pub(crate) fn select(query: &Query) -> (String, Vec<Value>) {
    let (mut where_sql, mut params) = where_clause(&query.filter, Some(query));
    let mut offset = query.offset;
    // Loading an aggregate from a version: a stream's versions count up from 1 without gaps,
    // so an offset into one stream is a seek in its index rather than rows stepped over.
    if offset > 0
        && query.after.is_none()
        && query.order == Order::IdAsc
        && one_stream(&query.filter)
    {
        where_sql.push_str(" AND stream_version > ?");
        params.push(Value::Integer(clamp(offset)));
        offset = 0;
    }
    // Within a stream, versions grow with ids: ordering a stream's events by version reads
    // the stream index in order, where ordering by id would sort every event of the stream.
    // With another filter beside the stream, its own index may serve the id order better.
    let by_version = stream_and_ids(&query.filter);
    let order = match (query.order, by_version) {
        (Order::IdAsc, true) => "stream_version ASC, id ASC",
        (Order::IdDesc, true) => "stream_version DESC, id DESC",
        (Order::IdAsc, false) => "id ASC",
        (Order::IdDesc, false) => "id DESC",
        (Order::DatetimeDesc, _) => "datetime DESC, id DESC",
    };
    let mut sql = format!("SELECT {COLUMNS} FROM queue{where_sql} ORDER BY {order}");
    if query.limit.is_some() || offset > 0 {
        // The limit is written into the SQL (it is our integer, never caller text) so that
        // the planner knows it (connections plan without peeking at bound values, see
        // `open_connection`); the offset stays bound, so paging through offsets reuses one
        // prepared statement.
        sql.push_str(&format!(
            " LIMIT {} OFFSET ?",
            query.limit.map_or(-1, clamp)
        ));
        params.push(Value::Integer(clamp(offset)));
    }
    (sql, params)
}
