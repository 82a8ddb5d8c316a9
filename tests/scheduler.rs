//! Scheduling end to end through HTTP, on both databases: the cron route ticks,
//! the real `livekit-api` client creates rooms and dispatches at a fake LiveKit
//! server that speaks Twirp, the agent's signed events finish the story. Also
//! the timeout monitor (seed properties 12–14, with a manual clock), LiveKit's
//! own `room_finished` webhook, and the `tick` and `serve` commands.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::fake_livekit::FakeLiveKit;
use common::{completed, event, msg_id, reminder_body, Backend, TestApp};
use duecall::clock::Clock;
use duecall::domain::ReminderId;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CRON: &str = "cron-test-secret-0123456789abcdef";
const TRUNK: &str = "ST_testtrunk123";

/// The service with its LiveKit dialer pointed at a fake LiveKit server.
struct Rig {
    app: TestApp,
    lk: FakeLiveKit,
}

impl Rig {
    async fn start(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        let lk = FakeLiveKit::start().await;
        let mut vars: Vec<(&str, &str)> = vec![
            ("LIVEKIT_URL", lk.url()),
            ("LIVEKIT_API_KEY", lk.api_key()),
            ("LIVEKIT_API_SECRET", lk.api_secret()),
            ("SIP_OUTBOUND_TRUNK_ID", TRUNK),
            ("CRON_SECRET", CRON),
        ];
        vars.extend_from_slice(extra);
        let app = TestApp::spawn_with(backend, &vars).await?;
        Some(Self { app, lk })
    }

    fn now(&self) -> DateTime<Utc> {
        self.app.clock.now()
    }

