//! SQLite's promises (SPEC §8), on the writer thread: a promise opened with
//! the completion that made it, kept with the payment that covers it, and
//! decided by the tick — the verdict, its notice and the follow-up a broken
//! one makes in one transaction. The single writer decides each promise once.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::payments::payment_of;
use super::{ms, reminder_from_row, zone_names_json, REMINDER_NAMES};
use crate::domain::{
    decide, follow_up, with_verdict, Notice, NoticeType, Payment, Promise, PromiseStatus, Reminder,
    ReminderId,
};
use crate::store::{PromiseReport, StoreError};

/// The columns a promise a completion opens sets (amount, date, status,
/// opened at, deadline: `?` in that order).
pub(super) const OPEN_SET: &str = "promise_amount_minor = ?, promise_date = ?, \
     promise_status = ?, promise_opened_at = ?, promise_deadline = ?, promise_decided_at = NULL, \
     promise_follow_up_id = NULL";

/// Write the promise a completion opened on reminder `id` (where the
/// reminder's own write did not: `writer::guard_known` writes both at once).
pub(super) fn open(conn: &Connection, id: &str, p: &Promise) -> Result<(), StoreError> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    conn.prepare_cached(super::built(&SQL, || {
        format!("UPDATE reminders SET {OPEN_SET} WHERE id = ?")
    }))?
    .execute(params![
        p.amount_minor,
        p.date.format("%Y-%m-%d").to_string(),
        p.status.as_str(),
        ms(p.opened_at),
        ms(p.deadline),
        id
    ])?;
    Ok(())
}

fn payments_of(conn: &Connection, id: ReminderId) -> Result<Vec<Payment>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM payments WHERE reminder_id = ? ORDER BY id",
        super::payments::PAYMENT_COLS
    ))?;
    let rows = stmt.query_map([id.to_string()], |row| Ok(payment_of(row)))?;
    rows.map(|r| r?).collect()
}

/// Write `verdict` on `r`'s open promise (guarded: only an open one moves).
/// Returns the reminder as it now is, or `None` when it was no longer open.
fn write_verdict(
    conn: &Connection,
    r: &Reminder,
    verdict: PromiseStatus,
    follow_up_id: Option<ReminderId>,
    now: DateTime<Utc>,
) -> Result<Option<Reminder>, StoreError> {
    let after = with_verdict(r, verdict, follow_up_id, now);
    let written = conn
        .prepare_cached(
            "UPDATE reminders SET promise_status = ?, promise_decided_at = ?, \
             promise_follow_up_id = ?, updated_at = ? WHERE id = ? AND promise_status = 'open'",
        )?
        .execute(params![
            verdict.as_str(),
            ms(after.updated_at),
            follow_up_id.map(|f| f.to_string()),
            ms(after.updated_at),
            r.id.to_string()
        ])?;
    Ok((written == 1).then_some(after))
}

/// After a payment on `after` (the reminder as the payment left it): keep
/// its open promise if the payments now cover it. Returns the notice.
pub(super) fn keep_if_covered(
    conn: &Connection,
    after: &mut Reminder,
    now: DateTime<Utc>,
) -> Result<Option<Notice>, StoreError> {
    if !after
        .promise
        .as_ref()
        .is_some_and(|p| p.status == PromiseStatus::Open)
    {
        return Ok(None);
    }
    let payments = payments_of(conn, after.id)?;
    if decide(after, &payments, now) != Some(PromiseStatus::Kept) {
        return Ok(None);
    }
    let Some(kept) = write_verdict(conn, after, PromiseStatus::Kept, None, now)? else {
        return Ok(None);
    };
    *after = kept;
    Ok(Some(Notice::about_reminder(
        NoticeType::PromiseKept,
        after.updated_at,
        after,
        None,
    )))
}

/// Decide up to `limit` open promises whose deadline has passed at `now`.
pub(super) fn decide_due(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: u32,
    notify: bool,
) -> Result<PromiseReport, StoreError> {
    let due: Vec<Reminder> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM reminders WHERE promise_status = 'open' AND promise_deadline <= ? \
             ORDER BY promise_deadline LIMIT ?",
            REMINDER_NAMES.join(", ")
        ))?;
        let rows = stmt.query_map(params![ms(now), i64::from(limit)], |row| {
            Ok(reminder_from_row(row))
        })?;
        rows.map(|r| r?).collect::<Result<_, _>>()?
    };
    let mut report = PromiseReport::default();
    for r in &due {
        let payments = payments_of(conn, r.id)?;
        let (after, kind) = match decide(r, &payments, now) {
            Some(PromiseStatus::Kept) => {
                let Some(after) = write_verdict(conn, r, PromiseStatus::Kept, None, now)? else {
                    continue;
                };
                report.kept.push(r.id);
                (after, NoticeType::PromiseKept)
            }
            Some(PromiseStatus::Broken) => {
                let follow_up_id = insert_follow_up(conn, r, now)?;
                let Some(after) =
                    write_verdict(conn, r, PromiseStatus::Broken, Some(follow_up_id), now)?
                else {
                    continue;
                };
                report.broken.push((r.id, follow_up_id));
                (after, NoticeType::PromiseBroken)
            }
            Some(PromiseStatus::Open) | None => continue,
        };
        if notify {
            let notice = Notice::about_reminder(kind, after.updated_at, &after, None);
            super::notices::insert_notice(conn, &notice)?;
        }
    }
    Ok(report)
}

/// Store the follow-up to `r`'s broken promise; its id. A reminder already
/// stored with the follow-up's `external_id` is taken as the follow-up.
fn insert_follow_up(
    conn: &Connection,
    r: &Reminder,
    now: DateTime<Utc>,
) -> Result<ReminderId, StoreError> {
    let suppressed = conn
        .prepare_cached("SELECT 1 FROM suppressions WHERE phone_number = ?")?
        .exists([r.phone_number.as_str()])?;
    let f = follow_up(r, ReminderId::new(), now, suppressed);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO reminders (id, external_id, customer_name, phone_number, timezone, language, \
             amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
             next_attempt_at, last_attempt_at, skip_reason, outcome, metadata, created_at, updated_at, \
             debt_ref, region, calling_zones, timezone_given, follow_up_of) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, NULL, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (external_id) DO NOTHING",
        )?
        .execute(params![
            f.id.to_string(),
            f.external_id,
            f.customer_name,
            f.phone_number.as_str(),
            f.primary_zone().name(),
            f.language.as_str(),
            f.amount_due_minor,
            f.currency.as_str(),
            f.due_date.format("%Y-%m-%d").to_string(),
            f.status.as_str(),
            i64::from(f.max_attempts),
            f.next_attempt_at.map(ms),
            f.skip_reason,
            serde_json::Value::Object(f.metadata.clone()).to_string(),
            ms(f.created_at),
            ms(f.updated_at),
            f.debt_ref,
            f.region.as_ref().map(|g| g.as_str().to_owned()),
            zone_names_json(&f.calling_zones),
            f.timezone.is_some(),
            r.id.to_string(),
        ])?;
    if inserted == 1 {
        return Ok(f.id);
    }
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM reminders WHERE external_id = ?")?
        .query_row([&f.external_id], |row| row.get(0))
        .optional()?;
    existing
        .as_deref()
        .and_then(ReminderId::parse)
        .ok_or_else(|| StoreError::Corrupt("a follow-up's external_id clashed and vanished".into()))
}
