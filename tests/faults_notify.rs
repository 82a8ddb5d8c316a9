//! Notifications under faults (SPEC §9): `kill -9` of the service right after
//! its changes committed, and an instance that dies with a delivery in
//! flight. Every notification still arrives, each under one stable id.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::receiver::{notify_vars, Mode, Receiver};
use common::*;
use duecall::clock::{Clock, ManualClock};
use serde_json::{json, Value};

async fn wait_for<F: Fn() -> bool>(what: &str, limit: Duration, ready: F) {
    let deadline = std::time::Instant::now() + limit;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Create `n` reminders and cancel each through the real binary's API: one
/// `reminder.cancelled` each, committed before each 2xx.
async fn cancel_through(base: &str, n: usize) -> Vec<String> {
    let batch = uuid::Uuid::new_v4().simple().to_string();
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let resp = client
            .post(format!("{base}/api/reminders"))
            .bearer_auth(API_KEY)
            .json(&reminder_body(
                json!({"external_id": format!("kill-{batch}-{i}")}),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        let id = body["id"].as_str().unwrap().to_owned();
        let resp = client
            .post(format!("{base}/api/reminders/{id}/cancel"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        ids.push(id);
    }
    ids
}

async fn kill_9_right_after_the_changes(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    // The receiver is down while the first instance lives: nothing can be
    // delivered before the kill, whatever the timing.
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = spare.local_addr().unwrap();
    drop(spare);
    let url = format!("http://{addr}/hooks/duecall");
    let vars = notify_vars(&url);
    let mut env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("DATABASE_URL", &db.url));
    let mut first = serve_binary(None, &env).await;
    let ids = cancel_through(&first.base, 5).await;
    first.child.start_kill().unwrap();
    let _ = first.child.wait().await;

    let rx = Receiver::on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    let second = serve_binary(None, &env).await;
    // A try refused before the kill waits 5 s for its retry (SPEC §9).
    wait_for(
        "every notification after the restart",
        Duration::from_secs(20),
        || {
            let got = rx.got();
            let reminders: HashSet<String> = got
                .iter()
                .map(|g| g.body["data"]["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            ids.iter().all(|id| reminders.contains(id))
        },
    )
    .await;
    assert_eq!(rx.bad_signatures(), 0);
    let mut ids_of: HashMap<String, HashSet<String>> = HashMap::new();
    for g in rx.got() {
        assert_eq!(g.body["type"], "reminder.cancelled");
        ids_of
            .entry(g.body["data"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(g.id.clone());
    }
    for id in &ids {
        assert_eq!(
            ids_of[id].len(),
            1,
            "one webhook-id per notification, on every try"
        );
    }
    drop(second);
    db.cleanup().await;
}
both_backends!(
    kill_9_right_after_the_changes,
    kill_9_right_after_the_changes
);

/// One instance of the service on `url` with its own manual clock.
async fn instance(
    url: &str,
    extra: &[(&str, &str)],
    clock: ManualClock,
    settings: duecall::notify::NotifySettings,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut vars: Vec<(&str, &str)> = vec![("BIND_ADDR", &addr)];
    vars.extend_from_slice(extra);
    let config = test_config(url, &vars);
    let state = duecall::build_state(config, Arc::new(clock) as Arc<dyn Clock>)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        duecall::serve_with(
            listener,
            state,
            async {
                let _ = stopped.await;
            },
            settings,
        )
        .await
        .unwrap();
    });
    (format!("http://{addr}"), stop, task)
}

/// Two instances on one PostgreSQL: the first dies with a try in flight (its
/// receiver never answered); the second takes the notification over once
/// the lease has run out, under the same id, and it is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_delivery_in_flight_when_its_instance_dies_is_taken_over() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.set(Mode::Hang);
    let vars = notify_vars(&rx.url);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let slow = duecall::notify::NotifySettings {
        timeout: Duration::from_secs(20),
        lease: Duration::from_secs(60),
        ..test_notify_settings()
    };
    let start = t("2026-11-24T15:00:00Z");
    let clock_a = ManualClock::new(start);
    let (base_a, stop_a, task_a) = instance(&db.url, &extra, clock_a.clone(), slow.clone()).await;
    let ids = cancel_through(&base_a, 1).await;
    wait_for("the first try", Duration::from_secs(10), || {
        rx.got().len() == 1
    })
    .await;
    // The first instance dies mid-try: it stops, and its worker is cut off
    // after the shutdown's grace (2 s) with nothing recorded.
    let _ = stop_a.send(());
    let _ = task_a.await;

    rx.set(Mode::Ok);
    let clock_b = ManualClock::new(start + chrono::Duration::seconds(30));
    let (base_b, stop_b, task_b) = instance(&db.url, &extra, clock_b.clone(), slow).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.got().len(),
        1,
        "not taken over while the dead instance's lease lives"
    );
    clock_b.advance(chrono::Duration::seconds(31));
    wait_for("the take-over", Duration::from_secs(10), || {
        rx.got().len() == 2
    })
    .await;
    let got = rx.got();
    assert_eq!(got[0].id, got[1].id, "the same webhook-id");
    assert_eq!(got[0].body["data"]["id"], ids[0].as_str());

    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list: Value = client
            .get(format!("{base_b}/api/notifications?status=delivered"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list["notifications"].as_array().unwrap().len() == 1 {
            let tries = list["notifications"][0]["tries"].as_array().unwrap();
            assert_eq!(tries.len(), 1, "the dead instance's try was never recorded");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    clock_b.advance(chrono::Duration::hours(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got().len(), 2, "delivered: not sent again");
    let _ = stop_b.send(());
    let _ = task_b.await;
    db.cleanup().await;
}

/// Two live instances on one PostgreSQL, both delivering: every notification
/// arrives, and each exactly once (a lease keeps the other instance off it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_deliver_each_notification_once() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let rx = Receiver::start().await;
    let vars = notify_vars(&rx.url);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = t("2026-11-24T15:00:00Z");
    let (base_a, stop_a, task_a) = instance(
        &db.url,
        &extra,
        ManualClock::new(start),
        test_notify_settings(),
    )
    .await;
    let (base_b, stop_b, task_b) = instance(
        &db.url,
        &extra,
        ManualClock::new(start),
        test_notify_settings(),
    )
    .await;
    // Changes through both, at once.
    let (a, b) = tokio::join!(cancel_through(&base_a, 15), cancel_through(&base_b, 15));
    let ids: HashSet<String> = a.into_iter().chain(b).collect();
    assert_eq!(ids.len(), 30);
    wait_for("30 notifications", Duration::from_secs(15), || {
        rx.got().len() >= 30
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got();
    assert_eq!(got.len(), 30, "none twice");
    let delivered: HashSet<String> = got
        .iter()
        .map(|g| g.body["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, ids);
    assert_eq!(rx.bad_signatures(), 0);
    for (stop, task) in [(stop_a, task_a), (stop_b, task_b)] {
        let _ = stop.send(());
        let _ = task.await;
    }
    db.cleanup().await;
}
