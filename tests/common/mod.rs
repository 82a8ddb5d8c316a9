//! Shared test scaffolding: a fresh database per test (a SQLite file in a temp
//! dir, or a PostgreSQL schema of its own), and the real app spawned on port 0.
#![allow(dead_code)]
pub mod fake_livekit;
pub mod load;
pub mod receiver;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use duecall::clock::{Clock, ManualClock};
use duecall::config::Config;
use duecall::http::AppState;
use duecall::store::Store;
use sqlx::Connection;

pub const API_KEY: &str = "test-api-key-0123456789abcdefghijklmnop";
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use: `TEST_DATABASE_URL`, else the local one.
pub fn pg_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// In CI (or when asked) PostgreSQL must be there; elsewhere its tests skip loudly.
pub fn pg_required() -> bool {
    let set = |v: &str| {
        std::env::var(v)
            .map(|s| !s.is_empty() && s != "0" && s != "false")
            .unwrap_or(false)
    };
    set("CI") || set("DUECALL_REQUIRE_POSTGRES")
}

/// A database that exists for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL is unreachable and not required.
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Some(Self {
                    backend,
                    url,
                    _dir: Some(dir),
                    schema: None,
                })
            }
            Backend::Postgres => {
                let base = pg_base_url();
                let mut conn = match sqlx::PgConnection::connect(&base).await {
                    Ok(c) => c,
                    Err(e) if !pg_required() => {
                        eprintln!("SKIPPED: PostgreSQL unreachable at {base}: {e}");
                        return None;
                    }
                    Err(e) => panic!("PostgreSQL is required here but unreachable at {base}: {e}"),
                };
                let schema = format!("duecall_t_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Some(Self {
                    backend,
                    url,
                    _dir: None,
                    schema: Some(schema),
                })
            }
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        duecall::store::connect(&self.url, 8)
            .await
            .expect("open store")
    }

    /// Run raw SQL on the test's database (fault injection: triggers that
    /// make the real database refuse a write).
    /// An injected fault: from now on the database refuses to record an
    /// event whose `webhook-id` starts with `bad_` (and only those).
    /// SQLite: an index whose expression fails (`json` of a text that is not
    /// JSON) for those rows — not a trigger, since SQLite's event writer runs
    /// with triggers off; PostgreSQL: a trigger raising an exception.
    pub async fn refuse_events_marked_bad(&self) {
        self.execute(match self.backend {
            Backend::Sqlite => {
                "CREATE INDEX refuse_bad ON events (json(webhook_id)) WHERE webhook_id LIKE 'bad_%';"
            }
            Backend::Postgres => {
                "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$; \
                 CREATE TRIGGER refuse_bad BEFORE INSERT ON events FOR EACH ROW \
                 WHEN (NEW.webhook_id LIKE 'bad_%') EXECUTE FUNCTION refuse_bad();"
            }
        })
        .await;
    }

    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            }
        }
    }

    /// Drop the test's schema (PostgreSQL); the SQLite dir goes with `self`.
    pub async fn cleanup(self) {
        if let Some(schema) = &self.schema {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_base_url()).await {
                let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The calling rules of the default configuration (SPEC §7's floor).
pub fn default_rules() -> duecall::domain::Rules {
    test_config("sqlite://unused.db", &[]).calling_rules()
}

/// Rules that allow a call at any moment (for seeding live attempts at the
/// wall clock's time, whatever it is): open all day every day, no quiet
/// period, a cap no seed reaches.
pub fn any_time_rules() -> duecall::domain::Rules {
    test_config(
        "sqlite://unused.db",
        &[
            ("CALLING_WINDOW", "00:00-24:00"),
            ("CALLING_DAYS", "Mon-Sun"),
            ("CALL_FREQUENCY", "1000/1h"),
            ("REGION_CALL_FREQUENCY", "none"),
            ("QUIET_AFTER_CONVERSATION", "0"),
        ],
    )
    .calling_rules()
}

/// A retry policy with `base_delay` and a calling window open all day, every day.
pub fn open_all_day(base_delay: chrono::Duration) -> duecall::policy::RetryPolicy {
    duecall::policy::RetryPolicy {
        base_delay,
        window: duecall::policy::CallingWindow {
            start: chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
            end: chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap(),
            to_midnight: true,
            days: (0..7).collect(),
            blackout: Default::default(),
        },
    }
}

/// What the call-status handler hands `Store::ingest` for `ev`: decide with
/// the state machine at `now` (retries after 2 h, any time of day), and the
/// event's record under `webhook_id`.
pub fn decide_for(
    ev: duecall::domain::Event,
    webhook_id: String,
    now: DateTime<Utc>,
) -> Box<duecall::store::Decide> {
    use duecall::domain;
    let retry = open_all_day(chrono::Duration::hours(2));
    Box::new(move |r: &domain::Reminder, att: Option<&domain::Attempt>| {
        let ctx = domain::Ctx {
            now,
            retry: &retry,
            jitter: 0.5,
            promise_grace_days: 3,
        };
        let decision = domain::transition(r, att, &ev, &ctx);
        let record = duecall::store::EventRecord {
            webhook_id: webhook_id.clone(),
            reminder_id: r.id,
            attempt: ev.attempt,
            event_type: ev.event_type(),
            occurred_at: now,
            received_at: now,
            applied: decision.verdict == domain::Verdict::Applied,
            verdict: decision.verdict,
            payload: "{}".into(),
        };
        (decision, record)
    })
}

/// A configuration for tests: secrets set, the given database, ticker off.
pub fn test_config(url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.into()),
        ("WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()),
        ("DUECALL_API_KEY".into(), API_KEY.into()),
        ("SCHEDULER_INTERVAL_SECS".into(), "0".into()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .expect("test config")
}

/// The notification worker as the tests run it (when `NOTIFY_URL` is set):
/// it looks often and gives up on a silent receiver after a second, so a
/// test of a hanging receiver takes a second, not SPEC §9's fifteen.
pub fn test_notify_settings() -> duecall::notify::NotifySettings {
    duecall::notify::NotifySettings {
        concurrency: 8,
        lease: std::time::Duration::from_secs(30),
        poll: std::time::Duration::from_millis(25),
        timeout: std::time::Duration::from_secs(1),
        stats_every: std::time::Duration::from_millis(50),
    }
}

/// The real service on 127.0.0.1:0 with a manual clock.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    pub db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let clock = ManualClock::new(t("2026-11-24T15:00:00Z"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let base = format!("http://{addr}");
        // BIND_ADDR is where the app really listens (the simulated agents report there).
        let mut vars: Vec<(&str, &str)> = vec![("BIND_ADDR", &addr)];
        vars.extend_from_slice(extra);
        let config = test_config(&db.url, &vars);
        let state = duecall::build_state(config, Arc::new(clock.clone()) as Arc<dyn Clock>)
            .await
            .expect("build state");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            duecall::serve_with(
                listener,
                serve_state,
                async {
                    let _ = rx.await;
                },
                test_notify_settings(),
            )
            .await
            .expect("serve");
        });
        Some(Self {
            base,
            // No idle connections kept: the server closes a connection whose
            // oversized body it refused unread, and reusing it races that close.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client"),
            clock,
            state,
            db,
            shutdown: Some(tx),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An authorised request to the reminders API.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(API_KEY)
    }

    pub async fn create(&self, body: serde_json::Value) -> reqwest::Response {
        self.api(reqwest::Method::POST, "/api/reminders")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.db.cleanup().await;
    }
}

/// A valid create body, with a few fields overridden.
pub fn reminder_body(overrides: serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::json!({
        "customer_name": "Ada Lovelace",
        "phone_number": "+12125550100",
        "amount_due_minor": 12345,
        "currency": "USD",
        "due_date": "2026-12-01",
    });
    if let (Some(b), Some(o)) = (body.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Run one async test body against each backend: `both_backends!(name, |backend| async {...})`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(Backend::Postgres).await
            }
        }
    };
}

