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
    new_data_id, new_notice_id, Delivery, NoticeTry, Notification, RawNotice, StoreError,
    TryOutcome, NOTICE_COLS,
};

const LAST_SEQUENCE: &str =
    "SELECT COALESCE(MAX(sequence), 0) FROM notifications WHERE subject = ?";
const INSERT_NOTICE: &str = "INSERT INTO notifications (id, subject, sequence, reminder_id, \
     type, data_id, extra_name, extra, status, step, next_try_at, created_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)";
const INSERT_DATA: &str = "INSERT INTO notice_data (id, data) VALUES (?, ?)";

/// The `notice_data` rows of `notices`: one per distinct shared text, written
/// now; the id of each notice's.
fn data_ids(conn: &Connection, notices: &[Notice]) -> Result<Vec<String>, StoreError> {
    let mut written: Vec<(&std::sync::Arc<str>, String)> = Vec::new();
    let mut ids = Vec::with_capacity(notices.len());
    for notice in notices {
        let id = match written
            .iter()
            .find(|(d, _)| std::sync::Arc::ptr_eq(d, &notice.data))
        {
            Some((_, id)) => id.clone(),
            None => {
                let id = new_data_id();
                conn.prepare_cached(INSERT_DATA)?
                    .execute(params![id, &*notice.data])?;
                written.push((&notice.data, id.clone()));
                id
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

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
/// statement for up to four (a change makes at most three), after their data.
fn insert_numbered(conn: &Connection, notices: &[Notice], last: i64) -> Result<(), StoreError> {
    let data = data_ids(conn, notices)?;
    for (chunk_no, chunk) in notices.chunks(INSERT_SQL.len()).enumerate() {
        let sql = built(&INSERT_SQL[chunk.len() - 1], || {
            let row = "(?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)";
            format!(
                "INSERT INTO notifications (id, subject, sequence, reminder_id, type, data_id, \
                 extra_name, extra, status, step, next_try_at, created_at) VALUES {}",
                vec![row; chunk.len()].join(", ")
            )
        });
        let first = chunk_no * INSERT_SQL.len();
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(chunk.len() * 10);
        for (n, notice) in chunk.iter().enumerate() {
            let sequence = next_sequence(last + (first + n) as i64)?;
            values.push(new_notice_id().into());
            values.push(notice.subject.clone().into());
            values.push(i64::from(sequence).into());
            values.push(notice.reminder_id.map(|id| id.to_string()).into());
            values.push(notice.kind.as_str().to_owned().into());
            values.push(data[first + n].clone().into());
            values.push(
                notice
                    .extra
                    .as_ref()
                    .map(|(name, _)| (*name).to_owned())
                    .into(),
            );
            values.push(notice.extra.as_ref().map(|(_, v)| v.clone()).into());
            values.push(ms(notice.at).into());
            values.push(ms(notice.at).into());
        }
        conn.prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(values))?;
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
    let data_id = new_data_id();
    sqlx::query(INSERT_DATA)
        .bind(&data_id)
        .bind(&*notice.data)
        .execute(&mut *conn)
        .await?;
    sqlx::query(INSERT_NOTICE)
        .bind(new_notice_id())
        .bind(&notice.subject)
        .bind(i64::from(sequence))
        .bind(notice.reminder_id.map(|id| id.to_string()))
        .bind(notice.kind.as_str())
        .bind(data_id)
        .bind(notice.extra.as_ref().map(|(name, _)| *name))
        .bind(notice.extra.as_ref().map(|(_, v)| v.as_str()))
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
    // Read, then take: one transaction of the one writer (and IMMEDIATE
    // against other processes), so no other claimer comes between.
    let mut stmt = conn.prepare_cached(
        "SELECT n.id, n.type, n.step, n.created_at, n.sequence, d.data, n.extra_name, n.extra \
         FROM notifications n JOIN notice_data d ON d.id = n.data_id \
         WHERE n.status = 'pending' AND n.next_try_at <= ?1 \
           AND (n.lease_until IS NULL OR n.lease_until <= ?1) \
         ORDER BY n.next_try_at LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![ms(now), i64::from(limit)])?;
    let mut leased = Vec::new();
    while let Some(row) = rows.next()? {
        let kind: String = row.get(1)?;
        let created_at = from_ms(row.get(3)?)?;
        let sequence = u32::try_from(row.get::<_, i64>(4)?)
            .map_err(|e| StoreError::Corrupt(format!("notification sequence: {e}")))?;
        let data: String = row.get(5)?;
        let extra_name: Option<String> = row.get(6)?;
        let extra: Option<String> = row.get(7)?;
        let body = crate::domain::assemble(
            &kind,
            created_at,
            &data,
            extra_name.as_deref().zip(extra.as_deref()),
            sequence,
        );
        leased.push(Delivery {
            id: row.get(0)?,
            kind: kind
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("notification type {kind:?}")))?,
            body,
            step: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
            created_at,
        });
    }
    drop(rows);
    let mut take = conn
        .prepare_cached("UPDATE notifications SET lease_owner = ?, lease_until = ? WHERE id = ?")?;
    for d in &leased {
        take.execute(params![owner, ms(until), d.id])?;
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
        data: row.try_get(8)?,
        extra_name: row.try_get(9)?,
        extra: row.try_get(10)?,
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
