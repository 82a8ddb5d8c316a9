//! The call-status webhook through HTTP, on both databases: the seed
//! properties by name, stale attempts, races, and hostile input.

mod common;

use std::collections::HashSet;

use chrono::Duration;
use common::{completed, event, msg_id, t, webhook_key, Backend, TestApp};
use duecall::domain::ReminderId;
use duecall::webhook::sign;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn expect(resp: reqwest::Response, status: StatusCode) -> Value {
    let got = resp.status();
    let body: Value = resp.json().await.expect("every answer is JSON");
    assert_eq!(got, status, "{body}");
    body
}

async fn error_code(resp: reqwest::Response, status: StatusCode) -> String {
    let body = expect(resp, status).await;
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["code"].as_str().unwrap().to_owned()
}

// --- property 01 -------------------------------------------------------------

async fn authentication(backend: Backend) {
    let second = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tMDE=";
    let secrets = format!("{},{}", common::WEBHOOK_SECRET, second);
    let Some(app) = TestApp::spawn_with(backend, &[("WEBHOOK_SECRET", &secrets)]).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let body = event("call_answered", id, json!({"attempt": 1}));
    let key = webhook_key();
    let ts = app.now_unix();
    let good = sign(&key, "msg_1", ts, body.as_bytes());
    let other_key = b"some-other-secret-of-32-bytes!!!";
    let h = |id: &str, ts: String, sig: String| {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ]
    };
    let mut tampered = body.clone().into_bytes();
    tampered[5] ^= 0x01;
    type Headers<'a> = Vec<(&'a str, String)>;
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        (
            "body changed",
            h("msg_1", ts.to_string(), good.clone()),
            tampered,
        ),
        (
            "body extended",
            h("msg_1", ts.to_string(), good.clone()),
            format!("{body} ").into_bytes(),
        ),
        (
            "id changed",
            h("msg_2", ts.to_string(), good.clone()),
            body.clone().into_bytes(),
        ),
        (
            "timestamp changed",
            h("msg_1", (ts + 1).to_string(), good.clone()),
            body.clone().into_bytes(),
        ),
        (
            "wrong secret",
            h(
                "msg_1",
                ts.to_string(),
                sign(other_key, "msg_1", ts, body.as_bytes()),
            ),
            body.clone().into_bytes(),
        ),
        (
            "garbage signature",
            h("msg_1", ts.to_string(), "v1,AAAA".into()),
            body.clone().into_bytes(),
        ),
        (
            "unknown version only",
            h("msg_1", ts.to_string(), good.replacen("v1,", "v2,", 1)),
            body.clone().into_bytes(),
        ),
        (
            "no version",
            h(
                "msg_1",
                ts.to_string(),
                good.trim_start_matches("v1,").to_owned(),
            ),
            body.clone().into_bytes(),
        ),
        (
            "too old",
            h(
                "msg_1",
                (ts - 301).to_string(),
                sign(&key, "msg_1", ts - 301, body.as_bytes()),
            ),
            body.clone().into_bytes(),
        ),
        (
            "too new",
            h(
                "msg_1",
                (ts + 301).to_string(),
                sign(&key, "msg_1", ts + 301, body.as_bytes()),
            ),
            body.clone().into_bytes(),
        ),
        (
            "timestamp not a number",
            h("msg_1", "soon".into(), good.clone()),
            body.clone().into_bytes(),
        ),
        ("no headers", vec![], body.clone().into_bytes()),
        (
            "no signature",
            vec![
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", ts.to_string()),
            ],
            body.clone().into_bytes(),
        ),
        (
            "no timestamp",
            vec![
                ("webhook-id", "msg_1".into()),
                ("webhook-signature", good.clone()),
            ],
            body.clone().into_bytes(),
        ),
        (
            "no id",
            vec![
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", good.clone()),
            ],
            body.clone().into_bytes(),
        ),
    ];
    for (name, headers, body) in cases {
        let resp = app.send_raw(&headers, body).await;
        assert_eq!(
            error_code(resp, StatusCode::UNAUTHORIZED).await,
            "invalid_signature",
            "{name}"
        );
        let r = app.reminder(id).await;
        assert_eq!(r["status"], "in_progress", "{name}: no state change");
        assert_eq!(app.event_count(id).await, 0, "{name}: nothing recorded");
    }
    // The edges of the tolerance are inside it; several signatures, one valid, pass;
    // a delivery signed with the second (rotated-in) secret is accepted.
    let second_key = duecall::webhook::WebhookSecrets::parse(second)
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .to_vec();
    let edge = ts - 300;
    let sigs = format!(
        "v1,AAAA {} v2,zzz",
        sign(&second_key, "msg_ok", edge, body.as_bytes())
    );
    let resp = app
        .send_raw(
            &h("msg_ok", edge.to_string(), sigs),
            body.clone().into_bytes(),
        )
        .await;
    let ok = expect(resp, StatusCode::OK).await;
    assert_eq!(
        ok,
        json!({"reminder_id": id.to_string(), "status": "processing", "applied": true})
    );
    app.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The verifier itself: any single-bit change to body, id or timestamp, or
    /// a different key, fails; the untouched delivery passes.
    #[test]
    fn property_01_authentication_enforcement_verifier(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        id in "[a-zA-Z0-9_]{1,40}",
        skew in -300i64..=300,
        flip in any::<proptest::sample::Index>(),
        bit in 0u8..8,
        target in 0u8..4,
    ) {
        let secrets = duecall::webhook::WebhookSecrets::parse(common::WEBHOOK_SECRET).unwrap();
        let key = webhook_key();
        let now = 1_795_000_000i64;
        let ts = now + skew;
        let sig = sign(&key, &id, ts, &body);
        let ts_s = ts.to_string();
        prop_assert!(secrets.verify(Some(&id), Some(&ts_s), Some(&sig), &body, now).is_ok());
        let (mut b, mut i, mut tss) = (body.clone(), id.clone().into_bytes(), ts_s.clone().into_bytes());
        let key2: Vec<u8> = key.iter().map(|k| k ^ 0x5a).collect();
        let sig2 = match target {
            0 if !b.is_empty() => { let n = flip.index(b.len()); b[n] ^= 1 << bit; sig.clone() }
            1 => { let n = flip.index(i.len()); i[n] ^= 1 << (bit % 7); sig.clone() }
            2 => { let n = flip.index(tss.len()); tss[n] = if tss[n] == b'9' { b'0' } else { tss[n] + 1 }; sig.clone() }
            _ => sign(&key2, &id, ts, &body),
        };
        let changed = b != body || i != id.as_bytes() || tss != ts_s.as_bytes() || sig2 != sig;
        prop_assume!(changed);
        let i = String::from_utf8_lossy(&i).into_owned();
        let tss = String::from_utf8_lossy(&tss).into_owned();
        prop_assert!(secrets.verify(Some(&i), Some(&tss), Some(&sig2), &b, now).is_err());
    }
}

