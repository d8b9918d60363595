//! The append path's INSERT statements, bound without copying the strings.
//!
//! rusqlite binds every string with `SQLITE_TRANSIENT`, so SQLite mallocs and copies each one
//! before the insert copies it again into the row. An append binds ~6 strings per event, and in
//! bulk appends that copy (plus clearing rusqlite's cached statement) was ~24% of the writer's
//! instructions. Here the strings are bound `SQLITE_STATIC`: SQLite reads them in place while
//! the statement steps, and the bindings are cleared before [`InsertStmt::insert`] returns, so
//! no pointer into a caller's event outlives the call.

use std::ffi::{CStr, c_char, c_int};
use std::ptr::{self, NonNull};

use eventlite_core::EventFields;
use rusqlite::{Connection, ffi};

use crate::sql::clamp;

/// One row of the `queue` table: the event's fields and their checksum. `fields.id` is the id
/// SQLite must assign (see [`InsertStmt::insert`]).
pub(crate) struct Row<'a> {
    pub fields: EventFields<'a>,
    pub checksum: u32,
}

/// Parameters per row (every column but `id`).
const PARAMS: usize = 12;

/// A prepared `INSERT … VALUES (…), …` of a fixed number of rows on the writer connection.
///
/// It must be dropped before its connection (rusqlite panics when it closes a connection that
/// still has statements): [`crate::Writer`] declares its statements before the connection.
pub(crate) struct InsertStmt {
    raw: NonNull<ffi::sqlite3_stmt>,
    rows: usize,
}

// SAFETY: the statement is only used while its connection's mutex is held (it lives inside
// `Writer`, next to the connection), so it is never used from two threads at once; SQLite
// connections in the default serialized/multi-thread mode may move between threads.
unsafe impl Send for InsertStmt {}

impl std::fmt::Debug for InsertStmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsertStmt")
            .field("rows", &self.rows)
            .finish()
    }
}

impl InsertStmt {
    /// Prepares the statement for `rows` rows on `conn`.
    pub(crate) fn prepare(conn: &Connection, rows: usize) -> rusqlite::Result<Self> {
        let sql = crate::sql::insert_sql(rows);
        let len = c_int::try_from(sql.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        let mut raw = ptr::null_mut();
        // SAFETY: the handle is valid while `conn` lives; `sql` outlives the call and its length
        // is passed, so no NUL terminator is needed.
        let rc = unsafe {
            let db = conn.handle();
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                ptr::null_mut(),
            )
        };
        match NonNull::new(raw) {
            Some(raw) if rc == ffi::SQLITE_OK => Ok(InsertStmt { raw, rows }),
            other => {
                if let Some(raw) = other {
                    // SAFETY: a statement SQLite handed out, finalized once.
                    unsafe { ffi::sqlite3_finalize(raw.as_ptr()) };
                }
                Err(error(conn, rc))
            }
        }
    }

    /// Inserts exactly as many rows as the statement was prepared for, in one step.
    pub(crate) fn insert(&mut self, conn: &Connection, rows: &[Row<'_>]) -> rusqlite::Result<()> {
        debug_assert_eq!(rows.len(), self.rows);
        let stmt = self.raw.as_ptr();
        let outcome = self.bind_all(rows).and_then(|()| {
            // SAFETY: a live statement with every parameter bound to data that outlives the
            // step (borrowed by `rows`).
            match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_DONE => Ok(()),
                rc => Err(rc),
            }
        });
        // The id column is left out, so SQLite assigns max(id) + 1 per row (no AUTOINCREMENT)
        // without the uniqueness seek an explicit id costs (~5% of a bulk append). The caller
        // computed the same ids (and checksummed them) from MAX(id) in this transaction; were
        // SQLite ever to pick another, the append fails here and its transaction rolls back.
        let outcome = outcome.map_err(|rc| error(conn, rc)).and_then(|()| {
            let expected = rows.last().map_or(0, |r| clamp(r.fields.id));
            // SAFETY: the handle is valid while `conn` lives.
            let got = unsafe { ffi::sqlite3_last_insert_rowid(conn.handle()) };
            if got == expected {
                Ok(())
            } else {
                Err(rusqlite::Error::SqliteFailure(
                    ffi::Error::new(ffi::SQLITE_MISMATCH),
                    Some(format!("SQLite assigned id {got}, expected {expected}")),
                ))
            }
        });
        // SAFETY: a live statement. Clearing drops the pointers into `rows` before the borrow
        // ends; reset's return repeats the step's error, which `outcome` already holds.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        outcome
    }

