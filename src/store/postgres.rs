//! PostgreSQL: for several service instances on one database. Each operation
//! is one statement (or one short transaction) with `synchronous_commit=on`,
//! except events: `ingest` is group commit — a few writer tasks each take the
//! events waiting, lock their reminders in id order in one read, decide and
//! write each (a job that fails leaves no trace: the batch is done again
//! with a savepoint per job), and commit them together, answering only after
//! the commit (`writer`).

mod actions;
mod batch;
mod glance;
mod notices;
mod payments;
mod promises;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::status_counts;
use super::{
    reminder_cols_of, Applied, ClaimReport, Created, Decide, Deferral, EventRecord, Ingested,
    ListQuery, Page, RawAttempt, RawPromise, RawReminder, Store, StoreError, COUNT_BY_STATUS, DUE,
    JOINED_ATTEMPT_COLS, LIVE, REMINDER_COLS,
};
use super::{Delivery, NoticePage, NoticeQuery, NoticeStats, Notification, TryRecord};
use super::{Suppressed, SuppressionCursor, SuppressionPage, SUPPRESSION_COLS};
use crate::domain::Status;
use crate::domain::{Attempt, AttemptWrite, Change, NewReminder, Reminder, ReminderId};
use std::collections::{HashMap, HashSet};

use crate::domain::{
    plan_claims, ClaimAction, PastAttempt, Rules, SKIP_NO_LAWFUL_TIME, SKIP_SUPPRESSED,
};
use crate::domain::{
    PhoneNumber, Reason, SuppressNumber, Suppression, SuppressionAction, SuppressionAudit,
};

/// JSON for a JSONB parameter.
fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// How long a request waits for a connection (see `connect`).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The advisory lock claimers take, one at a time ("duecall" in ASCII).
const CLAIM_LOCK: i64 = 0x0064_7565_6361_6c6c;

pub struct PgStore {
    pool: PgPool,
    writers: writer::Writers,
    /// Every change writes the notifications it causes (SPEC §9).
    notify: bool,
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
        amount_paid_minor: row.try_get("amount_paid_minor")?,
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
        debt_ref: row.try_get("debt_ref")?,
        region: row.try_get("region")?,
        calling_zones: row.try_get("calling_zones")?,
        timezone_given: row.try_get("timezone_given")?,
        deferred_by: row.try_get("deferred_by")?,
        promise: RawPromise {
            amount_minor: row.try_get("promise_amount_minor")?,
            date: row.try_get("promise_date")?,
            status: row.try_get("promise_status")?,
            opened_at: row.try_get("promise_opened_at")?,
            deadline: row.try_get("promise_deadline")?,
            decided_at: row.try_get("promise_decided_at")?,
            follow_up_id: row.try_get("promise_follow_up_id")?,
        },
        follow_up_of: row.try_get("follow_up_of")?,
    }
    .into_reminder()
}

fn attempt_from_row(row: &PgRow) -> Result<Attempt, StoreError> {
    attempt_cols(row, "")
}

/// An attempt from columns named with `prefix` (`""`, or `"a_"` in a join).
fn attempt_cols(row: &PgRow, prefix: &str) -> Result<Attempt, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    RawAttempt {
        attempt: i64::from(row.try_get::<i32, _>(col("attempt").as_str())?),
        status: row.try_get(col("status").as_str())?,
        room_name: row.try_get(col("room_name").as_str())?,
        dispatched_at: row.try_get(col("dispatched_at").as_str())?,
        answered_at: row.try_get(col("answered_at").as_str())?,
        ended_at: row.try_get(col("ended_at").as_str())?,
        outcome: row.try_get(col("outcome").as_str())?,
        failure: row.try_get(col("failure").as_str())?,
    }
    .into_attempt()
}

/// A reminder and one of its attempts (`attempt`, or the current one), in one
/// read; with `lock`, the reminder locked for this transaction (`FOR UPDATE`).
async fn read_for_event(
    conn: &mut PgConnection,
    id: ReminderId,
    attempt: Option<u32>,
    lock: bool,
) -> Result<Option<(Reminder, Option<Attempt>)>, StoreError> {
    let cols = reminder_cols_of("r");
    let lock = if lock { " FOR UPDATE OF r" } else { "" };
    let row = sqlx::query(&format!(
        "SELECT {cols}, {JOINED_ATTEMPT_COLS} FROM reminders r \
         LEFT JOIN attempts a ON a.reminder_id = r.id \
           AND a.attempt = COALESCE($1, r.attempt_count) \
         WHERE r.id = $2{lock}"
    ))
    .bind(attempt.map(|a| a as i32))
    .bind(id.as_uuid())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let found: Option<i32> = row.try_get("a_attempt")?;
    let attempt = found.map(|_| attempt_cols(&row, "a_")).transpose()?;
    Ok(Some((reminder_from_row(&row)?, attempt)))
}

