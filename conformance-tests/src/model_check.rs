//! The property test: random operation sequences through an engine, every answer checked
//! against a plain `Vec<Event>` model of the contract.

use std::collections::HashMap;

use anyhow::{Result, anyhow, ensure};
use eventlite_core::{
    Cursor, Error, Event, ExpectedVersion, Filter, IndexConfig, NewEvent, Order, Page, PageStart,
    Query,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::{BackendFactory, Ctx, T0};

/// How many cases to run: `PROPTEST_CASES`, else 256.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

const CMDS: [&str; 4] = ["open", "deposit", "close", ""];
const USERS: [&str; 3] = ["ada", "bob", ""];
const CORRS: [&str; 3] = ["g1", "g2", "g3"];
const STREAMS: [&str; 2] = ["s1", "s2"];

/// One event as the generator describes it.
#[derive(Debug, Clone)]
pub struct Spec {
    cmd: usize,
    user: usize,
    version: u32,
    correlation: Option<usize>,
    causation: Option<u64>,
    stream: Option<(usize, ExpectedVersion)>,
}

/// One operation.
#[derive(Debug, Clone)]
pub enum Op {
    /// `store`.
    Store(Spec),
    /// `store_bulk`.
    Bulk(Vec<Spec>),
    /// Moves the clock (possibly backwards).
    Clock(i64),
    /// `query`.
    Query(Query),
    /// `count`.
    Count(Filter),
    /// `get`.
    Get(u64),
    /// `page` by offset or cursor.
    Page(Filter, Order, Page),
    /// Close and reopen with other indexes (the second config is for the second engine of a
    /// differential run).
    Reopen(IndexConfig, IndexConfig),
}

fn spec() -> impl Strategy<Value = Spec> {
    let expected = prop_oneof![
        Just(ExpectedVersion::Any),
        Just(ExpectedVersion::NoStream),
        (0u64..4).prop_map(ExpectedVersion::Exact),
    ];
    (
        prop_oneof![8 => 0usize..3, 1 => Just(3usize)],
        0usize..3,
        1u32..4,
        proptest::option::of(0usize..3),
        proptest::option::weighted(0.3, 1u64..40),
        proptest::option::weighted(0.3, (0usize..2, expected)),
    )
        .prop_map(
            |(cmd, user, version, correlation, causation, stream)| Spec {
                cmd,
                user,
                version,
                correlation,
                causation,
                stream,
            },
        )
}

fn filter() -> impl Strategy<Value = Filter> {
    (
        proptest::option::weighted(0.3, 0usize..3),
        proptest::option::weighted(0.15, 1u64..30),
        proptest::option::weighted(0.3, 0usize..3),
        proptest::option::weighted(0.3, 0usize..3),
        proptest::option::weighted(0.2, -3i64..4),
        proptest::option::weighted(0.2, -3i64..4),
        proptest::option::weighted(0.15, 1u32..4),
        proptest::option::weighted(0.1, 0usize..2),
        proptest::option::weighted(0.15, 1u64..30),
        proptest::option::weighted(0.15, 1u64..40),
    )
        .prop_map(
            |(corr, caus, cmd, user, from, to, version, stream, id_from, id_to)| Filter {
                correlation_id: corr.map(|i| CORRS[i].to_owned()),
                causation_id: caus,
                cmd: cmd.map(|i| CMDS[i].to_owned()),
                user: user.map(|i| USERS[i].to_owned()),
                datetime_from: from.map(|s| T0 + s * 1_000),
                datetime_to: to.map(|s| T0 + s * 1_000),
                version,
                stream: stream.map(|i| STREAMS[i].to_owned()),
                id_from,
                id_to,
            },
        )
}

fn order() -> impl Strategy<Value = Order> {
    prop_oneof![
        Just(Order::IdAsc),
        Just(Order::IdDesc),
        Just(Order::DatetimeDesc)
    ]
}

fn cursor() -> impl Strategy<Value = Cursor> {
    (0u64..40, -3i64..4).prop_map(|(id, s)| Cursor {
        id,
        datetime: T0 + s * 1_000,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => spec().prop_map(Op::Store),
        2 => proptest::collection::vec(spec(), 1..5).prop_map(Op::Bulk),
        2 => (-2i64..3).prop_map(|s| Op::Clock(s * 1_000)),
        4 => (
            filter(),
            order(),
            proptest::option::of(cursor()),
            0u64..5,
            proptest::option::of(1u64..8)
        )
            .prop_map(|(filter, order, after, offset, limit)| Op::Query(Query {
                filter,
                order,
                after,
                offset,
                limit,
            })),
        1 => filter().prop_map(Op::Count),
        1 => (0u64..40).prop_map(Op::Get),
        2 => (
            filter(),
            order(),
            1u64..6,
            prop_oneof![
                (0u64..8).prop_map(PageStart::Offset),
                cursor().prop_map(PageStart::After)
            ]
        )
            .prop_map(|(f, o, limit, start)| Op::Page(f, o, Page { limit, start })),
        1 => (index_config(), index_config()).prop_map(|(a, b)| Op::Reopen(a, b)),
    ]
}

fn index_config() -> impl Strategy<Value = IndexConfig> {
    proptest::collection::vec(any::<bool>(), 8).prop_map(|flags| {
        let mut config = IndexConfig::none();
        for (name, on) in eventlite_core::IndexName::ALL.into_iter().zip(flags) {
            config.set(name, on);
        }
        config
    })
}

/// The model: the events, and the streams' versions.
#[derive(Debug, Default)]
struct ModelLog {
    events: Vec<Event>,
    streams: HashMap<String, u64>,
}

fn to_new_event(spec: &Spec) -> NewEvent {
    let mut e = NewEvent::new(CMDS[spec.cmd])
        .user(USERS[spec.user])
        .version(spec.version)
        .data(&spec.cmd);
    if let Some(c) = spec.correlation {
        e = e.correlation_id(CORRS[c]);
    }
    if let Some(c) = spec.causation {
        e = e.causation_id(c);
    }
    if let Some((s, expected)) = spec.stream {
        e = e.stream(STREAMS[s], expected);
    }
    e
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::InvalidEvent { .. } => "invalid",
        Error::UnknownCausation(_) => "causation",
        Error::Conflict { .. } => "conflict",
        Error::InvalidArgument(_) => "argument",
        _ => "other",
    }
}

impl ModelLog {
    /// What the batch should store (with `None` for generated correlation ids), or the kind of
    /// error it must fail with.
    fn predict(&self, batch: &[Spec], now: i64) -> Result<Vec<Event>, &'static str> {
        let mut out = Vec::new();
        for s in batch {
            if CMDS[s.cmd].is_empty() {
                return Err("invalid");
            }
            let parent = match s.causation {
                Some(c) => Some(
                    self.events
                        .get((c as usize).wrapping_sub(1))
                        .ok_or("causation")?,
                ),
                None => None,
            };
            let correlation = match (s.correlation, parent) {
                (Some(c), _) => CORRS[c].to_owned(),
                (None, Some(p)) => p.correlation_id.clone(),
                (None, None) => String::new(),
            };
            out.push(Event {
                id: self.events.len() as u64 + out.len() as u64 + 1,
                version: s.version,
                datetime: now,
                user: USERS[s.user].to_owned(),
                ip: String::new(),
                cmd: CMDS[s.cmd].to_owned(),
                data: s.cmd.to_string(),
                correlation_id: correlation,
                causation_id: s.causation,
                metadata: "{}".to_owned(),
                stream: s.stream.map(|(i, _)| STREAMS[i].to_owned()),
                stream_version: None,
            });
        }
        let mut versions = self.streams.clone();
        for (e, s) in out.iter_mut().zip(batch) {
            if let Some((i, expected)) = s.stream {
                let name = STREAMS[i];
                let current = versions.get(name).copied();
                // The contract, restated independently of the engines' shared check.
                let holds = match expected {
                    ExpectedVersion::Any => true,
                    ExpectedVersion::NoStream => current.is_none(),
                    ExpectedVersion::Exact(0) => current.is_none(),
                    ExpectedVersion::Exact(n) => current == Some(n),
                };
                if !holds {
                    return Err("conflict");
                }
                let next = current.unwrap_or(0) + 1;
                versions.insert(name.to_owned(), next);
                e.stream_version = Some(next);
            }
        }
        Ok(out)
    }

    fn commit(&mut self, events: &[Event]) {
        for e in events {
            if let (Some(s), Some(v)) = (&e.stream, e.stream_version) {
                self.streams.insert(s.clone(), v);
            }
        }
        self.events.extend_from_slice(events);
    }

    fn query(&self, q: &Query) -> Vec<Event> {
        let mut hits: Vec<Event> = self
            .events
            .iter()
            .filter(|e| q.admits(e))
            .cloned()
            .collect();
        hits.sort_by(|a, b| q.order.compare(a, b));
        hits.into_iter()
            .skip(q.offset as usize)
            .take(q.limit.map_or(usize::MAX, |l| l as usize))
            .collect()
    }
}

