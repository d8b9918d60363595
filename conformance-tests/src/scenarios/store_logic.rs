//! `EventStore`'s own logic, the same on every engine: validation, correlation ids, models and
//! callbacks, the cache, argument checks. Run once, on the reference engine
//! ([`crate::store_logic_suite!`]).

use super::*;

struct Recording {
    handled: Vec<String>,
    done: Vec<u64>,
    errors: Vec<Stage>,
}

impl Model for Recording {
    type Output = String;
    fn handle(&mut self, event: &Event, _: &EventData<'_>) -> Result<String, BoxError> {
        match event.cmd.as_str() {
            "fail" => Err("handler refused".into()),
            "known" => {
                self.handled.push("known".into());
                Ok("known-result".into())
            }
            _ => {
                self.handled.push(format!("default:{}", event.cmd));
                Ok("default-result".into())
            }
        }
    }
    fn done(&mut self, event: &Event, _: &String) {
        self.done.push(event.id);
    }
    fn error(&mut self, error: &eventlite_core::ExecutionError) {
        self.errors.push(error.stage);
    }
}

fn recording() -> Recording {
    Recording {
        handled: vec![],
        done: vec![],
        errors: vec![],
    }
}

/// An empty or blank cmd is a typed error; nothing is stored.
pub fn empty_cmd_is_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    for cmd in ["", "   ", "\t\n"] {
        assert_err(f.store(ev(cmd)), |e| {
            matches!(e, Error::InvalidEvent { .. })
        })?;
        let mut model = FnModel::new(()).on_default(|_, _, _| Ok(()));
        assert_err(
            f.store_with(ev(cmd), &mut model, &mut Callbacks::new()),
            |e| matches!(e, Error::InvalidEvent { .. }),
        )?;
    }
    ensure!(f.last_id()? == 0);
    Ok(())
}

/// One bad event aborts the whole bulk.
pub fn empty_cmd_in_bulk_stores_nothing<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("before"))?;
    assert_err(f.store_bulk(vec![ev("a"), ev(""), ev("c")]), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    ensure!(f.last_id()? == 1);
    ensure!(
        f.store(ev("after"))?.id == 2,
        "next id continues without a gap"
    );
    Ok(())
}

/// Malformed data, malformed or non-object metadata and unserialisable values are rejected.
pub fn malformed_json_is_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut bad_map = std::collections::HashMap::new();
    bad_map.insert(vec![1u8], 1);
    let cases = vec![
        ev("a").data_json("{not json"),
        ev("a").data_json(""),
        ev("a").data_json("{} trailing"),
        ev("a").metadata_json("[1, 2]"),
        ev("a").metadata_json("\"text\""),
        ev("a").metadata_json("{oops"),
        ev("a").metadata(&5),
        ev("a").data(&bad_map),
        ev("a").correlation_id(""),
        ev("a").stream("", ExpectedVersion::Any),
    ];
    for case in cases {
        assert_err(f.store(case), |e| matches!(e, Error::InvalidEvent { .. }))?;
    }
    ensure!(f.last_id()? == 0);
    // Any JSON value is valid data.
    for text in ["1", "\"s\"", "[]", "null", " {\"k\": true} "] {
        ensure!(f.store(ev("a").data_json(text))?.data == text);
    }
    Ok(())
}

/// Schema versions start at 1.
pub fn version_zero_is_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    assert_err(f.store(ev("a").version(0)), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    ensure!(f.store(ev("a").version(u32::MAX))?.version == u32::MAX);
    Ok(())
}

/// Events over the size limit are rejected and the store stays usable.
pub fn oversize_event_is_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let location = ctx.factory.location()?;
    let store = EventStore::builder(ctx.factory.open(&location, ctx.profile)?)
        .max_event_size(1_000)
        .build();
    store.store(ev("small").data(&"x".repeat(900)))?;
    assert_err(store.store(ev("big").data(&"x".repeat(1_000))), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    assert_err(
        store.store_bulk(vec![ev("ok"), ev("big").ip("u".repeat(2_000))]),
        |e| matches!(e, Error::InvalidEvent { .. }),
    )?;
    ensure!(store.last_id()? == 1);
    ensure!(store.store(ev("next"))?.id == 2);
    Ok(())
}

