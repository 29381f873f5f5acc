-- Outbound webhooks — the PostgreSQL migration of the same name in SQLite's types:
-- UUIDs as text, JSON as text, times as microseconds since the epoch. (See it for what
-- each column is for.)
CREATE TABLE webhook_subscriptions (
    id               TEXT    PRIMARY KEY,
    config           TEXT    NOT NULL CHECK (json_valid(config)),
    state            TEXT    NOT NULL CHECK (state IN ('enabled', 'paused', 'disabled')),
    disabled_reason  TEXT    NOT NULL DEFAULT '',
    cursor_tx        INTEGER NOT NULL DEFAULT 0,
    cursor_position  INTEGER NOT NULL DEFAULT 0,
    dead_in_a_row    INTEGER NOT NULL DEFAULT 0,
    last_digest_on   TEXT,
    created_by       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL CHECK (version > 0)
) STRICT;

CREATE TABLE webhook_deliveries (
    -- AUTOINCREMENT: a pruned row's seq is never given again, so the log's order holds.
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id   TEXT    NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    message_id        TEXT    NOT NULL,
    message_type      TEXT    NOT NULL,
    position          INTEGER,
    initiative_id     TEXT,
    status            TEXT    NOT NULL CHECK (status IN ('delivered', 'failing', 'dead', 'queued')),
    attempts          INTEGER NOT NULL,
    response_code     INTEGER,
    error             TEXT    NOT NULL DEFAULT '',
    latency_ms        INTEGER NOT NULL DEFAULT 0,
    first_attempt_at  INTEGER NOT NULL,
    last_attempt_at   INTEGER NOT NULL,
    delivered_at      INTEGER,
    payload           BLOB,
    UNIQUE (subscription_id, message_id)
) STRICT;
CREATE INDEX webhook_deliveries_newest ON webhook_deliveries (subscription_id, seq DESC);
CREATE INDEX webhook_deliveries_queued ON webhook_deliveries (seq) WHERE status = 'queued';
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (last_attempt_at) WHERE status = 'delivered';

CREATE TABLE webhook_leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
