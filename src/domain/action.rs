//! What an operator does to a reminder from the dashboard — cancel it, call it
//! at the next lawful moment, put its number on the suppression list — and the
//! record of who did it when, written in the same transaction as the change.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::*;

/// The longest operator name kept, in characters.
pub const MAX_OPERATOR_NAME_CHARS: usize = 80;

/// Who is signed in to the dashboard, as they gave their name: the one shared
/// password says nothing about who used it, so the name is asked for at
/// sign-in and recorded as the actor of every action. 1 to 80 characters
/// after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorName(String);

impl OperatorName {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let name = s.trim();
        if name.is_empty() {
            return Err(FieldError::new("name", "is required"));
        }
        if name.chars().count() > MAX_OPERATOR_NAME_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be at most {MAX_OPERATOR_NAME_CHARS} characters"),
            ));
        }
        // Printable only: no control characters, and none of the invisible
        // format characters that would make one name look like another.
        if name
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'))
        {
            return Err(FieldError::new(
                "name",
                "must be printable (no control or invisible characters)",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kinds of operator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Cancelled the reminder (SPEC §1: from `pending` or `failed`).
    Cancel,
    /// Made it due now: the next claim calls it if every rule of SPEC §7 allows.
    CallNow,
    /// Put its number on the suppression list (SPEC §7).
    Suppress,
}

impl ActionKind {
    pub const ALL: [ActionKind; 3] = [
        ActionKind::Cancel,
        ActionKind::CallNow,
        ActionKind::Suppress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Cancel => "cancel",
            ActionKind::CallNow => "call_now",
            ActionKind::Suppress => "suppress",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action to record with the change it makes (`Change::action`, or with a
/// suppression): written in the change's transaction, and only if the change
/// is written at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub reminder_id: ReminderId,
    pub action: ActionKind,
    pub actor: OperatorName,
    /// What else is worth knowing (the status it left, the number's reason).
    pub detail: Option<String>,
}

/// One recorded action, as the reminder's history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReminderAction {
    pub action: ActionKind,
    /// The name the operator signed in with.
    #[schema(example = "Ada")]
    pub actor: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    #[schema(required = true)]
    pub detail: Option<String>,
}

/// An operator asks for the reminder to be called at the next lawful moment:
/// a `pending` reminder, or a `failed` one that will be retried, becomes due
/// now (`next_attempt_at = now`; `deferred_by` is cleared by the write). It
/// bypasses nothing: the next claim holds it to every rule of SPEC §7 —
/// window, days, blackout dates, frequency, quiet period, suppression — and
/// defers it to the first moment they all allow when that is not now.
///
/// Refused where no further call will happen (a live call, a terminal
/// reminder, a settled debt, no attempt left) and for a callback the customer
/// asked for: calling before the time they named would not be that callback,
/// and the quiet period's one exception is for the callback at that time.
/// Already due (`next_attempt_at <= now`) is not a change (`Ok(None)`).
pub fn call_now(reminder: &Reminder, now: DateTime<Utc>) -> Result<Option<Change>, Refusal> {
    let refuse = |message: String| {
        Err(Refusal {
            status: reminder.status,
            message,
        })
    };
    let retried = match reminder.status {
        Status::Pending => true,
        Status::Failed => reminder.next_attempt_at.is_some(),
        _ => false,
    };
    if !retried {
        return refuse(match reminder.status {
            s @ (Status::InProgress | Status::Processing) => {
                format!("a call is live ({s}); there is nothing to bring forward")
            }
            s => format!("the reminder is {s} and will not be called again"),
        });
    }
    if reminder.is_settled() {
        return refuse("the debt is paid; the reminder will not be called again".to_owned());
    }
    if !reminder.attempts_remain() {
        return refuse(format!(
            "all {} attempts have been made",
            reminder.max_attempts
        ));
    }
    let Some(next) = reminder.next_attempt_at else {
        return refuse("the reminder has no next attempt to bring forward".to_owned());
    };
    if reminder.skip_reason.as_deref() == Some(SKIP_CALLBACK_REQUESTED) && next > now {
        return refuse(
            "the customer asked to be called back at the time shown; it is not brought forward"
                .to_owned(),
        );
    }
    if next <= now {
        return Ok(None);
    }
    Ok(Some(Change {
        reminder_id: reminder.id,
        expect_status: reminder.status,
        expect_attempt: reminder.attempt_count,
        at: now,
        reminder: Some(ReminderUpdate {
            status: reminder.status,
            attempt_count: reminder.attempt_count,
            next_attempt_at: Some(now),
            last_attempt_at: reminder.last_attempt_at,
            skip_reason: reminder.skip_reason.clone(),
            outcome: None,
            promise: None,
        }),
        attempt: None,
        suppress: None,
        action: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_are_trimmed_bounded_and_printable() {
        assert_eq!(OperatorName::parse("  Ada L. ").unwrap().as_str(), "Ada L.");
        assert_eq!(
            OperatorName::parse("Zoë O'Brien").unwrap().as_str(),
            "Zoë O'Brien"
        );
        assert!(OperatorName::parse(&"é".repeat(80)).is_ok());
        for bad in ["", "   ", "Ada\nBob", "Ada\u{7}", "A\u{202E}da"] {
            assert!(OperatorName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(OperatorName::parse(&"x".repeat(81)).is_err());
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A pending reminder scheduled for 2099, made on 2026-11-20.
    fn later() -> Reminder {
        let body = serde_json::json!({"customer_name": "Ada", "phone_number": "+12125550100",
            "amount_due_minor": 100, "currency": "USD", "due_date": "2026-12-01",
            "scheduled_for": "2099-01-01T12:00:00Z"});
        let defaults = CreateDefaults {
            timezone: TimeZone::parse("America/New_York").unwrap(),
            zone_policy: ZonePolicy::All,
            language: Language::parse("en").unwrap(),
            max_attempts: 3,
        };
        NewReminder::parse(body.as_object().unwrap(), &defaults)
            .unwrap()
            .into_reminder(ReminderId::new(), t("2026-11-20T00:00:00Z"))
    }

    #[test]
    fn call_now_makes_a_waiting_reminder_due_and_nothing_else() {
        let now = t("2026-11-24T15:00:00Z");
        let mut r = later();
        r.deferred_by = Some(DeferredBy::Window);
        let change = call_now(&r, now).unwrap().expect("a change");
        assert_eq!(
            (change.expect_status, change.expect_attempt),
            (Status::Pending, 0)
        );
        let u = change.reminder.as_ref().unwrap();
        assert_eq!(u.status, Status::Pending);
        assert_eq!(u.next_attempt_at, Some(now));
        assert_eq!(u.attempt_count, 0);
        assert!(change.attempt.is_none() && change.suppress.is_none());
        // The write clears deferred_by: the claim decides afresh.
        assert_eq!(u.applied_to(&r, now).deferred_by, None);

        // A failed reminder that will be retried keeps its status and reason.
        r.status = Status::Failed;
        r.attempt_count = 1;
        r.skip_reason = Some(SKIP_CALL_TIMEOUT.to_owned());
        let change = call_now(&r, now).unwrap().unwrap();
        let u = change.reminder.unwrap();
        assert_eq!(u.status, Status::Failed);
        assert_eq!(u.skip_reason.as_deref(), Some(SKIP_CALL_TIMEOUT));
        assert_eq!(u.next_attempt_at, Some(now));

        // Already due: not a change.
        let mut due = later();
        due.next_attempt_at = Some(now - chrono::Duration::minutes(1));
        assert_eq!(call_now(&due, now), Ok(None));
    }

    #[test]
    fn call_now_is_refused_where_no_call_will_follow() {
        let now = t("2026-11-24T15:00:00Z");
        let refused = |r: &Reminder| call_now(r, now).unwrap_err().message;
        for status in [Status::InProgress, Status::Processing] {
            let mut r = later();
            r.status = status;
            assert!(refused(&r).contains("live"), "{status}");
        }
        for status in [Status::Completed, Status::Cancelled] {
            let mut r = later();
            r.status = status;
            assert!(refused(&r).contains("will not be called again"), "{status}");
        }
        let mut terminal = later();
        terminal.status = Status::Failed;
        terminal.next_attempt_at = None;
        assert!(refused(&terminal).contains("will not be called again"));
        let mut paid = later();
        paid.amount_paid_minor = paid.amount_due_minor.max(1);
        paid.amount_due_minor = paid.amount_paid_minor;
        assert!(refused(&paid).contains("paid"));
        let mut spent = later();
        spent.attempt_count = spent.max_attempts;
        assert!(refused(&spent).contains("attempts"));
        // The callback the customer asked for stays at the time they named.
        let mut callback = later();
        callback.skip_reason = Some(SKIP_CALLBACK_REQUESTED.to_owned());
        assert!(refused(&callback).contains("called back"));
    }

    #[test]
    fn action_kinds_round_trip() {
        for a in ActionKind::ALL {
            assert_eq!(ActionKind::parse(a.as_str()), Some(a));
        }
        assert_eq!(ActionKind::parse("delete"), None);
    }
}
