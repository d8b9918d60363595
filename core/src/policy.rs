//! The cache policy and the durability level.

use std::time::Duration;

/// How `EventStore` caches events by id and transactions by correlation id.
///
/// Entries live at most `ttl` and at most `max_size` are kept (least recently used go first).
/// The cache never serves stale data: events are immutable and an append evicts the
/// transaction of every correlation it touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CachePolicy {
    /// Whether to cache at all.
    pub enabled: bool,
    /// The most entries kept.
    pub max_size: usize,
    /// How long an entry is served after it was cached.
    pub ttl: Duration,
}

impl Default for CachePolicy {
    /// The upstream default: on, 1,000 entries, 5 minutes.
    fn default() -> Self {
        CachePolicy::balanced()
    }
}

impl CachePolicy {
    /// No cache (the guide's write-optimised setting).
    pub fn disabled() -> Self {
        CachePolicy {
            enabled: false,
            ..CachePolicy::balanced()
        }
    }

    /// The guide's write-heavy setting: caching off, so writes pay nothing for it.
    pub fn write_optimized() -> Self {
        CachePolicy::disabled()
    }

    /// The guide's balanced setting: 1,000 entries for 5 minutes.
    pub fn balanced() -> Self {
        CachePolicy {
            enabled: true,
            max_size: 1_000,
            ttl: Duration::from_secs(300),
        }
    }

    /// The guide's query-optimised setting: 5,000 entries for 10 minutes.
    pub fn query_optimized() -> Self {
        CachePolicy {
            enabled: true,
            max_size: 5_000,
            ttl: Duration::from_secs(600),
        }
    }

    /// The guide's read-heavy setting: 10,000 entries for 30 minutes.
    pub fn read_optimized() -> Self {
        CachePolicy {
            enabled: true,
            max_size: 10_000,
            ttl: Duration::from_secs(1_800),
        }
    }
}

/// What a successful append promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// The append is on stable storage when the call returns (SQLite `synchronous=FULL`, redb
    /// `Durability::Immediate`): it survives a process crash and a power loss.
    #[default]
    Immediate,
    /// Faster appends that may lose the last commits, within a window each engine documents:
    /// SQLite (WAL + `synchronous=NORMAL`) loses nothing on a process crash and may lose the
    /// commits since the last checkpoint on a power loss; redb loses at most its configured
    /// number of commits (or milliseconds) on either.
    Relaxed,
}
