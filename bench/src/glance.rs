//! The dashboard's glance at scale (`duecall-bench scale`): on top of the
//! scale table (attempts over the last 120 days with a mix of outcomes), the
//! promises its `payment_promised` endings opened (a third kept by a payment,
//! the rest broken once past their deadline or still open), payments of
//! `paid` endings, and opt-outs for one reminder in 200 — written by SQL in
//! the database, then timed: the `/glance` page's handler (store read, days,
//! figures, both charts, the template) for 7 / 30 / 90 days, against a
//! ceiling measured in the same run: a plain indexed `count(*)` of the same
//! 90 days of attempts, and of one day.

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::Extension;
use chrono::{DateTime, Utc};
use duecall::domain::OperatorName;
use duecall::http::dashboard::Operator;
use sqlx::Connection;

const SQLITE: [&str; 4] = [
    // The promise of every reminder whose last attempt ended with one, opened a
    // minute after that call, due a week later, decided 3 days after that.
    "UPDATE reminders SET promise_amount_minor = 5000 + (rowid % 7) * 1000, \
       promise_date = '2026-12-01', promise_opened_at = last_attempt_at + 60000, \
       promise_deadline = last_attempt_at + 864000000, \
       promise_status = CASE WHEN rowid % 3 = 0 THEN 'kept' \
         WHEN last_attempt_at + 864000000 < ?1 THEN 'broken' ELSE 'open' END \
     WHERE status = 'completed' AND EXISTS (SELECT 1 FROM attempts a \
       WHERE a.reminder_id = reminders.id AND a.attempt = reminders.attempt_count \
         AND a.result = 'payment_promised')",
    "UPDATE reminders SET promise_decided_at = CASE promise_status \
       WHEN 'kept' THEN promise_opened_at + 172800000 ELSE promise_deadline END \
     WHERE promise_status IN ('kept', 'broken')",
    "INSERT INTO payments (reminder_id, amount_minor, paid_at, recorded_at) \
     SELECT id, promise_amount_minor, promise_opened_at + 172800000, promise_opened_at + 172800000 \
     FROM reminders WHERE promise_status = 'kept' \
     UNION ALL SELECT r.id, 2500, r.last_attempt_at + 3600000, r.last_attempt_at + 3600000 \
     FROM reminders r JOIN attempts a ON a.reminder_id = r.id AND a.attempt = r.attempt_count \
     WHERE a.result = 'paid'",
    "INSERT INTO suppression_audit (phone_number, action, reason, reminder_id, at) \
     SELECT phone_number, 'added', 'opted_out', id, last_attempt_at + 60000 FROM reminders \
     WHERE rowid % 200 = 7 AND last_attempt_at IS NOT NULL",
];

const POSTGRES: [&str; 4] = [
    "UPDATE reminders SET promise_amount_minor = 5000 + (abs(hashtext(id::text)) % 7) * 1000, \
       promise_date = DATE '2026-12-01', promise_opened_at = last_attempt_at + interval '1 minute', \
       promise_deadline = last_attempt_at + interval '10 days', \
       promise_status = CASE WHEN abs(hashtext(id::text)) % 3 = 0 THEN 'kept' \
         WHEN last_attempt_at + interval '10 days' < $1 THEN 'broken' ELSE 'open' END \
     WHERE status = 'completed' AND EXISTS (SELECT 1 FROM attempts a \
       WHERE a.reminder_id = reminders.id AND a.attempt = reminders.attempt_count \
         AND a.result = 'payment_promised')",
    "UPDATE reminders SET promise_decided_at = CASE promise_status \
       WHEN 'kept' THEN promise_opened_at + interval '2 days' ELSE promise_deadline END \
     WHERE promise_status IN ('kept', 'broken')",
    "INSERT INTO payments (reminder_id, amount_minor, paid_at, recorded_at) \
     SELECT id, promise_amount_minor, promise_opened_at + interval '2 days', \
       promise_opened_at + interval '2 days' FROM reminders WHERE promise_status = 'kept' \
     UNION ALL SELECT r.id, 2500, r.last_attempt_at + interval '1 hour', \
       r.last_attempt_at + interval '1 hour' \
     FROM reminders r JOIN attempts a ON a.reminder_id = r.id AND a.attempt = r.attempt_count \
     WHERE a.result = 'paid'",
    "INSERT INTO suppression_audit (phone_number, action, reason, reminder_id, at) \
     SELECT phone_number, 'added', 'opted_out', id, last_attempt_at + interval '1 minute' \
     FROM reminders WHERE abs(hashtext(id::text)) % 200 = 7 AND last_attempt_at IS NOT NULL",
];

