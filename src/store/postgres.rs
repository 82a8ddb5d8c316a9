//! PostgreSQL: for several service instances on one database. Each operation
//! is one statement (or one short transaction) with `synchronous_commit=on`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{
    Applied, Created, Deferral, EventRecord, ListQuery, Page, RawAttempt, RawReminder, Store,
    StoreError, DUE, LIVE,
};
use crate::policy::{cap_period, WEEKLY_ATTEMPT_CAP};
use crate::reminder::{Attempt, AttemptWrite, Change, NewReminder, Reminder, ReminderId};

/// JSON for a JSONB parameter.
fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

const REMINDER_COLS: &str = "id, external_id, customer_name, phone_number, timezone, language, \
     amount_due_minor, currency, due_date, status, attempt_count, max_attempts, next_attempt_at, \
     last_attempt_at, skip_reason, outcome, metadata, created_at, updated_at";

/// The advisory lock claimers take, one at a time ("duecall" in ASCII).
const CLAIM_LOCK: i64 = 0x0064_7565_6361_6c6c;

pub struct PgStore {
    pool: PgPool,
}

fn reminder_from_row(row: &PgRow) -> Result<Reminder, StoreError> {
    RawReminder {
        id: row.try_get("id")?,
        external_id: row.try_get("external_id")?,
        customer_name: row.try_get("customer_name")?,
        phone_number: row.try_get("phone_number")?,
        timezone: row.try_get("timezone")?,
        language: row.try_get("language")?,
        amount_due_minor: row.try_get("amount_due_minor")?,
        currency: row.try_get("currency")?,
        due_date: row.try_get("due_date")?,
        status: row.try_get("status")?,
        attempt_count: i64::from(row.try_get::<i32, _>("attempt_count")?),
        max_attempts: i64::from(row.try_get::<i32, _>("max_attempts")?),
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        skip_reason: row.try_get("skip_reason")?,
        outcome: row.try_get("outcome")?,
        metadata: row.try_get("metadata")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    }
    .into_reminder()
}

