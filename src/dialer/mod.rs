//! Starting a call: for one claimed attempt, get a voice agent into a room of
//! its own with everything it needs to place the call (SPEC §3).
//!
//! A dialer only *starts* the attempt. What became of the call is the agent's
//! to report, through the call-status webhook; a dialer never decides it.

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::{room_name, Reminder, ReminderId};

pub mod livekit;
pub mod simulated;

/// Everything a dialer needs for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub reminder_id: ReminderId,
    pub attempt: u32,
    /// `reminder-{reminder_id}-{attempt}`.
    pub room_name: String,
    /// The JSON of SPEC §3, put on the room and on the agent dispatch.
    pub metadata: String,
    /// The reminder's `metadata.persona`, read by the simulated dialer only.
    pub persona: Option<String>,
}

/// The room and dispatch metadata of SPEC §3.
#[derive(Debug, Serialize)]
struct CallMetadata<'a> {
    reminder_id: String,
    attempt: u32,
    phone_number: &'a str,
    customer_name: &'a str,
    amount_due_minor: i64,
    currency: &'a str,
    due_date: String,
    language: &'a str,
    timezone: &'a str,
    sip_trunk_id: Option<&'a str>,
}

impl CallRequest {
    /// The request for the attempt `r` was just claimed for (`r.attempt_count`).
    pub fn for_claimed(r: &Reminder, sip_trunk_id: Option<&str>) -> Self {
        let attempt = r.attempt_count;
        let metadata = CallMetadata {
            reminder_id: r.id.to_string(),
            attempt,
            phone_number: r.phone_number.as_str(),
            customer_name: &r.customer_name,
            amount_due_minor: r.amount_due_minor,
            currency: r.currency.as_str(),
            due_date: r.due_date.format("%Y-%m-%d").to_string(),
            language: r.language.as_str(),
            timezone: r.primary_zone().name(),
            sip_trunk_id,
        };
        Self {
            reminder_id: r.id,
            attempt,
            room_name: room_name(r.id, attempt),
            metadata: serde_json::to_string(&metadata).expect("metadata serialises"),
            persona: r
                .metadata
                .get("persona")
                .and_then(|p| p.as_str())
                .map(str::to_owned),
        }
    }
}

/// Why an attempt could not be started: the step, and what went wrong. It
/// becomes the attempt's `skip_reason` (`dispatch_failed: {step}: {message}`),
/// so it never carries the metadata (phone numbers) or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {message}")]
pub struct DialError {
    pub step: &'static str,
    pub message: String,
}

impl DialError {
    /// At most this many characters of a server's message are kept.
    pub const MAX_MESSAGE: usize = 200;

    pub fn new(step: &'static str, message: impl std::fmt::Display) -> Self {
        let mut message = message.to_string().replace(['\n', '\r'], " ");
        if let Some((cut, _)) = message.char_indices().nth(Self::MAX_MESSAGE) {
            message.truncate(cut);
            message.push('…');
        }
        Self { step, message }
    }
}

#[async_trait]
pub trait Dialer: Send + Sync + 'static {
    /// For logs: `livekit`, `simulated`, …
    fn name(&self) -> &'static str;

    /// Start the attempt: when this returns `Ok`, an agent is on its way to
    /// the room. Idempotent for one `room_name`, as far as the backend allows.
    /// It may be dropped part-way (the scheduler bounds it in time); whatever
    /// it left behind is closed by [`abandon`](Self::abandon).
    async fn dial(&self, call: &CallRequest) -> Result<(), DialError>;

    /// Close whatever a dial that failed or was cut short may have left
    /// behind (a room, an agent on its way), so no call connects to nobody.
    /// The scheduler calls it *after* recording the failure, so the backend's
    /// own news of the closing (LiveKit's `room_finished`) finds the attempt
    /// already ended with its real reason. Errors are the dialer's to log.
    async fn abandon(&self, _call: &CallRequest) {}

    /// Wait (at most `within`) for work the dialer still has in flight; a
    /// process about to exit calls it. Only the simulated dialer has any.
    async fn drain(&self, _within: std::time::Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let e = DialError::new("create_room", "é".repeat(500) + "\nsecond line");
        assert_eq!(e.message.chars().count(), DialError::MAX_MESSAGE + 1);
        assert!(e.message.ends_with('…'));
        let e = DialError::new("create_dispatch", "a\nb");
        assert_eq!(e.to_string(), "create_dispatch: a b");
    }
}
