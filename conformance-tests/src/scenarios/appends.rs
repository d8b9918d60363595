//! Appending: ids, every field stored as given, bulk atomicity, optimistic concurrency per
//! stream, hostile strings.

use super::*;

fn sample_batch(parent: u64) -> Vec<NewEvent> {
    vec![
        ev("a")
            .correlation_id("g1")
            .user("ada")
            .data(&json!({"n": 1})),
        ev("b").causation_id(parent).ip("1.2.3.4").version(2),
        ev("c")
            .correlation_id("g2")
            .metadata(&json!({"m": true}))
            .stream("s", ExpectedVersion::Any),
    ]
}

/// Ids start at 1 and grow by one; defaults are version 1, empty user/ip, `{}` data and metadata.
pub fn store_assigns_sequential_ids<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    for n in 1..=5 {
        let e = f.store(ev("tick"))?;
        ensure!(e.id == n, "id {} != {n}", e.id);
        ensure!(e.version == 1 && e.user.is_empty() && e.ip.is_empty());
        ensure!(e.data == "{}" && e.metadata == "{}");
        ensure!(e.stream.is_none() && e.stream_version.is_none());
    }
    ensure!(f.last_id()? == 5);
    Ok(())
}

/// What was stored is what is read back, field for field.
pub fn store_roundtrips_every_field<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let parent = f.store(ev("parent").correlation_id("corr-1"))?;
    let stored = f.store(
        ev("child")
            .data_json(r#"{ "a" : [1, 2.5, "x"], "b": null }"#)
            .user("ada")
            .ip("10.0.0.1")
            .version(3)
            .correlation_id("corr-1")
            .causation_id(parent.id)
            .metadata(&json!({"source": "test"}))
            .stream("acct-1", ExpectedVersion::NoStream),
    )?;
    let read = f
        .get(stored.id)?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    ensure!(read == stored, "{read:?} != {stored:?}");
    // Raw JSON text is kept byte for byte.
    ensure!(read.data == r#"{ "a" : [1, 2.5, "x"], "b": null }"#);
    ensure!(read.user == "ada" && read.ip == "10.0.0.1" && read.version == 3);
    ensure!(read.causation_id == Some(parent.id) && read.correlation_id == "corr-1");
    ensure!(read.stream.as_deref() == Some("acct-1") && read.stream_version == Some(1));
    ensure!(read.metadata::<serde_json::Value>()? == json!({"source": "test"}));
    #[derive(serde::Deserialize)]
    struct Data {
        a: Vec<serde_json::Value>,
    }
    ensure!(read.data::<Data>()?.a.len() == 3);
    Ok(())
}

/// Unknown ids are `None`, not errors.
pub fn get_missing_is_none<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("a"))?;
    ensure!(f.get(0)?.is_none() && f.get(2)?.is_none() && f.get(u64::MAX)?.is_none());
    ensure!(f.get_cached(2)?.is_none() && f.lineage(9)?.is_none());
    Ok(())
}

/// An empty store answers every read with nothing.
pub fn empty_store_answers_empty<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    ensure!(f.last_id()? == 0 && f.count(&Filter::all())? == 0);
    ensure!(f.read_all(StreamOptions::new())?.next().is_none());
    let page = f.by_user("nobody", Page::default())?;
    ensure!(page.events.is_empty() && page.total_count == 0 && !page.has_more);
    ensure!(page.next_cursor.is_none() && page.next_offset.is_none());
    ensure!(f.transaction("x")?.is_empty() && f.transaction_cached("x")?.is_empty());
    Ok(())
}

/// `datetime` is the store's clock at the time of the call.
pub fn datetime_comes_from_the_clock<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let a = f.store(ev("a"))?;
    f.clock.advance(1_234);
    let b = f.store_bulk(vec![ev("b"), ev("c")])?;
    ensure!(a.datetime == T0);
    ensure!(b.iter().all(|e| e.datetime == T0 + 1_234));
    ensure!(f.get(3)?.map(|e| e.datetime) == Some(T0 + 1_234));
    Ok(())
}

