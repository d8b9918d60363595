//! A crash while a new store is being created: the path must hold either nothing or a complete
//! store, never a file that no engine can open. `EVENTLITE_CREATE_KILLS` sets the number of
//! kills per engine (default 300).
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use eventlite_core::Durability;
use eventlite_core::spi::files::ABANDONED_AFTER;
use eventlite_reliability::{Kind, batch_event, check_store, open};

fn kills() -> u64 {
    std::env::var("EVENTLITE_CREATE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// What a kill left behind in the store's directory.
#[derive(Debug, Default)]
struct Seen {
    nothing: u64,
    /// A temporary store under construction: the kill landed mid-creation.
    mid_creation: u64,
    store: u64,
}

fn kill_during_creation(kind: Kind) -> Result<Seen> {
    let mut seen = Seen::default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..kills() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(kind.file());
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .args(["create", kind.name(), &path.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // 0–20 ms after the start, in 100 µs steps: across the process's start and creation.
        std::thread::sleep(Duration::from_micros(rng % 201 * 100));
        child.kill()?;
        child.wait()?;
        let left: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        if left.iter().any(|n| n.contains(".eventlite-new-")) {
            seen.mid_creation += 1;
        }
        // Make what the killed creator left old enough to count as abandoned.
        let long_ago = std::time::SystemTime::now() - 2 * ABANDONED_AFTER;
        for name in left.iter().filter(|n| n.contains(".eventlite-new-")) {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(name))?
                .set_modified(long_ago)?;
        }
        if !path.exists() {
            seen.nothing += 1;
        } else {
            seen.store += 1;
            // A file at the path is a whole store: it opens, reads and takes an append.
            let store = open(kind, &path, Durability::Immediate)
                .with_context(|| format!("kill {i}: the file left at the path"))?;
            ensure!(store.last_id()? == 0, "kill {i}: a new store holds events");
            store.store(batch_event(0, 0, 1, 0))?;
            check_store(&store)?;
        }
        // Creating the store now works, and clears what the killed creator left.
        let store = open(kind, &path, Durability::Immediate)
            .with_context(|| format!("kill {i}: creating after the kill"))?;
        drop(store);
        let left: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        ensure!(
            !left.iter().any(|n| n.contains(".eventlite-new-")),
            "kill {i}: temporary files stay: {left:?}"
        );
    }
    Ok(seen)
}

fn run(kind: Kind) -> Result<()> {
    let seen = kill_during_creation(kind)?;
    println!("{}: {seen:?}", kind.name());
    // The test is only worth something if some kills landed inside the creation.
    ensure!(
        seen.mid_creation > 0,
        "no kill landed during creation: {seen:?}"
    );
    Ok(())
}

#[test]
fn a_kill_during_creation_leaves_nothing_or_a_whole_store_sqlite() -> Result<()> {
    run(Kind::Sqlite)
}

#[test]
fn a_kill_during_creation_leaves_nothing_or_a_whole_store_redb() -> Result<()> {
    run(Kind::Redb)
}
