//! Waiting records (wait conditions) in the `waiting` and `waiting_keys` tables.

use std::collections::HashSet;

use eventlite_core::spi::{
    Claim, GroupEntry, NewWaiting, Numbered, PendingEvent, WaitKey, WaitingRecord, WaitingStore,
    keys_of,
};
use eventlite_core::{Error, Event, Result, WaitState};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{SqliteBackend, map_err, u64_column, write_tx};

const COLUMNS: &str = "w.id, w.correlation_id, w.created_at, w.expires_at, w.state, \
                       w.closed_at, w.event_id, w.body";

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<WaitingRecord> {
    let state: i64 = row.get(4)?;
    let state = u8::try_from(state)
        .ok()
        .and_then(|s| WaitState::from_code(s).ok())
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(4, state))?;
    Ok(WaitingRecord {
        id: u64_column(row, 0)?,
        correlation_id: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
        state,
        closed_at: row.get(5)?,
        event_id: row
            .get::<_, Option<i64>>(6)?
            .map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(6, v)))
            .transpose()?,
        body: row.get(7)?,
    })
}

/// Rejects, before a group is numbered, each release whose record is not open (closed, or
/// expired at the release's time). Two releases of one record in a group are the numbering's
/// to settle: the first one stored takes it.
pub(crate) fn check_claims(conn: &Connection, entries: &mut [GroupEntry]) -> Result<()> {
    for entry in entries.iter_mut() {
        let Some(Claim { id, at }) = entry.claim() else {
            continue;
        };
        let open = conn
            .prepare_cached(
                "SELECT 1 FROM waiting WHERE id = ?1 AND state = 0 \
                 AND (expires_at IS NULL OR expires_at > ?2)",
            )
            .and_then(|mut s| {
                s.query_row(params![crate::sql::clamp(id), at], |_| Ok(()))
                    .optional()
            })
            .map_err(map_err)?
            .is_some();
        if !open {
            entry.reject_claim();
        }
    }
    Ok(())
}

/// Whether an open record waits on the (cmd, correlation id) of any of `rows`, inside their
/// commit's transaction, on the writer (whose pages are hot). Parks take the write lock too,
/// so a record parked after this look commits after this transaction, and its own look at the
/// log finds these rows: a commit that saw no such record leaves nothing to release.
pub(crate) fn any_waiting_on<'p>(
    conn: &Connection,
    rows: impl Iterator<Item = &'p PendingEvent>,
) -> Result<bool> {
    let any = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM waiting_keys)")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, bool>(0)))
        .map_err(map_err)?;
    if !any {
        return Ok(false);
    }
    let keys: HashSet<(&str, &str)> = rows
        .map(|p| (p.cmd.as_str(), p.correlation_id.as_str()))
        .collect();
    let mut probe = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM waiting_keys WHERE cmd = ?1 AND correlation_id = ?2)",
        )
        .map_err(map_err)?;
    for (cmd, correlation) in keys {
        if probe
            .query_row(params![cmd, correlation], |r| r.get::<_, bool>(0))
            .map_err(map_err)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Closes the records of the group's stored releases, in the group's transaction.
pub(crate) fn close_claims(
    conn: &Connection,
    entries: &[GroupEntry],
    stored: &[Numbered],
) -> Result<()> {
    for (i, first, _) in stored {
        if let Some(Claim { id, at }) = entries[*i].claim() {
            close(conn, id, WaitState::Released, at, Some(*first))?;
        }
    }
    Ok(())
}

/// Closes record `id` if it is open; whether it was.
fn close(
    conn: &Connection,
    id: u64,
    state: WaitState,
    at: i64,
    event_id: Option<u64>,
) -> Result<bool> {
    let id = crate::sql::clamp(id);
    let changed = conn
        .prepare_cached(
            "UPDATE waiting SET state = ?2, closed_at = ?3, event_id = ?4 \
             WHERE id = ?1 AND state = 0",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                state.code(),
                at,
                event_id.map(crate::sql::clamp)
            ])
        })
        .map_err(map_err)?;
    conn.prepare_cached("DELETE FROM waiting_keys WHERE waiting_id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(map_err)?;
    Ok(changed == 1)
}

