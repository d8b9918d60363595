//! Wait conditions: events parked until other events have happened (upstream's `storeWhen`).
//!
//! A parked event is a record in the store, not process memory: it survives restarts, and it is
//! released exactly once, atomically with the closing of its record, whichever handle or
//! process notices first that its conditions hold. Each append looks only at the records
//! waiting on its events' (cmd, correlation id) pairs.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::event::{Event, ExpectedVersion, NewEvent};
use crate::model::{Callbacks, Executed, Model, execute};
use crate::query::{Filter, Order, Query};
use crate::spi::{Claim, PendingEvent};
use crate::store::EventStore;

/// A comparison of a `where` test: upstream's `$eq $ne $gt $gte $lt $lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cmp {
    /// Equal (numbers by value: `1` equals `1.0`).
    Eq,
    /// Not equal; a missing field is not equal to anything.
    Ne,
    /// Greater than (numbers with numbers, strings with strings).
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
}

impl Cmp {
    fn from_operator(op: &str) -> Option<Cmp> {
        Some(match op {
            "$eq" => Cmp::Eq,
            "$ne" => Cmp::Ne,
            "$gt" => Cmp::Gt,
            "$gte" => Cmp::Gte,
            "$lt" => Cmp::Lt,
            "$lte" => Cmp::Lte,
            _ => return None,
        })
    }

    fn orders(self) -> bool {
        !matches!(self, Cmp::Eq | Cmp::Ne)
    }
}

/// One `where` test: a top-level field of the event's data compared with a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldTest {
    /// The data field (top level).
    pub field: String,
    /// How it is compared.
    pub cmp: Cmp,
    /// With what.
    pub value: Value,
}

impl FieldTest {
    fn check(&self) -> Result<()> {
        if self.field.is_empty() {
            return Err(Error::InvalidCondition(
                "a `where` field name is empty".into(),
            ));
        }
        if self.cmp.orders() && !(self.value.is_number() || self.value.is_string()) {
            return Err(Error::InvalidCondition(format!(
                "`where` field {:?}: {:?} compares numbers or strings, not {}",
                self.field, self.cmp, self.value
            )));
        }
        Ok(())
    }

    fn passes(&self, data: &Map<String, Value>) -> bool {
        let Some(actual) = data.get(&self.field) else {
            return self.cmp == Cmp::Ne;
        };
        let ordering = match (actual, &self.value) {
            (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            _ => None,
        };
        use std::cmp::Ordering as O;
        match self.cmp {
            Cmp::Eq => ordering.map_or(actual == &self.value, |o| o == O::Equal),
            Cmp::Ne => ordering.map_or(actual != &self.value, |o| o != O::Equal),
            Cmp::Gt => ordering == Some(O::Greater),
            Cmp::Gte => matches!(ordering, Some(O::Greater | O::Equal)),
            Cmp::Lt => ordering == Some(O::Less),
            Cmp::Lte => matches!(ordering, Some(O::Less | O::Equal)),
        }
    }
}

/// Integers exactly (whatever their sign), anything else as `f64`.
fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<std::cmp::Ordering> {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Which events a wait condition waits for: events of a cmd in a correlation group, whose
/// data passes every `where` test; at least `min_count` of them.
///
/// ```
/// use eventlite_core::{Cmp, Condition};
/// let big_bids = Condition::new("bid_placed")
///     .correlation_id("auction-7")
///     .field("amount", Cmp::Gte, 1000)
///     .at_least(3);
/// # let _ = big_bids;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    cmd: String,
    correlation_id: Option<String>,
    tests: Vec<FieldTest>,
    min_count: u64,
}

impl Condition {
    /// Events of `cmd` in the parked event's own correlation group (set another with
    /// [`correlation_id`](Self::correlation_id)); one is enough.
    pub fn new(cmd: impl Into<String>) -> Self {
        Condition {
            cmd: cmd.into(),
            correlation_id: None,
            tests: Vec::new(),
            min_count: 1,
        }
    }