/// One statement, so one round trip: lock the reminder if it is still where
/// the decision saw it (and check its attempt), then — only then — record
/// the event (once per `webhook-id`), and — only if the event was new —
/// write the reminder and the attempt. Data-modifying CTEs run to
/// completion together, atomically, or not at all.
async fn apply_in(
    conn: &mut PgConnection,
    change: &Change,
    event: Option<&EventRecord>,
    notify: Notify<'_>,
) -> Result<Applied, StoreError> {
    let (applied, listed) = apply_stmt(&mut *conn, change, event).await?;
    if let Applied::Done(after) = &applied {
        match notify {
            Notify::Off => {}
            Notify::Now => notices::write_notices(conn, change, after, listed).await?,
            Notify::Later(pending) => pending.push(notices::Pending {
                change: change.clone(),
                after: (**after).clone(),
                listed,
            }),
        }
    }
    Ok(applied)
}

/// What a written change does about its notifications (SPEC §9).
pub(super) enum Notify<'a> {
    /// Nothing: notifications are off.
    Off,
    /// Write them now, in the change's transaction.
    Now,
    /// Keep them for the end of the batch's transaction, which writes every
    /// job's at once (`notices::write_pending`).
    Later(&'a mut Vec<notices::Pending>),
}

/// `apply_in` with or without notices, on a connection outside any
/// transaction: the change and its notices commit as one (a transaction of
/// their own when there are notices to write; the one statement otherwise).
async fn apply_alone(
    pool: &PgPool,
    change: &Change,
    event: Option<&EventRecord>,
    notify: bool,
) -> Result<Applied, StoreError> {
    if notify {
        let mut tx = pool.begin().await?;
        let applied = apply_in(&mut tx, change, event, Notify::Now).await?;
        tx.commit().await?;
        Ok(applied)
    } else {
        apply_in(&mut *pool.acquire().await?, change, event, Notify::Off).await
    }
}

