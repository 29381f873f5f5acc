//! Rebuilding a stream's head and alignment row from its events on SQLite, and writing
//! a folded head (a rebuild's or an import's).

use std::collections::HashMap;

use super::*;
use crate::store::replay::StreamFold;
use crate::store::snapshots::PastSnapshot;

#[async_trait]
impl Rebuild for SqliteStore {
    async fn stream_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        sql::stream_ids(&self.pool).await
    }

    async fn fold_log(
        &self,
        every: i64,
        writer: tokio::sync::mpsc::Sender<Vec<PastSnapshot>>,
    ) -> Result<HashMap<Uuid, StreamFold>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_sqlx)?;
        sql::fold_log(&mut *conn, every, writer).await
    }

    /// On the one writer: commands queue behind one initiative's rebuild at a time.
    async fn rebuild_stream(&self, stream_id: Uuid, fold: StreamFold) -> Result<(), StoreError> {
        self.write(move |pool| async move { attempts(|| rebuild_stream(&pool, stream_id, fold.clone())).await }).await
    }
}

/// Writes one stream's head and alignment row from `fold` with the events after it, in
/// one write transaction.
async fn rebuild_stream(pool: &SqlitePool, stream_id: Uuid, fold: StreamFold) -> Result<(), Retry> {
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(fail)?;
    let tail = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version"
    );
    let rows =
        sqlx::query(&tail).bind(stream_id.to_string()).bind(fold.version()).fetch_all(&mut *tx).await.map_err(fail)?;
    let head = fold.head(stream_id, &decode_events(&rows)?)?;
    write_head(&mut tx, &head).await?;
    tx.commit().await.map_err(fail)
}

/// Writes (inserts or replaces) a stream's head with its folded state, and its alignment
/// row.
pub(super) async fn write_head(conn: &mut SqliteConnection, head: &FoldedHead) -> Result<(), Retry> {
    let (state, projection) = (&head.state, &head.projection);
    let stream = head.stream_id.to_string();
    let last_activity = state.last_activity.timestamp_micros();
    sqlx::query(
        "INSERT INTO streams (stream_id, key, version, head_hash, last_position, state, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (stream_id) DO UPDATE SET key = excluded.key, version = excluded.version,
             head_hash = excluded.head_hash, last_position = excluded.last_position,
             state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(&stream)
    .bind(state.key.as_str())
    .bind(head.version)
    .bind(&head.head_hash)
    .bind(head.last_position)
    .bind(encode_json(&projection.state_json)?)
    .bind(last_activity)
    .execute(&mut *conn)
    .await
    .map_err(fail)?;
    let (view, awaiting) = (&projection.view, &projection.awaiting);
    sqlx::query(
        "INSERT INTO alignment (initiative_id, key, title, owner, stage, status, archived,
                                outstanding_functions, awaiting, score, last_activity, version, view,
                                projection_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (initiative_id) DO UPDATE SET key = excluded.key, title = excluded.title,
             owner = excluded.owner, stage = excluded.stage, status = excluded.status,
             archived = excluded.archived, outstanding_functions = excluded.outstanding_functions,
             awaiting = excluded.awaiting, score = excluded.score, last_activity = excluded.last_activity,
             version = excluded.version, view = excluded.view, projection_version = excluded.projection_version",
    )
    .bind(&stream)
    .bind(state.key.as_str())
    .bind(&view.title)
    .bind(view.owner.as_str())
    .bind(view.stage.as_str())
    .bind(view.status.as_str())
    .bind(view.archived)
    .bind(encode_json(&view.outstanding_functions())?)
    .bind(encode_json(awaiting)?)
    .bind(view.score)
    .bind(last_activity)
    .bind(head.version)
    .bind(encode_json(&projection.view_json)?)
    .bind(crate::domain::alignment::PROJECTION_VERSION)
    .execute(&mut *conn)
    .await
    .map_err(fail)?;
    Ok(())
}