    /// Waits for events of this correlation group instead of the parked event's.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Only events whose data field `field` compares with `value` as `cmp` says.
    pub fn field(mut self, field: impl Into<String>, cmp: Cmp, value: impl Into<Value>) -> Self {
        self.tests.push(FieldTest {
            field: field.into(),
            cmp,
            value: value.into(),
        });
        self
    }

    /// Needs `n` matching events instead of one (upstream's `count` and `minCount`).
    pub fn at_least(mut self, n: u64) -> Self {
        self.min_count = n;
        self
    }

    /// The cmd waited for.
    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// The correlation group waited in (`None`: the parked event's, until parked).
    pub fn correlation(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The `where` tests.
    pub fn tests(&self) -> &[FieldTest] {
        &self.tests
    }

    /// How many matching events it needs.
    pub fn min_count(&self) -> u64 {
        self.min_count
    }

    fn check(&self) -> Result<()> {
        if self.cmd.trim().is_empty() {
            return Err(Error::InvalidCondition("a condition's cmd is empty".into()));
        }
        if self.correlation_id.as_deref() == Some("") {
            return Err(Error::InvalidCondition(
                "a condition's correlation id is empty".into(),
            ));
        }
        if self.min_count == 0 {
            return Err(Error::InvalidCondition(
                "a condition needs at least one event (count 0)".into(),
            ));
        }
        for (what, v) in [
            ("cmd", Some(&self.cmd)),
            ("correlation id", self.correlation_id.as_ref()),
        ] {
            if let Some(v) = v.filter(|v| v.len() > crate::MAX_KEY_LEN) {
                return Err(Error::InvalidCondition(format!(
                    "a condition's {what} is {} bytes, over the limit of {} bytes: no event \
                     can have it",
                    v.len(),
                    crate::MAX_KEY_LEN
                )));
            }
        }
        self.tests.iter().try_for_each(FieldTest::check)
    }

    fn matches(&self, event: &Event, data: &Map<String, Value>) -> bool {
        event.cmd == self.cmd
            && Some(event.correlation_id.as_str()) == self.correlation_id.as_deref()
            && self.tests.iter().all(|t| t.passes(data))
    }

    /// The parsed form of upstream's `{ pattern, correlationId, where, minCount }` (`count`
    /// takes the place of `minCount` in a `count` condition).
    fn from_json(value: &Value, count_key: &str) -> Result<Condition> {
        let Value::Object(map) = value else {
            return Err(Error::InvalidCondition(format!(
                "a condition must be an object, not {value}"
            )));
        };
        let mut condition = Condition::new(String::new());
        let mut cmd = None;
        for (key, v) in map {
            match key.as_str() {
                "pattern" | "cmd" => cmd = Some(text(key, v)?),
                "correlationId" | "correlation_id" => {
                    condition.correlation_id = Some(text(key, v)?);
                }
                "where" => condition.tests = parse_where(v)?,
                k if k == count_key => {
                    condition.min_count = v.as_u64().ok_or_else(|| {
                        Error::InvalidCondition(format!("`{k}` must be a whole number, not {v}"))
                    })?;
                }
                other => {
                    return Err(Error::InvalidCondition(format!(
                        "unknown condition field `{other}`"
                    )));
                }
            }
        }
        condition.cmd = cmd.ok_or_else(|| {
            Error::InvalidCondition("a condition needs a `pattern` (the cmd)".into())
        })?;
        condition.check()?;
        Ok(condition)
    }
}

fn text(key: &str, v: &Value) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::InvalidCondition(format!("`{key}` must be a string, not {v}")))
}

/// `{ field: value }` (equality) or `{ field: { "$gte": value, … } }`.
fn parse_where(value: &Value) -> Result<Vec<FieldTest>> {
    let Value::Object(fields) = value else {
        return Err(Error::InvalidCondition(format!(
            "`where` must be an object, not {value}"
        )));
    };
    let mut tests = Vec::new();
    for (field, test) in fields {
        let operators = match test {
            Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => ops,
            other => {
                tests.push(FieldTest {
                    field: field.clone(),
                    cmp: Cmp::Eq,
                    value: other.clone(),
                });
                continue;
            }
        };
        for (op, v) in operators {
            let cmp = Cmp::from_operator(op).ok_or_else(|| {
                Error::InvalidCondition(format!(
                    "`where` field {field:?}: unknown operator `{op}` (use $eq $ne $gt $gte $lt $lte)"
                ))
            })?;
            tests.push(FieldTest {
                field: field.clone(),
                cmp,
                value: v.clone(),
            });
        }
    }
    tests.iter().try_for_each(FieldTest::check)?;
    Ok(tests)
}