fn check_append(
    model: &mut ModelLog,
    batch: &[Spec],
    now: i64,
    got: eventlite_core::Result<Vec<Event>>,
) -> Result<()> {
    match (model.predict(batch, now), got) {
        (Ok(mut want), Ok(got)) => {
            ensure!(want.len() == got.len());
            for (w, g) in want.iter_mut().zip(&got) {
                if w.correlation_id.is_empty() {
                    ensure!(
                        !g.correlation_id.is_empty(),
                        "generated correlation is empty"
                    );
                    ensure!(
                        model
                            .events
                            .iter()
                            .all(|e| e.correlation_id != g.correlation_id),
                        "generated correlation id reused"
                    );
                    w.correlation_id = g.correlation_id.clone();
                }
            }
            ensure!(want == got, "stored {got:#?}, model wants {want:#?}");
            model.commit(&got);
        }
        (Err(want), Err(got)) => ensure!(want == kind(&got), "error {got:?}, model wants {want}"),
        (want, got) => anyhow::bail!("model: {want:?}, engine: {got:?}"),
    }
    Ok(())
}

/// Runs `cases` random sequences through `engine`.
pub fn run<F: BackendFactory>(cases: u32) -> Result<()> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let ctx = Ctx::new(F::default(), IndexConfig::default());
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            run_case(&ctx, &ops).map_err(|e| TestCaseError::fail(format!("{e:#}")))
        })
        .map_err(|e| anyhow!("{e}"))
}

