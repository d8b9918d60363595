//! # eventlite-conformance
//!
//! The contract every EventLite engine keeps, as code: each scenario is a `pub fn` generic over
//! a [`BackendFactory`] (how to make and reopen a store of one engine), grouped by topic in
//! [`scenarios`]. [`conformance_suite!`] stamps out one `#[test]` per engine scenario and index
//! profile for a given engine, plus a property test that checks random operation sequences
//! against a plain `Vec<Event>` model; [`store_logic_suite!`] stamps out the scenarios of
//! `EventStore`'s own logic, once, for the reference engine. A scenario written but left out
//! of its macro's list fails the suite's `every_scenario_is_stamped` test.
//!
//! ```text
//! // backend-x/tests/conformance.rs
//! eventlite_conformance::conformance_suite!(my_backend::tests::XFactory);
//! ```
#![forbid(unsafe_code)]

use std::sync::Arc;

use eventlite_core::{Backend, CachePolicy, EventStore, IndexConfig, ManualClock};

pub mod model_check;
pub mod scenarios;

/// How to make, and reopen, stores of one engine.
pub trait BackendFactory: Default + Send + Sync + 'static {
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

    /// Opens the existing store at `location` with the indexes it has, changing none (the
    /// engine's "indexes as found" option). The previous backend has been dropped.
    fn open_as_found(&self, location: &Self::Location) -> anyhow::Result<Self::Backend>;

    /// Why this engine cannot be tested here (a server engine without a server), if it
    /// cannot: every test of the suite then passes without running, after [`skipped`] said
    /// so on standard error. Embedded engines are always available.
    fn unavailable(&self) -> Option<String> {
        None
    }
}

/// Says, once per test process, on standard error (past the test harness's capture, so that
/// `cargo test` shows it), that `what` was skipped and why.
pub fn skipped(what: &str, why: &str) {
    use std::io::Write as _;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(std::io::stderr(), "\n*** {what} SKIPPED: {why} ***\n");
    });
}

/// Runs a stamped test: skips it (see [`BackendFactory::unavailable`]) or runs `test`.
pub fn run_or_skip<F: BackendFactory>(
    factory: F,
    test: impl FnOnce(F) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match factory.unavailable() {
        Some(why) => {
            let factory = std::any::type_name::<F>()
                .rsplit("::")
                .next()
                .unwrap_or("?");
            skipped(&format!("the tests on {factory}'s stores were"), &why);
            Ok(())
        }
        None => test(factory),
    }
}

/// Stores of the reference engine, [`eventlite_core::MemoryBackend`].
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryFactory;

impl BackendFactory for MemoryFactory {
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

    fn open_as_found(&self, location: &Self::Location) -> anyhow::Result<Self::Backend> {
        Ok(location.reopen_as_found())
    }
}

/// The clock every fixture starts at (2023-11-14).
pub const T0: i64 = 1_700_000_000_000;

/// What a scenario runs with: the engine's factory and the index profile of this run.
#[derive(Debug)]
pub struct Ctx<F> {
    /// Makes the stores under test.
    pub factory: F,
    /// The index profile this run opens stores with.
    pub profile: IndexConfig,
}

impl<F: BackendFactory> Ctx<F> {
    /// A context for `factory`'s engine under `profile`.
    pub fn new(factory: F, profile: IndexConfig) -> Self {
        Ctx { factory, profile }
    }

    /// A fresh store with the run's profile, the default cache and a manual clock at [`T0`].
    pub fn fixture(&self) -> anyhow::Result<Fixture<'_, F>> {
        self.fixture_with(self.profile, CachePolicy::default())
    }

    /// A fresh store with these indexes and cache policy.
    pub fn fixture_with(
        &self,
        indexes: IndexConfig,
        cache: CachePolicy,
    ) -> anyhow::Result<Fixture<'_, F>> {
        let location = self.factory.location()?;
        let clock = Arc::new(ManualClock::new(T0));
        let backend = self.factory.open(&location, indexes)?;
        let store = EventStore::builder(backend)
            .clock(Arc::clone(&clock))
            .cache(cache)
            .build();
        Ok(Fixture {
            factory: &self.factory,
            location,
            clock,
            cache,
            store,
        })
    }
}

/// One store under test, with its location and clock.
pub struct Fixture<'f, F: BackendFactory> {
    factory: &'f F,
    /// Where the store lives.
    pub location: F::Location,
    /// The store's clock.
    pub clock: Arc<ManualClock>,
    cache: CachePolicy,
    /// The store.
    pub store: EventStore<F::Backend>,
}