    fn bind_all(&mut self, rows: &[Row<'_>]) -> Result<(), c_int> {
        if rows.len() != self.rows {
            return Err(ffi::SQLITE_MISUSE);
        }
        let stmt = self.raw.as_ptr();
        let mut k: c_int = 0;
        let mut next = || {
            k += 1;
            k
        };
        for Row {
            fields: f,
            checksum,
        } in rows
        {
            // SAFETY (all binds): a live statement, parameter numbers 1..=rows*PARAMS, and text
            // that stays borrowed until `insert` has cleared the bindings.
            unsafe {
                check(ffi::sqlite3_bind_int64(stmt, next(), i64::from(f.version)))?;
                check(ffi::sqlite3_bind_int64(stmt, next(), f.datetime))?;
                bind_text(stmt, next(), f.user)?;
                bind_text(stmt, next(), f.ip)?;
                bind_text(stmt, next(), f.cmd)?;
                bind_text(stmt, next(), f.data)?;
                bind_text(stmt, next(), f.correlation_id)?;
                bind_opt_int(stmt, next(), f.causation_id.map(clamp))?;
                bind_text(stmt, next(), f.metadata)?;
                match f.stream {
                    Some(s) => bind_text(stmt, next(), s)?,
                    None => check(ffi::sqlite3_bind_null(stmt, next()))?,
                }
                bind_opt_int(stmt, next(), f.stream_version.map(clamp))?;
                check(ffi::sqlite3_bind_int64(stmt, next(), i64::from(*checksum)))?;
            }
        }
        debug_assert_eq!(k as usize, self.rows * PARAMS);
        Ok(())
    }
}

impl Drop for InsertStmt {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, before the connection closes (see the type's docs).
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

fn check(rc: c_int) -> Result<(), c_int> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// # Safety
/// `stmt` is live and `text` stays alive and unmoved until the binding is cleared.
unsafe fn bind_text(stmt: *mut ffi::sqlite3_stmt, i: c_int, text: &str) -> Result<(), c_int> {
    // A length beyond SQLite's limit comes back as SQLITE_TOOBIG, not as a truncation.
    let len = text.len() as u64;
    // SAFETY: per the function's contract; the length is given, so no NUL is read.
    check(unsafe {
        ffi::sqlite3_bind_text64(
            stmt,
            i,
            text.as_ptr().cast::<c_char>(),
            len,
            ffi::SQLITE_STATIC(),
            ffi::SQLITE_UTF8 as u8,
        )
    })
}

/// # Safety
/// `stmt` is live.
unsafe fn bind_opt_int(
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
    v: Option<i64>,
) -> Result<(), c_int> {
    // SAFETY: per the function's contract.
    check(unsafe {
        match v {
            Some(v) => ffi::sqlite3_bind_int64(stmt, i, v),
            None => ffi::sqlite3_bind_null(stmt, i),
        }
    })
}

/// rusqlite's error for a result code, with the connection's message.
fn error(conn: &Connection, rc: c_int) -> rusqlite::Error {
    // SAFETY: the handle is valid while `conn` lives; the message is copied before any other
    // call on the connection can change it.
    let msg = unsafe {
        let m = ffi::sqlite3_errmsg(conn.handle());
        (!m.is_null()).then(|| CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg)
}
