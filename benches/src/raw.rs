//! The raw baselines: plain rusqlite, plain redb and plain `postgres` client code over the same
//! files (or schema), indexes and settings as our backends, without EventLite's layers.

use std::ops::RangeInclusive;
use std::path::Path;

use anyhow::Result;
use eventlite_core::{Cursor, Durability, IndexConfig};

use crate::{BenchEvent, Reads, Setup, now_ms};

/// A SQLite row as plain code would read it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Schema version.
    pub version: u32,
    /// Time.
    pub datetime: i64,
    /// User.
    pub user: String,
    /// Ip.
    pub ip: String,
    /// Command.
    pub cmd: String,
    /// Payload.
    pub data: String,
    /// Correlation.
    pub correlation_id: String,
    /// Causation.
    pub causation_id: Option<u64>,
    /// Metadata.
    pub metadata: String,
    /// Stream.
    pub stream: Option<String>,
    /// Stream version.
    pub stream_version: Option<u64>,
    /// CRC-32 of the row's fields.
    pub checksum: u32,
}

/// The fields of a bench event stored as `id` at `now`, for its checksum.
fn fields(id: u64, e: &BenchEvent, now: i64) -> eventlite_core::spi::EventFields<'_> {
    eventlite_core::spi::EventFields {
        id,
        version: 1,
        datetime: now,
        user: &e.user,
        ip: "",
        cmd: e.cmd,
        data: &e.data,
        correlation_id: &e.correlation_id,
        causation_id: None,
        metadata: "{}",
        stream: None,
        stream_version: None,
    }
}

/// An event's correlation id: its own, or, when it has none, a new group's (a UUID v7, as our
/// store generates).
fn correlation(e: &BenchEvent) -> std::borrow::Cow<'_, str> {
    if e.correlation_id.is_empty() {
        uuid::Uuid::now_v7().to_string().into()
    } else {
        e.correlation_id.as_str().into()
    }
}

/// The rows with ids in `ids`, fetched a batch of 1,000 at a time by `fetch(after, end)` (the
/// rows with ids above `after`, up to `end`, in order); `each` is given every batch, and the
/// sum of what it returns is returned.
fn keyset_batches(
    ids: RangeInclusive<u64>,
    mut fetch: impl FnMut(i64, i64) -> Result<Vec<(u64, Row)>>,
    mut each: impl FnMut(&[(u64, Row)]) -> u64,
) -> Result<u64> {
    let (mut last, mut n) = (ids.start().saturating_sub(1), 0u64);
    loop {
        let batch = fetch(last as i64, *ids.end() as i64)?;
        let Some((id, _)) = batch.last() else { break };
        last = *id;
        n += each(&batch);
        if batch.len() < 1000 {
            break;
        }
    }
    Ok(n)
}

/// Plain rusqlite.
pub mod sqlite {
    use super::*;
    use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

    const COLS: &str = "id, version, datetime, user, ip, cmd, data, correlation_id, causation_id, metadata, stream, stream_version, checksum";

    /// A connection with the same pragmas as `SqliteBackend`.
    pub struct Raw {
        conn: Connection,
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(u64, Row)> {
        Ok((
            r.get::<_, i64>(0)? as u64,
            Row {
                version: r.get(1)?,
                datetime: r.get(2)?,
                user: r.get(3)?,
                ip: r.get(4)?,
                cmd: r.get(5)?,
                data: r.get(6)?,
                correlation_id: r.get(7)?,
                causation_id: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
                metadata: r.get(9)?,
                stream: r.get(10)?,
                stream_version: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
                checksum: r.get::<_, i64>(12)? as u32,
            },
        ))
    }

    impl Raw {
        /// Opens an existing store file (made by `SqliteBackend`, so the schema and indexes are
        /// the same) with the same pragmas.
        pub fn open(path: &Path, setup: &Setup) -> Result<Self> {
            let o = setup.sqlite();
            let conn = Connection::open(path)?;
            conn.busy_timeout(o.busy_timeout)?;
            let _: String = conn.query_row(
                &format!(
                    "PRAGMA journal_mode = {}",
                    match o.journal_mode {
                        eventlite_sqlite::JournalMode::Wal => "WAL",
                        eventlite_sqlite::JournalMode::Delete => "DELETE",
                    }
                ),
                [],
                |r| r.get(0),
            )?;
            let sync = match o.effective_synchronous() {
                eventlite_sqlite::Synchronous::Off => "OFF",
                eventlite_sqlite::Synchronous::Normal => "NORMAL",
                eventlite_sqlite::Synchronous::Full => "FULL",
            };
            conn.pragma_update(None, "synchronous", sync)?;
            conn.pragma_update(None, "cache_size", -i64::from(o.cache_size_kib))?;
            conn.pragma_update(None, "mmap_size", o.mmap_size as i64)?;
            // The same connection setting as ours: plans never peek at bound values.
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )?;
            Ok(Raw { conn })
        }

