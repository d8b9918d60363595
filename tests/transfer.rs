//! Moving events between stores and files: export, import with progress, convert, and opening
//! a store read-only, on each engine this build has.
#![cfg(any(feature = "sqlite", feature = "redb"))]

use std::path::Path;

use eventlite::progress::{Progress, Step};
use eventlite::{
    AnyStore, Backend, Error, EventStore, ExpectedVersion, Filter, NewEvent, StreamOptions,
};

/// The file engines of this build: a name, a file name, and how to open with `read_only`.
type Open = fn(&Path, bool) -> eventlite::Result<AnyStore>;

fn engines() -> Vec<(&'static str, &'static str, Open)> {
    let mut all: Vec<(&'static str, &'static str, Open)> = Vec::new();
    #[cfg(feature = "sqlite")]
    all.push(("sqlite", "events.sqlite", |path, read_only| {
        let options = eventlite::sqlite::SqliteOptions {
            read_only,
            ..Default::default()
        };
        let backend: Box<dyn Backend> =
            Box::new(eventlite::sqlite::SqliteBackend::open(path, options)?);
        Ok(EventStore::new(backend))
    }));
    #[cfg(feature = "redb")]
    all.push(("redb", "events.redb", |path, read_only| {
        let options = eventlite::redb::RedbOptions {
            read_only,
            ..Default::default()
        };
        let backend: Box<dyn Backend> =
            Box::new(eventlite::redb::RedbBackend::open(path, options)?);
        Ok(EventStore::new(backend))
    }));
    all
}

/// 30 events: a stream, causation chains, data with text that CSV must quote.
fn fill(store: &AnyStore) -> anyhow::Result<()> {
    let root = store.store(
        NewEvent::new("opened")
            .user("ada")
            .stream("acct-1", ExpectedVersion::NoStream),
    )?;
    for i in 1..30u64 {
        let mut event = NewEvent::new(if i % 3 == 0 { "paid" } else { "deposited" })
            .data(&serde_json::json!({"n": i, "note": "a, \"quoted\"\nline"}))
            .user(format!("user-{}", i % 4));
        if i % 2 == 0 {
            event = event.causation_id(root.id + i - 1);
        }
        if i % 5 == 0 {
            event = event.stream("acct-1", ExpectedVersion::Exact(i / 5));
        }
        store.store(event)?;
    }
    store.save_position("reader", 17)?;
    Ok(())
}

fn all_events(store: &AnyStore) -> anyhow::Result<Vec<eventlite::Event>> {
    let mut out = Vec::new();
    for batch in store.read_all(StreamOptions::new())? {
        out.extend(batch?);
    }
    Ok(out)
}

#[test]
fn a_store_opened_read_only_reads_and_refuses_every_write_leaving_the_file_as_it_was()
-> anyhow::Result<()> {
    for (name, file, open) in engines() {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(file);
        let store = open(&path, false)?;
        fill(&store)?;
        let events = all_events(&store)?;
        drop(store);
        let before = std::fs::read(&path)?;

        let store = open(&path, true)?;
        assert_eq!(all_events(&store)?, events, "{name}");
        assert_eq!(store.count(&Filter::cmd("paid"))?, 9, "{name}");
        assert_eq!(store.position("reader")?.map(|p| p.position), Some(17));
        let refused = [
            store.store(NewEvent::new("more")).map(drop),
            store.save_position("reader", 20),
            store.delete_position("reader").map(drop),
        ];
        for outcome in refused {
            assert!(
                matches!(outcome, Err(Error::ReadOnly { .. })),
                "{name}: {outcome:?}"
            );
        }
        assert_eq!(store.last_id()?, 30, "{name}: nothing was stored");
        drop(store);
        assert!(std::fs::read(&path)? == before, "{name}: the file changed");

        // Nothing is made where there is no store.
        let missing = dir.path().join(format!("missing-{file}"));
        assert!(
            matches!(open(&missing, true), Err(Error::NotFound(_))),
            "{name}"
        );
        assert!(!missing.exists(), "{name}");
        // Nor of an empty file.
        let empty = dir.path().join(format!("empty-{file}"));
        std::fs::write(&empty, b"")?;
        assert!(open(&empty, true).is_err(), "{name}");
        assert_eq!(std::fs::read(&empty)?, b"", "{name}");
    }
    Ok(())
}

