//! The domain: ids, statuses, the reminder and its attempts, outcomes, and the
//! value types that are only built by parsing (so the inside never re-checks).
//!
//! Nothing here knows about HTTP, SQL or the clock: callers hand in `now`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Field errors: one bad value, named once, at the edge.

/// A value that failed to parse: which field, and why, in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

// ---------------------------------------------------------------------------
// Ids

/// The id of a reminder. A UUID (v7 for new ones, so they sort by creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReminderId(Uuid);

impl ReminderId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Parse the textual form; anything that is not a UUID is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::try_parse(s).ok().map(Self)
    }
}

impl Default for ReminderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ReminderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

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
// Parsed value types

/// A phone number in E.164: `+`, a non-zero digit, then 6 to 14 more digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                "phone_number",
                "must be an E.164 number: '+', country code and number, digits only, like +14155550100",
            )
        };
        let digits = s.strip_prefix('+').ok_or_else(bad)?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ISO 4217 codes a debt can be owed in (funds, metals and test codes excluded).
#[rustfmt::skip]
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP",
    "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF",
    "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD",
    "UYU", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER",
    "ZAR", "ZMW", "ZWG", "ZWL",
];

/// An ISO 4217 currency code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(&'static str);

impl Currency {
    /// Accepts the code in either case (`usd` is `USD`): unambiguous, and what
    /// several billing systems send.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let upper = s.to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|c| **c == upper)
            .map(|c| Self(c))
            .ok_or_else(|| {
                FieldError::new(
                    "currency",
                    "must be an ISO 4217 currency code, like USD or EUR",
                )
            })
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// Digits after the decimal point of the currency's minor unit (ISO 4217):
    /// 2 for most, 0 for JPY and friends, 3 for the dinars, 4 for the unidades.
    pub fn minor_digits(&self) -> u32 {
        match self.0 {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }

    /// An amount in minor units as people read it: `USD 123.45`, `JPY 500`.
    pub fn format_minor(&self, minor: i64) -> String {
        let digits = self.minor_digits();
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        if digits == 0 {
            return format!("{} {sign}{abs}", self.0);
        }
        let unit = 10u64.pow(digits);
        format!(
            "{} {sign}{}.{:0width$}",
            self.0,
            abs / unit,
            abs % unit,
            width = digits as usize
        )
    }
}

/// An IANA time zone, like `America/New_York`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        s.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            FieldError::new(
                "timezone",
                "must be an IANA time zone name, like America/New_York or Europe/Berlin",
            )
        })
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// A language tag (BCP 47 shape: `en`, `es-MX`), what the agent speaks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language(String);

