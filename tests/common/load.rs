//! Fault-test scaffolding (tests/faults.rs, tests/faults_pg.rs): the real
//! `duecall serve` binary as a child process on a fixed port (so it can be
//! killed and started again where its clients expect it), live reminders
//! seeded through the store, and a crowd of agents delivering signed
//! call-status events with retries, recording every answer they heard and when.
//!
//! Every wait is bounded; every child process is killed when dropped.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duecall::domain::{CreateDefaults, Language, NewReminder, ReminderId, TimeZone};
use serde_json::{json, Value};
use sqlx::Connection;

use super::{reminder_body, webhook_key, API_KEY, WEBHOOK_SECRET};

/// How long a client waits for one answer (the Python agent's own timeout).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A port nobody listens on right now, to start (and restart) a server on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// An HTTP client with the agent's timeout and no proxy from the environment.
pub fn http_client() -> reqwest::Client {
    duecall::install_crypto();
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .no_proxy()
        .build()
        .expect("http client")
}

// --- The server --------------------------------------------------------------

/// `duecall serve` as a child process, SIGKILLed when dropped.
pub struct Server {
    child: tokio::process::Child,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Start `duecall serve` in `dir` (a clean environment, no `.env`) on
    /// 127.0.0.1:`port` against `database_url`, with the ticker off. Its
    /// stderr is appended to `dir/serve.log`, across restarts.
    pub fn start(dir: &Path, database_url: &str, port: u16) -> Self {
        let log = dir.join("serve.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open serve.log");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duecall"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("DUECALL_API_KEY", API_KEY)
            .env("SCHEDULER_INTERVAL_SECS", "0")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn duecall serve");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Wait until `/healthz` answers 200; panics (with the log) if the process
    /// exits or `within` passes first.
    pub async fn wait_ready(&mut self, within: Duration) {
        let client = http_client();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("duecall serve exited ({status}):\n{}", self.log());
            }
            let probe = client
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if matches!(&probe, Ok(r) if r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "duecall serve not up within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`, then wait (bounded) until the process is gone.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("SIGKILL duecall serve");
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the killed server is reaped within 10 s")
            .expect("wait for the killed server");
    }

    /// The process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the server (and its earlier incarnations in the same
    /// directory) wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

// --- Seeding -----------------------------------------------------------------

/// Store a reminder for each of `ids` and start its first attempt
/// (`in_progress`, attempt 1) through the store, as the scheduler's claim does.
pub async fn seed_live(database_url: &str, ids: &[ReminderId]) {
    let store = duecall::store::connect(database_url, 4)
        .await
        .expect("open store");
    let defaults = CreateDefaults {
        timezone: TimeZone::parse("America/New_York").unwrap(),
        zone_policy: duecall::domain::ZonePolicy::All,
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    };
    let new = NewReminder::parse(reminder_body(json!({})).as_object().unwrap(), &defaults)
        .expect("a valid reminder");
    let now = chrono::Utc::now();
    for id in ids {
        store
            .create_reminder(&new, *id, now - chrono::Duration::hours(1))
            .await
            .expect("create reminder");
    }
    let mut claimed = 0;
    for chunk in ids.chunks(500) {
        claimed += store
            .claim(chunk, now, 1_000_000, &super::any_time_rules())
            .await
            .expect("claim")
            .claimed
            .len();
    }
    assert_eq!(
        claimed,
        ids.len(),
        "every seeded reminder has a live attempt"
    );
}

// --- The events --------------------------------------------------------------

/// One event an agent reports, with its own webhook-id (the same on every retry).
#[derive(Debug, Clone)]
pub struct Planned {
    pub webhook_id: String,
    pub body: String,
}

/// For each reminder (by index), what its agent reports about attempt 1, in
/// order: `call_answered`, then an end that varies with the index (reached
/// outcomes, unreached ones, failures retryable or not), and for every
/// seventh a late `call_answered` repeated after the end (news moved past).
pub fn plan(ids: &[ReminderId]) -> Vec<Vec<Planned>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let base = |kind: &str| json!({"event_type": kind, "reminder_id": id.to_string(), "attempt": 1});
            let with = |mut body: Value, key: &str, value: Value| {
                body[key] = value;
                body
            };
            let outcome = |result: &str| json!({"result": result, "duration_seconds": 30 + i % 90});
            let end = match i % 10 {
                0 => with(
                    base("call_completed"),
                    "outcome",
                    json!({"result": "payment_promised", "promised_amount_minor": 1_000 + i,
                           "promised_date": "2026-12-01", "summary": format!("promised #{i}")}),
                ),
                1 => with(base("call_completed"), "outcome", outcome("paid")),
                2 => with(
                    base("call_completed"),
                    "outcome",
                    json!({"result": "disputed", "summary": "says it was paid in March"}),
                ),
                3 => with(base("call_completed"), "outcome", outcome("no_answer")),
                4 => with(base("call_completed"), "outcome", outcome("busy")),
                5 => with(base("call_completed"), "outcome", outcome("voicemail")),
                6 => with(base("call_completed"), "outcome", outcome("opted_out")),
                7 => with(
                    base("call_failed"),
                    "failure",
                    json!({"reason": "sip trunk error", "sip_status": 503, "retryable": true}),
                ),
                8 => with(
                    base("call_failed"),
                    "failure",
                    json!({"reason": "number disconnected", "sip_status": 404, "retryable": false}),
                ),
                _ => with(base("call_completed"), "outcome", outcome("callback_requested")),
            };
            let mut events = vec![base("call_answered"), end];
            if i % 7 == 0 {
                events.push(base("call_answered"));
            }
            events
                .into_iter()
                .enumerate()
                .map(|(k, body)| Planned {
                    webhook_id: format!("evt_{}_{k}", id.as_uuid().simple()),
                    body: body.to_string(),
                })
                .collect()
        })
        .collect()
}

