//! Creating a reminder: the create body (API and CSV import) parsed into a
//! `NewReminder`, with the defaults configuration gives.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::*;

// Creating a reminder

/// Defaults that come from configuration.
#[derive(Debug, Clone)]
pub struct CreateDefaults {
    /// For a reminder with neither a `timezone` nor a number that maps to a zone.
    pub timezone: TimeZone,
    pub zone_policy: ZonePolicy,
    pub language: Language,
    pub max_attempts: u32,
}

pub const MAX_ATTEMPTS_LIMIT: u32 = 10;
const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EXTERNAL_ID_CHARS: usize = 255;
/// `metadata.verify`: the second identifier the agent asks for (SPEC §10).
pub const VERIFY_KEY: &str = "verify";
pub const MAX_VERIFY_LABEL_CHARS: usize = 60;
pub const MAX_VERIFY_VALUE_CHARS: usize = 100;

/// A validated request to create a reminder.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReminder {
    pub external_id: Option<String>,
    pub customer_name: String,
    pub phone_number: PhoneNumber,
    /// As given (`None` when the create named none).
    pub timezone: Option<TimeZone>,
    /// The zones it may be called in (SPEC §7), computed at creation.
    pub calling_zones: Vec<TimeZone>,
    /// The debt it is about; `None`: its `external_id`, else its own id.
    pub debt_ref: Option<String>,
    pub region: Option<Region>,
    pub language: Language,
    pub amount_due_minor: i64,
    pub currency: Currency,
    pub due_date: NaiveDate,
    /// When the first attempt may be made; `None` means at once.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub max_attempts: u32,
    pub metadata: Map<String, Value>,
    /// The number is on the suppression list: stored `cancelled` (`suppressed`)
    /// from the start. Never parsed; the edge sets it after asking the store.
    pub suppressed: bool,
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
    "debt_ref",
    "region",
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
            None => None,
            Some(v) => Some(TimeZone::parse(v.as_str().ok_or_else(|| {
                FieldError::new("timezone", "must be a string naming an IANA time zone")
            })?)?),
        };
        let calling_zones = calling_zones(
            timezone,
            &phone_number,
            defaults.zone_policy,
            defaults.timezone,
        );

        let debt_ref = match present("debt_ref") {
            None => None,
            Some(v) => {
                let s = v
                    .as_str()
                    .ok_or_else(|| FieldError::new("debt_ref", "must be a string"))?;
                if s.is_empty()
                    || s.chars().count() > MAX_EXTERNAL_ID_CHARS
                    || s.chars().any(char::is_control)
                {
                    return Err(FieldError::new(
                        "debt_ref",
                        format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} printable characters"),
                    ));
                }
                Some(s.to_owned())
            }
        };
        let region = match present("region") {
            None => None,
            Some(v) => {
                Some(Region::parse(v.as_str().ok_or_else(|| {
                    FieldError::new("region", "must be a string")
                })?)?)
            }
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
                let mut m = m.clone();
                if let Some(v) = m.get_mut(VERIFY_KEY) {
                    if !v.is_null() {
                        *v = parse_verify(v)?;
                    }
                }
                m
            }
            Some(_) => return Err(FieldError::new("metadata", "must be a JSON object")),
        };

        Ok(Self {
            external_id,
            customer_name,
            phone_number,
            timezone,
            calling_zones,
            debt_ref,
            region,
            language,
            amount_due_minor,
            currency,
            due_date,
            scheduled_for,
            max_attempts,
            metadata,
            suppressed: false,
        })
    }

    /// The reminder as first stored: pending, due at `scheduled_for` or now
    /// (or `cancelled`, `suppressed`, when its number is on the list).
    pub fn into_reminder(self, id: ReminderId, now: DateTime<Utc>) -> Reminder {
        let debt_ref = self
            .debt_ref
            .or_else(|| self.external_id.clone())
            .unwrap_or_else(|| id.to_string());
        let suppressed = self.suppressed;
        let reminder = Reminder {
            id,
            external_id: self.external_id,
            customer_name: self.customer_name,
            phone_number: self.phone_number,
            timezone: self.timezone,
            calling_zones: self.calling_zones,
            debt_ref,
            region: self.region,
            deferred_by: None,
            language: self.language,
            amount_due_minor: self.amount_due_minor,
            amount_paid_minor: 0,
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
            promise: None,
            follow_up_of: None,
        };
        if suppressed {
            reminder.cancelled_as_suppressed()
        } else {
            reminder
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

/// Whether a JSON value holds a NUL character in any string or key (the
/// parsed text: `"\\u0000"`, a backslash and five characters, is fine).
/// `metadata.verify`, `{"label": "ZIP code", "value": "02139"}`: both
/// non-empty plain text within their limits (stored trimmed), nothing else in
/// it. The agent refuses the whole call on a bad one, so it is refused here,
/// at the door, where the business can still correct it.
fn parse_verify(v: &Value) -> Result<Value, FieldError> {
    const FIELD: &str = "metadata.verify";
    let Value::Object(m) = v else {
        return Err(FieldError::new(
            FIELD,
            "must be an object with label and value, like {\"label\": \"ZIP code\", \"value\": \"12345\"}",
        ));
    };
    if let Some(other) = m.keys().find(|k| *k != "label" && *k != "value") {
        return Err(FieldError::new(
            FIELD,
            format!("has only label and value, not {other:?}"),
        ));
    }
    let text = |key: &str, limit: usize| -> Result<String, FieldError> {
        let field = || format!("{FIELD}.{key}");
        let s = match m.get(key) {
            None | Some(Value::Null) => return Err(FieldError::new(field(), "is required")),
            Some(Value::String(s)) => s.trim(),
            Some(_) => return Err(FieldError::new(field(), "must be a string")),
        };
        if s.is_empty() {
            return Err(FieldError::new(field(), "must not be empty"));
        }
        if s.chars().count() > limit {
            return Err(FieldError::new(
                field(),
                format!("must be at most {limit} characters"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(FieldError::new(
                field(),
                "must not contain control characters",
            ));
        }
        Ok(s.to_owned())
    };
    let label = text("label", MAX_VERIFY_LABEL_CHARS)?;
    let value = text("value", MAX_VERIFY_VALUE_CHARS)?;
    Ok(serde_json::json!({"label": label, "value": value}))
}

fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}