        /// Opens an existing store file as plain code would: SQLite's default cache, no
        /// memory map, no pragmas.
        pub fn open_plain(path: &Path) -> Result<Self> {
            Ok(Raw {
                conn: Connection::open(path)?,
            })
        }

        fn insert(tx: &rusqlite::Transaction<'_>, id: u64, e: &BenchEvent, now: i64) -> Result<()> {
            let corr = correlation(e);
            let mut f = fields(id, e, now);
            f.correlation_id = &corr;
            let checksum = f.checksum();
            tx.prepare_cached(
                "INSERT INTO queue (id, version, datetime, user, ip, cmd, data, correlation_id, \
                 causation_id, metadata, stream, stream_version, checksum) \
                 VALUES (?1, 1, ?2, ?3, '', ?4, ?5, ?6, NULL, '{}', NULL, NULL, ?7)",
            )?
            .execute(params![
                id as i64, now, e.user, e.cmd, e.data, corr, checksum
            ])?;
            Ok(())
        }

        fn next_id(tx: &rusqlite::Transaction<'_>) -> Result<u64> {
            let last: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM queue")?
                .query_row([], |r| r.get(0))?;
            Ok(last as u64 + 1)
        }

        /// One event, one transaction.
        pub fn insert_one(&mut self, e: &BenchEvent) -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = Self::next_id(&tx)?;
            Self::insert(&tx, id, e, now_ms())?;
            tx.commit()?;
            Ok(())
        }

        /// Many events, one transaction, row at a time.
        pub fn insert_batch(&mut self, es: &[BenchEvent]) -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let first = Self::next_id(&tx)?;
            for (i, e) in es.iter().enumerate() {
                Self::insert(&tx, first + i as u64, e, now)?;
            }
            tx.commit()?;
            Ok(())
        }

        /// Appends `es` to `stream` in one transaction, if the stream is at version
        /// `expected` (an error otherwise), row at a time; an event without a correlation id
        /// gets a new one.
        pub fn append_to_stream(
            &mut self,
            stream: &str,
            expected: u64,
            es: &[BenchEvent],
        ) -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<i64> = tx
                .prepare_cached("SELECT MAX(stream_version) FROM queue WHERE stream = ?1")?
                .query_row([stream], |r| r.get(0))?;
            anyhow::ensure!(
                current.unwrap_or(0) as u64 == expected,
                "conflict on {stream}"
            );
            let now = now_ms();
            let first = Self::next_id(&tx)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO queue (id, version, datetime, user, ip, cmd, data, correlation_id, \
                 causation_id, metadata, stream, stream_version, checksum) \
                 VALUES (?1, 1, ?2, ?3, '', ?4, ?5, ?6, NULL, '{}', ?7, ?8, ?9)",
            )?;
            for (i, e) in es.iter().enumerate() {
                let (id, version) = (first + i as u64, expected + 1 + i as u64);
                let corr = correlation(e);
                let mut f = fields(id, e, now);
                f.correlation_id = &corr;
                f.stream = Some(stream);
                f.stream_version = Some(version);
                insert.execute(params![
                    id as i64,
                    now,
                    e.user,
                    e.cmd,
                    e.data,
                    corr,
                    stream,
                    version as i64,
                    f.checksum()
                ])?;
            }
            drop(insert);
            tx.commit()?;
            Ok(())
        }

        /// A stream's rows, in order.
        pub fn load_stream(&self, stream: &str) -> Result<Vec<(u64, Row)>> {
            let sql = format!("SELECT {COLS} FROM queue WHERE stream = ?1 ORDER BY stream_version");
            self.rows(&sql, [stream])
        }

        /// The rows with ids in `ids`, in order.
        pub fn load_range(&self, ids: RangeInclusive<u64>) -> Result<Vec<(u64, Row)>> {
            let sql = format!("SELECT {COLS} FROM queue WHERE id >= ?1 AND id <= ?2 ORDER BY id");
            self.rows(&sql, [*ids.start() as i64, *ids.end() as i64])
        }

        /// Every row, in batches of 1,000 given to `each`; the sum of what it returns.
        pub fn read_all(&self, each: impl FnMut(&[(u64, Row)]) -> u64) -> Result<u64> {
            self.batches(1..=i64::MAX as u64, each)
        }

        fn rows(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<(u64, Row)>> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt
                .query_map(p, row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        }

        /// The rows with ids in `ids`, a batch of 1,000 per query (keyset, as ours streams);
        /// `each` is given every batch, and the sum of what it returns is returned.
        fn batches(
            &self,
            ids: RangeInclusive<u64>,
            each: impl FnMut(&[(u64, Row)]) -> u64,
        ) -> Result<u64> {
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT 1000"
            );
            keyset_batches(ids, |after, end| self.rows(&sql, [after, end]), each)
        }

        fn count(&self, sql: &str, p: impl rusqlite::Params) -> Result<i64> {
            Ok(self.conn.prepare_cached(sql)?.query_row(p, |r| r.get(0))?)
        }
    }

    impl Reads for Raw {
        fn get(&mut self, id: u64) -> Result<bool> {
            let sql = format!("SELECT {COLS} FROM queue WHERE id = ?1");
            Ok(self
                .conn
                .prepare_cached(&sql)?
                .query_row([id as i64], row)
                .optional()?
                .is_some())
        }
        fn get_cached(&mut self, id: u64) -> Result<bool> {
            self.get(id)
        }
        fn correlation_page(&mut self, corr: &str, offset: u64) -> Result<usize> {
            self.count(
                "SELECT COUNT(*) FROM queue WHERE correlation_id = ?1",
                [corr],
            )?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE correlation_id = ?1 ORDER BY id LIMIT 101 OFFSET ?2"
            );
            Ok(self
                .rows(&sql, params![corr, offset as i64])?
                .len()
                .min(100))
        }
        fn user_page_offset(&mut self, user: &str, offset: u64) -> Result<usize> {
            self.count("SELECT COUNT(*) FROM queue WHERE user = ?1", [user])?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE user = ?1 ORDER BY datetime DESC, id DESC \
                 LIMIT 101 OFFSET ?2"
            );
            Ok(self
                .rows(&sql, params![user, offset as i64])?
                .len()
                .min(100))
        }
        fn user_page_after(&mut self, user: &str, c: Cursor) -> Result<usize> {
            self.count("SELECT COUNT(*) FROM queue WHERE user = ?1", [user])?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE user = ?1 AND (datetime, id) < (?2, ?3) \
                 ORDER BY datetime DESC, id DESC LIMIT 101"
            );
            Ok(self
                .rows(&sql, params![user, c.datetime, c.id as i64])?
                .len()
                .min(100))
        }
        fn transaction(&mut self, corr: &str) -> Result<usize> {
            let sql = format!("SELECT {COLS} FROM queue WHERE correlation_id = ?1 ORDER BY id");
            Ok(self.rows(&sql, [corr])?.len())
        }
        fn cmd_page(&mut self, cmd: &str) -> Result<usize> {
            self.count("SELECT COUNT(*) FROM queue WHERE cmd = ?1", [cmd])?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE cmd = ?1 ORDER BY datetime DESC, id DESC LIMIT 101"
            );
            Ok(self.rows(&sql, [cmd])?.len().min(100))
        }
        fn time_page(&mut self, from: i64, to: i64) -> Result<usize> {
            self.count(
                "SELECT COUNT(*) FROM queue WHERE datetime >= ?1 AND datetime <= ?2",
                [from, to],
            )?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE datetime >= ?1 AND datetime <= ?2 \
                 ORDER BY datetime DESC, id DESC LIMIT 101"
            );
            Ok(self.rows(&sql, [from, to])?.len().min(100))
        }
        fn stream_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
            self.batches(ids, |batch| batch.len() as u64)
        }
        fn replay_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
            self.batches(ids, |batch| {
                batch.iter().map(|r| u64::from(!r.1.cmd.is_empty())).sum()
            })
        }
    }
}

