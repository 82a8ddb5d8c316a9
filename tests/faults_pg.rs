//! PostgreSQL stopped and started under load (issue 6): while the database is
//! down the service answers 500/503 with a JSON error body — promptly, with no
//! hang beyond the agent's timeout, no dropped connection, no panic — `/readyz`
//! says 503 while `/healthz` says 200; once it is back, everything recovers by
//! itself and every event ever answered 2xx is in the database.
//!
//! It stops and starts a PostgreSQL server, so it never runs against a shared
//! one: `#[ignore]`d, it runs through `scripts/faults`, which starts a private
//! cluster and passes it in the environment:
//!
//! - `DUECALL_FAULTS_PG_URL`: the private server's URL;
//! - `DUECALL_FAULTS_PG_DATA`: its data directory (for `pg_ctl -D`);
//! - `DUECALL_FAULTS_PG_LOG`: its log file (for `pg_ctl start -l`);
//! - `DUECALL_FAULTS_PG_BIN`: the directory of `pg_ctl` (else `pg_ctl` on PATH);
//! - `DUECALL_FAULTS_PG_RUNAS`: the user to run `pg_ctl` as (through
//!   `runuser`), when the tests run as root;
//! - optionally `DUECALL_FAULTS_DOWN_SECS`: how long the database stays down
//!   (3 s by default).

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::{self, Delivery, Heard, Load, Reply, Server, CLIENT_TIMEOUT};
use duecall::domain::ReminderId;

const REMINDERS: usize = 800;
const AGENTS: usize = 8;
/// Each agent's pause between two reminders: a steady load, not a flood.
const PACE: Duration = Duration::from_millis(100);
/// Steady load before the database stops.
const WARM_UP: Duration = Duration::from_millis(1500);
/// How long the database stays down, unless `DUECALL_FAULTS_DOWN_SECS` says.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// The service must be ready again this soon after the database is.
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);
/// Load after recovery, to see new events answered.
const AFTER_FOR: Duration = Duration::from_millis(2000);

/// The private server of scripts/faults.
struct PrivatePg {
    url: String,
    data: String,
    log: String,
    pg_ctl: String,
    run_as: Option<String>,
}

impl PrivatePg {
    fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
                panic!("{name} is not set: this test stops a PostgreSQL server; run scripts/faults")
            })
        };
        let opt = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            url: var("DUECALL_FAULTS_PG_URL"),
            data: var("DUECALL_FAULTS_PG_DATA"),
            log: var("DUECALL_FAULTS_PG_LOG"),
            pg_ctl: opt("DUECALL_FAULTS_PG_BIN")
                .map(|dir| format!("{dir}/pg_ctl"))
                .unwrap_or_else(|| "pg_ctl".to_owned()),
            run_as: opt("DUECALL_FAULTS_PG_RUNAS"),
        }
    }

    /// `pg_ctl -D <data> <args>`, as the cluster's owner, bounded in time.
    async fn ctl(&self, args: &[&str]) {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = tokio::process::Command::new("runuser");
                c.args(["-u", user, "--", &self.pg_ctl]);
                c
            }
            None => tokio::process::Command::new(&self.pg_ctl),
        };
        cmd.args(["-D", &self.data])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("pg_ctl {args:?} finishes within 30 s"))
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn stop(&self) {
        self.ctl(&["stop", "-m", "fast", "-w", "-t", "20"]).await;
    }

    async fn start(&self) {
        self.ctl(&["start", "-w", "-t", "20", "-l", &self.log])
            .await;
    }
}

