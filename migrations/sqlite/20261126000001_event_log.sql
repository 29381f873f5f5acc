-- The embedded store's schema: the append-only event log, its idempotency record, the
-- stream heads (with the state snapshot commands decide against) and the alignment
-- projection — the PostgreSQL schema (migrations/postgres) in SQLite's types.
--
-- Representation: UUIDs are TEXT in canonical hyphenated lower case; JSON is TEXT
-- (checked with json_valid); hashes are BLOBs; times are INTEGER microseconds since the
-- Unix epoch (lossless at the precision the hash chain covers, see store::hash);
-- booleans are INTEGER 0/1. STRICT tables make SQLite enforce these column types.

CREATE TABLE events (
    -- Global position, assigned by the single writer in commit order. SQLite admits one
    -- write transaction at a time, so a reader ordering by position never skips a late
    -- commit and the log needs no commit-order column (PostgreSQL's tx_id); see
    -- store::sqlite::read_all. AUTOINCREMENT: a position is never reused.
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT    NOT NULL CHECK (length(stream_id) = 36 AND stream_id = lower(stream_id)),
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_id        TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36 AND event_id = lower(event_id)),
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    actor           TEXT    NOT NULL,
    command_id      TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT    NOT NULL,
    recorded_at     INTEGER NOT NULL,
    -- Hash chain per stream: hash = SHA-256(prev_hash || canonical event content).
    prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, stream_version)
) STRICT;

CREATE INDEX events_by_type ON events (event_type, position);

-- The log is append-only in the database itself, not just in the application. (These
-- triggers also turn off SQLite's truncate optimisation, so `DELETE FROM events`
-- without a WHERE clause is refused as well.)
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE is not allowed');
END;

-- One row per command that appended events: a repeated command id returns this result.
CREATE TABLE commands (
    command_id      TEXT    PRIMARY KEY,
    stream_id       TEXT    NOT NULL,
    fingerprint     BLOB    NOT NULL,
    stream_version  INTEGER NOT NULL,
    global_position INTEGER NOT NULL,
    created_id      TEXT,
    recorded_at     INTEGER NOT NULL
) STRICT;

-- The head of each stream: its version, last hash, and the folded state that commands
-- decide against (a snapshot maintained in the append transaction; rebuildable).
CREATE TABLE streams (
    stream_id       TEXT    PRIMARY KEY,
    key             TEXT    NOT NULL UNIQUE,
    version         INTEGER NOT NULL,
    head_hash       BLOB    NOT NULL,
    last_position   INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (json_valid(state)),
    updated_at      INTEGER NOT NULL
) STRICT;

-- The alignment projection, one row per initiative, with the columns dashboards filter
-- on. The two sets are JSON arrays of strings, queried with json_each: at the scale of an
-- embedded store a scan of this table is cheaper than keeping side tables in step.
CREATE TABLE alignment (
    initiative_id         TEXT    PRIMARY KEY,
    key                   TEXT    NOT NULL UNIQUE,
    title                 TEXT    NOT NULL,
    owner                 TEXT    NOT NULL,
    stage                 TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    archived              INTEGER NOT NULL CHECK (archived IN (0, 1)),
    outstanding_functions TEXT    NOT NULL CHECK (json_type(outstanding_functions) = 'array'),
    awaiting              TEXT    NOT NULL CHECK (json_type(awaiting) = 'array'),
    score                 REAL    NOT NULL,
    last_activity         INTEGER NOT NULL,
    version               INTEGER NOT NULL,
    view                  TEXT    NOT NULL CHECK (json_valid(view))
) STRICT;

CREATE INDEX alignment_status ON alignment (status, key);
