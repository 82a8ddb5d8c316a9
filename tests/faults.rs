//! Fault tests (issue 6), part of the normal `cargo test` run: `duecall serve`
//! is killed with SIGKILL in the middle of a load of signed call-status events
//! and started again on the same port and database while its clients retry.
//! Nothing that was answered 2xx is lost, and the end state is the one a run of
//! the same events without the kill reaches. On SQLite and on PostgreSQL.
//!
//! PostgreSQL stopped and started under load needs a server the test may stop:
//! tests/faults_pg.rs, run by scripts/faults. Also here: the schedulers race of
//! the scheduler issue (4 instances, one database) under the same load.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::load::{self, Delivery, Load, Planned, Server, AFTER, BEFORE, DURING};
use common::{Backend, TestDb};
use duecall::domain::ReminderId;

const REMINDERS: usize = 300;
const AGENTS: usize = 16;
/// The kill comes once this share of the events has been answered.
const KILL_AT: f64 = 1.0 / 3.0;
/// How long the server stays dead.
const DEAD_FOR: Duration = Duration::from_millis(300);
/// Every run of the load is over by then, answered or not.
const RUN_LIMIT: Duration = Duration::from_secs(25);

/// What one run of the load left behind.
struct Run {
    deliveries: Vec<Delivery>,
    log: String,
    took: Duration,
}