/// When a parked event stops waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Deadline {
    After(Duration),
    At(i64),
}

/// What a parked event waits for: every part that is set must hold (`all` and `any` and the
/// `sequence`), with an optional timeout.
///
/// ```
/// use eventlite_core::{Condition, WaitFor};
/// use std::time::Duration;
/// let ship = WaitFor::new()
///     .all([Condition::new("payment_received"), Condition::new("stock_reserved")])
///     .timeout(Duration::from_secs(30 * 60));
/// // The same in upstream's JSON form.
/// let same = WaitFor::from_json(&serde_json::json!({
///     "all": [{ "pattern": "payment_received" }, { "pattern": "stock_reserved" }],
///     "timeout": 1_800_000
/// }))?;
/// assert_eq!(ship, same);
/// # Ok::<(), eventlite_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WaitFor {
    all: Vec<Condition>,
    any: Vec<Condition>,
    sequence: Vec<Condition>,
    deadline: Option<Deadline>,
}

impl WaitFor {
    /// Waits for nothing yet: add conditions (parking it as it is is an error).
    pub fn new() -> Self {
        WaitFor::default()
    }

    /// Each of these conditions must hold.
    pub fn all(mut self, conditions: impl IntoIterator<Item = Condition>) -> Self {
        self.all.extend(conditions);
        self
    }

    /// At least one of these conditions must hold.
    pub fn any(mut self, conditions: impl IntoIterator<Item = Condition>) -> Self {
        self.any.extend(conditions);
        self
    }

    /// `n` events matching `condition` (upstream's `count`).
    pub fn count(self, condition: Condition, n: u64) -> Self {
        self.all([condition.at_least(n)])
    }

    /// These conditions must hold in this order: each one's events come after the events that
    /// satisfied the one before (by id, which is commit order).
    pub fn sequence(mut self, conditions: impl IntoIterator<Item = Condition>) -> Self {
        self.sequence.extend(conditions);
        self
    }

    /// Gives up `after` the parking: the event is then never stored (it is expired).
    pub fn timeout(mut self, after: Duration) -> Self {
        self.deadline = Some(Deadline::After(after));
        self
    }

    /// Gives up at `ms` since the epoch, by the store's clock.
    pub fn expires_at(mut self, ms: i64) -> Self {
        self.deadline = Some(Deadline::At(ms));
        self
    }

    /// The conditions that must all hold.
    pub fn all_of(&self) -> &[Condition] {
        &self.all
    }

    /// The conditions of which one must hold.
    pub fn any_of(&self) -> &[Condition] {
        &self.any
    }

    /// The conditions that must hold in order.
    pub fn sequence_of(&self) -> &[Condition] {
        &self.sequence
    }

