-- Board sign-in sessions (OpenID Connect, `http::auth`): one row per signed-in browser,
-- shared by every replica on this database. The cookie holds the session id; only its
-- SHA-256 is stored, so a copy of this table signs nobody in.
CREATE TABLE sessions (
    id_hash        bytea       PRIMARY KEY CHECK (length(id_hash) = 32),
    principal      text        NOT NULL,
    -- The Accord roles, space-separated, as mapped from the provider's claims.
    roles          text        NOT NULL,
    -- The teams (team:NAME), space-separated, from the provider's group claim.
    teams          text        NOT NULL DEFAULT '',
    -- The synchronizer token every state-changing request of this session must send.
    csrf_token     text        NOT NULL,
    -- What the provider gave: a refresh token (if any) and the last ID token (the
    -- id_token_hint of the provider's logout).
    refresh_token  text,
    id_token       text,
    created_at     timestamptz NOT NULL,
    -- Written at most once a minute: the idle expiry slides from it.
    last_seen_at   timestamptz NOT NULL,
    -- The absolute expiry: never extended.
    expires_at     timestamptz NOT NULL,
    -- When the claims are due to be refreshed (the ID token's expiry).
    refresh_at     timestamptz NOT NULL
);
-- Pruning expired sessions.
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);
