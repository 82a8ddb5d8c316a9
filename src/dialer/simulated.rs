//! The simulated dialer: for `duecall demo` and tests, never for real calls.
//!
//! Each dial starts an agent that behaves like the real one (`agent/`) from
//! the service's point of view: it reports over real HTTP to the call-status
//! webhook, signed with `WEBHOOK_SECRET` per Standard Webhooks, one
//! `webhook-id` per event reused across its retries (3 tries, backoff with
//! jitter, on network errors, 429 and 5xx only). What happens on the "call"
//! comes from a *persona*: the reminder's `metadata.persona`, a comma-separated
//! list read one entry per attempt (the last repeats), or — without one — a
//! mix chosen from the reminder id.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::{CallRequest, DialError, Dialer};
use crate::clock::Clock;

/// What the simulated customer (and line) does on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    /// Answers and promises to pay the full amount by the due date.
    Promise,
    /// Answers: already paid.
    Paid,
    /// Answers and disputes the debt.
    Dispute,
    /// Answers and refuses to pay.
    Refuse,
    /// Answers and asks to be called back a little later (`callback_at`,
    /// `Pace::callback` from the call's end).
    Callback,
    /// Someone else answers; the customer cannot come to the phone
    /// (`not_available`: nothing said about the debt, tried again).
    ThirdParty,
    /// Answers: not the named customer.
    WrongNumber,
    /// Answers and asks never to be called again.
    OptOut,
    /// Never picks up.
    NoAnswer,
    /// The line is busy.
    Busy,
    /// A voicemail answers.
    Voicemail,
    /// The number does not exist: a permanent failure.
    InvalidNumber,
    /// The SIP trunk fails: a retryable failure.
    TrunkError,
    /// The agent never reports anything (the timeout monitor rescues it).
    Silent,
}

impl FromStr for Persona {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "promise" => Self::Promise,
            "paid" => Self::Paid,
            "dispute" => Self::Dispute,
            "refuse" => Self::Refuse,
            "callback" => Self::Callback,
            "third_party" => Self::ThirdParty,
            "wrong_number" => Self::WrongNumber,
            "opt_out" => Self::OptOut,
            "no_answer" => Self::NoAnswer,
            "busy" => Self::Busy,
            "voicemail" => Self::Voicemail,
            "invalid_number" => Self::InvalidNumber,
            "trunk_error" => Self::TrunkError,
            "silent" => Self::Silent,
            other => return Err(format!("unknown persona {other:?}")),
        })
    }
}

impl Persona {
    /// The persona for `attempt` (1-based) of a `metadata.persona` list.
    pub fn for_attempt(list: &str, attempt: u32) -> Result<Self, String> {
        let entries: Vec<&str> = list.split(',').filter(|s| !s.trim().is_empty()).collect();
        let i = (attempt.max(1) as usize - 1).min(entries.len().saturating_sub(1));
        entries
            .get(i)
            .ok_or_else(|| "empty persona list".to_owned())?
            .parse()
    }

    /// Without a persona: a friendly mix, fixed per reminder and attempt.
    fn default_for(seed: u128, attempt: u32) -> Self {
        const MIX: [Persona; 10] = [
            Persona::Promise,
            Persona::Promise,
            Persona::Promise,
            Persona::Promise,
            Persona::NoAnswer,
            Persona::NoAnswer,
            Persona::Busy,
            Persona::Dispute,
            Persona::Paid,
            Persona::Callback,
        ];
        MIX[((seed.wrapping_add(u128::from(attempt) * 7)) % MIX.len() as u128) as usize]
    }
}

/// How fast the simulated world moves.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// From dispatch to the phone being answered (or not).
    pub ring: Duration,
    /// From answer to the end of the conversation.
    pub talk: Duration,
    /// From the end of a call to the callback its customer asks for.
    pub callback: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            ring: Duration::from_millis(600),
            talk: Duration::from_millis(1200),
            callback: Duration::from_secs(2),
        }
    }
}

pub struct SimulatedDialer {
    inner: Arc<Agent>,
    calls: Mutex<JoinSet<()>>,
}

/// What every simulated agent shares.
struct Agent {
    client: reqwest::Client,
    webhook_url: String,
    key: Vec<u8>,
    clock: Arc<dyn Clock>,
    pace: Pace,
}

impl SimulatedDialer {
    /// Agents that report to `webhook_url`, signing with `key` (the first
    /// `WEBHOOK_SECRET` key), with timestamps from `clock`.
    pub fn new(webhook_url: String, key: Vec<u8>, clock: Arc<dyn Clock>, pace: Pace) -> Self {
        crate::install_crypto();
        Self {
            inner: Arc::new(Agent {
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("an HTTP client"),
                webhook_url,
                key,
                clock,
                pace,
            }),
            calls: Mutex::new(JoinSet::new()),
        }
    }
}

/// A draw from 0.5 to 1.5, to keep simulated calls from marching in step.
fn wobble(d: Duration) -> Duration {
    d.mul_f64(0.5 + crate::jitter_draw())
}

