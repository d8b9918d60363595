//! A bar chart of the write tables: ours beside the raw engine, per case.

use std::fmt::Write as _;

use crate::harness::{Bench, Row};
use crate::report::{fmt_num, unique};

/// The chart as an SVG document.
pub fn svg(b: &Bench) -> String {
    let rows: Vec<&Row> = b
        .rows
        .iter()
        .filter(|r| {
            matches!(
                r.table.as_str(),
                "index" | "durability" | "bulk" | "profiles"
            )
        })
        .collect();
    let bar_h = 14.0;
    let label_w = 330.0;
    let width = 1000.0;
    let mut y = 30.0;
    let mut body = String::new();
    for table in unique(rows.iter().map(|r| r.table.as_str())) {
        let in_table: Vec<&&Row> = rows.iter().filter(|r| r.table == table).collect();
        let max = in_table
            .iter()
            .flat_map(|r| [Some(r.ours.median), r.raw.as_ref().map(|s| s.median)])
            .flatten()
            .fold(1.0, f64::max);
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold">{table} (events/s, scale to {})</text>"#,
            fmt_num(max)
        );
        y += 10.0;
        for r in in_table {
            let scale = (width - label_w - 120.0) / max;
            let _ = writeln!(
                body,
                r#"<text x="10" y="{}" font-size="11">{} · {}</text>"#,
                y + 11.0,
                r.engine,
                r.case
            );
            let color = if r.engine == "sqlite" {
                "#3572A5"
            } else {
                "#B7410E"
            };
            let _ = writeln!(
                body,
                r#"<rect x="{label_w}" y="{y}" width="{:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{}" font-size="10">{}</text>"#,
                r.ours.median * scale,
                bar_h - 3.0,
                label_w + r.ours.median * scale + 4.0,
                y + 9.0,
                fmt_num(r.ours.median)
            );
            y += bar_h;
            if let Some(raw) = &r.raw {
                let _ = writeln!(
                    body,
                    r#"<rect x="{label_w}" y="{y}" width="{:.1}" height="{}" fill="{color}" fill-opacity="0.35"/><text x="{:.1}" y="{}" font-size="10">raw {}</text>"#,
                    raw.median * scale,
                    bar_h - 3.0,
                    label_w + raw.median * scale + 4.0,
                    y + 9.0,
                    fmt_num(raw.median)
                );
                y += bar_h;
            }
            y += 4.0;
        }
        y += 16.0;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14">EventLite write throughput: ours (solid) vs raw engine (light)</text>{body}</svg>"#,
        y + 10.0
    )
}
