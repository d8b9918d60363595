//! The cases `seed-tables` measures, one module per kind of work; each records its rows on
//! the [`Bench`](crate::harness::Bench) it is given.

pub mod aggregates;
pub mod asynchronous;
pub mod concurrent;
pub mod cursor;
pub mod postgres;
pub mod reads;
pub mod scale;
pub mod subscriptions;
pub mod transfer;
pub mod waiting;
pub mod writes;