impl<F: BackendFactory> std::ops::Deref for Fixture<'_, F> {
    type Target = EventStore<F::Backend>;
    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

impl<F: BackendFactory> Fixture<'_, F> {
    /// Closes the store and opens it again with `indexes` (same clock and cache policy).
    pub fn reopen(self, indexes: IndexConfig) -> anyhow::Result<Self> {
        self.reopen_with(|factory, location| factory.open(location, indexes))
    }

    /// Closes the store and opens it again with the indexes it has.
    pub fn reopen_as_found(self) -> anyhow::Result<Self> {
        self.reopen_with(|factory, location| factory.open_as_found(location))
    }

    fn reopen_with(
        self,
        open: impl FnOnce(&F, &F::Location) -> anyhow::Result<F::Backend>,
    ) -> anyhow::Result<Self> {
        let Fixture {
            factory,
            location,
            clock,
            cache,
            store,
        } = self;
        drop(store);
        let backend = open(factory, &location)?;
        let store = EventStore::builder(backend)
            .clock(Arc::clone(&clock))
            .cache(cache)
            .build();
        Ok(Fixture {
            factory,
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

/// Checks that `stamped` names every scenario `pub fn` of the given scenario modules'
/// sources, and nothing else: a scenario written but not stamped (or stamped twice, or gone)
/// fails the suite instead of being skipped in silence.
pub fn check_stamped(stamped: &[&str], sources: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut written: Vec<String> = Vec::new();
    for (module, text) in sources {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub fn ") else {
                continue;
            };
            // A scenario's signature; rustfmt may wrap its parameter onto the next line.
            if rest.contains("<F: BackendFactory>(") {
                let name = rest.split('<').next().unwrap_or_default();
                written.push(format!("{module}::{name}"));
            }
        }
    }
    let mut stamped: Vec<String> = stamped.iter().map(|s| s.replace(' ', "")).collect();
    written.sort();
    stamped.sort();
    let unstamped: Vec<_> = written.iter().filter(|w| !stamped.contains(w)).collect();
    let unknown: Vec<_> = stamped.iter().filter(|s| !written.contains(s)).collect();
    let mut dedup = stamped.clone();
    dedup.dedup();
    anyhow::ensure!(
        unstamped.is_empty() && unknown.is_empty() && dedup.len() == stamped.len(),
        "scenarios written but not stamped: {unstamped:?}; stamped but not written: {unknown:?}; \
         stamped twice: {}",
        stamped.len() - dedup.len()
    );
    Ok(())
}

/// The source of every scenario module but [`scenarios::store_logic`], for
/// [`check_stamped`].
pub const ENGINE_SCENARIO_SOURCES: &[(&str, &str)] = &[
    ("aggregates", include_str!("scenarios/aggregates.rs")),
    ("appends", include_str!("scenarios/appends.rs")),
    ("concurrency", include_str!("scenarios/concurrency.rs")),
    ("queries", include_str!("scenarios/queries.rs")),
    ("relations", include_str!("scenarios/relations.rs")),
    ("reopen", include_str!("scenarios/reopen.rs")),
    ("snapshots", include_str!("scenarios/snapshots.rs")),
    ("streams", include_str!("scenarios/streams.rs")),
    ("subscriptions", include_str!("scenarios/subscriptions.rs")),
    ("waiting", include_str!("scenarios/waiting.rs")),
];

/// The source of [`scenarios::store_logic`], for [`check_stamped`].
pub const STORE_SCENARIO_SOURCES: &[(&str, &str)] =
    &[("store_logic", include_str!("scenarios/store_logic.rs"))];

/// Stamps out the engine conformance suite for a factory type (which must implement
/// [`BackendFactory`] and be in scope where the macro is called): one `#[test]` per engine
/// scenario under each of the index profiles `none`, `high_volume` and `all`, the model-based
/// property test, and `every_scenario_is_stamped`.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:ty) => {
        $crate::conformance_suite!(@all $factory;
            appends::store_assigns_sequential_ids,
            appends::store_roundtrips_every_field,
            appends::get_missing_is_none,
            appends::empty_store_answers_empty,
            appends::datetime_comes_from_the_clock,
            appends::bulk_and_single_store_write_identical_rows,
            appends::bulk_returns_rows_as_stored,
            appends::bulk_is_atomic_on_conflict,
            appends::optimistic_no_stream,
            appends::optimistic_exact,
            appends::optimistic_exact_zero_is_an_empty_stream,
            appends::optimistic_any,
            appends::optimistic_batch_on_one_stream,
            appends::hostile_strings_roundtrip,
            appends::longest_keys_roundtrip,
            aggregates::stream_loads_read_the_stream_in_order,
            aggregates::read_stream_from_a_version,
            aggregates::stream_loads_across_runs_of_ids,
            aggregates::append_to_stream_checks_the_batch_once,
            aggregates::fold_stream_loads_an_aggregate,
            aggregates::stream_version_is_what_the_next_append_expects,
            queries::transaction_groups_in_id_order,
            queries::children_and_lineage,
            queries::correlation_offset_paging_across_pages,
            queries::correlation_cursor_paging_matches_offset,
            queries::children_page,
            queries::by_user_newest_first_ties_by_id,
            queries::by_cmd_orders_by_datetime_not_id,
            queries::by_time_range_is_inclusive,
            queries::cursor_paging_through_ties,
            queries::page_edge_cases,
            queries::combined_filters_match_reference,
            queries::cursors_and_bounds_combine_at_the_extremes,
            queries::count_matches_query,
            queries::stream_filter_selects_stream_events,
            queries::cache_never_serves_stale_transaction,
            relations::relations_of_a_tree,
            relations::children_reads_use_the_causation_index,
            relations::wide_and_deep_trees,
            relations::orphans_and_cycles_in_imported_data,
            streams::stream_batches_in_id_order,
            streams::stream_with_combined_filters,
            streams::replay_everything_through_model,
            streams::replay_windows,
            streams::replay_hands_over_every_event_intact,
            streams::query_into_overwrites_what_the_vector_held,
            snapshots::snapshot_latest_at_or_before,
            snapshots::snapshot_replaced_on_same_id,
            snapshots::snapshots_listed_newest_first,
            snapshots::snapshots_deleted,
            snapshots::snapshot_names_listed,
            snapshots::snapshot_then_replay_equals_full_replay,
            reopen::reopen_keeps_everything,
            reopen::checkpoint_changes_no_answer,
            reopen::verify_passes_a_sound_store,
            reopen::reopen_with_other_indexes_same_answers,
            reopen::indexes_match_config,
            reopen::reopen_with_indexes_as_found_changes_nothing,
            reopen::explain_uses_each_index,
            reopen::explain_scans_without_index,
            concurrency::concurrent_writers_get_unique_gapless_ids,
            concurrency::concurrent_batches_with_conflicts_commit_each_batch_alone,
            concurrency::page_total_agrees_with_its_events_during_writes,
            subscriptions::subscription_catches_up_in_batches,
            subscriptions::subscription_starts,
            subscriptions::subscription_filter_delivers_exactly_the_matches,
            subscriptions::subscription_follows_concurrent_writers,
            subscriptions::subscription_stops_from_another_thread,
            subscriptions::positions_are_saved_listed_and_deleted,
            subscriptions::subscription_resumes_after_reopen,
            subscriptions::skipped_events_are_recorded,
            subscriptions::projection_resumes_from_its_position,
            waiting::waiting_kinds_release_when_they_hold,
            waiting::waiting_where_tests_and_chains,
            waiting::waiting_expires_and_cancels,
            waiting::waiting_survives_reopen,
            waiting::waiting_release_is_exactly_once_under_races,
            waiting::waiting_records_are_found_by_their_keys,
            waiting::waiting_parks_racing_appends_are_released,
        );
    };
    (@all $factory:ty; $($module:ident :: $name:ident),* $(,)?) => {
        mod profile_none {
            use super::*;
            $crate::conformance_suite!(@stamp $factory, ::eventlite_core::IndexConfig::none(); $($module::$name),*);
        }
        mod profile_high_volume {
            use super::*;
            $crate::conformance_suite!(@stamp $factory, ::eventlite_core::IndexConfig::high_volume(); $($module::$name),*);
        }
        mod profile_all {
            use super::*;
            $crate::conformance_suite!(@stamp $factory, ::eventlite_core::IndexConfig::all(); $($module::$name),*);
        }
        #[test]
        fn model_property() -> ::anyhow::Result<()> {
            $crate::run_or_skip(<$factory as ::core::default::Default>::default(), |_| {
                $crate::model_check::run::<$factory>($crate::model_check::cases())
            })
        }
        #[test]
        fn every_scenario_is_stamped() -> ::anyhow::Result<()> {
            $crate::check_stamped(
                &[$(stringify!($module::$name)),*],
                $crate::ENGINE_SCENARIO_SOURCES,
            )
        }
    };
    (@stamp $factory:ty, $profile:expr; $($module:ident :: $name:ident),*) => {
        $(
            #[test]
            fn $name() -> ::anyhow::Result<()> {
                $crate::run_or_skip(<$factory as ::core::default::Default>::default(), |factory| {
                    $crate::scenarios::$module::$name(&$crate::Ctx::new(factory, $profile))
                })
            }
        )*
    };
}

