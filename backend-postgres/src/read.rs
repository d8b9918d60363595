//! Turning rows into events (checked against their checksums), events into the columns of an
//! append, and `EXPLAIN (FORMAT JSON)` into a [`QueryPlan`].

use eventlite_core::spi::EventFields;
use eventlite_core::{Error, QueryPlan, Result};
use postgres::Row;
use postgres::types::ToSql;

use crate::conn::map_err;
use crate::sql::{self, Param};

/// Parameters as the client takes them.
pub(crate) fn params(p: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}

/// Hands a row of a SELECT of [`sql::COLUMNS`] to `f` as borrowed fields, once they match
/// the stored checksum.
pub(crate) fn with_fields<T>(row: &Row, f: impl for<'r> FnOnce(EventFields<'r>) -> T) -> Result<T> {
    let int = |i: usize| -> Result<i64> { row.try_get(i).map_err(map_err) };
    let id = int(0)?;
    let id = u64::try_from(id).map_err(|_| Error::corrupt(format!("bad event id {id}")))?;
    let bad = |column: &str, what: &str| Error::corrupt(format!("event {id}: {column} {what}"));
    let bytes = |i: usize, column: &str| -> Result<&str> {
        let b: &[u8] = row.try_get(i).map_err(map_err)?;
        std::str::from_utf8(b).map_err(|_| bad(column, "is not UTF-8"))
    };
    let json = |i: usize| -> Result<&str> { row.try_get(i).map_err(map_err) };
    let opt_id = |i: usize, column: &str| -> Result<Option<u64>> {
        let v: Option<i64> = row.try_get(i).map_err(map_err)?;
        v.map(|v| u64::try_from(v).map_err(|_| bad(column, "out of range")))
            .transpose()
    };
    let stream: Option<&[u8]> = row.try_get(10).map_err(map_err)?;
    let fields = EventFields {
        id,
        version: u32::try_from(int(1)?).map_err(|_| bad("version", "out of range"))?,
        datetime: int(2)?,
        user: bytes(3, "user")?,
        ip: bytes(4, "ip")?,
        cmd: bytes(5, "cmd")?,
        data: json(6)?,
        correlation_id: bytes(7, "correlation_id")?,
        causation_id: opt_id(8, "causation_id")?,
        metadata: json(9)?,
        stream: stream
            .map(|s| std::str::from_utf8(s).map_err(|_| bad("stream", "is not UTF-8")))
            .transpose()?,
        stream_version: opt_id(11, "stream_version")?,
    };
    let stored = u32::try_from(int(12)?).map_err(|_| bad("checksum", "out of range"))?;
    fields.verify(stored)?;
    Ok(f(fields))
}

/// The rows of an append, a column at a time (one array parameter each: see
/// [`sql::INSERT`]).
#[derive(Default)]
pub(crate) struct Columns<'a> {
    id: Vec<i64>,
    version: Vec<i64>,
    datetime: Vec<i64>,
    user: Vec<&'a [u8]>,
    ip: Vec<&'a [u8]>,
    cmd: Vec<&'a [u8]>,
    data: Vec<&'a str>,
    correlation_id: Vec<&'a [u8]>,
    causation_id: Vec<Option<i64>>,
    metadata: Vec<&'a str>,
    stream: Vec<Option<&'a [u8]>>,
    stream_version: Vec<Option<i64>>,
    checksum: Vec<i64>,
    /// The caller text held so far, in bytes.
    bytes: usize,
}

impl<'a> Columns<'a> {
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    pub(crate) fn push(&mut self, f: EventFields<'a>) {
        self.bytes += f.user.len()
            + f.ip.len()
            + f.cmd.len()
            + f.data.len()
            + f.correlation_id.len()
            + f.metadata.len()
            + f.stream.map_or(0, str::len);
        self.checksum.push(i64::from(f.checksum()));
        self.id.push(sql::clamp(f.id));
        self.version.push(i64::from(f.version));
        self.datetime.push(f.datetime);
        self.user.push(f.user.as_bytes());
        self.ip.push(f.ip.as_bytes());
        self.cmd.push(f.cmd.as_bytes());
        self.data.push(f.data);
        self.correlation_id.push(f.correlation_id.as_bytes());
        self.causation_id.push(f.causation_id.map(sql::clamp));
        self.metadata.push(f.metadata);
        self.stream.push(f.stream.map(str::as_bytes));
        self.stream_version.push(f.stream_version.map(sql::clamp));
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.id,
            &self.version,
            &self.datetime,
            &self.user,
            &self.ip,
            &self.cmd,
            &self.data,
            &self.correlation_id,
            &self.causation_id,
            &self.metadata,
            &self.stream,
            &self.stream_version,
            &self.checksum,
        ]
    }
}

/// What `EXPLAIN (FORMAT JSON)` says, as a [`QueryPlan`]: the EventLite index a scan node
/// uses, whether the log is read whole (a sequential scan, or a primary-key scan without a
/// condition), and whether a sort node orders the matches.
pub(crate) fn plan(explained: &serde_json::Value) -> QueryPlan {
    let mut out = QueryPlan {
        index: None,
        full_scan: false,
        sorts: false,
        detail: String::new(),
    };
    let mut steps = Vec::new();
    let mut todo: Vec<&serde_json::Value> = explained
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("Plan"))
        .collect();
    while let Some(node) = todo.pop() {
        let text = |key: &str| node.get(key).and_then(|v| v.as_str());
        let kind = text("Node Type").unwrap_or("?");
        let relation = text("Relation Name");
        let index = text("Index Name");
        let mut step = kind.to_owned();
        if let Some(i) = index {
            step.push_str(&format!(" using {i}"));
        }
        if let Some(r) = relation {
            step.push_str(&format!(" on {r}"));
        }
        if let Some(cond) = text("Index Cond") {
            step.push_str(&format!(" ({cond})"));
        }
        steps.push(step);
        match kind {
            "Seq Scan" if relation == Some("queue") => out.full_scan = true,
            "Sort" | "Incremental Sort" => out.sorts = true,
            _ => {}
        }
        if let Some(i) = index {
            if let Some(name) = sql::index_by_sql_name(i) {
                out.index = out.index.or(Some(name));
            } else if i == "queue_pkey" && node.get("Index Cond").is_none() {
                // The whole primary key, in order: every event is read.
                out.full_scan = true;
            }
        }
        if let Some(children) = node.get("Plans").and_then(|p| p.as_array()) {
            todo.extend(children.iter().rev());
        }
    }
    out.detail = steps.join("; ");
    out
}
