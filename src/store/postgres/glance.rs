//! The dashboard's glance on PostgreSQL: the triggers of `0010_glance.sql`
//! append changes to delta tables; a read first folds them into the counts
//! (one statement per table, in key order, so two readers folding at once
//! wait for each other but never deadlock), then sums the counts per day in
//! the database, side by side on the pool.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{PgPool, Row};
use uuid::Uuid;

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

/// The glance's keys of the rows an event batch may change, as the batch
/// found them at its start (`writer::lock_and_read`, before any write). At
/// its end [`write_batch_changes`] compares them with the rows as they are
/// and appends the differences, in one statement: the work of the two row
/// triggers that stand aside in the writer's transactions
/// (`0011_glance_by_writer.sql`), for the whole batch at once. Several jobs
/// on one row add up to the change from the first state to the last, which
/// is what their triggers would have appended; a job rolled back to its
/// savepoint left nothing to count.
#[derive(Default)]
pub(super) struct BatchBefore {
    /// (reminder, attempt) → (dispatched_at, result, `''` for none).
    attempts: HashMap<(Uuid, i32), (DateTime<Utc>, String)>,
    /// reminder → (promise_opened_at, promise_status, promise_amount_minor, currency).
    promises: HashMap<Uuid, PromiseKey>,
}

type PromiseKey = (Option<DateTime<Utc>>, Option<String>, Option<i64>, String);

/// The columns `BatchBefore::note` reads, for the batch's read statement
/// (`r`: the reminder, `a`: the attempt, which may be missing).
pub(super) const BATCH_BEFORE_COLS: &str = "r.id AS g_rid, r.promise_opened_at AS g_opened, \
     r.promise_status AS g_status, r.promise_amount_minor AS g_amount, r.currency AS g_currency, \
     a.attempt AS g_attempt, a.dispatched_at AS g_dispatched, COALESCE(a.result, '') AS g_result";

impl BatchBefore {
    /// Note one row of the batch's read (the first state of each key wins;
    /// every row is read before anything is written, so all are first).
    pub(super) fn note(&mut self, row: &PgRow) -> Result<(), sqlx::Error> {
        let rid: Uuid = row.try_get("g_rid")?;
        self.promises.entry(rid).or_insert((
            row.try_get("g_opened")?,
            row.try_get("g_status")?,
            row.try_get("g_amount")?,
            row.try_get("g_currency")?,
        ));
        if let Some(attempt) = row.try_get::<Option<i32>, _>("g_attempt")? {
            let dispatched: DateTime<Utc> = row.try_get("g_dispatched")?;
            let result: String = row.try_get("g_result")?;
            self.attempts
                .entry((rid, attempt))
                .or_insert((dispatched, result));
        }
        Ok(())
    }
}

const BATCH_CHANGES: &str = "WITH a0 AS ( \
       SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::text[]) AS d(rid, att, t, r)), \
     ad AS (INSERT INTO glance_attempt_deltas (slot, result, n) \
       SELECT glance_slot(x.t), x.r, x.n FROM a0 \
       JOIN attempts cur ON cur.reminder_id = a0.rid AND cur.attempt = a0.att \
       CROSS JOIN LATERAL (VALUES (a0.t, a0.r, -1::bigint), \
                                  (cur.dispatched_at, COALESCE(cur.result, ''), 1::bigint)) AS x(t, r, n) \
       WHERE a0.t IS DISTINCT FROM cur.dispatched_at OR a0.r IS DISTINCT FROM COALESCE(cur.result, '') \
       RETURNING 1), \
     p0 AS ( \
       SELECT * FROM unnest($5::uuid[], $6::timestamptz[], $7::text[], $8::bigint[], $9::text[]) \
         AS p(rid, t, s, amt, cur)), \
     pd AS (INSERT INTO glance_promise_deltas (slot, status, currency, n, amount) \
       SELECT glance_slot(x.t), x.s, x.c, x.n, x.a FROM p0 JOIN reminders r ON r.id = p0.rid \
       CROSS JOIN LATERAL (VALUES (p0.t, p0.s, p0.cur, -1::bigint, -COALESCE(p0.amt, 0)), \
           (r.promise_opened_at, r.promise_status, r.currency, 1::bigint, COALESCE(r.promise_amount_minor, 0))) \
         AS x(t, s, c, n, a) \
       WHERE x.t IS NOT NULL AND x.s IS NOT NULL \
         AND (p0.t IS DISTINCT FROM r.promise_opened_at OR p0.s IS DISTINCT FROM r.promise_status \
              OR p0.amt IS DISTINCT FROM r.promise_amount_minor) \
       RETURNING 1) \
     SELECT (SELECT count(*) FROM ad) + (SELECT count(*) FROM pd)";

/// Append what the batch changed of the glance's counts (see [`BatchBefore`]),
/// in the batch's transaction, before its commit.
pub(super) async fn write_batch_changes(
    conn: &mut PgConnection,
    before: &BatchBefore,
) -> Result<(), sqlx::Error> {
    let (mut a_rid, mut a_att, mut a_t, mut a_r) = (vec![], vec![], vec![], vec![]);
    for ((rid, att), (t, r)) in &before.attempts {
        a_rid.push(*rid);
        a_att.push(*att);
        a_t.push(*t);
        a_r.push(r.as_str());
    }
    let (mut p_rid, mut p_t, mut p_s, mut p_amt, mut p_cur) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (rid, (t, s, amt, cur)) in &before.promises {
        p_rid.push(*rid);
        p_t.push(*t);
        p_s.push(s.as_deref());
        p_amt.push(*amt);
        p_cur.push(cur.as_str());
    }
    sqlx::query(BATCH_CHANGES)
        .bind(&a_rid)
        .bind(&a_att)
        .bind(&a_t)
        .bind(&a_r)
        .bind(&p_rid)
        .bind(&p_t)
        .bind(&p_s)
        .bind(&p_amt)
        .bind(&p_cur)
        .execute(conn)
        .await?;
    Ok(())
}
