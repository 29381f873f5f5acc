//! The audit side on PostgreSQL: as-of reads, where the global log resumes after a
//! position, the pages a verification reads, and checkpoints of the log tree.

use std::collections::VecDeque;

use super::*;
use crate::store::audit::{CommandWitness, LogScan, Pager, ScanOutcome, Verifier};
use crate::store::rows::decode_witnesses;
use crate::store::snapshots::{SNAPSHOT_COLUMNS, decode_snapshot};

#[async_trait]
impl Audit for PgStore {
    async fn read_stream_until(&self, stream_id: Uuid, until: Until) -> Result<Vec<StoredEvent>, StoreError> {
        let by_version = format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = $1 AND stream_version <= $2
              ORDER BY stream_version"
        );
        let by_time = format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = $1
                AND stream_version < COALESCE((SELECT min(stream_version) FROM events
                                                WHERE stream_id = $1 AND recorded_at > $2),
                                              9223372036854775807)
              ORDER BY stream_version"
        );
        let mut session = self.session().await?;
        let events = sql::stream_until(session.run(), &by_version, &by_time, stream_id, until).await?;
        session.commit().await?;
        Ok(events)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let mut session = self.session().await?;
        let head = sql::head_position(session.run()).await?;
        session.commit().await?;
        Ok(head)
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
        let below = sqlx::query(
            "SELECT e.tx_id::text::bigint AS tx, e.position, o.ordered_after
               FROM log_order o
               LEFT JOIN LATERAL (SELECT tx_id, position FROM events WHERE position <= $1
                                   ORDER BY position DESC LIMIT 1) AS e ON true",
        );
        let read = |row: &PgRow| Ok((row.read("tx")?, row.read("position")?, row.read("ordered_after")?));
        let mut session = self.session().await?;
        let (tx, position, ordered_after): (Option<i64>, Option<i64>, i64) =
            sql::one(below.bind(after), session.run(), read).await?;
        session.commit().await?;
        Ok(match (tx, position) {
            (Some(tx), Some(position)) => cursor_of(tx, position, ordered_after),
            _ => GlobalCursor::default(),
        })
    }

    /// One page of a verification, read by (stream id, version) through its unique index
    /// with its streams' witnesses (heads, command records, projection versions) in one
    /// REPEATABLE READ snapshot.
    async fn verify_page(&self, only: Option<Uuid>, after: VerifyKey) -> Result<VerifyPage, StoreError> {
        let mut tx = self.snapshot().await?;
        let page = sql::verify_page::<Postgres, _>(&mut tx, &verify_sql(), only, after).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// The log in position order (its heap's order), streamed by one query, and every
    /// stream's other witnesses, in one REPEATABLE READ snapshot; the command records beside it,
    /// sorted by position, on a second connection that imports the same snapshot, so
    /// that their sort runs while the first pages are checked.
    async fn verify_scan(&self, verifier: &mut Verifier) -> Result<Option<ScanOutcome>, StoreError> {
        let mut tx = self.snapshot().await?;
        let snapshot: String =
            sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(tx.run()).await.map_err(map_sqlx)?;
        let (commands, sorted_commands) = tokio::sync::mpsc::channel(2);
        let side = tokio::spawn(commands_by_position(self.clone(), snapshot, commands));
        let sql = verify_sql();
        let heads = sql::rows(sqlx::query(sql.heads), tx.run()).await?;
        let projections = sql::rows(sqlx::query("SELECT initiative_id, version FROM alignment"), tx.run()).await?;
        let mut witnesses = decode_witnesses(&heads, &[], &projections)?;
        let past = format!("SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots");
        witnesses.past = sql::all(sqlx::query(&past), tx.run(), decode_snapshot).await?;
        drop((heads, projections));
        let mut scan = LogScan::<PgRow>::new(verifier.scan_start(), witnesses);
        // One query, streamed: the server reads the heap ahead while the pages are checked.
        let all = format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY position");
        let mut events = sqlx::query(&all).fetch(tx.run());
        let mut merge = CommandMerge { ahead: VecDeque::new(), sorted: sorted_commands, done: false };
        let mut pager = Pager::default();
        loop {
            let row = tokio_stream::StreamExt::next(&mut events).await.transpose().map_err(map_sqlx)?;
            let end = row.is_none();
            let page = match row {
                Some(row) => match pager.push(row) {
                    Some(page) => page,
                    None => continue,
                },
                None => pager.take(),
            };
            let last = match page.last() {
                Some(row) if !end => row.read("position")?,
                _ => i64::MAX,
            };
            let commands = merge.up_to(last).await?;
            scan.feed(commands, page).await?;
            if end {
                break;
            }
        }
        drop(events);
        tx.commit().await?;
        side.await.map_err(|e| StoreError::Database(sqlx::Error::Protocol(format!("a verify task failed: {e}"))))?;
        scan.finish().await.map(Some)
    }

    /// The log tree is read in commit order.
    async fn tree_page(&self, after: GlobalCursor) -> Result<Vec<(GlobalCursor, audit::TreeEvent)>, StoreError> {
        tree_page(self, after).await
    }

    /// Records the next log-tree checkpoint: the latest one's frontier and heads with
    /// every event after it folded in, in commit order, up to the highest position
    /// committed when it starts — so the checkpoint covers a prefix of the log in the
    /// order `read_all` returns it, including every command acknowledged before the
    /// call, and no later commit can sort into it. Creators queue on an advisory lock
    /// (another replica's or the periodic task's checkpoint goes first), and the note is
    /// signed when a key is given. With nothing after the latest one, that one is the
    /// answer (`LogFold::unchanged`).
    async fn create_checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<Checkpointed, StoreError> {
        let ordered_after = self.ordered_after().await?;
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHECKPOINT_LOCK)
            .execute(tx.run())
            .await
            .map_err(map_sqlx)?;
        let previous = sqlx::query(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE tree = 'log' ORDER BY id DESC LIMIT 1"
        ))
        .fetch_optional(tx.run())
        .await
        .map_err(map_sqlx)?;
        let mut fold = match previous {
            Some(row) => LogFold::resume(decode_checkpoint(&row)?)?,
            None => LogFold::start(),
        };
        // Every event at or below the highest position visible now is committed for good
        // (positions follow commit order): the checkpoint covers exactly that prefix.
        let upto: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(tx.run())
            .await
            .map_err(map_sqlx)?;
        loop {
            let after = fold.cursor();
            let page = audit::CHECKPOINT_PAGE;
            let decode = |row: &PgRow| Ok((tree_tx(row)?, decode_tree_event(row)?));
            let rows = commit_order_rows(&mut tx, TREE_COLUMNS, ordered_after, after, page, Some(upto), decode).await?;
            for (tx_id, event) in &rows {
                let cursor = GlobalCursor { tx_id: *tx_id, position: event.position };
                fold.push(cursor, event.stream_id, event.stream_version, &event.hash)?;
            }
            if (rows.len() as i64) < audit::CHECKPOINT_PAGE {
                break;
            }
        }
        if let Some(latest) = fold.unchanged(signer) {
            return Ok(latest);
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
        .fetch_one(tx.run())
        .await
        .map_err(map_sqlx)?;
        tx.commit().await?;
        Ok(Checkpointed { record: planned.record(id), recorded: true })
    }

    async fn raw_checkpoints(&self) -> Result<Vec<RawCheckpoint>, StoreError> {
        let statement = format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY id");
        let mut session = self.session().await?;
        let checkpoints = sql::all(sqlx::query(&statement), session.run(), decode_checkpoint).await?;
        session.commit().await?;
        Ok(checkpoints)
    }
}

