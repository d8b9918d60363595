//! Relationship queries over correlation and causation (upstream's `EventQueryEngine`): the
//! roots, branches, critical path and tree of a correlation, and an event's descendants,
//! ancestors, siblings, cousins, depth and influence.
//!
//! Every walk is iterative (a causation chain 100,000 long is 100,000 steps, not 100,000
//! stack frames) and remembers where it has been: a causation cycle, which only imported data
//! can hold (the store refuses a causation id that does not exist yet), is
//! [`Error::Corrupt`], never an endless loop. Walks down the tree read each event's children
//! through the causation index; a correlation's tree is read through the correlation index.
//!
//! Two views, on purpose: the correlation-wide answers ([`EventStore::roots`],
//! [`EventStore::branches`], [`EventStore::critical_path`], [`EventStore::tree_report`]) see
//! one correlation, where an event whose cause lies in another correlation is a root; the
//! per-event walks ([`EventStore::ancestors`], [`EventStore::depth`],
//! [`EventStore::descendants`]) follow causation wherever it leads, across correlations. A
//! cycle that spans correlations is therefore reported by the walks, not by the correlation
//! views. An unknown event id is [`Error::NotFound`] for every per-event walk.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::store::EventStore;

/// Levels of indentation in [`EventStore::tree_report`]; deeper lines say their depth.
pub const REPORT_MAX_INDENT: u32 = 32;

/// An event related to another, and how far apart they are (1: a child or the parent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Related {
    /// The related event.
    pub event: Event,
    /// Causation steps between the two events.
    pub depth: u32,
}

/// The events of one correlation as a causation forest, built in memory from one read of the
/// correlation index.
struct Forest {
    events: HashMap<u64, Event>,
    /// Children of each event within the correlation, in id order.
    children: HashMap<u64, Vec<u64>>,
    /// Events with no cause within the correlation, in id order.
    roots: Vec<u64>,
}

impl Forest {
    fn new(events: Vec<Event>) -> Result<Forest> {
        let ids: HashSet<u64> = events.iter().map(|e| e.id).collect();
        let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut roots = Vec::new();
        for e in &events {
            match e.causation_id {
                Some(parent) if ids.contains(&parent) => {
                    children.entry(parent).or_default().push(e.id)
                }
                _ => roots.push(e.id),
            }
        }
        let forest = Forest {
            events: events.into_iter().map(|e| (e.id, e)).collect(),
            children,
            roots,
        };
        // Every event must hang from a root; those that do not sit on a cycle.
        let reached = forest.preorder().count();
        if reached != forest.events.len() {
            let mut stuck: Vec<u64> = forest.events.keys().copied().collect();
            let seen: HashSet<u64> = forest.preorder().map(|(id, _)| id).collect();
            stuck.retain(|id| !seen.contains(id));
            stuck.sort_unstable();
            return Err(cycle(&stuck));
        }
        Ok(forest)
    }

