//! The checks of the webhook fuzz target, in one place: `fuzz/fuzz_targets/webhook.rs`
//! (libFuzzer, `scripts/fuzz`) and `tests/fuzz_regressions.rs` (stable `cargo test`,
//! replaying `fuzz/regressions/webhook/` and the seeds) both include this file with
//! `#[path]`, so what the fuzzer asserts is exactly what the regression test replays.
//!
//! # Input format
//!
//! Text-like, so seeds and hand-made regressions can be written and read by a person.
//! The input is split at its first four `\n`:
//!
//! ```text
//! <webhook-id>\n<webhook-timestamp>\n<webhook-signature>\n<now>\n<body: all the bytes after>
//! ```
//!
//! - A header line that is empty or not UTF-8 is an absent header (the handler sees
//!   `None` for a header `HeaderValue::to_str` refuses).
//! - In the signature line, `{sig}` stands for the correct `v1,…` entry under [`SECRET`]
//!   for this id, timestamp and body (made by `duecall::webhook::sign` when the timestamp
//!   is a canonical number), and `{other}` for the one under [`OTHER_SECRET`]: so the
//!   fuzzer can mutate the body and still get past the verifier to the parser.
//! - `<now>` is the receiver's clock in seconds *relative to the timestamp* (to [`BASE`]
//!   when the timestamp is not a number; an offset that is not a number is 0), clamped
//!   to the range of `DateTime<Utc>`: the handler passes `now.timestamp()`, nothing else.
//! - An input with fewer than four `\n` is all body, sent with id `msg_fuzz`, timestamp
//!   [`BASE`], signature `{sig}` and the clock at [`BASE`]: a nasty body needs no header
//!   lines to reach the parser.
//!
//! # Invariants (any violation panics, which libFuzzer keeps as a crash)
//!
//! 1. Neither `verify` nor `parse_event` panics, on any bytes.
//! 2. `verify` accepts exactly what the standard does (an oracle written here from
//!    SPEC §2, not from src/webhook.rs): all three headers present, a timestamp of 1 to
//!    12 ASCII digits within [`TOLERANCE_SECS`] of the clock, and some whitespace-separated
//!    entry equal to `v1,` + base64(HMAC-SHA256(key, `{id}.{timestamp}.{body}`)). In
//!    particular a signature made with another key never verifies, and with both keys
//!    configured (rotation) either one does. A refusal names a reason that holds.
//! 3. `duecall::webhook::sign` makes the same entry as the oracle.
//! 4. `parse_event` answers `PayloadError::Json` exactly when the body is not a JSON
//!    object; it is deterministic; an `Event` it returns has the body's `event_type`
//!    and `attempt`, a `reminder_id` that is the body's string parsed and that
//!    round-trips through its text form, and `occurred_at` = the receive time when the
//!    body gives none. An `UnknownReminder` names the body's string, which is no UUID.

use std::sync::OnceLock;

use base64::Engine;
use chrono::{DateTime, Utc};
use duecall::domain::{EventKind, ReminderId};
use duecall::webhook::{self, PayloadError, VerifyError, WebhookSecrets, TOLERANCE_SECS};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The receiver's secret: the TEST-ONLY key of spec/vectors/call-status.json, so its
/// cases' own signatures verify too.
pub const SECRET: &str = "whsec_ZHVlY2FsbC10ZXN0LW9ubHktd2ViaG9vay1rZXktMDE=";
/// Another key: the official Standard Webhooks test key (spec/vectors/standard-webhooks.json).
pub const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The default timestamp and clock: 2026-11-24T10:15:00Z, the vectors' first.
pub const BASE: i64 = 1_795_515_300;
/// [`BASE`] as the `webhook-timestamp` header writes it.
pub const BASE_TEXT: &str = "1795515300";

/// What one input came to; read by the regression test (the fuzz target only panics).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// `verify` accepted it with [`SECRET`] alone.
    pub verified: bool,
    /// `parse_event` returned an `Event`.
    pub parsed: bool,
}