/// Serialises checkpoint creators (an arbitrary constant: "accord checkpoint").
const CHECKPOINT_LOCK: i64 = 0x6163_636f_7264_6370;

/// The stored columns of a checkpoint (see `decode_checkpoint`).
const CHECKPOINT_COLUMNS: &str =
    "id, created_at, tree, streams, events, root, heads, frontier, resume_tx, resume_position, note";

/// The cursor of the event at `position` written by transaction `tx`.
pub(super) fn cursor_of(tx: i64, position: i64, ordered_after: i64) -> GlobalCursor {
    if position > ordered_after {
        GlobalCursor { tx_id: POSITION_ORDER, position }
    } else {
        GlobalCursor { tx_id: u64::try_from(tx).unwrap_or_default(), position }
    }
}

/// What the log tree reads of each event.
const TREE_COLUMNS: &str = "position, stream_id, stream_version, hash";

/// A page of the log in commit order after `after`, gap-free, with only what the log
/// tree needs.
async fn tree_page(store: &PgStore, after: GlobalCursor) -> Result<Vec<(GlobalCursor, audit::TreeEvent)>, StoreError> {
    let ordered_after = store.ordered_after().await?;
    let mut session = store.session().await?;
    let decode = |row: &PgRow| Ok((commit_cursor(row)?, decode_tree_event(row)?));
    let events =
        commit_order_rows(&mut session, TREE_COLUMNS, ordered_after, after, audit::VERIFY_PAGE, None, decode).await?;
    session.commit().await?;
    Ok(events)
}