impl Language {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let mut parts = s.split('-');
        let primary = parts.next().unwrap_or("");
        let ok = (2..=3).contains(&primary.len())
            && primary.bytes().all(|b| b.is_ascii_alphabetic())
            && parts.all(|p| {
                (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            && s.len() <= 35;
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(
                "language",
                "must be a language tag like en or es-MX",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
}

impl OutcomeResult {
    pub const ALL: [OutcomeResult; 11] = [
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
        }
    }

    /// The customer was not reached: the attempt is retried while attempts remain.
    pub fn is_unreached(self) -> bool {
        matches!(
            self,
            OutcomeResult::NoAnswer | OutcomeResult::Busy | OutcomeResult::Voicemail
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

/// Serialise a time as RFC 3339 UTC with a `Z`, sub-seconds only when present.
pub fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

pub fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// A time for a log line: RFC 3339, or `none`.
pub fn describe_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "none".to_owned(), format_time)
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

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
    #[serde(serialize_with = "ser_tz")]
    #[schema(value_type = String, example = "America/New_York")]
    pub timezone: TimeZone,
    #[serde(serialize_with = "ser_language")]
    #[schema(value_type = String, example = "en")]
    pub language: Language,
    pub amount_due_minor: i64,
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
}

fn ser_phone<S: Serializer>(v: &PhoneNumber, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}
fn ser_tz<S: Serializer>(v: &TimeZone, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
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
// Creating a reminder

/// Defaults that come from configuration.
#[derive(Debug, Clone)]
pub struct CreateDefaults {
    pub timezone: TimeZone,
    pub language: Language,
    pub max_attempts: u32,
}

pub const MAX_ATTEMPTS_LIMIT: u32 = 10;
const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;

/// A validated request to create a reminder.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReminder {
    pub external_id: Option<String>,
    pub customer_name: String,
    pub phone_number: PhoneNumber,
    pub timezone: TimeZone,
    pub language: Language,
    pub amount_due_minor: i64,
    pub currency: Currency,
    pub due_date: NaiveDate,
    /// When the first attempt may be made; `None` means at once.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub max_attempts: u32,
    pub metadata: Map<String, Value>,
}

/// The fields of a create body (anything else is refused).
pub const CREATE_FIELDS: &[&str] = &[
    "external_id",
    "customer_name",
    "phone_number",
    "timezone",
    "language",
    "amount_due_minor",
    "currency",
    "due_date",
    "scheduled_for",
    "max_attempts",
    "metadata",
];

impl NewReminder {
    /// Parse the body of `POST /api/reminders` (or a CSV row turned into the same
    /// map). Unknown fields are refused: a misspelt optional field would
    /// otherwise be dropped without a word.
    pub fn parse(body: &Map<String, Value>, defaults: &CreateDefaults) -> Result<Self, FieldError> {
        if let Some(unknown) = body.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                unknown.clone(),
                "is not a field of a reminder",
            ));
        }
        let present = |name: &str| body.get(name).filter(|v| !v.is_null());

        let raw_name = required_str(body, "customer_name")?;
        let customer_name = raw_name.trim().to_owned();
        if customer_name.is_empty() {
            return Err(FieldError::new("customer_name", "must not be empty"));
        }
        // Counted as sent (surrounding spaces included), as the published schema's maxLength is.
        if raw_name.chars().count() > MAX_NAME_CHARS {
            return Err(FieldError::new(
                "customer_name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if customer_name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "customer_name",
                "must not contain control characters",
            ));
        }

        let phone_number = PhoneNumber::parse(required_str(body, "phone_number")?)?;

        let amount_due_minor = match body.get("amount_due_minor") {
            None | Some(Value::Null) => return Err(missing("amount_due_minor")),
            Some(v) => v.as_i64().filter(|a| *a >= 0).ok_or_else(|| {
                FieldError::new(
                    "amount_due_minor",
                    "must be a whole, non-negative number of minor units (cents), like 12345",
                )
            })?,
        };

        let currency = Currency::parse(required_str(body, "currency")?)?;

        let due_date = parse_date(required_str(body, "due_date")?, "due_date")?;

        let external_id = match present("external_id") {
            None => None,
            Some(v) => {
                let s = v
                    .as_str()
                    .ok_or_else(|| FieldError::new("external_id", "must be a string"))?;
                if s.is_empty()
                    || s.chars().count() > MAX_EXTERNAL_ID_CHARS
                    || s.chars().any(char::is_control)
                {
                    return Err(FieldError::new(
                        "external_id",
                        format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} printable characters"),
                    ));
                }
                Some(s.to_owned())
            }
        };

        let timezone = match present("timezone") {
            None => defaults.timezone,
            Some(v) => TimeZone::parse(v.as_str().ok_or_else(|| {
                FieldError::new("timezone", "must be a string naming an IANA time zone")
            })?)?,
        };

        let language = match present("language") {
            None => defaults.language.clone(),
            Some(v) => Language::parse(
                v.as_str()
                    .ok_or_else(|| FieldError::new("language", "must be a string"))?,
            )?,
        };

        let scheduled_for = match present("scheduled_for") {
            None => None,
            Some(v) => {
                let s = v.as_str().ok_or_else(|| {
                    FieldError::new("scheduled_for", "must be an RFC 3339 time string")
                })?;
                Some(parse_time(s, "scheduled_for")?)
            }
        };

        let max_attempts = match present("max_attempts") {
            None => defaults.max_attempts,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_ATTEMPTS_LIMIT)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    FieldError::new(
                        "max_attempts",
                        format!("must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}"),
                    )
                })?,
        };

        let metadata = match present("metadata") {
            None => Map::new(),
            Some(v @ Value::Object(m)) => {
                if holds_nul(v) {
                    // PostgreSQL cannot store a NUL character; refuse it on every backend alike.
                    return Err(FieldError::new(
                        "metadata",
                        "must not contain NUL characters",
                    ));
                }
                let text = serde_json::to_string(m).unwrap_or_default();
                if text.len() > MAX_METADATA_BYTES {
                    return Err(FieldError::new(
                        "metadata",
                        format!("must be at most {} KiB of JSON", MAX_METADATA_BYTES / 1024),
                    ));
                }
                m.clone()
            }
            Some(_) => return Err(FieldError::new("metadata", "must be a JSON object")),
        };

        Ok(Self {
            external_id,
            customer_name,
            phone_number,
            timezone,
            language,
            amount_due_minor,
            currency,
            due_date,
            scheduled_for,
            max_attempts,
            metadata,
        })
    }

    /// The reminder as first stored: pending, due at `scheduled_for` or now.
    pub fn into_reminder(self, id: ReminderId, now: DateTime<Utc>) -> Reminder {
        Reminder {
            id,
            external_id: self.external_id,
            customer_name: self.customer_name,
            phone_number: self.phone_number,
            timezone: self.timezone,
            language: self.language,
            amount_due_minor: self.amount_due_minor,
            currency: self.currency,
            due_date: self.due_date,
            status: Status::Pending,
            attempt_count: 0,
            max_attempts: self.max_attempts,
            next_attempt_at: Some(
                self.scheduled_for
                    .map(crate::clock::to_millis)
                    .unwrap_or(now),
            ),
            last_attempt_at: None,
            skip_reason: None,
            outcome: None,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
        }
    }
}

