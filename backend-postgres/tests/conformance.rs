//! The conformance suite on a PostgreSQL server (`scripts/with-postgres`), a schema per store.
mod common;

use common::PgFactory;

eventlite_conformance::conformance_suite!(PgFactory);