/// Stamps out the scenarios of `EventStore`'s own logic (validation, correlation ids, models
/// and callbacks, the cache), which no engine changes: once, for the given factory (the
/// reference engine's, in `eventlite-core`'s tests), with the default indexes; plus
/// `every_store_scenario_is_stamped`.
#[macro_export]
macro_rules! store_logic_suite {
    ($factory:ty) => {
        $crate::store_logic_suite!(@stamp $factory;
            empty_cmd_is_rejected,
            empty_cmd_in_bulk_stores_nothing,
            malformed_json_is_rejected,
            version_zero_is_rejected,
            oversize_event_is_rejected,
            overlong_keys_are_rejected,
            check_event_refuses_what_an_append_refuses,
            bad_wait_conditions_park_nothing,
            a_failing_waiting_record_does_not_hold_up_the_others,
            released_events_run_through_the_model,
            empty_bulk_is_rejected,
            correlation_generated_when_absent,
            correlation_inherited_from_causation,
            explicit_correlation_wins_over_causation,
            unknown_causation_is_rejected,
            store_with_context_wins_and_merges,
            migrations_chain,
            model_error_keeps_event,
            migration_error_is_reported,
            callback_error_is_not_a_command_error,
            unknown_and_builtin_cmds_dispatch_to_default,
            callbacks_run_per_cmd_then_done,
            bulk_with_model_executes_in_order,
            cache_counts_hits_and_misses,
            cache_entries_expire_after_ttl,
            cache_disabled_still_answers,
            cache_bounded_and_clearable,
            snapshot_of_unknown_event_is_rejected,
            stream_rejects_zero_batch,
            projection_failure_policies,
            projection_rebuilds,
            projection_runs_until_stopped,
            deep_json_is_refused_at_the_door,
        );
    };
    (@stamp $factory:ty; $($name:ident),* $(,)?) => {
        mod store_logic {
            use super::*;
            $(
                #[test]
                fn $name() -> ::anyhow::Result<()> {
                    let ctx = $crate::Ctx::new(
                        <$factory as ::core::default::Default>::default(),
                        ::eventlite_core::IndexConfig::default(),
                    );
                    $crate::scenarios::store_logic::$name(&ctx)
                }
            )*
            #[test]
            fn every_store_scenario_is_stamped() -> ::anyhow::Result<()> {
                $crate::check_stamped(
                    &[$(concat!("store_logic::", stringify!($name))),*],
                    $crate::STORE_SCENARIO_SOURCES,
                )
            }
        }
    };
}

#[cfg(test)]
mod tests {
    /// Every scenario module is listed in one of the source tables that `check_stamped`
    /// reads, so a new module cannot escape the check either.
    #[test]
    fn every_scenario_module_is_checked() -> anyhow::Result<()> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/scenarios");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        on_disk.retain(|f| f != "mod.rs");
        on_disk.sort();
        let mut listed: Vec<String> = super::ENGINE_SCENARIO_SOURCES
            .iter()
            .chain(super::STORE_SCENARIO_SOURCES)
            .map(|(m, _)| format!("{m}.rs"))
            .collect();
        listed.sort();
        anyhow::ensure!(on_disk == listed, "{on_disk:?} vs {listed:?}");
        Ok(())
    }

    #[test]
    fn an_unstamped_scenario_is_reported() {
        let source = "pub fn written<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {";
        let sources = [("m", source)];
        assert!(super::check_stamped(&["m::written"], &sources).is_ok());
        assert!(super::check_stamped(&[], &sources).is_err());
        assert!(super::check_stamped(&["m::written", "m::gone"], &sources).is_err());
        assert!(super::check_stamped(&["m::written", "m::written"], &sources).is_err());
    }
}