    /// Reads upstream's `waitFor` object: `all`, `any` and `sequence` (lists of
    /// `{ pattern, correlationId, where, minCount }`), `count` (`{ pattern, correlationId,
    /// count, where }`), and `timeout` (ms; upstream put it beside `waitFor`). Unknown keys,
    /// a malformed `where` and empty lists are [`Error::InvalidCondition`].
    pub fn from_json(value: &Value) -> Result<WaitFor> {
        let Value::Object(map) = value else {
            return Err(Error::InvalidCondition(format!(
                "waitFor must be an object, not {value}"
            )));
        };
        let list = |key: &str, v: &Value| -> Result<Vec<Condition>> {
            let Value::Array(items) = v else {
                return Err(Error::InvalidCondition(format!(
                    "`{key}` must be a list of conditions, not {v}"
                )));
            };
            if items.is_empty() {
                return Err(Error::InvalidCondition(format!("`{key}` is an empty list")));
            }
            items
                .iter()
                .map(|c| Condition::from_json(c, "minCount"))
                .collect()
        };
        let mut wait = WaitFor::new();
        for (key, v) in map {
            match key.as_str() {
                "all" => wait.all.extend(list(key, v)?),
                "any" => wait.any.extend(list(key, v)?),
                "sequence" => wait.sequence.extend(list(key, v)?),
                "count" => wait.all.push(Condition::from_json(v, "count")?),
                "timeout" => {
                    let ms = v.as_u64().ok_or_else(|| {
                        Error::InvalidCondition(format!(
                            "`timeout` must be a whole number of ms, not {v}"
                        ))
                    })?;
                    wait.deadline = Some(Deadline::After(Duration::from_millis(ms)));
                }
                other => {
                    return Err(Error::InvalidCondition(format!(
                        "unknown waitFor field `{other}` (use all, any, count, sequence, timeout)"
                    )));
                }
            }
        }
        wait.check()?;
        Ok(wait)
    }

    fn conditions(&self) -> impl Iterator<Item = &Condition> {
        self.all.iter().chain(&self.any).chain(&self.sequence)
    }

    fn conditions_mut(&mut self) -> impl Iterator<Item = &mut Condition> {
        self.all
            .iter_mut()
            .chain(&mut self.any)
            .chain(&mut self.sequence)
    }

    fn check(&self) -> Result<()> {
        if self.conditions().next().is_none() {
            return Err(Error::InvalidCondition(
                "no conditions: give all, any, count or sequence".into(),
            ));
        }
        self.conditions().try_for_each(Condition::check)
    }

    /// The expiry, in ms since the epoch, of a record parked at `now`.
    fn expiry(&self, now: i64) -> Result<Option<i64>> {
        match self.deadline {
            None => Ok(None),
            Some(Deadline::After(d)) if d.is_zero() => Err(Error::InvalidCondition(
                "a timeout of 0 has passed already".into(),
            )),
            Some(Deadline::After(d)) => {
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                Ok(Some(now.saturating_add(ms.max(1))))
            }
            Some(Deadline::At(at)) if at <= now => Err(Error::InvalidCondition(format!(
                "the deadline {at} is not after now ({now})"
            ))),
            Some(Deadline::At(at)) => Ok(Some(at)),
        }
    }

    fn keys(&self) -> Vec<WaitKey> {
        let keys: BTreeSet<(&str, &str)> = self
            .conditions()
            .map(|c| (c.cmd.as_str(), c.correlation_id.as_deref().unwrap_or("")))
            .collect();
        keys.into_iter()
            .map(|(cmd, correlation)| WaitKey {
                cmd: cmd.to_owned(),
                correlation_id: correlation.to_owned(),
            })
            .collect()
    }