/// `store_bulk` writes the rows that the same `store` calls write (upstream's bulk did not
/// inherit correlation ids and stamped other datetimes).
pub fn bulk_and_single_store_write_identical_rows<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let single = ctx.fixture()?;
    let bulk = ctx.fixture()?;
    for f in [&single, &bulk] {
        f.store(ev("root").correlation_id("root-group"))?;
        f.clock.advance(5);
    }
    let one_by_one: Vec<Event> = sample_batch(1)
        .into_iter()
        .map(|e| single.store(e))
        .collect::<eventlite_core::Result<_>>()?;
    let together = bulk.store_bulk(sample_batch(1))?;
    ensure!(one_by_one == together, "{one_by_one:#?}\n!=\n{together:#?}");
    ensure!(all_events(&single)? == all_events(&bulk)?);
    ensure!(together[1].correlation_id == "root-group");
    Ok(())
}

/// What `store_bulk` returns is what is stored.
pub fn bulk_returns_rows_as_stored<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("root"))?;
    let returned = f.store_bulk(sample_batch(1))?;
    ensure!(ids(&returned) == vec![2, 3, 4]);
    for e in &returned {
        ensure!(f.get(e.id)?.as_ref() == Some(e));
    }
    Ok(())
}

/// A conflict on the last event of a bulk stores nothing of it.
pub fn bulk_is_atomic_on_conflict<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("open").stream("acct", ExpectedVersion::NoStream))?;
    let batch = vec![
        ev("a").correlation_id("g"),
        ev("b").stream("other", ExpectedVersion::NoStream),
        ev("c").stream("acct", ExpectedVersion::NoStream),
    ];
    assert_err(
        f.store_bulk(batch),
        |e| matches!(e, Error::Conflict { stream, actual: Some(1), .. } if stream == "acct"),
    )?;
    ensure!(f.last_id()? == 1 && f.transaction("g")?.is_empty());
    ensure!(f.count(&Filter::stream("other"))? == 0);
    // "other" is still a new stream.
    f.store(ev("b").stream("other", ExpectedVersion::NoStream))?;
    Ok(())
}

/// `NoStream` succeeds once.
pub fn optimistic_no_stream<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let first = f.store(ev("open").stream("acct", ExpectedVersion::NoStream))?;
    ensure!(first.stream_version == Some(1));
    assert_err(
        f.store(ev("open").stream("acct", ExpectedVersion::NoStream)),
        |e| {
            matches!(
                e,
                Error::Conflict {
                    expected: ExpectedVersion::NoStream,
                    actual: Some(1),
                    ..
                }
            )
        },
    )?;
    ensure!(f.last_id()? == 1);
    Ok(())
}

/// `Exact(n)` succeeds only at version n; a stale writer loses.
pub fn optimistic_exact<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    f.store(ev("a").stream("s", ExpectedVersion::NoStream))?;
    let second = f.store(ev("b").stream("s", ExpectedVersion::Exact(1)))?;
    ensure!(second.stream_version == Some(2));
    assert_err(
        f.store(ev("c").stream("s", ExpectedVersion::Exact(1))),
        |e| {
            matches!(
                e,
                Error::Conflict {
                    actual: Some(2),
                    expected: ExpectedVersion::Exact(1),
                    ..
                }
            )
        },
    )?;
    ensure!(f.last_id()? == 2);
    ensure!(
        f.store(ev("c").stream("s", ExpectedVersion::Exact(2)))?
            .stream_version
            == Some(3)
    );
    Ok(())
}

/// `Exact(0)` is an empty stream, as a fresh aggregate at version 0 expects: it starts a
/// stream, and conflicts once the stream has events.
pub fn optimistic_exact_zero_is_an_empty_stream<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let first = f.store(ev("a").stream("fresh", ExpectedVersion::Exact(0)))?;
    ensure!(first.stream_version == Some(1));
    assert_err(
        f.store(ev("b").stream("fresh", ExpectedVersion::Exact(0))),
        |e| {
            matches!(
                e,
                Error::Conflict {
                    actual: Some(1),
                    expected: ExpectedVersion::Exact(0),
                    ..
                }
            )
        },
    )?;
    let batch = f.store_bulk(vec![
        ev("c").stream("other", ExpectedVersion::Exact(0)),
        ev("d").stream("other", ExpectedVersion::Exact(1)),
    ])?;
    ensure!(batch.iter().map(|e| e.stream_version).collect::<Vec<_>>() == [Some(1), Some(2)]);
    Ok(())
}

