//! duecall's benchmarks. Each prints its figures; `scripts/bench` runs them all
//! and docs/PERFORMANCE.md records them.
//!
//! - `ingest`: seed N live reminders into the database a running `duecall
//!   serve` uses, pre-sign one `call_completed` per reminder, fire them at a
//!   concurrency, report throughput, p50/p99/max latency and the status codes.
//! - `noop`: the same firing at `GET /healthz`, the HTTP stack's own ceiling.
//! - `claim`: due reminders claimed and dispatched per second by 1 or more
//!   in-process scheduler instances with an instant dialer.
//! - `scale`: the cost of one tick with 10 k … 1 M reminders in the table, and
//!   the query plans of the scheduler's queries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use duecall::clock::{Clock, SystemClock};
use duecall::dialer::{CallRequest, DialError, Dialer};

mod glance;
mod seed;
mod storage;

#[derive(Parser)]
#[command(
    name = "duecall-bench",
    about = "duecall's load generator and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Signed call-status webhooks at a running service.
    Ingest {
        /// The service, e.g. http://127.0.0.1:8080
        #[arg(long)]
        url: String,
        /// The database the service uses (reminders are seeded into it).
        #[arg(long)]
        database_url: String,
        /// The service's WEBHOOK_SECRET.
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Receive the service's notifications on this loopback port (its
        /// NOTIFY_URL is http://127.0.0.1:PORT/notify), answering 204 at once,
        /// and report how fast all of them (two per event) arrived.
        #[arg(long)]
        sink_port: Option<u16>,
        /// With `--sink-port`: `hold` keeps every notification's request open
        /// unanswered, so the service's deliveries sit waiting and the run
        /// measures what writing the outbox costs, alone.
        #[arg(long)]
        sink_holds: bool,
    },
    /// The disk's durable-write latency: append a 4 KiB page to a file in
    /// `dir` and `fdatasync` it, N times (what one SQLite WAL commit costs at
    /// least): the floor of one event at a time.
    Fsync {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 1_000)]
        writes: usize,
    },
    /// What an event costs SQLite with no HTTP (the service's store alone,
    /// and SQLite's least on a bare schema), against the budget that half of
    /// the no-op ceiling leaves (bench/src/storage.rs).
    Storage {
        /// An empty directory for the database files.
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The no-op ceiling measured in the same run (requests/s), for the budget.
        #[arg(long)]
        ceiling: Option<f64>,
        /// How busy the machine was during that no-op run, in percent (the
        /// `noop` line says): 100 if not given.
        #[arg(long, default_value_t = 100.0)]
        ceiling_busy: f64,
        /// SQL to run on the store's database once it is migrated, before the
        /// seeding (A/B experiments: drop an index, a trigger).
        #[arg(long)]
        prepare_sql: Option<String>,
    },
    /// GET /healthz at a running service: the HTTP stack's ceiling.
    Noop {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10_000)]
        requests: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Claim and dispatch N due reminders with K scheduler instances.
    Claim {
        /// An empty database (a SQLite file that does not exist yet, or a fresh PostgreSQL schema).
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 5_000)]
        due: usize,
        /// Another empty database: the same claim of plain reminders (nothing
        /// to hold back) runs there first, the ceiling of this run's figure.
        #[arg(long)]
        ceiling_database_url: Option<String>,
        #[arg(long, default_value_t = 1)]
        instances: usize,
    },
    /// The cost of a tick against a table of N reminders, and the query plans.
    Scale {
        /// An empty database.
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        rows: usize,
    },
}

/// One firing's figures.
struct Figures {
    label: String,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    statuses: BTreeMap<String, usize>,
}

impl Figures {
    fn print(&self) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or_default()
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        println!(
            "{}: {} requests in {:.2} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {}",
            self.label,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64(),
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(l.last().copied().unwrap_or_default()),
            statuses.join(" ")
        );
    }
}

