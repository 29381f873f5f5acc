//! The PostgreSQL event store.
//!
//! Writers: a command queues for its stream (a transaction-scoped advisory lock, so that
//! one stream's writers get transaction ids in version order) and locks its stream head
//! (`SELECT … FOR UPDATE` on `streams`), so commands on one initiative run one at a time
//! while commands on different initiatives proceed in parallel and share group commit.
//! Everything a command writes — its events, the idempotency record, the new head with
//! the folded state, and the alignment row — goes out in one statement and commits
//! together: five round trips per command (BEGIN, queue, lock+load, write, COMMIT), and
//! no event stream is ever re-read.
//!
//! Readers of the global log: every statement that inserts events takes the commit-order
//! lock first (a transaction-scoped advisory lock taken by the `events_commit_order`
//! trigger), so appends assign positions and commit one after another, and a reader
//! that sees a position sees every event below it that will ever commit. The log is read
//! by position, waiting for nothing but Accord's own appends (`in_commit_order`). Events
//! written before that trigger existed (up to `log_order.ordered_after`) keep the order
//! they were always read in, (tx_id, position): positions clients hold stay valid.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{
    PgConnection, PgPool, Postgres, Row, Transaction,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions, PgRow, PgSeverity},
};
use tracing::{info, warn};
use uuid::Uuid;

use super::audit::{self, ImportSink, ImportedCommand, LogFold, RawCheckpoint, VerifyKey, VerifyPage};
use super::backend::{Audit, Backend, Heads, Import, ImportLines, Reads, Rebuild};
use super::batch::{AlignmentRow, AppendRefused, Appended, Batch};
use super::batch::{HeadRows, StoredCommand};
use super::fold::FoldedHead;
use super::note::CheckpointSigner;
use super::rows::{
    ColumnOf, EVENT_COLUMNS, SqlErrors, StoredRow, decode_checkpoint, decode_command, decode_event, decode_events,
    decode_head, decode_tree_event, decode_view, decode_views, decode_witnesses, witness_bounds, witness_condition,
};
use super::*;
use crate::domain::{AlignmentView, DomainError};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

/// The embedded PostgreSQL migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    timeouts: DatabaseTimeouts,
}

impl PgStore {
    /// A store on a pool built elsewhere (the tests'), with the default query timeout.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, timeouts: DatabaseTimeouts::default() }
    }

    /// Connects, creating the database if it does not exist, and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_with(url, max_connections, DatabaseTimeouts::default()).await
    }

    /// `connect`, waiting at most `timeouts.connect` for each connection step: a database
    /// that does not answer is `Unavailable`, naming where it was awaited. Logs where it
    /// connects first (host, port and database; never the password).
    pub async fn connect_with(url: &str, max_connections: u32, timeouts: DatabaseTimeouts) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(map_sqlx)?;
        let database = describe(&options);
        let wait = timeouts.connect;
        info!(%database, timeout_s = wait.as_secs_f64(), "connecting to the database");
        if !within(wait, &database, Postgres::database_exists(url)).await? {
            info!(%database, "creating database");
            within(wait, &database, Postgres::create_database(url)).await?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(wait)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Accord's statements are prepared once and run thousands of times with
                    // arrays and keys whose values do not change the best plan: planning
                    // each run anew (PostgreSQL's first custom plans) cost more than the
                    // append's own work. (A session setting: behind a transaction-pooling
                    // PgBouncer it may not stick, which only costs speed.)
                    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(conn).await.map(|_| ())
                })
            })
            .connect_lazy_with(options);
        // One connection now, so that a database that does not answer stops the start.
        within(wait, &database, pool.acquire()).await?;
        let store = Self { pool, timeouts };
        store.migrate().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_sqlx(e),
            other => StoreError::Corrupt(format!("migrations: {other}")),
        })
    }
}

#[async_trait]
impl Backend for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn postgres(&self) -> Option<&PgStore> {
        Some(self)
    }

    /// The connection counts of the pool.
    fn pool_stats(&self) -> PoolStats {
        PoolStats::of(&self.pool)
    }

    fn query_timeout(&self) -> Option<Duration> {
        Some(self.timeouts.query)
    }

    /// A trivial query through the pool: a connection is checked (or opened) and answers.
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(map_sqlx)
    }
}

// ---- Reads ------------------------------------------------------------------------------

