//! The dashboard through HTTP: the sign-in wall, the counts, the list and its
//! filter, a reminder's timeline, and that nothing personal leaks without a session.
//! (The browser tests in `browser/` look at the same pages in Chromium.)

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{completed, event, msg_id, serve_binary, Backend, TestApp};
use duecall::clock::Clock;
use duecall::domain::ReminderId;
use serde_json::json;

const PASSWORD: &str = "dashboard-password-0123";
/// The name the tests sign in with (the actor of their actions).
const NAME: &str = "Ada Operator";

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, &[("DASHBOARD_PASSWORD", PASSWORD)])
        .await
        .expect("SQLite is always there")
}

/// POST a sign-in form body to `/login`.
async fn post_login(app: &TestApp, body: String) -> reqwest::Response {
    client()
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// Sign in; the session cookie's `name=value`.
async fn sign_in(app: &TestApp) -> String {
    let resp = post_login(
        app,
        form(&[("name", NAME), ("password", PASSWORD), ("next", "/")]),
    )
    .await;
    assert_eq!(resp.status(), 303);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let resp = client()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The session's anti-forgery token, as its pages carry it in every form.
async fn csrf_of(app: &TestApp, cookie: &str) -> String {
    let (status, html) = page(app, cookie, "/").await;
    assert_eq!(status, 200, "signed in");
    hidden_token(&html)
}

/// The `csrf_token` hidden field's value in a page.
fn hidden_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).expect("a csrf_token field") + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// The text of the first element with `marker` in its opening tag, up to the next `<`.
fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].trim()
}

fn count_of(html: &str, status: &str) -> u64 {
    let li = &html[html
        .find(&format!("<li data-status=\"{status}\""))
        .unwrap_or_else(|| panic!("no count for {status}"))..];
    text_after(li, "class=\"count\"").parse().unwrap()
}

/// Four reminders: one completed with a promise, one failed, one cancelled, one pending.
async fn seed(app: &TestApp) -> (ReminderId, ReminderId) {
    let promised = app
        .live_reminder(
            json!({"customer_name": "Grace Hopper", "phone_number": "+14155550111",
                               "amount_due_minor": 98765, "external_id": "inv-77"}),
        )
        .await;
    let body = event(
        "call_completed",
        promised,
        json!({"outcome": {"result": "payment_promised", "promised_amount_minor": 50000,
                           "promised_date": "2026-12-05", "summary": "Will pay half on Friday."}}),
    );
    assert_eq!(app.send_event(&msg_id(), &body).await.status(), 200);

    let failed = app
        .live_reminder(
            json!({"customer_name": "Alan Turing", "phone_number": "+14155550112",
                               "max_attempts": 1}),
        )
        .await;
    let body = event(
        "call_failed",
        failed,
        json!({"failure": {"reason": "trunk_error", "sip_status": 503, "retryable": true}}),
    );
    assert_eq!(app.send_event(&msg_id(), &body).await.status(), 200);

    let cancelled = app
        .create(common::reminder_body(
            json!({"customer_name": "Cancelled Person"}),
        ))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let resp = app
        .api(
            reqwest::Method::POST,
            &format!(
                "/api/reminders/{}/cancel",
                cancelled["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        app.create(common::reminder_body(
            json!({"customer_name": "Pending Person"})
        ))
        .await
        .status(),
        201
    );
    (promised, failed)
}

