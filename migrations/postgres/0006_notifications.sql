-- SPEC §9: the outbox of notifications to the business system. A row is written
-- in the same transaction as the change it reports, with the JSON body it will
-- be POSTed with, so "committed" and "will be notified" are one fact.
CREATE TABLE notifications (
    id           TEXT        PRIMARY KEY,           -- msg_…: the webhook-id, the same on every try
    subject      TEXT        NOT NULL,              -- the reminder's id, or `number:<E.164>` for a list entry without one
    sequence     INTEGER     NOT NULL,              -- its number among its subject's notifications, from 1
    reminder_id  UUID,
    type         TEXT        NOT NULL,
    body         TEXT        NOT NULL,              -- exactly what is POSTed
    status       TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    step         INTEGER     NOT NULL DEFAULT 0,    -- tries in this round (a resend starts a new one)
    next_try_at  TIMESTAMPTZ,                       -- NULL once delivered or failed
    lease_owner  TEXT,                              -- the instance delivering it now, until lease_until
    lease_until  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    UNIQUE (subject, sequence)
);
CREATE INDEX notifications_due ON notifications (next_try_at) WHERE status = 'pending';
-- Each index is written with every change that notifies, so there are no
-- more of them: a reminder's notifications are found by their subject (its
-- id) through the UNIQUE index above, and the list runs newest first through
-- the primary key (ids are UUIDv7, in the order they were made).

-- Every delivery try: when, what came back (a status code, or the error), how long.
CREATE TABLE notification_tries (
    id              BIGSERIAL   PRIMARY KEY,
    notification_id TEXT        NOT NULL REFERENCES notifications (id),
    at              TIMESTAMPTZ NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    duration_ms     INTEGER     NOT NULL
);
CREATE INDEX notification_tries_of ON notification_tries (notification_id, id);