/// Plain redb.
pub mod redb {
    use super::*;
    use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

    const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
    const IDX_CORRELATION: TableDefinition<(&str, u64), ()> =
        TableDefinition::new("idx_correlation_id");
    const IDX_CAUSATION: TableDefinition<(u64, u64), ()> = TableDefinition::new("idx_causation_id");
    const IDX_CMD: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("idx_cmd");
    const IDX_USER: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("idx_user");
    const IDX_DATETIME: TableDefinition<(i64, u64), ()> = TableDefinition::new("idx_datetime");
    const IDX_VERSION: TableDefinition<(u32, u64), ()> = TableDefinition::new("idx_version");
    const IDX_CORRELATION_CMD: TableDefinition<(&str, &str, u64), ()> =
        TableDefinition::new("idx_composite_correlation_cmd");
    const IDX_USER_DATETIME: TableDefinition<(&str, i64, u64), ()> =
        TableDefinition::new("idx_composite_user_datetime");
    const STREAMS: TableDefinition<&str, u64> = TableDefinition::new("streams");
    const STREAM_IDX: TableDefinition<(&str, u64), ()> = TableDefinition::new("idx_stream");
    const CONFIG: bincode::config::Configuration = bincode::config::standard();

    /// A plain redb handle on a store file made by `RedbBackend`.
    pub struct Raw {
        db: Database,
        indexes: IndexConfig,
        durability: ::redb::Durability,
        relaxed_every: u32,
        relaxed_pending: u32,
    }

