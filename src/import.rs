//! Bringing data over from elsewhere: JSON Lines (upstream's export format, and ours), and the
//! JavaScript EventLite Sourcing's SQLite file.

mod jsonl;

pub use jsonl::{JsonlOptions, JsonlReport, SkippedLine, jsonl, jsonl_with};

#[cfg(feature = "sqlite")]
mod upstream;

#[cfg(feature = "sqlite")]
pub use upstream::{ImportReport, SkippedRow, upstream_sqlite};
