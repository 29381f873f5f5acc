-- Appends in process (issue 12): the commit-order lock's trigger also records, for the
-- statement that took it, the highest position the log held at that moment. Every earlier
-- append has committed by then (the lock is held to commit, and a commit is visible
-- before its locks are released), and the trigger's query takes a fresh snapshot after
-- the lock, so that position is exactly the event that precedes the statement's first in
-- commit order. The writer gets it back with its positions; a reader in the same process
-- that has applied the log up to it can apply the batch without reading it back, and
-- reads the log only when something else came in between.
--
-- Transaction-local (set_config's third argument), so it works the same behind a
-- transaction-pooling PgBouncer; writers that do not ask for it are unaffected.

CREATE OR REPLACE FUNCTION accord_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7017561974685068399);
    PERFORM set_config('accord.log_before', (SELECT coalesce(max(position), 0) FROM events)::text, true);
    RETURN NULL;
END;
$$;
