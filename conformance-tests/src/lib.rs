//! # eventlite-conformance
//!
//! The contract every EventLite engine keeps, as code: each scenario is a `pub fn` generic over
//! an [`Engine`] (how to make and reopen a store), and [`conformance_suite!`] stamps out one
//! `#[test]` per scenario and index profile for a given engine, plus a property test that
//! checks random operation sequences against a plain `Vec<Event>` model.
//!
//! ```text
//! // backend-x/tests/conformance.rs
//! eventlite_conformance::conformance_suite!(my_backend::tests::XEngine);
//! ```

use std::sync::Arc;

use eventlite_core::{Backend, CachePolicy, EventStore, IndexConfig, ManualClock};

pub mod model_check;
pub mod scenarios;

/// How to make, and reopen, stores of one engine.
pub trait Engine: Default + Send + Sync + 'static {
    /// The engine's backend.
    type Backend: Backend;
    /// Where one store lives (a temporary directory, or a shared in-memory handle). Dropping it
    /// removes the store.
    type Location;

    /// A fresh, empty place for a store.
    fn location(&self) -> anyhow::Result<Self::Location>;

    /// Opens (creating if needed) the store at `location` with these indexes. The previous
    /// backend for the location has been dropped.
    fn open(
        &self,
        location: &Self::Location,
        indexes: IndexConfig,
    ) -> anyhow::Result<Self::Backend>;
}

/// The reference engine, [`eventlite_core::MemoryBackend`].
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryEngine;

impl Engine for MemoryEngine {
    type Backend = eventlite_core::MemoryBackend;
    type Location = eventlite_core::MemoryBackend;

    fn location(&self) -> anyhow::Result<Self::Location> {
        Ok(eventlite_core::MemoryBackend::new())
    }

    fn open(
        &self,
        location: &Self::Location,
        indexes: IndexConfig,
    ) -> anyhow::Result<Self::Backend> {
        Ok(location.reopen(indexes))
    }
}

/// The clock every fixture starts at (2023-11-14).
pub const T0: i64 = 1_700_000_000_000;

/// What a scenario runs with: the engine and the index profile of this run.
#[derive(Debug)]
pub struct Ctx<E> {
    /// The engine under test.
    pub engine: E,
    /// The index profile this run opens stores with.
    pub profile: IndexConfig,
}

impl<E: Engine> Ctx<E> {
    /// A context for `engine` under `profile`.
    pub fn new(engine: E, profile: IndexConfig) -> Self {
        Ctx { engine, profile }
    }

    /// A fresh store with the run's profile, the default cache and a manual clock at [`T0`].
    pub fn fixture(&self) -> anyhow::Result<Fixture<'_, E>> {
        self.fixture_with(self.profile, CachePolicy::default())
    }

    /// A fresh store with these indexes and cache policy.
    pub fn fixture_with(
        &self,
        indexes: IndexConfig,
        cache: CachePolicy,
    ) -> anyhow::Result<Fixture<'_, E>> {
        let location = self.engine.location()?;
        let clock = Arc::new(ManualClock::new(T0));
        let backend = self.engine.open(&location, indexes)?;
        let store = EventStore::builder(backend)
            .clock(Arc::clone(&clock))
            .cache(cache)
            .build();
        Ok(Fixture {
            engine: &self.engine,
            location,
            clock,
            cache,
            store,
        })
    }
}

/// One store under test, with its location and clock.
pub struct Fixture<'e, E: Engine> {
    engine: &'e E,
    /// Where the store lives.
    pub location: E::Location,
    /// The store's clock.
    pub clock: Arc<ManualClock>,
    cache: CachePolicy,
    /// The store.
    pub store: EventStore<E::Backend>,
}

impl<E: Engine> std::ops::Deref for Fixture<'_, E> {
    type Target = EventStore<E::Backend>;
    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

impl<'e, E: Engine> Fixture<'e, E> {
    /// Closes the store and opens it again with `indexes` (same clock and cache policy).
    pub fn reopen(self, indexes: IndexConfig) -> anyhow::Result<Self> {
        let Fixture {
            engine,
            location,
            clock,
            cache,
            store,
        } = self;
        drop(store);
        let backend = engine.open(&location, indexes)?;
        let store = EventStore::builder(backend)
            .clock(Arc::clone(&clock))
            .cache(cache)
            .build();
        Ok(Fixture {
            engine,
            location,
            clock,
            cache,
            store,
        })
    }
}

