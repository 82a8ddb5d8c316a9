//! The wire: Standard Webhooks verification (standardwebhooks.com) over the raw
//! body, and the call-status payload parsed into a typed `Event` (SPEC §2).
//!
//! Nothing here reads the clock or touches storage: callers pass `now`.

use std::fmt;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::{
    parse_date, parse_time, Event, EventKind, EventType, Failure, FieldError, Outcome,
    OutcomeResult, ReminderId, MAX_ATTEMPTS_LIMIT,
};

/// A timestamp further than this from the server's clock, either way, is refused.
pub const TOLERANCE_SECS: i64 = 300;

/// One or more `whsec_` secrets (comma-separated for rotation), decoded to key bytes.
#[derive(Clone)]
pub struct WebhookSecrets {
    keys: Vec<Vec<u8>>,
}

impl WebhookSecrets {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, part) in s.split(',').map(str::trim).enumerate() {
            let b64 = part.strip_prefix("whsec_").ok_or_else(|| {
                format!(
                    "secret #{} must start with whsec_ (then base64 of the key)",
                    i + 1
                )
            })?;
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| format!("secret #{} is not valid base64 after whsec_", i + 1))?;
            if key.len() < 16 {
                return Err(format!(
                    "secret #{} must decode to at least 16 bytes",
                    i + 1
                ));
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(Vec::as_slice)
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets([REDACTED; {}])", self.keys.len())
    }
}

/// Why a delivery's signature was refused (all answer 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    MissingHeader(&'static str),
    BadTimestamp,
    OutsideTolerance,
    NoMatchingSignature,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::MissingHeader(h) => write!(f, "missing {h} header"),
            VerifyError::BadTimestamp => f.write_str("webhook-timestamp must be Unix seconds"),
            VerifyError::OutsideTolerance => write!(
                f,
                "webhook-timestamp is more than {TOLERANCE_SECS} s from the server's clock"
            ),
            VerifyError::NoMatchingSignature => {
                f.write_str("no webhook-signature matches the body with any configured secret")
            }
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` entry for `body` under `key`: `v1,<base64>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

impl WebhookSecrets {
    /// Verify a delivery: the timestamp within tolerance of `now_unix`, and some
    /// `v1` signature of `{id}.{timestamp}.{body}` matching some secret, compared
    /// in constant time. Other signature versions are skipped, as the standard says.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        let id = id
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingHeader("webhook-id"))?;
        let timestamp = timestamp
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
        let signatures = signatures
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingHeader("webhook-signature"))?;
        if timestamp.is_empty()
            || timestamp.len() > 12
            || !timestamp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(VerifyError::BadTimestamp);
        }
        let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
        // abs_diff: no overflow whatever clock value a caller passes (found by the fuzzer's harness).
        if now_unix.abs_diff(ts) > TOLERANCE_SECS as u64 {
            return Err(VerifyError::OutsideTolerance);
        }
        let candidates: Vec<Vec<u8>> = signatures
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .collect();
        let mut matched = false;
        for key in self.keys() {
            let expected = mac(key, id, timestamp, body).finalize().into_bytes();
            for candidate in &candidates {
                // Length is public (always 32 for a real tag); the bytes compare in constant time.
                if candidate.len() == expected.len()
                    && bool::from(candidate.as_slice().ct_eq(&expected))
                {
                    matched = true;
                }
            }
        }
        if matched {
            Ok(())
        } else {
            Err(VerifyError::NoMatchingSignature)
        }
    }
}

/// Why a (verified) body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Not JSON, or not an object: 400.
    Json(String),
    /// A field is missing or invalid: 400.
    Field(FieldError),
    /// `reminder_id` is a string that names no reminder (not even a UUID): 404.
    UnknownReminder(String),
}

impl From<FieldError> for PayloadError {
    fn from(e: FieldError) -> Self {
        PayloadError::Field(e)
    }
}

const MAX_TEXT_BYTES: usize = 60 * 1024;

fn text_field(
    map: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<String>, FieldError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.contains('\0') {
                Err(FieldError::new(path, "must not contain NUL characters"))
            } else if s.len() > MAX_TEXT_BYTES {
                Err(FieldError::new(path, "is too long"))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(_) => Err(FieldError::new(path, "must be a string")),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, FieldError> {
    v.as_object()
        .ok_or_else(|| FieldError::new(path, "must be a JSON object"))
}

fn parse_outcome(v: &Value) -> Result<Outcome, FieldError> {
    let m = object(v, "outcome")?;
    let result = match m.get("result") {
        None | Some(Value::Null) => return Err(FieldError::new("outcome.result", "is required")),
        Some(Value::String(s)) => s.parse::<OutcomeResult>().map_err(|()| {
            FieldError::new(
                "outcome.result",
                format!(
                    "must be one of {}",
                    OutcomeResult::ALL.map(OutcomeResult::as_str).join(", ")
                ),
            )
        })?,
        Some(_) => return Err(FieldError::new("outcome.result", "must be a string")),
    };
    let promised_amount_minor = match m.get("promised_amount_minor") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().filter(|a| *a >= 0).ok_or_else(|| {
            FieldError::new(
                "outcome.promised_amount_minor",
                "must be a whole, non-negative number of minor units",
            )
        })?),
    };
    let promised_date = text_field(m, "promised_date", "outcome.promised_date")?
        .map(|s| parse_date(&s, "outcome.promised_date"))
        .transpose()?;
    let duration_seconds = match m.get("duration_seconds") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| {
                    FieldError::new(
                        "outcome.duration_seconds",
                        "must be a whole, non-negative number",
                    )
                })?,
        ),
    };
    Ok(Outcome {
        result,
        promised_amount_minor,
        promised_date,
        summary: text_field(m, "summary", "outcome.summary")?,
        transcript: text_field(m, "transcript", "outcome.transcript")?,
        duration_seconds,
        callback_at: text_field(m, "callback_at", "outcome.callback_at")?
            .map(|s| parse_time(&s, "outcome.callback_at").map(crate::clock::to_millis))
            .transpose()?,
    })
}