/// Malformed wait conditions are [`Error::InvalidCondition`] (an invalid event is
/// [`Error::InvalidEvent`]), and nothing is parked or stored.
pub fn bad_wait_conditions_park_nothing<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    use eventlite_core::{Cmp, Condition, WaitFor};
    let f = ctx.fixture()?;
    let bad_json = [
        json!({}),
        json!({ "all": [] }),
        json!({ "all": [{ "pattern": "x", "corelationId": "typo" }] }),
        json!({ "all": [{ "correlationId": "c" }] }),
        json!({ "all": [{ "pattern": "" }] }),
        json!({ "all": [{ "pattern": "x", "where": { "n": { "$gtt": 1 } } }] }),
        json!({ "all": [{ "pattern": "x", "where": { "n": { "$gt": [1] } } }] }),
        json!({ "all": [{ "pattern": "x", "where": [1] }] }),
        json!({ "count": { "pattern": "x", "count": 0 } }),
        json!({ "count": { "pattern": "x", "count": -1 } }),
        json!({ "al": [{ "pattern": "x" }] }),
        json!({ "any": { "pattern": "x" } }),
        json!({ "all": [{ "pattern": "x" }], "timeout": "soon" }),
        json!([{ "pattern": "x" }]),
    ];
    for bad in &bad_json {
        let e = WaitFor::from_json(bad).err();
        ensure!(
            matches!(e, Some(Error::InvalidCondition(_))),
            "{bad}: {e:?}"
        );
    }
    let both = WaitFor::from_json(
        &json!({ "count": { "pattern": "v", "count": 2 }, "all": [{ "pattern": "w" }] }),
    )?;
    ensure!(both.all_of().len() == 2, "{both:?}");
    let go = || Condition::new("go");
    f.clock.set(T0 + 10);
    let refused = [
        WaitFor::new(),
        WaitFor::new().all([go()]).expires_at(T0),
        WaitFor::new().all([go()]).expires_at(T0 + 10),
        WaitFor::new()
            .all([go()])
            .timeout(std::time::Duration::ZERO),
        WaitFor::new().any([go().field("n", Cmp::Lt, json!({ "a": 1 }))]),
        WaitFor::new().any([go().field("", Cmp::Eq, 1)]),
        WaitFor::new().sequence([go().correlation_id("")]),
        WaitFor::new().all([go().at_least(0)]),
        WaitFor::new().all([Condition::new("c".repeat(eventlite_core::MAX_KEY_LEN + 1))]),
        WaitFor::new().all([go().correlation_id("r".repeat(eventlite_core::MAX_KEY_LEN + 1))]),
    ];
    for wait in refused {
        let e = f.store_when(ev("e"), wait.clone()).err();
        ensure!(
            matches!(e, Some(Error::InvalidCondition(_))),
            "{wait:?}: {e:?}"
        );
    }
    for event in [
        ev(""),
        ev("e").data_json("{"),
        ev("e").stream("s", ExpectedVersion::NoStream),
    ] {
        let e = f.store_when(event, WaitFor::new().all([go()])).err();
        ensure!(matches!(e, Some(Error::InvalidEvent { .. })), "{e:?}");
    }
    let e = f
        .store_when(ev("e").causation_id(7), WaitFor::new().all([go()]))
        .err();
    ensure!(matches!(e, Some(Error::UnknownCausation(7))), "{e:?}");
    ensure!(f.waiting_in(None)?.is_empty() && f.last_id()? == 0);
    // A stream without an expectation is fine: its version is given on release.
    f.store_when(
        ev("e").stream("s", ExpectedVersion::Any),
        WaitFor::new().all([go()]),
    )?;
    let stored = f.store(
        ev("go").correlation_id(f.waiting(1)?.map(|w| w.correlation_id).unwrap_or_default()),
    )?;
    let released = f
        .get(stored.id + 1)?
        .ok_or_else(|| anyhow::anyhow!("not released"))?;
    ensure!(released.stream.as_deref() == Some("s") && released.stream_version == Some(1));
    Ok(())
}

/// A record whose release fails (its event is over this handle's size limit) is reported by
/// `check_waiting` and stays waiting; the records after it are released all the same.
pub fn a_failing_waiting_record_does_not_hold_up_the_others<F: BackendFactory>(
    ctx: &Ctx<F>,
) -> Result<()> {
    use eventlite_core::{Condition, WaitFor, WaitState};
    let f = ctx.fixture()?;
    let big = f.store_when(
        ev("big").correlation_id("g").data(&"x".repeat(2_000)),
        WaitFor::new().all([Condition::new("go")]),
    )?;
    let small = f.store_when(
        ev("small").correlation_id("g"),
        WaitFor::new().all([Condition::new("go")]),
    )?;
    let strict = EventStore::builder(ctx.factory.open(&f.location, ctx.profile)?)
        .max_event_size(1_000)
        .check_waiting_at_open(false)
        .build();
    let mut go = eventlite_core::spi::PendingEvent::new("go");
    go.correlation_id = "g".into();
    eventlite_core::spi::EventLog::append(strict.backend(), vec![go])?;
    let check = strict.check_waiting()?;
    ensure!(
        check
            .released
            .iter()
            .map(|e| e.cmd.as_str())
            .collect::<Vec<_>>()
            == ["small"]
    );
    ensure!(
        check.failed.len() == 1 && check.failed[0].0 == Some(big.id),
        "{check:?}"
    );
    ensure!(matches!(check.failed[0].1, Error::InvalidEvent { .. }));
    ensure!(strict.waiting(big.id)?.map(|w| w.state) == Some(WaitState::Waiting));
    ensure!(strict.waiting(small.id)?.map(|w| w.state) == Some(WaitState::Released));
    // A handle that takes it releases it.
    ensure!(f.check_waiting()?.released.iter().any(|e| e.cmd == "big"));
    Ok(())
}