// --- The agents --------------------------------------------------------------

/// Where the fault is when an answer arrives.
pub const BEFORE: u8 = 0;
/// The fault has been (or is being) injected.
pub const DURING: u8 = 1;
/// The fault is over (the server restarted, the database started).
pub const AFTER: u8 = 2;

/// What one request heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// An HTTP answer; `json_error` when its body is `{"error": {"code", "message"}}`.
    Status { code: u16, json_error: bool },
    /// No answer within `CLIENT_TIMEOUT`.
    Timeout,
    /// The connection was refused.
    Refused,
    /// Anything else: reset, closed mid-answer, …
    Broken(String),
}

/// One request and what it heard.
#[derive(Debug, Clone)]
pub struct Reply {
    pub route: &'static str,
    pub started: Instant,
    pub ended: Instant,
    pub heard: Heard,
}

/// The fate of one planned event.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: String,
    pub reminder: usize,
    pub first_sent: Instant,
    /// How many times it was sent.
    pub sends: u32,
    /// The first 2xx: its status, the phase it arrived in, and when.
    pub answered: Option<(u16, u8, Instant)>,
    /// What that 2xx said of `applied` (false for a repeated webhook-id).
    pub applied: Option<bool>,
    /// Why it was given up (a 4xx, or the deadline).
    pub gave_up: Option<String>,
}

/// A crowd of agents sending events to one base URL, retrying as the agent
/// does (network errors, 429, 5xx) with a small backoff until a deadline.
pub struct Load {
    client: reqwest::Client,
    base: String,
    key: Vec<u8>,
    deadline: Instant,
    /// Pause of each agent between two reminders.
    pace: Duration,
    phase: AtomicU8,
    answered: AtomicUsize,
    stop: AtomicBool,
    replies: Mutex<Vec<Reply>>,
}

