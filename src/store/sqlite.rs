//! SQLite: the embedded default. One file, WAL, `synchronous=FULL` (a commit
//! is on disk before anyone hears yes). One connection writes; a small pool reads.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::OptionalExtension;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::sync::{Arc, OnceLock};
use tokio::sync::Mutex;

use super::status_counts;
use super::{
    reminder_cols_of, Applied, ClaimReport, Created, Decide, Deferral, EventRecord, Ingested,
    ListQuery, Page, RawAttempt, RawPromise, RawReminder, Store, StoreError, COUNT_BY_STATUS, DUE,
    JOINED_ATTEMPT_COLS, LIVE, REMINDER_COLS,
};
use super::{Delivery, NoticePage, NoticeQuery, NoticeStats, Notification, TryRecord};
use super::{Suppressed, SuppressionCursor, SuppressionPage, SUPPRESSION_COLS};
use crate::domain::Status;
use crate::domain::{room_name, Attempt, Change, NewReminder, Reminder, ReminderId};
use std::collections::{HashMap, HashSet};

use crate::domain::{
    plan_claims, ClaimAction, DeferredBy, PastAttempt, Rules, SKIP_NO_LAWFUL_TIME, SKIP_SUPPRESSED,
};
use crate::domain::{
    PhoneNumber, Reason, SuppressNumber, Suppression, SuppressionAction, SuppressionAudit,
};

mod actions;
mod counts;
mod gather;
mod glance;
mod notice_reads;
mod notices;
mod payments;
mod promises;
mod writer;

static SUPPRESSION_SQL: OnceLock<String> = OnceLock::new();
static REMOVE_SQL: OnceLock<String> = OnceLock::new();

pub struct SqliteStore {
    /// sqlx's write connection: creating reminders, claims, sessions.
    write: SqlitePool,
    read: SqlitePool,
    /// The events' writer thread (and the suppression list's), see `writer`.
    writer: writer::Writer,
    /// Taken by every write on `write` and by the writer thread for each of
    /// its batches: the two connections take turns, in order, and never wait
    /// on SQLite's busy handler for each other.
    gate: Arc<Mutex<()>>,
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| StoreError::Corrupt(format!("time {v}")))
}

fn opt_from_ms(v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(from_ms).transpose()
}

/// A row of either SQLite driver — sqlx's for the reads, rusqlite's in the
/// event writer — read by column position (by name costs a search of the
/// statement's column names for every value: a tenth of the writer's time),
/// so one set of row readers serves both. Each reader says which columns, in
/// which order, its statements select.
pub(super) trait Cols {
    fn text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
}

impl Cols for SqliteRow {
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
}

/// Column `i` of `names` (the reader's column list) from `row`, by position.
struct Reader<'r, R: ?Sized> {
    row: &'r R,
    names: &'static [&'static str],
    first: usize,
}

impl<R: Cols + ?Sized> Reader<'_, R> {
    fn at(&self, name: &str) -> usize {
        let i = self.names.iter().position(|n| *n == name);
        self.first + i.expect("a column of the reader's list")
    }
    fn text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.row.text(self.at(name))
    }
    fn int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.row.int(self.at(name))
    }
    fn need_text(&self, name: &str) -> Result<String, StoreError> {
        self.text(name)?.ok_or_else(|| null_in(name))
    }
    fn need_int(&self, name: &str) -> Result<i64, StoreError> {
        self.int(name)?.ok_or_else(|| null_in(name))
    }
    fn json(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.text(name)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
    }
}

fn null_in(col: &str) -> StoreError {
    StoreError::Corrupt(format!("{col} is null"))
}

/// `REMINDER_COLS`, one name each, in order: every statement a reminder is
/// read from selects these first.
const REMINDER_NAMES: [&str; 33] = [
    "id",
    "external_id",
    "customer_name",
    "phone_number",
    "timezone",
    "language",
    "amount_due_minor",
    "currency",
    "due_date",
    "status",
    "attempt_count",
    "max_attempts",
    "next_attempt_at",
    "last_attempt_at",
    "skip_reason",
    "outcome",
    "metadata",
    "created_at",
    "updated_at",
    "debt_ref",
    "region",
    "calling_zones",
    "timezone_given",
    "deferred_by",
    "amount_paid_minor",
    "promise_amount_minor",
    "promise_date",
    "promise_status",
    "promise_opened_at",
    "promise_deadline",
    "promise_decided_at",
    "promise_follow_up_id",
    "follow_up_of",
];

/// An attempt's columns, in the order its statements select them (after
/// the reminder's in `get_for_event`'s join).
const ATTEMPT_NAMES: [&str; 8] = [
    "attempt",
    "status",
    "room_name",
    "dispatched_at",
    "answered_at",
    "ended_at",
    "outcome",
    "failure",
];

