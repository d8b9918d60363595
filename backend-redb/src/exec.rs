//! Index maintenance and the query executor: plan an access path, scan its key range, and page
//! without loading more than the page (when the index's order is the query's order) or more than
//! `offset + limit` events (when it is not).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use eventlite_core::spi::{EventFields, PendingEvent, planner};
use eventlite_core::{
    Cursor, Error, Event, Filter, IndexConfig, IndexName, Order, Query, QueryPlan, Result,
};
use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::{
    EVENTS, IDX_CAUSATION, IDX_CMD, IDX_CORRELATION, IDX_CORRELATION_CMD, IDX_DATETIME, IDX_USER,
    IDX_USER_DATETIME, IDX_VERSION, RedbBackend, STREAM_IDX, codec, map_err,
};

// ---- index maintenance ---------------------------------------------------------------------

/// Creates an index's table if it does not exist.
pub(crate) fn touch_index(txn: &WriteTransaction, name: IndexName) -> Result<()> {
    index_entries(txn, name, std::iter::empty())
}

/// Inserts the index entries of a batch appended from id `first` on.
pub(crate) fn index_batch(
    txn: &WriteTransaction,
    name: IndexName,
    first: u64,
    batch: &[PendingEvent],
    stream_versions: &[Option<u64>],
) -> Result<()> {
    index_entries(
        txn,
        name,
        batch
            .iter()
            .zip(stream_versions)
            .enumerate()
            .map(|(i, (p, sv))| p.fields(first + i as u64, *sv)),
    )
}

/// Inserts the entries of events into one index, opening its table once.
pub(crate) fn index_entries<'a>(
    txn: &WriteTransaction,
    name: IndexName,
    entries: impl Iterator<Item = EventFields<'a>>,
) -> Result<()> {
    fn fill<'e, K: redb::Key + 'static>(
        txn: &WriteTransaction,
        def: TableDefinition<K, ()>,
        entries: impl Iterator<Item = EventFields<'e>>,
        key: impl for<'k> Fn(&'k EventFields<'e>) -> Option<K::SelfType<'k>>,
    ) -> Result<()> {
        let mut table = txn.open_table(def).map_err(map_err)?;
        for fields in entries {
            if let Some(k) = key(&fields) {
                table.insert(k, ()).map_err(map_err)?;
            }
        }
        Ok(())
    }
    match name {
        IndexName::CorrelationId => fill(txn, IDX_CORRELATION, entries, |f| {
            Some((f.correlation_id, f.id))
        }),
        IndexName::CausationId => fill(txn, IDX_CAUSATION, entries, |f| {
            f.causation_id.map(|c| (c, f.id))
        }),
        IndexName::Cmd => fill(txn, IDX_CMD, entries, |f| Some((f.cmd, f.datetime, f.id))),
        IndexName::User => fill(txn, IDX_USER, entries, |f| Some((f.user, f.datetime, f.id))),
        IndexName::Datetime => fill(txn, IDX_DATETIME, entries, |f| Some((f.datetime, f.id))),
        IndexName::Version => fill(txn, IDX_VERSION, entries, |f| Some((f.version, f.id))),
        IndexName::CorrelationCmd => fill(txn, IDX_CORRELATION_CMD, entries, |f| {
            Some((f.correlation_id, f.cmd, f.id))
        }),
        IndexName::UserDatetime => fill(txn, IDX_USER_DATETIME, entries, |f| {
            Some((f.user, f.datetime, f.id))
        }),
    }
}

// ---- planning ------------------------------------------------------------------------------

/// How the executor reaches the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Index(IndexName),
    /// The stream table (kept for optimistic concurrency, always present).
    Stream,
    /// The events table itself, within the filter's id range.
    Primary,
}

/// The order an access path yields ids in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Natural {
    /// By id (reversed: by id descending).
    Id,
    /// By (datetime, id) (reversed: newest first).
    Datetime,
    /// Neither.
    Unordered,
}

const CORR: u8 = 1;
const CAUS: u8 = 2;
const CMD: u8 = 4;
const USER: u8 = 8;
const TIME: u8 = 16;
const VERS: u8 = 32;
const STREAM: u8 = 64;