#[tokio::test]
async fn pages_are_behind_the_sign_in() {
    let app = spawn().await;
    let (promised, _) = seed(&app).await;
    for path in ["/", "/?status=completed", &format!("/reminders/{promised}")] {
        let resp = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let expected = format!(
            "/login?{}",
            serde_urlencoded::to_string([("next", path)]).unwrap()
        );
        assert_eq!(location, expected);
        let body = resp.text().await.unwrap();
        assert!(!body.contains("Grace") && !body.contains("+1415"), "{body}");
    }
    // A forged or foreign cookie is no session either.
    for cookie in [
        "duecall_session=v1.99999999999.AAAA",
        "duecall_session=",
        "other=1",
    ] {
        let (status, body) = page(&app, cookie, "/").await;
        assert_eq!(status, 303, "{cookie}");
        assert!(!body.contains("Grace"));
    }
    // The login page itself shows nothing but the form.
    let (status, body) = page(&app, "", "/login?next=%2F").await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"login\""));
    assert!(!body.contains("Grace") && !body.contains("+1415"));
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_a_right_one_goes_where_it_was_going() {
    let app = spawn().await;
    let resp = post_login(
        &app,
        form(&[
            ("name", NAME),
            ("password", "not-the-password"),
            ("next", "/"),
        ]),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("set-cookie").is_none());
    assert!(resp.text().await.unwrap().contains("Wrong password."));

    for (next, expected) in [
        ("/?status=failed", "/?status=failed"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
    ] {
        let resp = post_login(
            &app,
            form(&[("name", NAME), ("password", PASSWORD), ("next", next)]),
        )
        .await;
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], expected, "{next}");
    }

    // Signed in, the login page sends you on; signing out clears the cookie.
    let cookie = sign_in(&app).await;
    let (status, _) = page(&app, &cookie, "/login?next=%2F%3Fstatus%3Dpending").await;
    assert_eq!(status, 303);
    // Signing out wants the session's token: without it, or with another, 403.
    let token = csrf_of(&app, &cookie).await;
    for body in [String::new(), form(&[("csrf_token", "not-the-token")])] {
        let resp = client()
            .post(app.url("/logout"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        assert!(resp.text().await.unwrap().contains("security token"));
    }
    assert_eq!(page(&app, &cookie, "/").await.0, 200, "still signed in");
    let resp = client()
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf_token", &token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login");
    let cleared = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("duecall_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(page(&app, &cookie, "/").await.0, 303, "signed out");
    app.stop().await;
}

#[tokio::test]
async fn a_session_expires() {
    let app = spawn().await;
    let cookie = sign_in(&app).await;
    assert_eq!(page(&app, &cookie, "/").await.0, 200);
    app.clock.advance(chrono::Duration::seconds(
        duecall::http::session::LIFETIME_SECS,
    ));
    assert_eq!(page(&app, &cookie, "/").await.0, 303);
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_counts_lists_and_filters() {
    let app = spawn().await;
    let (promised, failed) = seed(&app).await;
    let cookie = sign_in(&app).await;
    let (status, html) = page(&app, &cookie, "/").await;
    assert_eq!(status, 200);
    for (s, n) in [
        ("pending", 1),
        ("in_progress", 0),
        ("processing", 0),
        ("completed", 1),
        ("failed", 1),
        ("cancelled", 1),
        ("all", 4),
    ] {
        assert_eq!(count_of(&html, s), n, "{s}");
    }
    assert!(html.contains("http-equiv=\"refresh\""));
    assert_eq!(html.matches("<tr data-id=").count(), 4);
    let row = &html[html.find(&format!("<tr data-id=\"{promised}\"")).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    for text in [
        "Grace Hopper",
        "inv-77",
        "+14155550111",
        "USD 987.65",
        "payment_promised",
        "data-status=\"completed\"",
    ] {
        assert!(row.contains(text), "{text} in {row}");
    }

    let (_, html) = page(&app, &cookie, "/?status=failed").await;
    assert_eq!(html.matches("<tr data-id=").count(), 1);
    assert!(html.contains(&format!("<tr data-id=\"{failed}\" data-status=\"failed\"")));
    assert!(html.contains("<option value=\"failed\" selected>"));
    // Counts stay whole under a filter.
    assert_eq!(count_of(&html, "all"), 4);

    // The search box: an external id, or a phone number as people type it.
    let (_, html) = page(&app, &cookie, "/?q=inv-77").await;
    assert_eq!(html.matches("<tr data-id=").count(), 1);
    assert!(html.contains(&format!("<tr data-id=\"{promised}\"")));
    let (_, html) = page(&app, &cookie, "/?q=%2B1%20(415)%20555-0112").await;
    assert_eq!(html.matches("<tr data-id=").count(), 1);
    assert!(html.contains(&format!("<tr data-id=\"{failed}\"")));
    assert!(
        html.contains("value=\"+14155550112\""),
        "the box shows what was searched"
    );
    let (_, html) = page(&app, &cookie, "/?q=inv-77&status=failed").await;
    assert!(html.contains("id=\"empty\""));

    let (status, html) = page(&app, &cookie, "/?status=bogus").await;
    assert_eq!(status, 400);
    assert!(html.contains("must be one of"));
    let (status, _) = page(&app, &cookie, "/?cursor=not-a-cursor").await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn the_list_pages_newest_first() {
    let app = spawn().await;
    for i in 0..53 {
        let body = common::reminder_body(json!({"customer_name": format!("Customer {i:02}")}));
        assert_eq!(app.create(body).await.status(), 201);
        app.clock.advance(chrono::Duration::seconds(1));
    }
    let cookie = sign_in(&app).await;
    let (_, first) = page(&app, &cookie, "/").await;
    assert_eq!(first.matches("<tr data-id=").count(), 50);
    assert!(first.contains("Customer 52") && !first.contains("Customer 02<"));
    assert!(!first.contains("id=\"first-page\""));
    let href = first
        .split("id=\"next-page\" href=\"")
        .nth(1)
        .expect("a next page")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let (status, second) = page(&app, &cookie, &href).await;
    assert_eq!(status, 200);
    assert_eq!(second.matches("<tr data-id=").count(), 3);
    for i in ["00", "01", "02"] {
        assert!(second.contains(&format!("Customer {i}<")), "{i}");
    }
    assert!(!second.contains("id=\"next-page\""));
    assert!(second.contains("id=\"first-page\""));
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_page_shows_its_attempt_timeline() {
    let app = spawn().await;
    // Two attempts: no answer, then a promise.
    let id = app
        .live_reminder(
            json!({"customer_name": "Retried Customer", "amount_due_minor": 1500,
                               "currency": "JPY"}),
        )
        .await;
    let no_answer = completed(id, "no_answer");
    assert_eq!(app.send_event(&msg_id(), &no_answer).await.status(), 200);
    app.clock.advance(chrono::Duration::hours(5));
    app.start_attempt(id).await;
    let body = event(
        "call_completed",
        id,
        json!({"outcome": {"result": "payment_promised", "promised_amount_minor": 1500,
                           "promised_date": "2026-12-01", "summary": "Pays <b>Monday</b>.",
                           "transcript": "agent: hello\ncustomer: hi"}}),
    );
    assert_eq!(app.send_event(&msg_id(), &body).await.status(), 200);

    let cookie = sign_in(&app).await;
    let (status, html) = page(&app, &cookie, &format!("/reminders/{id}")).await;
    assert_eq!(status, 200);
    assert!(text_after(&html, "<h1").starts_with("Retried Customer"));
    let field = |name: &str| text_after(&html, &format!("data-field=\"{name}\"")).to_owned();
    assert_eq!(field("status"), "completed");
    assert_eq!(field("outcome"), "payment_promised");
    assert_eq!(field("amount_due"), "JPY 1500");
    assert_eq!(field("promised_amount"), "JPY 1500");
    assert_eq!(field("promised_date"), "2026-12-01");
    assert_eq!(field("attempts"), "2 of 3");
    // What an agent sends is shown as text, never as markup.
    assert_eq!(field("summary"), "Pays &#60;b&#62;Monday&#60;/b&#62;.");
    assert!(!html.contains("<b>Monday"));

    let first = &html[html.find("<li data-attempt=\"1\"").expect("attempt 1")..];
    let second_at = first
        .find("<li data-attempt=\"2\"")
        .expect("attempt 2, after 1");
    let (first, second) = first.split_at(second_at);
    assert!(first.contains("data-status=\"completed\""));
    assert_eq!(
        text_after(first, "data-field=\"outcome\""),
        "no_answer",
        "the first attempt's own outcome"
    );
    assert_eq!(
        text_after(second, "data-field=\"outcome\""),
        "payment_promised"
    );
    assert_eq!(
        text_after(second, "data-field=\"dispatched_at\""),
        "2026-11-24 20:00:00 UTC"
    );
    assert_eq!(
        text_after(second, "data-field=\"answered_at\""),
        "—",
        "no call_answered was sent"
    );
    assert!(second.contains("customer: hi"));

    let (status, _) = page(&app, &cookie, &format!("/reminders/{}", ReminderId::new())).await;
    assert_eq!(status, 404);
    let (status, _) = page(&app, &cookie, "/reminders/not-an-id").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_attempt_shows_why() {
    let app = spawn().await;
    let (_, failed) = seed(&app).await;
    let cookie = sign_in(&app).await;
    let (_, html) = page(&app, &cookie, &format!("/reminders/{failed}")).await;
    let li = &html[html
        .find("<li data-attempt=\"1\" data-status=\"failed\"")
        .unwrap()..];
    assert_eq!(
        text_after(li, "data-field=\"failure\""),
        "trunk_error (SIP 503)"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_password_the_dashboard_is_off() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let resp = client().get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let (status, html) = page(&app, "", "/login").await;
    assert_eq!(status, 200);
    assert!(html.contains("DASHBOARD_PASSWORD"));
    assert!(!html.contains("id=\"login\""), "no form to fill in");
    let resp = post_login(&app, form(&[("name", NAME), ("password", "")])).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("set-cookie").is_none());
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_sign_in_is_refused() {
    let app = spawn().await;
    let body = format!("password={}", "x".repeat(100 * 1024));
    let resp = post_login(&app, body).await;
    assert_eq!(resp.status(), 413);
    assert!(resp.headers().get("set-cookie").is_none());
    // And a sign-in that is not a form at all.
    let resp = client()
        .post(app.url("/login"))
        .header("content-type", "application/json")
        .body(format!("{{\"password\": \"{PASSWORD}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert!(resp.headers().get("set-cookie").is_none());
    app.stop().await;
}

// --- Issue 12, items 12 to 14: the sign-in under attack -------------------------

/// A client whose connections come from `ip` (any 127.x.y.z is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    duecall::install_crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(app: &TestApp, ip: &str, password: &str) -> reqwest::Response {
    client_from(ip)
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("name", NAME),
            ("password", password),
            ("next", "/"),
        ]))
        .send()
        .await
        .unwrap()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_sign_in_has_a_brute_force_limit_per_client_address() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("DASHBOARD_PASSWORD", PASSWORD),
            ("DASHBOARD_SIGN_IN_LIMIT_PER_ADDRESS", "3"),
            ("DASHBOARD_SIGN_IN_LIMIT_TOTAL", "1000"),
        ],
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            login_from(&app, "127.0.0.2", "wrong-guess-1234")
                .await
                .status(),
            401
        );
    }
    // Over the limit even the right password is not looked at: a guesser
    // would otherwise learn from the answer.
    let resp = login_from(&app, "127.0.0.2", PASSWORD).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("set-cookie").is_none());
    let wait = retry_after(&resp);
    assert!((1..=20).contains(&wait), "Retry-After: {wait}");
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));
    // Another address signs in as usual.
    assert_eq!(login_from(&app, "127.0.0.3", PASSWORD).await.status(), 303);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("duecall_dashboard_sign_ins_total{result=\"rate_limited\"}"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_sign_in_has_a_brute_force_limit_overall() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("DASHBOARD_PASSWORD", PASSWORD),
            ("DASHBOARD_SIGN_IN_LIMIT_PER_ADDRESS", "100"),
            ("DASHBOARD_SIGN_IN_LIMIT_TOTAL", "4"),
        ],
    )
    .await
    .unwrap();
    for i in 0..4 {
        let ip = format!("127.0.1.{}", i + 1);
        assert_eq!(
            login_from(&app, &ip, "wrong-guess-1234").await.status(),
            401
        );
    }
    // A guesser with many addresses still gets no more than the total.
    let resp = login_from(&app, "127.0.1.100", PASSWORD).await;
    assert_eq!(resp.status(), 429);
    assert!(retry_after(&resp) >= 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_sign_in_logs_a_flood_in_a_few_lines_with_the_address() {
    let mut server = serve_binary(
        None,
        &[
            ("DASHBOARD_PASSWORD", PASSWORD),
            ("DASHBOARD_SIGN_IN_LIMIT_PER_ADDRESS", "10"),
            ("DASHBOARD_SIGN_IN_LOG_SECS", "1"),
        ],
    )
    .await;
    let client = client_from("127.0.0.7");
    let guesses = (0..60).map(|i| {
        client
            .post(format!("{}/login", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("name", NAME),
                ("password", &format!("guess-{i:04}-wrong")),
            ]))
            .send()
    });
    let answers = futures_join_all(guesses).await;
    let limited = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(
        answers.iter().filter(|s| **s == 401).count(),
        10,
        "{answers:?}"
    );
    assert_eq!(limited, 50, "{answers:?}");
    // The summary comes at the end of the interval.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.sigterm().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), server.child.wait()).await;
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("sign-in")).collect();
    // One line at once, then a summary a second (the guesses took a few).
    assert!(
        (2..=5).contains(&lines.len()),
        "60 refusals, {} lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(lines[0].contains("127.0.0.7"), "{}", lines[0]);
    let count = |line: &str, field: &str| -> u64 {
        line.find(&format!("{field}=")).map_or(0, |at| {
            let at = at + field.len() + 1;
            line[at..].split(' ').next().unwrap().parse().unwrap()
        })
    };
    let summaries: Vec<&str> = lines[1..].to_vec();
    assert!(
        summaries.iter().all(|l| l.contains("127.0.0.7 (")),
        "{summaries:?}"
    );
    // The first refusal had its own line; the other 59 are summed up.
    let summed: u64 = summaries
        .iter()
        .map(|l| count(l, "wrong_password") + count(l, "rate_limited"))
        .sum();
    assert_eq!(summed, 59, "{summaries:?}");
    assert!(!log.contains("guess-"), "a guess was logged");
}

