//! The dashboard's glance on SQLite: four grouped reads, each answered from a
//! covering index of `0010_glance.sql` (times are ms, so a slot is an
//! integer division), run side by side on the read pool.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::ms;
use crate::store::{
    AttemptSlot, GlanceRows, PaidAfterCall, PromiseSlot, StoreError, GLANCE_SLOT_SECS,
};

const SLOT_MS: i64 = GLANCE_SLOT_SECS * 1000;

pub(super) async fn glance(
    read: &SqlitePool,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<GlanceRows, StoreError> {
    let (since, until) = (ms(since), ms(until));
    let attempts = sqlx::query_as::<_, (i64, Option<String>, i64)>(
        "SELECT dispatched_at / ?1 AS slot, result, count(*) FROM attempts \
         INDEXED BY attempts_dispatched \
         WHERE dispatched_at >= ?2 AND dispatched_at < ?3 GROUP BY slot, result",
    )
    .bind(SLOT_MS)
    .bind(since)
    .bind(until)
    .fetch_all(read);
    let promises = sqlx::query_as::<_, (i64, String, String, i64, i64)>(
        "SELECT promise_opened_at / ?1 AS slot, promise_status, currency, count(*), \
         COALESCE(sum(promise_amount_minor), 0) FROM reminders INDEXED BY reminders_promises_opened \
         WHERE promise_opened_at IS NOT NULL AND promise_opened_at >= ?2 AND promise_opened_at < ?3 \
         GROUP BY slot, promise_status, currency",
    )
    .bind(SLOT_MS)
    .bind(since)
    .bind(until)
    .fetch_all(read);
    let paid = sqlx::query_as::<_, (String, i64, i64)>(
        "SELECT r.currency, count(*), COALESCE(sum(p.amount_minor), 0) \
         FROM payments p INDEXED BY payments_recorded JOIN reminders r ON r.id = p.reminder_id \
         WHERE p.recorded_at >= ?1 AND p.recorded_at < ?2 \
           AND EXISTS (SELECT 1 FROM attempts a INDEXED BY attempts_recent \
                       WHERE a.reminder_id = p.reminder_id AND a.dispatched_at < p.paid_at) \
         GROUP BY r.currency",
    )
    .bind(since)
    .bind(until)
    .fetch_all(read);
    let opt_outs = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM suppression_audit INDEXED BY suppression_audit_opt_outs \
         WHERE action = 'added' AND reason = 'opted_out' AND at >= ?1 AND at < ?2",
    )
    .bind(since)
    .bind(until)
    .fetch_one(read);
    let (attempts, promises, paid, opt_outs) =
        tokio::try_join!(attempts, promises, paid, opt_outs)?;
    Ok(GlanceRows {
        attempts: attempts
            .into_iter()
            .map(|(slot, result, count)| AttemptSlot {
                slot,
                result,
                count: count as u64,
            })
            .collect(),
        promises: promises
            .into_iter()
            .map(|(slot, status, currency, count, amount)| PromiseSlot {
                slot,
                status,
                currency,
                count: count as u64,
                amount_minor: amount,
            })
            .collect(),
        paid_after_call: paid
            .into_iter()
            .map(|(currency, count, amount)| PaidAfterCall {
                currency,
                count: count as u64,
                amount_minor: amount,
            })
            .collect(),
        opt_outs: opt_outs as u64,
    })
}
