-- What operators did to a reminder from the dashboard (cancel, call now,
-- suppress its number), by whom and when: each row is written in the same
-- transaction as the change it records.
CREATE TABLE reminder_actions (
    id          BIGSERIAL   PRIMARY KEY,
    reminder_id UUID        NOT NULL REFERENCES reminders (id),
    action      TEXT        NOT NULL CHECK (action IN ('cancel', 'call_now', 'suppress')),
    actor       TEXT        NOT NULL,              -- the name given at sign-in
    at          TIMESTAMPTZ NOT NULL,
    detail      TEXT
);
CREATE INDEX reminder_actions_of ON reminder_actions (reminder_id, at);