fn missing(field: &str) -> FieldError {
    FieldError::new(field, "is required")
}

fn required_str<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

/// A calendar date, `YYYY-MM-DD`.
pub fn parse_date(s: &str, field: &str) -> Result<NaiveDate, FieldError> {
    if s.len() != 10 {
        return Err(FieldError::new(field, "must be a date like 2026-12-01"));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| FieldError::new(field, "must be a date like 2026-12-01"))
}

/// An RFC 3339 time with an offset, returned in UTC. Its UTC form must lie in
/// years 0000–9999 (`9999-12-31T23:59:59-23:59` is in year 10000 in UTC): the
/// service writes every time back in RFC 3339, which has four-digit years.
pub fn parse_time(s: &str, field: &str) -> Result<DateTime<Utc>, FieldError> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(field, "must be an RFC 3339 time like 2026-11-24T10:15:00Z")
        })?;
    if !crate::clock::is_storable(t) {
        return Err(FieldError::new(
            field,
            "must lie in years 0000 to 9999 once converted to UTC",
        ));
    }
    Ok(t)
}

/// Whether a JSON value holds a NUL character in any string or key (the
/// parsed text: `"\\u0000"`, a backslash and five characters, is fine).
fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

// ---------------------------------------------------------------------------
// Events: what an agent reports (SPEC §2), parsed

/// The kind of a call-status event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    CallAnswered,
    CallCompleted,
    CallFailed,
}

impl EventType {
    pub const ALL: [EventType; 3] = [
        EventType::CallAnswered,
        EventType::CallCompleted,
        EventType::CallFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallAnswered => "call_answered",
            EventType::CallCompleted => "call_completed",
            EventType::CallFailed => "call_failed",
        }
    }
}

impl FromStr for EventType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or(())
    }
}

/// What happened on the call, with what the agent said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Answered,
    Completed(Outcome),
    Failed(Option<Failure>),
}

