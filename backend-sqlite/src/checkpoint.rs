//! WAL checkpoints on a thread of their own.
//!
//! SQLite checkpoints in the connection that commits: once the log passes 1,000 pages, the
//! commit that crossed it also copies the log into the database file and syncs both. That
//! work lands on whichever append is unlucky: a large `store_bulk` would wait for the
//! checkpoint of its own pages (two more fsyncs and a copy of everything it wrote).
//!
//! Here, when one commit wrote [`THRESHOLD`] log pages or more itself (a large `store_bulk`),
//! the writer's WAL hook only asks a checkpointer thread, with its own connection, to run a
//! `PASSIVE` checkpoint, which never blocks readers or the writer. Durability is untouched: a
//! commit is durable when its log frames are synced, before the hook runs.
//!
//! When the log filled up over many small commits, the writer checkpoints inline as SQLite
//! does: that checkpoint completes at once, so the next commit starts the log over and
//! overwrites its blocks. Handed to the thread, the checkpoints of a stream of small commits
//! rarely complete between two of them, so the log would not start over and would keep
//! growing (and each fsync would also record the log file's new size). Should the checkpointer
//! fall behind, the writer checkpoints inline once the log passes [`BACKSTOP`] pages.

use std::ffi::{c_char, c_int, c_void};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{Connection, ffi};

/// Log pages past which the log is checkpointed (SQLite's own autocheckpoint); a commit that
/// wrote this many pages itself hands its checkpoint to the thread.
pub(crate) const THRESHOLD: c_int = 1_000;

/// Log pages past which the writer checkpoints itself (64 MiB of 4 KiB pages).
pub(crate) const BACKSTOP: c_int = 16_384;

#[derive(Debug, Default)]
struct State {
    /// Checkpoints asked for, and finished, since the start.
    asked: u64,
    done: u64,
    stop: bool,
}

/// What the writer's hook and the checkpointer share.
#[derive(Debug, Default)]
struct Signal {
    state: Mutex<State>,
    changed: Condvar,
    /// The log's size in pages after the previous commit.
    last_pages: AtomicI32,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; were it poisoned, its counters are still
        // consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ask(&self) {
        self.lock().asked += 1;
        self.changed.notify_all();
    }
}

/// The checkpointer thread of one writer connection, which it borrows for `'c`. Dropping it
/// takes its hook off the writer, then stops and joins the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer<'c> {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
    /// The writer whose WAL hook points at `signal`.
    writer: *mut ffi::sqlite3,
    borrows: PhantomData<&'c Connection>,
}

// SAFETY: `writer` is only used in `drop`, by whoever owns the writer connection this value
// borrows (the backend, behind its mutex); the rest is `Send` on its own.
unsafe impl Send for Checkpointer<'_> {}

impl<'c> Checkpointer<'c> {
    /// Starts a checkpointer on `conn` (a second connection to the writer's file) and hands
    /// `writer`'s checkpoints to it.
    pub(crate) fn start(writer: &'c Connection, conn: Connection) -> std::io::Result<Self> {
        let signal = Arc::new(Signal::default());
        let shared = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("eventlite-checkpoint".into())
            .spawn(move || run(&shared, &conn))?;
        // SAFETY: rusqlite hands out the handle of an open connection; we only pass it to
        // SQLite's own functions.
        let handle = unsafe { writer.handle() };
        // SAFETY: a valid connection handle; the context points into `signal`, which this
        // value keeps alive until `drop` has taken the hook off again, and the hook only reads
        // it.
        unsafe {
            ffi::sqlite3_wal_hook(
                handle,
                Some(hook),
                Arc::as_ptr(&signal).cast_mut().cast::<c_void>(),
            );
        }
        Ok(Checkpointer {
            signal,
            thread: Some(thread),
            writer: handle,
            borrows: PhantomData,
        })
    }

