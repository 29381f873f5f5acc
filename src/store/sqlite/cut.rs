//! The stored projection at one consistent cut on SQLite (see `store::cut`): one read
//! transaction (one WAL snapshot) holds the log's end and every alignment row. Position
//! order is commit order here, so a cursor is a position alone.

use tokio_stream::StreamExt;

use super::*;
use crate::store::backend::ProjectionCuts;
use crate::store::cut::{CutRow, ProjectionCut, usable};

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
                let version: i64 = row.read("head_version")?;
                let position: i64 = row.read("last_position")?;
                let view = usable(
                    version,
                    row.read("version")?,
                    row.read("projection_version")?,
                    row.optional_json("view")?.transpose(),
                    row.optional_json("awaiting")?.ok().flatten(),
                );
                rows.push(CutRow {
                    initiative_id: row.uuid("stream_id")?,
                    version,
                    cursor: GlobalCursor { tx_id: 0, position },
                    position: u64::try_from(position).unwrap_or_default(),
                    view,
                });
            }
        }
        tx.commit().await.map_err(map_sqlx)?;
        let cursor = GlobalCursor { tx_id: 0, position: head };
        Ok(ProjectionCut { cursor, position: u64::try_from(head).unwrap_or_default(), rows })
    }
}