// --- property 02 -------------------------------------------------------------

async fn validation(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let rid = id.to_string();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"reminder_id": rid}), "event_type"),
        (
            json!({"event_type": null, "reminder_id": rid}),
            "event_type",
        ),
        (
            json!({"event_type": "call_exploded", "reminder_id": rid}),
            "event_type",
        ),
        (json!({"event_type": 3, "reminder_id": rid}), "event_type"),
        (json!({"event_type": "call_answered"}), "reminder_id"),
        (
            json!({"event_type": "call_answered", "reminder_id": 42}),
            "reminder_id",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": null}),
            "reminder_id",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": rid, "attempt": 0}),
            "attempt",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": rid, "attempt": -1}),
            "attempt",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": rid, "attempt": "1"}),
            "attempt",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": rid, "attempt": 1.5}),
            "attempt",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": rid, "attempt": 99999999999u64}),
            "attempt",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": rid, "occurred_at": "yesterday"}),
            "occurred_at",
        ),
        (
            json!({"event_type": "call_answered", "reminder_id": rid, "occurred_at": 1700000000}),
            "occurred_at",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid}),
            "outcome",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": "paid"}),
            "outcome",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {}}),
            "outcome.result",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "maybe"}}),
            "outcome.result",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "paid", "promised_amount_minor": -1}}),
            "outcome.promised_amount_minor",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "paid", "promised_amount_minor": "100"}}),
            "outcome.promised_amount_minor",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "paid", "promised_date": "12/01/2026"}}),
            "outcome.promised_date",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "paid", "duration_seconds": -3}}),
            "outcome.duration_seconds",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "paid", "summary": ["x"]}}),
            "outcome.summary",
        ),
        (
            json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "paid", "transcript": "a\u{0}b"}}),
            "outcome.transcript",
        ),
        (
            json!({"event_type": "call_failed", "reminder_id": rid, "failure": "busy"}),
            "failure",
        ),
        (
            json!({"event_type": "call_failed", "reminder_id": rid, "failure": {"sip_status": 1000}}),
            "failure.sip_status",
        ),
        (
            json!({"event_type": "call_failed", "reminder_id": rid, "failure": {"retryable": "yes"}}),
            "failure.retryable",
        ),
        (
            json!({"event_type": "call_failed", "reminder_id": rid, "failure": {"reason": 7}}),
            "failure.reason",
        ),
    ];
    for (body, field) in cases {
        let resp = app.send_event(&msg_id(), &body.to_string()).await;
        let err = expect(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(err["error"]["code"], "invalid_field", "{body}");
        assert_eq!(err["error"]["field"], field, "{body}");
    }
    for raw in [
        "not json",
        "[1,2,3]",
        "\"call_answered\"",
        "{\"event_type\": ",
        "{\"attempt\": 1e400}",
    ] {
        let resp = app.send_event(&msg_id(), raw).await;
        assert_eq!(
            error_code(resp, StatusCode::BAD_REQUEST).await,
            "invalid_json",
            "{raw}"
        );
    }
    // An unusable webhook-id, properly signed.
    let resp = app
        .send_event(&"x".repeat(300), &event("call_answered", id, json!({})))
        .await;
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "invalid_field"
    );
    assert_eq!(app.reminder(id).await["status"], "in_progress");
    assert_eq!(
        app.event_count(id).await,
        0,
        "refused bodies are not recorded"
    );
    app.stop().await;
}

