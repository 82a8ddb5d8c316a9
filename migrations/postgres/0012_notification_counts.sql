-- /metrics' notifications by status, without counting the outbox (which only
-- grows) every few seconds: pending ones through their partial index (as many
-- as are waiting), delivered and failed ones kept here. A trigger keeps them,
-- so every path that moves a notification (a try recorded, a resend) counts,
-- and a notice written as pending (with the change it reports) costs nothing.
-- No status may change between the seed below and the trigger that keeps it
-- (an instance still on the code before this one, committing in between,
-- would be counted by neither): writes to the outbox wait for this migration.
LOCK TABLE notifications IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE notification_counts (
    status TEXT   PRIMARY KEY CHECK (status IN ('delivered', 'failed')),
    n      BIGINT NOT NULL
);
INSERT INTO notification_counts (status, n)
    SELECT s, (SELECT count(*) FROM notifications WHERE status = s)
    FROM unnest(ARRAY['delivered', 'failed']) AS s;

-- Both rows are locked in one order first: two instances recording tries at
-- once (one batch moving some to delivered and some to failed, the other the
-- reverse) wait for each other instead of deadlocking.
CREATE FUNCTION notification_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM notification_counts ORDER BY status FOR UPDATE;
    IF TG_OP = 'UPDATE' THEN
        UPDATE notification_counts SET n = n - 1 WHERE status = OLD.status;
    END IF;
    UPDATE notification_counts SET n = n + 1 WHERE status = NEW.status;
    RETURN NULL;
END
$$;
CREATE TRIGGER notification_counted AFTER UPDATE OF status ON notifications
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notification_counted();
CREATE TRIGGER notification_counted_new AFTER INSERT ON notifications
    FOR EACH ROW WHEN (NEW.status <> 'pending')
    EXECUTE FUNCTION notification_counted();
