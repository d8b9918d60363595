//! The benchmark issue's targets, checked against a full run's figures.

use std::fmt::Write as _;

use serde::Serialize;

use crate::Engine;
use crate::cases::aggregates::{
    GENERATED_VS_PER_CALL, MEMORY, PEAK_LOADING, STREAM_VS_RANGE, STREAMS_VS_BULK,
    TARGETS as AGG_TARGETS,
};
use crate::cases::asynchronous::{TABLE as ASYNC, TARGETS as ASYNC_TARGETS};
use crate::cases::concurrent::{TABLE as CONCURRENT, bound_case};
use crate::cases::cursor::DEEP_VS_FIRST;
use crate::cases::reads::{CHECKED_CASES, CHECKS};
use crate::cases::subscriptions::TABLE as SUBSCRIPTIONS;
use crate::cases::transfer::{TABLE as TRANSFER, TARGETS as TRANSFER_TARGETS};
use crate::cases::waiting::{TABLE as WAITING, TARGET as WAITING_TARGET};
use crate::harness::{Bench, Row};
use crate::report::{fmt_num, unique};

/// One of the benchmark issue's targets, checked against a run's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The target, as printed.
    pub target: String,
    /// The engine's name.
    pub engine: String,
    /// What the run measured, as printed.
    pub measured: String,
    /// Whether the run met the target.
    pub met: bool,
}

/// The lowest ours/raw ratio a case may have.
pub const MIN_RATIO: f64 = 0.85;