/// Wait for every request; their status codes (0 for a request that failed).
async fn futures_join_all<F>(requests: impl Iterator<Item = F>) -> Vec<u16>
where
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
{
    let tasks: Vec<_> = requests.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(match t.await.unwrap() {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        });
    }
    out
}

async fn spawn_on(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let mut vars = vec![("DASHBOARD_PASSWORD", PASSWORD)];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

/// Another instance of the service on `app`'s database (and clock).
async fn another_instance(app: &TestApp) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = common::test_config(
        &app.db.url,
        &[("BIND_ADDR", &addr), ("DASHBOARD_PASSWORD", PASSWORD)],
    );
    let clock: Arc<dyn duecall::clock::Clock> = Arc::new(app.clock.clone());
    let state = duecall::build_state(config, clock).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        duecall::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (format!("http://{addr}"), tx)
}

async fn page_at(base: &str, cookie: &str, path: &str) -> u16 {
    client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn signing_out_ends_the_session_everywhere_it_was_copied(backend: Backend) {
    let Some(app) = spawn_on(backend, &[]).await else {
        return;
    };
    let (other, stop_other) = another_instance(&app).await;
    let cookie = sign_in(&app).await;
    // The session is in the shared database: every instance knows it.
    assert_eq!(page(&app, &cookie, "/").await.0, 200);
    assert_eq!(page_at(&other, &cookie, "/").await, 200);
    // A copy of the cookie, kept somewhere else.
    let copy = cookie.clone();
    let token = csrf_of(&app, &cookie).await;
    let resp = client()
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf_token", &token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    for base in [app.base.as_str(), other.as_str()] {
        for path in ["/", "/login"] {
            let status = page_at(base, &copy, path).await;
            let expected = if path == "/" { 303 } else { 200 };
            assert_eq!(status, expected, "{base}{path} after signing out");
        }
    }
    // Signing in again makes a new session; the old cookie stays dead.
    let again = sign_in(&app).await;
    assert_ne!(again, copy);
    assert_eq!(page_at(&other, &again, "/").await, 200);
    assert_eq!(page_at(&other, &copy, "/").await, 303);
    let _ = stop_other.send(());
    app.stop().await;
}
both_backends!(
    signing_out_ends_the_session_everywhere_it_was_copied,
    signing_out_ends_the_session_everywhere_it_was_copied
);

