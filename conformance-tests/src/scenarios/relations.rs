//! Relationship queries over correlation and causation: roots, descendants, ancestors,
//! siblings, cousins, depth, branches, orphans, influence, the critical path and the tree
//! report; wide and deep trees, and cycles in imported data.

use super::*;
use eventlite_core::spi::{EventLog, PendingEvent};

/// Writes events straight to the engine, unchecked, as an import of foreign data would: each
/// `(cmd, causation)` gets the next id, in correlation `group`.
fn imported<F: BackendFactory>(
    f: &Fixture<'_, F>,
    group: &str,
    events: &[(&str, Option<u64>)],
) -> Result<Vec<Event>> {
    let batch = events
        .iter()
        .map(|(cmd, cause)| {
            let mut p = PendingEvent::new(*cmd);
            p.correlation_id = group.to_owned();
            p.causation_id = *cause;
            p
        })
        .collect();
    Ok(f.backend().append(batch)?)
}

fn event_ids(related: &[eventlite_core::Related]) -> Vec<(u64, u32)> {
    related.iter().map(|r| (r.event.id, r.depth)).collect()
}

/// A small tree with two roots in one correlation, and a branch that leaves it:
///
/// ```text
/// 1 order            5 audit (joins the group, no cause)
/// ├── 2 paid
/// │   ├── 4 receipt
/// │   │   └── 7 archived
/// │   └── 6 points
/// └── 3 reserved
///     └── 8 shipped
///             └── 9 survey (another correlation)
/// ```
pub fn relations_of_a_tree<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let order = f.store(ev("order").correlation_id("g"))?;
    let paid = f.store(ev("paid").causation_id(order.id))?;
    let reserved = f.store(ev("reserved").causation_id(order.id))?;
    let receipt = f.store(ev("receipt").causation_id(paid.id))?;
    let audit = f.store(ev("audit").correlation_id("g"))?;
    let points = f.store(ev("points").causation_id(paid.id))?;
    let archived = f.store(ev("archived").causation_id(receipt.id))?;
    let shipped = f.store(ev("shipped").causation_id(reserved.id))?;
    let survey = f.store(
        ev("survey")
            .causation_id(shipped.id)
            .correlation_id("other"),
    )?;
    ensure!(ids(&f.roots("g")?) == vec![order.id, audit.id]);
    ensure!(f.roots("none")?.is_empty());
    ensure!(
        event_ids(&f.descendants(order.id)?)
            == vec![(2, 1), (3, 1), (4, 2), (6, 2), (8, 2), (7, 3), (9, 3)],
        "{:?}",
        event_ids(&f.descendants(order.id)?)
    );
    ensure!(f.influence(order.id)? == 7 && f.influence(archived.id)? == 0);
    ensure!(event_ids(&f.ancestors(survey.id)?) == vec![(8, 1), (3, 2), (1, 3)]);
    ensure!(f.ancestors(order.id)?.is_empty());
    ensure!(f.depth(archived.id)? == 3 && f.depth(order.id)? == 0);
    ensure!(ids(&f.siblings(paid.id)?) == vec![reserved.id]);
    ensure!(ids(&f.siblings(receipt.id)?) == vec![points.id]);
    ensure!(f.siblings(order.id)?.is_empty());
    ensure!(ids(&f.cousins(receipt.id)?) == vec![shipped.id]);
    ensure!(ids(&f.cousins(shipped.id)?) == vec![receipt.id, points.id]);
    ensure!(f.cousins(paid.id)?.is_empty());
    ensure!(
        f.branches("g")? == vec![vec![1, 2, 4, 7], vec![1, 2, 6], vec![1, 3, 8], vec![5]],
        "{:?}",
        f.branches("g")?
    );
    ensure!(ids(&f.critical_path("g")?) == vec![1, 2, 4, 7]);
    ensure!(f.critical_path("none")?.is_empty());
    let report = f.tree_report("g")?;
    let want = "#1 order\n  #2 paid\n    #4 receipt\n      #7 archived\n    #6 points\n  \
                #3 reserved\n    #8 shipped\n#5 audit\n";
    ensure!(report == want, "{report}");
    ensure!(f.orphans("g")?.is_empty());
    // Descendants are ordered by distance, then id, whatever order the parents came in:
    // 10 ← 11, 10 ← 12, 12 ← 13, 11 ← 14.
    imported(
        &f,
        "order",
        &[
            ("top", None),
            ("left", Some(10)),
            ("right", Some(10)),
            ("under-right", Some(12)),
            ("under-left", Some(11)),
        ],
    )?;
    ensure!(
        event_ids(&f.descendants(10)?) == vec![(11, 1), (12, 1), (13, 2), (14, 2)],
        "{:?}",
        event_ids(&f.descendants(10)?)
    );
    for missing in [
        f.descendants(99).err(),
        f.ancestors(99).err(),
        f.siblings(99).err(),
        f.depth(99).err(),
    ] {
        ensure!(matches!(missing, Some(Error::NotFound(_))), "{missing:?}");
    }
    Ok(())
}

