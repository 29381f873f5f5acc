//! The online (blue/green) projection rebuild on PostgreSQL: rows folded into
//! `alignment_next` beside the served `alignment`, and the swap.
//!
//! The swap is one transaction that first takes the commit-order lock every append
//! takes (`accord_commit_order`), so no append commits while it runs, folds the streams
//! that moved since their side row was built, and replaces alignment's rows with the
//! side table's. Readers see the old rows or the new ones, never a mix (MVCC), and do
//! not wait. The rows are copied rather than the tables renamed: a rename needs an
//! ACCESS EXCLUSIVE lock on `alignment`, which an append waiting for the commit-order
//! lock already holds a conflicting lock on (from the start of its statement), so the
//! two would deadlock; and the append's error mapping names alignment's constraints.

use super::*;
use crate::domain::alignment::PROJECTION_VERSION;
use crate::store::backend::OnlineRebuild;

/// The columns of an alignment row, in both tables.
const COLUMNS: &str = "initiative_id, key, title, owner, stage, status, archived, outstanding_functions, awaiting, \
                       score, last_activity, version, view, projection_version";

#[async_trait]
impl OnlineRebuild for PgStore {
    async fn clear_next(&self) -> Result<(), StoreError> {
        let mut session = self.session().await?;
        sqlx::query("DELETE FROM alignment_next").execute(session.run()).await.map_err(map_sqlx)?;
        session.commit().await
    }

    async fn write_next(&self, heads: &[FoldedHead]) -> Result<(), StoreError> {
        let mut session = self.session().await?;
        for head in heads {
            write_next_row(&mut session, head).await?;
        }
        session.commit().await
    }

    async fn next_behind(&self) -> Result<Vec<Uuid>, StoreError> {
        let mut session = self.session().await?;
        let behind = sqlx::query_scalar(BEHIND).fetch_all(session.run()).await.map_err(map_sqlx)?;
        session.commit().await?;
        Ok(behind)
    }

    async fn swap_next(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        // The commit-order lock (migration 20261217000006): appends wait for it before
        // they write, and every append that holds it has committed once it is ours.
        sqlx::query("SELECT pg_advisory_xact_lock(7017561974685068399)").execute(tx.run()).await.map_err(map_sqlx)?;
        let behind: Vec<Uuid> = sqlx::query_scalar(BEHIND).fetch_all(tx.run()).await.map_err(map_sqlx)?;
        for stream_id in &behind {
            let statement = format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version");
            let events = sql::all(sqlx::query(&statement).bind(stream_id), tx.run(), decode_event).await?;
            let head = FoldedHead::refold(*stream_id, &events)?;
            write_next_row(&mut tx, &head).await?;
        }
        sqlx::query(
            "DELETE FROM alignment a WHERE NOT EXISTS (SELECT 1 FROM alignment_next n WHERE n.initiative_id = a.initiative_id)",
        )
        .execute(tx.run())
        .await
        .map_err(map_sqlx)?;
        sqlx::query(&format!(
            "INSERT INTO alignment ({COLUMNS}) SELECT {COLUMNS} FROM alignment_next
             ON CONFLICT (initiative_id) DO UPDATE SET key = EXCLUDED.key, title = EXCLUDED.title,
               owner = EXCLUDED.owner, stage = EXCLUDED.stage, status = EXCLUDED.status,
               archived = EXCLUDED.archived, outstanding_functions = EXCLUDED.outstanding_functions,
               awaiting = EXCLUDED.awaiting, score = EXCLUDED.score, last_activity = EXCLUDED.last_activity,
               version = EXCLUDED.version, view = EXCLUDED.view, projection_version = EXCLUDED.projection_version
             -- Rows that are the same already are not rewritten: the appends wait less.
             WHERE (alignment.version, alignment.projection_version, alignment.view, alignment.awaiting,
                    alignment.outstanding_functions, alignment.title, alignment.status, alignment.stage,
                    alignment.owner, alignment.archived, alignment.score, alignment.last_activity)
                   IS DISTINCT FROM
                   (EXCLUDED.version, EXCLUDED.projection_version, EXCLUDED.view, EXCLUDED.awaiting,
                    EXCLUDED.outstanding_functions, EXCLUDED.title, EXCLUDED.status, EXCLUDED.stage,
                    EXCLUDED.owner, EXCLUDED.archived, EXCLUDED.score, EXCLUDED.last_activity)"
        ))
        .execute(tx.run())
        .await
        .map_err(map_sqlx)?;
        sqlx::query("DELETE FROM alignment_next").execute(tx.run()).await.map_err(map_sqlx)?;
        tx.commit().await?;
        Ok(behind.len() as u64)
    }
}

/// Streams whose head is not where their side row was folded to.
const BEHIND: &str = "SELECT s.stream_id FROM streams s
                        LEFT JOIN alignment_next n ON n.initiative_id = s.stream_id
                       WHERE n.version IS DISTINCT FROM s.version
                       ORDER BY s.stream_id";

async fn write_next_row(conn: &mut Session, head: &FoldedHead) -> Result<(), StoreError> {
    let (state, projection) = (&head.state, &head.projection);
    sqlx::query(&format!(
        "INSERT INTO alignment_next ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (initiative_id) DO UPDATE SET key = EXCLUDED.key, title = EXCLUDED.title,
           owner = EXCLUDED.owner, stage = EXCLUDED.stage, status = EXCLUDED.status,
           archived = EXCLUDED.archived, outstanding_functions = EXCLUDED.outstanding_functions,
           awaiting = EXCLUDED.awaiting, score = EXCLUDED.score, last_activity = EXCLUDED.last_activity,
           version = EXCLUDED.version, view = EXCLUDED.view, projection_version = EXCLUDED.projection_version"
    ))
    .bind(head.stream_id)
    .bind(state.key.as_str())
    .bind(&projection.view.title)
    .bind(projection.view.owner.as_str())
    .bind(projection.view.stage.as_str())
    .bind(projection.view.status.as_str())
    .bind(projection.view.archived)
    .bind(projection.view.outstanding_functions())
    .bind(&projection.awaiting)
    .bind(projection.view.score)
    .bind(state.last_activity)
    .bind(head.version)
    .bind(&projection.view_json)
    .bind(PROJECTION_VERSION)
    .execute(conn.run())
    .await
    .map_err(map_sqlx)?;
    Ok(())
}
