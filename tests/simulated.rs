//! The simulated dialer: its agents report over real signed HTTP to the
//! service, as the real agent does, each persona with its outcome.

mod common;

use std::time::Duration;

use common::{reminder_body, Backend, TestApp};
use duecall::domain::ReminderId;
use serde_json::{json, Value};

async fn create(app: &TestApp, persona: &str, extra: Value) -> ReminderId {
    let mut body = reminder_body(extra);
    body["metadata"] = json!({"persona": persona});
    let resp = app.create(body).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    ReminderId::parse(body["id"].as_str().unwrap()).unwrap()
}

/// Wait (real time, bounded) until every reminder has left `in_progress`/`processing`
/// or, for the ones in `stay`, until the others have.
async fn settle(app: &TestApp, ids: &[ReminderId], stay: &[ReminderId]) {
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut busy = false;
            for id in ids.iter().filter(|id| !stay.contains(id)) {
                let r = app.reminder(*id).await;
                if matches!(r["status"].as_str(), Some("in_progress" | "processing")) {
                    busy = true;
                }
            }
            if !busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "the simulated agents did not report within 20 s"
    );
}

async fn personas(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        &[("DIALER", "simulated"), ("MAX_CONCURRENT_CALLS", "20")],
    )
    .await
    else {
        return;
    };
    let promise = create(&app, "promise", json!({"amount_due_minor": 9900})).await;
    let dispute = create(&app, "dispute", json!({})).await;
    let wrong = create(&app, "wrong_number", json!({})).await;
    // A number of its own: its opt-out suppresses it (SPEC §7).
    let opt_out = create(&app, "opt_out", json!({"phone_number": "+12125550199"})).await;
    let no_answer = create(&app, "no_answer,promise", json!({})).await;
    let busy = create(&app, "busy", json!({"max_attempts": 1})).await;
    let invalid = create(&app, "invalid_number", json!({})).await;
    let trunk = create(&app, "trunk_error", json!({})).await;
    let silent = create(&app, "silent,paid", json!({})).await;
    // Each its own debt: a conversation holds every reminder of its debt (SPEC §7).
    let third_party = create(&app, "third_party,promise", json!({})).await;
    let callback = create(&app, "callback,promise", json!({})).await;
    let all = [
        promise,
        dispute,
        wrong,
        opt_out,
        no_answer,
        busy,
        invalid,
        trunk,
        silent,
        third_party,
        callback,
    ];

    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.dispatched, 11);
    settle(&app, &all, &[silent]).await;

    let r = app.reminder(promise).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["outcome"]["result"], "payment_promised");
    assert_eq!(r["outcome"]["promised_amount_minor"], 9900);
    assert_eq!(r["outcome"]["promised_date"], "2026-12-01");
    assert!(r["attempts"][0]["answered_at"].is_string());
    assert_eq!(
        app.event_count(promise).await,
        2,
        "answered, then completed"
    );

    for (id, result) in [(dispute, "disputed"), (wrong, "wrong_number")] {
        let r = app.reminder(id).await;
        assert_eq!(r["status"], "completed");
        assert_eq!(r["outcome"]["result"], result);
    }
    let r = app.reminder(opt_out).await;
    assert_eq!(
        (r["status"].as_str(), r["skip_reason"].as_str()),
        (Some("cancelled"), Some("opted_out"))
    );
    let r = app.reminder(no_answer).await;
    assert_eq!(r["status"], "pending");
    assert_eq!(r["attempts"][0]["outcome"]["result"], "no_answer");
    assert_eq!(r["attempts"][0]["answered_at"], Value::Null);
    let r = app.reminder(busy).await;
    assert_eq!(
        (r["status"].as_str(), r["skip_reason"].as_str()),
        (Some("failed"), Some("max_attempts_reached"))
    );
    let r = app.reminder(invalid).await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["next_attempt_at"], Value::Null, "a permanent failure");
    assert_eq!(r["attempts"][0]["failure"]["sip_status"], 404);
    let r = app.reminder(trunk).await;
    assert_eq!(r["status"], "failed");
    assert!(r["next_attempt_at"].is_string(), "retryable");
    assert_eq!(app.reminder(silent).await["status"], "in_progress");
    // Someone else answered: unreached, tried again after the retry delay.
    let r = app.reminder(third_party).await;
    assert_eq!(
        (r["status"].as_str(), r["skip_reason"].as_str()),
        (Some("pending"), Some("not_available"))
    );
    assert_eq!(r["attempts"][0]["outcome"]["result"], "not_available");
    assert!(r["attempts"][0]["answered_at"].is_string());
    // The callback is pending at the time the customer asked for (2 s on).
    let r = app.reminder(callback).await;
    assert_eq!(
        (r["status"].as_str(), r["skip_reason"].as_str()),
        (Some("pending"), Some("callback_requested"))
    );
    let asked = r["attempts"][0]["outcome"]["callback_at"].as_str().unwrap();
    assert_eq!(r["next_attempt_at"].as_str(), Some(asked));
    assert_eq!(
        common::t(asked),
        common::t("2026-11-24T15:00:02Z"),
        "the clock stands still"
    );
    // Not before.
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.dispatched, 0);
    app.clock.advance(chrono::Duration::seconds(2));
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.dispatched, 1, "the callback, at the time asked");
    settle(&app, &all, &[silent, third_party]).await;
    let r = app.reminder(callback).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["outcome"]["result"], "payment_promised");

    // The silent agent is rescued by the timeout; the retries go out later.
    app.clock.advance(chrono::Duration::hours(3));
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.timed_out, 1);
    assert_eq!(
        report.dispatched, 3,
        "no_answer, trunk_error and third_party retried"
    );
    settle(&app, &all, &[silent]).await;
    for id in [no_answer, third_party] {
        assert_eq!(
            app.reminder(id).await["outcome"]["result"],
            "payment_promised"
        );
    }
    app.clock.advance(chrono::Duration::hours(3));
    let report = app.state.scheduler.tick().await.unwrap();
    assert!(report.dispatched >= 1);
    settle(&app, &all, &[]).await;
    let r = app.reminder(silent).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["outcome"]["result"], "paid");
    assert_eq!(r["attempts"][0]["failure"]["reason"], "call_timeout");
    app.stop().await;
}

both_backends!(
    simulated_agents_report_each_persona_over_signed_http,
    personas
);

#[tokio::test]
async fn simulated_needs_the_webhook_secret() {
    let err = duecall::config::Config::from_lookup(|k| match k {
        "DIALER" => Some("simulated".to_owned()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(err.var, "DIALER");
    assert!(err.message.contains("WEBHOOK_SECRET"), "{}", err.message);
}