/// `GET path` once, with the agent's timeout.
async fn probe(base: &str, path: &str) -> (Heard, Duration) {
    let started = Instant::now();
    let heard = load::hear(load::http_client().get(format!("{base}{path}"))).await;
    (heard, started.elapsed())
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops a PostgreSQL server: run scripts/faults"]
async fn postgres_stopped_and_started_under_load() {
    let t0 = Instant::now();
    let pg = PrivatePg::from_env();
    let down_for = std::env::var("DUECALL_FAULTS_DOWN_SECS")
        .ok()
        .map(|s| Duration::from_secs(s.parse().expect("DUECALL_FAULTS_DOWN_SECS: whole seconds")))
        .unwrap_or(DOWN_FOR);
    let url = load::pg_schema_url(&pg.url).await;
    let ids: Vec<ReminderId> = (0..REMINDERS).map(|_| ReminderId::new()).collect();
    load::seed_live(&url, &ids).await;
    let plan = load::plan(&ids);
    eprintln!("seeded {REMINDERS} live reminders in {:.1?}", t0.elapsed());

    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &url, load::free_port());
    server.wait_ready(Duration::from_secs(20)).await;
    let load = Load::new(&server.base, Instant::now() + Duration::from_secs(60), PACE);
    let agents = load.spawn(plan, AGENTS);
    // The business system reads while the agents report.
    let reader = {
        let load = Arc::clone(&load);
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !load.stopped() {
                load.read("/api/reminders?limit=20").await;
                load.read(&format!("/api/reminders/{}", ids[i % ids.len()]))
                    .await;
                i += 7;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    tokio::time::sleep(WARM_UP).await;
    let answered_before = load.answered();
    pg.stop().await;
    let stopped_at = Instant::now();
    load.set_phase(load::DURING);
    eprintln!(
        "PostgreSQL stopped at {:.1?} ({answered_before} events answered until then)",
        t0.elapsed()
    );

    // Mid-outage, the operator's probes (not waited for here: a probe that
    // hangs must not delay the restart).
    let probes = {
        let base = server.base.clone();
        tokio::spawn(async move {
            tokio::time::sleep(down_for / 3).await;
            let (ready, healthy) = tokio::join!(probe(&base, "/readyz"), probe(&base, "/healthz"));
            (ready, healthy)
        })
    };

    tokio::time::sleep(down_for.saturating_sub(stopped_at.elapsed())).await;
    let alive_while_down = server.is_running();
    let start_at = Instant::now();
    pg.start().await;
    load.set_phase(load::AFTER);
    let started_at = Instant::now();
    eprintln!(
        "PostgreSQL started again at {:.1?} (pg_ctl start took {} ms)",
        t0.elapsed(),
        ms(started_at - start_at)
    );

    // Recovery: /readyz 200 again, within a bound.
    let recovered_at = tokio::time::timeout(RECOVERY_LIMIT, async {
        loop {
            if let (Heard::Status { code: 200, .. }, _) = probe(&server.base, "/readyz").await {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(AFTER_FOR).await;
    load.stop();
    let deliveries = tokio::time::timeout(Duration::from_secs(70), agents)
        .await
        .expect("the agents finish")
        .expect("the agents' task");
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the reader finishes")
        .expect("the reader's task");
    let (ready, healthy) = tokio::time::timeout(Duration::from_secs(10), probes)
        .await
        .expect("the probes finish")
        .expect("the probes' task");
    let alive_at_end = server.is_running();
    let replies = load.replies();
    let recorded = load::recorded_events(&url).await;
    let log = server.log();
    drop(server);

    // --- What happened --------------------------------------------------------
    // Requests in flight at some point of the outage, and those of them that
    // were answered before PostgreSQL was started again.
    let outage: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.started < start_at && r.ended > stopped_at)
        .collect();
    let answered_in_outage: Vec<&Reply> = outage
        .iter()
        .copied()
        .filter(|r| r.ended < start_at && matches!(r.heard, Heard::Status { .. }))
        .collect();
    let waited_for_restart = outage.iter().filter(|r| r.ended >= start_at).count();
    let slowest_in_outage = outage
        .iter()
        .map(|r| r.ended - r.started)
        .max()
        .unwrap_or_default();
    let transport_errors: Vec<&Reply> = replies
        .iter()
        .filter(|r| !matches!(r.heard, Heard::Status { .. }))
        .collect();
    let mut codes_in_outage: Vec<(u16, bool)> = answered_in_outage
        .iter()
        .filter_map(|r| match r.heard {
            Heard::Status { code, json_error } => Some((code, json_error)),
            _ => None,
        })
        .collect();
    codes_in_outage.sort_unstable();
    codes_in_outage.dedup();
    let lost: Vec<&Delivery> = deliveries.iter().filter(|d| d.answered.is_none()).collect();
    let missing: Vec<&str> = deliveries
        .iter()
        .filter(|d| d.answered.is_some() && !recorded.contains_key(&d.webhook_id))
        .map(|d| d.webhook_id.as_str())
        .collect();
    let new_after_recovery: Vec<&Delivery> = match &recovered_at {
        Ok(at) => deliveries.iter().filter(|d| d.first_sent >= *at).collect(),
        Err(_) => Vec::new(),
    };
    let new_needing_retries = new_after_recovery.iter().filter(|d| d.sends > 1).count();
    let reminders_done: HashSet<usize> = deliveries.iter().map(|d| d.reminder).collect();
    eprintln!(
        "{} requests in all ({} events delivered on {} reminders, {} events needed retries); \
         {} requests in flight while PostgreSQL was down: {} answered before it was started \
         again (codes, JSON error: {codes_in_outage:?}), {waited_for_restart} waited for it, \
         slowest {} ms; \
         {} transport errors; /readyz mid-outage {:?} in {} ms, /healthz {:?} in {} ms; \
         ready again {} after pg_ctl start; {} new events after recovery ({} needed retries); \
         the server logged {} storage failures; whole test {:.1?}",
        replies.len(),
        deliveries.len(),
        reminders_done.len(),
        deliveries.iter().filter(|d| d.sends > 1).count(),
        outage.len(),
        answered_in_outage.len(),
        ms(slowest_in_outage),
        transport_errors.len(),
        ready.0,
        ms(ready.1),
        healthy.0,
        ms(healthy.1),
        match &recovered_at {
            Ok(at) => format!("{} ms", ms(at.saturating_duration_since(started_at))),
            Err(_) => format!("NOT within {RECOVERY_LIMIT:?}"),
        },
        new_after_recovery.len(),
        new_needing_retries,
        log.matches("storage failure").count(),
        t0.elapsed(),
    );

    // --- What must have happened ---------------------------------------------
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    assert!(
        alive_while_down,
        "the server died while PostgreSQL was down:\n{log}"
    );
    assert!(alive_at_end, "the server died:\n{log}");
    assert!(
        transport_errors.is_empty(),
        "every request got an HTTP answer within {CLIENT_TIMEOUT:?} (no hang, no reset): \
         {transport_errors:#?}"
    );
    assert!(
        !answered_in_outage.is_empty(),
        "the service answered none of the {} requests in flight while PostgreSQL was down \
         before it came back (slowest {} ms): they waited for it instead of failing",
        outage.len(),
        ms(slowest_in_outage)
    );
    assert_eq!(
        healthy.0,
        Heard::Status {
            code: 200,
            json_error: false
        },
        "/healthz while PostgreSQL is down"
    );
    assert_eq!(
        ready.0,
        Heard::Status {
            code: 503,
            json_error: true
        },
        "/readyz while PostgreSQL is down"
    );
    let wrong: Vec<&&Reply> = answered_in_outage
        .iter()
        .filter(|r| {
            !matches!(
                r.heard,
                Heard::Status {
                    code: 500 | 503,
                    json_error: true
                }
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "while PostgreSQL was down, every answer is 500/503 with a JSON error: {wrong:#?}"
    );
    let recovered_at = recovered_at.unwrap_or_else(|_| {
        panic!("/readyz answers 200 within {RECOVERY_LIMIT:?} of PostgreSQL's start")
    });
    assert!(
        lost.is_empty(),
        "every event is answered 2xx in the end: {lost:#?}"
    );
    assert!(
        new_after_recovery.len() >= 10,
        "new events were sent after recovery ({}); raise REMINDERS",
        new_after_recovery.len()
    );
    assert_eq!(
        new_needing_retries, 0,
        "events first sent after /readyz recovered are answered 2xx at once"
    );
    let late_reads: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.started >= recovered_at && r.route == "api-read")
        .filter(|r| !matches!(r.heard, Heard::Status { code: 200, .. }))
        .collect();
    assert!(
        late_reads.is_empty(),
        "reads after recovery answer 200: {late_reads:#?}"
    );
    assert!(
        missing.is_empty(),
        "{} events answered 2xx are not in the database: {missing:?}",
        missing.len()
    );
}
