//! `duecall demo`: the whole lifecycle in under a minute, with no LiveKit
//! account. The real service (HTTP, scheduler, SQLite) runs in this process
//! with the simulated dialer and compressed timings; a realistic batch of
//! reminders goes in through the reminders API; simulated agents report
//! through the signed call-status webhook; the demo prints each change as it
//! sees it, then a summary table and where the data lives.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use serde_json::{json, Value};

use crate::clock::SystemClock;
use crate::config::Config;

/// One reminder of the demo batch, and what its simulated customer does.
struct Sample {
    reference: &'static str,
    name: &'static str,
    phone: &'static str,
    amount_minor: i64,
    currency: &'static str,
    timezone: &'static str,
    language: &'static str,
    persona: &'static str,
}

const BATCH: &[Sample] = &[
    Sample {
        reference: "demo-01",
        name: "Ada Lovelace",
        phone: "+14155550101",
        amount_minor: 12_345,
        currency: "USD",
        timezone: "America/New_York",
        language: "en",
        persona: "promise",
    },
    Sample {
        reference: "demo-02",
        name: "Grace Hopper",
        phone: "+13125550102",
        amount_minor: 4_200,
        currency: "USD",
        timezone: "America/Chicago",
        language: "en",
        persona: "paid",
    },
    Sample {
        reference: "demo-03",
        name: "Alan Turing",
        phone: "+442079460103",
        amount_minor: 89_900,
        currency: "GBP",
        timezone: "Europe/London",
        language: "en-GB",
        persona: "no_answer,promise",
    },
    Sample {
        reference: "demo-04",
        name: "Katherine Johnson",
        phone: "+12135550104",
        amount_minor: 15_000,
        currency: "USD",
        timezone: "America/Los_Angeles",
        language: "en",
        persona: "silent,promise",
    },
    Sample {
        reference: "demo-05",
        name: "Hedy Lamarr",
        phone: "+493055501050",
        amount_minor: 23_050,
        currency: "EUR",
        timezone: "Europe/Berlin",
        language: "de",
        persona: "dispute",
    },
    Sample {
        reference: "demo-06",
        name: "Claude Shannon",
        phone: "+16175550106",
        amount_minor: 7_500,
        currency: "USD",
        timezone: "America/New_York",
        language: "en",
        persona: "busy",
    },
    Sample {
        reference: "demo-07",
        name: "Margaret Hamilton",
        phone: "+16175550107",
        amount_minor: 31_000,
        currency: "USD",
        timezone: "America/New_York",
        language: "en",
        persona: "callback,promise",
    },
    Sample {
        reference: "demo-08",
        name: "Tim Berners-Lee",
        phone: "+442079460108",
        amount_minor: 5_000,
        currency: "GBP",
        timezone: "Europe/London",
        language: "en-GB",
        persona: "wrong_number",
    },
    Sample {
        reference: "demo-09",
        name: "Radia Perlman",
        phone: "+12065550109",
        amount_minor: 18_900,
        currency: "USD",
        timezone: "America/Los_Angeles",
        language: "en",
        persona: "opt_out",
    },
    Sample {
        reference: "demo-10",
        name: "Edsger Dijkstra",
        phone: "+31205550110",
        amount_minor: 64_000,
        currency: "EUR",
        timezone: "Europe/Amsterdam",
        language: "nl",
        persona: "invalid_number",
    },
    Sample {
        reference: "demo-11",
        name: "Barbara Liskov",
        phone: "+16175550111",
        amount_minor: 9_999,
        currency: "USD",
        timezone: "America/New_York",
        language: "en",
        persona: "refuse",
    },
    Sample {
        reference: "demo-12",
        name: "Shigeru Miyamoto",
        phone: "+81355550112",
        amount_minor: 250_000,
        currency: "JPY",
        timezone: "Asia/Tokyo",
        language: "ja",
        persona: "voicemail,promise",
    },
    Sample {
        reference: "demo-13",
        name: "Katherine Johnson",
        phone: "+17575550113",
        amount_minor: 22_750,
        currency: "USD",
        timezone: "America/New_York",
        language: "en",
        persona: "third_party,promise",
    },
];