/// `check_event` refuses exactly what an append refuses, and stores nothing either way; a
/// causation id is the caller's to know (an import checks it against its own file).
pub fn check_event_refuses_what_an_append_refuses<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let over = "k".repeat(eventlite_core::MAX_KEY_LEN + 1);
    let bad = [
        ev(""),
        ev("x").version(0),
        ev("x").data_json("{not json"),
        ev("x").metadata_json("[1]"),
        ev("x").user(&over),
        ev("x").correlation_id(""),
        ev("x").data_json(format!(
            "\"{}\"",
            "d".repeat(eventlite_core::DEFAULT_MAX_EVENT_SIZE)
        )),
    ];
    for event in bad {
        assert_err(f.check_event(&event), |e| {
            matches!(e, Error::InvalidEvent { .. })
        })?;
        assert_err(f.store(event), |e| matches!(e, Error::InvalidEvent { .. }))?;
    }
    let good = ev("x").user("ada").data(&json!({"n": 1})).causation_id(99);
    f.check_event(&good)?;
    ensure!(f.last_id()? == 0, "a check stores nothing");
    assert_err(f.store(good), |e| matches!(e, Error::UnknownCausation(99)))?;
    // The parent is looked up before the keys' lengths are: an unknown parent is what an
    // event with both faults reports, and the check (which knows no parents) the length.
    let both = ev(&"k".repeat(eventlite_core::MAX_KEY_LEN + 1)).causation_id(99);
    assert_err(f.check_event(&both), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    assert_err(f.store(both), |e| matches!(e, Error::UnknownCausation(99)))?;
    Ok(())
}

/// A cmd, user, correlation id or stream name longer than `MAX_KEY_LEN` bytes is refused
/// (the limit is on bytes, not characters), and a bulk holding one stores nothing; so is a
/// snapshot or position name of that length.
pub fn overlong_keys_are_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let at = "k".repeat(eventlite_core::MAX_KEY_LEN);
    // 'é' is two bytes: this one is MAX_KEY_LEN characters but one byte over.
    let over = format!("{}é", "k".repeat(eventlite_core::MAX_KEY_LEN - 1));
    f.store(
        ev(&at)
            .user(&at)
            .correlation_id(&at)
            .stream(&at, ExpectedVersion::Any),
    )?;
    for bad in [
        ev(&over),
        ev("x").user(&over),
        ev("x").correlation_id(&over),
        ev("x").stream(&over, ExpectedVersion::Any),
    ] {
        assert_err(f.store(bad), |e| matches!(e, Error::InvalidEvent { .. }))?;
    }
    assert_err(f.store_bulk(vec![ev("ok"), ev(&over)]), |e| {
        matches!(e, Error::InvalidEvent { .. })
    })?;
    ensure!(f.last_id()? == 1);
    // Snapshot and position names are keys too.
    f.save_position(&at, 1)?;
    f.create_snapshot(&at, 1, &0u32)?;
    assert_err(f.save_position(&over, 1), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    assert_err(f.create_snapshot(&over, 1, &0u32), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    Ok(())
}

/// `store_bulk(vec![])` is an error.
pub fn empty_bulk_is_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    assert_err(f.store_bulk(vec![]), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    ensure!(f.last_id()? == 0);
    Ok(())
}

/// Without correlation and causation, each event starts a new group (a time-ordered UUID v7).
pub fn correlation_generated_when_absent<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let a = f.store(ev("a"))?;
    let b = f.store(ev("b"))?;
    let bulk = f.store_bulk(vec![ev("c"), ev("d")])?;
    let generated: Vec<&str> = [&a, &b, &bulk[0], &bulk[1]]
        .iter()
        .map(|e| e.correlation_id.as_str())
        .collect();
    let all: HashSet<&str> = generated.iter().copied().collect();
    ensure!(all.len() == 4, "correlation ids must be distinct");
    for c in &generated {
        ensure!(
            c.len() == 36 && c.as_bytes()[14] == b'7',
            "not a UUID v7: {c}"
        );
    }
    // Time-ordered: each new group's id sorts after the last one's, so the correlation
    // index grows at its end instead of at random places.
    ensure!(
        generated.windows(2).all(|w| w[0] < w[1]),
        "generated ids out of order: {generated:?}"
    );
    Ok(())
}

