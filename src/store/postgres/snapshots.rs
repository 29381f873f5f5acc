//! Snapshots for the past on PostgreSQL (see `store::snapshots`): the statements; the
//! reads run through `sql`, the writes are one statement each.

use std::sync::LazyLock;

use super::*;
use crate::store::backend::Snapshots;
use crate::store::snapshots::{DueStream, PastSnapshot, SNAPSHOT_COLUMNS, SNAPSHOT_FORMAT, decode_snapshot};
use crate::store::sql::SnapshotSql;

static STATEMENTS: LazyLock<SnapshotSql> = LazyLock::new(|| {
    let before = |condition: &str| {
        format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots
              WHERE stream_id = $1 AND format = $2 AND {condition} ORDER BY version DESC LIMIT 1"
        )
    };
    let after = |condition: &str| {
        format!(
            "SELECT {EVENT_COLUMNS} FROM events
              WHERE stream_id = $1 AND stream_version > $2 AND {condition} ORDER BY stream_version"
        )
    };
    SnapshotSql {
        before_version: before("version <= $3"),
        // Snapshots are few (one per 500 events): filtering them by time costs little.
        before_time: before("folded_until <= $3"),
        after_to_version: after("stream_version <= $3"),
        // The first event after the snapshot recorded later ends the prefix: found by the
        // (stream, version) index from the snapshot on, not from the stream's start.
        after_to_time: after(
            "stream_version < coalesce((SELECT min(stream_version) FROM events
                                         WHERE stream_id = $1 AND stream_version > $2 AND recorded_at > $3),
                                       9223372036854775807)",
        ),
        due: "SELECT s.stream_id, s.version, coalesce(p.latest, 0) AS latest, p.count
                FROM streams s
               CROSS JOIN LATERAL (SELECT max(version) AS latest, count(*) AS count FROM past_snapshots p
                                    WHERE p.stream_id = s.stream_id AND p.format = $1) p
               WHERE s.stream_id > $3
                 AND (s.version - coalesce(p.latest, 0) >= $2 OR p.count < coalesce(p.latest, 0) / $2)
               ORDER BY s.stream_id LIMIT $4",
        of_streams: format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM past_snapshots WHERE stream_id = ANY($1) ORDER BY stream_id, version"
        ),
    }
});

#[async_trait]
impl Snapshots for PgStore {
    async fn snapshot_before(&self, stream_id: Uuid, until: Until) -> Result<Option<PastSnapshot>, StoreError> {
        let mut session = self.session().await?;
        let snapshot = sql::snapshot_before(session.run(), &STATEMENTS, stream_id, until).await?;
        session.commit().await?;
        Ok(snapshot)
    }

    async fn read_stream_after(
        &self,
        stream_id: Uuid,
        after: i64,
        until: Until,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut session = self.session().await?;
        let events = sql::stream_after(session.run(), &STATEMENTS, stream_id, after, until).await?;
        session.commit().await?;
        Ok(events)
    }

    async fn snapshots_due(&self, every: i64, after: Uuid, limit: i64) -> Result<Vec<DueStream>, StoreError> {
        let mut session = self.session().await?;
        let due = sql::snapshots_due(session.run(), &STATEMENTS, every, after, limit).await?;
        session.commit().await?;
        Ok(due)
    }

    async fn put_snapshots(&self, snapshots: &[PastSnapshot]) -> Result<(), StoreError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let put = sqlx::query(
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
        .bind(snapshots.iter().map(|s| s.state.clone()).collect::<Vec<_>>());
        let mut session = self.session().await?;
        sql::execute(put, session.run()).await?;
        session.commit().await
    }

    async fn past_snapshots(&self, streams: &[Uuid]) -> Result<Vec<PastSnapshot>, StoreError> {
        let mut session = self.session().await?;
        let of_streams = sqlx::query(&STATEMENTS.of_streams).bind(streams);
        let snapshots = sql::all(of_streams, session.run(), decode_snapshot).await?;
        session.commit().await?;
        Ok(snapshots)
    }

    async fn delete_snapshots(&self, stream: Option<Uuid>, other_formats_only: bool) -> Result<u64, StoreError> {
        let mut session = self.session().await?;
        let done = sqlx::query(
            "DELETE FROM past_snapshots WHERE ($1::uuid IS NULL OR stream_id = $1) AND (NOT $2 OR format <> $3)",
        )
        .bind(stream)
        .bind(other_formats_only)
        .bind(SNAPSHOT_FORMAT)
        .execute(session.run())
        .await
        .map_err(map_sqlx)?;
        session.commit().await?;
        Ok(done.rows_affected())
    }
}
