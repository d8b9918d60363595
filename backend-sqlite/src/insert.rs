//! The append path's INSERT statements, bound without copying the strings.
//!
//! rusqlite binds every string with `SQLITE_TRANSIENT`, so SQLite mallocs and copies each one
//! before the insert copies it again into the row; an append binds ~6 strings per event, so in
//! bulk appends that copy is a large share of the writer's work. Here the strings are bound
//! `SQLITE_STATIC`: SQLite reads them in place while
//! the statement steps, and the bindings are cleared before [`InsertStmt::insert`] returns, so
//! no pointer into a caller's event outlives the call.

use std::ffi::c_int;

use eventlite_core::spi::EventFields;
use rusqlite::{Connection, ffi};

use crate::sql::clamp;
use crate::stmt::{RawStmt, bind_opt_int, bind_text, check, error};

/// One row of the `queue` table: the event's fields and their checksum. `fields.id` is the id
/// SQLite must assign (see [`InsertStmt::insert`]).
pub(crate) struct Row<'a> {
    pub fields: EventFields<'a>,
    pub checksum: u32,
}

/// Parameters per row (every column but `id`).
const PARAMS: usize = 12;

/// A prepared `INSERT … VALUES (…), …` of a fixed number of rows on the writer connection.
#[derive(Debug)]
pub(crate) struct InsertStmt<'c> {
    stmt: RawStmt<'c>,
    rows: usize,
}

impl<'c> InsertStmt<'c> {
    /// Prepares the statement for `rows` rows on `conn`.
    pub(crate) fn prepare(conn: &'c Connection, rows: usize) -> rusqlite::Result<Self> {
        let stmt = RawStmt::prepare(conn, &crate::sql::insert_sql(rows))?;
        Ok(InsertStmt { stmt, rows })
    }

    /// Inserts exactly as many rows as the statement was prepared for, in one step.
    pub(crate) fn insert(&mut self, conn: &Connection, rows: &[Row<'_>]) -> rusqlite::Result<()> {
        debug_assert_eq!(rows.len(), self.rows);
        let stmt = self.stmt.as_ptr();
        let outcome = self.bind_all(rows).and_then(|()| {
            // SAFETY: a live statement with every parameter bound to data that outlives the
            // step (borrowed by `rows`).
            match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_DONE => Ok(()),
                rc => Err(rc),
            }
        });
        // The id column is left out, so SQLite assigns max(id) + 1 per row (no AUTOINCREMENT)
        // without the uniqueness seek an explicit id costs. The caller
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
        // Drops the pointers into `rows` before their borrow ends.
        self.stmt.reset();
        outcome
    }

    /// Binds every row. Every parameter is NULL on entry: a statement starts with NULL
    /// parameters, and [`InsertStmt::insert`] clears them before it returns, whatever happened.
    fn bind_all(&mut self, rows: &[Row<'_>]) -> Result<(), c_int> {
        if rows.len() != self.rows {
            return Err(ffi::SQLITE_MISUSE);
        }
        let stmt = self.stmt.as_ptr();
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
                // An absent value is left unbound: every parameter is NULL on entry (see
                // above), and most events have no causation and no stream.
                let k = next();
                if let Some(id) = f.causation_id {
                    bind_opt_int(stmt, k, Some(clamp(id)))?;
                }
                bind_text(stmt, next(), f.metadata)?;
                let k = next();
                if let Some(s) = f.stream {
                    bind_text(stmt, k, s)?;
                }
                let k = next();
                if let Some(v) = f.stream_version {
                    bind_opt_int(stmt, k, Some(clamp(v)))?;
                }
                check(ffi::sqlite3_bind_int64(stmt, next(), i64::from(*checksum)))?;
            }
        }
        debug_assert_eq!(k as usize, self.rows * PARAMS);
        Ok(())
    }
}
