//! The scenarios, by topic. Each takes a [`Ctx`] and fails (returns `Err` or panics) when the
//! engine breaks the contract. Engine scenarios run on every engine under every index profile
//! ([`crate::conformance_suite!`]); [`store_logic`] runs once, on the reference engine.

use std::cell::RefCell;
use std::collections::HashSet;

use anyhow::{Result, ensure};
use eventlite_core::{
    BoxError, CachePolicy, Callbacks, Cursor, Error, Event, EventContext, EventData, EventStore,
    ExpectedVersion, Filter, FnModel, IndexConfig, IndexName, Model, NewEvent, Order, Page, Query,
    Stage, StreamOptions,
};
use serde_json::json;

use crate::{BackendFactory, Ctx, Fixture, T0};

pub mod aggregates;
pub mod appends;
pub mod concurrency;
pub mod queries;
pub mod relations;
pub mod reopen;
pub mod snapshots;
pub mod store_logic;
pub mod streams;
pub mod subscriptions;
pub mod waiting;

pub(crate) fn ev(cmd: &str) -> NewEvent {
    NewEvent::new(cmd)
}

/// Every event of the store, in id order, read with plain gets (the simplest path).
pub(crate) fn all_events<B: eventlite_core::Backend>(store: &EventStore<B>) -> Result<Vec<Event>> {
    let last = store.last_id()?;
    (1..=last)
        .map(|id| {
            store
                .get(id)?
                .ok_or_else(|| anyhow::anyhow!("event {id} missing"))
        })
        .collect()
}

pub(crate) fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id).collect()
}

/// Applies a query to a list the plain way: the reference semantics.
pub(crate) fn reference(events: &[Event], query: &Query) -> Vec<Event> {
    let mut hits: Vec<Event> = events.iter().filter(|e| query.admits(e)).cloned().collect();
    hits.sort_by(|a, b| query.order.compare(a, b));
    hits.into_iter()
        .skip(query.offset as usize)
        .take(query.limit.map_or(usize::MAX, |l| l as usize))
        .collect()
}

/// A store with a varied population: 3 correlations, 3 users, 4 cmds, datetimes that are not
/// monotonic in id, ties, versions 1-3, causation chains.
pub(crate) fn populate<F: BackendFactory>(f: &Fixture<'_, F>) -> Result<Vec<Event>> {
    let users = ["ada", "bob", "cy"];
    let cmds = ["open", "deposit", "withdraw", "close"];
    let corrs = ["c-a", "c-b", "c-c"];
    let mut out = Vec::new();
    for i in 0..60u64 {
        // Time jumps back every 7th event and repeats every 3rd: order by datetime differs
        // from order by id and has ties.
        f.clock.set(T0 + ((i * 37) % 23) as i64 * 1_000);
        let mut e = ev(cmds[(i % 4) as usize])
            .user(users[(i % 3) as usize])
            .version((i % 3) as u32 + 1)
            .correlation_id(corrs[(i % 5 % 3) as usize])
            .data(&json!({ "i": i }));
        if i >= 10 && i % 4 == 1 {
            e = e.causation_id(i - 5);
        }
        out.push(f.store(e)?);
    }
    Ok(out)
}

pub(crate) fn assert_err<T: std::fmt::Debug>(
    r: eventlite_core::Result<T>,
    pred: impl Fn(&Error) -> bool,
) -> Result<()> {
    match r {
        Err(e) if pred(&e) => Ok(()),
        other => anyhow::bail!("unexpected result {other:?}"),
    }
}

pub(crate) fn varied_queries() -> Vec<Query> {
    let filters = vec![
        Filter::all(),
        Filter::correlation("c-b"),
        Filter::cmd("deposit"),
        Filter::user("cy"),
        Filter::time_range(T0 + 3_000, T0 + 12_000),
        Filter {
            version: Some(2),
            ..Filter::default()
        },
        Filter {
            correlation_id: Some("c-a".into()),
            cmd: Some("open".into()),
            ..Filter::default()
        },
        Filter {
            user: Some("ada".into()),
            datetime_from: Some(T0 + 2_000),
            datetime_to: Some(T0 + 15_000),
            ..Filter::default()
        },
        Filter {
            user: Some("bob".into()),
            datetime_from: Some(T0 + 5_000),
            ..Filter::default()
        },
        Filter {
            cmd: Some("withdraw".into()),
            user: Some("ada".into()),
            version: Some(3),
            id_from: Some(5),
            id_to: Some(50),
            ..Filter::default()
        },
        Filter {
            causation_id: Some(10),
            ..Filter::default()
        },
        Filter {
            id_from: Some(20),
            id_to: Some(30),
            datetime_to: Some(T0 + 9_000),
            ..Filter::default()
        },
        Filter {
            correlation_id: Some("c-c".into()),
            datetime_from: Some(T0 + 10_000),
            ..Filter::default()
        },
        Filter::cmd("no-such-cmd"),
    ];
    let mut out = Vec::new();
    for filter in filters {
        for order in [Order::IdAsc, Order::IdDesc, Order::DatetimeDesc] {
            out.push(Query::new(filter.clone(), order));
            out.push(Query::new(filter.clone(), order).limit(4).offset(2));
            out.push(Query::new(filter.clone(), order).limit(5).after(Cursor {
                id: 30,
                datetime: T0 + 11_000,
            }));
        }
    }
    out
}
