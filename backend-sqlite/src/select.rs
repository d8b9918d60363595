//! Event reads on statements we own.
//!
//! rusqlite reads a text column with three C calls (type, text, bytes), each taking and
//! releasing the connection's mutex, plus its own conversion layers: a noticeable share of a
//! streamed event for a 13-column row. Here a text column is two calls, a NOT NULL integer
//! one, and the row is checked against its checksum on the fields borrowed from SQLite's
//! buffers.

use std::collections::HashMap;
use std::ffi::c_int;

use eventlite_core::spi::EventFields;
use eventlite_core::{Error, Event, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, ffi};

use crate::stmt::{RawStmt, bind_opt_int, bind_text, check, error};
use crate::{ENGINE, map_err};

/// Statements kept per reader connection; past this the cache starts over (the LIMIT is part
/// of the SQL, so a caller cycling through many page sizes could otherwise grow it forever).
const CAPACITY: usize = 64;

/// A reader connection's prepared event SELECTs, by SQL text (kept beside the connection in
/// a [`crate::conn::ReaderConn`]).
#[derive(Debug, Default)]
pub(crate) struct Selects<'c> {
    cache: HashMap<String, RawStmt<'c>>,
    /// The get-by-id statement, kept apart: a get is short enough that formatting, hashing
    /// and copying its SQL for the cache would be a large part of it.
    by_id: Option<RawStmt<'c>>,
}

impl<'c> Selects<'c> {
    /// The event with id `id`, checked against its stored checksum.
    pub(crate) fn by_id(&mut self, conn: &'c Connection, id: i64) -> Result<Option<Event>> {
        let stmt = match &mut self.by_id {
            Some(stmt) => stmt,
            None => {
                let sql = format!("SELECT {} FROM queue WHERE id = ?", crate::sql::COLUMNS);
                self.by_id
                    .insert(RawStmt::prepare(conn, &sql).map_err(map_err)?)
            }
        };
        let mut found = None;
        run(stmt, conn, &[Value::Integer(id)], |row| {
            // SAFETY: `run` calls this on a row of a SELECT of `COLUMNS`.
            found = Some(unsafe { with_fields(row, |fields| fields.to_event()) }??);
            Ok(())
        })?;
        Ok(found)
    }

    /// Runs `sql` (a SELECT of [`crate::sql::COLUMNS`]) with `params` on `conn`, and leaves
    /// its rows in `out` as events, each checked against its stored checksum. The events `out`
    /// held are overwritten in place, reusing their strings' buffers.
    pub(crate) fn events_into(
        &mut self,
        conn: &'c Connection,
        sql: &str,
        params: &[Value],
        out: &mut Vec<Event>,
    ) -> Result<()> {
        let mut n = 0;
        self.each_row(conn, sql, params, |row| {
            // SAFETY: `run` calls this on a row of a SELECT of `COLUMNS`.
            unsafe {
                with_fields(row, |fields| match out.get_mut(n) {
                    Some(event) => fields.write_into(event),
                    None => fields.to_event().map(|e| out.push(e)),
                })
            }??;
            n += 1;
            Ok(())
        })?;
        out.truncate(n);
        Ok(())
    }

    /// Runs the cached statement for `sql`, preparing it on first use.
    fn each_row(
        &mut self,
        conn: &'c Connection,
        sql: &str,
        params: &[Value],
        on_row: impl FnMut(*mut ffi::sqlite3_stmt) -> Result<()>,
    ) -> Result<()> {
        if let Some(stmt) = self.cache.get_mut(sql) {
            return run(stmt, conn, params, on_row);
        }
        if self.cache.len() >= CAPACITY {
            self.cache.clear();
        }
        let stmt = RawStmt::prepare(conn, sql).map_err(map_err)?;
        run(
            self.cache.entry(sql.to_owned()).or_insert(stmt),
            conn,
            params,
            on_row,
        )
    }
}