/// Deliver `plan` to `duecall serve` on `database_url`. With `kill`: once a
/// third of the events have been answered, `kill -9` the server, leave it dead
/// for a moment, and start it again on the same port and database.
async fn run(database_url: &str, plan: &[Vec<Planned>], kill: bool) -> Run {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = load::free_port();
    let mut server = Server::start(dir.path(), database_url, port);
    server.wait_ready(Duration::from_secs(20)).await;
    let load = Load::new(&server.base, started + RUN_LIMIT, Duration::ZERO);
    let agents = load.spawn(plan.to_vec(), AGENTS);
    if kill {
        let total: usize = plan.iter().map(Vec::len).sum();
        let kill_at = (total as f64 * KILL_AT) as usize;
        tokio::time::timeout(Duration::from_secs(20), async {
            while load.answered() < kill_at {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("a third of the events answered within 20 s");
        // From here on an answer may have raced the kill: only answers heard
        // before this line count as "answered before the kill".
        load.set_phase(DURING);
        server.kill9().await;
        tokio::time::sleep(DEAD_FOR).await;
        load.set_phase(AFTER);
        server = Server::start(dir.path(), database_url, port);
        server.wait_ready(Duration::from_secs(20)).await;
    }
    let deliveries = tokio::time::timeout(RUN_LIMIT + Duration::from_secs(10), agents)
        .await
        .expect("the agents finish")
        .expect("the agents' task");
    assert!(
        server.is_running(),
        "the server is alive:\n{}",
        server.log()
    );
    let log = server.log();
    drop(server);
    Run {
        deliveries,
        log,
        took: started.elapsed(),
    }
}

fn retried(run: &Run) -> usize {
    run.deliveries.iter().filter(|d| d.sends > 1).count()
}

async fn kill_9_mid_load(backend: Backend) {
    let started = Instant::now();
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let Some(reference_db) = TestDb::new(backend).await else {
        return;
    };
    // The same reminders (same ids) and the same events in both databases.
    let ids: Vec<ReminderId> = (0..REMINDERS).map(|_| ReminderId::new()).collect();
    tokio::join!(
        load::seed_live(&db.url, &ids),
        load::seed_live(&reference_db.url, &ids)
    );
    let seeded = started.elapsed();
    let plan = load::plan(&ids);
    let total: usize = plan.iter().map(Vec::len).sum();

    let killed = run(&db.url, &plan, true).await;
    let reference = run(&reference_db.url, &plan, false).await;

    for (name, r) in [("killed", &killed), ("reference", &reference)] {
        let lost: Vec<&Delivery> = r
            .deliveries
            .iter()
            .filter(|d| d.answered.is_none())
            .collect();
        assert!(lost.is_empty(), "{name} run: not answered 2xx: {lost:#?}");
        assert_eq!(r.deliveries.len(), total, "{name} run: every event sent");
        assert!(
            !r.log.contains("panicked"),
            "{name} run: the server panicked:\n{}",
            r.log
        );
    }
    let phase = |d: &Delivery| d.answered.map(|(_, p, _)| p);
    let before: Vec<&Delivery> = killed
        .deliveries
        .iter()
        .filter(|d| phase(d) == Some(BEFORE))
        .collect();
    let racing = killed
        .deliveries
        .iter()
        .filter(|d| phase(d) == Some(DURING))
        .count();
    let after = killed
        .deliveries
        .iter()
        .filter(|d| phase(d) == Some(AFTER))
        .count();
    // Committed before the kill but never heard: the retry after the restart
    // was recognised as a repeat (applied: false) of an event that applied.
    let recorded = load::recorded_events(&db.url).await;
    let committed_unheard = killed
        .deliveries
        .iter()
        .filter(|d| d.applied == Some(false) && recorded.get(&d.webhook_id) == Some(&true))
        .count();
    eprintln!(
        "{backend:?}: {total} events on {REMINDERS} reminders by {AGENTS} agents \
         (seeded in {seeded:.1?}); killed run {:.1?}: {} answered before the kill, {racing} \
         while it died, {after} after the restart, {} retried ({} sends in all), \
         {committed_unheard} of them committed before the kill but answered only on a retry; \
         reference run {:.1?}: {} retried",
        killed.took,
        before.len(),
        retried(&killed),
        killed.deliveries.iter().map(|d| d.sends).sum::<u32>(),
        reference.took,
        retried(&reference),
    );
    assert!(
        !before.is_empty(),
        "some events were answered before the kill"
    );
    assert!(after > 0, "some events were answered after the restart");

    // Every event answered before the kill survived it.
    let missing: Vec<&str> = before
        .iter()
        .map(|d| d.webhook_id.as_str())
        .filter(|id| !recorded.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} events answered 2xx before the kill are not in the database: {missing:?}",
        missing.len()
    );

    // The end is the same as without the kill: the events table, and every
    // reminder and attempt.
    let reference_recorded = load::recorded_events(&reference_db.url).await;
    assert_eq!(recorded.len(), total, "each event recorded once");
    assert_eq!(
        recorded.keys().collect::<HashSet<_>>(),
        reference_recorded.keys().collect::<HashSet<_>>()
    );
    let applied_differs: Vec<&String> = recorded
        .iter()
        .filter(|(id, applied)| reference_recorded.get(*id) != Some(applied))
        .map(|(id, _)| id)
        .collect();
    assert!(
        applied_differs.is_empty(),
        "applied differs from the reference run for {applied_differs:?}"
    );
    let state = load::final_state(&db.url, &ids).await;
    let reference_state = load::final_state(&reference_db.url, &ids).await;
    for (i, (got, want)) in state.iter().zip(&reference_state).enumerate() {
        assert_eq!(
            got, want,
            "reminder #{i} ({}) ends differently after the kill",
            ids[i]
        );
    }
    // The dashboard's counts (triggers; on PostgreSQL the event writer's
    // batches write their own) agree with the rows, killed or not.
    for (which, url) in [
        ("after the kill", &db.url),
        ("in the reference run", &reference_db.url),
    ] {
        let off = load::glance_mismatches(url).await;
        assert!(
            off.is_empty(),
            "{backend:?}, {which}: the glance's counts differ from a recount:\n{}",
            off.join("\n")
        );
    }
    eprintln!("{backend:?}: whole test {:.1?}", started.elapsed());
    db.cleanup().await;
    reference_db.cleanup().await;
}

both_backends!(kill_9_mid_load_loses_nothing, kill_9_mid_load);

// --- The schedulers' race, under the same load --------------------------------

/// Four scheduler instances claim 1,000 due reminders against one database
/// while a crowd of agents delivers signed events to `duecall serve` on the
/// same database: every attempt is dispatched exactly once (counted at the
/// fake LiveKit server), and every event is answered and stored.
async fn schedulers_race_under_load(backend: Backend) {
    use std::sync::Arc;

    use common::fake_livekit::FakeLiveKit;
    use duecall::clock::{Clock, SystemClock};

    const DUE: usize = 1_000;
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let lk = FakeLiveKit::start().await;
    let store = duecall::store::connect(&db.url, 4).await.expect("store");
    let defaults = duecall::domain::CreateDefaults {
        zone_policy: duecall::domain::ZonePolicy::All,
        timezone: duecall::domain::TimeZone::parse("America/New_York").unwrap(),
        language: duecall::domain::Language::parse("en").unwrap(),
        max_attempts: 3,
    };
    let mut due = Vec::new();
    for i in 0..DUE {
        // Numbers of their own: the live reminders' opt-outs suppress theirs.
        let body =
            common::reminder_body(serde_json::json!({"phone_number": format!("+1646555{i:04}")}));
        let new =
            duecall::domain::NewReminder::parse(body.as_object().unwrap(), &defaults).unwrap();
        let id = ReminderId::new();
        store
            .create_reminder(&new, id, SystemClock.now() - chrono::Duration::hours(1))
            .await
            .unwrap();
        due.push(id);
    }
    let live: Vec<ReminderId> = (0..REMINDERS).map(|_| ReminderId::new()).collect();
    load::seed_live(&db.url, &live).await;

    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &db.url, load::free_port());
    server.wait_ready(Duration::from_secs(20)).await;
    let started = Instant::now();
    let agents = Load::new(&server.base, started + RUN_LIMIT, Duration::ZERO)
        .spawn(load::plan(&live), AGENTS);

    let vars = [
        ("DATABASE_URL", db.url.as_str()),
        ("WEBHOOK_SECRET", common::WEBHOOK_SECRET),
        ("LIVEKIT_URL", lk.url()),
        ("LIVEKIT_API_KEY", lk.api_key()),
        ("LIVEKIT_API_SECRET", lk.api_secret()),
        ("MAX_CONCURRENT_CALLS", "100000"),
        ("CALLING_WINDOW", "00:00-23:59"),
        ("CALLING_DAYS", "Mon-Sun"),
    ];
    let mut tickers = Vec::new();
    for _ in 0..4 {
        let config = duecall::config::Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        let state = duecall::state_with(
            duecall::store::connect(&db.url, 4).await.unwrap(),
            Arc::new(SystemClock),
            config,
        );
        tickers.push(tokio::spawn(async move {
            let mut dispatched = 0;
            loop {
                let r = state.scheduler.tick().await.expect("tick");
                dispatched += r.dispatched;
                assert_eq!(r.dispatch_failed, 0);
                if r.dispatched == 0
                    && state
                        .store
                        .due(state.clock.now(), 1)
                        .await
                        .unwrap()
                        .is_empty()
                {
                    return dispatched;
                }
            }
        }));
    }
    let mut dispatched = 0;
    for t in tickers {
        dispatched += tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("the schedulers finish")
            .unwrap();
    }
    let deliveries = tokio::time::timeout(RUN_LIMIT + Duration::from_secs(10), agents)
        .await
        .expect("the agents finish")
        .unwrap();

    assert_eq!(dispatched, DUE as u64, "the reports add up");
    let rooms: HashSet<String> = lk.dispatches().into_iter().map(|d| d.room).collect();
    assert_eq!(lk.dispatches().len(), DUE, "each attempt dispatched once");
    let expected: HashSet<String> = due.iter().map(|id| format!("reminder-{id}-1")).collect();
    assert_eq!(rooms, expected);
    for id in &due {
        let r = store.get_reminder(*id).await.unwrap().unwrap();
        assert_eq!((r.status.as_str(), r.attempt_count), ("in_progress", 1));
    }
    let stored = load::recorded_events(&db.url).await;
    for d in &deliveries {
        assert!(d.answered.is_some(), "every event answered: {d:?}");
        assert!(
            stored.contains_key(&d.webhook_id),
            "and stored: {}",
            d.webhook_id
        );
    }
    assert!(!server.log().contains("panicked"), "{}", server.log());
    eprintln!(
        "{backend:?}: {DUE} claimed by 4 schedulers and {} events delivered, in {:.1} s",
        deliveries.len(),
        started.elapsed().as_secs_f64()
    );
    drop(server);
    db.cleanup().await;
}

both_backends!(
    schedulers_race_under_webhook_load,
    schedulers_race_under_load
);
