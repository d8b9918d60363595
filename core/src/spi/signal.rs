//! [`CommitSignal`]: how an engine tells waiting subscriptions that the log grew.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::event::Event;
use crate::query::Filter;

/// Commit notifications from an engine to the subscriptions waiting on it.
///
/// Each subscription registers a [`Watcher`] with its filter. After a commit whose events it
/// has, an engine calls [`CommitSignal::publish`]: only the watchers that one of the events
/// matches are woken, and the others just learn that those ids hold nothing for them, so a
/// hundred idle subscribers cost an appender a filter check each, not a hundred wake-ups and
/// reads. For commits it did not make itself (another handle's, another process's, noticed in
/// [`Notifications::poll_commits`](crate::spi::Notifications::poll_commits)), it calls
/// [`CommitSignal::notify`], which wakes every watcher.
///
/// ```
/// use std::time::{Duration, Instant};
/// use eventlite_core::{Event, Filter};
/// use eventlite_core::spi::{CommitSignal, Wakeup};
///
/// let signal = CommitSignal::new();
/// let watcher = signal.watch(Filter::cmd("paid"), 0);
/// let seen = watcher.seen();
/// # let event = |id: u64, cmd: &str| Event { id, version: 1, datetime: 0, user: String::new(),
/// #     ip: String::new(), cmd: cmd.into(), data: "{}".into(), correlation_id: "c".into(),
/// #     causation_id: None, metadata: "{}".into(), stream: None, stream_version: None };
/// signal.publish(&[event(1, "placed")]); // not for this watcher: it is not woken...
/// assert_eq!(watcher.wait(seen, Instant::now()), Wakeup::TimedOut);
/// assert_eq!(watcher.covered(), 1); // ...but knows event 1 holds nothing for it.
/// signal.publish(&[event(2, "paid")]);
/// assert_eq!(watcher.wait(seen, Instant::now() + Duration::from_secs(5)), Wakeup::Woken);
/// ```
#[derive(Default)]
pub struct CommitSignal {
    state: Mutex<SignalState>,
}

impl std::fmt::Debug for CommitSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("CommitSignal")
            .field("watchers", &state.watchers.len())
            .field("listeners", &state.listeners.len())
            .field("head", &state.head)
            .field("closed", &state.closed)
            .finish()
    }
}

/// Told of every commit an engine publishes (a store's cache, which evicts what the commit
/// makes stale). It is called inside the commit's critical section (the engine's writer lock,
/// the group commit's turn): it must be quick and must not append to the store.
pub trait CommitListener: Send + Sync {
    /// `events` were just committed.
    fn committed(&self, events: &[Event]);
}

#[derive(Default)]
struct SignalState {
    watchers: Vec<Weak<Watcher>>,
    listeners: Vec<Weak<dyn CommitListener>>,
    /// The newest id published.
    head: u64,
    /// Events published so far.
    published: u64,
    /// Commits published so far (a group commit is one).
    commits: u64,
    closed: bool,
}

/// One subscription's registration with a [`CommitSignal`].
#[derive(Debug)]
pub struct Watcher {
    filter: Filter,
    state: Mutex<WatchState>,
    changed: Condvar,
}

#[derive(Debug)]
struct WatchState {
    /// Wake-ups so far (commits that may concern it, stops, closing).
    wakes: u64,
    /// Every event with an id at or below this is known to be read or not to match.
    covered: u64,
    closed: bool,
}

/// What a waiter had seen of its [`Watcher`] when it last looked at the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    wakes: u64,
}

/// Why [`Watcher::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// Something changed since the waiter looked: a commit that may concern it, or a stop.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// The engine closed: no commit will come.
    Closed,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only counters are changed under these locks; a poisoned one still holds valid counts.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CommitSignal {
    /// A new signal, shared between an engine and its subscriptions.
    pub fn new() -> Arc<Self> {
        Arc::new(CommitSignal::default())
    }

    /// Registers a watcher for the events `filter` selects, which has read (or skipped) every
    /// event up to `position`. It stays registered while it lives.
    pub fn watch(&self, filter: Filter, position: u64) -> Arc<Watcher> {
        let mut state = lock(&self.state);
        let watcher = Arc::new(Watcher {
            filter,
            state: Mutex::new(WatchState {
                wakes: 0,
                covered: position,
                closed: state.closed,
            }),
            changed: Condvar::new(),
        });
        state.watchers.retain(|w| w.strong_count() > 0);
        state.watchers.push(Arc::downgrade(&watcher));
        watcher
    }

    /// Registers `listener` for every published commit, while it lives.
    pub fn listen(&self, listener: &Arc<dyn CommitListener>) {
        let mut state = lock(&self.state);
        state.listeners.retain(|l| l.strong_count() > 0);
        state.listeners.push(Arc::downgrade(listener));
    }

    /// After a commit of `events`: tells the listeners, wakes the watchers one of the events
    /// matches and those that may have missed earlier commits, and tells the others that these
    /// ids hold nothing for them.
    ///
    /// `events` must be every event of one successful commit, in id order, with consecutive
    /// ids (a group commit publishes the whole group): watchers skip the ids it spans.
    pub fn publish(&self, events: &[Event]) {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return;
        };
        debug_assert_eq!(
            last.id - first.id + 1,
            events.len() as u64,
            "published events must be one commit's consecutive ids"
        );
        let mut state = lock(&self.state);
        state.head = state.head.max(last.id);
        state.published += events.len() as u64;
        state.commits += 1;
        state.listeners.retain(|l| match l.upgrade() {
            Some(listener) => {
                listener.committed(events);
                true
            }
            None => false,
        });
        state.watchers.retain(|w| {
            let Some(w) = w.upgrade() else { return false };
            let mut ws = lock(&w.state);
            let contiguous = ws.covered.saturating_add(1) >= first.id;
            if contiguous && !events.iter().any(|e| w.filter.matches(e)) {
                ws.covered = ws.covered.max(last.id);
            } else {
                ws.wakes += 1;
                w.changed.notify_all();
            }
            true
        });
    }

    /// After commits whose events are unknown (made elsewhere): wakes every watcher.
    pub fn notify(&self) {
        let state = lock(&self.state);
        for w in state.watchers.iter().filter_map(Weak::upgrade) {
            w.wake();
        }
    }

    /// Whether a watcher is registered and alive: an engine that learns of other processes'
    /// commits by listening (a connection of its own) need only listen then.
    pub fn watching(&self) -> bool {
        lock(&self.state)
            .watchers
            .iter()
            .any(|w| w.strong_count() > 0)
    }

    /// The newest id [`publish`](Self::publish)ed.
    pub fn head(&self) -> u64 {
        lock(&self.state).head
    }

    /// How many events were [`publish`](Self::publish)ed: with gap-free ids, a log holding more
    /// than that (plus what it held before) was appended to elsewhere.
    pub fn published(&self) -> u64 {
        lock(&self.state).published
    }

    /// How many commits were published so far: with group commit, fewer than the appends.
    pub fn commits(&self) -> u64 {
        lock(&self.state).commits
    }

    /// Marks the engine closed: waiters return [`Wakeup::Closed`] at once, now and later.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        for w in state.watchers.iter().filter_map(Weak::upgrade) {
            lock(&w.state).closed = true;
            w.changed.notify_all();
        }
    }
}