#[cfg(test)]
impl Selects<'_> {
    /// The virtual machine steps the cached statement for `sql` took since the last call (a
    /// measure of the rows it visited), if there is one.
    pub(crate) fn take_vm_steps(&self, sql: &str) -> Option<c_int> {
        let stmt = self.cache.get(sql)?;
        // SAFETY: a live statement; the call reads and resets a counter.
        Some(unsafe { ffi::sqlite3_stmt_status(stmt.as_ptr(), ffi::SQLITE_STMTSTATUS_VM_STEP, 1) })
    }

    /// How often SQLite re-prepared the cached statement for `sql`, if there is one.
    pub(crate) fn reprepares(&self, sql: &str) -> Option<c_int> {
        let stmt = self.cache.get(sql)?;
        // SAFETY: a live statement; the call only reads a counter.
        Some(unsafe {
            ffi::sqlite3_stmt_status(stmt.as_ptr(), ffi::SQLITE_STMTSTATUS_REPREPARE, 0)
        })
    }
}

/// Binds `params`, hands every row to `on_row` (which may read the row's columns), and
/// resets the statement: that drops the pointers into `params`, and ends the read so the
/// connection holds no snapshot while it waits in the pool.
fn run(
    stmt: &mut RawStmt<'_>,
    conn: &Connection,
    params: &[Value],
    on_row: impl FnMut(*mut ffi::sqlite3_stmt) -> Result<()>,
) -> Result<()> {
    let out = step_all(stmt.as_ptr(), conn, params, on_row);
    stmt.reset();
    out
}

fn step_all(
    raw: *mut ffi::sqlite3_stmt,
    conn: &Connection,
    params: &[Value],
    mut on_row: impl FnMut(*mut ffi::sqlite3_stmt) -> Result<()>,
) -> Result<()> {
    bind(raw, params).map_err(|rc| map_err(error(conn, rc)))?;
    loop {
        // SAFETY: a live statement whose parameters are bound to `params`, which outlive
        // the loop.
        match unsafe { ffi::sqlite3_step(raw) } {
            ffi::SQLITE_ROW => on_row(raw)?,
            ffi::SQLITE_DONE => return Ok(()),
            rc => return Err(map_err(error(conn, rc))),
        }
    }
}

fn bind(stmt: *mut ffi::sqlite3_stmt, params: &[Value]) -> std::result::Result<(), c_int> {
    // SAFETY: a live statement.
    let expected = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
    if usize::try_from(expected).ok() != Some(params.len()) {
        return Err(ffi::SQLITE_RANGE);
    }
    for (i, value) in (1..).zip(params) {
        // SAFETY (all binds): a live statement, a parameter number within its count, and text
        // that `params` keeps alive until the statement is reset and its bindings cleared.
        unsafe {
            match value {
                Value::Integer(v) => bind_opt_int(stmt, i, Some(*v))?,
                Value::Null => bind_opt_int(stmt, i, None)?,
                Value::Text(t) => bind_text(stmt, i, t)?,
                Value::Real(v) => check(ffi::sqlite3_bind_double(stmt, i, *v))?,
                Value::Blob(_) => return Err(ffi::SQLITE_MISMATCH),
            }
        }
    }
    Ok(())
}