fn run_case<F: BackendFactory>(ctx: &Ctx<F>, ops: &[Op]) -> Result<()> {
    let mut f = ctx.fixture()?;
    let mut model = ModelLog::default();
    for op in ops {
        match op {
            Op::Store(s) => {
                let got = f.store(to_new_event(s)).map(|e| vec![e]);
                check_append(&mut model, std::slice::from_ref(s), f.clock_now(), got)?;
            }
            Op::Bulk(batch) => {
                let got = f.store_bulk(batch.iter().map(to_new_event).collect());
                check_append(&mut model, batch, f.clock_now(), got)?;
            }
            Op::Clock(delta) => f.clock.advance(*delta),
            Op::Query(q) => {
                let got = f.query(q)?;
                ensure!(got == model.query(q), "query {q:?}");
            }
            Op::Count(filter) => {
                let want = model.events.iter().filter(|e| filter.matches(e)).count() as u64;
                ensure!(f.count(filter)? == want, "count {filter:?}");
            }
            Op::Get(id) => {
                let want = model.events.get((*id as usize).wrapping_sub(1));
                ensure!(f.get(*id)?.as_ref() == want, "get {id}");
                ensure!(f.get_cached(*id)?.as_deref() == want, "get_cached {id}");
            }
            Op::Page(filter, order, page) => {
                let got = f.page(filter.clone(), *order, *page)?;
                let (after, offset) = match page.start {
                    PageStart::Offset(o) => (None, o),
                    PageStart::After(c) => (Some(c), 0),
                };
                let rest = model.query(&Query {
                    filter: filter.clone(),
                    order: *order,
                    after,
                    offset,
                    limit: None,
                });
                let total = model.events.iter().filter(|e| filter.matches(e)).count() as u64;
                let n = rest.len().min(page.limit as usize);
                ensure!(got.events[..] == rest[..n], "page {page:?} of {filter:?}");
                ensure!(got.total_count == total && got.has_more == (rest.len() > n));
                ensure!(got.next_cursor == got.has_more.then(|| rest[n - 1].cursor()));
            }
            Op::Reopen(config, _) => {
                f = f.reopen(*config)?;
                ensure!(f.indexes()? == *config);
                ensure!(f.last_id()? == model.events.len() as u64);
            }
        }
    }
    Ok(())
}