#[tokio::test]
async fn a_session_cookie_is_no_oracle_for_the_password() {
    // Two services with one password but their own databases: a cookie is a
    // random session id signed by a random key, not something of the password.
    let a = spawn().await;
    let b = spawn().await;
    let cookie = sign_in(&a).await;
    assert_eq!(page(&a, &cookie, "/").await.0, 200);
    assert_eq!(
        page(&b, &cookie, "/").await.0,
        303,
        "another service's key opened it"
    );
    // The old format (`v1.<expires>.<HMAC keyed by a hash of the password>`) is gone.
    let value = cookie.split_once('=').unwrap().1;
    assert!(!value.starts_with("v1."), "{value}");
    // Sessions forged in the old format, keyed by the password itself, open nothing.
    let expires = duecall::clock::Clock::now(&a.clock).timestamp() + 3600;
    let forged = old_style_cookie(PASSWORD, expires);
    assert_eq!(
        page(&a, &format!("duecall_session={forged}"), "/").await.0,
        303
    );
    a.stop().await;
    b.stop().await;
}

/// A session cookie as the dashboard used to sign them: anyone who knew (or
/// guessed) the password could make one, and each cookie tested a guess offline.
fn old_style_cookie(password: &str, expires: i64) -> String {
    use base64::Engine;
    use hmac::Mac;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"duecall dashboard session v1\0");
    h.update(password.as_bytes());
    let key: [u8; 32] = h.finalize().into();
    let payload = format!("v1.{expires}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(payload.as_bytes());
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{payload}.{tag}")
}

