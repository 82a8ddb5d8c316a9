//! Outcome notifications (SPEC §9), black-box through HTTP on both databases:
//! a receiver on loopback verifies every signature and records what came; the
//! service's clock is moved by hand to reach each retry.

mod common;

use std::time::Duration;

use common::receiver::{notify_vars, Mode, Receiver};
use common::*;
use serde_json::{json, Value};

async fn app_notifying(backend: Backend, url: &str) -> Option<TestApp> {
    let vars = notify_vars(url);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_with(backend, &extra).await
}

/// Wait (up to 10 s of real time) for `ready` to hold.
async fn until<F: Fn() -> bool>(what: &str, ready: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A reminder created through the API and left pending (it may be cancelled).
async fn pending_reminder(app: &TestApp) -> duecall::domain::ReminderId {
    let resp = app.create(reminder_body(json!({}))).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    duecall::domain::ReminderId::parse(body["id"].as_str().unwrap()).unwrap()
}

/// Wait until each of the reminder's `n` notifications has `tries` tries.
async fn until_tries(
    app: &TestApp,
    id: duecall::domain::ReminderId,
    n: usize,
    tries: usize,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = notifications(app, &format!("?reminder_id={id}")).await;
        let all = list["notifications"].as_array().unwrap();
        if all.len() == n
            && all
                .iter()
                .all(|x| x["tries"].as_array().unwrap().len() == tries)
        {
            return list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} notifications with {tries} tries: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn notifications(app: &TestApp, query: &str) -> Value {
    let resp = app
        .api(reqwest::Method::GET, &format!("/api/notifications{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Wait until the API shows `n` notifications of the reminder in `status`.
async fn until_status(
    app: &TestApp,
    id: duecall::domain::ReminderId,
    status: &str,
    n: usize,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = notifications(app, &format!("?reminder_id={id}&status={status}")).await;
        if list["notifications"].as_array().unwrap().len() == n {
            return list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} {status}: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_completed_call_is_notified_signed_and_in_order(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = app_notifying(backend, &rx.url).await else {
        return;
    };
    let id = app.live_reminder(json!({"external_id": "INV-7"})).await;
    let resp = app
        .send_event(&msg_id(), &completed(id, "payment_promised"))
        .await;
    assert_eq!(resp.status(), 200);
    until("two notifications", || rx.got().len() == 2).await;
    assert_eq!(
        rx.bad_signatures(),
        0,
        "every signature verifies, with each secret"
    );

    let mut got = rx.got();
    got.sort_by_key(|g| g.body["data"]["sequence"].as_u64());
    let types: Vec<&str> = got
        .iter()
        .map(|g| g.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["attempt.ended", "reminder.completed"]);
    for (n, g) in got.iter().enumerate() {
        let data = &g.body["data"];
        assert_eq!(data["sequence"], n as u64 + 1);
        assert_eq!(data["id"], id.to_string());
        assert_eq!(data["external_id"], "INV-7");
        assert_eq!(data["status"], "completed");
        assert_eq!(data["outcome"]["result"], "payment_promised");
        assert!(g.id.starts_with("msg_"), "{}", g.id);
        assert!(g.body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let attempt = &got[0].body["data"]["attempt"];
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["status"], "completed");
    assert_eq!(attempt["outcome"]["result"], "payment_promised");
    assert!(got[1].body["data"].get("attempt").is_none());

    let list = until_status(&app, id, "delivered", 2).await;
    for n in list["notifications"].as_array().unwrap() {
        let tries = n["tries"].as_array().unwrap();
        assert_eq!(tries.len(), 1, "{n:#}");
        assert_eq!(tries[0]["status_code"], 204);
        assert_eq!(tries[0]["error"], Value::Null);
        assert!(n["delivered_at"].is_string());
        assert_eq!(n["next_try_at"], Value::Null);
        // The API shows what was POSTed, byte for byte the same JSON.
        let sent = got
            .iter()
            .find(|g| g.id == n["id"].as_str().unwrap())
            .unwrap();
        assert_eq!(n["payload"], sent.body);
    }
    // A repeat of the event is no new change: nothing more is sent.
    app.clock.advance(chrono::Duration::seconds(60));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.got().len(), 2);
    app.stop().await;
}
both_backends!(
    a_completed_call_is_notified_signed_and_in_order,
    a_completed_call_is_notified_signed_and_in_order
);

async fn a_failing_receiver_gets_it_once_it_recovers_with_the_same_id(backend: Backend) {
    let rx = Receiver::start().await;
    rx.set(Mode::Status(500));
    let Some(app) = app_notifying(backend, &rx.url).await else {
        return;
    };
    let id = pending_reminder(&app).await;
    let resp = app
        .api(
            reqwest::Method::POST,
            &format!("/api/reminders/{id}/cancel"),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    until("the first try", || !rx.got().is_empty()).await;
    let list = until_tries(&app, id, 1, 1).await;
    let n = &list["notifications"][0];
    assert_eq!(n["type"], "reminder.cancelled");
    assert_eq!(n["tries"][0]["status_code"], 500);
    assert_eq!(n["tries"][0]["error"], "HTTP 500");
    // Not before its time: the next try is 5 s later.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.got().len(), 1, "no second try before 5 s have passed");

    rx.set(Mode::Ok);
    app.clock.advance(chrono::Duration::seconds(5));
    until_status(&app, id, "delivered", 1).await;
    let got = rx.got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, got[1].id, "the same webhook-id on every try");
    assert_eq!(got[0].body, got[1].body, "the same body on every try");
    app.stop().await;
}
both_backends!(
    a_failing_receiver_gets_it_once_it_recovers_with_the_same_id,
    a_failing_receiver_gets_it_once_it_recovers_with_the_same_id
);

async fn a_receiver_that_hangs_or_is_down_gets_it_later(backend: Backend) {
    // Down: nothing listens on the port yet.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = spare.local_addr().unwrap();
    drop(spare);
    let url = format!("http://{addr}/hooks/duecall");
    let Some(app) = app_notifying(backend, &url).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let resp = app.send_event(&msg_id(), &completed(id, "refused")).await;
    assert_eq!(resp.status(), 200);
    let list = until_tries(&app, id, 2, 1).await;
    for n in list["notifications"].as_array().unwrap() {
        assert_eq!(n["tries"][0]["error"], "could not connect", "{n:#}");
        assert_eq!(n["tries"][0]["status_code"], Value::Null);
    }

    // Up, but hanging: the try times out.
    let rx = Receiver::on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    rx.set(Mode::Hang);
    app.clock.advance(chrono::Duration::seconds(5));
    until("two hung tries", || rx.got().len() == 2).await;
    let list = until_tries(&app, id, 2, 2).await;
    for n in list["notifications"].as_array().unwrap() {
        let error = n["tries"][1]["error"].as_str().unwrap();
        assert!(error.starts_with("timed out"), "{n:#}");
    }

    // Answering again: the third try (5 min after the second) delivers both.
    rx.set(Mode::Ok);
    app.clock.advance(chrono::Duration::minutes(5));
    until_status(&app, id, "delivered", 2).await;
    app.stop().await;
}
both_backends!(
    a_receiver_that_hangs_or_is_down_gets_it_later,
    a_receiver_that_hangs_or_is_down_gets_it_later
);

async fn after_the_last_try_it_is_failed_and_a_resend_queues_it_again(backend: Backend) {
    let rx = Receiver::start().await;
    rx.set(Mode::Status(503));
    let Some(app) = app_notifying(backend, &rx.url).await else {
        return;
    };
    let id = pending_reminder(&app).await;
    let resp = app
        .api(
            reqwest::Method::POST,
            &format!("/api/reminders/{id}/cancel"),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    // SPEC §9's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    let waits = [5, 300, 1800, 7200, 18000, 36000, 36000];
    until_tries(&app, id, 1, 1).await;
    for (n, wait) in waits.iter().enumerate() {
        // A second short of the wait: nothing.
        app.clock.advance(chrono::Duration::seconds(wait - 1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rx.got().len(), n + 1, "try {} came early", n + 2);
        app.clock.advance(chrono::Duration::seconds(1));
        until_tries(&app, id, 1, n + 2).await;
    }
    let list = until_status(&app, id, "failed", 1).await;
    let failed = &list["notifications"][0];
    assert_eq!(failed["tries"].as_array().unwrap().len(), 8);
    assert_eq!(failed["next_try_at"], Value::Null);
    app.clock.advance(chrono::Duration::hours(24));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rx.got().len(),
        8,
        "a failed notification is not tried again by itself"
    );

    rx.set(Mode::Ok);
    let nid = failed["id"].as_str().unwrap();
    let resp = app
        .api(
            reqwest::Method::POST,
            &format!("/api/notifications/{nid}/resend"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let queued: Value = resp.json().await.unwrap();
    assert_eq!(queued["id"], nid);
    until_status(&app, id, "delivered", 1).await;
    assert_eq!(rx.got().len(), 9);
    assert_eq!(rx.got()[8].id, nid);

    let resp = app
        .api(
            reqwest::Method::POST,
            "/api/notifications/msg_nosuch/resend",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    app.stop().await;
}
both_backends!(
    after_the_last_try_it_is_failed_and_a_resend_queues_it_again,
    after_the_last_try_it_is_failed_and_a_resend_queues_it_again
);

async fn an_opt_out_and_a_listed_number_are_notified(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = app_notifying(backend, &rx.url).await else {
        return;
    };
    let id = app
        .live_reminder(json!({"phone_number": "+12125550123"}))
        .await;
    let resp = app.send_event(&msg_id(), &completed(id, "opted_out")).await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .api(reqwest::Method::POST, "/api/suppressions")
        .json(&json!({"phone_number": "+12125550999", "reason": "asked by letter"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // Already listed: no change, no notification.
    let resp = app
        .api(reqwest::Method::POST, "/api/suppressions")
        .json(&json!({"phone_number": "+12125550999", "reason": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    until("four notifications", || rx.got().len() == 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.got().len(), 4);

    let of_reminder: Vec<Value> = {
        let mut v: Vec<Value> = rx
            .got()
            .into_iter()
            .map(|g| g.body)
            .filter(|b| {
                b["data"]["id"] == id.to_string() || b["data"]["reminder_id"] == id.to_string()
            })
            .collect();
        v.sort_by_key(|b| b["data"]["sequence"].as_u64());
        v
    };
    let types: Vec<&str> = of_reminder
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["attempt.ended", "reminder.cancelled", "suppression.added"]
    );
    let listed = &of_reminder[2]["data"];
    assert_eq!(listed["phone_number"], "+12125550123");
    assert_eq!(listed["reason"], "opted_out");
    assert_eq!(listed["sequence"], 3);

    let by_operator: Vec<Value> = rx
        .got()
        .into_iter()
        .map(|g| g.body)
        .filter(|b| b["data"]["phone_number"] == "+12125550999")
        .collect();
    assert_eq!(by_operator.len(), 1);
    assert_eq!(by_operator[0]["type"], "suppression.added");
    assert_eq!(by_operator[0]["data"]["reminder_id"], Value::Null);
    assert_eq!(by_operator[0]["data"]["sequence"], 1);
    app.stop().await;
}
both_backends!(
    an_opt_out_and_a_listed_number_are_notified,
    an_opt_out_and_a_listed_number_are_notified
);

async fn without_notify_url_nothing_is_written_and_resend_says_why(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.live_reminder(json!({})).await;
    let resp = app
        .send_event(&msg_id(), &completed(id, "payment_promised"))
        .await;
    assert_eq!(resp.status(), 200);
    let list = notifications(&app, "").await;
    assert_eq!(list["notifications"], json!([]));
    assert_eq!(list["next_cursor"], Value::Null);
    let resp = app
        .api(reqwest::Method::POST, "/api/notifications/msg_x/resend")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "notifications_off");
    app.stop().await;
}
both_backends!(
    without_notify_url_nothing_is_written_and_resend_says_why,
    without_notify_url_nothing_is_written_and_resend_says_why
);

async fn the_list_filters_pages_and_refuses_bad_parameters(backend: Backend) {
    let rx = Receiver::start().await;
    rx.set(Mode::Status(500));
    let Some(app) = app_notifying(backend, &rx.url).await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = app.live_reminder(json!({})).await;
        let resp = app.send_event(&msg_id(), &completed(id, "refused")).await;
        assert_eq!(resp.status(), 200);
        ids.push(id);
    }
    // Three reminders, two notifications each, six in all.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let query = if cursor.is_empty() {
            "?limit=4".to_owned()
        } else {
            format!("?limit=4&cursor={cursor}")
        };
        let page = notifications(&app, &query).await;
        for n in page["notifications"].as_array().unwrap() {
            seen.push(n["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "no notification on two pages");
    let one = notifications(&app, &format!("?reminder_id={}", ids[1])).await;
    assert_eq!(one["notifications"].as_array().unwrap().len(), 2);
    assert!(one["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["reminder_id"] == ids[1].to_string()));

    let nid = seen[0].clone();
    let resp = app
        .api(reqwest::Method::GET, &format!("/api/notifications/{nid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let one: Value = resp.json().await.unwrap();
    assert_eq!(one["id"], nid);

    for (query, field) in [
        ("?status=lost", "status"),
        ("?reminder_id=nope", "reminder_id"),
        ("?limit=0", "limit"),
        ("?cursor=garbage", "cursor"),
        ("?colour=red", "colour"),
    ] {
        let resp = app
            .api(reqwest::Method::GET, &format!("/api/notifications{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let resp = app
        .client
        .get(app.url("/api/notifications"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the list needs the API key");
    app.stop().await;
}
both_backends!(
    the_list_filters_pages_and_refuses_bad_parameters,
    the_list_filters_pages_and_refuses_bad_parameters
);
