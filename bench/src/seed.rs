//! Bulk seeding for the benchmarks: many rows per statement, straight into
//! duecall's tables (after its own migrations have run), so a benchmark spends
//! its time on what it measures.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, QueryBuilder};
use uuid::Uuid;

/// One reminder row to seed.
#[derive(Clone, Copy)]
struct Row {
    id: Uuid,
    status: &'static str,
    attempt_count: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
}

const PER_STATEMENT: usize = 1_000;

/// `n` reminders with a live first attempt (`in_progress`), dispatched a
/// minute ago; returns their ids.
pub async fn live(url: &str, n: usize, now: DateTime<Utc>) -> anyhow::Result<Vec<Uuid>> {
    let rows: Vec<Row> = (0..n)
        .map(|_| Row {
            id: Uuid::now_v7(),
            status: "in_progress",
            attempt_count: 1,
            next_attempt_at: None,
            last_attempt_at: Some(now - Duration::minutes(1)),
        })
        .collect();
    insert(url, &rows).await?;
    Ok(rows.iter().map(|r| r.id).collect())
}

/// `n` pending reminders, due a minute ago.
pub async fn due(url: &str, n: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    let rows: Vec<Row> = (0..n)
        .map(|_| pending(now - Duration::minutes(1)))
        .collect();
    insert(url, &rows).await
}

fn pending(at: DateTime<Utc>) -> Row {
    Row {
        id: Uuid::now_v7(),
        status: "pending",
        attempt_count: 0,
        next_attempt_at: Some(at),
        last_attempt_at: None,
    }
}

/// A table of `rows` reminders as a busy deployment has it: nearly all ended
/// (completed, cancelled, terminally failed), a few waiting for a later time,
/// plus exactly 100 due now and 50 live attempts of which 25 are overdue.
pub async fn table(url: &str, rows: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    let fixed = 100 + 50;
    let mut all = Vec::with_capacity(rows);
    for i in 0..rows.saturating_sub(fixed) {
        let ended = |status| Row {
            id: Uuid::now_v7(),
            status,
            attempt_count: 1 + (i % 3) as i32,
            next_attempt_at: None,
            last_attempt_at: Some(now - Duration::days(1 + (i % 60) as i64)),
        };
        all.push(match i % 100 {
            0..=89 => ended("completed"),
            90..=94 => ended("cancelled"),
            95..=97 => ended("failed"),
            // Waiting for later: pending or retryable failed, due in the future.
            _ => pending(now + Duration::hours(1 + (i % 48) as i64)),
        });
    }
    all.extend((0..100).map(|_| pending(now - Duration::minutes(5))));
    for i in 0..50 {
        let ago = if i < 25 {
            Duration::hours(1)
        } else {
            Duration::seconds(30)
        };
        all.push(Row {
            id: Uuid::now_v7(),
            status: "in_progress",
            attempt_count: 1,
            next_attempt_at: None,
            last_attempt_at: Some(now - ago),
        });
    }
    insert(url, &all).await
}

/// The phone number of the `n`th seeded reminder (from 1).
pub fn seeded_phone(n: u64) -> String {
    format!("+1{:010}", 2_000_000_000 + n)
}

/// Insert the rows (and an attempt row for each one that has made an attempt).
async fn insert(url: &str, rows: &[Row]) -> anyhow::Result<()> {
    // Migrate through duecall itself, so the schema is exactly the service's.
    drop(duecall::store::connect(url, 2).await?);
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        // Every reminder its own number (`seeded_phone`), as in real life: the
        // dashboard's search looks reminders up by number.
        let mut n = 0u64;
        for chunk in rows.chunks(PER_STATEMENT) {
            let mut tx = conn.begin().await?;
            let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new(
                "INSERT INTO reminders (id, customer_name, phone_number, timezone, language, \
                 amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
                 next_attempt_at, last_attempt_at, metadata, created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                n += 1;
                let created = r.last_attempt_at.unwrap_or(Utc::now()) - Duration::hours(1);
                b.push_bind(r.id)
                    .push_bind("Bench Customer")
                    .push_bind(seeded_phone(n))
                    .push_bind("America/New_York")
                    .push_bind("en")
                    .push_bind(12_345i64)
                    .push_bind("USD")
                    .push_bind(chrono::NaiveDate::from_ymd_opt(2026, 12, 1))
                    .push_bind(r.status)
                    .push_bind(r.attempt_count)
                    .push_bind(3i32)
                    .push_bind(r.next_attempt_at)
                    .push_bind(r.last_attempt_at)
                    .push_bind(serde_json::json!({}))
                    .push_bind(created)
                    .push_bind(created);
            });
            qb.build().execute(&mut *tx).await?;
            let with_attempts: Vec<&Row> = chunk.iter().filter(|r| r.attempt_count > 0).collect();
            if !with_attempts.is_empty() {
                let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new(
                    "INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, updated_at) ",
                );
                qb.push_values(with_attempts, |mut b, r| {
                    let st = attempt_status(r.status);
                    let at = r.last_attempt_at.unwrap_or_else(Utc::now);
                    b.push_bind(r.id)
                        .push_bind(r.attempt_count)
                        .push_bind(st)
                        .push_bind(format!("reminder-{}-{}", r.id, r.attempt_count))
                        .push_bind(at)
                        .push_bind(at);
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        // Every reminder its own number (`seeded_phone`), as in real life: the
        // dashboard's search looks reminders up by number.
        let mut n = 0u64;
        for chunk in rows.chunks(PER_STATEMENT) {
            let mut tx = conn.begin().await?;
            let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                "INSERT INTO reminders (id, customer_name, phone_number, timezone, language, \
                 amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
                 next_attempt_at, last_attempt_at, metadata, created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                n += 1;
                let created = ms(r.last_attempt_at.unwrap_or(Utc::now()) - Duration::hours(1));
                b.push_bind(r.id.to_string())
                    .push_bind("Bench Customer")
                    .push_bind(seeded_phone(n))
                    .push_bind("America/New_York")
                    .push_bind("en")
                    .push_bind(12_345i64)
                    .push_bind("USD")
                    .push_bind("2026-12-01")
                    .push_bind(r.status)
                    .push_bind(r.attempt_count)
                    .push_bind(3i32)
                    .push_bind(r.next_attempt_at.map(ms))
                    .push_bind(r.last_attempt_at.map(ms))
                    .push_bind("{}")
                    .push_bind(created)
                    .push_bind(created);
            });
            qb.build().execute(&mut *tx).await?;
            let with_attempts: Vec<&Row> = chunk.iter().filter(|r| r.attempt_count > 0).collect();
            if !with_attempts.is_empty() {
                let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                    "INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, updated_at) ",
                );
                qb.push_values(with_attempts, |mut b, r| {
                    let at = ms(r.last_attempt_at.unwrap_or_else(Utc::now));
                    b.push_bind(r.id.to_string())
                        .push_bind(r.attempt_count)
                        .push_bind(attempt_status(r.status))
                        .push_bind(format!("reminder-{}-{}", r.id, r.attempt_count))
                        .push_bind(at)
                        .push_bind(at);
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// The status of the latest attempt of a reminder in `status`.
fn attempt_status(status: &str) -> &'static str {
    match status {
        "in_progress" => "in_progress",
        "processing" => "processing",
        "completed" => "completed",
        _ => "failed",
    }
}
