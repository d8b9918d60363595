//! Copying a store into another, of any engine: every event with its id, correlation and
//! causation, stream and version, and the positions and snapshots, then a check of the copy.

use eventlite_core::{
    Backend, Error, Event, EventStore, ExpectedVersion, NewEvent, Result, StreamOptions,
};

use crate::progress::{Progress, Step};

/// Events read and stored at a time.
const BATCH: u64 = 1_000;

/// What [`copy`] copied (and checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CopyReport {
    /// Events copied.
    pub events: u64,
    /// Saved positions copied.
    pub positions: u64,
    /// Snapshots copied.
    pub snapshots: u64,
}

/// Copies `src` into the empty store `dst`, then checks the copy: both logs event by event,
/// the positions and snapshots, and the copy's own [`EventStore::verify`].
///
/// Ids, datetimes, correlation and causation ids, streams with their versions, positions (with
/// their times) and snapshots (with theirs) are kept. Give `dst` no event size limit of its
/// own (`max_event_size(usize::MAX)`): the source already took every event. What `dst` holds
/// when the copy fails part way is for the caller to remove; the error says what went wrong.
/// Wait conditions' parked events and [`eventlite_core::FailedEvent`]s are not copied.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use eventlite::NewEvent;
///
/// let dir = tempfile::tempdir()?;
/// let src = eventlite::open(dir.path().join("events.db"))?;
/// let first = src.store(NewEvent::new("order_placed"))?;
/// src.store(NewEvent::new("paid").causation_id(first.id))?;
/// let dst = eventlite::open(dir.path().join("copy.db"))?;
/// let report = eventlite::convert::copy(&src, &dst)?;
/// assert_eq!(report.events, 2);
/// assert_eq!(dst.get(2)?.and_then(|e| e.causation_id), Some(1));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn copy<A: Backend, B: Backend>(
    src: &EventStore<A>,
    dst: &EventStore<B>,
) -> Result<CopyReport> {
    copy_with(src, dst, |_| {})
}

/// [`copy`], reporting its progress to `progress`: [`Step::Copying`] then
/// [`Step::Comparing`], in events, after every batch.
pub fn copy_with<A: Backend, B: Backend>(
    src: &EventStore<A>,
    dst: &EventStore<B>,
    mut progress: impl FnMut(Progress),
) -> Result<CopyReport> {
    if dst.last_id()? != 0 {
        return Err(Error::InvalidArgument(
            "the store to copy into must be empty".into(),
        ));
    }
    let total = src.last_id()?;
    let mut report = CopyReport::default();
    let mut store = |part: &[Event]| -> Result<()> {
        let stored = dst.store_bulk(part.iter().map(copy_of).collect())?;
        if let Some((a, b)) = part.iter().zip(&stored).find(|(a, b)| a.id != b.id) {
            return Err(Error::corrupt(format!(
                "event {} was stored as {}: the source's ids have gaps",
                a.id, b.id
            )));
        }
        report.events += stored.len() as u64;
        Ok(())
    };
    for batch in src.read_all(StreamOptions::new().batch_size(BATCH))? {
        let batch = batch?;
        // An event caused by one of the same append needs its parent stored first: cut the
        // batch before each such event.
        let mut start = 0;
        for (i, e) in batch.iter().enumerate() {
            if i > start && e.causation_id.is_some_and(|p| p >= batch[start].id) {
                store(&batch[start..i])?;
                start = i;
            }
        }
        store(&batch[start..])?;
        let copied = batch.last().map_or(0, |e| e.id);
        progress(Progress::new(
            Step::Copying,
            copied,
            Some(total.max(copied)),
        ));
    }
    let copied = report.events;
    progress(Progress::new(Step::Copying, copied, Some(copied)));
    for position in src.positions()? {
        // Through the engine: the position's own time, not now.
        dst.backend()
            .save_position(&position.name, position.position, position.updated_at)?;
        report.positions += 1;
    }
    for name in src.snapshot_names()? {
        for snapshot in src.list_snapshots(&name, u64::MAX, 0)? {
            dst.backend().put_snapshot(snapshot)?;
            report.snapshots += 1;
        }
    }
    // The check: both logs, event by event, then the copy's own integrity.
    let differs =
        |what: String| Error::corrupt(format!("the copy differs from the source: {what}"));
    let mut theirs = dst.read_all(StreamOptions::new().batch_size(BATCH))?;
    let mut compared = 0u64;
    for batch in src.read_all(StreamOptions::new().batch_size(BATCH))? {
        let ours = theirs.next().transpose()?.unwrap_or_default();
        let batch = batch?;
        if ours != batch {
            let first = batch
                .iter()
                .zip(&ours)
                .find(|(a, b)| a != b)
                .map_or(0, |(a, _)| a.id);
            return Err(differs(format!("first at event {first}")));
        }
        compared += batch.len() as u64;
        progress(Progress::new(
            Step::Comparing,
            compared,
            Some(copied.max(compared)),
        ));
    }
    if compared != copied || theirs.next().is_some() {
        return Err(differs("other events".into()));
    }
    progress(Progress::new(Step::Comparing, compared, Some(compared)));
    if dst.positions()? != src.positions()? {
        return Err(differs("positions".into()));
    }
    let mut compared_snapshots = 0u64;
    for name in src.snapshot_names()? {
        let ours = src.list_snapshots(&name, u64::MAX, 0)?;
        if dst.list_snapshots(&name, u64::MAX, 0)? != ours {
            return Err(differs(format!("snapshots of {name:?}")));
        }
        compared_snapshots += ours.len() as u64;
    }
    if compared_snapshots != report.snapshots || dst.snapshot_names()? != src.snapshot_names()? {
        return Err(differs("other snapshots".into()));
    }
    let verified = dst.verify()?;
    if !verified.is_ok() {
        let problems: Vec<String> = verified.problems.iter().map(ToString::to_string).collect();
        return Err(Error::corrupt(format!(
            "the copy does not verify: {}",
            problems.join("; ")
        )));
    }
    Ok(report)
}

/// The event `e` as an append to a new store writes it again: every field, its stream
/// version expected exactly.
fn copy_of(e: &Event) -> NewEvent {
    let mut event = NewEvent::new(e.cmd.clone())
        .version(e.version)
        .recorded_at(e.datetime)
        .user(e.user.clone())
        .ip(e.ip.clone())
        .data_json(e.data.clone())
        .metadata_json(e.metadata.clone())
        .correlation_id(e.correlation_id.clone());
    if let Some(parent) = e.causation_id {
        event = event.causation_id(parent);
    }
    if let (Some(stream), Some(v)) = (&e.stream, e.stream_version) {
        event = event.stream(stream.clone(), ExpectedVersion::Exact(v.saturating_sub(1)));
    }
    event
}