impl Load {
    pub fn new(base: &str, deadline: Instant, pace: Duration) -> Arc<Self> {
        Arc::new(Self {
            client: http_client(),
            base: base.to_owned(),
            key: webhook_key(),
            deadline,
            pace,
            phase: AtomicU8::new(BEFORE),
            answered: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            replies: Mutex::new(Vec::new()),
        })
    }

    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Events answered 2xx so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Agents finish the reminder they are on and take no new one.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Every request made so far (events and reads), in no particular order.
    pub fn replies(&self) -> Vec<Reply> {
        self.replies.lock().unwrap().clone()
    }

    /// Start `agents` tasks that take reminders off `plan` in order and
    /// deliver each one's events in order (the next only after the previous
    /// one was answered 2xx). The handle yields every event's fate.
    pub fn spawn(
        self: &Arc<Self>,
        plan: Vec<Vec<Planned>>,
        agents: usize,
    ) -> tokio::task::JoinHandle<Vec<Delivery>> {
        let queue = Arc::new(Mutex::new(
            plan.into_iter().enumerate().collect::<VecDeque<_>>(),
        ));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..agents {
            let load = Arc::clone(self);
            let queue = Arc::clone(&queue);
            set.spawn(async move {
                let mut out = Vec::new();
                while !load.stop.load(Ordering::SeqCst) {
                    let Some((reminder, events)) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    for ev in &events {
                        let d = load.deliver(reminder, ev).await;
                        let ok = d.answered.is_some();
                        out.push(d);
                        if !ok {
                            break;
                        }
                    }
                    if !load.pace.is_zero() {
                        tokio::time::sleep(load.pace).await;
                    }
                }
                out
            });
        }
        tokio::spawn(async move {
            let mut all = Vec::new();
            while let Some(done) = set.join_next().await {
                all.extend(done.expect("an agent task panicked"));
            }
            all
        })
    }