/// The demo's settings: the simulated dialer, a tick a second, a call given
/// up after 3 s of silence, retries after 1 s (doubling), calls at any hour.
fn demo_config(
    db: &Path,
    bind: &str,
    secret: &str,
    api_key: &str,
    dashboard_password: &str,
) -> anyhow::Result<Config> {
    let vars: HashMap<&str, String> = HashMap::from([
        ("DASHBOARD_PASSWORD", dashboard_password.to_owned()),
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("BIND_ADDR", bind.to_owned()),
        ("WEBHOOK_SECRET", secret.to_owned()),
        ("DUECALL_API_KEY", api_key.to_owned()),
        ("DIALER", "simulated".to_owned()),
        ("SCHEDULER_INTERVAL_SECS", "1".to_owned()),
        ("DISPATCH_TIMEOUT_SECS", "3".to_owned()),
        ("CALL_TIMEOUT_SECS", "20".to_owned()),
        ("RETRY_DELAY_SECS", "1".to_owned()),
        ("MAX_CONCURRENT_CALLS", "4".to_owned()),
        ("CALLING_WINDOW", "00:00-23:59".to_owned()),
        ("CALLING_DAYS", "Mon-Sun".to_owned()),
        ("DEFAULT_MAX_ATTEMPTS", "3".to_owned()),
    ]);
    Config::from_lookup(|k| vars.get(k).cloned()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes.div_ceil(16))
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .take(bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Minor units as an amount a person reads: `123.45 USD`, `250000 JPY`.
fn money(minor: i64, currency: &str) -> String {
    match currency {
        "JPY" | "KRW" | "CLP" | "ISK" | "VND" => format!("{minor} {currency}"),
        _ => format!("{}.{:02} {currency}", minor / 100, minor % 100),
    }
}

fn settled(r: &Value) -> bool {
    match r["status"].as_str() {
        Some("completed" | "cancelled") => true,
        Some("failed") => r["next_attempt_at"].is_null(),
        _ => false,
    }
}

/// What a reminder came to, in a few words.
fn result_of(r: &Value) -> String {
    let o = &r["outcome"];
    match (r["status"].as_str(), o["result"].as_str()) {
        (Some("completed"), Some("payment_promised")) => {
            let amount = o["promised_amount_minor"]
                .as_i64()
                .map(|m| money(m, r["currency"].as_str().unwrap_or("")))
                .unwrap_or_else(|| "?".to_owned());
            let by = o["promised_date"].as_str().unwrap_or("?");
            format!("payment_promised: {amount} by {by}")
        }
        (Some("completed"), Some(result)) => result.to_owned(),
        _ => r["skip_reason"].as_str().unwrap_or("").to_owned(),
    }
}

/// Run the demo in `dir` (its database is replaced), printing to `out`.
/// Fails if the batch has not settled within `deadline`.
/// Run the demo, printing to `out`. With `serve_until`, the service stays up after
/// the summary (its dashboard open with a password printed for the purpose) until
/// that future completes.
pub async fn run(
    dir: &Path,
    deadline: Duration,
    out: &mut impl Write,
    serve_until: Option<impl std::future::Future<Output = ()>>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let db: PathBuf = dir.join("duecall.db");
    for suffix in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", db.display()));
        if f.exists() {
            std::fs::remove_file(&f).with_context(|| format!("cannot remove {}", f.display()))?;
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let api_key = random_token(24);
    // URL-safe: it is printed for a person to type (and only with --serve).
    let dashboard_password = format!("demo-{}", random_token(12).replace(['+', '/', '='], "x"));
    let config = demo_config(
        &db,
        &addr.to_string(),
        &format!("whsec_{}", random_token(32)),
        &api_key,
        &dashboard_password,
    )?;
    let every = config.scheduler_interval;
    let state = crate::build_state(config, Arc::new(SystemClock))
        .await
        .context("cannot open the demo database")?;
    let store = Arc::clone(&state.store);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(listener, state.clone(), async {
        let _ = http_stop_rx.await;
    }));
    let ticker = tokio::spawn(Arc::clone(&state.scheduler).run(every, stop_rx));

    writeln!(
        out,
        "duecall demo: the service runs at http://{addr} on SQLite ({}), with simulated agents\n\
         (no LiveKit, nobody is really called) and compressed timings: a tick a second, silence\n\
         given up after 3 s, retries after 1 s, 2 s, …, at most 4 calls at once, at any hour.\n",
        db.display()
    )?;

    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut names: HashMap<String, (&str, &str)> = HashMap::new();
    for s in BATCH {
        let body = json!({
            "external_id": s.reference, "customer_name": s.name, "phone_number": s.phone,
            "amount_due_minor": s.amount_minor, "currency": s.currency,
            "due_date": (chrono::Utc::now() + chrono::Duration::days(7)).format("%Y-%m-%d").to_string(),
            "timezone": s.timezone, "language": s.language,
            "metadata": {"persona": s.persona},
        });
        let resp = client
            .post(format!("{base}/api/reminders"))
            .bearer_auth(&api_key)
            .json(&body)
            .send()
            .await
            .context("creating a reminder")?;
        if !resp.status().is_success() {
            bail!("creating {} answered {}", s.reference, resp.status());
        }
        let created: Value = resp.json().await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        names.insert(id, (s.reference, s.name));
    }
    writeln!(
        out,
        "Loaded {} reminders through POST /api/reminders. Watching them:\n",
        BATCH.len()
    )?;

    let mut seen: HashMap<String, (String, u64)> = HashMap::new();
    let reminders = loop {
        let resp = client
            .get(format!("{base}/api/reminders?limit=200"))
            .bearer_auth(&api_key)
            .send()
            .await
            .context("listing reminders")?;
        let page: Value = resp.json().await?;
        let list = page["reminders"].as_array().cloned().unwrap_or_default();
        for r in &list {
            let id = r["id"].as_str().unwrap_or_default().to_owned();
            let status = r["status"].as_str().unwrap_or_default().to_owned();
            let attempt = r["attempt_count"].as_u64().unwrap_or(0);
            let before = seen.insert(id.clone(), (status.clone(), attempt));
            if before.as_ref() == Some(&(status.clone(), attempt)) {
                continue;
            }
            let (reference, name) = names.get(&id).copied().unwrap_or(("?", "?"));
            let from = before.map_or("new".to_owned(), |(s, _)| s);
            let detail = match status.as_str() {
                "completed" | "failed" | "cancelled" | "pending" if attempt > 0 => {
                    format!("  ({})", result_of(r))
                }
                _ => String::new(),
            };
            writeln!(
                out,
                "{:>6.1}s  {reference}  {name:<18}  attempt {attempt}  {from} → {status}{detail}",
                started.elapsed().as_secs_f64()
            )?;
        }
        if list.len() == BATCH.len() && list.iter().all(settled) {
            break list;
        }
        if started.elapsed() > deadline {
            bail!(
                "the demo did not settle within {} s; see the database at {}",
                deadline.as_secs(),
                db.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = started.elapsed();

    // The summary, oldest first, with what the database holds for each.
    let mut rows = Vec::new();
    let (mut attempts_total, mut events_total) = (0usize, 0u64);
    let (mut retried, mut rescued, mut called_back) = (Vec::new(), Vec::new(), Vec::new());
    for r in reminders.iter().rev() {
        let id = crate::domain::ReminderId::parse(r["id"].as_str().unwrap_or_default())
            .context("a reminder id")?;
        let attempts = store.list_attempts(id).await?;
        let (reference, name) = names.get(&id.to_string()).copied().unwrap_or(("?", "?"));
        let before_last = attempts.len().saturating_sub(1);
        for a in &attempts[..before_last] {
            if a.outcome.as_ref().is_some_and(|o| o.result.is_unreached()) {
                retried.push(reference);
            }
            if a.outcome.as_ref().is_some_and(|o| o.callback_at.is_some()) {
                called_back.push(reference);
            }
            if a.failure.as_ref().and_then(|f| f.reason.as_deref())
                == Some(crate::domain::SKIP_CALL_TIMEOUT)
            {
                rescued.push(reference);
            }
        }
        attempts_total += attempts.len();
        events_total += store.count_events(id).await?;
        rows.push((reference, name, r.clone()));
    }
    retried.sort();
    retried.dedup();
    rescued.sort();
    rescued.dedup();
    called_back.sort();
    called_back.dedup();
    rows.sort_by_key(|(reference, _, _)| *reference);
    writeln!(out, "\nSummary ({:.1} s):\n", took.as_secs_f64())?;
    writeln!(
        out,
        "{:<8}  {:<18}  {:<14}  {:<10}  {:<8}  result",
        "ref", "customer", "amount", "status", "attempts"
    )?;
    writeln!(out, "{}", "-".repeat(96))?;
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for (reference, name, r) in &rows {
        let status = r["status"].as_str().unwrap_or("?");
        *by_status.entry(status.to_owned()).or_default() += 1;
        writeln!(
            out,
            "{reference:<8}  {name:<18}  {:<14}  {status:<10}  {:<8}  {}",
            money(
                r["amount_due_minor"].as_i64().unwrap_or(0),
                r["currency"].as_str().unwrap_or("")
            ),
            r["attempt_count"].as_u64().unwrap_or(0),
            result_of(r)
        )?;
    }
    let mut counts: Vec<_> = by_status.into_iter().collect();
    counts.sort();
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    writeln!(
        out,
        "\nEvery reminder settled: {}. The database holds {} reminders, {attempts_total} attempts \
         and {events_total} agent reports.",
        counts.join(", "),
        rows.len()
    )?;
    let list = |v: &[&str]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    writeln!(
        out,
        "Retried after no answer, busy, voicemail or someone else answering: {}. Called back at \
         the time they asked: {}. Rescued by the timeout monitor after their agent went silent: {}.\n\n\
         The data lives in {} (SQLite). Look inside:\n  \
         sqlite3 {} \"select external_id, status, attempt_count, skip_reason from reminders order by external_id\"\n\
         To run the service for real: cargo run --release -- init && cargo run --release -- serve",
        list(&retried),
        list(&called_back),
        list(&rescued),
        db.display(),
        db.display()
    )?;
    if let Some(until) = serve_until {
        writeln!(
            out,
            "\nThe dashboard: http://{addr}/  password: {dashboard_password}\n             (this demo's own; the service stays up until Ctrl-C)"
        )?;
        out.flush()?;
        until.await;
    } else {
        writeln!(
            out,
            "See it in the dashboard: cargo run --release -- demo --serve"
        )?;
    }

    let _ = stop_tx.send(true);
    let _ = ticker.await;
    state.scheduler.drain(Duration::from_secs(5)).await;
    let _ = http_stop_tx.send(());
    let _ = server.await;
    Ok(())
}