/// Fire the prepared `requests` with `concurrency` workers, timing each.
async fn fire(
    label: String,
    requests: Vec<reqwest::RequestBuilder>,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let n = requests.len();
    let queue: Arc<std::sync::Mutex<Vec<Option<reqwest::RequestBuilder>>>> = Arc::new(
        std::sync::Mutex::new(requests.into_iter().map(Some).collect()),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = Arc::clone(&queue);
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let Some(req) = queue.lock().expect("queue")[i].take() else {
                    continue;
                };
                let t = Instant::now();
                let key = match req.send().await {
                    Ok(resp) => {
                        let code = resp.status().as_u16().to_string();
                        let _ = resp.bytes().await;
                        code
                    }
                    Err(e) if e.is_timeout() => "timeout".to_owned(),
                    Err(_) => "error".to_owned(),
                };
                lat.push(t.elapsed());
                *statuses.entry(key).or_default() += 1;
            }
            (lat, statuses)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for w in workers {
        let (l, s) = w.await?;
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    Ok(Figures {
        label,
        requests: n,
        elapsed: started.elapsed(),
        latencies,
        statuses,
    })
}

fn client(concurrency: usize) -> reqwest::Client {
    duecall::install_crypto();
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A receiver of notifications that answers 204 at once and counts them.
struct Sink {
    count: Arc<AtomicUsize>,
    first: Arc<std::sync::Mutex<Option<Instant>>>,
    last: Arc<std::sync::Mutex<Option<Instant>>>,
}

async fn sink(port: u16, holds: bool) -> anyhow::Result<Sink> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let count = Arc::new(AtomicUsize::new(0));
    let first = Arc::new(std::sync::Mutex::new(None));
    let last = Arc::new(std::sync::Mutex::new(None));
    let (c, f, l) = (Arc::clone(&count), Arc::clone(&first), Arc::clone(&last));
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let (c, f, l) = (Arc::clone(&c), Arc::clone(&f), Arc::clone(&l));
            async move {
                if holds {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let now = Instant::now();
                f.lock().expect("first").get_or_insert(now);
                *l.lock().expect("last") = Some(now);
                c.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Sink { count, first, last })
}

impl Sink {
    /// Wait (at most `limit`) for `n` notifications; print the rate.
    async fn report(&self, n: usize, answered: Instant, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = self.count.load(Ordering::Relaxed);
        let first = *self.first.lock().expect("first");
        let last = *self.last.lock().expect("last");
        match (first, last) {
            (Some(first), Some(last)) => println!(
                "notify: {got} of {n} notifications delivered; {:.0}/s from the first to the last; \
                 the last {:.2} s after the last webhook's answer",
                got as f64 / last.duration_since(first).as_secs_f64().max(1e-6),
                last.saturating_duration_since(answered).as_secs_f64()
            ),
            _ => println!("notify: none of {n} notifications delivered"),
        }
    }
}

async fn ingest(
    url: &str,
    database_url: &str,
    secret: &str,
    events: usize,
    concurrency: usize,
    sink_port: Option<u16>,
    sink_holds: bool,
) -> anyhow::Result<()> {
    let sink = match sink_port {
        Some(port) => Some(sink(port, sink_holds).await?),
        None => None,
    };
    let secrets = duecall::webhook::WebhookSecrets::parse(secret)
        .map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
    let key = secrets.keys().next().context("a key")?.to_vec();
    let now = SystemClock.now();
    let ids = seed::live(database_url, events, now).await?;
    let client = client(concurrency);
    let target = format!("{}/api/webhooks/call-status", url.trim_end_matches('/'));
    let ts = now.timestamp();
    let requests: Vec<reqwest::RequestBuilder> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let body = serde_json::json!({
                "event_type": "call_completed", "reminder_id": id.to_string(), "attempt": 1,
                "outcome": {"result": "payment_promised", "promised_amount_minor": 12345,
                            "promised_date": "2026-12-24", "summary": "Will pay before Christmas.",
                            "duration_seconds": 87}
            })
            .to_string();
            let webhook_id = format!("msg_bench_{i}_{}", uuid::Uuid::new_v4().simple());
            let sig = duecall::webhook::sign(&key, &webhook_id, ts, body.as_bytes());
            client
                .post(&target)
                .header("content-type", "application/json")
                .header("webhook-id", webhook_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
        })
        .collect();
    let label = match (&sink, sink_holds) {
        (Some(_), true) => format!("ingest c={concurrency} (outbox written, deliveries held)"),
        (Some(_), false) => format!("ingest c={concurrency} (outbox written and delivered)"),
        (None, _) => format!("ingest c={concurrency}"),
    };
    fire(label, requests, concurrency).await?.print();
    if let (Some(sink), false) = (sink, sink_holds) {
        // Two per event: the attempt's end and the reminder's completion.
        sink.report(2 * events, Instant::now(), Duration::from_secs(300))
            .await;
    }
    Ok(())
}

async fn noop(url: &str, requests: usize, concurrency: usize) -> anyhow::Result<()> {
    let client = client(concurrency);
    let target = format!("{}/healthz", url.trim_end_matches('/'));
    let reqs = (0..requests).map(|_| client.get(&target)).collect();
    let before = storage::machine_cpu();
    let figures = fire(format!("noop   c={concurrency}"), reqs, concurrency).await?;
    figures.print();
    // How much of the machine the ceiling used: what is left of it is the
    // storage benchmark's margin (bench/src/storage.rs).
    if let (Some(before), Some(after)) = (before, storage::machine_cpu()) {
        println!(
            "noop   c={concurrency}: machine busy {:.0} %",
            100.0 * before.busy_until(&after)
        );
    }
    Ok(())
}

fn fsync(dir: &std::path::Path, writes: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let page = [7u8; 4096];
    let mut took = Vec::with_capacity(writes);
    for _ in 0..writes {
        let start = Instant::now();
        file.write_all(&page)?;
        file.sync_data()?;
        took.push(start.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "fsync  {writes} appends of 4 KiB + fdatasync: p50 {:.2} ms, p99 {:.2} ms",
        at(0.5),
        at(0.99)
    );
    Ok(())
}

/// A dialer that starts every call at once and remembers nothing.
struct InstantDialer;

#[async_trait::async_trait]
impl Dialer for InstantDialer {
    fn name(&self) -> &'static str {
        "instant"
    }
    async fn dial(&self, _call: &CallRequest) -> Result<(), DialError> {
        Ok(())
    }
}

/// The benchmarks' clock: it starts at [`BENCH_START`] and runs with the wall
/// clock, plus whatever [`BenchClock::advance`] adds.
struct BenchClock {
    since: Instant,
    extra: std::sync::Mutex<chrono::Duration>,
}

/// Tuesday 2026-11-24 19:00 UTC: 14:00 in New York and Boston, 13:00 in
/// Chicago, 12:00 in Denver, 11:00 in Los Angeles, 09:00 in Honolulu and Adak,
/// 19:00 in London — inside the default window (08:00–21:00, Mon–Sat) in
/// every zone the mix seeds but Tokyo's (04:00 on Wednesday).
const BENCH_START: &str = "2026-11-24T19:00:00Z";

/// [`BENCH_START`] as a time: the seeders' `now`.
fn bench_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(BENCH_START)
        .expect("a time")
        .with_timezone(&Utc)
}