    /// Whether the conditions hold in the store now.
    fn holds<'w, B: Backend>(&'w self, store: &EventStore<B>) -> Result<bool> {
        // Each (cmd, correlation id) pair's events with their data, read once.
        type Read = Vec<(Event, Map<String, Value>)>;
        let mut found: HashMap<(&str, &str), Read> = HashMap::new();
        let mut matching = |c: &'w Condition| -> Result<Vec<u64>> {
            let correlation = c.correlation_id.as_deref().unwrap_or("");
            let events = match found.entry((c.cmd.as_str(), correlation)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let filter = Filter {
                        cmd: Some(c.cmd.clone()),
                        correlation_id: Some(correlation.to_owned()),
                        ..Filter::default()
                    };
                    let events = store.query(&Query::new(filter, Order::IdAsc))?;
                    e.insert(
                        events
                            .into_iter()
                            .map(|event| {
                                let data = match serde_json::from_str(&event.data) {
                                    Ok(Value::Object(map)) => map,
                                    _ => Map::new(),
                                };
                                (event, data)
                            })
                            .collect(),
                    )
                }
            };
            Ok(events
                .iter()
                .filter(|(event, data)| c.matches(event, data))
                .map(|(event, _)| event.id)
                .collect())
        };
        for c in &self.all {
            if (matching(c)?.len() as u64) < c.min_count {
                return Ok(false);
            }
        }
        if !self.any.is_empty() {
            let mut any = false;
            for c in &self.any {
                if matching(c)?.len() as u64 >= c.min_count {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(false);
            }
        }
        // Each step's events come after the event that completed the step before.
        let mut after = 0;
        for c in &self.sequence {
            let ids = matching(c)?;
            let later: Vec<u64> = ids.into_iter().filter(|id| *id > after).collect();
            let nth = usize::try_from(c.min_count.saturating_sub(1)).unwrap_or(usize::MAX);
            match later.get(nth) {
                Some(id) => after = *id,
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// A (cmd, correlation id) pair a waiting record waits on: what an engine indexes it by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitKey {
    /// The cmd.
    pub cmd: String,
    /// The correlation id.
    pub correlation_id: String,
}

/// Where a waiting record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitState {
    /// Its conditions have not held yet.
    Waiting,
    /// Its event was stored.
    Released,
    /// Its deadline passed first: its event was never stored.
    Expired,
    /// It was cancelled: its event was never stored.
    Cancelled,
}

impl WaitState {
    /// The state's number in a store (0 to 3).
    pub fn code(self) -> u8 {
        match self {
            WaitState::Waiting => 0,
            WaitState::Released => 1,
            WaitState::Expired => 2,
            WaitState::Cancelled => 3,
        }
    }

    /// The state numbered `code` (see [`code`](Self::code)).
    pub fn from_code(code: u8) -> Result<WaitState> {
        Ok(match code {
            0 => WaitState::Waiting,
            1 => WaitState::Released,
            2 => WaitState::Expired,
            3 => WaitState::Cancelled,
            n => return Err(Error::corrupt(format!("unknown waiting state {n}"))),
        })
    }
}

/// A record to park, as an engine receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWaiting {
    /// The parked event's correlation id (what `pending(correlation)` lists by).
    pub correlation_id: String,
    /// What it waits on: the engine finds it by any of these.
    pub keys: Vec<WaitKey>,
    /// When it was parked (ms since the epoch).
    pub created_at: i64,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// The event and its conditions, as the store encodes them (JSON): the engine keeps it
    /// as it is.
    pub body: String,
}

/// A record as an engine stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingRecord {
    /// Its id.
    pub id: u64,
    /// The parked event's correlation id.
    pub correlation_id: String,
    /// When it was parked.
    pub created_at: i64,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// Where it stands.
    pub state: WaitState,
    /// When it was closed (released, expired or cancelled).
    pub closed_at: Option<i64>,
    /// The stored event's id, once released.
    pub event_id: Option<u64>,
    /// The event and its conditions, as parked.
    pub body: String,
}

/// The parked event in a record's body: a [`NewEvent`] whose correlation id is settled.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    cmd: String,
    data: String,
    user: String,
    ip: String,
    version: u32,
    correlation_id: String,
    causation_id: Option<u64>,
    metadata: String,
    stream: Option<String>,
    /// The caller's own datetime for the event (an import's), if it gave one.
    #[serde(default)]
    recorded_at: Option<i64>,
    wait: WaitFor,
}

impl Body {
    fn event(&self) -> NewEvent {
        let mut event = NewEvent::new(self.cmd.clone())
            .data_json(self.data.clone())
            .user(self.user.clone())
            .ip(self.ip.clone())
            .version(self.version)
            .correlation_id(self.correlation_id.clone())
            .metadata_json(self.metadata.clone());
        // Checked once when parked: no need to parse the JSON again.
        event.data_serialized = true;
        event.metadata_serialized = true;
        event.causation_id = self.causation_id;
        if let Some(stream) = &self.stream {
            event = event.stream(stream.clone(), ExpectedVersion::Any);
        }
        event.recorded_at = self.recorded_at;
        event
    }
}

