//! The run's figures as Markdown: one table per kind of case, every engine beside its raw
//! engine, then the targets.

use std::fmt::Write as _;

use crate::cases::scale::SCALE_WINDOWS;
use crate::harness::{Bench, Row};
use crate::report::targets::{checks, checks_markdown};
use crate::report::{fmt_num, unique};

/// Whether a smaller figure in `unit` is the better one (memory, as opposed to rates).
fn lower_is_better(unit: &str) -> bool {
    unit == "KiB" || unit == "µs"
}

/// The tables of a run, each engine's best figure of a case in bold, and the targets checked.
pub fn markdown(b: &Bench) -> String {
    let engines: Vec<&str> = b.config.engines.iter().map(|e| e.name()).collect();
    let mut out = String::new();
    if b.config.scale {
        let _ = writeln!(
            out,
            "Bulk appends: {SCALE_WINDOWS} windows of 100,000 events per level (median, \
             min–max in brackets); streams: one pass over every stored event.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "N = {} events, {} runs per figure (median, min–max in brackets).\n",
            b.config.events, b.config.runs
        );
    }
    for table in unique(b.rows.iter().map(|r| r.table.as_str())) {
        let _ = writeln!(out, "### {table}\n");
        let mut header = "| case | unit |".to_owned();
        let mut rule = "|---|---|".to_owned();
        for e in &engines {
            let _ = write!(header, " {e} | {e} raw | ours/raw |");
            rule.push_str("---:|---:|---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        let mut cases: Vec<&str> = b
            .rows
            .iter()
            .filter(|r| r.table == table)
            .map(|r| r.case.as_str())
            .collect();
        cases.dedup();
        let mut seen = std::collections::HashSet::new();
        for case in cases.into_iter().filter(|c| seen.insert(*c)) {
            let rows: Vec<&Row> = b
                .rows
                .iter()
                .filter(|r| r.table == table && r.case == case)
                .collect();
            let unit = rows.first().map_or("", |r| r.unit.as_str());
            let medians = rows.iter().map(|r| r.ours.median);
            let best = if lower_is_better(unit) {
                medians.fold(f64::MAX, f64::min)
            } else {
                medians.fold(f64::MIN, f64::max)
            };
            let mut line = format!("| {case} | {unit} |");
            for e in &engines {
                match rows.iter().find(|r| r.engine == *e) {
                    Some(r) => {
                        let v = if r.ours.min == r.ours.max {
                            fmt_num(r.ours.median)
                        } else {
                            format!(
                                "{} ({}–{})",
                                fmt_num(r.ours.median),
                                fmt_num(r.ours.min),
                                fmt_num(r.ours.max)
                            )
                        };
                        let v = if rows.len() > 1 && r.ours.median == best {
                            format!("**{v}**")
                        } else {
                            v
                        };
                        let raw = r.raw.as_ref().map_or("–".into(), |s| fmt_num(s.median));
                        let ratio = r.ratio.map_or("–".into(), |x| format!("{x:.2}"));
                        let _ = write!(line, " {v} | {raw} | {ratio} |");
                    }
                    None => line.push_str(" – | – | – |"),
                }
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    out.push_str(&checks_markdown(&checks(b)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;
    use crate::report::bench;

    fn line<'a>(md: &'a str, case: &str) -> &'a str {
        md.lines()
            .find(|l| l.starts_with(&format!("| {case} |")))
            .unwrap_or_default()
    }

    #[test]
    fn the_best_rate_is_the_highest_and_the_best_memory_the_lowest() {
        let mut b = bench(true);
        for (engine, rate, kib) in [(Engine::Sqlite, 10.0, 900.0), (Engine::Redb, 20.0, 64.0)] {
            b.record(
                "scale",
                "append",
                engine,
                "events/s",
                vec![rate, rate + 1.0, rate + 2.0],
                None,
            );
            b.record("scale", "RSS growth", engine, "KiB", vec![kib], None);
        }
        let md = markdown(&b);
        assert!(line(&md, "append").contains("| **21 (20–22)** |"), "{md}");
        assert!(line(&md, "append").contains("| 11 (10–12) |"), "{md}");
        // A single measurement has no range; less memory is the better figure.
        assert!(line(&md, "RSS growth").contains("| **64** |"), "{md}");
        assert!(line(&md, "RSS growth").contains("| 900 |"), "{md}");
        assert!(md.starts_with("Bulk appends: 3 windows"), "{md}");
        assert!(markdown(&bench(false)).starts_with("N = 1000 events, 3 runs per figure"));
    }
}