/// With only a causation id, the event joins its parent's group (single and bulk).
pub fn correlation_inherited_from_causation<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("root").correlation_id("order-7"))?;
    let child = f.store(ev("child").causation_id(root.id))?;
    let grandchild = f.store(ev("grandchild").causation_id(child.id))?;
    let bulk = f.store_bulk(vec![
        ev("x").causation_id(root.id),
        ev("y").causation_id(child.id),
    ])?;
    for e in [&child, &grandchild, &bulk[0], &bulk[1]] {
        ensure!(e.correlation_id == "order-7", "{e:?}");
    }
    ensure!(f.transaction("order-7")?.len() == 5);
    Ok(())
}

/// An explicit correlation id wins over the parent's.
pub fn explicit_correlation_wins_over_causation<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("root").correlation_id("one"))?;
    let other = f.store(ev("other").causation_id(root.id).correlation_id("two"))?;
    ensure!(other.correlation_id == "two" && other.causation_id == Some(root.id));
    ensure!(f.children(root.id)?.len() == 1);
    Ok(())
}

/// A causation id naming no event is an error and stores nothing (upstream stored NULL).
pub fn unknown_causation_is_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("a"))?;
    assert_err(f.store(ev("b").causation_id(42)), |e| {
        matches!(e, Error::UnknownCausation(42))
    })?;
    assert_err(
        f.store(ev("b").causation_id(7).correlation_id("explicit")),
        |e| matches!(e, Error::UnknownCausation(7)),
    )?;
    assert_err(
        f.store_bulk(vec![ev("ok"), ev("bad").causation_id(2)]),
        |e| matches!(e, Error::UnknownCausation(2)),
    )?;
    ensure!(f.last_id()? == 1);
    Ok(())
}

/// `store_with_context`: the context's correlation id and causation win over the event's, its
/// metadata is merged into the event's with its keys winning, and the result is checked as
/// any event is (an unknown causation stores nothing, nor does context metadata that is not
/// an object).
pub fn store_with_context_wins_and_merges<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let order = f.store(ev("order").correlation_id("order-group"))?;
    let other = f.store(ev("other"))?;
    // The event's own correlation and causation lose to the context's.
    let context = EventContext::caused_by(&order).metadata(&json!({"handler": "mailer", "n": 2}));
    let mail = f.store_with_context(
        ev("mail")
            .correlation_id("own-group")
            .causation_id(other.id)
            .metadata(&json!({"n": 1, "kept": true})),
        &context,
    )?;
    ensure!(
        mail.correlation_id == "order-group",
        "{}",
        mail.correlation_id
    );
    ensure!(mail.causation_id == Some(order.id));
    let meta: serde_json::Value = serde_json::from_str(&mail.metadata)?;
    ensure!(
        meta == json!({"n": 2, "kept": true, "handler": "mailer"}),
        "{meta}"
    );
    // Only a causation: an event without a correlation id of its own joins its cause's
    // group, as a plain causation does; one that names its own group keeps it (upstream).
    let child = f.store_with_context(ev("child"), &EventContext::new().causation_id(mail.id))?;
    ensure!(child.correlation_id == "order-group" && child.causation_id == Some(mail.id));
    let own = f.store_with_context(
        ev("own").correlation_id("mine"),
        &EventContext::new().causation_id(mail.id),
    )?;
    ensure!(own.correlation_id == "mine" && own.causation_id == Some(mail.id));
    // Only a correlation: the event keeps its own causation.
    let joined = f.store_with_context(
        ev("joined").causation_id(order.id),
        &EventContext::new().correlation_id("elsewhere"),
    )?;
    ensure!(joined.correlation_id == "elsewhere" && joined.causation_id == Some(order.id));
    // An empty context changes nothing; its event is what `store` would have written.
    let plain =
        f.store_with_context(ev("plain").metadata(&json!({"a": 1})), &EventContext::new())?;
    ensure!(plain.metadata == r#"{"a":1}"# && plain.causation_id.is_none());
    let last = f.last_id()?;
    assert_err(
        f.store_with_context(ev("lost"), &EventContext::new().causation_id(9_999)),
        |e| matches!(e, Error::UnknownCausation(9_999)),
    )?;
    assert_err(
        f.store_with_context(ev("lost"), &EventContext::new().metadata(&[1, 2])),
        |e| matches!(e, Error::InvalidEvent { .. }),
    )?;
    // Event metadata that is not an object is refused as it would be without a context.
    assert_err(
        f.store_with_context(
            ev("lost").metadata_json("[1]"),
            &EventContext::new().metadata(&json!({"k": 1})),
        ),
        |e| matches!(e, Error::InvalidEvent { .. }),
    )?;
    ensure!(f.last_id()? == last, "a refused event was stored");
    Ok(())
}

