//! Snapshots for the past on SQLite (see `store::snapshots`): the statements, with times
//! as microseconds; the reads run through `sql`, the writes through the single writer.

use std::sync::LazyLock;

use super::*;
use crate::store::backend::Snapshots;
use crate::store::snapshots::{DueStream, PastSnapshot, SNAPSHOT_COLUMNS, SNAPSHOT_FORMAT, decode_snapshot};
use crate::store::sql::SnapshotSql;

static STATEMENTS: LazyLock<SnapshotSql> = LazyLock::new(|| {
    let before = |condition: &str| {
        format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots
              WHERE stream_id = ?1 AND format = ?2 AND {condition} ORDER BY version DESC LIMIT 1"
        )
    };
    let after = |condition: &str| {
        format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = ?1 AND stream_version > ?2 AND {condition} ORDER BY stream_version"
        )
    };
    SnapshotSql {
        before_version: before("version <= ?3"),
        before_time: before("folded_until <= ?3"),
        after_to_version: after("stream_version <= ?3"),
        after_to_time: after(
            "stream_version < coalesce((SELECT min(stream_version) FROM events
                                         WHERE stream_id = ?1 AND stream_version > ?2 AND recorded_at > ?3),
                                       9223372036854775807)",
        ),
        due: "SELECT stream_id, version, latest, count FROM (
                SELECT s.stream_id, s.version,
                       coalesce((SELECT max(version) FROM past_snapshots p
                                  WHERE p.stream_id = s.stream_id AND p.format = ?1), 0) AS latest,
                       (SELECT count(*) FROM past_snapshots p
                         WHERE p.stream_id = s.stream_id AND p.format = ?1) AS count
                  FROM streams s WHERE s.stream_id > ?3)
               WHERE version - latest >= ?2 OR count < latest / ?2
               ORDER BY stream_id LIMIT ?4",
        of_streams: format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots
              WHERE stream_id IN (SELECT value FROM json_each(?1)) ORDER BY stream_id, version"
        ),
    }
});

#[async_trait]
impl Snapshots for SqliteStore {
    async fn snapshot_before(&self, stream_id: Uuid, until: Until) -> Result<Option<PastSnapshot>, StoreError> {
        sql::snapshot_before(&self.pool, &STATEMENTS, stream_id, until).await
    }

    async fn read_stream_after(
        &self,
        stream_id: Uuid,
        after: i64,
        until: Until,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sql::stream_after(&self.pool, &STATEMENTS, stream_id, after, until).await
    }

    async fn snapshots_due(&self, every: i64, after: Uuid, limit: i64) -> Result<Vec<DueStream>, StoreError> {
        sql::snapshots_due(&self.pool, &STATEMENTS, every, after, limit).await
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
            let created_at = crate::store::now_micros().timestamp_micros();
            for (snapshot, state) in &rows {
                let put = sqlx::query(
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
                .bind(created_at);
                sql::execute(put, &mut *tx).await?;
            }
            tx.commit().await.map_err(map_sqlx)
        })
        .await
    }

    async fn past_snapshots(&self, streams: &[Uuid]) -> Result<Vec<PastSnapshot>, StoreError> {
        let ids = encode_json(&streams.iter().map(Uuid::to_string).collect::<Vec<_>>())?;
        sql::all(sqlx::query(&STATEMENTS.of_streams).bind(ids), &self.pool, decode_snapshot).await
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
