//! Payments against a reminder's debt (SPEC §8): what a payment request
//! says, and what a payment does to the reminder. Pure: the store writes the
//! payment, the sum and the settlement in one transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::*;

/// The most one payment may be, in minor units (a sanity bound, far above
/// any real debt: 10^15).
pub const MAX_PAYMENT_MINOR: i64 = 1_000_000_000_000_000;

/// Why a settled reminder is not called again.
pub const SKIP_PAID: &str = "paid";

/// The body of `POST /api/reminders/{id}/payments`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub amount_minor: i64,
    /// When it was paid; the time it is recorded when not given.
    pub paid_at: Option<DateTime<Utc>>,
    /// The payer's or the processor's reference: a payment sent again with
    /// the same reference (for the same reminder) is the same payment.
    pub reference: Option<String>,
}

const PAYMENT_FIELDS: [&str; 3] = ["amount_minor", "paid_at", "reference"];

impl NewPayment {
    /// Check a request's fields; unknown ones are refused.
    pub fn parse(map: &Map<String, Value>) -> Result<Self, FieldError> {
        if let Some(unknown) = map.keys().find(|k| !PAYMENT_FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                unknown.clone(),
                "is not a field of a payment",
            ));
        }
        let present = |name: &str| map.get(name).filter(|v| !v.is_null());
        let amount_minor = match present("amount_minor") {
            None => return Err(FieldError::new("amount_minor", "is required")),
            Some(v) => v
                .as_i64()
                .filter(|n| (1..=MAX_PAYMENT_MINOR).contains(n))
                .ok_or_else(|| {
                    FieldError::new(
                        "amount_minor",
                        "must be a whole, positive number of minor units (at most 10^15)",
                    )
                })?,
        };
        let paid_at = match present("paid_at") {
            None => None,
            Some(v) => {
                let s = v
                    .as_str()
                    .ok_or_else(|| FieldError::new("paid_at", "must be an RFC 3339 time string"))?;
                Some(parse_time(s, "paid_at")?)
            }
        };
        let reference = match present("reference") {
            None => None,
            Some(v) => {
                let s = v
                    .as_str()
                    .ok_or_else(|| FieldError::new("reference", "must be a string"))?;
                let ok =
                    !s.is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control);
                if !ok {
                    return Err(FieldError::new(
                        "reference",
                        "must be 1 to 200 characters, none of them control characters",
                    ));
                }
                Some(s.to_owned())
            }
        };
        Ok(Self {
            amount_minor,
            paid_at,
            reference,
        })
    }
}

impl NewPayment {
    /// A payment is news of the past: a `paid_at` ahead of `now` by more
    /// than clock skew (5 minutes) is a mistake, refused by name.
    pub fn check_paid_at(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        if self
            .paid_at
            .is_some_and(|t| t > now + chrono::Duration::minutes(5))
        {
            return Err(FieldError::new("paid_at", "is in the future"));
        }
        Ok(())
    }
}

/// The code of the refusal of a reference recorded already with another
/// amount or time (the API's 409).
pub const REFERENCE_REUSED: &str = "reference_reused";

/// Why a payment is refused when its reference was recorded already, for
/// the same reminder, as `first` with another amount or time: said the same
/// by the API and the payments import.
pub fn reference_reused(first: &Payment) -> String {
    format!(
        "already recorded for this reminder with another amount or time (payment {}); \
         nothing changed",
        first.id
    )
}

/// A payment as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub id: i64,
    #[schema(value_type = String, format = "uuid")]
    pub reminder_id: ReminderId,
    pub amount_minor: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub paid_at: DateTime<Utc>,
    #[schema(required = true)]
    pub reference: Option<String>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
}

impl Payment {
    /// The same payment as `new` asks for (a repeat of its reference).
    pub fn is_same(&self, new: &NewPayment) -> bool {
        self.amount_minor == new.amount_minor
            && new
                .paid_at
                .map_or(true, |p| crate::clock::to_millis(p) == self.paid_at)
            && self.reference == new.reference
    }
}

impl Reminder {
    /// Payments were recorded and cover what it is due (SPEC §8). (A
    /// reminder of nothing due is not settled until someone pays.)
    pub fn is_settled(&self) -> bool {
        self.amount_paid_minor > 0 && self.amount_paid_minor >= self.amount_due_minor
    }

    /// What is still owed.
    pub fn amount_owed_minor(&self) -> i64 {
        (self.amount_due_minor - self.amount_paid_minor).max(0)
    }
}

/// What a payment that brought `r`'s payments to their new sum (already in
/// `r`) does to the reminder at `now`: a settled reminder that is waiting for
/// a call (`pending`, or `failed` with a retry ahead) is cancelled as `paid`.
/// A live call goes on (its end makes no further attempt: see
/// `transition`), a terminal reminder keeps its status, and a debt not yet
/// covered changes nothing but the sum.
pub fn settle(r: &Reminder, now: DateTime<Utc>) -> Option<Change> {
    let waiting = match r.status {
        Status::Pending => true,
        Status::Failed => !is_final_failure(r),
        _ => false,
    };
    if !r.is_settled() || !waiting {
        return None;
    }
    Some(Change {
        reminder_id: r.id,
        expect_status: r.status,
        expect_attempt: r.attempt_count,
        at: now,
        reminder: Some(ReminderUpdate {
            status: Status::Cancelled,
            attempt_count: r.attempt_count,
            next_attempt_at: None,
            last_attempt_at: r.last_attempt_at,
            skip_reason: Some(SKIP_PAID.to_owned()),
            outcome: None,
            promise: None,
        }),
        attempt: None,
        suppress: None,
        action: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_payment_request_is_checked_field_by_field() {
        let p = NewPayment::parse(&map(serde_json::json!({
            "amount_minor": 500, "paid_at": "2026-11-24T10:00:00+01:00", "reference": "tx-1"
        })))
        .unwrap();
        assert_eq!(p.amount_minor, 500);
        assert_eq!(p.paid_at.unwrap().to_rfc3339(), "2026-11-24T09:00:00+00:00");
        assert_eq!(p.reference.as_deref(), Some("tx-1"));
        for (body, field) in [
            (serde_json::json!({}), "amount_minor"),
            (serde_json::json!({"amount_minor": 0}), "amount_minor"),
            (serde_json::json!({"amount_minor": -5}), "amount_minor"),
            (serde_json::json!({"amount_minor": 1.5}), "amount_minor"),
            (serde_json::json!({"amount_minor": "5"}), "amount_minor"),
            (
                serde_json::json!({"amount_minor": 5, "paid_at": "yesterday"}),
                "paid_at",
            ),
            (
                serde_json::json!({"amount_minor": 5, "reference": ""}),
                "reference",
            ),
            (
                serde_json::json!({"amount_minor": 5, "reference": "a\nb"}),
                "reference",
            ),
            (serde_json::json!({"amount_minor": 5, "tip": 1}), "tip"),
        ] {
            let e = NewPayment::parse(&map(body.clone())).expect_err(&body.to_string());
            assert_eq!(e.field, field, "{body}");
        }
    }
}
