-- Board sign-in sessions — the PostgreSQL migration of the same name in SQLite's types:
-- times as microseconds since the epoch. (See it for what each column is for.)
CREATE TABLE sessions (
    id_hash        BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    principal      TEXT    NOT NULL,
    roles          TEXT    NOT NULL,
    teams          TEXT    NOT NULL DEFAULT '',
    csrf_token     TEXT    NOT NULL,
    refresh_token  TEXT,
    id_token       TEXT,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    refresh_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);
