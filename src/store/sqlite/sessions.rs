//! The board's sessions on SQLite (see `store::sessions`): reads on the readers' pool,
//! writes on the one writer; times are microseconds.

use chrono::{DateTime, Utc};

use crate::store::backend::Sessions;
use crate::store::sessions::{SESSION_COLUMNS, SessionClaims, SessionRow, decode_session};

use super::*;

#[async_trait]
impl Sessions for SqliteStore {
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |pool| async move {
            sqlx::query(
                "INSERT INTO sessions (id_hash, principal, roles, csrf_token, refresh_token, id_token, created_at,
                                       last_seen_at, expires_at, refresh_at, teams)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .bind(session.id_hash.to_vec())
            .bind(&session.principal)
            .bind(&session.roles)
            .bind(&session.csrf_token)
            .bind(&session.refresh_token)
            .bind(&session.id_token)
            .bind(session.created_at.timestamp_micros())
            .bind(session.last_seen_at.timestamp_micros())
            .bind(session.expires_at.timestamp_micros())
            .bind(session.refresh_at.timestamp_micros())
            .bind(&session.teams)
            .execute(&pool)
            .await
            .map_err(map_sqlx)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRow>, StoreError> {
        let select = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?1");
        sql::optional(sqlx::query(&select).bind(id_hash.to_vec()), &self.pool, decode_session).await
    }

    async fn touch_session(&self, id_hash: &[u8; 32], at: DateTime<Utc>) -> Result<(), StoreError> {
        let id_hash = id_hash.to_vec();
        self.write(move |pool| async move {
            sqlx::query("UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?2")
                .bind(id_hash)
                .bind(at.timestamp_micros())
                .execute(&pool)
                .await
                .map_err(map_sqlx)?;
            Ok(())
        })
        .await
    }

    async fn refresh_session(
        &self,
        id_hash: &[u8; 32],
        used: &str,
        claims: &SessionClaims,
    ) -> Result<bool, StoreError> {
        let (id_hash, used, claims) = (id_hash.to_vec(), used.to_owned(), claims.clone());
        self.write(move |pool| async move {
            let done = sqlx::query(
                "UPDATE sessions SET principal = ?3, roles = ?4, refresh_token = ?5, id_token = ?6, refresh_at = ?7,
                                     teams = ?8
                  WHERE id_hash = ?1 AND refresh_token = ?2",
            )
            .bind(id_hash)
            .bind(used)
            .bind(&claims.principal)
            .bind(&claims.roles)
            .bind(&claims.refresh_token)
            .bind(&claims.id_token)
            .bind(claims.refresh_at.timestamp_micros())
            .bind(&claims.teams)
            .execute(&pool)
            .await
            .map_err(map_sqlx)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let id_hash = id_hash.to_vec();
        self.write(move |pool| async move {
            let done = sqlx::query("DELETE FROM sessions WHERE id_hash = ?1")
                .bind(id_hash)
                .execute(&pool)
                .await
                .map_err(map_sqlx)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn prune_sessions(&self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(move |pool| async move {
            let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at < ?2")
                .bind(now.timestamp_micros())
                .bind(idle_before.timestamp_micros())
                .execute(&pool)
                .await
                .map_err(map_sqlx)?;
            Ok(done.rows_affected())
        })
        .await
    }
}
