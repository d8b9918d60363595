//! SQL text: the schema, the indexes, and queries. Only column names, placeholders and a
//! page's limit (an integer, see [`select`]) are formatted into SQL; every other value a caller
//! supplies is bound as a parameter.

use eventlite_core::spi::planner::{Bounds, one_stream, stream_and_ids};
use eventlite_core::{Filter, IndexName, Order, Query};
use postgres::types::ToSql;

/// A bound parameter.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// The tables, in the store's schema (the connection's `search_path`).
///
/// Texts a caller chooses (user, ip, cmd, correlation id, stream, and the names of snapshots,
/// positions and projections) are `bytea`: PostgreSQL's `text` cannot hold a NUL character,
/// which every other engine stores. `data` and `metadata` are JSON, which cannot contain one,
/// so they stay `text` (not `jsonb`, which would reorder keys and change what was stored).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS eventlite_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS eventlite_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_id bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    id bigint PRIMARY KEY,
    version bigint NOT NULL,
    datetime bigint NOT NULL,
    "user" bytea NOT NULL,
    ip bytea NOT NULL,
    cmd bytea NOT NULL,
    data text NOT NULL,
    correlation_id bytea NOT NULL,
    causation_id bigint,
    metadata text NOT NULL,
    stream bytea,
    stream_version bigint,
    checksum bigint NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_stream ON queue (stream, stream_version)
    WHERE stream IS NOT NULL;
