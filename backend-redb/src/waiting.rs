//! Waiting records (wait conditions): the records, their keys, and each record's keys (to
//! remove them when it closes).

use std::collections::HashMap;

use eventlite_core::spi::{
    Claim, GroupEntry, NewWaiting, PendingEvent, WaitKey, WaitingRecord, WaitingStore, keys_of,
};
use eventlite_core::{Event, Result, WaitState};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{RedbBackend, map_err};

/// A record: correlation id, created at, expires at, state, closed at, event id, body.
type Row<'a> = (
    &'a str,
    i64,
    Option<i64>,
    u8,
    Option<i64>,
    Option<u64>,
    &'a str,
);

pub(crate) const WAITING: TableDefinition<u64, Row<'static>> = TableDefinition::new("waiting");
/// The open records by key: (cmd, correlation id, record).
pub(crate) const WAITING_KEYS: TableDefinition<(&str, &str, u64), ()> =
    TableDefinition::new("waiting_keys");
/// Each open record's keys: (record, cmd, correlation id).
pub(crate) const KEYS_OF: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("waiting_keys_of");

fn record(id: u64, row: Row<'_>) -> Result<WaitingRecord> {
    let (correlation_id, created_at, expires_at, state, closed_at, event_id, body) = row;
    Ok(WaitingRecord {
        id,
        correlation_id: correlation_id.to_owned(),
        created_at,
        expires_at,
        state: WaitState::from_code(state)?,
        closed_at,
        event_id,
        body: body.to_owned(),
    })
}

/// Creates the tables (at open).
pub(crate) fn touch(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(WAITING).map_err(map_err)?;
    txn.open_table(WAITING_KEYS).map_err(map_err)?;
    txn.open_table(KEYS_OF).map_err(map_err)?;
    Ok(())
}

/// Rejects, before a group is numbered, each release whose record is not open (closed, or
/// expired at the release's time). Two releases of one record in a group are the numbering's
/// to settle: the first one stored takes it.
pub(crate) fn check_claims(txn: &WriteTransaction, entries: &mut [GroupEntry]) -> Result<()> {
    if entries.iter().all(|e| e.claim().is_none()) {
        return Ok(());
    }
    let table = txn.open_table(WAITING).map_err(map_err)?;
    for entry in entries.iter_mut() {
        let Some(Claim { id, at }) = entry.claim() else {
            continue;
        };
        let open = table.get(id).map_err(map_err)?.is_some_and(|v| {
            let (_, _, expires_at, state, ..) = v.value();
            state == WaitState::Waiting.code() && expires_at.is_none_or(|e| e > at)
        });
        if !open {
            entry.reject_claim();
        }
    }
    Ok(())
}

/// How many open records have each key.
pub(crate) type OpenKeys = HashMap<WaitKey, usize>;

/// The keys of the open records in the file.
pub(crate) fn load_open_keys(txn: &redb::ReadTransaction) -> Result<OpenKeys> {
    let mut out = OpenKeys::new();
    let keys = match txn.open_table(WAITING_KEYS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
        Err(e) => return Err(map_err(e)),
    };
    for entry in keys.iter().map_err(map_err)? {
        let (k, _) = entry.map_err(map_err)?;
        let (cmd, correlation, _) = k.value();
        *out.entry(WaitKey {
            cmd: cmd.to_owned(),
            correlation_id: correlation.to_owned(),
        })
        .or_default() += 1;
    }
    Ok(out)
}

/// Closes the records of the group's stored releases, in the group's transaction. Returns
/// the keys the closed records had (for [`RedbBackend::forget_keys`], once committed).
pub(crate) fn close_claims(
    txn: &WriteTransaction,
    entries: &[GroupEntry],
    stored: &[(usize, u64, Vec<Option<u64>>)],
) -> Result<Vec<WaitKey>> {
    let mut closed = Vec::new();
    for (i, first, _) in stored {
        if let Some(Claim { id, at }) = entries[*i].claim() {
            closed
                .extend(close(txn, id, WaitState::Released, at, Some(*first))?.unwrap_or_default());
        }
    }
    Ok(closed)
}

impl RedbBackend {
    /// Counts the keys of a committed park.
    fn remember_keys(&self, keys: &[WaitKey]) {
        let mut open = self.open_keys.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            *open.entry(key.clone()).or_default() += 1;
        }
    }

    /// Uncounts the keys of committed closes.
    pub(crate) fn forget_keys(&self, keys: Vec<WaitKey>) {
        if keys.is_empty() {
            return;
        }
        let mut open = self.open_keys.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if let std::collections::hash_map::Entry::Occupied(mut n) = open.entry(key) {
                *n.get_mut() -= 1;
                if *n.get() == 0 {
                    n.remove();
                }
            }
        }
    }

    /// The keys of `events` that some open record has.
    fn open_among(&self, events: &[Event]) -> Vec<WaitKey> {
        let open = self.open_keys.lock().unwrap_or_else(|e| e.into_inner());
        if open.is_empty() {
            return Vec::new();
        }
        keys_of(events)
            .into_iter()
            .filter(|k| open.contains_key(k))
            .collect()
    }
}