#[async_trait]
impl Reads for PgStore {
    async fn alignment(&self, target: &InitiativeRef) -> Result<Option<AlignmentView>, StoreError> {
        let sql = match target {
            InitiativeRef::Id(_) => "SELECT view FROM alignment WHERE initiative_id = $1",
            InitiativeRef::Key(_) => "SELECT view FROM alignment WHERE key = $2",
        };
        let row = bind_target(sqlx::query(sql), target).fetch_optional(&self.pool).await.map_err(map_sqlx)?;
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
            "SELECT view FROM alignment
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::text IS NULL OR outstanding_functions @> ARRAY[$2::text])
               AND ($3::text IS NULL OR stage = $3)
               AND ($4::text IS NULL OR owner = $4)
               AND ($5::text IS NULL OR key ILIKE $5 OR title ILIKE $5)
               AND ($6 OR NOT archived)
               AND ($7::text IS NULL OR key > $7)
             ORDER BY key
             LIMIT $8",
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
        let rows = sqlx::query("SELECT view FROM alignment WHERE awaiting @> ARRAY[$1::text] ORDER BY key")
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
        ))
        .bind(stream_id)
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
              WHERE stream_id = $1 AND event_type IN ('SignOffRecorded', 'SignOffRevoked')
                AND payload->>'decision_id' = $2
              ORDER BY stream_version"
        ))
        .bind(stream.0)
        .bind(decision.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        decode_events(&rows)
    }

    /// The global log after `after`, in commit order, never skipping a late commit (see
    /// the module comment). Returns the events with the cursor of each.
    async fn read_all(&self, after: GlobalCursor, limit: i64) -> Result<Vec<(GlobalCursor, StoredEvent)>, StoreError> {
        let rows = sqlx::query(&in_commit_order(EVENT_COLUMNS, ""))
            .bind(after.tx_id.to_string())
            .bind(after.position)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                let event = decode_event(row)?;
                Ok((GlobalCursor { tx_id: tree_tx(row)?, position: event.position }, event))
            })
            .collect()
    }
}

// ---- Rebuilds ---------------------------------------------------------------------------

#[async_trait]
impl Rebuild for PgStore {
    async fn stream_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query_scalar("SELECT DISTINCT stream_id FROM events ORDER BY stream_id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)
    }

    /// The head is locked (`FOR UPDATE`) while it is rebuilt.
    async fn rebuild_stream(&self, stream_id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        sqlx::query("SELECT 1 FROM streams WHERE stream_id = $1 FOR UPDATE")
            .bind(stream_id)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let rows =
            sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version"))
                .bind(stream_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_sqlx)?;
        let head = FoldedHead::refold(stream_id, &decode_events(&rows)?)?;
        write_head(&mut tx, &head).await?;
        tx.commit().await.map_err(map_sqlx)
    }
}

// ---- Audit: as-of reads, resuming the global log, verification, checkpoints, import ----

