//! The reminder and its attempts: statuses, what the agent reported
//! (outcomes, failures), and the rooms attempts are placed in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::*;

// ---------------------------------------------------------------------------
// Status

/// A reminder's one status at a time (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    InProgress,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::InProgress,
        Status::Processing,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// An attempt is live (dispatched, not yet ended).
    pub fn is_live(self) -> bool {
        matches!(self, Status::InProgress | Status::Processing)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "status",
                    "must be one of pending, in_progress, processing, completed, failed, cancelled",
                )
            })
    }
}

// ---------------------------------------------------------------------------
// Outcomes and failures, as reported by the agent (SPEC §2)

/// What a conversation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    PaymentPromised,
    Paid,
    Refused,
    Disputed,
    CallbackRequested,
    WrongNumber,
    Other,
    OptedOut,
    NoAnswer,
    Busy,
    Voicemail,
    NotAvailable,
}

impl OutcomeResult {
    pub const ALL: [OutcomeResult; 12] = [
        OutcomeResult::PaymentPromised,
        OutcomeResult::Paid,
        OutcomeResult::Refused,
        OutcomeResult::Disputed,
        OutcomeResult::CallbackRequested,
        OutcomeResult::WrongNumber,
        OutcomeResult::Other,
        OutcomeResult::OptedOut,
        OutcomeResult::NoAnswer,
        OutcomeResult::Busy,
        OutcomeResult::Voicemail,
        OutcomeResult::NotAvailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::PaymentPromised => "payment_promised",
            OutcomeResult::Paid => "paid",
            OutcomeResult::Refused => "refused",
            OutcomeResult::Disputed => "disputed",
            OutcomeResult::CallbackRequested => "callback_requested",
            OutcomeResult::WrongNumber => "wrong_number",
            OutcomeResult::Other => "other",
            OutcomeResult::OptedOut => "opted_out",
            OutcomeResult::NoAnswer => "no_answer",
            OutcomeResult::Busy => "busy",
            OutcomeResult::Voicemail => "voicemail",
            OutcomeResult::NotAvailable => "not_available",
        }
    }

    /// The customer was not reached: the attempt is retried while attempts remain.
    pub fn is_unreached(self) -> bool {
        matches!(
            self,
            OutcomeResult::NoAnswer
                | OutcomeResult::Busy
                | OutcomeResult::Voicemail
                | OutcomeResult::NotAvailable
        )
    }

    /// The customer was reached and spoken with (SPEC §1 "conversation"):
    /// what starts the quiet period of SPEC §7.
    pub fn is_conversation(self) -> bool {
        matches!(
            self,
            OutcomeResult::PaymentPromised
                | OutcomeResult::Paid
                | OutcomeResult::Refused
                | OutcomeResult::Disputed
                | OutcomeResult::Other
                | OutcomeResult::CallbackRequested
                | OutcomeResult::OptedOut
        )
    }
}

impl FromStr for OutcomeResult {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutcomeResult::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(())
    }
}

/// The outcome object of SPEC §2, stored and read back as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    pub result: OutcomeResult,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub promised_amount_minor: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub promised_date: Option<NaiveDate>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub transcript: Option<String>,
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    /// For `callback_requested`: when the customer asked to be called back
    /// (RFC 3339; the agent resolves "at 5 pm" in the customer's zone).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_time"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub callback_at: Option<DateTime<Utc>>,
}

/// Why an attempt failed: what the agent said, or what the service saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    #[schema(minimum = 100, maximum = 699)]
    pub sip_status: Option<u16>,
    #[serde(default)]
    pub retryable: Option<bool>,
}

// ---------------------------------------------------------------------------
// The reminder and its attempts

