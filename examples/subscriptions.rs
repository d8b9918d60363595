//! Following the log live: an order service appends orders from two threads while a projection
//! keeps a read model of totals per user in its own SQLite database (exactly once: its rows
//! and its position commit together), and a live tail prints every new event.
//!
//! `cargo run --example subscriptions` (files in `./data/`; run it again and the totals grow).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use eventlite::sqlite::SqliteProjection;
use eventlite::sqlite::rusqlite::{Connection, params};
use eventlite::{NewEvent, Start, SubscribeOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Order {
    item: String,
    cents: i64,
}

fn main() -> Result<()> {
    std::fs::create_dir_all("data")?;
    let store = Arc::new(eventlite::open("data/orders.sqlite")?);
    let read_model = "data/order-totals.sqlite";

    // The live tail: from the end of the log, each event as it commits.
    let mut tail = store.subscribe_shared(SubscribeOptions::new().start(Start::End))?;
    let stop_tail = tail.stopper();
    let tail = std::thread::spawn(move || -> Result<u64> {
        let mut printed = 0;
        for batch in &mut tail {
            for event in batch? {
                let order: Order = event.data()?;
                println!(
                    "tail: #{} {} ordered {} for {} cents",
                    event.id, event.user, order.item, order.cents
                );
                printed += 1;
            }
        }
        Ok(printed)
    });

    // The projection: totals per user, in its own database, on its own thread.
    let projected = Arc::clone(&store);
    let (stopper_tx, stopper_rx) = std::sync::mpsc::channel();
    let projection = std::thread::spawn(move || -> Result<u64> {
        let mut db = Connection::open(read_model)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS totals (user TEXT PRIMARY KEY, orders INTEGER NOT NULL, cents INTEGER NOT NULL)",
        )?;
        let mut totals = SqliteProjection::new(&mut db, "totals")?;
        stopper_tx.send(totals.stopper())?;
        let stats = totals.run(&projected, &mut |conn, event| {
            let order: Order = event.data()?;
            conn.execute(
                "INSERT INTO totals VALUES (?1, 1, ?2) ON CONFLICT (user) DO UPDATE \
                 SET orders = orders + 1, cents = cents + excluded.cents",
                params![event.user, order.cents],
            )?;
            Ok(())
        })?;
        Ok(stats.events)
    });
    let stop_projection = stopper_rx.recv().context("the projection did not start")?;

    // The service: two clerks take orders at the same time.
    let clerks: Vec<_> = ["ada", "bob"]
        .into_iter()
        .map(|user| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || -> eventlite::Result<()> {
                for (i, item) in ["tea", "cake", "jam"].into_iter().enumerate() {
                    let order = Order {
                        item: item.into(),
                        cents: 250 * (i as i64 + 1),
                    };
                    store.store(NewEvent::new("order_placed").user(user).data(&order))?;
                }
                Ok(())
            })
        })
        .collect();
    for clerk in clerks {
        clerk
            .join()
            .map_err(|_| anyhow::anyhow!("a clerk panicked"))??;
    }

    // Stop the projection once its committed position reached the end of the log.
    let last = store.last_id()?;
    let watch = Connection::open(read_model)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while position(&watch)? < last {
        anyhow::ensure!(Instant::now() < deadline, "the projection fell behind");
        std::thread::sleep(Duration::from_millis(5));
    }
    stop_projection.stop();
    stop_tail.stop();
    let handled = projection
        .join()
        .map_err(|_| anyhow::anyhow!("the projection panicked"))??;
    let printed = tail
        .join()
        .map_err(|_| anyhow::anyhow!("the tail panicked"))??;

    println!("\nthe tail printed {printed} new events; the projection applied {handled}");
    let mut totals = watch.prepare("SELECT user, orders, cents FROM totals ORDER BY user")?;
    for row in totals.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (user, orders, cents) = row?;
        println!("{user}: {orders} orders, {cents} cents in all");
    }
    Ok(())
}

/// The position the projection committed in the read model.
fn position(db: &Connection) -> Result<u64> {
    let p: Option<i64> = db
        .query_row(
            "SELECT position FROM eventlite_projections WHERE name = 'totals'",
            [],
            |r| r.get(0),
        )
        .ok();
    Ok(p.unwrap_or(0) as u64)
}
