//! Starting a call: for one claimed attempt, get a voice agent into a room of
//! its own with everything it needs to place the call (SPEC §3).
//!
//! A dialer only *starts* the attempt. What became of the call is the agent's
//! to report, through the call-status webhook; a dialer never decides it.

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::{room_name, Reminder, ReminderId, VERIFY_KEY};

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

/// The notices the agent gives besides the AI disclosure it always gives
/// (SPEC §10): `CALL_DISCLOSURES`, sent as the metadata's `disclosures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disclosures {
    /// "This call is recorded."
    pub recording: bool,
    /// "This is an attempt to collect a debt…", after the right-party check.
    pub collector: bool,
}

impl Default for Disclosures {
    /// Both: the floor for a third-party collector recording its calls.
    fn default() -> Self {
        Self {
            recording: true,
            collector: true,
        }
    }
}

impl Disclosures {
    /// The words `CALL_DISCLOSURES` takes.
    pub const WORDS: [&'static str; 2] = ["recording", "collector"];

    /// `recording,collector` (any order, each at most once), or `none`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") {
            return Ok(Self {
                recording: false,
                collector: false,
            });
        }
        let mut out = Self {
            recording: false,
            collector: false,
        };
        for word in s.split(',').map(str::trim) {
            let slot = match word.to_ascii_lowercase().as_str() {
                "recording" => &mut out.recording,
                "collector" => &mut out.collector,
                "" => {
                    return Err("names an empty item (write recording,collector or none)".to_owned())
                }
                _ => {
                    return Err(format!(
                        "must be a comma-separated list of recording and collector, or none; \
                         {word:?} is neither"
                    ))
                }
            };
            if *slot {
                return Err(format!("names {word:?} twice"));
            }
            *slot = true;
        }
        Ok(out)
    }

    /// As the metadata lists them (SPEC §3).
    pub fn words(&self) -> Vec<&'static str> {
        let on = [self.recording, self.collector];
        Self::WORDS
            .iter()
            .zip(on)
            .filter_map(|(w, on)| on.then_some(*w))
            .collect()
    }
}

impl std::fmt::Display for Disclosures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = self.words();
        if words.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&words.join(","))
        }
    }
}

/// What every dispatch carries besides the reminder itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchSettings {
    /// `SIP_OUTBOUND_TRUNK_ID`.
    pub sip_trunk_id: Option<String>,
    /// `CALL_DISCLOSURES`.
    pub disclosures: Disclosures,
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
    /// The second identifier (`{"label", "value"}`) when the reminder has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<&'a serde_json::Value>,
    /// Always present, so an agent never has to guess what a missing one means.
    disclosures: Vec<&'static str>,
}

impl CallRequest {
    /// The request for the attempt `r` was just claimed for (`r.attempt_count`).
    pub fn for_claimed(r: &Reminder, dispatch: &DispatchSettings) -> Self {
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
            sip_trunk_id: dispatch.sip_trunk_id.as_deref(),
            verify: r.metadata.get(VERIFY_KEY).filter(|v| !v.is_null()),
            disclosures: dispatch.disclosures.words(),
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

    fn reminder(metadata: serde_json::Value) -> Reminder {
        let body = serde_json::json!({
            "customer_name": "Ada Lovelace", "phone_number": "+14155550100",
            "amount_due_minor": 1250, "currency": "USD", "due_date": "2026-12-01",
            "timezone": "America/Los_Angeles", "metadata": metadata,
        });
        let defaults = crate::domain::CreateDefaults {
            timezone: crate::domain::TimeZone::parse("America/New_York").unwrap(),
            zone_policy: crate::domain::ZonePolicy::All,
            language: crate::domain::Language::parse("en").unwrap(),
            max_attempts: 3,
        };
        let mut r = crate::domain::NewReminder::parse(body.as_object().unwrap(), &defaults)
            .unwrap()
            .into_reminder(ReminderId::new(), chrono::Utc::now());
        r.attempt_count = 2;
        r
    }

    fn metadata_of(r: &Reminder, dispatch: &DispatchSettings) -> serde_json::Value {
        serde_json::from_str(&CallRequest::for_claimed(r, dispatch).metadata).unwrap()
    }

    #[test]
    fn the_metadata_carries_the_second_identifier_and_always_the_disclosures() {
        let r = reminder(serde_json::json!({"verify": {"label": "ZIP code", "value": "94103"}}));
        let m = metadata_of(&r, &DispatchSettings::default());
        assert_eq!(m["attempt"], 2);
        assert_eq!(
            m["verify"],
            serde_json::json!({"label": "ZIP code", "value": "94103"})
        );
        assert_eq!(
            m["disclosures"],
            serde_json::json!(["recording", "collector"])
        );
        assert_eq!(m["sip_trunk_id"], serde_json::Value::Null);

        // No second identifier: no key (the agent asks none); "none": an empty list, not absent.
        let r = reminder(serde_json::json!({"invoice": "1042"}));
        let none = DispatchSettings {
            sip_trunk_id: Some("ST_x".into()),
            disclosures: Disclosures::parse("none").unwrap(),
        };
        let m = metadata_of(&r, &none);
        assert!(m.get("verify").is_none(), "{m}");
        assert_eq!(m["disclosures"], serde_json::json!([]));
        assert_eq!(m["sip_trunk_id"], "ST_x");
        // Nothing else of the reminder's metadata goes to the agent.
        assert!(m.get("invoice").is_none(), "{m}");
        let recording = DispatchSettings {
            disclosures: Disclosures::parse("recording").unwrap(),
            ..DispatchSettings::default()
        };
        assert_eq!(
            metadata_of(&r, &recording)["disclosures"],
            serde_json::json!(["recording"])
        );
    }
}
