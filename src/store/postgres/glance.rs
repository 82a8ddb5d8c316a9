//! The dashboard's glance on PostgreSQL: the triggers of `0010_glance.sql`
//! append changes to delta tables; a read first folds them into the counts
//! (one statement per table, in key order, so two readers folding at once
//! wait for each other but never deadlock), then sums the counts per day in
//! the database, side by side on the pool.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::{day_params, days_cte, glance_rows as rows, GlanceRows, StoreError};

const FOLD: [&str; 3] = [
    "WITH gone AS (DELETE FROM glance_attempt_deltas RETURNING slot, result, n) \
     INSERT INTO glance_attempts (slot, result, n) \
     SELECT slot, result, sum(n) FROM gone GROUP BY slot, result ORDER BY slot, result \
     ON CONFLICT (slot, result) DO UPDATE SET n = glance_attempts.n + excluded.n",
    "WITH gone AS (DELETE FROM glance_promise_deltas RETURNING slot, status, currency, n, amount) \
     INSERT INTO glance_promises (slot, status, currency, n, amount) \
     SELECT slot, status, currency, sum(n), sum(amount) FROM gone \
     GROUP BY slot, status, currency ORDER BY slot, status, currency \
     ON CONFLICT (slot, status, currency) DO UPDATE \
     SET n = glance_promises.n + excluded.n, amount = glance_promises.amount + excluded.amount",
    "WITH gone AS (DELETE FROM glance_paid_deltas RETURNING slot, currency, n, amount) \
     INSERT INTO glance_paid (slot, currency, n, amount) \
     SELECT slot, currency, sum(n), sum(amount) FROM gone \
     GROUP BY slot, currency ORDER BY slot, currency \
     ON CONFLICT (slot, currency) DO UPDATE \
     SET n = glance_paid.n + excluded.n, amount = glance_paid.amount + excluded.amount",
];

pub(super) async fn glance(
    pool: &PgPool,
    bounds: &[DateTime<Utc>],
) -> Result<GlanceRows, StoreError> {
    let days = day_params(bounds);
    let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else {
        return Ok(GlanceRows::default());
    };
    let fold = |sql: &'static str| sqlx::query(sql).execute(pool);
    tokio::try_join!(fold(FOLD[0]), fold(FOLD[1]), fold(FOLD[2]))?;
    let cte = days_cte(days.len(), true);
    let attempts_sql = format!(
        "{cte}SELECT d.i::bigint, g.result, sum(g.n)::bigint FROM d JOIN glance_attempts g \
         ON g.slot >= d.lo AND g.slot < d.hi GROUP BY d.i, g.result HAVING sum(g.n) <> 0"
    );
    let promises_sql = format!(
        "{cte}SELECT d.i::bigint, g.status, g.currency, sum(g.n)::bigint, sum(g.amount)::bigint \
         FROM d JOIN glance_promises g ON g.slot >= d.lo AND g.slot < d.hi \
         GROUP BY d.i, g.status, g.currency HAVING sum(g.n) <> 0"
    );
    let (lo, hi) = (
        days.first().map_or(0, |d| d.1),
        days.last().map_or(0, |d| d.2),
    );
    let mut attempts = sqlx::query_as::<_, (i64, String, i64)>(&attempts_sql);
    let mut promises = sqlx::query_as::<_, (i64, String, String, i64, i64)>(&promises_sql);
    for (i, lo, hi) in &days {
        attempts = attempts.bind(*i).bind(*lo).bind(*hi);
        promises = promises.bind(*i).bind(*lo).bind(*hi);
    }
    let paid = sqlx::query_as::<_, (String, i64, i64)>(
        "SELECT currency, sum(n)::bigint, sum(amount)::bigint FROM glance_paid \
         WHERE slot >= $1 AND slot < $2 GROUP BY currency HAVING sum(n) <> 0",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(pool);
    let opt_outs = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM suppression_audit \
         WHERE action = 'added' AND reason = 'opted_out' AND at >= $1 AND at < $2",
    )
    .bind(*first)
    .bind(*last)
    .fetch_one(pool);
    let (attempts, promises, paid, opt_outs) = tokio::try_join!(
        attempts.fetch_all(pool),
        promises.fetch_all(pool),
        paid,
        opt_outs
    )?;
    Ok(rows(attempts, promises, paid, opt_outs))
}
