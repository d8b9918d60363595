//! `eventlite`: look into, query, follow, check and export an EventLite store of any engine.
//!
//! ```text
//! eventlite info events.sqlite
//! eventlite query events.redb --cmd order_placed --order newest --limit 20
//! eventlite tail events.sqlite --from 1000 -f
//! eventlite verify events.sqlite --json
//! eventlite export events.sqlite --out events.jsonl
//! eventlite import copy.redb events.jsonl --skip-errors
//! eventlite import ours.sqlite --from-upstream events.sqlite
//! eventlite convert events.sqlite events.redb
//! eventlite backup events.sqlite backup.sqlite
//! ```
//!
//! The engine is recognised from the file's first bytes (`--engine` overrides it). Only
//! `import`, `convert` and `backup` create a store (`import` and `convert` of the engine their
//! `--engine`/`--to`, or the new file's extension, `.redb` or else SQLite, says); an existing
//! store's indexes are left as they are (`indexes_as_found`). Events print as a
//! table on a terminal and as JSON Lines otherwise (`--format`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use eventlite::{
    AnyStore, Backend, Event, EventStore, Filter, IndexConfig, Order, Query, Start, StreamOptions,
    SubscribeOptions,
};

#[derive(Debug, Parser)]
#[command(name = "eventlite", version, about = "Look into EventLite stores")]
struct Cli {
    /// The store's engine (recognised from the file when omitted).
    #[arg(long, global = true, value_enum)]
    engine: Option<EngineArg>,
    /// How events and reports are printed (a table on a terminal, JSON Lines otherwise).
    #[arg(long, global = true, value_enum)]
    format: Option<Format>,
    /// Open stores without writing to them: no store is created, migrated or reconciled, and
    /// the file is opened read-only (commands that write to a store refuse to run; `backup`,
    /// `convert` and `export --out` still write their new file).
    #[arg(long, global = true)]
    read_only: bool,
    /// Draw no progress bars (they are drawn on standard error when it is a terminal).
    #[arg(long, global = true)]
    no_progress: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineArg {
    Sqlite,
    Redb,
}

impl EngineArg {
    fn name(self) -> &'static str {
        match self {
            EngineArg::Sqlite => "SQLite",
            EngineArg::Redb => "redb",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A table of text.
    Table,
    /// One JSON value: an array of the events, or the report as one object.
    Json,
    /// One JSON object a line.
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
    /// Events after an id; with `-f` (SQLite stores), keeps printing new ones as they are
    /// stored (by this or another process).
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
    /// Counts by cmd, user and stream over the whole log (read once), with the store's info.
    Stats {
        store: PathBuf,
        /// Show the N largest of each count.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// The causation tree of a correlation: as indented text, or as Graphviz `dot` (`--as
    /// svg` runs Graphviz's `dot` to draw it, when installed).
    Graph {
        store: PathBuf,
        correlation: String,
        #[arg(long = "as", value_enum, default_value = "text")]
        kind: GraphKind,
    },
    /// Imports JSON Lines (upstream's field names, as `export` writes them) into a store,
    /// creating it if missing: ids kept when the store is empty and the file's run 1, 2, 3, …;
    /// otherwise appended, causation ids mapped to the new ids. Every line is checked first.
    Import {
        /// The store to import into (created when missing).
        store: PathBuf,
        /// The JSON Lines file (with `--from-upstream`: the JavaScript library's SQLite file).
        file: PathBuf,
        /// Events per transaction.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Leave bad lines out (each reported, with its number and why) and import the rest;
        /// without it, the first bad line aborts and nothing is stored.
        #[arg(long)]
        skip_errors: bool,
        /// Check the file and report what would be imported; store nothing.
        #[arg(long)]
        dry_run: bool,
        /// FILE is a store written by the JavaScript EventLite Sourcing (SQLite).
        #[arg(long)]
        from_upstream: bool,
    },
    /// Copies a store into a new one of any engine, keeping ids, correlation and causation,
    /// streams and their versions, positions and index settings; then checks the copy against
    /// the source, event by event.
    Convert {
        /// The store to copy.
        src: PathBuf,
        /// The new store (must not exist).
        dst: PathBuf,
        /// The new store's engine (default: from DST's extension, `.redb` or else SQLite).
        #[arg(long, value_enum)]
        to: Option<EngineArg>,
    },
    /// Writes events as JSON Lines with upstream's field names (`data` and `metadata` as JSON
    /// values), in id order.
    Export {
        store: PathBuf,
        /// The file to write (standard output when omitted).
        #[arg(long)]
        out: Option<PathBuf>,
        /// CSV as upstream writes it (header `id,version,datetime,user,ip,cmd,data,
        /// correlation_id,causation_id,metadata`; data and metadata as JSON text) instead of
        /// JSON Lines.
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Snapshots: the names that have some, one name's (newest first), or deleting one.
    Snapshots {
        #[command(subcommand)]
        action: SnapshotsAction,
    },
    /// The store's indexes (`show`), or makes them a profile's (`set`), building the ones it
    /// adds from the events and dropping the others.
    Indexes {
        #[command(subcommand)]
        action: IndexesAction,
    },
    /// Gives the space of deleted pages back to the file system (SQLite: `VACUUM`; redb: its
    /// compaction). Nothing else may have the store open meanwhile (SQLite waits up to 5 s
    /// for its writers).
    Compact { store: PathBuf },
    /// A consistent copy of a store while its writers go on (SQLite: `VACUUM INTO`, in one
    /// read transaction; redb, which only one process opens at a time: a checked copy), then
    /// verifies the copy.
    Backup {
        store: PathBuf,
        /// The copy (must not exist).
        dst: PathBuf,
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

#[derive(Debug, Subcommand)]
enum SnapshotsAction {
    /// Without NAME: every name with its number of snapshots; with it, that name's snapshots,
    /// newest first (event id, when taken, size, metadata).
    List {
        store: PathBuf,
        name: Option<String>,
    },
    /// Deletes the snapshot of NAME at EVENT_ID.
    Delete {
        store: PathBuf,
        name: String,
        event_id: u64,
    },
}

#[derive(Debug, Subcommand)]
enum IndexesAction {
    /// Each index, whether the store has it, and the profile the store's indexes are.
    Show { store: PathBuf },
    /// Makes the store's indexes PROFILE's: `none`, `high-volume`, `balanced`,
    /// `query-optimized` or `all`, or a list of index names (`cmd,user_datetime`).
    Set { store: PathBuf, profile: String },
}

/// A named index profile: its name and what makes it.
type Profile = (&'static str, fn() -> IndexConfig);

/// The named index profiles, as `indexes set` takes them.
const PROFILES: [Profile; 5] = [
    ("none", IndexConfig::none),
    ("high-volume", IndexConfig::high_volume),
    ("balanced", IndexConfig::balanced),
    ("query-optimized", IndexConfig::query_optimized),
    ("all", IndexConfig::all),
];

/// A profile's name or a comma-separated list of index names, as an index configuration.
fn parse_profile(text: &str) -> Result<IndexConfig> {
    if let Some((_, config)) = PROFILES.iter().find(|(name, _)| *name == text) {
        return Ok(config());
    }
    let names = text
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            eventlite::IndexName::parse(n).with_context(|| {
                let known: Vec<&str> = eventlite::IndexName::ALL
                    .iter()
                    .map(|i| i.as_str())
                    .collect();
                let profiles: Vec<&str> = PROFILES.iter().map(|(p, _)| *p).collect();
                format!(
                    "{n:?} is neither a profile ({}) nor an index ({})",
                    profiles.join(", "),
                    known.join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if names.is_empty() {
        bail!("no index named in {text:?} (to drop every index, say `none`)");
    }
    Ok(IndexConfig::from_names(names))
}

/// The profile `config` is, if it is one.
fn profile_of(config: &IndexConfig) -> Option<&'static str> {
    PROFILES
        .iter()
        .find(|(_, make)| make() == *config)
        .map(|(name, _)| *name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphKind {
    Text,
    Dot,
    Svg,
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
    // A reader that went away (`| head`) is not an error, whichever writer met it.
    let closed = e.chain().any(|c| {
        let pipe = Some(std::io::ErrorKind::BrokenPipe);
        c.downcast_ref::<std::io::Error>().map(|io| io.kind()) == pipe
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                == pipe
    });
    if closed {
        return ExitCode::SUCCESS;
    }
    // The whole chain, no backtrace; stderr may be closed too.
    let _ = writeln!(std::io::stderr(), "eventlite: {}", chain_text(&e));
    ExitCode::from(2)
}

/// An error and its causes, `: `-separated, each cause left out when the text before it
/// already says it (the store's errors name their cause in their own message).
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.is_empty() {
            text = said;
        } else if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}

/// Opens an existing store, never creating one and leaving its indexes as they are; with
/// `--read-only`, without writing to it at all.
fn open(path: &Path, cli: &Cli) -> Result<AnyStore> {
    open_with(path, cli.engine, cli.read_only, None)
}

/// Opens an existing store: read-only, or with `indexes` (made so) or else as found.
fn open_with(
    path: &Path,
    engine: Option<EngineArg>,
    read_only: bool,
    indexes: Option<IndexConfig>,
) -> Result<AnyStore> {
    if path.is_dir() {
        bail!("{} is a directory, not a store", path.display());
    }
    if !path.is_file() {
        bail!("no store at {}", path.display());
    }
    // A store of the other engine than `--engine` says would fail deep in that engine.
    if let (Some(said), Ok(found)) = (engine, detect(path))
        && said != found
    {
        bail!(
            "{} is a {} file, not {} (leave out --engine: the file says which)",
            path.display(),
            found.name(),
            said.name()
        );
    }
    let backend: Box<dyn Backend> = match detect_or(path, engine)? {
        EngineArg::Sqlite => Box::new(eventlite::sqlite::SqliteBackend::open(
            path,
            eventlite::sqlite::SqliteOptions {
                indexes_as_found: indexes.is_none(),
                indexes: indexes.unwrap_or_default(),
                read_only,
                ..Default::default()
            },
        )?),
        EngineArg::Redb => Box::new(eventlite::redb::RedbBackend::open(
            path,
            eventlite::redb::RedbOptions {
                indexes_as_found: indexes.is_none(),
                indexes: indexes.unwrap_or_default(),
                read_only,
                ..Default::default()
            },
        )?),
    };
    // Opening releases nothing (what `info` or `export` opens stays as it was); appends made
    // through it, an import's, release what they complete, as any append does.
    Ok(EventStore::builder(backend)
        .check_waiting_at_open(false)
        .build())
}

/// Progress bars on standard error (when it is a terminal), or none when `hide`.
fn bars(hide: bool) -> eventlite_cli::Bars {
    if hide {
        eventlite_cli::Bars::hidden()
    } else {
        eventlite_cli::Bars::stderr()
    }
}

/// Runs `import` on the store at `path`, created when missing: a new store is made whole or
/// not at all ([`make_whole`]); an existing one keeps the batches stored before a failure.
fn import_into<T>(
    path: &Path,
    engine: Option<EngineArg>,
    import: impl FnOnce(&AnyStore) -> eventlite::Result<T>,
) -> Result<T> {
    if path.exists() {
        let target = open_with(path, engine, false, None)?;
        return Ok(import(&target)?);
    }
    let engine = engine_for(path, engine);
    make_whole(path, |partial| {
        let target = create(partial, Some(engine), None, None)?;
        Ok(import(&target)?)
    })
}

/// Makes a new store at `dst` whole or not at all, as the engines make theirs
/// ([`create_or_find_store`](eventlite_core::spi::files::create_or_find_store)): `fill` builds
/// it at a hidden path beside `dst` (free: nothing is there) and must have closed it when it
/// returns; it is synced and linked into place only once `fill` succeeded. A failure removes
/// it; an interruption (Ctrl-C, a kill) leaves nothing at `dst`, only the hidden
/// `.NAME.eventlite-new-*` file, which a later run removes once its process is gone.
fn make_whole<T>(dst: &Path, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    use eventlite_core::spi::files::{StoreFile, create_or_find_store};
    if dst.exists() {
        bail!("{} already exists", dst.display());
    }
    parent_exists(dst)?;
    let mut made = None;
    let mut failed = None;
    let built = create_or_find_store(dst, "eventlite", |hidden| {
        let filled = std::fs::remove_file(hidden)
            .with_context(|| format!("preparing {}", hidden.display()))
            .and_then(|()| fill(hidden))
            .and_then(|value| {
                // Closing a SQLite store merges its log into the file; one still there would
                // be dropped with the hidden file's side files.
                let mut log = hidden.as_os_str().to_owned();
                log.push("-wal");
                if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
                    bail!("{} was left with its log unmerged", hidden.display());
                }
                Ok(value)
            });
        match filled {
            Ok(value) => {
                made = Some(value);
                Ok(())
            }
            Err(e) => {
                let why = eventlite::Error::Internal(format!("{e:#}"));
                failed = Some(e);
                Err(why)
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    match built? {
        StoreFile::Created => made.context("the new store was made without its report"),
        StoreFile::Existing => bail!("{} already exists (made meanwhile)", dst.display()),
    }
}

/// The size limit of a copy's events: none, since its source already took them.
const COPY: Option<usize> = Some(usize::MAX);

/// A new store at `path` (which must not exist), of `engine` or the one its extension says,
/// with `indexes` and an event size limit (`None`: the default).
fn create(
    path: &Path,
    engine: Option<EngineArg>,
    indexes: Option<IndexConfig>,
    max_event_size: Option<usize>,
) -> Result<AnyStore> {
    if path.exists() {
        bail!("{} already exists", path.display());
    }
    parent_exists(path)?;
    let engine = engine_for(path, engine);
    let backend: Box<dyn Backend> = match engine {
        EngineArg::Sqlite => {
            let mut options = eventlite::sqlite::SqliteOptions::default();
            if let Some(indexes) = indexes {
                options.indexes = indexes;
            }
            Box::new(eventlite::sqlite::SqliteBackend::open(path, options)?)
        }
        EngineArg::Redb => {
            let mut options = eventlite::redb::RedbOptions::default();
            if let Some(indexes) = indexes {
                options.indexes = indexes;
            }
            Box::new(eventlite::redb::RedbBackend::open(path, options)?)
        }
    };
    let mut store = EventStore::builder(backend);
    if let Some(limit) = max_event_size {
        store = store.max_event_size(limit);
    }
    Ok(store.build())
}

/// The engine of a new store at `path`: `engine`, or the one its extension says (`.redb`, else
/// SQLite).
fn engine_for(path: &Path, engine: Option<EngineArg>) -> EngineArg {
    engine.unwrap_or(match path.extension().and_then(|e| e.to_str()) {
        Some("redb") => EngineArg::Redb,
        _ => EngineArg::Sqlite,
    })
}

/// Refuses a new file in a directory that does not exist: the library would make it, and a
/// mistyped path would quietly become a new, empty store.
fn parent_exists(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => bail!(
            "no directory {} (create it first, or check the path)",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Creates `path` empty, readable and writable by its owner alone.
fn private_new_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

/// Gives the copy at `copy` the permissions of the store at `store`, with its owner's write
/// permission (the copy is opened for writing to be checked).
fn like_the_store(copy: &Path, store: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store)?.permissions().mode() | 0o200;
        std::fs::set_permissions(copy, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting {}'s permissions", copy.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (copy, store);
    Ok(())
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
    let writes = match &cli.command {
        Command::Import { dry_run: false, .. } => Some("import"),
        Command::Snapshots {
            action: SnapshotsAction::Delete { .. },
        } => Some("snapshots delete"),
        Command::Indexes {
            action: IndexesAction::Set { .. },
        } => Some("indexes set"),
        Command::Compact { .. } => Some("compact"),
        _ => None,
    };
    if let Some(command) = writes
        && cli.read_only
    {
        bail!("`{command}` writes to the store: run it without --read-only");
    }
    match &cli.command {
        Command::Info { store: path } => {
            let store = open(path, &cli)?;
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
            let mut snapshots = 0usize;
            for name in store.snapshot_names()? {
                snapshots += store.list_snapshots(&name, u64::MAX, 0)?.len();
            }
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
                ("snapshots", snapshots.into()),
            ];
            match format {
                Format::Json | Format::Jsonl => {
                    let object: serde_json::Map<String, serde_json::Value> = rows
                        .into_iter()
                        .map(|(k, v)| (k.replace(' ', "_"), v))
                        .collect();
                    write_json(&mut out, format, &serde_json::Value::Object(object))?;
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
        Command::Stats { store: path, top } => {
            let store = open(path, &cli)?;
            let mut cmds: std::collections::HashMap<String, u64> = Default::default();
            let mut users: std::collections::HashMap<String, u64> = Default::default();
            let mut streams: std::collections::HashMap<String, u64> = Default::default();
            let mut events = 0u64;
            for batch in store.read_all(StreamOptions::new().batch_size(1_000))? {
                for e in batch? {
                    events += 1;
                    *cmds.entry(e.cmd).or_default() += 1;
                    *users.entry(e.user).or_default() += 1;
                    if let Some(s) = e.stream {
                        *streams.entry(s).or_default() += 1;
                    }
                }
            }
            let largest = |counts: &std::collections::HashMap<String, u64>| {
                let mut all: Vec<(&String, &u64)> = counts.iter().collect();
                all.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                all.into_iter()
                    .take(*top)
                    .map(|(k, v)| serde_json::json!({"name": k, "events": v}))
                    .collect::<Vec<_>>()
            };
            let stats = serde_json::json!({
                "engine": engine_name(path, cli.engine),
                "bytes": std::fs::metadata(path)?.len(),
                "events": events,
                "last_id": store.last_id()?,
                "cmds": cmds.len(),
                "users": users.len(),
                "streams": streams.len(),
                "positions": store.positions()?.len(),
                "indexes": store.indexes()?.enabled().iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                "top_cmds": largest(&cmds),
                "top_users": largest(&users),
                "top_streams": largest(&streams),
            });
            match format {
                Format::Json | Format::Jsonl => write_json(&mut out, format, &stats)?,
                Format::Table => {
                    let mut table = comfy_table::Table::new();
                    for key in [
                        "engine",
                        "bytes",
                        "events",
                        "last_id",
                        "cmds",
                        "users",
                        "streams",
                        "positions",
                    ] {
                        table.add_row(vec![
                            key.to_owned(),
                            stats[key].to_string().trim_matches('"').to_owned(),
                        ]);
                    }
                    writeln!(out, "{table}")?;
                    for (title, key) in [
                        ("cmd", "top_cmds"),
                        ("user", "top_users"),
                        ("stream", "top_streams"),
                    ] {
                        let mut table = comfy_table::Table::new();
                        table.set_header(vec![title, "events"]);
                        for row in stats[key].as_array().into_iter().flatten() {
                            table.add_row(vec![
                                row["name"].as_str().unwrap_or_default().to_owned(),
                                row["events"].to_string(),
                            ]);
                        }
                        writeln!(out, "{table}")?;
                    }
                }
            }
        }
        Command::Graph {
            store,
            correlation,
            kind,
        } => {
            let store = open(store, &cli)?;
            let events = store.transaction(correlation)?;
            if events.is_empty() {
                bail!("no events in correlation {correlation:?}");
            }
            match kind {
                GraphKind::Text => write!(out, "{}", store.tree_report(correlation)?)?,
                GraphKind::Dot => write!(out, "{}", dot(correlation, &events))?,
                GraphKind::Svg => {
                    let mut graphviz = std::process::Command::new("dot")
                        .arg("-Tsvg")
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .context("--as svg needs Graphviz's `dot` (or use --as dot, or text)")?;
                    if let Some(mut input) = graphviz.stdin.take() {
                        // Not our reader going away: Graphviz stopping early is a failure.
                        input
                            .write_all(dot(correlation, &events).as_bytes())
                            .map_err(|e| anyhow::anyhow!("Graphviz's dot stopped reading: {e}"))?;
                    }
                    let drawn = graphviz.wait_with_output()?;
                    if !drawn.status.success() {
                        bail!(
                            "Graphviz's dot failed: {}",
                            String::from_utf8_lossy(&drawn.stderr)
                        );
                    }
                    out.write_all(&drawn.stdout)?;
                }
            }
        }
        Command::Import {
            store,
            file,
            batch,
            skip_errors,
            dry_run,
            from_upstream,
        } => {
            if *from_upstream {
                if *dry_run || *skip_errors {
                    bail!(
                        "--from-upstream always leaves out the rows it cannot take and lists \
                         them; --dry-run and --skip-errors are for JSON Lines"
                    );
                }
                if !file.is_file() {
                    bail!("no file {}", file.display());
                }
                let report = import_into(store, cli.engine, |target| {
                    eventlite::import::upstream_sqlite(file, target)
                })?;
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "imported": report.imported,
                        "ids_kept": report.ids_kept,
                        "skipped": report.skipped.iter().map(|s| serde_json::json!({
                            "id": s.source_id, "reason": s.reason,
                        })).collect::<Vec<_>>(),
                    })
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            if !file.is_file() {
                bail!("no file {}", file.display());
            }
            let mut bars = bars(cli.no_progress);
            let options = eventlite::import::JsonlOptions::new()
                .batch(*batch)
                .skip_errors(*skip_errors)
                .dry_run(*dry_run);
            let report = if *dry_run && !store.exists() && !cli.read_only {
                // A dry run never creates the store: it checks against an empty one.
                let empty =
                    EventStore::new(Box::new(eventlite::MemoryBackend::new()) as Box<dyn Backend>);
                eventlite::import::jsonl_with(file, &empty, options, |p| bars.report(p))?
            } else if *dry_run {
                // Stores nothing in one (opened read-only under --read-only, where a missing
                // store is an error, as for every command).
                let target = open(store, &cli)?;
                eventlite::import::jsonl_with(file, &target, options, |p| bars.report(p))?
            } else {
                import_into(store, cli.engine, |target| {
                    eventlite::import::jsonl_with(file, target, options, |p| bars.report(p))
                })?
            };
            bars.finish();
            for s in &report.skipped {
                writeln!(std::io::stderr(), "line {}: {}", s.line, s.reason)?;
            }
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "imported": report.imported,
                    "dry_run": dry_run,
                    "ids_kept": report.ids_kept,
                    // File id → stored id, where they differ.
                    "new_ids": report.new_ids.iter()
                        .map(|(old, new)| (old.to_string(), serde_json::json!(new)))
                        .collect::<serde_json::Map<_, _>>(),
                    "skipped": report.skipped.iter().map(|s| serde_json::json!({
                        "line": s.line, "id": s.id, "reason": s.reason,
                    })).collect::<Vec<_>>(),
                })
            )?;
        }
        Command::Convert { src, dst, to } => {
            let source = open(src, &cli)?;
            let indexes = source.indexes()?;
            let engine = engine_for(dst, *to);
            let mut bars = bars(cli.no_progress);
            // Half a copy is worse than none.
            let copied = make_whole(dst, |partial| {
                let copy = create(partial, Some(engine), Some(indexes), COPY)?;
                Ok(eventlite::convert::copy_with(&source, &copy, |p| {
                    bars.report(p)
                })?)
            })
            .with_context(|| format!("no copy was made at {}", dst.display()))?;
            bars.finish();
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "copied": copied.events,
                    "from": engine_name(src, cli.engine),
                    "to": engine_name(dst, *to),
                    "positions": copied.positions,
                    "snapshots": copied.snapshots,
                    "verified": true,
                })
            )?;
        }
        Command::Get { store, id } => {
            let store = open(store, &cli)?;
            match store.get(*id)? {
                Some(e) => print_events(&mut out, format, &[e])?,
                None => bail!("no event {id}"),
            }
        }
        Command::Lineage { store, id } => {
            let store = open(store, &cli)?;
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
            let store = open(store, &cli)?;
            print_events(&mut out, format, &store.transaction(correlation)?)?;
        }
        Command::Query {
            store,
            filter,
            order,
            limit,
            explain,
        } => {
            let store = open(store, &cli)?;
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
            let store = open(store, &cli)?;
            let after = match from {
                Some(id) => *id,
                None => store.last_id()?.saturating_sub(10),
            };
            let options = SubscribeOptions::new()
                .start(Start::After(after))
                .filter(filter.filter())
                .poll_interval(Duration::from_millis(100));
            let mut subscription = store.subscribe(options)?;
            // A stream of events has no end to close an array at: one event a line.
            let format = if format == Format::Json {
                Format::Jsonl
            } else {
                format
            };
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
            let store = open(store, &cli)?;
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
        Command::Snapshots { action } => match action {
            SnapshotsAction::List { store, name } => {
                let store = open(store, &cli)?;
                let rows: Vec<serde_json::Value> = match name {
                    None => store
                        .snapshot_names()?
                        .into_iter()
                        .map(|n| {
                            let count = store.list_snapshots(&n, u64::MAX, 0)?.len();
                            Ok(serde_json::json!({"name": n, "snapshots": count}))
                        })
                        .collect::<Result<_>>()?,
                    Some(name) => store
                        .list_snapshots(name, u64::MAX, 0)?
                        .iter()
                        .map(|s| {
                            serde_json::json!({
                                "name": s.name,
                                "event_id": s.event_id,
                                "created_at": s.created_at,
                                "bytes": s.state.len(),
                                "metadata": serde_json::from_str::<serde_json::Value>(&s.metadata)
                                    .unwrap_or(serde_json::Value::Null),
                            })
                        })
                        .collect(),
                };
                match format {
                    Format::Json => write_json(&mut out, format, &serde_json::Value::Array(rows))?,
                    Format::Jsonl => {
                        for row in rows {
                            writeln!(out, "{row}")?;
                        }
                    }
                    Format::Table => {
                        let mut table = comfy_table::Table::new();
                        if let Some(first) = rows.first().and_then(|r| r.as_object()) {
                            table.set_header(first.keys().cloned().collect::<Vec<_>>());
                        }
                        for row in &rows {
                            let cells: Vec<String> = row
                                .as_object()
                                .into_iter()
                                .flatten()
                                .map(|(_, v)| {
                                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                                })
                                .collect();
                            table.add_row(cells);
                        }
                        writeln!(out, "{table}")?;
                    }
                }
            }
            SnapshotsAction::Delete {
                store,
                name,
                event_id,
            } => {
                let store = open(store, &cli)?;
                if !store.delete_snapshot(name, *event_id)? {
                    bail!("no snapshot of {name:?} at event {event_id}");
                }
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"deleted": {"name": name, "event_id": event_id}})
                )?;
            }
        },
        Command::Backup { store: path, dst } => {
            let events = make_whole(dst, |partial| {
                match detect_or(path, cli.engine)? {
                    EngineArg::Sqlite => {
                        use eventlite::sqlite::rusqlite::{Connection, OpenFlags};
                        let conn =
                            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                                .with_context(|| format!("opening {}", path.display()))?;
                        conn.busy_timeout(Duration::from_secs(5))?;
                        // Made first, private, so that the copy is never readable under the
                        // umask's permissions; SQLite copies into an empty file.
                        private_new_file(partial)?;
                        // Absolute: SQLite would read a name starting with `file:` as a URI.
                        let target = std::path::absolute(partial)?;
                        let target = target.to_str().context("the backup's path is not UTF-8")?;
                        conn.execute("VACUUM INTO ?1", [target])
                            .with_context(|| format!("copying into {}", dst.display()))?;
                        like_the_store(partial, path)?;
                    }
                    EngineArg::Redb => {
                        let source = open(path, &cli)?;
                        let indexes = source.indexes()?;
                        let copy = create(partial, Some(EngineArg::Redb), Some(indexes), COPY)?;
                        let mut bars = bars(cli.no_progress);
                        eventlite::convert::copy_with(&source, &copy, |p| bars.report(p))?;
                        bars.finish();
                    }
                }
                let copy = open_with(partial, cli.engine, false, None)?;
                let report = copy.verify()?;
                if !report.is_ok() {
                    bail!("the backup does not verify: {:?}", report.problems);
                }
                Ok(copy.last_id()?)
            })
            .with_context(|| format!("no backup at {}", dst.display()))?;
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "backup": dst.display().to_string(),
                    "events": events,
                    "bytes": std::fs::metadata(dst)?.len(),
                    "verified": true,
                })
            )?;
        }
        Command::Indexes { action } => {
            let (path, wanted) = match action {
                IndexesAction::Show { store } => (store, None),
                IndexesAction::Set { store, profile } => (store, Some(parse_profile(profile)?)),
            };
            let before = open(path, &cli)?.indexes()?;
            let after = match wanted {
                // Opening with the profile builds and drops (in one transaction).
                Some(config) => open_with(path, cli.engine, false, Some(config))?.indexes()?,
                None => before,
            };
            let names = |c: &IndexConfig| -> Vec<String> {
                c.enabled().iter().map(|n| n.to_string()).collect()
            };
            let report = serde_json::json!({
                "indexes": names(&after),
                "profile": profile_of(&after),
                "added": names(&after).into_iter().filter(|n| !names(&before).contains(n)).collect::<Vec<_>>(),
                "dropped": names(&before).into_iter().filter(|n| !names(&after).contains(n)).collect::<Vec<_>>(),
            });
            match format {
                Format::Table => {
                    let mut table = comfy_table::Table::new();
                    table.set_header(vec!["index", "enabled"]);
                    for name in eventlite::IndexName::ALL {
                        let on = if after.is_enabled(name) { "yes" } else { "no" };
                        table.add_row(vec![name.to_string(), on.to_owned()]);
                    }
                    writeln!(out, "{table}")?;
                    writeln!(
                        out,
                        "profile: {}",
                        profile_of(&after).unwrap_or("(none of the named ones)")
                    )?;
                }
                Format::Json | Format::Jsonl => write_json(&mut out, format, &report)?,
            }
        }
        Command::Compact { store: path } => {
            // Checked as a store of ours first; then compacted through the engine itself.
            drop(open(path, &cli)?);
            let size = |p: &Path| std::fs::metadata(p).map(|m| m.len());
            let before = size(path)?;
            match detect_or(path, cli.engine)? {
                EngineArg::Sqlite => {
                    use eventlite::sqlite::rusqlite::Connection;
                    let conn = Connection::open(path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    conn.busy_timeout(Duration::from_secs(5))?;
                    conn.execute_batch("VACUUM")
                        .with_context(|| format!("compacting {}", path.display()))?;
                    // VACUUM's pages go through the log: move them into the file.
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                }
                EngineArg::Redb => {
                    let mut db = eventlite::redb::redb::Database::open(path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    db.compact()
                        .with_context(|| format!("compacting {}", path.display()))?;
                }
            }
            let after = size(path)?;
            writeln!(
                out,
                "{}",
                serde_json::json!({"compacted": path.display().to_string(), "bytes_before": before, "bytes_after": after})
            )?;
        }
        Command::Export {
            store,
            out: file,
            csv,
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
            let store = open(store, &cli)?;
            let mut sink: Box<dyn Write> = match file {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(&mut out),
            };
            let format = if *csv {
                eventlite::export::Format::Csv
            } else {
                eventlite::export::Format::Jsonl
            };
            // Not over events printed on the same terminal.
            let mut bars =
                bars(cli.no_progress || (file.is_none() && std::io::stdout().is_terminal()));
            let to = match file {
                Some(path) => path.display().to_string(),
                None => "standard output".into(),
            };
            let mut export = || -> Result<()> {
                eventlite::export::write_with(&store, filter.filter(), format, &mut sink, |p| {
                    bars.report(p)
                })?;
                Ok(sink.flush()?)
            };
            export().with_context(|| format!("exporting to {to}"))?;
            bars.finish();
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A correlation's causation tree in Graphviz's language: a node per event (id, cmd, user),
/// an edge from each cause to what it caused.
fn dot(correlation: &str, events: &[Event]) -> String {
    // Graphviz strings: quotes and backslashes escaped, line breaks as \n.
    let quote = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .replace('\r', "")
    };
    let ids: std::collections::HashSet<u64> = events.iter().map(|e| e.id).collect();
    let mut text = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box];\n",
        quote(correlation)
    );
    for e in events {
        let user = if e.user.is_empty() {
            String::new()
        } else {
            format!("\\n{}", quote(&e.user))
        };
        text.push_str(&format!(
            "  e{} [label=\"#{} {}{user}\"];\n",
            e.id,
            e.id,
            quote(&e.cmd)
        ));
    }
    for e in events {
        if let Some(parent) = e.causation_id.filter(|p| ids.contains(p)) {
            text.push_str(&format!("  e{parent} -> e{};\n", e.id));
        }
    }
    text.push_str("}\n");
    text
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

/// One JSON value: indented for `--format json`, on one line for JSON Lines.
fn write_json(out: &mut impl Write, format: Format, value: &serde_json::Value) -> Result<()> {
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{value}")?;
    }
    Ok(())
}

fn print_events(out: &mut impl Write, format: Format, events: &[Event]) -> Result<()> {
    let json = |e: &Event| -> Result<serde_json::Value> {
        let mut json = upstream_json(e)?;
        if let Some(object) = json.as_object_mut() {
            object.insert("stream".into(), serde_json::json!(e.stream));
            object.insert("stream_version".into(), serde_json::json!(e.stream_version));
        }
        Ok(json)
    };
    match format {
        Format::Json => {
            let all = events.iter().map(json).collect::<Result<Vec<_>>>()?;
            write_json(out, format, &serde_json::Value::Array(all))?;
        }
        Format::Jsonl => {
            for e in events {
                writeln!(out, "{}", json(e)?)?;
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
