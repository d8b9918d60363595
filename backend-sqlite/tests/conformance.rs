//! The conformance suite on SQLite files in temporary directories.
use eventlite_conformance::BackendFactory;
use eventlite_core::{Durability, IndexConfig, IndexName};
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

    fn open_as_found(&self, dir: &Self::Location) -> anyhow::Result<SqliteBackend> {
        let options = SqliteOptions {
            // Deliberately unlike any profile: it must be ignored.
            indexes: IndexConfig::from_names([IndexName::Version]),
            indexes_as_found: true,
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
