//! Group commit: appends from many threads share one transaction and one sync.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Mutex, MutexGuard};
use std::thread::Thread;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::spi::{PendingEvent, StreamVersions};

/// The queue of writers of one engine: appends from many threads share one transaction and
/// one sync.
///
/// A writer queues its batch. If no commit is under way, it leads one at once, with every
/// batch queued by then (a writer alone commits at once: no added delay); otherwise it waits,
/// and the batches that queued up while a commit was syncing go together in the next one. So
/// the disk's sync rate caps the rate of commits, not of appends.
///
/// The engine commits a group with [`GroupCommit::append`]'s closure: it checks each batch on
/// its own (a batch whose stream expectation fails is [rejected](GroupEntry::reject) and
/// stored not at all, the others go on), stores the rest with consecutive ids in queue order,
/// commits once, publishes the group's events once, and hands each writer its events with
/// [`finish_group`]. An error of the commit itself reaches every writer of the group, except
/// [`Error::InvalidEvent`] (an engine's own limit on a value): the group is then committed
/// again one batch at a time, and only the refused batch's writer gets it.
#[derive(Debug, Default)]
pub struct GroupCommit {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Batches waiting for a commit, in arrival order, with their writers' tickets and
    /// threads (woken one by one when a group is done: the next leader first, then the
    /// group's writers).
    waiting: Vec<(u64, Vec<PendingEvent>, Option<Claim>, Thread)>,
    /// Whether a writer is committing a group now.
    leading: bool,
    next_ticket: u64,
    /// Outcomes for writers whose batch a leader committed.
    done: HashMap<u64, Result<Vec<Event>>>,
}

/// A batch that releases a parked event: it is stored only if the waiting record `id` is
/// still open and not expired at `at`, and the same transaction closes the record as released
/// (see [`WaitingStore::release_waiting`](crate::spi::WaitingStore::release_waiting)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The waiting record.
    pub id: u64,
    /// The release's time (ms since the epoch): the record's `closed_at`, and what its expiry
    /// is compared with.
    pub at: i64,
}

/// One writer's batch in a group, as the engine's commit sees it.
#[derive(Debug)]
pub struct GroupEntry {
    batch: Vec<PendingEvent>,
    len: usize,
    rejected: Option<Error>,
    claim: Option<Claim>,
    /// A release whose record was no longer open: nothing stored, and no error either.
    claim_closed: bool,
}

impl GroupEntry {
    /// The batch, in the writer's order.
    pub fn batch(&self) -> &[PendingEvent] {
        &self.batch
    }

    /// Takes the batch out (to turn it into events once stored). Only once the group's
    /// transaction has committed: a commit that fails with [`Error::InvalidEvent`] is made
    /// again batch by batch, from the same entries.
    pub fn take_batch(&mut self) -> Vec<PendingEvent> {
        std::mem::take(&mut self.batch)
    }

    /// Fails this writer alone (its stream expectation, say): none of its batch is stored.
    pub fn reject(&mut self, error: Error) {
        self.rejected = Some(error);
    }

    /// Whether the batch was rejected (or is a release of a record no longer open).
    pub fn is_rejected(&self) -> bool {
        self.rejected.is_some() || self.claim_closed
    }

    /// The waiting record this batch releases, if it is a release: the engine stores the
    /// batch only if the record is open (else [`reject_claim`](Self::reject_claim)s it), and
    /// closes the record in the same transaction.
    pub fn claim(&self) -> Option<Claim> {
        self.claim
    }

    /// Rejects a release whose record was closed (or expired) before this transaction: the
    /// writer learns that someone else released it, and nothing is stored.
    pub fn reject_claim(&mut self) {
        self.claim_closed = true;
    }
}