/// A parked event, as [`EventStore::waiting`] and friends list it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The record's id (what [`EventStore::cancel_waiting`] takes).
    pub id: u64,
    /// The event that is stored on release (its correlation id settled when it was parked).
    pub event: NewEvent,
    /// What it waits for (each condition's correlation id settled).
    pub wait_for: WaitFor,
    /// The event's correlation id.
    pub correlation_id: String,
    /// When it was parked (ms since the epoch).
    pub created_at: i64,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// Where it stands.
    pub state: WaitState,
    /// When it was closed.
    pub closed_at: Option<i64>,
    /// The stored event's id, once released.
    pub event_id: Option<u64>,
}

impl Waiting {
    fn from_record(record: WaitingRecord) -> Result<Waiting> {
        let body = decode(&record)?;
        Ok(Waiting {
            id: record.id,
            event: body.event(),
            wait_for: body.wait,
            correlation_id: record.correlation_id,
            created_at: record.created_at,
            expires_at: record.expires_at,
            state: record.state,
            closed_at: record.closed_at,
            event_id: record.event_id,
        })
    }
}

fn decode(record: &WaitingRecord) -> Result<Body> {
    serde_json::from_str(&record.body).map_err(|e| {
        Error::corrupt(format!("waiting record {} is unreadable", record.id)).with_source(e)
    })
}

/// What [`EventStore::store_when`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The waiting record's id.
    pub id: u64,
    /// The stored event, if the conditions held already (then the record is released).
    pub released: Option<Event>,
}

/// What a look at the waiting records did ([`EventStore::check_waiting`]).
#[derive(Debug, Default)]
pub struct WaitCheck {
    /// The events released (stored), in release order.
    pub released: Vec<Event>,
    /// The ids of the records that expired.
    pub expired: Vec<u64>,
    /// The records that could not be looked at or released, with why; they stay waiting
    /// (the engine was away, say, or the parked event is over this handle's size limit).
    /// `None`: the look for the records that released events complete failed.
    pub failed: Vec<(Option<u64>, Error)>,
}

/// Checks that `state` is one a record is closed as by
/// [`WaitingStore::close_waiting`](crate::spi::WaitingStore::close_waiting): expired or
/// cancelled (a release closes its record itself).
pub fn check_closing_state(state: WaitState) -> Result<()> {
    match state {
        WaitState::Expired | WaitState::Cancelled => Ok(()),
        other => Err(Error::InvalidArgument(format!(
            "a waiting record is closed as expired or cancelled, not {other:?}"
        ))),
    }
}

/// The distinct (cmd, correlation id) keys of `events`.
pub fn keys_of(events: &[Event]) -> Vec<WaitKey> {
    let keys: BTreeSet<(&str, &str)> = events
        .iter()
        .map(|e| (e.cmd.as_str(), e.correlation_id.as_str()))
        .collect();
    keys.into_iter()
        .map(|(cmd, correlation)| WaitKey {
            cmd: cmd.to_owned(),
            correlation_id: correlation.to_owned(),
        })
        .collect()
}