impl BenchClock {
    /// A clock at [`BENCH_START`] now (made once the seeding is done, so the
    /// seeding's time does not count).
    fn new() -> Arc<Self> {
        Arc::new(Self {
            since: Instant::now(),
            extra: std::sync::Mutex::new(chrono::Duration::zero()),
        })
    }

    fn advance(&self, by: chrono::Duration) {
        *self.extra.lock().expect("clock") += by;
    }
}

impl Clock for BenchClock {
    fn now(&self) -> DateTime<Utc> {
        let start = bench_start();
        let ran = chrono::Duration::from_std(self.since.elapsed()).unwrap_or_default();
        duecall::clock::to_millis(start + ran + *self.extra.lock().expect("clock"))
    }
}

/// The service's configuration with its defaults, the calling rules of SPEC §7
/// included; only the live-call cap is lifted (the claim's throughput is
/// measured, not LiveKit's).
fn bench_config(database_url: &str) -> anyhow::Result<duecall::config::Config> {
    let vars = [
        ("DATABASE_URL", database_url),
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("MAX_CONCURRENT_CALLS", "100000"),
        ("DATABASE_MAX_CONNECTIONS", "8"),
    ];
    let config = duecall::config::Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let looser = config.looser_than_law();
    anyhow::ensure!(
        looser.is_empty(),
        "the benchmark runs the default rules, yet {} is looser",
        looser[0].variable
    );
    Ok(config)
}

/// The rules in force, in one line.
fn describe_rules(rules: &duecall::domain::Rules) -> String {
    let w = &rules.window;
    let regions: Vec<String> = rules
        .region_frequency
        .iter()
        .map(|(r, f)| format!("{r}={f}"))
        .collect();
    format!(
        "window {}-{} days {:?} (0 = Mon), blackout {} dates, CALL_FREQUENCY {}, \
         REGION_CALL_FREQUENCY {}, QUIET_AFTER_CONVERSATION {}",
        w.start.format("%H:%M"),
        if w.to_midnight {
            "24:00".to_owned()
        } else {
            w.end.format("%H:%M").to_string()
        },
        w.days,
        w.blackout.len(),
        rules.frequency,
        regions.join(","),
        duecall::domain::describe_span(rules.quiet_after_conversation),
    )
}

