//! The dashboard's operator actions through HTTP, on both databases: cancel,
//! call at the next lawful moment, suppress the number — each a form with the
//! session's anti-forgery token, refused without it, recorded in the
//! reminder's history with the name the operator signed in with. Call-now is
//! still held by the calling rules: the service runs with its real LiveKit
//! dialer against the fake LiveKit, ticks through the cron route, and what was
//! dialled is what the fake recorded.

mod common;

use common::fake_livekit::FakeLiveKit;
use common::{reminder_body, t, Backend, TestApp};
use duecall::domain::ReminderId;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "dashboard-password-0123";
const NAME: &str = "Ada Operator";
const CRON: &str = "cron-test-secret-0123456789abcdef";
/// Tuesday 2026-11-24 15:00 UTC: 10:00 in New York, inside the default window.
const INSIDE: &str = "2026-11-24T15:00:00Z";
/// Wednesday 03:00 UTC: Tuesday 22:00 in New York, after the window.
const OUTSIDE: &str = "2026-11-25T03:00:00Z";
const FAR: &str = "2099-01-01T12:00:00Z";

struct Rig {
    app: TestApp,
    lk: FakeLiveKit,
    cookie: String,
    token: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// The `csrf_token` hidden field's value in a page.
fn hidden_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).expect("a csrf_token field") + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

impl Rig {
    /// The service (dashboard on, a LiveKit dialer, ticks by cron), signed in as `NAME`.
    async fn start(backend: Backend) -> Option<Self> {
        Self::start_at(backend, INSIDE).await
    }

