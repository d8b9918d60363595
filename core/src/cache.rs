//! The query cache behind `get_cached` and `transaction_cached`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::event::Event;
use crate::policy::CachePolicy;
use crate::spi::CommitListener;

/// A snapshot of the cache's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheStats {
    /// Whether caching is on.
    pub enabled: bool,
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that went to the backend.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 when nothing was looked up.
    pub hit_rate: f64,
    /// Entries held now.
    pub size: usize,
    /// The most entries held.
    pub max_size: usize,
    /// How long an entry is served.
    pub ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Event(u64),
    Transaction(String),
}

#[derive(Debug, Clone)]
enum Value {
    Event(Arc<Event>),
    /// A transaction, with the engine's count of commits from elsewhere when it was read.
    Transaction(u64, Arc<[Event]>),
}

/// LRU with a TTL stamp per entry. Events are immutable, so an event entry is never stale; a
/// transaction entry is evicted by every commit the engine publishes to its correlation (from
/// any store over the same engine, see [`CommitListener`]), and an epoch counter keeps a read
/// that raced with such a commit from caching what it read; commits from elsewhere (another
/// handle, another process) are found by the engine's count of them, checked before a cached
/// transaction is served.
#[derive(Debug)]
pub(crate) struct Cache {
    policy: CachePolicy,
    entries: Option<quick_cache::sync::Cache<Key, (i64, Value)>>,
    hits: AtomicU64,
    misses: AtomicU64,
    epoch: AtomicU64,
    // Makes "check epoch, insert" and "bump epoch, evict" mutually atomic.
    fill_lock: Mutex<()>,
}

impl Cache {
    pub(crate) fn new(policy: CachePolicy) -> Self {
        let entries = (policy.enabled && policy.max_size > 0)
            .then(|| quick_cache::sync::Cache::new(policy.max_size));
        Cache {
            policy,
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            fill_lock: Mutex::new(()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The entry under `key`, if it is younger than the TTL and `valid`; an entry that is not
    /// is dropped.
    fn lookup(&self, key: &Key, now: i64, valid: impl Fn(&Value) -> bool) -> Option<Value> {
        let entries = self.entries.as_ref()?;
        let ttl = i64::try_from(self.policy.ttl.as_millis()).unwrap_or(i64::MAX);
        match entries.get(key) {
            Some((stamp, value)) if now.saturating_sub(stamp) < ttl && valid(&value) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(value)
            }
            found => {
                if found.is_some() {
                    entries.remove(key);
                }
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub(crate) fn event(&self, id: u64, now: i64) -> Option<Arc<Event>> {
        match self.lookup(&Key::Event(id), now, |_| true)? {
            Value::Event(e) => Some(e),
            Value::Transaction(..) => None,
        }
    }

    pub(crate) fn put_event(&self, event: Arc<Event>, now: i64) {
        if let Some(entries) = &self.entries {
            entries.insert(Key::Event(event.id), (now, Value::Event(event)));
        }
    }

    /// The cached transaction, unless commits from elsewhere were found since it was read
    /// (`elsewhere` is the engine's count now).
    pub(crate) fn transaction(
        &self,
        correlation_id: &str,
        now: i64,
        elsewhere: u64,
    ) -> Option<Arc<[Event]>> {
        // Read before another handle or process appended: it may lack their events.
        let current =
            |v: &Value| matches!(v, Value::Transaction(read_at, _) if *read_at == elsewhere);
        match self.lookup(&Key::Transaction(correlation_id.to_owned()), now, current)? {
            Value::Transaction(_, t) => Some(t),
            Value::Event(_) => None,
        }
    }

    /// The epoch to pass to [`Cache::put_transaction`]; read it before reading the backend.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a transaction read after [`Cache::epoch`] gave `read_epoch` and the engine's
    /// count of commits from elsewhere was `elsewhere`.
    pub(crate) fn put_transaction(
        &self,
        correlation_id: &str,
        events: Arc<[Event]>,
        (read_epoch, elsewhere): (u64, u64),
        now: i64,
    ) {
        let Some(entries) = &self.entries else { return };
        let _guard = self.fill_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == read_epoch {
            entries.insert(
                Key::Transaction(correlation_id.to_owned()),
                (now, Value::Transaction(elsewhere, events)),
            );
        }
    }

    /// Called after an append committed.
    pub(crate) fn invalidate_transactions<'a>(&self, correlations: impl Iterator<Item = &'a str>) {
        let Some(entries) = &self.entries else { return };
        let _guard = self.fill_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for correlation_id in correlations {
            entries.remove(&Key::Transaction(correlation_id.to_owned()));
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let looked_up = hits + misses;
        CacheStats {
            enabled: self.enabled(),
            hits,
            misses,
            hit_rate: if looked_up == 0 {
                0.0
            } else {
                hits as f64 / looked_up as f64
            },
            size: self.entries.as_ref().map_or(0, |c| c.len()),
            max_size: self.policy.max_size,
            ttl: self.policy.ttl,
        }
    }
}

impl CommitListener for Cache {
    fn committed(&self, events: &[Event]) {
        if !self.enabled() {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        self.invalidate_transactions(
            events
                .iter()
                .map(|e| e.correlation_id.as_str())
                .filter(|c| seen.insert(*c)),
        );
    }
}
