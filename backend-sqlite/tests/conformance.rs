//! The conformance suite on SQLite files in temporary directories.
use eventlite_conformance::BackendFactory;
use eventlite_core::{Durability, IndexConfig};
use eventlite_sqlite::{SqliteBackend, SqliteOptions};

/// SQLite stores in temporary directories. `Relaxed` durability (WAL + NORMAL) keeps the suite
/// fast; the semantics under test do not depend on fsync.
#[derive(Debug, Default)]
struct SqliteFactory;

impl BackendFactory for SqliteFactory {
    type Backend = SqliteBackend;
    type Location = tempfile::TempDir;

    fn location(&self) -> anyhow::Result<Self::Location> {
        Ok(tempfile::tempdir()?)
    }

    fn open(&self, dir: &Self::Location, indexes: IndexConfig) -> anyhow::Result<SqliteBackend> {
        let options = SqliteOptions {
            indexes,
            durability: Durability::Relaxed,
            ..SqliteOptions::default()
        };
        Ok(SqliteBackend::open(
            dir.path().join("events.sqlite"),
            options,
        )?)
    }
}

eventlite_conformance::conformance_suite!(SqliteFactory);
