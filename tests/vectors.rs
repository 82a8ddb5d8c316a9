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
