//! PostgreSQL's payments (SPEC §8): the payment, the reminder's new sum, the
//! settlement and their notices in one transaction, the reminder locked.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use super::{apply_in, notices, reminder_from_row, Notify};
use crate::clock::to_millis;
use crate::domain::{settle, NewPayment, Notice, Payment, ReminderId};
use crate::store::{Applied, PaymentRecorded, StoreError, REMINDER_COLS};

pub(super) const PAYMENT_COLS: &str =
    "id, reminder_id, amount_minor, paid_at, reference, recorded_at";

pub(super) fn payment_from_row(row: &PgRow) -> Result<Payment, StoreError> {
    Ok(Payment {
        id: row.try_get("id")?,
        reminder_id: ReminderId::from_uuid(row.try_get("reminder_id")?),
        amount_minor: row.try_get("amount_minor")?,
        paid_at: row.try_get("paid_at")?,
        reference: row.try_get("reference")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

pub(super) async fn record(
    pool: &PgPool,
    id: ReminderId,
    new: &NewPayment,
    now: DateTime<Utc>,
    notify: bool,
) -> Result<Option<PaymentRecorded>, StoreError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT {REMINDER_COLS} FROM reminders WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let before = reminder_from_row(&row)?;
    if let Some(reference) = &new.reference {
        let first = sqlx::query(&format!(
            "SELECT {PAYMENT_COLS} FROM payments WHERE reminder_id = $1 AND reference = $2"
        ))
        .bind(id.as_uuid())
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(first) = first {
            let payment = payment_from_row(&first)?;
            tx.commit().await?;
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
    let payment_id: i64 = sqlx::query_scalar(
        "INSERT INTO payments (reminder_id, amount_minor, paid_at, reference, recorded_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(id.as_uuid())
    .bind(new.amount_minor)
    .bind(paid_at)
    .bind(&new.reference)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let row = sqlx::query(&format!(
        "UPDATE reminders SET amount_paid_minor = $1, updated_at = $2 WHERE id = $3 \
         RETURNING {REMINDER_COLS}"
    ))
    .bind(sum)
    .bind(now)
    .bind(id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    let mut after = reminder_from_row(&row)?;
    let payment = Payment {
        id: payment_id,
        reminder_id: id,
        amount_minor: new.amount_minor,
        paid_at,
        reference: new.reference.clone(),
        recorded_at: now,
    };
    let mut pending = Vec::new();
    if let Some(change) = settle(&after, now) {
        match apply_in(&mut tx, &change, None, Notify::Off).await? {
            Applied::Done(settled) => {
                after = *settled;
                pending.push(Notice::payment_recorded(&after, &payment));
                pending.extend(Notice::for_change(&change, &after, None));
            }
            other => {
                return Err(StoreError::Commit(format!(
                    "the settlement found the reminder moved: {other:?}"
                )))
            }
        }
    } else {
        pending.push(Notice::payment_recorded(&after, &payment));
    }
    pending.extend(super::promises::keep_if_covered(&mut tx, &mut after, now).await?);
    if notify {
        notices::insert_notices(&mut tx, &pending).await?;
    }
    tx.commit().await?;
    Ok(Some(PaymentRecorded {
        payment,
        reminder: after,
        new: true,
    }))
}