/// The change as one statement; with it, whether it put a number on the
/// suppression list just now.
async fn apply_stmt(
    conn: &mut PgConnection,
    change: &Change,
    event: Option<&EventRecord>,
) -> Result<(Applied, bool), StoreError> {
    let id = change.reminder_id.as_uuid();
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "WITH target AS (SELECT {REMINDER_COLS} FROM reminders WHERE id = "
    ));
    q.push_bind(id)
        .push(" AND status = ")
        .push_bind(change.expect_status.as_str())
        .push(" AND attempt_count = ")
        .push_bind(change.expect_attempt as i32)
        .push(" FOR UPDATE), guard AS (");
    match &change.attempt {
        None => {
            q.push("SELECT 1 AS ok");
        }
        Some(AttemptWrite::Start { attempt, .. }) => {
            q.push("SELECT 1 AS ok WHERE NOT EXISTS (SELECT 1 FROM attempts WHERE reminder_id = ")
                .push_bind(id)
                .push(" AND attempt = ")
                .push_bind(*attempt as i32)
                .push(")");
        }
        Some(AttemptWrite::Update {
            attempt,
            expect_status,
            ..
        }) => {
            q.push("SELECT 1 AS ok FROM attempts WHERE reminder_id = ")
                .push_bind(id)
                .push(" AND attempt = ")
                .push_bind(*attempt as i32)
                .push(" AND status = ")
                .push_bind(expect_status.as_str())
                .push(" FOR UPDATE");
        }
    }
    q.push("), go AS (SELECT 1 AS ok FROM target, guard)");
    match event {
        Some(ev) => {
            q.push(
                ", ev AS (INSERT INTO events (webhook_id, reminder_id, attempt, event_type, \
                 occurred_at, received_at, applied, verdict, payload) SELECT ",
            );
            q.push_bind(&ev.webhook_id)
                .push(", ")
                .push_bind(ev.reminder_id.as_uuid())
                .push(", ")
                .push_bind(ev.attempt.map(|a| a as i32))
                .push(", ")
                .push_bind(ev.event_type.as_str())
                .push(", ")
                .push_bind(ev.occurred_at)
                .push(", ")
                .push_bind(ev.received_at)
                .push(", ")
                .push_bind(ev.applied)
                .push(", ")
                .push_bind(ev.verdict.as_str())
                .push(", ")
                .push_bind(&ev.payload)
                .push(
                    " FROM go ON CONFLICT (webhook_id) DO NOTHING RETURNING 1 AS ok), \
                     write AS (SELECT ok FROM ev)",
                );
        }
        None => {
            q.push(", write AS (SELECT ok FROM go)");
        }
    }
    if let Some(u) = &change.reminder {
        q.push(", rem AS (UPDATE reminders SET status = ")
            .push_bind(u.status.as_str())
            .push(", attempt_count = ")
            .push_bind(u.attempt_count as i32)
            .push(", next_attempt_at = ")
            .push_bind(u.next_attempt_at)
            .push(", last_attempt_at = ")
            .push_bind(u.last_attempt_at)
            .push(", skip_reason = ")
            .push_bind(&u.skip_reason)
            .push(", outcome = COALESCE(")
            .push_bind(u.outcome.as_ref().map(to_json))
            .push(", outcome), deferred_by = NULL, updated_at = ")
            .push_bind(change.at);
        if let Some(p) = &u.promise {
            // Only a completion that opens a promise writes these (SPEC §8).
            q.push(", promise_amount_minor = ")
                .push_bind(p.amount_minor)
                .push(", promise_date = ")
                .push_bind(p.date)
                .push(", promise_status = ")
                .push_bind(p.status.as_str())
                .push(", promise_opened_at = ")
                .push_bind(p.opened_at)
                .push(", promise_deadline = ")
                .push_bind(p.deadline)
                .push(", promise_decided_at = NULL, promise_follow_up_id = NULL");
        }
        q.push(" WHERE id = ").push_bind(id).push(format!(
            " AND EXISTS (SELECT 1 FROM write) RETURNING {REMINDER_COLS})"
        ));
    }
    match &change.attempt {
        None => {}
        Some(AttemptWrite::Start { attempt, room_name }) => {
            // The attempt counts against its debt (SPEC §7) whatever path started it.
            q.push(
                ", att AS (INSERT INTO attempts (reminder_id, attempt, status, room_name, \
                 dispatched_at, updated_at, debt_ref) SELECT ",
            )
            .push_bind(id)
            .push(", ")
            .push_bind(*attempt as i32)
            .push(", 'in_progress', ")
            .push_bind(room_name)
            .push(", ")
            .push_bind(change.at)
            .push(", ")
            .push_bind(change.at)
            .push(", target.debt_ref FROM write, target RETURNING 1)");
        }
        Some(AttemptWrite::Update {
            attempt,
            status,
            answered_at,
            ended_at,
            replace_end,
            outcome,
            failure,
            ..
        }) => {
            q.push(", att AS (UPDATE attempts SET status = ")
                .push_bind(status.as_str())
                .push(", answered_at = COALESCE(answered_at, ")
                .push_bind(*answered_at)
                .push("), ended_at = CASE WHEN ")
                .push_bind(*replace_end)
                .push(" THEN ")
                .push_bind(*ended_at)
                .push(" ELSE COALESCE(ended_at, ")
                .push_bind(*ended_at)
                .push(") END, outcome = COALESCE(outcome, ")
                .push_bind(outcome.as_ref().map(to_json))
                .push("), failure = COALESCE(failure, ")
                .push_bind(failure.as_ref().map(to_json))
                .push("), updated_at = ")
                .push_bind(change.at)
                .push(" WHERE reminder_id = ")
                .push_bind(id)
                .push(" AND attempt = ")
                .push_bind(*attempt as i32)
                .push(" AND EXISTS (SELECT 1 FROM write) RETURNING 1)");
        }
    }
    if let Some(add) = &change.suppress {
        // Only if the event row was written (a repeat adds nothing), and
        // only if the number is not on the list yet (then no audit row).
        q.push(
            ", sup AS (INSERT INTO suppressions (phone_number, reason, reminder_id, created_at) \
             SELECT ",
        )
        .push_bind(add.phone_number.as_str())
        .push(", ")
        .push_bind(add.reason.as_str())
        .push(", ")
        .push_bind(add.reminder_id.map(|r| r.as_uuid()))
        .push(", ")
        .push_bind(change.at)
        .push(
            " FROM write ON CONFLICT (phone_number) DO NOTHING \
             RETURNING phone_number, reason, reminder_id, created_at), \
             sup_audit AS (INSERT INTO suppression_audit (phone_number, action, reason, \
             reminder_id, at) SELECT phone_number, 'added', reason, reminder_id, created_at \
             FROM sup)",
        );
    }
    if let Some(record) = &change.action {
        actions::push_action_cte(&mut q, record, change.at);
    }
    q.push(" SELECT EXISTS (SELECT 1 FROM reminders WHERE id = ")
        .push_bind(id)
        .push(
            ") AS found, EXISTS (SELECT 1 FROM go) AS guarded, \
             EXISTS (SELECT 1 FROM write) AS written, ",
        )
        .push(if change.suppress.is_some() {
            "EXISTS (SELECT 1 FROM sup) AS listed, "
        } else {
            "false AS listed, "
        })
        .push("s.* FROM (SELECT 1) AS one LEFT JOIN ")
        .push(if change.reminder.is_some() {
            "rem"
        } else {
            "target"
        })
        .push(" AS s ON true");
    let row = q.build().fetch_one(conn).await?;
    let found: bool = row.try_get("found")?;
    let guarded: bool = row.try_get("guarded")?;
    let written: bool = row.try_get("written")?;
    let listed: bool = row.try_get("listed")?;
    let applied = match (guarded, written) {
        (false, _) if found => Applied::Stale,
        (false, _) => Applied::NotFound,
        (true, false) => Applied::Duplicate,
        (true, true) => Applied::Done(Box::new(reminder_from_row(&row)?)),
    };
    Ok((applied, listed))
}

fn due_sql() -> String {
    format!(
        "SELECT {REMINDER_COLS} FROM reminders \
         WHERE {DUE} AND next_attempt_at <= $1 AND attempt_count < max_attempts \
         ORDER BY next_attempt_at, id LIMIT $2"
    )
}

