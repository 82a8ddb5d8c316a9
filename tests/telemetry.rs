//! `GET /metrics` through HTTP: the Prometheus recorder is process-global, so
//! this binary holds this one test and its counts are exact.

mod common;

use chrono::Duration;
use common::fake_livekit::FakeLiveKit;
use common::{completed, msg_id, reminder_body, Backend, TestApp};

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_transitions_timeouts_and_ticks() {
    let lk = FakeLiveKit::start().await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("LIVEKIT_URL", lk.url()),
            ("LIVEKIT_API_KEY", lk.api_key()),
            ("LIVEKIT_API_SECRET", lk.api_secret()),
        ],
    )
    .await
    .expect("sqlite");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = app.create(reminder_body(serde_json::json!({}))).await;
        let body: serde_json::Value = resp.json().await.unwrap();
        ids.push(duecall::domain::ReminderId::parse(body["id"].as_str().unwrap()).unwrap());
    }
    assert_eq!(app.state.scheduler.tick().await.unwrap().dispatched, 3);
    assert_eq!(
        app.send_event(&msg_id(), &completed(ids[0], "paid"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.send_event(&msg_id(), &completed(ids[1], "no_answer"))
            .await
            .status(),
        200
    );
    app.clock.advance(Duration::minutes(10));
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.timed_out, 1);

    // Anonymous, like Prometheus scrapes it.
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let expect = [
        (
            r#"duecall_http_requests_total{method="POST",route="/api/reminders",status="201"}"#,
            3.0,
        ),
        (
            r#"duecall_http_requests_total{method="POST",route="/api/webhooks/call-status",status="200"}"#,
            2.0,
        ),
        (
            r#"duecall_transitions_total{from="pending",to="in_progress"}"#,
            3.0,
        ),
        (
            r#"duecall_transitions_total{from="in_progress",to="completed"}"#,
            1.0,
        ),
        (
            r#"duecall_transitions_total{from="in_progress",to="pending"}"#,
            1.0,
        ),
        (
            r#"duecall_transitions_total{from="in_progress",to="failed"}"#,
            1.0,
        ),
        (r#"duecall_timeouts_total{status="in_progress"}"#, 1.0),
        ("duecall_dispatched_total", 3.0),
        ("duecall_live_attempts", 0.0),
        ("duecall_tick_duration_seconds_count", 2.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // No reminder id, name or number ever becomes a label.
    for id in &ids {
        assert!(!text.contains(&id.to_string()));
    }
    assert!(!text.contains("+1415"));
    app.stop().await;
}
