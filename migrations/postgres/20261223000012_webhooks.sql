-- Outbound webhooks (Standard Webhooks 1.0): the subscriptions administrators manage,
-- the log of what was delivered to each, and the lease that lets one replica at a time
-- dispatch. The dispatcher (`webhook`) follows the event log from each subscription's
-- cursor; the store only keeps what it needs to resume after a restart or a failover.
CREATE TABLE webhook_subscriptions (
    id               uuid        PRIMARY KEY,
    -- The endpoint, filters, secrets...: parsed by `webhook`, opaque here.
    config           jsonb       NOT NULL,
    state            text        NOT NULL CHECK (state IN ('enabled', 'paused', 'disabled')),
    -- Why it was disabled ('' unless it is).
    disabled_reason  text        NOT NULL DEFAULT '',
    -- The commit-order key (store::GlobalCursor) of the last event handled: delivered
    -- or dead-lettered.
    cursor_tx        bigint      NOT NULL DEFAULT 0,
    cursor_position  bigint      NOT NULL DEFAULT 0,
    -- Consecutive dead letters: enough of them disable the subscription.
    dead_in_a_row    bigint      NOT NULL DEFAULT 0,
    -- The day (YYYY-MM-DD) of the last digest sent, so that a restart sends none twice.
    last_digest_on   text,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- 1 at creation, +1 at every update: an administrator's update may expect one.
    version          bigint      NOT NULL CHECK (version > 0)
);

CREATE TABLE webhook_deliveries (
    -- Assigned at the first attempt and kept: the order of the delivery log.
    seq               bigserial   PRIMARY KEY,
    subscription_id   uuid        NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    -- The webhook-id: the same message is the same row, however often it is attempted.
    message_id        text        NOT NULL,
    message_type      text        NOT NULL,
    -- The event's global position, for messages about one event.
    position          bigint,
    initiative_id     uuid,
    status            text        NOT NULL CHECK (status IN ('delivered', 'failing', 'dead', 'queued')),
    attempts          integer     NOT NULL,
    response_code     integer,
    error             text        NOT NULL DEFAULT '',
    latency_ms        bigint      NOT NULL DEFAULT 0,
    first_attempt_at  timestamptz NOT NULL,
    last_attempt_at   timestamptz NOT NULL,
    delivered_at      timestamptz,
    -- Only for messages that cannot be derived from the log again (digests).
    payload           bytea,
    UNIQUE (subscription_id, message_id)
);
-- One subscription's delivery log, newest first.
CREATE INDEX webhook_deliveries_newest ON webhook_deliveries (subscription_id, seq DESC);
-- The redeliveries an administrator asked for, oldest first.
CREATE INDEX webhook_deliveries_queued ON webhook_deliveries (seq) WHERE status = 'queued';
-- Pruning the delivered rows past the retention.
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (last_attempt_at) WHERE status = 'delivered';

-- Who dispatches: a holder keeps its lease by renewing it before `expires_at` (the
-- database's clock); a takeover raises `epoch`, which fences off the previous holder's
-- writes.
CREATE TABLE webhook_leases (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    epoch       bigint      NOT NULL,
    expires_at  timestamptz NOT NULL
);