    /// Waits until the checkpointer has run every checkpoint asked for so far.
    pub(crate) fn wait(&self) {
        let mut state = self.signal.lock();
        while state.done < state.asked && !state.stop {
            state = self
                .signal
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Checkpointer<'_> {
    fn drop(&mut self) {
        // SAFETY: the writer connection is still open (this value borrows it); without a hook
        // SQLite goes back to no automatic checkpoints, and the file stays consistent.
        unsafe {
            ffi::sqlite3_wal_hook(self.writer, None, std::ptr::null_mut());
        }
        self.signal.lock().stop = true;
        self.signal.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has nothing to hand over; the file is consistent whatever
            // point a checkpoint stopped at.
            let _ = thread.join();
        }
    }
}

/// Called by SQLite after each commit of the writer, with the log's size in pages.
unsafe extern "C" fn hook(
    ctx: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: `ctx` is the `Signal` the `Checkpointer` keeps alive (see `start`).
    let signal = unsafe { &*ctx.cast::<Signal>() };
    let last = signal.last_pages.swap(pages, Ordering::Relaxed);
    match after_commit(last, pages) {
        Action::None => return ffi::SQLITE_OK,
        Action::Ask => {
            signal.ask();
            return ffi::SQLITE_OK;
        }
        Action::Inline => {}
    }
    // SAFETY: SQLite passes its own handle and database name; checkpointing from the hook is
    // what its default hook does. A busy result (the checkpointer is running) is fine: the
    // log is checkpointed either way.
    unsafe {
        ffi::sqlite3_wal_checkpoint_v2(
            db,
            name,
            ffi::SQLITE_CHECKPOINT_PASSIVE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
    ffi::SQLITE_OK
}

/// What the writer does about the log after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Nothing: the log is still small.
    None,
    /// Ask the checkpointer thread.
    Ask,
    /// Checkpoint in the committing connection, as SQLite's own hook does.
    Inline,
}

/// The decision, from the log's size in pages after the previous commit (`last`) and after
/// this one (`pages`).
fn after_commit(last: c_int, pages: c_int) -> Action {
    // A log smaller than before was started over: all of it is this commit's.
    let written = if pages >= last { pages - last } else { pages };
    if pages < THRESHOLD {
        Action::None
    } else if written >= THRESHOLD && pages < BACKSTOP {
        Action::Ask
    } else {
        Action::Inline
    }
}

fn run(signal: &Signal, conn: &Connection) {
    let mut state = signal.lock();
    loop {
        if state.stop {
            return;
        }
        if state.done < state.asked {
            let asked = state.asked;
            drop(state);
            // SAFETY: this thread's own connection. Errors are left alone: a checkpoint that
            // could not finish is retried at the next request, and the writer's backstop
            // bounds the log meanwhile.
            unsafe {
                ffi::sqlite3_wal_checkpoint_v2(
                    conn.handle(),
                    std::ptr::null(),
                    ffi::SQLITE_CHECKPOINT_PASSIVE,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
            state = signal.lock();
            state.done = asked;
            signal.changed.notify_all();
            continue;
        }
        state = signal
            .changed
            .wait(state)
            .unwrap_or_else(|e| e.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_log_is_left_alone() {
        assert_eq!(after_commit(0, 1), Action::None);
        assert_eq!(after_commit(0, THRESHOLD - 1), Action::None);
        // A log that was started over and is small again.
        assert_eq!(after_commit(THRESHOLD * 3, 5), Action::None);
    }

    #[test]
    fn only_a_commit_that_wrote_a_threshold_itself_is_handed_over() {
        assert_eq!(after_commit(0, THRESHOLD), Action::Ask);
        assert_eq!(after_commit(10, THRESHOLD + 10), Action::Ask);
        // The log was started over by this commit, which wrote all of it.
        assert_eq!(after_commit(THRESHOLD * 2, THRESHOLD + 1), Action::Ask);
        // Small commits that took the log past the threshold checkpoint inline, so that the
        // next commit starts the log over.
        assert_eq!(after_commit(THRESHOLD - 1, THRESHOLD), Action::Inline);
        assert_eq!(
            after_commit(THRESHOLD * 5, THRESHOLD * 5 + 3),
            Action::Inline
        );
    }

    #[test]
    fn past_the_backstop_the_writer_checkpoints_itself() {
        // However much this commit wrote: the checkpointer has fallen behind, or one commit
        // alone wrote that much.
        assert_eq!(after_commit(BACKSTOP - THRESHOLD, BACKSTOP), Action::Inline);
        assert_eq!(after_commit(0, BACKSTOP), Action::Inline);
        assert_eq!(after_commit(0, BACKSTOP - 1), Action::Ask);
    }
}
