//! `storage`: what an event costs SQLite with no HTTP at all, beside the
//! no-op ceiling measured in the same run (issue 15's target: ingestion at
//! concurrency 32 at half that ceiling).
//!
//! At half the ceiling `C` (requests/s) on `k` cores, an event may cost at most
//! twice what a no-op request costs, `2 × k / C` of CPU: the no-op's own `k / C`
//! (the load generator and the HTTP stack) and as much again for everything
//! the service does beyond answering. This prints, against that budget:
//!
//! - **the store alone**: `Store::ingest` — the service's own writer thread,
//!   statements, batching and decision — driven by `concurrency` tasks in this
//!   process, with the same events the `ingest` benchmark sends, and no HTTP;
//! - **SQLite's least**: one thread and a bare connection doing the least any
//!   design keeping the same facts could (read the reminder and its attempt,
//!   append the event, update the two rows, one durable commit per batch) on
//!   a schema with no secondary index, no trigger and no count: what SQLite
//!   and the kernel cost without any of duecall's code or features.
//!
//! CPU is read from `/proc` (every thread of this process; the least's own
//! thread), so the figures do not depend on what else the machine is doing
//! as much as a rate does.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use duecall::clock::{Clock, SystemClock};
use duecall::domain::{self, ReminderId};
use duecall::store::{Applied, Decide};

/// CPU time (user + system) of the threads of this process, by name.
fn cpu_by_thread() -> Vec<(String, Duration)> {
    let mut out: Vec<(String, Duration)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Some((name, cpu)) = thread_cpu(&task.path().join("stat")) else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += cpu,
            None => out.push((name, cpu)),
        }
    }
    out
}

/// A `/proc/…/stat` file's thread name and its CPU time (utime + stime).
fn thread_cpu(stat: &Path) -> Option<(String, Duration)> {
    let text = std::fs::read_to_string(stat).ok()?;
    let (head, tail) = text.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, Duration::from_secs_f64(ticks as f64 / clock_ticks())))
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
fn clock_ticks() -> f64 {
    100.0
}

fn micros_per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// The body the `ingest` benchmark sends for reminder `id`.
fn body(id: &uuid::Uuid) -> String {
    serde_json::json!({
        "event_type": "call_completed", "reminder_id": id.to_string(), "attempt": 1,
        "outcome": {"result": "payment_promised", "promised_amount_minor": 12345,
                    "promised_date": "2026-12-24", "summary": "Will pay before Christmas.",
                    "duration_seconds": 87}
    })
    .to_string()
}

/// The no-op ceiling of the same run: its rate (requests/s) and how busy it
/// kept the machine (0 to 1).
pub struct Ceiling {
    pub rate: f64,
    pub busy: f64,
}

/// The machine's CPU time so far, busy and idle, from `/proc/stat`.
pub struct MachineCpu {
    busy: u64,
    idle: u64,
}

impl MachineCpu {
    /// The busy share of the machine between `self` and `later`.
    pub fn busy_until(&self, later: &MachineCpu) -> f64 {
        let busy = later.busy.saturating_sub(self.busy) as f64;
        let idle = later.idle.saturating_sub(self.idle) as f64;
        busy / (busy + idle).max(1.0)
    }
}

pub fn machine_cpu() -> Option<MachineCpu> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(MachineCpu {
        busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
        idle: at(3) + at(4),
    })
}

pub async fn run(
    dir: &Path,
    events: usize,
    concurrency: usize,
    ceiling: Option<Ceiling>,
    prepare: Option<&str>,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let store = store_alone(dir, events, concurrency, prepare).await?;
    let least = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || {
            let durable = sqlite_least(&dir.join("least.db"), events, 32, true)?;
            sqlite_least(&dir.join("least-nosync.db"), events, 32, false)?;
            anyhow::Ok(durable)
        }
    })
    .await??;
    let Some(Ceiling { rate, busy }) = ceiling else {
        return Ok(());
    };
    // At half the ceiling an event may use 2 × cores / rate of CPU; the
    // no-op's own share of that is busy × cores / rate (an event's HTTP costs
    // at least a no-op's), which leaves the rest for the service's own work.
    let budget = 1e6 * (2.0 - busy) * cores / rate;
    let best = |storage: f64| 100.0 / (busy + storage * rate / cores / 1e6);
    println!(
        "budget at 50 % of a {rate:.0}/s ceiling ({cores} cores, {:.0} % busy): {budget:.1} us of \
         CPU per event beyond a no-op request; the store alone needs {store:.1} ({:.1}x the \
         budget), SQLite's least {least:.1} ({:.1}x); at most {:.0} % of the ceiling with this \
         store, {:.0} % with SQLite's least, were everything else of the handler free",
        100.0 * busy,
        store / budget,
        least / budget,
        best(store),
        best(least),
    );
    Ok(())
}

