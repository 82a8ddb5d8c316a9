//! The dashboard's glance on SQLite: the counts the triggers of
//! `0010_glance.sql` keep by slot, summed per day in the database (a few
//! thousand rows of primary-key ranges, whatever the tables' size), read side
//! by side on the read pool.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::ms;
use crate::store::{day_params, days_cte, glance_rows as rows, GlanceRows, StoreError};

pub(super) async fn glance(
    read: &SqlitePool,
    bounds: &[DateTime<Utc>],
) -> Result<GlanceRows, StoreError> {
    let days = day_params(bounds);
    let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else {
        return Ok(GlanceRows::default());
    };
    let cte = days_cte(days.len(), false);
    let attempts_sql = format!(
        "{cte}SELECT d.i, g.result, sum(g.n) FROM d JOIN glance_attempts g \
         ON g.slot >= d.lo AND g.slot < d.hi GROUP BY d.i, g.result HAVING sum(g.n) <> 0"
    );
    let promises_sql = format!(
        "{cte}SELECT d.i, g.status, g.currency, sum(g.n), sum(g.amount) FROM d \
         JOIN glance_promises g ON g.slot >= d.lo AND g.slot < d.hi \
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
        "SELECT currency, sum(n), sum(amount) FROM glance_paid WHERE slot >= ? AND slot < ? \
         GROUP BY currency HAVING sum(n) <> 0",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(read);
    let opt_outs = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM suppression_audit INDEXED BY suppression_audit_opt_outs \
         WHERE action = 'added' AND reason = 'opted_out' AND at >= ?1 AND at < ?2",
    )
    .bind(ms(*first))
    .bind(ms(*last))
    .fetch_one(read);
    let (attempts, promises, paid, opt_outs) = tokio::try_join!(
        attempts.fetch_all(read),
        promises.fetch_all(read),
        paid,
        opt_outs
    )?;
    Ok(rows(attempts, promises, paid, opt_outs))
}