/// One parsed call-status event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub reminder_id: ReminderId,
    /// The attempt it belongs to; `None` means the reminder's current one.
    pub attempt: Option<u32>,
    pub occurred_at: DateTime<Utc>,
    pub kind: EventKind,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self.kind {
            EventKind::Answered => EventType::CallAnswered,
            EventKind::Completed(_) => EventType::CallCompleted,
            EventKind::Failed(_) => EventType::CallFailed,
        }
    }
}

// ---------------------------------------------------------------------------
// Changes: what a decision writes

/// New values for the reminder row (all of them; `outcome: None` keeps the stored one).
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderUpdate {
    pub status: Status,
    pub attempt_count: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub skip_reason: Option<String>,
    pub outcome: Option<Outcome>,
}

/// What to write on an attempt's own record.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptWrite {
    /// A new attempt row (the scheduler's claim).
    Start { attempt: u32, room_name: String },
    /// Move the attempt from `expect_status` to `status` and fill what was not
    /// yet known (a field already set keeps its first value).
    Update {
        attempt: u32,
        expect_status: AttemptStatus,
        status: AttemptStatus,
        answered_at: Option<DateTime<Utc>>,
        ended_at: Option<DateTime<Utc>>,
        outcome: Option<Outcome>,
        failure: Option<Failure>,
    },
}

/// What to write when a decision is taken about a reminder. The store writes
/// it in one transaction, and only if the reminder is still at `expect_status`
/// / `expect_attempt` (and the attempt at its `expect_status`): a
/// compare-and-set, so two racing decisions can never both win.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub reminder_id: ReminderId,
    pub expect_status: Status,
    pub expect_attempt: u32,
    pub at: DateTime<Utc>,
    pub reminder: Option<ReminderUpdate>,
    pub attempt: Option<AttemptWrite>,
}

impl Change {
    fn guard(r: &Reminder, at: DateTime<Utc>) -> Self {
        Self {
            reminder_id: r.id,
            expect_status: r.status,
            expect_attempt: r.attempt_count,
            at,
            reminder: None,
            attempt: None,
        }
    }
}

/// Why a decision was refused: the transition is not in SPEC §1's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub message: String,
}

pub const SKIP_CANCELLED_BY_OPERATOR: &str = "cancelled_by_operator";
pub const SKIP_OPTED_OUT: &str = "opted_out";
pub const SKIP_MAX_ATTEMPTS: &str = "max_attempts_reached";
pub const SKIP_CALL_TIMEOUT: &str = "call_timeout";
pub const SKIP_ROOM_CLOSED: &str = "room_closed_without_report";
/// The prefix of `dispatch_failed: {step}: {message}`.
pub const SKIP_DISPATCH_FAILED: &str = "dispatch_failed";

/// Was the current attempt failed by the service's guess rather than by the
/// agent's word? A timeout, a room closed without a report, or a dial that
/// reported an error (a dispatch can land even when its request failed). A
/// completion the agent reports for that attempt then still counts.
pub fn failed_by_guess(skip_reason: Option<&str>) -> bool {
    match skip_reason {
        Some(SKIP_CALL_TIMEOUT | SKIP_ROOM_CLOSED) => true,
        Some(s) => s
            .strip_prefix(SKIP_DISPATCH_FAILED)
            .is_some_and(|rest| rest.starts_with(':')),
        None => false,
    }
}

/// An operator cancels: allowed from `pending` and `failed` (SPEC §1); a live
/// call cannot be cancelled under it, and a finished reminder stays finished.
/// Cancelling an already cancelled reminder is not a change (`Ok(None)`).
pub fn cancel(reminder: &Reminder, now: DateTime<Utc>) -> Result<Option<Change>, Refusal> {
    match reminder.status {
        Status::Pending | Status::Failed => Ok(Some(Change {
            reminder: Some(ReminderUpdate {
                status: Status::Cancelled,
                attempt_count: reminder.attempt_count,
                next_attempt_at: None,
                last_attempt_at: reminder.last_attempt_at,
                skip_reason: Some(SKIP_CANCELLED_BY_OPERATOR.to_owned()),
                outcome: None,
            }),
            ..Change::guard(reminder, now)
        })),
        Status::Cancelled => Ok(None),
        s @ (Status::InProgress | Status::Processing) => Err(Refusal {
            status: s,
            message: format!("a call is live ({s}); it can be cancelled once the attempt ends"),
        }),
        s @ Status::Completed => Err(Refusal {
            status: s,
            message: "the reminder is completed; there is nothing left to cancel".to_owned(),
        }),
    }
}

