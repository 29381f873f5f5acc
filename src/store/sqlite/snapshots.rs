//! Snapshots for the past on SQLite (see `store::snapshots`): the same reads and writes
//! as PostgreSQL's, with times as microseconds and writes through the single writer.

use super::*;
use crate::store::backend::Snapshots;
use crate::store::snapshots::{DueStream, PastSnapshot, SNAPSHOT_COLUMNS, SNAPSHOT_FORMAT, decode_snapshot};

#[async_trait]
impl Snapshots for SqliteStore {
    async fn snapshot_before(&self, stream_id: Uuid, until: Until) -> Result<Option<PastSnapshot>, StoreError> {
        let (condition, bound) = match until {
            Until::Version(version) => ("version <= ?3", i64::try_from(version).unwrap_or(i64::MAX)),
            Until::Time(time) => ("folded_until <= ?3", time.timestamp_micros()),
        };
        let row = sqlx::query(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots
              WHERE stream_id = ?1 AND format = ?2 AND {condition}
              ORDER BY version DESC LIMIT 1"
        ))
        .bind(stream_id.to_string())
        .bind(SNAPSHOT_FORMAT)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.as_ref().map(decode_snapshot).transpose()
    }

    async fn read_stream_after(
        &self,
        stream_id: Uuid,
        after: i64,
        until: Until,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (condition, bound) = match until {
            Until::Version(version) => ("stream_version <= ?3", i64::try_from(version).unwrap_or(i64::MAX)),
            Until::Time(time) => (
                "stream_version < coalesce((SELECT min(stream_version) FROM events
                                             WHERE stream_id = ?1 AND stream_version > ?2 AND recorded_at > ?3),
                                           9223372036854775807)",
                time.timestamp_micros(),
            ),
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = ?1 AND stream_version > ?2 AND {condition}
              ORDER BY stream_version"
        ))
        .bind(stream_id.to_string())
        .bind(after)
        .bind(bound)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        decode_events(&rows)
    }

    async fn snapshots_due(&self, every: i64, limit: i64) -> Result<Vec<DueStream>, StoreError> {
        let rows = sqlx::query(
            "SELECT stream_id, version, latest, count FROM (
                 SELECT s.stream_id, s.version,
                        coalesce((SELECT max(version) FROM past_snapshots p
                                   WHERE p.stream_id = s.stream_id AND p.format = ?1), 0) AS latest,
                        (SELECT count(*) FROM past_snapshots p
                          WHERE p.stream_id = s.stream_id AND p.format = ?1) AS count
                   FROM streams s)
              WHERE version - latest >= ?2 OR count < latest / ?2
              ORDER BY stream_id LIMIT ?3",
        )
        .bind(SNAPSHOT_FORMAT)
        .bind(every)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(DueStream {
                    stream_id: row.uuid("stream_id")?,
                    latest: row.read("latest")?,
                    count: row.read("count")?,
                    head: row.read("version")?,
                })
            })
            .collect()
    }

    async fn put_snapshots(&self, snapshots: &[PastSnapshot]) -> Result<(), StoreError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let rows = snapshots
            .iter()
            .map(|s| Ok((s.clone(), encode_json(&s.state)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(move |pool| async move {
            let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            for (snapshot, state) in &rows {
                sqlx::query(
                    "INSERT INTO past_snapshots (stream_id, version, hash, folded_until, format, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (stream_id, version) DO UPDATE
                       SET hash = excluded.hash, folded_until = excluded.folded_until, format = excluded.format,
                           state = excluded.state, created_at = excluded.created_at",
                )
                .bind(snapshot.stream_id.to_string())
                .bind(snapshot.version)
                .bind(&snapshot.hash)
                .bind(snapshot.folded_until.timestamp_micros())
                .bind(snapshot.format)
                .bind(state)
                .bind(crate::store::now_micros().timestamp_micros())
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?;
            }
            tx.commit().await.map_err(map_sqlx)
        })
        .await
    }

    async fn past_snapshots(&self, streams: &[Uuid]) -> Result<Vec<PastSnapshot>, StoreError> {
        let ids = encode_json(&streams.iter().map(Uuid::to_string).collect::<Vec<_>>())?;
        let rows = sqlx::query(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots
              WHERE stream_id IN (SELECT value FROM json_each(?1))
              ORDER BY stream_id, version"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(decode_snapshot).collect()
    }

    async fn delete_snapshots(&self, stream: Option<Uuid>, other_formats_only: bool) -> Result<u64, StoreError> {
        let stream = stream.map(|id| id.to_string());
        self.write(move |pool| async move {
            let done = sqlx::query(
                "DELETE FROM past_snapshots WHERE (?1 IS NULL OR stream_id = ?1) AND (NOT ?2 OR format <> ?3)",
            )
            .bind(stream)
            .bind(other_formats_only)
            .bind(SNAPSHOT_FORMAT)
            .execute(&pool)
            .await
            .map_err(map_sqlx)?;
            Ok(done.rows_affected())
        })
        .await
    }
}
