//! Snapshots for the past on PostgreSQL (see `store::snapshots`): the nearest one before
//! an as-of, the events after it, and the background refresh's reads and writes.

use super::*;
use crate::store::backend::Snapshots;
use crate::store::snapshots::{DueStream, PastSnapshot, SNAPSHOT_COLUMNS, SNAPSHOT_FORMAT, decode_snapshot};

#[async_trait]
impl Snapshots for PgStore {
    async fn snapshot_before(&self, stream_id: Uuid, until: Until) -> Result<Option<PastSnapshot>, StoreError> {
        let sql = |condition: &str| {
            format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots
                  WHERE stream_id = $1 AND format = $2 AND {condition}
                  ORDER BY version DESC LIMIT 1"
            )
        };
        // By time: the latest whose events are all at or before it; snapshots are few
        // (one per thousand events), so filtering them by time costs little.
        let (by_version, by_time) = (sql("version <= $3"), sql("folded_until <= $3"));
        let query = match until {
            Until::Version(version) => sqlx::query(&by_version)
                .bind(stream_id)
                .bind(SNAPSHOT_FORMAT)
                .bind(i64::try_from(version).unwrap_or(i64::MAX)),
            Until::Time(time) => sqlx::query(&by_time).bind(stream_id).bind(SNAPSHOT_FORMAT).bind(time),
        };
        let row = query.fetch_optional(&self.pool).await.map_err(map_sqlx)?;
        row.as_ref().map(decode_snapshot).transpose()
    }

    async fn read_stream_after(
        &self,
        stream_id: Uuid,
        after: i64,
        until: Until,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = match until {
            Until::Version(version) => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                      WHERE stream_id = $1 AND stream_version > $2 AND stream_version <= $3
                      ORDER BY stream_version"
                ))
                .bind(stream_id)
                .bind(after)
                .bind(i64::try_from(version).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
            }
            Until::Time(time) => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                      WHERE stream_id = $1 AND stream_version > $2
                        AND stream_version < COALESCE((SELECT min(stream_version) FROM events
                                                        WHERE stream_id = $1 AND stream_version > $2
                                                          AND recorded_at > $3),
                                                      9223372036854775807)
                      ORDER BY stream_version"
                ))
                .bind(stream_id)
                .bind(after)
                .bind(time)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(map_sqlx)?;
        decode_events(&rows)
    }

    async fn snapshots_due(&self, every: i64, limit: i64) -> Result<Vec<DueStream>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.stream_id, s.version, coalesce(p.latest, 0) AS latest, p.count
               FROM streams s
               CROSS JOIN LATERAL (SELECT max(version) AS latest, count(*) AS count FROM past_snapshots p
                                    WHERE p.stream_id = s.stream_id AND p.format = $1) p
              WHERE s.version - coalesce(p.latest, 0) >= $2 OR p.count < coalesce(p.latest, 0) / $2
              ORDER BY s.stream_id LIMIT $3",
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
        sqlx::query(
            "INSERT INTO past_snapshots (stream_id, version, hash, folded_until, format, state)
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bytea[], $4::timestamptz[], $5::integer[], $6::jsonb[])
             ON CONFLICT (stream_id, version) DO UPDATE
               SET hash = EXCLUDED.hash, folded_until = EXCLUDED.folded_until, format = EXCLUDED.format,
                   state = EXCLUDED.state, created_at = now()",
        )
        .bind(snapshots.iter().map(|s| s.stream_id).collect::<Vec<_>>())
        .bind(snapshots.iter().map(|s| s.version).collect::<Vec<_>>())
        .bind(snapshots.iter().map(|s| s.hash.clone()).collect::<Vec<_>>())
        .bind(snapshots.iter().map(|s| s.folded_until).collect::<Vec<_>>())
        .bind(snapshots.iter().map(|s| s.format).collect::<Vec<_>>())
        .bind(snapshots.iter().map(|s| s.state.clone()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn past_snapshots(&self, streams: &[Uuid]) -> Result<Vec<PastSnapshot>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots WHERE stream_id = ANY($1) ORDER BY stream_id, version"
        ))
        .bind(streams)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(decode_snapshot).collect()
    }

    async fn delete_snapshots(&self, stream: Option<Uuid>, other_formats_only: bool) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM past_snapshots
              WHERE ($1::uuid IS NULL OR stream_id = $1) AND (NOT $2 OR format <> $3)",
        )
        .bind(stream)
        .bind(other_formats_only)
        .bind(SNAPSHOT_FORMAT)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?;
        Ok(done.rows_affected())
    }
}