/// How many command records a whole-log verification takes at a time.
const SCAN_PAGE: usize = 5_000;

/// The command records in position order, taken page by page beside the events.
struct CommandMerge {
    ahead: VecDeque<CommandWitness>,
    sorted: tokio::sync::mpsc::Receiver<Result<Vec<CommandWitness>, StoreError>>,
    done: bool,
}

impl CommandMerge {
    /// The records whose last event is at or below `last`, after those taken before.
    async fn up_to(&mut self, last: i64) -> Result<Vec<CommandWitness>, StoreError> {
        let mut commands = Vec::new();
        loop {
            while self.ahead.front().is_some_and(|c| c.global_position <= last) {
                commands.extend(self.ahead.pop_front());
            }
            if !self.ahead.is_empty() || self.done {
                return Ok(commands);
            }
            match self.sorted.recv().await {
                Some(batch) => self.ahead.extend(batch?),
                None => self.done = true,
            }
        }
    }
}

/// Every command record sorted by the position of its last event, in the snapshot the
/// verification exported, sent in batches of `SCAN_PAGE`; a failure is sent too.
async fn commands_by_position(
    store: PgStore,
    snapshot: String,
    sink: tokio::sync::mpsc::Sender<Result<Vec<CommandWitness>, StoreError>>,
) {
    let read = async {
        let mut tx = store.begin().await?;
        sql::execute(sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"), tx.run()).await?;
        // The snapshot's name comes from the server (`pg_export_snapshot`), not a caller.
        let adopt = format!("SET TRANSACTION SNAPSHOT '{}'", snapshot.replace('\'', ""));
        sql::execute(sqlx::query(&adopt), tx.run()).await?;
        let mut rows = sqlx::query(
            "SELECT command_id, stream_id, stream_version, global_position FROM commands ORDER BY global_position",
        )
        .fetch(tx.run());
        let mut batch: Vec<PgRow> = Vec::new();
        while let Some(row) = tokio_stream::StreamExt::next(&mut rows).await {
            batch.push(row.map_err(map_sqlx)?);
            if batch.len() >= SCAN_PAGE {
                let commands = decode_witnesses(&[], &std::mem::take(&mut batch), &[])?.commands;
                if sink.send(Ok(commands)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let commands = decode_witnesses(&[], &batch, &[])?.commands;
        let _ = sink.send(Ok(commands)).await;
        Ok(())
    };
    if let Err(error) = read.await {
        let _ = sink.send(Err(error)).await;
    }
}

/// A verification page's statements (see `sql::verify_page`).
fn verify_sql() -> VerifySql {
    VerifySql {
        stream: format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version"),
        first_page: format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY stream_id, stream_version LIMIT $1"),
        next_page: format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id > $2 ORDER BY stream_id, stream_version LIMIT $1"
        ),
        rest: format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        ),
        heads: "SELECT stream_id, version, head_hash, last_position, (state->>'version')::bigint AS state_version
                  FROM streams",
        parameter: |n| format!("${n}"),
        always: "true",
    }
}