// --- property 03 -------------------------------------------------------------

async fn invalid_ids(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ids: Vec<String> = vec![
        ReminderId::new().to_string(),
        "not-a-uuid".into(),
        String::new(),
        "../../etc/passwd".into(),
        "00000000-0000-0000-0000-000000000000".into(),
        "DROP TABLE reminders;".into(),
    ];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..20 {
        ids.push(
            any::<String>()
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .replace('\0', ""),
        );
    }
    for rid in ids {
        let body = json!({"event_type": "call_completed", "reminder_id": rid, "outcome": {"result": "paid"}});
        let resp = app.send_event(&msg_id(), &body.to_string()).await;
        assert_eq!(
            error_code(resp, StatusCode::NOT_FOUND).await,
            "not_found",
            "{rid:?}"
        );
    }
    app.stop().await;
}

// --- property 04 -------------------------------------------------------------

async fn idempotency(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let body = event(
        "call_completed",
        id,
        json!({"attempt": 1, "outcome": {"result": "payment_promised", "promised_amount_minor": 5000}}),
    );
    let first = expect(app.send_event("msg_once", &body).await, StatusCode::OK).await;
    assert_eq!(first["applied"], true);
    let before = app.reminder(id).await;
    app.clock.advance(Duration::seconds(30));
    // The same event again (the same body, or the same event serialised anew).
    for repeat in [
        body.clone(),
        event(
            "call_completed",
            id,
            json!({"attempt": 1, "outcome": {"result": "payment_promised", "promised_amount_minor": 5000}, "occurred_at": "2026-11-24T15:00:00Z"}),
        ),
    ] {
        let again = expect(app.send_event("msg_once", &repeat).await, StatusCode::OK).await;
        assert_eq!(
            again,
            json!({"reminder_id": id.to_string(), "status": "completed", "applied": false})
        );
        assert_eq!(app.reminder(id).await, before, "a repeat changes nothing");
    }
    assert_eq!(app.event_count(id).await, 1);
    app.stop().await;
}

// --- properties 05-08 ----------------------------------------------------------

async fn to_processing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    // Heard 3 s after the dispatch, from an agent whose clock is 5 s behind:
    // the attempt keeps the service's time (SPEC §4).
    app.clock.advance(Duration::seconds(3));
    let body = event(
        "call_answered",
        id,
        json!({"attempt": 1, "occurred_at": "2026-11-24T14:59:58Z"}),
    );
    let r = expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    assert_eq!(
        r,
        json!({"reminder_id": id.to_string(), "status": "processing", "applied": true})
    );
    let got = app.reminder(id).await;
    assert_eq!(got["status"], "processing");
    assert_eq!(got["attempts"][0]["status"], "processing");
    assert_eq!(got["attempts"][0]["answered_at"], "2026-11-24T15:00:03Z");
    // Answered again (another delivery id): news the attempt has moved past.
    let r = expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    assert_eq!(r["applied"], false);
    // Without `attempt`, the event applies to the current one.
    let r = expect(
        app.send_event(&msg_id(), &completed(id, "paid")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["status"], "completed");
    // Answered after completed: 200, not applied, still completed.
    let r = expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    assert_eq!(
        r,
        json!({"reminder_id": id.to_string(), "status": "completed", "applied": false})
    );
    app.stop().await;
}

