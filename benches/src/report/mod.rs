//! The reports of a run: its Markdown tables, the targets checked against its figures, a bar
//! chart of the write tables, and its JSON.

pub mod json;
pub mod markdown;
pub mod svg;
pub mod targets;

/// A figure rounded to a whole number, with a comma between each three digits.
pub(crate) fn fmt_num(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The distinct items, in first-seen order.
pub(crate) fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

/// A run of 1,000 events on both engines with nothing measured: the reports' tests record
/// the rows they need.
#[cfg(test)]
pub(crate) fn bench(scale: bool) -> crate::harness::Bench {
    crate::harness::Bench::new(crate::harness::Config {
        quick: false,
        events: 1_000,
        runs: 3,
        engines: vec![crate::Engine::Sqlite, crate::Engine::Redb],
        scale,
        only: Vec::new(),
    })
}