#[tokio::test]
async fn the_session_cookie_is_secure_and_host_prefixed_off_loopback() {
    // Served over plain loopback HTTP (these tests): no Secure, the plain name.
    let local = spawn().await;
    let resp = post_login(&local, form(&[("name", NAME), ("password", PASSWORD)])).await;
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("duecall_session="), "{set}");
    assert!(!set.to_ascii_lowercase().contains("secure"), "{set}");
    local.stop().await;
    // Anywhere else (DASHBOARD_COOKIE_SECURE's default off loopback; set here,
    // as the test server is on loopback): Secure, __Host-, Path=/, no Domain.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("DASHBOARD_PASSWORD", PASSWORD),
            ("DASHBOARD_COOKIE_SECURE", "true"),
        ],
    )
    .await
    .unwrap();
    let resp = post_login(&app, form(&[("name", NAME), ("password", PASSWORD)])).await;
    assert_eq!(resp.status(), 303);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-duecall_session="), "{set}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    assert_eq!(page(&app, &cookie, "/").await.0, 200);
    // The unprefixed name is not read any more.
    let unprefixed = cookie.replacen("__Host-", "", 1);
    assert_eq!(page(&app, &unprefixed, "/").await.0, 303);
    app.stop().await;
}

#[tokio::test]
async fn cross_site_sign_in_and_sign_out_are_refused() {
    let app = spawn().await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let login = |headers: Vec<(&'static str, String)>| {
        let mut req = client()
            .post(app.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("name", NAME),
                ("password", PASSWORD),
                ("next", "/"),
            ]));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    for headers in [
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
        vec![("origin", "http://evil.example".to_owned())],
        vec![("origin", "null".to_owned())],
    ] {
        let resp = login(headers.clone()).await.unwrap();
        assert_eq!(resp.status(), 403, "{headers:?}");
        assert!(resp.headers().get("set-cookie").is_none(), "{headers:?}");
    }
    // From the dashboard's own page, as a browser sends it.
    let resp = login(vec![
        ("sec-fetch-site", "same-origin".to_owned()),
        ("origin", format!("http://{host}")),
    ])
    .await
    .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = sign_in(&app).await;
    let token = csrf_of(&app, &cookie).await;
    // Another site cannot sign the operator out.
    let resp = client()
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf_token", &token)]))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(page(&app, &cookie, "/").await.0, 200, "still signed in");
    let resp = client()
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf_token", &token)]))
        .header("origin", format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(page(&app, &cookie, "/").await.0, 303);
    app.stop().await;
}

