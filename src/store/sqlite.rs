//! The embedded SQLite event store: the same log, idempotency record, stream heads and
//! alignment projection as `postgres`, with the same guarantees and errors, in one file
//! and no database server — what `accord serve` runs on by default.
//!
//! Writers: SQLite admits one write transaction per database file at a time, and a
//! writer that finds the lock taken can only sleep and poll (the busy handler) until a
//! timeout ends in "database is locked". So the store does not let its own commands race
//! for that lock: every write (a command, a stream rebuild) runs on the one write
//! connection, owned by a tokio `Mutex` — FIFO, so writers queue fairly and never see
//! SQLite's lock — and is spawned as its own task, so a caller that goes away (a gRPC
//! request cancelled mid-command) cannot release the mutex before its transaction has
//! committed or rolled back. Against other processes on the same file (say `accord
//! rebuild-projections` next to a running server), each write transaction starts with
//! `BEGIN IMMEDIATE`: it takes the write lock before it reads the stream head, so it
//! never has to upgrade a read snapshot to a write (which WAL refuses at once, without
//! waiting), and the busy timeout waits for the other process. A busy error that outlasts
//! it is retried, then reported as `Unavailable`, never as a raw error.
//!
//! Readers use their own pool. WAL mode lets them read a consistent snapshot while the
//! writer appends, so queries never wait for commands.
//!
//! Pragmas, per connection: `journal_mode=WAL` (concurrent readers, one fsync per commit);
//! `synchronous=FULL` — in WAL mode, NORMAL can lose the last acknowledged commands on a
//! power cut or OS crash; an audit log that has told a caller "recorded at position N"
//! must not, just as PostgreSQL's default `synchronous_commit=on` does not, and one fsync
//! per command is cheap at an embedded store's write rate; `foreign_keys=ON` (the schema
//! declares none today, so a future one is enforced); `busy_timeout` of five seconds.
//!
//! Readers of the global log never skip a late commit: positions are assigned inside the
//! one write transaction that may exist, and it commits before the next writer can assign
//! any, so commit order is position order and every snapshot holds a prefix of the log
//! (see `read_all`). The cursor's `tx_id` is always 0 here.
//!
//! Text search (`list`) uses LIKE, which in SQLite ignores case for ASCII letters only;
//! PostgreSQL's ILIKE also folds other letters ("É" matches "é" there, not here).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{
    QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction,
    migrate::{MigrateError, Migrator},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous},
};
use tokio::sync::Mutex;
use tracing::{error, warn};
use uuid::Uuid;

use super::audit::{self, ImportSink, ImportedCommand, LogFold, RawCheckpoint, VerifyKey, VerifyPage};
use super::backend::{Audit, Backend, Heads, Import, ImportLines, Reads, Rebuild};
use super::batch::{AppendRefused, Appended, Batch};
use super::batch::{HeadRows, StoredCommand};
use super::fold::FoldedHead;
use super::note::CheckpointSigner;
use super::rows::{
    ColumnOf, EVENT_COLUMNS, SqlErrors, StoredRow, decode_checkpoint, decode_command, decode_event, decode_events,
    decode_head, decode_tree_event, decode_view, decode_views, decode_witnesses, witness_bounds, witness_condition,
};
use super::*;
use crate::domain::{AlignmentView, DomainError};
use serde::de::DeserializeOwned;

/// The embedded SQLite migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a query waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for concurrent readers (each is one SQLite handle on its own thread).
const READERS: u32 = 8;

/// How many times a write is tried when another process holds the write lock past the
/// busy timeout, or wrote the same command, key or stream version first.
const ATTEMPTS: usize = 3;

/// Every write transaction takes the write lock up front (see the module comment).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The readers' connections.
    pool: SqlitePool,
    /// The single write connection (a pool of one, so it reconnects if it breaks); only
    /// the holder of this lock writes.
    writer: Arc<Mutex<SqlitePool>>,
    /// The same write pool, read without the lock for its connection counts.
    write_pool: SqlitePool,
}

impl SqliteStore {
    /// Opens the database at `path`, creating its folder and the file if missing, and
    /// applies the migrations. A file that is not an SQLite database is `Corrupt`; a
    /// location that cannot be created or written is `Unavailable`; both name the path.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the folder {} of the SQLite database: {e}",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The writer connects first: it creates the file and switches it to WAL, which
        // is a property of the file, so the readers need not set it again.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone().create_if_missing(true).journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(|e| open_error(path, e))?;
        MIGRATOR.run(&writer).await.map_err(|e| match e {
            MigrateError::Execute(e) => open_error(path, e),
            other => StoreError::Corrupt(format!("migrations of {}: {other}", path.display())),
        })?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| open_error(path, e))?;
        Ok(Self { pool, writer: Arc::new(Mutex::new(writer.clone())), write_pool: writer })
    }

    /// The readers' pool. Writes through it bypass the store's writer lock; they are
    /// safe (SQLite serialises them) but may wait for the busy timeout.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `work` on the write connection, as the only writer of this store, in its own
    /// task so that it finishes even if the caller stops waiting.
    async fn write<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(SqlitePool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let task = tokio::spawn(async move {
            let pool = writer.lock().await;
            work(pool.clone()).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(StoreError::Unavailable("the store is shutting down".into())),
            Err(e) => {
                error!(error = %e, "SQLite write task failed");
                Err(StoreError::Database(sqlx::Error::Protocol(format!("the write task failed: {e}"))))
            }
        }
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn sqlite(&self) -> Option<&SqliteStore> {
        Some(self)
    }

    /// Connections of the readers' pool and the write connection, counted together.
    fn pool_stats(&self) -> PoolStats {
        PoolStats::of(&self.pool).plus(PoolStats::of(&self.write_pool))
    }

    /// None: a command waits for the one writer, however long the queue before it.
    fn query_timeout(&self) -> Option<Duration> {
        None
    }

    /// A trivial query on a reader's connection: the file is still there to be read.
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(map_sqlx)
    }
}

// ---- Reads ------------------------------------------------------------------------------

#[async_trait]
impl Reads for SqliteStore {
    async fn alignment(&self, target: &InitiativeRef) -> Result<Option<AlignmentView>, StoreError> {
        let sql = match target {
            InitiativeRef::Id(_) => "SELECT view FROM alignment WHERE initiative_id = ?1",
            InitiativeRef::Key(_) => "SELECT view FROM alignment WHERE key = ?1",
        };
        let row = sqlx::query(sql).bind(target_text(target)).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
        row.map(|row| decode_view(&row)).transpose()
    }

    async fn list(
        &self,
        filter: &ListFilter,
        after_key: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AlignmentView>, StoreError> {
        let text = filter.text_pattern();
        let rows = sqlx::query(
            r"SELECT view FROM alignment
             WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(alignment.outstanding_functions) AS f
                                           WHERE f.value = ?2))
               AND (?3 IS NULL OR stage = ?3)
               AND (?4 IS NULL OR owner = ?4)
               AND (?5 IS NULL OR key LIKE ?5 ESCAPE '\' OR title LIKE ?5 ESCAPE '\')
               AND (?6 OR NOT archived)
               AND (?7 IS NULL OR key > ?7)
             ORDER BY key
             LIMIT ?8",
        )
        .bind(&filter.status)
        .bind(&filter.pending_function)
        .bind(&filter.stage)
        .bind(&filter.owner)
        .bind(text)
        .bind(filter.include_archived)
        .bind(after_key)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        decode_views(&rows)
    }

    async fn awaiting(&self, principal: &Principal) -> Result<Vec<AlignmentView>, StoreError> {
        let rows = sqlx::query(
            "SELECT view FROM alignment
              WHERE EXISTS (SELECT 1 FROM json_each(alignment.awaiting) AS a WHERE a.value = ?1)
              ORDER BY key",
        )
        .bind(principal.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        decode_views(&rows)
    }

    async fn read_stream(
        &self,
        stream_id: Uuid,
        from_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version >= ?2 ORDER BY stream_version LIMIT ?3"
        ))
        .bind(stream_id.to_string())
        .bind(from_version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        decode_events(&rows)
    }

    async fn sign_off_events(
        &self,
        stream: InitiativeId,
        decision: DecisionId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = ?1 AND event_type IN ('SignOffRecorded', 'SignOffRevoked')
                AND json_extract(payload, '$.decision_id') = ?2
              ORDER BY stream_version"
        ))
        .bind(stream.0.to_string())
        .bind(decision.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        decode_events(&rows)
    }

    /// The global log after `after`, in commit order, with the cursor of each event.
    ///
    /// Ordering by position is commit order here, so this never skips a late commit: a
    /// position is assigned only inside a write transaction, SQLite admits one at a time
    /// (across processes too), and it commits or rolls back before the next one assigns
    /// anything, always above every committed position. So the events a snapshot holds are
    /// a prefix of the log — a writer in flight is not yet in it, and everything it adds
    /// will come after what this read returns.
    async fn read_all(&self, after: GlobalCursor, limit: i64) -> Result<Vec<(GlobalCursor, StoredEvent)>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"))
                .bind(after.position)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                let event = decode_event(row)?;
                Ok((GlobalCursor { tx_id: 0, position: event.position }, event))
            })
            .collect()
    }
}

