//! # eventlite-core
//!
//! The core of EventLite, an embedded event-sourcing log: the [`EventStore`] that callers
//! use, the event and query types, models and callbacks, the index and cache policies, and
//! [`MemoryBackend`], the reference engine. Storage engines implement the traits of [`spi`]
//! (together, a [`Backend`]); users pick an engine through the `eventlite` facade.
//!
//! ```
//! use eventlite_core::{EventStore, MemoryBackend, NewEvent, FnModel, Callbacks, Page};
//!
//! let store = EventStore::new(MemoryBackend::new());
//! let opened = store.store(NewEvent::new("account_opened").data(&serde_json::json!({"owner": "ada"})))?;
//! let deposit = store.store(
//!     NewEvent::new("deposited").data(&250).causation_id(opened.id),
//! )?;
//! // A child joins its parent's transaction group.
//! assert_eq!(deposit.correlation_id, opened.correlation_id);
//! assert_eq!(store.transaction(&opened.correlation_id)?.len(), 2);
//!
//! let page = store.by_correlation(&opened.correlation_id, Page::first(1))?;
//! assert_eq!((page.total_count, page.has_more), (2, true));
//!
//! let mut balance = FnModel::new(0i64)
//!     .on("deposited", |total, _event, data| { *total += data.get::<i64>()?; Ok(()) })
//!     .on_default(|_, _, _| Ok(()));
//! let stats = store.replay(&mut balance, 1.., &mut Callbacks::new())?;
//! assert_eq!((stats.events, *balance.state()), (2, 250));
//! # Ok::<(), eventlite_core::Error>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod cache;
mod clock;
mod error;
mod event;
mod index;
mod integrity;
mod memory;
mod model;
mod policy;
mod projection;
mod query;
mod relations;
pub mod spi;
mod store;
mod subscription;
mod verify;
mod wait;

pub use backend::{Backend, FailedEvent, Position, Snapshot};
pub use cache::CacheStats;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BoxError, Error, Result};
pub use event::{Event, EventContext, ExpectedVersion, NewEvent};
pub use index::{IndexConfig, IndexName, QueryPlan};
pub use memory::MemoryBackend;
pub use model::{
    Callbacks, EventData, Executed, ExecutionError, FnModel, Migration, Model, Stage, execute,
};
pub use policy::{CachePolicy, Durability};
pub use projection::{FailurePolicy, Projection, ProjectionStats};
pub use query::{Cursor, EventPage, Filter, Order, Page, PageStart, Query};
pub use relations::{REPORT_MAX_INDENT, Related};
pub use store::{
    DEFAULT_MAX_EVENT_SIZE, EventStore, EventStoreBuilder, EventStream, Lineage, MAX_JSON_DEPTH,
    MAX_KEY_LEN, ReplayStats, Restored, StreamOptions,
};
pub use subscription::{Start, Stopper, SubscribeOptions, Subscription};
pub use verify::{MAX_LISTED_PROBLEMS, Problem, ProblemKind, VerifyReport};
pub use wait::{Cmp, Condition, FieldTest, Parked, WaitCheck, WaitFor, WaitState, Waiting};