impl<F: BackendFactory> crate::Fixture<'_, F> {
    /// The fixture clock's current time.
    pub fn clock_now(&self) -> i64 {
        use eventlite_core::Clock;
        self.clock.now_ms()
    }
}

/// What one operation answered, with generated correlation ids replaced by their order of
/// first appearance (so two engines' answers compare equal).
#[derive(Debug, PartialEq)]
enum Answer {
    Events(Vec<Event>),
    Count(u64),
    Page(eventlite_core::EventPage),
    Error(&'static str),
    None,
}

#[derive(Default)]
struct Normalizer(HashMap<String, String>);

impl Normalizer {
    fn events(&mut self, mut events: Vec<Event>) -> Vec<Event> {
        for e in &mut events {
            if !CORRS.contains(&e.correlation_id.as_str()) {
                let n = self.0.len();
                e.correlation_id = self
                    .0
                    .entry(e.correlation_id.clone())
                    .or_insert_with(|| format!("generated-{n}"))
                    .clone();
            }
        }
        events
    }
}

fn answer<F: BackendFactory>(
    f: &mut Option<crate::Fixture<'_, F>>,
    norm: &mut Normalizer,
    op: &Op,
    second: bool,
) -> Result<Answer> {
    let fx = f.as_ref().ok_or_else(|| anyhow!("fixture gone"))?;
    let result = match op {
        Op::Store(s) => fx
            .store(to_new_event(s))
            .map(|e| Answer::Events(norm.events(vec![e]))),
        Op::Bulk(b) => fx
            .store_bulk(b.iter().map(to_new_event).collect())
            .map(|e| Answer::Events(norm.events(e))),
        Op::Clock(d) => {
            fx.clock.advance(*d);
            Ok(Answer::None)
        }
        Op::Query(q) => fx.query(q).map(|e| Answer::Events(norm.events(e))),
        Op::Count(filter) => fx.count(filter).map(Answer::Count),
        Op::Get(id) => fx
            .get(*id)
            .map(|e| Answer::Events(norm.events(e.into_iter().collect()))),
        Op::Page(filter, order, page) => fx.page(filter.clone(), *order, *page).map(|mut p| {
            p.events = norm.events(std::mem::take(&mut p.events));
            Answer::Page(p)
        }),
        Op::Reopen(a, b) => {
            let config = if second { *b } else { *a };
            let fixture = f.take().ok_or_else(|| anyhow!("fixture gone"))?;
            let reopened = fixture.reopen(config)?;
            ensure!(reopened.indexes()? == config);
            *f = Some(reopened);
            Ok(Answer::None)
        }
    };
    Ok(result.unwrap_or_else(|e| Answer::Error(kind(&e))))
}

/// Runs the same random sequences through engines `A` and `B` (each under its own random
/// index configurations) and requires identical answers: events, pages, counts and errors.
pub fn run_differential<A: BackendFactory, B: BackendFactory>(cases: u32) -> Result<()> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let (ctx_a, ctx_b) = (
        Ctx::new(A::default(), IndexConfig::default()),
        Ctx::new(B::default(), IndexConfig::default()),
    );
    let strategy = (
        index_config(),
        index_config(),
        proptest::collection::vec(op(), 1..40),
    );
    runner
        .run(&strategy, |(config_a, config_b, ops)| {
            let run = || -> Result<()> {
                let cache = eventlite_core::CachePolicy::default();
                let mut a = Some(ctx_a.fixture_with(config_a, cache)?);
                let mut b = Some(ctx_b.fixture_with(config_b, cache)?);
                let (mut norm_a, mut norm_b) = (Normalizer::default(), Normalizer::default());
                for (i, op) in ops.iter().enumerate() {
                    let got_a = answer(&mut a, &mut norm_a, op, false)?;
                    let got_b = answer(&mut b, &mut norm_b, op, true)?;
                    ensure!(got_a == got_b, "op {i} {op:?}: {got_a:?} != {got_b:?}");
                }
                Ok(())
            };
            run().map_err(|e| TestCaseError::fail(format!("{e:#}")))
        })
        .map_err(|e| anyhow!("{e}"))
}
