//! Promises to pay (SPEC §8), black-box through HTTP on both databases: a
//! `payment_promised` completion opens one; payments recorded since it keep
//! it; a tick after `promised_date + PROMISE_GRACE_DAYS` (in the customer's
//! zone) breaks an unpaid one and makes exactly one follow-up reminder —
//! also with four tickers at once on PostgreSQL — which the quiet period
//! after the promising conversation still holds.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::fake_livekit::FakeLiveKit;
use common::receiver::{notify_vars, Receiver};
use common::*;
use duecall::clock::{Clock, ManualClock};
use duecall::domain::ReminderId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CRON: &str = "cron-secret-for-the-promise-tests";
/// Tuesday 2026-11-24, 10:00 in New York.
const T0: &str = "2026-11-24T15:00:00Z";

struct Rig {
    app: TestApp,
    lk: FakeLiveKit,
    vars: Vec<(String, String)>,
}

impl Rig {
    async fn start(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        let lk = FakeLiveKit::start().await;
        let mut vars: Vec<(String, String)> = [
            ("LIVEKIT_URL", lk.url()),
            ("LIVEKIT_API_KEY", lk.api_key()),
            ("LIVEKIT_API_SECRET", lk.api_secret()),
            ("CRON_SECRET", CRON),
            ("DISPATCH_TIMEOUT_SECS", "86400"),
            ("CALL_TIMEOUT_SECS", "86400"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let borrowed: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = TestApp::spawn_with(backend, &borrowed).await?;
        app.clock.set(t(T0));
        Some(Self { app, lk, vars })
    }

    fn now(&self) -> DateTime<Utc> {
        self.app.clock.now()
    }

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

    async fn tick_at(&self, at: DateTime<Utc>) -> Value {
        self.app.clock.set(at);
        self.tick().await
    }

    async fn create(&self, overrides: Value) -> ReminderId {
        let resp = self.app.create(reminder_body(overrides)).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ReminderId::parse(body["id"].as_str().unwrap()).unwrap()
    }

    async fn get(&self, id: ReminderId) -> Value {
        self.app.reminder(id).await
    }

    async fn send(&self, body: &str) -> Value {
        let resp = self.app.send_event(&msg_id(), body).await;
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    /// Dial `id` (a tick), then the customer answers and promises `outcome`.
    async fn promised(&self, id: ReminderId, outcome: Value) {
        let report = self.tick().await;
        assert!(report["dispatched"].as_u64().unwrap() >= 1, "{report}");
        let attempt = self.get(id).await["attempt_count"].as_u64().unwrap();
        self.send(&event("call_answered", id, json!({"attempt": attempt})))
            .await;
        let mut o = json!({"result": "payment_promised"});
        for (k, v) in outcome.as_object().unwrap() {
            o[k] = v.clone();
        }
        let r = self
            .send(&event(
                "call_completed",
                id,
                json!({"attempt": attempt, "outcome": o}),
            ))
            .await;
        assert_eq!(r["applied"], true, "{r}");
    }

    async fn pay(&self, id: ReminderId, body: Value) -> Value {
        let resp = self
            .app
            .api(Method::POST, &format!("/api/reminders/{id}/payments"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{status} {json}");
        json
    }

    async fn all_ids(&self) -> Vec<String> {
        let resp = self
            .app
            .api(Method::GET, "/api/reminders?limit=100")
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        body["reminders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {report}"))
}

/// A promise with its amount and date reads `open`; payments recorded since
/// keep it the moment they cover it, before its deadline; the tick then has
/// nothing to decide, and no follow-up is made.
async fn kept(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let id = rig
        .create(json!({"external_id": "inv-k", "amount_due_minor": 12345}))
        .await;
    rig.promised(
        id,
        json!({"promised_amount_minor": 10000, "promised_date": "2026-11-27"}),
    )
    .await;
    let r = rig.get(id).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(
        r["promise"],
        json!({"amount_minor": 10000, "date": "2026-11-27", "status": "open", "follow_up_id": null})
    );
    assert_eq!(r["follow_up_of"], Value::Null);

    rig.app.clock.advance(Duration::hours(20));
    let paid = rig
        .pay(id, json!({"amount_minor": 6000, "reference": "p1"}))
        .await;
    assert_eq!(
        paid["reminder"]["promise"]["status"], "open",
        "6000 of 10000"
    );
    let paid = rig
        .pay(id, json!({"amount_minor": 4000, "reference": "p2"}))
        .await;
    assert_eq!(paid["reminder"]["promise"]["status"], "kept");
    assert_eq!(rig.get(id).await["promise"]["status"], "kept");

    let report = rig.tick_at(t("2026-12-10T15:00:00Z")).await;
    assert_eq!(
        count(&report, "promises_kept"),
        0,
        "decided already: {report}"
    );
    assert_eq!(count(&report, "promises_broken"), 0, "{report}");
    assert_eq!(rig.all_ids().await.len(), 1, "no follow-up");
    rig.stop().await;
}

both_backends!(a_promise_paid_in_time_is_kept, kept);

/// Unpaid by the end of `promised_date + 3` days in New York (2026-11-25 + 3
/// → 2026-11-29 00:00 EST = 05:00Z): broken at the first tick from then, with
/// one follow-up for what is still owed; later ticks make no other. A payment
/// recorded before the promise was made does not count towards it.
async fn broken(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let id = rig
        .create(
            json!({"external_id": "inv-b", "amount_due_minor": 12345, "debt_ref": "debt-b",
            "region": "US-NY", "language": "es", "metadata": {"account": "A-1"}}),
        )
        .await;
    rig.pay(id, json!({"amount_minor": 345, "reference": "before"}))
        .await;
    rig.promised(id, json!({"promised_date": "2026-11-25"}))
        .await;
    let r = rig.get(id).await;
    assert_eq!(
        r["promise"]["amount_minor"], 12000,
        "defaults to what is still owed"
    );
    rig.app.clock.advance(Duration::hours(1));
    rig.pay(id, json!({"amount_minor": 5000, "reference": "after"}))
        .await;

    let report = rig.tick_at(t("2026-11-29T04:59:59Z")).await;
    assert_eq!(count(&report, "promises_broken"), 0, "not yet: {report}");
    assert_eq!(rig.get(id).await["promise"]["status"], "open");
    let report = rig.tick_at(t("2026-11-29T05:00:00Z")).await;
    assert_eq!(count(&report, "promises_broken"), 1, "{report}");
    assert_eq!(count(&report, "promises_kept"), 0, "{report}");

    let r = rig.get(id).await;
    assert_eq!(r["promise"]["status"], "broken");
    let f_id = ReminderId::parse(r["promise"]["follow_up_id"].as_str().unwrap()).unwrap();
    let f = rig.get(f_id).await;
    assert_eq!(f["follow_up_of"], id.to_string());
    assert_eq!(f["external_id"], "inv-b/promise-1");
    assert_eq!(f["amount_due_minor"], 12345 - 345 - 5000);
    assert_eq!(f["amount_paid_minor"], 0);
    for field in [
        "customer_name",
        "phone_number",
        "timezone",
        "calling_zones",
        "region",
        "language",
        "debt_ref",
        "currency",
        "metadata",
        "max_attempts",
    ] {
        assert_eq!(f[field], r[field], "{field}");
    }
    assert_eq!(f["promise"], Value::Null);

    for at in ["2026-11-29T05:00:01Z", "2026-12-20T05:00:00Z"] {
        let report = rig.tick_at(t(at)).await;
        assert_eq!(count(&report, "promises_broken"), 0, "{report}");
    }
    assert_eq!(rig.all_ids().await.len(), 2, "exactly one follow-up");
    rig.stop().await;
}

both_backends!(an_unpaid_promise_is_broken_with_one_follow_up, broken);

/// The follow-up is due at once, but the conversation that made the promise
/// started the debt's quiet period (7 days from its end): the tick that
/// makes it defers it (`quiet_period`) instead of dialling, and it is
/// dialled once the period is over.
async fn quiet(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[("PROMISE_GRACE_DAYS", "0")]).await else {
        return;
    };
    let id = rig.create(json!({"debt_ref": "debt-q"})).await;
    rig.promised(id, json!({"promised_date": "2026-11-24"}))
        .await;
    let ended = rig.now();
    let dials = rig.lk.dispatches().len();
    // 2026-11-25 00:00 in New York: the deadline with no grace.
    let report = rig.tick_at(t("2026-11-25T05:00:00Z")).await;
    assert_eq!(count(&report, "promises_broken"), 1, "{report}");
    assert_eq!(count(&report, "dispatched"), 0, "{report}");
    assert_eq!(rig.lk.dispatches().len(), dials, "nobody dialled");
    let f_id = rig.get(id).await["promise"]["follow_up_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = rig.get(ReminderId::parse(&f_id).unwrap()).await;
    assert_eq!(f["status"], "pending");
    assert_eq!(f["deferred_by"], "quiet_period", "{f}");
    let next: DateTime<Utc> = f["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert!(next >= ended + Duration::days(7), "{next} vs {ended}");

    let report = rig.tick_at(next).await;
    assert_eq!(count(&report, "dispatched"), 1, "{report}");
    rig.stop().await;
}

both_backends!(the_follow_up_waits_out_the_quiet_period, quiet);

/// A completion that promises without a date tracks no promise.
async fn no_date(backend: Backend) {
    let Some(rig) = Rig::start(backend, &[]).await else {
        return;
    };
    let id = rig.create(json!({})).await;
    rig.promised(id, json!({"promised_amount_minor": 500}))
        .await;
    let r = rig.get(id).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["promise"], Value::Null);
    rig.stop().await;
}

both_backends!(a_promise_without_a_date_is_not_tracked, no_date);

/// Twenty promises broken while four instances tick at once on one
/// PostgreSQL: each is decided once, twenty follow-ups in all, each made by
/// exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_four_tickers_make_each_follow_up_once() {
    let Some(rig) = Rig::start(Backend::Postgres, &[("MAX_CONCURRENT_CALLS", "50")]).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = rig
            .create(json!({"external_id": format!("inv-{i}"), "phone_number": format!("+1212555{:04}", 100 + i)}))
            .await;
        ids.push(id);
    }
    let report = rig.tick().await;
    assert_eq!(count(&report, "dispatched"), 20, "{report}");
    for id in &ids {
        rig.send(&event("call_answered", *id, json!({"attempt": 1})))
            .await;
        rig.send(&event(
            "call_completed",
            *id,
            json!({"attempt": 1, "outcome": {"result": "payment_promised", "promised_date": "2026-11-25"}}),
        ))
        .await;
    }
    let at = t("2026-11-29T06:00:00Z");
    let borrowed: Vec<(&str, &str)> = rig
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut tickers = vec![rig.app.state.clone()];
    for _ in 0..3 {
        let clock = ManualClock::new(at);
        let config = test_config(&rig.app.db.url, &borrowed);
        let state = duecall::build_state(config, Arc::new(clock) as Arc<dyn Clock>)
            .await
            .unwrap();
        tickers.push(state);
    }
    rig.app.clock.set(at);
    let mut set = tokio::task::JoinSet::new();
    for state in tickers {
        set.spawn(async move {
            let mut broken = 0;
            for _ in 0..3 {
                broken += state.scheduler.tick().await.unwrap().promises_broken;
            }
            broken
        });
    }
    let mut broken = 0;
    while let Some(n) = set.join_next().await {
        broken += n.unwrap();
    }
    assert_eq!(broken, 20, "each promise broken once");
    let all = rig.all_ids().await;
    assert_eq!(all.len(), 40, "one follow-up each");
    let mut follow_ups = std::collections::HashSet::new();
    for id in &ids {
        let r = rig.get(*id).await;
        assert_eq!(r["promise"]["status"], "broken");
        let f = r["promise"]["follow_up_id"].as_str().unwrap().to_owned();
        let fr = rig.get(ReminderId::parse(&f).unwrap()).await;
        assert_eq!(fr["follow_up_of"], id.to_string());
        assert!(follow_ups.insert(f));
    }
    rig.stop().await;
}

/// `promise.kept` and `promise.broken` reach the business system through the
/// outbox, the broken one naming its follow-up.
async fn notified(backend: Backend) {
    let rx = Receiver::start().await;
    let vars = notify_vars(&rx.url);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let Some(rig) = Rig::start(backend, &extra).await else {
        return;
    };
    let keep = rig.create(json!({"amount_due_minor": 1000})).await;
    let g = ReminderId::parse(&{
        let resp = rig
            .app
            .create(reminder_body(
                json!({"amount_due_minor": 1000, "phone_number": "+12125550199"}),
            ))
            .await;
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    })
    .unwrap();
    let report = rig.tick().await;
    assert_eq!(count(&report, "dispatched"), 2, "{report}");
    for id in [keep, g] {
        rig.send(&event("call_answered", id, json!({"attempt": 1})))
            .await;
        rig.send(&event(
            "call_completed",
            id,
            json!({"attempt": 1, "outcome": {"result": "payment_promised", "promised_date": "2026-11-25"}}),
        ))
        .await;
    }
    rig.pay(keep, json!({"amount_minor": 1000})).await;
    rig.tick_at(t("2026-11-29T05:00:00Z")).await;
    let follow_up = rig.get(g).await["promise"]["follow_up_id"].clone();
    assert!(follow_up.is_string());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let wanted = |got: &[common::receiver::Got]| {
        let types: Vec<String> = got
            .iter()
            .map(|g| g.body["type"].as_str().unwrap_or("").to_owned())
            .collect();
        types.iter().any(|t| t == "promise.kept") && types.iter().any(|t| t == "promise.broken")
    };
    while !wanted(&rx.got()) {
        assert!(std::time::Instant::now() < deadline, "{:?}", rx.got());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = rx.got();
    let kept: Vec<_> = got
        .iter()
        .filter(|g| g.body["type"] == "promise.kept")
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body["data"]["id"], keep.to_string());
    assert_eq!(kept[0].body["data"]["promise"]["status"], "kept");
    let broken: Vec<_> = got
        .iter()
        .filter(|g| g.body["type"] == "promise.broken")
        .collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].body["data"]["id"], g.to_string());
    assert_eq!(broken[0].body["data"]["promise"]["follow_up_id"], follow_up);
    assert_eq!(rx.bad_signatures(), 0);
    rig.stop().await;
}

both_backends!(promises_are_notified, notified);

/// The reminder's page shows what was paid, the promise and what became of
/// it, and links the broken promise and its follow-up both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reminder_page_shows_payments_the_promise_and_its_follow_up() {
    const PASSWORD: &str = "a-long-enough-dashboard-password";
    let Some(rig) = Rig::start(Backend::Sqlite, &[("DASHBOARD_PASSWORD", PASSWORD)]).await else {
        return;
    };
    let id = rig
        .create(json!({"external_id": "inv-p", "amount_due_minor": 12345}))
        .await;
    rig.promised(
        id,
        json!({"promised_amount_minor": 10000, "promised_date": "2026-11-25"}),
    )
    .await;
    rig.app.clock.advance(Duration::hours(1));
    rig.pay(id, json!({"amount_minor": 2500, "reference": "bank-77"}))
        .await;
    rig.tick_at(t("2026-11-29T05:00:00Z")).await;
    let follow_up = rig.get(id).await["promise"]["follow_up_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(rig.app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name=Grace&password={PASSWORD}&next=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |path: String| {
        let (client, cookie) = (client.clone(), cookie.clone());
        let url = rig.app.url(&path);
        async move {
            let resp = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    let html = page(format!("/reminders/{id}")).await;
    for want in [
        r#"<dl id="promise" data-status="broken">"#,
        r#"<dd data-field="amount">USD 100.00</dd>"#,
        r#"<dd data-field="date">2026-11-25</dd>"#,
        r#"<dd data-field="deadline">2026-11-29 05:00:00 UTC</dd>"#,
        r#"<dd data-field="decided_at">2026-11-29 05:00:00 UTC</dd>"#,
        r#"<dd data-field="amount_paid">USD 25.00</dd>"#,
        r#"<dd data-field="amount_owed">USD 98.45</dd>"#,
        r#"<td data-field="amount">USD 25.00</td>"#,
        r#"<td data-field="reference">bank-77</td>"#,
    ] {
        assert!(html.contains(want), "{want} not in the page");
    }
    assert!(html.contains(&format!("href=\"/reminders/{follow_up}\"")));
    let html = page(format!("/reminders/{follow_up}")).await;
    assert!(
        html.contains(&format!("href=\"/reminders/{id}\"")),
        "follow-up links back"
    );
    assert!(html.contains(r#"id="no-promise""#));
    assert!(html.contains(r#"id="no-payments""#));
    assert!(html.contains(r#"<dd data-field="amount_due">USD 98.45</dd>"#));
    rig.stop().await;
}