impl Watcher {
    /// What has happened so far: take it before reading the log, then [`wait`](Self::wait)
    /// for it to move, so that a commit or stop between the read and the wait is not slept
    /// through.
    pub fn seen(&self) -> Seen {
        Seen {
            wakes: lock(&self.state).wakes,
        }
    }

    /// Wakes the waiter (a stop).
    pub fn wake(&self) {
        lock(&self.state).wakes += 1;
        self.changed.notify_all();
    }

    /// Every event at or below this id is known to be read or not to match.
    pub fn covered(&self) -> u64 {
        lock(&self.state).covered
    }

    /// The subscription has read every event up to `position`.
    pub fn advance(&self, position: u64) {
        let mut state = lock(&self.state);
        state.covered = state.covered.max(position);
    }

    /// Waits until something past `seen` happens, `until` passes or the engine closes.
    pub fn wait(&self, seen: Seen, until: Instant) -> Wakeup {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return Wakeup::Closed;
            }
            if state.wakes != seen.wakes {
                return Wakeup::Woken;
            }
            let now = Instant::now();
            if now >= until {
                return Wakeup::TimedOut;
            }
            state = self
                .changed
                .wait_timeout(state, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(id: u64, cmd: &str) -> Event {
        Event {
            id,
            version: 1,
            datetime: 0,
            user: String::new(),
            ip: String::new(),
            cmd: cmd.into(),
            data: "{}".into(),
            correlation_id: "c".into(),
            causation_id: None,
            metadata: "{}".into(),
            stream: None,
            stream_version: None,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn a_commit_or_wake_before_the_wait_is_not_slept_through() {
        let signal = CommitSignal::new();
        let w = signal.watch(Filter::default(), 0);
        let seen = w.seen();
        signal.publish(&[event(1, "a")]);
        assert_eq!(w.wait(seen, far()), Wakeup::Woken);
        let seen = w.seen();
        w.wake();
        assert_eq!(w.wait(seen, far()), Wakeup::Woken);
        let seen = w.seen();
        signal.notify();
        assert_eq!(w.wait(seen, far()), Wakeup::Woken);
    }

    #[test]
    fn only_matching_or_possibly_missed_commits_wake_a_watcher() {
        let signal = CommitSignal::new();
        let w = signal.watch(Filter::cmd("b"), 0);
        let seen = w.seen();
        signal.publish(&[event(1, "a"), event(2, "a")]);
        assert_eq!(
            (w.wait(seen, Instant::now()), w.covered()),
            (Wakeup::TimedOut, 2)
        );
        // Ids 3..=4 were committed elsewhere and never published: 5 may not be all there is.
        signal.publish(&[event(5, "a")]);
        assert_eq!(w.wait(seen, far()), Wakeup::Woken);
        assert_eq!(w.covered(), 2);
        // Once the subscription read through 5, the next commit is contiguous again.
        w.advance(5);
        let seen = w.seen();
        signal.publish(&[event(6, "a"), event(7, "b")]);
        assert_eq!(w.wait(seen, far()), Wakeup::Woken);
        assert_eq!(signal.head(), 7);
    }

    #[test]
    fn closing_wakes_every_waiter_and_every_later_one() {
        let signal = CommitSignal::new();
        let w = signal.watch(Filter::default(), 0);
        let seen = w.seen();
        let waiter = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || w.wait(seen, far()))
        };
        signal.close();
        assert_eq!(waiter.join().ok(), Some(Wakeup::Closed));
        let later = signal.watch(Filter::default(), 0);
        assert_eq!(later.wait(later.seen(), far()), Wakeup::Closed);
    }

    #[test]
    fn dropped_watchers_are_forgotten() {
        let signal = CommitSignal::new();
        for _ in 0..10 {
            drop(signal.watch(Filter::default(), 0));
        }
        signal.publish(&[event(1, "a")]);
        assert!(lock(&signal.state).watchers.is_empty());
    }
}