#[async_trait]
impl Audit for PgStore {
    async fn read_stream_until(&self, stream_id: Uuid, until: Until) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = match until {
            Until::Version(version) => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                      WHERE stream_id = $1 AND stream_version <= $2
                      ORDER BY stream_version"
                ))
                .bind(stream_id)
                .bind(i64::try_from(version).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
            }
            Until::Time(time) => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                      WHERE stream_id = $1
                        AND stream_version < COALESCE((SELECT min(stream_version) FROM events
                                                        WHERE stream_id = $1 AND recorded_at > $2),
                                                      9223372036854775807)
                      ORDER BY stream_version"
                ))
                .bind(stream_id)
                .bind(time)
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

    /// The cursor after global position `after`, in the commit order `read_all` reads:
    /// - 0 (answered above, by `Store`): the start of the log;
    /// - a position the log holds: that event's cursor;
    /// - a position below the head that the log does not hold (an append that rolled
    ///   back took it): the cursor of the nearest event below it;
    /// - a position past the head: "now", the head's cursor: the read is empty now and
    ///   then returns exactly the events committed from then on.
    async fn cursor_after_position(&self, after: u64) -> Result<GlobalCursor, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let row = sqlx::query(
            "SELECT e.tx_id::text::bigint AS tx, e.position, o.ordered_after
               FROM log_order o
               LEFT JOIN LATERAL (SELECT tx_id, position FROM events WHERE position <= $1
                                   ORDER BY position DESC LIMIT 1) AS e ON true",
        )
        .bind(after)
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx)?;
        let tx: Option<i64> = row.try_get("tx").map_err(map_sqlx)?;
        let position: Option<i64> = row.try_get("position").map_err(map_sqlx)?;
        let ordered_after: i64 = row.try_get("ordered_after").map_err(map_sqlx)?;
        Ok(match (tx, position) {
            (Some(tx), Some(position)) => cursor_of(tx, position, ordered_after),
            _ => GlobalCursor::default(),
        })
    }

    /// One page of a verification, read by (stream id, version) through its unique index
    /// with its streams' witnesses (heads, command records, projection versions) in one
    /// REPEATABLE READ snapshot.
    async fn verify_page(&self, only: Option<Uuid>, after: VerifyKey) -> Result<VerifyPage, StoreError> {
        verify_page(&self.pool, only, after).await
    }

    /// The log tree is read in commit order.
    async fn tree_page(&self, after: GlobalCursor) -> Result<Vec<(GlobalCursor, audit::TreeEvent)>, StoreError> {
        tree_page(&self.pool, after).await
    }

    /// Records the next log-tree checkpoint: the latest one's frontier and heads with
    /// every event after it folded in, in commit order, up to the highest position
    /// committed when it starts — so the checkpoint covers a prefix of the log in the
    /// order `read_all` returns it, including every command acknowledged before the
    /// call, and no later commit can sort into it. Creators queue on an advisory lock (another replica's or the
    /// periodic task's checkpoint goes first), and the note is signed when a key is given.
    async fn create_checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<CheckpointRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHECKPOINT_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let previous = sqlx::query(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE tree = 'log' ORDER BY id DESC LIMIT 1"
        ))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let mut fold = match previous {
            Some(row) => LogFold::resume(decode_checkpoint(&row)?)?,
            None => LogFold::start(),
        };
        // Every event at or below the highest position visible now is committed for good
        // (positions follow commit order): the checkpoint covers exactly that prefix.
        let upto: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        loop {
            let after = fold.cursor();
            let rows = sqlx::query(&in_commit_order(TREE_COLUMNS, "AND position <= $4"))
                .bind(after.tx_id.to_string())
                .bind(after.position)
                .bind(audit::CHECKPOINT_PAGE)
                .bind(upto)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_sqlx)?;
            for row in &rows {
                let event = decode_tree_event(row)?;
                let cursor = GlobalCursor { tx_id: tree_tx(row)?, position: event.position };
                fold.push(cursor, event.stream_id, event.stream_version, &event.hash)?;
            }
            if (rows.len() as i64) < audit::CHECKPOINT_PAGE {
                break;
            }
        }
        let planned = fold.plan(signer)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO checkpoints (created_at, tree, streams, events, root, heads, frontier, resume_tx,
                                      resume_position, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(planned.created_at)
        .bind(planned.tree.as_str())
        .bind(planned.streams)
        .bind(planned.events)
        .bind(planned.root.as_slice())
        .bind(&planned.heads_json)
        .bind(&planned.frontier_json)
        .bind(planned.resume_tx())
        .bind(planned.resume.position)
        .bind(&planned.note)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(planned.record(id))
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
impl Import for PgStore {
    /// Loads an export into this store if it holds no event (see `Store::import_stream`).
    /// The import takes an EXCLUSIVE lock on `events` (reads go on, appends wait for it),
    /// writes the events with UNNEST in batches with positions 1, 2, … in the file's
    /// order (and moves the position sequence after them), and commits once at the end.
    async fn import(&self, lines: ImportLines) -> Result<ImportReport, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut *tx).await.map_err(map_sqlx)?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut *tx).await.map_err(map_sqlx)?;
        if count > 0 {
            return Err(DomainError::precondition(format!("the store is not empty: {count} events")).into());
        }
        let mut sink = PgImport { tx };
        let report = audit::run_import(lines, &mut sink).await?;
        let mut tx = sink.tx;
        if report.events > 0 {
            sqlx::query("SELECT setval(pg_get_serial_sequence('events', 'position'), $1)")
                .bind(i64::try_from(report.events).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?;
        }
        tx.commit().await.map_err(map_sqlx)?;
        // Fresh statistics, so that the first as-of reads plan an index scan; best effort:
        // the import has committed whatever happens here.
        if let Err(error) = sqlx::query("ANALYZE events, commands, streams, alignment").execute(&self.pool).await {
            warn!(%error, "ANALYZE after an import failed");
        }
        Ok(report)
    }
}

/// Serialises checkpoint creators (an arbitrary constant: "accord checkpoint").
const CHECKPOINT_LOCK: i64 = 0x6163_636f_7264_6370;

/// The stored columns of a checkpoint (see `decode_checkpoint`).
const CHECKPOINT_COLUMNS: &str =
    "id, created_at, tree, streams, events, root, heads, frontier, resume_tx, resume_position, note";

fn tree_tx(row: &PgRow) -> Result<u64, StoreError> {
    let tx: i64 = row.try_get("tx").map_err(map_sqlx)?;
    Ok(u64::try_from(tx).unwrap_or_default())
}

/// The cursor's `tx_id` of every event written since positions follow commit order
/// (after `log_order.ordered_after`): above every transaction id, so those events sort
/// after all older ones and among themselves by position.
pub const POSITION_ORDER: u64 = i64::MAX as u64;

