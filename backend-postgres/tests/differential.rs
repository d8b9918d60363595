//! PostgreSQL and SQLite, driven by the same random operation sequences under random index
//! configurations, must answer every query, page and count identically.
mod common;

use eventlite_conformance::{BackendFactory, model_check};
use eventlite_core::{Durability, IndexConfig};
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

#[test]
fn postgres_and_sqlite_answer_identically() -> anyhow::Result<()> {
    eventlite_conformance::run_or_skip(common::PgFactory, |_| {
        model_check::run_differential::<common::PgFactory, Sqlite>(model_check::cases())
    })
}
