//! The audit side on SQLite: as-of reads, where the global log resumes after a
//! position, the pages a verification reads, and checkpoints of the log tree.

use super::*;

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
    async fn create_checkpoint(&self, signer: Option<&CheckpointSigner>) -> Result<Checkpointed, StoreError> {
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
