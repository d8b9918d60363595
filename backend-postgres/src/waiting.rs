//! Waiting records (wait conditions) in `eventlite_waiting` and `eventlite_waiting_keys`.
//!
//! Parks and releases take the id counter's row lock, as appends do: so an append either sees
//! a record parked before it (and releases it) or commits before the park does (and the park's
//! own look finds its event). That is what lets an append skip the look when its transaction
//! saw no open record waiting on its rows ([`WaitHints`](eventlite_core::spi::WaitHints)).

use std::collections::HashSet;

use eventlite_core::spi::{
    Claim, GroupEntry, NewWaiting, Numbered, PendingEvent, WaitKey, WaitingRecord, WaitingStore,
    keys_of,
};
use eventlite_core::{Error, Event, Result, WaitState};
use postgres::Row;

use crate::conn::{PgConn, map_err};
use crate::{PostgresBackend, blocking, sql, text_of, u64_of};

const COLUMNS: &str =
    "w.id, w.correlation_id, w.created_at, w.expires_at, w.state, w.closed_at, w.event_id, w.body";

fn row_to_record(row: &Row) -> Result<WaitingRecord> {
    let state: i16 = row.try_get(4).map_err(map_err)?;
    let event_id: Option<i64> = row.try_get(6).map_err(map_err)?;
    Ok(WaitingRecord {
        id: u64_of(row, 0)?,
        correlation_id: text_of(row, 1)?,
        created_at: row.try_get(2).map_err(map_err)?,
        expires_at: row.try_get(3).map_err(map_err)?,
        state: WaitState::from_code(
            u8::try_from(state).map_err(|_| Error::corrupt(format!("waiting state {state}")))?,
        )?,
        closed_at: row.try_get(5).map_err(map_err)?,
        event_id: event_id
            .map(|v| u64::try_from(v).map_err(|_| Error::corrupt(format!("event id {v}"))))
            .transpose()?,
        body: row.try_get(7).map_err(map_err)?,
    })
}

/// Rejects, inside an append's transaction (the counter row locked), each release whose
/// record is not open; locks the rows of those that are, so that a cancel waits for the
/// release to commit. Two releases of one record in a group are the numbering's to settle:
/// the first one stored takes it.
pub(crate) fn check_claims(conn: &mut PgConn, entries: &mut [GroupEntry]) -> Result<()> {
    if entries.iter().all(|e| e.claim().is_none()) {
        return Ok(());
    }
    let stmt = conn.prepare(
        "SELECT 1 FROM eventlite_waiting WHERE id = $1 AND state = 0 \
         AND (expires_at IS NULL OR expires_at > $2) FOR UPDATE",
    )?;
    for entry in entries.iter_mut() {
        let Some(Claim { id, at }) = entry.claim() else {
            continue;
        };
        let open = conn
            .client
            .query_opt(&stmt, &[&sql::clamp(id), &at])
            .map_err(map_err)?
            .is_some();
        if !open {
            entry.reject_claim();
        }
    }
    Ok(())
}