fn overdue_sql() -> String {
    // The answer time is looked up per live row (a correlated subquery on the
    // attempts' primary key): a join lets the planner, short of statistics
    // (after a bulk load), hash the whole attempts table instead.
    format!(
        "SELECT {REMINDER_COLS} FROM reminders r \
         WHERE r.{LIVE} AND ( \
           (r.status = 'in_progress' AND r.last_attempt_at <= $1) \
           OR (r.status = 'processing' AND r.last_attempt_at <= $2 \
               AND COALESCE((SELECT a.answered_at FROM attempts a \
                             WHERE a.reminder_id = r.id AND a.attempt = r.attempt_count), \
                            r.last_attempt_at) <= $2)) \
         ORDER BY r.last_attempt_at, r.id LIMIT $3"
    )
}

/// The claim's candidates: those of `$1` still due at `$2`, earliest first,
/// locked (rows another writer holds are skipped).
fn claim_candidates_sql() -> String {
    format!(
        "SELECT {REMINDER_COLS} FROM reminders \
         WHERE id = ANY($1) AND {DUE} AND next_attempt_at <= $2 \
           AND attempt_count < max_attempts \
         ORDER BY next_attempt_at, id FOR UPDATE SKIP LOCKED"
    )
}

/// The frequency caps' and the quiet period's facts: the debts `$1`'s
/// attempts since `$2` (through `attempts_debt`).
const CLAIM_HISTORY_SQL: &str = "SELECT reminder_id, attempt, debt_ref, dispatched_at, ended_at, \
       outcome->>'result' AS result \
     FROM attempts WHERE debt_ref = ANY($1) AND dispatched_at > $2";

/// The suppression list's answer for the numbers `$1`.
const CLAIM_SUPPRESSED_SQL: &str =
    "SELECT phone_number FROM suppressions WHERE phone_number = ANY($1)";

/// Start the next attempt of every reminder in `$1` at `$2`, with its attempt row.
fn claim_start_sql() -> String {
    format!(
        "WITH claimed AS ( \
           UPDATE reminders r SET status = 'in_progress', attempt_count = r.attempt_count + 1, \
             next_attempt_at = NULL, last_attempt_at = $2, skip_reason = NULL, \
             deferred_by = NULL, updated_at = $2 \
           WHERE r.id = ANY($1) \
           RETURNING r.*), \
         started AS ( \
           INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, \
             updated_at, debt_ref) \
           SELECT id, attempt_count, 'in_progress', \
             'reminder-' || id::text || '-' || attempt_count::text, $2, $2, debt_ref \
           FROM claimed) \
         SELECT {REMINDER_COLS} FROM claimed ORDER BY next_attempt_at, id"
    )
}

/// Defer each reminder of `$1` to its time in `$2`, by its rule in `$3`.
const CLAIM_DEFER_SQL: &str =
    "UPDATE reminders r SET next_attempt_at = v.next_at, deferred_by = v.rule, \
       updated_at = $4 \
     FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[]) AS v(id, next_at, rule) \
     WHERE r.id = v.id";

/// Cancel or fail each reminder of `$1` (status `$2`, reason `$3`).
const CLAIM_END_SQL: &str = "UPDATE reminders r SET status = v.status, skip_reason = v.reason, \
       next_attempt_at = NULL, deferred_by = NULL, updated_at = $4 \
     FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS v(id, status, reason) \
     WHERE r.id = v.id";

fn count_live_sql() -> String {
    format!("SELECT COUNT(*) FROM reminders WHERE {LIVE}")
}