fn filter_fields(f: &Filter) -> u8 {
    let mut m = 0;
    let mut set = |present: bool, bit: u8| {
        if present {
            m |= bit;
        }
    };
    set(f.correlation_id.is_some(), CORR);
    set(f.causation_id.is_some(), CAUS);
    set(f.cmd.is_some(), CMD);
    set(f.user.is_some(), USER);
    set(f.datetime_from.is_some() || f.datetime_to.is_some(), TIME);
    set(f.version.is_some(), VERS);
    set(f.stream.is_some(), STREAM);
    m
}

/// The filter fields an access path's keys decide (ids are in every key).
fn key_fields(access: Access) -> u8 {
    match access {
        Access::Primary => 0,
        Access::Stream => STREAM,
        Access::Index(n) => match n {
            IndexName::CorrelationId => CORR,
            IndexName::CausationId => CAUS,
            IndexName::Cmd => CMD | TIME,
            IndexName::User | IndexName::UserDatetime => USER | TIME,
            IndexName::Datetime => TIME,
            IndexName::Version => VERS,
            IndexName::CorrelationCmd => CORR | CMD,
        },
    }
}

fn access(config: &IndexConfig, filter: &Filter) -> Access {
    match planner::choose_index(config, filter) {
        Some(name) => Access::Index(name),
        None if filter.stream.is_some() => Access::Stream,
        None => Access::Primary,
    }
}

fn natural(access: Access, filter: &Filter) -> Natural {
    match access {
        Access::Primary | Access::Stream => Natural::Id,
        Access::Index(n) => match n {
            IndexName::CorrelationId | IndexName::CausationId | IndexName::Version => Natural::Id,
            IndexName::CorrelationCmd if filter.cmd.is_some() => Natural::Id,
            IndexName::CorrelationCmd => Natural::Unordered,
            IndexName::Cmd | IndexName::User | IndexName::UserDatetime | IndexName::Datetime => {
                Natural::Datetime
            }
        },
    }
}

/// Whether the access path yields ids in the query's order (then pages stream).
fn in_order(natural: Natural, order: Order) -> bool {
    matches!(
        (natural, order),
        (Natural::Id, Order::IdAsc | Order::IdDesc) | (Natural::Datetime, Order::DatetimeDesc)
    )
}

/// Inclusive key bounds from the filter, narrowed by a cursor where the order allows.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    id_lo: u64,
    id_hi: u64,
    dt_lo: (i64, u64),
    dt_hi: (i64, u64),
}

impl Bounds {
    fn new(f: &Filter) -> Option<Self> {
        let b = Bounds {
            id_lo: f.id_from.unwrap_or(0),
            id_hi: f.id_to.unwrap_or(u64::MAX),
            dt_lo: (f.datetime_from.unwrap_or(i64::MIN), 0),
            dt_hi: (f.datetime_to.unwrap_or(i64::MAX), u64::MAX),
        };
        b.non_empty()
    }

    fn non_empty(self) -> Option<Self> {
        (self.id_lo <= self.id_hi && self.dt_lo <= self.dt_hi).then_some(self)
    }

    /// Moves the scan's start past `cursor`, for an access path in the query's order. Every
    /// pair that [`in_order`] accepts has its arm here, so the scan then leaves out the cursor
    /// and everything before it, and no event needs checking against the cursor again.
    fn after(mut self, natural: Natural, order: Order, c: Cursor) -> Option<Self> {
        match (natural, order) {
            (Natural::Id, Order::IdAsc) => self.id_lo = self.id_lo.max(c.id.checked_add(1)?),
            (Natural::Id, Order::IdDesc) => self.id_hi = self.id_hi.min(c.id.checked_sub(1)?),
            (Natural::Datetime, Order::DatetimeDesc) => {
                let before = match c.id.checked_sub(1) {
                    Some(id) => (c.datetime, id),
                    None => (c.datetime.checked_sub(1)?, u64::MAX),
                };
                self.dt_hi = self.dt_hi.min(before);
            }
            _ => {}
        }
        self.non_empty()
    }

    /// Whether the id bounds exclude nothing (then `has_id` is always true).
    fn any_id(&self) -> bool {
        self.id_lo == 0 && self.id_hi == u64::MAX
    }

    fn has_id(&self, id: u64) -> bool {
        id >= self.id_lo && id <= self.id_hi
    }
}

