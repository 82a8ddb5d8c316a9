//! SQLite's outbox (SPEC §9): notices written in the transaction of the
//! change they report (on the writer thread, or in a claim's transaction on
//! sqlx's write connection), leases and tries on the writer thread, reads on
//! the read pool.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use std::sync::OnceLock;

use super::{attempt_from_row, built, from_ms, ms, opt_from_ms, ATTEMPT_NAMES};
use crate::domain::{attempt_ended, Attempt, Change, Notice, Reminder, ReminderId, Suppression};

static ATTEMPT_SQL: OnceLock<String> = OnceLock::new();
use crate::store::{
    new_notice_id, Delivery, NoticeTry, Notification, RawNotice, StoreError, TryOutcome,
    NOTICE_COLS,
};

const LAST_SEQUENCE: &str =
    "SELECT COALESCE(MAX(sequence), 0) FROM notifications WHERE subject = ?";
const INSERT_NOTICE: &str = "INSERT INTO notifications (id, subject, sequence, reminder_id, \
     type, body, status, step, next_try_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)";

fn next_sequence(last: i64) -> Result<u32, StoreError> {
    u32::try_from(last + 1).map_err(|e| StoreError::Corrupt(format!("notification sequence: {e}")))
}

fn last_sequence(conn: &Connection, subject: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(LAST_SEQUENCE)?
        .query_row([subject], |r| r.get(0))?)
}

static INSERT_SQL: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];

/// Write notices of one subject, numbered from `last + 1`, due at once: one
/// statement for up to four (a change makes at most three).
fn insert_numbered(conn: &Connection, notices: &[Notice], last: i64) -> Result<(), StoreError> {
    for (chunk_no, chunk) in notices.chunks(INSERT_SQL.len()).enumerate() {
        let sql = built(&INSERT_SQL[chunk.len() - 1], || {
            let row = "(?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)";
            format!(
                "INSERT INTO notifications (id, subject, sequence, reminder_id, type, body, \
                 status, step, next_try_at, created_at) VALUES {}",
                vec![row; chunk.len()].join(", ")
            )
        });
        let first = last + (chunk_no * INSERT_SQL.len()) as i64;
        // What each row needs made (the rest is bound from the notice itself).
        let mut made = Vec::with_capacity(chunk.len());
        for (n, notice) in chunk.iter().enumerate() {
            let sequence = next_sequence(first + n as i64)?;
            made.push((
                new_notice_id(),
                i64::from(sequence),
                notice.reminder_id.map(|id| id.to_string()),
                notice.kind.as_str(),
                notice.body(sequence),
                ms(notice.at),
            ));
        }
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 8);
        for (notice, (id, sequence, reminder_id, kind, body, at)) in chunk.iter().zip(&made) {
            values.extend([
                id as &dyn rusqlite::ToSql,
                &notice.subject,
                sequence,
                reminder_id,
                kind,
                body,
                at,
                at,
            ]);
        }
        conn.prepare_cached(sql)?.execute(values.as_slice())?;
    }
    Ok(())
}

/// Write notices of one subject, numbered after its last, due at once.
pub(super) fn insert_notices(conn: &Connection, notices: &[Notice]) -> Result<(), StoreError> {
    let Some(first) = notices.first() else {
        return Ok(());
    };
    let last = last_sequence(conn, &first.subject)?;
    insert_numbered(conn, notices, last)
}

/// Write one notice, numbered after its subject's last, due at once.
pub(super) fn insert_notice(conn: &Connection, notice: &Notice) -> Result<(), StoreError> {
    let last = last_sequence(conn, &notice.subject)?;
    insert_numbered(conn, std::slice::from_ref(notice), last)
}

/// The notices a written change causes (`after`: the reminder it left).
pub(super) fn write_notices(
    conn: &Connection,
    change: &Change,
    after: &Reminder,
    attempt: Option<Attempt>,
) -> Result<(), StoreError> {
    let attempt = match (attempt_ended(change, after), attempt) {
        (Some(n), Some(known)) if known.attempt == n => Some(known),
        (Some(n), _) => conn
            .prepare_cached(built(&ATTEMPT_SQL, || {
                format!(
                    "SELECT {} FROM attempts WHERE reminder_id = ? AND attempt = ?",
                    ATTEMPT_NAMES.join(", ")
                )
            }))?
            .query_row(params![after.id.to_string(), i64::from(n)], |row| {
                Ok(attempt_from_row(row))
            })
            .optional()?
            .transpose()?,
        (None, _) => None,
    };
    let notices = Notice::for_change(change, after, attempt.as_ref());
    if notices.is_empty() {
        return Ok(());
    }
    let last = last_sequence(conn, &notices[0].subject)?;
    insert_numbered(conn, &notices, last)
}

