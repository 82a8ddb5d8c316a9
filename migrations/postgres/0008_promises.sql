-- SPEC §8: a promise to pay, opened by a `payment_promised` completion and
-- decided once (kept or broken) by the tick, and the follow-up a broken one makes.
ALTER TABLE reminders ADD COLUMN promise_amount_minor BIGINT CHECK (promise_amount_minor > 0);
ALTER TABLE reminders ADD COLUMN promise_date DATE;                -- the customer's date
ALTER TABLE reminders ADD COLUMN promise_status TEXT CHECK (promise_status IN ('open', 'kept', 'broken'));
ALTER TABLE reminders ADD COLUMN promise_opened_at TIMESTAMPTZ;    -- payments recorded since count
ALTER TABLE reminders ADD COLUMN promise_deadline TIMESTAMPTZ;     -- end of date + grace, customer's zone
ALTER TABLE reminders ADD COLUMN promise_decided_at TIMESTAMPTZ;
ALTER TABLE reminders ADD COLUMN promise_follow_up_id UUID;        -- the reminder a broken one made
ALTER TABLE reminders ADD COLUMN follow_up_of UUID;                -- the reminder whose broken promise made this one

-- The tick: open promises by deadline.
CREATE INDEX reminders_promises_open ON reminders (promise_deadline) WHERE promise_status = 'open';