fn missing(field: &str) -> Error {
    Error::Internal(format!("the planner chose an index without its {field}"))
}

/// What a scan does with an index key.
enum Step {
    Yield(u64),
    Skip,
    Stop,
}

/// Visits one entry: its id, and its row bytes when the scan is over the events table itself.
/// Returns whether to go on.
/// Generic rather than `dyn`, so a count's visitor (one increment) inlines into the loop.
trait Visit: FnMut(u64, Option<&[u8]>) -> Result<bool> {}
impl<F: FnMut(u64, Option<&[u8]>) -> Result<bool>> Visit for F {}

/// How a scan hands entries over.
#[derive(Clone, Copy)]
struct Pass {
    /// Whether the visitor needs ids; without them, an index whose every entry in range
    /// matches is walked without decoding keys (a count the index answers alone).
    ids: bool,
    /// Leading matches to pass over unvisited: a covered query's offset. Where every entry
    /// in range matches they are passed over without decoding anything.
    skip: usize,
}

/// Walks one index table's range (borrowed, not owned, ranges: no per-entry reference
/// counting). `trivial`: `step` yields every entry (no id bounds to check), so it is only
/// needed for the id.
fn walk<K: redb::Key + 'static, V: Visit>(
    range: redb::Range<'_, K, ()>,
    rev: bool,
    step: impl for<'a> Fn(K::SelfType<'a>) -> Step,
    trivial: bool,
    pass: Pass,
    visit: &mut V,
) -> Result<()> {
    if rev {
        drive(range.rev(), step, trivial, pass, visit)
    } else {
        drive(range, step, trivial, pass, visit)
    }
}

type Entry<'r, K> =
    std::result::Result<(redb::AccessGuard<'r, K>, redb::AccessGuard<'r, ()>), redb::StorageError>;

fn drive<'r, K: redb::Key + 'static, V: Visit>(
    mut entries: impl Iterator<Item = Entry<'r, K>>,
    step: impl for<'a> Fn(K::SelfType<'a>) -> Step,
    trivial: bool,
    pass: Pass,
    visit: &mut V,
) -> Result<()> {
    let mut skip = pass.skip;
    if trivial {
        while skip > 0 {
            match entries.next() {
                Some(Err(e)) => return Err(map_err(e)),
                Some(Ok(_)) => {}
                None => return Ok(()),
            }
            skip -= 1;
        }
    }
    if trivial && !pass.ids {
        // A count the index answers alone: entries are only counted, never looked into.
        for entry in entries {
            // Checked where it lies: through `map_err` and `?`, each entry's two guards would be
            // moved into a new `Result`, a cost paid for every entry a count visits.
            if let Err(e) = entry {
                return Err(map_err(e));
            }
            if !visit(0, None)? {
                break;
            }
        }
        return Ok(());
    }
    for entry in entries {
        let (k, _) = match entry {
            Ok(kv) => kv,
            Err(e) => return Err(map_err(e)),
        };
        match step(k.value()) {
            Step::Yield(_) if skip > 0 => skip -= 1,
            Step::Yield(id) => {
                if !visit(id, None)? {
                    break;
                }
            }
            Step::Skip => {}
            Step::Stop => break,
        }
    }
    Ok(())
}

fn open<K: redb::Key + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, ()>,
) -> Result<redb::ReadOnlyTable<K, ()>> {
    txn.open_table(def).map_err(map_err)
}

