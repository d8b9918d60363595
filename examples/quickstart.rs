//! EventLite in one page: store events, query and page them, replay them through a model,
//! snapshot the model. Runs on a SQLite file under `./data/` (set `EVENTLITE_ENGINE=redb` or
//! pass `--engine redb` to use redb, with eventlite's `redb` feature).
use eventlite::{Backend, Callbacks, EventStore, FnModel, NewEvent, Page, StreamOptions};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    // The engine: `--engine redb`, or EVENTLITE_ENGINE, or the default of this build. Asking
    // the facade (not `cfg!(feature)`, which tests *this* crate's features) keeps the example
    // working when copied into another crate.
    let engine: eventlite::Engine = match std::env::args()
        .skip_while(|a| a != "--engine")
        .nth(1)
        .or_else(|| std::env::var("EVENTLITE_ENGINE").ok())
    {
        Some(name) => name.parse()?,
        None => eventlite::Engine::default_available()
            .ok_or_else(|| anyhow::anyhow!("this build of eventlite has no engine"))?,
    };
    let path = format!("data/quickstart.{engine}");
    println!("engine: {engine}, file {path}");
    run(engine.open(&path)?)
}

fn run<B: Backend>(store: EventStore<B>) -> anyhow::Result<()> {
    let before = store.last_id()?;
    println!("the log holds {before} events from earlier runs");

    // A transaction: an order, then what it caused. Children inherit the correlation id.
    let placed = store.store(
        NewEvent::new("order_placed")
            .user("ada")
            .data(&json!({ "order": before + 1, "total": 120 })),
    )?;
    let paid = store.store(
        NewEvent::new("payment_received")
            .user("ada")
            .causation_id(placed.id)
            .data(&json!({ "amount": 120 })),
    )?;
    store.store_bulk(vec![
        NewEvent::new("item_shipped")
            .causation_id(paid.id)
            .data(&json!({ "sku": "A-1" })),
        NewEvent::new("item_shipped")
            .causation_id(paid.id)
            .data(&json!({ "sku": "B-7" })),
    ])?;
    println!(
        "stored events {}..={} in transaction {}",
        placed.id,
        store.last_id()?,
        placed.correlation_id
    );

    let lineage = store
        .lineage(paid.id)?
        .ok_or_else(|| anyhow::anyhow!("event {} vanished", paid.id))?;
    println!(
        "event {} was caused by {:?} and caused {} events",
        paid.id,
        lineage.parent.map(|p| p.cmd),
        lineage.children.len()
    );

    // Pages: by offset, then by cursor.
    let first = store.by_correlation(&placed.correlation_id, Page::first(3))?;
    println!(
        "page 1: {:?} of {} (more: {})",
        first
            .events
            .iter()
            .map(|e| e.cmd.as_str())
            .collect::<Vec<_>>(),
        first.total_count,
        first.has_more
    );
    if let Some(cursor) = first.next_cursor {
        let next = store.by_correlation(&placed.correlation_id, Page::after(3, cursor))?;
        println!(
            "page 2: {:?}",
            next.events.iter().map(|e| e.id).collect::<Vec<_>>()
        );
    }
    let ada = store.by_user("ada", Page::first(5))?;
    println!(
        "ada has {} events, newest first: {:?}",
        ada.total_count,
        ada.events.iter().map(|e| e.id).collect::<Vec<_>>()
    );

    // Replay the whole log through a model: revenue and shipments.
    let mut totals = FnModel::new((0i64, 0u64))
        .on("payment_received", |t, _, data| {
            t.0 += data.get::<serde_json::Value>()?["amount"]
                .as_i64()
                .unwrap_or(0);
            Ok(())
        })
        .on("item_shipped", |t, _, _| {
            t.1 += 1;
            Ok(())
        })
        .on_default(|_, _, _| Ok(()));
    let stats = store.replay(&mut totals, .., &mut Callbacks::new())?;
    let (revenue, shipped) = *totals.state();
    println!(
        "replayed {} events: revenue {revenue}, {shipped} items shipped",
        stats.events
    );

    // Snapshot the model at the last event, then restore it.
    let last = store.last_id()?;
    store.create_snapshot("totals", last, totals.state())?;
    let restored = store
        .restore_snapshot::<(i64, u64)>("totals", last)?
        .ok_or_else(|| anyhow::anyhow!("snapshot vanished"))?;
    println!(
        "snapshot 'totals' at event {} restores {:?}; replay would resume at {}",
        restored.event_id, restored.state, restored.replay_from
    );

    let batches = store
        .read_all(StreamOptions::new().batch_size(1_000))?
        .count();
    println!("streamed the log in {batches} batch(es) of up to 1000");
    Ok(())
}
