//! Notifications to the business system (SPEC §9): which ones a change
//! produces, the JSON each is POSTed with, and the retry schedule. Pure: the
//! store writes a notice in the change's own transaction, the delivery worker
//! (`crate::notify`) only reads what was written.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::Serialize;

use super::*;

/// The kinds of notification (SPEC §9), as the `type` field names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub enum NoticeType {
    #[serde(rename = "attempt.ended")]
    AttemptEnded,
    #[serde(rename = "reminder.completed")]
    ReminderCompleted,
    #[serde(rename = "reminder.failed")]
    ReminderFailed,
    #[serde(rename = "reminder.cancelled")]
    ReminderCancelled,
    #[serde(rename = "payment.recorded")]
    PaymentRecorded,
    #[serde(rename = "promise.kept")]
    PromiseKept,
    #[serde(rename = "promise.broken")]
    PromiseBroken,
    #[serde(rename = "suppression.added")]
    SuppressionAdded,
}

impl NoticeType {
    pub const ALL: [NoticeType; 8] = [
        NoticeType::AttemptEnded,
        NoticeType::ReminderCompleted,
        NoticeType::ReminderFailed,
        NoticeType::ReminderCancelled,
        NoticeType::PaymentRecorded,
        NoticeType::PromiseKept,
        NoticeType::PromiseBroken,
        NoticeType::SuppressionAdded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeType::AttemptEnded => "attempt.ended",
            NoticeType::ReminderCompleted => "reminder.completed",
            NoticeType::ReminderFailed => "reminder.failed",
            NoticeType::ReminderCancelled => "reminder.cancelled",
            NoticeType::PaymentRecorded => "payment.recorded",
            NoticeType::PromiseKept => "promise.kept",
            NoticeType::PromiseBroken => "promise.broken",
            NoticeType::SuppressionAdded => "suppression.added",
        }
    }
}

impl fmt::Display for NoticeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NoticeType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NoticeType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(())
    }
}

/// Where a notification stands (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// Not delivered yet: due at `next_try_at`.
    Pending,
    /// A 2xx came back.
    Delivered,
    /// Every try of its round failed; a resend queues it again.
    Failed,
}

impl NoticeStatus {
    pub const ALL: [NoticeStatus; 3] = [
        NoticeStatus::Pending,
        NoticeStatus::Delivered,
        NoticeStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeStatus::Pending => "pending",
            NoticeStatus::Delivered => "delivered",
            NoticeStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for NoticeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NoticeStatus {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NoticeStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| FieldError::new("status", "must be one of pending, delivered, failed"))
    }
}

/// A reminder that failed for good: no further attempt will be made (a
/// `failed` reminder with a retry ahead is not).
pub fn is_final_failure(r: &Reminder) -> bool {
    r.status == Status::Failed && (r.next_attempt_at.is_none() || r.attempt_count >= r.max_attempts)
}

/// The notifications a written change causes, given the reminder it left:
/// the end of the attempt it ended, then the end of the reminder, if it
/// ended. A number it put on the suppression list is notified where the
/// list's row is written (only if it was not there yet).
pub fn for_change(change: &Change, after: &Reminder) -> Vec<NoticeType> {
    let mut kinds = Vec::new();
    if let Some(AttemptWrite::Update {
        expect_status,
        status,
        ..
    }) = &change.attempt
    {
        let ends = matches!(status, AttemptStatus::Completed | AttemptStatus::Failed);
        let was_live = matches!(
            expect_status,
            AttemptStatus::InProgress | AttemptStatus::Processing
        );
        if ends && was_live {
            kinds.push(NoticeType::AttemptEnded);
        }
    }
    let moved = change
        .reminder
        .as_ref()
        .is_some_and(|u| u.status != change.expect_status || u.status == Status::Failed);
    if moved {
        match after.status {
            Status::Completed => kinds.push(NoticeType::ReminderCompleted),
            Status::Cancelled => kinds.push(NoticeType::ReminderCancelled),
            Status::Failed if is_final_failure(after) => kinds.push(NoticeType::ReminderFailed),
            _ => {}
        }
    }
    kinds
}

/// The notification of a reminder a claim ended (cancelled as suppressed,
/// failed for want of a lawful time), given the reminder it left.
pub fn ended_by_claim(after: &Reminder) -> Option<NoticeType> {
    match after.status {
        Status::Cancelled => Some(NoticeType::ReminderCancelled),
        Status::Failed if is_final_failure(after) => Some(NoticeType::ReminderFailed),
        _ => None,
    }
}

/// A notification ready to be written: everything but its `sequence`, which
/// the store assigns in the same transaction (one more than the subject's last).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: NoticeType,
    /// Whose notifications it is numbered among: the reminder's id, or
    /// `number:<E.164>` for a suppression without a reminder.
    pub subject: String,
    pub reminder_id: Option<ReminderId>,
    pub at: DateTime<Utc>,
    /// `data` without its `sequence` (nor `extra`): a JSON object's text,
    /// rendered once and shared by the notices of one change.
    data: Arc<str>,
    /// One member more for `data` (`attempt`, `payment`): its name and JSON text.
    extra: Option<(&'static str, String)>,
}