/// Walks an access path within the bounds, in its natural order (reversed if `rev`). Without
/// `pass.ids` the visitor may be given 0 instead of ids; `pass.skip` matches are passed over.
fn scan<V: Visit>(
    txn: &ReadTransaction,
    access: Access,
    f: &Filter,
    b: Bounds,
    rev: bool,
    pass: Pass,
    visit: &mut V,
) -> Result<()> {
    let any_id = b.any_id();
    let text = |v: &Option<String>, what: &str| v.clone().ok_or_else(|| missing(what));
    let in_bounds = move |id: u64| {
        if b.has_id(id) {
            Step::Yield(id)
        } else {
            Step::Skip
        }
    };
    let name = match access {
        Access::Index(name) => name,
        Access::Stream if !rev && b.id_hi == u64::MAX && pass.skip == 0 => {
            // Loading an aggregate: an open-ended walk that stops at the next stream's first
            // key. A bounded range would compare every key with its end bound as well. (With
            // an offset, the bounded walk below passes keys over without decoding them.)
            let s = text(&f.stream, "stream")?;
            let range = open(txn, STREAM_IDX)?
                .range((s.as_str(), b.id_lo)..)
                .map_err(map_err)?;
            return walk(
                range,
                false,
                |k: (&str, u64)| match k.0 == s {
                    true => Step::Yield(k.1),
                    false => Step::Stop,
                },
                false,
                pass,
                visit,
            );
        }
        Access::Stream => {
            let s = text(&f.stream, "stream")?;
            let range = (s.as_str(), b.id_lo)..=(s.as_str(), b.id_hi);
            return walk(
                open(txn, STREAM_IDX)?.range(range).map_err(map_err)?,
                rev,
                |k: (&str, u64)| Step::Yield(k.1),
                true,
                pass,
                visit,
            );
        }
        Access::Primary => {
            let events = txn.open_table(EVENTS).map_err(map_err)?;
            let range = events.range(b.id_lo..=b.id_hi).map_err(map_err)?;
            let mut skip = pass.skip;
            let mut go = |entry: std::result::Result<_, redb::StorageError>| -> Result<bool> {
                let (k, v): (redb::AccessGuard<'_, u64>, redb::AccessGuard<'_, &[u8]>) = match entry
                {
                    Ok(kv) => kv,
                    Err(e) => return Err(map_err(e)),
                };
                if skip > 0 {
                    skip -= 1;
                    return Ok(true);
                }
                visit(k.value(), Some(v.value()))
            };
            if rev {
                for entry in range.rev() {
                    if !go(entry)? {
                        break;
                    }
                }
            } else {
                for entry in range {
                    if !go(entry)? {
                        break;
                    }
                }
            }
            return Ok(());
        }
    };
    match name {
        IndexName::CorrelationId => {
            let c = text(&f.correlation_id, "correlation_id")?;
            let range = (c.as_str(), b.id_lo)..=(c.as_str(), b.id_hi);
            walk(
                open(txn, IDX_CORRELATION)?.range(range).map_err(map_err)?,
                rev,
                |k: (&str, u64)| Step::Yield(k.1),
                true,
                pass,
                visit,
            )
        }
        IndexName::CausationId => {
            let c = f.causation_id.ok_or_else(|| missing("causation_id"))?;
            walk(
                open(txn, IDX_CAUSATION)?
                    .range((c, b.id_lo)..=(c, b.id_hi))
                    .map_err(map_err)?,
                rev,
                |k: (u64, u64)| Step::Yield(k.1),
                true,
                pass,
                visit,
            )
        }
        IndexName::Version => {
            let v = f.version.ok_or_else(|| missing("version"))?;
            walk(
                open(txn, IDX_VERSION)?
                    .range((v, b.id_lo)..=(v, b.id_hi))
                    .map_err(map_err)?,
                rev,
                |k: (u32, u64)| Step::Yield(k.1),
                true,
                pass,
                visit,
            )
        }
        IndexName::CorrelationCmd => {
            let c = text(&f.correlation_id, "correlation_id")?;
            match &f.cmd {
                Some(m) => {
                    let range =
                        (c.as_str(), m.as_str(), b.id_lo)..=(c.as_str(), m.as_str(), b.id_hi);
                    walk(
                        open(txn, IDX_CORRELATION_CMD)?
                            .range(range)
                            .map_err(map_err)?,
                        rev,
                        |k: (&str, &str, u64)| Step::Yield(k.2),
                        true,
                        pass,
                        visit,
                    )
                }
                None => {
                    let range = (c.as_str(), "", 0u64)..;
                    let step = |k: (&str, &str, u64)| {
                        if k.0 == c { in_bounds(k.2) } else { Step::Stop }
                    };
                    walk(
                        open(txn, IDX_CORRELATION_CMD)?
                            .range(range)
                            .map_err(map_err)?,
                        false,
                        step,
                        false,
                        pass,
                        visit,
                    )
                }
            }
        }
        IndexName::Datetime => walk(
            open(txn, IDX_DATETIME)?
                .range(b.dt_lo..=b.dt_hi)
                .map_err(map_err)?,
            rev,
            |k: (i64, u64)| in_bounds(k.1),
            any_id,
            pass,
            visit,
        ),
        IndexName::Cmd | IndexName::User | IndexName::UserDatetime => {
            let (def, key) = match name {
                IndexName::Cmd => (IDX_CMD, text(&f.cmd, "cmd")?),
                IndexName::User => (IDX_USER, text(&f.user, "user")?),
                _ => (IDX_USER_DATETIME, text(&f.user, "user")?),
            };
            let range = (key.as_str(), b.dt_lo.0, b.dt_lo.1)..=(key.as_str(), b.dt_hi.0, b.dt_hi.1);
            walk(
                open(txn, def)?.range(range).map_err(map_err)?,
                rev,
                |k: (&str, i64, u64)| in_bounds(k.2),
                any_id,
                pass,
                visit,
            )
        }
    }
}