    /// A row as `RedbBackend` writes it, borrowed for encoding.
    #[derive(bincode::Encode)]
    struct RowRef<'a> {
        version: u32,
        datetime: i64,
        user: &'a str,
        ip: &'a str,
        cmd: &'a str,
        data: &'a str,
        correlation_id: &'a str,
        causation_id: Option<u64>,
        metadata: &'a str,
        stream: Option<&'a str>,
        stream_version: Option<u64>,
    }

    /// A row as `RedbBackend` writes it: format byte, bincode, CRC-32 of id and bytes.
    #[derive(Debug, bincode::Decode)]
    pub struct RedbRow {
        /// Schema version.
        pub version: u32,
        /// Time.
        pub datetime: i64,
        /// User.
        pub user: String,
        /// Ip.
        pub ip: String,
        /// Command.
        pub cmd: String,
        /// Payload.
        pub data: String,
        /// Correlation.
        pub correlation_id: String,
        /// Causation.
        pub causation_id: Option<u64>,
        /// Metadata.
        pub metadata: String,
        /// Stream.
        pub stream: Option<String>,
        /// Stream version.
        pub stream_version: Option<u64>,
    }

    fn decode(bytes: &[u8]) -> Result<RedbRow> {
        let body = bytes
            .get(1..bytes.len().saturating_sub(4))
            .unwrap_or_default();
        let (row, _) = bincode::decode_from_slice::<RedbRow, _>(body, CONFIG)?;
        Ok(row)
    }

    impl Raw {
        /// Opens the file with the same cache size.
        pub fn open(path: &Path, setup: &Setup) -> Result<Self> {
            let mut b = Database::builder();
            b.set_cache_size(setup.redb().cache_size);
            Ok(Raw {
                db: b.open(path)?,
                indexes: setup.indexes,
                durability: match setup.durability {
                    Durability::Immediate => ::redb::Durability::Immediate,
                    Durability::Relaxed => ::redb::Durability::None,
                },
                relaxed_every: setup.redb().relaxed_max_commits.max(1),
                relaxed_pending: 0,
            })
        }

        /// Opens the file with redb's default settings.
        pub fn open_plain(path: &Path) -> Result<Self> {
            Ok(Raw {
                db: Database::open(path)?,
                indexes: IndexConfig::default(),
                durability: ::redb::Durability::Immediate,
                relaxed_every: 1,
                relaxed_pending: 0,
            })
        }

        /// Events in one write transaction, with their index entries.
        pub fn insert_batch(&mut self, es: &[BenchEvent]) -> Result<()> {
            self.insert_rows(es, None)
        }

        /// Appends `es` to `stream` in one write transaction, if the stream is at version
        /// `expected` (an error otherwise); an event without a correlation id gets a new one.
        pub fn append_to_stream(
            &mut self,
            stream: &str,
            expected: u64,
            es: &[BenchEvent],
        ) -> Result<()> {
            self.insert_rows(es, Some((stream, expected)))
        }

        /// A stream's rows, in order.
        pub fn load_stream(&self, stream: &str) -> Result<Vec<(u64, RedbRow)>> {
            let txn = self.db.begin_read()?;
            let idx = txn.open_table(STREAM_IDX)?;
            let events = txn.open_table(EVENTS)?;
            let mut rows = Vec::new();
            for entry in idx.range((stream, 0u64)..=(stream, u64::MAX))? {
                let id = entry?.0.value().1;
                rows.extend(Self::get_row(&events, id)?.map(|r| (id, r)));
            }
            Ok(rows)
        }

        /// The rows with ids in `ids`, in order.
        pub fn load_range(&self, ids: RangeInclusive<u64>) -> Result<Vec<(u64, RedbRow)>> {
            let txn = self.db.begin_read()?;
            let events = txn.open_table(EVENTS)?;
            let mut rows = Vec::new();
            for entry in events.range(ids)? {
                let (k, v) = entry?;
                rows.push((k.value(), decode(v.value())?));
            }
            Ok(rows)
        }

        /// Every row, in batches of 1,000 given to `each`; the sum of what it returns.
        pub fn read_all(&self, each: impl FnMut(&[(u64, RedbRow)]) -> u64) -> Result<u64> {
            self.batches(1..=u64::MAX, each)
        }

        /// Events in one write transaction, with their index entries, and their stream's
        /// entries when they go to `stream` (checked to be at the version given).
        fn insert_rows(&mut self, es: &[BenchEvent], stream: Option<(&str, u64)>) -> Result<()> {
            let mut txn = self.db.begin_write()?;
            // The same guarantee as our Relaxed mode: at most `relaxed_every` commits in a row
            // are not durable (our store's 100 ms timer never fires first at bench speeds).
            let mut durability = self.durability;
            if matches!(durability, ::redb::Durability::None) {
                self.relaxed_pending += 1;
                if self.relaxed_pending >= self.relaxed_every {
                    self.relaxed_pending = 0;
                    durability = ::redb::Durability::Immediate;
                }
            }
            txn.set_durability(durability)?;
            {
                if let Some((name, expected)) = stream {
                    let mut streams = txn.open_table(STREAMS)?;
                    let current = streams.get(name)?.map_or(0, |v| v.value());
                    anyhow::ensure!(current == expected, "conflict on {name}");
                    streams.insert(name, expected + es.len() as u64)?;
                }
                let corrs: Vec<std::borrow::Cow<'_, str>> = es.iter().map(correlation).collect();
                let mut events = txn.open_table(EVENTS)?;
                let mut id = events.last()?.map_or(0, |(k, _)| k.value());
                let first = id + 1;
                let now = now_ms();
                let mut buf = Vec::new();
                let mut ids = Vec::with_capacity(es.len());
                for (i, e) in es.iter().enumerate() {
                    id += 1;
                    let row = RowRef {
                        version: 1,
                        datetime: now,
                        user: &e.user,
                        ip: "",
                        cmd: e.cmd,
                        data: &e.data,
                        correlation_id: &corrs[i],
                        causation_id: None,
                        metadata: "{}",
                        stream: stream.map(|s| s.0),
                        stream_version: stream.map(|s| s.1 + 1 + i as u64),
                    };
                    buf.clear();
                    buf.push(1);
                    bincode::encode_into_std_write(&row, &mut buf, CONFIG)?;
                    let mut h = crc32fast::Hasher::new();
                    h.update(&id.to_le_bytes());
                    h.update(&buf);
                    let sum = h.finalize();
                    buf.extend_from_slice(&sum.to_le_bytes());
                    events.insert(id, buf.as_slice())?;
                    ids.push(id);
                }
                drop(events);
                if let Some((name, _)) = stream {
                    let mut t = txn.open_table(STREAM_IDX)?;
                    for id in first..=id {
                        t.insert((name, id), ())?;
                    }
                }
                let i = &self.indexes;
                let pairs = || ids.iter().copied().zip(es);
                if i.correlation_id {
                    let mut t = txn.open_table(IDX_CORRELATION)?;
                    for (id, c) in ids.iter().zip(&corrs) {
                        t.insert((c.as_ref(), *id), ())?;
                    }
                }
                if i.causation_id {
                    txn.open_table(IDX_CAUSATION)?;
                }
                if i.cmd {
                    let mut t = txn.open_table(IDX_CMD)?;
                    for (id, e) in pairs() {
                        t.insert((e.cmd, now, id), ())?;
                    }
                }
                if i.user {
                    let mut t = txn.open_table(IDX_USER)?;
                    for (id, e) in pairs() {
                        t.insert((e.user.as_str(), now, id), ())?;
                    }
                }
                if i.datetime {
                    let mut t = txn.open_table(IDX_DATETIME)?;
                    for (id, _) in pairs() {
                        t.insert((now, id), ())?;
                    }
                }
                if i.version {
                    let mut t = txn.open_table(IDX_VERSION)?;
                    for (id, _) in pairs() {
                        t.insert((1u32, id), ())?;
                    }
                }
                if i.correlation_cmd {
                    let mut t = txn.open_table(IDX_CORRELATION_CMD)?;
                    for ((id, e), c) in pairs().zip(&corrs) {
                        t.insert((c.as_ref(), e.cmd, id), ())?;
                    }
                }
                if i.user_datetime {
                    let mut t = txn.open_table(IDX_USER_DATETIME)?;
                    for (id, e) in pairs() {
                        t.insert((e.user.as_str(), now, id), ())?;
                    }
                }
            }
            txn.commit()?;
            Ok(())
        }

        /// One event, one transaction.
        pub fn insert_one(&mut self, e: &BenchEvent) -> Result<()> {
            self.insert_batch(std::slice::from_ref(e))
        }

        /// The rows with ids in `ids`, a read transaction per batch of 1,000 (as ours streams);
        /// `each` is given every batch, and the sum of what it returns is returned.
        fn batches(
            &self,
            ids: RangeInclusive<u64>,
            mut each: impl FnMut(&[(u64, RedbRow)]) -> u64,
        ) -> Result<u64> {
            let (mut next, mut n) = (*ids.start(), 0u64);
            loop {
                let txn = self.db.begin_read()?;
                let events = txn.open_table(EVENTS)?;
                let mut batch = Vec::with_capacity(1000);
                for entry in events.range(next..=*ids.end())?.take(1000) {
                    let (k, v) = entry?;
                    batch.push((k.value(), decode(v.value())?));
                }
                let Some((id, _)) = batch.last() else { break };
                next = id + 1;
                n += each(&batch);
                if batch.len() < 1000 {
                    break;
                }
            }
            Ok(n)
        }

        fn get_row(events: &::redb::ReadOnlyTable<u64, &[u8]>, id: u64) -> Result<Option<RedbRow>> {
            events.get(id)?.map(|v| decode(v.value())).transpose()
        }

        /// Newest-first page of an `(s, datetime, id)` index, skipping `offset`, up to `before`.
        fn dt_page(
            &self,
            def: TableDefinition<(&str, i64, u64), ()>,
            s: &str,
            offset: u64,
            before: Option<Cursor>,
        ) -> Result<usize> {
            let txn = self.db.begin_read()?;
            let idx = txn.open_table(def)?;
            let events = txn.open_table(EVENTS)?;
            let _count = idx
                .range((s, i64::MIN, 0u64)..=(s, i64::MAX, u64::MAX))?
                .count();
            let hi = match before {
                Some(c) => (s, c.datetime, c.id.saturating_sub(1)),
                None => (s, i64::MAX, u64::MAX),
            };
            let mut rows = Vec::with_capacity(100);
            for entry in idx
                .range((s, i64::MIN, 0u64)..=hi)?
                .rev()
                .skip(offset as usize)
                .take(100)
            {
                let id = entry?.0.value().2;
                rows.extend(Self::get_row(&events, id)?);
            }
            Ok(rows.len())
        }
    }

    impl Reads for Raw {
        fn get(&mut self, id: u64) -> Result<bool> {
            let txn = self.db.begin_read()?;
            let events = txn.open_table(EVENTS)?;
            Ok(Self::get_row(&events, id)?.is_some())
        }
        fn get_cached(&mut self, id: u64) -> Result<bool> {
            self.get(id)
        }
        fn correlation_page(&mut self, corr: &str, offset: u64) -> Result<usize> {
            let txn = self.db.begin_read()?;
            let idx = txn.open_table(IDX_CORRELATION)?;
            let events = txn.open_table(EVENTS)?;
            let _count = idx.range((corr, 0u64)..=(corr, u64::MAX))?.count();
            let mut rows = Vec::with_capacity(100);
            for entry in idx
                .range((corr, 0u64)..=(corr, u64::MAX))?
                .skip(offset as usize)
                .take(100)
            {
                let id = entry?.0.value().1;
                rows.extend(Self::get_row(&events, id)?);
            }
            Ok(rows.len())
        }
        fn user_page_offset(&mut self, user: &str, offset: u64) -> Result<usize> {
            self.dt_page(IDX_USER, user, offset, None)
        }
        fn user_page_after(&mut self, user: &str, cursor: Cursor) -> Result<usize> {
            self.dt_page(IDX_USER, user, 0, Some(cursor))
        }
        fn transaction(&mut self, corr: &str) -> Result<usize> {
            let txn = self.db.begin_read()?;
            let idx = txn.open_table(IDX_CORRELATION)?;
            let events = txn.open_table(EVENTS)?;
            let mut rows = Vec::new();
            for entry in idx.range((corr, 0u64)..=(corr, u64::MAX))? {
                let id = entry?.0.value().1;
                rows.extend(Self::get_row(&events, id)?);
            }
            Ok(rows.len())
        }
        fn cmd_page(&mut self, cmd: &str) -> Result<usize> {
            self.dt_page(IDX_CMD, cmd, 0, None)
        }
        fn time_page(&mut self, from: i64, to: i64) -> Result<usize> {
            let txn = self.db.begin_read()?;
            let idx = txn.open_table(IDX_DATETIME)?;
            let events = txn.open_table(EVENTS)?;
            let _count = idx.range((from, 0u64)..=(to, u64::MAX))?.count();
            let mut rows = Vec::with_capacity(100);
            for entry in idx.range((from, 0u64)..=(to, u64::MAX))?.rev().take(100) {
                let id = entry?.0.value().1;
                rows.extend(Self::get_row(&events, id)?);
            }
            Ok(rows.len())
        }
        fn stream_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
            self.batches(ids, |batch| batch.len() as u64)
        }
        fn replay_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
            self.batches(ids, |batch| {
                batch.iter().map(|r| u64::from(!r.1.cmd.is_empty())).sum()
            })
        }
    }
}

