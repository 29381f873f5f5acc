-- Snapshots of streams' folded states at past versions (issue 13): as-of and explain
-- fold only the events after the nearest one instead of the whole stream. Derived data:
-- written in the background every so many versions, checked by verify against the log,
-- deleted and written again by a rebuild, pruned when their format is not the current
-- code's; an erasure deletes a stream's rows and lets them be derived again.
CREATE TABLE past_snapshots (
    stream_id     TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version > 0),
    -- The chain hash of the event at `version` (see the PostgreSQL migration).
    hash          BLOB    NOT NULL CHECK (length(hash) = 32),
    -- The latest recorded_at (microseconds) of the events up to `version`.
    folded_until  INTEGER NOT NULL,
    format        INTEGER NOT NULL,
    state         TEXT    NOT NULL CHECK (json_valid(state)),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) STRICT;
