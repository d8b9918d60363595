//! The append path's write transaction on statements prepared once.
//!
//! rusqlite's `Transaction` runs `BEGIN IMMEDIATE` and `COMMIT` through `execute_batch`, which
//! parses and prepares them on every call, and its cached `SELECT MAX(id)` goes through a
//! statement-cache lookup and a `Rows` wrapper: a sizeable share of a one-event append when no
//! fsync dominates it (`Relaxed`).

use std::ops::Deref;

use rusqlite::{Connection, ffi};

use crate::stmt::{RawStmt, error};

/// `BEGIN IMMEDIATE`, `SELECT MAX(id)`, `COMMIT` and `ROLLBACK`, prepared on the writer.
#[derive(Debug)]
pub(crate) struct TxStmts<'c> {
    begin: RawStmt<'c>,
    last_id: RawStmt<'c>,
    commit: RawStmt<'c>,
    rollback: RawStmt<'c>,
}

impl<'c> TxStmts<'c> {
    /// Prepares the four statements (the `queue` table must exist).
    pub(crate) fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(TxStmts {
            begin: RawStmt::prepare(conn, "BEGIN IMMEDIATE")?,
            last_id: RawStmt::prepare(conn, "SELECT COALESCE(MAX(id), 0) FROM queue")?,
            commit: RawStmt::prepare(conn, "COMMIT")?,
            rollback: RawStmt::prepare(conn, "ROLLBACK")?,
        })
    }

    /// Begins an `IMMEDIATE` transaction on `conn` (waiting up to the busy timeout for the
    /// write lock). It rolls back when the returned guard drops without [`WriteTx::commit`].
    pub(crate) fn begin<'a>(
        &'a mut self,
        conn: &'a Connection,
    ) -> rusqlite::Result<WriteTx<'a, 'c>> {
        run(&mut self.begin, conn)?;
        Ok(WriteTx { stmts: self, conn })
    }
}

/// An open write transaction; derefs to its connection for the statements run inside it.
pub(crate) struct WriteTx<'a, 'c> {
    stmts: &'a mut TxStmts<'c>,
    conn: &'a Connection,
}

impl WriteTx<'_, '_> {
    /// The greatest id stored, 0 when there is none.
    pub(crate) fn last_id(&mut self) -> rusqlite::Result<i64> {
        let stmt = self.stmts.last_id.as_ptr();
        // SAFETY: a live statement without parameters on `self.conn`; the column is read
        // before the reset, while the row is current.
        let out = match unsafe { ffi::sqlite3_step(stmt) } {
            ffi::SQLITE_ROW => Ok(unsafe { ffi::sqlite3_column_int64(stmt, 0) }),
            rc => Err(error(self.conn, rc)),
        };
        self.stmts.last_id.reset();
        out
    }

    /// Commits. A failure goes through `on_error` while the connection still holds its
    /// details (the OS error of a failed write), then the transaction is rolled back as the
    /// guard drops, so nothing of it stays behind and the connection is ready for the next one.
    pub(crate) fn commit<E>(
        self,
        on_error: impl FnOnce(&Connection, rusqlite::Error) -> E,
    ) -> Result<(), E> {
        let conn = self.conn;
        run(&mut self.stmts.commit, conn).map_err(|e| on_error(conn, e))
    }
}

impl Deref for WriteTx<'_, '_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_, '_> {
    fn drop(&mut self) {
        // Committed, or already rolled back by SQLite (an `OR ROLLBACK` conflict, some I/O
        // errors): nothing is open.
        if !self.conn.is_autocommit() {
            // A failed rollback leaves the transaction open; the next BEGIN then fails with a
            // typed error rather than nesting, and SQLite rolls back when the connection closes.
            let _ = run(&mut self.stmts.rollback, self.conn);
        }
    }
}

/// Steps a statement that returns no rows, then resets it.
fn run(stmt: &mut RawStmt<'_>, conn: &Connection) -> rusqlite::Result<()> {
    // SAFETY: a live statement without parameters, prepared on `conn`.
    let out = match unsafe { ffi::sqlite3_step(stmt.as_ptr()) } {
        ffi::SQLITE_DONE => Ok(()),
        rc => Err(error(conn, rc)),
    };
    stmt.reset();
    out
}