    /// Send one event until it is answered 2xx, refused for good (4xx), or
    /// the deadline passes; a fresh signature (same webhook-id) on each send.
    async fn deliver(&self, reminder: usize, ev: &Planned) -> Delivery {
        let mut d = Delivery {
            webhook_id: ev.webhook_id.clone(),
            reminder,
            first_sent: Instant::now(),
            sends: 0,
            answered: None,
            applied: None,
            gave_up: None,
        };
        let mut backoff = Duration::from_millis(20);
        loop {
            let ts = chrono::Utc::now().timestamp();
            let sig = duecall::webhook::sign(&self.key, &ev.webhook_id, ts, ev.body.as_bytes());
            let req = self
                .client
                .post(format!("{}/api/webhooks/call-status", self.base))
                .header("content-type", "application/json")
                .header("webhook-id", &ev.webhook_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(ev.body.clone());
            d.sends += 1;
            let (heard, body) = self.send("call-status", req).await;
            match heard {
                Heard::Status { code, .. } if (200..300).contains(&code) => {
                    // The phase is read after the answer arrived: an answer
                    // marked BEFORE was heard before the fault was injected.
                    let phase = self.phase.load(Ordering::SeqCst);
                    self.answered.fetch_add(1, Ordering::SeqCst);
                    d.answered = Some((code, phase, Instant::now()));
                    d.applied = body.and_then(|b| b["applied"].as_bool());
                    return d;
                }
                Heard::Status { code, .. } if code != 429 && code < 500 => {
                    d.gave_up = Some(format!("answered {code}"));
                    return d;
                }
                _ => {}
            }
            if Instant::now() + backoff >= self.deadline {
                d.gave_up = Some(format!("deadline passed; last heard {heard:?}"));
                return d;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }

    /// An authorised GET of the reminders API, recorded like the events.
    pub async fn read(&self, path: &str) -> Heard {
        let req = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(API_KEY);
        self.send("api-read", req).await.0
    }

    async fn send(
        &self,
        route: &'static str,
        req: reqwest::RequestBuilder,
    ) -> (Heard, Option<Value>) {
        let started = Instant::now();
        let (heard, body) = hear_json(req).await;
        self.replies.lock().unwrap().push(Reply {
            route,
            started,
            ended: Instant::now(),
            heard: heard.clone(),
        });
        (heard, body)
    }
}

/// Send a request and classify what came back.
pub async fn hear(req: reqwest::RequestBuilder) -> Heard {
    hear_json(req).await.0
}

/// The same, with the answer's body when it is JSON.
async fn hear_json(req: reqwest::RequestBuilder) -> (Heard, Option<Value>) {
    match req.send().await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            match resp.bytes().await {
                Ok(body) => {
                    let json = serde_json::from_slice::<Value>(&body).ok();
                    let json_error = json.as_ref().is_some_and(|v| {
                        v["error"]["code"].is_string() && v["error"]["message"].is_string()
                    });
                    (Heard::Status { code, json_error }, json)
                }
                Err(e) if e.is_timeout() => (Heard::Timeout, None),
                Err(e) => (
                    Heard::Broken(format!("{code}, then the body failed: {e:?}")),
                    None,
                ),
            }
        }
        Err(e) if e.is_timeout() => (Heard::Timeout, None),
        Err(e) if e.is_connect() => (Heard::Refused, None),
        Err(e) => (Heard::Broken(format!("{e:?}")), None),
    }
}

// --- The database, read directly ----------------------------------------------

/// Every recorded event: webhook-id → applied.
pub async fn recorded_events(database_url: &str) -> HashMap<String, bool> {
    if database_url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(database_url)
            .await
            .expect("connect");
        sqlx::query_as::<_, (String, bool)>("SELECT webhook_id, applied FROM events")
            .fetch_all(&mut conn)
            .await
            .expect("read events")
            .into_iter()
            .collect()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(database_url)
            .await
            .expect("connect");
        sqlx::query_as::<_, (String, i64)>("SELECT webhook_id, applied FROM events")
            .fetch_all(&mut conn)
            .await
            .expect("read events")
            .into_iter()
            .map(|(id, applied)| (id, applied != 0))
            .collect()
    }
}

/// Fail unless the glance's counts equal a recount (`glance_mismatches`).
pub async fn assert_glance_recounts(database_url: &str) {
    let off = glance_mismatches(database_url).await;
    assert!(
        off.is_empty(),
        "the glance's counts differ from a recount:\n{}",
        off.join("\n")
    );
}

