-- duecall schema, PostgreSQL.

CREATE TABLE reminders (
    id               UUID        PRIMARY KEY,
    external_id      TEXT        UNIQUE,            -- the business system's idempotency key
    customer_name    TEXT        NOT NULL,
    phone_number     TEXT        NOT NULL,
    timezone         TEXT        NOT NULL,
    language         TEXT        NOT NULL,
    amount_due_minor BIGINT      NOT NULL CHECK (amount_due_minor >= 0),
    currency         TEXT        NOT NULL,
    due_date         DATE        NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN
                       ('pending', 'in_progress', 'processing', 'completed', 'failed', 'cancelled')),
    attempt_count    INTEGER     NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    max_attempts     INTEGER     NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at  TIMESTAMPTZ,
    last_attempt_at  TIMESTAMPTZ,
    skip_reason      TEXT,
    outcome          JSONB,                         -- the latest reported outcome
    metadata         JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- The scheduler: due reminders by next_attempt_at (only rows that can still be called).
CREATE INDEX reminders_due ON reminders (next_attempt_at)
    WHERE status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL;
-- The timeout monitor and the concurrency cap: live attempts by status and age.
CREATE INDEX reminders_live ON reminders (status, last_attempt_at)
    WHERE status IN ('in_progress', 'processing');
-- The list: newest first, optionally by status.
CREATE INDEX reminders_newest ON reminders (created_at DESC, id DESC);
CREATE INDEX reminders_status_newest ON reminders (status, created_at DESC, id DESC);

-- One row per attempt: everything heard of it, kept even when it came too late to matter.
CREATE TABLE attempts (
    reminder_id   UUID        NOT NULL REFERENCES reminders (id),
    attempt       INTEGER     NOT NULL CHECK (attempt >= 1),
    status        TEXT        NOT NULL CHECK (status IN ('in_progress', 'processing', 'completed', 'failed')),
    room_name     TEXT        NOT NULL,
    dispatched_at TIMESTAMPTZ NOT NULL,
    answered_at   TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ,
    outcome       JSONB,
    failure       JSONB,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (reminder_id, attempt)
);
-- The 7-attempts-in-7-days cap counts recent attempts of one reminder.
CREATE INDEX attempts_recent ON attempts (reminder_id, dispatched_at);

-- Every received event, once: a repeated webhook-id is recognised here.
CREATE TABLE events (
    webhook_id  TEXT        PRIMARY KEY,
    reminder_id UUID        NOT NULL,
    attempt     INTEGER,
    event_type  TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    applied     BOOLEAN     NOT NULL,               -- did it change the reminder
    payload     TEXT        NOT NULL                -- the raw body as received
);
CREATE INDEX events_reminder ON events (reminder_id, received_at);
