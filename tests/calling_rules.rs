//! The calling rules of SPEC §7 end to end, on both databases: the service on
//! port 0 with its real LiveKit dialer (`livekit-api`) pointed at a fake
//! LiveKit server that speaks Twirp, a manual clock, ticks through the cron
//! route, reminders and suppressions through the API, the agent's signed
//! events through the call-status webhook. What was dialled is read from what
//! the fake LiveKit recorded (rooms created, agents dispatched); what was held
//! back, and why, from `GET /api/reminders/{id}`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::fake_livekit::FakeLiveKit;
use common::{event, msg_id, reminder_body, t, test_config, Backend, TestApp};
use duecall::clock::{Clock, ManualClock};
use duecall::domain::ReminderId;
use duecall::http::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;

const CRON: &str = "cron-test-secret-0123456789abcdef";

/// Tuesday 2026-11-24 15:00 UTC: 10:00 in New York, 07:00 in San Francisco.
const T0: &str = "2026-11-24T15:00:00Z";

/// The service with its LiveKit dialer pointed at a fake LiveKit server.
struct Rig {
    app: TestApp,
    lk: FakeLiveKit,
}

impl Rig {
    /// Started with the clock at `at`. Attempts stay live for a day unless a
    /// test says otherwise: timeouts are another test file's business.
    async fn start(backend: Backend, at: &str, extra: &[(&str, &str)]) -> Option<Self> {
        let lk = FakeLiveKit::start().await;
        let mut vars: Vec<(&str, &str)> = vec![
            ("LIVEKIT_URL", lk.url()),
            ("LIVEKIT_API_KEY", lk.api_key()),
            ("LIVEKIT_API_SECRET", lk.api_secret()),
            ("CRON_SECRET", CRON),
            ("DISPATCH_TIMEOUT_SECS", "86400"),
            ("CALL_TIMEOUT_SECS", "86400"),
        ];
        vars.extend_from_slice(extra);
        let app = TestApp::spawn_with(backend, &vars).await?;
        app.clock.set(t(at));
        Some(Self { app, lk })
    }

    fn now(&self) -> DateTime<Utc> {
        self.app.clock.now()
    }

    fn at(&self, at: &str) {
        self.app.clock.set(t(at));
    }

    /// One tick through the cron route: its counts.
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

    /// Tick at `at`; its counts.
    async fn tick_at(&self, at: DateTime<Utc>) -> Value {
        self.app.clock.set(at);
        self.tick().await
    }