struct Keys {
    key: Vec<u8>,
    other: Vec<u8>,
    /// [`SECRET`] alone.
    one: WebhookSecrets,
    /// [`OTHER_SECRET`] and [`SECRET`], as during a rotation.
    both: WebhookSecrets,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let decode = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim_start_matches("whsec_"))
                .expect("a test secret is base64")
        };
        Keys {
            key: decode(SECRET),
            other: decode(OTHER_SECRET),
            one: WebhookSecrets::parse(SECRET).expect("SECRET parses"),
            both: WebhookSecrets::parse(&format!("{OTHER_SECRET},{SECRET}"))
                .expect("both secrets parse"),
        }
    })
}

/// One delivery, decoded from fuzz bytes (see the module docs).
struct Input<'a> {
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    /// Before `{sig}` / `{other}` are replaced.
    signature: Option<&'a str>,
    now: i64,
    body: &'a [u8],
}

fn header(field: &[u8]) -> Option<&str> {
    std::str::from_utf8(field).ok().filter(|s| !s.is_empty())
}

/// `t` clamped to what `DateTime<Utc>::timestamp()` can return.
fn clock(t: i64) -> i64 {
    t.clamp(
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    )
}

fn decode(data: &[u8]) -> Input<'_> {
    let mut fields = data.splitn(5, |&b| b == b'\n');
    match (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) {
        (Some(id), Some(timestamp), Some(signature), Some(now), Some(body)) => {
            let timestamp = header(timestamp);
            let origin = timestamp
                .and_then(|t| t.parse::<i64>().ok())
                .unwrap_or(BASE);
            let offset = std::str::from_utf8(now)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            Input {
                id: header(id),
                timestamp,
                signature: header(signature),
                now: clock(origin.saturating_add(offset)),
                body,
            }
        }
        _ => Input {
            id: Some("msg_fuzz"),
            timestamp: Some(BASE_TEXT),
            signature: Some("{sig}"),
            now: BASE,
            body: data,
        },
    }
}

/// The `v1,…` entry a sender holding `key` puts in `webhook-signature`, written from
/// the standard: base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.
fn entry(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut hmac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        hmac.update(part);
    }
    let tag = hmac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// The timestamp as the verifier must read it: 1 to 12 ASCII digits (up to year ~33658).
fn unix_seconds(timestamp: &str) -> Option<i64> {
    let digits =
        (1..=12).contains(&timestamp.len()) && timestamp.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| timestamp.parse().expect("12 digits fit an i64"))
}

fn fresh(timestamp: &str, now: i64) -> bool {
    unix_seconds(timestamp)
        .is_some_and(|ts| (i128::from(now) - i128::from(ts)).abs() <= i128::from(TOLERANCE_SECS))
}

/// The oracle: whether a receiver holding `keys` must accept the delivery.
fn accepts(keys: &[&[u8]], input: &Input, signature: Option<&str>) -> bool {
    let (Some(id), Some(timestamp), Some(signature)) = (input.id, input.timestamp, signature)
    else {
        return false;
    };
    fresh(timestamp, input.now)
        && keys.iter().any(|key| {
            let want = entry(key, id, timestamp, input.body);
            signature.split_whitespace().any(|e| e == want)
        })
}

/// The signature header with `{sig}` and `{other}` replaced (invariant 3 checked on the way).
fn signature_header(input: &Input, keys: &Keys) -> Option<String> {
    let raw = input.signature?;
    if !raw.contains('{') {
        return Some(raw.to_owned());
    }
    let (id, timestamp) = (input.id.unwrap_or(""), input.timestamp.unwrap_or(""));
    let mut ours = entry(&keys.key, id, timestamp, input.body);
    if let Ok(ts) = timestamp.parse::<i64>() {
        if ts.to_string() == timestamp {
            let signed = webhook::sign(&keys.key, id, ts, input.body);
            assert_eq!(
                signed, ours,
                "webhook::sign disagrees with the standard's HMAC"
            );
            ours = signed;
        }
    }
    let theirs = entry(&keys.other, id, timestamp, input.body);
    Some(raw.replace("{sig}", &ours).replace("{other}", &theirs))
}