fn parse_failure(v: &Value) -> Result<Failure, FieldError> {
    let m = object(v, "failure")?;
    let sip_status = match m.get("sip_status") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|s| (100..=699).contains(s))
                .map(|s| s as u16)
                .ok_or_else(|| {
                    FieldError::new("failure.sip_status", "must be a SIP status code (100-699)")
                })?,
        ),
    };
    let retryable = match m.get("retryable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(FieldError::new(
                "failure.retryable",
                "must be true or false",
            ))
        }
    };
    Ok(Failure {
        reason: text_field(m, "reason", "failure.reason")?,
        sip_status,
        retryable,
    })
}

/// Parse a call-status body (already verified) into an `Event`. Every field is
/// checked before the reminder id is resolved, so a malformed body is a 400
/// even when its id is unknown. Unknown fields are ignored.
pub fn parse_event(body: &[u8], received_at: DateTime<Utc>) -> Result<Event, PayloadError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| PayloadError::Json(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(m) = value else {
        return Err(PayloadError::Json("the body must be a JSON object".into()));
    };

    let event_type = match m.get("event_type") {
        None | Some(Value::Null) => return Err(FieldError::new("event_type", "is required").into()),
        Some(Value::String(s)) => s.parse::<EventType>().map_err(|()| {
            FieldError::new(
                "event_type",
                "must be one of call_answered, call_completed, call_failed",
            )
        })?,
        Some(_) => return Err(FieldError::new("event_type", "must be a string").into()),
    };
    let raw_id = match m.get("reminder_id") {
        None | Some(Value::Null) => {
            return Err(FieldError::new("reminder_id", "is required").into())
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(FieldError::new("reminder_id", "must be a string").into()),
    };
    let attempt = match m.get("attempt") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            // No reminder ever has more attempts than MAX_ATTEMPTS_LIMIT.
            v.as_u64()
                .filter(|a| (1..=u64::from(MAX_ATTEMPTS_LIMIT)).contains(a))
                .map(|a| a as u32)
                .ok_or_else(|| {
                    FieldError::new(
                        "attempt",
                        format!("must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}"),
                    )
                })?,
        ),
    };
    let occurred_at = match text_field(&m, "occurred_at", "occurred_at")? {
        None => received_at,
        Some(s) => crate::clock::to_millis(parse_time(&s, "occurred_at")?),
    };
    let outcome = m
        .get("outcome")
        .filter(|v| !v.is_null())
        .map(parse_outcome)
        .transpose()?;
    let failure = m
        .get("failure")
        .filter(|v| !v.is_null())
        .map(parse_failure)
        .transpose()?;
    let kind = match event_type {
        EventType::CallAnswered => EventKind::Answered,
        EventType::CallCompleted => EventKind::Completed(
            outcome.ok_or_else(|| FieldError::new("outcome", "is required for call_completed"))?,
        ),
        EventType::CallFailed => EventKind::Failed(failure),
    };
    let reminder_id = ReminderId::parse(&raw_id).ok_or(PayloadError::UnknownReminder(raw_id))?;
    Ok(Event {
        reminder_id,
        attempt,
        occurred_at,
        kind,
    })
}

/// A `webhook-id` is the event's idempotency key: 1 to 255 visible ASCII characters.
pub fn check_webhook_id(id: &str) -> Result<(), FieldError> {
    if (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(FieldError::new(
            "webhook-id",
            "must be 1 to 255 visible ASCII characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_secrets_and_refuses_bad_ones() {
        let s = WebhookSecrets::parse(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        )
        .unwrap();
        assert_eq!(s.keys().count(), 2);
        assert!(WebhookSecrets::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecrets::parse("whsec_!!!").is_err());
        assert!(WebhookSecrets::parse("whsec_c2hvcnQ=").is_err());
        assert!(!format!("{s:?}").contains("MfKQ"));
    }

    #[test]
    fn extreme_clocks_are_refused_not_a_panic() {
        let secrets = WebhookSecrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        for now in [i64::MIN, i64::MAX] {
            assert!(matches!(
                secrets.verify(Some("m"), Some("1"), Some("v1,x"), b"", now),
                Err(VerifyError::OutsideTolerance)
            ));
        }
    }
}
