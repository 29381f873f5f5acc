-- Checkpoints over the log tree, and signed: a checkpoint now records the root of the
-- RFC 6962 tree over every event in commit order (store::tlog), with the tree's frontier
-- and the commit-order key of its last event, so the next checkpoint folds only the
-- events after it; and, when the server has a key, the checkpoint as a signed note
-- (C2SP tlog-checkpoint in a C2SP signed note, store::note) to keep outside the database.
-- Checkpoints taken before keep their stream-heads root: `tree` says which.

ALTER TABLE checkpoints
    ADD COLUMN tree text NOT NULL DEFAULT 'stream-heads' CHECK (tree IN ('stream-heads', 'log')),
    -- ["<64 hex>", …]: the roots of the perfect subtrees of the first `events` events.
    ADD COLUMN frontier jsonb CHECK (frontier IS NULL OR jsonb_typeof(frontier) = 'array'),
    -- (tx_id, position) of the last event covered, in commit order.
    ADD COLUMN resume_tx bigint,
    ADD COLUMN resume_position bigint,
    -- The signed note; NULL when the server had no checkpoint key.
    ADD COLUMN note text,
    ADD CONSTRAINT checkpoints_log_tree_complete
        CHECK (tree = 'stream-heads' OR (frontier IS NOT NULL AND resume_tx IS NOT NULL AND resume_position IS NOT NULL));
ALTER TABLE checkpoints ALTER COLUMN tree DROP DEFAULT;

-- A verification reads each stream's command records beside its events.
CREATE INDEX commands_by_stream ON commands (stream_id, stream_version);
