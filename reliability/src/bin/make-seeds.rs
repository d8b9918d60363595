//! Writes small valid stores of each engine into a directory: seed inputs for the fuzzers in
//! `fuzz/` (which then mutate real files instead of guessing headers).
use anyhow::{Context, Result};
use eventlite_core::{Durability, ExpectedVersion, NewEvent};
use eventlite_reliability::{Kind, open};

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).context("usage: make-seeds DIR")?;
    std::fs::create_dir_all(&dir)?;
    for kind in [Kind::Sqlite, Kind::Redb] {
        let path = std::path::Path::new(&dir).join(kind.file());
        let store = open(kind, &path, Durability::Immediate)?;
        for i in 0..20u64 {
            let mut e = NewEvent::new(["a", "b"][(i % 2) as usize])
                .user("u")
                .correlation_id("g")
                .data(&i);
            if i % 5 == 0 {
                e = e.stream("s", ExpectedVersion::Any);
            }
            store.store(e)?;
        }
        drop(store);
        println!(
            "{} {} bytes",
            path.display(),
            std::fs::metadata(&path)?.len()
        );
    }
    Ok(())
}