CREATE TABLE IF NOT EXISTS eventlite_snapshots (
    name bytea NOT NULL,
    event_id bigint NOT NULL,
    state bytea NOT NULL,
    metadata text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (name, event_id)
);
CREATE TABLE IF NOT EXISTS eventlite_positions (
    name bytea PRIMARY KEY,
    position bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS eventlite_failures (
    projection bytea NOT NULL,
    event_id bigint NOT NULL,
    attempts bigint NOT NULL,
    error bytea NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (projection, event_id)
);
CREATE TABLE IF NOT EXISTS eventlite_waiting (
    id bigint PRIMARY KEY,
    correlation_id bytea NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint,
    state smallint NOT NULL,
    closed_at bigint,
    event_id bigint,
    body text NOT NULL
);
CREATE INDEX IF NOT EXISTS eventlite_waiting_by_correlation ON eventlite_waiting (correlation_id, id);
CREATE TABLE IF NOT EXISTS eventlite_waiting_keys (
    cmd bytea NOT NULL,
    correlation_id bytea NOT NULL,
    waiting_id bigint NOT NULL,
    PRIMARY KEY (cmd, correlation_id, waiting_id)
);
CREATE INDEX IF NOT EXISTS eventlite_waiting_keys_by_record ON eventlite_waiting_keys (waiting_id);
INSERT INTO eventlite_head (one, last_id) VALUES (true, 0) ON CONFLICT (one) DO NOTHING;
"#;

/// Brings a store of an earlier layout, or a new one (whose tables [`SCHEMA`] makes in the
/// layout of version 1), to the current one; every statement can run again on a store already
/// there.
///
/// - Version 2: the counter row also holds the cmds that waiting records wait on
///   (`waiting_cmds`, the first [`MAX_WAITING_CMDS`] + 1 of them in byte order: more than
///   [`MAX_WAITING_CMDS`] means "too many to name"), kept, with each cmd's count of keys in
///   `eventlite_waiting_cmds`, by triggers on `eventlite_waiting_keys` whoever writes it. An
///   append reads them with the counter's lock, and looks for records waiting on its rows only
///   when one of its cmds is there: the look touches three more relations, about a tenth of the
///   server's time for an append of one event. The keys are counted again, and the triggers
///   made again, at every upgrade: a store made by an earlier build of version 2 gets the
///   current ones.
/// - Version 3: the counter row also lists the server processes that listen for the store's
///   commits (`listeners`), each registered by a listener under the counter's lock. An append
///   notifies only when a process other than its own handle's listener is there: a listener is
///   woken by every notification on its channel, and one for its handle's own commits only costs
///   both processes a wake-up.
///
/// The caller locks the counter's table first, before any other of the store's tables (see
/// `init_schema`): appends and parks hold the counter row while they write the others, so an
/// upgrade that held a lock on one of those while waiting for the counter could deadlock with
/// them. The keys are locked next, so that none is written between the count and the triggers.
pub(crate) const UPGRADE: &str = r#"
LOCK TABLE eventlite_waiting_keys IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE IF NOT EXISTS eventlite_waiting_cmds (
    cmd bytea PRIMARY KEY,
    keys bigint NOT NULL
);
DELETE FROM eventlite_waiting_cmds;
INSERT INTO eventlite_waiting_cmds (cmd, keys)
    SELECT cmd, count(*) FROM eventlite_waiting_keys GROUP BY cmd;
ALTER TABLE eventlite_head ADD COLUMN IF NOT EXISTS waiting_cmds bytea[] NOT NULL DEFAULT '{}';
UPDATE eventlite_head SET waiting_cmds = ARRAY(SELECT cmd FROM eventlite_waiting_cmds ORDER BY cmd LIMIT 65);
CREATE OR REPLACE FUNCTION eventlite_waiting_keys_added() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
BEGIN
    INSERT INTO eventlite_waiting_cmds (cmd, keys) SELECT cmd, count(*) FROM added GROUP BY cmd
        ON CONFLICT (cmd) DO UPDATE SET keys = eventlite_waiting_cmds.keys + EXCLUDED.keys;
    UPDATE eventlite_head
        SET waiting_cmds = ARRAY(SELECT cmd FROM eventlite_waiting_cmds ORDER BY cmd LIMIT 65);
    RETURN NULL;
END $f$;
CREATE OR REPLACE FUNCTION eventlite_waiting_keys_removed() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
BEGIN
    UPDATE eventlite_waiting_cmds w SET keys = w.keys - r.n
        FROM (SELECT cmd, count(*) AS n FROM removed GROUP BY cmd) AS r WHERE w.cmd = r.cmd;
    DELETE FROM eventlite_waiting_cmds WHERE cmd IN (SELECT cmd FROM removed) AND keys <= 0;
    UPDATE eventlite_head
        SET waiting_cmds = ARRAY(SELECT cmd FROM eventlite_waiting_cmds ORDER BY cmd LIMIT 65);
    RETURN NULL;
END $f$;
DROP TRIGGER IF EXISTS eventlite_waiting_keys_added ON eventlite_waiting_keys;
CREATE TRIGGER eventlite_waiting_keys_added AFTER INSERT ON eventlite_waiting_keys
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE PROCEDURE eventlite_waiting_keys_added();
DROP TRIGGER IF EXISTS eventlite_waiting_keys_removed ON eventlite_waiting_keys;
CREATE TRIGGER eventlite_waiting_keys_removed AFTER DELETE ON eventlite_waiting_keys
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE PROCEDURE eventlite_waiting_keys_removed();
CREATE OR REPLACE FUNCTION eventlite_waiting_keys_truncated() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $f$
BEGIN
    DELETE FROM eventlite_waiting_cmds;
    UPDATE eventlite_head SET waiting_cmds = '{}';
    RETURN NULL;
END $f$;
DROP TRIGGER IF EXISTS eventlite_waiting_keys_truncated ON eventlite_waiting_keys;
CREATE TRIGGER eventlite_waiting_keys_truncated AFTER TRUNCATE ON eventlite_waiting_keys
    FOR EACH STATEMENT EXECUTE PROCEDURE eventlite_waiting_keys_truncated();
ALTER TABLE eventlite_head ADD COLUMN IF NOT EXISTS listeners int4[] NOT NULL DEFAULT '{}';
"#;

/// Registers the connection as a listener, dropping the processes that have gone (a listener
/// whose connection broke cannot remove itself), but never its own. Waits for the counter
/// row's lock, so an append either sees the registration or commits before it.
pub(crate) const REGISTER_LISTENER: &str = "UPDATE eventlite_head SET listeners = \
     ARRAY(SELECT DISTINCT p FROM unnest(array_append(listeners, pg_backend_pid())) AS p \
     WHERE p = pg_backend_pid() OR p IN (SELECT pid FROM pg_stat_activity) ORDER BY p)";

/// Whether the connection is among the listeners.
pub(crate) const STILL_REGISTERED: &str =
    "SELECT COALESCE(pg_backend_pid() = ANY(listeners), false) FROM eventlite_head";

/// Removes the connection from the listeners.
pub(crate) const UNREGISTER_LISTENER: &str =
    "UPDATE eventlite_head SET listeners = array_remove(listeners, pg_backend_pid())";

/// The most waited-on cmds the counter row names (see [`UPGRADE`], whose `LIMIT` is one more).
pub(crate) const MAX_WAITING_CMDS: usize = 64;

/// Whether the counts of waited-on cmds, and the counter row's list of them, agree with the
/// keys: one statement, so one snapshot.
pub(crate) const WAITING_CMDS_AGREE: &str = "SELECT NOT EXISTS (\
     (SELECT cmd, count(*) FROM eventlite_waiting_keys GROUP BY cmd \
      EXCEPT SELECT cmd, keys FROM eventlite_waiting_cmds) \
     UNION ALL (SELECT cmd, keys FROM eventlite_waiting_cmds \
      EXCEPT SELECT cmd, count(*) FROM eventlite_waiting_keys GROUP BY cmd)) \
     AND (SELECT waiting_cmds FROM eventlite_head) = ARRAY(SELECT DISTINCT cmd \
      FROM eventlite_waiting_keys ORDER BY cmd LIMIT 65)";

/// The columns of an event, in [`crate::read`] order.
pub(crate) const COLUMNS: &str = r#"id, version, datetime, "user", ip, cmd, data, correlation_id, causation_id, metadata, stream, stream_version, checksum"#;

/// One statement for a whole append, whatever its size: the rows arrive as one array per
/// column.
pub(crate) const INSERT: &str = r#"INSERT INTO queue (id, version, datetime, "user", ip, cmd, data, correlation_id, causation_id, metadata, stream, stream_version, checksum)
SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[], $8::bytea[], $9::int8[], $10::text[], $11::bytea[], $12::int8[], $13::int8[])"#;

