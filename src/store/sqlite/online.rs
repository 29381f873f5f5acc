//! The online (blue/green) projection rebuild on SQLite: rows folded into
//! `alignment_next` beside the served `alignment`, and the swap: one write transaction
//! on the one writer (appends queue behind it), which folds the streams that moved since
//! their side row was built and replaces alignment's rows with the side table's. Readers
//! (WAL) see the old rows or the new ones, never a mix.

use super::*;
use crate::domain::alignment::PROJECTION_VERSION;
use crate::store::backend::OnlineRebuild;

/// The columns of an alignment row, in both tables.
const COLUMNS: &str = "initiative_id, key, title, owner, stage, status, archived, outstanding_functions, awaiting, \
                       score, last_activity, version, view, projection_version";

/// Streams whose head is not where their side row was folded to.
const BEHIND: &str = "SELECT s.stream_id FROM streams s
                        LEFT JOIN alignment_next n ON n.initiative_id = s.stream_id
                       WHERE n.version IS NOT s.version
                       ORDER BY s.stream_id";

#[async_trait]
impl OnlineRebuild for SqliteStore {
    async fn clear_next(&self) -> Result<(), StoreError> {
        self.write(|pool| async move {
            sqlx::query("DELETE FROM alignment_next").execute(&pool).await.map_err(map_sqlx)?;
            Ok(())
        })
        .await
    }

    async fn write_next(&self, heads: &[FoldedHead]) -> Result<(), StoreError> {
        let heads = heads.to_vec();
        self.write(move |pool| async move {
            let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            for head in &heads {
                write_next_row(&mut tx, head).await?;
            }
            tx.commit().await.map_err(map_sqlx)
        })
        .await
    }

    async fn next_behind(&self) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(BEHIND).fetch_all(&self.pool).await.map_err(map_sqlx)?;
        ids.iter().map(|id| parse_uuid("stream_id", id)).collect()
    }

    async fn swap_next(&self) -> Result<u64, StoreError> {
        self.write(|pool| async move {
            let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
            let ids: Vec<String> = sqlx::query_scalar(BEHIND).fetch_all(&mut *tx).await.map_err(map_sqlx)?;
            for id in &ids {
                let statement =
                    format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 ORDER BY stream_version");
                let events = sql::all(sqlx::query(&statement).bind(id), &mut *tx, decode_event).await?;
                let head = FoldedHead::refold(parse_uuid("stream_id", id)?, &events)?;
                write_next_row(&mut tx, &head).await?;
            }
            sqlx::query("DELETE FROM alignment").execute(&mut *tx).await.map_err(map_sqlx)?;
            sqlx::query(&format!("INSERT INTO alignment ({COLUMNS}) SELECT {COLUMNS} FROM alignment_next"))
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?;
            sqlx::query("DELETE FROM alignment_next").execute(&mut *tx).await.map_err(map_sqlx)?;
            tx.commit().await.map_err(map_sqlx)?;
            Ok(ids.len() as u64)
        })
        .await
    }
}

async fn write_next_row(conn: &mut SqliteConnection, head: &FoldedHead) -> Result<(), StoreError> {
    let (state, projection) = (&head.state, &head.projection);
    let (view, awaiting) = (&projection.view, &projection.awaiting);
    sqlx::query(&format!(
        "INSERT OR REPLACE INTO alignment_next ({COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))
    .bind(head.stream_id.to_string())
    .bind(state.key.as_str())
    .bind(&view.title)
    .bind(view.owner.as_str())
    .bind(view.stage.as_str())
    .bind(view.status.as_str())
    .bind(view.archived)
    .bind(encode_json(&view.outstanding_functions())?)
    .bind(encode_json(awaiting)?)
    .bind(view.score)
    .bind(state.last_activity.timestamp_micros())
    .bind(head.version)
    .bind(encode_json(&projection.view_json)?)
    .bind(PROJECTION_VERSION)
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}
