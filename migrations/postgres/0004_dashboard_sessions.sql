-- Keys the service makes for itself once and every instance shares (the dashboard
-- session cookie's signing key): random bytes, never derived from a password.
CREATE TABLE service_keys (
    name       TEXT        PRIMARY KEY,
    value      BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Signed-in dashboard sessions (tower-sessions records). `id` is the SHA-256 (hex)
-- of the session id the cookie carries, so a copy of this table opens no session.
-- Signing out deletes the row: the cookie then opens nothing, wherever it was copied.
CREATE TABLE dashboard_sessions (
    id         TEXT        PRIMARY KEY,
    data       TEXT        NOT NULL,               -- JSON object
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);