#[tokio::test]
async fn a_waiting_reminder_shows_its_calling_zones_its_debt_and_the_rule_that_holds_it() {
    let app = spawn().await;
    // 15:00 UTC on a Tuesday: 10:00 in New York, 07:00 in San Francisco.
    let resp = app
        .create(common::reminder_body(json!({
            "customer_name": "West Coast", "phone_number": "+14155550123",
            "external_id": "INV-SF-1", "region": "US-CA"
        })))
        .await;
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.unwrap();
    let id = ReminderId::parse(created["id"].as_str().unwrap()).unwrap();
    let now = app.clock.now();
    let report = app
        .state
        .store
        .claim(&[id], now, 10, &common::default_rules())
        .await
        .unwrap();
    assert!(report.claimed.is_empty(), "07:00 in San Francisco");

    let cookie = sign_in(&app).await;
    let (status, html) = page(&app, &cookie, &format!("/reminders/{id}")).await;
    assert_eq!(status, 200);
    let field = |name: &str| text_after(&html, &format!("data-field=\"{name}\"")).to_owned();
    assert_eq!(field("status"), "pending");
    assert_eq!(field("timezone"), "none given");
    assert_eq!(field("calling_zones"), "America/Los_Angeles");
    assert_eq!(field("debt_ref"), "INV-SF-1", "the external id by default");
    assert_eq!(field("region"), "US-CA");
    assert!(
        field("next_attempt_at").starts_with("2026-11-24 16:00:00 UTC (Tue 08:00 PST"),
        "08:00 in San Francisco: {}",
        field("next_attempt_at")
    );
    assert!(
        field("waiting").starts_with("the calling window"),
        "{}",
        field("waiting")
    );
    // Neither page warns about rules at their defaults.
    assert!(!html.contains("looser-than-law"));
    let (_, home) = page(&app, &cookie, "/").await;
    assert!(!home.contains("looser-than-law"));

    // A reminder of the same debt, after a conversation: held by the quiet period.
    let second = app
        .live_reminder(json!({"external_id": "INV-NY-2", "debt_ref": "DEBT-7"}))
        .await;
    let talked = completed(second, "disputed");
    assert_eq!(app.send_event(&msg_id(), &talked).await.status(), 200);
    let third: serde_json::Value = app
        .create(common::reminder_body(
            json!({"external_id": "INV-NY-3", "debt_ref": "DEBT-7"}),
        ))
        .await
        .json()
        .await
        .unwrap();
    let third = ReminderId::parse(third["id"].as_str().unwrap()).unwrap();
    app.state
        .store
        .claim(&[third], now, 10, &common::default_rules())
        .await
        .unwrap();
    let (_, html) = page(&app, &cookie, &format!("/reminders/{third}")).await;
    let field = |name: &str| text_after(&html, &format!("data-field=\"{name}\"")).to_owned();
    assert_eq!(field("status"), "pending", "{}", app.reminder(third).await);
    assert_eq!(field("debt_ref"), "DEBT-7");
    assert_eq!(field("calling_zones"), "America/New_York");
    assert!(
        field("waiting").starts_with("the quiet period after a conversation"),
        "{}",
        field("waiting")
    );
    // Settled reminders wait for nothing.
    let (_, html) = page(&app, &cookie, &format!("/reminders/{second}")).await;
    assert_eq!(text_after(&html, "data-field=\"waiting\""), "—");
    // A customer who asked to be called back at 17:00 New York time.
    let asked = app.live_reminder(json!({"external_id": "INV-CB"})).await;
    let body = event(
        "call_completed",
        asked,
        json!({"outcome": {"result": "callback_requested", "callback_at": "2026-11-24T22:00:00Z"}}),
    );
    assert_eq!(app.send_event(&msg_id(), &body).await.status(), 200);
    let (_, html) = page(&app, &cookie, &format!("/reminders/{asked}")).await;
    let field = |name: &str| text_after(&html, &format!("data-field=\"{name}\"")).to_owned();
    assert_eq!(field("waiting"), "the callback the customer asked for");
    assert!(
        field("next_attempt_at").starts_with("2026-11-24 22:00:00 UTC (Tue 17:00 EST"),
        "{}",
        field("next_attempt_at")
    );
    app.stop().await;
}

