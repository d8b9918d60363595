//! One log on a PostgreSQL server, shared by two handles as two application servers would
//! share it: stream expectations hold across them, ids stay one sequence, and a subscription on
//! one handle is woken by the other's commits (`LISTEN/NOTIFY`).
//!
//! `scripts/with-postgres cargo run --example postgres --features postgres` (a throwaway
//! server), or set `EVENTLITE_PG_URL` to a server of yours.

use std::time::Duration;

use anyhow::Context;
use eventlite::postgres::PostgresOptions;
use eventlite::{Error, ExpectedVersion, NewEvent, Page, Start, SubscribeOptions};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let url = std::env::var("EVENTLITE_PG_URL").context(
        "this example needs a PostgreSQL server: run it through scripts/with-postgres, or set \
         EVENTLITE_PG_URL",
    )?;
    let options = PostgresOptions::new(url).schema("example_orders");
    // Two handles on one store: in production, one per application server.
    let checkout = eventlite::postgres::open(options.clone())?;
    let billing = eventlite::postgres::open(options)?;

    // Billing follows the log from its end, as a service started after the others would.
    let mut feed = billing.subscribe(SubscribeOptions::new().start(Start::End))?;

    let order = format!("order-{}", checkout.last_id()? + 1);
    let placed = checkout.store(
        NewEvent::new("order_placed")
            .user("ada")
            .stream(order.as_str(), ExpectedVersion::NoStream)
            .data(&json!({ "total": 120 })),
    )?;
    println!("checkout stored #{} ({order}, version 1)", placed.id);

    // Billing learns of it through the server, not through shared memory.
    let seen = feed
        .next_batch(Duration::from_secs(10))?
        .context("billing's subscription saw nothing within 10 s")?;
    println!(
        "billing saw {:?}",
        seen.iter()
            .map(|e| (e.id, e.cmd.as_str()))
            .collect::<Vec<_>>()
    );

    // Billing appends to the order at the version it finds there.
    let at = billing.stream_version(&order)?;
    let paid = billing.store(
        NewEvent::new("payment_received")
            .user("ada")
            .causation_id(placed.id)
            .stream(order.as_str(), ExpectedVersion::Exact(at))
            .data(&json!({ "amount": 120 })),
    )?;
    println!("billing stored #{} ({order}, version {})", paid.id, at + 1);

    // Checkout, unaware of the payment, expects the order still at version 1: refused whole.
    match checkout.store(
        NewEvent::new("order_cancelled")
            .user("ada")
            .stream(order.as_str(), ExpectedVersion::Exact(1)),
    ) {
        Err(Error::Conflict { .. }) => println!("checkout's stale cancel was refused: a conflict"),
        other => anyhow::bail!("a stale expectation was not refused: {other:?}"),
    }

    let page = checkout.by_user("ada", Page::first(10))?;
    println!(
        "ada has {} events, newest first: {:?}",
        page.total_count,
        page.events.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    Ok(())
}
