//! Payments (SPEC §8), black-box through HTTP on both databases: a payment
//! that covers the debt stops the calls, a partial one does not, a live call
//! gets no further attempt, a reference is recorded once.

mod common;

use common::fake_livekit::FakeLiveKit;
use common::receiver::{notify_vars, Receiver};
use common::*;
use serde_json::{json, Value};

async fn pay(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let resp = app
        .api(
            reqwest::Method::POST,
            &format!("/api/reminders/{id}/payments"),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn created(app: &TestApp, overrides: Value) -> String {
    let resp = app.create(reminder_body(overrides)).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn due_ids(app: &TestApp) -> Vec<String> {
    let now = duecall::clock::Clock::now(&app.clock) + chrono::Duration::days(30);
    app.state
        .store
        .due(now, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id.to_string())
        .collect()
}

async fn a_payment_that_covers_the_debt_stops_the_calls(backend: Backend) {
    let lk = FakeLiveKit::start().await;
    let vars = [
        ("LIVEKIT_URL", lk.url()),
        ("LIVEKIT_API_KEY", lk.api_key()),
        ("LIVEKIT_API_SECRET", lk.api_secret()),
    ];
    let Some(app) = TestApp::spawn_with(backend, &vars).await else {
        return;
    };
    let full = created(&app, json!({"amount_due_minor": 12345})).await;
    let partial = created(&app, json!({"amount_due_minor": 12345})).await;
    assert_eq!(due_ids(&app).await.len(), 2);

    let (status, body) = pay(
        &app,
        &full,
        json!({"amount_minor": 12345, "reference": "tx-1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["payment"]["amount_minor"], 12345);
    assert_eq!(body["payment"]["reference"], "tx-1");
    assert_eq!(body["reminder"]["amount_paid_minor"], 12345);
    assert_eq!(body["reminder"]["status"], "cancelled");
    assert_eq!(body["reminder"]["skip_reason"], "paid");
    assert_eq!(body["reminder"]["next_attempt_at"], Value::Null);

    let (status, body) = pay(&app, &partial, json!({"amount_minor": 5000})).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["reminder"]["status"], "pending",
        "a partial payment settles nothing"
    );
    assert_eq!(body["reminder"]["amount_paid_minor"], 5000);
    assert_eq!(
        due_ids(&app).await,
        std::slice::from_ref(&partial),
        "the paid one is never due again"
    );

    // The rest, in a second payment: settled.
    let (status, body) = pay(
        &app,
        &partial,
        json!({"amount_minor": 7345, "paid_at": "2026-11-24T12:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["reminder"]["status"], "cancelled");
    assert_eq!(body["reminder"]["amount_paid_minor"], 12345);
    assert_eq!(body["payment"]["paid_at"], "2026-11-24T12:00:00Z");
    assert!(due_ids(&app).await.is_empty());
    // The next tick dials only the debt nobody paid.
    let unpaid = created(&app, json!({"amount_due_minor": 12345})).await;
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.dispatched, 1, "{report:?}");
    assert_eq!(lk.dispatches().len(), 1);
    for (id, status, attempts) in [
        (&unpaid, "in_progress", 1),
        (&full, "cancelled", 0),
        (&partial, "cancelled", 0),
    ] {
        let r = app
            .reminder(duecall::domain::ReminderId::parse(id).unwrap())
            .await;
        assert_eq!(r["status"], status, "{r}");
        assert_eq!(r["attempt_count"], attempts, "{r}");
    }

    let id = duecall::domain::ReminderId::parse(&partial).unwrap();
    let page = app.reminder(id).await;
    let payments = page["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 2);
    assert_eq!(payments[0]["amount_minor"], 5000);
    assert_eq!(payments[1]["amount_minor"], 7345);
    app.stop().await;
}
both_backends!(
    a_payment_that_covers_the_debt_stops_the_calls,
    a_payment_that_covers_the_debt_stops_the_calls
);

async fn a_reference_is_one_payment(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = created(&app, json!({"amount_due_minor": 10000})).await;
    let (status, first) = pay(&app, &id, json!({"amount_minor": 3000, "reference": "r-7"})).await;
    assert_eq!(status, 201);
    let (status, again) = pay(&app, &id, json!({"amount_minor": 3000, "reference": "r-7"})).await;
    assert_eq!(status, 200, "a repeat");
    assert_eq!(again["payment"], first["payment"]);
    assert_eq!(again["reminder"]["amount_paid_minor"], 3000, "counted once");
    let (status, body) = pay(&app, &id, json!({"amount_minor": 9999, "reference": "r-7"})).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "reference_reused");
    // Another reminder may use the same reference.
    let other = created(&app, json!({"amount_due_minor": 10000})).await;
    let (status, _) = pay(
        &app,
        &other,
        json!({"amount_minor": 3000, "reference": "r-7"}),
    )
    .await;
    assert_eq!(status, 201);
    let page = app
        .reminder(duecall::domain::ReminderId::parse(&id).unwrap())
        .await;
    assert_eq!(page["amount_paid_minor"], 3000);
    assert_eq!(page["payments"].as_array().unwrap().len(), 1);

    for (body, field) in [
        (json!({}), "amount_minor"),
        (json!({"amount_minor": 0}), "amount_minor"),
        (json!({"amount_minor": 5, "paid_at": "soon"}), "paid_at"),
        (
            json!({"amount_minor": 5, "paid_at": "2027-01-01T00:00:00Z"}),
            "paid_at",
        ),
        (json!({"amount_minor": 5, "currency": "USD"}), "currency"),
    ] {
        let (status, answer) = pay(&app, &id, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, _) = pay(
        &app,
        &duecall::domain::ReminderId::new().to_string(),
        json!({"amount_minor": 5}),
    )
    .await;
    assert_eq!(status, 404);
    let resp = app
        .client
        .post(app.url(&format!("/api/reminders/{id}/payments")))
        .json(&json!({"amount_minor": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    app.stop().await;
}
both_backends!(a_reference_is_one_payment, a_reference_is_one_payment);

async fn a_live_call_gets_no_further_attempt_and_the_end_keeps_a_terminal(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let live = app.live_reminder(json!({"amount_due_minor": 2000})).await;
    let (status, body) = pay(&app, &live.to_string(), json!({"amount_minor": 2000})).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["reminder"]["status"], "in_progress",
        "the call goes on"
    );
    // It ends unreached: no retry, the debt is paid.
    let resp = app
        .send_event(&msg_id(), &completed(live, "no_answer"))
        .await;
    assert_eq!(resp.status(), 200);
    let page = app.reminder(live).await;
    assert_eq!(page["status"], "cancelled");
    assert_eq!(page["skip_reason"], "paid");
    assert_eq!(page["next_attempt_at"], Value::Null);
    assert_eq!(
        page["attempts"][0]["outcome"]["result"], "no_answer",
        "the call's own end"
    );

    // A completed reminder keeps its status when paid.
    let done = app.live_reminder(json!({"amount_due_minor": 2000})).await;
    let resp = app
        .send_event(&msg_id(), &completed(done, "payment_promised"))
        .await;
    assert_eq!(resp.status(), 200);
    let (status, body) = pay(&app, &done.to_string(), json!({"amount_minor": 2000})).await;
    assert_eq!(status, 201);
    assert_eq!(body["reminder"]["status"], "completed");
    assert_eq!(body["reminder"]["amount_paid_minor"], 2000);
    app.stop().await;
}
both_backends!(
    a_live_call_gets_no_further_attempt_and_the_end_keeps_a_terminal,
    a_live_call_gets_no_further_attempt_and_the_end_keeps_a_terminal
);

async fn a_payment_is_notified_with_the_cancellation_it_makes(backend: Backend) {
    let rx = Receiver::start().await;
    let vars = notify_vars(&rx.url);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let Some(app) = TestApp::spawn_with(backend, &extra).await else {
        return;
    };
    let id = created(&app, json!({"amount_due_minor": 900})).await;
    let (status, _) = pay(&app, &id, json!({"amount_minor": 400, "reference": "a"})).await;
    assert_eq!(status, 201);
    let (status, _) = pay(&app, &id, json!({"amount_minor": 500, "reference": "b"})).await;
    assert_eq!(status, 201);
    let (status, _) = pay(&app, &id, json!({"amount_minor": 500, "reference": "b"})).await;
    assert_eq!(status, 200, "a repeat notifies nothing");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rx.got().len() < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", rx.got());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut got: Vec<Value> = rx.got().into_iter().map(|g| g.body).collect();
    assert_eq!(got.len(), 3);
    got.sort_by_key(|b| b["data"]["sequence"].as_u64());
    let types: Vec<&str> = got.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["payment.recorded", "payment.recorded", "reminder.cancelled"]
    );
    assert_eq!(got[0]["data"]["payment"]["amount_minor"], 400);
    assert_eq!(got[0]["data"]["amount_paid_minor"], 400);
    assert_eq!(got[0]["data"]["status"], "pending");
    assert_eq!(got[1]["data"]["payment"]["reference"], "b");
    assert_eq!(
        got[1]["data"]["status"], "cancelled",
        "the reminder as the payment left it"
    );
    assert_eq!(got[2]["data"]["skip_reason"], "paid");
    assert_eq!(rx.bad_signatures(), 0);
    app.stop().await;
}
both_backends!(
    a_payment_is_notified_with_the_cancellation_it_makes,
    a_payment_is_notified_with_the_cancellation_it_makes
);

/// Defence in depth: a reminder whose payments cover its debt is never due
/// and never claimed, even if something left it waiting.
async fn a_settled_reminder_is_never_claimed_whatever_left_it_waiting(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let waiting = created(&app, json!({"amount_due_minor": 700})).await;
    let owed = created(&app, json!({"amount_due_minor": 700})).await;
    app.db
        .execute(&format!(
            "UPDATE reminders SET amount_paid_minor = 700 WHERE id = '{waiting}'"
        ))
        .await;
    assert_eq!(due_ids(&app).await, std::slice::from_ref(&owed));
    let ids: Vec<duecall::domain::ReminderId> = [&waiting, &owed]
        .iter()
        .map(|s| duecall::domain::ReminderId::parse(s).unwrap())
        .collect();
    let now = duecall::clock::Clock::now(&app.clock) + chrono::Duration::hours(1);
    let report = app
        .state
        .store
        .claim(&ids, now, 100, &any_time_rules())
        .await
        .unwrap();
    let claimed: Vec<String> = report.claimed.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(claimed, [owed]);
    app.stop().await;
}
both_backends!(
    a_settled_reminder_is_never_claimed_whatever_left_it_waiting,
    a_settled_reminder_is_never_claimed_whatever_left_it_waiting
);
