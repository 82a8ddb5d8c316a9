-- SPEC §7: who may be called, and when.

-- The debt a reminder is about (frequency caps and quiet periods count per debt),
-- its ISO 3166-2 region, the zones it may be called in (JSON array of IANA names,
-- computed at creation), whether `timezone` was given, and which rule last
-- deferred it.
ALTER TABLE reminders ADD COLUMN debt_ref TEXT;
UPDATE reminders SET debt_ref = COALESCE(external_id, id);
ALTER TABLE reminders ADD COLUMN region TEXT;
ALTER TABLE reminders ADD COLUMN calling_zones TEXT NOT NULL DEFAULT '[]';
UPDATE reminders SET calling_zones = json_array(timezone);
ALTER TABLE reminders ADD COLUMN timezone_given INTEGER NOT NULL DEFAULT 1;
ALTER TABLE reminders ADD COLUMN deferred_by TEXT;
CREATE INDEX reminders_debt ON reminders (debt_ref);

-- Attempts carry their debt, so a claim counts a debt's recent attempts (and
-- finds its last conversation) through one index, whatever the table's size.
ALTER TABLE attempts ADD COLUMN debt_ref TEXT;
UPDATE attempts SET debt_ref = (SELECT r.debt_ref FROM reminders r WHERE r.id = attempts.reminder_id);
CREATE INDEX attempts_debt ON attempts (debt_ref, dispatched_at);

-- Numbers that must never be called (E.164), whatever reminder names them.
CREATE TABLE suppressions (
    phone_number TEXT    PRIMARY KEY,
    reason       TEXT    NOT NULL,
    reminder_id  TEXT,                              -- the reminder whose opt-out added it, if any
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX suppressions_newest ON suppressions (created_at DESC, phone_number DESC);

-- Every add and remove, kept for ever.
CREATE TABLE suppression_audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    phone_number TEXT    NOT NULL,
    action       TEXT    NOT NULL CHECK (action IN ('added', 'removed')),
    reason       TEXT    NOT NULL,
    reminder_id  TEXT,
    at           INTEGER NOT NULL
) STRICT;
CREATE INDEX suppression_audit_number ON suppression_audit (phone_number, at);
