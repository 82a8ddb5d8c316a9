//! The signed-webhook vectors in spec/vectors/, shared with the Python agent:
//! the official Standard Webhooks cases and our own call-status payloads.

use duecall::webhook::{parse_event, WebhookSecrets};
use serde_json::Value;

fn cases(file: &str) -> Vec<Value> {
    let path = format!("{}/spec/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().expect("cases").clone();
    assert!(cases.len() >= 5, "{file} has too few cases");
    cases
}

fn verify(case: &Value) -> bool {
    let Ok(secrets) = WebhookSecrets::parse(case["secret"].as_str().unwrap()) else {
        return false;
    };
    let timestamp = match &case["timestamp"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("timestamp {other}"),
    };
    let now = case["now"]
        .as_i64()
        .unwrap_or_else(|| timestamp.parse().unwrap());
    secrets
        .verify(
            case["msg_id"].as_str(),
            Some(&timestamp),
            case["signature"].as_str(),
            case["payload"].as_str().unwrap().as_bytes(),
            now,
        )
        .is_ok()
}

#[test]
fn standard_webhooks_official_vectors() {
    let (mut valid, mut invalid) = (0, 0);
    for case in cases("standard-webhooks.json") {
        let expected = case["valid"].as_bool().unwrap();
        assert_eq!(verify(&case), expected, "{}", case["name"]);
        if expected {
            valid += 1
        } else {
            invalid += 1
        }
    }
    assert!(valid >= 1 && invalid >= 3, "both kinds of case are present");
}

#[test]
fn call_status_vectors_verify_and_parse() {
    for case in cases("call-status.json") {
        let name = case["name"].as_str().unwrap();
        assert_eq!(verify(&case), case["valid"].as_bool().unwrap(), "{name}");
        let received =
            chrono::DateTime::from_timestamp(case["timestamp"].as_i64().unwrap(), 0).unwrap();
        let payload = case["payload"].as_str().unwrap();
        let event = parse_event(payload.as_bytes(), received)
            .unwrap_or_else(|e| panic!("{name}: our own payload must parse: {e:?}"));
        if let Some(t) = case["event_type"].as_str() {
            assert_eq!(event.event_type().as_str(), t, "{name}");
        }
    }
}

#[test]
fn call_status_vectors_carry_the_new_outcomes_as_the_spec_reads_them() {
    use duecall::domain::{EventKind, OutcomeResult};
    let outcome_of = |name: &str| {
        let case = cases("call-status.json")
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name}"));
        let received =
            chrono::DateTime::from_timestamp(case["timestamp"].as_i64().unwrap(), 0).unwrap();
        match parse_event(case["payload"].as_str().unwrap().as_bytes(), received)
            .unwrap()
            .kind
        {
            EventKind::Completed(o) => o,
            other => panic!("{name}: {other:?}"),
        }
    };
    // Someone else answered: unreached (retried), not a conversation.
    let o = outcome_of("completed_not_available");
    assert_eq!(o.result, OutcomeResult::NotAvailable);
    assert!(o.result.is_unreached() && !o.result.is_conversation());
    // 17:00 at UTC-5, sent as UTC.
    let o = outcome_of("completed_callback_requested_at");
    assert_eq!(o.result, OutcomeResult::CallbackRequested);
    assert_eq!(
        o.callback_at,
        Some(
            chrono::DateTime::parse_from_rfc3339("2026-11-25T22:00:00Z")
                .unwrap()
                .into()
        )
    );
    assert!(o.result.is_conversation());
    assert_eq!(outcome_of("completed_callback_requested").callback_at, None);
}
