//! The conformance suite on redb files in temporary directories.
use eventlite_conformance::BackendFactory;
use eventlite_core::{Durability, IndexConfig, IndexName};
use eventlite_redb::{RedbBackend, RedbOptions};

/// redb stores in temporary directories. `Relaxed` durability keeps the suite fast; the
/// semantics under test do not depend on fsync.
#[derive(Debug, Default)]
struct RedbFactory;

impl BackendFactory for RedbFactory {
    type Backend = RedbBackend;
    type Location = tempfile::TempDir;

    fn location(&self) -> anyhow::Result<Self::Location> {
        Ok(tempfile::tempdir()?)
    }

    fn open(&self, dir: &Self::Location, indexes: IndexConfig) -> anyhow::Result<RedbBackend> {
        let options = RedbOptions {
            indexes,
            durability: Durability::Relaxed,
            cache_size: 4 * 1024 * 1024,
            ..RedbOptions::default()
        };
        Ok(RedbBackend::open(dir.path().join("events.redb"), options)?)
    }

    fn open_as_found(&self, dir: &Self::Location) -> anyhow::Result<RedbBackend> {
        let options = RedbOptions {
            // Deliberately unlike any profile: it must be ignored.
            indexes: IndexConfig::from_names([IndexName::Version]),
            indexes_as_found: true,
            durability: Durability::Relaxed,
            cache_size: 4 * 1024 * 1024,
            ..RedbOptions::default()
        };
        Ok(RedbBackend::open(dir.path().join("events.redb"), options)?)
    }
}

eventlite_conformance::conformance_suite!(RedbFactory);