// --- Signed webhooks ---------------------------------------------------------

/// The first key of the test secret.
pub fn webhook_key() -> Vec<u8> {
    duecall::webhook::WebhookSecrets::parse(WEBHOOK_SECRET)
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .to_vec()
}

impl TestApp {
    pub fn now_unix(&self) -> i64 {
        duecall::clock::Clock::now(&self.clock).timestamp()
    }

    /// POST a call-status body signed with the test secret at the app's clock.
    pub async fn send_event(&self, webhook_id: &str, body: &str) -> reqwest::Response {
        let ts = self.now_unix();
        let sig = duecall::webhook::sign(&webhook_key(), webhook_id, ts, body.as_bytes());
        self.send_raw(
            &[
                ("webhook-id", webhook_id.to_owned()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", sig),
            ],
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// POST anything to the call-status route with exactly these headers.
    pub async fn send_raw(&self, headers: &[(&str, String)], body: Vec<u8>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/api/webhooks/call-status"))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap()
    }

    /// Create a reminder through the API and start its first attempt (as the
    /// scheduler's claim does), returning its id.
    pub async fn live_reminder(&self, overrides: serde_json::Value) -> duecall::domain::ReminderId {
        let resp = self.create(reminder_body(overrides)).await;
        assert_eq!(resp.status(), 201);
        let body: serde_json::Value = resp.json().await.unwrap();
        let id = duecall::domain::ReminderId::parse(body["id"].as_str().unwrap()).unwrap();
        self.start_attempt(id).await;
        id
    }

    /// Claim the reminder's next attempt directly through the store.
    pub async fn start_attempt(&self, id: duecall::domain::ReminderId) {
        let r = self.state.store.get_reminder(id).await.unwrap().unwrap();
        let now = duecall::clock::Clock::now(&self.clock);
        let claim = duecall::domain::claim(&r, now).expect("claimable");
        let applied = self.state.store.apply(&claim, None).await.unwrap();
        assert!(
            matches!(applied, duecall::store::Applied::Done(_)),
            "{applied:?}"
        );
    }

    /// GET a reminder with its attempts.
    pub async fn reminder(&self, id: duecall::domain::ReminderId) -> serde_json::Value {
        let resp = self
            .api(reqwest::Method::GET, &format!("/api/reminders/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub async fn event_count(&self, id: duecall::domain::ReminderId) -> u64 {
        self.state.store.count_events(id).await.unwrap()
    }
}

/// A call-status body.
pub fn event(kind: &str, id: duecall::domain::ReminderId, extra: serde_json::Value) -> String {
    let mut body = serde_json::json!({"event_type": kind, "reminder_id": id.to_string()});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body.to_string()
}

pub fn completed(id: duecall::domain::ReminderId, result: &str) -> String {
    event(
        "call_completed",
        id,
        serde_json::json!({"outcome": {"result": result}}),
    )
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh webhook-id.
pub fn msg_id() -> String {
    format!(
        "msg_{}_{}",
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        uuid::Uuid::new_v4().simple()
    )
}

/// POST `body` over a raw socket — with `Transfer-Encoding: chunked`, or with its
/// `Content-Length` — tolerating a server that answers and closes before it has
/// read it all. Returns the status code (0 if none) and the response text.
pub async fn raw_post(app: &TestApp, path: &str, body: &[u8], chunked: bool) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    if chunked {
        for chunk in body.chunks(8192) {
            let sent = async {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                s.write_all(chunk).await?;
                s.write_all(b"\r\n").await
            };
            if sent.await.is_err() {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
    } else {
        let _ = s.write_all(body).await;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

// --- The real binary -----------------------------------------------------------

/// `duecall serve` as a user runs it, with its log (stderr) in a file.
pub struct Serve {
    pub child: tokio::process::Child,
    pub base: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// `duecall serve` on a free loopback port; with `files`, under `ulimit -n files`.
pub async fn serve_binary(files: Option<u32>, vars: &[(&str, &str)]) -> Serve {
    duecall::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("serve.log");
    let bin = env!("CARGO_BIN_EXE_duecall");
    let mut cmd = match files {
        Some(n) => {
            let mut c = tokio::process::Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" serve"), bin]);
            c
        }
        None => {
            let mut c = tokio::process::Command::new(bin);
            c.arg("serve");
            c
        }
    };
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("duecall.db").display()),
        )
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("DUECALL_API_KEY", API_KEY)
        .env("SCHEDULER_INTERVAL_SECS", "0")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return Serve {
                child,
                base,
                log,
                _dir: dir,
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "duecall serve did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

impl Serve {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub async fn sigterm(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
    }
}