fn reminder_from_row<R: Cols + ?Sized>(row: &R) -> Result<Reminder, StoreError> {
    let row = Reader {
        row,
        names: &REMINDER_NAMES,
        first: 0,
    };
    let id = row.need_text("id")?;
    let due = row.need_text("due_date")?;
    RawReminder {
        id: uuid::Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("id: {e}")))?,
        external_id: row.text("external_id")?,
        customer_name: row.need_text("customer_name")?,
        phone_number: row.need_text("phone_number")?,
        timezone: row.need_text("timezone")?,
        language: row.need_text("language")?,
        amount_due_minor: row.need_int("amount_due_minor")?,
        amount_paid_minor: row.need_int("amount_paid_minor")?,
        currency: row.need_text("currency")?,
        // `YYYY-MM-DD`, as written (FromStr: no format string to interpret per row).
        due_date: due
            .parse::<NaiveDate>()
            .map_err(|e| StoreError::Corrupt(format!("due_date: {e}")))?,
        status: row.need_text("status")?,
        attempt_count: row.need_int("attempt_count")?,
        max_attempts: row.need_int("max_attempts")?,
        next_attempt_at: opt_from_ms(row.int("next_attempt_at")?)?,
        last_attempt_at: opt_from_ms(row.int("last_attempt_at")?)?,
        skip_reason: row.text("skip_reason")?,
        outcome: row.json("outcome")?,
        metadata: row.json("metadata")?.unwrap_or_default(),
        created_at: from_ms(row.need_int("created_at")?)?,
        updated_at: from_ms(row.need_int("updated_at")?)?,
        debt_ref: row.text("debt_ref")?,
        region: row.text("region")?,
        calling_zones: row
            .json("calling_zones")?
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("calling_zones: {e}")))?
            .unwrap_or_default(),
        timezone_given: row.need_int("timezone_given")? != 0,
        deferred_by: row.text("deferred_by")?,
        promise: RawPromise {
            amount_minor: row.int("promise_amount_minor")?,
            date: row
                .text("promise_date")?
                .map(|d| d.parse::<NaiveDate>())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("promise_date: {e}")))?,
            status: row.text("promise_status")?,
            opened_at: opt_from_ms(row.int("promise_opened_at")?)?,
            deadline: opt_from_ms(row.int("promise_deadline")?)?,
            decided_at: opt_from_ms(row.int("promise_decided_at")?)?,
            follow_up_id: opt_uuid(row.text("promise_follow_up_id")?, "promise_follow_up_id")?,
        },
        follow_up_of: opt_uuid(row.text("follow_up_of")?, "follow_up_of")?,
    }
    .into_reminder()
}

fn opt_uuid(text: Option<String>, col: &str) -> Result<Option<uuid::Uuid>, StoreError> {
    text.map(|t| uuid::Uuid::parse_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn attempt_from_row<R: Cols + ?Sized>(row: &R) -> Result<Attempt, StoreError> {
    attempt_cols(row, 0)
}

/// An attempt from the columns starting at `first`.
fn attempt_cols<R: Cols + ?Sized>(row: &R, first: usize) -> Result<Attempt, StoreError> {
    let row = Reader {
        row,
        names: &ATTEMPT_NAMES,
        first,
    };
    RawAttempt {
        attempt: row.need_int("attempt")?,
        status: row.need_text("status")?,
        room_name: row.need_text("room_name")?,
        dispatched_at: from_ms(row.need_int("dispatched_at")?)?,
        answered_at: opt_from_ms(row.int("answered_at")?)?,
        ended_at: opt_from_ms(row.int("ended_at")?)?,
        outcome: row.json("outcome")?,
        failure: row.json("failure")?,
    }
    .into_attempt()
}

/// The attempt of `get_for_event`'s join (`a_…` columns), when there is one.
fn joined_attempt<R: Cols + ?Sized>(row: &R) -> Result<Option<Attempt>, StoreError> {
    let first = REMINDER_NAMES.len();
    match row.int(first)? {
        Some(_) => attempt_cols(row, first).map(Some),
        None => Ok(None),
    }
}

/// SQL built once, on first use (statements the writer keeps prepared are
/// looked up by their text).
fn built(cell: &'static OnceLock<String>, build: impl FnOnce() -> String) -> &'static str {
    cell.get_or_init(build)
}

/// `get_for_event`'s read: the reminder and one attempt (`?1`, or the
/// current one when null), by the reminder's id (`?2`).
fn for_event_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    built(&SQL, || {
        format!(
            "SELECT {}, {JOINED_ATTEMPT_COLS} FROM reminders r \
             LEFT JOIN attempts a ON a.reminder_id = r.id AND a.attempt = COALESCE(?1, r.attempt_count) \
             WHERE r.id = ?2",
            reminder_cols_of("r")
        )
    })
}

/// Zone names as the JSON array `calling_zones` holds.
fn zone_names_json(zones: &[crate::domain::TimeZone]) -> String {
    to_json(&zones.iter().map(|z| z.name()).collect::<Vec<_>>())
}

/// `SUPPRESSION_COLS`, in order.
const SUPPRESSION_NAMES: [&str; 4] = ["phone_number", "reason", "reminder_id", "created_at"];
/// The audit's columns, as `get_suppression` selects them.
const AUDIT_NAMES: [&str; 4] = ["action", "reason", "reminder_id", "at"];

fn opt_reminder_id<R: Cols + ?Sized>(
    row: &Reader<'_, R>,
) -> Result<Option<ReminderId>, StoreError> {
    row.text("reminder_id")?
        .map(|r| {
            ReminderId::parse(&r)
                .ok_or_else(|| StoreError::Corrupt(format!("suppression reminder id {r:?}")))
        })
        .transpose()
}

fn suppression_from_row<R: Cols + ?Sized>(row: &R) -> Result<Suppression, StoreError> {
    let row = Reader {
        row,
        names: &SUPPRESSION_NAMES,
        first: 0,
    };
    let phone = row.need_text("phone_number")?;
    Ok(Suppression {
        phone_number: PhoneNumber::parse(&phone)
            .map_err(|e| StoreError::Corrupt(format!("suppression: {e}")))?,
        reason: row.need_text("reason")?,
        reminder_id: opt_reminder_id(&row)?,
        created_at: from_ms(row.need_int("created_at")?)?,
    })
}

fn audit_from_row(row: &SqliteRow) -> Result<SuppressionAudit, StoreError> {
    let row = Reader {
        row,
        names: &AUDIT_NAMES,
        first: 0,
    };
    let action = row.need_text("action")?;
    Ok(SuppressionAudit {
        action: SuppressionAction::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("suppression action {action:?}")))?,
        reason: row.need_text("reason")?,
        reminder_id: opt_reminder_id(&row)?,
        at: from_ms(row.need_int("at")?)?,
    })
}

