//! The dashboard at a glance (`GET /glance`), black-box through HTTP on both
//! databases: a known set of calls, promises, payments and an opt-out made
//! through the webhook, the payments API and the tick; every figure, the
//! bars and segments of both charts, the period switch, a bad period.

mod common;

use chrono::Duration;
use common::fake_livekit::FakeLiveKit;
use common::*;
use duecall::domain::ReminderId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "dashboard-password-0123";
const CRON: &str = "cron-secret-for-the-glance-tests";
/// Tuesday 2026-11-24, 10:00 in New York (the dashboard's zone).
const DAY_A: &str = "2026-11-24T15:00:00Z";
/// Thursday 2026-11-26, 10:00 in New York.
const DAY_B: &str = "2026-11-26T15:00:00Z";
/// Monday 2026-11-30, 10:00 in New York: the page is read then.
const READ_AT: &str = "2026-11-30T15:00:00Z";

struct Rig {
    app: TestApp,
    _lk: FakeLiveKit,
    cookie: String,
    phone: u32,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

impl Rig {
    async fn start(backend: Backend) -> Option<Self> {
        let lk = FakeLiveKit::start().await;
        let vars: Vec<(&str, &str)> = vec![
            ("DASHBOARD_PASSWORD", PASSWORD),
            ("LIVEKIT_URL", lk.url()),
            ("LIVEKIT_API_KEY", lk.api_key()),
            ("LIVEKIT_API_SECRET", lk.api_secret()),
            ("CRON_SECRET", CRON),
            ("DISPATCH_TIMEOUT_SECS", "86400"),
            ("CALL_TIMEOUT_SECS", "86400"),
        ];
        let app = TestApp::spawn_with(backend, &vars).await?;
        app.clock.set(t(DAY_A));
        Some(Self {
            app,
            _lk: lk,
            cookie: String::new(),
            phone: 100,
        })
    }

