//! The audit side on SQLite: as-of reads, where the global log resumes after a
//! position, the pages a verification reads, and checkpoints of the log tree.

use super::*;

#[async_trait]
impl Audit for SqliteStore {
    async fn read_stream_until(&self, stream_id: Uuid, until: Until) -> Result<Vec<StoredEvent>, StoreError> {
        let by_version = format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = ?1 AND stream_version <= ?2
              ORDER BY stream_version"
        );
        let by_time = format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = ?1
                AND stream_version < COALESCE((SELECT min(stream_version) FROM events
                                                WHERE stream_id = ?1 AND recorded_at > ?2),
                                              9223372036854775807)
              ORDER BY stream_version"
        );
        sql::stream_until(&self.pool, &by_version, &by_time, stream_id, until).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        sql::head_position(&self.pool).await
    }

    /// The cursor after global position `after`: position order is commit order here, so
    /// the cursor is the position itself — except past the head, where it is the head
    /// ("now": the read is empty, then returns the events appended from then on, whose
    /// positions are above the head but may be below `after`).
    async fn cursor_after_position(&self, after: u64) -> Result<GlobalCursor, StoreError> {
        let head = sql::log_end(&self.pool).await?;
        let position = i64::try_from(after).unwrap_or(i64::MAX).min(head);
        Ok(GlobalCursor { tx_id: 0, position })
    }

    /// One page of a verification, by (stream id, version) through its unique index, with
    /// its streams' witnesses, in one read transaction (one snapshot).
    async fn verify_page(&self, only: Option<Uuid>, after: VerifyKey) -> Result<VerifyPage, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        let page = sql::verify_page::<Sqlite, _>(&mut *tx, &verify_sql(), only, after).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(page)
    }

    /// The log tree is read in position order, which is commit order here.
    async fn tree_page(&self, after: GlobalCursor) -> Result<Vec<(GlobalCursor, audit::TreeEvent)>, StoreError> {
        tree_page(&self.pool, after.position, audit::VERIFY_PAGE).await
    }

    /// Records the next log-tree checkpoint (see `Store::create_checkpoint` and the PostgreSQL store's), in one
    /// write transaction: the single writer appends nothing meanwhile, so the log's end
    /// is one consistent point, and the events after the latest checkpoint are folded in
    /// position order, which is commit order here.
    async fn create_checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<Checkpointed, StoreError> {
        let signer = signer.cloned();
        self.write(move |pool| async move { attempts(|| create_checkpoint(&pool, signer.as_ref())).await }).await
    }

    async fn raw_checkpoints(&self) -> Result<Vec<RawCheckpoint>, StoreError> {
        let statement = format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY id");
        sql::all(sqlx::query(&statement), &self.pool, decode_checkpoint).await
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
    let page = sqlx::query(
        "SELECT position, stream_id, stream_version, hash FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
    );
    sql::all(page.bind(after).bind(limit), executor, |row| Ok((position_cursor(row)?, decode_tree_event(row)?))).await
}

/// A verification page's statements (see `sql::verify_page`).
fn verify_sql() -> VerifySql {
    VerifySql {
        stream: format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 ORDER BY stream_version"),
        first_page: format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY stream_id, stream_version LIMIT ?1"),
        next_page: format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id > ?2 ORDER BY stream_id, stream_version LIMIT ?1"
        ),
        rest: format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version"
        ),
        heads: "SELECT stream_id, version, head_hash, last_position, json_extract(state, '$.version') AS state_version
                  FROM streams",
        parameter: |n| format!("?{n}"),
        always: "1",
    }
}

/// One attempt at a checkpoint (the caller holds the writer lock).
async fn create_checkpoint(pool: &SqlitePool, signer: Option<&CheckpointSigner>) -> Result<Checkpointed, Retry> {
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
    if let Some(latest) = fold.unchanged(signer) {
        return Ok(latest);
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
    Ok(Checkpointed { record: planned.record(id), recorded: true })
}
