-- /metrics' notifications by status, without counting the outbox (which only
-- grows) every few seconds: pending ones through their partial index (as many
-- as are waiting), delivered and failed ones kept here. A trigger keeps them,
-- so every path that moves a notification (a try recorded, a resend) counts,
-- and a notice written (pending, with the change it reports) costs nothing.
CREATE TABLE notification_counts (
    status TEXT    PRIMARY KEY CHECK (status IN ('delivered', 'failed')),
    n      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO notification_counts (status, n)
    SELECT s.status, (SELECT count(*) FROM notifications WHERE notifications.status = s.status)
    FROM (SELECT 'delivered' AS status UNION ALL SELECT 'failed') s;

CREATE TRIGGER notification_counted AFTER UPDATE OF status ON notifications
    WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE notification_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE notification_counts SET n = n + 1 WHERE status = NEW.status;
END;
-- No trigger on INSERT: a notice is always written pending (every INSERT says
-- so), and a trigger there, even one whose WHEN is false, runs with every
-- notice the hot path writes.