/// Migrations run from the event's version to the latest, before the handler; the stored data
/// stays as written.
pub fn migrations_chain<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("renamed").version(1).data(&json!({"name": "ada"})))?;
    f.store(ev("renamed").version(2).data(&json!({"full_name": "bob"})))?;
    f.store(
        ev("renamed")
            .version(3)
            .data(&json!({"full_name": "cy", "v3": true})),
    )?;
    f.store(ev("other").data(&json!({"name": "untouched"})))?;
    let mut model = FnModel::new(Vec::<serde_json::Value>::new())
        .migration("renamed", |mut v| {
            let name = v["name"].take();
            Ok(json!({ "full_name": name }))
        })
        .migration("renamed", |mut v| {
            v["v3"] = json!(true);
            Ok(v)
        })
        .on_default(|seen, _, data| {
            seen.push(data.value()?);
            Ok(())
        });
    f.replay(&mut model, .., &mut Callbacks::new())?;
    ensure!(
        *model.state()
            == vec![
                json!({"full_name": "ada", "v3": true}),
                json!({"full_name": "bob", "v3": true}),
                json!({"full_name": "cy", "v3": true}),
                json!({"name": "untouched"}),
            ],
        "{:?}",
        model.state()
    );
    ensure!(f.get(1)?.map(|e| e.data) == Some(r#"{"name":"ada"}"#.to_owned()));
    Ok(())
}

/// A failing handler is reported (result, error callback, model `error`) and the event stays.
pub fn model_error_keeps_event<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let reported = RefCell::new(Vec::new());
    let mut callbacks = Callbacks::new().on_error(|e| reported.borrow_mut().push(e.event.id));
    let mut model = recording();
    let out = f.store_with(ev("fail"), &mut model, &mut callbacks)?;
    let err = out
        .result
        .err()
        .ok_or_else(|| anyhow::anyhow!("expected failure"))?;
    ensure!(err.stage == Stage::Handler && err.message.contains("handler refused"));
    ensure!(*err.event == out.event);
    drop(callbacks);
    ensure!(*reported.borrow() == vec![1] && model.errors == vec![Stage::Handler]);
    ensure!(model.done.is_empty());
    ensure!(f.get(1)?.is_some_and(|e| e.cmd == "fail"));
    Ok(())
}

/// A failing migration is reported with the version it started from.
pub fn migration_error_is_reported<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut model = FnModel::new(0)
        .migration("m", Ok)
        .migration("m", |_| Err("cannot upgrade v2".into()))
        .on_default(|n, _, _| {
            *n += 1;
            Ok(())
        });
    let out = f.store_with(ev("m").version(1), &mut model, &mut Callbacks::new())?;
    let err = out
        .result
        .err()
        .ok_or_else(|| anyhow::anyhow!("expected failure"))?;
    ensure!(
        err.stage == Stage::Migration { from_version: 2 },
        "{:?}",
        err.stage
    );
    ensure!(*model.state() == 0 && f.last_id()? == 1);
    let ok = f.store_with(ev("m").version(3), &mut model, &mut Callbacks::new())?;
    ensure!(ok.result.is_ok() && *model.state() == 1);
    Ok(())
}

/// A failing callback is reported as such; the command's result stands (upstream reported it
/// as a failing command).
pub fn callback_error_is_not_a_command_error<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let stages = RefCell::new(Vec::new());
    let mut callbacks = Callbacks::new()
        .on("known", |_, _| Err("callback broke".into()))
        .on_error(|e| stages.borrow_mut().push(e.stage));
    let mut model = recording();
    let out = f.store_with(ev("known"), &mut model, &mut callbacks)?;
    ensure!(out.result.as_deref().ok() == Some("known-result"));
    drop(callbacks);
    ensure!(*stages.borrow() == vec![Stage::Callback]);
    ensure!(model.errors.is_empty() && model.done == vec![1]);
    Ok(())
}

/// Unknown commands, including names of built-in properties, go to the default handler.
pub fn unknown_and_builtin_cmds_dispatch_to_default<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut model = recording();
    for cmd in [
        "toString",
        "constructor",
        "__proto__",
        "hasOwnProperty",
        "known",
    ] {
        let out = f.store_with(ev(cmd), &mut model, &mut Callbacks::new())?;
        ensure!(out.result.is_ok());
    }
    ensure!(
        model.handled
            == vec![
                "default:toString",
                "default:constructor",
                "default:__proto__",
                "default:hasOwnProperty",
                "known"
            ]
    );
    // A closure model without a default reports unknown commands.
    let mut strict = FnModel::new(()).on("known", |_, _, _| Ok(()));
    let out = f.store_with(ev("toString"), &mut strict, &mut Callbacks::new())?;
    ensure!(out.result.is_err_and(|e| e.stage == Stage::Handler));
    Ok(())
}