/// The cursor of the event at `position` written by transaction `tx`.
fn cursor_of(tx: i64, position: i64, ordered_after: i64) -> GlobalCursor {
    if position > ordered_after {
        GlobalCursor { tx_id: POSITION_ORDER, position }
    } else {
        GlobalCursor { tx_id: u64::try_from(tx).unwrap_or_default(), position }
    }
}

/// What the log tree reads of each event.
const TREE_COLUMNS: &str = "position, stream_id, stream_version, hash";

/// A page of the global log in commit order after the cursor ($1 its `tx_id` as text,
/// $2 its position), at most $3 events, with `columns` and a `tx` column (the cursor's
/// `tx_id`), and `extra` added to both halves' conditions. Events up to the boundary
/// (`log_order`) are read in (tx_id, position) order — they were written when positions
/// did not follow commit order, and all of them are committed — then every later event
/// by position: an append holds the commit-order lock (the `events_commit_order`
/// trigger) from before it takes positions until it commits, so a reader that sees a
/// position sees every event below it that will ever commit.
fn in_commit_order(columns: &str, extra: &str) -> String {
    format!(
        "WITH o AS (SELECT ordered_after FROM log_order)
         (SELECT tx_id::text::bigint AS tx, {columns} FROM events, o
           WHERE position <= o.ordered_after AND (tx_id, position) > ($1::text::xid8, $2) {extra}
           ORDER BY tx_id, position LIMIT $3)
         UNION ALL
         (SELECT {POSITION_ORDER}::bigint AS tx, {columns} FROM events, o
           WHERE position > CASE WHEN $1::text::bigint = {POSITION_ORDER} THEN greatest(o.ordered_after, $2)
                                 ELSE o.ordered_after END {extra}
           ORDER BY position LIMIT $3)
         ORDER BY tx, position LIMIT $3"
    )
}

/// A page of the log in commit order after `after`, gap-free, with only what the log
/// tree needs.
async fn tree_page(pool: &PgPool, after: GlobalCursor) -> Result<Vec<(GlobalCursor, audit::TreeEvent)>, StoreError> {
    let rows = sqlx::query(&in_commit_order(TREE_COLUMNS, ""))
        .bind(after.tx_id.to_string())
        .bind(after.position)
        .bind(audit::VERIFY_PAGE)
        .fetch_all(pool)
        .await
        .map_err(map_sqlx)?;
    rows.iter()
        .map(|row| {
            let event = decode_tree_event(row)?;
            Ok((GlobalCursor { tx_id: tree_tx(row)?, position: event.position }, event))
        })
        .collect()
}

/// One page of a verification, in one REPEATABLE READ snapshot: whole streams after
/// `after` in (stream id, version) order, and their witnesses (see `audit::VerifyPage`).
async fn verify_page(pool: &PgPool, only: Option<Uuid>, after: VerifyKey) -> Result<VerifyPage, StoreError> {
    let mut tx = pool.begin().await.map_err(map_sqlx)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    let events = match only {
        Some(stream) => {
            sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version"))
                .bind(stream)
                .fetch_all(&mut *tx)
                .await
        }
        None => {
            // A plain range (no "IS NULL OR"), so that every page is an index range scan.
            let from = if after.is_some() { "WHERE stream_id > $2" } else { "" };
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events {from} ORDER BY stream_id, stream_version LIMIT $1");
            let query = sqlx::query(&sql).bind(audit::VERIFY_PAGE);
            match after {
                Some(after) => query.bind(after).fetch_all(&mut *tx).await,
                None => query.fetch_all(&mut *tx).await,
            }
        }
    }
    .map_err(map_sqlx)?;
    let mut events = decode_events(&events)?;
    let more = only.is_none() && events.len() as i64 >= audit::VERIFY_PAGE;
    if more && let Some(last) = events.last().map(|e| (e.stream_id, e.stream_version)) {
        // The rest of the page's last stream, so that the page ends with a whole stream.
        let rest = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        ))
        .bind(last.0)
        .bind(last.1)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        for row in &rest {
            events.push(decode_event(row)?);
        }
    }
    let bounds = witness_bounds(only, after, more, &events);
    let within = |column: &str| witness_condition(&bounds, column, |n| format!("${n}"), "true");
    let heads_sql = format!(
        "SELECT stream_id, version, head_hash, last_position, (state->>'version')::bigint AS state_version
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
        heads = heads.bind(*bound);
        commands = commands.bind(*bound);
        projections = projections.bind(*bound);
    }
    let heads = heads.fetch_all(&mut *tx).await.map_err(map_sqlx)?;
    let commands = commands.fetch_all(&mut *tx).await.map_err(map_sqlx)?;
    let projections = projections.fetch_all(&mut *tx).await.map_err(map_sqlx)?;
    tx.commit().await.map_err(map_sqlx)?;
    let witnesses = decode_witnesses(&heads, &commands, &projections)?;
    Ok(VerifyPage { events, witnesses, more })
}