/// Closes record `id` if it is open: the keys it had (`None` if it was not open).
fn close(
    txn: &WriteTransaction,
    id: u64,
    state: WaitState,
    at: i64,
    event_id: Option<u64>,
) -> Result<Option<Vec<WaitKey>>> {
    let mut table = txn.open_table(WAITING).map_err(map_err)?;
    let Some(row) = table
        .get(id)
        .map_err(map_err)?
        .map(|v| record(id, v.value()))
    else {
        return Ok(None);
    };
    let row = row?;
    if row.state != WaitState::Waiting {
        return Ok(None);
    }
    table
        .insert(
            id,
            (
                row.correlation_id.as_str(),
                row.created_at,
                row.expires_at,
                state.code(),
                Some(at),
                event_id,
                row.body.as_str(),
            ),
        )
        .map_err(map_err)?;
    let mut keys = txn.open_table(WAITING_KEYS).map_err(map_err)?;
    let mut keys_of = txn.open_table(KEYS_OF).map_err(map_err)?;
    let mine: Vec<(String, String)> = keys_of
        .extract_from_if((id, "", "")..(id + 1, "", ""), |_, _| true)
        .map_err(map_err)?
        .map(|entry| {
            let (k, _) = entry.map_err(map_err)?;
            let (_, cmd, correlation) = k.value();
            Ok((cmd.to_owned(), correlation.to_owned()))
        })
        .collect::<Result<_>>()?;
    for (cmd, correlation) in &mine {
        keys.remove((cmd.as_str(), correlation.as_str(), id))
            .map_err(map_err)?;
    }
    Ok(Some(
        mine.into_iter()
            .map(|(cmd, correlation_id)| WaitKey {
                cmd,
                correlation_id,
            })
            .collect(),
    ))
}

impl WaitingStore for RedbBackend {
    fn park(&self, new: NewWaiting) -> Result<u64> {
        self.run("park", || {
            let txn = self.shared.begin_write()?;
            let id = {
                let mut table = txn.open_table(WAITING).map_err(map_err)?;
                let id = table.last().map_err(map_err)?.map_or(0, |(k, _)| k.value()) + 1;
                table
                    .insert(
                        id,
                        (
                            new.correlation_id.as_str(),
                            new.created_at,
                            new.expires_at,
                            WaitState::Waiting.code(),
                            None,
                            None,
                            new.body.as_str(),
                        ),
                    )
                    .map_err(map_err)?;
                let mut keys = txn.open_table(WAITING_KEYS).map_err(map_err)?;
                let mut keys_of = txn.open_table(KEYS_OF).map_err(map_err)?;
                for key in &new.keys {
                    let (cmd, correlation) = (key.cmd.as_str(), key.correlation_id.as_str());
                    keys.insert((cmd, correlation, id), ()).map_err(map_err)?;
                    keys_of
                        .insert((id, cmd, correlation), ())
                        .map_err(map_err)?;
                }
                id
            };
            self.shared.commit(txn, 1)?;
            self.remember_keys(&new.keys);
            Ok(id)
        })
    }

    fn waiting_record(&self, id: u64) -> Result<Option<WaitingRecord>> {
        self.run("waiting_record", || {
            let txn = self.read()?;
            let table = match txn.open_table(WAITING) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(map_err(e)),
            };
            table
                .get(id)
                .map_err(map_err)?
                .map(|v| record(id, v.value()))
                .transpose()
        })
    }

    fn waiting_for(&self, events: &[Event]) -> Result<Vec<WaitingRecord>> {
        let keys = self.open_among(events);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.waiting_on(&keys)
    }

    fn waiting_on(&self, wanted: &[WaitKey]) -> Result<Vec<WaitingRecord>> {
        self.run("waiting_on", || {
            let txn = self.read()?;
            let keys = match txn.open_table(WAITING_KEYS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(map_err(e)),
            };
            if keys.first().map_err(map_err)?.is_none() {
                return Ok(Vec::new());
            }
            let mut ids = std::collections::BTreeSet::new();
            for key in wanted {
                let (cmd, correlation) = (key.cmd.as_str(), key.correlation_id.as_str());
                for entry in keys
                    .range((cmd, correlation, 0)..=(cmd, correlation, u64::MAX))
                    .map_err(map_err)?
                {
                    let (k, _) = entry.map_err(map_err)?;
                    ids.insert(k.value().2);
                }
            }
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let table = txn.open_table(WAITING).map_err(map_err)?;
            ids.into_iter()
                .filter_map(|id| match table.get(id) {
                    Ok(v) => v.map(|v| record(id, v.value())),
                    Err(e) => Some(Err(map_err(e))),
                })
                .collect()
        })
    }

    fn list_waiting(
        &self,
        correlation_id: Option<&str>,
        state: Option<WaitState>,
    ) -> Result<Vec<WaitingRecord>> {
        self.run("list_waiting", || {
            let txn = self.read()?;
            let table = match txn.open_table(WAITING) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(map_err(e)),
            };
            let mut out = Vec::new();
            for entry in table.iter().map_err(map_err)? {
                let (k, v) = entry.map_err(map_err)?;
                let r = record(k.value(), v.value())?;
                if correlation_id.is_none_or(|c| r.correlation_id == c)
                    && state.is_none_or(|s| r.state == s)
                {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    fn release_waiting(
        &self,
        batch: Vec<PendingEvent>,
        claim: Claim,
    ) -> Result<Option<Vec<Event>>> {
        self.group.release(batch, claim, |entries| {
            self.run("release_waiting", || self.commit_group(entries))
        })
    }

    fn close_waiting(&self, id: u64, state: WaitState, at: i64) -> Result<bool> {
        eventlite_core::spi::check_closing_state(state)?;
        self.run("close_waiting", || {
            let txn = self.shared.begin_write()?;
            let closed = close(&txn, id, state, at, None)?;
            self.shared.commit(txn, 1)?;
            let was_open = closed.is_some();
            self.forget_keys(closed.unwrap_or_default());
            Ok(was_open)
        })
    }
}
