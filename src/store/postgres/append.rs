//! Stream heads and the batch append on PostgreSQL (see `batch`): loading heads, finding
//! earlier uses of command ids, and the one statement that appends a batch.

use super::*;
use crate::domain::alignment::PROJECTION_VERSION;
use crate::store::fold::SNAPSHOT_VERSION;

#[async_trait]
impl Heads for PgStore {
    /// The heads of the streams with these ids or keys: each stream's snapshot and the
    /// events after it up to the head (one statement, so one consistent view). A
    /// snapshot of another version than this code's comes with the whole stream (its
    /// `version` field may not mean what this code thinks), to fold from the first event.
    async fn load_heads(&self, ids: &[Uuid], keys: &[String]) -> Result<Vec<HeadRows>, StoreError> {
        let mut session = self.session().await?;
        let rows = sqlx::query(&format!(
            "SELECT s.stream_id AS head_id, s.key, s.version, s.head_hash,
                    CASE WHEN t.stream_version IS NULL OR t.first THEN s.state::text END AS snapshot, t.*
               FROM streams s
               LEFT JOIN LATERAL (
                    SELECT {EVENT_COLUMNS}, stream_version = min(stream_version) OVER () AS first
                      FROM events e
                     WHERE e.stream_id = s.stream_id AND e.stream_version <= s.version
                       AND e.stream_version > CASE WHEN coalesce(s.state->'snapshot_version', '1') = to_jsonb($3::int)
                                                   THEN coalesce((s.state->>'version')::bigint, 0) ELSE 0 END
               ) t ON true
              WHERE s.stream_id = ANY($1) OR s.key = ANY($2)
              ORDER BY s.stream_id, t.stream_version"
        ))
        .bind(ids)
        .bind(keys)
        .bind(SNAPSHOT_VERSION)
        .fetch_all(session.run())
        .await
        .map_err(map_sqlx)?;
        session.commit().await?;
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
        let mut session = self.session().await?;
        let rows = sqlx::query(
            "SELECT command_id, stream_id, fingerprint, stream_version, global_position, created_id
               FROM commands WHERE command_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(session.run())
        .await
        .map_err(map_sqlx)?;
        session.commit().await?;
        rows.iter().map(decode_command).collect()
    }

    /// Appends a batch in one statement (its own transaction: one round trip), refusing
    /// it whole when a head moved, a command id is taken or a new key exists.
    async fn append_batch(&self, batch: &Batch) -> Result<Appended, AppendRefused> {
        let mut session = self.session().await.map_err(AppendRefused::Failed)?;
        let c = &batch.commands;
        let h = &batch.heads;
        let rows = |row: fn(&AlignmentRow) -> serde_json::Value| h.iter().map(|m| row(&m.row)).collect::<Vec<_>>();
        let result = bind_events(sqlx::query(APPEND_BATCH), &batch.events)
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
            .bind(SNAPSHOT_VERSION)
            .bind(PROJECTION_VERSION)
            .fetch_one(session.run())
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
        session.commit().await.map_err(AppendRefused::Failed)?;
        let column = |e| AppendRefused::Failed(map_sqlx(e));
        let ids: Vec<String> = row.try_get("commands").map_err(column)?;
        let positions: Vec<i64> = row.try_get("positions").map_err(column)?;
        let events: Vec<i64> = row.try_get("event_positions").map_err(column)?;
        Ok(Appended {
            commands: ids.into_iter().zip(positions).collect(),
            cursors: events.into_iter().map(|position| GlobalCursor { tx_id: POSITION_ORDER, position }).collect(),
            after: row.try_get("log_before").map_err(column)?,
        })
    }
}

/// Binds the events' columns after the position, in `EVENT_COLUMNS`' order, as one
/// array each: what the append and the import write with UNNEST.
pub(super) fn bind_events<'q>(query: SqlQuery<'q, Postgres>, events: &'q [StoredEvent]) -> SqlQuery<'q, Postgres> {
    let column = |value: fn(&StoredEvent) -> &str| events.iter().map(value).collect::<Vec<_>>();
    query
        .bind(events.iter().map(|e| e.stream_id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.stream_version).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(column(|e| e.event_type.as_str()))
        .bind(events.iter().map(|e| e.schema_version).collect::<Vec<_>>())
        .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
        .bind(column(|e| e.actor.as_str()))
        .bind(column(|e| e.command_id.as_str()))
        .bind(column(|e| e.correlation_id.as_str()))
        .bind(column(|e| e.causation_id.as_str()))
        .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.prev_hash.as_slice()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.hash.as_slice()).collect::<Vec<_>>())
}