impl<B: Backend> EventStore<B> {
    /// Parks `event` until `wait` holds (upstream's `storeWhen`), then stores it, exactly
    /// once. The record lives in the store: it survives restarts, and whichever handle or
    /// process appends the event that completes the conditions releases it.
    ///
    /// The event is checked now as an append would check it, and its correlation id is
    /// settled now (a fresh one, or its cause's); conditions without a correlation id wait in
    /// that group. A parked event may name a stream only with [`ExpectedVersion::Any`] (its
    /// version is decided when it is released). If the conditions hold already, the event
    /// is stored at once ([`Parked::released`]).
    ///
    /// ```
    /// use eventlite_core::{Condition, EventStore, MemoryBackend, NewEvent, WaitFor};
    /// let store = EventStore::new(MemoryBackend::new());
    /// let parked = store.store_when(
    ///     NewEvent::new("ship_order").correlation_id("order-1"),
    ///     WaitFor::new().all([Condition::new("payment_received")]),
    /// )?;
    /// assert!(parked.released.is_none());
    /// store.store(NewEvent::new("payment_received").correlation_id("order-1"))?;
    /// // The payment released the shipping event.
    /// assert_eq!(store.transaction("order-1")?.last().map(|e| e.cmd.as_str()), Some("ship_order"));
    /// # Ok::<(), eventlite_core::Error>(())
    /// ```
    pub fn store_when(&self, event: NewEvent, wait: WaitFor) -> Result<Parked> {
        wait.check()?;
        if let Some((stream, expected)) = &event.stream
            && *expected != ExpectedVersion::Any
        {
            return Err(Error::invalid_event(format!(
                "a parked event's stream expectation is decided when it is released: \
                 name stream {stream:?} with ExpectedVersion::Any, not {expected}"
            )));
        }
        let now = self.clock().now_ms();
        let expires_at = wait.expiry(now)?;
        let recorded_at = event.recorded_at;
        let pending = self.prepare_event(event, now)?;
        let mut wait = wait;
        for c in wait.conditions_mut() {
            c.correlation_id
                .get_or_insert_with(|| pending.correlation_id.clone());
        }
        let keys = wait.keys();
        let body = Body {
            cmd: pending.cmd,
            data: pending.data,
            user: pending.user,
            ip: pending.ip,
            version: pending.version,
            correlation_id: pending.correlation_id,
            causation_id: pending.causation_id,
            metadata: pending.metadata,
            stream: pending.stream,
            recorded_at,
            wait,
        };
        let text = serde_json::to_string(&body)
            .map_err(|e| Error::encode("a waiting record").with_source(e))?;
        let id = self.backend().park(NewWaiting {
            correlation_id: body.correlation_id.clone(),
            keys,
            created_at: now,
            expires_at,
            body: text,
        })?;
        // Events appended before the record existed did not look for it: look now. An append
        // committed after the record looks for it itself, so nothing falls between.
        let record = self
            .backend()
            .waiting_record(id)?
            .ok_or_else(|| Error::Internal(format!("waiting record {id} vanished")))?;
        // Parked: from here on a failure to look is not the caller's (a retry would park the
        // event twice). The record waits for the next look that succeeds.
        let mut check = WaitCheck::default();
        self.settle(vec![record], &mut check);
        let released = check.released.first().cloned();
        let _ = self.follow_releases(&mut check);
        Ok(Parked { id, released })
    }

