-- The dashboard's glance: counts by 15-minute slot (since the epoch, UTC)
-- kept by the database itself, in the same transaction as every write that
-- changes them (triggers), so the page reads a few thousand small rows
-- instead of scanning months of attempts, and is right at every moment.
-- SQLite has one writer: the counts are updated in place.

-- An attempt's outcome result as a column (computed by SQLite, never written).
ALTER TABLE attempts ADD COLUMN result TEXT GENERATED ALWAYS AS (json_extract(outcome, '$.result')) VIRTUAL;

-- Attempts by the slot they were dispatched in and their result ('' for none yet).
CREATE TABLE glance_attempts (
    slot   INTEGER NOT NULL,
    result TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (slot, result)
) STRICT, WITHOUT ROWID;
INSERT INTO glance_attempts (slot, result, n)
    SELECT dispatched_at / 900000, COALESCE(result, ''), count(*) FROM attempts GROUP BY 1, 2;

CREATE TRIGGER glance_attempt_added AFTER INSERT ON attempts BEGIN
    INSERT INTO glance_attempts (slot, result, n)
        VALUES (NEW.dispatched_at / 900000, COALESCE(NEW.result, ''), 1)
        ON CONFLICT (slot, result) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER glance_attempt_changed AFTER UPDATE OF outcome, dispatched_at ON attempts
    WHEN OLD.result IS NOT NEW.result OR OLD.dispatched_at <> NEW.dispatched_at BEGIN
    UPDATE glance_attempts SET n = n - 1
        WHERE slot = OLD.dispatched_at / 900000 AND result = COALESCE(OLD.result, '');
    INSERT INTO glance_attempts (slot, result, n)
        VALUES (NEW.dispatched_at / 900000, COALESCE(NEW.result, ''), 1)
        ON CONFLICT (slot, result) DO UPDATE SET n = n + 1;
END;

-- Promises by the slot they were opened in, their status now and currency.
CREATE TABLE glance_promises (
    slot     INTEGER NOT NULL,
    status   TEXT    NOT NULL,
    currency TEXT    NOT NULL,
    n        INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    PRIMARY KEY (slot, status, currency)
) STRICT, WITHOUT ROWID;
INSERT INTO glance_promises (slot, status, currency, n, amount)
    SELECT promise_opened_at / 900000, promise_status, currency, count(*), COALESCE(sum(promise_amount_minor), 0)
    FROM reminders WHERE promise_opened_at IS NOT NULL AND promise_status IS NOT NULL GROUP BY 1, 2, 3;

CREATE TRIGGER glance_promise_added AFTER INSERT ON reminders
    WHEN NEW.promise_opened_at IS NOT NULL AND NEW.promise_status IS NOT NULL BEGIN
    INSERT INTO glance_promises (slot, status, currency, n, amount)
        VALUES (NEW.promise_opened_at / 900000, NEW.promise_status, NEW.currency, 1, COALESCE(NEW.promise_amount_minor, 0))
        ON CONFLICT (slot, status, currency) DO UPDATE SET n = n + 1, amount = amount + excluded.amount;
END;
CREATE TRIGGER glance_promise_changed AFTER UPDATE OF promise_status, promise_opened_at, promise_amount_minor ON reminders
    WHEN OLD.promise_status IS NOT NEW.promise_status OR OLD.promise_opened_at IS NOT NEW.promise_opened_at
      OR OLD.promise_amount_minor IS NOT NEW.promise_amount_minor BEGIN
    UPDATE glance_promises SET n = n - 1, amount = amount - COALESCE(OLD.promise_amount_minor, 0)
        WHERE OLD.promise_opened_at IS NOT NULL AND OLD.promise_status IS NOT NULL
          AND slot = OLD.promise_opened_at / 900000 AND status = OLD.promise_status AND currency = OLD.currency;
    INSERT INTO glance_promises (slot, status, currency, n, amount)
        SELECT NEW.promise_opened_at / 900000, NEW.promise_status, NEW.currency, 1, COALESCE(NEW.promise_amount_minor, 0)
        WHERE NEW.promise_opened_at IS NOT NULL AND NEW.promise_status IS NOT NULL
        ON CONFLICT (slot, status, currency) DO UPDATE SET n = n + 1, amount = amount + excluded.amount;
END;

-- Payments by the slot they were recorded in, when the reminder had been
-- called before the payment was made (decided when it is recorded: a payment
-- is never in the future, and an attempt is dispatched at its own now).
CREATE TABLE glance_paid (
    slot     INTEGER NOT NULL,
    currency TEXT    NOT NULL,
    n        INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    PRIMARY KEY (slot, currency)
) STRICT, WITHOUT ROWID;
INSERT INTO glance_paid (slot, currency, n, amount)
    SELECT p.recorded_at / 900000, r.currency, count(*), sum(p.amount_minor)
    FROM payments p JOIN reminders r ON r.id = p.reminder_id
    WHERE EXISTS (SELECT 1 FROM attempts a WHERE a.reminder_id = p.reminder_id AND a.dispatched_at < p.paid_at)
    GROUP BY 1, 2;

CREATE TRIGGER glance_payment_added AFTER INSERT ON payments
    WHEN EXISTS (SELECT 1 FROM attempts a WHERE a.reminder_id = NEW.reminder_id AND a.dispatched_at < NEW.paid_at) BEGIN
    INSERT INTO glance_paid (slot, currency, n, amount)
        SELECT NEW.recorded_at / 900000, r.currency, 1, NEW.amount_minor FROM reminders r WHERE r.id = NEW.reminder_id
        ON CONFLICT (slot, currency) DO UPDATE SET n = n + 1, amount = amount + excluded.amount;
END;

-- Opt-outs (numbers added with reason `opted_out`) by when: few, counted from an index.
CREATE INDEX suppression_audit_opt_outs ON suppression_audit (at)
    WHERE action = 'added' AND reason = 'opted_out';
