//! Storage: the handful of operations the domain needs, one implementation per
//! backend, each with its own plain SQL. One conformance suite
//! (`tests/store_suite.rs`) runs against both.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::domain::{ActionKind, ActionRecord, ReminderAction};
use crate::domain::{
    Attempt, Change, Decision, DeferredBy, EventType, NewReminder, Reminder, ReminderId, Rules,
    Status, Verdict,
};
use crate::domain::{PhoneNumber, Reason, SuppressNumber, Suppression, SuppressionAudit};

mod glance;
mod notice;
pub mod postgres;
pub mod sqlite;

pub use glance::*;
pub use notice::*;

/// Every column of a reminder row, in the order both backends read them.
pub(crate) const REMINDER_COLS: &str =
    "id, external_id, customer_name, phone_number, timezone, language, \
     amount_due_minor, currency, due_date, status, attempt_count, max_attempts, next_attempt_at, \
     last_attempt_at, skip_reason, outcome, metadata, created_at, updated_at, \
     debt_ref, region, calling_zones, timezone_given, deferred_by, amount_paid_minor, \
     promise_amount_minor, promise_date, promise_status, promise_opened_at, promise_deadline, \
     promise_decided_at, promise_follow_up_id, follow_up_of";

/// `REMINDER_COLS` qualified by a table alias (`r.id, r.external_id, …`).
pub(crate) fn reminder_cols_of(alias: &str) -> String {
    REMINDER_COLS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows the scheduler may claim (matches the `reminders_due` index).
pub(crate) const DUE: &str = "status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL \
     AND NOT (amount_paid_minor > 0 AND amount_paid_minor >= amount_due_minor)";
/// The rows with a live attempt (at most `MAX_CONCURRENT_CALLS`; PostgreSQL's
/// `reminders_live` index, SQLite's `reminders_status_newest`).
pub(crate) const LIVE: &str = "status IN ('in_progress', 'processing')";

/// Storage failed: the database is unreachable, or it answered something we
/// cannot read. Either way the caller answers 500 and the client retries.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite writer's own connection.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A batch of writes could not be committed (every write in it is lost,
    /// and each caller hears this).
    #[error("database commit failed: {0}")]
    Commit(String),
    /// The database did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// What `create_reminder` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new reminder was stored.
    New(Reminder),
    /// A reminder with the same `external_id` already existed; it is returned unchanged.
    Existing(Reminder),
}

/// What `apply` did with a `Change`.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The change was written; the reminder as it now is.
    Done(Box<Reminder>),
    /// The reminder (or its attempt) was no longer where the decision saw it:
    /// nothing was written. Read again and decide again.
    Stale,
    /// No such reminder.
    NotFound,
    /// The event's `webhook-id` was already recorded: nothing was written.
    Duplicate,
}

/// A received event as it is kept: once per `webhook-id`, whatever it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub webhook_id: String,
    pub reminder_id: ReminderId,
    pub attempt: Option<u32>,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Did it change the reminder's status.
    pub applied: bool,
    /// How it was taken, and so answered (a repeat is answered the same).
    pub verdict: Verdict,
    /// The raw body, as received.
    pub payload: String,
}

/// Decides an event against the reminder and attempt as they are at that
/// moment: the pure state machine, with the clock read inside (a decision made
/// again is made with a fresh `now`). Returns the decision and the event's row.
pub type Decide = dyn Fn(&Reminder, Option<&Attempt>) -> (Decision, EventRecord) + Send + Sync;

/// What `ingest` did with one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The reminder as the decision saw it.
    pub before: Reminder,
    pub decision: Decision,
    /// What writing the decision did. `Stale` only when the reminder kept
    /// changing under a store that decides outside its writer.
    pub applied: Applied,
}

/// How often the default `ingest` decides again after a lost compare-and-set.
pub const MAX_DECISIONS: usize = 8;

/// What one claim did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimReport {
    /// The reminders whose next attempt started, as they now are.
    pub claimed: Vec<Reminder>,
    /// Moved to a later `next_attempt_at`, by the rule that held each.
    pub deferred: Vec<(ReminderId, DeferredBy)>,
    /// Cancelled: their number is on the suppression list.
    pub suppressed: Vec<ReminderId>,
    /// Failed for good: their zones share no calling time.
    pub no_lawful_time: Vec<ReminderId>,
}

