-- Checkpoints: at one consistent point, the head (version and hash) of every stream and
-- one Merkle root over them (RFC 6962; the exact definition is in store::audit). Verifying
-- the log against them detects a deleted tail or a deleted whole stream, which the
-- per-stream hash chains alone cannot; an auditor may keep a root outside the database.

CREATE TABLE checkpoints (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    -- How many streams, and how many events (the sum of the head versions), it covers.
    streams     bigint      NOT NULL CHECK (streams >= 0),
    events      bigint      NOT NULL CHECK (events >= 0),
    root        bytea       NOT NULL CHECK (length(root) = 32),
    -- [{"stream_id": "…", "version": 9, "hash": "<64 hex>"}, …] ordered by stream id.
    heads       jsonb       NOT NULL CHECK (jsonb_typeof(heads) = 'array')
);

-- Append-only, like the log.
CREATE FUNCTION checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'checkpoints are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoints_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION checkpoints_refuse_change();