    /// One tick through the cron route; its counts.
    async fn tick(&self) -> Value {
        let resp = self
            .app
            .client
            .post(self.app.url("/api/cron/process-reminders"))
            .bearer_auth(CRON)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    async fn create(&self, overrides: Value) -> ReminderId {
        let resp = self.app.create(reminder_body(overrides)).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        ReminderId::parse(body["id"].as_str().unwrap()).unwrap()
    }

    async fn send(&self, body: &str) -> Value {
        let resp = self.app.send_event(&msg_id(), body).await;
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    async fn livekit_webhook(&self, body: &str, auth: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .post(self.app.url("/api/webhooks/livekit"))
            .header("content-type", "application/webhook+json")
            .body(body.to_owned());
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

fn counts(timed_out: u64, dispatched: u64, dispatch_failed: u64) -> Value {
    json!({"timed_out": timed_out, "dispatched": dispatched,
           "dispatch_failed": dispatch_failed, "deferred": 0,
           "suppressed": 0, "no_lawful_calling_time": 0,
           "promises_kept": 0, "promises_broken": 0})
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

// --- the whole story ---------------------------------------------------------

async fn answered_and_completed(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let id = rig
        .create(
            json!({"customer_name": "Grace Hopper", "timezone": "America/Chicago",
                        "language": "en-US", "amount_due_minor": 4200, "currency": "usd"}),
        )
        .await;
    assert_eq!(rig.tick().await, counts(0, 1, 0));

    // The room and the dispatch, with SPEC §3's metadata on both.
    let room = format!("reminder-{id}-1");
    let expected = json!({
        "reminder_id": id.to_string(), "attempt": 1, "phone_number": "+12125550100",
        "customer_name": "Grace Hopper", "amount_due_minor": 4200, "currency": "USD",
        "due_date": "2026-12-01", "language": "en-US", "timezone": "America/Chicago",
        "sip_trunk_id": TRUNK, "disclosures": ["recording", "collector"],
    });
    let rooms = rig.lk.rooms();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].name, room);
    assert_eq!(
        serde_json::from_str::<Value>(&rooms[0].metadata).unwrap(),
        expected
    );
    let dispatches = rig.lk.dispatches();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(dispatches[0].room, room);
    assert_eq!(dispatches[0].agent_name, "payment-reminder");
    assert_eq!(
        serde_json::from_str::<Value>(&dispatches[0].metadata).unwrap(),
        expected
    );
    assert_eq!(rig.lk.auth_failures(), 0);

    let got = rig.app.reminder(id).await;
    assert_eq!(got["status"], "in_progress");
    assert_eq!(got["attempt_count"], 1);
    assert_eq!(got["next_attempt_at"], Value::Null);
    assert_eq!(time(&got["last_attempt_at"]), rig.now());
    assert_eq!(got["attempts"][0]["room_name"], room.as_str());
    assert_eq!(got["attempts"][0]["status"], "in_progress");

    // A second tick starts nothing more.
    assert_eq!(rig.tick().await, counts(0, 0, 0));
    assert_eq!(rig.lk.calls("CreateRoom"), 1);

    // The agent reports.
    rig.app.clock.advance(Duration::seconds(20));
    let r = rig
        .send(&event("call_answered", id, json!({"attempt": 1})))
        .await;
    assert_eq!(r["status"], "processing");
    rig.app.clock.advance(Duration::minutes(3));
    let r = rig
        .send(&event(
            "call_completed",
            id,
            json!({"attempt": 1, "outcome": {"result": "payment_promised",
                   "promised_amount_minor": 4200, "promised_date": "2026-11-30",
                   "summary": "will pay Monday"}}),
        ))
        .await;
    assert_eq!(r["status"], "completed");
    let got = rig.app.reminder(id).await;
    assert_eq!(got["outcome"]["result"], "payment_promised");
    assert_eq!(got["outcome"]["promised_amount_minor"], 4200);
    assert_eq!(got["attempts"][0]["status"], "completed");
    assert_eq!(got["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(rig.tick().await, counts(0, 0, 0));
    assert_eq!(
        rig.lk.dispatches().len(),
        1,
        "a completed reminder is never called again"
    );
    rig.stop().await;
}

async fn no_answer_then_retry(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[("RETRY_DELAY_SECS", "600")]).await else {
        return;
    };
    let id = rig.create(json!({})).await;
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    let r = rig.send(&completed(id, "no_answer")).await;
    assert_eq!(r["status"], "pending");
    let got = rig.app.reminder(id).await;
    let next = time(&got["next_attempt_at"]);
    let wait = next - rig.now();
    assert!(
        wait >= Duration::seconds(540) && wait <= Duration::seconds(660),
        "first retry after 600 s ± 10 %: {wait}"
    );

    // Not before its time.
    rig.app.clock.advance(wait - Duration::seconds(1));
    assert_eq!(rig.tick().await, counts(0, 0, 0));
    rig.app.clock.advance(Duration::seconds(1));
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    let room2 = format!("reminder-{id}-2");
    let meta: Value = serde_json::from_str(&rig.lk.room(&room2).expect("room 2").metadata).unwrap();
    assert_eq!(meta["attempt"], 2);
    assert_eq!(rig.lk.dispatches().len(), 2);

    let r = rig
        .send(&event(
            "call_completed",
            id,
            json!({"attempt": 2, "outcome": {"result": "paid"}}),
        ))
        .await;
    assert_eq!(r["status"], "completed");
    let got = rig.app.reminder(id).await;
    let attempts = got["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"]["result"], "no_answer");
    assert_eq!(attempts[1]["outcome"]["result"], "paid");
    rig.stop().await;
}

async fn dispatch_failure_then_retry(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[("RETRY_DELAY_SECS", "60")]).await else {
        return;
    };
    // The agent dispatch fails: the room is closed, the attempt failed, a retry set.
    let id = rig.create(json!({})).await;
    rig.lk.fail_next("CreateDispatch", 1, "unavailable");
    assert_eq!(rig.tick().await, counts(0, 0, 1));
    let got = rig.app.reminder(id).await;
    assert_eq!(got["status"], "failed");
    let reason = got["skip_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("dispatch_failed: create_dispatch: unavailable"),
        "{reason}"
    );
    assert!(got["next_attempt_at"].is_string(), "a retry is scheduled");
    assert_eq!(got["attempts"][0]["status"], "failed");
    assert_eq!(got["attempts"][0]["failure"]["reason"], reason);
    assert_eq!(time(&got["attempts"][0]["ended_at"]), rig.now());
    assert_eq!(rig.lk.deleted_rooms(), vec![format!("reminder-{id}-1")]);

    rig.app.clock.set(time(&got["next_attempt_at"]));
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    assert!(rig.lk.room(&format!("reminder-{id}-2")).is_some());
    let r = rig
        .send(&event(
            "call_completed",
            id,
            json!({"attempt": 2, "outcome": {"result": "disputed"}}),
        ))
        .await;
    assert_eq!(r["status"], "completed");

    // Room creation refused, on the last attempt: terminal, nothing dispatched.
    let last = rig.create(json!({"max_attempts": 1})).await;
    rig.lk.fail_next("CreateRoom", 1, "invalid_argument");
    let before = rig.lk.dispatches().len();
    assert_eq!(rig.tick().await, counts(0, 0, 1));
    let got = rig.app.reminder(last).await;
    assert_eq!(got["status"], "failed");
    assert!(got["skip_reason"]
        .as_str()
        .unwrap()
        .starts_with("dispatch_failed: create_room: invalid_argument"));
    assert_eq!(got["next_attempt_at"], Value::Null, "no attempt remains");
    assert_eq!(rig.lk.dispatches().len(), before);
    rig.app.clock.advance(Duration::days(1));
    assert_eq!(rig.tick().await, counts(0, 0, 0));

    // Wrong credentials read as a dispatch failure that says what to check.
    let wrong = rig.create(json!({})).await;
    rig.app.clock.advance(Duration::seconds(1));
    let lk_url = rig.lk.url().to_owned();
    let config = common::test_config(
        &rig.app.db.url,
        &[
            ("LIVEKIT_URL", lk_url.as_str()),
            ("LIVEKIT_API_KEY", rig.lk.api_key()),
            ("LIVEKIT_API_SECRET", "not-the-secret-at-all-0123456789"),
        ],
    );
    let other = duecall::state_with(
        std::sync::Arc::clone(&rig.app.state.store),
        std::sync::Arc::clone(&rig.app.state.clock),
        config,
    );
    let report = other.scheduler.tick().await.unwrap();
    assert_eq!((report.dispatched, report.dispatch_failed), (0, 1));
    let got = rig.app.reminder(wrong).await;
    assert!(
        got["skip_reason"]
            .as_str()
            .unwrap()
            .contains("check LIVEKIT_API_KEY and LIVEKIT_API_SECRET"),
        "{got}"
    );
    assert!(rig.lk.auth_failures() >= 1);
    rig.stop().await;
}

async fn timeout_then_retry(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[("RETRY_DELAY_SECS", "60")]).await else {
        return;
    };
    let id = rig.create(json!({})).await;
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    rig.app.clock.advance(Duration::seconds(600));
    assert_eq!(rig.tick().await, counts(1, 0, 0));
    let got = rig.app.reminder(id).await;
    assert_eq!(got["status"], "failed");
    assert_eq!(got["skip_reason"], "call_timeout");
    rig.app.clock.set(time(&got["next_attempt_at"]));
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    let r = rig
        .send(&event(
            "call_completed",
            id,
            json!({"attempt": 2, "outcome": {"result": "refused"}}),
        ))
        .await;
    assert_eq!(r["status"], "completed");
    rig.stop().await;
}

/// `metadata.verify` and `CALL_DISCLOSURES` reach the agent on both the room
/// and the dispatch (SPEC §3, §10); a bad `verify` never gets that far.
async fn verify_and_disclosures_reach_the_agent(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[("CALL_DISCLOSURES", "recording")]).await else {
        return;
    };
    let refused = rig
        .app
        .create(reminder_body(
            json!({"metadata": {"verify": {"label": "ZIP code", "value": ""}}}),
        ))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["field"], "metadata.verify.value", "{err}");

    let id = rig
        .create(json!({"metadata": {"invoice": "1042",
                                    "verify": {"label": "ZIP code", "value": " 60601"}}}))
        .await;
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    let room = format!("reminder-{id}-1");
    let rooms = rig.lk.rooms();
    let dispatches = rig.lk.dispatches();
    assert_eq!((rooms.len(), dispatches.len()), (1, 1));
    for metadata in [&rooms[0].metadata, &dispatches[0].metadata] {
        let m: Value = serde_json::from_str(metadata).unwrap();
        assert_eq!(m["reminder_id"], id.to_string());
        assert_eq!(m["verify"], json!({"label": "ZIP code", "value": "60601"}));
        assert_eq!(m["disclosures"], json!(["recording"]));
        assert!(m.get("invoice").is_none(), "{m}");
    }
    assert_eq!(rooms[0].name, room);
    rig.stop().await;
}