fn ser_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// One debt to remind one person about (SPEC §5 is its JSON form).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Reminder {
    #[schema(value_type = String, format = "uuid")]
    pub id: ReminderId,
    #[schema(required = true)]
    pub external_id: Option<String>,
    pub customer_name: String,
    #[serde(serialize_with = "ser_phone")]
    #[schema(value_type = String, example = "+14155550100")]
    pub phone_number: PhoneNumber,
    /// As given at creation; `null` when none was.
    #[serde(serialize_with = "ser_opt_tz")]
    #[schema(value_type = Option<String>, example = "America/New_York", required = true)]
    pub timezone: Option<TimeZone>,
    #[serde(serialize_with = "ser_language")]
    #[schema(value_type = String, example = "en")]
    pub language: Language,
    pub amount_due_minor: i64,
    /// What the payments recorded against it add up to (SPEC §8).
    pub amount_paid_minor: i64,
    #[serde(serialize_with = "ser_currency")]
    #[schema(value_type = String, example = "USD")]
    pub currency: Currency,
    #[serde(serialize_with = "ser_display")]
    #[schema(value_type = String, format = Date)]
    pub due_date: NaiveDate,
    pub status: Status,
    pub attempt_count: u32,
    pub max_attempts: u32,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub skip_reason: Option<String>,
    #[schema(required = true)]
    pub outcome: Option<Outcome>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// The debt this reminder is about (SPEC §7): its frequency caps and quiet
    /// period count across every reminder with the same `debt_ref`.
    pub debt_ref: String,
    /// ISO 3166-2 region, for stricter regional caps.
    #[serde(serialize_with = "ser_opt_display")]
    #[schema(value_type = Option<String>, example = "US-MA", required = true)]
    pub region: Option<Region>,
    /// Every zone it may be in; a call is placed only inside the calling
    /// window in all of them (the given `timezone` first).
    #[serde(serialize_with = "ser_zones")]
    #[schema(value_type = Vec<String>, example = json!(["America/New_York"]))]
    pub calling_zones: Vec<TimeZone>,
    /// Which rule last held it back (SPEC §7): `window` (hours and days in
    /// every calling zone), `blackout`, `frequency` (the cap of its debt),
    /// `quiet_period` (after a conversation about its debt); null when none did.
    #[schema(value_type = Option<DeferredBy>, required = true)]
    pub deferred_by: Option<DeferredBy>,
    /// The promise to pay its completed call made (SPEC §8), if it made one.
    #[schema(required = true)]
    pub promise: Option<Promise>,
    /// The reminder whose broken promise made this one; `null` for any other.
    #[serde(serialize_with = "ser_opt_display")]
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub follow_up_of: Option<ReminderId>,
}

fn ser_phone<S: Serializer>(v: &PhoneNumber, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}
fn ser_opt_tz<S: Serializer>(v: &Option<TimeZone>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(tz) => s.serialize_str(tz.name()),
        None => s.serialize_none(),
    }
}
fn ser_opt_display<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
fn ser_zones<S: Serializer>(v: &[TimeZone], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|z| z.name()))
}
fn ser_language<S: Serializer>(v: &Language, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}
fn ser_currency<S: Serializer>(v: &Currency, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

impl Reminder {
    /// Attempts remain to be made.
    pub fn attempts_remain(&self) -> bool {
        self.attempt_count < self.max_attempts
    }

    /// The customer's own zone, for what happens in one zone (the agent's
    /// greeting, a promise's date): the given `timezone`, else the first
    /// calling zone.
    pub fn primary_zone(&self) -> TimeZone {
        self.timezone
            .or_else(|| self.calling_zones.first().copied())
            .unwrap_or_else(|| TimeZone::parse("America/New_York").expect("a zone"))
    }
}

/// Where one attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Room created and agent dispatched (or being dispatched); nothing heard yet.
    InProgress,
    /// The customer answered.
    Processing,
    /// The call ended with an outcome (reached or not: see the outcome).
    Completed,
    /// Dispatch failed, the agent reported a failure, or the attempt timed out.
    Failed,
}

impl AttemptStatus {
    pub const ALL: [AttemptStatus; 4] = [
        AttemptStatus::InProgress,
        AttemptStatus::Processing,
        AttemptStatus::Completed,
        AttemptStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::InProgress => "in_progress",
            AttemptStatus::Processing => "processing",
            AttemptStatus::Completed => "completed",
            AttemptStatus::Failed => "failed",
        }
    }
}

impl FromStr for AttemptStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttemptStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

/// One try to reach the customer, with everything that was heard of it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempt: u32,
    pub status: AttemptStatus,
    pub room_name: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub dispatched_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub outcome: Option<Outcome>,
    #[schema(required = true)]
    pub failure: Option<Failure>,
}

/// The LiveKit room of one attempt (SPEC §3).
pub fn room_name(id: ReminderId, attempt: u32) -> String {
    format!("reminder-{id}-{attempt}")
}

/// The reminder and attempt a room name names, if it is one of ours.
pub fn parse_room_name(name: &str) -> Option<(ReminderId, u32)> {
    let (id, attempt) = name.strip_prefix("reminder-")?.rsplit_once('-')?;
    let attempt: u32 = attempt.parse().ok().filter(|n| *n >= 1)?;
    let id = ReminderId::parse(id)?;
    // Only the canonical spelling: a room we did not name is not ours.
    (room_name(id, attempt) == name).then_some((id, attempt))
}

// ---------------------------------------------------------------------------
