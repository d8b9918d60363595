//! Connections together with the statements prepared on them.
//!
//! A [`RawStmt`](crate::stmt::RawStmt) borrows its connection, so it cannot outlive it; to keep
//! statements prepared across calls they live in the same value as their connection, which
//! drops them first (self_cell's guarantee, not a field order).

use rusqlite::Connection;
use self_cell::self_cell;

use crate::checkpoint::Checkpointer;
use crate::insert::InsertStmt;
use crate::select::Selects;
use crate::tx::TxStmts;

self_cell!(
    /// A pooled reader connection and the event SELECTs prepared on it.
    pub(crate) struct ReaderConn {
        owner: Connection,
        #[covariant]
        dependent: Selects,
    }
    impl {Debug}
);

self_cell!(
    /// The writer connection, its append statements (prepared at the first append: the table
    /// may not exist before) and the checkpointer its WAL hook hands work to.
    pub(crate) struct WriterConn {
        owner: Connection,
        #[covariant]
        dependent: WriterParts,
    }
    impl {Debug}
);

/// What [`WriterConn`] keeps beside its connection.
#[derive(Debug, Default)]
pub(crate) struct WriterParts<'c> {
    pub(crate) insert_many: Option<InsertStmt<'c>>,
    pub(crate) insert_one: Option<InsertStmt<'c>>,
    pub(crate) tx: Option<TxStmts<'c>>,
    pub(crate) checkpoints: Option<Checkpointer<'c>>,
}

impl ReaderConn {
    /// A reader over `conn`, with no statement prepared yet.
    pub(crate) fn open(conn: Connection) -> Self {
        ReaderConn::new(conn, |_| Selects::default())
    }
}

impl WriterConn {
    /// The writer over `conn`, with no statement prepared yet.
    pub(crate) fn open(conn: Connection) -> Self {
        WriterConn::new(conn, |_| WriterParts::default())
    }
}