fn attempt_from_row(row: &PgRow) -> Result<Attempt, StoreError> {
    RawAttempt {
        attempt: i64::from(row.try_get::<i32, _>("attempt")?),
        status: row.try_get("status")?,
        room_name: row.try_get("room_name")?,
        dispatched_at: row.try_get("dispatched_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        outcome: row.try_get("outcome")?,
        failure: row.try_get("failure")?,
    }
    .into_attempt()
}

fn due_sql() -> String {
    format!(
        "SELECT {REMINDER_COLS} FROM reminders \
         WHERE {DUE} AND next_attempt_at <= $1 AND attempt_count < max_attempts \
         ORDER BY next_attempt_at, id LIMIT $2"
    )
}

fn overdue_sql() -> String {
    let cols = REMINDER_COLS
        .split(", ")
        .map(|c| format!("r.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {cols} FROM reminders r \
         LEFT JOIN attempts a ON a.reminder_id = r.id AND a.attempt = r.attempt_count \
         WHERE (r.status = 'in_progress' AND r.last_attempt_at <= $1) \
            OR (r.status = 'processing' AND r.last_attempt_at <= $2 \
                AND COALESCE(a.answered_at, r.last_attempt_at) <= $2) \
         ORDER BY r.last_attempt_at, r.id LIMIT $3"
    )
}

fn count_live_sql() -> String {
    format!("SELECT COUNT(*) FROM reminders WHERE {LIVE}")
}

impl PgStore {
    /// Connect to the server `url` names and migrate it. Concurrent instances
    /// migrating at once are serialised by sqlx's advisory lock.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_reminder(
        &self,
        new: &NewReminder,
        id: ReminderId,
        now: DateTime<Utc>,
    ) -> Result<Created, StoreError> {
        let r = new.clone().into_reminder(id, now);
        // One round trip: insert unless the external_id exists, else return the existing row.
        // A concurrent insert of the same external_id waits for the other's commit, then
        // finds nothing to insert; the fallback SELECT sees the committed row.
        let row = sqlx::query(&format!(
            "WITH ins AS ( \
               INSERT INTO reminders (id, external_id, customer_name, phone_number, timezone, \
                 language, amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
                 next_attempt_at, metadata, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
               ON CONFLICT (external_id) DO NOTHING \
               RETURNING {REMINDER_COLS}, true AS created) \
             SELECT * FROM ins"
        ))
        .bind(r.id.as_uuid())
        .bind(&r.external_id)
        .bind(&r.customer_name)
        .bind(r.phone_number.as_str())
        .bind(r.timezone.name())
        .bind(r.language.as_str())
        .bind(r.amount_due_minor)
        .bind(r.currency.as_str())
        .bind(r.due_date)
        .bind(r.status.as_str())
        .bind(r.attempt_count as i32)
        .bind(r.max_attempts as i32)
        .bind(r.next_attempt_at)
        .bind(serde_json::Value::Object(r.metadata.clone()))
        .bind(r.created_at)
        .bind(r.updated_at)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(Created::New(reminder_from_row(&row)?));
        }
        let row = sqlx::query(&format!(
            "SELECT {REMINDER_COLS} FROM reminders WHERE external_id = $1"
        ))
        .bind(&r.external_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Created::Existing(reminder_from_row(&row)?))
    }

    async fn get_reminder(&self, id: ReminderId) -> Result<Option<Reminder>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REMINDER_COLS} FROM reminders WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(reminder_from_row).transpose()
    }

    async fn get_attempt(
        &self,
        id: ReminderId,
        attempt: u32,
    ) -> Result<Option<Attempt>, StoreError> {
        let row = sqlx::query(
            "SELECT attempt, status, room_name, dispatched_at, answered_at, ended_at, outcome, failure \
             FROM attempts WHERE reminder_id = $1 AND attempt = $2",
        )
        .bind(id.as_uuid())
        .bind(attempt as i32)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    async fn list_attempts(&self, id: ReminderId) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, status, room_name, dispatched_at, answered_at, ended_at, outcome, failure \
             FROM attempts WHERE reminder_id = $1 ORDER BY attempt",
        )
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn list_reminders(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {REMINDER_COLS} FROM reminders WHERE true"));
        if let Some(status) = query.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(after) = query.after {
            qb.push(" AND (created_at, id) < (")
                .push_bind(after.created_at)
                .push(", ")
                .push_bind(after.id.as_uuid())
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(query.limit) + 1);
        let rows = qb.build().fetch_all(&self.pool).await?;
        let reminders = rows
            .iter()
            .map(reminder_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Page::from_rows(reminders, query.limit))
    }

    async fn apply(
        &self,
        change: &Change,
        event: Option<&EventRecord>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(ev) = event {
            let inserted = sqlx::query(
                "INSERT INTO events (webhook_id, reminder_id, attempt, event_type, occurred_at, \
                 received_at, applied, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (webhook_id) DO NOTHING",
            )
            .bind(&ev.webhook_id)
            .bind(ev.reminder_id.as_uuid())
            .bind(ev.attempt.map(|a| a as i32))
            .bind(ev.event_type.as_str())
            .bind(ev.occurred_at)
            .bind(ev.received_at)
            .bind(ev.applied)
            .bind(&ev.payload)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(Applied::Duplicate);
            }
        }

        let id = change.reminder_id.as_uuid();
        let guarded = match &change.reminder {
            Some(u) => sqlx::query(
                "UPDATE reminders SET status = $1, attempt_count = $2, next_attempt_at = $3, \
                 last_attempt_at = $4, skip_reason = $5, outcome = COALESCE($6, outcome), updated_at = $7 \
                 WHERE id = $8 AND status = $9 AND attempt_count = $10",
            )
            .bind(u.status.as_str())
            .bind(u.attempt_count as i32)
            .bind(u.next_attempt_at)
            .bind(u.last_attempt_at)
            .bind(&u.skip_reason)
            .bind(u.outcome.as_ref().map(to_json))
            .bind(change.at)
            .bind(id)
            .bind(change.expect_status.as_str())
            .bind(change.expect_attempt as i32)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            // The row lock keeps a racing writer out until this transaction ends.
            None => sqlx::query(
                "SELECT 1 FROM reminders WHERE id = $1 AND status = $2 AND attempt_count = $3 FOR UPDATE",
            )
            .bind(id)
            .bind(change.expect_status.as_str())
            .bind(change.expect_attempt as i32)
            .fetch_optional(&mut *tx)
            .await?
            .map_or(0, |_| 1),
        };
        if guarded == 0 {
            tx.rollback().await?;
            return Ok(match self.get_reminder(change.reminder_id).await? {
                Some(_) => Applied::Stale,
                None => Applied::NotFound,
            });
        }

        let attempt_written = match &change.attempt {
            None => 1,
            Some(AttemptWrite::Start { attempt, room_name }) => sqlx::query(
                "INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, updated_at) \
                 VALUES ($1, $2, 'in_progress', $3, $4, $4) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(*attempt as i32)
            .bind(room_name)
            .bind(change.at)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            Some(AttemptWrite::Update {
                attempt,
                expect_status,
                status,
                answered_at,
                ended_at,
                outcome,
                failure,
            }) => sqlx::query(
                "UPDATE attempts SET status = $1, answered_at = COALESCE(answered_at, $2), \
                 ended_at = COALESCE(ended_at, $3), outcome = COALESCE(outcome, $4), \
                 failure = COALESCE(failure, $5), updated_at = $6 \
                 WHERE reminder_id = $7 AND attempt = $8 AND status = $9",
            )
            .bind(status.as_str())
            .bind(*answered_at)
            .bind(*ended_at)
            .bind(outcome.as_ref().map(to_json))
            .bind(failure.as_ref().map(to_json))
            .bind(change.at)
            .bind(id)
            .bind(*attempt as i32)
            .bind(expect_status.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if attempt_written == 0 {
            tx.rollback().await?;
            return Ok(Applied::Stale);
        }

        let row = sqlx::query(&format!(
            "SELECT {REMINDER_COLS} FROM reminders WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let now = reminder_from_row(&row)?;
        tx.commit().await?;
        Ok(Applied::Done(Box::new(now)))
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Reminder>, StoreError> {
        let rows = sqlx::query(&due_sql())
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(reminder_from_row).collect()
    }

    async fn defer(&self, deferrals: &[Deferral], now: DateTime<Utc>) -> Result<u64, StoreError> {
        if deferrals.is_empty() {
            return Ok(0);
        }
        let ids: Vec<uuid::Uuid> = deferrals.iter().map(|d| d.id.as_uuid()).collect();
        let from: Vec<DateTime<Utc>> = deferrals.iter().map(|d| d.from).collect();
        let to: Vec<DateTime<Utc>> = deferrals.iter().map(|d| d.to).collect();
        let moved = sqlx::query(&format!(
            "UPDATE reminders r SET next_attempt_at = v.next_at, updated_at = $4 \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS v(id, from_at, next_at) \
             WHERE r.id = v.id AND r.{DUE} AND r.next_attempt_at = v.from_at"
        ))
        .bind(ids)
        .bind(from)
        .bind(to)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(moved)
    }

    async fn claim(
        &self,
        ids: &[ReminderId],
        now: DateTime<Utc>,
        max_live: u32,
    ) -> Result<Vec<Reminder>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let mut tx = self.pool.begin().await?;
        // Claimers queue here for the few milliseconds a claim takes, so the
        // live count below includes every claim committed before this one: the
        // concurrency cap holds across instances. Row locks (SKIP LOCKED) keep
        // claims clear of webhook and cancel writers without waiting on them.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&format!(
            "WITH picked AS ( \
               SELECT id FROM reminders r \
               WHERE id = ANY($1) AND {DUE} AND next_attempt_at <= $2 \
                 AND attempt_count < max_attempts \
                 AND (attempt_count < $3 OR (SELECT COUNT(*) FROM attempts a \
                      WHERE a.reminder_id = r.id AND a.dispatched_at > $4) < $3) \
               ORDER BY next_attempt_at, id \
               LIMIT GREATEST(0, $5 - (SELECT COUNT(*) FROM reminders WHERE {LIVE})) \
               FOR UPDATE SKIP LOCKED), \
             claimed AS ( \
               UPDATE reminders r SET status = 'in_progress', attempt_count = r.attempt_count + 1, \
                 next_attempt_at = NULL, last_attempt_at = $2, skip_reason = NULL, updated_at = $2 \
               FROM picked WHERE r.id = picked.id \
               RETURNING r.*), \
             started AS ( \
               INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, updated_at) \
               SELECT id, attempt_count, 'in_progress', \
                 'reminder-' || id::text || '-' || attempt_count::text, $2, $2 FROM claimed) \
             SELECT {REMINDER_COLS} FROM claimed"
        ))
        .bind(ids)
        .bind(now)
        .bind(WEEKLY_ATTEMPT_CAP as i32)
        .bind(now - cap_period())
        .bind(i64::from(max_live))
        .fetch_all(&mut *tx)
        .await?;
        let claimed = rows
            .iter()
            .map(reminder_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn overdue(
        &self,
        dispatched_by: DateTime<Utc>,
        answered_by: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Reminder>, StoreError> {
        let rows = sqlx::query(&overdue_sql())
            .bind(dispatched_by)
            .bind(answered_by)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(reminder_from_row).collect()
    }

    async fn count_live(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&count_live_sql())
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn query_plans(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let lines = |rows: Vec<PgRow>| -> Result<String, StoreError> {
            let mut out = Vec::new();
            for row in rows {
                let line: String = row.try_get(0)?;
                out.push(line);
            }
            Ok(out.join("\n"))
        };
        let explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON)";
        let due = sqlx::query(&format!("{explain} {}", due_sql()))
            .bind(now)
            .bind(500i64)
            .fetch_all(&self.pool)
            .await?;
        let overdue = sqlx::query(&format!("{explain} {}", overdue_sql()))
            .bind(now)
            .bind(now)
            .bind(200i64)
            .fetch_all(&self.pool)
            .await?;
        let live = sqlx::query(&format!("{explain} {}", count_live_sql()))
            .fetch_all(&self.pool)
            .await?;
        Ok(vec![
            ("due", lines(due)?),
            ("overdue", lines(overdue)?),
            ("count_live", lines(live)?),
        ])
    }

    async fn count_events(&self, id: ReminderId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE reminder_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }
}