/// Plain `postgres` client code, on a store made by `PostgresBackend` (the same schema and
/// indexes) with the same session settings: what a hand-written service would do for the same
/// rows, ids gap-free from the same counter row.
pub mod postgres {
    use super::*;
    use ::postgres::types::ToSql;
    use ::postgres::{Client, NoTls, Statement};
    use std::collections::HashMap;

    const COLS: &str = r#"id, version, datetime, "user", ip, cmd, data, correlation_id, causation_id, metadata, stream, stream_version, checksum"#;

    /// One connection.
    pub struct Raw {
        client: Client,
        take_ids: Statement,
        insert: Statement,
        get: Statement,
        by_correlation: Statement,
        /// The read cases' statements, prepared once each.
        prepared: HashMap<String, Statement>,
    }

    /// A row as plain code reads it (texts decoded, checksum not checked).
    fn row(r: &::postgres::Row) -> Result<(u64, Row)> {
        let text =
            |i: usize| -> Result<String> { Ok(String::from_utf8(r.try_get::<_, Vec<u8>>(i)?)?) };
        Ok((
            r.try_get::<_, i64>(0)? as u64,
            Row {
                version: r.try_get::<_, i64>(1)? as u32,
                datetime: r.try_get(2)?,
                user: text(3)?,
                ip: text(4)?,
                cmd: text(5)?,
                data: r.try_get(6)?,
                correlation_id: text(7)?,
                causation_id: r.try_get::<_, Option<i64>>(8)?.map(|v| v as u64),
                metadata: r.try_get(9)?,
                stream: r
                    .try_get::<_, Option<Vec<u8>>>(10)?
                    .map(String::from_utf8)
                    .transpose()?,
                stream_version: r.try_get::<_, Option<i64>>(11)?.map(|v| v as u64),
                checksum: r.try_get::<_, i64>(12)? as u32,
            },
        ))
    }