/// Add the promises, payments and opt-outs; PostgreSQL's bulk-written tables
/// are then vacuumed and analysed, as autovacuum would have done by the time
/// a table has grown this large (an index-only scan needs the visibility map).
pub async fn seed(url: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        for (n, sql) in POSTGRES.iter().enumerate() {
            let q = sqlx::query(sql);
            let q = if n == 0 { q.bind(now) } else { q };
            q.execute(&mut conn).await?;
        }
        sqlx::query("VACUUM ANALYZE reminders, attempts, payments, suppression_audit")
            .execute(&mut conn)
            .await?;
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        for (n, sql) in SQLITE.iter().enumerate() {
            let q = sqlx::query(sql);
            let q = if n == 0 {
                q.bind(now.timestamp_millis())
            } else {
                q
            };
            q.execute(&mut conn).await?;
        }
    }
    Ok(())
}

/// What the seed holds in `[since, until)`: attempts, promises opened,
/// payments recorded, opt-outs (plain counts, for the report).
pub async fn counts(
    url: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> anyhow::Result<[i64; 4]> {
    let sqls = [
        "SELECT count(*) FROM attempts WHERE dispatched_at >= $1 AND dispatched_at < $2",
        "SELECT count(*) FROM reminders WHERE promise_opened_at >= $1 AND promise_opened_at < $2",
        "SELECT count(*) FROM payments WHERE recorded_at >= $1 AND recorded_at < $2",
        "SELECT count(*) FROM suppression_audit WHERE action = 'added' AND reason = 'opted_out' \
         AND at >= $1 AND at < $2",
    ];
    let mut out = [0; 4];
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        for (o, sql) in out.iter_mut().zip(sqls) {
            *o = sqlx::query_scalar(sql)
                .bind(since)
                .bind(until)
                .fetch_one(&mut conn)
                .await?;
        }
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        for (o, sql) in out.iter_mut().zip(sqls) {
            *o = sqlx::query_scalar(&sql.replace('$', "?"))
                .bind(since.timestamp_millis())
                .bind(until.timestamp_millis())
                .fetch_one(&mut conn)
                .await?;
        }
    }
    Ok(out)
}

/// The ceiling: `count(*)` of the attempts dispatched in `[since, until)`
/// through an index of its own on `dispatched_at` (made here, for the
/// ceiling only: an index-only range count, nothing grouped).
pub async fn ceiling(
    url: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    loads: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(loads);
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS bench_attempts_dispatched ON attempts (dispatched_at)",
        )
        .execute(&mut conn)
        .await?;
        sqlx::query("VACUUM ANALYZE attempts")
            .execute(&mut conn)
            .await?;
        for _ in 0..loads {
            let t = Instant::now();
            let _: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM attempts WHERE dispatched_at >= $1 AND dispatched_at < $2",
            )
            .bind(since)
            .bind(until)
            .fetch_one(&mut conn)
            .await?;
            times.push(t.elapsed());
        }
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS bench_attempts_dispatched ON attempts (dispatched_at)",
        )
        .execute(&mut conn)
        .await?;
        for _ in 0..loads {
            let t = Instant::now();
            let _: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM attempts INDEXED BY bench_attempts_dispatched \
                 WHERE dispatched_at >= ? AND dispatched_at < ?",
            )
            .bind(since.timestamp_millis())
            .bind(until.timestamp_millis())
            .fetch_one(&mut conn)
            .await?;
            times.push(t.elapsed());
        }
    }
    times.sort();
    Ok(times)
}

/// `loads` renders of `/glance?period={days}` through its handler (what a
/// request costs past the session check); the sorted times and the last page.
pub async fn page(
    state: &duecall::http::AppState,
    days: u32,
    loads: usize,
) -> anyhow::Result<(Vec<Duration>, String)> {
    let operator = Operator {
        name: OperatorName::parse("Bench Manager").map_err(|e| anyhow::anyhow!(e.message))?,
        csrf: "bench".into(),
    };
    let query = std::collections::HashMap::from([("period".to_owned(), days.to_string())]);
    let mut times = Vec::with_capacity(loads);
    let mut body = String::new();
    for _ in 0..loads {
        let t = Instant::now();
        let res = duecall::http::glance::glance(
            State(state.clone()),
            Extension(operator.clone()),
            Ok(Query(query.clone())),
        )
        .await;
        anyhow::ensure!(res.status() == 200, "the page answered {}", res.status());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
        times.push(t.elapsed());
        body = String::from_utf8(bytes.to_vec())?;
    }
    times.sort();
    Ok((times, body))
}

/// A figure's `data-value` in the page.
pub fn figure(html: &str, name: &str) -> Option<u64> {
    let marker = format!("data-figure=\"{name}\" data-value=\"");
    let at = html.find(&marker)? + marker.len();
    html[at..at + html[at..].find('"')?].parse().ok()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn p(times: &[Duration], q: f64) -> f64 {
    ms(times[((times.len() as f64 - 1.0) * q).round() as usize])
}
