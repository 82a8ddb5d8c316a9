-- The dashboard's glance: figures for the last 7 / 30 / 90 days read from
-- indexes that hold every column the queries need (index-only scans), never
-- from the tables.

-- An attempt's outcome result as a column (computed by PostgreSQL, never
-- written), so attempts by day and result are counted from one covering index.
ALTER TABLE attempts ADD COLUMN result TEXT GENERATED ALWAYS AS (outcome->>'result') STORED;
CREATE INDEX attempts_dispatched ON attempts (dispatched_at) INCLUDE (result);

-- Promises by the moment they were opened, with what the figures sum.
CREATE INDEX reminders_promises_opened ON reminders (promise_opened_at)
    INCLUDE (promise_status, currency, promise_amount_minor)
    WHERE promise_opened_at IS NOT NULL;

-- Payments by the moment they were recorded.
CREATE INDEX payments_recorded ON payments (recorded_at) INCLUDE (reminder_id, paid_at, amount_minor);

-- Opt-outs (numbers added with reason `opted_out`) by when.
CREATE INDEX suppression_audit_opt_outs ON suppression_audit (at)
    WHERE action = 'added' AND reason = 'opted_out';