/// The outbox's figures for `/metrics`, read every few seconds, never a
/// count of the whole outbox, which only grows (see `notices`).
use notice_reads::{NOTICE_COUNTS, OLDEST_PENDING};

fn due_sql() -> String {
    format!(
        // The planner, without statistics, prefers the status index and a sort;
        // the partial index reads only due rows, in order, whatever the table's size.
        "SELECT {REMINDER_COLS} FROM reminders INDEXED BY reminders_due \
         WHERE {DUE} AND next_attempt_at <= ? AND attempt_count < max_attempts \
         ORDER BY next_attempt_at, id LIMIT ?"
    )
}

fn overdue_sql() -> String {
    let cols = reminder_cols_of("r");
    // One indexed range per live status (an OR would not use the index): the
    // status index holds the live ones together, and there are at most
    // MAX_CONCURRENT_CALLS of them, so their age is filtered on those rows.
    format!(
        "SELECT {REMINDER_COLS} FROM ( \
           SELECT {cols} FROM reminders r INDEXED BY reminders_status_newest \
           WHERE r.{LIVE} AND r.status = 'in_progress' AND r.last_attempt_at <= ? \
           UNION ALL \
           SELECT {cols} FROM reminders r INDEXED BY reminders_status_newest \
           LEFT JOIN attempts a ON a.reminder_id = r.id AND a.attempt = r.attempt_count \
           WHERE r.{LIVE} AND r.status = 'processing' AND r.last_attempt_at <= ? \
             AND COALESCE(a.answered_at, r.last_attempt_at) <= ?) \
         ORDER BY last_attempt_at, id LIMIT ?"
    )
}

/// The claim's candidates: those of `ids` still due at `now`, earliest first,
/// each looked up by its primary key. `prefix`: `EXPLAIN QUERY PLAN ` or "".
/// The `+` keeps the planner off the status index (without statistics it
/// would walk every pending and failed reminder there) and the due index
/// (every due one): both grow with the table, the ids do not.
fn claim_candidates_sql(
    prefix: &str,
    ids: &[ReminderId],
    now: DateTime<Utc>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}SELECT {REMINDER_COLS} FROM reminders WHERE id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.to_string());
    }
    qb.push(
        ") AND +status IN ('pending', 'failed') AND +next_attempt_at IS NOT NULL \
         AND +next_attempt_at <= ",
    )
    .push_bind(ms(now))
    // A settled debt is never called (SPEC §8), whatever left it waiting.
    .push(
        " AND attempt_count < max_attempts \
         AND NOT (amount_paid_minor > 0 AND amount_paid_minor >= amount_due_minor) \
         ORDER BY next_attempt_at, id",
    );
    qb
}

/// The frequency caps' and the quiet period's facts: the candidates' debts'
/// attempts since `since` (through `attempts_debt`).
fn claim_history_sql(
    prefix: &str,
    debt_refs: impl Iterator<Item = String>,
    since: DateTime<Utc>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}SELECT reminder_id, attempt, debt_ref, dispatched_at, ended_at, \
         json_extract(outcome, '$.result') AS result FROM attempts WHERE dispatched_at > "
    ));
    qb.push_bind(ms(since)).push(" AND debt_ref IN (");
    let mut list = qb.separated(", ");
    for debt in debt_refs {
        list.push_bind(debt);
    }
    qb.push(")");
    qb
}

/// The suppression list's answer for the candidates' numbers.
fn claim_suppressed_sql(
    prefix: &str,
    phones: impl Iterator<Item = String>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}SELECT phone_number FROM suppressions WHERE phone_number IN ("
    ));
    let mut list = qb.separated(", ");
    for phone in phones {
        list.push_bind(phone);
    }
    qb.push(")");
    qb
}

/// Reminders per write statement of a claim (SQLite binds at most 32,766
/// parameters; a deferral takes 3).
const CLAIM_CHUNK: usize = 500;

/// Start the next attempt of each of `ids` at `now`, returning them.
fn claim_start_sql(
    prefix: &str,
    ids: &[ReminderId],
    now: DateTime<Utc>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}UPDATE reminders SET status = 'in_progress', \
         attempt_count = attempt_count + 1, next_attempt_at = NULL, last_attempt_at = "
    ));
    qb.push_bind(ms(now))
        .push(", skip_reason = NULL, deferred_by = NULL, updated_at = ")
        .push_bind(ms(now))
        .push(" WHERE id IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.to_string());
    }
    qb.push(format!(") RETURNING {REMINDER_COLS}"));
    qb
}

