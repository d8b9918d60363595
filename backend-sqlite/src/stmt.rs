//! A prepared statement we own through SQLite's C API, for the two hot paths (appends and
//! event reads) where rusqlite's per-value work showed up in profiles.

use std::ffi::{CStr, c_char, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use rusqlite::{Connection, ffi};

/// A statement prepared on the connection it borrows for `'c`, finalized on drop.
///
/// The borrow is what keeps it sound: a statement must be finalized before its connection
/// closes (rusqlite panics otherwise), and this one cannot outlive the connection. Owners that
/// keep statements beside their connection do so in a self-referential cell of `crate::conn`,
/// which drops them first.
pub(crate) struct RawStmt<'c> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    conn: PhantomData<&'c Connection>,
}

// SAFETY: a statement is only used by whoever holds its connection (the writer behind its
// mutex, a reader taken out of the pool), so never from two threads at once; SQLite
// connections in multi-thread mode may move between threads, and their statements with them.
unsafe impl Send for RawStmt<'_> {}

impl std::fmt::Debug for RawStmt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawStmt")
    }
}

impl<'c> RawStmt<'c> {
    /// Prepares `sql` on `conn`, for repeated use.
    pub(crate) fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        let len = c_int::try_from(sql.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        let mut raw = ptr::null_mut();
        // SAFETY: the handle is valid while `conn` lives; `sql` outlives the call and its length
        // is passed, so no NUL terminator is needed.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                conn.handle(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                ptr::null_mut(),
            )
        };
        match NonNull::new(raw) {
            Some(stmt) if rc == ffi::SQLITE_OK => Ok(RawStmt {
                stmt,
                conn: PhantomData,
            }),
            other => {
                if let Some(raw) = other {
                    // SAFETY: a statement SQLite handed out, finalized once.
                    unsafe { ffi::sqlite3_finalize(raw.as_ptr()) };
                }
                Err(error(conn, rc))
            }
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::sqlite3_stmt {
        self.stmt.as_ptr()
    }

    /// Resets the statement and drops its bindings, so that no pointer into data the caller
    /// bound `SQLITE_STATIC` outlives the call that bound it.
    pub(crate) fn reset(&mut self) {
        // SAFETY: a live statement. Reset's return repeats the last step's error, which the
        // caller already has.
        unsafe {
            ffi::sqlite3_reset(self.as_ptr());
            ffi::sqlite3_clear_bindings(self.as_ptr());
        }
    }
}

impl Drop for RawStmt<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once, while the connection it borrows is open.
        unsafe { ffi::sqlite3_finalize(self.as_ptr()) };
    }
}

pub(crate) fn check(rc: c_int) -> Result<(), c_int> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// # Safety
/// `stmt` is live and `text` stays alive and unmoved until the binding is cleared.
pub(crate) unsafe fn bind_text(
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
    text: &str,
) -> Result<(), c_int> {
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
pub(crate) unsafe fn bind_opt_int(
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
pub(crate) fn error(conn: &Connection, rc: c_int) -> rusqlite::Error {
    // SAFETY: the handle is valid while `conn` lives; the message is copied before any other
    // call on the connection can change it.
    let msg = unsafe {
        let m = ffi::sqlite3_errmsg(conn.handle());
        (!m.is_null()).then(|| CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg)
}