/// An index's name and its key (and predicate). The names are the guide's (and the SQLite
/// engine's); `idx_cmd` and `idx_user` carry `datetime` after their key so that newest-first
/// pages by cmd or user read the index in order.
pub(crate) fn index_def(name: IndexName) -> (&'static str, &'static str) {
    match name {
        IndexName::CorrelationId => ("idx_correlation_id", "(correlation_id)"),
        IndexName::CausationId => (
            "idx_causation_id",
            "(causation_id) WHERE causation_id IS NOT NULL",
        ),
        IndexName::Cmd => ("idx_cmd", "(cmd, datetime)"),
        IndexName::User => ("idx_user", r#"("user", datetime)"#),
        IndexName::Datetime => ("idx_datetime", "(datetime)"),
        IndexName::Version => ("idx_version", "(version)"),
        IndexName::CorrelationCmd => ("idx_composite_correlation_cmd", "(correlation_id, cmd)"),
        IndexName::UserDatetime => ("idx_composite_user_datetime", r#"("user", datetime)"#),
    }
}

pub(crate) fn index_by_sql_name(name: &str) -> Option<IndexName> {
    IndexName::ALL.into_iter().find(|n| index_def(*n).0 == name)
}

/// Clamps a u64 into PostgreSQL's bigint (ids, offsets and limits beyond i64::MAX cannot
/// exist).
pub(crate) fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Builds a statement's terms and parameters, numbering the placeholders.
#[derive(Default)]
pub(crate) struct Terms {
    pub(crate) terms: Vec<String>,
    pub(crate) params: Vec<Param>,
}

impl Terms {
    /// The next placeholder, bound to `value`.
    pub(crate) fn bind(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn term(&mut self, column: &str, op: &str, value: Param) {
        let p = self.bind(value);
        self.terms.push(format!("{column} {op} {p}"));
    }

    fn bytes(&mut self, column: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.term(column, "=", Box::new(v.as_bytes().to_vec()));
        }
    }

    fn int(&mut self, column: &str, op: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.term(column, op, Box::new(v));
        }
    }

    /// ` WHERE …`, or nothing.
    pub(crate) fn where_sql(&self) -> String {
        if self.terms.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.terms.join(" AND "))
        }
    }
}

