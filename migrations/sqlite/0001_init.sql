-- duecall schema, SQLite. Times are INTEGER milliseconds since the Unix epoch (UTC).

CREATE TABLE reminders (
    id               TEXT    PRIMARY KEY,          -- UUID, hyphenated
    external_id      TEXT    UNIQUE,               -- the business system's idempotency key
    customer_name    TEXT    NOT NULL,
    phone_number     TEXT    NOT NULL,
    timezone         TEXT    NOT NULL,
    language         TEXT    NOT NULL,
    amount_due_minor INTEGER NOT NULL CHECK (amount_due_minor >= 0),
    currency         TEXT    NOT NULL,
    due_date         TEXT    NOT NULL,             -- YYYY-MM-DD
    status           TEXT    NOT NULL CHECK (status IN
                       ('pending', 'in_progress', 'processing', 'completed', 'failed', 'cancelled')),
    attempt_count    INTEGER NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at  INTEGER,
    last_attempt_at  INTEGER,
    skip_reason      TEXT,
    outcome          TEXT,                         -- JSON: the latest reported outcome
    metadata         TEXT    NOT NULL DEFAULT '{}',-- JSON object
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

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
    reminder_id   TEXT    NOT NULL REFERENCES reminders (id),
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    status        TEXT    NOT NULL CHECK (status IN ('in_progress', 'processing', 'completed', 'failed')),
    room_name     TEXT    NOT NULL,
    dispatched_at INTEGER NOT NULL,
    answered_at   INTEGER,
    ended_at      INTEGER,
    outcome       TEXT,                            -- JSON
    failure       TEXT,                            -- JSON
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (reminder_id, attempt)
) STRICT;
-- The 7-attempts-in-7-days cap counts recent attempts of one reminder.
CREATE INDEX attempts_recent ON attempts (reminder_id, dispatched_at);

-- Every received event, once: a repeated webhook-id is recognised here.
CREATE TABLE events (
    webhook_id  TEXT    PRIMARY KEY,
    reminder_id TEXT    NOT NULL,
    attempt     INTEGER,
    event_type  TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    applied     INTEGER NOT NULL,                  -- 0/1: did it change the reminder
    payload     TEXT    NOT NULL                   -- JSON as received
) STRICT;
CREATE INDEX events_reminder ON events (reminder_id, received_at);