// ---- Rebuilds ---------------------------------------------------------------------------

#[async_trait]
impl Rebuild for SqliteStore {
    async fn stream_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let streams: Vec<String> = sqlx::query_scalar("SELECT DISTINCT stream_id FROM events ORDER BY stream_id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        streams.iter().map(|stream| parse_uuid("stream_id", stream)).collect()
    }

    /// On the one writer: commands queue behind one initiative's rebuild at a time.
    async fn rebuild_stream(&self, stream_id: Uuid) -> Result<(), StoreError> {
        self.write(move |pool| async move { attempts(|| rebuild_stream(&pool, stream_id)).await }).await
    }
}

// ---- Audit: as-of reads, resuming the global log, verification, checkpoints, import ----

#[async_trait]
impl Audit for SqliteStore {
    async fn read_stream_until(&self, stream_id: Uuid, until: Until) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = match until {
            Until::Version(version) => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                      WHERE stream_id = ?1 AND stream_version <= ?2
                      ORDER BY stream_version"
                ))
                .bind(stream_id.to_string())
                .bind(i64::try_from(version).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
            }
            Until::Time(time) => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                      WHERE stream_id = ?1
                        AND stream_version < COALESCE((SELECT min(stream_version) FROM events
                                                        WHERE stream_id = ?1 AND recorded_at > ?2),
                                                      9223372036854775807)
                      ORDER BY stream_version"
                ))
                .bind(stream_id.to_string())
                .bind(time.timestamp_micros())
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(map_sqlx)?;
        decode_events(&rows)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(u64::try_from(head).unwrap_or_default())
    }

    /// The cursor after global position `after`: position order is commit order here, so
    /// the cursor is the position itself — except past the head, where it is the head
    /// ("now": the read is empty, then returns the events appended from then on, whose
    /// positions are above the head but may be below `after`).
    async fn cursor_after_position(&self, after: u64) -> Result<GlobalCursor, StoreError> {
        let head: Option<i64> =
            sqlx::query_scalar("SELECT max(position) FROM events").fetch_one(&self.pool).await.map_err(map_sqlx)?;
        let head = head.unwrap_or(0);
        let position = i64::try_from(after).unwrap_or(i64::MAX).min(head);
        Ok(GlobalCursor { tx_id: 0, position })
    }

    /// One page of a verification, by (stream id, version) through its unique index, with
    /// its streams' witnesses, in one read transaction (one snapshot).
    async fn verify_page(&self, only: Option<Uuid>, after: VerifyKey) -> Result<VerifyPage, StoreError> {
        verify_page(&self.pool, only, after).await
    }

    /// The log tree is read in position order, which is commit order here.
    async fn tree_page(&self, after: GlobalCursor) -> Result<Vec<(GlobalCursor, audit::TreeEvent)>, StoreError> {
        tree_page(&self.pool, after.position, audit::VERIFY_PAGE).await
    }

    /// Records the next log-tree checkpoint (see `Store::create_checkpoint` and the PostgreSQL store's), in one
    /// write transaction: the single writer appends nothing meanwhile, so the log's end
    /// is one consistent point, and the events after the latest checkpoint are folded in
    /// position order, which is commit order here.
    async fn create_checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<CheckpointRecord, StoreError> {
        let signer = signer.cloned();
        self.write(move |pool| async move { attempts(|| create_checkpoint(&pool, signer.as_ref())).await }).await
    }

    async fn raw_checkpoints(&self) -> Result<Vec<RawCheckpoint>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter().map(decode_checkpoint).collect()
    }
}

#[async_trait]
impl Import for SqliteStore {
    /// Loads an export into this store if it holds no event (see `Store::import_stream`),
    /// in one write transaction on the single writer: positions 1, 2, … in the file's
    /// order, committed once at the end.
    async fn import(&self, lines: ImportLines) -> Result<ImportReport, StoreError> {
        self.write(move |pool| async move {
            let tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            let mut sink = SqliteImport { tx };
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut *sink.tx).await.map_err(map_sqlx)?;
            if count > 0 {
                return Err(DomainError::precondition(format!("the store is not empty: {count} events")).into());
            }
            let report = audit::run_import(lines, &mut sink).await?;
            sink.tx.commit().await.map_err(map_sqlx)?;
            Ok(report)
        })
        .await
    }
}

/// The stored columns of a checkpoint (see `decode_checkpoint`); the resume point of the
/// log is a position alone here (see the module comment).
const CHECKPOINT_COLUMNS: &str =
    "id, created_at, tree, streams, events, root, heads, frontier, 0 AS resume_tx, resume_position, note";

/// At most `limit` events after `after` in position order (commit order here), with
/// only what the log tree needs.
async fn tree_page<'c, E>(
    executor: E,
    after: i64,
    limit: i64,
) -> Result<Vec<(GlobalCursor, audit::TreeEvent)>, StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let rows = sqlx::query(
        "SELECT position, stream_id, stream_version, hash FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(executor)
    .await
    .map_err(map_sqlx)?;
    rows.iter()
        .map(|row| {
            let event = decode_tree_event(row)?;
            Ok((GlobalCursor { tx_id: 0, position: event.position }, event))
        })
        .collect()
}

/// One page of a verification, in one read transaction: whole streams after `after` in
/// (stream id, version) order, and their witnesses (see `audit::VerifyPage`).
async fn verify_page(pool: &SqlitePool, only: Option<Uuid>, after: VerifyKey) -> Result<VerifyPage, StoreError> {
    let mut tx = pool.begin().await.map_err(map_sqlx)?;
    let after_text = after.map(|id| id.to_string());
    let events = match only {
        Some(stream) => {
            sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 ORDER BY stream_version"))
                .bind(stream.to_string())
                .fetch_all(&mut *tx)
                .await
        }
        None => {
            // A plain range (no "IS NULL OR"), so that every page is an index range scan.
            let from = if after_text.is_some() { "WHERE stream_id > ?2" } else { "" };
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events {from} ORDER BY stream_id, stream_version LIMIT ?1");
            let query = sqlx::query(&sql).bind(audit::VERIFY_PAGE);
            match &after_text {
                Some(after) => query.bind(after).fetch_all(&mut *tx).await,
                None => query.fetch_all(&mut *tx).await,
            }
        }
    }
    .map_err(map_sqlx)?;
    let mut events = decode_events(&events)?;
    let more = only.is_none() && events.len() as i64 >= audit::VERIFY_PAGE;
    if more && let Some((stream, version)) = events.last().map(|e| (e.stream_id, e.stream_version)) {
        // The rest of the page's last stream, so that the page ends with a whole stream.
        let rest = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version"
        ))
        .bind(stream.to_string())
        .bind(version)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        for row in &rest {
            events.push(decode_event(row)?);
        }
    }
    let bounds = witness_bounds(only, after, more, &events);
    let within = |column: &str| witness_condition(&bounds, column, |n| format!("?{n}"), "1");
    let heads_sql = format!(
        "SELECT stream_id, version, head_hash, last_position, json_extract(state, '$.version') AS state_version
           FROM streams WHERE {}",
        within("stream_id")
    );
    let commands_sql = format!(
        "SELECT command_id, stream_id, stream_version, global_position FROM commands WHERE {}",
        within("stream_id")
    );
    let projections_sql = format!("SELECT initiative_id, version FROM alignment WHERE {}", within("initiative_id"));
    let (mut heads, mut commands, mut projections) =
        (sqlx::query(&heads_sql), sqlx::query(&commands_sql), sqlx::query(&projections_sql));
    for (_, bound) in &bounds {
        heads = heads.bind(bound.to_string());
        commands = commands.bind(bound.to_string());
        projections = projections.bind(bound.to_string());
    }
    let heads = heads.fetch_all(&mut *tx).await.map_err(map_sqlx)?;
    let commands = commands.fetch_all(&mut *tx).await.map_err(map_sqlx)?;
    let projections = projections.fetch_all(&mut *tx).await.map_err(map_sqlx)?;
    tx.commit().await.map_err(map_sqlx)?;
    let witnesses = decode_witnesses(&heads, &commands, &projections)?;
    Ok(VerifyPage { events, witnesses, more })
}