// ---- execution -----------------------------------------------------------------------------

/// An event ranked by a query order, for the bounded heap.
struct Ranked(Order, Event);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.compare(&self.1, &other.1)
    }
}

/// Runs `f` on a visited entry's stored row: the bytes the scan handed over, or the row
/// looked up by id in the events table.
fn with_row<T>(
    events: &redb::ReadOnlyTable<u64, &'static [u8]>,
    id: u64,
    bytes: Option<&[u8]>,
    f: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    match bytes {
        Some(b) => f(b),
        None => {
            let row = events.get(id).map_err(map_err)?.ok_or_else(|| {
                Error::corrupt(format!("index names event {id}, which is missing"))
            })?;
            f(row.value())
        }
    }
}

/// The rows of the events an ascending walk of an index names, looked up by id: where the ids
/// run on consecutively (a stream appended in one go, a correlation's batch), the rows are
/// read along the events table instead of each looked up from its root.
struct Rows<'t> {
    events: &'t redb::ReadOnlyTable<u64, &'static [u8]>,
    /// A walk of the events table, and the id it yields next.
    run: Option<(redb::Range<'static, u64, &'static [u8]>, u64)>,
    /// The id looked up last.
    last: Option<u64>,
}

impl<'t> Rows<'t> {
    fn new(events: &'t redb::ReadOnlyTable<u64, &'static [u8]>) -> Self {
        Rows {
            events,
            run: None,
            last: None,
        }
    }

    /// Runs `f` on the row of event `id` (or on `bytes`, when the walk carried them).
    fn with<T>(
        &mut self,
        id: u64,
        bytes: Option<&[u8]>,
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        if bytes.is_some() {
            return with_row(self.events, id, bytes, f);
        }
        let follows = self.last.and_then(|l| l.checked_add(1)) == Some(id);
        self.last = Some(id);
        if follows && !matches!(&self.run, Some((_, next)) if *next == id) {
            self.run = Some((self.events.range(id..).map_err(map_err)?, id));
        }
        if let Some((range, next)) = self.run.as_mut().filter(|(_, next)| *next == id) {
            match range.next() {
                Some(Ok((k, v))) if k.value() == id => {
                    *next = id.saturating_add(1);
                    return f(v.value());
                }
                Some(Err(e)) => return Err(map_err(e)),
                // A gap: the lookup below says whether the event is missing.
                _ => self.run = None,
            }
        } else {
            self.run = None;
        }
        with_row(self.events, id, None, f)
    }
}