#[tokio::test]
async fn rules_looser_than_the_law_are_shown_on_every_signed_in_page() {
    let app = spawn_on(
        Backend::Sqlite,
        &[("CALL_FREQUENCY", "10/7d"), ("ZONE_POLICY", "given")],
    )
    .await
    .expect("SQLite is always there");
    let id = app.live_reminder(json!({})).await;
    let cookie = sign_in(&app).await;
    for path in ["/".to_owned(), format!("/reminders/{id}")] {
        let (status, html) = page(&app, &cookie, &path).await;
        assert_eq!(status, 200);
        let banner = &html[html.find("id=\"looser-than-law\"").expect("the banner")..];
        let banner = &banner[..banner.find("</div>").unwrap()];
        assert!(
            banner.contains("data-variable=\"CALL_FREQUENCY\""),
            "{banner}"
        );
        assert!(banner.contains("CALL_FREQUENCY=10/7d"), "{banner}");
        assert!(banner.contains("12 CFR 1006.14(b)(2)(i)"), "{banner}");
        assert!(banner.contains("data-variable=\"ZONE_POLICY\""), "{banner}");
        assert!(!banner.contains("CALLING_WINDOW"), "{banner}");
    }
    // Not before signing in.
    let (status, html) = page(&app, "", "/login").await;
    assert_eq!(status, 200);
    assert!(!html.contains("looser-than-law"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_at_start_about_each_rule_looser_than_the_law() {
    let mut server = serve_binary(
        None,
        &[
            ("CALLING_WINDOW", "07:00-21:00"),
            ("QUIET_AFTER_CONVERSATION", "1d"),
        ],
    )
    .await;
    server.sigterm().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), server.child.wait()).await;
    let log = server.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("looser than the law"))
        .collect();
    assert_eq!(warned.len(), 2, "{log}");
    assert!(warned.iter().all(|l| l.contains("WARN")), "{warned:?}");
    assert!(
        warned[0].contains("CALLING_WINDOW=07:00-21:00") && warned[0].contains("1006.6(b)(1)(i)"),
        "{}",
        warned[0]
    );
    assert!(
        warned[1].contains("QUIET_AFTER_CONVERSATION=1d")
            && warned[1].contains("1006.14(b)(2)(ii)"),
        "{}",
        warned[1]
    );

    let mut quiet = serve_binary(None, &[]).await;
    quiet.sigterm().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), quiet.child.wait()).await;
    assert!(
        !quiet.log().contains("looser than the law"),
        "{}",
        quiet.log()
    );
}