    impl Raw {
        /// Connects to the store in `schema` on the server at `url`.
        pub fn open(url: &str, schema: &str, durability: Durability) -> Result<Self> {
            let mut client = Client::connect(url, NoTls)?;
            let commit = match durability {
                Durability::Immediate => "on",
                Durability::Relaxed => "off",
            };
            client.batch_execute(&format!(
                "SET search_path TO \"{schema}\"; SET enable_seqscan = off; SET jit = off; \
                 SET synchronous_commit = {commit}"
            ))?;
            let take_ids = client
                .prepare("UPDATE eventlite_head SET last_id = last_id + $1 RETURNING last_id")?;
            let insert = client.prepare(&format!(
                "INSERT INTO queue ({COLS}) SELECT * FROM unnest($1::int8[], $2::int8[], \
                 $3::int8[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[], $8::bytea[], \
                 $9::int8[], $10::text[], $11::bytea[], $12::int8[], $13::int8[])"
            ))?;
            let get = client.prepare(&format!("SELECT {COLS} FROM queue WHERE id = $1"))?;
            let by_correlation = client.prepare(&format!(
                "SELECT {COLS} FROM queue WHERE correlation_id = $1 ORDER BY id"
            ))?;
            Ok(Raw {
                client,
                take_ids,
                insert,
                get,
                by_correlation,
                prepared: HashMap::new(),
            })
        }