/// Loads stream `s` within `b`'s ids, oldest first, passing over its first `skip` events,
/// into `refill` until it holds `limit`: an aggregate load.
///
/// A stream appended in batches holds runs of consecutive ids. Once two of the index's keys
/// follow each other, the rows are read on along the events table for as long as each is the
/// stream's next version, and the index is sought again only past the run: a 1,000-event
/// batch costs a few index steps instead of 1,000. The rows decide what is the stream's (their
/// stream and version are checksummed with them): with an intact index, nothing is yielded
/// that it would not have named. (An entry missing from the index inside a run is filled
/// from the rows; `check_storage` reports it.)
fn load_stream(
    idx: &redb::ReadOnlyTable<(&'static str, u64), ()>,
    events: &redb::ReadOnlyTable<u64, &'static [u8]>,
    s: &str,
    b: Bounds,
    skip: usize,
    limit: usize,
    refill: &mut Refill<'_>,
) -> Result<()> {
    // Open-ended, the walk stops at the next stream's first key without comparing every key
    // with an end bound; a skip passes keys over undecoded, so it needs the bounded range.
    let keys_from = |lo: u64, bounded: bool| {
        match bounded {
            true => idx.range((s, lo)..=(s, b.id_hi)),
            false => idx.range((s, lo)..),
        }
        .map_err(map_err)
    };
    let bounded = b.id_hi != u64::MAX || skip > 0;
    let mut keys = keys_from(b.id_lo, bounded)?;
    for _ in 0..skip {
        match keys.next() {
            None => return Ok(()),
            Some(Err(e)) => return Err(map_err(e)),
            Some(Ok(_)) => {}
        }
    }
    let mut rows = Rows::new(events);
    let mut prev: Option<u64> = None;
    while refill.kept < limit {
        let id = match keys.next() {
            None => return Ok(()),
            Some(Err(e)) => return Err(map_err(e)),
            Some(Ok((k, _))) => match k.value() {
                (ks, id) if ks == s => id,
                _ => return Ok(()),
            },
        };
        let version = refill.load(&mut rows, id, None)?.stream_version;
        refill.keep();
        let follows = prev.and_then(|p| p.checked_add(1)) == Some(id);
        prev = Some(id);
        let (Some(mut version), true) = (version, follows) else {
            continue;
        };
        // A run: read on along the rows while each is the stream's next event.
        let Some(mut next) = id.checked_add(1) else {
            return Ok(());
        };
        let mut walk = events.range(next..).map_err(map_err)?;
        while refill.kept < limit && next <= b.id_hi {
            let (k, row) = match walk.next() {
                None => break,
                Some(Err(e)) => return Err(map_err(e)),
                Some(Ok(kv)) => kv,
            };
            if k.value() != next {
                break;
            }
            let Some(want) = version.checked_add(1) else {
                break;
            };
            // Decoded into the free slot and left there when it is not the stream's next
            // event. A row that fails to decode also ends the run: it may be another stream's,
            // and the index says whether this load needs it.
            let follows_on = refill
                .load(&mut rows, next, Some(row.value()))
                .is_ok_and(|e| e.stream.as_deref() == Some(s) && e.stream_version == Some(want));
            if !follows_on {
                break;
            }
            refill.keep();
            version = want;
            match next.checked_add(1) {
                Some(n) => next = n,
                None => return Ok(()),
            }
        }
        // Back to the index, past the run; a gap in the ids or another stream's row ends it.
        if refill.kept < limit && next <= b.id_hi {
            keys = keys_from(next, bounded)?;
        } else {
            return Ok(());
        }
        prev = None;
    }
    Ok(())
}

/// Decodes a visited entry (see [`with_row`]).
fn load(
    events: &redb::ReadOnlyTable<u64, &'static [u8]>,
    id: u64,
    bytes: Option<&[u8]>,
) -> Result<Event> {
    with_row(events, id, bytes, |row| codec::decode_row(id, row))
}

/// A query's results, written over the events a vector already holds.
struct Refill<'o> {
    out: &'o mut Vec<Event>,
    kept: usize,
}

impl Refill<'_> {
    /// Decodes a visited entry into the first slot past the kept events (reusing the event
    /// there, if any) and returns it.
    fn load(&mut self, rows: &mut Rows<'_>, id: u64, bytes: Option<&[u8]>) -> Result<&Event> {
        let (out, kept) = (&mut *self.out, self.kept);
        rows.with(id, bytes, |stored| match out.get_mut(kept) {
            Some(slot) => codec::decode_row_into(id, stored, slot),
            None => {
                out.push(codec::decode_row(id, stored)?);
                Ok(())
            }
        })?;
        Ok(&self.out[self.kept])
    }

    /// Keeps the event last loaded.
    fn keep(&mut self) {
        self.kept += 1;
    }

    /// Keeps `event`, decoded elsewhere.
    fn put(&mut self, event: Event) {
        match self.out.get_mut(self.kept) {
            Some(slot) => *slot = event,
            None => self.out.push(event),
        }
        self.kept += 1;
    }
}