/// `Any` appends at whatever version, per stream.
pub fn optimistic_any<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let versions: Vec<Option<u64>> = ["x", "y", "x", "x", "y"]
        .iter()
        .map(|s| {
            f.store(ev("e").stream(*s, ExpectedVersion::Any))
                .map(|e| e.stream_version)
        })
        .collect::<eventlite_core::Result<_>>()?;
    ensure!(versions == vec![Some(1), Some(1), Some(2), Some(3), Some(2)]);
    Ok(())
}

/// Within one bulk, each event's expectation sees the events before it.
pub fn optimistic_batch_on_one_stream<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let batch = f.store_bulk(vec![
        ev("a").stream("s", ExpectedVersion::NoStream),
        ev("b").stream("s", ExpectedVersion::Exact(1)),
        ev("c").stream("s", ExpectedVersion::Any),
    ])?;
    let v: Vec<_> = batch.iter().map(|e| e.stream_version).collect();
    ensure!(v == vec![Some(1), Some(2), Some(3)]);
    assert_err(
        f.store_bulk(vec![
            ev("d").stream("s", ExpectedVersion::Exact(3)),
            ev("e").stream("s", ExpectedVersion::Exact(3)),
        ]),
        |e| {
            matches!(
                e,
                Error::Conflict {
                    actual: Some(4),
                    ..
                }
            )
        },
    )?;
    ensure!(f.last_id()? == 3);
    Ok(())
}

/// Keys of the longest length allowed, in every indexed field at once and in random-looking
/// text that does not compress, are stored, found through each index, and read back.
pub fn longest_keys_roundtrip<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let mut seed = 0x1234_5678_9ABC_DEF1u64;
    let mut key = |tag: char| -> String {
        let mut s = String::with_capacity(eventlite_core::MAX_KEY_LEN);
        s.push(tag);
        while s.len() < eventlite_core::MAX_KEY_LEN {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(char::from(b'!' + (seed % 90) as u8));
        }
        s
    };
    let (cmd, user, corr, stream) = (key('c'), key('u'), key('g'), key('s'));
    let stored = f.store(
        ev(&cmd)
            .user(&user)
            .correlation_id(&corr)
            .stream(&stream, ExpectedVersion::NoStream),
    )?;
    f.store(ev("other"))?;
    for filter in [
        Filter::cmd(&cmd),
        Filter::user(&user),
        Filter::correlation(&corr),
        Filter::stream(&stream),
        Filter {
            correlation_id: Some(corr.clone()),
            cmd: Some(cmd.clone()),
            ..Filter::default()
        },
    ] {
        let found = f.query(&Query::new(filter.clone(), Order::IdAsc))?;
        ensure!(found == [stored.clone()], "{filter:?}");
    }
    ensure!(f.get(stored.id)?.as_ref() == Some(&stored));
    Ok(())
}

/// Injection-looking text, NUL, control and bidi characters, emoji and a 1 MiB string round
/// trip exactly, in every field and through every index.
pub fn hostile_strings_roundtrip<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let nasty = [
        "'; DROP TABLE events; --",
        "\" OR 1=1 --",
        "nul\0inside",
        "ctrl\u{1}\u{7f}\r\n\t",
        "bidi \u{202e}txet\u{202c}",
        "emoji 🦀👩‍👩‍👧",
        "%_\\*?[]",
    ];
    for s in nasty {
        let e = f.store(
            ev(s)
                .user(s)
                .ip(s)
                .correlation_id(s)
                .data(&json!({ "s": s }))
                .metadata(&json!({ s: s }))
                .stream(s, ExpectedVersion::Any),
        )?;
        ensure!(f.get(e.id)?.as_ref() == Some(&e));
        ensure!(f.transaction(s)? == vec![e.clone()]);
        ensure!(f.by_user(s, Page::default())?.events == vec![e.clone()]);
        ensure!(f.by_cmd(s, Page::default())?.events == vec![e.clone()]);
        ensure!(f.query(&Query::new(Filter::stream(s), Order::IdAsc))? == vec![e.clone()]);
    }
    let big = "λ".repeat(512 * 1024);
    let e = f.store(ev("big").data(&big).user(&big[..1_000]))?;
    let back = f.get(e.id)?.ok_or_else(|| anyhow::anyhow!("missing"))?;
    ensure!(back.data::<String>()? == big && back == e);
    ensure!(f.last_id()? == nasty.len() as u64 + 1);
    Ok(())
}