/// The attempt rows of the reminders a claim started.
fn claim_attempts_sql(
    prefix: &str,
    started: &[Reminder],
    now: DateTime<Utc>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "{prefix}INSERT INTO attempts (reminder_id, attempt, status, room_name, \
         dispatched_at, updated_at, debt_ref) "
    ));
    qb.push_values(started, |mut b, r| {
        b.push_bind(r.id.to_string())
            .push_bind(i64::from(r.attempt_count))
            .push_bind("in_progress")
            .push_bind(room_name(r.id, r.attempt_count))
            .push_bind(ms(now))
            .push_bind(ms(now))
            .push_bind(r.debt_ref.clone());
    });
    qb
}

/// Defer each reminder to its time, by its rule (each found by its primary key).
fn claim_defer_sql(
    prefix: &str,
    defers: &[(ReminderId, DateTime<Utc>, DeferredBy)],
    now: DateTime<Utc>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("{prefix}WITH v (id, next_at, rule) AS ("));
    qb.push_values(defers, |mut b, (id, until, by)| {
        b.push_bind(id.to_string())
            .push_bind(ms(*until))
            .push_bind(by.as_str());
    });
    qb.push(
        ") UPDATE reminders SET next_attempt_at = v.next_at, deferred_by = v.rule, \
         updated_at = ",
    )
    .push_bind(ms(now))
    .push(" FROM v WHERE reminders.id = v.id");
    qb
}

