//! Stream heads and the batch append on SQLite (see `batch`): loading heads, finding
//! earlier uses of command ids, and appending a batch in one write transaction.

use super::*;
use crate::domain::alignment::PROJECTION_VERSION;
use crate::store::fold::{SNAPSHOT_VERSION, SnapshotHeader};

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
            // A snapshot of another version than this code's (or undecodable): the whole
            // stream, to fold from the first event.
            let snapshot_version = SnapshotHeader::usable_version(head.snapshot.as_deref());
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
    // One writer at a time (the write transaction), so the log's end now is what the
    // batch follows in commit order.
    let after = match batch.events.is_empty() {
        true => None,
        false => Some(
            sqlx::query_scalar::<_, i64>("SELECT coalesce(max(position), 0) FROM events")
                .fetch_one(&mut *tx)
                .await
                .map_err(batch_error)?,
        ),
    };
    let mut cursors = Vec::with_capacity(batch.events.len());
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
        cursors.push(GlobalCursor { tx_id: 0, position });
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
            // A moved head without a new snapshot keeps the one it has, and so does one
            // whose snapshot is of a newer version (as on PostgreSQL: `APPEND_BATCH`).
            "INSERT INTO streams (stream_id, key, version, head_hash, last_position, state, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, (SELECT state FROM streams WHERE stream_id = ?1)), ?7)
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, head_hash = excluded.head_hash,
                 last_position = excluded.last_position, updated_at = excluded.updated_at,
                 state = CASE WHEN ?6 IS NOT NULL
                               AND CASE WHEN json_valid(streams.state)
                                        THEN coalesce(json_extract(streams.state, '$.snapshot_version'), 1)
                                        ELSE 0 END <= ?8
                              THEN ?6 ELSE streams.state END",
        )
        .bind(&stream)
        .bind(&head.key)
        .bind(head.version)
        .bind(&head.hash)
        .bind(position)
        .bind(&head.state)
        .bind(at)
        .bind(SNAPSHOT_VERSION)
        .execute(&mut *tx)
        .await
        .map_err(batch_error)?;
        let row = &head.row;
        let json = |value: &Vec<String>| encode_json(value).map_err(|e| BatchRetry::Refused(e.into()));
        sqlx::query(
            // A row of a newer projection is not overwritten (see `APPEND_BATCH`).
            "INSERT INTO alignment (initiative_id, key, title, owner, stage, status, archived,
                                    outstanding_functions, awaiting, score, last_activity, version, view,
                                    projection_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (initiative_id) DO UPDATE SET title = excluded.title, owner = excluded.owner,
                 stage = excluded.stage, status = excluded.status, archived = excluded.archived,
                 outstanding_functions = excluded.outstanding_functions, awaiting = excluded.awaiting,
                 score = excluded.score, last_activity = excluded.last_activity, version = excluded.version,
                 view = excluded.view, projection_version = excluded.projection_version
              WHERE alignment.projection_version <= excluded.projection_version",
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
        .bind(PROJECTION_VERSION)
        .execute(&mut *tx)
        .await
        .map_err(batch_error)?;
    }
    tx.commit().await.map_err(batch_error)?;
    Ok(Appended { commands: appended, cursors, after })
}