impl PgStore {
    /// Connect to the server `url` names and migrate it. Concurrent instances
    /// migrating at once are serialised by sqlx's advisory lock.
    /// With `notify`, every change writes its notifications (SPEC §9).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        notify: bool,
    ) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // While PostgreSQL is down sqlx keeps trying until this deadline:
            // keep it short, so a request answers 500 (and the agent retries)
            // well before the agent's own 5 s timeout, instead of hanging.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let writers = writer::Writers::start(&pool, notify);
        Ok(Self {
            pool,
            writers,
            notify,
        })
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
                 next_attempt_at, metadata, created_at, updated_at, skip_reason, \
                 debt_ref, region, calling_zones, timezone_given) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20, $21) \
               ON CONFLICT (external_id) DO NOTHING \
               RETURNING {REMINDER_COLS}, true AS created) \
             SELECT * FROM ins"
        ))
        .bind(r.id.as_uuid())
        .bind(&r.external_id)
        .bind(&r.customer_name)
        .bind(r.phone_number.as_str())
        .bind(r.primary_zone().name())
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
        .bind(&r.skip_reason)
        .bind(&r.debt_ref)
        .bind(r.region.as_ref().map(|g| g.as_str().to_owned()))
        .bind(r.calling_zones.iter().map(|z| z.name()).collect::<Vec<_>>())
        .bind(r.timezone.is_some())
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

    async fn get_reminder_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<Reminder>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REMINDER_COLS} FROM reminders WHERE external_id = $1"
        ))
        .bind(external_id)
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

    async fn get_for_event(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
    ) -> Result<Option<(Reminder, Option<Attempt>)>, StoreError> {
        read_for_event(&mut *self.pool.acquire().await?, id, attempt, false).await
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
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("");
        match &query.search {
            None => {
                qb.push(format!("SELECT {REMINDER_COLS} FROM reminders WHERE true"));
            }
            // The search's matches first, each through its own index, then the
            // rest of the list on those few rows. (As one `OR` beside the ORDER
            // BY, a planner without fresh statistics walked the newest-first
            // index over the whole table: 1.5 s at a million rows.)
            Some(text) => {
                qb.push("WITH found AS MATERIALIZED (SELECT * FROM reminders WHERE external_id = ")
                    .push_bind(text.clone())
                    .push(" UNION ALL SELECT * FROM reminders WHERE phone_number = ")
                    .push_bind(text.clone())
                    .push(" AND external_id IS DISTINCT FROM ")
                    .push_bind(text.clone())
                    .push(format!(") SELECT {REMINDER_COLS} FROM found WHERE true"));
            }
        }
        if let Some(status) = query.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(after) = &query.after {
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
        apply_alone(&self.pool, change, event, self.notify).await
    }

    async fn ingest(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
        decide: Box<Decide>,
    ) -> Result<Option<Ingested>, StoreError> {
        self.writers.ingest(id, attempt, decide).await
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
        rules: &Rules,
    ) -> Result<ClaimReport, StoreError> {
        if ids.is_empty() {
            return Ok(ClaimReport::default());
        }
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let mut tx = self.pool.begin().await?;
        // Claimers queue here for the few milliseconds a claim takes, so the
        // facts read below (the live count, each debt's attempts) include
        // every claim committed before this one: the concurrency cap and the
        // frequency caps hold across instances. Row locks (SKIP LOCKED) keep
        // claims clear of webhook and cancel writers without waiting on them.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&claim_candidates_sql())
            .bind(&ids)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let candidates = rows
            .iter()
            .map(reminder_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if candidates.is_empty() {
            tx.commit().await?;
            return Ok(ClaimReport::default());
        }
        let live: i64 = sqlx::query_scalar(&count_live_sql())
            .fetch_one(&mut *tx)
            .await?;
        let debt_refs: Vec<&str> = candidates.iter().map(|r| r.debt_ref.as_str()).collect();
        let attempts = sqlx::query(CLAIM_HISTORY_SQL)
            .bind(&debt_refs)
            .bind(now - rules.lookback())
            .fetch_all(&mut *tx)
            .await?;
        let mut debts: HashMap<String, Vec<PastAttempt>> = HashMap::new();
        for row in &attempts {
            let debt: String = row.try_get("debt_ref")?;
            let result: Option<String> = row.try_get("result")?;
            debts.entry(debt).or_default().push(PastAttempt {
                reminder_id: ReminderId::from_uuid(row.try_get("reminder_id")?),
                attempt: row.try_get::<i32, _>("attempt")? as u32,
                dispatched_at: row.try_get("dispatched_at")?,
                ended_at: row.try_get("ended_at")?,
                result: result.and_then(|r| r.parse().ok()),
            });
        }
        let phones: Vec<&str> = candidates.iter().map(|r| r.phone_number.as_str()).collect();
        let suppressed: HashSet<String> = sqlx::query_scalar(CLAIM_SUPPRESSED_SQL)
            .bind(&phones)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let slots = (i64::from(max_live) - live).max(0) as usize;
        let plan = plan_claims(rules, &candidates, &mut debts, &suppressed, slots, now);

        let mut report = ClaimReport::default();
        let mut claim_ids = Vec::new();
        let (mut defer_ids, mut defer_at, mut defer_by) = (Vec::new(), Vec::new(), Vec::new());
        let (mut end_ids, mut end_status, mut end_reason) = (Vec::new(), Vec::new(), Vec::new());
        for (id, action) in &plan {
            match action {
                ClaimAction::Claim => claim_ids.push(id.as_uuid()),
                ClaimAction::Defer { until, by } => {
                    defer_ids.push(id.as_uuid());
                    defer_at.push(*until);
                    defer_by.push(by.as_str());
                    report.deferred.push((*id, *by));
                }
                ClaimAction::CancelSuppressed => {
                    end_ids.push(id.as_uuid());
                    end_status.push(Status::Cancelled.as_str());
                    end_reason.push(SKIP_SUPPRESSED);
                    report.suppressed.push(*id);
                }
                ClaimAction::FailNoLawfulTime => {
                    end_ids.push(id.as_uuid());
                    end_status.push(Status::Failed.as_str());
                    end_reason.push(SKIP_NO_LAWFUL_TIME);
                    report.no_lawful_time.push(*id);
                }
            }
        }
        if !claim_ids.is_empty() {
            let rows = sqlx::query(&claim_start_sql())
                .bind(&claim_ids)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            report.claimed = rows
                .iter()
                .map(reminder_from_row)
                .collect::<Result<Vec<_>, _>>()?;
        }
        if !defer_ids.is_empty() {
            sqlx::query(CLAIM_DEFER_SQL)
                .bind(&defer_ids)
                .bind(&defer_at)
                .bind(&defer_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        if !end_ids.is_empty() {
            let ended = sqlx::query(&format!(
                "{CLAIM_END_SQL} RETURNING {}",
                reminder_cols_of("r")
            ))
            .bind(&end_ids)
            .bind(&end_status)
            .bind(&end_reason)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if self.notify {
                for row in &ended {
                    let r = reminder_from_row(row)?;
                    if let Some(kind) = crate::domain::ended_by_claim(&r) {
                        let notice = crate::domain::Notice::about_reminder(kind, now, &r, None);
                        notices::insert_notice(&mut tx, &notice).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(report)
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

    async fn count_by_status(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(COUNT_BY_STATUS)
            .fetch_all(&self.pool)
            .await?;
        status_counts(rows)
    }

    async fn query_plans(
        &self,
        now: DateTime<Utc>,
        rules: &Rules,
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
        let counts = sqlx::query(&format!("{explain} {NOTICE_COUNTS}"))
            .fetch_all(&self.pool)
            .await?;
        let oldest = sqlx::query(&format!("{explain} {OLDEST_PENDING}"))
            .fetch_all(&self.pool)
            .await?;
        // The claim's own statements, for the batch a tick would claim now,
        // run (ANALYZE) in a transaction that is rolled back: nothing stays.
        let batch = self.due(now, crate::scheduler::BATCH).await?;
        let ids: Vec<uuid::Uuid> = batch.iter().map(|r| r.id.as_uuid()).collect();
        let debts: Vec<&str> = batch.iter().map(|r| r.debt_ref.as_str()).collect();
        let phones: Vec<&str> = batch.iter().map(|r| r.phone_number.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        let candidates = sqlx::query(&format!("{explain} {}", claim_candidates_sql()))
            .bind(&ids)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let history = sqlx::query(&format!("{explain} {CLAIM_HISTORY_SQL}"))
            .bind(&debts)
            .bind(now - rules.lookback())
            .fetch_all(&mut *tx)
            .await?;
        let suppressed = sqlx::query(&format!("{explain} {CLAIM_SUPPRESSED_SQL}"))
            .bind(&phones)
            .fetch_all(&mut *tx)
            .await?;
        let start = sqlx::query(&format!("{explain} {}", claim_start_sql()))
            .bind(&ids)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let later: Vec<DateTime<Utc>> = ids.iter().map(|_| now).collect();
        let rule: Vec<&str> = ids.iter().map(|_| "window").collect();
        let defer = sqlx::query(&format!("{explain} {CLAIM_DEFER_SQL}"))
            .bind(&ids)
            .bind(&later)
            .bind(&rule)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let status: Vec<&str> = ids.iter().map(|_| Status::Cancelled.as_str()).collect();
        let reason: Vec<&str> = ids.iter().map(|_| SKIP_SUPPRESSED).collect();
        let end = sqlx::query(&format!("{explain} {CLAIM_END_SQL}"))
            .bind(&ids)
            .bind(&status)
            .bind(&reason)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(vec![
            ("due", lines(due)?),
            ("overdue", lines(overdue)?),
            ("count_live", lines(live)?),
            ("notice_counts", lines(counts)?),
            ("oldest_pending", lines(oldest)?),
            ("claim: candidates", lines(candidates)?),
            (
                "claim: frequency and quiet period (debts' attempts)",
                lines(history)?,
            ),
            ("claim: suppression list", lines(suppressed)?),
            ("claim: start the attempts", lines(start)?),
            ("claim: defer", lines(defer)?),
            ("claim: cancel or fail", lines(end)?),
        ])
    }

    async fn get_event(&self, webhook_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT webhook_id, reminder_id, attempt, event_type, occurred_at, received_at, \
             applied, verdict, payload FROM events WHERE webhook_id = $1",
        )
        .bind(webhook_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let attempt: Option<i32> = row.try_get("attempt")?;
        let event_type: String = row.try_get("event_type")?;
        let applied: bool = row.try_get("applied")?;
        let verdict: Option<String> = row.try_get("verdict")?;
        Ok(Some(EventRecord {
            webhook_id: row.try_get("webhook_id")?,
            reminder_id: ReminderId::from_uuid(row.try_get("reminder_id")?),
            attempt: attempt.map(|a| a as u32),
            event_type: super::stored_event_type(&event_type)?,
            occurred_at: row.try_get("occurred_at")?,
            received_at: row.try_get("received_at")?,
            applied,
            verdict: super::stored_verdict(verdict.as_deref(), applied)?,
            payload: row.try_get("payload")?,
        }))
    }

    async fn count_events(&self, id: ReminderId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE reminder_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }
    /// One statement: insert unless there, the audit row only for an insert,
    /// and the entry as it stands either way. A concurrent add of the same
    /// number waits for the other's commit, then finds it there.
    async fn add_suppression_as(
        &self,
        add: &SuppressNumber,
        action: Option<&crate::domain::ActionRecord>,
        now: DateTime<Utc>,
    ) -> Result<Suppressed, StoreError> {
        // A transaction: the entry and its notification commit as one.
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "WITH ins AS ( \
               INSERT INTO suppressions (phone_number, reason, reminder_id, created_at) \
               VALUES ($1, $2, $3, $4) ON CONFLICT (phone_number) DO NOTHING \
               RETURNING {SUPPRESSION_COLS}), \
             aud AS (INSERT INTO suppression_audit (phone_number, action, reason, reminder_id, at) \
               SELECT phone_number, 'added', reason, reminder_id, created_at FROM ins) \
             SELECT {SUPPRESSION_COLS}, true AS added FROM ins"
        ))
        .bind(add.phone_number.as_str())
        .bind(add.reason.as_str())
        .bind(add.reminder_id.map(|r| r.as_uuid()))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let entry = suppression_from_row(&row)?;
            if self.notify {
                let notice = crate::domain::Notice::about_suppression(&entry);
                notices::insert_notice(&mut tx, &notice).await?;
            }
            if let Some(record) = action {
                actions::insert_action(&mut tx, record, now).await?;
            }
            tx.commit().await?;
            return Ok(Suppressed::New(entry));
        }
        tx.commit().await?;
        // There already (the statement's snapshot cannot see a row another
        // transaction committed while it waited, so read it afresh).
        let row = sqlx::query(&format!(
            "SELECT {SUPPRESSION_COLS} FROM suppressions WHERE phone_number = $1"
        ))
        .bind(add.phone_number.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Suppressed::Existing(suppression_from_row(&row)?)),
            // Removed in between: add it again.
            None => Box::pin(self.add_suppression_as(add, action, now)).await,
        }
    }

    async fn remove_suppression(
        &self,
        phone: &PhoneNumber,
        reason: &Reason,
        now: DateTime<Utc>,
    ) -> Result<Option<Suppression>, StoreError> {
        let row = sqlx::query(&format!(
            "WITH del AS (DELETE FROM suppressions WHERE phone_number = $1 \
               RETURNING {SUPPRESSION_COLS}), \
             aud AS (INSERT INTO suppression_audit (phone_number, action, reason, reminder_id, at) \
               SELECT phone_number, 'removed', $2, NULL, $3 FROM del) \
             SELECT {SUPPRESSION_COLS} FROM del"
        ))
        .bind(phone.as_str())
        .bind(reason.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(suppression_from_row).transpose()
    }

    async fn list_suppressions(
        &self,
        limit: u32,
        after: Option<&SuppressionCursor>,
    ) -> Result<SuppressionPage, StoreError> {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {SUPPRESSION_COLS} FROM suppressions WHERE true"
        ));
        if let Some(after) = after {
            qb.push(" AND (created_at, phone_number) < (")
                .push_bind(after.created_at)
                .push(", ")
                .push_bind(after.phone_number.as_str().to_owned())
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, phone_number DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = qb.build().fetch_all(&self.pool).await?;
        let entries = rows
            .iter()
            .map(suppression_from_row)
            .collect::<Result<_, _>>()?;
        Ok(SuppressionPage::from_rows(entries, limit))
    }

    async fn get_suppression(
        &self,
        phone: &PhoneNumber,
    ) -> Result<(Option<Suppression>, Vec<SuppressionAudit>), StoreError> {
        // One statement, one snapshot: the entry and its history agree.
        let rows = sqlx::query(
            "SELECT 'entry' AS kind, NULL::bigint AS id, NULL AS action, reason, reminder_id, \
               created_at AS at FROM suppressions WHERE phone_number = $1 \
             UNION ALL \
             SELECT 'audit', id, action, reason, reminder_id, at FROM suppression_audit \
               WHERE phone_number = $1 \
             ORDER BY kind DESC, at, id",
        )
        .bind(phone.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut entry = None;
        let mut history = Vec::new();
        for row in &rows {
            let kind: String = row.try_get("kind")?;
            let reason: String = row.try_get("reason")?;
            let reminder_id: Option<uuid::Uuid> = row.try_get("reminder_id")?;
            let reminder_id = reminder_id.map(ReminderId::from_uuid);
            let at: DateTime<Utc> = row.try_get("at")?;
            if kind == "entry" {
                entry = Some(Suppression {
                    phone_number: phone.clone(),
                    reason,
                    reminder_id,
                    created_at: at,
                });
            } else {
                let action: String = row.try_get("action")?;
                history.push(SuppressionAudit {
                    action: SuppressionAction::parse(&action).ok_or_else(|| {
                        StoreError::Corrupt(format!("suppression action {action:?}"))
                    })?,
                    reason,
                    reminder_id,
                    at,
                });
            }
        }
        Ok((entry, history))
    }

    async fn is_suppressed(&self, phone: &PhoneNumber) -> Result<bool, StoreError> {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM suppressions WHERE phone_number = $1)",
        )
        .bind(phone.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
    }

    async fn service_key(
        &self,
        name: &str,
        fresh: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, StoreError> {
        // The first instance's key wins. Two statements, so the read sees a key
        // another instance committed while the insert waited for it.
        sqlx::query(
            "INSERT INTO service_keys (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM service_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }

    async fn insert_session(
        &self,
        id: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO dashboard_sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(data)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn save_session(
        &self,
        id: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dashboard_sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id)
        .bind(data)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load_session(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        let row: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT data, expires_at FROM dashboard_sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n = sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    async fn record_payment(
        &self,
        id: ReminderId,
        payment: &crate::domain::NewPayment,
        now: DateTime<Utc>,
    ) -> Result<Option<super::PaymentRecorded>, StoreError> {
        payments::record(&self.pool, id, payment, now, self.notify).await
    }

    async fn decide_promises(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<super::PromiseReport, StoreError> {
        promises::decide_due(&self.pool, now, limit, self.notify).await
    }

    async fn list_actions(
        &self,
        id: ReminderId,
    ) -> Result<Vec<crate::domain::ReminderAction>, StoreError> {
        sqlx::query(&format!(
            "SELECT {} FROM reminder_actions WHERE reminder_id = $1 ORDER BY at, id",
            super::ACTION_COLS
        ))
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(actions::action_from_row)
        .collect()
    }

    async fn list_payments(
        &self,
        id: ReminderId,
    ) -> Result<Vec<crate::domain::Payment>, StoreError> {
        sqlx::query(&format!(
            "SELECT {} FROM payments WHERE reminder_id = $1 ORDER BY id",
            payments::PAYMENT_COLS
        ))
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(payments::payment_from_row)
        .collect()
    }

    async fn lease_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        notices::lease(&self.pool, owner, now, until, limit).await
    }

    async fn record_tries(
        &self,
        owner: &str,
        tries: &[TryRecord],
    ) -> Result<Vec<bool>, StoreError> {
        notices::record(&self.pool, owner, tries).await
    }

    async fn list_notifications(&self, query: &NoticeQuery) -> Result<NoticePage, StoreError> {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("{} WHERE true", notices::select_notices()));
        if let Some(status) = query.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(id) = query.reminder_id {
            // Its subject: the reminder's notifications, the list entry its opt-out made included.
            qb.push(" AND subject = ").push_bind(id.to_string());
        }
        if let Some(after) = &query.after {
            // Ids are UUIDv7: in the order they were made, newest last.
            qb.push(" AND id < ").push_bind(after.id.clone());
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit) + 1);
        // One snapshot for the rows and their tries (a try recorded between
        // two reads would show a try its notification does not reflect yet).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = qb.build().fetch_all(&mut *tx).await?;
        let items = notices::with_tries(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(NoticePage::from_rows(items, query.limit))
    }

    async fn get_notification(&self, id: &str) -> Result<Option<Notification>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&format!("{} WHERE id = $1", notices::select_notices()))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let found = notices::with_tries(&mut tx, rows).await?.pop();
        tx.commit().await?;
        Ok(found)
    }

    async fn resend_notification(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Notification>, StoreError> {
        if !notices::resend(&self.pool, id, now).await? {
            return Ok(None);
        }
        self.get_notification(id).await
    }

    async fn notice_stats(&self) -> Result<NoticeStats, StoreError> {
        // One snapshot for the counts and the age.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(NOTICE_COUNTS).fetch_all(&mut *tx).await?;
        let oldest: Option<DateTime<Utc>> = sqlx::query_scalar(OLDEST_PENDING)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(NoticeStats {
            by_status: super::notice_counts(rows)?,
            oldest_pending: oldest,
        })
    }

    async fn glance(&self, bounds: &[DateTime<Utc>]) -> Result<super::GlanceRows, StoreError> {
        glance::glance(&self.pool, bounds).await
    }
}

/// The outbox's figures for `/metrics`, read every few seconds: the pending
/// ones through their partial index (as many as wait), the delivered and
/// failed ones as a trigger keeps them (`notification_counts`), never a count
/// of the whole outbox, which only grows.
const NOTICE_COUNTS: &str = "SELECT 'pending', count(*) FROM notifications \
     WHERE status = 'pending' UNION ALL SELECT status, n FROM notification_counts";
const OLDEST_PENDING: &str = "SELECT MIN(created_at) FROM notifications WHERE status = 'pending'";

fn suppression_from_row(row: &PgRow) -> Result<Suppression, StoreError> {
    let phone: String = row.try_get("phone_number")?;
    let reminder_id: Option<uuid::Uuid> = row.try_get("reminder_id")?;
    Ok(Suppression {
        phone_number: PhoneNumber::parse(&phone)
            .map_err(|e| StoreError::Corrupt(format!("suppression: {e}")))?,
        reason: row.try_get("reason")?,
        reminder_id: reminder_id.map(ReminderId::from_uuid),
        created_at: row.try_get("created_at")?,
    })
}