/// A value's JSON object text (`{}` if it cannot be one, which no domain value is).
fn object_text<T: Serialize>(value: &T) -> String {
    // A reminder is about a kilobyte: one allocation, not a dozen doublings.
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, value)
        .ok()
        .and_then(|()| String::from_utf8(out).ok())
        .filter(|t| t.starts_with('{') && t.ends_with('}'))
        .unwrap_or_else(|| "{}".to_owned())
}

impl Notice {
    /// About a reminder: `data` is the reminder as the API shows it (SPEC §5),
    /// with the attempt for `attempt.ended`.
    pub fn about_reminder(
        kind: NoticeType,
        at: DateTime<Utc>,
        reminder: &Reminder,
        attempt: Option<&Attempt>,
    ) -> Self {
        Self::of_reminder(kind, at, reminder, object_text(reminder).into(), attempt)
    }

    fn of_reminder(
        kind: NoticeType,
        at: DateTime<Utc>,
        reminder: &Reminder,
        reminder_text: Arc<str>,
        attempt: Option<&Attempt>,
    ) -> Self {
        Self {
            kind,
            subject: reminder.id.to_string(),
            reminder_id: Some(reminder.id),
            at,
            data: reminder_text,
            extra: attempt.map(|a| ("attempt", object_text(a))),
        }
    }

    /// Every notice a written change causes ([`for_change`]), the reminder
    /// rendered once; `attempt`: the attempt as the change left it, for
    /// `attempt.ended` (see [`attempt_ended`]).
    pub fn for_change(change: &Change, after: &Reminder, attempt: Option<&Attempt>) -> Vec<Self> {
        let kinds = for_change(change, after);
        if kinds.is_empty() {
            return Vec::new();
        }
        let text: Arc<str> = object_text(after).into();
        kinds
            .into_iter()
            .map(|kind| {
                let attempt = (kind == NoticeType::AttemptEnded)
                    .then_some(attempt)
                    .flatten();
                Self::of_reminder(kind, change.at, after, Arc::clone(&text), attempt)
            })
            .collect()
    }

    /// A payment recorded: `data` is the reminder as it left it, with the payment.
    pub fn payment_recorded(reminder: &Reminder, payment: &Payment) -> Self {
        Self {
            kind: NoticeType::PaymentRecorded,
            subject: reminder.id.to_string(),
            reminder_id: Some(reminder.id),
            at: payment.recorded_at,
            data: object_text(reminder).into(),
            extra: Some(("payment", object_text(payment))),
        }
    }

    /// A number put on the list: `data` is the list's entry.
    pub fn about_suppression(entry: &Suppression) -> Self {
        Self {
            kind: NoticeType::SuppressionAdded,
            subject: match entry.reminder_id {
                Some(id) => id.to_string(),
                None => format!("number:{}", entry.phone_number.as_str()),
            },
            reminder_id: entry.reminder_id,
            at: entry.created_at,
            data: object_text(entry).into(),
            extra: None,
        }
    }

    /// The JSON POSTed (see [`render_body`]).
    pub fn body(&self, sequence: u32) -> String {
        render_body(
            self.kind,
            self.at,
            &self.data,
            self.extra.as_ref().map(|(n, v)| (*n, v.as_str())),
            sequence,
        )
    }

    /// `data`'s text without `sequence` (nor `extra`): shared by the notices
    /// of one change (the same allocation).
    pub fn data_text(&self) -> &Arc<str> {
        &self.data
    }

    /// The member added to `data`, if any: its name and JSON text.
    pub fn extra(&self) -> Option<(&'static str, &str)> {
        self.extra.as_ref().map(|(n, v)| (*n, v.as_str()))
    }
}

/// The name of the member a notification of `kind` adds to `data` when it
/// carries one: the attempt that ended, the payment recorded.
pub fn extra_name(kind: NoticeType) -> Option<&'static str> {
    match kind {
        NoticeType::AttemptEnded => Some("attempt"),
        NoticeType::PaymentRecorded => Some("payment"),
        _ => None,
    }
}

