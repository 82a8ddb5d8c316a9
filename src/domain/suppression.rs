//! The suppression list (SPEC §7): numbers that must never be called, whatever
//! reminder names them, and the audit of every add and remove.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::*;

/// `skip_reason` of a reminder whose number is suppressed.
pub const SKIP_SUPPRESSED: &str = "suppressed";
/// The reason an opt-out adds its number with.
pub const REASON_OPTED_OUT: &str = "opted_out";
/// The reason of a row of a do-not-call list imported without one.
pub const REASON_DO_NOT_CALL_LIST: &str = "do_not_call_list";
/// The longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Why a number is added or removed: 1 to 500 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Parse a reason as sent (surrounding spaces are dropped, then it must not be empty).
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("reason", "must not be empty"));
        }
        if s.chars().count() > MAX_REASON_CHARS {
            return Err(FieldError::new(
                "reason",
                format!("must be at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldError::new(
                "reason",
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A reason the service itself gives (`opted_out`, `do_not_call_list`).
    pub fn fixed(s: &'static str) -> Self {
        Self(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A number to add to the list: by an operator (`reminder_id: None`) or by a
/// reminder's opt-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressNumber {
    pub phone_number: PhoneNumber,
    pub reason: Reason,
    pub reminder_id: Option<ReminderId>,
}

impl SuppressNumber {
    /// What an `opted_out` outcome adds: the reminder's number, reason `opted_out`.
    pub fn opted_out(r: &Reminder) -> Self {
        Self {
            phone_number: r.phone_number.clone(),
            reason: Reason::fixed(REASON_OPTED_OUT),
            reminder_id: Some(r.id),
        }
    }
}

/// A number on the list.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Suppression {
    #[serde(serialize_with = "ser_phone")]
    #[schema(value_type = String, example = "+14155550100")]
    pub phone_number: PhoneNumber,
    #[schema(example = "opted_out")]
    pub reason: String,
    /// The reminder whose opt-out added it; `null` when an operator or an import did.
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub reminder_id: Option<ReminderId>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// What happened to a number on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionAction {
    Added,
    Removed,
}

impl SuppressionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionAction::Added => "added",
            SuppressionAction::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [SuppressionAction::Added, SuppressionAction::Removed]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One add or remove, as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SuppressionAudit {
    pub action: SuppressionAction,
    pub reason: String,
    /// The reminder whose opt-out added the number; `null` otherwise.
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub reminder_id: Option<ReminderId>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
}

fn ser_phone<S: serde::Serializer>(v: &PhoneNumber, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

impl Reminder {
    /// A reminder created for a suppressed number: stored `cancelled`
    /// (`skip_reason = suppressed`) from the start, never due.
    pub fn cancelled_as_suppressed(mut self) -> Self {
        self.status = Status::Cancelled;
        self.next_attempt_at = None;
        self.skip_reason = Some(SKIP_SUPPRESSED.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_bounded_and_printable() {
        assert_eq!(
            Reason::parse("  asked by phone ").unwrap().as_str(),
            "asked by phone"
        );
        for bad in ["", "   ", "a\u{7}b", "line\nbreak"] {
            assert_eq!(Reason::parse(bad).unwrap_err().field, "reason", "{bad:?}");
        }
        assert!(Reason::parse(&"x".repeat(MAX_REASON_CHARS)).is_ok());
        assert!(Reason::parse(&"é".repeat(MAX_REASON_CHARS + 1)).is_err());
    }

    #[test]
    fn actions_round_trip() {
        for a in [SuppressionAction::Added, SuppressionAction::Removed] {
            assert_eq!(SuppressionAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(SuppressionAction::parse("deleted"), None);
    }
}
