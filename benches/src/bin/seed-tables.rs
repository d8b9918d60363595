//! The performance guide's tables, measured per engine beside the raw engine underneath.
//!
//! `cargo run --release -p eventlite-benches --bin seed-tables -- [--quick] [--events N]
//! [--runs R] [--engines sqlite,redb,postgres] [--only bulk,reads,…] [--json PATH] [--markdown PATH]
//! [--svg PATH] [--scale] [--render JSON]`; `--help` prints what each flag does.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use eventlite_benches::Engine;
use eventlite_benches::cases::{
    aggregates, reads::reads, scale::scale, subscriptions, writes::writes,
};
use eventlite_benches::harness::{Bench, Config};
use eventlite_benches::report::{json, markdown::markdown, svg::svg};

/// The command line: what the run measures, and where its reports go.
struct Args {
    config: Config,
    json: Option<String>,
    markdown: Option<String>,
    svg: Option<String>,
    render: Option<String>,
}

const USAGE: &str = "\
usage: seed-tables [--quick] [--events N] [--runs R] [--engines sqlite,redb,postgres]
                   [--only index,durability,bulk,profiles,reads,checks,subscriptions,concurrent,aggregates,postgres,async]
                   [--json PATH] [--markdown PATH] [--svg PATH]
       seed-tables --scale [--engines sqlite,redb] [--json PATH] [--markdown PATH]
       seed-tables --render JSON [--markdown PATH] [--svg PATH]

  --engines   postgres adds the `postgres` table, and runs the reads, aggregates and
              subscriptions on the server at EVENTLITE_PG_URL too (ours against plain
              client code): run it through scripts/with-postgres
  --quick     20,000 events, 3 runs (the CI smoke run; under 60 s)
  --events N  events per store (default 100,000)
  --runs R    runs per figure; each figure is their median (default 5)
  --scale     append windows at 0, 1M and 5M stored events, then stream them all
  --render    re-print the tables of an earlier run's JSON";

/// `None` when the user asked for the usage text.
fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        config: Config {
            quick: false,
            events: 0,
            runs: 0,
            engines: vec![Engine::Sqlite, Engine::Redb],
            scale: false,
            only: Vec::new(),
        },
        json: None,
        markdown: None,
        svg: None,
        render: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => args.config.quick = true,
            "--scale" => args.config.scale = true,
            "--events" => args.config.events = value()?.parse()?,
            "--runs" => args.config.runs = value()?.parse()?,
            "--json" => args.json = Some(value()?),
            "--markdown" => args.markdown = Some(value()?),
            "--svg" => args.svg = Some(value()?),
            "--render" => args.render = Some(value()?),
            "--only" => {
                args.config.only = value()?.split(',').map(str::to_owned).collect();
                let known = [
                    "index",
                    "durability",
                    "bulk",
                    "profiles",
                    "reads",
                    "checks",
                    "subscriptions",
                    "concurrent",
                    "aggregates",
                    "postgres",
                    "async",
                    "waiting",
                    "transfer",
                ];
                if let Some(t) = args
                    .config
                    .only
                    .iter()
                    .find(|t| !known.contains(&t.as_str()))
                {
                    bail!("unknown table {t} (known: {})", known.join(", "));
                }
            }
            "--engines" => {
                args.config.engines = value()?
                    .split(',')
                    .map(|e| match e {
                        "sqlite" => Ok(Engine::Sqlite),
                        "redb" => Ok(Engine::Redb),
                        "postgres" => Ok(Engine::Postgres),
                        other => bail!("unknown engine {other}"),
                    })
                    .collect::<Result<_>>()?
            }
            "--rss-child" => {
                // A child process of the memory table.
                let engine = match value()?.as_str() {
                    "sqlite" => Engine::Sqlite,
                    _ => Engine::Redb,
                };
                let raw = value()? == "raw";
                let work = match value()?.as_str() {
                    "streams" => aggregates::Work::Streams,
                    _ => aggregates::Work::Log,
                };
                let n = value()?.parse()?;
                aggregates::rss_child(engine, raw, work, n, value()?.as_ref())?;
                std::process::exit(0);
            }
            "--follow" => {
                // The follower process of the cross-process latency case.
                let path = value()?;
                let count = it.next().context("--follow needs a count")?.parse()?;
                subscriptions::follow(path.as_ref(), count)?;
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n\n{USAGE}"),
        }
    }
    if args.config.events == 0 {
        args.config.events = if args.config.quick { 20_000 } else { 100_000 };
    }
    if args.config.runs == 0 {
        args.config.runs = if args.config.quick { 3 } else { 5 };
    }
    Ok(Some(args))
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        println!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    let mut b = Bench::new(args.config);
    // The file engines; PostgreSQL (a server) joins the tables whose stores it can stand for.
    let postgres = b.config.engines.contains(&Engine::Postgres);
    let engines: Vec<Engine> = b
        .config
        .engines
        .iter()
        .copied()
        .filter(|e| *e != Engine::Postgres)
        .collect();
    if let Some(path) = &args.render {
        // Re-render the tables of an earlier run's JSON.
        json::load(&mut b, &std::fs::read_to_string(path)?)?;
    } else if b.config.scale {
        for &e in &engines {
            scale(&mut b, e)?;
        }
    } else {
        for &e in &engines {
            eprintln!("== {} writes", e.name());
            writes(&mut b, e)?;
        }
        // PostgreSQL's stores are schemas on the server: of the file engines' tables, it runs
        // the reads, the aggregates and the subscriptions.
        let and_server = |engines: &[Engine]| {
            let mut all = engines.to_vec();
            all.extend(postgres.then_some(Engine::Postgres));
            all
        };
        let read_engines = if b.config.wants("reads") || b.config.wants("checks") {
            and_server(&engines)
        } else {
            Vec::new()
        };
        for e in read_engines {
            eprintln!("== {} reads", e.name());
            reads(&mut b, e)?;
        }
        if b.config.wants("aggregates") {
            for e in and_server(&engines) {
                eprintln!("== {} aggregates", e.name());
                eventlite_benches::cases::aggregates::aggregates(&mut b, e)?;
            }
        }
        if b.config.wants("concurrent") {
            for &e in &engines {
                eprintln!("== {} concurrent writers", e.name());
                eventlite_benches::cases::concurrent::concurrent(&mut b, e)?;
            }
        }
        if postgres && b.config.wants("postgres") {
            eprintln!("== postgres");
            eventlite_benches::cases::postgres::postgres(&mut b)?;
        }
        if b.config.wants("async") {
            for &e in &engines {
                eprintln!("== {} async", e.name());
                eventlite_benches::cases::asynchronous::asynchronous(&mut b, e)?;
            }
        }
        if b.config.wants("waiting") {
            for &e in &engines {
                eprintln!("== {} waiting", e.name());
                eventlite_benches::cases::waiting::waiting(&mut b, e)?;
            }
        }
        if b.config.wants("transfer") {
            for &e in &engines {
                eprintln!("== {} transfer", e.name());
                eventlite_benches::cases::transfer::transfer(&mut b, e)?;
            }
        }
        if b.config.wants("subscriptions") {
            for e in and_server(&engines) {
                eprintln!("== {} subscriptions", e.name());
                subscriptions::subscriptions(&mut b, e)?;
            }
        }
    }
    let md = markdown(&b);
    println!("{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &args.json {
        std::fs::write(p, json::document(&b, started.elapsed().as_secs_f64())?)?;
    }
    if let Some(p) = &args.svg {
        std::fs::write(p, svg(&b))?;
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
