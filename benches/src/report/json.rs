//! The run as JSON, and back: `--json` writes it, `--render` reads an earlier one to print its
//! tables again. Writer and reader live together so that the two agree on the document's shape.

use anyhow::Result;

use crate::Setup;
use crate::harness::Bench;
use crate::report::targets::checks;

/// The run as a JSON document: its settings, the engines' versions and options, every row,
/// the paired cases and the targets checked; `seconds` is how long the run took.
pub fn document(b: &Bench, seconds: f64) -> Result<String> {
    let doc = serde_json::json!({
        "events": b.config.events,
        "runs": b.config.runs,
        "quick": b.config.quick,
        "sqlite_version": rusqlite::version(),
        "pragmas": {
            "sqlite": format!("{:?}", Setup::default().sqlite()),
            "redb": format!("{:?}", Setup::default().redb()),
        },
        "eventlite_version": env!("CARGO_PKG_VERSION"),
        "seconds": seconds,
        "rows": b.rows,
        "paired": b.paired,
        "targets": checks(b),
    });
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// Takes the rows, paired cases and settings of an earlier run's [`document`] into `b`, so
/// that its tables can be printed again. Settings the document lacks stay as `b` has them.
pub fn load(b: &mut Bench, text: &str) -> Result<()> {
    let doc: serde_json::Value = serde_json::from_str(text)?;
    b.rows = serde_json::from_value(doc["rows"].clone())?;
    if let Some(paired) = doc.get("paired") {
        b.paired = serde_json::from_value(paired.clone())?;
    }
    b.config.events = doc["events"].as_u64().unwrap_or(b.config.events);
    b.config.runs = doc["runs"].as_u64().map_or(b.config.runs, |r| r as usize);
    b.config.quick = doc["quick"].as_bool().unwrap_or(b.config.quick);
    Ok(())
}
