//! The stored projection at one consistent cut on SQLite (see `store::cut`): one read
//! transaction (one WAL snapshot) holds the log's end and every alignment row. Position
//! order is commit order here, so a cursor is a position alone.

use tokio_stream::StreamExt;

use super::*;
use crate::store::backend::ProjectionCuts;
use crate::store::cut::ProjectionCut;
use crate::store::rows::decode_cut_row;

#[async_trait]
impl ProjectionCuts for SqliteStore {
    async fn projection_cut(&self) -> Result<ProjectionCut, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        let head = sql::log_end(&mut *tx).await?;
        let mut rows = Vec::new();
        {
            let mut stream = sqlx::query(
                "SELECT s.stream_id, s.version AS head_version, s.last_position,
                        a.version, a.projection_version, a.view, a.awaiting
                   FROM streams s LEFT JOIN alignment a ON a.initiative_id = s.stream_id",
            )
            .fetch(&mut *tx);
            while let Some(row) = stream.next().await {
                let row = row.map_err(map_sqlx)?;
                let awaiting = row.optional_json("awaiting")?.ok().flatten();
                rows.push(decode_cut_row(&row, awaiting, |position| GlobalCursor { tx_id: 0, position })?);
            }
        }
        tx.commit().await.map_err(map_sqlx)?;
        let cursor = GlobalCursor { tx_id: 0, position: head };
        Ok(ProjectionCut { cursor, position: u64::try_from(head).unwrap_or_default(), rows })
    }
}
