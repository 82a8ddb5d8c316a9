//! The suppression list over HTTP (SPEC §7), on both databases: add, list,
//! read with its history, remove with a reason; an opt-out adds its number
//! with the event, whenever it arrives; a create for a suppressed number is
//! stored cancelled.

mod common;

use common::{completed, event, msg_id, reminder_body, Backend, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn add(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = app
        .api(Method::POST, "/api/suppressions")
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app.api(Method::GET, path).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn history(app: &TestApp, number_path: &str) -> Vec<Value> {
    let (status, body) = get(app, &format!("/api/suppressions/{number_path}")).await;
    assert_eq!(status, 200, "{body}");
    body["history"].as_array().unwrap().clone()
}

async fn add_list_read_remove(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Without the key: 401.
    let resp = app
        .client
        .get(app.url("/api/suppressions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let (status, body) = add(
        &app,
        json!({"phone_number": "+14155550100", "reason": "asked by letter"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["phone_number"], "+14155550100");
    assert_eq!(body["reason"], "asked by letter");
    assert_eq!(body["reminder_id"], Value::Null);
    assert_eq!(body["created_at"], "2026-11-24T15:00:00Z");
    // Again, with another reason: 200, the entry unchanged.
    let (status, again) = add(
        &app,
        json!({"phone_number": "+14155550100", "reason": "other"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again, body);

    // Refusals name the field.
    for (bad, field) in [
        (
            json!({"phone_number": "4155550100", "reason": "x"}),
            "phone_number",
        ),
        (json!({"reason": "x"}), "phone_number"),
        (json!({"phone_number": "+14155550101"}), "reason"),
        (
            json!({"phone_number": "+14155550101", "reason": "  "}),
            "reason",
        ),
        (
            json!({"phone_number": "+14155550101", "reason": "x".repeat(501)}),
            "reason",
        ),
        (
            json!({"phone_number": "+14155550101", "reason": "x", "why": 1}),
            "why",
        ),
    ] {
        let (status, err) = add(&app, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(err["error"]["field"], field, "{bad}: {err}");
    }
    assert!(!app
        .state
        .store
        .is_suppressed(&duecall::domain::PhoneNumber::parse("+14155550101").unwrap())
        .await
        .unwrap());

    // The path's number: `%2B` or a literal `+`; anything else is a 400.
    for path in ["%2B14155550100", "+14155550100"] {
        let h = history(&app, path).await;
        assert_eq!(h.len(), 1);
        assert_eq!(h[0]["action"], "added");
        assert_eq!(h[0]["reason"], "asked by letter");
    }
    let (status, err) = get(&app, "/api/suppressions/14155550100").await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["field"], "phone_number");
    let (status, _) = get(&app, "/api/suppressions/%2B14155550199").await;
    assert_eq!(status, 404);

    // The list, newest first, by cursor.
    app.clock.advance(chrono::Duration::seconds(1));
    add(
        &app,
        json!({"phone_number": "+14155550102", "reason": "dnc"}),
    )
    .await;
    let (status, page) = get(&app, "/api/suppressions?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(page["suppressions"][0]["phone_number"], "+14155550102");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = get(&app, &format!("/api/suppressions?limit=1&cursor={cursor}")).await;
    assert_eq!(page["suppressions"][0]["phone_number"], "+14155550100");
    assert_eq!(page["next_cursor"], Value::Null);
    let (status, err) = get(&app, "/api/suppressions?cursor=garbage").await;
    assert_eq!(
        (status, err["error"]["field"].clone()),
        (400, json!("cursor"))
    );
    let (status, _) = get(&app, "/api/suppressions?limit=0").await;
    assert_eq!(status, 400);

    // Remove: a reason is required, in the body or the query.
    let del = |path: &str| app.api(Method::DELETE, &format!("/api/suppressions/{path}"));
    let resp = del("%2B14155550100").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["field"], "reason");
    let resp = del("%2B14155550100?reason=a")
        .json(&json!({"reason": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "two different reasons");
    let resp = del("%2B14155550100")
        .json(&json!({"reason": "added by mistake"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let removed: Value = resp.json().await.unwrap();
    assert_eq!(removed["phone_number"], "+14155550100");
    assert_eq!(removed["reason"], "asked by letter");
    let actions: Vec<_> = removed["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["action"].clone(), h["reason"].clone()))
        .collect();
    assert_eq!(
        actions,
        [
            (json!("added"), json!("asked by letter")),
            (json!("removed"), json!("added by mistake"))
        ]
    );
    // Gone: 404 to read and to remove again.
    let (status, _) = get(&app, "/api/suppressions/%2B14155550100").await;
    assert_eq!(status, 404);
    let resp = del("+14155550100?reason=again").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // The query form, with a literal `+` in the path.
    let resp = del("+14155550102?reason=customer%20paid")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let removed: Value = resp.json().await.unwrap();
    assert_eq!(removed["history"][1]["reason"], "customer paid");
    app.stop().await;
}

both_backends!(the_list_over_http, add_list_read_remove);

async fn creates_for_a_suppressed_number_are_cancelled(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    add(
        &app,
        json!({"phone_number": "+12125550100", "reason": "dnc"}),
    )
    .await;
    let resp = app
        .create(reminder_body(json!({"external_id": "inv-1"})))
        .await;
    assert_eq!(resp.status(), 201);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["skip_reason"], "suppressed");
    assert_eq!(r["next_attempt_at"], Value::Null);
    // Stored so.
    let id = duecall::domain::ReminderId::parse(r["id"].as_str().unwrap()).unwrap();
    assert_eq!(app.reminder(id).await["status"], "cancelled");
    // Another number is created pending.
    let resp = app
        .create(reminder_body(json!({"phone_number": "+14155550101"})))
        .await;
    let other: Value = resp.json().await.unwrap();
    assert_eq!(other["status"], "pending");
    assert_eq!(other["skip_reason"], Value::Null);
    app.stop().await;
}

both_backends!(
    create_for_suppressed_number,
    creates_for_a_suppressed_number_are_cancelled
);

async fn opt_outs_suppress_whenever_they_arrive(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let opted_out = |id, attempt: Option<u32>| {
        let mut extra = json!({"outcome": {"result": "opted_out"}});
        if let Some(a) = attempt {
            extra["attempt"] = json!(a);
        }
        event("call_completed", id, extra)
    };
    let check = |number: &'static str, id: duecall::domain::ReminderId| {
        let app = &app;
        async move {
            let h = history(app, &format!("%2B{}", &number[1..])).await;
            assert_eq!(h.len(), 1, "{h:?}");
            assert_eq!(h[0]["action"], "added");
            assert_eq!(h[0]["reason"], "opted_out");
            assert_eq!(h[0]["reminder_id"], id.to_string());
        }
    };

    // For the current attempt: cancelled, and the number suppressed.
    let current = app
        .live_reminder(json!({"phone_number": "+14155550100"}))
        .await;
    let resp = app
        .send_event(&msg_id(), &completed(current, "opted_out"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.reminder(current).await["status"], "cancelled");
    check("+14155550100", current).await;

    // Late: the attempt already ended by the agent's own failure report.
    let late = app
        .live_reminder(json!({"phone_number": "+14155550101"}))
        .await;
    let resp = app
        .send_event(
            &msg_id(),
            &event(
                "call_failed",
                late,
                json!({"failure": {"reason": "x", "retryable": true}}),
            ),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app.send_event(&msg_id(), &opted_out(late, Some(1))).await;
    assert_eq!(resp.status(), 200, "news of an ended attempt is recorded");
    assert_eq!(app.reminder(late).await["status"], "failed");
    check("+14155550101", late).await;

    // Late after a timeout: evidence beats the guess, and the number goes on the list.
    let timed_out = app
        .live_reminder(json!({"phone_number": "+14155550103"}))
        .await;
    app.clock.advance(chrono::Duration::minutes(11));
    app.state.scheduler.tick().await.unwrap();
    assert_eq!(app.reminder(timed_out).await["skip_reason"], "call_timeout");
    let resp = app
        .send_event(&msg_id(), &opted_out(timed_out, Some(1)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.reminder(timed_out).await["status"], "cancelled");
    check("+14155550103", timed_out).await;

    // Stale: for attempt 1 while attempt 2 is live.
    let stale = app
        .live_reminder(json!({"phone_number": "+14155550102"}))
        .await;
    app.send_event(&msg_id(), &event("call_failed", stale, json!({})))
        .await;
    app.clock.advance(chrono::Duration::days(1));
    app.start_attempt(stale).await;
    let webhook_id = msg_id();
    let body = opted_out(stale, Some(1));
    let resp = app.send_event(&webhook_id, &body).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(app.reminder(stale).await["status"], "in_progress");
    check("+14155550102", stale).await;

    // A repeat adds nothing: not even after the number was taken off the list.
    let resp = app
        .api(
            Method::DELETE,
            "/api/suppressions/%2B14155550102?reason=test",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app.send_event(&webhook_id, &body).await;
    assert_eq!(resp.status(), 409, "answered as the first delivery was");
    let (status, _) = get(&app, "/api/suppressions/%2B14155550102").await;
    assert_eq!(status, 404, "the repeat did not add the number back");
    let resp = app
        .send_event(&msg_id(), &completed(current, "opted_out"))
        .await;
    assert_eq!(resp.status(), 200);
    check("+14155550100", current).await;
    app.stop().await;
}

both_backends!(
    opt_outs_are_never_lost,
    opt_outs_suppress_whenever_they_arrive
);