/// The same on sqlx's write connection (a claim's ends), in its transaction.
pub(super) async fn insert_notice_sqlx(
    conn: &mut SqliteConnection,
    notice: &Notice,
) -> Result<(), StoreError> {
    let last: i64 = sqlx::query_scalar(LAST_SEQUENCE)
        .bind(&notice.subject)
        .fetch_one(&mut *conn)
        .await?;
    let sequence = next_sequence(last)?;
    sqlx::query(INSERT_NOTICE)
        .bind(new_notice_id())
        .bind(&notice.subject)
        .bind(i64::from(sequence))
        .bind(notice.reminder_id.map(|id| id.to_string()))
        .bind(notice.kind.as_str())
        .bind(notice.body(sequence))
        .bind(ms(notice.at))
        .bind(ms(notice.at))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A number just put on the list.
pub(super) fn notice_suppression(conn: &Connection, entry: &Suppression) -> Result<(), StoreError> {
    insert_notice(conn, &Notice::about_suppression(entry))
}

/// Lease up to `limit` due notifications to `owner` until `until`.
pub(super) fn lease(
    conn: &Connection,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE notifications SET lease_owner = ?1, lease_until = ?2 WHERE id IN (\
           SELECT id FROM notifications WHERE status = 'pending' AND next_try_at <= ?3 \
           AND (lease_until IS NULL OR lease_until <= ?3) ORDER BY next_try_at LIMIT ?4) \
         RETURNING id, type, body, step, created_at",
    )?;
    let mut rows = stmt.query(params![owner, ms(until), ms(now), i64::from(limit)])?;
    let mut leased = Vec::new();
    while let Some(row) = rows.next()? {
        let kind: String = row.get(1)?;
        leased.push(Delivery {
            id: row.get(0)?,
            kind: kind
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("notification type {kind:?}")))?,
            body: row.get(2)?,
            step: u32::try_from(row.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            created_at: from_ms(row.get(4)?)?,
        });
    }
    leased.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(leased)
}

/// Record a try; move the notification only while `owner` holds its lease.
pub(super) fn record(
    conn: &Connection,
    id: &str,
    owner: &str,
    t: &NoticeTry,
    outcome: TryOutcome,
) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "INSERT INTO notification_tries (notification_id, at, status_code, error, duration_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        id,
        ms(t.at),
        t.status_code,
        t.error,
        i64::try_from(t.duration_ms).unwrap_or(i64::MAX)
    ])?;
    let (status, next, delivered) = match outcome {
        TryOutcome::Delivered => ("delivered", None, Some(ms(t.at))),
        TryOutcome::RetryAt(at) => ("pending", Some(ms(at)), None),
        TryOutcome::Failed => ("failed", None, None),
    };
    let moved = conn
        .prepare_cached(
            "UPDATE notifications SET status = ?, next_try_at = ?, delivered_at = ?, \
             step = step + 1, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND lease_owner = ? AND status = 'pending'",
        )?
        .execute(params![status, next, delivered, id, owner])?;
    Ok(moved == 1)
}

/// Queue a notification again: a delivered or failed one starts a new round
/// of tries now; a pending one is tried now. `false`: no such notification.
pub(super) fn resend(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let moved = conn
        .prepare_cached(
            "UPDATE notifications SET next_try_at = ?1, \
             step = CASE WHEN status = 'pending' THEN step ELSE 0 END, status = 'pending' \
             WHERE id = ?2",
        )?
        .execute(params![ms(now), id])?;
    Ok(moved == 1)
}

pub(super) fn notice_from_row(row: &SqliteRow) -> Result<RawNotice, StoreError> {
    let reminder_id: Option<String> = row.try_get(2)?;
    Ok(RawNotice {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        reminder_id: reminder_id
            .map(|r| {
                ReminderId::parse(&r)
                    .map(|id| id.as_uuid())
                    .ok_or_else(|| StoreError::Corrupt(format!("notification reminder {r:?}")))
            })
            .transpose()?,
        sequence: row.try_get(3)?,
        status: row.try_get(4)?,
        created_at: from_ms(row.try_get(5)?)?,
        next_try_at: opt_from_ms(row.try_get(6)?)?,
        delivered_at: opt_from_ms(row.try_get(7)?)?,
        body: row.try_get(8)?,
    })
}

pub(super) fn try_from_row(row: &SqliteRow) -> Result<NoticeTry, StoreError> {
    let code: Option<i64> = row.try_get(1)?;
    Ok(NoticeTry {
        at: from_ms(row.try_get(0)?)?,
        status_code: code.and_then(|c| u16::try_from(c).ok()),
        error: row.try_get(2)?,
        duration_ms: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
    })
}

/// Notifications with their tries, by the rows of a page.
pub(super) async fn with_tries(
    read: &mut SqliteConnection,
    rows: Vec<SqliteRow>,
) -> Result<Vec<Notification>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let raw = notice_from_row(row)?;
        let tries = sqlx::query(
            "SELECT at, status_code, error, duration_ms FROM notification_tries \
             WHERE notification_id = ? ORDER BY id",
        )
        .bind(&raw.id)
        .fetch_all(&mut *read)
        .await?
        .iter()
        .map(try_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        out.push(raw.into_notification(tries)?);
    }
    Ok(out)
}

pub(super) fn select_notices() -> String {
    format!("SELECT {NOTICE_COLS} FROM notifications")
}