/// Hands the stored events of a group back to its writers: `events` holds, in order, the
/// events of every entry not rejected. The first such entry keeps `events`' allocation (a
/// writer alone gets it whole).
pub fn finish_group(entries: &mut [GroupEntry], mut events: Vec<Event>) -> Vec<Result<Vec<Event>>> {
    debug_assert_eq!(
        events.len(),
        entries
            .iter()
            .filter(|e| !e.is_rejected())
            .map(|e| e.len)
            .sum::<usize>(),
        "a group's events must be those of its accepted entries"
    );
    let first_accepted = entries.iter().position(|e| !e.is_rejected());
    let mut out: Vec<Result<Vec<Event>>> = Vec::with_capacity(entries.len());
    // From the back, so that each split takes a tail and the first keeps the rest.
    for (i, entry) in entries.iter_mut().enumerate().rev() {
        out.push(match entry.rejected.take() {
            Some(error) => Err(error),
            // No events, which no stored release has: `GroupCommit::release` answers `None`.
            None if entry.claim_closed => Ok(Vec::new()),
            None if Some(i) == first_accepted => Ok(std::mem::take(&mut events)),
            None => Ok(events.split_off(events.len().saturating_sub(entry.len))),
        });
    }
    out.reverse();
    out
}

/// The events of a group's stored entries, in order: each entry (by index, with its first id
/// and stream versions) turned into events. The first keeps its allocation.
pub fn group_events(
    entries: &mut [GroupEntry],
    stored: impl IntoIterator<Item = (usize, u64, Vec<Option<u64>>)>,
) -> Vec<Event> {
    let mut events = Vec::new();
    for (i, first, stream_versions) in stored {
        let batch = PendingEvent::into_events(entries[i].take_batch(), first, &stream_versions);
        if events.is_empty() {
            events = batch;
        } else {
            events.extend(batch);
        }
    }
    events
}

/// A batch of a group to store: its index in the group, its first id, and its events' stream
/// versions.
pub type Numbered = (usize, u64, Vec<Option<u64>>);

/// Checks each batch of a group against its streams' versions, as the batches before it leave
/// them ([`StreamVersions`]), and numbers the batches that pass with consecutive ids from
/// `last + 1`, in queue order. A batch whose expectation fails is
/// [rejected](GroupEntry::reject) alone, and so is one whose ids would pass `max_id`
/// ([`Error::StorageFull`]); a release of a record that an earlier batch of the group
/// releases finds it closed ([`GroupEntry::reject_claim`]); any other error (reading a
/// stream's version, say) fails the group. `stored(stream)` is a stream's version in the
/// store, asked once per stream.
///
/// Returns, for each batch to store, its index, first id and stream versions (what
/// [`group_events`] takes).
pub fn number_group(
    entries: &mut [GroupEntry],
    last: u64,
    max_id: u64,
    stored: impl FnMut(&str) -> Result<Option<u64>>,
) -> Result<Vec<Numbered>> {
    let mut stored = stored;
    let mut versions = StreamVersions::new();
    let mut numbered = Vec::with_capacity(entries.len());
    let mut claimed = HashSet::new();
    let mut next = last + 1;
    for (i, entry) in entries.iter_mut().enumerate() {
        // A batch rejected before numbering (a release whose record closed) takes no versions.
        if entry.is_rejected() {
            continue;
        }
        if entry.claim.is_some_and(|c| claimed.contains(&c.id)) {
            entry.reject_claim();
            continue;
        }
        let len = entry.batch().len() as u64;
        // Before the stream check, which would count the batch's events in its streams'
        // versions for the batches after it.
        if next.saturating_add(len.saturating_sub(1)) > max_id {
            let left = max_id.saturating_sub(next - 1);
            entry.reject(Error::storage_full(format!(
                "event ids exhausted: {left} left, {len} needed"
            )));
            continue;
        }
        match versions.check_batch(&entry.batch, &mut stored) {
            Ok(stream_versions) => {
                // Released by this batch: closed for the later ones.
                claimed.extend(entry.claim.map(|c| c.id));
                numbered.push((i, next, stream_versions));
                next += len;
            }
            Err(e @ Error::Conflict { .. }) => entry.rejected = Some(e),
            Err(e) => return Err(e),
        }
    }
    Ok(numbered)
}

