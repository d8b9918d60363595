//! `eventlite`: look into, query, follow, check and export an EventLite store of any engine.
//!
//! ```text
//! eventlite info events.sqlite
//! eventlite query events.redb --cmd order_placed --order newest --limit 20
//! eventlite tail events.sqlite --from 1000 -f
//! eventlite verify events.sqlite --json
//! eventlite export events.sqlite --out events.jsonl
//! ```
//!
//! The engine is recognised from the file's first bytes (`--engine` overrides it). A store is
//! never created, and its indexes are left as they are (`indexes_as_found`). Events print as a
//! table on a terminal and as JSON Lines otherwise (`--format`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use eventlite::{
    AnyStore, Backend, Event, EventStore, Filter, Order, Query, Start, StreamOptions,
    SubscribeOptions,
};

#[derive(Debug, Parser)]
#[command(name = "eventlite", version, about = "Look into EventLite stores")]
struct Cli {
    /// The store's engine (recognised from the file when omitted).
    #[arg(long, global = true, value_enum)]
    engine: Option<EngineArg>,
    /// How events are printed (a table on a terminal, JSON Lines otherwise).
    #[arg(long, global = true, value_enum)]
    format: Option<Format>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EngineArg {
    Sqlite,
    Redb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Jsonl,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The store's engine, size, events, time span, indexes and positions.
    Info { store: PathBuf },
    /// One event by id.
    Get { store: PathBuf, id: u64 },
    /// The events of one correlation (transaction group), in id order.
    Tx { store: PathBuf, correlation: String },
    /// An event's causes up to its first, the event, and everything it caused, in id order.
    Lineage { store: PathBuf, id: u64 },
    /// Events that match filters.
    Query {
        store: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        /// The order: by id, by id descending, or newest first (by datetime).
        #[arg(long, value_enum, default_value = "id")]
        order: OrderArg,
        /// At most this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// Print how the engine runs the query instead of running it.
        #[arg(long)]
        explain: bool,
    },
    /// Events after an id; with `-f`, keeps printing new ones as they are stored (by this or
    /// another process).
    Tail {
        store: PathBuf,
        /// Start after this id (default: the last 10 events).
        #[arg(long)]
        from: Option<u64>,
        /// Follow: wait for new events until interrupted.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Checks every event and the engine's own structures; exits with 1 on any finding.
    Verify {
        store: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Writes events as JSON Lines with upstream's field names (`data` and `metadata` as JSON
    /// values), in id order.
    Export {
        store: PathBuf,
        /// The file to write (standard output when omitted).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Debug, Clone, Default, Args)]
struct FilterArgs {
    /// Events of this command.
    #[arg(long)]
    cmd: Option<String>,
    /// Events of this user.
    #[arg(long)]
    user: Option<String>,
    /// Events of this correlation.
    #[arg(long)]
    correlation: Option<String>,
    /// Events caused by this event.
    #[arg(long)]
    causation: Option<u64>,
    /// Events of this aggregate stream.
    #[arg(long)]
    stream: Option<String>,
    /// Events with an id at or above this.
    #[arg(long)]
    from_id: Option<u64>,
    /// Events with an id at or below this.
    #[arg(long)]
    to_id: Option<u64>,
    /// Events at or after this time (ms since the epoch).
    #[arg(long)]
    since: Option<i64>,
    /// Events at or before this time (ms since the epoch).
    #[arg(long)]
    until: Option<i64>,
}

impl FilterArgs {
    fn filter(&self) -> Filter {
        Filter {
            correlation_id: self.correlation.clone(),
            causation_id: self.causation,
            cmd: self.cmd.clone(),
            user: self.user.clone(),
            datetime_from: self.since,
            datetime_to: self.until,
            stream: self.stream.clone(),
            id_from: self.from_id,
            id_to: self.to_id,
            ..Filter::default()
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderArg {
    Id,
    IdDesc,
    Newest,
}

/// Exit codes: 0 done, 1 `verify` found problems, 2 an error (a missing or damaged store, a
/// missing event, bad arguments).
fn main() -> ExitCode {
    let cli = Cli::parse();
    // The engines turn a panic in their code on a damaged file into an error; its default
    // report would still print a panic message and backtrace over the one-line error.
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| run(cli));
    let e = match outcome {
        Ok(Ok(code)) => return code,
        Ok(Err(e)) => e,
        Err(_) => anyhow::anyhow!("internal error (a bug: please report it)"),
    };
    // A reader that went away (`| head`) is not an error.
    let closed = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if closed {
        return ExitCode::SUCCESS;
    }
    // The whole chain, no backtrace; stderr may be closed too.
    let _ = writeln!(std::io::stderr(), "eventlite: {e:#}");
    ExitCode::from(2)
}

/// Opens an existing store, never creating one and leaving its indexes as they are.
fn open(path: &Path, engine: Option<EngineArg>) -> Result<AnyStore> {
    if !path.is_file() {
        bail!("no store at {}", path.display());
    }
    let backend: Box<dyn Backend> = match detect_or(path, engine)? {
        EngineArg::Sqlite => Box::new(eventlite::sqlite::SqliteBackend::open(
            path,
            eventlite::sqlite::SqliteOptions {
                indexes_as_found: true,
                ..Default::default()
            },
        )?),
        EngineArg::Redb => Box::new(eventlite::redb::RedbBackend::open(
            path,
            eventlite::redb::RedbOptions {
                indexes_as_found: true,
                ..Default::default()
            },
        )?),
    };
    Ok(EventStore::new(backend))
}

/// The engine of the file at `path`, from its first bytes.
fn detect(path: &Path) -> Result<EngineArg> {
    let mut head = [0u8; 16];
    let n = std::io::Read::read(
        &mut std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        &mut head,
    )?;
    let head = &head[..n];
    if head.starts_with(b"SQLite format 3\0") {
        Ok(EngineArg::Sqlite)
    } else if head.starts_with(b"redb") {
        Ok(EngineArg::Redb)
    } else {
        bail!(
            "{} is neither a SQLite nor a redb file (say which with --engine)",
            path.display()
        )
    }
}

fn detect_or(path: &Path, engine: Option<EngineArg>) -> Result<EngineArg> {
    match engine {
        Some(e) => Ok(e),
        None => detect(path),
    }
}

/// Whether `out` is the store at `store` or one of its side files.
fn is_store_file(out: &Path, store: &Path) -> bool {
    let (Ok(out), Ok(store)) = (out.canonicalize(), store.canonicalize()) else {
        return false;
    };
    let side = |suffix: &str| {
        let mut name = store.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    out == store || out == side("-wal") || out == side("-shm") || out == side("-journal")
}

fn engine_name(path: &Path, engine: Option<EngineArg>) -> &'static str {
    match detect_or(path, engine) {
        Ok(EngineArg::Sqlite) => "sqlite",
        Ok(EngineArg::Redb) => "redb",
        Err(_) => "unknown",
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let format = cli.format.unwrap_or(if stdout.is_terminal() {
        Format::Table
    } else {
        Format::Jsonl
    });
    let mut out = std::io::BufWriter::new(stdout.lock());
    match &cli.command {
        Command::Info { store: path } => {
            let store = open(path, cli.engine)?;
            let last = store.last_id()?;
            let first = store.get(1)?;
            let newest = store.get(last)?;
            let indexes: Vec<String> = store
                .indexes()?
                .enabled()
                .iter()
                .map(|n| n.to_string())
                .collect();
            let positions = store.positions()?;
            let size = std::fs::metadata(path)?.len();
            let events = store.count(&Filter::default())?;
            // Values as JSON; the table shows the same, as text.
            let rows: Vec<(&str, serde_json::Value)> = vec![
                ("engine", engine_name(path, cli.engine).into()),
                ("file", path.display().to_string().into()),
                ("bytes", size.into()),
                ("events", events.into()),
                ("last id", last.into()),
                ("first datetime", first.map(|e| e.datetime).into()),
                ("last datetime", newest.map(|e| e.datetime).into()),
                ("indexes", indexes.clone().into()),
                ("positions", positions.len().into()),
            ];
            match format {
                Format::Jsonl => {
                    let object: serde_json::Map<String, serde_json::Value> = rows
                        .into_iter()
                        .map(|(k, v)| (k.replace(' ', "_"), v))
                        .collect();
                    writeln!(out, "{}", serde_json::Value::Object(object))?;
                }
                Format::Table => {
                    let mut table = comfy_table::Table::new();
                    for (k, v) in rows {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Null => String::new(),
                            serde_json::Value::Array(_) => indexes.join(", "),
                            other => other.to_string(),
                        };
                        table.add_row(vec![k.to_owned(), text]);
                    }
                    writeln!(out, "{table}")?;
                }
            }
        }
        Command::Get { store, id } => {
            let store = open(store, cli.engine)?;
            match store.get(*id)? {
                Some(e) => print_events(&mut out, format, &[e])?,
                None => bail!("no event {id}"),
            }
        }
        Command::Lineage { store, id } => {
            let store = open(store, cli.engine)?;
            let Some(event) = store.get(*id)? else {
                bail!("no event {id}");
            };
            let mut chain: Vec<Event> =
                store.ancestors(*id)?.into_iter().map(|r| r.event).collect();
            chain.push(event);
            chain.extend(store.descendants(*id)?.into_iter().map(|r| r.event));
            chain.sort_by_key(|e| e.id);
            print_events(&mut out, format, &chain)?;
        }
        Command::Tx { store, correlation } => {
            let store = open(store, cli.engine)?;
            print_events(&mut out, format, &store.transaction(correlation)?)?;
        }
        Command::Query {
            store,
            filter,
            order,
            limit,
            explain,
        } => {
            let store = open(store, cli.engine)?;
            let order = match order {
                OrderArg::Id => Order::IdAsc,
                OrderArg::IdDesc => Order::IdDesc,
                OrderArg::Newest => Order::DatetimeDesc,
            };
            let mut query = Query::new(filter.filter(), order);
            if let Some(n) = limit {
                query = query.limit(*n);
            }
            if *explain {
                let plan = store.explain(&query)?;
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "index": plan.index.map(|n| n.to_string()),
                        "full_scan": plan.full_scan,
                        "sorts": plan.sorts,
                        "detail": plan.detail,
                    })
                )?;
            } else {
                print_events(&mut out, format, &store.query(&query)?)?;
            }
        }
        Command::Tail {
            store,
            from,
            follow,
            filter,
        } => {
            if *follow && matches!(detect_or(store, cli.engine)?, EngineArg::Redb) {
                bail!(
                    "tail -f needs a SQLite store: redb locks its file, so no other process can \
                     append while it is open"
                );
            }
            let store = open(store, cli.engine)?;
            let after = match from {
                Some(id) => *id,
                None => store.last_id()?.saturating_sub(10),
            };
            let options = SubscribeOptions::new()
                .start(Start::After(after))
                .filter(filter.filter())
                .poll_interval(Duration::from_millis(100));
            let mut subscription = store.subscribe(options)?;
            loop {
                // Without -f, what is there now; with it, wait for more.
                let wait = if *follow {
                    Duration::from_secs(3600)
                } else {
                    Duration::ZERO
                };
                match subscription.next_batch(wait)? {
                    Some(batch) => {
                        print_events(&mut out, format, &batch)?;
                        out.flush()?;
                    }
                    None if *follow => continue,
                    None => break,
                }
            }
        }
        Command::Verify { store, json } => {
            let store = open(store, cli.engine)?;
            let report = store.verify()?;
            if *json {
                let problems: Vec<serde_json::Value> = report
                    .problems
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "kind": format!("{:?}", p.kind),
                            "event_id": p.event_id,
                            "detail": p.detail,
                        })
                    })
                    .collect();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "ok": report.is_ok(),
                        "last_id": report.last_id,
                        "events_checked": report.events_checked,
                        "problems": problems,
                        "unlisted": report.unlisted,
                    })
                )?;
            } else if report.is_ok() {
                writeln!(
                    out,
                    "ok: {} events checked, last id {}",
                    report.events_checked, report.last_id
                )?;
            } else {
                for problem in &report.problems {
                    writeln!(out, "{problem}")?;
                }
                if report.unlisted > 0 {
                    writeln!(out, "… and {} more", report.unlisted)?;
                }
            }
            out.flush()?;
            if !report.is_ok() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Export {
            store,
            out: file,
            filter,
        } => {
            if let Some(path) = file
                && is_store_file(path, store)
            {
                bail!(
                    "refusing to export over the store itself ({})",
                    path.display()
                );
            }
            let store = open(store, cli.engine)?;
            let mut sink: Box<dyn Write> = match file {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(&mut out),
            };
            for batch in store.read_all(StreamOptions::new().filter(filter.filter()))? {
                for event in batch? {
                    writeln!(sink, "{}", upstream_json(&event)?)?;
                }
            }
            sink.flush()?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// An event with upstream's field names, `data` and `metadata` as JSON values.
fn upstream_json(e: &Event) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "id": e.id,
        "version": e.version,
        "datetime": e.datetime,
        "user": e.user,
        "ip": e.ip,
        "cmd": e.cmd,
        "data": serde_json::from_str::<serde_json::Value>(&e.data)
            .with_context(|| format!("data of event {}", e.id))?,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
        "metadata": serde_json::from_str::<serde_json::Value>(&e.metadata)
            .with_context(|| format!("metadata of event {}", e.id))?,
    }))
}

fn print_events(out: &mut impl Write, format: Format, events: &[Event]) -> Result<()> {
    match format {
        Format::Jsonl => {
            for e in events {
                let mut json = upstream_json(e)?;
                if let Some(object) = json.as_object_mut() {
                    object.insert("stream".into(), serde_json::json!(e.stream));
                    object.insert("stream_version".into(), serde_json::json!(e.stream_version));
                }
                writeln!(out, "{json}")?;
            }
        }
        Format::Table => {
            let mut table = comfy_table::Table::new();
            table.set_header(vec![
                "id",
                "datetime",
                "cmd",
                "user",
                "correlation",
                "cause",
                "stream",
                "data",
            ]);
            for e in events {
                table.add_row(vec![
                    e.id.to_string(),
                    e.datetime.to_string(),
                    e.cmd.clone(),
                    e.user.clone(),
                    e.correlation_id.clone(),
                    e.causation_id.map_or_else(String::new, |c| c.to_string()),
                    match (&e.stream, e.stream_version) {
                        (Some(s), Some(v)) => format!("{s}@{v}"),
                        _ => String::new(),
                    },
                    e.data.clone(),
                ]);
            }
            writeln!(out, "{table}")?;
        }
    }
    Ok(())
}