async fn to_completed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (result, status) in [
        ("payment_promised", "completed"),
        ("paid", "completed"),
        ("refused", "completed"),
        ("disputed", "completed"),
        ("wrong_number", "completed"),
        ("other", "completed"),
        ("opted_out", "cancelled"),
    ] {
        let id = app.live_reminder(json!({})).await;
        // Half of them answered first, half straight from in_progress.
        if result.len() % 2 == 0 {
            expect(
                app.send_event(&msg_id(), &event("call_answered", id, json!({})))
                    .await,
                StatusCode::OK,
            )
            .await;
        }
        let r = expect(
            app.send_event(&msg_id(), &completed(id, result)).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(r["status"], status, "{result}");
        assert_eq!(r["applied"], true);
        let got = app.reminder(id).await;
        assert_eq!(got["status"], status);
        assert_eq!(
            got["next_attempt_at"],
            Value::Null,
            "{result}: never called again"
        );
        assert_eq!(got["outcome"]["result"], result);
        assert_eq!(got["attempts"][0]["status"], "completed");
        if result == "opted_out" {
            assert_eq!(got["skip_reason"], "opted_out");
            let resp = app
                .api(
                    reqwest::Method::POST,
                    &format!("/api/reminders/{id}/cancel"),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "already cancelled");
        }
    }
    app.stop().await;
}

async fn to_failed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Retryable: failed, with the next attempt scheduled.
    let id = app.live_reminder(json!({})).await;
    let body = event(
        "call_failed",
        id,
        json!({"failure": {"reason": "sip trunk error", "sip_status": 503, "retryable": true}}),
    );
    let r = expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    assert_eq!(r["status"], "failed");
    let got = app.reminder(id).await;
    assert_eq!(got["skip_reason"], "call_failed: sip trunk error");
    assert!(got["next_attempt_at"].is_string(), "retry scheduled: {got}");
    assert_eq!(got["attempts"][0]["status"], "failed");
    assert_eq!(
        got["attempts"][0]["failure"],
        json!({"reason": "sip trunk error", "sip_status": 503, "retryable": true})
    );
    // Permanent: no retry.
    let id = app.live_reminder(json!({})).await;
    let body = event(
        "call_failed",
        id,
        json!({"failure": {"reason": "invalid number", "sip_status": 404, "retryable": false}}),
    );
    expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    let got = app.reminder(id).await;
    assert_eq!(got["status"], "failed");
    assert_eq!(got["next_attempt_at"], Value::Null);
    // No attempt left: no retry. No failure object: a reason all the same.
    let id = app.live_reminder(json!({"max_attempts": 1})).await;
    expect(
        app.send_event(&msg_id(), &event("call_failed", id, json!({})))
            .await,
        StatusCode::OK,
    )
    .await;
    let got = app.reminder(id).await;
    assert_eq!(got["status"], "failed");
    assert_eq!(got["next_attempt_at"], Value::Null);
    assert_eq!(got["skip_reason"], "call_failed: unknown");
    app.stop().await;
}