/// Checks the run's figures against the targets (issue #5). Absolute figures are the medians
/// of the run; the targets were set for 100,000 events on the project's 2-core machine, so a
/// quick run or another N is not held to them and gets no checks.
///
/// "A deep page by cursor costs what the first page costs" is judged on the paired case (see
/// [`cursor_against_first_page`]): the median of its per-run ratios, with the same slack as
/// the ratio floor (a deep page by offset runs at ~0.5× the first page's rate).
///
/// [`cursor_against_first_page`]: crate::cases::cursor::cursor_against_first_page
pub fn checks(b: &Bench) -> Vec<Check> {
    if b.config.quick || b.config.scale || b.config.events != 100_000 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let engines = unique(b.rows.iter().map(|r| r.engine.as_str()));
    for engine in engines {
        let rows: Vec<&Row> = b.rows.iter().filter(|r| r.engine == engine).collect();
        let find = |table: &str, case: &str| {
            rows.iter()
                .find(|r| r.table == table && r.case.starts_with(case))
                .map(|r| (r.ours.median, r.ours.max))
        };
        let mut push = |target: String, measured: String, met: bool| {
            out.push(Check {
                target,
                engine: engine.to_owned(),
                measured,
                met,
            })
        };
        // The subscriptions and async tables compare with other baselines than the raw engine,
        // each held to its own target below.
        let ratios: Vec<(&str, f64)> = rows
            .iter()
            .filter(|r| {
                ![
                    SUBSCRIPTIONS,
                    CHECKS,
                    CONCURRENT,
                    AGG_TARGETS,
                    MEMORY,
                    ASYNC,
                    WAITING,
                    TRANSFER,
                ]
                .contains(&r.table.as_str())
            })
            .filter(|r| !crate::cases::postgres::AGAINST_OTHERS.contains(&r.case.as_str()))
            .filter_map(|r| r.ratio.map(|x| (r.case.as_str(), x)))
            .collect();
        if let Some(&(case, lowest)) = ratios.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
            let below = ratios.iter().filter(|(_, x)| *x < MIN_RATIO).count();
            push(
                format!("ours/raw ≥ {MIN_RATIO} in every case"),
                format!(
                    "lowest {lowest:.3} ({case}); {below} of {} below",
                    ratios.len()
                ),
                below == 0,
            );
        }
        let mut at_least = |target: &str, table: &str, case: &str, min: f64, unit: &str| {
            if let Some((v, best)) = find(table, case) {
                // The best run shows what the code does when the shared machine is quiet;
                // the target is judged on the median.
                push(
                    format!("{target} ≥ {} {unit}", fmt_num(min)),
                    format!("{} {unit} (best run {})", fmt_num(v), fmt_num(best)),
                    v >= min,
                );
            }
        };
        if engine == Engine::Sqlite.name() {
            at_least(
                "one-call `store_bulk`, high-volume profile,",
                "bulk",
                "store_bulk, one call of",
                500_000.0,
                "events/s",
            );
        }
        // Figures for an embedded engine: on a server, every read is a round trip, and the
        // targets there are the ratios against its raw client code (its runs pin the bench
        // and the server to one core, which the cache's figure would share too).
        let embedded = engine != Engine::Postgres.name();
        let reads_at_least: [(&str, &str, f64, &str); 4] = [
            ("stream", "stream all events", 1_000_000.0, "events/s"),
            (
                "replay",
                "replay through a trivial model",
                1_000_000.0,
                "events/s",
            ),
            ("get by id", "get by id (random)", 150_000.0, "ops/s"),
            (
                "cached get (hot set)",
                "cached get (hot set of 100)",
                5_000_000.0,
                "ops/s",
            ),
        ];
        for (target, case, min, unit) in reads_at_least.into_iter().filter(|_| embedded) {
            at_least(target, "reads", case, min, unit);
        }
        let ratio_of = |case: &str| {
            rows.iter()
                .find(|r| r.table == SUBSCRIPTIONS && r.case.starts_with(case))
                .and_then(|r| r.ratio)
        };
        let mut ratio_at_least = |target: &str, case: &str, min: f64| {
            if let Some(ratio) = ratio_of(case) {
                push(
                    format!("{target} ≥ {min}×"),
                    format!("{ratio:.2}×"),
                    ratio >= min,
                );
            }
        };
        ratio_at_least("catch-up against `read_all`", "catch-up", 0.85);
        ratio_at_least(
            "durable appends with 100 idle subscribers, against none,",
            "durable appends with 100 idle",
            0.95,
        );
        ratio_at_least(
            "a projection into a SQLite read model, against a hand-written loop,",
            "projection into a SQLite",
            0.5,
        );
        for (threads, min) in [(16, 8.0), (64, 12.0)] {
            let speedup = rows
                .iter()
                .find(|r| {
                    r.table == CONCURRENT
                        && r.case == format!("{threads} threads, against one thread")
                })
                .and_then(|r| r.ratio);
            // What a perfect group commit would reach on this disk, as a speed-up: one writer
            // committing the same events `threads` at a time, against one thread.
            let one = rows
                .iter()
                .find(|r| r.table == CONCURRENT && r.case == "1 thread")
                .map(|r| r.ours.median);
            let bound = rows
                .iter()
                .find(|r| r.table == CONCURRENT && r.case == bound_case(threads))
                .and_then(|r| Some(r.raw.as_ref()?.median / one?));
            if let Some(ratio) = speedup {
                push(
                    format!("{threads} durable writers ≥ {min}× one writer's rate"),
                    match bound {
                        Some(b) => format!("{ratio:.2}× (one writer, {threads} a commit: {b:.2}×)"),
                        None => format!("{ratio:.2}×"),
                    },
                    ratio >= min,
                );
            }
        }
        let (case, min) = WAITING_TARGET;
        if let Some(ratio) = rows
            .iter()
            .find(|r| r.table == WAITING && r.case == case)
            .and_then(|r| r.ratio)
        {
            push(
                format!("waiting: {case}: ≥ {min}×"),
                format!("{ratio:.2}×"),
                ratio >= min,
            );
        }
        for (case, min) in TRANSFER_TARGETS {
            if let Some(ratio) = rows
                .iter()
                .find(|r| r.table == TRANSFER && r.case == case)
                .and_then(|r| r.ratio)
            {
                push(
                    format!("transfer: {case}: ≥ {min}×"),
                    format!("{ratio:.2}×"),
                    ratio >= min,
                );
            }
        }
        for (case, min) in ASYNC_TARGETS {
            if let Some(ratio) = rows
                .iter()
                .find(|r| r.table == ASYNC && r.case == case)
                .and_then(|r| r.ratio)
            {
                push(
                    format!("async: {case}: ≥ {min}×"),
                    format!("{ratio:.2}×"),
                    ratio >= min,
                );
            }
        }
        for (case, min) in [
            (STREAMS_VS_BULK, 0.6),
            (GENERATED_VS_PER_CALL, 0.8),
            (STREAM_VS_RANGE, 0.85),
        ] {
            if let Some(ratio) = rows
                .iter()
                .find(|r| r.table == AGG_TARGETS && r.case == case)
                .and_then(|r| r.ratio)
            {
                push(
                    format!("{case}: ≥ {min}×"),
                    format!("{ratio:.2}×"),
                    ratio >= min,
                );
            }
        }
        if let Some(ratio) = rows
            .iter()
            .find(|r| r.table == MEMORY && r.case == PEAK_LOADING)
            .and_then(|r| r.ratio)
        {
            push(
                "peak RSS loading streams ≤ 2× plain code's (engine's default cache)".into(),
                format!("{ratio:.2}×"),
                ratio <= 2.0,
            );
        }
        for case in CHECKED_CASES {
            let checked = rows
                .iter()
                .find(|r| r.table == CHECKS && r.case == case)
                .and_then(|r| r.ratio);
            if let Some(ratio) = checked {
                push(
                    format!("{case} with every answer checked, against unchecked, ≥ 0.95×"),
                    format!("{ratio:.2}×"),
                    ratio >= 0.95,
                );
            }
        }
        if let Some(ratio) = ratio_of("in-process delivery latency p99") {
            push(
                "in-process delivery p99 ≤ the durable append's own p99".into(),
                format!("{ratio:.2}× the append's"),
                ratio <= 1.0,
            );
        }
        let paired = b
            .paired
            .iter()
            .find(|r| r.engine == engine && r.case == DEEP_VS_FIRST);
        if let Some(ratio) = paired.and_then(|r| r.ratio) {
            push(
                format!(
                    "a deep page by cursor costs what the first page costs (≥ {MIN_RATIO}× its rate, paired)"
                ),
                format!("{ratio:.2}× the first page's rate"),
                ratio >= MIN_RATIO,
            );
        }
    }
    out
}