/// An import's writes, in its one transaction.
struct PgImport {
    tx: Transaction<'static, Postgres>,
}

impl ImportSink for PgImport {
    async fn events(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&StoredEvent) -> i64| events.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,
                                 actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
             OVERRIDING SYSTEM VALUE
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::int[],
                                  $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[],
                                  $12::timestamptz[], $13::bytea[], $14::bytea[])",
        )
        .bind(column(|e| e.position))
        .bind(events.iter().map(|e| e.stream_id).collect::<Vec<_>>())
        .bind(column(|e| e.stream_version))
        .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.schema_version).collect::<Vec<_>>())
        .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.command_id.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.correlation_id.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.causation_id.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.prev_hash.as_slice()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.hash.as_slice()).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn commands(&mut self, commands: &[ImportedCommand]) -> Result<(), StoreError> {
        if commands.is_empty() {
            return Ok(());
        }
        // No fingerprint: the request is not part of the log (see `StoredCommand::replay`).
        sqlx::query(
            "INSERT INTO commands (command_id, stream_id, fingerprint, stream_version, global_position, created_id,
                                   recorded_at)
             SELECT u.c, u.s, ''::bytea, u.v, u.p, u.id, u.t
               FROM UNNEST($1::text[], $2::uuid[], $3::bigint[], $4::bigint[], $5::uuid[], $6::timestamptz[])
                    AS u(c, s, v, p, id, t)",
        )
        .bind(commands.iter().map(|c| c.command_id.as_str()).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.stream_id).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.stream_version).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.global_position).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.created_id).collect::<Vec<_>>())
        .bind(commands.iter().map(|c| c.recorded_at).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn streams(&mut self, streams: &[FoldedHead]) -> Result<(), StoreError> {
        for head in streams {
            write_head(&mut self.tx, head).await?;
        }
        Ok(())
    }
}

/// Writes (inserts or replaces) a stream's head with its folded state, and its
/// alignment row, in one statement.
async fn write_head(conn: &mut PgConnection, head: &FoldedHead) -> Result<(), StoreError> {
    let (state, projection) = (&head.state, &head.projection);
    sqlx::query(
        "WITH st AS (
           INSERT INTO streams (stream_id, key, version, head_hash, last_position, state, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (stream_id) DO UPDATE SET key = EXCLUDED.key, version = EXCLUDED.version,
             head_hash = EXCLUDED.head_hash, last_position = EXCLUDED.last_position,
             state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
         )
         INSERT INTO alignment (initiative_id, key, title, owner, stage, status, archived,
           outstanding_functions, awaiting, score, last_activity, version, view)
         VALUES ($1, $2, $8, $9, $10, $11, $12, $13, $14, $15, $7, $3, $16)
         ON CONFLICT (initiative_id) DO UPDATE SET key = EXCLUDED.key, title = EXCLUDED.title,
           owner = EXCLUDED.owner, stage = EXCLUDED.stage, status = EXCLUDED.status,
           archived = EXCLUDED.archived, outstanding_functions = EXCLUDED.outstanding_functions,
           awaiting = EXCLUDED.awaiting, score = EXCLUDED.score, last_activity = EXCLUDED.last_activity,
           version = EXCLUDED.version, view = EXCLUDED.view",
    )
    .bind(head.stream_id)
    .bind(state.key.as_str())
    .bind(head.version)
    .bind(&head.head_hash)
    .bind(head.last_position)
    .bind(&projection.state_json)
    .bind(state.last_activity)
    .bind(&projection.view.title)
    .bind(projection.view.owner.as_str())
    .bind(projection.view.stage.as_str())
    .bind(projection.view.status.as_str())
    .bind(projection.view.archived)
    .bind(projection.view.outstanding_functions())
    .bind(&projection.awaiting)
    .bind(projection.view.score)
    .bind(&projection.view_json)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

impl SqlErrors for PgRow {
    fn sql_error(error: sqlx::Error) -> StoreError {
        map_sqlx(error)
    }
}

/// PostgreSQL stores UUIDs, JSON and timestamps natively.
impl StoredRow for PgRow {
    fn uuid(&self, name: &str) -> Result<Uuid, StoreError> {
        self.read(name)
    }

    fn optional_uuid(&self, name: &str) -> Result<Option<Uuid>, StoreError> {
        self.read(name)
    }

    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<Result<T, String>, StoreError> {
        let value: serde_json::Value = self.read(name)?;
        Ok(serde_json::from_value(value).map_err(|e| e.to_string()))
    }

    fn optional_json<T: DeserializeOwned>(&self, name: &str) -> Result<Result<Option<T>, String>, StoreError> {
        let value: Option<serde_json::Value> = self.read(name)?;
        Ok(value.map(serde_json::from_value).transpose().map_err(|e| e.to_string()))
    }

    fn time(&self, name: &str) -> Result<Result<DateTime<Utc>, String>, StoreError> {
        self.read(name).map(Ok)
    }
}

fn bind_target<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    target: &InitiativeRef,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    match target {
        InitiativeRef::Id(id) => query.bind(id.0).bind(None::<String>),
        InitiativeRef::Key(key) => query.bind(None::<Uuid>).bind(key.as_str().to_owned()),
    }
}