/// Walks down the tree read each event's children through the causation index when it is on:
/// `explain` of such a read is no full scan.
pub fn children_reads_use_the_causation_index<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let root = f.store(ev("root"))?;
    f.store(ev("child").causation_id(root.id))?;
    let plan = f.explain(&Query::new(Filter::children_of(root.id), Order::IdAsc))?;
    if ctx.profile.causation_id {
        ensure!(
            plan.index == Some(IndexName::CausationId) && !plan.full_scan,
            "{plan:?}"
        );
    }
    ensure!(f.influence(root.id)? == 1);
    Ok(())
}

/// One event with many children (10,000 with the causation index, fewer without it, as each
/// child's children are then a scan), and a deep chain: no stack overflow, every answer right.
pub fn wide_and_deep_trees<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    let (wide, deep) = if ctx.profile.causation_id {
        (10_000u64, 10_000u64)
    } else {
        (300, 2_000)
    };
    let mut events: Vec<(&str, Option<u64>)> = vec![("root", None)];
    events.extend((0..wide).map(|_| ("leaf", Some(1))));
    imported(&f, "wide", &events)?;
    ensure!(f.influence(1)? == wide);
    ensure!(f.siblings(2)?.len() as u64 == wide - 1);
    ensure!(f.branches("wide")?.len() as u64 == wide);
    ensure!(f.critical_path("wide")?.len() == 2);
    // A chain: each event caused by the one before it.
    let first = f.last_id()? + 1;
    let chain: Vec<(&str, Option<u64>)> = (0..deep)
        .map(|k| ("link", (k > 0).then_some(first + k - 1)))
        .collect();
    imported(&f, "deep", &chain)?;
    let last = first + deep - 1;
    ensure!(f.depth(last)? as u64 == deep - 1);
    ensure!(f.ancestors(last)?.last().map(|r| r.event.id) == Some(first));
    ensure!(f.critical_path("deep")?.len() as u64 == deep);
    ensure!(f.branches("deep")? == vec![(first..=last).collect::<Vec<_>>()]);
    let report = f.tree_report("deep")?;
    ensure!(report.lines().count() as u64 == deep);
    let deepest = format!(
        "{}[depth {}] #{last} link",
        "  ".repeat(eventlite_core::REPORT_MAX_INDENT as usize),
        deep - 1
    );
    ensure!(
        report.lines().last() == Some(deepest.as_str()),
        "{:?}",
        report.lines().last()
    );
    ensure!(event_ids(&f.descendants(last - 3)?) == vec![(last - 2, 1), (last - 1, 2), (last, 3)]);
    Ok(())
}

/// Imported data can hold what the store refuses: a causation id that names no event (an
/// orphan), and a causation cycle, which every walk reports as `Corrupt` instead of looping.
pub fn orphans_and_cycles_in_imported_data<F: BackendFactory>(ctx: &Ctx<F>) -> Result<()> {
    let f = ctx.fixture()?;
    // 1 ← 2, and 3 names event 1,000, which does not exist.
    imported(&f, "g", &[("a", None), ("b", Some(1)), ("c", Some(1_000))])?;
    ensure!(ids(&f.orphans("g")?) == vec![3]);
    ensure!(ids(&f.roots("g")?) == vec![1, 3]);
    ensure!(f.depth(3)? == 0 && f.cousins(3)?.is_empty());
    // 4 → 6 → 5 → 4: each caused by the next.
    imported(
        &f,
        "loop",
        &[("x", Some(6)), ("y", Some(4)), ("z", Some(5))],
    )?;
    let corrupt = |r: std::result::Result<(), Error>| matches!(r, Err(Error::Corrupt { .. }));
    ensure!(corrupt(f.ancestors(4).map(drop)));
    ensure!(corrupt(f.descendants(4).map(drop)));
    ensure!(corrupt(f.depth(5).map(drop)));
    ensure!(corrupt(f.branches("loop").map(drop)));
    ensure!(corrupt(f.critical_path("loop").map(drop)));
    ensure!(corrupt(f.tree_report("loop").map(drop)));
    ensure!(corrupt(f.roots("loop").map(drop)));
    // An event hanging off the cycle: the error names the cycle's events, not the chain to it.
    imported(&f, "hanging", &[("w", Some(4))])?;
    let err = f.ancestors(7).map(drop);
    ensure!(
        matches!(&err, Err(Error::Corrupt { message, .. }) if message.contains("events 4, 5, 6") && !message.contains('7')),
        "{err:?}"
    );
    // An event caused by itself (8), and one it caused (9).
    imported(&f, "self", &[("s", Some(8)), ("t", Some(8))])?;
    ensure!(corrupt(f.siblings(8).map(drop)));
    ensure!(corrupt(f.cousins(8).map(drop)));
    ensure!(corrupt(f.cousins(9).map(drop)));
    ensure!(corrupt(f.ancestors(9).map(drop)));
    ensure!(corrupt(f.descendants(8).map(drop)));
    Ok(())
}