/// Hands the row the statement is on to `f` as borrowed fields, once they match the stored
/// checksum.
///
/// NOT NULL integer columns are read without a type check: SQLite converts whatever is
/// there, and the checksum (over id, version and datetime too) catches a value that is not
/// the one written.
///
/// # Safety
/// `stmt` is live and positioned on a row of a SELECT of [`crate::sql::COLUMNS`].
unsafe fn with_fields<T>(
    stmt: *mut ffi::sqlite3_stmt,
    f: impl for<'row> FnOnce(EventFields<'row>) -> T,
) -> Result<T> {
    // SAFETY (every column read): per the function's contract, with column numbers below 13.
    // The texts borrow SQLite's buffers, which stay valid until the next step or reset; `f`
    // cannot keep them (its result outlives no `'row`), and nothing steps before it returns.
    unsafe {
        let id = ffi::sqlite3_column_int64(stmt, 0);
        let id = u64::try_from(id).map_err(|_| Error::corrupt(format!("bad event id {id}")))?;
        let bad = |column: &str, what: &str| Error::corrupt(format!("event {id}: {column} {what}"));
        let unreadable = |column: &str, e: Unreadable| match e {
            Unreadable::NotUtf8 => bad(column, "is not UTF-8"),
            Unreadable::OutOfMemory => Error::backend(
                ENGINE,
                format!("event {id}: out of memory reading {column}"),
                std::io::Error::from(std::io::ErrorKind::OutOfMemory),
            ),
        };
        let required = |col: c_int, column: &str| {
            text(stmt, col)
                .map_err(|e| unreadable(column, e))?
                .ok_or_else(|| bad(column, "is NULL"))
        };
        let version = ffi::sqlite3_column_int64(stmt, 1);
        let fields = EventFields {
            id,
            version: u32::try_from(version).map_err(|_| bad("version", "out of range"))?,
            datetime: ffi::sqlite3_column_int64(stmt, 2),
            user: required(3, "user")?,
            ip: required(4, "ip")?,
            cmd: required(5, "cmd")?,
            data: required(6, "data")?,
            correlation_id: required(7, "correlation_id")?,
            causation_id: optional_id(stmt, 8).map_err(|what| bad("causation_id", what))?,
            metadata: required(9, "metadata")?,
            stream: text(stmt, 10).map_err(|e| unreadable("stream", e))?,
            stream_version: optional_id(stmt, 11).map_err(|what| bad("stream_version", what))?,
        };
        let stored = ffi::sqlite3_column_int64(stmt, 12);
        let stored = u32::try_from(stored).map_err(|_| bad("checksum", "out of range"))?;
        fields.verify(stored)?;
        Ok(f(fields))
    }
}

/// Why a text column could not be read.
enum Unreadable {
    NotUtf8,
    OutOfMemory,
}

/// A text column, borrowed from SQLite's buffer: `None` for NULL.
///
/// # Safety
/// `stmt` is live and on a row with a column `col`, and the text is not used after the next
/// step, reset or type conversion of this column (`'a` is the caller's to bound).
unsafe fn text<'a>(
    stmt: *mut ffi::sqlite3_stmt,
    col: c_int,
) -> std::result::Result<Option<&'a str>, Unreadable> {
    // SAFETY: per the function's contract; `column_bytes` after `column_text` converts
    // nothing, so the pointer stays valid.
    unsafe {
        let ptr = ffi::sqlite3_column_text(stmt, col);
        let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, col)).unwrap_or(0);
        if ptr.is_null() {
            // NULL, an empty value, or SQLite out of memory converting the value to text.
            return match ffi::sqlite3_column_type(stmt, col) {
                ffi::SQLITE_NULL => Ok(None),
                _ if len == 0 => Ok(Some("")),
                _ => Err(Unreadable::OutOfMemory),
            };
        }
        let bytes = std::slice::from_raw_parts(ptr, len);
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Unreadable::NotUtf8)
    }
}

/// A nullable id column (causation, stream version): `None` for NULL.
///
/// # Safety
/// `stmt` is live and on a row with a column `col`.
unsafe fn optional_id(
    stmt: *mut ffi::sqlite3_stmt,
    col: c_int,
) -> std::result::Result<Option<u64>, &'static str> {
    // SAFETY: per the function's contract.
    unsafe {
        match ffi::sqlite3_column_type(stmt, col) {
            ffi::SQLITE_NULL => Ok(None),
            ffi::SQLITE_INTEGER => u64::try_from(ffi::sqlite3_column_int64(stmt, col))
                .map(Some)
                .map_err(|_| "out of range"),
            _ => Err("is not an integer"),
        }
    }
}