async fn instance(
    database_url: &str,
    clock: Arc<BenchClock>,
) -> anyhow::Result<duecall::http::AppState> {
    let config = bench_config(database_url)?;
    let store = duecall::store::connect(database_url, 8).await?;
    Ok(duecall::state_with_dialer(
        store,
        clock,
        config,
        Some(Arc::new(InstantDialer)),
    ))
}

/// What one claim run did.
#[derive(Default, Clone, Copy)]
struct ClaimRun {
    elapsed: Duration,
    dispatched: u64,
    deferred: u64,
    suppressed: u64,
    no_lawful_time: u64,
    dispatch_failed: u64,
}

impl ClaimRun {
    fn decided(&self) -> u64 {
        self.dispatched
            + self.deferred
            + self.suppressed
            + self.no_lawful_time
            + self.dispatch_failed
    }
    fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }
}

/// `instances` schedulers tick against the database (already seeded, at
/// [`BENCH_START`]) until nothing is due; every due reminder is decided
/// exactly once.
async fn run_claims(
    database_url: &str,
    instances: usize,
) -> anyhow::Result<(ClaimRun, duecall::http::AppState)> {
    let clock = BenchClock::new();
    let mut states = Vec::new();
    for _ in 0..instances.max(1) {
        states.push(instance(database_url, Arc::clone(&clock)).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for state in states.clone() {
        tasks.push(tokio::spawn(async move {
            let mut run = ClaimRun::default();
            loop {
                let r = state.scheduler.tick().await?;
                run.dispatched += r.dispatched;
                run.deferred += r.deferred;
                run.suppressed += r.suppressed;
                run.no_lawful_time += r.no_lawful_calling_time;
                run.dispatch_failed += r.dispatch_failed;
                let quiet = r.dispatched + r.deferred + r.suppressed + r.no_lawful_calling_time;
                if quiet == 0 && state.store.due(state.clock.now(), 1).await?.is_empty() {
                    return anyhow::Ok(run);
                }
            }
        }));
    }
    let mut total = ClaimRun::default();
    for t in tasks {
        let r = t.await??;
        total.dispatched += r.dispatched;
        total.deferred += r.deferred;
        total.suppressed += r.suppressed;
        total.no_lawful_time += r.no_lawful_time;
        total.dispatch_failed += r.dispatch_failed;
    }
    total.elapsed = started.elapsed();
    Ok((total, states.swap_remove(0)))
}

async fn claim(
    database_url: &str,
    ceiling_url: Option<&str>,
    due: usize,
    instances: usize,
) -> anyhow::Result<()> {
    let k = instances.max(1);
    let rules = bench_config(database_url)?.calling_rules();
    println!("claim: rules {}", describe_rules(&rules));
    // The ceiling, in the same run: as many plain reminders (each its own
    // debt, one zone, no history, nothing suppressed), the same rules, the
    // same code; nothing to hold back.
    let ceiling = match ceiling_url {
        Some(url) => {
            seed::plain_due(url, due, bench_start()).await?;
            let (run, _) = run_claims(url, k).await?;
            anyhow::ensure!(
                run.dispatched as usize == due,
                "ceiling: dispatched {}, expected {due}",
                run.dispatched
            );
            println!(
                "claim {k} instance(s), ceiling (plain reminders, nothing held back): \
                 {due} claimed and dispatched in {:.2} s = {:.0}/s",
                run.elapsed.as_secs_f64(),
                run.per_s(run.dispatched)
            );
            Some(run)
        }
        None => None,
    };
    let mix = seed::due(database_url, due, bench_start()).await?;
    println!("claim: seeded {}", mix.describe());
    let (run, state) = run_claims(database_url, k).await?;
    if run.decided() as usize != due {
        bail!("decided {}, expected {due}", run.decided());
    }
    let live = state.store.count_live().await?;
    let by: Vec<String> = seed::deferred_by(database_url)
        .await?
        .into_iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect();
    println!(
        "claim {k} instance(s), realistic mix: {due} due reminders decided in {:.2} s: \
         claimed and dispatched {} = {:.0}/s; deferred {} ({}); suppressed {}; \
         no lawful time {}; dispatch failed {}; decided {:.0}/s (live afterwards: {live})",
        run.elapsed.as_secs_f64(),
        run.dispatched,
        run.per_s(run.dispatched),
        run.deferred,
        by.join(", "),
        run.suppressed,
        run.no_lawful_time,
        run.dispatch_failed,
        run.per_s(run.decided()),
    );
    if let Some(c) = ceiling {
        println!(
            "claim {k} instance(s): realistic mix at {:.0} % of the ceiling \
             (dispatched/s {:.0} of {:.0}; decided/s {:.0} % of it)",
            100.0 * run.per_s(run.dispatched) / c.per_s(c.dispatched),
            run.per_s(run.dispatched),
            c.per_s(c.dispatched),
            100.0 * run.per_s(run.decided()) / c.per_s(c.dispatched),
        );
    }
    Ok(())
}

async fn scale(database_url: &str, rows: usize) -> anyhow::Result<()> {
    let seeded = Instant::now();
    let (mix, samples) = seed::table(database_url, rows, bench_start()).await?;
    let seeded = seeded.elapsed();
    let clock = BenchClock::new();
    println!("scale {rows} rows: seeded {}", mix.describe());
    let state = instance(database_url, Arc::clone(&clock)).await?;
    let rules = bench_config(database_url)?.calling_rules();
    let plans = state.store.query_plans(clock.now(), &rules).await?;
    // The claim tick: 100 due reminders of the mix are claimed and dispatched,
    // deferred or cancelled (nothing is overdue yet).
    let t = Instant::now();
    let first = state.scheduler.tick().await?;
    let claim_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Two minutes on, 25 live attempts have outlived the dispatch timeout.
    clock.advance(chrono::Duration::minutes(2));
    let t = Instant::now();
    let second = state.scheduler.tick().await?;
    let timeout_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Then idle ticks: the scans alone (nothing due, nothing overdue).
    let mut idle = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        state.scheduler.tick().await?;
        idle.push(t.elapsed());
    }
    idle.sort();
    // What one dashboard load asks of the database: the counts and the first page.
    let mut dash = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        state.store.count_by_status().await?;
        state
            .store
            .list_reminders(&duecall::store::ListQuery {
                status: None,
                limit: duecall::http::dashboard::PAGE_ROWS,
                after: None,
                search: None,
            })
            .await?;
        dash.push(t.elapsed());
    }
    dash.sort();
    // The dashboard's search: one number (one debt's reminders) among all the rows.
    let mut searched = Vec::new();
    for (phone, n) in samples {
        let t = Instant::now();
        let found = state
            .store
            .list_reminders(&duecall::store::ListQuery {
                status: None,
                limit: duecall::http::dashboard::PAGE_ROWS,
                after: None,
                search: Some(phone),
            })
            .await?;
        searched.push(t.elapsed());
        anyhow::ensure!(
            found.reminders.len() == n,
            "the search finds its debt's {n} reminders"
        );
    }
    searched.sort();
    println!(
        "scale {rows} rows: dashboard search by phone number median {:.2} ms, max {:.2} ms",
        searched[searched.len() / 2].as_secs_f64() * 1000.0,
        searched[searched.len() - 1].as_secs_f64() * 1000.0,
    );
    println!(
        "scale {rows} rows: dashboard load (counts by status + first page) median {:.2} ms, max {:.2} ms",
        dash[dash.len() / 2].as_secs_f64() * 1000.0,
        dash[dash.len() - 1].as_secs_f64() * 1000.0,
    );
    println!(
        "scale {rows} rows (seeded in {:.1} s): claim tick {claim_ms:.2} ms (dispatched {}, deferred {}, \
         suppressed {}, no lawful time {}); timeout tick {timeout_ms:.2} ms (timed out {}); \
         both {:.2} ms; idle tick median {:.2} ms, max {:.2} ms",
        seeded.as_secs_f64(),
        first.dispatched,
        first.deferred,
        first.suppressed,
        first.no_lawful_calling_time,
        second.timed_out,
        claim_ms + timeout_ms,
        idle[idle.len() / 2].as_secs_f64() * 1000.0,
        idle[idle.len() - 1].as_secs_f64() * 1000.0,
    );
    glance_at_scale(database_url, rows, &state, clock.now()).await?;
    for (query, plan) in plans {
        println!("  plan of {query} (before the first tick):");
        for line in plan.lines() {
            println!("    {}", abbreviate_arrays(line));
        }
    }
    anyhow::ensure!(
        first.dispatched + first.deferred + first.suppressed + first.no_lawful_calling_time == 100
            && first.timed_out == 0
            && second.timed_out == 25,
        "the claim tick decides the 100 due reminders (and times out nothing), the timeout \
         tick times out the 25 overdue attempts"
    );
    Ok(())
}

