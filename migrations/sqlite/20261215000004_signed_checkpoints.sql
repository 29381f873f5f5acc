-- Checkpoints over the log tree, and signed — the PostgreSQL migration of the same name
-- in SQLite's types: the frontier as JSON text, the note as text. Rows taken before keep
-- their stream-heads root (`tree` = 'stream-heads'). (SQLite cannot drop a column default;
-- every new checkpoint names its tree.)

ALTER TABLE checkpoints ADD COLUMN tree TEXT NOT NULL DEFAULT 'stream-heads' CHECK (tree IN ('stream-heads', 'log'));
ALTER TABLE checkpoints ADD COLUMN frontier TEXT CHECK (frontier IS NULL OR json_type(frontier) = 'array');
ALTER TABLE checkpoints ADD COLUMN resume_position INTEGER;
ALTER TABLE checkpoints ADD COLUMN note TEXT;

-- A verification reads each stream's command records beside its events.
CREATE INDEX commands_by_stream ON commands (stream_id, stream_version);