async fn no_answer_retries(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // 15:00Z is 10:00 in New York: a 2 h ± 10 % retry stays inside the window.
    for result in ["no_answer", "busy", "voicemail"] {
        let id = app.live_reminder(json!({"max_attempts": 2})).await;
        let r = expect(
            app.send_event(&msg_id(), &completed(id, result)).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(r["status"], "pending", "{result}");
        let got = app.reminder(id).await;
        assert_eq!(got["skip_reason"], result);
        assert_eq!(got["attempt_count"], 1);
        let next = common::t(got["next_attempt_at"].as_str().unwrap());
        let now = t("2026-11-24T15:00:00Z");
        assert!(
            next >= now + Duration::minutes(108) && next <= now + Duration::minutes(132),
            "{next}"
        );
        // The second (last) attempt unreached too: failed, no retry.
        app.start_attempt(id).await;
        let r = expect(
            app.send_event(&msg_id(), &completed(id, result)).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(r["status"], "failed");
        let got = app.reminder(id).await;
        assert_eq!(got["skip_reason"], "max_attempts_reached");
        assert_eq!(got["next_attempt_at"], Value::Null);
        assert_eq!(got["attempts"].as_array().unwrap().len(), 2);
    }
    app.stop().await;
}

// --- properties 09-10 ----------------------------------------------------------

async fn outcome_persistence(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let outcome = json!({
        "result": "payment_promised",
        "promised_amount_minor": 12000,
        "promised_date": "2026-12-01",
        "summary": "Agreed to pay the full amount on Dec 1.",
        "transcript": "Agent: Hello Ada…\nAda: Oui, je paierai le 1er décembre. 👍 \"quoted\" \\ back",
        "duration_seconds": 93
    });
    app.clock.advance(Duration::seconds(93));
    let body = event(
        "call_completed",
        id,
        json!({"attempt": 1, "occurred_at": "2026-11-24T15:01:31Z", "outcome": outcome, "extra": {"ignored": true}}),
    );
    expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    let got = app.reminder(id).await;
    assert_eq!(got["outcome"], outcome, "every field reads back unchanged");
    assert_eq!(got["attempts"][0]["outcome"], outcome);
    assert_eq!(got["attempts"][0]["ended_at"], "2026-11-24T15:01:33Z");
    assert_eq!(got["attempts"][0]["room_name"], format!("reminder-{id}-1"));
    app.stop().await;
}

async fn timestamps(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let claimed = app.reminder(id).await;
    assert_eq!(claimed["last_attempt_at"], "2026-11-24T15:00:00Z");
    assert_eq!(
        claimed["attempts"][0]["dispatched_at"],
        "2026-11-24T15:00:00Z"
    );
    app.clock.advance(Duration::seconds(7));
    expect(
        app.send_event(&msg_id(), &event("call_answered", id, json!({})))
            .await,
        StatusCode::OK,
    )
    .await;
    let got = app.reminder(id).await;
    assert_eq!(got["updated_at"], "2026-11-24T15:00:07Z");
    assert_eq!(
        got["attempts"][0]["answered_at"], "2026-11-24T15:00:07Z",
        "occurred_at defaults to receipt"
    );
    app.clock.advance(Duration::seconds(60));
    expect(
        app.send_event(&msg_id(), &completed(id, "busy")).await,
        StatusCode::OK,
    )
    .await;
    let got = app.reminder(id).await;
    assert_eq!(got["updated_at"], "2026-11-24T15:01:07Z");
    assert_eq!(got["last_attempt_at"], "2026-11-24T15:00:00Z");
    // The next attempt moves last_attempt_at.
    app.clock.advance(Duration::hours(3));
    app.start_attempt(id).await;
    let got = app.reminder(id).await;
    assert_eq!(got["last_attempt_at"], "2026-11-24T18:01:07Z");
    assert_eq!(got["updated_at"], "2026-11-24T18:01:07Z");
    app.stop().await;
}

// --- fencing, late evidence ------------------------------------------------------

async fn stale_attempts_are_fenced(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Never dispatched: 409, and the event is still recorded.
    let fresh: Value = app
        .create(common::reminder_body(json!({})))
        .await
        .json()
        .await
        .unwrap();
    let fresh_id = ReminderId::parse(fresh["id"].as_str().unwrap()).unwrap();
    let resp = app
        .send_event(&msg_id(), &event("call_answered", fresh_id, json!({})))
        .await;
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "no_attempt");
    assert_eq!(app.event_count(fresh_id).await, 1);

    let id = app.live_reminder(json!({})).await;
    expect(
        app.send_event(&msg_id(), &completed(id, "no_answer")).await,
        StatusCode::OK,
    )
    .await;
    app.clock.advance(Duration::hours(3));
    app.start_attempt(id).await;
    // News of attempt 1 arrives during attempt 2: recorded on attempt 1, no status change.
    let late = event(
        "call_completed",
        id,
        json!({"attempt": 1, "outcome": {"result": "paid", "summary": "late"}}),
    );
    let resp = app.send_event(&msg_id(), &late).await;
    assert_eq!(
        error_code(resp, StatusCode::CONFLICT).await,
        "stale_attempt"
    );
    // A future attempt is not the current one either.
    let resp = app
        .send_event(
            &msg_id(),
            &event("call_answered", id, json!({"attempt": 7})),
        )
        .await;
    assert_eq!(
        error_code(resp, StatusCode::CONFLICT).await,
        "stale_attempt"
    );
    let got = app.reminder(id).await;
    assert_eq!(got["status"], "in_progress");
    assert_eq!(got["attempt_count"], 2);
    assert_eq!(
        got["attempts"][0]["outcome"]["result"], "no_answer",
        "the first report stays"
    );
    assert_eq!(got["attempts"][1]["status"], "in_progress");
    assert_eq!(app.event_count(id).await, 3);

    // Cancelled by an operator: 409.
    expect(
        app.send_event(&msg_id(), &completed(id, "busy")).await,
        StatusCode::OK,
    )
    .await;
    let resp = app
        .api(
            reqwest::Method::POST,
            &format!("/api/reminders/{id}/cancel"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.send_event(&msg_id(), &completed(id, "paid")).await;
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "no_attempt");
    assert_eq!(app.reminder(id).await["status"], "cancelled");
    app.stop().await;
}

/// The monitor gives up on attempt 1 of `id` (as the scheduler's timeout does).
async fn time_out_attempt_1(app: &TestApp, id: ReminderId) {
    let r = app.state.store.get_reminder(id).await.unwrap().unwrap();
    let att = app.state.store.get_attempt(id, 1).await.unwrap();
    let ctx = duecall::domain::Ctx {
        now: duecall::clock::Clock::now(&app.clock),
        retry: &app.state.retry,
        jitter: 0.5,
        promise_grace_days: 3,
    };
    let change =
        duecall::domain::fail_live_attempt(&r, att.as_ref(), "call_timeout", &ctx).unwrap();
    app.state.store.apply(&change, None).await.unwrap();
}

async fn late_completion_beats_timeout(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    // The monitor gives up on the attempt (as the scheduler's timeout will).
    app.clock.advance(Duration::minutes(11));
    time_out_attempt_1(&app, id).await;
    assert_eq!(app.reminder(id).await["skip_reason"], "call_timeout");
    // Then the agent's report arrives: evidence beats a guess.
    let body = event(
        "call_completed",
        id,
        json!({"attempt": 1, "outcome": {"result": "payment_promised", "promised_amount_minor": 100}}),
    );
    let r = expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    assert_eq!(
        r,
        json!({"reminder_id": id.to_string(), "status": "completed", "applied": true})
    );
    let got = app.reminder(id).await;
    assert_eq!(got["next_attempt_at"], Value::Null);
    assert_eq!(got["skip_reason"], Value::Null);
    assert_eq!(got["attempts"][0]["status"], "completed");
    assert_eq!(
        got["attempts"][0]["failure"]["reason"], "call_timeout",
        "the history is kept"
    );
    app.stop().await;
}

/// A conversation reported after the monitor gave up on its attempt ended when
/// the report came, not when the monitor guessed: its quiet period (SPEC §7)
/// runs from then.
async fn late_conversation_starts_the_quiet_period_when_reported(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({"debt_ref": "DEBT-late"})).await;
    app.clock.advance(Duration::minutes(11));
    time_out_attempt_1(&app, id).await;
    // Five hours later the agent's report of a refusal arrives (15:11 → 20:11 UTC).
    app.clock.advance(Duration::hours(5));
    let body = event(
        "call_completed",
        id,
        json!({"attempt": 1, "outcome": {"result": "refused"}}),
    );
    expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    let got = app.reminder(id).await;
    assert_eq!(got["status"], "completed");
    assert_eq!(got["attempts"][0]["ended_at"], "2026-11-24T20:11:00Z");

    // Another reminder of the debt, a week and an hour after the monitor's guess.
    let resp = app
        .create(common::reminder_body(json!({"debt_ref": "DEBT-late"})))
        .await;
    let other: Value = resp.json().await.unwrap();
    let other = ReminderId::parse(other["id"].as_str().unwrap()).unwrap();
    let rules = common::default_rules();
    let report = app
        .state
        .store
        .claim(&[other], t("2026-12-01T16:11:00Z"), 10, &rules)
        .await
        .unwrap();
    assert!(
        report.claimed.is_empty(),
        "inside the quiet period: {report:?}"
    );
    let held = app.reminder(other).await;
    assert_eq!(held["deferred_by"], "quiet_period");
    assert_eq!(held["next_attempt_at"], "2026-12-01T20:11:00Z");

    // The same when the report comes after the reminder was called again: the
    // timed-out attempt is superseded, its conversation still counts from its report.
    let id = app.live_reminder(json!({"debt_ref": "DEBT-later"})).await;
    app.clock.advance(Duration::minutes(11));
    time_out_attempt_1(&app, id).await;
    app.clock.advance(Duration::hours(3));
    app.start_attempt(id).await;
    app.clock.advance(Duration::hours(1));
    let body = event(
        "call_completed",
        id,
        json!({"attempt": 1, "outcome": {"result": "disputed"}}),
    );
    expect(app.send_event(&msg_id(), &body).await, StatusCode::CONFLICT).await;
    let got = app.reminder(id).await;
    assert_eq!(
        got["status"], "in_progress",
        "a stale report changes no status"
    );
    assert_eq!(got["attempts"][0]["outcome"]["result"], "disputed");
    let reported = common::t(got["attempts"][0]["ended_at"].as_str().unwrap());
    assert_eq!(reported, duecall::clock::Clock::now(&app.clock));
    app.stop().await;
}

// --- races -------------------------------------------------------------------

async fn racing_events(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let app = std::sync::Arc::new(app);
    for round in 0..3 {
        // A number per round: an opt-out that wins a round suppresses its number.
        let id = app
            .live_reminder(json!({"phone_number": format!("+1415555010{round}")}))
            .await;
        let mut bodies: Vec<(String, String)> = Vec::new();
        bodies.push((msg_id(), event("call_answered", id, json!({"attempt": 1}))));
        for r in [
            "payment_promised",
            "no_answer",
            "refused",
            "opted_out",
            "busy",
        ] {
            bodies.push((
                msg_id(),
                event(
                    "call_completed",
                    id,
                    json!({"attempt": 1, "outcome": {"result": r}}),
                ),
            ));
        }
        bodies.push((msg_id(), event("call_failed", id, json!({"attempt": 1}))));
        // Every delivery twice, at once.
        let deliveries: Vec<(String, String)> =
            bodies.iter().chain(bodies.iter()).cloned().collect();
        let mut tasks = Vec::new();
        for (wid, body) in deliveries {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let resp = app.send_event(&wid, &body).await;
                let status = resp.status();
                let v: Value = resp.json().await.unwrap();
                (wid, status, v)
            }));
        }
        let mut applied_ends = 0;
        let mut applied_ids = HashSet::new();
        for task in tasks {
            let (wid, status, v) = task.await.unwrap();
            assert_eq!(status, StatusCode::OK, "round {round}: {v}");
            if v["applied"] == true {
                assert!(
                    applied_ids.insert(wid.clone()),
                    "one delivery applied twice: {wid}"
                );
                if !bodies
                    .iter()
                    .any(|(w, b)| *w == wid && b.contains("call_answered"))
                {
                    applied_ends += 1;
                }
            }
        }
        assert_eq!(applied_ends, 1, "exactly one ending event wins");
        assert_eq!(
            app.event_count(id).await,
            bodies.len() as u64,
            "every event recorded exactly once"
        );
        let got = app.reminder(id).await;
        let status = got["status"].as_str().unwrap();
        let attempt = &got["attempts"][0];
        match status {
            "completed" | "cancelled" => assert_eq!(attempt["status"], "completed"),
            "pending" => assert_eq!(attempt["status"], "completed"),
            "failed" => assert_eq!(attempt["status"], "failed"),
            other => panic!("round {round}: the attempt must have ended, got {other}"),
        }
    }
    match std::sync::Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => panic!("app still shared"),
    }
}