fn check_refusal(error: &VerifyError, input: &Input, signature: Option<&str>) {
    let holds = match error {
        VerifyError::MissingHeader("webhook-id") => input.id.is_none(),
        VerifyError::MissingHeader("webhook-timestamp") => input.timestamp.is_none(),
        VerifyError::MissingHeader("webhook-signature") => signature.is_none(),
        VerifyError::MissingHeader(_) => false,
        VerifyError::BadTimestamp => input.timestamp.is_some_and(|t| unix_seconds(t).is_none()),
        VerifyError::OutsideTolerance => input
            .timestamp
            .is_some_and(|t| unix_seconds(t).is_some() && !fresh(t, input.now)),
        VerifyError::NoMatchingSignature => true,
    };
    assert!(holds, "verify refused with {error:?}, which is not so");
}

fn check_verify(input: &Input) -> bool {
    let keys = keys();
    let signature = signature_header(input, keys);
    let signature = signature.as_deref();
    let verify = |secrets: &WebhookSecrets| {
        secrets.verify(input.id, input.timestamp, signature, input.body, input.now)
    };

    let one = verify(&keys.one);
    let want = accepts(&[&keys.key], input, signature);
    assert_eq!(
        one.is_ok(),
        want,
        "verify with the one key answered {one:?}; the standard says {}",
        if want { "accept" } else { "refuse" }
    );
    if let Err(e) = &one {
        check_refusal(e, input, signature);
    }

    let both = verify(&keys.both);
    let want = accepts(&[&keys.other, &keys.key], input, signature);
    assert_eq!(
        both.is_ok(),
        want,
        "verify with both keys (rotation) answered {both:?}; the standard says {}",
        if want { "accept" } else { "refuse" }
    );
    if let Some(id) = input.id {
        let _ = webhook::check_webhook_id(id);
    }
    one.is_ok()
}

fn check_event(body: &[u8], received_at: DateTime<Utc>) -> bool {
    let parsed = webhook::parse_event(body, received_at);
    assert_eq!(
        parsed,
        webhook::parse_event(body, received_at),
        "parse_event is not deterministic"
    );
    let json = serde_json::from_slice::<Value>(body).ok();
    let object = json.as_ref().and_then(Value::as_object);
    let Some(object) = object else {
        assert!(
            matches!(parsed, Err(PayloadError::Json(_))),
            "a body that is no JSON object gave {parsed:?}"
        );
        return false;
    };
    let field = |name: &str| object.get(name).filter(|v| !v.is_null());
    let event = match parsed {
        Ok(event) => event,
        Err(PayloadError::Json(e)) => panic!("a JSON object refused as not JSON: {e}"),
        Err(PayloadError::UnknownReminder(raw)) => {
            assert_eq!(
                field("reminder_id").and_then(Value::as_str),
                Some(raw.as_str())
            );
            assert!(
                ReminderId::parse(&raw).is_none(),
                "{raw:?} is a UUID, yet unknown"
            );
            return false;
        }
        Err(PayloadError::Field(_)) => return false,
    };

    let raw_id = field("reminder_id").and_then(Value::as_str);
    assert_eq!(raw_id.and_then(ReminderId::parse), Some(event.reminder_id));
    assert_eq!(
        ReminderId::parse(&event.reminder_id.to_string()),
        Some(event.reminder_id),
        "reminder_id does not round-trip through its text form"
    );
    assert_eq!(
        field("event_type").and_then(Value::as_str),
        Some(event.event_type().as_str())
    );
    let attempt = field("attempt").map(|a| a.as_u64().expect("a parsed attempt is a u64"));
    assert_eq!(event.attempt.map(u64::from), attempt);
    assert_ne!(event.attempt, Some(0), "attempt 0 accepted");
    if field("occurred_at").is_none() {
        assert_eq!(event.occurred_at, received_at);
    }
    if let EventKind::Completed(_) = event.kind {
        assert!(
            field("outcome").is_some(),
            "call_completed without an outcome"
        );
    }
    true
}

/// Run every check on one fuzz input; panics on a violated invariant.
pub fn check(data: &[u8]) -> Checked {
    let input = decode(data);
    let verified = check_verify(&input);
    let received_at = DateTime::from_timestamp(input.now, 0).expect("now is in DateTime's range");
    let parsed = check_event(input.body, received_at);
    Checked { verified, parsed }
}