/// What one `decide_promises` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromiseReport {
    /// Reminders whose promise was kept.
    pub kept: Vec<ReminderId>,
    /// Reminders whose promise was broken, each with the follow-up it made.
    pub broken: Vec<(ReminderId, ReminderId)>,
}

/// How a stored event was answered: its `verdict` column, or for rows from
/// before that column, what its `applied` flag says.
pub(crate) fn stored_verdict(verdict: Option<&str>, applied: bool) -> Result<Verdict, StoreError> {
    match verdict {
        Some(v) => Verdict::parse(v).ok_or_else(|| StoreError::Corrupt(format!("verdict {v:?}"))),
        None if applied => Ok(Verdict::Applied),
        None => Ok(Verdict::Ignored),
    }
}

pub(crate) fn stored_event_type(t: &str) -> Result<EventType, StoreError> {
    t.parse()
        .map_err(|()| StoreError::Corrupt(format!("event type {t:?}")))
}

/// Where a page of the list starts: after this (created_at, id), newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: ReminderId,
}

impl Cursor {
    pub fn after(r: &Reminder) -> Self {
        Self {
            created_at: r.created_at,
            id: r.id,
        }
    }

    /// An opaque token for clients.
    pub fn encode(&self) -> String {
        let raw = format!("{}.{}", self.created_at.timestamp_millis(), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(token: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (ms, id) = raw.split_once('.')?;
        // Only times a reminder can have been created at (a crafted cursor
        // outside PostgreSQL's range would otherwise be a 500 there).
        let created_at = DateTime::from_timestamp_millis(ms.parse().ok()?)
            .filter(|t| crate::domain::is_storable(*t))?;
        Some(Self {
            created_at,
            id: ReminderId::parse(id)?,
        })
    }
}

/// A due reminder moved to a later `next_attempt_at`: it fell outside its
/// calling window, or it reached the weekly attempt cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferral {
    pub id: ReminderId,
    /// The `next_attempt_at` it had when it was read; it moves only if unchanged.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A list request: optional status filter, optional search, page size, where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub limit: u32,
    pub after: Option<Cursor>,
    /// Only reminders whose `external_id` or `phone_number` is exactly this.
    pub search: Option<String>,
}

/// One page of reminders, newest first, and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub reminders: Vec<Reminder>,
    pub next: Option<Cursor>,
}

