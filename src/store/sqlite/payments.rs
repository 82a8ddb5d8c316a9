//! SQLite's payments (SPEC §8), on the writer thread: the payment, the
//! reminder's new sum, the settlement and their notices in one transaction.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::writer::{apply_known, Known};
use super::{from_ms, ms, reminder_from_row, REMINDER_NAMES};
use crate::clock::to_millis;
use crate::domain::{settle, NewPayment, Notice, Payment, ReminderId};
use crate::store::{Applied, PaymentRecorded, StoreError};

pub(super) const PAYMENT_COLS: &str =
    "id, reminder_id, amount_minor, paid_at, reference, recorded_at";

pub(super) fn payment_of(row: &rusqlite::Row<'_>) -> Result<Payment, StoreError> {
    let reminder_id: String = row.get(1)?;
    Ok(Payment {
        id: row.get(0)?,
        reminder_id: ReminderId::parse(&reminder_id)
            .ok_or_else(|| StoreError::Corrupt(format!("payment of {reminder_id:?}")))?,
        amount_minor: row.get(2)?,
        paid_at: from_ms(row.get(3)?)?,
        reference: row.get(4)?,
        recorded_at: from_ms(row.get(5)?)?,
    })
}

pub(super) fn payment_from_row(row: &SqliteRow) -> Result<Payment, StoreError> {
    let reminder_id: String = row.try_get(1)?;
    Ok(Payment {
        id: row.try_get(0)?,
        reminder_id: ReminderId::parse(&reminder_id)
            .ok_or_else(|| StoreError::Corrupt(format!("payment of {reminder_id:?}")))?,
        amount_minor: row.try_get(2)?,
        paid_at: from_ms(row.try_get(3)?)?,
        reference: row.try_get(4)?,
        recorded_at: from_ms(row.try_get(5)?)?,
    })
}

pub(super) fn record(
    conn: &Connection,
    id: ReminderId,
    new: &NewPayment,
    now: DateTime<Utc>,
    notify: bool,
) -> Result<Option<PaymentRecorded>, StoreError> {
    let before = conn
        .prepare_cached(&format!(
            "SELECT {} FROM reminders WHERE id = ?",
            REMINDER_NAMES.join(", ")
        ))?
        .query_row([id.to_string()], |row| Ok(reminder_from_row(row)))
        .optional()?
        .transpose()?;
    let Some(before) = before else {
        return Ok(None);
    };
    if let Some(reference) = &new.reference {
        let first = conn
            .prepare_cached(&format!(
                "SELECT {PAYMENT_COLS} FROM payments WHERE reminder_id = ? AND reference = ?"
            ))?
            .query_row(params![id.to_string(), reference], |row| {
                Ok(payment_of(row))
            })
            .optional()?
            .transpose()?;
        if let Some(payment) = first {
            return Ok(Some(PaymentRecorded {
                payment,
                reminder: before,
                new: false,
            }));
        }
    }
    let now = to_millis(now);
    let paid_at = to_millis(new.paid_at.unwrap_or(now));
    let sum = before
        .amount_paid_minor
        .checked_add(new.amount_minor)
        .ok_or_else(|| StoreError::Commit("the reminder's payments would overflow".into()))?;
    let payment_id: i64 = conn
        .prepare_cached(
            "INSERT INTO payments (reminder_id, amount_minor, paid_at, reference, recorded_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )?
        .query_row(
            params![
                id.to_string(),
                new.amount_minor,
                ms(paid_at),
                new.reference,
                ms(now)
            ],
            |row| row.get(0),
        )?;
    conn.prepare_cached("UPDATE reminders SET amount_paid_minor = ?, updated_at = ? WHERE id = ?")?
        .execute(params![sum, ms(now), id.to_string()])?;
    let mut after = before.clone();
    after.amount_paid_minor = sum;
    after.updated_at = now;
    let payment = Payment {
        id: payment_id,
        reminder_id: id,
        amount_minor: new.amount_minor,
        paid_at,
        reference: new.reference.clone(),
        recorded_at: now,
    };
    let mut notices = Vec::new();
    if let Some(change) = settle(&after, now) {
        let known = Known {
            reminder: &after,
            attempt: None,
        };
        match apply_known(conn, &change, known)? {
            Applied::Done(settled) => {
                after = *settled;
                notices.push(Notice::payment_recorded(&after, &payment));
                notices.extend(Notice::for_change(&change, &after, None));
            }
            other => {
                return Err(StoreError::Commit(format!(
                    "the settlement found the reminder moved: {other:?}"
                )))
            }
        }
    } else {
        notices.push(Notice::payment_recorded(&after, &payment));
    }
    notices.extend(super::promises::keep_if_covered(conn, &mut after, now)?);
    if notify {
        super::notices::insert_notices(conn, &notices)?;
    }
    Ok(Some(PaymentRecorded {
        payment,
        reminder: after,
        new: true,
    }))
}