    fn kids(&self, id: u64) -> &[u64] {
        self.children.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Every event reachable from the roots, depth first in id order, with its depth (roots
    /// 0). Each event's children are listed once, so this ends even on bad data.
    fn preorder(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let mut stack: Vec<(u64, u32)> = self.roots.iter().rev().map(|&r| (r, 0)).collect();
        let mut seen: HashSet<u64> = HashSet::new();
        std::iter::from_fn(move || {
            loop {
                let (id, depth) = stack.pop()?;
                if !seen.insert(id) {
                    continue;
                }
                stack.extend(self.kids(id).iter().rev().map(|&c| (c, depth + 1)));
                return Some((id, depth));
            }
        })
    }

    /// The events of `ids` (every id in the forest came from its events).
    fn events_of(&self, ids: impl IntoIterator<Item = u64>) -> Vec<Event> {
        ids.into_iter()
            .filter_map(|id| self.events.get(&id).cloned())
            .collect()
    }
}

fn cycle(ids: &[u64]) -> Error {
    let shown: Vec<String> = ids.iter().take(10).map(u64::to_string).collect();
    let more = if ids.len() > 10 { ", …" } else { "" };
    Error::corrupt(format!(
        "causation cycle among events {}{more}",
        shown.join(", ")
    ))
}

impl<B: Backend> EventStore<B> {
    fn forest(&self, correlation_id: &str) -> Result<Forest> {
        Forest::new(self.transaction(correlation_id)?)
    }

    fn must_get(&self, id: u64) -> Result<Event> {
        self.get(id)?
            .ok_or_else(|| Error::NotFound(format!("event {id}")))
    }

    /// The events of a correlation that no other event of it caused, in id order: its first
    /// event, and any event that joined the group without a cause in it.
    pub fn roots(&self, correlation_id: &str) -> Result<Vec<Event>> {
        let forest = self.forest(correlation_id)?;
        Ok(forest.events_of(forest.roots.iter().copied()))
    }

    /// Every event that `id` caused, directly or not, across correlations, with its distance
    /// (children 1), ordered by distance, then id.
    pub fn descendants(&self, id: u64) -> Result<Vec<Related>> {
        self.must_get(id)?;
        let mut out = Vec::new();
        let mut seen = HashSet::from([id]);
        let mut queue = VecDeque::from([(id, 0u32)]);
        while let Some((parent, depth)) = queue.pop_front() {
            for child in self.children(parent)? {
                if !seen.insert(child.id) {
                    // Each event has one cause, so only the start can be met again.
                    return Err(cycle(&[child.id]));
                }
                queue.push_back((child.id, depth + 1));
                out.push(Related {
                    event: child,
                    depth: depth + 1,
                });
            }
        }
        // Breadth first gives each level in its parents' order; the answer is by id within it.
        out.sort_by_key(|r| (r.depth, r.event.id));
        Ok(out)
    }

    /// How many events `id` caused, directly or not.
    pub fn influence(&self, id: u64) -> Result<u64> {
        Ok(self.descendants(id)?.len() as u64)
    }

    /// The events that led to `id`, nearest first (the parent has depth 1), up to the first
    /// event of its causation chain, across correlations. A causation id that names no stored
    /// event (imported data) ends the walk.
    pub fn ancestors(&self, id: u64) -> Result<Vec<Related>> {
        let event = self.must_get(id)?;
        let mut out: Vec<Related> = Vec::new();
        let mut path = vec![id];
        let mut seen = HashSet::from([id]);
        let mut next = event.causation_id;
        while let Some(parent) = next {
            if !seen.insert(parent) {
                // The chain came back to `parent`: the cycle is the path from there on.
                let from = path.iter().position(|&p| p == parent).unwrap_or(0);
                let mut on_cycle = path.split_off(from);
                on_cycle.sort_unstable();
                return Err(cycle(&on_cycle));
            }
            path.push(parent);
            let Some(event) = self.get(parent)? else {
                break;
            };
            next = event.causation_id;
            let depth = out.len() as u32 + 1;
            out.push(Related { event, depth });
        }
        Ok(out)
    }

    /// How many causation steps `id` is from the first event of its causation chain, across
    /// correlations (an event without a cause: 0); the length of [`ancestors`](Self::ancestors).
    pub fn depth(&self, id: u64) -> Result<u32> {
        Ok(self.ancestors(id)?.len() as u32)
    }

    /// The other events with the same cause as `id`, in id order (none for an event without
    /// a cause).
    pub fn siblings(&self, id: u64) -> Result<Vec<Event>> {
        let event = self.must_get(id)?;
        let Some(parent) = event.causation_id else {
            return Ok(Vec::new());
        };
        if parent == id {
            return Err(cycle(&[id]));
        }
        let mut siblings = self.children(parent)?;
        siblings.retain(|e| e.id != id);
        Ok(siblings)
    }

    /// The events whose parent is a sibling of `id`'s parent (same grandparent, another
    /// parent), in id order.
    pub fn cousins(&self, id: u64) -> Result<Vec<Event>> {
        let event = self.must_get(id)?;
        let Some(parent) = event.causation_id else {
            return Ok(Vec::new());
        };
        if parent == id {
            return Err(cycle(&[id]));
        }
        let mut cousins = Vec::new();
        for uncle in self.siblings(parent).or_else(|e| match e {
            // A parent missing from imported data has no siblings to speak of.
            Error::NotFound(_) => Ok(Vec::new()),
            e => Err(e),
        })? {
            if uncle.id == id {
                // `id` is its own grandparent.
                return Err(cycle(&[id, parent]));
            }
            cousins.extend(self.children(uncle.id)?);
        }
        cousins.sort_by_key(|e| e.id);
        Ok(cousins)
    }

    /// The events of a correlation whose causation id names no stored event (possible only
    /// in imported data), in id order.
    pub fn orphans(&self, correlation_id: &str) -> Result<Vec<Event>> {
        let events = self.transaction(correlation_id)?;
        let ids: HashSet<u64> = events.iter().map(|e| e.id).collect();
        let mut orphans = Vec::new();
        for event in events {
            // A cause within the correlation exists; only causes elsewhere are looked up.
            if let Some(parent) = event.causation_id
                && !ids.contains(&parent)
                && self.get(parent)?.is_none()
            {
                orphans.push(event);
            }
        }
        Ok(orphans)
    }

    /// Every path from a root of the correlation to an event that caused nothing in it, as
    /// ids, in depth-first order. The answer holds each leaf's whole path, so its size is the
    /// sum of the leaves' depths (a long chain with a leaf off every link is quadratic).
    pub fn branches(&self, correlation_id: &str) -> Result<Vec<Vec<u64>>> {
        let forest = self.forest(correlation_id)?;
        let mut out = Vec::new();
        let mut path: Vec<u64> = Vec::new();
        for (id, depth) in forest.preorder() {
            path.truncate(depth as usize);
            path.push(id);
            if forest.kids(id).is_empty() {
                out.push(path.clone());
            }
        }
        Ok(out)
    }

    /// The longest causation chain of the correlation, root first (the first such chain in
    /// depth-first order when several are as long); empty for an unknown correlation.
    pub fn critical_path(&self, correlation_id: &str) -> Result<Vec<Event>> {
        let forest = self.forest(correlation_id)?;
        // The deepest event first; its path is then read back along its causes, once.
        let mut deepest: Option<(u32, u64)> = None;
        for (id, depth) in forest.preorder() {
            if deepest.is_none_or(|(d, _)| depth > d) {
                deepest = Some((depth, id));
            }
        }
        let mut path = Vec::new();
        let mut next = deepest.map(|(_, id)| id);
        while let Some(id) = next {
            path.push(id);
            next = forest
                .events
                .get(&id)
                .and_then(|e| e.causation_id)
                .filter(|p| forest.events.contains_key(p) && path.len() <= forest.events.len());
        }
        path.reverse();
        Ok(forest.events_of(path))
    }

    /// The correlation's causation tree as text: one line per event (`#id cmd`), indented
    /// two spaces per level under its cause, roots first. Past [`REPORT_MAX_INDENT`] levels
    /// the indentation stops growing and the line says its depth (`[depth 1234] #id cmd`), so
    /// that a long chain's report grows with its length, not with its square.
    ///
    /// ```
    /// use eventlite_core::{EventStore, MemoryBackend, NewEvent};
    /// let store = EventStore::new(MemoryBackend::new());
    /// let order = store.store(NewEvent::new("order_placed").correlation_id("o-1"))?;
    /// let paid = store.store(NewEvent::new("paid").causation_id(order.id))?;
    /// store.store(NewEvent::new("shipped").causation_id(paid.id))?;
    /// assert_eq!(store.tree_report("o-1")?, "#1 order_placed\n  #2 paid\n    #3 shipped\n");
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn tree_report(&self, correlation_id: &str) -> Result<String> {
        let forest = self.forest(correlation_id)?;
        let mut out = String::new();
        for (id, depth) in forest.preorder() {
            let cmd = forest.events.get(&id).map_or("", |e| e.cmd.as_str());
            for _ in 0..depth.min(REPORT_MAX_INDENT) {
                out.push_str("  ");
            }
            if depth > REPORT_MAX_INDENT {
                out.push_str(&format!("[depth {depth}] "));
            }
            out.push_str(&format!("#{id} {cmd}\n"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::spi::{EventLog, PendingEvent};
    use crate::{EventStore, MemoryBackend};

    /// A causation chain 100,000 long: every walk is a loop, not a recursion.
    #[test]
    fn a_chain_100_000_long_does_not_overflow_the_stack() {
        let store = EventStore::new(MemoryBackend::new());
        let n = 100_000u64;
        let chain = (0..n)
            .map(|k| {
                let mut p = PendingEvent::new("link");
                p.correlation_id = "deep".into();
                p.causation_id = (k > 0).then_some(k);
                p
            })
            .collect();
        store.backend().append(chain).unwrap();
        assert_eq!(u64::from(store.depth(n).unwrap()), n - 1);
        assert_eq!(store.critical_path("deep").unwrap().len() as u64, n);
        assert_eq!(store.branches("deep").unwrap()[0].len() as u64, n);
        assert_eq!(store.tree_report("deep").unwrap().lines().count() as u64, n);
        assert_eq!(store.roots("deep").unwrap().len(), 1);
    }
}
