-- The append-only event log, its idempotency record, the stream heads (with the state
-- snapshot commands decide against) and the alignment projection.

CREATE TABLE events (
    -- Global position: unique and increasing in assignment order. Readers of the global
    -- log order by (tx_id, position) and only read transactions that are complete, so a
    -- late commit is never skipped (see store::postgres::read_all).
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       uuid        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    payload         jsonb       NOT NULL,
    actor           text        NOT NULL,
    command_id      text        NOT NULL,
    correlation_id  text        NOT NULL,
    causation_id    text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    -- Hash chain per stream: hash = SHA-256(prev_hash || canonical event content).
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_commit_order ON events (tx_id, position);
CREATE INDEX events_by_type ON events (event_type, position);

-- The log is append-only in the database itself, not just in the application.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- One row per command that appended events: a repeated command id returns this result.
CREATE TABLE commands (
    command_id      text        PRIMARY KEY,
    stream_id       uuid        NOT NULL,
    fingerprint     bytea       NOT NULL,
    stream_version  bigint      NOT NULL,
    global_position bigint      NOT NULL,
    created_id      uuid,
    recorded_at     timestamptz NOT NULL
);

-- The head of each stream: its version, last hash, and the folded state that commands
-- decide against (a snapshot maintained in the append transaction; rebuildable).
CREATE TABLE streams (
    stream_id       uuid        PRIMARY KEY,
    key             text        NOT NULL UNIQUE,
    version         bigint      NOT NULL,
    head_hash       bytea       NOT NULL,
    last_position   bigint      NOT NULL,
    state           jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- The alignment projection, one row per initiative, with the columns dashboards filter on.
CREATE TABLE alignment (
    initiative_id         uuid        PRIMARY KEY,
    key                   text        NOT NULL UNIQUE,
    title                 text        NOT NULL,
    owner                 text        NOT NULL,
    stage                 text        NOT NULL,
    status                text        NOT NULL,
    archived              boolean     NOT NULL,
    outstanding_functions text[]      NOT NULL,
    awaiting              text[]      NOT NULL,
    score                 double precision NOT NULL,
    last_activity         timestamptz NOT NULL,
    version               bigint      NOT NULL,
    view                  jsonb       NOT NULL
);

CREATE INDEX alignment_awaiting ON alignment USING gin (awaiting);
CREATE INDEX alignment_outstanding ON alignment USING gin (outstanding_functions);
CREATE INDEX alignment_status ON alignment (status, key);
