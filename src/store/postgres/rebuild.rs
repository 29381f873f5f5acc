//! Rebuilding a stream's head and alignment row from its events on PostgreSQL, and the
//! one statement that writes a folded head (a rebuild's or an import's).

use std::collections::HashMap;

use super::*;
use crate::store::replay::StreamFold;
use crate::store::snapshots::PastSnapshot;

#[async_trait]
impl Rebuild for PgStore {
    async fn stream_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let mut session = self.session().await?;
        let ids = sql::stream_ids(session.run()).await?;
        session.commit().await?;
        Ok(ids)
    }

    async fn fold_log(
        &self,
        every: i64,
        writer: tokio::sync::mpsc::Sender<Vec<PastSnapshot>>,
    ) -> Result<HashMap<Uuid, StreamFold>, StoreError> {
        let mut session = self.session().await?;
        let folds = sql::fold_log(session.run(), every, writer).await?;
        session.commit().await?;
        Ok(folds)
    }

    /// The head is locked (`FOR UPDATE`) while it is written.
    async fn rebuild_stream(&self, stream_id: Uuid, fold: StreamFold) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let lock = sqlx::query("SELECT 1 FROM streams WHERE stream_id = $1 FOR UPDATE");
        sql::execute(lock.bind(stream_id), tx.run()).await?;
        let tail = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        );
        let tail = sqlx::query(&tail).bind(stream_id).bind(fold.version());
        let tail = sql::all(tail, tx.run(), decode_event).await?;
        write_head(&mut tx, &fold.head(stream_id, &tail)?).await?;
        tx.commit().await
    }
}

/// Writes (inserts or replaces) a stream's head with its folded state, and its
/// alignment row, in one statement.
pub(super) async fn write_head(conn: &mut Session, head: &FoldedHead) -> Result<(), StoreError> {
    let (state, projection) = (&head.state, &head.projection);
    let write = sqlx::query(
        "WITH st AS (
           INSERT INTO streams (stream_id, key, version, head_hash, last_position, state, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (stream_id) DO UPDATE SET key = EXCLUDED.key, version = EXCLUDED.version,
             head_hash = EXCLUDED.head_hash, last_position = EXCLUDED.last_position,
             state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
         )
         INSERT INTO alignment (initiative_id, key, title, owner, stage, status, archived,
           outstanding_functions, awaiting, score, last_activity, version, view, projection_version)
         VALUES ($1, $2, $8, $9, $10, $11, $12, $13, $14, $15, $7, $3, $16, $17)
         ON CONFLICT (initiative_id) DO UPDATE SET key = EXCLUDED.key, title = EXCLUDED.title,
           owner = EXCLUDED.owner, stage = EXCLUDED.stage, status = EXCLUDED.status,
           archived = EXCLUDED.archived, outstanding_functions = EXCLUDED.outstanding_functions,
           awaiting = EXCLUDED.awaiting, score = EXCLUDED.score, last_activity = EXCLUDED.last_activity,
           version = EXCLUDED.version, view = EXCLUDED.view, projection_version = EXCLUDED.projection_version",
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
    .bind(crate::domain::alignment::PROJECTION_VERSION);
    sql::execute(write, conn.run()).await
}