/// The cmd's callback (else the default) gets the model's output, then `done` runs.
pub fn callbacks_run_per_cmd_then_done<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let log = RefCell::new(Vec::<String>::new());
    let mut callbacks = Callbacks::new()
        .on("known", |out: &String, e| {
            log.borrow_mut().push(format!("known:{out}:{}", e.id));
            Ok(())
        })
        .on_default(|out: &String, e| {
            log.borrow_mut().push(format!("default:{out}:{}", e.id));
            Ok(())
        });
    let mut model = recording();
    f.store_with(ev("known"), &mut model, &mut callbacks)?;
    f.store_with(ev("else"), &mut model, &mut callbacks)?;
    drop(callbacks);
    ensure!(*log.borrow() == vec!["known:known-result:1", "default:default-result:2"]);
    ensure!(model.done == vec![1, 2]);
    Ok(())
}

/// `store_bulk_with` stores all, then executes each in order; a failure stays per event.
pub fn bulk_with_model_executes_in_order<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut model = recording();
    let out = f.store_bulk_with(
        vec![ev("known"), ev("fail"), ev("x")],
        &mut model,
        &mut Callbacks::new(),
    )?;
    ensure!(ids(&out.iter().map(|o| o.event.clone()).collect::<Vec<_>>()) == vec![1, 2, 3]);
    ensure!(out[0].result.is_ok() && out[1].result.is_err() && out[2].result.is_ok());
    ensure!(model.handled == vec!["known", "default:x"] && f.last_id()? == 3);
    Ok(())
}

/// A parked event runs through the model when `store_when_with` stores it at once, and when
/// `check_waiting_with` releases it; an event still waiting runs through nothing.
pub fn released_events_run_through_the_model<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    use eventlite_core::{Condition, WaitFor};
    let f = ctx.fixture()?;
    let mut model = recording();
    f.store(ev("ready").correlation_id("g"))?;
    let (now, executed) = f.store_when_with(
        ev("known").correlation_id("g"),
        WaitFor::new().all([Condition::new("ready")]),
        &mut model,
        &mut Callbacks::new(),
    )?;
    ensure!(now.released.is_some() && executed.is_some_and(|e| e.result.is_ok()));
    let (later, executed) = f.store_when_with(
        ev("late").correlation_id("g"),
        WaitFor::new().all([Condition::new("go")]),
        &mut model,
        &mut Callbacks::new(),
    )?;
    ensure!(later.released.is_none() && executed.is_none());
    ensure!(model.handled == vec!["known"]);
    let mut go = eventlite_core::spi::PendingEvent::new("go");
    go.correlation_id = "g".into();
    eventlite_core::spi::EventLog::append(f.backend(), vec![go])?;
    let (check, executed) = f.check_waiting_with(&mut model, &mut Callbacks::new())?;
    ensure!(check.released.len() == 1 && executed.len() == 1);
    ensure!(
        model.handled == vec!["known", "default:late"],
        "{:?}",
        model.handled
    );
    Ok(())
}

/// Hits and misses are counted; the hit rate follows.
pub fn cache_counts_hits_and_misses<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let e = f.store(ev("a").correlation_id("g"))?;
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e)); // miss
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e)); // hit
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e)); // hit
    f.transaction_cached("g")?; // miss
    f.transaction_cached("g")?; // hit
    let stats = f.cache_stats();
    ensure!(
        stats.enabled && stats.hits == 3 && stats.misses == 2,
        "{stats:?}"
    );
    ensure!((stats.hit_rate - 0.6).abs() < 1e-9 && stats.size == 2);
    ensure!(stats.max_size == 1_000 && stats.ttl == CachePolicy::default().ttl);
    Ok(())
}

/// Entries expire after the TTL (measured on the store's clock).
pub fn cache_entries_expire_after_ttl<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let policy = CachePolicy {
        enabled: true,
        max_size: 10,
        ttl: std::time::Duration::from_millis(1_000),
    };
    let f = ctx.fixture_with(ctx.profile, policy)?;
    f.store(ev("a"))?;
    f.get_cached(1)?;
    f.clock.advance(999);
    f.get_cached(1)?;
    ensure!(f.cache_stats().hits == 1);
    f.clock.advance(1);
    ensure!(f.get_cached(1)?.is_some());
    let stats = f.cache_stats();
    ensure!(stats.hits == 1 && stats.misses == 2, "{stats:?}");
    Ok(())
}