/// One attempt at a checkpoint (the caller holds the writer lock).
async fn create_checkpoint(pool: &SqlitePool, signer: Option<&CheckpointSigner>) -> Result<CheckpointRecord, Retry> {
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(fail)?;
    let previous = sqlx::query(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE tree = 'log' ORDER BY id DESC LIMIT 1"
    ))
    .fetch_optional(&mut *tx)
    .await
    .map_err(fail)?;
    let mut fold = match previous {
        Some(row) => LogFold::resume(decode_checkpoint(&row)?)?,
        None => LogFold::start(),
    };
    loop {
        let page = tree_page(&mut *tx, fold.cursor().position, audit::CHECKPOINT_PAGE).await?;
        for (cursor, event) in &page {
            fold.push(*cursor, event.stream_id, event.stream_version, &event.hash)?;
        }
        if (page.len() as i64) < audit::CHECKPOINT_PAGE {
            break;
        }
    }
    let planned = fold.plan(signer)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO checkpoints (created_at, tree, streams, events, root, heads, frontier, resume_position, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
    )
    .bind(planned.created_at.timestamp_micros())
    .bind(planned.tree.as_str())
    .bind(planned.streams)
    .bind(planned.events)
    .bind(planned.root.as_slice())
    .bind(encode_json(&planned.heads_json)?)
    .bind(encode_json(&planned.frontier_json)?)
    .bind(planned.resume.position)
    .bind(&planned.note)
    .fetch_one(&mut *tx)
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    Ok(planned.record(id))
}

/// Rows per multi-row INSERT of an import (SQLite allows 32,766 parameters a statement).
const IMPORT_ROWS: usize = 500;

/// An import's writes, in its one write transaction.
struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
}

impl ImportSink for SqliteImport {
    async fn events(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        for chunk in events.chunks(IMPORT_ROWS) {
            let payloads = chunk.iter().map(|e| encode_json(&e.payload)).collect::<Result<Vec<_>, _>>()?;
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, \
                 payload, actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash) ",
            );
            insert.push_values(chunk.iter().zip(payloads), |mut row, (event, payload)| {
                row.push_bind(event.position)
                    .push_bind(event.stream_id.to_string())
                    .push_bind(event.stream_version)
                    .push_bind(event.event_id.to_string())
                    .push_bind(event.event_type.as_str())
                    .push_bind(event.schema_version)
                    .push_bind(payload)
                    .push_bind(event.actor.as_str())
                    .push_bind(event.command_id.as_str())
                    .push_bind(event.correlation_id.as_str())
                    .push_bind(event.causation_id.as_str())
                    .push_bind(event.recorded_at.timestamp_micros())
                    .push_bind(event.prev_hash.as_slice())
                    .push_bind(event.hash.as_slice());
            });
            insert.build().execute(&mut *self.tx).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn commands(&mut self, commands: &[ImportedCommand]) -> Result<(), StoreError> {
        for chunk in commands.chunks(IMPORT_ROWS) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO commands (command_id, stream_id, fingerprint, stream_version, global_position, \
                 created_id, recorded_at) ",
            );
            insert.push_values(chunk, |mut row, command| {
                // No fingerprint: the request is not part of the log (`StoredCommand::replay`).
                row.push_bind(command.command_id.as_str())
                    .push_bind(command.stream_id.to_string())
                    .push("X''")
                    .push_bind(command.stream_version)
                    .push_bind(command.global_position)
                    .push_bind(command.created_id.map(|id| id.to_string()))
                    .push_bind(command.recorded_at.timestamp_micros());
            });
            insert.build().execute(&mut *self.tx).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn streams(&mut self, streams: &[FoldedHead]) -> Result<(), StoreError> {
        for head in streams {
            write_head(&mut self.tx, head).await.map_err(Retry::into_error)?;
        }
        Ok(())
    }
}

/// Runs a write until it succeeds, fails for good, or has been tried `ATTEMPTS` times.
async fn attempts<T, F, Fut>(mut run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Retry>>,
{
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        match run().await {
            Ok(done) => return Ok(done),
            Err(Retry::Fail(error)) => return Err(error),
            Err(Retry::Again(error)) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| StoreError::Unavailable("too many conflicting attempts".into())))
}

/// Rebuilds one stream's head and alignment row from its events, in one write transaction.
async fn rebuild_stream(pool: &SqlitePool, stream_id: Uuid) -> Result<(), Retry> {
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(fail)?;
    let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 ORDER BY stream_version"))
        .bind(stream_id.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?;
    let head = FoldedHead::refold(stream_id, &decode_events(&rows)?)?;
    write_head(&mut tx, &head).await?;
    tx.commit().await.map_err(fail)
}

/// Writes (inserts or replaces) a stream's head with its folded state, and its alignment
/// row.
async fn write_head(conn: &mut SqliteConnection, head: &FoldedHead) -> Result<(), Retry> {
    let (state, projection) = (&head.state, &head.projection);
    let stream = head.stream_id.to_string();
    let last_activity = state.last_activity.timestamp_micros();
    sqlx::query(
        "INSERT INTO streams (stream_id, key, version, head_hash, last_position, state, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (stream_id) DO UPDATE SET key = excluded.key, version = excluded.version,
             head_hash = excluded.head_hash, last_position = excluded.last_position,
             state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(&stream)
    .bind(state.key.as_str())
    .bind(head.version)
    .bind(&head.head_hash)
    .bind(head.last_position)
    .bind(encode_json(&projection.state_json)?)
    .bind(last_activity)
    .execute(&mut *conn)
    .await
    .map_err(fail)?;
    let (view, awaiting) = (&projection.view, &projection.awaiting);
    sqlx::query(
        "INSERT INTO alignment (initiative_id, key, title, owner, stage, status, archived,
                                outstanding_functions, awaiting, score, last_activity, version, view)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (initiative_id) DO UPDATE SET key = excluded.key, title = excluded.title,
             owner = excluded.owner, stage = excluded.stage, status = excluded.status,
             archived = excluded.archived, outstanding_functions = excluded.outstanding_functions,
             awaiting = excluded.awaiting, score = excluded.score, last_activity = excluded.last_activity,
             version = excluded.version, view = excluded.view",
    )
    .bind(&stream)
    .bind(state.key.as_str())
    .bind(&view.title)
    .bind(view.owner.as_str())
    .bind(view.stage.as_str())
    .bind(view.status.as_str())
    .bind(view.archived)
    .bind(encode_json(&view.outstanding_functions())?)
    .bind(encode_json(awaiting)?)
    .bind(view.score)
    .bind(last_activity)
    .bind(head.version)
    .bind(encode_json(&projection.view_json)?)
    .execute(&mut *conn)
    .await
    .map_err(fail)?;
    Ok(())
}

/// The version a state snapshot is at, read without decoding the rest.
#[derive(serde::Deserialize)]
struct SnapshotVersion {
    version: i64,
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode JSON: {e}")))
}

impl SqlErrors for SqliteRow {
    fn sql_error(error: sqlx::Error) -> StoreError {
        map_sqlx(error)
    }
}

/// SQLite keeps UUIDs as canonical hyphenated text, JSON as text and times as
/// microseconds since the epoch.
impl StoredRow for SqliteRow {
    fn uuid(&self, name: &str) -> Result<Uuid, StoreError> {
        let text: String = self.read(name)?;
        parse_uuid(name, &text)
    }

    fn optional_uuid(&self, name: &str) -> Result<Option<Uuid>, StoreError> {
        let text: Option<String> = self.read(name)?;
        text.map(|text| parse_uuid(name, &text)).transpose()
    }

    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<Result<T, String>, StoreError> {
        let text: String = self.read(name)?;
        Ok(serde_json::from_str(&text).map_err(|e| e.to_string()))
    }

    fn optional_json<T: DeserializeOwned>(&self, name: &str) -> Result<Result<Option<T>, String>, StoreError> {
        let text: Option<String> = self.read(name)?;
        Ok(text.map(|text| serde_json::from_str(&text)).transpose().map_err(|e| e.to_string()))
    }

    fn time(&self, name: &str) -> Result<Result<DateTime<Utc>, String>, StoreError> {
        let micros: i64 = self.read(name)?;
        Ok(DateTime::from_timestamp_micros(micros).ok_or_else(|| format!("{name} {micros} is out of range")))
    }
}

fn parse_uuid(column: &str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(text).map_err(|e| StoreError::Corrupt(format!("{column} {text:?} is not a UUID: {e}")))
}

/// The id or key a query looks an initiative up by, as stored.
fn target_text(target: &InitiativeRef) -> String {
    match target {
        InitiativeRef::Id(id) => id.0.to_string(),
        InitiativeRef::Key(key) => key.as_str().to_owned(),
    }
}

enum Retry {
    /// A transient conflict: run the write again from the start.
    Again(StoreError),
    Fail(StoreError),
}

impl From<StoreError> for Retry {
    fn from(error: StoreError) -> Self {
        Retry::Fail(error)
    }
}

impl Retry {
    /// The error, where the write is not retried.
    fn into_error(self) -> StoreError {
        match self {
            Retry::Again(error) | Retry::Fail(error) => error,
        }
    }
}

/// Busy (another process held the write lock past the timeout) and a concurrent first
/// use of a command id are transient; anything else fails the write.
fn fail(error: sqlx::Error) -> Retry {
    let transient = matches!(primary_code(&error), Some(SQLITE_BUSY | SQLITE_LOCKED))
        || unique_violation(&error) == Some("commands.command_id");
    if transient { Retry::Again(map_sqlx(error)) } else { Retry::Fail(map_sqlx(error)) }
}

// SQLite's primary result codes (https://www.sqlite.org/rescode.html).
const SQLITE_PERM: i32 = 3;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_NOTADB: i32 = 26;

/// The primary result code of a database error (sqlx reports the extended one).
fn primary_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(db) => db.code().and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff),
        _ => None,
    }
}