    /// [`store_when`](Self::store_when), then, if the event was stored at once, executes it
    /// through `model` and `callbacks` (as [`store_with`](Self::store_with) does).
    pub fn store_when_with<M: Model>(
        &self,
        event: NewEvent,
        wait: WaitFor,
        model: &mut M,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<(Parked, Option<Executed<M::Output>>)> {
        let parked = self.store_when(event, wait)?;
        let executed = parked.released.clone().map(|event| {
            let result = execute(model, callbacks, &event);
            Executed { event, result }
        });
        Ok((parked, executed))
    }

    /// Looks at every waiting record: releases those whose conditions hold and expires those
    /// whose deadline has passed (upstream's `checkAllPendingEvents`, `executeReadyEvents`
    /// and `expirePendingEvents` in one). Appends do this for the records their events
    /// concern; call this after opening a store (conditions met while no process was
    /// running) and now and then to expire records nothing else touches.
    pub fn check_waiting(&self) -> Result<WaitCheck> {
        let records = self
            .backend()
            .list_waiting(None, Some(WaitState::Waiting))?;
        let mut check = WaitCheck::default();
        self.settle(records, &mut check);
        // The released events are stored whatever happens next: they are reported, and a
        // failure to look for what they release in turn goes with the records that failed.
        if let Err(e) = self.follow_releases(&mut check) {
            check.failed.push((None, e));
        }
        Ok(check)
    }

    /// [`check_waiting`](Self::check_waiting), executing each released event through `model`
    /// and `callbacks`, in release order.
    pub fn check_waiting_with<M: Model>(
        &self,
        model: &mut M,
        callbacks: &mut Callbacks<'_, M::Output>,
    ) -> Result<(WaitCheck, Vec<Executed<M::Output>>)> {
        let check = self.check_waiting()?;
        let executed = check
            .released
            .iter()
            .map(|event| Executed {
                event: event.clone(),
                result: execute(model, callbacks, event),
            })
            .collect();
        Ok((check, executed))
    }

    /// The waiting record `id`, in whatever state.
    pub fn waiting(&self, id: u64) -> Result<Option<Waiting>> {
        self.backend()
            .waiting_record(id)?
            .map(Waiting::from_record)
            .transpose()
    }

    /// The events of `correlation_id` still waiting (upstream's
    /// `getPendingEventsByCorrelation`), in parking order.
    pub fn pending(&self, correlation_id: &str) -> Result<Vec<Waiting>> {
        self.list(Some(correlation_id), Some(WaitState::Waiting))
    }

    /// Every record in `state` (every record when `None`), in parking order.
    pub fn waiting_in(&self, state: Option<WaitState>) -> Result<Vec<Waiting>> {
        self.list(None, state)
    }

    /// Expires the records whose deadline has passed by the store's clock, then lists every
    /// expired record, in parking order.
    pub fn expired(&self) -> Result<Vec<Waiting>> {
        let now = self.clock().now_ms();
        for record in self
            .backend()
            .list_waiting(None, Some(WaitState::Waiting))?
        {
            if record.expires_at.is_some_and(|at| at <= now) {
                self.backend()
                    .close_waiting(record.id, WaitState::Expired, now)?;
            }
        }
        self.list(None, Some(WaitState::Expired))
    }

    /// Cancels waiting record `id`: its event will never be stored. `false` if it was not
    /// waiting (released, expired, cancelled, or no such record).
    pub fn cancel_waiting(&self, id: u64) -> Result<bool> {
        self.backend()
            .close_waiting(id, WaitState::Cancelled, self.clock().now_ms())
    }

    fn list(&self, correlation: Option<&str>, state: Option<WaitState>) -> Result<Vec<Waiting>> {
        self.backend()
            .list_waiting(correlation, state)?
            .into_iter()
            .map(Waiting::from_record)
            .collect()
    }

    /// After an append: releases the records that wait on its events, and on the events those
    /// release, and so on.
    pub(crate) fn after_append(&self, events: &[Event]) -> Result<()> {
        let mut check = WaitCheck::default();
        self.release_for(events, &mut check)?;
        self.follow_releases(&mut check)
    }

    fn release_for(&self, events: &[Event], check: &mut WaitCheck) -> Result<()> {
        let records = self.backend().waiting_for(events)?;
        self.settle(records, check);
        Ok(())
    }

    /// Released events may complete other records in turn: one level at a time, so that a
    /// long chain takes no stack.
    fn follow_releases(&self, check: &mut WaitCheck) -> Result<()> {
        let mut done = 0;
        while done < check.released.len() {
            let batch: Vec<Event> = check.released[done..].to_vec();
            done = check.released.len();
            self.release_for(&batch, check)?;
        }
        Ok(())
    }

    /// Expires or releases each open record whose time has come.
    /// Expires or releases each open record whose time has come. A record that fails (the
    /// engine is away, its event no longer passes this handle's checks) is listed in
    /// [`WaitCheck::failed`] and stays waiting; the others go on.
    fn settle(&self, records: Vec<WaitingRecord>, check: &mut WaitCheck) {
        for record in records {
            if record.state != WaitState::Waiting {
                continue;
            }
            let id = record.id;
            if let Err(e) = self.settle_one(record, check) {
                check.failed.push((Some(id), e));
            }
        }
    }

    fn settle_one(&self, record: WaitingRecord, check: &mut WaitCheck) -> Result<()> {
        let now = self.clock().now_ms();
        if record.expires_at.is_some_and(|at| at <= now) {
            if self
                .backend()
                .close_waiting(record.id, WaitState::Expired, now)?
            {
                check.expired.push(record.id);
            }
            return Ok(());
        }
        let body = decode(&record)?;
        if !body.wait.holds(self)? {
            return Ok(());
        }
        // The release's time is taken once the conditions were read: the engine refuses it if
        // the record expired by then.
        let at = self.clock().now_ms();
        let pending: PendingEvent = self.prepare_event(body.event(), at)?;
        let claim = Claim { id: record.id, at };
        if let Some(events) = self.backend().release_waiting(vec![pending], claim)? {
            check.released.extend(events);
        }
        Ok(())
    }
}