/// One connection step at start, bounded by the connect timeout.
async fn within<T>(
    wait: Duration,
    database: &str,
    step: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(wait, step).await {
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
            Err(StoreError::Unavailable(format!("{database} did not answer within {} s", wait.as_secs_f64())))
        }
        Ok(result) => result.map_err(map_sqlx),
    }
}

/// Where a store connects, for logs and errors: `host:port/database` (or the socket's
/// path), never the credentials.
fn describe(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    match options.get_socket() {
        Some(socket) => format!("{}/{database}", socket.display()),
        None => format!("{}:{}/{database}", options.get_host(), options.get_port()),
    }
}

/// Maps a database error: connection trouble, and a database that refuses to serve us
/// now (see `refuses_service`), are `Unavailable`; the rest is internal.
pub fn map_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db)
            if db.code().is_some_and(|code| {
                let fatal = db
                    .try_downcast_ref::<PgDatabaseError>()
                    .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic));
                refuses_service(&code, db.message(), fatal)
            }) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => {
            warn!(error = %error, "database error");
            StoreError::Database(error)
        }
    }
}

/// Whether a PostgreSQL error (SQLSTATE `code`, its `message`, and whether the server
/// ended the session with it) says the database cannot serve us now — retry later, or
/// elsewhere — rather than that this request is at fault:
/// - class 08, connection exceptions;
/// - 57P01-57P05: shut down by an administrator or a crash, not accepting connections
///   yet (starting up, in recovery), the database dropped, the idle session timed out;
/// - 53300: too many connections;
/// - 25006, a read-only transaction: writes reaching a primary that was demoted to a
///   standby by a failover, or a database set read-only;
/// - 55000 ("object not in prerequisite state", a catch-all) only as the refusal of a
///   connection: the database does not accept connections (`ALLOW_CONNECTIONS false`).
///   That refusal ends the session (FATAL), which no 55000 of a statement does; the
///   message is checked too, in case the severity is not reported.
pub fn refuses_service(code: &str, message: &str, fatal: bool) -> bool {
    match code {
        "53300" | "25006" => true,
        "55000" => fatal || message.contains("not currently accepting connections"),
        _ => code.starts_with("08") || code.starts_with("57P0"),
    }
}

// ---- The batch append (see `batch`) ---------------------------------------------------

