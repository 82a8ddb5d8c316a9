-- SPEC §8: payments against a reminder's debt. A reminder keeps the sum of its
-- payments, written in the payment's own transaction.
ALTER TABLE reminders ADD COLUMN amount_paid_minor INTEGER NOT NULL DEFAULT 0;

CREATE TABLE payments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    reminder_id  TEXT    NOT NULL REFERENCES reminders (id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    paid_at      INTEGER NOT NULL,
    reference    TEXT,                              -- the payer's or processor's; a repeat is one payment
    recorded_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX payments_reference ON payments (reminder_id, reference) WHERE reference IS NOT NULL;
CREATE INDEX payments_of ON payments (reminder_id, id);
