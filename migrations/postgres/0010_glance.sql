-- The dashboard's glance: counts by 15-minute slot (since the epoch, UTC)
-- kept by the database itself, in the same transaction as every write that
-- changes them (triggers), so the page reads a few thousand small rows
-- instead of scanning months of attempts, and is right at every moment.
--
-- On PostgreSQL many transactions write at once: a trigger only *appends*
-- a change (+1 / -1) to a delta table, which takes no lock that another
-- writer waits for (updating one count row in place would queue every
-- webhook of a slot behind each other's commits, and could deadlock). The
-- glance folds the deltas into the counts when it reads (one statement).

ALTER TABLE attempts ADD COLUMN result TEXT GENERATED ALWAYS AS (outcome->>'result') STORED;

CREATE FUNCTION glance_slot(t TIMESTAMPTZ) RETURNS BIGINT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT floor(extract(epoch FROM t) / 900)::bigint $$;

-- Attempts by the slot they were dispatched in and their result ('' for none yet).
CREATE TABLE glance_attempts (
    slot   BIGINT NOT NULL,
    result TEXT   NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (slot, result)
);
CREATE TABLE glance_attempt_deltas (slot BIGINT NOT NULL, result TEXT NOT NULL, n BIGINT NOT NULL);
INSERT INTO glance_attempts (slot, result, n)
    SELECT glance_slot(dispatched_at), COALESCE(result, ''), count(*) FROM attempts GROUP BY 1, 2;

CREATE FUNCTION glance_attempt_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO glance_attempt_deltas (slot, result, n)
            VALUES (glance_slot(OLD.dispatched_at), COALESCE(OLD.result, ''), -1);
    END IF;
    INSERT INTO glance_attempt_deltas (slot, result, n)
        VALUES (glance_slot(NEW.dispatched_at), COALESCE(NEW.result, ''), 1);
    RETURN NULL;
END $$;
CREATE TRIGGER glance_attempt_added AFTER INSERT ON attempts
    FOR EACH ROW EXECUTE FUNCTION glance_attempt_delta();
CREATE TRIGGER glance_attempt_changed AFTER UPDATE ON attempts
    FOR EACH ROW WHEN (OLD.result IS DISTINCT FROM NEW.result OR OLD.dispatched_at IS DISTINCT FROM NEW.dispatched_at)
    EXECUTE FUNCTION glance_attempt_delta();

-- Promises by the slot they were opened in, their status now and currency.
CREATE TABLE glance_promises (
    slot     BIGINT NOT NULL,
    status   TEXT   NOT NULL,
    currency TEXT   NOT NULL,
    n        BIGINT NOT NULL,
    amount   BIGINT NOT NULL,
    PRIMARY KEY (slot, status, currency)
);
CREATE TABLE glance_promise_deltas (
    slot BIGINT NOT NULL, status TEXT NOT NULL, currency TEXT NOT NULL, n BIGINT NOT NULL, amount BIGINT NOT NULL
);
INSERT INTO glance_promises (slot, status, currency, n, amount)
    SELECT glance_slot(promise_opened_at), promise_status, currency, count(*), COALESCE(sum(promise_amount_minor), 0)
    FROM reminders WHERE promise_opened_at IS NOT NULL AND promise_status IS NOT NULL GROUP BY 1, 2, 3;

CREATE FUNCTION glance_promise_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.promise_opened_at IS NOT NULL AND OLD.promise_status IS NOT NULL THEN
        INSERT INTO glance_promise_deltas (slot, status, currency, n, amount)
            VALUES (glance_slot(OLD.promise_opened_at), OLD.promise_status, OLD.currency, -1,
                    -COALESCE(OLD.promise_amount_minor, 0));
    END IF;
    IF NEW.promise_opened_at IS NOT NULL AND NEW.promise_status IS NOT NULL THEN
        INSERT INTO glance_promise_deltas (slot, status, currency, n, amount)
            VALUES (glance_slot(NEW.promise_opened_at), NEW.promise_status, NEW.currency, 1,
                    COALESCE(NEW.promise_amount_minor, 0));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER glance_promise_added AFTER INSERT ON reminders
    FOR EACH ROW WHEN (NEW.promise_opened_at IS NOT NULL AND NEW.promise_status IS NOT NULL)
    EXECUTE FUNCTION glance_promise_delta();
CREATE TRIGGER glance_promise_changed AFTER UPDATE ON reminders
    FOR EACH ROW WHEN (OLD.promise_status IS DISTINCT FROM NEW.promise_status
        OR OLD.promise_opened_at IS DISTINCT FROM NEW.promise_opened_at
        OR OLD.promise_amount_minor IS DISTINCT FROM NEW.promise_amount_minor)
    EXECUTE FUNCTION glance_promise_delta();

-- Payments by the slot they were recorded in, when the reminder had been
-- called before the payment was made (decided when it is recorded: a payment
-- is never in the future, and an attempt is dispatched at its own now).
CREATE TABLE glance_paid (
    slot     BIGINT NOT NULL,
    currency TEXT   NOT NULL,
    n        BIGINT NOT NULL,
    amount   BIGINT NOT NULL,
    PRIMARY KEY (slot, currency)
);
CREATE TABLE glance_paid_deltas (slot BIGINT NOT NULL, currency TEXT NOT NULL, n BIGINT NOT NULL, amount BIGINT NOT NULL);
INSERT INTO glance_paid (slot, currency, n, amount)
    SELECT glance_slot(p.recorded_at), r.currency, count(*), sum(p.amount_minor)
    FROM payments p JOIN reminders r ON r.id = p.reminder_id
    WHERE EXISTS (SELECT 1 FROM attempts a WHERE a.reminder_id = p.reminder_id AND a.dispatched_at < p.paid_at)
    GROUP BY 1, 2;

CREATE FUNCTION glance_paid_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM attempts a WHERE a.reminder_id = NEW.reminder_id AND a.dispatched_at < NEW.paid_at) THEN
        INSERT INTO glance_paid_deltas (slot, currency, n, amount)
            SELECT glance_slot(NEW.recorded_at), r.currency, 1, NEW.amount_minor FROM reminders r WHERE r.id = NEW.reminder_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER glance_payment_added AFTER INSERT ON payments
    FOR EACH ROW EXECUTE FUNCTION glance_paid_delta();

-- Opt-outs (numbers added with reason `opted_out`) by when: few, counted from an index.
CREATE INDEX suppression_audit_opt_outs ON suppression_audit (at)
    WHERE action = 'added' AND reason = 'opted_out';