        /// `es` in one transaction: ids taken from the counter row, then the rows.
        pub fn insert_batch(&mut self, es: &[BenchEvent]) -> Result<()> {
            self.insert_rows(es, None)
        }

        /// Appends `es` to `stream` in one transaction, if the stream is at version
        /// `expected` (an error otherwise); an event without a correlation id gets a new one.
        pub fn append_to_stream(
            &mut self,
            stream: &str,
            expected: u64,
            es: &[BenchEvent],
        ) -> Result<()> {
            self.insert_rows(es, Some((stream, expected)))
        }

        /// The rows of `es` in one transaction: ids taken from the counter row (whose lock
        /// holds other appenders off), the stream's version checked when there is one, then
        /// the rows in one statement.
        fn insert_rows(&mut self, es: &[BenchEvent], stream: Option<(&str, u64)>) -> Result<()> {
            let current = match stream {
                Some(_) => {
                    Some(self.statement("SELECT max(stream_version) FROM queue WHERE stream = $1")?)
                }
                None => None,
            };
            let mut tx = self.client.transaction()?;
            let last: i64 = tx
                .query_one(&self.take_ids, &[&(es.len() as i64)])?
                .try_get(0)?;
            if let (Some((name, expected)), Some(current)) = (stream, &current) {
                let at: Option<i64> = tx.query_one(current, &[&name.as_bytes()])?.try_get(0)?;
                anyhow::ensure!(at.unwrap_or(0) as u64 == expected, "conflict on {name}");
            }
            let first = last as u64 + 1 - es.len() as u64;
            let now = now_ms();
            let corrs: Vec<_> = es.iter().map(correlation).collect();
            let n = es.len();
            let (mut id, mut version, mut datetime, mut checksum) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut user, mut ip, mut cmd, mut corr) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut data, mut metadata) = (Vec::with_capacity(n), Vec::with_capacity(n));
            let (mut names, mut versions) = (Vec::with_capacity(n), Vec::with_capacity(n));
            let causation = vec![None::<i64>; n];
            for (i, (e, c)) in es.iter().zip(&corrs).enumerate() {
                let mut f = fields(first + i as u64, e, now);
                f.correlation_id = c;
                let at = stream.map(|(name, expected)| (name, expected + 1 + i as u64));
                f.stream = at.map(|(name, _)| name);
                f.stream_version = at.map(|(_, v)| v);
                checksum.push(i64::from(f.checksum()));
                id.push((first + i as u64) as i64);
                version.push(1i64);
                datetime.push(now);
                user.push(e.user.as_bytes());
                ip.push(&b""[..]);
                cmd.push(e.cmd.as_bytes());
                data.push(e.data.as_str());
                corr.push(c.as_bytes());
                metadata.push("{}");
                names.push(at.map(|(name, _)| name.as_bytes()));
                versions.push(at.map(|(_, v)| v as i64));
            }
            tx.execute(
                &self.insert,
                &[
                    &id, &version, &datetime, &user, &ip, &cmd, &data, &corr, &causation,
                    &metadata, &names, &versions, &checksum,
                ],
            )?;
            tx.commit()?;
            Ok(())
        }

        /// A stream's rows, in order.
        pub fn load_stream(&mut self, stream: &str) -> Result<Vec<(u64, Row)>> {
            let sql = format!("SELECT {COLS} FROM queue WHERE stream = $1 ORDER BY stream_version");
            self.rows(&sql, &[&stream.as_bytes()])
        }

        /// Every row, in batches of 1,000 given to `each`; the sum of what it returns.
        pub fn read_all(&mut self, each: impl FnMut(&[(u64, Row)]) -> u64) -> Result<u64> {
            self.batches(1..=i64::MAX as u64, each)
        }

        /// The event with this id, if any.
        pub fn get(&mut self, id: u64) -> Result<Option<Row>> {
            self.client
                .query_opt(&self.get, &[&(id as i64)])?
                .map(|r| row(&r).map(|(_, r)| r))
                .transpose()
        }

        /// A correlation's events, in id order.
        pub fn transaction(&mut self, corr: &str) -> Result<Vec<Row>> {
            self.client
                .query(&self.by_correlation, &[&corr.as_bytes()])?
                .iter()
                .map(|r| row(r).map(|(_, r)| r))
                .collect()
        }

        fn statement(&mut self, sql: &str) -> Result<Statement> {
            if let Some(stmt) = self.prepared.get(sql) {
                return Ok(stmt.clone());
            }
            let stmt = self.client.prepare(sql)?;
            self.prepared.insert(sql.to_owned(), stmt.clone());
            Ok(stmt)
        }

        fn rows(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<(u64, Row)>> {
            let stmt = self.statement(sql)?;
            self.client.query(&stmt, p)?.iter().map(row).collect()
        }

        fn count(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<i64> {
            let stmt = self.statement(sql)?;
            Ok(self.client.query_one(&stmt, p)?.try_get(0)?)
        }

        /// The rows with ids in `ids`, a batch of 1,000 per query (keyset, as ours streams);
        /// `each` is given every batch, and the sum of what it returns is returned.
        fn batches(
            &mut self,
            ids: RangeInclusive<u64>,
            each: impl FnMut(&[(u64, Row)]) -> u64,
        ) -> Result<u64> {
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE id > $1 AND id <= $2 ORDER BY id LIMIT 1000"
            );
            keyset_batches(ids, |after, end| self.rows(&sql, &[&after, &end]), each)
        }
    }

    /// Each page with its total: the count, then the page, as two statements (plain code
    /// outside a transaction).
    impl Reads for Raw {
        fn get(&mut self, id: u64) -> Result<bool> {
            Ok(Raw::get(self, id)?.is_some())
        }
        fn get_cached(&mut self, id: u64) -> Result<bool> {
            Reads::get(self, id)
        }
        fn correlation_page(&mut self, corr: &str, offset: u64) -> Result<usize> {
            let corr = corr.as_bytes();
            self.count(
                "SELECT count(*) FROM queue WHERE correlation_id = $1",
                &[&corr],
            )?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE correlation_id = $1 ORDER BY id LIMIT 101 OFFSET $2"
            );
            Ok(self.rows(&sql, &[&corr, &(offset as i64)])?.len().min(100))
        }
        fn user_page_offset(&mut self, user: &str, offset: u64) -> Result<usize> {
            let user = user.as_bytes();
            self.count(r#"SELECT count(*) FROM queue WHERE "user" = $1"#, &[&user])?;
            let sql = format!(
                r#"SELECT {COLS} FROM queue WHERE "user" = $1 ORDER BY datetime DESC, id DESC LIMIT 101 OFFSET $2"#
            );
            Ok(self.rows(&sql, &[&user, &(offset as i64)])?.len().min(100))
        }
        fn user_page_after(&mut self, user: &str, c: Cursor) -> Result<usize> {
            let user = user.as_bytes();
            self.count(r#"SELECT count(*) FROM queue WHERE "user" = $1"#, &[&user])?;
            let sql = format!(
                r#"SELECT {COLS} FROM queue WHERE "user" = $1 AND (datetime, id) < ($2, $3) ORDER BY datetime DESC, id DESC LIMIT 101"#
            );
            let p: [&(dyn ToSql + Sync); 3] = [&user, &c.datetime, &(c.id as i64)];
            Ok(self.rows(&sql, &p)?.len().min(100))
        }
        fn transaction(&mut self, corr: &str) -> Result<usize> {
            Ok(Raw::transaction(self, corr)?.len())
        }
        fn cmd_page(&mut self, cmd: &str) -> Result<usize> {
            let cmd = cmd.as_bytes();
            self.count("SELECT count(*) FROM queue WHERE cmd = $1", &[&cmd])?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE cmd = $1 ORDER BY datetime DESC, id DESC LIMIT 101"
            );
            Ok(self.rows(&sql, &[&cmd])?.len().min(100))
        }
        fn time_page(&mut self, from: i64, to: i64) -> Result<usize> {
            self.count(
                "SELECT count(*) FROM queue WHERE datetime >= $1 AND datetime <= $2",
                &[&from, &to],
            )?;
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE datetime >= $1 AND datetime <= $2 \
                 ORDER BY datetime DESC, id DESC LIMIT 101"
            );
            Ok(self.rows(&sql, &[&from, &to])?.len().min(100))
        }
        fn stream_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
            self.batches(ids, |batch| batch.len() as u64)
        }
        fn replay_ids(&mut self, ids: RangeInclusive<u64>) -> Result<u64> {
            self.batches(ids, |batch| {
                batch.iter().map(|r| u64::from(!r.1.cmd.is_empty())).sum()
            })
        }
    }
}