/// With the cache off, cached reads still answer, and the stats say so.
pub fn cache_disabled_still_answers<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture_with(ctx.profile, CachePolicy::disabled())?;
    let e = f.store(ev("a").correlation_id("g"))?;
    ensure!(f.get_cached(e.id)?.as_deref() == Some(&e));
    ensure!(f.transaction_cached("g")?.len() == 1);
    f.store(ev("a").correlation_id("g"))?;
    ensure!(f.transaction_cached("g")?.len() == 2);
    let stats = f.cache_stats();
    ensure!(!stats.enabled && stats.size == 0 && stats.hits == 0);
    Ok(())
}

/// The cache holds at most `max_size` entries; `clear_cache` empties it.
pub fn cache_bounded_and_clearable<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let policy = CachePolicy {
        max_size: 8,
        ..CachePolicy::default()
    };
    let f = ctx.fixture_with(ctx.profile, policy)?;
    f.store_bulk((0..50).map(|_| ev("e")).collect())?;
    for id in 1..=50 {
        ensure!(f.get_cached(id)?.is_some_and(|e| e.id == id));
    }
    ensure!(f.cache_stats().size <= 8, "{:?}", f.cache_stats());
    f.clear_cache();
    ensure!(f.cache_stats().size == 0);
    ensure!(f.get_cached(50)?.is_some());
    Ok(())
}

/// A snapshot must name a stored event; a bad name or metadata is rejected.
pub fn snapshot_of_unknown_event_is_rejected<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("e"))?;
    assert_err(f.create_snapshot("s", 2, &1), |e| {
        matches!(e, Error::NotFound(_))
    })?;
    assert_err(f.create_snapshot("s", 0, &1), |e| {
        matches!(e, Error::NotFound(_))
    })?;
    assert_err(f.create_snapshot("", 1, &1), |e| {
        matches!(e, Error::InvalidArgument(_))
    })?;
    assert_err(
        f.create_snapshot_with_metadata("s", 1, &1, &json!([1])),
        |e| matches!(e, Error::InvalidArgument(_)),
    )?;
    ensure!(f.list_snapshots("s", 10, 0)?.is_empty());
    // A state too short for the requested type is a decode error, not a panic.
    f.create_snapshot("s", 1, &"text")?;
    assert_err(
        f.restore_snapshot::<(u64, u64, u64, u64, u64, String)>("s", 1),
        |e| matches!(e, Error::Decode { .. }),
    )?;
    Ok(())
}

/// A batch size of 0 is an error.
pub fn stream_rejects_zero_batch<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    assert_err(
        f.read_all(StreamOptions::new().batch_size(0)).map(|_| ()),
        |e| matches!(e, Error::InvalidArgument(_)),
    )
}

/// A model that fails (or panics) on the events whose data says so, `times` times each.
fn flaky(times: u32) -> FnModel<'static, (Vec<u64>, std::collections::HashMap<u64, u32>), ()> {
    FnModel::new((Vec::new(), std::collections::HashMap::new())).on_default(
        move |(seen, tries), e, data| {
            let how = data.value()?["fail"].as_str().unwrap_or("").to_owned();
            let tried = tries.entry(e.id).or_insert(0);
            *tried += 1;
            if !how.is_empty() && *tried <= times {
                if how == "panic" {
                    panic!("handler gave up on event {}", e.id);
                }
                return Err(format!("cannot handle event {}", e.id).into());
            }
            seen.push(e.id);
            Ok(())
        },
    )
}

/// The failure policies: `stop` ends the run with the failing event and leaves the position
/// before it; `skip` records the event and goes on; `retry` tries again and succeeds when the
/// model recovers; a panicking handler is a failure like any other.
pub fn projection_failure_policies<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    use eventlite_core::FailurePolicy;
    use std::time::Duration;
    let f = ctx.fixture()?;
    for fail in ["", "", "error", "", "panic", ""] {
        f.store(ev("e").data(&json!({ "fail": fail })))?;
    }
    // Stop: the run ends at event 3; events 1 and 2 were handled and saved.
    let mut stopping = f.projection("stop", flaky(u32::MAX));
    match stopping.catch_up() {
        Err(Error::ProjectionFailed { event_id: 3, .. }) => {}
        other => anyhow::bail!("expected a stop at event 3, got {other:?}"),
    }
    ensure!(f.position("stop")?.map(|p| p.position) == Some(2));
    ensure!(stopping.model().state().0 == [1, 2]);
    // A panic stops it too, and the position stays before the panicking event.
    let mut panicking = f.projection("panic", flaky(u32::MAX)).filter(Filter {
        id_from: Some(4),
        ..Filter::default()
    });
    ensure!(matches!(
        panicking.catch_up(),
        Err(Error::ProjectionFailed { event_id: 5, .. })
    ));
    ensure!(f.position("panic")?.map(|p| p.position) == Some(4));
    // Skip: both failures are recorded with their attempts, the rest handled.
    let mut skipping = f
        .projection("skip", flaky(u32::MAX))
        .policy(FailurePolicy::retry(1, Duration::ZERO).then_skip());
    let stats = skipping.catch_up()?;
    ensure!(
        (stats.events, stats.skipped, stats.retries) == (4, 2, 2),
        "{stats:?}"
    );
    let failed = f.failed_events("skip")?;
    ensure!(
        failed
            .iter()
            .map(|e| (e.event_id, e.attempts))
            .collect::<Vec<_>>()
            == [(3, 2), (5, 2)]
    );
    ensure!(
        failed[1].error.contains("panicked"),
        "{:?}",
        failed[1].error
    );
    ensure!(f.position("skip")?.map(|p| p.position) == Some(6));
    // Retry: a model that fails twice per event and then recovers loses nothing.
    let mut retrying = f
        .projection("retry", flaky(2))
        .policy(FailurePolicy::retry(2, Duration::ZERO));
    let stats = retrying.catch_up()?;
    ensure!(
        (stats.events, stats.skipped, stats.retries) == (6, 0, 4),
        "{stats:?}"
    );
    ensure!(retrying.model().state().0 == [1, 2, 3, 4, 5, 6]);
    Ok(())
}