/// Cancel (suppressed) or fail (no lawful time) each reminder, with its reason.
fn claim_end_sql(
    prefix: &str,
    ends: &[(ReminderId, Status, &'static str)],
    now: DateTime<Utc>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("{prefix}WITH v (id, status, reason) AS ("));
    qb.push_values(ends, |mut b, (id, status, reason)| {
        b.push_bind(id.to_string())
            .push_bind(status.as_str())
            .push_bind(*reason);
    });
    qb.push(
        ") UPDATE reminders SET status = v.status, skip_reason = v.reason, \
         next_attempt_at = NULL, deferred_by = NULL, updated_at = ",
    )
    .push_bind(ms(now))
    .push(" FROM v WHERE reminders.id = v.id");
    qb
}

fn count_live_sql() -> String {
    format!("SELECT COUNT(*) FROM reminders WHERE {LIVE}")
}

impl SqliteStore {
    /// Open (creating if missing) the SQLite file that `url` names and migrate
    /// it. With `notify`, every change writes its notifications (SPEC §9).
    pub async fn connect(url: &str, notify: bool) -> Result<Self, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            // Each connection would have a database of its own (and every
            // write would be lost at exit): duecall's writes must be on disk.
            return Err(StoreError::Unavailable(
                "an in-memory SQLite database is not supported: DATABASE_URL must name a file, like sqlite://duecall.db".into(),
            ));
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&write).await?;
        let write_opts = opts.clone();
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        let gate = Arc::new(Mutex::new(()));
        let writer = writer::Writer::start(write_opts.get_filename(), Arc::clone(&gate), notify)?;
        Ok(Self {
            write,
            read,
            writer,
            gate,
        })
    }

    async fn fetch_reminder(
        conn: &mut sqlx::SqliteConnection,
        id: ReminderId,
    ) -> Result<Option<Reminder>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REMINDER_COLS} FROM reminders WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(reminder_from_row).transpose()
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn create_reminder(
        &self,
        new: &NewReminder,
        id: ReminderId,
        now: DateTime<Utc>,
    ) -> Result<Created, StoreError> {
        let r = new.clone().into_reminder(id, now);
        let _turn = self.gate.lock().await;
        let mut tx = self.write.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO reminders (id, external_id, customer_name, phone_number, timezone, language, \
             amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
             next_attempt_at, last_attempt_at, skip_reason, outcome, metadata, created_at, updated_at, \
             debt_ref, region, calling_zones, timezone_given) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (external_id) DO NOTHING",
        )
        .bind(r.id.to_string())
        .bind(&r.external_id)
        .bind(&r.customer_name)
        .bind(r.phone_number.as_str())
        .bind(r.primary_zone().name())
        .bind(r.language.as_str())
        .bind(r.amount_due_minor)
        .bind(r.currency.as_str())
        .bind(r.due_date.format("%Y-%m-%d").to_string())
        .bind(r.status.as_str())
        .bind(i64::from(r.attempt_count))
        .bind(i64::from(r.max_attempts))
        .bind(r.next_attempt_at.map(ms))
        .bind(&r.skip_reason)
        .bind(serde_json::Value::Object(r.metadata.clone()).to_string())
        .bind(ms(r.created_at))
        .bind(ms(r.updated_at))
        .bind(&r.debt_ref)
        .bind(r.region.as_ref().map(|g| g.as_str().to_owned()))
        .bind(zone_names_json(&r.calling_zones))
        .bind(r.timezone.is_some())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let result = if inserted == 1 {
            Created::New(r)
        } else {
            let row = sqlx::query(&format!(
                "SELECT {REMINDER_COLS} FROM reminders WHERE external_id = ?"
            ))
            .bind(&r.external_id)
            .fetch_one(&mut *tx)
            .await?;
            Created::Existing(reminder_from_row(&row)?)
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn get_reminder(&self, id: ReminderId) -> Result<Option<Reminder>, StoreError> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_reminder(&mut conn, id).await
    }

    async fn get_reminder_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<Reminder>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REMINDER_COLS} FROM reminders WHERE external_id = ?"
        ))
        .bind(external_id)
        .fetch_optional(&self.read)
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
             FROM attempts WHERE reminder_id = ? AND attempt = ?",
        )
        .bind(id.to_string())
        .bind(i64::from(attempt))
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    async fn get_for_event(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
    ) -> Result<Option<(Reminder, Option<Attempt>)>, StoreError> {
        let row = sqlx::query(for_event_sql())
            .bind(attempt.map(i64::from))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((reminder_from_row(&row)?, joined_attempt(&row)?)))
    }

    async fn list_attempts(&self, id: ReminderId) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, status, room_name, dispatched_at, answered_at, ended_at, outcome, failure \
             FROM attempts WHERE reminder_id = ? ORDER BY attempt",
        )
        .bind(id.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn list_reminders(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {REMINDER_COLS} FROM reminders WHERE 1 = 1"));
        if let Some(status) = query.status {
            // With a search, the status is checked on what the search's indexes
            // found (`+` keeps SQLite from scanning the status index instead).
            let column = if query.search.is_some() {
                " AND +status = "
            } else {
                " AND status = "
            };
            qb.push(column).push_bind(status.as_str());
        }
        if let Some(text) = &query.search {
            qb.push(" AND (external_id = ")
                .push_bind(text.clone())
                .push(" OR phone_number = ")
                .push_bind(text.clone())
                .push(")");
        }
        if let Some(after) = &query.after {
            qb.push(" AND (created_at, id) < (")
                .push_bind(ms(after.created_at))
                .push(", ")
                .push_bind(after.id.to_string())
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(query.limit) + 1);
        let rows = qb.build().fetch_all(&self.read).await?;
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
        self.writer.apply(change, event).await
    }

    async fn ingest(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
        decide: Box<Decide>,
    ) -> Result<Option<Ingested>, StoreError> {
        self.writer.ingest(id, attempt, decide).await
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Reminder>, StoreError> {
        let rows = sqlx::query(&due_sql())
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(reminder_from_row).collect()
    }

    async fn defer(&self, deferrals: &[Deferral], now: DateTime<Utc>) -> Result<u64, StoreError> {
        if deferrals.is_empty() {
            return Ok(0);
        }
        let _turn = self.gate.lock().await;
        let mut tx = self.write.begin().await?;
        let mut moved = 0;
        for d in deferrals {
            moved += sqlx::query(&format!(
                "UPDATE reminders SET next_attempt_at = ?, updated_at = ? \
                 WHERE id = ? AND {DUE} AND next_attempt_at = ?"
            ))
            .bind(ms(d.to))
            .bind(ms(now))
            .bind(d.id.to_string())
            .bind(ms(d.from))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
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
        // One write transaction on the one write connection: the facts read
        // here are current (SQLite has one writer), and the decisions are
        // written before anyone else writes. IMMEDIATE takes the write lock
        // first: a read-then-write transaction cannot be refused half-way by
        // another process's writer (several schedulers on one file).
        let _turn = self.gate.lock().await;
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let candidates = claim_candidates_sql("", ids, now)
            .build()
            .fetch_all(&mut *tx)
            .await?
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
        let mut debts: HashMap<String, Vec<PastAttempt>> = HashMap::new();
        let debt_refs = candidates.iter().map(|r| r.debt_ref.clone());
        let mut qb = claim_history_sql("", debt_refs, now - rules.lookback());
        for row in qb.build().fetch_all(&mut *tx).await? {
            let debt: String = row.try_get("debt_ref")?;
            let reminder_id: String = row.try_get("reminder_id")?;
            let result: Option<String> = row.try_get("result")?;
            debts.entry(debt).or_default().push(PastAttempt {
                reminder_id: ReminderId::parse(&reminder_id)
                    .ok_or_else(|| StoreError::Corrupt(format!("attempt of {reminder_id:?}")))?,
                attempt: row.try_get::<i64, _>("attempt")? as u32,
                dispatched_at: from_ms(row.try_get("dispatched_at")?)?,
                ended_at: opt_from_ms(row.try_get("ended_at")?)?,
                result: result.and_then(|r| r.parse().ok()),
            });
        }
        let phones = candidates
            .iter()
            .map(|r| r.phone_number.as_str().to_owned());
        let suppressed: HashSet<String> = claim_suppressed_sql("", phones)
            .build()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get("phone_number"))
            .collect::<Result<_, _>>()?;
        let slots = (i64::from(max_live) - live).max(0) as usize;
        let plan = plan_claims(rules, &candidates, &mut debts, &suppressed, slots, now);

        // The decisions, written a statement per kind and chunk (not a
        // statement per reminder: each one is a round trip to the driver's
        // thread, and those round trips were most of a claim's time).
        let mut report = ClaimReport::default();
        let mut claim_ids = Vec::new();
        let mut defers = Vec::new();
        let mut ends = Vec::new();
        for (id, action) in &plan {
            match action {
                ClaimAction::Claim => claim_ids.push(*id),
                ClaimAction::Defer { until, by } => {
                    defers.push((*id, *until, *by));
                    report.deferred.push((*id, *by));
                }
                ClaimAction::CancelSuppressed => {
                    ends.push((*id, Status::Cancelled, SKIP_SUPPRESSED));
                    report.suppressed.push(*id);
                }
                ClaimAction::FailNoLawfulTime => {
                    ends.push((*id, Status::Failed, SKIP_NO_LAWFUL_TIME));
                    report.no_lawful_time.push(*id);
                }
            }
        }
        for chunk in claim_ids.chunks(CLAIM_CHUNK) {
            let mut started = claim_start_sql("", chunk, now)
                .build()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(reminder_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            if started.is_empty() {
                continue;
            }
            claim_attempts_sql("", &started, now)
                .build()
                .execute(&mut *tx)
                .await?;
            // In the plan's order (earliest due first): RETURNING keeps none.
            started.sort_by_key(|r| chunk.iter().position(|id| *id == r.id));
            report.claimed.extend(started);
        }
        for chunk in defers.chunks(CLAIM_CHUNK) {
            claim_defer_sql("", chunk, now)
                .build()
                .execute(&mut *tx)
                .await?;
        }
        for chunk in ends.chunks(CLAIM_CHUNK) {
            let mut qb = claim_end_sql("", chunk, now);
            qb.push(format!(" RETURNING {REMINDER_COLS}"));
            let ended = qb
                .build()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(reminder_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            if self.writer.notify() {
                for r in &ended {
                    if let Some(kind) = crate::domain::ended_by_claim(r) {
                        notices::insert_notice_sqlx(
                            &mut tx,
                            &crate::domain::Notice::about_reminder(kind, now, r, None),
                        )
                        .await?;
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
            .bind(ms(dispatched_by))
            .bind(ms(answered_by))
            .bind(ms(answered_by))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(reminder_from_row).collect()
    }

    async fn count_live(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&count_live_sql())
            .fetch_one(&self.read)
            .await?;
        Ok(n as u64)
    }

    async fn count_by_status(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(COUNT_BY_STATUS)
            .fetch_all(&self.read)
            .await?;
        status_counts(rows)
    }

    async fn query_plans(
        &self,
        now: DateTime<Utc>,
        rules: &Rules,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let explain = |rows: Vec<SqliteRow>| -> Result<String, StoreError> {
            let mut out = Vec::new();
            for row in rows {
                let detail: String = row.try_get("detail")?;
                out.push(detail);
            }
            Ok(out.join("\n"))
        };
        let due = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", due_sql()))
            .bind(ms(now))
            .bind(500i64)
            .fetch_all(&self.read)
            .await?;
        let overdue = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", overdue_sql()))
            .bind(ms(now))
            .bind(ms(now))
            .bind(ms(now))
            .bind(200i64)
            .fetch_all(&self.read)
            .await?;
        let live = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", count_live_sql()))
            .fetch_all(&self.read)
            .await?;
        let counts = sqlx::query(&format!("EXPLAIN QUERY PLAN {NOTICE_COUNTS}"))
            .fetch_all(&self.read)
            .await?;
        let oldest = sqlx::query(&format!("EXPLAIN QUERY PLAN {OLDEST_PENDING}"))
            .fetch_all(&self.read)
            .await?;
        // The claim's own statements, for the batch a tick would claim now.
        let batch = self.due(now, crate::scheduler::BATCH).await?;
        let scans = vec![
            ("due", explain(due)?),
            ("overdue", explain(overdue)?),
            ("count_live", explain(live)?),
            ("notice_counts", explain(counts)?),
            ("oldest_pending", explain(oldest)?),
        ];
        if batch.is_empty() {
            return Ok(scans);
        }
        let ids: Vec<ReminderId> = batch.iter().map(|r| r.id).collect();
        let debts = batch.iter().map(|r| r.debt_ref.clone());
        let phones = batch.iter().map(|r| r.phone_number.as_str().to_owned());
        let qp = "EXPLAIN QUERY PLAN ";
        let candidates = claim_candidates_sql(qp, &ids, now)
            .build()
            .fetch_all(&self.read)
            .await?;
        let history = claim_history_sql(qp, debts, now - rules.lookback())
            .build()
            .fetch_all(&self.read)
            .await?;
        let suppressed = claim_suppressed_sql(qp, phones)
            .build()
            .fetch_all(&self.read)
            .await?;
        let start = claim_start_sql(qp, &ids, now)
            .build()
            .fetch_all(&self.read)
            .await?;
        let attempts = claim_attempts_sql(qp, &batch, now)
            .build()
            .fetch_all(&self.read)
            .await?;
        let defers: Vec<_> = ids
            .iter()
            .map(|id| (*id, now, DeferredBy::Window))
            .collect();
        let defer = claim_defer_sql(qp, &defers, now)
            .build()
            .fetch_all(&self.read)
            .await?;
        let ends: Vec<_> = ids
            .iter()
            .map(|id| (*id, Status::Cancelled, SKIP_SUPPRESSED))
            .collect();
        let end = claim_end_sql(qp, &ends, now)
            .build()
            .fetch_all(&self.read)
            .await?;
        Ok(scans
            .into_iter()
            .chain([
                ("claim: candidates", explain(candidates)?),
                (
                    "claim: frequency and quiet period (debts' attempts)",
                    explain(history)?,
                ),
                ("claim: suppression list", explain(suppressed)?),
                ("claim: start the attempts", explain(start)?),
                ("claim: their attempt rows", explain(attempts)?),
                ("claim: defer", explain(defer)?),
                ("claim: cancel or fail", explain(end)?),
            ])
            .collect())
    }

    async fn get_event(&self, webhook_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT webhook_id, reminder_id, attempt, event_type, occurred_at, received_at, \
             applied, verdict, payload FROM events WHERE webhook_id = ?",
        )
        .bind(webhook_id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let reminder_id: String = row.try_get("reminder_id")?;
        let attempt: Option<i64> = row.try_get("attempt")?;
        let event_type: String = row.try_get("event_type")?;
        let applied: bool = row.try_get("applied")?;
        let verdict: Option<String> = row.try_get("verdict")?;
        Ok(Some(EventRecord {
            webhook_id: row.try_get("webhook_id")?,
            reminder_id: ReminderId::parse(&reminder_id)
                .ok_or_else(|| StoreError::Corrupt(format!("event reminder id {reminder_id:?}")))?,
            attempt: attempt.map(|a| a as u32),
            event_type: super::stored_event_type(&event_type)?,
            occurred_at: from_ms(row.try_get("occurred_at")?)?,
            received_at: from_ms(row.try_get("received_at")?)?,
            applied,
            verdict: super::stored_verdict(verdict.as_deref(), applied)?,
            payload: row.try_get("payload")?,
        }))
    }

    async fn count_events(&self, id: ReminderId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE reminder_id = ?")
            .bind(id.to_string())
            .fetch_one(&self.read)
            .await?;
        Ok(n as u64)
    }
    async fn add_suppression_as(
        &self,
        add: &SuppressNumber,
        action: Option<&crate::domain::ActionRecord>,
        now: DateTime<Utc>,
    ) -> Result<Suppressed, StoreError> {
        let (add, notify) = (add.clone(), self.writer.notify());
        let action = action.cloned();
        self.writer
            .call(move |c| {
                let added = writer::insert_suppression(c, &add, now, notify)?;
                if let (true, Some(record)) = (added, &action) {
                    actions::insert_action(c, record, now)?;
                }
                let entry = c
                    .prepare_cached(built(&SUPPRESSION_SQL, || {
                        format!(
                            "SELECT {SUPPRESSION_COLS} FROM suppressions WHERE phone_number = ?"
                        )
                    }))?
                    .query_row([add.phone_number.as_str()], |row| {
                        Ok(suppression_from_row(row))
                    })??;
                let answer = if added {
                    Suppressed::New(entry)
                } else {
                    Suppressed::Existing(entry)
                };
                Ok((answer, true))
            })
            .await
    }

    async fn remove_suppression(
        &self,
        phone: &PhoneNumber,
        reason: &Reason,
        now: DateTime<Utc>,
    ) -> Result<Option<Suppression>, StoreError> {
        let (phone, reason) = (phone.clone(), reason.clone());
        self.writer
            .call(move |c| {
                let removed = c
                    .prepare_cached(built(&REMOVE_SQL, || {
                        format!(
                            "DELETE FROM suppressions WHERE phone_number = ? RETURNING {SUPPRESSION_COLS}"
                        )
                    }))?
                    .query_row([phone.as_str()], |row| Ok(suppression_from_row(row)))
                    .optional()?
                    .transpose()?;
                if removed.is_some() {
                    writer::audit(
                        c,
                        &phone,
                        SuppressionAction::Removed,
                        reason.as_str(),
                        None,
                        now,
                    )?;
                }
                Ok((removed, true))
            })
            .await
    }

    async fn list_suppressions(
        &self,
        limit: u32,
        after: Option<&SuppressionCursor>,
    ) -> Result<SuppressionPage, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {SUPPRESSION_COLS} FROM suppressions WHERE 1 = 1"
        ));
        if let Some(after) = after {
            qb.push(" AND (created_at, phone_number) < (")
                .push_bind(ms(after.created_at))
                .push(", ")
                .push_bind(after.phone_number.as_str().to_owned())
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, phone_number DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = qb.build().fetch_all(&self.read).await?;
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
        // One read transaction, so the entry and its history agree.
        let mut tx = self.read.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {SUPPRESSION_COLS} FROM suppressions WHERE phone_number = ?"
        ))
        .bind(phone.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let entry = row.as_ref().map(suppression_from_row).transpose()?;
        let rows = sqlx::query(
            "SELECT action, reason, reminder_id, at FROM suppression_audit \
             WHERE phone_number = ? ORDER BY at, id",
        )
        .bind(phone.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let history = rows.iter().map(audit_from_row).collect::<Result<_, _>>()?;
        tx.commit().await?;
        Ok((entry, history))
    }

    async fn is_suppressed(&self, phone: &PhoneNumber) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT 1 FROM suppressions WHERE phone_number = ?")
            .bind(phone.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(found.is_some())
    }

    async fn service_key(
        &self,
        name: &str,
        fresh: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, StoreError> {
        let _turn = self.gate.lock().await;
        sqlx::query(
            "INSERT INTO service_keys (name, value, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .bind(ms(now))
        .execute(&self.write)
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM service_keys WHERE name = ?")
            .bind(name)
            .fetch_one(&self.write)
            .await?;
        Ok(value)
    }

    async fn insert_session(
        &self,
        id: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let _turn = self.gate.lock().await;
        let n = sqlx::query(
            "INSERT INTO dashboard_sessions (id, data, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(data)
        .bind(ms(expires_at))
        .execute(&self.write)
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
        let _turn = self.gate.lock().await;
        sqlx::query(
            "INSERT INTO dashboard_sessions (id, data, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id)
        .bind(data)
        .bind(ms(expires_at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn load_session(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, expires_at FROM dashboard_sessions WHERE id = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(ms(now))
        .fetch_optional(&self.read)
        .await?;
        row.map(|(data, at)| Ok((data, from_ms(at)?))).transpose()
    }

    async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        let _turn = self.gate.lock().await;
        sqlx::query("DELETE FROM dashboard_sessions WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let _turn = self.gate.lock().await;
        let n = sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= ?")
            .bind(ms(now))
            .execute(&self.write)
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
        let (payment, notify) = (payment.clone(), self.writer.notify());
        self.writer
            .call(move |c| {
                let recorded = payments::record(c, id, &payment, now, notify)?;
                Ok((recorded, true))
            })
            .await
    }

    async fn decide_promises(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<super::PromiseReport, StoreError> {
        let notify = self.writer.notify();
        self.writer
            .call(move |c| {
                let report = promises::decide_due(c, now, limit, notify)?;
                Ok((report, true))
            })
            .await
    }

    async fn list_actions(
        &self,
        id: ReminderId,
    ) -> Result<Vec<crate::domain::ReminderAction>, StoreError> {
        sqlx::query(&format!(
            "SELECT {} FROM reminder_actions WHERE reminder_id = ? ORDER BY at, id",
            super::ACTION_COLS
        ))
        .bind(id.to_string())
        .fetch_all(&self.read)
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
            "SELECT {} FROM payments WHERE reminder_id = ? ORDER BY id",
            payments::PAYMENT_COLS
        ))
        .bind(id.to_string())
        .fetch_all(&self.read)
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
        let owner = owner.to_owned();
        self.writer
            .call(move |c| Ok((notices::lease(c, &owner, now, until, limit)?, true)))
            .await
    }

    async fn record_tries(
        &self,
        owner: &str,
        tries: &[TryRecord],
    ) -> Result<Vec<bool>, StoreError> {
        let (owner, tries) = (owner.to_owned(), tries.to_vec());
        self.writer
            .call(move |c| {
                let moved = tries
                    .iter()
                    .map(|t| notices::record(c, &t.id, &owner, &t.tried, t.outcome))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((moved, true))
            })
            .await
    }

    async fn list_notifications(&self, query: &NoticeQuery) -> Result<NoticePage, StoreError> {
        // One snapshot for the rows, their states and their tries (a try
        // recorded between two reads would show a try its notification does
        // not reflect yet).
        let mut tx = self.read.begin().await?;
        let items = notice_reads::list(
            &mut tx,
            query.status,
            // Its subject: the reminder's notifications, the list entry its opt-out made included.
            query.reminder_id.map(|id| id.to_string()),
            query.after.as_ref().map(|a| a.id.as_str()),
            query.limit as usize + 1,
        )
        .await?;
        tx.commit().await?;
        Ok(NoticePage::from_rows(items, query.limit))
    }

    async fn get_notification(&self, id: &str) -> Result<Option<Notification>, StoreError> {
        let mut tx = self.read.begin().await?;
        let found = notice_reads::get(&mut tx, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn resend_notification(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Notification>, StoreError> {
        let owned = id.to_owned();
        let found = self
            .writer
            .call(move |c| Ok((notices::resend(c, &owned, now)?, true)))
            .await?;
        if !found {
            return Ok(None);
        }
        self.get_notification(id).await
    }

    async fn notice_stats(&self) -> Result<NoticeStats, StoreError> {
        // One snapshot for the counts and the age.
        let mut tx = self.read.begin().await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(NOTICE_COUNTS).fetch_all(&mut *tx).await?;
        let oldest: Option<i64> = sqlx::query_scalar(OLDEST_PENDING)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(NoticeStats {
            by_status: super::notice_counts(rows)?,
            oldest_pending: opt_from_ms(oldest)?,
        })
    }

    async fn glance(&self, bounds: &[DateTime<Utc>]) -> Result<super::GlanceRows, StoreError> {
        glance::glance(&self.read, bounds).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readers_column_lists_are_the_statements_column_lists() {
        let names = |cols: &str| cols.split(", ").map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(names(REMINDER_COLS), REMINDER_NAMES);
        assert_eq!(names(SUPPRESSION_COLS), SUPPRESSION_NAMES);
        let joined: Vec<String> = JOINED_ATTEMPT_COLS
            .split(", ")
            .map(|c| c.rsplit(" AS a_").next().unwrap().to_owned())
            .collect();
        assert_eq!(joined, ATTEMPT_NAMES);
        assert!(for_event_sql().starts_with(&format!("SELECT {}, ", reminder_cols_of("r"))));
    }
}