    /// Sign in at the clock's time (a session lives for hours, not days).
    async fn sign_in(&mut self) {
        let resp = client()
            .post(self.app.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([
                    ("name", "Grace Manager"),
                    ("password", PASSWORD),
                    ("next", "/"),
                ])
                .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        self.cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
    }

    async fn page(&self, path: &str) -> (u16, String) {
        let resp = client()
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// A reminder called once now (one attempt, no retries), on its own number.
    async fn called(&mut self, overrides: Value) -> ReminderId {
        self.phone += 1;
        let mut body =
            json!({"phone_number": format!("+1212555{:04}", self.phone), "max_attempts": 1});
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.app.live_reminder(body).await
    }

    async fn send(&self, body: &str) {
        let resp = self.app.send_event(&msg_id(), body).await;
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["applied"], true, "{json}");
    }

    /// A call answered and ended with `outcome`.
    async fn answered(&self, id: ReminderId, outcome: Value) {
        self.send(&event("call_answered", id, json!({"attempt": 1})))
            .await;
        self.send(&event(
            "call_completed",
            id,
            json!({"attempt": 1, "outcome": outcome}),
        ))
        .await;
    }

    /// A call that rang out: `result` is an unreached one.
    async fn unreached(&self, id: ReminderId, result: &str) {
        self.send(&event(
            "call_completed",
            id,
            json!({"attempt": 1, "outcome": {"result": result}}),
        ))
        .await;
    }

    async fn pay(&self, id: ReminderId, amount: i64) {
        let resp = self
            .app
            .api(Method::POST, &format!("/api/reminders/{id}/payments"))
            .json(&json!({"amount_minor": amount}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
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
}

/// The `data-value` of a figure.
fn figure(html: &str, name: &str) -> String {
    let marker = format!("data-figure=\"{name}\" data-value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no figure {name}"))
        + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// The text of a figure's `<span class="value">`.
fn shown(html: &str, name: &str) -> String {
    let at = html.find(&format!("data-figure=\"{name}\"")).unwrap();
    let marker = "<span class=\"value\">";
    let from = at + html[at..].find(marker).unwrap() + marker.len();
    html[from..from + html[from..].find("</span> <span class=\"label\"").unwrap()].to_owned()
}

/// The two charts' markup: attempts, then promises.
fn charts(html: &str) -> (&str, &str) {
    let a = html
        .find("id=\"attempts-chart\"")
        .expect("the attempts chart");
    let p = html
        .find("id=\"promises-chart\"")
        .expect("the promises chart");
    let end = p + html[p..].find("</svg>").unwrap();
    (&html[a..p], &html[p..end])
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

async fn seeded(backend: Backend) {
    let Some(mut rig) = Rig::start(backend).await else {
        return;
    };
    // Day A: six calls.
    let kept = rig.called(json!({"currency": "EUR"})).await;
    rig.answered(
        kept,
        json!({"result": "payment_promised", "promised_amount_minor": 5000, "promised_date": "2026-11-25"}),
    )
    .await;
    let broken = rig.called(json!({})).await;
    rig.answered(
        broken,
        json!({"result": "payment_promised", "promised_date": "2026-11-25"}),
    )
    .await;
    let no_answer = rig.called(json!({})).await;
    rig.unreached(no_answer, "no_answer").await;
    let wrong = rig.called(json!({})).await;
    rig.answered(wrong, json!({"result": "wrong_number"})).await;
    let opted_out = rig.called(json!({})).await;
    rig.answered(opted_out, json!({"result": "opted_out"}))
        .await;
    let refused = rig.called(json!({})).await;
    rig.answered(refused, json!({"result": "refused"})).await;
    rig.app.clock.advance(Duration::hours(1));
    rig.pay(kept, 5000).await; // keeps the promise: paid after a call
    let r = rig.app.reminder(kept).await;
    assert_eq!(r["promise"]["status"], "kept", "{r}");

    // Day B: two more calls, a payment after a call and one with none.
    rig.app.clock.set(t(DAY_B));
    let busy = rig.called(json!({})).await;
    rig.unreached(busy, "busy").await;
    let _live = rig.called(json!({})).await; // dispatched, nothing heard yet
    rig.pay(refused, 2000).await;
    rig.phone += 1;
    let resp = rig
        .app
        .create(reminder_body(
            json!({"phone_number": format!("+1212555{:04}", rig.phone)}),
        ))
        .await;
    let never_called: Value = resp.json().await.unwrap();
    let never_called = ReminderId::parse(never_called["id"].as_str().unwrap()).unwrap();
    rig.pay(never_called, 12345).await; // settles it: never called, so not counted

    // The tick after 2026-11-25 + 3 days breaks the unpaid promise.
    rig.app.clock.set(t("2026-11-29T05:00:00Z"));
    let report = rig.tick().await;
    assert_eq!(report["promises_broken"], 1, "{report}");
    assert_eq!(
        rig.app.reminder(broken).await["promise"]["status"],
        "broken"
    );

    rig.app.clock.set(t(READ_AT));
    rig.sign_in().await;
    for (path, days) in [
        ("/glance?period=7", 7),
        ("/glance", 30),
        ("/glance?period=30", 30),
        ("/glance?period=90", 90),
    ] {
        let (status, html) = rig.page(path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.contains(&format!("<h1>At a glance: the last {days} days</h1>")));
        assert!(html.contains(&format!("data-period=\"{days}\" aria-current=\"page\"")));
        assert_eq!(figure(&html, "attempts"), "8", "{path}");
        assert_eq!(figure(&html, "right_party"), "4", "{path}");
        assert_eq!(shown(&html, "right_party"), "50.0 %");
        assert_eq!(figure(&html, "promises"), "2");
        assert_eq!(
            shown(&html, "promises"),
            "50.0 %",
            "2 promises / 4 contacts"
        );
        assert!(html.contains(r#"data-currency="USD" data-minor="12345">USD 123.45</span>"#));
        assert!(html.contains(r#"data-currency="EUR" data-minor="5000">EUR 50.00</span>"#));
        assert_eq!(figure(&html, "kept"), "1");
        assert_eq!(figure(&html, "broken"), "1");
        assert_eq!(figure(&html, "open"), "0");
        assert_eq!(figure(&html, "paid_after_call"), "2", "{path}");
        let paid = shown(&html, "paid_after_call");
        assert!(
            paid.contains(r#"data-currency="EUR" data-minor="5000""#),
            "{paid}"
        );
        assert!(
            paid.contains(r#"data-currency="USD" data-minor="2000""#),
            "{paid}"
        );
        assert_eq!(figure(&html, "opt_outs"), "1");

        let (attempts, promises) = charts(&html);
        assert!(attempts.contains("role=\"img\"") && attempts.contains("<title>"));
        assert!(attempts.contains(&format!(
            "aria-label=\"Attempts per day by outcome, last {days} days\""
        )));
        assert_eq!(count(attempts, "class=\"bar\" data-day="), days, "{path}");
        assert!(
            attempts.contains("data-day=\"2026-11-30\""),
            "today is the last bar"
        );
        assert!(attempts.contains("data-day=\"2026-11-24\" data-total=\"6\""));
        assert!(attempts.contains("data-day=\"2026-11-26\" data-total=\"2\""));
        // Day A: promised 2, other conversations 2, wrong number 1, unreached 1;
        // day B: unreached 1, no outcome 1.
        assert_eq!(count(attempts, "class=\"segment\""), 6);
        assert_eq!(count(attempts, "data-key=\"promised\" data-count=\"2\""), 1);
        assert_eq!(
            count(attempts, "data-key=\"conversation\" data-count=\"2\""),
            1
        );
        assert_eq!(
            count(attempts, "data-key=\"unreached\" data-count=\"1\""),
            2
        );
        assert_eq!(
            count(attempts, "class=\"segment\" data-key=\"no_outcome\""),
            1
        );
        assert_eq!(count(promises, "class=\"segment\""), 2);
        assert!(promises.contains("data-kept=\"1\" data-broken=\"1\" data-open=\"0\""));
        assert!(html.contains("id=\"attempts-legend\"") && html.contains("id=\"promises-legend\""));
    }
    // The weeks (Monday first) the 7 days touch: from Tue 11-24, and 11-30.
    let (_, html) = rig.page("/glance?period=7").await;
    let (_, promises) = charts(&html);
    assert_eq!(count(promises, "class=\"bar\" data-week="), 2);
    assert!(promises.contains("data-week=\"2026-11-24\""));
    assert!(promises.contains("data-week=\"2026-11-30\""));

    // A week later day A has left the 7 days: its calls, promises and
    // opt-out with it; day B's payment after a call stays.
    rig.app.clock.set(t("2026-12-01T15:00:00Z"));
    rig.sign_in().await;
    let (_, html) = rig.page("/glance?period=7").await;
    assert_eq!(figure(&html, "attempts"), "2");
    assert_eq!(figure(&html, "right_party"), "0");
    assert_eq!(shown(&html, "right_party"), "0.0 %");
    assert_eq!(shown(&html, "promises"), "—", "no contacts: no rate");
    assert_eq!(shown(&html, "amount_promised"), "—");
    assert_eq!(figure(&html, "opt_outs"), "0");
    assert_eq!(figure(&html, "paid_after_call"), "1");
    let (_, html) = rig.page("/glance?period=30").await;
    assert_eq!(figure(&html, "attempts"), "8");

    // A period the page does not offer.
    for bad in ["14", "week", "-7"] {
        let (status, html) = rig.page(&format!("/glance?period={bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(html.contains("Unknown period"), "{html}");
    }
    rig.app.stop().await;
}

both_backends!(the_figures_and_charts_of_a_seeded_set, seeded);

/// Signed out, the page is behind the sign-in like every other.
#[tokio::test]
async fn signed_out_goes_to_the_sign_in() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &[("DASHBOARD_PASSWORD", PASSWORD)]).await
    else {
        return;
    };
    let resp = client()
        .get(app.url("/glance?period=7"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        "/login?next=%2Fglance%3Fperiod%3D7"
    );
    app.stop().await;
}
