//! The stored projection at one consistent cut on PostgreSQL (see `store::cut`): one
//! REPEATABLE READ snapshot holds the log's end and every alignment row, so each row
//! reflects exactly the events up to that end.

use tokio_stream::StreamExt;

use super::auditing::cursor_of;
use super::*;
use crate::store::backend::ProjectionCuts;
use crate::store::cut::ProjectionCut;
use crate::store::rows::decode_cut_row;

#[async_trait]
impl ProjectionCuts for PgStore {
    async fn projection_cut(&self) -> Result<ProjectionCut, StoreError> {
        let mut tx = self.snapshot().await?;
        // The log's last event in the order `read_all` reads it: by position after the
        // commit-order boundary, by (tx_id, position) before it.
        let end = sqlx::query(
            "SELECT o.ordered_after, h.position, h.tx
               FROM log_order o
               LEFT JOIN LATERAL (SELECT position, tx_id::text::bigint AS tx FROM events
                                   ORDER BY position DESC LIMIT 1) AS h ON true",
        )
        .fetch_one(tx.run())
        .await
        .map_err(map_sqlx)?;
        let ordered_after: i64 = end.read("ordered_after")?;
        let head: Option<i64> = end.read("position")?;
        let cursor = match head {
            None => GlobalCursor::default(),
            Some(head) if head > ordered_after => cursor_of(0, head, ordered_after),
            Some(_) => {
                let last = sqlx::query(
                    "SELECT tx_id::text::bigint AS tx, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1",
                )
                .fetch_one(tx.run())
                .await
                .map_err(map_sqlx)?;
                cursor_of(last.read("tx")?, last.read("position")?, ordered_after)
            }
        };
        let mut rows = Vec::new();
        {
            // The transaction id of a stream's last event only matters before the
            // boundary (its cursor then is (tx_id, position)).
            let mut stream = sqlx::query(
                "SELECT s.stream_id, s.version AS head_version, s.last_position,
                        (SELECT e.tx_id::text::bigint FROM events e
                          WHERE e.position = s.last_position AND s.last_position <= $1) AS tx,
                        a.version, a.projection_version, a.view, a.awaiting
                   FROM streams s LEFT JOIN alignment a ON a.initiative_id = s.stream_id",
            )
            .bind(ordered_after)
            .fetch(tx.run());
            while let Some(row) = stream.next().await {
                let row = row.map_err(map_sqlx)?;
                let tx: Option<i64> = row.read("tx")?;
                let cursor = |position| cursor_of(tx.unwrap_or_default(), position, ordered_after);
                rows.push(decode_cut_row(&row, row.read("awaiting")?, cursor)?);
            }
        }
        tx.commit().await?;
        Ok(ProjectionCut { cursor, position: u64::try_from(head.unwrap_or(0)).unwrap_or_default(), rows })
    }
}
