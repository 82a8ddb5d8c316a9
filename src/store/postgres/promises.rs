//! PostgreSQL's promises (SPEC §8): kept with the payment that covers it,
//! decided by the tick — the verdict, its notice and the follow-up a broken
//! one makes in one transaction. The due promises are locked `FOR UPDATE SKIP
//! LOCKED`, so with many instances ticking each promise is decided by one.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::payments::{payment_from_row, PAYMENT_COLS};
use super::{notices, reminder_from_row};
use crate::domain::{
    decide, follow_up, with_verdict, Notice, NoticeType, Payment, PromiseStatus, Reminder,
    ReminderId,
};
use crate::store::{PromiseReport, StoreError, REMINDER_COLS};

async fn payments_of(conn: &mut PgConnection, id: ReminderId) -> Result<Vec<Payment>, StoreError> {
    sqlx::query(&format!(
        "SELECT {PAYMENT_COLS} FROM payments WHERE reminder_id = $1 ORDER BY id"
    ))
    .bind(id.as_uuid())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(payment_from_row)
    .collect()
}

/// Write `verdict` on `r`'s open promise (guarded: only an open one moves).
async fn write_verdict(
    conn: &mut PgConnection,
    r: &Reminder,
    verdict: PromiseStatus,
    follow_up_id: Option<ReminderId>,
    now: DateTime<Utc>,
) -> Result<Option<Reminder>, StoreError> {
    let after = with_verdict(r, verdict, follow_up_id, now);
    let written = sqlx::query(
        "UPDATE reminders SET promise_status = $1, promise_decided_at = $2, \
         promise_follow_up_id = $3, updated_at = $2 WHERE id = $4 AND promise_status = 'open'",
    )
    .bind(verdict.as_str())
    .bind(after.updated_at)
    .bind(follow_up_id.map(|f| f.as_uuid()))
    .bind(r.id.as_uuid())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((written == 1).then_some(after))
}

/// After a payment on `after` (locked, as the payment left it): keep its
/// open promise if the payments now cover it. Returns the notice.
pub(super) async fn keep_if_covered(
    conn: &mut PgConnection,
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
    let payments = payments_of(&mut *conn, after.id).await?;
    if decide(after, &payments, now) != Some(PromiseStatus::Kept) {
        return Ok(None);
    }
    let Some(kept) = write_verdict(&mut *conn, after, PromiseStatus::Kept, None, now).await? else {
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
pub(super) async fn decide_due(
    pool: &sqlx::PgPool,
    now: DateTime<Utc>,
    limit: u32,
    notify: bool,
) -> Result<PromiseReport, StoreError> {
    let mut tx = pool.begin().await?;
    let due = sqlx::query(&format!(
        "SELECT {REMINDER_COLS} FROM reminders WHERE promise_status = 'open' \
         AND promise_deadline <= $1 ORDER BY promise_deadline LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(reminder_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    let mut report = PromiseReport::default();
    let mut pending = Vec::new();
    for r in &due {
        let payments = payments_of(&mut tx, r.id).await?;
        let (after, kind) = match decide(r, &payments, now) {
            Some(PromiseStatus::Kept) => {
                let Some(after) = write_verdict(&mut tx, r, PromiseStatus::Kept, None, now).await?
                else {
                    continue;
                };
                report.kept.push(r.id);
                (after, NoticeType::PromiseKept)
            }
            Some(PromiseStatus::Broken) => {
                let follow_up_id = insert_follow_up(&mut tx, r, now).await?;
                let Some(after) =
                    write_verdict(&mut tx, r, PromiseStatus::Broken, Some(follow_up_id), now)
                        .await?
                else {
                    continue;
                };
                report.broken.push((r.id, follow_up_id));
                (after, NoticeType::PromiseBroken)
            }
            Some(PromiseStatus::Open) | None => continue,
        };
        pending.push(Notice::about_reminder(kind, after.updated_at, &after, None));
    }
    if notify {
        notices::insert_notices(&mut tx, &pending).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Store the follow-up to `r`'s broken promise; its id. A reminder already
/// stored with the follow-up's `external_id` is taken as the follow-up.
async fn insert_follow_up(
    conn: &mut PgConnection,
    r: &Reminder,
    now: DateTime<Utc>,
) -> Result<ReminderId, StoreError> {
    let suppressed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM suppressions WHERE phone_number = $1)")
            .bind(r.phone_number.as_str())
            .fetch_one(&mut *conn)
            .await?;
    let f = follow_up(r, ReminderId::new(), now, suppressed);
    let inserted: Option<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO reminders (id, external_id, customer_name, phone_number, timezone, \
           language, amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
           next_attempt_at, metadata, created_at, updated_at, skip_reason, \
           debt_ref, region, calling_zones, timezone_given, follow_up_of) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13, $14, $15, $16, \
           $17, $18, $19, $20, $21) \
         ON CONFLICT (external_id) DO NOTHING RETURNING id",
    )
    .bind(f.id.as_uuid())
    .bind(&f.external_id)
    .bind(&f.customer_name)
    .bind(f.phone_number.as_str())
    .bind(f.primary_zone().name())
    .bind(f.language.as_str())
    .bind(f.amount_due_minor)
    .bind(f.currency.as_str())
    .bind(f.due_date)
    .bind(f.status.as_str())
    .bind(f.max_attempts as i32)
    .bind(f.next_attempt_at)
    .bind(serde_json::Value::Object(f.metadata.clone()))
    .bind(f.created_at)
    .bind(f.updated_at)
    .bind(&f.skip_reason)
    .bind(&f.debt_ref)
    .bind(f.region.as_ref().map(|g| g.as_str().to_owned()))
    .bind(f.calling_zones.iter().map(|z| z.name()).collect::<Vec<_>>())
    .bind(f.timezone.is_some())
    .bind(r.id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok(ReminderId::from_uuid(id));
    }
    let existing: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM reminders WHERE external_id = $1")
            .bind(&f.external_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(ReminderId::from_uuid(existing))
}