// --- hostile input ---------------------------------------------------------------

async fn hostile_input(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    // Invalid UTF-8, properly signed.
    let bytes = vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'];
    let ts = app.now_unix();
    let sig = sign(&webhook_key(), "msg_utf8", ts, &bytes);
    let resp = app
        .send_raw(
            &[
                ("webhook-id", "msg_utf8".into()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", sig),
            ],
            bytes,
        )
        .await;
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "invalid_json"
    );
    // Huge numbers and deep nesting.
    for raw in [
        format!(
            "{{\"event_type\":\"call_answered\",\"reminder_id\":\"{id}\",\"attempt\":1{}}}",
            "0".repeat(400)
        ),
        format!(
            "{{\"event_type\":\"call_answered\",\"reminder_id\":\"{id}\",\"x\":{}{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        ),
    ] {
        let resp = app.send_event(&msg_id(), &raw).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{}", &raw[..60]);
    }
    // A 10 MB body: 413 before any signature work. The server may answer and close
    // before the client has written it all, so this goes over a raw socket.
    let (status, text) = common::raw_post(
        &app,
        "/api/webhooks/call-status",
        &vec![b'x'; 10 * 1024 * 1024],
        false,
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    // Just over the limit, signed: still 413.
    let body = event(
        "call_completed",
        id,
        json!({"outcome": {"result": "paid", "transcript": "y".repeat(64 * 1024)}}),
    );
    let resp = app.send_event(&msg_id(), &body).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Wrong method. A fresh client: the server closes a connection whose
    // oversized body it did not read, and a pooled one may be that connection.
    let resp = reqwest::Client::new()
        .get(app.url("/api/webhooks/call-status"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.reminder(id).await["status"], "in_progress");
    assert_eq!(app.event_count(id).await, 0);
    app.stop().await;
}

both_backends!(property_01_authentication_enforcement, authentication);
both_backends!(property_02_payload_validation_returns_400, validation);
both_backends!(property_03_invalid_reminder_ids_return_404, invalid_ids);
both_backends!(property_04_repeated_webhook_id_changes_nothing, idempotency);
both_backends!(property_05_call_answered_sets_processing, to_processing);
both_backends!(property_06_call_completed_sets_completed, to_completed);
both_backends!(property_07_call_failed_sets_failed_with_retry, to_failed);
both_backends!(property_08_no_answer_schedules_a_retry, no_answer_retries);
both_backends!(property_09_outcome_data_persistence, outcome_persistence);
both_backends!(property_10_timestamp_updates, timestamps);
both_backends!(
    stale_attempts_are_recorded_and_fenced,
    stale_attempts_are_fenced
);
both_backends!(
    late_completion_overrides_a_timeout,
    late_completion_beats_timeout
);
both_backends!(
    a_late_conversation_starts_its_quiet_period_when_reported,
    late_conversation_starts_the_quiet_period_when_reported
);
both_backends!(racing_events_end_in_one_consistent_state, racing_events);
both_backends!(hostile_input_gets_a_clear_4xx, hostile_input);

// --- issue 12: webhook-id reuse and repeats of refused deliveries -------------

async fn webhook_id_reused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let other = app.live_reminder(json!({})).await;
    let first = event("call_answered", id, json!({"attempt": 1}));
    expect(app.send_event("msg_shared", &first).await, StatusCode::OK).await;
    let before = (app.reminder(id).await, app.reminder(other).await);
    // The same id for another event type, another attempt, another reminder.
    for reused in [
        completed(id, "paid"),
        event("call_answered", id, json!({"attempt": 2})),
        event("call_answered", other, json!({"attempt": 1})),
    ] {
        let resp = app.send_event("msg_shared", &reused).await;
        assert_eq!(
            error_code(resp, StatusCode::CONFLICT).await,
            "webhook_id_reused",
            "{reused}"
        );
        assert_eq!(
            (app.reminder(id).await, app.reminder(other).await),
            before,
            "a reused id changes nothing"
        );
    }
    assert_eq!(app.event_count(id).await, 1);
    assert_eq!(app.event_count(other).await, 0);
    // The event itself, repeated, is still a repeat.
    let again = expect(app.send_event("msg_shared", &first).await, StatusCode::OK).await;
    assert_eq!(again["applied"], false);
    app.stop().await;
}

both_backends!(
    a_reused_webhook_id_for_another_event_is_a_409_that_changes_nothing,
    webhook_id_reused
);

async fn repeat_of_a_409(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A stale attempt's news: 409 the first time, and every time after.
    let id = app.live_reminder(json!({})).await;
    let stale = event("call_answered", id, json!({"attempt": 2}));
    for _ in 0..2 {
        let resp = app.send_event("msg_stale", &stale).await;
        assert_eq!(
            error_code(resp, StatusCode::CONFLICT).await,
            "stale_attempt"
        );
    }
    // News for a reminder never dispatched: 409 no_attempt, repeated the same,
    // even after the reminder has been dispatched since.
    let fresh: Value = app
        .create(common::reminder_body(json!({})))
        .await
        .json()
        .await
        .unwrap();
    let fresh_id = ReminderId::parse(fresh["id"].as_str().unwrap()).unwrap();
    let early = event("call_answered", fresh_id, json!({}));
    let resp = app.send_event("msg_early", &early).await;
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "no_attempt");
    app.start_attempt(fresh_id).await;
    let resp = app.send_event("msg_early", &early).await;
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "no_attempt");
    assert_eq!(app.reminder(fresh_id).await["status"], "in_progress");
    assert_eq!(app.event_count(fresh_id).await, 1);
    app.stop().await;
}