/// Where the glance's counts (kept by triggers, or by the PostgreSQL writer
/// for its batches) differ from a recount of the rows they count: one line per
/// (slot, key) that differs, so empty when they agree. PostgreSQL's pending
/// deltas are counted in, as the page folds them before it reads.
pub async fn glance_mismatches(database_url: &str) -> Vec<String> {
    let (attempts, promises) = if database_url.starts_with("postgres") {
        (
            "SELECT slot, result, sum(n)::bigint, 0::bigint FROM ( \
               SELECT slot, result, n FROM glance_attempts \
               UNION ALL SELECT slot, result, n FROM glance_attempt_deltas \
               UNION ALL SELECT glance_slot(dispatched_at), COALESCE(result, ''), -count(*) \
                 FROM attempts GROUP BY 1, 2) c \
             GROUP BY slot, result HAVING sum(n) <> 0",
            "SELECT slot, status || '/' || currency, sum(n)::bigint, sum(amount)::bigint FROM ( \
               SELECT slot, status, currency, n, amount FROM glance_promises \
               UNION ALL SELECT slot, status, currency, n, amount FROM glance_promise_deltas \
               UNION ALL SELECT glance_slot(promise_opened_at), promise_status, currency, -count(*), \
                 -COALESCE(sum(promise_amount_minor), 0) FROM reminders \
                 WHERE promise_opened_at IS NOT NULL AND promise_status IS NOT NULL GROUP BY 1, 2, 3) c \
             GROUP BY slot, status, currency HAVING sum(n) <> 0 OR sum(amount) <> 0",
        )
    } else {
        (
            "SELECT slot, result, sum(n), 0 FROM ( \
               SELECT slot, result, n FROM glance_attempts \
               UNION ALL SELECT dispatched_at / 900000 AS slot, COALESCE(result, '') AS result, -count(*) AS n \
                 FROM attempts GROUP BY 1, 2) \
             GROUP BY slot, result HAVING sum(n) <> 0",
            "SELECT slot, status || '/' || currency, sum(n), sum(amount) FROM ( \
               SELECT slot, status, currency, n, amount FROM glance_promises \
               UNION ALL SELECT promise_opened_at / 900000 AS slot, promise_status AS status, currency, \
                 -count(*) AS n, -COALESCE(sum(promise_amount_minor), 0) AS amount FROM reminders \
                 WHERE promise_opened_at IS NOT NULL AND promise_status IS NOT NULL GROUP BY 1, 2, 3) \
             GROUP BY slot, status, currency HAVING sum(n) <> 0 OR sum(amount) <> 0",
        )
    };
    let mut out = Vec::new();
    for (what, sql) in [("attempts", attempts), ("promises", promises)] {
        let rows: Vec<(i64, String, i64, i64)> = if database_url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(database_url)
                .await
                .expect("connect");
            sqlx::query_as(sql)
                .fetch_all(&mut conn)
                .await
                .expect("recount")
        } else {
            let mut conn = sqlx::SqliteConnection::connect(database_url)
                .await
                .expect("connect");
            sqlx::query_as(sql)
                .fetch_all(&mut conn)
                .await
                .expect("recount")
        };
        out.extend(rows.into_iter().map(|(slot, key, n, amount)| {
            format!(
                "{what}: slot {slot} {key:?}: counted {n:+} (amount {amount:+}) beyond the rows"
            )
        }));
    }
    out
}

/// What a reminder ended as, without the times that differ from run to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderState {
    pub status: Value,
    pub attempt_count: u32,
    pub outcome: Option<Value>,
    pub skip_reason: Option<String>,
    pub next_attempt_at: bool,
    pub attempts: Vec<AttemptState>,
}

/// What an attempt ended as, likewise.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptState {
    pub attempt: u32,
    pub status: Value,
    pub outcome: Option<Value>,
    pub failure: Option<Value>,
    pub answered_at: bool,
    pub ended_at: bool,
}

/// The state of each of `ids`, in order, through the store.
pub async fn final_state(database_url: &str, ids: &[ReminderId]) -> Vec<ReminderState> {
    let store = duecall::store::connect(database_url, 2)
        .await
        .expect("open store");
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let r = store
            .get_reminder(*id)
            .await
            .expect("get reminder")
            .expect("the reminder exists");
        let attempts = store
            .list_attempts(*id)
            .await
            .expect("list attempts")
            .into_iter()
            .map(|a| AttemptState {
                attempt: a.attempt,
                status: json_of(&a.status),
                outcome: a.outcome.as_ref().map(json_of),
                failure: a.failure.as_ref().map(json_of),
                answered_at: a.answered_at.is_some(),
                ended_at: a.ended_at.is_some(),
            })
            .collect();
        out.push(ReminderState {
            status: json_of(&r.status),
            attempt_count: r.attempt_count,
            outcome: r.outcome.as_ref().map(json_of),
            skip_reason: r.skip_reason.clone(),
            next_attempt_at: r.next_attempt_at.is_some(),
            attempts,
        });
    }
    out
}

fn json_of<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serialisable")
}

// --- A private schema --------------------------------------------------------

/// A fresh schema on the PostgreSQL server at `base`, and the URL that uses it.
pub async fn pg_schema_url(base: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"));
    let schema = format!("duecall_f_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