impl Drop for Refill<'_> {
    fn drop(&mut self) {
        self.out.truncate(self.kept);
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

pub(crate) fn query(backend: &RedbBackend, txn: &ReadTransaction, q: &Query) -> Result<Vec<Event>> {
    // Streams and pages ask for a known number of events; don't grow the vector event by event.
    let mut out = Vec::with_capacity(q.limit.map_or(0, to_usize).min(4_096));
    query_into(backend, txn, q, &mut out)?;
    Ok(out)
}

/// [`query`] into `out`, overwriting the events already there in place.
pub(crate) fn query_into(
    backend: &RedbBackend,
    txn: &ReadTransaction,
    q: &Query,
    out: &mut Vec<Event>,
) -> Result<()> {
    let mut refill = Refill { out, kept: 0 };
    let Some(mut bounds) = Bounds::new(&q.filter) else {
        return Ok(());
    };
    if q.limit == Some(0) {
        return Ok(());
    }
    let access = access(backend.config(), &q.filter);
    let natural = natural(access, &q.filter);
    let ordered = in_order(natural, q.order);
    let limit = q.limit.map_or(usize::MAX, to_usize);
    let offset = to_usize(q.offset);
    let events = txn.open_table(EVENTS).map_err(map_err)?;
    if ordered {
        if let Some(c) = q.after {
            match bounds.after(natural, q.order, c) {
                Some(b) => bounds = b,
                None => return Ok(()),
            }
        }
        // With every key known to match, the offset is passed over without decoding rows.
        let covered = filter_fields(&q.filter) & !key_fields(access) == 0;
        // The bounds took the cursor too, so then no event needs checking: a stream's batch is
        // decoded and kept, nothing more.
        let check = !covered;
        let (skip_keys, mut skip_rows) = if covered { (offset, 0) } else { (0, offset) };
        if access == Access::Stream && covered && q.order == Order::IdAsc {
            let s = q
                .filter
                .stream
                .as_deref()
                .ok_or_else(|| missing("stream"))?;
            let idx = open(txn, STREAM_IDX)?;
            return load_stream(&idx, &events, s, bounds, offset, limit, &mut refill);
        }
        let pass = Pass {
            ids: true,
            skip: skip_keys,
        };
        let mut rows = Rows::new(&events);
        return scan(
            txn,
            access,
            &q.filter,
            bounds,
            q.order != Order::IdAsc,
            pass,
            &mut |id, bytes| {
                let event = refill.load(&mut rows, id, bytes)?;
                if check && !q.admits(event) {
                    return Ok(true);
                }
                if skip_rows > 0 {
                    skip_rows -= 1;
                    return Ok(true);
                }
                refill.keep();
                Ok(refill.kept < limit)
            },
        );
    }
    // The access path's order is not the query's: keep the best `offset + limit` in a heap.
    let keep = offset.saturating_add(limit);
    let mut heap = BinaryHeap::new();
    scan(
        txn,
        access,
        &q.filter,
        bounds,
        false,
        Pass { ids: true, skip: 0 },
        &mut |id, bytes| {
            let event = load(&events, id, bytes)?;
            if q.admits(&event) {
                heap.push(Ranked(q.order, event));
                if heap.len() > keep {
                    heap.pop();
                }
            }
            Ok(true)
        },
    )?;
    for Ranked(_, event) in heap.into_sorted_vec().into_iter().skip(offset).take(limit) {
        refill.put(event);
    }
    Ok(())
}

pub(crate) fn count(backend: &RedbBackend, txn: &ReadTransaction, f: &Filter) -> Result<u64> {
    let Some(bounds) = Bounds::new(f) else {
        return Ok(0);
    };
    let access = access(backend.config(), f);
    let covered = filter_fields(f) & !key_fields(access) == 0;
    let events = txn.open_table(EVENTS).map_err(map_err)?;
    if covered && access == Access::Primary {
        // Ids are gap-free from 1, so an id range counts itself.
        let last = events
            .last()
            .map_err(map_err)?
            .map_or(0, |(k, _)| k.value());
        let (lo, hi) = (bounds.id_lo.max(1), bounds.id_hi.min(last));
        return Ok(if hi >= lo { hi - lo + 1 } else { 0 });
    }
    let mut n = 0;
    let pass = Pass {
        ids: !covered,
        skip: 0,
    };
    scan(txn, access, f, bounds, false, pass, &mut |id, bytes| {
        if covered || f.matches(&load(&events, id, bytes)?) {
            n += 1;
        }
        Ok(true)
    })?;
    Ok(n)
}

pub(crate) fn explain(config: &IndexConfig, q: &Query) -> QueryPlan {
    let access = access(config, &q.filter);
    let ordered = in_order(natural(access, &q.filter), q.order);
    let mut plan = planner::plan(config, &q.filter, "events");
    if access == Access::Stream {
        plan.full_scan = false;
        plan.detail = "SEARCH events USING TABLE idx_stream".to_owned();
    }
    plan.sorts = !ordered;
    plan.detail.push_str(if ordered {
        " (in query order)"
    } else {
        " (then top-k sort)"
    });
    plan
}

// ---- verification --------------------------------------------------------------------------

/// Compares one secondary table with the events, both ways: every event's entry is present,
/// and the table holds no more entries than the events call for. Problems go to `problems`.
fn check_table<K: redb::Key + 'static>(
    txn: &ReadTransaction,
    what: &str,
    def: TableDefinition<K, ()>,
    key: impl for<'k> Fn(&'k Event) -> Option<K::SelfType<'k>>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{what}: cannot be opened: {e}"));
            return Ok(());
        }
    };
    let events = txn.open_table(EVENTS).map_err(map_err)?;
    let mut expected = 0u64;
    for row in events.iter().map_err(map_err)? {
        if problems.len() >= eventlite_core::MAX_LISTED_PROBLEMS {
            problems.push(format!("{what}: more problems not listed"));
            return Ok(());
        }
        let (id, stored) = match row {
            Ok(row) => row,
            Err(e) => {
                problems.push(format!("events: a page cannot be read: {e}"));
                return Ok(());
            }
        };
        // An event that does not decode is reported by the store's own scan.
        let Ok(event) = codec::decode_row(id.value(), stored.value()) else {
            continue;
        };
        let Some(k) = key(&event) else {
            continue;
        };
        expected += 1;
        match table.get(k) {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(format!("{what}: no entry for event {}", event.id)),
            Err(e) => problems.push(format!("{what}: entry of event {}: {e}", event.id)),
        }
    }
    match table.len() {
        Ok(n) if n == expected => {}
        Ok(n) => problems.push(format!(
            "{what}: {n} entries where the events call for {expected}"
        )),
        Err(e) => problems.push(format!("{what}: cannot be counted: {e}")),
    }
    Ok(())
}