/// The index profiles every scenario runs under.
pub fn profiles() -> [(&'static str, IndexConfig); 3] {
    [
        ("none", IndexConfig::none()),
        ("high_volume", IndexConfig::high_volume()),
        ("all", IndexConfig::all()),
    ]
}

/// Stamps out the whole conformance suite for an engine type (which must implement
/// [`Engine`] and be in scope where the macro is called): one `#[test]` per scenario under
/// each of the index profiles `none`, `high_volume` and `all`, plus the model-based property
/// test.
#[macro_export]
macro_rules! conformance_suite {
    ($engine:ty) => {
        $crate::conformance_suite!(@all $engine;
            store_assigns_sequential_ids,
            store_roundtrips_every_field,
            get_missing_is_none,
            empty_store_answers_empty,
            datetime_comes_from_the_clock,
            correlation_generated_when_absent,
            correlation_inherited_from_causation,
            explicit_correlation_wins_over_causation,
            unknown_causation_is_rejected,
            empty_cmd_is_rejected,
            empty_cmd_in_bulk_stores_nothing,
            malformed_json_is_rejected,
            version_zero_is_rejected,
            oversize_event_is_rejected,
            empty_bulk_is_rejected,
            bulk_and_single_store_write_identical_rows,
            bulk_returns_rows_as_stored,
            bulk_is_atomic_on_conflict,
            transaction_groups_in_id_order,
            children_and_lineage,
            correlation_offset_paging_across_pages,
            correlation_cursor_paging_matches_offset,
            children_page,
            by_user_newest_first_ties_by_id,
            by_cmd_orders_by_datetime_not_id,
            by_time_range_is_inclusive,
            cursor_paging_through_ties,
            page_edge_cases,
            combined_filters_match_reference,
            cursors_and_bounds_combine_at_the_extremes,
            count_matches_query,
            stream_batches_in_id_order,
            stream_with_combined_filters,
            stream_rejects_zero_batch,
            replay_everything_through_model,
            replay_windows,
            replay_hands_over_every_event_intact,
            query_into_overwrites_what_the_vector_held,
            migrations_chain,
            model_error_keeps_event,
            migration_error_is_reported,
            callback_error_is_not_a_command_error,
            unknown_and_builtin_cmds_dispatch_to_default,
            callbacks_run_per_cmd_then_done,
            bulk_with_model_executes_in_order,
            cache_counts_hits_and_misses,
            cache_never_serves_stale_transaction,
            cache_entries_expire_after_ttl,
            cache_disabled_still_answers,
            cache_bounded_and_clearable,
            snapshot_latest_at_or_before,
            snapshot_replaced_on_same_id,
            snapshots_listed_newest_first,
            snapshots_deleted,
            snapshot_of_unknown_event_is_rejected,
            snapshot_then_replay_equals_full_replay,
            optimistic_no_stream,
            optimistic_exact,
            optimistic_any,
            optimistic_batch_on_one_stream,
            stream_filter_selects_stream_events,
            reopen_keeps_everything,
            checkpoint_changes_no_answer,
            reopen_with_other_indexes_same_answers,
            indexes_match_config,
            explain_uses_each_index,
            explain_scans_without_index,
            concurrent_writers_get_unique_gapless_ids,
            page_total_agrees_with_its_events_during_writes,
            hostile_strings_roundtrip
        );
    };
    (@all $engine:ty; $($name:ident),* $(,)?) => {
        mod profile_none {
            use super::*;
            $crate::conformance_suite!(@stamp $engine, ::eventlite_core::IndexConfig::none(); $($name),*);
        }
        mod profile_high_volume {
            use super::*;
            $crate::conformance_suite!(@stamp $engine, ::eventlite_core::IndexConfig::high_volume(); $($name),*);
        }
        mod profile_all {
            use super::*;
            $crate::conformance_suite!(@stamp $engine, ::eventlite_core::IndexConfig::all(); $($name),*);
        }
        #[test]
        fn model_property() -> ::anyhow::Result<()> {
            $crate::model_check::run::<$engine>($crate::model_check::cases())
        }
    };
    (@stamp $engine:ty, $profile:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() -> ::anyhow::Result<()> {
                let ctx = $crate::Ctx::new(<$engine as ::core::default::Default>::default(), $profile);
                $crate::scenarios::$name(&ctx)
            }
        )*
    };
}
