//! The outbox (SPEC §9) as the API and the delivery worker see it: a
//! notification, its tries, a page of them, one leased for delivery.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::StoreError;
use crate::domain::{NoticeStatus, NoticeType, ReminderId};

/// A new notification's id, its `webhook-id` on every try: `msg_` and a
/// UUIDv7 (time-ordered), as Standard Webhooks suggests.
pub fn new_notice_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// One delivery try (SPEC §9): when, what came back, how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NoticeTry {
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; `null` when none came back (see `error`).
    #[schema(required = true)]
    pub status_code: Option<u16>,
    /// Why no 2xx came back: a timeout, a refused connection, or the status.
    #[schema(required = true)]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// A notification and every try to deliver it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Its `webhook-id`, the same on every try.
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "attempt.ended")]
    pub kind: NoticeType,
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub reminder_id: Option<ReminderId>,
    /// Its number among its reminder's notifications, from 1.
    pub sequence: u32,
    pub status: NoticeStatus,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When the next try is due; `null` once delivered or failed.
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub next_try_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The JSON body, exactly as it is POSTed.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Oldest first.
    pub tries: Vec<NoticeTry>,
}

/// A notification leased to one instance for one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub kind: NoticeType,
    pub body: String,
    /// Tries already made in this round.
    pub step: u32,
    pub created_at: DateTime<Utc>,
}

/// What a try leaves the notification as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// One try to record, and what it leaves its notification as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryRecord {
    pub id: String,
    pub tried: NoticeTry,
    pub outcome: TryOutcome,
}

/// A list request: filters, page size, where to start (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeQuery {
    pub status: Option<NoticeStatus>,
    pub reminder_id: Option<ReminderId>,
    pub limit: u32,
    pub after: Option<NoticeCursor>,
}

/// Where a page starts: after this id, newest first (ids are UUIDv7: in the
/// order they were made; the time only makes the token self-describing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeCursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

impl NoticeCursor {
    pub fn after(n: &Notification) -> Self {
        Self {
            created_at: n.created_at,
            id: n.id.clone(),
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
        let created_at = DateTime::from_timestamp_millis(ms.parse().ok()?)
            .filter(|t| crate::domain::is_storable(*t))?;
        let ok = id.starts_with("msg_")
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// One page of notifications, newest first, and where the next starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticePage {
    pub notifications: Vec<Notification>,
    pub next: Option<NoticeCursor>,
}

impl NoticePage {
    /// From up to `limit + 1` rows: the extra row only says a next page exists.
    pub(crate) fn from_rows(mut rows: Vec<Notification>, limit: u32) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(NoticeCursor::after)
        } else {
            None
        };
        Self {
            notifications: rows,
            next,
        }
    }
}

/// The outbox's figures for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoticeStats {
    /// How many there are in each status, in the order of [`NoticeStatus::ALL`].
    pub by_status: Vec<(NoticeStatus, u64)>,
    /// When the oldest notification not yet delivered (pending) was created.
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// A notification row as the database hands it over.
pub(crate) struct RawNotice {
    pub id: String,
    pub kind: String,
    pub reminder_id: Option<uuid::Uuid>,
    pub sequence: i64,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub next_try_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub body: String,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("notification {what}: {e}"))
}

impl RawNotice {
    pub fn into_notification(self, tries: Vec<NoticeTry>) -> Result<Notification, StoreError> {
        Ok(Notification {
            kind: self.kind.parse().map_err(|_| corrupt("type", &self.kind))?,
            reminder_id: self.reminder_id.map(ReminderId::from_uuid),
            sequence: u32::try_from(self.sequence).map_err(|e| corrupt("sequence", e))?,
            status: self.status.parse().map_err(|e| corrupt("status", e))?,
            created_at: self.created_at,
            next_try_at: self.next_try_at,
            delivered_at: self.delivered_at,
            payload: serde_json::from_str(&self.body).map_err(|e| corrupt("body", e))?,
            tries,
            id: self.id,
        })
    }
}

/// The columns of a notification row, in the order both backends read them.
pub(crate) const NOTICE_COLS: &str =
    "id, type, reminder_id, sequence, status, created_at, next_try_at, delivered_at, body";
