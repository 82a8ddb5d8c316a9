//! The outbox's metrics at `GET /metrics` (SPEC §9): tries by type and
//! result, notifications by status, the age of the oldest undelivered one.
//! The Prometheus recorder is process-global: this binary holds this one
//! test, so its counts are exact.

mod common;

use std::time::Duration;

use common::receiver::{notify_vars, Mode, Receiver};
use common::{completed, msg_id, Backend, TestApp};

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics(app: &TestApp) -> String {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Wait until `/metrics` shows `series` at `value`.
async fn until_sample(app: &TestApp, series: &str, value: f64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(app).await;
        if sample(&text, series) == Some(value) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never reached {value}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_metrics_count_tries_and_show_the_backlog() {
    let rx = Receiver::start().await;
    rx.set(Mode::Status(500));
    let vars = notify_vars(&rx.url);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(Backend::Sqlite, &extra)
        .await
        .expect("sqlite");
    let id = app.live_reminder(serde_json::json!({})).await;
    assert_eq!(
        app.send_event(&msg_id(), &completed(id, "paid"))
            .await
            .status(),
        200
    );
    until_sample(
        &app,
        r#"duecall_notification_tries_total{type="attempt.ended",result="retry"}"#,
        1.0,
    )
    .await;
    until_sample(
        &app,
        r#"duecall_notification_tries_total{type="reminder.completed",result="retry"}"#,
        1.0,
    )
    .await;
    let text = until_sample(&app, r#"duecall_notifications{status="pending"}"#, 2.0).await;
    assert_eq!(
        sample(&text, r#"duecall_notifications{status="delivered"}"#),
        Some(0.0)
    );
    // The oldest undelivered notification's age follows the service's clock.
    app.clock.advance(chrono::Duration::seconds(4));
    until_sample(&app, "duecall_notifications_oldest_pending_seconds", 4.0).await;

    rx.set(Mode::Ok);
    app.clock.advance(chrono::Duration::seconds(1));
    until_sample(
        &app,
        r#"duecall_notification_tries_total{type="attempt.ended",result="delivered"}"#,
        1.0,
    )
    .await;
    until_sample(&app, r#"duecall_notifications{status="delivered"}"#, 2.0).await;
    let text = until_sample(&app, "duecall_notifications_oldest_pending_seconds", 0.0).await;
    assert_eq!(
        sample(&text, r#"duecall_notifications{status="pending"}"#),
        Some(0.0)
    );
    assert!(
        !text.contains("+1212"),
        "the metrics name no number and no person"
    );
    app.stop().await;
}