/// Commits a group with `commit`. A group that fails on one batch's content
/// ([`Error::InvalidEvent`]: an engine's own limit, which the store's checks before the queue
/// cannot know) is committed again one batch at a time, so that only the writer whose batch
/// the engine refuses gets the error. That error is raised before the engine commits, so the
/// failed group stored nothing.
fn commit_isolating(
    mut commit: impl FnMut(&mut [GroupEntry]) -> Result<Vec<Result<Vec<Event>>>>,
    entries: &mut [GroupEntry],
) -> Result<Vec<Result<Vec<Event>>>> {
    match commit(entries) {
        Err(Error::InvalidEvent { .. }) if entries.len() > 1 => Ok(entries
            .iter_mut()
            .map(|entry| {
                // What the failed group's checks decided is decided again.
                entry.rejected = None;
                entry.claim_closed = false;
                match commit(std::slice::from_mut(entry)) {
                    Ok(mut one) if one.len() == 1 => one.remove(0),
                    Ok(_) => Err(Error::Internal("a group commit lost an outcome".into())),
                    Err(e) => Err(e),
                }
            })
            .collect()),
        outcome => outcome,
    }
}

impl GroupCommit {
    /// An empty queue.
    pub fn new() -> Self {
        GroupCommit::default()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; the queue stays consistent if something did.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `batch` in a group commit and returns its stored events (or its own error).
    ///
    /// `commit` runs on whichever writer leads the group, with the group's entries in queue
    /// order; it returns one outcome per entry (see [`finish_group`]), or an error for the
    /// whole group (an I/O error, say), which every writer of the group gets. Engines return
    /// [`Error::InvalidEvent`] for a value they cannot hold, before anything is committed:
    /// the batches are then committed one at a time, so that error reaches its writer alone.
    pub fn append(
        &self,
        batch: Vec<PendingEvent>,
        commit: impl FnMut(&mut [GroupEntry]) -> Result<Vec<Result<Vec<Event>>>>,
    ) -> Result<Vec<Event>> {
        self.append_claiming(batch, None, commit)
    }

    /// [`append`](Self::append) of a batch that releases the waiting record of `claim`: the
    /// engine's commit sees the claim on its entry ([`GroupEntry::claim`]). A release whose
    /// record was closed first answers `Ok(None)`.
    pub fn release(
        &self,
        batch: Vec<PendingEvent>,
        claim: Claim,
        commit: impl FnMut(&mut [GroupEntry]) -> Result<Vec<Result<Vec<Event>>>>,
    ) -> Result<Option<Vec<Event>>> {
        if batch.is_empty() {
            return Err(Error::InvalidArgument("a release needs an event".into()));
        }
        let events = self.append_claiming(batch, Some(claim), commit)?;
        Ok((!events.is_empty()).then_some(events))
    }

    fn append_claiming(
        &self,
        batch: Vec<PendingEvent>,
        claim: Option<Claim>,
        commit: impl FnMut(&mut [GroupEntry]) -> Result<Vec<Result<Vec<Event>>>>,
    ) -> Result<Vec<Event>> {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue
            .waiting
            .push((ticket, batch, claim, std::thread::current()));
        loop {
            if let Some(outcome) = queue.done.remove(&ticket) {
                return outcome;
            }
            if !queue.leading {
                break;
            }
            // Woken by the leader of this writer's group, or to lead the next one; a stray
            // wake-up just looks again.
            drop(queue);
            std::thread::park();
            queue = self.lock();
        }
        // Lead: commit everything queued so far, this writer's batch among it.
        queue.leading = true;
        let group = std::mem::take(&mut queue.waiting);
        drop(queue);
        let mut tickets = Vec::with_capacity(group.len());
        let mut entries = Vec::with_capacity(group.len());
        for (t, batch, claim, thread) in group {
            tickets.push((t, thread));
            let len = batch.len();
            entries.push(GroupEntry {
                batch,
                len,
                rejected: None,
                claim,
                claim_closed: false,
            });
        }
        let committed = catch_unwind(AssertUnwindSafe(|| commit_isolating(commit, &mut entries)));
        let internal = |why: &str| -> Vec<Result<Vec<Event>>> {
            tickets
                .iter()
                .map(|_| Err(Error::Internal(why.into())))
                .collect()
        };
        let mut outcomes = match committed {
            Ok(Ok(per_entry)) if per_entry.len() == tickets.len() => per_entry,
            Ok(Ok(_)) => internal("a group commit lost an outcome"),
            // Every writer of the group gets the same failure, its cause in reach.
            Ok(Err(e)) => {
                let e = std::sync::Arc::new(e);
                tickets.iter().map(|_| Err(Error::shared(&e))).collect()
            }
            Err(panic) => {
                let mut all = internal("the group commit's leader panicked");
                if let Some(i) = tickets.iter().position(|(t, _)| *t == ticket) {
                    tickets.remove(i);
                    drop(all.remove(i));
                }
                self.hand_over(tickets, all);
                resume_unwind(panic);
            }
        };
        // This writer's outcome is among them: the leader is one of the group.
        let mine = match tickets.iter().position(|(t, _)| *t == ticket) {
            Some(i) => {
                tickets.remove(i);
                outcomes.remove(i)
            }
            None => Err(Error::Internal("a group commit lost its leader".into())),
        };
        self.hand_over(tickets, outcomes);
        mine
    }

    /// Gives the group's outcomes to its waiting writers and wakes them, and the writer that
    /// leads next, if one is waiting.
    fn hand_over(&self, group: Vec<(u64, Thread)>, outcomes: Vec<Result<Vec<Event>>>) {
        let mut queue = self.lock();
        let mut threads = Vec::with_capacity(group.len() + 1);
        // The next leader first: its commit is what everyone waits for.
        threads.extend(queue.waiting.first().map(|(_, _, _, t)| t.clone()));
        for ((ticket, thread), outcome) in group.into_iter().zip(outcomes) {
            queue.done.insert(ticket, outcome);
            threads.push(thread);
        }
        queue.leading = false;
        drop(queue);
        for thread in threads {
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake engine: stores each group with consecutive ids, rejects batches whose first cmd
    /// is "bad", and counts its commits.
    fn commit_with(
        next: &Mutex<u64>,
        commits: &AtomicUsize,
        entries: &mut [GroupEntry],
    ) -> Result<Vec<Result<Vec<Event>>>> {
        commits.fetch_add(1, Ordering::Relaxed);
        let mut id = next.lock().unwrap();
        let mut events = Vec::new();
        for entry in entries.iter_mut() {
            if entry.batch()[0].cmd == "bad" {
                entry.reject(Error::InvalidArgument("bad".into()));
                continue;
            }
            let first = *id + 1;
            *id += entry.batch().len() as u64;
            let n = entry.batch().len();
            events.extend(PendingEvent::into_events(
                entry.take_batch(),
                first,
                &vec![None; n],
            ));
        }
        Ok(finish_group(entries, events))
    }

    #[test]
    fn concurrent_writers_each_get_their_own_events_and_share_commits() {
        let group = Arc::new(GroupCommit::new());
        let next = Arc::new(Mutex::new(0u64));
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (group, next, commits) = (group.clone(), next.clone(), commits.clone());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..50 {
                        let n = 1 + (t + i) % 3;
                        let cmd = if (t + i) % 11 == 0 { "bad" } else { "ok" };
                        let batch: Vec<PendingEvent> = (0..n)
                            .map(|k| PendingEvent::new(format!("{cmd}-{t}-{i}-{k}")))
                            .map(|mut p| {
                                if cmd == "bad" {
                                    p.cmd = "bad".into();
                                }
                                p
                            })
                            .collect();
                        let got =
                            group.append(batch, |entries| commit_with(&next, &commits, entries));
                        match (cmd, got) {
                            ("bad", Err(Error::InvalidArgument(_))) => {}
                            ("ok", Ok(events)) => {
                                assert_eq!(events.len(), n);
                                for (k, e) in events.iter().enumerate() {
                                    assert_eq!(e.cmd, format!("ok-{t}-{i}-{k}"));
                                }
                                assert!(events.windows(2).all(|w| w[1].id == w[0].id + 1));
                                mine.extend(events.into_iter().map(|e| e.id));
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut ids: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        ids.sort_unstable();
        let stored = *next.lock().unwrap();
        assert_eq!(
            ids,
            (1..=stored).collect::<Vec<_>>(),
            "every id once, gap-free"
        );
        assert!(commits.load(Ordering::Relaxed) <= 16 * 50);
    }

    #[test]
    fn a_failed_commit_reaches_every_writer_of_its_group_and_the_queue_goes_on() {
        let group = GroupCommit::new();
        let err = group
            .append(vec![PendingEvent::new("x")], |_| {
                Err(Error::storage_full("disk full"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::StorageFull { .. }), "{err}");
        let next = Mutex::new(0);
        let commits = AtomicUsize::new(0);
        let ok = group
            .append(vec![PendingEvent::new("y")], |e| {
                commit_with(&next, &commits, e)
            })
            .unwrap();
        assert_eq!(ok[0].id, 1);
    }

    fn entry(cmd: &str) -> GroupEntry {
        GroupEntry {
            batch: vec![PendingEvent::new(cmd)],
            len: 1,
            rejected: None,
            claim: None,
            claim_closed: false,
        }
    }

    /// A fake engine whose limit refuses a whole transaction holding a "huge" event, after it
    /// has decided about the group's batches (rejected them, found their releases' records
    /// closed) when `decides` is set.
    fn commit_refusing_huge(
        next: &Mutex<u64>,
        commits: &AtomicUsize,
        decides: bool,
        entries: &mut [GroupEntry],
    ) -> Result<Vec<Result<Vec<Event>>>> {
        if entries.iter().any(|e| e.batch()[0].cmd == "huge") {
            commits.fetch_add(1, Ordering::Relaxed);
            for entry in entries.iter_mut().filter(|_| decides) {
                entry.reject(Error::InvalidArgument("decided in the failed group".into()));
                entry.reject_claim();
            }
            return Err(Error::invalid_event("row too big for the engine"));
        }
        commit_with(next, commits, entries)
    }

    #[test]
    fn a_batch_the_engine_refuses_fails_its_writer_alone() {
        let (next, commits) = (Mutex::new(0), AtomicUsize::new(0));
        let mut entries = vec![entry("a"), entry("huge"), entry("bad"), entry("b")];
        let outcomes = commit_isolating(
            |e: &mut [GroupEntry]| commit_refusing_huge(&next, &commits, false, e),
            &mut entries,
        )
        .unwrap();
        let ids: Vec<_> = outcomes
            .iter()
            .map(|o| o.as_ref().map(|events| events[0].id))
            .collect();
        assert!(matches!(ids[0], Ok(1)), "{ids:?}");
        assert!(matches!(ids[1], Err(Error::InvalidEvent { .. })), "{ids:?}");
        assert!(matches!(ids[2], Err(Error::InvalidArgument(_))), "{ids:?}");
        assert!(matches!(ids[3], Ok(2)), "{ids:?}");
        // The group once, then each batch alone.
        assert_eq!(commits.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn what_the_failed_group_decided_is_decided_again_batch_by_batch() {
        let (next, commits) = (Mutex::new(0), AtomicUsize::new(0));
        let mut entries = vec![entry("a"), entry("huge"), entry("b")];
        let outcomes = commit_isolating(
            |e: &mut [GroupEntry]| commit_refusing_huge(&next, &commits, true, e),
            &mut entries,
        )
        .unwrap();
        let ids: Vec<_> = outcomes
            .iter()
            .map(|o| o.as_ref().map(|events| events.first().map(|e| e.id)))
            .collect();
        assert!(matches!(ids[0], Ok(Some(1))), "{ids:?}");
        assert!(matches!(ids[1], Err(Error::InvalidEvent { .. })), "{ids:?}");
        assert!(matches!(ids[2], Ok(Some(2))), "{ids:?}");
    }

    #[test]
    fn a_group_failing_for_another_cause_is_not_committed_again() {
        let calls = AtomicUsize::new(0);
        let mut entries = vec![entry("a"), entry("b")];
        let err = commit_isolating(
            |_: &mut [GroupEntry]| {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(Error::storage_full("disk full"))
            },
            &mut entries,
        )
        .unwrap_err();
        assert!(matches!(err, Error::StorageFull { .. }), "{err}");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    /// A batch of `n` events on `stream`, expecting `expected`.
    fn stream_entry(stream: &str, n: usize, expected: crate::ExpectedVersion) -> GroupEntry {
        let batch: Vec<PendingEvent> = (0..n)
            .map(|_| {
                let mut p = PendingEvent::new("deposited");
                p.stream = Some(stream.into());
                p.expected = expected;
                p
            })
            .collect();
        GroupEntry {
            len: batch.len(),
            batch,
            ..entry("unused")
        }
    }

    #[test]
    fn a_batch_the_ids_cannot_hold_leaves_its_streams_as_they_were() {
        use crate::ExpectedVersion;
        // One id left: the first batch (two events) does not fit, the second (one) does.
        let mut entries = vec![
            stream_entry("s", 2, ExpectedVersion::Any),
            stream_entry("s", 1, ExpectedVersion::NoStream),
        ];
        let numbered = number_group(&mut entries, 9, 10, |_| Ok(None)).unwrap();
        assert!(
            matches!(entries[0].rejected, Some(Error::StorageFull { .. })),
            "{:?}",
            entries[0].rejected
        );
        // The stream is still empty for the second batch: version 1, not 3.
        assert!(entries[1].rejected.is_none(), "{:?}", entries[1].rejected);
        assert_eq!(numbered, vec![(1, 10, vec![Some(1)])]);
    }

    #[test]
    fn a_record_goes_to_the_first_release_stored_not_the_first_queued() {
        use crate::ExpectedVersion;
        let claim = Claim { id: 7, at: 0 };
        // The first release's stream expectation fails; the second release of the same
        // record is then the one stored; the third finds it released.
        let mut entries = vec![
            stream_entry("s", 1, ExpectedVersion::Exact(5)),
            entry("b"),
            entry("c"),
        ];
        for entry in &mut entries {
            entry.claim = Some(claim);
        }
        let numbered = number_group(&mut entries, 0, u64::MAX, |_| Ok(None)).unwrap();
        assert!(
            matches!(entries[0].rejected, Some(Error::Conflict { .. })),
            "{:?}",
            entries[0].rejected
        );
        assert!(!entries[1].is_rejected());
        assert_eq!(numbered, vec![(1, 1, vec![None])]);
        assert!(entries[2].claim_closed && entries[2].rejected.is_none());
    }

    #[test]
    fn a_panicking_leader_releases_the_queue() {
        let group = GroupCommit::new();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            group.append(vec![PendingEvent::new("x")], |_| panic!("engine bug"))
        }));
        assert!(caught.is_err());
        let next = Mutex::new(0);
        let commits = AtomicUsize::new(0);
        let ok = group.append(vec![PendingEvent::new("y")], |e| {
            commit_with(&next, &commits, e)
        });
        assert!(ok.is_ok());
    }
}
