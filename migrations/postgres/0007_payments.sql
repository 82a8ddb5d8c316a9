-- SPEC §8: payments against a reminder's debt. A reminder keeps the sum of its
-- payments, written in the payment's own transaction.
ALTER TABLE reminders ADD COLUMN amount_paid_minor BIGINT NOT NULL DEFAULT 0;

CREATE TABLE payments (
    id           BIGSERIAL   PRIMARY KEY,
    reminder_id  UUID        NOT NULL REFERENCES reminders (id),
    amount_minor BIGINT      NOT NULL CHECK (amount_minor > 0),
    paid_at      TIMESTAMPTZ NOT NULL,
    reference    TEXT,                              -- the payer's or processor's; a repeat is one payment
    recorded_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX payments_reference ON payments (reminder_id, reference) WHERE reference IS NOT NULL;
CREATE INDEX payments_of ON payments (reminder_id, id);