/// The dashboard's glance on the scale table: its figures and charts for
/// 7 / 30 / 90 days (the page's handler, 50 loads of the 90 days), against a
/// plain indexed count of the same attempts measured in this run.
async fn glance_at_scale(
    database_url: &str,
    rows: usize,
    state: &duecall::http::AppState,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    use duecall::http::glance::figures::period_days;
    let t = Instant::now();
    glance::seed(database_url, now).await?;
    let seeded = t.elapsed();
    let tz = state.config.default_timezone.tz();
    let (_, bounds) = period_days(90, now, tz);
    let (since, until) = (bounds[0], bounds[bounds.len() - 1]);
    let [attempts, promises, payments, opt_outs] =
        glance::counts(database_url, since, until).await?;
    println!(
        "scale {rows} rows: glance seed (+{:.1} s): in the last 90 days {attempts} attempts, \
         {promises} promises opened, {payments} payments, {opt_outs} opt-outs",
        seeded.as_secs_f64()
    );
    // The first load folds what the seed's writes appended (PostgreSQL's
    // deltas); timed on its own.
    let (first, _) = glance::page(state, 90, 1).await?;
    println!(
        "scale {rows} rows: glance first load after the seed {:.1} ms",
        glance::ms(first[0])
    );
    let mut p90 = Vec::new();
    for (days, loads) in [(7u32, 20usize), (30, 20), (90, 50)] {
        let (times, page) = glance::page(state, days, loads).await?;
        if days == 90 {
            anyhow::ensure!(
                glance::figure(&page, "attempts") == Some(attempts as u64)
                    && glance::figure(&page, "opt_outs") == Some(opt_outs as u64),
                "the page's figures equal plain counts of the same 90 days"
            );
            p90 = times.clone();
        }
        println!(
            "scale {rows} rows: glance page {days} days (figures + charts, {loads} loads) \
             p50 {:.2} ms, p99 {:.2} ms",
            glance::p(&times, 0.5),
            glance::p(&times, 0.99),
        );
    }
    let ceiling = glance::ceiling(database_url, since, until, 50).await?;
    let (_, day) = period_days(1, now, tz);
    let one_day =
        glance::ceiling(database_url, day[0] - chrono::Duration::days(1), day[0], 50).await?;
    println!(
        "scale {rows} rows: glance ceiling: plain indexed count(*) of the 90 days' attempts p50 {:.2} ms \
         (one day's p50 {:.3} ms); the 90-day page's p50 is {:.2}x the 90-day count",
        glance::p(&ceiling, 0.5),
        glance::p(&one_day, 0.5),
        glance::p(&p90, 0.5) / glance::p(&ceiling, 0.5).max(0.001),
    );
    Ok(())
}

