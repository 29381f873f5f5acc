//! The board's sign-in sessions (`crate::http::auth`), shared by every replica on the
//! same database: the row both backends store, its decoding, and the `Store` methods
//! (always on the primary); each backend's statements are in its own `sessions` file.

use chrono::{DateTime, Utc};

use super::rows::StoredRow;
use super::{Store, StoreError};

/// The columns `decode_session` reads, in both databases.
pub(crate) const SESSION_COLUMNS: &str = "id_hash, principal, roles, teams, csrf_token, refresh_token, \
     id_token, created_at, last_seen_at, expires_at, refresh_at";

/// One session as stored.
#[derive(Clone, PartialEq)]
pub struct SessionRow {
    /// SHA-256 of the session id (the cookie's value); the id itself is never stored.
    pub id_hash: [u8; 32],
    pub principal: String,
    /// Role names, space-separated.
    pub roles: String,
    /// Team principals (`team:NAME`), space-separated.
    pub teams: String,
    pub csrf_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// When the claims are due to be refreshed.
    pub refresh_at: DateTime<Utc>,
}

/// Never prints the tokens.
impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("principal", &self.principal)
            .field("roles", &self.roles)
            .field("teams", &self.teams)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// What a refresh changes: the claims and the provider's tokens.
#[derive(Clone, PartialEq)]
pub struct SessionClaims {
    pub principal: String,
    pub roles: String,
    pub teams: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub refresh_at: DateTime<Utc>,
}

/// A session row (`SESSION_COLUMNS`).
pub(crate) fn decode_session<R: StoredRow>(row: &R) -> Result<SessionRow, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("session: {what}"));
    let hash: Vec<u8> = row.read("id_hash")?;
    Ok(SessionRow {
        id_hash: <[u8; 32]>::try_from(hash).map_err(|_| corrupt("id_hash is not 32 bytes".into()))?,
        principal: row.read("principal")?,
        roles: row.read("roles")?,
        teams: row.read("teams")?,
        csrf_token: row.read("csrf_token")?,
        refresh_token: row.read("refresh_token")?,
        id_token: row.read("id_token")?,
        created_at: row.time("created_at")?.map_err(corrupt)?,
        last_seen_at: row.time("last_seen_at")?.map_err(corrupt)?,
        expires_at: row.time("expires_at")?.map_err(corrupt)?,
        refresh_at: row.time("refresh_at")?.map_err(corrupt)?,
    })
}

impl Store {
    /// Records a new session.
    pub async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        self.bounded(self.backend.create_session(session)).await
    }

    /// The session whose id hashes to `id_hash`, if there is one.
    pub async fn session(&self, id_hash: &[u8; 32]) -> Result<Option<SessionRow>, StoreError> {
        self.bounded(self.backend.session(id_hash)).await
    }

    /// Moves a session's last-seen time (never backwards).
    pub async fn touch_session(&self, id_hash: &[u8; 32], at: DateTime<Utc>) -> Result<(), StoreError> {
        self.bounded(self.backend.touch_session(id_hash, at)).await
    }

    /// Replaces a session's claims after a refresh, only while it still holds the
    /// refresh token `used` (so that of two replicas refreshing at once one wins);
    /// whether it did.
    pub async fn refresh_session(
        &self,
        id_hash: &[u8; 32],
        used: &str,
        claims: &SessionClaims,
    ) -> Result<bool, StoreError> {
        self.bounded(self.backend.refresh_session(id_hash, used, claims)).await
    }

    /// Deletes a session; whether it existed.
    pub async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.bounded(self.backend.delete_session(id_hash)).await
    }

    /// Deletes the sessions past their absolute expiry at `now`, or last seen before
    /// `idle_before`; how many.
    pub async fn prune_sessions(&self, now: DateTime<Utc>, idle_before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(self.backend.prune_sessions(now, idle_before)).await
    }
}