/// The JSON POSTed: `{"type", "timestamp", "data"}`, `data` carrying `sequence`.
/// Written in one allocation: it runs for every notice delivered. `data` is
/// an object's text with `extra`'s member and `sequence` added at its end.
/// A store that keeps the parts renders the same bytes whenever it is asked.
pub fn render_body(
    kind: NoticeType,
    at: DateTime<Utc>,
    data: &str,
    extra: Option<(&str, &str)>,
    sequence: u32,
) -> String {
    let kind = kind.as_str();
    let extra_len = extra.map_or(0, |(n, v)| n.len() + v.len() + 4);
    let mut out = String::with_capacity(data.len() + extra_len + kind.len() + 80);
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push_str("\",\"timestamp\":\"");
    super::push_time(&mut out, at, true);
    out.push_str("\",\"data\":");
    let open = data.strip_suffix('}').unwrap_or(data);
    out.push_str(open);
    let mut empty = open.trim_end().ends_with('{');
    let sequence = sequence.to_string();
    for (name, value) in extra.into_iter().chain([("sequence", sequence.as_str())]) {
        if !empty {
            out.push(',');
        }
        empty = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push_str("}}");
    out
}

/// The attempt whose end a written change notifies (`attempt.ended`), if any:
/// the store reads it as the change left it.
pub fn attempt_ended(change: &Change, after: &Reminder) -> Option<u32> {
    match &change.attempt {
        Some(AttemptWrite::Update { attempt, .. })
            if for_change(change, after).contains(&NoticeType::AttemptEnded) =>
        {
            Some(*attempt)
        }
        _ => None,
    }
}

/// How long after a failed try the next one is made (SPEC §9): 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h; after the eighth try of a round, none.
pub const RETRY_AFTER: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// After the `tries`-th failed try of a round (from 1): when to try again,
/// or `None`: the notification is `failed`.
pub fn retry_after(tries: u32) -> Option<Duration> {
    let index = usize::try_from(tries).ok()?.checked_sub(1)?;
    RETRY_AFTER.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_schedule_is_spec_9s_and_ends_after_the_eighth_try() {
        let secs: Vec<u64> = (1..=7).map(|n| retry_after(n).unwrap().as_secs()).collect();
        assert_eq!(secs, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(retry_after(8), None, "eight tries in a round, then failed");
        assert_eq!(retry_after(0), None);
        assert_eq!(retry_after(u32::MAX), None);
    }

    #[test]
    fn types_and_statuses_round_trip_their_names() {
        for t in NoticeType::ALL {
            assert_eq!(t.as_str().parse::<NoticeType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in NoticeStatus::ALL {
            assert_eq!(s.as_str().parse::<NoticeStatus>().unwrap(), s);
        }
        assert!("lost".parse::<NoticeStatus>().is_err());
        assert!("attempt.started".parse::<NoticeType>().is_err());
    }

    /// The exact bytes: SQLite renders a notification's body whenever it is
    /// read, from parts stored when it was made, and the signature covers
    /// the bytes, so they must not change under a notification's id. A
    /// change to this text is a change to every stored notification's body.
    #[test]
    fn a_rendered_body_is_these_bytes() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T15:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            render_body(
                NoticeType::AttemptEnded,
                at,
                r#"{"id":"r1","status":"completed"}"#,
                Some(("attempt", r#"{"attempt":1}"#)),
                2,
            ),
            r#"{"type":"attempt.ended","timestamp":"2026-11-24T15:00:00.250Z","data":{"id":"r1","status":"completed","attempt":{"attempt":1},"sequence":2}}"#
        );
        assert_eq!(
            render_body(NoticeType::ReminderCancelled, at, "{}", None, 1),
            r#"{"type":"reminder.cancelled","timestamp":"2026-11-24T15:00:00.250Z","data":{"sequence":1}}"#
        );
    }

    #[test]
    fn a_body_is_the_type_the_time_and_the_data_with_its_sequence() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T15:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let entry = Suppression {
            phone_number: PhoneNumber::parse("+12125550100").unwrap(),
            reason: "asked \"never\" again".into(),
            reminder_id: None,
            created_at: at,
        };
        let notice = Notice::about_suppression(&entry);
        assert_eq!(notice.subject, "number:+12125550100");
        let body: serde_json::Value = serde_json::from_str(&notice.body(7)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "suppression.added",
                "timestamp": "2026-11-24T15:00:00.250Z",
                "data": {
                    "phone_number": "+12125550100",
                    "reason": "asked \"never\" again",
                    "reminder_id": null,
                    "created_at": serde_json::to_value(&entry).unwrap()["created_at"],
                    "sequence": 7,
                }
            })
        );
    }

    /// The members added to `data` (an `extra` one, then `sequence`) are
    /// separated right whether `data` is empty or not.
    #[test]
    fn members_are_added_to_empty_and_full_objects() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let notice = |data: &str, extra: Option<(&'static str, &str)>| Notice {
            kind: NoticeType::SuppressionAdded,
            subject: "s".into(),
            reminder_id: None,
            at,
            data: data.into(),
            extra: extra.map(|(n, v)| (n, v.to_owned())),
        };
        let head = r#"{"type":"suppression.added","timestamp":"2026-11-24T15:00:00.000Z","data":"#;
        for (data, extra, want) in [
            ("{}", None, r#"{"sequence":1}"#),
            (r#"{"b":2}"#, None, r#"{"b":2,"sequence":1}"#),
            ("{ }", Some(("a", "1")), r#"{ "a":1,"sequence":1}"#),
            (
                r#"{"b":2}"#,
                Some(("a", r#"{"c":3}"#)),
                r#"{"b":2,"a":{"c":3},"sequence":1}"#,
            ),
        ] {
            assert_eq!(notice(data, extra).body(1), format!("{head}{want}}}"));
        }
    }
}
