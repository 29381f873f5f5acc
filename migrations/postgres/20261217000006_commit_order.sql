-- Positions in commit order (issue 12): every statement that inserts events first takes
-- one transaction-scoped advisory lock, so appends assign their positions and commit one
-- after another, and a reader that sees position p sees every event below it that will
-- ever commit. The global log is then read by position alone, with no wait for
-- transactions that are not Accord appends (before, a reader waited for the oldest
-- transaction holding an id anywhere on the database server: a batch job in another
-- database froze every dashboard). The lock is taken by the database itself, for every
-- writer: older replicas, imports and psql included.
--
-- Events written before this migration keep the order they were read in until now,
-- (tx_id, position), so that positions clients hold stay valid resume points: the log is
-- read as the events up to `ordered_after` in (tx_id, position) order, then every later
-- event in position order (store::postgres, "Readers of the global log").

CREATE TABLE log_order (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    ordered_after bigint  NOT NULL CHECK (ordered_after >= 0)
);

-- Waits for every transaction that has inserted events to end, so that the boundary is
-- above all of them and every event after it is written under the lock below.
LOCK TABLE events IN EXCLUSIVE MODE;
INSERT INTO log_order (ordered_after) SELECT coalesce(max(position), 0) FROM events;

CREATE FUNCTION log_order_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the log order boundary is fixed: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER log_order_fixed BEFORE UPDATE OR DELETE ON log_order
    FOR EACH ROW EXECUTE FUNCTION log_order_refuse_change();

-- The key is an arbitrary constant ("accordlo"); advisory locks are per database, so
-- Accord databases on one server do not wait for each other.
CREATE FUNCTION accord_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7017561974685068399);
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_commit_order BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION accord_commit_order();

-- A batch append checks, in its one statement, that every stream head it moves was
-- still where the writer saw it; a stale head (another replica wrote) aborts the whole
-- statement with this code, and the writer reloads the heads and plans the batch again.
-- Heads locked by someone else (a rebuild, an operator) are not waited for: they are
-- named in the error's detail, and the writer retries their commands a little later.
CREATE FUNCTION accord_expect_heads(expected bigint, actual bigint, locked text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF expected <> actual THEN
        RAISE EXCEPTION 'stale stream heads: % of % as expected', actual, expected
            USING ERRCODE = 'AC409', DETAIL = coalesce(locked, '');
    END IF;
    RETURN actual;
END;
$$;