impl WaitingStore for SqliteBackend {
    fn park(&self, record: NewWaiting) -> Result<u64> {
        let writer = self.writer();
        let tx = write_tx(writer.borrow_owner())?;
        // Under the write lock: ids go 1, 2, 3… in parking order.
        let id: i64 = tx
            .prepare_cached(
                "INSERT INTO waiting (id, correlation_id, created_at, expires_at, state, body) \
                 SELECT COALESCE(MAX(id), 0) + 1, ?1, ?2, ?3, 0, ?4 FROM waiting RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        record.correlation_id,
                        record.created_at,
                        record.expires_at,
                        record.body
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(map_err)?;
        for key in &record.keys {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO waiting_keys (cmd, correlation_id, waiting_id) \
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![key.cmd, key.correlation_id, id]))
            .map_err(map_err)?;
        }
        tx.commit().map_err(map_err)?;
        u64::try_from(id).map_err(|_| Error::corrupt(format!("waiting record id {id}")))
    }

    fn waiting_record(&self, id: u64) -> Result<Option<WaitingRecord>> {
        self.with_reader(|conn, _| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM waiting w WHERE w.id = ?1"))
                .and_then(|mut s| {
                    s.query_row([crate::sql::clamp(id)], row_to_record)
                        .optional()
                })
                .map_err(map_err)
        })
    }

    fn waiting_for(&self, events: &[Event]) -> Result<Vec<WaitingRecord>> {
        if self.hints.none_waiting(events) {
            return Ok(Vec::new());
        }
        self.waiting_on(&keys_of(events))
    }

    fn waiting_on(&self, keys: &[WaitKey]) -> Result<Vec<WaitingRecord>> {
        self.with_reader(|conn, _| {
            // One probe settles the common case, a store where nothing waits, whatever the
            // number of keys.
            if keys.len() > 1
                && conn
                    .prepare_cached("SELECT 1 FROM waiting_keys LIMIT 1")
                    .and_then(|mut s| s.query_row([], |_| Ok(())).optional())
                    .map_err(map_err)?
                    .is_none()
            {
                return Ok(Vec::new());
            }
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM waiting_keys k JOIN waiting w ON w.id = k.waiting_id \
                     WHERE k.cmd = ?1 AND k.correlation_id = ?2"
                ))
                .map_err(map_err)?;
            let mut out: Vec<WaitingRecord> = Vec::new();
            for key in keys {
                let rows = stmt
                    .query_map(params![key.cmd, key.correlation_id], row_to_record)
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(map_err)?;
                out.extend(rows);
            }
            out.sort_by_key(|r| r.id);
            out.dedup_by_key(|r| r.id);
            Ok(out)
        })
    }

    fn list_waiting(
        &self,
        correlation_id: Option<&str>,
        state: Option<WaitState>,
    ) -> Result<Vec<WaitingRecord>> {
        self.with_reader(|conn, _| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM waiting w \
                 WHERE (?1 IS NULL OR w.correlation_id = ?1) AND (?2 IS NULL OR w.state = ?2) \
                 ORDER BY w.id"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![correlation_id, state.map(WaitState::code)],
                    row_to_record,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(map_err)
        })
    }

    fn release_waiting(
        &self,
        batch: Vec<PendingEvent>,
        claim: Claim,
    ) -> Result<Option<Vec<Event>>> {
        self.group
            .release(batch, claim, |entries| self.commit_group(entries))
    }

    fn close_waiting(&self, id: u64, state: WaitState, at: i64) -> Result<bool> {
        eventlite_core::spi::check_closing_state(state)?;
        let writer = self.writer();
        let tx = write_tx(writer.borrow_owner())?;
        let closed = close(&tx, id, state, at, None)?;
        tx.commit().map_err(map_err)?;
        Ok(closed)
    }
}