/// Rebuilding forgets the position and the skipped events and handles the whole log again;
/// from a snapshot's event it handles only what follows.
pub fn projection_rebuilds<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    use eventlite_core::FailurePolicy;
    let f = ctx.fixture()?;
    for fail in ["", "error", ""] {
        f.store(ev("e").data(&json!({ "fail": fail })))?;
    }
    f.projection("p", flaky(u32::MAX))
        .policy(FailurePolicy::skip())
        .catch_up()?;
    ensure!(f.failed_events("p")?.len() == 1);
    let mut again = f.projection("p", flaky(0));
    let stats = again.rebuild()?;
    ensure!(stats.events == 3 && f.failed_events("p")?.is_empty());
    ensure!(again.model().state().0 == [1, 2, 3]);
    let mut from_snapshot = f.projection("p", flaky(0));
    from_snapshot.rebuild_after(2)?;
    ensure!(from_snapshot.model().state().0 == [3]);
    Ok(())
}

/// A projection running on a thread follows new events and stops when told.
pub fn projection_runs_until_stopped<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let store = &f.store;
    f.store(ev("e"))?;
    let model = FnModel::new(Vec::<u64>::new()).on_default(|seen, e, _| {
        seen.push(e.id);
        Ok(())
    });
    let mut projection = store.projection("live", model);
    let stopper = projection.stopper();
    let (stats, seen) = std::thread::scope(|s| -> Result<_> {
        let runner = s.spawn(move || projection.run().map(|st| (st, projection.into_model())));
        for _ in 0..3 {
            store.store(ev("e"))?;
        }
        // The runner saves its position after each batch: once it reached the last event, stop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while store.position("live")?.map(|p| p.position) != Some(4) {
            ensure!(
                std::time::Instant::now() < deadline,
                "the projection never caught up"
            );
            std::thread::yield_now();
        }
        stopper.stop();
        let (stats, model) = runner
            .join()
            .map_err(|_| anyhow::anyhow!("the runner panicked"))??;
        Ok((stats, model.into_state()))
    })?;
    ensure!(seen == [1, 2, 3, 4] && stats.events == 4 && stats.position == 4);
    Ok(())
}

/// Whatever is accepted can be read back: JSON nested up to `MAX_JSON_DEPTH` is stored and
/// decodes; deeper data or metadata, given as text or as a value, is refused and nothing is
/// stored. Brackets inside strings do not count.
pub fn deep_json_is_refused_at_the_door<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    use eventlite_core::MAX_JSON_DEPTH;
    let f = ctx.fixture()?;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let deepest = f.store(ev("deep").data_json(nested(MAX_JSON_DEPTH)))?;
    f.get(deepest.id)?
        .ok_or_else(|| anyhow::anyhow!("stored event missing"))?
        .data_value()?;
    let in_string = format!(r#"{{"text":"{}"}}"#, "[{".repeat(500));
    f.store(ev("brackets").data_json(in_string))?;
    let too_deep: serde_json::Value = serde_json::from_str(&nested(MAX_JSON_DEPTH + 1))?;
    for refused in [
        ev("x").data_json(nested(MAX_JSON_DEPTH + 1)),
        ev("x").data_json(nested(200)),
        ev("x").data(&too_deep),
        ev("x").metadata_json(format!(r#"{{"a":{}}}"#, nested(MAX_JSON_DEPTH))),
    ] {
        assert_err(f.store(refused), |e| {
            matches!(e, Error::InvalidEvent { .. })
        })?;
    }
    ensure!(f.last_id()? == 2);
    Ok(())
}
