//! Big and hostile input on the real engines with the default limits.
use anyhow::{Result, ensure};
use eventlite_core::{DEFAULT_MAX_EVENT_SIZE, Durability, Error, NewEvent};
use eventlite_reliability::{Kind, open};

#[test]
fn the_default_size_limit_is_enforced_and_the_store_stays_usable() -> Result<()> {
    for kind in [Kind::Sqlite, Kind::Redb] {
        let dir = tempfile::tempdir()?;
        let store = open(kind, &dir.path().join(kind.file()), Durability::Immediate)?;
        let first = store.store(NewEvent::new("before"))?;
        let over =
            NewEvent::new("big").data_json(format!("\"{}\"", "y".repeat(DEFAULT_MAX_EVENT_SIZE)));
        let err = store.store(over).unwrap_err();
        ensure!(
            matches!(err, Error::InvalidEvent { .. }),
            "{}: {err:?}",
            kind.name()
        );
        // Just under the limit: stored and read back byte for byte.
        let text = "\u{1F980}".repeat((DEFAULT_MAX_EVENT_SIZE - 1_024) / 4);
        let big = store.store(NewEvent::new("big").data(&text))?;
        ensure!(big.id == first.id + 1, "the rejected event used no id");
        let back = store.get(big.id)?.ok_or_else(|| anyhow::anyhow!("lost"))?;
        ensure!(
            back.data::<String>()? == text,
            "{}: round trip",
            kind.name()
        );
        ensure!(store.store(NewEvent::new("after"))?.id == big.id + 1);
    }
    Ok(())
}
