-- SPEC §9, log-structured (docs/PERFORMANCE.md §5e, docs/DECISIONS.md): a
-- change's notifications are one row of an append-only log, written in the
-- change's transaction, where they were a row each with four B-trees. What a
-- delivery needs (its status, its lease, its tries) is written by the
-- delivery worker, in small rows, when it takes a notification.

-- One row per change that notifies: its notifications, in order, numbered
-- across the outbox `seq - n + 1 ..= seq` (n: how many types `kinds` names),
-- and among their subject's from `first_sequence`. A notification's body is
-- rendered from the row whenever it is read (the same bytes every time):
-- `data` is the object's text without `sequence`, `extra` the member the
-- first one adds (its attempt, its payment). A new notification's id is made
-- from its number, `at` and the database's salt (a UUIDv7 layout: see
-- src/store/sqlite/notices.rs). Nothing deletes a row: numbers are never reused.
CREATE TABLE notice_log (
    seq            INTEGER PRIMARY KEY,
    subject        TEXT    NOT NULL,            -- the reminder's id, or `number:<E.164>`
    reminder_id    TEXT,
    first_sequence INTEGER NOT NULL CHECK (first_sequence >= 1),
    kinds          TEXT    NOT NULL,            -- the types, comma-separated
    at             INTEGER NOT NULL,            -- ms: created_at, and the body's timestamp
    data           TEXT,
    extra          TEXT,
    legacy_id      TEXT,                        -- a notification written before this migration:
    legacy_body    TEXT,                        -- its id and body, kept as they were
    CHECK ((data IS NULL) = (legacy_body IS NOT NULL))
) STRICT;
-- A subject's notifications, and its last `sequence` (the single writer
-- numbers them; the index refuses a number given twice).
CREATE UNIQUE INDEX notice_log_subject ON notice_log (subject, first_sequence);
CREATE UNIQUE INDEX notice_log_legacy ON notice_log (legacy_id) WHERE legacy_id IS NOT NULL;

-- Where each notification taken for delivery stands. Notifications numbered
-- from `notice_frontier.next_no` on have not been taken yet: pending, due
-- when they were made.
CREATE TABLE notice_state (
    no           INTEGER PRIMARY KEY,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    step         INTEGER NOT NULL,              -- tries in this round (a resend starts a new one)
    next_try_at  INTEGER,                       -- ms; NULL once delivered or failed
    lease_owner  TEXT,
    lease_until  INTEGER,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER
) STRICT;
CREATE INDEX notice_state_due ON notice_state (next_try_at) WHERE status = 'pending';

-- `salt`: this database's own random bits in every id it makes, so two
-- databases posting to one receiver never give two notifications one id.
CREATE TABLE notice_frontier (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    next_no INTEGER NOT NULL,
    salt    INTEGER NOT NULL CHECK (salt BETWEEN 0 AND 17179869183)
) STRICT;

-- Every delivery try, oldest first by rowid.
CREATE TABLE notice_tries (
    no          INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX notice_tries_of ON notice_tries (no);

-- The notifications written before: each a row of its own (one type), taken
-- (its state kept), in the order of their ids (UUIDv7: the order they were made).
INSERT INTO notice_log (seq, subject, reminder_id, first_sequence, kinds, at, legacy_id, legacy_body)
    SELECT row_number() OVER (ORDER BY id), subject, reminder_id, sequence, type, created_at, id, body
    FROM notifications;
INSERT INTO notice_state (no, status, step, next_try_at, lease_owner, lease_until, created_at, delivered_at)
    SELECT l.seq, n.status, n.step, n.next_try_at, n.lease_owner, n.lease_until, n.created_at, n.delivered_at
    FROM notifications n JOIN notice_log l ON l.legacy_id = n.id;
INSERT INTO notice_tries (no, at, status_code, error, duration_ms)
    SELECT l.seq, t.at, t.status_code, t.error, t.duration_ms
    FROM notification_tries t JOIN notice_log l ON l.legacy_id = t.notification_id
    ORDER BY t.id;
INSERT INTO notice_frontier (one, next_no, salt)
    SELECT 1, COALESCE(MAX(seq), 0) + 1, random() & 17179869183 FROM notice_log;

DROP TABLE notification_tries;
DROP TABLE notifications;  -- and its trigger

-- The delivered and failed counts (0012) go on, kept by the state's moves; a
-- state row is always written pending (the migration's above were counted).
CREATE TRIGGER notice_counted AFTER UPDATE OF status ON notice_state
    WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE notification_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE notification_counts SET n = n + 1 WHERE status = NEW.status;
END;