/// The checks as a Markdown table (empty when there are none).
pub(crate) fn checks_markdown(checks: &[Check]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut out =
        "### targets\n\n| target | engine | this run | met |\n|---|---|---|---|\n".to_owned();
    for c in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.target,
            c.engine,
            c.measured,
            if c.met { "yes" } else { "**no**" }
        );
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Stat;
    use crate::report::bench;
    use crate::report::markdown::markdown;

    /// The server is held to its ratios against raw code: not to the embedded engines' rates,
    /// nor to the 16-thread rows that compare it with ours.
    #[test]
    fn the_server_is_held_to_its_ratios_against_raw() {
        let mut b = bench(false);
        b.config.events = 100_000;
        b.record(
            "reads",
            "stream all events",
            Engine::Postgres,
            "events/s",
            vec![800_000.0; 3],
            Some(vec![850_000.0; 3]),
        );
        for case in crate::cases::postgres::AGAINST_OTHERS {
            b.record(
                crate::cases::postgres::TABLE,
                case,
                Engine::Postgres,
                "events/s",
                vec![10.0; 3],
                Some(vec![20.0; 3]),
            );
        }
        let got: Vec<(String, bool)> = checks(&b)
            .into_iter()
            .map(|c| (c.measured, c.met))
            .collect();
        assert_eq!(
            got,
            vec![(
                "lowest 0.941 (stream all events); 0 of 1 below".to_owned(),
                true
            )]
        );
    }

    #[test]
    fn targets_are_checked_against_the_medians_of_a_full_run() {
        let mut b = bench(false);
        b.config.events = 100_000;
        let rate = |v: f64| vec![v * 0.9, v, v * 1.1];
        for (engine, bulk, stream) in [
            (Engine::Sqlite, 499_999.0, 1_000_000.0),
            (Engine::Redb, 900_000.0, 999_999.0),
        ] {
            b.record(
                "bulk",
                "store_bulk, one call of 100000",
                engine,
                "events/s",
                rate(bulk),
                Some(rate(bulk)),
            );
            b.record(
                "reads",
                "stream all events",
                engine,
                "events/s",
                rate(stream),
                None,
            );
        }
        // One pair of runs below the ratio floor is not enough to sink a median above it.
        b.record(
            "durability",
            "Immediate",
            Engine::Redb,
            "events/s",
            vec![84.0, 90.0, 90.0],
            Some(vec![100.0, 100.0, 100.0]),
        );
        let got: Vec<(String, String, bool)> = checks(&b)
            .into_iter()
            .map(|c| {
                (
                    c.engine,
                    c.target.split(' ').next().unwrap_or_default().to_owned(),
                    c.met,
                )
            })
            .collect();
        let want = [
            ("sqlite", "ours/raw", true),
            ("sqlite", "one-call", false),
            ("sqlite", "stream", true),
            ("redb", "ours/raw", true),
            ("redb", "stream", false),
        ];
        let want: Vec<(String, String, bool)> = want
            .iter()
            .map(|(e, t, m)| ((*e).to_owned(), (*t).to_owned(), *m))
            .collect();
        assert_eq!(got, want);
        let redb_ratio = &checks(&b)[3];
        assert_eq!(
            redb_ratio.measured,
            "lowest 0.900 (Immediate); 0 of 2 below"
        );

        // A case below the floor fails the ratio target, and is named.
        b.record(
            "reads",
            "cmd page of 100",
            Engine::Redb,
            "pages/s",
            vec![84.0; 3],
            Some(vec![100.0; 3]),
        );
        let ratio = &checks(&b)[3];
        assert!(!ratio.met);
        assert_eq!(
            ratio.measured,
            "lowest 0.840 (cmd page of 100); 1 of 3 below"
        );
        let md = markdown(&b);
        assert!(md.contains("| ours/raw ≥ 0.85 in every case | redb | lowest 0.840 (cmd page of 100); 1 of 3 below | **no** |"), "{md}");
        assert!(
            md.contains("| stream ≥ 1,000,000 events/s | redb | 999,999 events/s (best run 1,099,999) | **no** |"),
            "{md}"
        );

        // The cursor target comes from the paired case, ours against ours.
        let paired = |engine: Engine, ratio: f64| Row {
            table: "cursor".into(),
            case: DEEP_VS_FIRST.into(),
            engine: engine.name().into(),
            unit: "pages/s".into(),
            ours: Stat::of(vec![ratio * 100.0]),
            raw: Some(Stat::of(vec![100.0])),
            ratio: Some(ratio),
        };
        b.paired = vec![paired(Engine::Sqlite, 0.98), paired(Engine::Redb, 0.6)];
        let cursor: Vec<(String, bool, String)> = checks(&b)
            .into_iter()
            .filter(|c| c.target.starts_with("a deep page by cursor"))
            .map(|c| (c.engine, c.met, c.measured))
            .collect();
        assert_eq!(
            cursor,
            [
                ("sqlite".into(), true, "0.98× the first page's rate".into()),
                ("redb".into(), false, "0.60× the first page's rate".into()),
            ]
        );
        // Paired cases are no table of their own.
        assert!(!markdown(&b).contains("### cursor"));

        // A quick run, or another N, is not held to the targets.
        b.config.quick = true;
        assert!(checks(&b).is_empty());
        assert!(!markdown(&b).contains("### targets"));
        b.config.quick = false;
        b.config.events = 20_000;
        assert!(checks(&b).is_empty());
    }
}