#[async_trait]
impl Heads for PgStore {
    /// The heads of the streams with these ids or keys: each stream's snapshot and the
    /// events after it up to the head (one statement, so one consistent view).
    async fn load_heads(&self, ids: &[Uuid], keys: &[String]) -> Result<Vec<HeadRows>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT s.stream_id AS head_id, s.key, s.version, s.head_hash,
                    CASE WHEN t.stream_version IS NULL OR t.first THEN s.state::text END AS snapshot, t.*
               FROM streams s
               LEFT JOIN LATERAL (
                    SELECT {EVENT_COLUMNS}, stream_version = min(stream_version) OVER () AS first
                      FROM events e
                     WHERE e.stream_id = s.stream_id AND e.stream_version <= s.version
                       AND e.stream_version > coalesce((s.state->>'version')::bigint, 0)
               ) t ON true
              WHERE s.stream_id = ANY($1) OR s.key = ANY($2)
              ORDER BY s.stream_id, t.stream_version"
        ))
        .bind(ids)
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        let mut heads: Vec<HeadRows> = Vec::new();
        for row in &rows {
            let stream_id = row.uuid("head_id")?;
            if heads.last().is_none_or(|head| head.stream_id != stream_id) {
                heads.push(decode_head(row)?);
            }
            let stream_version: Option<i64> = row.try_get("stream_version").map_err(map_sqlx)?;
            if stream_version.is_some()
                && let Some(head) = heads.last_mut()
            {
                head.tail.push(decode_event(row)?);
            }
        }
        Ok(heads)
    }

    async fn find_commands(&self, ids: &[String]) -> Result<Vec<(String, StoredCommand)>, StoreError> {
        let rows = sqlx::query(
            "SELECT command_id, stream_id, fingerprint, stream_version, global_position, created_id
               FROM commands WHERE command_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(decode_command).collect()
    }

    /// Appends a batch in one statement (its own transaction: one round trip), refusing
    /// it whole when a head moved, a command id is taken or a new key exists.
    async fn append_batch(&self, batch: &Batch) -> Result<Appended, AppendRefused> {
        let e = &batch.events;
        let c = &batch.commands;
        let h = &batch.heads;
        let rows = |row: fn(&AlignmentRow) -> serde_json::Value| h.iter().map(|m| row(&m.row)).collect::<Vec<_>>();
        let result = sqlx::query(APPEND_BATCH)
            .bind(e.iter().map(|e| e.stream_id).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.stream_version).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.event_id).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.schema_version).collect::<Vec<_>>())
            .bind(e.iter().map(|e| &e.payload).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.command_id.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.correlation_id.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.causation_id.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.prev_hash.as_slice()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.hash.as_slice()).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.command_id.as_str()).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.stream_id).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.fingerprint.as_slice()).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.stream_version).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.created_id).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.recorded_at).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.stream_id).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.key.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.from).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.version).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.hash.as_slice()).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.state.as_deref()).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.at).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.row.title.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.row.owner.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.row.stage.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.row.status.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|m| m.row.archived).collect::<Vec<_>>())
            .bind(rows(|r| serde_json::json!(r.outstanding)))
            .bind(rows(|r| serde_json::json!(r.awaiting)))
            .bind(h.iter().map(|m| m.row.score).collect::<Vec<_>>())
            .bind(h.iter().map(|m| &m.row.view).collect::<Vec<_>>())
            .bind(batch.unchanged.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(batch.unchanged.iter().map(|(_, v)| *v).collect::<Vec<_>>())
            .bind(i64::try_from(h.len() + batch.unchanged.len()).unwrap_or(i64::MAX))
            .fetch_one(&self.pool)
            .await;
        let row = result.map_err(|error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("AC409") => {
                let detail = db.try_downcast_ref::<PgDatabaseError>().and_then(|e| e.detail()).unwrap_or_default();
                let locked: Vec<Uuid> = detail.split(',').filter_map(|id| Uuid::try_parse(id).ok()).collect();
                if locked.is_empty() { AppendRefused::StaleHead } else { AppendRefused::Locked(locked) }
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => match db.constraint() {
                Some("commands_pkey") => AppendRefused::CommandIdTaken,
                Some("streams_key_key" | "alignment_key_key" | "streams_pkey" | "alignment_pkey") => {
                    AppendRefused::KeyTaken
                }
                // Another process appended the same versions first.
                Some("events_stream_id_stream_version_key") => AppendRefused::StaleHead,
                _ => AppendRefused::Failed(map_sqlx(error)),
            },
            _ => AppendRefused::Failed(map_sqlx(error)),
        })?;
        let ids: Vec<String> = row.try_get("commands").map_err(|e| AppendRefused::Failed(map_sqlx(e)))?;
        let positions: Vec<i64> = row.try_get("positions").map_err(|e| AppendRefused::Failed(map_sqlx(e)))?;
        Ok(ids.into_iter().zip(positions).collect())
    }
}

