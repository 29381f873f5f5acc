//! The board's sessions on PostgreSQL (see `store::sessions`): one statement each, in a
//! `Session` of the pool.

use std::sync::LazyLock;

use crate::store::backend::Sessions;
use crate::store::sessions::{SESSION_COLUMNS, SessionClaims, SessionRow, decode_session};

use super::*;

static SESSION: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"));

#[async_trait]
impl Sessions for PgStore {
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        let insert = sqlx::query(
            "INSERT INTO sessions (id_hash, principal, roles, csrf_token, refresh_token, id_token, created_at,
                                   last_seen_at, expires_at, refresh_at, teams)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(session.id_hash.as_slice())
        .bind(&session.principal)
        .bind(&session.roles)
        .bind(&session.csrf_token)
        .bind(&session.refresh_token)
        .bind(&session.id_token)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .bind(session.refresh_at)
        .bind(&session.teams);
        let mut session = self.session().await?;
        insert.execute(session.run()).await.map_err(map_sqlx)?;
        session.commit().await
    }

    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRow>, StoreError> {
        let mut session = self.session().await?;
        let row = sql::optional(sqlx::query(&SESSION).bind(id_hash.as_slice()), session.run(), decode_session).await?;
        session.commit().await?;
        Ok(row)
    }

    async fn touch_session(&self, id_hash: &[u8; 32], at: DateTime<Utc>) -> Result<(), StoreError> {
        let touch = sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2")
            .bind(id_hash.as_slice())
            .bind(at);
        let mut session = self.session().await?;
        touch.execute(session.run()).await.map_err(map_sqlx)?;
        session.commit().await
    }

    async fn refresh_session(
        &self,
        id_hash: &[u8; 32],
        used: &str,
        claims: &SessionClaims,
    ) -> Result<bool, StoreError> {
        let update = sqlx::query(
            "UPDATE sessions SET principal = $3, roles = $4, refresh_token = $5, id_token = $6, refresh_at = $7,
                                 teams = $8
              WHERE id_hash = $1 AND refresh_token = $2",
        )
        .bind(id_hash.as_slice())
        .bind(used)
        .bind(&claims.principal)
        .bind(&claims.roles)
        .bind(&claims.refresh_token)
        .bind(&claims.id_token)
        .bind(claims.refresh_at)
        .bind(&claims.teams);
        let mut session = self.session().await?;
        let done = update.execute(session.run()).await.map_err(map_sqlx)?;
        session.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let delete = sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash.as_slice());
        let mut session = self.session().await?;
        let done = delete.execute(session.run()).await.map_err(map_sqlx)?;
        session.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_sessions(&self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let delete =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2").bind(now).bind(idle_before);
        let mut session = self.session().await?;
        let done = delete.execute(session.run()).await.map_err(map_sqlx)?;
        session.commit().await?;
        Ok(done.rows_affected())
    }
}
