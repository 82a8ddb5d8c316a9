-- SPEC §8: a promise to pay, opened by a `payment_promised` completion and
-- decided once (kept or broken) by the tick, and the follow-up a broken one makes.
ALTER TABLE reminders ADD COLUMN promise_amount_minor INTEGER CHECK (promise_amount_minor > 0);
ALTER TABLE reminders ADD COLUMN promise_date TEXT;               -- YYYY-MM-DD, the customer's date
ALTER TABLE reminders ADD COLUMN promise_status TEXT CHECK (promise_status IN ('open', 'kept', 'broken'));
ALTER TABLE reminders ADD COLUMN promise_opened_at INTEGER;       -- payments recorded since count
ALTER TABLE reminders ADD COLUMN promise_deadline INTEGER;        -- end of date + grace, customer's zone
ALTER TABLE reminders ADD COLUMN promise_decided_at INTEGER;
ALTER TABLE reminders ADD COLUMN promise_follow_up_id TEXT;       -- the reminder a broken one made
ALTER TABLE reminders ADD COLUMN follow_up_of TEXT;               -- the reminder whose broken promise made this one

-- The tick: open promises by deadline.
CREATE INDEX reminders_promises_open ON reminders (promise_deadline) WHERE promise_status = 'open';