impl Page {
    /// Build a page from up to `limit + 1` rows: the extra row only says a next page exists.
    pub(crate) fn from_rows(mut rows: Vec<Reminder>, limit: u32) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(Cursor::after)
        } else {
            None
        };
        Self {
            reminders: rows,
            next,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Store a new pending reminder, or return the existing one with the same `external_id`.
    async fn create_reminder(
        &self,
        new: &NewReminder,
        id: ReminderId,
        now: DateTime<Utc>,
    ) -> Result<Created, StoreError>;

    async fn get_reminder(&self, id: ReminderId) -> Result<Option<Reminder>, StoreError>;

    /// The reminder stored with this `external_id` (the business system's own
    /// id, unique), if any: how a payments file names a reminder without
    /// duecall's id.
    async fn get_reminder_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<Reminder>, StoreError>;

    /// One attempt of a reminder.
    async fn get_attempt(
        &self,
        id: ReminderId,
        attempt: u32,
    ) -> Result<Option<Attempt>, StoreError>;

    /// A reminder and, in the same read, one of its attempts: `attempt`, or
    /// the current one when `None` (what an event needs to be decided).
    async fn get_for_event(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
    ) -> Result<Option<(Reminder, Option<Attempt>)>, StoreError>;

    /// A reminder's attempts, oldest first.
    async fn list_attempts(&self, id: ReminderId) -> Result<Vec<Attempt>, StoreError>;

    /// Reminders newest first, by status if asked, one page at a time.
    async fn list_reminders(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// Write a decision in one transaction if the reminder (and the attempt it
    /// touches) are still where the decision saw them; with an event, record
    /// the event in the same transaction, once per `webhook-id`.
    async fn apply(
        &self,
        change: &Change,
        event: Option<&EventRecord>,
    ) -> Result<Applied, StoreError>;

    /// Decide an event against the reminder as it is and write the decision
    /// with the event row, as one: read (`get_for_event`), `decide`, `apply`.
    /// `None`: no such reminder. The default decides on a read and writes
    /// with a compare-and-set, deciding again when it lost one; the stores
    /// override it with group commit, deciding where they write: SQLite's
    /// single writer thread, PostgreSQL's writer tasks with the reminders
    /// locked (`FOR UPDATE`) until the batch's commit.
    async fn ingest(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
        decide: Box<Decide>,
    ) -> Result<Option<Ingested>, StoreError> {
        let mut last = None;
        for _ in 0..MAX_DECISIONS {
            let Some((before, current)) = self.get_for_event(id, attempt).await? else {
                return Ok(None);
            };
            let (decision, record) = decide(&before, current.as_ref());
            let applied = self.apply(&decision.change, Some(&record)).await?;
            let stale = applied == Applied::Stale;
            let done = Ingested {
                before,
                decision,
                applied,
            };
            if !stale {
                return Ok(Some(done));
            }
            last = Some(done);
        }
        Ok(last)
    }

    /// The event first recorded under `webhook_id`, if any.
    async fn get_event(&self, webhook_id: &str) -> Result<Option<EventRecord>, StoreError>;

    /// Reminders that may be called at `now` as far as the database can tell:
    /// `pending` or retryable `failed`, `next_attempt_at <= now`, attempts
    /// remaining; earliest first. The calling window and the weekly cap are
    /// the scheduler's to check.
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Reminder>, StoreError>;

    /// Move due reminders to a later `next_attempt_at`, each only if it is
    /// still due and still at `from`. Returns how many moved.
    async fn defer(&self, deferrals: &[Deferral], now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Claim those of `ids` that are still due at `now` and that every rule
    /// of SPEC §7 allows now, in one transaction: the facts the rules read
    /// (the candidates' debts' recent attempts, the suppression list's answer
    /// for their numbers, the live count) are gathered inside it, after every
    /// other claimer's commit (PostgreSQL: one advisory lock serialises
    /// claimers; SQLite has one writer), so several instances cannot both say
    /// yes. Earliest due first, skipping rows another writer holds, no more
    /// than keeps the live attempts at `max_live`. Each claimed reminder starts
    /// its next attempt (`in_progress`, `attempt_count + 1`, an attempt row
    /// with its room name and debt); the others are deferred to the first
    /// moment every rule allows (`deferred_by`), cancelled (`suppressed`), or
    /// failed for good (`no_lawful_calling_time`) as the rules say.
    async fn claim(
        &self,
        ids: &[ReminderId],
        now: DateTime<Utc>,
        max_live: u32,
        rules: &Rules,
    ) -> Result<ClaimReport, StoreError>;

    /// Live reminders whose attempt outlived its deadline: `in_progress`
    /// dispatched at or before `dispatched_by`, `processing` answered (or, with
    /// no answer time, dispatched) at or before `answered_by`; oldest first.
    async fn overdue(
        &self,
        dispatched_by: DateTime<Utc>,
        answered_by: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Reminder>, StoreError>;

    /// How many attempts are live (`in_progress` or `processing`).
    async fn count_live(&self) -> Result<u64, StoreError>;

    /// How many reminders there are in each status (every status, zeros included),
    /// in the order of [`Status::ALL`]: the dashboard's counts.
    async fn count_by_status(&self) -> Result<Vec<(Status, u64)>, StoreError>;

    /// The database's plans for the scheduler's scans (`due`, `overdue`,
    /// `count_live`) at `now`, and for the statements a claim of the batch due
    /// now makes under `rules` (its candidates, the debts' attempts, the
    /// suppression list, its writes): to show they use their indexes
    /// (docs/PERFORMANCE.md). Writes nothing.
    async fn query_plans(
        &self,
        now: DateTime<Utc>,
        rules: &Rules,
    ) -> Result<Vec<(&'static str, String)>, StoreError>;

    /// How many events are recorded for a reminder (tests and the dashboard).
    async fn count_events(&self, id: ReminderId) -> Result<u64, StoreError>;

    /// Put a number on the suppression list, with its audit row, in one
    /// transaction. A number already there is left as it is (no audit row):
    /// `Suppressed::Existing` with the entry as it stands.
    async fn add_suppression(
        &self,
        add: &SuppressNumber,
        now: DateTime<Utc>,
    ) -> Result<Suppressed, StoreError> {
        self.add_suppression_as(add, None, now).await
    }

    /// [`Store::add_suppression`], with the operator's action that asked for
    /// it recorded in the reminder's history in the same transaction — only
    /// when the number is added (`Suppressed::New`).
    async fn add_suppression_as(
        &self,
        add: &SuppressNumber,
        action: Option<&ActionRecord>,
        now: DateTime<Utc>,
    ) -> Result<Suppressed, StoreError>;

    /// The operators' actions on a reminder (its history), oldest first.
    async fn list_actions(&self, id: ReminderId) -> Result<Vec<ReminderAction>, StoreError>;

    /// Take a number off the list, with its `removed` audit row, in one
    /// transaction. `None` when it was not on the list (nothing written).
    async fn remove_suppression(
        &self,
        phone: &PhoneNumber,
        reason: &Reason,
        now: DateTime<Utc>,
    ) -> Result<Option<Suppression>, StoreError>;

    /// The list, newest first, one page at a time.
    async fn list_suppressions(
        &self,
        limit: u32,
        after: Option<&SuppressionCursor>,
    ) -> Result<SuppressionPage, StoreError>;

    /// A number's entry (if it is on the list) and every add and remove of it, oldest first.
    async fn get_suppression(
        &self,
        phone: &PhoneNumber,
    ) -> Result<(Option<Suppression>, Vec<SuppressionAudit>), StoreError>;

    /// Is the number on the list.
    async fn is_suppressed(&self, phone: &PhoneNumber) -> Result<bool, StoreError>;
    /// The service key called `name`: the one already stored, or else `fresh`,
    /// stored now. Every instance on one database gets the same bytes.
    async fn service_key(
        &self,
        name: &str,
        fresh: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, StoreError>;

    /// Store a new dashboard session; `false` (nothing written) when `id` is taken.
    async fn insert_session(
        &self,
        id: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Store a dashboard session, replacing the one with the same `id`.
    async fn save_session(
        &self,
        id: &str,
        data: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// A dashboard session's data and expiry, unless it has expired at `now`
    /// (or was deleted).
    async fn load_session(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError>;

    /// End a dashboard session (nothing happens if there is none).
    async fn delete_session(&self, id: &str) -> Result<(), StoreError>;

    /// Forget the dashboard sessions expired at `now`; how many there were.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Record a payment against reminder `id` at `now`, in one transaction
    /// with the reminder's new sum, the settlement it makes (SPEC §8: a
    /// waiting reminder its payments cover is cancelled as `paid`) and their
    /// notifications. A `reference` already recorded for the reminder is the
    /// same payment: nothing is written, and the first one is answered
    /// (`new: false`). `None`: no such reminder.
    async fn record_payment(
        &self,
        id: ReminderId,
        payment: &crate::domain::NewPayment,
        now: DateTime<Utc>,
    ) -> Result<Option<PaymentRecorded>, StoreError>;

    /// Decide up to `limit` open promises whose deadline has passed at `now`
    /// (SPEC §8), oldest deadline first, each once whatever else is deciding:
    /// kept, or broken with its one follow-up reminder stored — the verdict,
    /// the follow-up and the notification in one transaction.
    async fn decide_promises(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<PromiseReport, StoreError>;

    /// A reminder's payments, oldest first.
    async fn list_payments(
        &self,
        id: ReminderId,
    ) -> Result<Vec<crate::domain::Payment>, StoreError>;

    /// Lease up to `limit` notifications due at `now` (pending, next try due,
    /// no live lease) to `owner` until `until`, oldest first: another
    /// instance takes them only once the lease has run out.
    async fn lease_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Record tries and move each notification to its outcome, all in one
    /// transaction; a notification moves only while `owner` still holds its
    /// lease (the try is recorded either way). Whether each moved, in order.
    async fn record_tries(&self, owner: &str, tries: &[TryRecord])
        -> Result<Vec<bool>, StoreError>;

    /// [`Store::record_tries`] for one try.
    async fn record_try(
        &self,
        id: &str,
        owner: &str,
        tried: &NoticeTry,
        outcome: TryOutcome,
    ) -> Result<bool, StoreError> {
        let one = TryRecord {
            id: id.to_owned(),
            tried: tried.clone(),
            outcome,
        };
        let moved = self.record_tries(owner, std::slice::from_ref(&one)).await?;
        Ok(moved.first().copied().unwrap_or(false))
    }

    /// Notifications newest first, filtered, one page at a time, with their tries.
    async fn list_notifications(&self, query: &NoticeQuery) -> Result<NoticePage, StoreError>;

    /// One notification with its tries.
    async fn get_notification(&self, id: &str) -> Result<Option<Notification>, StoreError>;

    /// Queue a notification again, due now (a delivered or failed one starts
    /// a new round of tries). `None`: no such notification.
    async fn resend_notification(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Notification>, StoreError>;

    /// The outbox's counts and its oldest undelivered notification.
    async fn notice_stats(&self) -> Result<NoticeStats, StoreError>;

    /// What the dashboard's glance counts on each day between `bounds` (day
    /// `i` is `[bounds[i], bounds[i + 1])`, each bound on a
    /// [`GLANCE_SLOT_SECS`] slot): read from the counts the database keeps,
    /// whatever the tables' size.
    async fn glance(&self, bounds: &[DateTime<Utc>]) -> Result<GlanceRows, StoreError>;
}

/// What `record_payment` did.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRecorded {
    pub payment: crate::domain::Payment,
    /// The reminder as the payment left it (as it is, for a repeat).
    pub reminder: Reminder,
    /// `false`: its reference was recorded already; nothing was written.
    pub new: bool,
}

/// What `add_suppression` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Suppressed {
    /// The number was added (and its audit row written).
    New(Suppression),
    /// The number was already on the list; nothing was written.
    Existing(Suppression),
}

impl Suppressed {
    pub fn entry(&self) -> &Suppression {
        match self {
            Suppressed::New(s) | Suppressed::Existing(s) => s,
        }
    }
}

/// Where a page of the suppression list starts: after this (created_at,
/// phone_number), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionCursor {
    pub created_at: DateTime<Utc>,
    pub phone_number: PhoneNumber,
}

impl SuppressionCursor {
    pub fn after(s: &Suppression) -> Self {
        Self {
            created_at: s.created_at,
            phone_number: s.phone_number.clone(),
        }
    }

    /// An opaque token for clients.
    pub fn encode(&self) -> String {
        let raw = format!(
            "{}.{}",
            self.created_at.timestamp_millis(),
            self.phone_number.as_str()
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(token: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (ms, phone) = raw.split_once('.')?;
        let created_at = DateTime::from_timestamp_millis(ms.parse().ok()?)
            .filter(|t| crate::domain::is_storable(*t))?;
        Some(Self {
            created_at,
            phone_number: PhoneNumber::parse(phone).ok()?,
        })
    }
}

/// One page of the suppression list, newest first, and where the next starts.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionPage {
    pub suppressions: Vec<Suppression>,
    pub next: Option<SuppressionCursor>,
}

impl SuppressionPage {
    /// From up to `limit + 1` rows: the extra row only says a next page exists.
    pub(crate) fn from_rows(mut rows: Vec<Suppression>, limit: u32) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(SuppressionCursor::after)
        } else {
            None
        };
        Self {
            suppressions: rows,
            next,
        }
    }
}

/// The columns of an operator action's row, in the order both backends read them.
pub(crate) const ACTION_COLS: &str = "action, actor, at, detail";

/// An action row's `action` as the domain knows it.
pub(crate) fn stored_action(a: &str) -> Result<ActionKind, StoreError> {
    ActionKind::parse(a).ok_or_else(|| StoreError::Corrupt(format!("operator action {a:?}")))
}

/// The columns of a suppression row, in the order both backends read them.
pub(crate) const SUPPRESSION_COLS: &str = "phone_number, reason, reminder_id, created_at";

/// Open the store that `url` names, running its migrations.
/// The counts of `SELECT status, COUNT(*) … GROUP BY status`, every status
/// present in [`Status::ALL`]'s order; a status the code does not know is corrupt data.
pub fn status_counts(rows: Vec<(String, i64)>) -> Result<Vec<(Status, u64)>, StoreError> {
    let mut counts: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
    for (name, n) in rows {
        let status: Status = name
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown reminder status {name:?}")))?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
            slot.1 = n.max(0) as u64;
        }
    }
    Ok(counts)
}

/// Counts by notification status, every status included, in [`NoticeStatus::ALL`]'s order.
pub(crate) fn notice_counts(
    rows: Vec<(String, i64)>,
) -> Result<Vec<(crate::domain::NoticeStatus, u64)>, StoreError> {
    let mut counts: Vec<(crate::domain::NoticeStatus, u64)> = crate::domain::NoticeStatus::ALL
        .iter()
        .map(|s| (*s, 0))
        .collect();
    for (status, n) in rows {
        let status: crate::domain::NoticeStatus = status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("notification status: {e}")))?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
            slot.1 = u64::try_from(n).map_err(|_| {
                StoreError::Corrupt(format!("{status} notifications counted as {n}"))
            })?;
        }
    }
    Ok(counts)
}

pub const COUNT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM reminders GROUP BY status";

/// The store `url` names, writing no notifications (tools and tests).
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, max_connections, false).await
}