/// The scheduler claims a due reminder for its next attempt: `pending` or a
/// retryable `failed` with attempts remaining becomes `in_progress`, with a new
/// attempt row. (Whether it is *due* — time, window, caps — is the policy's call.)
pub fn claim(reminder: &Reminder, now: DateTime<Utc>) -> Result<Change, Refusal> {
    let claimable = match reminder.status {
        Status::Pending => true,
        Status::Failed => reminder.next_attempt_at.is_some(),
        _ => false,
    };
    if !claimable || !reminder.attempts_remain() {
        return Err(Refusal {
            status: reminder.status,
            message: format!(
                "a {} reminder with {} of {} attempts made cannot be claimed",
                reminder.status, reminder.attempt_count, reminder.max_attempts
            ),
        });
    }
    let attempt = reminder.attempt_count + 1;
    Ok(Change {
        reminder: Some(ReminderUpdate {
            status: Status::InProgress,
            attempt_count: attempt,
            next_attempt_at: None,
            last_attempt_at: Some(now),
            skip_reason: None,
            outcome: None,
        }),
        attempt: Some(AttemptWrite::Start {
            attempt,
            room_name: room_name(reminder.id, attempt),
        }),
        ..Change::guard(reminder, now)
    })
}

/// What the state machine needs besides the reminder and the event.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub retry: &'a crate::policy::RetryPolicy,
    /// A draw from 0.0 to 1.0 for the retry jitter (random in service, fixed in tests).
    pub jitter: f64,
}

/// How an event was taken (SPEC §2's status codes follow from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It changed the reminder: 200, `applied: true`.
    Applied,
    /// News the current attempt has already moved past (answered after
    /// completed, a second report): recorded, 200, `applied: false`.
    Ignored,
    /// For an attempt other than the current one: recorded on that attempt, 409.
    StaleAttempt,
    /// The reminder has no attempt to apply it to (never dispatched, or
    /// cancelled by an operator): 409.
    NoAttempt,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Applied,
        Verdict::Ignored,
        Verdict::StaleAttempt,
        Verdict::NoAttempt,
    ];

    /// As stored with the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Applied => "applied",
            Verdict::Ignored => "ignored",
            Verdict::StaleAttempt => "stale_attempt",
            Verdict::NoAttempt => "no_attempt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The decision on one event: how it was taken, and what to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub change: Change,
}

/// Where a retry goes when a call ended without reaching an outcome: `pending`
/// or retryable `failed` with the next attempt scheduled, or — when no attempt
/// remains or the failure is permanent — terminal with `next_attempt_at = null`.
fn after_unsuccessful(
    r: &Reminder,
    status: Status,
    skip_reason: String,
    retry: bool,
    ctx: &Ctx,
) -> ReminderUpdate {
    let next = (retry && r.attempts_remain()).then(|| {
        ctx.retry
            .retry_at(r.attempt_count, ctx.now, r.timezone, ctx.jitter)
    });
    ReminderUpdate {
        status,
        attempt_count: r.attempt_count,
        next_attempt_at: next,
        last_attempt_at: r.last_attempt_at,
        skip_reason: Some(skip_reason),
        outcome: None,
    }
}

