//! The dashboard's glance on PostgreSQL: four grouped reads, each answered
//! from a covering index of `0010_glance.sql` (index-only scans once the
//! table is vacuumed), run side by side on the pool.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::{
    AttemptSlot, GlanceRows, PaidAfterCall, PromiseSlot, StoreError, GLANCE_SLOT_SECS,
};

pub(super) async fn glance(
    pool: &PgPool,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<GlanceRows, StoreError> {
    let attempts = sqlx::query_as::<_, (i64, Option<String>, i64)>(
        "SELECT floor(extract(epoch FROM dispatched_at) / $1)::bigint AS slot, result, count(*) \
         FROM attempts WHERE dispatched_at >= $2 AND dispatched_at < $3 GROUP BY slot, result",
    )
    .bind(GLANCE_SLOT_SECS as f64)
    .bind(since)
    .bind(until)
    .fetch_all(pool);
    let promises = sqlx::query_as::<_, (i64, String, String, i64, i64)>(
        "SELECT floor(extract(epoch FROM promise_opened_at) / $1)::bigint AS slot, promise_status, \
         currency, count(*), COALESCE(sum(promise_amount_minor), 0)::bigint FROM reminders \
         WHERE promise_opened_at IS NOT NULL AND promise_opened_at >= $2 AND promise_opened_at < $3 \
         GROUP BY slot, promise_status, currency",
    )
    .bind(GLANCE_SLOT_SECS as f64)
    .bind(since)
    .bind(until)
    .fetch_all(pool);
    let paid = sqlx::query_as::<_, (String, i64, i64)>(
        "SELECT r.currency, count(*), COALESCE(sum(p.amount_minor), 0)::bigint \
         FROM payments p JOIN reminders r ON r.id = p.reminder_id \
         WHERE p.recorded_at >= $1 AND p.recorded_at < $2 \
           AND EXISTS (SELECT 1 FROM attempts a \
                       WHERE a.reminder_id = p.reminder_id AND a.dispatched_at < p.paid_at) \
         GROUP BY r.currency",
    )
    .bind(since)
    .bind(until)
    .fetch_all(pool);
    let opt_outs = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM suppression_audit \
         WHERE action = 'added' AND reason = 'opted_out' AND at >= $1 AND at < $2",
    )
    .bind(since)
    .bind(until)
    .fetch_one(pool);
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