impl Agent {
    /// Run one simulated call to its end.
    async fn call(&self, persona: Persona, meta: Value, id: String, attempt: u32) {
        let outcome = |result: &str, summary: &str| {
            json!({"result": result, "summary": summary,
                   "duration_seconds": 20 + (crate::jitter_draw() * 120.0) as u32})
        };
        tokio::time::sleep(wobble(self.pace.ring)).await;
        let ring_only = match persona {
            Persona::Silent => return,
            Persona::NoAnswer => Some(json!({"result": "no_answer", "duration_seconds": 0})),
            Persona::Busy => Some(json!({"result": "busy", "duration_seconds": 0})),
            Persona::InvalidNumber => {
                let failure = json!({"reason": "invalid number", "sip_status": 404,
                                     "retryable": false});
                self.report(&id, attempt, "call_failed", Some(("failure", failure)))
                    .await;
                return;
            }
            Persona::TrunkError => {
                let failure = json!({"reason": "sip trunk error", "sip_status": 503,
                                     "retryable": true});
                self.report(&id, attempt, "call_failed", Some(("failure", failure)))
                    .await;
                return;
            }
            _ => None,
        };
        if let Some(o) = ring_only {
            self.report(&id, attempt, "call_completed", Some(("outcome", o)))
                .await;
            return;
        }
        self.report(&id, attempt, "call_answered", None).await;
        tokio::time::sleep(wobble(self.pace.talk)).await;
        let o = match persona {
            Persona::Promise => json!({
                "result": "payment_promised",
                "promised_amount_minor": meta["amount_due_minor"],
                "promised_date": meta["due_date"],
                "summary": "Confirmed identity; agreed to pay the full amount by the due date.",
                "duration_seconds": 60 + (crate::jitter_draw() * 120.0) as u32,
            }),
            Persona::Paid => outcome("paid", "Says the invoice was paid last week."),
            Persona::Dispute => outcome(
                "disputed",
                "Disputes the amount; asked for an itemised bill.",
            ),
            Persona::Refuse => outcome("refused", "Declined to pay."),
            Persona::Callback => {
                let mut o = outcome(
                    "callback_requested",
                    "Busy now; asked to be called back a little later.",
                );
                let at = self.clock.now()
                    + chrono::Duration::from_std(self.pace.callback).unwrap_or_default();
                o["callback_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                o
            }
            Persona::ThirdParty => outcome(
                "not_available",
                "Someone else answered; the customer could not come to the phone. Nothing about the debt was said.",
            ),
            Persona::WrongNumber => outcome(
                "wrong_number",
                "The person who answered is not the customer.",
            ),
            Persona::OptOut => outcome("opted_out", "Asked not to be called again."),
            Persona::Voicemail => json!({"result": "voicemail", "duration_seconds": 15}),
            _ => return,
        };
        self.report(&id, attempt, "call_completed", Some(("outcome", o)))
            .await;
    }

    /// Send one signed event, retrying as the real agent does.
    async fn report(&self, id: &str, attempt: u32, kind: &str, extra: Option<(&str, Value)>) {
        let mut body = json!({"event_type": kind, "reminder_id": id, "attempt": attempt});
        if let Some((k, v)) = extra {
            body[k] = v;
        }
        let body = body.to_string();
        let webhook_id = format!("msg_sim_{}", uuid::Uuid::new_v4().simple());
        for attempt_no in 0..3u32 {
            if attempt_no > 0 {
                let backoff = Duration::from_millis(200 * (1 << attempt_no));
                tokio::time::sleep(wobble(backoff)).await;
            }
            let ts = self.clock.now().timestamp();
            let sig = crate::webhook::sign(&self.key, &webhook_id, ts, body.as_bytes());
            let sent = self
                .client
                .post(&self.webhook_url)
                .header("content-type", "application/json")
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status < 500 && status != 429 {
                        if status >= 300 {
                            tracing::warn!(
                                reminder_id = id,
                                event = kind,
                                status,
                                "simulated report refused"
                            );
                        }
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(reminder_id = id, event = kind, error = %e, "simulated report failed; retrying");
                }
            }
        }
        tracing::warn!(
            reminder_id = id,
            event = kind,
            "simulated report given up after 3 tries"
        );
    }
}

#[async_trait]
impl Dialer for SimulatedDialer {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn dial(&self, call: &CallRequest) -> Result<(), DialError> {
        let meta: Value = serde_json::from_str(&call.metadata)
            .map_err(|e| DialError::new("simulate", format!("metadata: {e}")))?;
        let persona = match call.persona.as_deref() {
            Some(list) => Persona::for_attempt(list, call.attempt)
                .map_err(|e| DialError::new("simulate", e))?,
            None => Persona::default_for(call.reminder_id.as_uuid().as_u128(), call.attempt),
        };
        let agent = Arc::clone(&self.inner);
        let id = call.reminder_id.to_string();
        let attempt = call.attempt;
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        // Reap the calls that have ended, so the set stays small.
        while calls.try_join_next().is_some() {}
        calls.spawn(async move { agent.call(persona, meta, id, attempt).await });
        Ok(())
    }

    async fn drain(&self, within: Duration) {
        let mut calls = std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(within, async { while calls.join_next().await.is_some() {} })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_are_read_one_per_attempt_and_the_last_repeats() {
        let list = "no_answer, silent,promise";
        assert_eq!(Persona::for_attempt(list, 1), Ok(Persona::NoAnswer));
        assert_eq!(Persona::for_attempt(list, 2), Ok(Persona::Silent));
        assert_eq!(Persona::for_attempt(list, 3), Ok(Persona::Promise));
        assert_eq!(Persona::for_attempt(list, 9), Ok(Persona::Promise));
        assert!(Persona::for_attempt("promise,chatty", 2).is_err());
        assert!(Persona::for_attempt("", 1).is_err());
    }
}