#[test]
fn export_then_import_gives_the_same_file_and_reports_progress_to_the_end() -> anyhow::Result<()> {
    use eventlite::export::{Format, write_with};
    for (name, file, open) in engines() {
        let dir = tempfile::tempdir()?;
        let store = open(&dir.path().join(file), false)?;
        fill(&store)?;
        let mut reports: Vec<Progress> = Vec::new();
        let mut first = Vec::new();
        let written = write_with(&store, Filter::default(), Format::Jsonl, &mut first, |p| {
            reports.push(p)
        })?;
        assert_eq!(written, 30, "{name}");
        assert_eq!(
            reports.last().map(|p| (p.step, p.done, p.total)),
            Some((Step::Exporting, 30, Some(30))),
            "{name}"
        );
        assert!(reports.windows(2).all(|w| w[0].done <= w[1].done));

        let jsonl = dir.path().join("events.jsonl");
        std::fs::write(&jsonl, &first)?;
        let copy = open(&dir.path().join(format!("copy-{file}")), false)?;
        let mut steps: Vec<Progress> = Vec::new();
        let options = eventlite::import::JsonlOptions::new().batch(7);
        let report = eventlite::import::jsonl_with(&jsonl, &copy, options, |p| steps.push(p))?;
        assert_eq!((report.imported, report.ids_kept), (30, true), "{name}");
        let size = first.len() as u64;
        // Checking, then importing; each ends at the file's size, never going back.
        let checking: Vec<&Progress> = steps.iter().filter(|p| p.step == Step::Checking).collect();
        let importing: Vec<&Progress> =
            steps.iter().filter(|p| p.step == Step::Importing).collect();
        assert_eq!(checking.len() + importing.len(), steps.len());
        assert!(importing.len() >= 30 / 7, "{name}: a report per batch");
        assert_eq!(checking.last().map(|p| p.done), Some(size));
        assert_eq!(
            importing.last().map(|p| (p.done, p.total)),
            Some((size, Some(size)))
        );
        let last_check = steps.iter().rposition(|p| p.step == Step::Checking);
        let first_import = steps.iter().position(|p| p.step == Step::Importing);
        assert!(last_check < first_import, "{name}: {steps:?}");

        let mut second = Vec::new();
        eventlite::export::write(&copy, Filter::default(), Format::Jsonl, &mut second)?;
        assert!(first == second, "{name}: the round trip changed the file");

        // CSV: upstream's header, a row per event, and the text that needs it quoted.
        let mut csv = Vec::new();
        let rows = eventlite::export::write(&store, Filter::cmd("paid"), Format::Csv, &mut csv)?;
        let csv = String::from_utf8(csv)?;
        assert_eq!(rows, 9);
        assert!(csv.starts_with(
            "id,version,datetime,user,ip,cmd,data,correlation_id,causation_id,metadata\n"
        ));
        assert!(
            csv.contains(r#""{""n"":3,""note"":""a, \""quoted\""\nline""}""#),
            "{csv}"
        );
    }
    Ok(())
}

#[test]
fn convert_copies_every_engine_into_every_other_and_checks_the_copy() -> anyhow::Result<()> {
    for (from, from_file, open_src) in engines() {
        for (to, to_file, open_dst) in engines() {
            let dir = tempfile::tempdir()?;
            let src = open_src(&dir.path().join(from_file), false)?;
            fill(&src)?;
            let dst = open_dst(&dir.path().join(format!("copy-{to_file}")), false)?;
            let mut steps: Vec<Progress> = Vec::new();
            let report = eventlite::convert::copy_with(&src, &dst, |p| steps.push(p))?;
            assert_eq!((report.events, report.positions), (30, 1), "{from} → {to}");
            assert_eq!(all_events(&dst)?, all_events(&src)?, "{from} → {to}");
            assert_eq!(dst.positions()?, src.positions()?);
            let ends = |step: Step| {
                steps
                    .iter()
                    .rfind(|p| p.step == step)
                    .map(|p| (p.done, p.total))
            };
            assert_eq!(ends(Step::Copying), Some((30, Some(30))), "{from} → {to}");
            assert_eq!(ends(Step::Comparing), Some((30, Some(30))), "{from} → {to}");

            // Only into an empty store: the ids could not be kept otherwise.
            let again = eventlite::convert::copy(&src, &dst);
            assert!(matches!(again, Err(Error::InvalidArgument(_))), "{again:?}");
            assert_eq!(dst.last_id()?, 30);
        }
    }
    Ok(())
}

#[test]
fn json_stored_indented_exports_on_one_line() -> anyhow::Result<()> {
    use eventlite::export::{Format, write};
    for (name, file, open) in engines() {
        let dir = tempfile::tempdir()?;
        let store = open(&dir.path().join(file), false)?;
        store.store(
            NewEvent::new("indented").data_json("{\n  \"a\": [1,\r\n 2],\n  \"s\": \"x\\ny\"\n}"),
        )?;
        store.store(NewEvent::new("flat").metadata_json("{\"k\":\n1}"))?;
        let mut out = Vec::new();
        assert_eq!(
            write(&store, Filter::default(), Format::Jsonl, &mut out)?,
            2
        );
        let text = String::from_utf8(out)?;
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines.len(), 2, "{name}: {text}");
        assert_eq!(
            lines[0]["data"],
            serde_json::json!({"a": [1, 2], "s": "x\ny"})
        );
        assert_eq!(lines[1]["metadata"], serde_json::json!({"k": 1}));
    }
    Ok(())
}

/// JSON stored with whitespace around it (accepted on append) exports without it, so that an
/// import of the file, exported again, gives the same bytes.
#[test]
fn whitespace_around_stored_json_survives_a_round_trip() -> anyhow::Result<()> {
    use eventlite::export::{Format, write};
    for (name, file, open) in engines() {
        let dir = tempfile::tempdir()?;
        let store = open(&dir.path().join(file), false)?;
        store.store(
            NewEvent::new("spaced")
                .data_json(" \t{\"a\": 1} \n")
                .metadata_json("\r\n{} "),
        )?;
        let mut first = Vec::new();
        write(&store, Filter::default(), Format::Jsonl, &mut first)?;
        let text = String::from_utf8(first.clone())?;
        assert!(text.contains(r#""data":{"a": 1},"#), "{name}: {text}");
        let jsonl = dir.path().join("spaced.jsonl");
        std::fs::write(&jsonl, &first)?;
        let copy = open(&dir.path().join(format!("copy-{file}")), false)?;
        eventlite::import::jsonl(&jsonl, &copy, eventlite::import::JsonlOptions::new())?;
        let mut second = Vec::new();
        write(&copy, Filter::default(), Format::Jsonl, &mut second)?;
        assert!(first == second, "{name}: {text}");
    }
    Ok(())
}
