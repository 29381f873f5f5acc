-- Wake-ups for live readers: every statement that appends events sends one notification
-- on channel accord_events, delivered when its transaction commits (never for a rolled-back
-- one), carrying the highest position appended. Listeners treat it only as "read the log
-- again": the log, read gap-free, stays the source of truth, so a lost notification delays
-- an update but never loses it. One per statement, not per row, so a command that appends
-- several events costs one notification.

CREATE FUNCTION accord_notify_appends() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('accord_events', (SELECT max(position)::text FROM appended));
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_appends AFTER INSERT ON events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION accord_notify_appends();
