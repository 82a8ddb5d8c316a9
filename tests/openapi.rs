//! The published OpenAPI description: served at `/api/openapi.json`, and it
//! describes exactly the routes the router serves — no more, no fewer.
//! (`scripts/test` also runs schemathesis against it: see `scripts/schemathesis`.)

mod common;

use std::collections::BTreeSet;

use common::{Backend, TestApp};
use serde_json::Value;

/// The description as an anonymous client gets it.
async fn description(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    doc
}

#[tokio::test]
async fn every_route_served_is_described_and_nothing_else() {
    // Every optional route switched on (the cron and LiveKit routes are 404s without their secrets).
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("CRON_SECRET", "cron-secret-0123456789abcdefghijklmnop"),
            ("LIVEKIT_URL", "http://127.0.0.1:9"),
            ("LIVEKIT_API_KEY", "key"),
            ("LIVEKIT_API_SECRET", "secret-secret-secret-secret-secret"),
            ("DASHBOARD_PASSWORD", "dashboard-password-0123"),
        ],
    )
    .await
    .unwrap();
    let doc = description(&app).await;

    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| {
                    ["get", "put", "post", "delete", "patch", "head", "options"]
                        .contains(&k.as_str())
                })
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = duecall::http::served_routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    let undescribed: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        undescribed.is_empty(),
        "served but not described: {undescribed:?}"
    );
    assert!(
        unserved.is_empty(),
        "described but not served: {unserved:?}"
    );
    assert!(served.len() >= 17, "{served:?}");

    // Every route answers something other than the router's own 404/405 for
    // the method it is described with (so the list really is the router's).
    for (method, path) in &served {
        let path = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let resp = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !body.contains("no such route\""),
            "{method} {path} fell through to the fallback: {status} {body}"
        );
    }

    // Each operation documents its answers, and every JSON error is the one shape.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            for (code, r) in responses {
                if let Some(schema) = r.pointer("/content/application~1json/schema/$ref") {
                    if code.starts_with('4') || code.starts_with('5') {
                        assert_eq!(
                            schema, "#/components/schemas/ErrorBody",
                            "{method} {path} {code}"
                        );
                    }
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_description_names_its_security_schemes() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = description(&app).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in [
        "apiKey",
        "cronSecret",
        "webhookSignature",
        "livekitToken",
        "session",
    ] {
        assert!(schemes.contains_key(name), "{name}");
    }
    let security = |path: &str, method: &str| doc["paths"][path][method]["security"][0].clone();
    assert!(security("/api/reminders", "post").get("apiKey").is_some());
    assert!(security("/api/cron/process-reminders", "get")
        .get("cronSecret")
        .is_some());
    assert!(security("/", "get").get("session").is_some());
    app.stop().await;
}

/// The property names of schema `name`, following a `$ref`.
fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name} with properties"))
        .keys()
        .cloned()
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn every_field_an_answer_carries_is_described() {
    const CRON: &str = "cron-secret-0123456789abcdefghijklmnop";
    let app = TestApp::spawn_with(Backend::Sqlite, &[("CRON_SECRET", CRON)])
        .await
        .unwrap();
    let doc = description(&app).await;

    // A reminder with every optional field set, after a callback was asked for.
    let id = app
        .live_reminder(
            serde_json::json!({"external_id": "INV-1", "debt_ref": "D-1",
            "region": "US-NY", "timezone": "America/New_York"}),
        )
        .await;
    let body = common::event(
        "call_completed",
        id,
        serde_json::json!({"outcome": {"result": "callback_requested",
            "callback_at": "2026-11-25T17:00:00Z", "summary": "later",
            "duration_seconds": 12, "transcript": "…"}}),
    );
    assert_eq!(app.send_event(&common::msg_id(), &body).await.status(), 200);
    let r = app.reminder(id).await;
    let mut reminder = keys(&r);
    reminder.remove("attempts");
    reminder.remove("payments");
    assert_eq!(reminder.take("actions"), Some("actions".to_owned()));
    assert_eq!(reminder, properties(&doc, "Reminder"));
    // The operators' actions it carries (none yet here) are described too.
    let with = doc["components"]["schemas"]["ReminderWithAttempts"].to_string();
    assert!(with.contains("\"actions\""), "{with}");
    let action: BTreeSet<String> = ["action", "actor", "at", "detail"].map(String::from).into();
    assert_eq!(properties(&doc, "ReminderAction"), action);
    assert_eq!(
        doc["components"]["schemas"]["ActionKind"]["enum"],
        serde_json::json!(["cancel", "call_now", "suppress"])
    );
    assert_eq!(keys(&r["attempts"][0]), properties(&doc, "Attempt"));
    assert_eq!(keys(&r["outcome"]), properties(&doc, "Outcome"));
    let create = properties(&doc, "CreateReminder");
    for field in ["debt_ref", "region", "timezone"] {
        assert!(create.contains(field), "{field} can be given on create");
    }
    let deferred_by = &doc["components"]["schemas"]["DeferredBy"]["enum"];
    assert_eq!(
        deferred_by,
        &serde_json::json!(["window", "blackout", "frequency", "quiet_period"])
    );

    // A suppression as added, and the tick's report.
    let added: Value = app
        .api(reqwest::Method::POST, "/api/suppressions")
        .json(&serde_json::json!({"phone_number": "+12125550111", "reason": "asked"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&added), properties(&doc, "Suppression"), "{added}");
    let tick: Value = app
        .client
        .post(app.url("/api/cron/process-reminders"))
        .bearer_auth(CRON)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&tick), properties(&doc, "TickReport"), "{tick}");
    app.stop().await;
}
