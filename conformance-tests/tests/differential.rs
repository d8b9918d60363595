//! SQLite and redb, driven by the same random operation sequences under random index
//! configurations, must answer every query, page and count identically.
use eventlite_conformance::{BackendFactory, MemoryFactory, model_check};
use eventlite_core::{Durability, IndexConfig};
use eventlite_redb::{RedbBackend, RedbOptions};
use eventlite_sqlite::{SqliteBackend, SqliteOptions};

#[derive(Debug, Default)]
struct Sqlite;

impl BackendFactory for Sqlite {
    type Backend = SqliteBackend;
    type Location = tempfile::TempDir;
    fn location(&self) -> anyhow::Result<tempfile::TempDir> {
        Ok(tempfile::tempdir()?)
    }
    fn open(&self, dir: &tempfile::TempDir, indexes: IndexConfig) -> anyhow::Result<SqliteBackend> {
        let options = SqliteOptions {
            indexes,
            durability: Durability::Relaxed,
            ..SqliteOptions::default()
        };
        Ok(SqliteBackend::open(dir.path().join("e.sqlite"), options)?)
    }
    fn open_as_found(&self, dir: &tempfile::TempDir) -> anyhow::Result<SqliteBackend> {
        let options = SqliteOptions {
            indexes_as_found: true,
            durability: Durability::Relaxed,
            ..SqliteOptions::default()
        };
        Ok(SqliteBackend::open(dir.path().join("e.sqlite"), options)?)
    }
}

#[derive(Debug, Default)]
struct Redb;

impl BackendFactory for Redb {
    type Backend = RedbBackend;
    type Location = tempfile::TempDir;
    fn location(&self) -> anyhow::Result<tempfile::TempDir> {
        Ok(tempfile::tempdir()?)
    }
    fn open(&self, dir: &tempfile::TempDir, indexes: IndexConfig) -> anyhow::Result<RedbBackend> {
        let options = RedbOptions {
            indexes,
            durability: Durability::Relaxed,
            cache_size: 4 * 1024 * 1024,
            ..RedbOptions::default()
        };
        Ok(RedbBackend::open(dir.path().join("e.redb"), options)?)
    }
    fn open_as_found(&self, dir: &tempfile::TempDir) -> anyhow::Result<RedbBackend> {
        let options = RedbOptions {
            indexes_as_found: true,
            durability: Durability::Relaxed,
            cache_size: 4 * 1024 * 1024,
            ..RedbOptions::default()
        };
        Ok(RedbBackend::open(dir.path().join("e.redb"), options)?)
    }
}

#[test]
fn sqlite_and_redb_answer_identically() -> anyhow::Result<()> {
    model_check::run_differential::<Sqlite, Redb>(model_check::cases())
}

#[test]
fn reference_and_redb_answer_identically() -> anyhow::Result<()> {
    model_check::run_differential::<MemoryFactory, Redb>(model_check::cases())
}
