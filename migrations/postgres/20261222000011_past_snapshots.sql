-- Snapshots of streams' folded states at past versions (issue 13): as-of and explain
-- fold only the events after the nearest one instead of the whole stream. Derived data:
-- written in the background every so many versions, checked by verify against the log,
-- deleted and written again by a rebuild, pruned when their format is not the current
-- code's; an erasure deletes a stream's rows and lets them be derived again.
CREATE TABLE past_snapshots (
    stream_id     uuid        NOT NULL,
    version       bigint      NOT NULL CHECK (version > 0),
    -- The chain hash of the event at `version`: the snapshot belongs to exactly this
    -- history, and verify says so when the log no longer holds it.
    hash          bytea       NOT NULL CHECK (length(hash) = 32),
    -- The latest recorded_at of the events up to `version`: an as-of by time may start
    -- here only if it is at or before the time asked.
    folded_until  timestamptz NOT NULL,
    -- The code's snapshot format (store::snapshots::SNAPSHOT_FORMAT); others are ignored.
    format        integer     NOT NULL,
    state         jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, version)
);