/// One batch in one statement. The events go in first, in the batch's order: inserting
/// takes the commit-order lock, so the head checks below run after every earlier append
/// has committed and see its heads. A head that moved since the writer saw it is not
/// updated, a new stream whose id or key exists is not inserted, and then
/// `accord_expect_heads` aborts the whole statement (SQLSTATE AC409). A head locked by
/// someone else is skipped rather than waited for (`lockable`, after the commit-order
/// lock, so only a lock held outside Accord's appends — a rebuild, an operator — is
/// skipped) and named in the error's detail.
///
/// Versions, for a rolling deploy ($39 this code's snapshot version, $40 its projection
/// version): a moved head's new snapshot replaces the stored one only if that is not of
/// a newer version, and an alignment row of a newer projection is not overwritten. Both
/// are derived, so an overwrite would cost only a refold; but a newer process would then
/// refold on every load, and its readers would serve a row of an older shape.
const APPEND_BATCH: &str = "WITH ev AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload,
                        actor, command_id, correlation_id, causation_id, recorded_at, prev_hash, hash)
    SELECT u.s, u.v, u.id, u.t, u.sv, u.p, u.a, u.c, u.co, u.ca, u.r, u.ph, u.h
      FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::jsonb[], $7::text[],
                  $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::bytea[], $13::bytea[])
           WITH ORDINALITY AS u(s, v, id, t, sv, p, a, c, co, ca, r, ph, h, n)
     ORDER BY u.n
    RETURNING position, stream_id, command_id, current_setting('accord.log_before')::bigint AS log_before
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
    UPDATE streams s SET version = h.v, head_hash = h.hash, last_position = h.last,
           state = CASE WHEN h.state IS NOT NULL AND coalesce(s.state->'snapshot_version', '1') <= to_jsonb($39::int)
                        THEN h.state ELSE s.state END,
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
                           outstanding_functions, awaiting, score, last_activity, version, view, projection_version)
    SELECT h.id, h.key, h.title, h.owner, h.stage, h.status, h.archived,
           ARRAY(SELECT jsonb_array_elements_text(h.outstanding)), ARRAY(SELECT jsonb_array_elements_text(h.awaiting)),
           h.score, h.at, h.v, h.view, $40::int
      FROM heads h
    ON CONFLICT (initiative_id) DO UPDATE SET title = EXCLUDED.title, owner = EXCLUDED.owner,
        stage = EXCLUDED.stage, status = EXCLUDED.status, archived = EXCLUDED.archived,
        outstanding_functions = EXCLUDED.outstanding_functions, awaiting = EXCLUDED.awaiting,
        score = EXCLUDED.score, last_activity = EXCLUDED.last_activity, version = EXCLUDED.version,
        view = EXCLUDED.view, projection_version = EXCLUDED.projection_version
     WHERE alignment.projection_version <= EXCLUDED.projection_version
), unchanged AS (
    SELECT count(*) AS n FROM streams s
      JOIN UNNEST($36::uuid[], $37::bigint[]) AS k(id, v) ON s.stream_id = k.id AND s.version = k.v
)
SELECT accord_expect_heads($38, (SELECT count(*) FROM moved) + (SELECT count(*) FROM started)
                                 + (SELECT n FROM unchanged),
                           (SELECT string_agg(h.id::text, ',') FROM heads h
                             WHERE h.old IS NOT NULL AND h.id NOT IN (SELECT stream_id FROM lockable))) AS heads,
       coalesce((SELECT array_agg(command_id ORDER BY global_position) FROM cmd), '{}') AS commands,
       coalesce((SELECT array_agg(global_position ORDER BY global_position) FROM cmd), '{}') AS positions,
       coalesce((SELECT array_agg(position ORDER BY position) FROM ev), '{}') AS event_positions,
       (SELECT min(log_before) FROM ev) AS log_before";