/// The store `url` names. With `notify` (the service with `NOTIFY_URL`), every
/// change writes the notifications it causes in its own transaction (SPEC §9).
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    notify: bool,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::connect(url, max_connections, notify).await?,
        ))
    } else {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, notify).await?))
    }
}

/// Shorten a database URL for logs: scheme and location, never the password.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map(|(_, host)| host).unwrap_or(rest);
            let rest = rest.split_once('?').map(|(r, _)| r).unwrap_or(rest);
            format!("{scheme}://{rest}")
        }
        None => url.to_owned(),
    }
}

/// The attempt columns of `get_for_event`'s join, prefixed so they cannot
/// collide with the reminder's.
pub(crate) const JOINED_ATTEMPT_COLS: &str = "a.attempt AS a_attempt, a.status AS a_status, \
     a.room_name AS a_room_name, a.dispatched_at AS a_dispatched_at, \
     a.answered_at AS a_answered_at, a.ended_at AS a_ended_at, a.outcome AS a_outcome, \
     a.failure AS a_failure";

/// A reminder row as the database hands it over, before the domain checks it.
/// Each backend fills it from its own column types; `into_reminder` is shared.
pub(crate) struct RawReminder {
    pub id: uuid::Uuid,
    pub external_id: Option<String>,
    pub customer_name: String,
    pub phone_number: String,
    pub timezone: String,
    pub language: String,
    pub amount_due_minor: i64,
    pub amount_paid_minor: i64,
    pub currency: String,
    pub due_date: chrono::NaiveDate,
    pub status: String,
    pub attempt_count: i64,
    pub max_attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub skip_reason: Option<String>,
    pub outcome: Option<serde_json::Value>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub debt_ref: Option<String>,
    pub region: Option<String>,
    pub calling_zones: Vec<String>,
    pub timezone_given: bool,
    pub deferred_by: Option<String>,
    pub promise: RawPromise,
    pub follow_up_of: Option<uuid::Uuid>,
}