/// The reminder after its current attempt ended with `outcome`.
fn after_outcome(r: &Reminder, outcome: &Outcome, ctx: &Ctx) -> ReminderUpdate {
    let mut update = if outcome.result == OutcomeResult::OptedOut {
        ReminderUpdate {
            status: Status::Cancelled,
            attempt_count: r.attempt_count,
            next_attempt_at: None,
            last_attempt_at: r.last_attempt_at,
            skip_reason: Some(SKIP_OPTED_OUT.to_owned()),
            outcome: None,
        }
    } else if outcome.result.is_unreached() {
        if r.attempts_remain() {
            after_unsuccessful(
                r,
                Status::Pending,
                outcome.result.as_str().to_owned(),
                true,
                ctx,
            )
        } else {
            after_unsuccessful(r, Status::Failed, SKIP_MAX_ATTEMPTS.to_owned(), false, ctx)
        }
    } else {
        ReminderUpdate {
            status: Status::Completed,
            attempt_count: r.attempt_count,
            next_attempt_at: None,
            last_attempt_at: r.last_attempt_at,
            skip_reason: None,
            outcome: None,
        }
    };
    update.outcome = Some(outcome.clone());
    update
}

/// The reminder after its current attempt failed as the agent reported.
fn after_failure(r: &Reminder, failure: Option<&Failure>, ctx: &Ctx) -> ReminderUpdate {
    let reason = failure
        .and_then(|f| f.reason.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    let retryable = failure.and_then(|f| f.retryable).unwrap_or(true);
    after_unsuccessful(
        r,
        Status::Failed,
        format!("call_failed: {reason}"),
        retryable,
        ctx,
    )
}

/// The record an event leaves on its attempt. `guessed`: the attempt was failed
/// by the service (timeout, room closed) rather than by the agent's word, so
/// the agent's completion may still correct it. The attempt's times are the
/// service's own (`received`, when the event reached it): they measure the
/// call limit, and an agent's clock hours or years off must not stretch it.
/// What the agent reported (`occurred_at`) stays on the stored event.
fn record_on_attempt(
    att: &Attempt,
    ev: &Event,
    guessed: bool,
    received: DateTime<Utc>,
) -> AttemptWrite {
    use AttemptStatus as A;
    let live = matches!(att.status, A::InProgress | A::Processing);
    let (status, answered_at, ended_at, outcome, failure) = match &ev.kind {
        EventKind::Answered => {
            let status = if att.status == A::InProgress {
                A::Processing
            } else {
                att.status
            };
            (status, Some(received), None, None, None)
        }
        EventKind::Completed(o) => {
            let status = if live || (guessed && att.status == A::Failed) {
                A::Completed
            } else {
                att.status
            };
            (status, None, Some(received), Some(o.clone()), None)
        }
        EventKind::Failed(f) => {
            let status = if live { A::Failed } else { att.status };
            let failure = f.clone().unwrap_or(Failure {
                reason: None,
                sip_status: None,
                retryable: None,
            });
            (status, None, Some(received), None, Some(failure))
        }
    };
    AttemptWrite::Update {
        attempt: att.attempt,
        expect_status: att.status,
        status,
        answered_at,
        ended_at,
        outcome,
        failure,
    }
}

/// The state machine of SPEC §1 for agent events: what `ev` does to `r`.
/// `attempt` is the stored record of the attempt the event names (the current
/// one when it names none), if there is one.
pub fn transition(r: &Reminder, attempt: Option<&Attempt>, ev: &Event, ctx: &Ctx) -> Decision {
    let target = ev.attempt.unwrap_or(r.attempt_count);
    let mut change = Change::guard(r, ctx.now);
    let guessed = r.status == Status::Failed && failed_by_guess(r.skip_reason.as_deref());
    change.attempt = attempt
        .filter(|a| a.attempt == target)
        .map(|a| record_on_attempt(a, ev, guessed && target == r.attempt_count, ctx.now));

    let verdict = if r.attempt_count == 0 {
        Verdict::NoAttempt
    } else if target != r.attempt_count {
        Verdict::StaleAttempt
    } else {
        match (r.status, &ev.kind) {
            (Status::InProgress, EventKind::Answered) => {
                change.reminder = Some(ReminderUpdate {
                    status: Status::Processing,
                    attempt_count: r.attempt_count,
                    next_attempt_at: None,
                    last_attempt_at: r.last_attempt_at,
                    skip_reason: None,
                    outcome: None,
                });
                Verdict::Applied
            }
            (Status::InProgress | Status::Processing, EventKind::Completed(o)) => {
                change.reminder = Some(after_outcome(r, o, ctx));
                Verdict::Applied
            }
            (Status::InProgress | Status::Processing, EventKind::Failed(f)) => {
                change.reminder = Some(after_failure(r, f.as_ref(), ctx));
                Verdict::Applied
            }
            // A late completion of a timed-out attempt: evidence beats a guess.
            (Status::Failed, EventKind::Completed(o)) if guessed => {
                change.reminder = Some(after_outcome(r, o, ctx));
                Verdict::Applied
            }
            (Status::Cancelled, _)
                if r.skip_reason.as_deref() == Some(SKIP_CANCELLED_BY_OPERATOR) =>
            {
                Verdict::NoAttempt
            }
            // Answered twice, answered after completed, a second report of an ended attempt.
            _ => Verdict::Ignored,
        }
    };
    Decision { verdict, change }
}

/// The service gives up waiting on the current attempt (`call_timeout`), or
/// learns its room closed without a report (`room_closed_without_report`).
/// Only a live attempt can be failed so; `None` otherwise.
pub fn fail_live_attempt(
    r: &Reminder,
    attempt: Option<&Attempt>,
    reason: &str,
    ctx: &Ctx,
) -> Option<Change> {
    if !r.status.is_live() {
        return None;
    }
    let mut change = Change::guard(r, ctx.now);
    change.reminder = Some(after_unsuccessful(
        r,
        Status::Failed,
        reason.to_owned(),
        true,
        ctx,
    ));
    change.attempt =
        attempt
            .filter(|a| a.attempt == r.attempt_count)
            .map(|a| AttemptWrite::Update {
                attempt: a.attempt,
                expect_status: a.status,
                status: AttemptStatus::Failed,
                answered_at: None,
                ended_at: Some(ctx.now),
                outcome: None,
                failure: Some(Failure {
                    reason: Some(reason.to_owned()),
                    sip_status: None,
                    retryable: Some(true),
                }),
            });
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> CreateDefaults {
        CreateDefaults {
            timezone: TimeZone::parse("America/New_York").unwrap(),
            language: Language::parse("en").unwrap(),
            max_attempts: 3,
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn valid() -> Value {
        json!({"customer_name": "Ada Lovelace", "phone_number": "+14155550100",
               "amount_due_minor": 12345, "currency": "usd", "due_date": "2026-12-01"})
    }

    #[test]
    fn amounts_read_in_their_currency_minor_unit() {
        let fmt = |c: &str, n| Currency::parse(c).unwrap().format_minor(n);
        assert_eq!(fmt("USD", 12345), "USD 123.45");
        assert_eq!(fmt("EUR", 5), "EUR 0.05");
        assert_eq!(fmt("JPY", 500), "JPY 500");
        assert_eq!(fmt("KWD", 1234), "KWD 1.234");
        assert_eq!(fmt("USD", -250), "USD -2.50");
        assert_eq!(fmt("USD", i64::MIN), "USD -92233720368547758.08");
    }

    #[test]
    fn parses_a_minimal_reminder_with_defaults() {
        let r = NewReminder::parse(&body(valid()), &defaults()).unwrap();
        assert_eq!(r.currency.as_str(), "USD");
        assert_eq!(r.timezone.name(), "America/New_York");
        assert_eq!(r.language.as_str(), "en");
        assert_eq!(r.max_attempts, 3);
        assert!(r.metadata.is_empty());
        assert_eq!(r.external_id, None);
    }

    #[test]
    fn each_required_field_is_named_when_missing() {
        for field in [
            "customer_name",
            "phone_number",
            "amount_due_minor",
            "currency",
            "due_date",
        ] {
            let mut b = body(valid());
            b.remove(field);
            let err = NewReminder::parse(&b, &defaults()).unwrap_err();
            assert_eq!(err.field, field);
            assert_eq!(err.message, "is required");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("phone_number", json!("4155550100")),
            ("phone_number", json!("+0155550100")),
            ("phone_number", json!("+1 415 555 0100")),
            ("phone_number", json!("+1234")),
            ("phone_number", json!("+1234567890123456")),
            ("amount_due_minor", json!(-1)),
            ("amount_due_minor", json!(12.5)),
            ("amount_due_minor", json!("100")),
            ("currency", json!("XYZ")),
            ("currency", json!("XAU")),
            ("due_date", json!("2026-13-01")),
            ("due_date", json!("01/12/2026")),
            ("timezone", json!("Mars/Olympus")),
            ("language", json!("english!")),
            ("scheduled_for", json!("tomorrow")),
            ("max_attempts", json!(0)),
            ("max_attempts", json!(11)),
            ("metadata", json!([1, 2])),
            ("customer_name", json!("   ")),
            ("customer_name", json!(42)),
            // Counted as sent: the published maxLength is 200 (found by schemathesis).
            ("customer_name", json!(format!(" {} ", "a".repeat(199)))),
            ("external_id", json!("")),
            ("external_id", json!(7)),
            ("metadata", json!({"a": "nul\u{0}here"})),
        ];
        for (field, value) in cases {
            let mut b = body(valid());
            b.insert(field.to_owned(), value.clone());
            let err = NewReminder::parse(&b, &defaults())
                .expect_err(&format!("{field}={value} must be refused"));
            assert_eq!(err.field, field, "{value}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut b = body(valid());
        b.insert("max_attempt".into(), json!(2));
        let err = NewReminder::parse(&b, &defaults()).unwrap_err();
        assert_eq!(err.field, "max_attempt");
    }

    #[test]
    fn e164_accepts_real_numbers() {
        for n in ["+14155550100", "+442071838750", "+4930901820", "+6831234"] {
            assert!(PhoneNumber::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn cancel_follows_the_table() {
        let now = Utc::now();
        let mut r = NewReminder::parse(&body(valid()), &defaults())
            .unwrap()
            .into_reminder(ReminderId::new(), now);
        for (status, expect) in [
            (Status::Pending, Some(true)),
            (Status::Failed, Some(true)),
            (Status::Cancelled, Some(false)),
            (Status::InProgress, None),
            (Status::Processing, None),
            (Status::Completed, None),
        ] {
            r.status = status;
            match (cancel(&r, now), expect) {
                (Ok(Some(c)), Some(true)) => {
                    let u = c.reminder.expect("cancel changes the reminder");
                    assert_eq!(u.status, Status::Cancelled);
                    assert_eq!(c.expect_status, status);
                    assert_eq!(u.next_attempt_at, None);
                }
                (Ok(None), Some(false)) => {}
                (Err(refusal), None) => assert_eq!(refusal.status, status),
                (got, _) => panic!("{status}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn room_names_parse_back_and_strangers_do_not() {
        let id = ReminderId::new();
        assert_eq!(parse_room_name(&room_name(id, 3)), Some((id, 3)));
        for other in [
            "reminder-",
            "reminder-xyz-1",
            "lobby",
            &format!("reminder-{id}-0"),
            &format!("reminder-{id}-01"),
            &format!("reminder-{id}-+1"),
            &format!("reminder-{}-1", id.to_string().to_uppercase()),
            &format!("Reminder-{id}-1"),
        ] {
            assert_eq!(parse_room_name(other), None, "{other}");
        }
    }

    #[test]
    fn room_names_follow_the_spec() {
        let id = ReminderId::parse("0190f1f4-7c1e-7a4b-9a55-6c1f0f0e0d0c").unwrap();
        assert_eq!(
            room_name(id, 2),
            "reminder-0190f1f4-7c1e-7a4b-9a55-6c1f0f0e0d0c-2"
        );
    }
}