/// The columns of a violated UNIQUE or PRIMARY KEY constraint, as SQLite names them
/// ("streams.key"); SQLite has no constraint names to match on.
fn unique_violation(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            db.message().strip_prefix("UNIQUE constraint failed: ")
        }
        _ => None,
    }
}

/// Maps a database error: a busy or unusable database is `Unavailable`, a damaged file
/// `Corrupt`, the rest is internal (logged here in full; callers never see SQL).
pub fn map_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(error.to_string())
        }
        _ => match primary_code(&error) {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => {
                StoreError::Unavailable("the database is busy: another process kept its write lock too long".into())
            }
            Some(SQLITE_PERM | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN) => {
                StoreError::Unavailable(error.to_string())
            }
            Some(SQLITE_CORRUPT | SQLITE_NOTADB) => {
                StoreError::Corrupt(format!("the database file is damaged: {error}"))
            }
            _ => {
                warn!(error = %error, "database error");
                StoreError::Database(error)
            }
        },
    }
}

/// An error opening the database, with its path and SQLite's own words: what an operator
/// needs to fix it.
fn open_error(path: &Path, error: sqlx::Error) -> StoreError {
    let (path, detail) = (path.display(), error.to_string());
    match map_sqlx(error) {
        StoreError::Corrupt(_) => {
            StoreError::Corrupt(format!("{path} is not an SQLite database, or it is damaged: {detail}"))
        }
        StoreError::Unavailable(_) => {
            StoreError::Unavailable(format!("cannot open the SQLite database {path}: {detail}"))
        }
        other => other,
    }
}

// ---- The batch append (see `batch`) ---------------------------------------------------

#[async_trait]
impl Heads for SqliteStore {
    /// The heads of the streams with these ids or keys: each stream's snapshot and the
    /// events after it up to the head. (Events are never changed, so reading the
    /// tail after the head row, up to the head's version, is one consistent view.)
    async fn load_heads(&self, ids: &[Uuid], keys: &[String]) -> Result<Vec<HeadRows>, StoreError> {
        let mut heads = Vec::new();
        let wanted = ids.iter().map(|id| ("stream_id", id.to_string())).chain(keys.iter().map(|k| ("key", k.clone())));
        for (column, value) in wanted {
            let row = sqlx::query(&format!(
                "SELECT stream_id AS head_id, key, version, head_hash, state AS snapshot FROM streams WHERE {column} = ?1"
            ))
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
            let Some(row) = row else { continue };
            let mut head = decode_head(&row)?;
            if heads.iter().any(|other: &HeadRows| other.stream_id == head.stream_id) {
                continue;
            }
            let snapshot_version = head
                .snapshot
                .as_deref()
                .and_then(|json| serde_json::from_str::<SnapshotVersion>(json).ok())
                .map_or(0, |snapshot| snapshot.version);
            let tail = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version > ?2 AND stream_version <= ?3
                  ORDER BY stream_version"
            ))
            .bind(head.stream_id.to_string())
            .bind(snapshot_version)
            .bind(head.version)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
            head.tail = decode_events(&tail)?;
            heads.push(head);
        }
        Ok(heads)
    }

    async fn find_commands(&self, ids: &[String]) -> Result<Vec<(String, StoredCommand)>, StoreError> {
        let mut found = Vec::new();
        for id in ids {
            let row = sqlx::query(
                "SELECT command_id, stream_id, fingerprint, stream_version, global_position, created_id
                   FROM commands WHERE command_id = ?1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
            if let Some(row) = row {
                found.push(decode_command(&row)?);
            }
        }
        Ok(found)
    }

    /// Appends a batch in one write transaction, refusing it whole when a head moved, a
    /// command id is taken or a new key exists.
    async fn append_batch(&self, batch: &Batch) -> Result<Appended, AppendRefused> {
        let batch = batch.clone();
        let outcome = self
            .write(move |pool| async move {
                let mut tries = 0;
                loop {
                    match try_append_batch(&pool, &batch).await {
                        Err(BatchRetry::Busy(error)) if tries + 1 < ATTEMPTS => {
                            tries += 1;
                            let _ = error;
                        }
                        Err(BatchRetry::Busy(error)) => return Ok(Err(AppendRefused::Failed(error))),
                        Err(BatchRetry::Refused(refused)) => return Ok(Err(refused)),
                        Ok(appended) => return Ok(Ok(appended)),
                    }
                }
            })
            .await;
        match outcome {
            Ok(result) => result,
            Err(error) => Err(AppendRefused::Failed(error)),
        }
    }
}

enum BatchRetry {
    Busy(StoreError),
    Refused(AppendRefused),
}

fn batch_error(error: sqlx::Error) -> BatchRetry {
    match unique_violation(&error) {
        Some("commands.command_id") => BatchRetry::Refused(AppendRefused::CommandIdTaken),
        Some("streams.key" | "alignment.key" | "streams.stream_id") => BatchRetry::Refused(AppendRefused::KeyTaken),
        Some("events.stream_id, events.stream_version") => BatchRetry::Refused(AppendRefused::StaleHead),
        _ => match fail(error) {
            Retry::Again(error) => BatchRetry::Busy(error),
            Retry::Fail(error) => BatchRetry::Refused(AppendRefused::Failed(error)),
        },
    }
}