/// The terms of a filter (and of a query's keyset cursor).
pub(crate) fn where_terms(filter: &Filter, query: Option<&Query>) -> Terms {
    let mut t = Terms::default();
    push_where_terms(&mut t, filter, query);
    t
}

/// Adds the terms of a filter (and of a query's keyset cursor) to `t`, their placeholders
/// numbered after those of the parameters `t` holds.
fn push_where_terms(t: &mut Terms, filter: &Filter, query: Option<&Query>) {
    t.bytes("correlation_id", &filter.correlation_id);
    t.bytes("cmd", &filter.cmd);
    t.bytes(r#""user""#, &filter.user);
    t.bytes("stream", &filter.stream);
    t.int("causation_id", "=", filter.causation_id.map(clamp));
    // One bound per side of a column (see `Bounds`).
    let Bounds {
        id_from: id_lo,
        id_to: id_hi,
        datetime_to: dt_hi,
        before,
        mut empty,
    } = Bounds::new(filter, query);
    // Ids are never above i64::MAX, so a lower bound past it matches nothing.
    empty |= id_lo.is_some_and(|lo| lo > i64::MAX as u64);
    t.int("datetime", ">=", filter.datetime_from);
    t.int("datetime", "<=", dt_hi);
    t.int("version", "=", filter.version.map(i64::from));
    t.int("id", ">=", id_lo.map(clamp));
    t.int("id", "<=", id_hi.map(clamp));
    if let Some(c) = before {
        let dt = t.bind(Box::new(c.datetime));
        let id = t.bind(Box::new(clamp(c.id)));
        t.terms.push(format!("(datetime, id) < ({dt}, {id})"));
    }
    if empty {
        t.terms.push("false".to_owned());
    }
}

/// How many columns [`COLUMNS`] names: [`select_with_total`]'s total comes after them.
pub(crate) const COLUMN_COUNT: usize = 13;

/// One statement for a page of `query` and the count of its filter: one statement sees one
/// snapshot, so the two agree without a transaction and its two extra round trips. The count
/// is a subquery the server runs once, its value the last column of every row. An empty page
/// has no row to carry it. The count is added to the page's rows only once they are picked:
/// as a column of the page's own SELECT it would be carried through the sort and past the
/// offset, every skipped row paying for it (docs/benchmarks.md has the measurement).
pub(crate) fn select_with_total(query: &Query) -> (String, Vec<Param>) {
    let (page, order, t) = page(query);
    let mut count = Terms {
        terms: Vec::new(),
        params: t.params,
    };
    push_where_terms(&mut count, &query.filter, None);
    let sql = format!(
        "SELECT p.*, (SELECT count(*) FROM queue{}) FROM ({page}) AS p ORDER BY {order}",
        count.where_sql()
    );
    (sql, count.params)
}

/// The full SELECT for a query, and its parameters.
pub(crate) fn select(query: &Query) -> (String, Vec<Param>) {
    let (sql, _, t) = page(query);
    (sql, t.params)
}

/// The full SELECT for a query, its ORDER BY terms, and its terms (with their parameters).
fn page(query: &Query) -> (String, &'static str, Terms) {
    let mut t = where_terms(&query.filter, Some(query));
    let mut offset = query.offset;
    // A stream's versions count up from 1 without gaps, so an offset into one stream is a
    // seek in its index rather than rows stepped over.
    if offset > 0
        && query.after.is_none()
        && query.order == Order::IdAsc
        && one_stream(&query.filter)
    {
        t.int("stream_version", ">", Some(clamp(offset)));
        offset = 0;
    }
    // Within a stream, versions grow with ids: ordering by version reads the stream index in
    // order, where ordering by id would sort the stream's events.
    let order = match (query.order, stream_and_ids(&query.filter)) {
        (Order::IdAsc, true) => "stream_version ASC",
        (Order::IdDesc, true) => "stream_version DESC",
        (Order::IdAsc, false) => "id ASC",
        (Order::IdDesc, false) => "id DESC",
        (Order::DatetimeDesc, _) => "datetime DESC, id DESC",
    };
    let mut sql = format!(
        "SELECT {COLUMNS} FROM queue{} ORDER BY {order}",
        t.where_sql()
    );
    if let Some(limit) = query.limit {
        // A literal, as plain code writes a page's size: behind a parameter the server's
        // generic plan guesses the limit, and can pick the primary key's order with a filter,
        // reading the whole table for one correlation's page.
        sql.push_str(&format!(" LIMIT {}", clamp(limit)));
    }
    if offset > 0 {
        let p = t.bind(Box::new(clamp(offset)));
        sql.push_str(&format!(" OFFSET {p}"));
    }
    (sql, order, t)
}

/// Whether `name` can be used, unquoted and unchanged, as a schema name (and inside the
/// notification channel's name).
pub(crate) fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 48
        && !name.starts_with("pg_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_count_is_that_of_the_columns() {
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    }

    /// Every list of waited-on cmds holds one more than the counter row names, so that a
    /// full list says "too many to name" and no list grows with the cmds.
    #[test]
    fn the_waited_on_cmds_are_listed_up_to_one_past_the_most_named() {
        let limit = format!("ORDER BY cmd LIMIT {}", MAX_WAITING_CMDS + 1);
        assert_eq!(UPGRADE.matches("ARRAY(").count(), 3);
        assert_eq!(UPGRADE.matches(&limit).count(), 3);
        assert_eq!(WAITING_CMDS_AGREE.matches(&limit).count(), 1);
    }

    /// The count's placeholders follow the page's (a stream's offset turned into a version
    /// bound among them, the offset's last); each is used once, and the rows come out in the
    /// page's order.
    #[test]
    fn a_page_with_its_total_numbers_every_parameter_once() {
        let page = |filter: Filter| Query {
            offset: 5,
            ..Query::new(filter, Order::IdAsc).limit(10)
        };
        let (sql, params) = select_with_total(&page(Filter::stream("s")));
        assert_eq!(params.len(), 3, "{sql}");
        assert!(
            sql.contains("(SELECT count(*) FROM queue WHERE stream = $3)"),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "WHERE stream = $1 AND stream_version > $2 ORDER BY stream_version ASC LIMIT 10) \
                 AS p ORDER BY stream_version ASC"
            ),
            "{sql}"
        );
        let filter = Filter {
            datetime_from: Some(7),
            ..Filter::correlation("c")
        };
        let (sql, params) = select_with_total(&page(filter.clone()));
        assert_eq!(params.len(), 5, "{sql}");
        assert!(
            sql.contains(
                "(SELECT count(*) FROM queue WHERE correlation_id = $4 AND datetime >= $5)"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "WHERE correlation_id = $1 AND datetime >= $2 ORDER BY id ASC LIMIT 10 OFFSET $3) \
                 AS p ORDER BY id ASC"
            ),
            "{sql}"
        );
        let (plain, params) = select(&page(filter));
        assert_eq!(params.len(), 3, "{plain}");
        assert!(!plain.contains("count(*)"), "{plain}");
    }
}