#[tokio::test]
async fn a_reminder_page_lists_its_notifications_and_their_last_try() {
    let rx = common::receiver::Receiver::start().await;
    rx.set(common::receiver::Mode::Status(502));
    let vars = common::receiver::notify_vars(&rx.url);
    let mut extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.push(("DASHBOARD_PASSWORD", PASSWORD));
    let app = TestApp::spawn_with(Backend::Sqlite, &extra).await.unwrap();
    let cookie = sign_in(&app).await;
    let id = app.live_reminder(json!({})).await;
    let (_, html) = page(&app, &cookie, &format!("/reminders/{id}")).await;
    assert!(
        html.contains("id=\"no-notifications\""),
        "none before the call ends"
    );
    assert!(text_after(&html, "id=\"no-notifications\"").starts_with("None sent"));

    assert_eq!(
        app.send_event(&msg_id(), &completed(id, "refused"))
            .await
            .status(),
        200
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let html = loop {
        let (status, html) = page(&app, &cookie, &format!("/reminders/{id}")).await;
        assert_eq!(status, 200);
        if html.matches("HTTP 502").count() == 2 {
            break html;
        }
        assert!(std::time::Instant::now() < deadline, "{html}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let table = &html[html.find("id=\"notifications\"").expect("the table")..];
    let rows: Vec<&str> = table.split("<tr data-id=").skip(1).collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].contains("<code>attempt.ended</code>"));
    assert!(rows[1].contains("<code>reminder.completed</code>"));
    for row in &rows {
        assert_eq!(text_after(row, "data-field=\"status\""), "pending");
        assert_eq!(text_after(row, "data-field=\"tries\""), "1");
        let last = text_after(row, "data-field=\"last_try\"");
        assert!(
            last.starts_with("2026-11-24 15:00:00 UTC: HTTP 502 ("),
            "{last}"
        );
        assert_eq!(
            text_after(row, "data-field=\"next_try_at\""),
            "2026-11-24 15:00:05 UTC",
            "the first retry, 5 s after the try"
        );
    }
    app.stop().await;

    // Without NOTIFY_URL the page says notifications are off.
    let app = spawn().await;
    let cookie = sign_in(&app).await;
    let id = app.live_reminder(json!({})).await;
    let (_, html) = page(&app, &cookie, &format!("/reminders/{id}")).await;
    assert!(text_after(&html, "id=\"no-notifications\"").starts_with("Notifications are off"));
    app.stop().await;
}