async fn try_append_batch(pool: &SqlitePool, batch: &Batch) -> Result<Appended, BatchRetry> {
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(batch_error)?;
    let expected =
        batch.heads.iter().map(|h| (h.stream_id, h.from)).chain(batch.unchanged.iter().map(|(id, v)| (*id, Some(*v))));
    for (stream_id, from) in expected {
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM streams WHERE stream_id = ?1")
            .bind(stream_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(batch_error)?;
        if version != from {
            return Err(BatchRetry::Refused(AppendRefused::StaleHead));
        }
    }
    let mut last_of_command: HashMap<&str, i64> = HashMap::new();
    let mut last_of_stream: HashMap<Uuid, i64> = HashMap::new();
    for event in &batch.events {
        let done = sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload,
                                 actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .bind(event.stream_id.to_string())
        .bind(event.stream_version)
        .bind(event.event_id.to_string())
        .bind(&event.event_type)
        .bind(event.schema_version)
        .bind(encode_json(&event.payload).map_err(|e| BatchRetry::Refused(e.into()))?)
        .bind(&event.actor)
        .bind(&event.command_id)
        .bind(&event.correlation_id)
        .bind(&event.causation_id)
        .bind(event.recorded_at.timestamp_micros())
        .bind(&event.prev_hash)
        .bind(&event.hash)
        .execute(&mut *tx)
        .await
        .map_err(batch_error)?;
        let position = done.last_insert_rowid();
        last_of_command.insert(&event.command_id, position);
        last_of_stream.insert(event.stream_id, position);
    }
    let mut appended = Vec::with_capacity(batch.commands.len());
    for command in &batch.commands {
        let position = last_of_command.get(command.command_id.as_str()).copied().unwrap_or_default();
        sqlx::query(
            "INSERT INTO commands (command_id, stream_id, fingerprint, stream_version, global_position, created_id, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&command.command_id)
        .bind(command.stream_id.to_string())
        .bind(&command.fingerprint)
        .bind(command.stream_version)
        .bind(position)
        .bind(command.created_id.map(|id| id.to_string()))
        .bind(command.recorded_at.timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(batch_error)?;
        appended.push((command.command_id.clone(), position));
    }
    for head in &batch.heads {
        let stream = head.stream_id.to_string();
        let position = last_of_stream.get(&head.stream_id).copied().unwrap_or_default();
        let at = head.at.timestamp_micros();
        sqlx::query(
            // A moved head without a new snapshot keeps the one it has.
            "INSERT INTO streams (stream_id, key, version, head_hash, last_position, state, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, (SELECT state FROM streams WHERE stream_id = ?1)), ?7)
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, head_hash = excluded.head_hash,
                 last_position = excluded.last_position, state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(&stream)
        .bind(&head.key)
        .bind(head.version)
        .bind(&head.hash)
        .bind(position)
        .bind(&head.state)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(batch_error)?;
        let row = &head.row;
        let json = |value: &Vec<String>| encode_json(value).map_err(|e| BatchRetry::Refused(e.into()));
        sqlx::query(
            "INSERT INTO alignment (initiative_id, key, title, owner, stage, status, archived,
                                    outstanding_functions, awaiting, score, last_activity, version, view)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (initiative_id) DO UPDATE SET title = excluded.title, owner = excluded.owner,
                 stage = excluded.stage, status = excluded.status, archived = excluded.archived,
                 outstanding_functions = excluded.outstanding_functions, awaiting = excluded.awaiting,
                 score = excluded.score, last_activity = excluded.last_activity, version = excluded.version,
                 view = excluded.view",
        )
        .bind(&stream)
        .bind(&head.key)
        .bind(&row.title)
        .bind(&row.owner)
        .bind(&row.stage)
        .bind(&row.status)
        .bind(row.archived)
        .bind(json(&row.outstanding)?)
        .bind(json(&row.awaiting)?)
        .bind(row.score)
        .bind(at)
        .bind(head.version)
        .bind(encode_json(&row.view).map_err(|e| BatchRetry::Refused(e.into()))?)
        .execute(&mut *tx)
        .await
        .map_err(batch_error)?;
    }
    tx.commit().await.map_err(batch_error)?;
    Ok(appended)
}

#[cfg(test)]
mod tests {
    //! The SQLite store's guarantees, against real database files in temporary folders:
    //! opening (and refusing what cannot be opened), the append-only log, the command
    //! cycle with its hash chain, idempotency, version conflicts, concurrent writers in
    //! one process and across two, the gap-free global log, queries and rebuilds.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use sha2::{Digest, Sha256};
    use sqlx::Row;
    use tempfile::TempDir;

    use super::*;
    use crate::app::{App, AppLimits};
    use crate::domain::Command;
    use crate::domain::event::DecisionContent;
    use crate::domain::event::SCHEMA_VERSION;
    use crate::domain::values::{FeedbackKind, FeedbackSource, Function, InitiativeKey, Role, Stage, Verdict};
    use crate::store::Store;

    const OWNER: &str = "olivia@example.com";
    const DRIVER: &str = "dana@example.com";
    const ENG: &str = "erin@example.com";
    const DES: &str = "desmond@example.com";
    const BIZ: &str = "bianca@example.com";

    struct Fixture {
        dir: TempDir,
        store: SqliteStore,
        /// The service's command cycle on `store`, as a process runs it.
        app: App,
    }

    fn app_on(store: &SqliteStore) -> App {
        App::start(Store::from(store.clone()), AppLimits::default())
    }

    /// An initiative's state now (snapshot and the events after it).
    async fn state_of(store: &SqliteStore, target: &InitiativeRef) -> Option<Initiative> {
        Store::from(store.clone()).initiative(target).await.expect("query")
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().expect("temporary folder");
            let store = SqliteStore::open(&dir.path().join("accord.db")).await.expect("open store");
            let app = app_on(&store);
            Self { dir, store, app }
        }

        /// The store as the service holds it.
        fn shared(&self) -> Store {
            Store::from(self.store.clone())
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("accord.db")
        }

        async fn run(&self, actor: &str, target: Option<&InitiativeRef>, command: Command) -> CommandOutcome {
            self.app.execute(envelope(actor, target, command)).await.expect("command succeeds")
        }

        async fn refuse(&self, envelope: &CommandEnvelope) -> StoreError {
            self.app.execute(envelope.clone()).await.expect_err("command is refused")
        }

        /// Creates an initiative with a driver and one approver per default function.
        async fn team(&self, key: &str) -> InitiativeRef {
            let target = InitiativeRef::Id(self.run(OWNER, None, create(key)).await.initiative_id);
            self.run(OWNER, Some(&target), assign(DRIVER, "product", Role::Driver)).await;
            for (who, function) in [(ENG, "engineering"), (DES, "design"), (BIZ, "business")] {
                self.run(DRIVER, Some(&target), assign(who, function, Role::Approver)).await;
            }
            target
        }

        async fn count(&self, table: &str) -> i64 {
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(self.store.pool())
                .await
                .expect("count rows")
        }
    }

    fn who(principal: &str) -> Principal {
        Principal::parse("principal", principal).expect("valid principal")
    }

    fn func(name: &str) -> Function {
        Function::parse("function", name).expect("valid function")
    }

    fn key(key: &str) -> InitiativeRef {
        InitiativeRef::Key(InitiativeKey::parse("key", key).expect("valid key"))
    }

    /// A command from `actor` with a fresh command id and a fingerprint of the request.
    fn envelope(actor: &str, target: Option<&InitiativeRef>, command: Command) -> CommandEnvelope {
        let command_id = CommandId::generate();
        let mut fingerprint = Sha256::new();
        fingerprint.update(actor.as_bytes());
        fingerprint.update(format!("{target:?} {command:?}").as_bytes());
        CommandEnvelope {
            target: target.cloned(),
            command,
            actor: who(actor),
            authority: crate::domain::Authority::Member,
            correlation_id: format!("corr-{}", command_id.as_str()),
            causation_id: format!("cause-{}", command_id.as_str()),
            command_id,
            expected_version: None,
            fingerprint: fingerprint.finalize().into(),
        }
    }

    fn create(key: &str) -> Command {
        create_as(key, &format!("Initiative {key}"), None, None)
    }

    fn create_as(key: &str, title: &str, owner: Option<&str>, stage: Option<Stage>) -> Command {
        Command::CreateInitiative {
            id: InitiativeId::new_v7(),
            key: InitiativeKey::parse("key", key).expect("valid key"),
            title: title.into(),
            summary: "A faster checkout".into(),
            owner: owner.map(who),
            stage,
            required_functions: None,
        }
    }

    fn assign(principal: &str, function: &str, role: Role) -> Command {
        Command::AssignStakeholder { principal: who(principal), function: func(function), role }
    }

    fn propose(decision_id: DecisionId) -> Command {
        Command::ProposeDecision {
            decision_id,
            content: DecisionContent {
                title: "Use Stripe for payments".into(),
                context: "Payments are slow".into(),
                options: vec!["Stripe".into(), "Adyen".into()],
                proposal: "Stripe".into(),
                rationale: "Best fit".into(),
            },
            required_functions: None,
            supersedes: None,
        }
    }

    fn sign(decision_id: DecisionId, function: &str, verdict: Verdict) -> Command {
        Command::RecordSignOff {
            decision_id,
            function: func(function),
            verdict,
            reason: if verdict == Verdict::Reject { "too expensive".into() } else { String::new() },
            comment: String::new(),
            revision: None,
        }
    }

    fn comment(function: &str) -> Command {
        Command::RecordFeedback {
            feedback_id: FeedbackId::new_v7(),
            decision_id: None,
            function: func(function),
            kind: FeedbackKind::Comment,
            source: FeedbackSource::Internal,
            body: "a comment".into(),
        }
    }

    /// Checks versions 1..=n and every hash of a whole stream, recomputed from what was
    /// read back; returns the head hash.
    #[track_caller]
    fn verify_chain(events: &[StoredEvent]) -> Vec<u8> {
        let mut prev = ZERO_HASH.to_vec();
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.stream_version, i as i64 + 1, "contiguous versions");
            assert_eq!(event.prev_hash, prev, "prev_hash of version {}", event.stream_version);
            let hash = event_hash(&event.prev_hash, &event.content());
            assert_eq!(event.hash, hash.to_vec(), "hash of version {}", event.stream_version);
            prev = event.hash.clone();
        }
        prev
    }

    async fn stream_of(store: &SqliteStore, target: &InitiativeRef) -> Vec<StoredEvent> {
        let state = state_of(store, target).await.expect("initiative exists");
        store.read_stream(state.id.0, 1, 10_000).await.expect("read stream")
    }

    async fn pragma(store: &SqliteStore, name: &str) -> String {
        let row = sqlx::query(&format!("PRAGMA {name}")).fetch_one(store.pool()).await.expect("pragma");
        row.try_get::<String, _>(0).or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string())).expect("value")
    }

    #[tokio::test]
    async fn open_creates_the_folder_and_the_file_and_opening_again_keeps_everything() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("nested").join("deeper").join("accord.db");
        let store = SqliteStore::open(&path).await.expect("open creates folder and file");
        assert!(path.is_file(), "the database file exists");
        assert_eq!(pragma(&store, "journal_mode").await, "wal");
        assert_eq!(pragma(&store, "synchronous").await, "2", "FULL");
        assert_eq!(pragma(&store, "foreign_keys").await, "1");
        assert_eq!(pragma(&store, "busy_timeout").await, "5000");
        let outcome = app_on(&store).execute(envelope(OWNER, None, create("CHECKOUT-42"))).await.expect("create");
        store.pool().close().await;

        let again = SqliteStore::open(&path).await.expect("open is idempotent");
        let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(again.pool())
            .await
            .expect("migrations table");
        assert_eq!(migrations, MIGRATOR.iter().count() as i64, "migrations are applied once");
        let view = again.alignment(&key("CHECKOUT-42")).await.expect("query").expect("kept");
        assert_eq!((view.initiative_id, view.version), (outcome.initiative_id, 1));
    }

    #[tokio::test]
    async fn open_refuses_a_file_that_is_not_an_sqlite_database_and_leaves_it_alone() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("accord.db");
        let garbage = "this is a shopping list, not a database\n".repeat(200);
        std::fs::write(&path, &garbage).expect("write garbage");
        match SqliteStore::open(&path).await {
            Err(StoreError::Corrupt(reason)) => {
                assert!(reason.contains(&path.display().to_string()), "names the file: {reason}");
                assert!(reason.contains("not an SQLite database"), "says what is wrong: {reason}");
            }
            other => panic!("expected a corrupt-file error, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read back"), garbage, "the file is untouched");
    }

    #[tokio::test]
    async fn open_reports_a_location_it_cannot_create_or_write() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "not a folder").expect("write file");

        // The folder cannot be created: a path component is a file.
        match SqliteStore::open(&file.join("sub").join("accord.db")).await {
            Err(StoreError::Unavailable(reason)) => assert!(reason.contains("cannot create the folder"), "{reason}"),
            other => panic!("expected unavailable, got {other:?}"),
        }
        // The path is a folder, not a file.
        match SqliteStore::open(dir.path()).await {
            Err(StoreError::Unavailable(reason)) => {
                assert!(reason.contains("cannot open the SQLite database"), "{reason}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
        // A read-only location: /proc refuses new files even to root.
        #[cfg(target_os = "linux")]
        match SqliteStore::open(Path::new("/proc/self/accord-test.db")).await {
            Err(StoreError::Unavailable(reason)) => {
                assert!(reason.contains("cannot open the SQLite database"), "{reason}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
        // A folder without write permission (only meaningful when permissions apply to us).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let locked = dir.path().join("read-only");
            std::fs::create_dir(&locked).expect("create folder");
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
            if std::fs::write(locked.join("probe"), "x").is_err() {
                match SqliteStore::open(&locked.join("accord.db")).await {
                    Err(StoreError::Unavailable(reason)) => {
                        assert!(reason.contains("cannot open the SQLite database"), "{reason}")
                    }
                    other => panic!("expected unavailable, got {other:?}"),
                }
            }
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
        }
    }

    #[tokio::test]
    async fn the_database_refuses_update_and_delete_of_the_log() {
        let fx = Fixture::new().await;
        fx.team("CHECKOUT-42").await;
        let before = fx.count("events").await;
        for sql in [
            "UPDATE events SET actor = 'mallory@example.com' WHERE stream_version = 1",
            "UPDATE events SET payload = '{}'",
            "DELETE FROM events WHERE stream_version = 2",
            "DELETE FROM events",
        ] {
            let error = sqlx::query(sql).execute(fx.store.pool()).await.expect_err(sql);
            assert!(error.to_string().contains("append-only"), "{sql}: {error}");
        }
        assert_eq!(fx.count("events").await, before, "nothing changed");
        verify_chain(&stream_of(&fx.store, &key("CHECKOUT-42")).await);
    }

    #[tokio::test]
    async fn a_command_cycle_appends_a_verifiable_hash_chain_and_maintains_head_and_projection() {
        let fx = Fixture::new().await;
        let created = fx.run(OWNER, None, create("CHECKOUT-42")).await;
        assert_eq!((created.stream_version, created.replayed), (1, false));
        assert_eq!(created.created_id, Some(created.initiative_id.0));
        let target = InitiativeRef::Id(created.initiative_id);
        fx.run(OWNER, Some(&key("CHECKOUT-42")), assign(DRIVER, "product", Role::Driver)).await;
        for (who, function) in [(ENG, "engineering"), (DES, "design"), (BIZ, "business")] {
            fx.run(DRIVER, Some(&target), assign(who, function, Role::Approver)).await;
        }
        let decision = DecisionId::new_v7();
        let proposed = fx.run(DRIVER, Some(&target), propose(decision)).await;
        assert_eq!((proposed.stream_version, proposed.created_id), (6, Some(decision.0)));
        let signed = fx.run(ENG, Some(&target), sign(decision, "engineering", Verdict::Approve)).await;
        assert_eq!(signed.stream_version, 7);

        let events = stream_of(&fx.store, &target).await;
        assert_eq!(events.len(), 7);
        let head_hash = verify_chain(&events);
        let last = events.last().expect("events");
        assert_eq!(last.position as u64, signed.global_position);
        assert_eq!(last.event_type, "SignOffRecorded");
        assert_eq!((last.actor.as_str(), last.schema_version), (ENG, SCHEMA_VERSION));
        assert!(last.correlation_id.starts_with("corr-") && last.causation_id.starts_with("cause-"));
        assert!(events.windows(2).all(|w| w[0].position < w[1].position && w[0].recorded_at <= w[1].recorded_at));
        let tail = fx.store.read_stream(created.initiative_id.0, 6, 1).await.expect("read from version");
        assert_eq!(tail.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![6]);

        let (version, stored_head, last_position): (i64, Vec<u8>, i64) =
            sqlx::query_as("SELECT version, head_hash, last_position FROM streams WHERE key = 'CHECKOUT-42'")
                .fetch_one(fx.store.pool())
                .await
                .expect("head");
        assert_eq!((version, stored_head, last_position), (7, head_hash, last.position));

        let state = state_of(&fx.store, &key("CHECKOUT-42")).await.expect("state");
        assert_eq!((state.id, state.version, state.last_activity), (created.initiative_id, 7, last.recorded_at));
        let view = fx.store.alignment(&target).await.expect("query").expect("view");
        assert_eq!((view.version, view.status.as_str(), view.approved_pairs, view.total_pairs), (7, "pending", 1, 3));
        assert_eq!(view.outstanding_functions(), vec!["business".to_owned(), "design".to_owned()]);
        let waiting: Vec<_> = fx.store.awaiting(&who(DES)).await.expect("inbox").into_iter().map(|v| v.key).collect();
        assert_eq!(waiting, vec![state.key.clone()]);
        assert!(fx.store.awaiting(&who(ENG)).await.expect("inbox").is_empty(), "engineering has signed");

        let history = fx.store.sign_off_events(created.initiative_id, decision).await.expect("sign-offs");
        assert_eq!(history.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![7]);
        assert!(fx.store.sign_off_events(created.initiative_id, DecisionId::new_v7()).await.expect("none").is_empty());
    }

    #[tokio::test]
    async fn a_repeated_command_id_replays_and_a_reused_one_is_refused() {
        let fx = Fixture::new().await;
        let create = envelope(OWNER, None, create("CHECKOUT-42"));
        let first = fx.app.execute(create.clone()).await.expect("create");
        assert_eq!(first.events_appended, 1, "a creation appends its one event");
        let again = fx.app.execute(create.clone()).await.expect("replay");
        assert_eq!(again, CommandOutcome { replayed: true, events_appended: 0, ..first.clone() });
        let target = InitiativeRef::Id(first.initiative_id);

        let assign_driver = envelope(OWNER, Some(&target), assign(DRIVER, "product", Role::Driver));
        let assigned = fx.app.execute(assign_driver.clone()).await.expect("assign");
        assert_eq!(assigned.events_appended, 1);
        // The same request again, even naming the initiative by key, replays.
        let by_key = CommandEnvelope { target: Some(key("CHECKOUT-42")), ..assign_driver.clone() };
        assert_eq!(
            fx.app.execute(by_key.clone()).await.expect("replay"),
            CommandOutcome { replayed: true, events_appended: 0, ..assigned }
        );
        assert_eq!(fx.count("events").await, 2, "replays append nothing");
        assert_eq!(fx.count("commands").await, 2);

        let refused = |error: StoreError| match error {
            StoreError::Domain(DomainError::InvalidArgument { field, message }) => {
                assert_eq!(field, "options.command_id");
                assert!(message.contains("already used for a different command"), "{message}");
            }
            other => panic!("expected invalid argument, got {other:?}"),
        };
        // The same id for a different request, on the same stream and as a create.
        let mut different = envelope(OWNER, Some(&target), assign(ENG, "engineering", Role::Approver));
        different.command_id = assign_driver.command_id.clone();
        refused(fx.refuse(&different).await);
        let mut other_create = envelope(OWNER, None, self::create("OTHER-1"));
        other_create.command_id = assign_driver.command_id.clone();
        refused(fx.refuse(&other_create).await);
        // The same id and request on another initiative.
        let other = InitiativeRef::Id(fx.run(OWNER, None, self::create("OTHER-2")).await.initiative_id);
        let elsewhere = CommandEnvelope { target: Some(other), ..assign_driver.clone() };
        refused(fx.refuse(&elsewhere).await);
        assert_eq!(fx.count("events").await, 3, "refusals append nothing");
    }

    #[tokio::test]
    async fn an_expected_version_conflict_fails_and_writes_nothing() {
        let fx = Fixture::new().await;
        let target = fx.team("CHECKOUT-42").await;
        let (events, commands) = (fx.count("events").await, fx.count("commands").await);
        let mut stale = envelope(DRIVER, Some(&target), propose(DecisionId::new_v7()));
        stale.expected_version = Some(3);
        match fx.refuse(&stale).await {
            StoreError::Domain(DomainError::VersionConflict { expected: 3, actual: 5 }) => {}
            other => panic!("expected a version conflict, got {other:?}"),
        }
        assert_eq!((fx.count("events").await, fx.count("commands").await), (events, commands));
        let view = fx.store.alignment(&target).await.expect("query").expect("view");
        assert_eq!(view.version, 5);
        // The right version goes through, and the refused command id was not recorded.
        stale.expected_version = Some(5);
        assert_eq!(fx.app.execute(stale.clone()).await.expect("current version").stream_version, 6);
    }

    #[tokio::test]
    async fn an_unknown_initiative_is_not_found_and_a_taken_key_already_exists() {
        let fx = Fixture::new().await;
        fx.run(OWNER, None, create("CHECKOUT-42")).await;
        let missing = InitiativeRef::Id(InitiativeId::new_v7());
        match fx.refuse(&envelope(OWNER, Some(&missing), comment("product"))).await {
            StoreError::Domain(DomainError::NotFound(message)) => {
                assert_eq!(message, format!("initiative {missing} not found"))
            }
            other => panic!("expected not found, got {other:?}"),
        }
        match fx.refuse(&envelope(OWNER, None, create("CHECKOUT-42"))).await {
            StoreError::Domain(DomainError::AlreadyExists(message)) => {
                assert_eq!(message, "an initiative with key CHECKOUT-42 exists already")
            }
            other => panic!("expected already exists, got {other:?}"),
        }
        assert_eq!((fx.count("events").await, fx.count("streams").await, fx.count("alignment").await), (1, 1, 1));
        assert!(state_of(&fx.store, &missing).await.is_none());
        assert!(fx.store.alignment(&key("NOPE-1")).await.expect("query").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_lock_held_elsewhere_is_waited_for_and_a_busy_error_is_unavailable_not_locked() {
        use sqlx::{ConnectOptions, Connection};
        let fx = Fixture::new().await;
        let impatient = SqliteConnectOptions::new().filename(fx.path()).busy_timeout(Duration::ZERO);
        let mut holder = impatient.connect().await.expect("connect");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.expect("take the write lock");

        // What SQLite reports to a writer that does not wait is mapped, not passed on.
        let mut other = impatient.connect().await.expect("connect");
        let busy = sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.expect_err("busy");
        match map_sqlx(busy) {
            StoreError::Unavailable(reason) => assert!(!reason.contains("locked"), "{reason}"),
            other => panic!("expected unavailable, got {other:?}"),
        }

        // The store's writer waits (busy timeout) for the other process to let go.
        let app = fx.app.clone();
        let pending = tokio::spawn(async move { app.execute(envelope(OWNER, None, create("CHECKOUT-42"))).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!pending.is_finished(), "the command waits for the write lock");
        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release the write lock");
        let outcome = pending.await.expect("task").expect("the command commits once the lock is free");
        assert_eq!(outcome.stream_version, 1);
        holder.close().await.expect("close");
        other.close().await.expect("close");
    }

    /// Runs `commands` concurrently, each in its own task; every one must succeed.
    async fn concurrently(app: &App, commands: Vec<CommandEnvelope>) -> Vec<CommandOutcome> {
        let tasks: Vec<_> = commands
            .into_iter()
            .map(|envelope| {
                let app = app.clone();
                tokio::spawn(async move { app.execute(envelope).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            match task.await.expect("task finished") {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => panic!("a concurrent command failed: {error:?}"),
            }
        }
        outcomes
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn thirty_two_concurrent_commands_on_one_initiative_all_commit_in_contiguous_versions() {
        let fx = Fixture::new().await;
        let target = InitiativeRef::Id(fx.run(OWNER, None, create("CHECKOUT-42")).await.initiative_id);
        let commands = (0..32)
            .map(|i| {
                envelope(OWNER, Some(&target), assign(&format!("p{i}@example.com"), "engineering", Role::Contributor))
            })
            .collect();
        let outcomes = concurrently(&fx.app, commands).await;
        let versions: BTreeSet<u64> = outcomes.iter().map(|o| o.stream_version).collect();
        assert_eq!(versions, (2..=33).collect(), "one version each, no gaps");
        let positions: BTreeSet<u64> = outcomes.iter().map(|o| o.global_position).collect();
        assert_eq!(positions.len(), 32);
        let events = stream_of(&fx.store, &target).await;
        assert_eq!(events.len(), 33);
        verify_chain(&events);
        let state = state_of(&fx.store, &target).await.expect("state");
        assert_eq!((state.version, state.stakeholders.len()), (33, 32));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn thirty_two_concurrent_commands_on_different_initiatives_all_commit() {
        let fx = Fixture::new().await;
        let commands = (0..32).map(|i| envelope(OWNER, None, create(&format!("INIT-{i}")))).collect();
        let created = concurrently(&fx.app, commands).await;
        let follow_ups = created
            .iter()
            .map(|o| {
                envelope(OWNER, Some(&InitiativeRef::Id(o.initiative_id)), assign(DRIVER, "product", Role::Driver))
            })
            .collect();
        let assigned = concurrently(&fx.app, follow_ups).await;
        assert!(created.iter().all(|o| o.stream_version == 1) && assigned.iter().all(|o| o.stream_version == 2));
        let positions: BTreeSet<u64> = created.iter().chain(&assigned).map(|o| o.global_position).collect();
        assert_eq!(positions, (1..=64).collect(), "every event has its own position, none skipped");
        for outcome in &created {
            verify_chain(&stream_of(&fx.store, &InitiativeRef::Id(outcome.initiative_id)).await);
        }
        assert_eq!(fx.count("alignment").await, 32);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_file_wait_for_each_other_instead_of_failing() {
        // Two stores on one file have separate writer locks, like two processes: only
        // BEGIN IMMEDIATE and the busy timeout keep them apart.
        let fx = Fixture::new().await;
        let other = SqliteStore::open(&fx.path()).await.expect("second store");
        let other_app = app_on(&other);
        let target = InitiativeRef::Id(fx.run(OWNER, None, create("CHECKOUT-42")).await.initiative_id);
        let commands: Vec<_> = (0..32)
            .map(|i| envelope(OWNER, Some(&target), assign(&format!("p{i}@example.com"), "design", Role::Informed)))
            .collect();
        let mut handles = Vec::new();
        for (i, envelope) in commands.into_iter().enumerate() {
            let app = if i % 2 == 0 { fx.app.clone() } else { other_app.clone() };
            handles.push(tokio::spawn(async move { app.execute(envelope).await }));
        }
        let mut versions = BTreeSet::new();
        for handle in handles {
            versions.insert(handle.await.expect("task").expect("command succeeds").stream_version);
        }
        assert_eq!(versions, (2..=33).collect());
        verify_chain(&stream_of(&other, &target).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn read_all_returns_every_event_once_in_order_across_pages_while_writers_append() {
        let fx = Fixture::new().await;
        fx.team("CHECKOUT-42").await;
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let app = fx.app.clone();
                tokio::spawn(async move {
                    for i in 0..5 {
                        app.execute(envelope(OWNER, None, create(&format!("W{w}-{i}")))).await.expect("create");
                    }
                })
            })
            .collect();
        // Tail the log while the writers run, then read the rest.
        let mut cursor = GlobalCursor::default();
        let mut seen = Vec::new();
        loop {
            let finished = writers.iter().all(|w| w.is_finished());
            let page = fx.store.read_all(cursor, 7).await.expect("read page");
            assert!(page.len() <= 7);
            if let Some((last, _)) = page.last() {
                cursor = *last;
            } else if finished {
                break;
            } else {
                tokio::task::yield_now().await;
            }
            seen.extend(page);
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        seen.extend(fx.store.read_all(cursor, 1000).await.expect("rest"));
        let positions: Vec<i64> = seen.iter().map(|(_, e)| e.position).collect();
        let all: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
            .fetch_all(fx.store.pool())
            .await
            .expect("positions");
        assert_eq!(all.len(), 5 + 40);
        assert_eq!(positions, all, "every event, once, in position order");
        assert!(seen.iter().all(|(c, e)| *c == GlobalCursor { tx_id: 0, position: e.position }));
        assert!(fx.store.read_all(cursor, 100).await.expect("past the end").is_empty());
        // Every event read back verifies against its stream's chain.
        let mut by_stream: BTreeMap<Uuid, Vec<StoredEvent>> = BTreeMap::new();
        for (_, event) in seen {
            by_stream.entry(event.stream_id).or_default().push(event);
        }
        for events in by_stream.values() {
            verify_chain(events);
        }
    }

    /// Everything a rebuild derives: heads (with the state they fold to: a live head's
    /// snapshot lags it by design, a rebuilt one's does not) and alignment rows.
    async fn projections(store: &SqliteStore) -> Vec<(String, i64, Vec<u8>, i64, String, String)> {
        let rows: Vec<(String, i64, Vec<u8>, i64, String)> = sqlx::query_as(
            "SELECT s.key, s.version, s.head_hash, s.last_position,
                    json_array(a.key, a.title, a.owner, a.stage, a.status, a.archived, json(a.outstanding_functions),
                               json(a.awaiting), a.score, a.last_activity, a.version, json(a.view), s.updated_at)
               FROM streams s JOIN alignment a ON a.initiative_id = s.stream_id
              ORDER BY s.key",
        )
        .fetch_all(store.pool())
        .await
        .expect("projections");
        let mut out = Vec::new();
        for (key, version, hash, position, row) in rows {
            let target = InitiativeRef::Key(InitiativeKey::parse("key", &key).expect("key"));
            let state = state_of(store, &target).await.expect("state");
            out.push((key, version, hash, position, serde_json::to_string(&state).expect("encode"), row));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rebuild_gives_exactly_the_live_projection_even_while_commands_run() {
        let fx = Fixture::new().await;
        for name in ["CHECKOUT-42", "SEARCH-7", "ONBOARD-1"] {
            let target = fx.team(name).await;
            let decision = DecisionId::new_v7();
            fx.run(DRIVER, Some(&target), propose(decision)).await;
            fx.run(ENG, Some(&target), sign(decision, "engineering", Verdict::Approve)).await;
            fx.run(BIZ, Some(&target), sign(decision, "business", Verdict::Reject)).await;
        }
        fx.run(OWNER, Some(&key("ONBOARD-1")), Command::ArchiveInitiative { reason: "done".into() }).await;
        let live = projections(&fx.store).await;
        assert_eq!(live.len(), 3);

        // Damage the projection (it is not part of the log), then rebuild.
        sqlx::query("UPDATE alignment SET status = 'aligned', awaiting = '[]', view = '{}'")
            .execute(fx.store.pool())
            .await
            .expect("damage alignment");
        sqlx::query("DELETE FROM streams WHERE key = 'SEARCH-7'").execute(fx.store.pool()).await.expect("drop a head");
        assert_eq!(fx.shared().rebuild_projections().await.expect("rebuild"), 3);
        assert_eq!(projections(&fx.store).await, live, "rebuilt equals live");

        // A rebuild does not stop the service: commands go on while it runs.
        let target = key("CHECKOUT-42");
        let commands: Vec<_> = (0..16)
            .map(|i| envelope(OWNER, Some(&target), assign(&format!("p{i}@example.com"), "design", Role::Informed)))
            .collect();
        let rebuild = {
            let store = fx.shared();
            tokio::spawn(async move { store.rebuild_projections().await })
        };
        let outcomes = concurrently(&fx.app, commands).await;
        assert_eq!(rebuild.await.expect("task").expect("rebuild"), 3);
        assert_eq!(outcomes.iter().map(|o| o.stream_version).collect::<BTreeSet<_>>(), (9..=24).collect());
        let live = projections(&fx.store).await;
        fx.shared().rebuild_projections().await.expect("rebuild again");
        assert_eq!(projections(&fx.store).await, live, "rebuilt equals live after concurrent commands");
    }

    #[tokio::test]
    async fn list_filters_orders_and_pages_like_postgres() {
        let fx = Fixture::new().await;
        fx.run(OWNER, None, create_as("ALPHA-1", "Payments 100% faster", None, None)).await;
        fx.run(OWNER, None, create_as("BETA-2", "Under_score search", Some(BIZ), Some(Stage::Delivery))).await;
        let gamma = InitiativeRef::Id(
            fx.run(OWNER, None, create_as("GAMMA-3", "Old payments", None, None)).await.initiative_id,
        );
        fx.run(OWNER, Some(&gamma), Command::ArchiveInitiative { reason: "done".into() }).await;
        let delta = fx.team("DELTA-4").await;
        fx.run(DRIVER, Some(&delta), propose(DecisionId::new_v7())).await;

        let keys = |views: Vec<AlignmentView>| views.into_iter().map(|v| v.key.as_str().to_owned()).collect::<Vec<_>>();
        let list = |filter: ListFilter, after: Option<&'static str>, limit: i64| {
            let store = fx.store.clone();
            async move { keys(store.list(&filter, after, limit).await.expect("list")) }
        };
        let text = |t: &str| ListFilter { text: Some(t.into()), ..ListFilter::default() };

        assert_eq!(list(ListFilter::default(), None, 50).await, ["ALPHA-1", "BETA-2", "DELTA-4"]);
        let archived_too = ListFilter { include_archived: true, ..ListFilter::default() };
        assert_eq!(list(archived_too.clone(), None, 50).await, ["ALPHA-1", "BETA-2", "DELTA-4", "GAMMA-3"]);
        assert_eq!(list(archived_too.clone(), Some("ALPHA-1"), 2).await, ["BETA-2", "DELTA-4"]);
        assert_eq!(list(archived_too, Some("DELTA-4"), 2).await, ["GAMMA-3"]);
        let pending = ListFilter { status: Some("pending".into()), ..ListFilter::default() };
        assert_eq!(list(pending, None, 50).await, ["DELTA-4"]);
        let waiting_on_design = ListFilter { pending_function: Some("design".into()), ..ListFilter::default() };
        assert_eq!(list(waiting_on_design, None, 50).await, ["DELTA-4"]);
        let waiting_on_legal = ListFilter { pending_function: Some("legal".into()), ..ListFilter::default() };
        assert!(list(waiting_on_legal, None, 50).await.is_empty());
        let delivery = ListFilter { stage: Some("delivery".into()), ..ListFilter::default() };
        assert_eq!(list(delivery, None, 50).await, ["BETA-2"]);
        let owned = ListFilter { owner: Some(BIZ.into()), ..ListFilter::default() };
        assert_eq!(list(owned, None, 50).await, ["BETA-2"]);
        // Text matches key or title, ignoring (ASCII) case; %, _ and \ are literal.
        assert_eq!(list(text("alpha"), None, 50).await, ["ALPHA-1"]);
        assert_eq!(list(text("PAYMENTS"), None, 50).await, ["ALPHA-1"]);
        assert_eq!(list(text("%"), None, 50).await, ["ALPHA-1"]);
        assert_eq!(list(text("_"), None, 50).await, ["BETA-2"]);
        assert!(list(text("\\"), None, 50).await.is_empty());
        assert!(list(text("a%f"), None, 50).await.is_empty());
        let archived_text = ListFilter { include_archived: true, ..text("payments") };
        assert_eq!(list(archived_text, None, 50).await, ["ALPHA-1", "GAMMA-3"]);

        assert_eq!(keys(fx.store.awaiting(&who(DES)).await.expect("inbox")), ["DELTA-4"]);
        assert!(fx.store.awaiting(&who(OWNER)).await.expect("inbox").is_empty());
    }
}
