//! Store, query, page, replay and snapshot.
use eventlite::{Callbacks, EventStore, FnModel, MemoryBackend, NewEvent, Page};

fn main() -> anyhow::Result<()> {
    let store = EventStore::new(MemoryBackend::new());
    let opened = store.store(NewEvent::new("opened").user("ada"))?;
    store.store(
        NewEvent::new("deposited")
            .data(&100)
            .causation_id(opened.id),
    )?;
    let page = store.by_correlation(&opened.correlation_id, Page::first(10))?;
    println!("{} events in the transaction", page.total_count);
    let mut balance = FnModel::new(0i64)
        .on("deposited", |b, _, d| {
            *b += d.get::<i64>()?;
            Ok(())
        })
        .on_default(|_, _, _| Ok(()));
    store.replay(&mut balance, .., &mut Callbacks::new())?;
    println!("balance {}", balance.state());
    Ok(())
}