both_backends!(e2e_dispatch_answer_complete, answered_and_completed);
both_backends!(
    e2e_verify_and_disclosures_reach_the_agent,
    verify_and_disclosures_reach_the_agent
);
both_backends!(
    e2e_no_answer_is_retried_on_a_later_tick,
    no_answer_then_retry
);
both_backends!(e2e_dispatch_failure_is_retried, dispatch_failure_then_retry);
both_backends!(e2e_timeout_is_retried, timeout_then_retry);

// --- the timeout monitor: seed properties 12–14 --------------------------------

/// One generated timeout case.
#[derive(Debug, Clone)]
struct TimeoutCase {
    dispatch_timeout: i64,
    call_timeout: i64,
    /// Answered this many seconds after dispatch (before the dispatch timeout), or never.
    answered_after: Option<i64>,
    max_attempts: u32,
}

fn timeout_cases(n: usize) -> Vec<TimeoutCase> {
    let strategy = (
        60i64..4_000,
        60i64..8_000,
        proptest::option::of(0.0f64..1.0),
        1u32..4,
    )
        .prop_map(|(d, c, frac, max_attempts)| TimeoutCase {
            dispatch_timeout: d,
            call_timeout: c,
            answered_after: frac.map(|f| ((d - 1) as f64 * f) as i64),
            max_attempts,
        });
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Start a case's attempt and bring it to just before its deadline; returns
/// the rig, the reminder and when the attempt was answered (if it was).
async fn case_at_deadline(
    backend: Backend,
    case: &TimeoutCase,
) -> Option<(Rig, ReminderId, Option<DateTime<Utc>>)> {
    let d = case.dispatch_timeout.to_string();
    let c = case.call_timeout.to_string();
    let rig = Rig::start(
        backend,
        &[
            ("DISPATCH_TIMEOUT_SECS", &d),
            ("CALL_TIMEOUT_SECS", &c),
            ("RETRY_DELAY_SECS", "60"),
            ("CALLING_WINDOW", "00:00-23:59"),
            ("CALLING_DAYS", "Mon-Sun"),
        ],
    )
    .await?;
    let id = rig.create(json!({"max_attempts": case.max_attempts})).await;
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    let answered = match case.answered_after {
        Some(a) => {
            rig.app.clock.advance(Duration::seconds(a));
            let r = rig
                .send(&event("call_answered", id, json!({"attempt": 1})))
                .await;
            assert_eq!(r["status"], "processing");
            rig.app
                .clock
                .advance(Duration::seconds(case.call_timeout - 1));
            Some(rig.now() - Duration::seconds(case.call_timeout - 1))
        }
        None => {
            rig.app
                .clock
                .advance(Duration::seconds(case.dispatch_timeout - 1));
            None
        }
    };
    Some((rig, id, answered))
}

async fn timeout_detection(backend: Backend) {
    for case in timeout_cases(6) {
        let Some((rig, id, answered)) = case_at_deadline(backend, &case).await else {
            return;
        };
        let live = if answered.is_some() {
            "processing"
        } else {
            "in_progress"
        };
        // One second before the deadline: nothing happens, however often it ticks.
        assert_eq!(rig.tick().await, counts(0, 0, 0), "{case:?}");
        assert_eq!(rig.tick().await, counts(0, 0, 0), "{case:?}");
        assert_eq!(rig.app.reminder(id).await["status"], live, "{case:?}");
        // At the deadline: timed out, once.
        rig.app.clock.advance(Duration::seconds(1));
        let report = rig.tick().await;
        assert_eq!(report["timed_out"], 1, "{case:?}");
        assert_eq!(rig.app.reminder(id).await["status"], "failed", "{case:?}");
        assert_eq!(rig.tick().await["timed_out"], 0, "{case:?}");
        rig.stop().await;
    }
}

async fn timeout_reason_recording(backend: Backend) {
    for case in timeout_cases(6) {
        let Some((rig, id, answered)) = case_at_deadline(backend, &case).await else {
            return;
        };
        rig.app.clock.advance(Duration::seconds(1));
        assert_eq!(rig.tick().await["timed_out"], 1);
        let now = rig.now();
        let got = rig.app.reminder(id).await;
        assert_eq!(got["status"], "failed", "{case:?}");
        assert_eq!(got["skip_reason"], "call_timeout", "{case:?}");
        assert_eq!(time(&got["updated_at"]), now, "{case:?}");
        assert_eq!(got["outcome"], Value::Null, "a timeout invents no outcome");
        let att = &got["attempts"][0];
        assert_eq!(att["status"], "failed", "{case:?}");
        assert_eq!(
            att["failure"],
            json!({"reason": "call_timeout", "sip_status": null, "retryable": true}),
            "{case:?}"
        );
        assert_eq!(time(&att["ended_at"]), now, "{case:?}");
        match answered {
            Some(a) => assert_eq!(time(&att["answered_at"]), a, "{case:?}"),
            None => assert_eq!(att["answered_at"], Value::Null, "{case:?}"),
        }
        rig.stop().await;
    }
}

async fn timed_out_can_retry(backend: Backend) {
    for case in timeout_cases(6) {
        let Some((rig, id, _)) = case_at_deadline(backend, &case).await else {
            return;
        };
        rig.app.clock.advance(Duration::seconds(1));
        assert_eq!(rig.tick().await["timed_out"], 1);
        let got = rig.app.reminder(id).await;
        if case.max_attempts == 1 {
            // No attempt remains: terminal, never called again.
            assert_eq!(got["next_attempt_at"], Value::Null, "{case:?}");
            rig.app.clock.advance(Duration::days(2));
            assert_eq!(rig.tick().await, counts(0, 0, 0), "{case:?}");
            assert_eq!(rig.lk.dispatches().len(), 1);
        } else {
            let next = time(&got["next_attempt_at"]);
            let wait = next - rig.now();
            assert!(
                wait >= Duration::seconds(54) && wait <= Duration::seconds(66),
                "{case:?}: {wait}"
            );
            rig.app.clock.set(next);
            assert_eq!(rig.tick().await, counts(0, 1, 0), "{case:?}");
            assert!(rig.lk.room(&format!("reminder-{id}-2")).is_some());
            let r = rig
                .send(&event(
                    "call_completed",
                    id,
                    json!({"attempt": 2, "outcome": {"result": "disputed"}}),
                ))
                .await;
            assert_eq!(r["status"], "completed", "{case:?}");
        }
        rig.stop().await;
    }
}

both_backends!(property_12_timeout_detection, timeout_detection);
both_backends!(
    property_13_timeout_reason_recording,
    timeout_reason_recording
);
both_backends!(
    property_14_timed_out_reminders_can_retry,
    timed_out_can_retry
);

// --- LiveKit's own webhooks ----------------------------------------------------

async fn room_finished(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let a = rig.create(json!({})).await;
    let b = rig.create(json!({})).await;
    let c = rig.create(json!({})).await;
    assert_eq!(rig.tick().await["dispatched"], 3);
    rig.send(&event("call_answered", b, json!({"attempt": 1})))
        .await;
    rig.send(&completed(c, "paid")).await;

    // in_progress and processing: failed at once, retry scheduled.
    for id in [a, b] {
        let (body, auth) = rig.lk.webhook("room_finished", &format!("reminder-{id}-1"));
        let (status, answer) = rig.livekit_webhook(&body, Some(&auth)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer, json!({"event": "room_finished", "applied": true}));
        let got = rig.app.reminder(id).await;
        assert_eq!(got["status"], "failed");
        assert_eq!(got["skip_reason"], "room_closed_without_report");
        assert!(got["next_attempt_at"].is_string());
        assert_eq!(
            got["attempts"][0]["failure"]["reason"],
            "room_closed_without_report"
        );
        // LiveKit repeats itself: the second changes nothing.
        let (status, answer) = rig.livekit_webhook(&body, Some(&auth)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["applied"], false);
    }
    // The agent's late report still wins over the guess.
    let r = rig
        .send(&event(
            "call_completed",
            b,
            json!({"attempt": 1, "outcome": {"result": "payment_promised"}}),
        ))
        .await;
    assert_eq!(r["status"], "completed");

    // A completed attempt's room closing is just the end of the call.
    let (body, auth) = rig.lk.webhook("room_finished", &format!("reminder-{c}-1"));
    let (status, answer) = rig.livekit_webhook(&body, Some(&auth)).await;
    assert_eq!(
        (status, answer["applied"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(rig.app.reminder(c).await["status"], "completed");

    // Other events and other rooms are acknowledged and ignored.
    for (ev, room) in [
        ("room_started", format!("reminder-{a}-1")),
        ("participant_left", format!("reminder-{a}-1")),
        ("room_finished", "standup".to_owned()),
        ("room_finished", format!("reminder-{}-1", ReminderId::new())),
        ("room_finished", format!("reminder-{a}-7")),
    ] {
        let (body, auth) = rig.lk.webhook(ev, &room);
        let (status, answer) = rig.livekit_webhook(&body, Some(&auth)).await;
        assert_eq!(status, StatusCode::OK, "{ev} {room}: {answer}");
        assert_eq!(answer["applied"], false, "{ev} {room}");
    }

    // Unsigned, wrongly signed or tampered: 401, and nothing changes.
    let d = rig.create(json!({})).await;
    rig.app.clock.advance(Duration::seconds(1));
    assert_eq!(rig.tick().await["dispatched"], 1);
    let room = format!("reminder-{d}-1");
    let (body, auth) = rig.lk.webhook("room_finished", &room);
    let (bad_body, bad_auth) = rig.lk.webhook_with(
        "another-secret-entirely-0123456789abcdef",
        "room_finished",
        &room,
    );
    let tampered = body.replace("room_finished", "room_finishee");
    for (b, a) in [
        (body.as_str(), None),
        (bad_body.as_str(), Some(bad_auth.as_str())),
        (tampered.as_str(), Some(auth.as_str())),
        (body.as_str(), Some("Bearer not-a-jwt")),
    ] {
        let (status, answer) = rig.livekit_webhook(b, a).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    assert_eq!(rig.app.reminder(d).await["status"], "in_progress");
    // The same token with a "Bearer " prefix is accepted.
    let (status, answer) = rig
        .livekit_webhook(&body, Some(&format!("Bearer {auth}")))
        .await;
    assert_eq!(
        (status, answer["applied"].clone()),
        (StatusCode::OK, json!(true))
    );
    rig.stop().await;
}

both_backends!(
    livekit_room_finished_fails_a_live_attempt_at_once,
    room_finished
);

async fn routes_without_their_secrets(backend: Backend) {
    // No CRON_SECRET, no LiveKit: both routes do not exist.
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (method, path) in [
        (reqwest::Method::GET, "/api/cron/process-reminders"),
        (reqwest::Method::POST, "/api/cron/process-reminders"),
        (reqwest::Method::POST, "/api/webhooks/livekit"),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(CRON)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    app.stop().await;

    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let url = rig.app.url("/api/cron/process-reminders");
    for token in [None, Some("wrong"), Some(common::API_KEY)] {
        let mut req = rig.app.client.post(&url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // GET works as POST does.
    rig.create(json!({})).await;
    let resp = rig
        .app
        .client
        .get(&url)
        .bearer_auth(CRON)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), counts(0, 1, 0));
    let resp = rig
        .app
        .client
        .delete(&url)
        .bearer_auth(CRON)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    rig.stop().await;
}

both_backends!(
    cron_and_livekit_routes_need_their_secrets,
    routes_without_their_secrets
);

// --- issue 12: a tick survives its caller, its clocks and its errors --------------

/// Wait (at most 10 s) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < until, "not within 10 s: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn cron_caller_hangs_up(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let ids = [
        rig.create(json!({})).await,
        rig.create(json!({})).await,
        rig.create(json!({})).await,
    ];
    // LiveKit is slow, and the cron client gives up long before it answers.
    rig.lk
        .delay("CreateRoom", std::time::Duration::from_secs(2));
    let gave_up = rig
        .app
        .client
        .post(rig.app.url("/api/cron/process-reminders"))
        .bearer_auth(CRON)
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the client gave up");
    // Every claimed attempt is still dialled: room and agent dispatch.
    eventually("all three dispatched", || rig.lk.dispatches().len() == 3).await;
    for id in ids {
        let got = rig.app.reminder(id).await;
        assert_eq!(got["status"], "in_progress");
        assert_eq!(got["skip_reason"], Value::Null);
        let room = format!("reminder-{id}-1");
        assert!(rig.lk.dispatches().iter().any(|d| d.room == room), "{room}");
    }
    rig.stop().await;
}

both_backends!(
    a_cron_caller_that_hangs_up_does_not_cancel_the_tick,
    cron_caller_hangs_up
);

async fn agent_clock_off(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[("CALL_TIMEOUT_SECS", "1800")]).await else {
        return;
    };
    // An agent whose clock runs five years fast: the call limit still counts
    // from when the service heard of the answer.
    let fast = rig.create(json!({})).await;
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    let ahead = (rig.now() + Duration::days(5 * 365)).to_rfc3339();
    rig.send(&event(
        "call_answered",
        fast,
        json!({"attempt": 1, "occurred_at": ahead}),
    ))
    .await;
    let got = rig.app.reminder(fast).await;
    assert_eq!(got["status"], "processing");
    assert_eq!(
        time(&got["attempts"][0]["answered_at"]),
        rig.now(),
        "the attempt's times are the service's"
    );
    // An agent whose clock runs an hour slow: not timed out at once.
    let slow = rig.create(json!({})).await;
    assert_eq!(rig.tick().await, counts(0, 1, 0));
    let behind = (rig.now() - Duration::hours(1)).to_rfc3339();
    rig.send(&event(
        "call_answered",
        slow,
        json!({"attempt": 1, "occurred_at": behind}),
    ))
    .await;
    rig.app.clock.advance(Duration::seconds(60));
    assert_eq!(
        rig.tick().await,
        counts(0, 0, 0),
        "an hour-slow clock is no timeout"
    );
    // Past the limit by the service's clock, both time out.
    rig.app.clock.advance(Duration::seconds(1800));
    assert_eq!(rig.tick().await, counts(2, 0, 0));
    for id in [fast, slow] {
        let got = rig.app.reminder(id).await;
        assert_eq!(got["skip_reason"], "call_timeout", "{id}");
    }
    rig.stop().await;
}

both_backends!(
    an_agent_clock_ahead_or_behind_does_not_move_the_call_timeout,
    agent_clock_off
);

async fn storage_error_recording_a_dispatch_failure(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let ids = [
        rig.create(json!({})).await,
        rig.create(json!({})).await,
        rig.create(json!({})).await,
    ];
    // The real database refuses to record a dispatch failure.
    rig.app
        .db
        .execute(match backend {
            Backend::Sqlite => {
                "CREATE TRIGGER refuse_dispatch_failure BEFORE UPDATE OF skip_reason ON reminders \
                 WHEN NEW.skip_reason LIKE 'dispatch_failed%' \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
            }
            Backend::Postgres => {
                "CREATE FUNCTION refuse_dispatch_failure() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$; \
                 CREATE TRIGGER refuse_dispatch_failure BEFORE UPDATE ON reminders FOR EACH ROW \
                 WHEN (NEW.skip_reason LIKE 'dispatch_failed%') \
                 EXECUTE FUNCTION refuse_dispatch_failure();"
            }
        })
        .await;
    // One dial fails at once; the other two are still on their way to LiveKit.
    rig.lk.fail_next("CreateRoom", 1, "invalid_argument");
    rig.lk
        .delay("CreateDispatch", std::time::Duration::from_millis(800));
    assert_eq!(rig.tick().await, counts(0, 2, 1));
    assert_eq!(rig.lk.dispatches().len(), 2, "the other dials went on");
    let mut statuses = Vec::new();
    for id in ids {
        statuses.push(rig.app.reminder(id).await["status"].clone());
    }
    // The unrecorded failure stays in_progress: the dispatch timeout rescues it.
    assert_eq!(statuses, vec!["in_progress"; 3]);
    rig.stop().await;
}

both_backends!(
    a_storage_error_recording_one_dispatch_failure_does_not_abandon_the_other_dials,
    storage_error_recording_a_dispatch_failure
);

async fn dispatch_failure_beats_room_finished(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    // LiveKit announces the deleted room before DeleteRoom even answers.
    rig.lk
        .post_room_finished_to(&rig.app.url("/api/webhooks/livekit"));
    let id = rig.create(json!({})).await;
    rig.lk.fail_next("CreateDispatch", 1, "unavailable");
    assert_eq!(rig.tick().await, counts(0, 0, 1));
    let room = format!("reminder-{id}-1");
    assert_eq!(rig.lk.deleted_rooms(), vec![room], "the room is closed");
    let got = rig.app.reminder(id).await;
    let reason = got["skip_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("dispatch_failed: create_dispatch: unavailable"),
        "the real reason, not room_finished's: {reason}"
    );
    assert_eq!(got["attempts"][0]["failure"]["reason"], reason);
    rig.stop().await;
}

both_backends!(
    a_dispatch_failure_keeps_its_reason_when_room_finished_races_it,
    dispatch_failure_beats_room_finished
);

async fn dial_cut_short(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[("DIAL_TIMEOUT_SECS", "1")]).await else {
        return;
    };
    let id = rig.create(json!({})).await;
    // The room is made, then the agent dispatch hangs past the dial's bound.
    rig.lk
        .delay("CreateDispatch", std::time::Duration::from_secs(3));
    assert_eq!(rig.tick().await, counts(0, 0, 1));
    let got = rig.app.reminder(id).await;
    assert_eq!(got["status"], "failed");
    assert_eq!(
        got["skip_reason"],
        "dispatch_failed: dispatch: no answer in 1 s"
    );
    assert!(got["next_attempt_at"].is_string(), "a retry is scheduled");
    assert_eq!(got["attempts"][0]["status"], "failed");
    let room = format!("reminder-{id}-1");
    assert_eq!(
        rig.lk.deleted_rooms(),
        vec![room.clone()],
        "the room is closed"
    );
    assert!(rig.lk.room(&room).is_none());
    rig.stop().await;
}

both_backends!(
    a_dial_cut_short_by_its_bound_closes_its_room_and_records_why,
    dial_cut_short
);

async fn head_runs_no_tick(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let id = rig.create(json!({})).await;
    let resp = rig
        .app
        .client
        .head(rig.app.url("/api/cron/process-reminders"))
        .bearer_auth(CRON)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(rig.lk.calls("CreateRoom"), 0, "no tick ran");
    assert_eq!(rig.app.reminder(id).await["status"], "pending");
    rig.stop().await;
}

both_backends!(head_on_the_cron_route_runs_no_tick, head_runs_no_tick);

async fn livekit_webhook_refusals(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let send = |body: Vec<u8>, auth: Option<String>| {
        let mut req = rig
            .app
            .client
            .post(rig.app.url("/api/webhooks/livekit"))
            .header("content-type", "application/webhook+json")
            .body(body);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.expect("every answer is JSON");
            (
                status,
                body["error"]["message"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    // A body that is not UTF-8, unsigned or signed with another secret: the
    // signature is checked first, so these are 401s, not 400s.
    let junk = vec![0xff, 0xfe, b'{', b'}'];
    let (status, _) = send(junk.clone(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, good_auth) = rig.lk.webhook("room_finished", "reminder-x-1");
    let (status, why) = send(junk.clone(), Some(good_auth)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the token covers another body"
    );
    assert!(
        why.contains("sha256 claim does not match the body"),
        "{why}"
    );
    // Signed by LiveKit but not an event: only then a 400.
    let not_an_event = r#"{"event": 5}"#;
    let signed =
        common::fake_livekit::sign_webhook(rig.lk.api_key(), rig.lk.api_secret(), not_an_event);
    let (status, _) = send(not_an_event.as_bytes().to_vec(), Some(signed)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Each refusal says what failed.
    let (body, _) = rig.lk.webhook("room_finished", "reminder-x-1");
    let (_, wrong_secret) = rig.lk.webhook_with(
        "not-the-secret-0123456789abcdef",
        "room_finished",
        "reminder-x-1",
    );
    let (status, why) = send(body.clone().into_bytes(), Some(wrong_secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        why.contains("signature does not match LIVEKIT_API_SECRET"),
        "{why}"
    );
    let (status, why) = send(body.clone().into_bytes(), Some("not.a.jwt".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("not a well-formed JWT"), "{why}");
    let (status, why) = send(body.into_bytes(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(why.contains("missing Authorization token"), "{why}");
    rig.stop().await;
}

both_backends!(
    livekit_webhook_checks_the_signature_first_and_says_what_failed,
    livekit_webhook_refusals
);