/// One batch in one statement. The events go in first, in the batch's order: inserting
/// takes the commit-order lock, so the head checks below run after every earlier append
/// has committed and see its heads. A head that moved since the writer saw it is not
/// updated, a new stream whose id or key exists is not inserted, and then
/// `accord_expect_heads` aborts the whole statement (SQLSTATE AC409). A head locked by
/// someone else is skipped rather than waited for (`lockable`, after the commit-order
/// lock, so only a lock held outside Accord's appends — a rebuild, an operator — is
/// skipped) and named in the error's detail.
const APPEND_BATCH: &str = "WITH ev AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload,
                        actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
    SELECT u.s, u.v, u.id, u.t, u.sv, u.p, u.a, u.c, u.co, u.ca, u.r, u.ph, u.h
      FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::jsonb[], $7::text[],
                  $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::bytea[], $13::bytea[])
           WITH ORDINALITY AS u(s, v, id, t, sv, p, a, c, co, ca, r, ph, h, n)
     ORDER BY u.n
    RETURNING position, stream_id, command_id
), by_command AS (
    SELECT command_id, max(position) AS last FROM ev GROUP BY command_id
), by_stream AS (
    SELECT stream_id, max(position) AS last FROM ev GROUP BY stream_id
), cmd AS (
    INSERT INTO commands (command_id, stream_id, fingerprint, stream_version, global_position, created_id, recorded_at)
    SELECT c.id, c.s, c.f, c.v, b.last, c.created, c.r
      FROM UNNEST($14::text[], $15::uuid[], $16::bytea[], $17::bigint[], $18::uuid[], $19::timestamptz[])
           AS c(id, s, f, v, created, r)
      JOIN by_command b ON b.command_id = c.id
    RETURNING command_id, global_position
), heads AS (
    SELECT h.*, b.last
      FROM UNNEST($20::uuid[], $21::text[], $22::bigint[], $23::bigint[], $24::bytea[], $25::text[]::jsonb[],
                  $26::timestamptz[], $27::text[], $28::text[], $29::text[], $30::text[], $31::boolean[],
                  $32::jsonb[], $33::jsonb[], $34::float8[], $35::jsonb[])
           AS h(id, key, old, v, hash, state, at, title, owner, stage, status, archived, outstanding, awaiting,
                score, view)
      JOIN by_stream b ON b.stream_id = h.id
), lockable AS (
    SELECT s.stream_id FROM streams s JOIN heads h ON h.id = s.stream_id
       FOR UPDATE OF s SKIP LOCKED
), moved AS (
    UPDATE streams s SET version = h.v, head_hash = h.hash, last_position = h.last, state = coalesce(h.state, s.state),
           updated_at = h.at
      FROM heads h
     WHERE s.stream_id = h.id AND h.old IS NOT NULL AND s.version = h.old
       AND s.stream_id IN (SELECT stream_id FROM lockable)
    RETURNING s.stream_id
), started AS (
    INSERT INTO streams (stream_id, key, version, head_hash, last_position, state, updated_at)
    SELECT h.id, h.key, h.v, h.hash, h.last, h.state, h.at FROM heads h WHERE h.old IS NULL
    ON CONFLICT DO NOTHING
    RETURNING stream_id
), projected AS (
    INSERT INTO alignment (initiative_id, key, title, owner, stage, status, archived,
                           outstanding_functions, awaiting, score, last_activity, version, view)
    SELECT h.id, h.key, h.title, h.owner, h.stage, h.status, h.archived,
           ARRAY(SELECT jsonb_array_elements_text(h.outstanding)), ARRAY(SELECT jsonb_array_elements_text(h.awaiting)),
           h.score, h.at, h.v, h.view
      FROM heads h
    ON CONFLICT (initiative_id) DO UPDATE SET title = EXCLUDED.title, owner = EXCLUDED.owner,
        stage = EXCLUDED.stage, status = EXCLUDED.status, archived = EXCLUDED.archived,
        outstanding_functions = EXCLUDED.outstanding_functions, awaiting = EXCLUDED.awaiting,
        score = EXCLUDED.score, last_activity = EXCLUDED.last_activity, version = EXCLUDED.version,
        view = EXCLUDED.view
), unchanged AS (
    SELECT count(*) AS n FROM streams s
      JOIN UNNEST($36::uuid[], $37::bigint[]) AS k(id, v) ON s.stream_id = k.id AND s.version = k.v
)
SELECT accord_expect_heads($38, (SELECT count(*) FROM moved) + (SELECT count(*) FROM started)
                                 + (SELECT n FROM unchanged),
                           (SELECT string_agg(h.id::text, ',') FROM heads h
                             WHERE h.old IS NOT NULL AND h.id NOT IN (SELECT stream_id FROM lockable))) AS heads,
       coalesce((SELECT array_agg(command_id ORDER BY global_position) FROM cmd), '{}') AS commands,
       coalesce((SELECT array_agg(global_position ORDER BY global_position) FROM cmd), '{}') AS positions";

#[cfg(test)]
mod tests {
    use super::refuses_service;

    #[test]
    fn a_read_only_transaction_is_a_refusal_of_service() {
        // What a demoted primary answers an INSERT after a failover.
        assert!(refuses_service("25006", "cannot execute INSERT in a read-only transaction", false));
    }

    #[test]
    fn a_55000_is_a_refusal_only_when_it_refuses_the_connection() {
        let refused = r#"database "accord" is not currently accepting connections"#;
        assert!(refuses_service("55000", refused, true));
        assert!(refuses_service("55000", refused, false), "by the message, without the severity");
        // A localised server: the session was ended all the same.
        assert!(refuses_service("55000", "la base de données « accord » n'accepte plus les connexions", true));
        // The same catch-all code for a statement's own state stays internal.
        let statement = r#"currval of sequence "events_position_seq" is not yet defined in this session"#;
        assert!(!refuses_service("55000", statement, false));
        assert!(!refuses_service("55000", "prepared transactions are disabled", false));
    }

    #[test]
    fn connection_exceptions_shutdowns_and_too_many_connections_are_refusals_and_others_are_not() {
        for code in ["08000", "08006", "08P01", "57P01", "57P02", "57P03", "57P04", "57P05", "53300"] {
            assert!(refuses_service(code, "", false), "{code}");
        }
        for code in ["23505", "40001", "57014", "53100", "42P01", "XX000"] {
            assert!(!refuses_service(code, "", false), "{code}");
        }
    }
}
