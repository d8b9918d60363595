//! Stores for the tests: each in a schema of its own on the server at `EVENTLITE_PG_URL`
//! (started by `scripts/with-postgres`), dropped with its location.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use eventlite_conformance::BackendFactory;
use eventlite_core::{Durability, IndexConfig, IndexName};
use eventlite_postgres::{PostgresBackend, PostgresOptions};

/// The server's URL, when the tests have one.
pub fn url() -> Option<String> {
    std::env::var("EVENTLITE_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Why the PostgreSQL tests cannot run here, if they cannot. With `EVENTLITE_REQUIRE_PG` set
/// (CI sets it) a missing server is a failure instead.
pub fn unavailable() -> Option<String> {
    if url().is_some() || std::env::var_os("EVENTLITE_REQUIRE_PG").is_some() {
        return None;
    }
    Some(
        "EVENTLITE_PG_URL is not set; run them against a throwaway server with \
         `scripts/with-postgres cargo test --workspace`"
            .into(),
    )
}

/// The server's URL, or an error saying how to get one.
pub fn require_url() -> anyhow::Result<String> {
    url().ok_or_else(|| {
        anyhow::anyhow!(
            "EVENTLITE_PG_URL is not set (and EVENTLITE_REQUIRE_PG is): run the tests through \
             scripts/with-postgres"
        )
    })
}

/// A schema of its own for one store; dropped (with everything in it) when this is.
#[derive(Debug)]
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Schema {
    pub fn new() -> anyhow::Result<Schema> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        Ok(Schema {
            url: require_url()?,
            name: format!("t{}_{n}_{nanos}", std::process::id()),
        })
    }

    pub fn options(&self, indexes: IndexConfig) -> PostgresOptions {
        PostgresOptions {
            schema: self.name.clone(),
            indexes,
            // The semantics under test do not depend on the server's fsync.
            durability: Durability::Relaxed,
            pool_size: 4,
            ..PostgresOptions::new(self.url.clone())
        }
    }

    /// A store here with every index (see [`options`](Self::options)).
    pub fn store(&self) -> anyhow::Result<eventlite_core::EventStore<PostgresBackend>> {
        Ok(eventlite_core::EventStore::new(PostgresBackend::open(
            self.options(IndexConfig::all()),
        )?))
    }

    /// A plain client of the server, for what the tests do behind the store's back.
    pub fn admin(&self) -> anyhow::Result<postgres::Client> {
        Ok(postgres::Client::connect(&self.url, postgres::NoTls)?)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// PostgreSQL stores, each in a fresh schema.
#[derive(Debug, Default)]
pub struct PgFactory;

impl BackendFactory for PgFactory {
    type Backend = PostgresBackend;
    type Location = Schema;

    fn location(&self) -> anyhow::Result<Schema> {
        Schema::new()
    }

    fn open(&self, schema: &Schema, indexes: IndexConfig) -> anyhow::Result<PostgresBackend> {
        Ok(PostgresBackend::open(schema.options(indexes))?)
    }

    fn open_as_found(&self, schema: &Schema) -> anyhow::Result<PostgresBackend> {
        let options = PostgresOptions {
            // Deliberately unlike any profile: it must be ignored.
            indexes: IndexConfig::from_names([IndexName::Version]),
            indexes_as_found: true,
            ..schema.options(IndexConfig::none())
        };
        Ok(PostgresBackend::open(options)?)
    }

    fn unavailable(&self) -> Option<String> {
        unavailable()
    }
}