both_backends!(
    a_repeat_is_answered_what_the_first_delivery_was_answered,
    repeat_of_a_409
);

async fn hostile_numbers_and_times(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    // Attempts no reminder can have: 400, never stored (or stored negative).
    for attempt in [json!(2_147_483_648u64), json!(4_294_967_297u64), json!(11)] {
        let body = event("call_answered", id, json!({ "attempt": attempt }));
        let resp = app.send_event(&msg_id(), &body).await;
        let got = expect(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(got["error"]["field"], "attempt", "{attempt}");
    }
    // A time in year 10000 once in UTC, or before year 0.
    for at in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+00:01"] {
        let body = event(
            "call_answered",
            id,
            json!({"attempt": 1, "occurred_at": at}),
        );
        let resp = app.send_event(&msg_id(), &body).await;
        let got = expect(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(got["error"]["field"], "occurred_at", "{at}");
    }
    assert_eq!(app.event_count(id).await, 0);
    assert_eq!(app.reminder(id).await["status"], "in_progress");
    // The edges themselves are fine.
    let body = event(
        "call_answered",
        id,
        json!({"attempt": 1, "occurred_at": "9999-12-31T23:59:59Z"}),
    );
    expect(app.send_event(&msg_id(), &body).await, StatusCode::OK).await;
    app.stop().await;
}

both_backends!(
    attempts_past_the_largest_possible_and_times_past_year_9999_are_400,
    hostile_numbers_and_times
);