    /// The same, signed in with the clock at `at`.
    async fn start_at(backend: Backend, at: &str) -> Option<Self> {
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
        app.clock.set(t(at));
        let resp = client()
            .post(app.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("name", &format!("  {NAME} ")),
                ("password", PASSWORD),
                ("next", "/"),
            ]))
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
        let mut rig = Self {
            app,
            lk,
            cookie,
            token: String::new(),
        };
        let (status, html) = rig.page("/").await;
        assert_eq!(status, 200);
        assert!(
            html.contains(&format!("Signed in as <strong>{NAME}</strong>")),
            "the header names who is signed in (trimmed)"
        );
        rig.token = hidden_token(&html);
        Some(rig)
    }

    async fn page(&self, path: &str) -> (u16, String) {
        let resp = client()
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// POST an action's form with `body`; the status, `Location` and page.
    async fn post(&self, id: ReminderId, action: &str, body: String) -> (u16, String, String) {
        let resp = client()
            .post(self.app.url(&format!("/reminders/{id}/{action}")))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, resp.text().await.unwrap())
    }

    /// The action sent as the page sends it: with the session's token.
    async fn act(&self, id: ReminderId, action: &str) -> (u16, String, String) {
        self.post(id, action, form(&[("csrf_token", &self.token)]))
            .await
    }

    async fn create(&self, overrides: Value) -> ReminderId {
        let resp = self.app.create(reminder_body(overrides)).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        ReminderId::parse(body["id"].as_str().unwrap()).unwrap()
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

    async fn suppression(&self, phone: &str) -> Option<Value> {
        let path = format!("/api/suppressions/%2B{}", phone.trim_start_matches('+'));
        let resp = self
            .app
            .api(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => Some(resp.json().await.unwrap()),
            404 => None,
            other => panic!("GET {path}: {other}"),
        }
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

/// Whether the page offers the action's form (not its history entry).
fn offers(html: &str, action: &str) -> bool {
    html.contains(&format!("data-action=\"{action}\"><input"))
}

/// The parts of a reminder an action may change.
fn state_of(r: &Value) -> Value {
    json!([
        r["status"],
        r["next_attempt_at"],
        r["skip_reason"],
        r["deferred_by"],
        r["actions"]
    ])
}

async fn each_action_with_its_token_works_and_is_recorded_with_the_name(backend: Backend) {
    let Some(rig) = Rig::start(backend).await else {
        return;
    };
    let cancelled = rig.create(json!({"scheduled_for": FAR})).await;
    let brought = rig
        .create(json!({"scheduled_for": FAR, "phone_number": "+12125550101"}))
        .await;
    let suppressed = rig
        .create(json!({"scheduled_for": FAR, "phone_number": "+12125550102"}))
        .await;

    // The page offers what applies to a pending reminder.
    let (_, html) = rig.page(&format!("/reminders/{cancelled}")).await;
    for action in ["call_now", "cancel", "suppress"] {
        assert!(offers(&html, action), "{action}");
    }
    assert!(html.contains("id=\"no-history\""));

    // Cancel: 303 back to the page, which says so once.
    let (status, location, _) = rig.act(cancelled, "cancel").await;
    assert_eq!(
        (status, location.as_str()),
        (303, &*format!("/reminders/{cancelled}"))
    );
    let r = rig.app.reminder(cancelled).await;
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["skip_reason"], "cancelled_by_operator");
    assert_eq!(r["actions"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["actions"][0]["action"], "cancel");
    assert_eq!(r["actions"][0]["actor"], NAME);
    assert_eq!(r["actions"][0]["at"], "2026-11-24T15:00:00Z");
    assert_eq!(r["actions"][0]["detail"], "from pending");
    let (_, html) = rig.page(&format!("/reminders/{cancelled}")).await;
    assert!(
        html.contains("id=\"flash\""),
        "the message after the redirect"
    );
    assert!(html.contains("<li data-action=\"cancel\">"));
    assert!(html.contains(&format!("<strong data-field=\"actor\">{NAME}</strong>")));
    assert!(!offers(&html, "call_now"), "nothing left to call");
    let (_, html) = rig.page(&format!("/reminders/{cancelled}")).await;
    assert!(!html.contains("id=\"flash\""), "shown once");
    // Cancelling it again changes nothing and records nothing.
    assert_eq!(rig.act(cancelled, "cancel").await.0, 303);
    assert_eq!(
        rig.app.reminder(cancelled).await["actions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Call now: due now, deferred_by cleared, recorded.
    let (status, _, _) = rig.act(brought, "call-now").await;
    assert_eq!(status, 303);
    let r = rig.app.reminder(brought).await;
    assert_eq!(r["status"], "pending");
    assert_eq!(r["next_attempt_at"], "2026-11-24T15:00:00Z");
    assert_eq!(r["deferred_by"], Value::Null);
    assert_eq!(r["actions"][0]["action"], "call_now");
    assert_eq!(r["actions"][0]["actor"], NAME);
    // Inside the window, the next tick dials it.
    let report = rig.tick().await;
    assert_eq!(rig.lk.rooms().len(), 1, "{report}");
    assert_eq!(rig.app.reminder(brought).await["attempt_count"], 1);

    // Suppress: the number is on the list (reason operator + name), recorded;
    // the reminder is cancelled (suppressed) by its claim.
    let (status, _, _) = rig.act(suppressed, "suppress").await;
    assert_eq!(status, 303);
    let entry = rig.suppression("+12125550102").await.expect("on the list");
    assert_eq!(entry["reason"], format!("operator: {NAME}"));
    let r = rig.app.reminder(suppressed).await;
    assert_eq!(r["actions"][0]["action"], "suppress");
    assert_eq!(r["actions"][0]["actor"], NAME);
    let (_, html) = rig.page(&format!("/reminders/{suppressed}")).await;
    assert!(!offers(&html, "suppress"), "on the list already");
    // Suppressing again is refused (409) and records nothing.
    let (status, _, html) = rig.act(suppressed, "suppress").await;
    assert_eq!(status, 409);
    assert!(html.contains("id=\"refused\""), "{html}");
    assert_eq!(
        rig.app.reminder(suppressed).await["actions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Call now, then the tick: cancelled as suppressed, never dialled.
    assert_eq!(rig.act(suppressed, "call-now").await.0, 303);
    rig.tick().await;
    let r = rig.app.reminder(suppressed).await;
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["skip_reason"], "suppressed");
    assert_eq!(rig.lk.rooms().len(), 1, "only the first one was dialled");
    rig.stop().await;
}
both_backends!(
    each_action_with_its_token_works_and_is_recorded_with_the_name,
    each_action_with_its_token_works_and_is_recorded_with_the_name
);

async fn an_action_without_the_token_is_refused_and_changes_nothing(backend: Backend) {
    let Some(rig) = Rig::start(backend).await else {
        return;
    };
    let id = rig.create(json!({"scheduled_for": FAR})).await;
    let before = state_of(&rig.app.reminder(id).await);
    let other_session_token = {
        // A token of another session (signed in by someone else) is no token here.
        let resp = client()
            .post(rig.app.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("name", "Mallory"), ("password", PASSWORD)]))
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let html = client()
            .get(rig.app.url("/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        hidden_token(&html)
    };
    assert_ne!(other_session_token, rig.token);
    let truncated = &rig.token[..rig.token.len() - 1];
    for action in ["cancel", "call-now", "suppress"] {
        for body in [
            String::new(),
            form(&[("csrf_token", "")]),
            form(&[("csrf_token", "not-the-token")]),
            form(&[("csrf_token", truncated)]),
            form(&[("csrf_token", &other_session_token)]),
            form(&[("token", &rig.token)]),
        ] {
            let (status, _, html) = rig.post(id, action, body.clone()).await;
            assert_eq!(status, 403, "{action} with {body:?}");
            assert!(html.contains("security token"), "{html}");
            assert!(html.contains("Nothing was changed"));
        }
    }
    // The right token from another site is refused too.
    let resp = client()
        .post(rig.app.url(&format!("/reminders/{id}/cancel")))
        .header("cookie", &rig.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(form(&[("csrf_token", &rig.token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(state_of(&rig.app.reminder(id).await), before);
    assert!(rig.suppression("+12125550100").await.is_none());
    // Without a session, an action is a sign-in that comes back to the page.
    let resp = client()
        .post(rig.app.url(&format!("/reminders/{id}/cancel")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf_token", &rig.token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let expected = format!(
        "/login?{}",
        serde_urlencoded::to_string([("next", format!("/reminders/{id}"))]).unwrap()
    );
    assert_eq!(resp.headers()["location"], expected.as_str());
    assert_eq!(state_of(&rig.app.reminder(id).await), before);
    // And then, with it, the action works.
    assert_eq!(rig.act(id, "cancel").await.0, 303);
    assert_eq!(rig.app.reminder(id).await["status"], "cancelled");
    rig.stop().await;
}
both_backends!(
    an_action_without_the_token_is_refused_and_changes_nothing,
    an_action_without_the_token_is_refused_and_changes_nothing
);

async fn call_now_and_cancel_are_refused_where_they_do_not_apply(backend: Backend) {
    let Some(rig) = Rig::start(backend).await else {
        return;
    };
    // A completed reminder: neither is offered, and both are refused (409) on the page.
    let done = rig
        .app
        .live_reminder(json!({"external_id": "done-1"}))
        .await;
    let resp = rig
        .app
        .send_event(&common::msg_id(), &common::completed(done, "paid"))
        .await;
    assert_eq!(resp.status(), 200);
    let before = state_of(&rig.app.reminder(done).await);
    let (_, html) = rig.page(&format!("/reminders/{done}")).await;
    assert!(!offers(&html, "call_now"));
    assert!(!offers(&html, "cancel"));
    for action in ["call-now", "cancel"] {
        let (status, _, html) = rig.act(done, action).await;
        assert_eq!(status, 409, "{action}");
        assert!(html.contains("id=\"refused\""), "{html}");
        assert!(html.contains("completed"), "says why");
    }
    assert_eq!(state_of(&rig.app.reminder(done).await), before);
    // A live call: call-now refused.
    let live = rig
        .app
        .live_reminder(json!({"external_id": "live-1"}))
        .await;
    let (status, _, html) = rig.act(live, "call-now").await;
    assert_eq!(status, 409);
    assert!(html.contains("a call is live"), "{html}");
    assert_eq!(rig.app.reminder(live).await["actions"], json!([]));
    // An unknown reminder is a 404, with the token or without.
    let (status, _, _) = rig.act(ReminderId::new(), "call-now").await;
    assert_eq!(status, 404);
    rig.stop().await;
}
both_backends!(
    call_now_and_cancel_are_refused_where_they_do_not_apply,
    call_now_and_cancel_are_refused_where_they_do_not_apply
);

async fn call_now_is_still_held_by_the_calling_window(backend: Backend) {
    // After the window has closed in New York, the operator asks for a call now.
    let Some(rig) = Rig::start_at(backend, OUTSIDE).await else {
        return;
    };
    let id = rig.create(json!({"scheduled_for": FAR})).await;
    assert_eq!(rig.act(id, "call-now").await.0, 303);
    let r = rig.app.reminder(id).await;
    assert_eq!(r["next_attempt_at"], "2026-11-25T03:00:00Z");
    // The next tick defers it to the window's opening (08:00 New York), and dials nobody.
    rig.tick().await;
    let r = rig.app.reminder(id).await;
    assert_eq!(r["status"], "pending", "{r}");
    assert_eq!(r["attempt_count"], 0);
    assert_eq!(r["deferred_by"], "window");
    assert_eq!(r["next_attempt_at"], "2026-11-25T13:00:00Z");
    assert!(rig.lk.rooms().is_empty(), "nobody was dialled");
    // The page says what holds it, and still offers to call now (a deferral
    // is not a refusal); asking again is deferred again, never dialled.
    let (_, html) = rig.page(&format!("/reminders/{id}")).await;
    assert!(html.contains("the calling window"));
    assert!(offers(&html, "call_now"));
    assert_eq!(rig.act(id, "call-now").await.0, 303);
    rig.tick().await;
    assert!(rig.lk.rooms().is_empty());
    assert_eq!(rig.app.reminder(id).await["deferred_by"], "window");
    // At the window's opening it is dialled.
    rig.app.clock.set(t("2026-11-25T13:00:00Z"));
    rig.tick().await;
    assert_eq!(rig.lk.rooms().len(), 1);
    let actions = rig.app.reminder(id).await["actions"].clone();
    assert_eq!(actions.as_array().unwrap().len(), 2, "{actions}");
    rig.stop().await;
}
both_backends!(
    call_now_is_still_held_by_the_calling_window,
    call_now_is_still_held_by_the_calling_window
);

#[tokio::test]
async fn signing_in_wants_a_name() {
    let Some(rig) = Rig::start(Backend::Sqlite).await else {
        return;
    };
    for name in ["", "   ", "Ada\u{7}", &"x".repeat(81)] {
        let resp = client()
            .post(rig.app.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("name", name), ("password", PASSWORD)]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{name:?}");
        assert!(resp.headers().get("set-cookie").is_none());
        assert!(resp.text().await.unwrap().contains("Your name"));
    }
    let html = client()
        .get(rig.app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"name\""), "{html}");
    rig.stop().await;
}