/// PostgreSQL prints a bound array in full: `'{a,b,…}'` becomes `'{a,…}' (N)`.
fn abbreviate_arrays(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("'{") {
        let Some(len) = rest[start..].find("}'") else {
            break;
        };
        let inner = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        let n = inner.split(',').count();
        if n > 2 {
            let first = inner.split(',').next().unwrap_or_default();
            out.push_str(&format!("'{{{first},…}}' ({n} values)"));
        } else {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ingest {
            url,
            database_url,
            secret,
            events,
            concurrency,
            sink_port,
            sink_holds,
        } => {
            ingest(
                &url,
                &database_url,
                &secret,
                events,
                concurrency,
                sink_port,
                sink_holds,
            )
            .await
        }
        Command::Noop {
            url,
            requests,
            concurrency,
        } => noop(&url, requests, concurrency).await,
        Command::Fsync { dir, writes } => fsync(&dir, writes),
        Command::Storage {
            dir,
            events,
            concurrency,
            ceiling,
            ceiling_busy,
            prepare_sql,
        } => {
            let ceiling = ceiling.map(|rate| storage::Ceiling {
                rate,
                busy: ceiling_busy / 100.0,
            });
            storage::run(&dir, events, concurrency, ceiling, prepare_sql.as_deref()).await
        }
        Command::Claim {
            database_url,
            ceiling_database_url,
            due,
            instances,
        } => {
            claim(
                &database_url,
                ceiling_database_url.as_deref(),
                due,
                instances,
            )
            .await
        }
        Command::Scale { database_url, rows } => scale(&database_url, rows).await,
    }
}