/// Every secondary table and the stream table against the events, both ways.
pub(crate) fn check_indexes(
    config: &IndexConfig,
    txn: &ReadTransaction,
    problems: &mut Vec<String>,
) -> Result<()> {
    check_table(
        txn,
        "idx_stream",
        STREAM_IDX,
        |e| e.stream.as_deref().map(|s| (s, e.id)),
        problems,
    )?;
    for name in config.enabled() {
        let what = name.as_str();
        match name {
            IndexName::CorrelationId => check_table(
                txn,
                what,
                IDX_CORRELATION,
                |e| Some((e.correlation_id.as_str(), e.id)),
                problems,
            )?,
            IndexName::CausationId => check_table(
                txn,
                what,
                IDX_CAUSATION,
                |e| e.causation_id.map(|c| (c, e.id)),
                problems,
            )?,
            IndexName::Cmd => check_table(
                txn,
                what,
                IDX_CMD,
                |e| Some((e.cmd.as_str(), e.datetime, e.id)),
                problems,
            )?,
            IndexName::User => check_table(
                txn,
                what,
                IDX_USER,
                |e| Some((e.user.as_str(), e.datetime, e.id)),
                problems,
            )?,
            IndexName::Datetime => check_table(
                txn,
                what,
                IDX_DATETIME,
                |e| Some((e.datetime, e.id)),
                problems,
            )?,
            IndexName::Version => check_table(
                txn,
                what,
                IDX_VERSION,
                |e| Some((e.version, e.id)),
                problems,
            )?,
            IndexName::CorrelationCmd => check_table(
                txn,
                what,
                IDX_CORRELATION_CMD,
                |e| Some((e.correlation_id.as_str(), e.cmd.as_str(), e.id)),
                problems,
            )?,
            IndexName::UserDatetime => check_table(
                txn,
                what,
                IDX_USER_DATETIME,
                |e| Some((e.user.as_str(), e.datetime, e.id)),
                problems,
            )?,
        }
    }
    Ok(())
}