/// Closes the records of the group's stored releases, in the group's transaction.
pub(crate) fn close_claims(
    conn: &mut PgConn,
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

fn close(
    conn: &mut PgConn,
    id: u64,
    state: WaitState,
    at: i64,
    event_id: Option<u64>,
) -> Result<bool> {
    let update = conn.prepare(
        "UPDATE eventlite_waiting SET state = $2, closed_at = $3, event_id = $4 \
         WHERE id = $1 AND state = 0",
    )?;
    let delete = conn.prepare("DELETE FROM eventlite_waiting_keys WHERE waiting_id = $1")?;
    let id = sql::clamp(id);
    let changed = conn
        .client
        .execute(
            &update,
            &[
                &id,
                &i16::from(state.code()),
                &at,
                &event_id.map(sql::clamp),
            ],
        )
        .map_err(map_err)?;
    conn.client.execute(&delete, &[&id]).map_err(map_err)?;
    Ok(changed == 1)
}

/// At most this many distinct keys are asked about in the COMMIT's round trip; past it, the
/// look after the append asks.
const MAX_ASKED_KEYS: usize = 4_096;

/// The query that tells whether an open record waits on the (cmd, correlation id) of one of
/// the stored rows of a group, its values written as hex (no quoting to get wrong); `None`
/// when there are too many keys to ask in one statement.
pub(crate) fn keys_query(entries: &[GroupEntry], stored: &[Numbered]) -> Option<String> {
    let keys: HashSet<(&[u8], &[u8])> = stored
        .iter()
        .flat_map(|(i, _, _)| entries[*i].batch())
        .map(|p| (p.cmd.as_bytes(), p.correlation_id.as_bytes()))
        .collect();
    if keys.is_empty() || keys.len() > MAX_ASKED_KEYS {
        return None;
    }
    let hex = |b: &[u8]| -> String { b.iter().map(|x| format!("{x:02x}")).collect() };
    if keys.len() == 1 {
        // One append of one event, the common case: an index probe the server plans at once.
        let (c, r) = keys.into_iter().next()?;
        return Some(format!(
            "SELECT EXISTS (SELECT 1 FROM eventlite_waiting_keys \
             WHERE cmd = decode('{}', 'hex') AND correlation_id = decode('{}', 'hex'))",
            hex(c),
            hex(r)
        ));
    }
    let values: Vec<String> = keys
        .into_iter()
        .map(|(c, r)| format!("(decode('{}', 'hex'), decode('{}', 'hex'))", hex(c), hex(r)))
        .collect();
    Some(format!(
        "SELECT EXISTS (SELECT 1 FROM eventlite_waiting_keys k JOIN (VALUES {}) AS u(c, r) \
         ON k.cmd = u.c AND k.correlation_id = u.r)",
        values.join(", ")
    ))
}

/// The answer of [`keys_query`]'s statement (`true` if it cannot be read: then the look after
/// the append asks).
pub(crate) fn answer(messages: &[postgres::SimpleQueryMessage]) -> bool {
    crate::first_row(messages)
        .and_then(|row| row.get(0))
        .is_none_or(|v| v != "f")
}

impl PostgresBackend {
    /// Runs `f` in a transaction on a pooled connection, the counter row locked.
    fn locked<T: Send>(&self, f: impl FnOnce(&mut PgConn) -> Result<T> + Send) -> Result<T> {
        blocking(|| {
            let mut conn = self.checkout()?;
            let outcome = (|| {
                conn.client
                    .batch_execute(
                        "BEGIN ISOLATION LEVEL READ COMMITTED; \
                         SELECT 1 FROM eventlite_head FOR UPDATE",
                    )
                    .map_err(map_err)?;
                let out = f(&mut conn)?;
                conn.client.batch_execute("COMMIT").map_err(map_err)?;
                Ok(out)
            })();
            if outcome.is_err() {
                // Leave the connection outside a transaction, or drop it if that fails.
                if conn.client.batch_execute("ROLLBACK").is_err() {
                    self.connector.lost();
                }
            }
            outcome
        })
    }
}

impl WaitingStore for PostgresBackend {
    fn park(&self, new: NewWaiting) -> Result<u64> {
        let id = self.locked(|conn| {
            let insert = conn.prepare(
                "INSERT INTO eventlite_waiting (id, correlation_id, created_at, expires_at, state, body) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, 0, $4 FROM eventlite_waiting \
                 RETURNING id",
            )?;
            let keys = conn.prepare(
                "INSERT INTO eventlite_waiting_keys (cmd, correlation_id, waiting_id) \
                 SELECT DISTINCT c, k, $3::bigint FROM unnest($1::bytea[], $2::bytea[]) AS u(c, k)",
            )?;
            let row = conn
                .client
                .query_one(
                    &insert,
                    &[
                        &new.correlation_id.as_bytes(),
                        &new.created_at,
                        &new.expires_at,
                        &new.body,
                    ],
                )
                .map_err(map_err)?;
            let id = u64_of(&row, 0)?;
            let cmds: Vec<&[u8]> = new.keys.iter().map(|k| k.cmd.as_bytes()).collect();
            let correlations: Vec<&[u8]> =
                new.keys.iter().map(|k| k.correlation_id.as_bytes()).collect();
            conn.client
                .execute(&keys, &[&cmds, &correlations, &sql::clamp(id)])
                .map_err(map_err)?;
            Ok(id)
        })?;
        Ok(id)
    }

    fn waiting_record(&self, id: u64) -> Result<Option<WaitingRecord>> {
        let id = sql::clamp(id);
        self.read(|conn| {
            let stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM eventlite_waiting w WHERE w.id = $1"
            ))?;
            conn.client
                .query_opt(&stmt, &[&id])
                .map_err(map_err)?
                .map(|r| row_to_record(&r))
                .transpose()
        })
    }

    fn waiting_for(&self, events: &[Event]) -> Result<Vec<WaitingRecord>> {
        if self.hints.none_waiting(events) {
            return Ok(Vec::new());
        }
        self.waiting_on(&keys_of(events))
    }

    fn waiting_on(&self, keys: &[WaitKey]) -> Result<Vec<WaitingRecord>> {
        let cmds: Vec<&[u8]> = keys.iter().map(|k| k.cmd.as_bytes()).collect();
        let correlations: Vec<&[u8]> = keys.iter().map(|k| k.correlation_id.as_bytes()).collect();
        self.read(|conn| {
            let stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM eventlite_waiting w WHERE w.id IN ( \
                 SELECT k.waiting_id FROM eventlite_waiting_keys k \
                 JOIN unnest($1::bytea[], $2::bytea[]) AS u(c, r) \
                 ON k.cmd = u.c AND k.correlation_id = u.r) ORDER BY w.id"
            ))?;
            conn.client
                .query(&stmt, &[&cmds, &correlations])
                .map_err(map_err)?
                .iter()
                .map(row_to_record)
                .collect()
        })
    }

    fn list_waiting(
        &self,
        correlation_id: Option<&str>,
        state: Option<WaitState>,
    ) -> Result<Vec<WaitingRecord>> {
        let correlation = correlation_id.map(str::as_bytes);
        let state = state.map(|s| i16::from(s.code()));
        self.read(|conn| {
            let stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM eventlite_waiting w \
                 WHERE ($1::bytea IS NULL OR w.correlation_id = $1) \
                 AND ($2::smallint IS NULL OR w.state = $2) ORDER BY w.id"
            ))?;
            conn.client
                .query(&stmt, &[&correlation, &state])
                .map_err(map_err)?
                .iter()
                .map(row_to_record)
                .collect()
        })
    }

    fn release_waiting(
        &self,
        batch: Vec<PendingEvent>,
        claim: Claim,
    ) -> Result<Option<Vec<Event>>> {
        blocking(|| {
            self.group
                .release(batch, claim, |entries| self.commit_group(entries))
        })
    }

    fn close_waiting(&self, id: u64, state: WaitState, at: i64) -> Result<bool> {
        eventlite_core::spi::check_closing_state(state)?;
        self.locked(|conn| close(conn, id, state, at, None))
    }
}