    /// Create a reminder; the create answer (201).
    async fn create_body(&self, overrides: Value) -> Value {
        let resp = self.app.create(reminder_body(overrides)).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn create(&self, overrides: Value) -> ReminderId {
        let body = self.create_body(overrides).await;
        ReminderId::parse(body["id"].as_str().unwrap()).unwrap()
    }

    async fn get(&self, id: ReminderId) -> Value {
        self.app.reminder(id).await
    }

    /// A signed call-status event, answered 200; the answer.
    async fn send(&self, body: &str) -> Value {
        let resp = self.app.send_event(&msg_id(), body).await;
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// The agent reports attempt `attempt` answered, then ended with `outcome`.
    async fn conversation(&self, id: ReminderId, attempt: u32, outcome: Value) -> Value {
        self.send(&event("call_answered", id, json!({"attempt": attempt})))
            .await;
        self.send(&event(
            "call_completed",
            id,
            json!({"attempt": attempt, "outcome": outcome}),
        ))
        .await
    }

    /// The agent reports attempt `attempt` ended unanswered with `result`.
    async fn unanswered(&self, id: ReminderId, attempt: u32, result: &str) -> Value {
        self.send(&event(
            "call_completed",
            id,
            json!({"attempt": attempt, "outcome": {"result": result}}),
        ))
        .await
    }

    async fn suppress(&self, phone: &str, reason: &str) {
        let resp = self
            .app
            .api(Method::POST, "/api/suppressions")
            .json(&json!({"phone_number": phone, "reason": reason}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }

    /// The attempts of `id` that LiveKit was asked to run, in order: a room
    /// created and an agent dispatched to it, both named for the attempt.
    fn dialled(&self, id: ReminderId) -> Vec<u32> {
        let prefix = format!("reminder-{id}-");
        let attempts: Vec<u32> = self
            .lk
            .dispatches()
            .iter()
            .filter_map(|d| d.room.strip_prefix(&prefix).map(|n| n.parse().unwrap()))
            .collect();
        for n in &attempts {
            assert!(
                self.lk.room(&format!("{prefix}{n}")).is_some(),
                "attempt {n} of {id} was dispatched without its room"
            );
        }
        attempts
    }

    /// Every agent dispatch so far, whichever reminder.
    fn dispatch_count(&self) -> usize {
        let n = self.lk.dispatches().len();
        assert_eq!(self.lk.calls("CreateRoom"), n, "a room for every dispatch");
        assert_eq!(self.lk.calls("CreateDispatch"), n);
        n
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

/// One count of a tick's answer (`suppressed` and `no_lawful_calling_time`
/// are left out when zero).
fn n(report: &Value, key: &str) -> u64 {
    report.get(key).map_or(0, |v| v.as_u64().unwrap())
}

/// `(dispatched, deferred, suppressed)` of a tick, with nothing timed out or failed.
fn did(report: &Value) -> (u64, u64, u64) {
    assert_eq!(n(report, "timed_out"), 0, "{report}");
    assert_eq!(n(report, "dispatch_failed"), 0, "{report}");
    assert_eq!(n(report, "no_lawful_calling_time"), 0, "{report}");
    (
        n(report, "dispatched"),
        n(report, "deferred"),
        n(report, "suppressed"),
    )
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn next_attempt(r: &Value) -> DateTime<Utc> {
    time(&r["next_attempt_at"])
}

fn ms() -> Duration {
    Duration::milliseconds(1)
}

/// Every attempt dispatched at `times` has at most `max - 1` others in the
/// `period` before it: at most `max` in any rolling `period`.
fn assert_at_most(times: &[DateTime<Utc>], max: usize, period: Duration) {
    for t in times {
        let within = times
            .iter()
            .filter(|s| **s > *t - period && **s <= *t)
            .count();
        assert!(
            within <= max,
            "{within} attempts in the {period} ending {t}: {times:?}"
        );
    }
}

/// When each attempt of these reminders was dispatched, as the API reads.
async fn dispatch_times(rig: &Rig, ids: &[ReminderId]) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for id in ids {
        let r = rig.get(*id).await;
        for a in r["attempts"].as_array().unwrap() {
            out.push(time(&a["dispatched_at"]));
        }
    }
    out.sort();
    out
}

// --- 1. The suppression list ----------------------------------------------------------

/// A suppressed number is never dialled: not by a reminder created before
/// the suppression (waiting for its first attempt, or for a retry), not by
/// one created after it (stored cancelled from the start).
async fn suppressed_never_dialled(backend: Backend) {
    let Some(rig) = Rig::start(backend, T0, &[]).await else {
        return;
    };
    // One is mid-retry when its number is suppressed.
    let retrying = rig
        .create(json!({"phone_number": "+12125550111", "external_id": "inv-1r"}))
        .await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    assert_eq!(rig.dialled(retrying), vec![1]);
    assert_eq!(
        rig.unanswered(retrying, 1, "no_answer").await["status"],
        "pending"
    );
    let retry_at = next_attempt(&rig.get(retrying).await);

    // Another waits for its first attempt; a third, for another number, too.
    rig.app.clock.advance(Duration::minutes(1));
    let waiting = rig
        .create(json!({"phone_number": "+12125550100", "external_id": "inv-1w"}))
        .await;
    let other = rig
        .create(json!({"phone_number": "+12125550199", "external_id": "inv-1o"}))
        .await;
    rig.suppress("+12125550100", "asked by letter").await;
    rig.suppress("+12125550111", "cease and desist").await;

    let report = rig.tick().await;
    assert_eq!(did(&report), (1, 0, 1), "{report}");
    assert_eq!(rig.dialled(other), vec![1], "the tick does dial the others");
    rig.conversation(other, 1, json!({"result": "paid"})).await;
    assert_eq!(rig.dialled(waiting), Vec::<u32>::new());
    let r = rig.get(waiting).await;
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["skip_reason"], "suppressed");
    assert_eq!(r["attempt_count"], 0);
    assert_eq!(r["next_attempt_at"], Value::Null);
    assert_eq!(r["attempts"], json!([]));

    // The retry's time comes: cancelled instead of dialled.
    let report = rig.tick_at(retry_at).await;
    assert_eq!(did(&report), (0, 0, 1), "{report}");
    let r = rig.get(retrying).await;
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["skip_reason"], "suppressed");
    assert_eq!(r["attempt_count"], 1);
    assert_eq!(r["next_attempt_at"], Value::Null);
    assert_eq!(rig.dialled(retrying), vec![1]);

    // Created for a suppressed number: stored cancelled, and the answer says so.
    let late = rig
        .create_body(json!({"phone_number": "+12125550100", "external_id": "inv-1l"}))
        .await;
    assert_eq!(late["status"], "cancelled");
    assert_eq!(late["skip_reason"], "suppressed");
    assert_eq!(late["next_attempt_at"], Value::Null);
    let late = ReminderId::parse(late["id"].as_str().unwrap()).unwrap();
    assert_eq!(rig.get(late).await["status"], "cancelled");

    // Days later, nothing more for either number.
    for day in 1..=3 {
        let report = rig.tick_at(retry_at + Duration::days(day)).await;
        assert_eq!(did(&report), (0, 0, 0), "{report}");
    }
    assert_eq!(rig.dialled(waiting), Vec::<u32>::new());
    assert_eq!(rig.dialled(late), Vec::<u32>::new());
    assert_eq!(rig.dispatch_count(), 2);
    rig.stop().await;
}

both_backends!(
    a_suppressed_number_is_never_dialled,
    suppressed_never_dialled
);

/// An opt-out on one call stops every other reminder for the number: one
/// already due (waiting for a free line) and one due tomorrow. Both are of
/// other debts, so no quiet period holds them: the suppression list does.
async fn opt_out_stops_the_others(backend: Backend) {
    // One line: the second reminder waits while the first call is live.
    let Some(rig) = Rig::start(backend, T0, &[("MAX_CONCURRENT_CALLS", "1")]).await else {
        return;
    };
    let first = rig.create(json!({"external_id": "inv-2a"})).await;
    rig.app.clock.advance(Duration::seconds(1));
    let due = rig.create(json!({"external_id": "inv-2b"})).await;
    let tomorrow = rig
        .create(json!({"external_id": "inv-2c", "scheduled_for": "2026-11-25T15:00:00Z"}))
        .await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    assert_eq!(rig.dialled(first), vec![1]);
    assert_eq!(did(&rig.tick().await), (0, 0, 0), "the line is busy");
    assert_eq!(rig.get(due).await["status"], "pending");

    rig.app.clock.advance(Duration::minutes(2));
    let r = rig
        .conversation(first, 1, json!({"result": "opted_out"}))
        .await;
    assert_eq!(r["status"], "cancelled");
    let resp = rig
        .app
        .api(Method::GET, "/api/suppressions/%2B12125550100")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let entry: Value = resp.json().await.unwrap();
    assert_eq!(entry["reason"], "opted_out");
    assert_eq!(entry["reminder_id"], first.to_string());

    // The line is free: the due one is not dialled, but cancelled.
    let report = rig.tick().await;
    assert_eq!(did(&report), (0, 0, 1), "{report}");
    let r = rig.get(due).await;
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["skip_reason"], "suppressed");
    // Tomorrow's, of another debt, neither.
    let report = rig.tick_at(t("2026-11-25T15:00:00Z")).await;
    assert_eq!(did(&report), (0, 0, 1), "{report}");
    let r = rig.get(tomorrow).await;
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["skip_reason"], "suppressed");
    assert_eq!(rig.dialled(due), Vec::<u32>::new());
    assert_eq!(rig.dialled(tomorrow), Vec::<u32>::new());
    assert_eq!(rig.dispatch_count(), 1);
    rig.stop().await;
}

both_backends!(
    an_opt_out_stops_other_reminders_for_the_number,
    opt_out_stops_the_others
);

// --- 3. The frequency cap, per debt ---------------------------------------------------

/// `CALL_FREQUENCY=2/7d` over two reminders of one debt: two attempts in any
/// seven days across both; the one held back reads `deferred_by: frequency`
/// and waits until the oldest attempt leaves the span. Another debt of the
/// same customer is not held.
async fn frequency_across_reminders(backend: Backend) {
    let Some(rig) = Rig::start(backend, T0, &[("CALL_FREQUENCY", "2/7d")]).await else {
        return;
    };
    let a = rig
        .create(json!({"debt_ref": "loan-7", "external_id": "loan-7/a"}))
        .await;
    assert_eq!(rig.get(a).await["debt_ref"], "loan-7");
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    rig.app.clock.advance(Duration::minutes(1));
    rig.unanswered(a, 1, "no_answer").await;
    let a_retry = next_attempt(&rig.get(a).await);

    // An hour later the debt's second reminder: its first attempt is the
    // debt's second.
    rig.at("2026-11-24T16:00:00Z");
    let b = rig.create(json!({"debt_ref": "loan-7"})).await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    assert_eq!(rig.dialled(b), vec![1]);
    rig.app.clock.advance(Duration::minutes(1));
    rig.unanswered(b, 1, "busy").await;
    let b_retry = next_attempt(&rig.get(b).await);
    assert!(a_retry < b_retry, "{a_retry} {b_retry}");

    // Both retries are held: two attempts of the debt since 24 Nov 15:00,
    // so the next one waits until that oldest one is seven days old
    // (Tuesday 1 Dec 10:00 in New York: inside the window).
    let cleared = t("2026-12-01T15:00:00Z");
    for (id, retry) in [(a, a_retry), (b, b_retry)] {
        let report = rig.tick_at(retry).await;
        assert_eq!(did(&report), (0, 1, 0), "{report}");
        let r = rig.get(id).await;
        assert_eq!(r["status"], "pending");
        assert_eq!(r["attempt_count"], 1);
        assert_eq!(r["deferred_by"], "frequency");
        assert_eq!(next_attempt(&r), cleared);
    }
    // The customer's other debt is not held by this one's cap.
    let other = rig
        .create(json!({"debt_ref": "card-9", "max_attempts": 1}))
        .await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    assert_eq!(rig.dialled(other), vec![1]);
    rig.unanswered(other, 1, "no_answer").await;

    // Not a moment early.
    let report = rig.tick_at(cleared - ms()).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    // Then one of them goes; the other is held again, an hour, until the
    // debt's second attempt (16:00) ages out.
    let report = rig.tick_at(cleared).await;
    assert_eq!(did(&report), (1, 1, 0), "{report}");
    let (went, held) = if rig.dialled(a).len() == 2 {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(rig.dialled(went), vec![1, 2]);
    let r = rig.get(held).await;
    assert_eq!(r["deferred_by"], "frequency");
    assert_eq!(next_attempt(&r), t("2026-12-01T16:00:00Z"));
    rig.app.clock.advance(Duration::minutes(1));
    rig.unanswered(went, 2, "no_answer").await;
    let report = rig.tick_at(t("2026-12-01T16:00:00Z")).await;
    assert_eq!(did(&report), (1, 0, 0), "{report}");
    assert_eq!(rig.dialled(held), vec![1, 2]);
    assert_eq!(rig.get(held).await["deferred_by"], Value::Null);

    let times = dispatch_times(&rig, &[a, b]).await;
    assert_eq!(times.len(), 4);
    assert_at_most(&times, 2, Duration::days(7));
    rig.stop().await;
}

both_backends!(
    the_frequency_cap_holds_across_reminders_of_a_debt,
    frequency_across_reminders
);

/// When the debt's cap clears on a blackout date, the attempt waits for the
/// window to open again; `deferred_by` still names the cap that held it.
async fn frequency_then_blackout(backend: Backend) {
    let Some(rig) = Rig::start(
        backend,
        T0,
        &[
            ("CALL_FREQUENCY", "1/7d"),
            ("CALLING_BLACKOUT_DATES", "2026-12-01"),
        ],
    )
    .await
    else {
        return;
    };
    let a = rig.create(json!({"debt_ref": "loan-8"})).await;
    let b = rig.create(json!({"debt_ref": "loan-8"})).await;
    let report = rig.tick().await;
    assert_eq!(did(&report), (1, 1, 0), "{report}");
    let held = if rig.dialled(a).is_empty() { a } else { b };
    let r = rig.get(held).await;
    assert_eq!(r["deferred_by"], "frequency");
    // 1 Dec is blacked out: Wednesday 2 Dec, 08:00 in New York.
    assert_eq!(next_attempt(&r), t("2026-12-02T13:00:00Z"));
    rig.stop().await;
}

both_backends!(
    a_cap_clearing_on_a_blackout_date_waits_for_the_window,
    frequency_then_blackout
);

/// `REGION_CALL_FREQUENCY` by default holds a `US-MA` debt to two attempts in
/// seven days, where the general cap (7/7d) allows a third.
async fn massachusetts(backend: Backend) {
    let Some(rig) = Rig::start(backend, T0, &[]).await else {
        return;
    };
    let boston = json!({"phone_number": "+16175550100", "max_attempts": 5});
    let mut ma = boston.clone();
    ma["region"] = json!("us-ma");
    ma["external_id"] = json!("ma-1");
    let mut elsewhere = boston;
    elsewhere["external_id"] = json!("xx-1");
    let ma = rig.create_body(ma).await;
    assert_eq!(ma["region"], "US-MA");
    let ma = ReminderId::parse(ma["id"].as_str().unwrap()).unwrap();
    let free = rig.create(elsewhere).await;
    assert_eq!(did(&rig.tick().await), (2, 0, 0));

    for attempt in 1..=2u32 {
        rig.app.clock.advance(Duration::minutes(1));
        rig.unanswered(ma, attempt, "no_answer").await;
        rig.unanswered(free, attempt, "no_answer").await;
        let both_due = next_attempt(&rig.get(ma).await).max(next_attempt(&rig.get(free).await));
        let report = rig.tick_at(both_due).await;
        if attempt == 1 {
            assert_eq!(did(&report), (2, 0, 0), "{report}");
        } else {
            assert_eq!(did(&report), (1, 1, 0), "{report}");
        }
    }
    assert_eq!(rig.dialled(free), vec![1, 2, 3]);
    assert_eq!(rig.dialled(ma), vec![1, 2]);
    let r = rig.get(ma).await;
    assert_eq!(r["status"], "pending");
    assert_eq!(r["deferred_by"], "frequency");
    assert_eq!(next_attempt(&r), t("2026-12-01T15:00:00Z"));
    rig.stop().await;
}

both_backends!(the_us_ma_cap_is_two_a_week, massachusetts);

// --- 4. The cap with several schedulers -----------------------------------------------

/// One more service instance on the rig's database: its own pool, scheduler
/// and clock, the same LiveKit.
async fn instance(rig: &Rig, vars: &[(&str, &str)], clock: &ManualClock) -> AppState {
    let mut all: Vec<(&str, &str)> = vec![
        ("LIVEKIT_URL", rig.lk.url()),
        ("LIVEKIT_API_KEY", rig.lk.api_key()),
        ("LIVEKIT_API_SECRET", rig.lk.api_secret()),
    ];
    all.extend_from_slice(vars);
    let store = duecall::store::connect(&rig.app.db.url, 8)
        .await
        .expect("connect");
    let state = duecall::state_with(
        store,
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        test_config(&rig.app.db.url, &all),
    );
    assert_eq!(state.scheduler.dialer_name(), "livekit");
    state
}

/// Four instances tick at once, every 30 s for an hour,
/// while the reminders of many debts fall due (a debt's five 15 s apart, the
/// debts 40 s apart), time out and come back for their retries. Their clocks
/// are 20 s apart (as real hosts' are), so at the same moment they see
/// different reminders of one debt as due and claim them side by side. No debt is ever
/// dialled more than `CALL_FREQUENCY` allows, and every reminder held back
/// waits for the debt's oldest attempt to leave the span.
async fn four_instances(backend: Backend) {
    let vars = [
        ("CALL_FREQUENCY", "3/7d"),
        ("DISPATCH_TIMEOUT_SECS", "300"),
        ("RETRY_DELAY_SECS", "900"),
        ("MAX_CONCURRENT_CALLS", "100000"),
    ];
    let Some(rig) = Rig::start(backend, T0, &vars).await else {
        return;
    };
    let mut fleet = vec![(rig.app.state.clone(), rig.app.clock.clone(), 0)];
    for i in 1..4 {
        let clock = ManualClock::new(t(T0));
        fleet.push((instance(&rig, &vars, &clock).await, clock, 20 * i));
    }
    let (debts, per_debt) = (40usize, 5usize);
    let start = t(T0);
    let mut debt_of: HashMap<ReminderId, String> = HashMap::new();
    for d in 0..debts {
        for j in 0..per_debt {
            let second = (d * 40 + j * 15) as i64;
            let id = rig
                .create(json!({
                    "debt_ref": format!("debt-{d}"),
                    "phone_number": format!("+1212555{:04}", d * 10 + j),
                    "scheduled_for": (start + Duration::seconds(second)).to_rfc3339(),
                }))
                .await;
            debt_of.insert(id, format!("debt-{d}"));
        }
    }

    let started = std::time::Instant::now();
    let mut ticks = 0;
    for step in 0..=120 {
        let mut set = JoinSet::new();
        for (i, (state, clock, skew)) in fleet.iter().enumerate() {
            clock.set(start + Duration::seconds(30 * step + *skew));
            let state = state.clone();
            set.spawn(async move {
                state
                    .scheduler
                    .tick()
                    .await
                    .unwrap_or_else(|e| panic!("instance {i}: {e}"))
            });
            ticks += 1;
        }
        while let Some(done) = set.join_next().await {
            done.expect("instance task");
        }
    }
    eprintln!(
        "four_instances[{backend:?}]: {ticks} ticks in {:?}",
        started.elapsed()
    );

    // What LiveKit was asked, per debt.
    let dispatches = rig.lk.dispatches();
    let rooms: HashSet<&str> = dispatches.iter().map(|d| d.room.as_str()).collect();
    assert_eq!(rooms.len(), dispatches.len(), "a room dispatched twice");
    let mut per: HashMap<String, usize> = HashMap::new();
    for d in &dispatches {
        let rest = d.room.strip_prefix("reminder-").unwrap();
        let id = ReminderId::parse(&rest[..36]).unwrap();
        *per.entry(debt_of[&id].clone()).or_default() += 1;
    }
    assert_eq!(per.len(), debts, "every debt was called");
    for (debt, count) in &per {
        assert_eq!(*count, 3, "{debt}: {count} attempts in an hour, cap 3/7d");
    }

    // The API's view: three attempts per debt, the rest held by the cap
    // until the debt's first attempt is seven days old.
    let mut by_debt: HashMap<&str, Vec<Value>> = HashMap::new();
    for (id, debt) in &debt_of {
        by_debt.entry(debt).or_default().push(rig.get(*id).await);
    }
    for (debt, rs) in &by_debt {
        let mut times: Vec<DateTime<Utc>> = rs
            .iter()
            .flat_map(|r| r["attempts"].as_array().unwrap().clone())
            .map(|a| time(&a["dispatched_at"]))
            .collect();
        times.sort();
        assert_eq!(times.len(), 3, "{debt}");
        assert_at_most(&times, 3, Duration::days(7));
        for r in rs.iter().filter(|r| r["status"] == "pending") {
            assert_eq!(r["deferred_by"], "frequency", "{debt}: {r}");
            assert_eq!(next_attempt(r), times[0] + Duration::days(7), "{debt}");
        }
    }
    drop(fleet);
    rig.stop().await;
}

both_backends!(four_schedulers_hold_the_frequency_cap, four_instances);

/// Two instances whose clocks are a minute apart: the one ahead dials the
/// debt's first reminder; the one behind, deciding on its second, still
/// counts that attempt, although by its own clock it was dispatched a minute
/// from now. `CALL_FREQUENCY=1/7d`: the second waits a week.
async fn skewed_clocks(backend: Backend) {
    let vars = [("CALL_FREQUENCY", "1/7d")];
    let Some(rig) = Rig::start(backend, T0, &vars).await else {
        return;
    };
    let ahead_clock = ManualClock::new(t(T0) + Duration::minutes(1));
    let ahead = instance(&rig, &vars, &ahead_clock).await;
    let first = rig.create(json!({"debt_ref": "skew-1"})).await;
    let report = ahead.scheduler.tick().await.unwrap();
    assert_eq!(report.dispatched, 1);
    assert_eq!(rig.dialled(first), vec![1]);
    assert_eq!(
        time(&rig.get(first).await["last_attempt_at"]),
        t("2026-11-24T15:01:00Z")
    );

    // The instance behind (the service's own, at 15:00) decides on the second.
    let second = rig.create(json!({"debt_ref": "skew-1"})).await;
    let report = rig.tick().await;
    assert_eq!(did(&report), (0, 1, 0), "{report}");
    assert_eq!(rig.dialled(second), Vec::<u32>::new());
    let r = rig.get(second).await;
    assert_eq!(r["deferred_by"], "frequency");
    assert_eq!(next_attempt(&r), t("2026-12-01T15:01:00Z"));
    drop(ahead);
    rig.stop().await;
}

both_backends!(
    an_instance_behind_counts_attempts_from_one_ahead,
    skewed_clocks
);

// --- 5. A third party answers ----------------------------------------------------------

/// `not_available` (someone else answered): back to pending with a retry,
/// dialled again at the retry's time. Nothing was said about the debt, so it
/// starts no quiet period: the debt's other reminder is dialled meanwhile.
async fn third_party(backend: Backend) {
    let Some(rig) = Rig::start(backend, T0, &[]).await else {
        return;
    };
    let a = rig.create(json!({"debt_ref": "inv-5"})).await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    rig.app.clock.advance(Duration::minutes(2));
    let ended = rig.now();
    let r = rig
        .conversation(
            a,
            1,
            json!({"result": "not_available", "summary": "A relative answered."}),
        )
        .await;
    assert_eq!(r["status"], "pending");
    let r = rig.get(a).await;
    assert_eq!(r["skip_reason"], "not_available");
    assert_eq!(r["outcome"]["result"], "not_available");
    assert_eq!(r["attempts"][0]["outcome"]["result"], "not_available");
    assert_eq!(r["deferred_by"], Value::Null);
    let retry = next_attempt(&r);
    let wait = retry - ended;
    assert!(
        wait >= Duration::seconds(6480) && wait <= Duration::seconds(7920),
        "the first retry 2 h ± 10 % later: {wait}"
    );

    rig.app.clock.advance(Duration::minutes(10));
    let b = rig.create(json!({"debt_ref": "inv-5"})).await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    assert_eq!(rig.dialled(b), vec![1]);

    let report = rig.tick_at(retry - ms()).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    let report = rig.tick_at(retry).await;
    assert_eq!(did(&report), (1, 0, 0), "{report}");
    assert_eq!(rig.dialled(a), vec![1, 2]);
    let room = rig.lk.room(&format!("reminder-{a}-2")).expect("room 2");
    let meta: Value = serde_json::from_str(&room.metadata).unwrap();
    assert_eq!(meta["attempt"], 2);
    let r = rig.get(a).await;
    assert_eq!(r["status"], "in_progress");
    assert_eq!(r["attempt_count"], 2);
    rig.stop().await;
}

both_backends!(a_third_party_answer_is_retried, third_party);

// --- 6. The callback the customer asked for ----------------------------------------

/// `callback_requested` with `callback_at`: pending at that time, nothing
/// dialled before, dialled at it although the debt's quiet period (a
/// callback request is a conversation) holds every other call. A
/// `callback_at` after the window closes is moved to when it opens.
async fn callback(backend: Backend) {
    let Some(rig) = Rig::start(backend, T0, &[]).await else {
        return;
    };
    let a = rig.create(json!({"debt_ref": "inv-6"})).await;
    let last = rig
        .create(json!({"debt_ref": "inv-6b", "max_attempts": 1}))
        .await;
    assert_eq!(did(&rig.tick().await), (2, 0, 0));

    rig.app.clock.advance(Duration::minutes(5));
    let talked = rig.now();
    // Wednesday 12:00 in New York.
    let asked = t("2026-11-25T17:00:00Z");
    let r = rig
        .conversation(
            a,
            1,
            json!({"result": "callback_requested", "callback_at": asked.to_rfc3339()}),
        )
        .await;
    assert_eq!(r["status"], "pending");
    let r = rig.get(a).await;
    assert_eq!(r["skip_reason"], "callback_requested");
    assert_eq!(next_attempt(&r), asked);
    assert_eq!(r["outcome"]["callback_at"], "2026-11-25T17:00:00Z");
    // No attempt left to call back on: completed.
    let r = rig
        .conversation(
            last,
            1,
            json!({"result": "callback_requested", "callback_at": asked.to_rfc3339()}),
        )
        .await;
    assert_eq!(r["status"], "completed");

    // The debt's other reminder is held by the quiet period meanwhile.
    rig.app.clock.advance(Duration::hours(1));
    let b = rig.create(json!({"debt_ref": "inv-6"})).await;
    let report = rig.tick().await;
    assert_eq!(did(&report), (0, 1, 0), "{report}");
    let r = rig.get(b).await;
    assert_eq!(r["deferred_by"], "quiet_period");
    assert_eq!(next_attempt(&r), talked + Duration::days(7));

    let report = rig.tick_at(asked - ms()).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    let report = rig.tick_at(asked).await;
    assert_eq!(did(&report), (1, 0, 0), "{report}");
    assert_eq!(rig.dialled(a), vec![1, 2]);
    let r = rig.get(a).await;
    assert_eq!(r["status"], "in_progress");
    assert_eq!(r["deferred_by"], Value::Null);
    assert_eq!(time(&r["last_attempt_at"]), asked);

    // On the callback the customer asks again, for 21:30 in New York: after
    // the window closes, so at 08:00 the next morning.
    rig.app.clock.advance(Duration::minutes(3));
    let r = rig
        .conversation(
            a,
            2,
            json!({"result": "callback_requested", "callback_at": "2026-11-26T02:30:00Z"}),
        )
        .await;
    assert_eq!(r["status"], "pending");
    let opens = t("2026-11-26T13:00:00Z");
    assert_eq!(next_attempt(&rig.get(a).await), opens);
    let report = rig.tick_at(t("2026-11-26T02:30:00Z")).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    let report = rig.tick_at(opens - ms()).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    let report = rig.tick_at(opens).await;
    assert_eq!(did(&report), (1, 0, 0), "{report}");
    assert_eq!(rig.dialled(a), vec![1, 2, 3]);
    assert_eq!(rig.dialled(b), Vec::<u32>::new());
    assert_eq!(rig.dialled(last), vec![1]);
    rig.stop().await;
}

both_backends!(a_callback_is_placed_at_the_requested_time, callback);

// --- 7. The quiet period after a conversation ---------------------------------------

/// After a conversation about a debt, no other reminder of that debt is
/// dialled for `QUIET_AFTER_CONVERSATION` (default 7 days) from its end;
/// `deferred_by: quiet_period`. Another debt of the same number is dialled.
/// A quiet period that ends after the window closes waits for it to open.
async fn quiet_period(backend: Backend) {
    let Some(rig) = Rig::start(backend, T0, &[]).await else {
        return;
    };
    let a = rig.create(json!({"debt_ref": "inv-7"})).await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    rig.app.clock.advance(Duration::minutes(3));
    let ended = rig.now();
    let r = rig
        .conversation(
            a,
            1,
            json!({"result": "refused", "summary": "Will not pay."}),
        )
        .await;
    assert_eq!(r["status"], "completed");

    rig.app.clock.advance(Duration::minutes(7));
    let b = rig.create(json!({"debt_ref": "inv-7"})).await;
    let other = rig
        .create(json!({"debt_ref": "inv-other", "max_attempts": 1}))
        .await;
    let report = rig.tick().await;
    assert_eq!(did(&report), (1, 1, 0), "{report}");
    assert_eq!(rig.dialled(other), vec![1]);
    rig.unanswered(other, 1, "no_answer").await;
    let r = rig.get(b).await;
    assert_eq!(r["status"], "pending");
    assert_eq!(r["attempt_count"], 0);
    assert_eq!(r["deferred_by"], "quiet_period");
    let quiet_ends = ended + Duration::days(7);
    assert_eq!(quiet_ends, t("2026-12-01T15:03:00Z"));
    assert_eq!(next_attempt(&r), quiet_ends);

    // Inside the period, ticks leave it alone.
    let report = rig.tick_at(t("2026-11-28T15:00:00Z")).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    let report = rig.tick_at(quiet_ends - ms()).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    let report = rig.tick_at(quiet_ends).await;
    assert_eq!(did(&report), (1, 0, 0), "{report}");
    assert_eq!(rig.dialled(b), vec![1]);
    rig.stop().await;
}

both_backends!(the_quiet_period_holds_the_debt, quiet_period);

/// A conversation that ends at 21:10 in New York: its quiet period ends at
/// 21:10 a week later, after the window has closed, so the debt's next call
/// waits until 08:00 the morning after; still `quiet_period`.
async fn quiet_period_into_the_window(backend: Backend) {
    // Tuesday 20:55 in New York.
    let Some(rig) = Rig::start(backend, "2026-11-25T01:55:00Z", &[]).await else {
        return;
    };
    let a = rig.create(json!({"debt_ref": "inv-7e"})).await;
    assert_eq!(did(&rig.tick().await), (1, 0, 0));
    rig.at("2026-11-25T02:10:00Z");
    rig.conversation(a, 1, json!({"result": "disputed"})).await;
    let b = rig.create(json!({"debt_ref": "inv-7e"})).await;
    let report = rig.tick_at(t("2026-11-25T13:00:00Z")).await;
    assert_eq!(did(&report), (0, 1, 0), "{report}");
    let r = rig.get(b).await;
    assert_eq!(r["deferred_by"], "quiet_period");
    // Wednesday 2 Dec, 08:00 in New York.
    assert_eq!(next_attempt(&r), t("2026-12-02T13:00:00Z"));
    rig.stop().await;
}

both_backends!(
    a_quiet_period_ending_at_night_waits_for_the_window,
    quiet_period_into_the_window
);

// --- 8. Calling zones from the number ------------------------------------------------

/// A San Francisco number with no `timezone`: its calling zone comes from the
/// number, so at 08:30 in New York (05:30 in San Francisco) it is not called,
/// but deferred to 08:00 Pacific. Given New York as its `timezone`, it must
/// suit both zones. A New York number is called at once.
async fn zones_from_the_number(backend: Backend) {
    // Tuesday 13:30 UTC: 08:30 in New York, 05:30 in San Francisco.
    let Some(rig) = Rig::start(backend, "2026-11-24T13:30:00Z", &[]).await else {
        return;
    };
    let sf = rig
        .create_body(json!({"phone_number": "+14155550100"}))
        .await;
    assert_eq!(sf["timezone"], Value::Null);
    assert_eq!(sf["calling_zones"], json!(["America/Los_Angeles"]));
    let sf = ReminderId::parse(sf["id"].as_str().unwrap()).unwrap();
    let both = rig
        .create_body(json!({"phone_number": "+14155550101", "timezone": "America/New_York"}))
        .await;
    assert_eq!(both["timezone"], "America/New_York");
    assert_eq!(
        both["calling_zones"],
        json!(["America/New_York", "America/Los_Angeles"])
    );
    let both = ReminderId::parse(both["id"].as_str().unwrap()).unwrap();
    let ny = rig
        .create_body(json!({"phone_number": "+12125550100"}))
        .await;
    assert_eq!(ny["calling_zones"], json!(["America/New_York"]));
    let ny = ReminderId::parse(ny["id"].as_str().unwrap()).unwrap();

    let report = rig.tick().await;
    assert_eq!(did(&report), (1, 2, 0), "{report}");
    assert_eq!(rig.dialled(ny), vec![1]);
    let pacific_eight = t("2026-11-24T16:00:00Z");
    for id in [sf, both] {
        let r = rig.get(id).await;
        assert_eq!(r["status"], "pending");
        assert_eq!(r["deferred_by"], "window");
        assert_eq!(next_attempt(&r), pacific_eight);
    }
    let report = rig.tick_at(pacific_eight - ms()).await;
    assert_eq!(did(&report), (0, 0, 0), "{report}");
    let report = rig.tick_at(pacific_eight).await;
    assert_eq!(did(&report), (2, 0, 0), "{report}");
    assert_eq!(rig.dialled(sf), vec![1]);
    assert_eq!(rig.dialled(both), vec![1]);
    // The agent is told the zone the number is in.
    let room = rig.lk.room(&format!("reminder-{sf}-1")).unwrap();
    let meta: Value = serde_json::from_str(&room.metadata).unwrap();
    assert_eq!(meta["timezone"], "America/Los_Angeles");
    assert_eq!(
        rig.get(sf).await["calling_zones"],
        json!(["America/Los_Angeles"])
    );
    rig.stop().await;
}

both_backends!(calling_zones_come_from_the_number, zones_from_the_number);
