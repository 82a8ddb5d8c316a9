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

mod seed;

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

async fn ingest(
    url: &str,
    database_url: &str,
    secret: &str,
    events: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
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
    let label = format!("ingest c={concurrency}");
    fire(label, requests, concurrency).await?.print();
    Ok(())
}

async fn noop(url: &str, requests: usize, concurrency: usize) -> anyhow::Result<()> {
    let client = client(concurrency);
    let target = format!("{}/healthz", url.trim_end_matches('/'));
    let reqs = (0..requests).map(|_| client.get(&target)).collect();
    fire(format!("noop   c={concurrency}"), reqs, concurrency)
        .await?
        .print();
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

fn bench_config(database_url: &str) -> anyhow::Result<duecall::config::Config> {
    let vars = [
        ("DATABASE_URL", database_url),
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("CALLING_WINDOW", "00:00-23:59"),
        ("CALLING_DAYS", "Mon-Sun"),
        ("MAX_CONCURRENT_CALLS", "100000"),
        ("DATABASE_MAX_CONNECTIONS", "8"),
    ];
    duecall::config::Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn instance(database_url: &str) -> anyhow::Result<duecall::http::AppState> {
    let config = bench_config(database_url)?;
    let store = duecall::store::connect(database_url, 8).await?;
    Ok(duecall::state_with_dialer(
        store,
        Arc::new(SystemClock),
        config,
        Some(Arc::new(InstantDialer)),
    ))
}

async fn claim(database_url: &str, due: usize, instances: usize) -> anyhow::Result<()> {
    let now = SystemClock.now();
    seed::due(database_url, due, now).await?;
    let mut states = Vec::new();
    for _ in 0..instances.max(1) {
        states.push(instance(database_url).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for state in states.clone() {
        tasks.push(tokio::spawn(async move {
            let mut dispatched = 0u64;
            loop {
                let r = state.scheduler.tick().await?;
                dispatched += r.dispatched;
                if r.dispatched == 0 && state.store.due(state.clock.now(), 1).await?.is_empty() {
                    return anyhow::Ok(dispatched);
                }
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let elapsed = started.elapsed();
    if total as usize != due {
        bail!("dispatched {total}, expected {due}");
    }
    let live = states[0].store.count_live().await?;
    println!(
        "claim {} instance(s): {due} due reminders claimed and dispatched in {:.2} s = {:.0}/s (live afterwards: {live})",
        instances.max(1),
        elapsed.as_secs_f64(),
        due as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

async fn scale(database_url: &str, rows: usize) -> anyhow::Result<()> {
    let now: DateTime<Utc> = SystemClock.now();
    let seeded = Instant::now();
    seed::table(database_url, rows, now).await?;
    let seeded = seeded.elapsed();
    let state = instance(database_url).await?;
    let plans = state.store.query_plans(now).await?;
    // The first tick: 25 overdue attempts time out, 100 due reminders are claimed and dispatched.
    let t = Instant::now();
    let first = state.scheduler.tick().await?;
    let first_ms = t.elapsed().as_secs_f64() * 1000.0;
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
    // The dashboard's search: one number among all the rows.
    let mut searched = Vec::new();
    for i in 0..20u64 {
        let phone = seed::seeded_phone(1 + i * (rows as u64 / 20).max(1));
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
            found.reminders.len() == 1,
            "the search finds its one reminder"
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
        "scale {rows} rows (seeded in {:.1} s): first tick {first_ms:.2} ms (timed out {}, dispatched {}); idle tick median {:.2} ms, max {:.2} ms",
        seeded.as_secs_f64(),
        first.timed_out,
        first.dispatched,
        idle[idle.len() / 2].as_secs_f64() * 1000.0,
        idle[idle.len() - 1].as_secs_f64() * 1000.0,
    );
    for (query, plan) in plans {
        println!("  plan of {query} (before the first tick):");
        for line in plan.lines() {
            println!("    {line}");
        }
    }
    Ok(())
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
        } => ingest(&url, &database_url, &secret, events, concurrency).await,
        Command::Noop {
            url,
            requests,
            concurrency,
        } => noop(&url, requests, concurrency).await,
        Command::Claim {
            database_url,
            due,
            instances,
        } => claim(&database_url, due, instances).await,
        Command::Scale { database_url, rows } => scale(&database_url, rows).await,
    }
}
