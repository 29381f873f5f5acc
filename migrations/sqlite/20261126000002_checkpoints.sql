-- Checkpoints: at one consistent point, the head (version and hash) of every stream and
-- one Merkle root over them (RFC 6962; the exact definition is in store::audit) — the
-- PostgreSQL table (migrations/postgres) in SQLite's types: created_at in integer
-- microseconds, the root as a BLOB, the heads as JSON text.

CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  INTEGER NOT NULL,
    -- How many streams, and how many events (the sum of the head versions), it covers.
    streams     INTEGER NOT NULL CHECK (streams >= 0),
    events      INTEGER NOT NULL CHECK (events >= 0),
    root        BLOB    NOT NULL CHECK (length(root) = 32),
    -- [{"stream_id": "…", "version": 9, "hash": "<64 hex>"}, …] ordered by stream id.
    heads       TEXT    NOT NULL CHECK (json_type(heads) = 'array')
) STRICT;

-- Append-only, like the log.
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE is not allowed');
END;