/// `Store::ingest` of `events` call_completed events, `concurrency` at a
/// time, after `prepare` (SQL run on the migrated database, for A/B
/// experiments); prints the figures and returns the CPU per event of the
/// process.
async fn store_alone(
    dir: &Path,
    events: usize,
    concurrency: usize,
    prepare: Option<&str>,
) -> anyhow::Result<f64> {
    let path = dir.join("storage.db");
    let url = format!("sqlite://{}", path.display());
    let store = duecall::store::connect(&url, 8).await?;
    if let Some(sql) = prepare {
        // An experiment's change to the migrated schema (A/B runs only).
        rusqlite::Connection::open(&path)?.execute_batch(sql)?;
    }
    let ids = crate::seed::live(&url, events, SystemClock.now()).await?;
    let config = crate::bench_config(&url)?;
    let retry = Arc::new(duecall::policy::RetryPolicy {
        base_delay: chrono::Duration::from_std(config.retry_delay)?,
        window: config.calling_window.clone(),
    });
    let grace = config.promise_grace_days;
    // Parsed, as the handler parses them, before the clock starts.
    let now = SystemClock.now();
    let jobs: Vec<(ReminderId, domain::Event, String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let payload = body(id);
            let event = duecall::webhook::parse_event(payload.as_bytes(), now)
                .map_err(|e| anyhow::anyhow!("the bench's own event: {e:?}"))?;
            Ok((
                event.reminder_id,
                event,
                format!("msg_storage_{i}"),
                payload,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let jobs = Arc::new(std::sync::Mutex::new(
        jobs.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let before = cpu_by_thread();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (jobs, next, done) = (Arc::clone(&jobs), Arc::clone(&next), Arc::clone(&done));
        let (store, retry) = (Arc::clone(&store), Arc::clone(&retry));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.lock().expect("jobs").get_mut(i).and_then(Option::take) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let (id, event, webhook_id, payload) = job;
                let attempt = event.attempt;
                // The handler's own decision (http/call_status.rs).
                let decide: Box<Decide> = duecall::http::call_status::decider(
                    Arc::new(SystemClock),
                    Arc::clone(&retry),
                    grace,
                    event,
                    webhook_id,
                    payload,
                );
                let ingested = store
                    .ingest(id, attempt, decide)
                    .await?
                    .context("a seeded reminder is missing")?;
                anyhow::ensure!(
                    matches!(ingested.applied, Applied::Done(_)),
                    "an event was not applied"
                );
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    let after = cpu_by_thread();
    let n = done.load(Ordering::Relaxed);
    anyhow::ensure!(n == events, "{n} of {events} events applied");
    let spent = |name: &str| {
        let of = |v: &[(String, Duration)]| {
            v.iter()
                .filter(|(t, _)| name.is_empty() || t.as_str() == name)
                .map(|(_, d)| *d)
                .sum::<Duration>()
        };
        micros_per(of(&after).saturating_sub(of(&before)), n)
    };
    let total = spent("");
    println!(
        "storage c={concurrency}: {n} events through Store::ingest, no HTTP, in {:.2} s = {:.0}/s; \
         CPU per event {total:.1} us (sqlite-writer {:.1}, sqlite-ckpt {:.1}, tokio {:.1})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        spent("sqlite-writer"),
        spent("sqlite-ckpt"),
        spent("tokio-runtime-w") + spent("tokio-rt-worker"),
    );
    Ok(total)
}

/// The least: `events` events in batches of `batch`, one thread, a bare
/// rusqlite connection (WAL, the service's build of SQLite, no checkpoint
/// during the run), a schema with only the primary keys; `durable`:
/// `synchronous=FULL` (a commit is on disk when it returns), else `OFF` (no
/// `fdatasync` at all: what the CPU costs without durability). Prints the
/// figures and returns the thread's CPU per event.
fn sqlite_least(path: &Path, events: usize, batch: usize, durable: bool) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    let sync = if durable { "FULL" } else { "OFF" };
    conn.execute_batch(&format!("PRAGMA synchronous = {sync};"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE reminders (id BLOB PRIMARY KEY, status TEXT NOT NULL,
             attempt_count INTEGER NOT NULL, outcome TEXT, updated_at INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE attempts (reminder_id BLOB NOT NULL, attempt INTEGER NOT NULL,
             status TEXT NOT NULL, ended_at INTEGER, outcome TEXT,
             PRIMARY KEY (reminder_id, attempt)) WITHOUT ROWID;
         CREATE TABLE events (webhook_id TEXT PRIMARY KEY, reminder_id BLOB NOT NULL,
             attempt INTEGER, event_type TEXT NOT NULL, received_at INTEGER NOT NULL,
             payload TEXT NOT NULL) WITHOUT ROWID;",
    )?;
    let ids: Vec<uuid::Uuid> = (0..events).map(|_| uuid::Uuid::now_v7()).collect();
    {
        let tx = conn.unchecked_transaction()?;
        for id in &ids {
            tx.execute(
                "INSERT INTO reminders VALUES (?, 'in_progress', 1, NULL, 0)",
                [id.as_bytes()],
            )?;
            tx.execute(
                "INSERT INTO attempts VALUES (?, 1, 'in_progress', NULL, NULL)",
                [id.as_bytes()],
            )?;
        }
        tx.commit()?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    let outcome = r#"{"result":"payment_promised","promised_amount_minor":12345,"promised_date":"2026-12-24","summary":"Will pay before Christmas.","duration_seconds":87}"#;
    let bodies: Vec<String> = ids.iter().map(body).collect();
    let cpu = || thread_cpu(Path::new("/proc/thread-self/stat")).map(|(_, d)| d);
    let before = cpu().context("this thread's CPU time")?;
    let started = Instant::now();
    for (n, chunk) in ids.chunks(batch.max(1)).enumerate() {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for (j, id) in chunk.iter().enumerate() {
            let i = n * batch + j;
            let (status, count, attempt_status): (String, i64, String) = conn
                .prepare_cached(
                    "SELECT r.status, r.attempt_count, a.status FROM reminders r \
                     JOIN attempts a ON a.reminder_id = r.id AND a.attempt = ?2 WHERE r.id = ?1",
                )?
                .query_row(rusqlite::params![id.as_bytes(), 1], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            anyhow::ensure!(
                status == "in_progress" && count == 1 && attempt_status == "in_progress"
            );
            let at = i as i64;
            conn.prepare_cached(
                "INSERT INTO events VALUES (?, ?, 1, 'call_completed', ?, ?) \
                 ON CONFLICT (webhook_id) DO NOTHING",
            )?
            .execute(rusqlite::params![
                format!("msg_least_{i}"),
                id.as_bytes(),
                at,
                bodies[i]
            ])?;
            conn.prepare_cached(
                "UPDATE reminders SET status = 'completed', outcome = ?, updated_at = ? \
                 WHERE id = ? AND status = 'in_progress'",
            )?
            .execute(rusqlite::params![outcome, at, id.as_bytes()])?;
            conn.prepare_cached(
                "UPDATE attempts SET status = 'completed', ended_at = ?, outcome = ? \
                 WHERE reminder_id = ? AND attempt = 1 AND status = 'in_progress'",
            )?
            .execute(rusqlite::params![at, outcome, id.as_bytes()])?;
        }
        conn.execute_batch("COMMIT")?;
    }
    let elapsed = started.elapsed();
    let spent = cpu()
        .context("this thread's CPU time")?
        .saturating_sub(before);
    let per = micros_per(spent, events);
    println!(
        "sqlite least: {events} events in batches of {batch}, one thread, no index, trigger or \
         count, synchronous={sync}, in {:.2} s = {:.0}/s; CPU per event {per:.1} us (checkpoints \
         not counted)",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
    );
    Ok(per)
}