/// A reminder's promise columns (all null when it has none).
#[derive(Default)]
pub(crate) struct RawPromise {
    pub amount_minor: Option<i64>,
    pub date: Option<chrono::NaiveDate>,
    pub status: Option<String>,
    pub opened_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub follow_up_id: Option<uuid::Uuid>,
}

impl RawPromise {
    fn into_promise(self) -> Result<Option<crate::domain::Promise>, StoreError> {
        use crate::domain::{Promise, PromiseStatus};
        let Some(status) = self.status else {
            return Ok(None);
        };
        let missing = |what: &str| corrupt("promise", format!("{what} is null"));
        Ok(Some(Promise {
            amount_minor: self.amount_minor.ok_or_else(|| missing("amount"))?,
            date: self.date.ok_or_else(|| missing("date"))?,
            status: PromiseStatus::parse(&status)
                .ok_or_else(|| corrupt("promise_status", &status))?,
            follow_up_id: self.follow_up_id.map(ReminderId::from_uuid),
            opened_at: self.opened_at.ok_or_else(|| missing("opened_at"))?,
            deadline: self.deadline.ok_or_else(|| missing("deadline"))?,
            decided_at: self.decided_at,
        }))
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl RawReminder {
    pub fn into_reminder(self) -> Result<Reminder, StoreError> {
        use crate::domain::{Currency, DeferredBy, Language, PhoneNumber, Region, TimeZone};
        let timezone = TimeZone::parse(&self.timezone).map_err(|e| corrupt("reminder", e))?;
        let mut calling_zones = self
            .calling_zones
            .iter()
            .map(|z| TimeZone::parse(z).map_err(|e| corrupt("calling_zones", e)))
            .collect::<Result<Vec<_>, _>>()?;
        if calling_zones.is_empty() {
            calling_zones.push(timezone);
        }
        let debt_ref = self.debt_ref.unwrap_or_else(|| {
            self.external_id
                .clone()
                .unwrap_or_else(|| self.id.to_string())
        });
        Ok(Reminder {
            id: ReminderId::from_uuid(self.id),
            external_id: self.external_id,
            customer_name: self.customer_name,
            phone_number: PhoneNumber::parse(&self.phone_number)
                .map_err(|e| corrupt("reminder", e))?,
            timezone: self.timezone_given.then_some(timezone),
            calling_zones,
            debt_ref,
            region: self
                .region
                .as_deref()
                .map(Region::parse)
                .transpose()
                .map_err(|e| corrupt("region", e))?,
            deferred_by: self
                .deferred_by
                .as_deref()
                .map(|d| DeferredBy::parse(d).ok_or_else(|| corrupt("deferred_by", d)))
                .transpose()?,
            language: Language::parse(&self.language).map_err(|e| corrupt("reminder", e))?,
            amount_due_minor: self.amount_due_minor,
            amount_paid_minor: self.amount_paid_minor,
            currency: Currency::parse(&self.currency).map_err(|e| corrupt("reminder", e))?,
            due_date: self.due_date,
            status: self.status.parse().map_err(|e| corrupt("reminder", e))?,
            attempt_count: u32::try_from(self.attempt_count)
                .map_err(|e| corrupt("attempt_count", e))?,
            max_attempts: u32::try_from(self.max_attempts)
                .map_err(|e| corrupt("max_attempts", e))?,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            skip_reason: self.skip_reason,
            outcome: self
                .outcome
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| corrupt("outcome", e))?,
            metadata: match self.metadata {
                serde_json::Value::Object(m) => m,
                other => return Err(corrupt("metadata", format!("not an object: {other}"))),
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            promise: self.promise.into_promise()?,
            follow_up_of: self.follow_up_of.map(ReminderId::from_uuid),
        })
    }
}

/// An attempt row as the database hands it over.
pub(crate) struct RawAttempt {
    pub attempt: i64,
    pub status: String,
    pub room_name: String,
    pub dispatched_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Option<serde_json::Value>,
    pub failure: Option<serde_json::Value>,
}

impl RawAttempt {
    pub fn into_attempt(self) -> Result<Attempt, StoreError> {
        Ok(Attempt {
            attempt: u32::try_from(self.attempt).map_err(|e| corrupt("attempt", e))?,
            status: self
                .status
                .parse()
                .map_err(|_| corrupt("attempt status", &self.status))?,
            room_name: self.room_name,
            dispatched_at: self.dispatched_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            outcome: self
                .outcome
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| corrupt("attempt outcome", e))?,
            failure: self
                .failure
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| corrupt("attempt failure", e))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_millis(1_795_000_000_123).unwrap(),
            id: ReminderId::new(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "!!", "bm90LWEtY3Vyc29y", "MTIzLm5vdC1hLXV1aWQ"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn suppression_cursors_round_trip_and_refuse_garbage() {
        let c = SuppressionCursor {
            created_at: DateTime::from_timestamp_millis(1_795_000_000_123).unwrap(),
            phone_number: PhoneNumber::parse("+14155550100").unwrap(),
        };
        assert_eq!(SuppressionCursor::decode(&c.encode()), Some(c));
        let not_a_number =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("123.4155550100");
        for bad in ["", "!!", "bm90LWEtY3Vyc29y", not_a_number.as_str()] {
            assert_eq!(SuppressionCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://u:hunter2@db.example:5432/duecall?sslmode=require"),
            "postgres://db.example:5432/duecall"
        );
        assert_eq!(redact_url("sqlite://duecall.db"), "sqlite://duecall.db");
    }
}
