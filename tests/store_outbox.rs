//! The outbox's part of the storage conformance suite (SPEC §9), against
//! SQLite and PostgreSQL: a change and its notifications commit as one (and
//! an undone change leaves none), leases are exclusive until they run out,
//! a try recorded after the lease was lost moves nothing, retries wait for
//! their time, and several stores on one database lease each one once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use common::{decide_for, open_all_day, t, Backend, TestDb};
use duecall::domain::{
    self, CreateDefaults, Language, NewReminder, NoticeStatus, NoticeType, ReminderId, Status,
    TimeZone,
};
use duecall::store::{Applied, NoticeQuery, NoticeTry, Notification, Store, TryOutcome, TryRecord};
use serde_json::json;
use sqlx::Connection;

fn defaults() -> CreateDefaults {
    CreateDefaults {
        zone_policy: duecall::domain::ZonePolicy::All,
        timezone: TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    }
}

async fn notifying(db: &TestDb) -> Arc<dyn Store> {
    duecall::store::connect_with(&db.url, 8, true)
        .await
        .expect("open store")
}

async fn open(backend: Backend) -> Option<(TestDb, Arc<dyn Store>)> {
    let db = TestDb::new(backend).await?;
    let store = notifying(&db).await;
    Some((db, store))
}

async fn pending(store: &Arc<dyn Store>, n: usize, at: &str) -> Vec<ReminderId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = common::reminder_body(json!({
            "scheduled_for": at,
            "external_id": format!("ob-{i}-{}", uuid::Uuid::new_v4().simple()),
        }));
        let new = NewReminder::parse(body.as_object().unwrap(), &defaults()).unwrap();
        let id = ReminderId::new();
        store.create_reminder(&new, id, t(at)).await.unwrap();
        ids.push(id);
    }
    ids
}

/// Cancel each (one notification each: `reminder.cancelled`).
async fn cancel_all(store: &Arc<dyn Store>, ids: &[ReminderId], at: chrono::DateTime<chrono::Utc>) {
    for id in ids {
        let r = store.get_reminder(*id).await.unwrap().unwrap();
        let change = domain::cancel(&r, at).unwrap().unwrap();
        assert!(matches!(
            store.apply(&change, None).await.unwrap(),
            Applied::Done(_)
        ));
    }
}

async fn of(store: &Arc<dyn Store>, id: ReminderId) -> Vec<Notification> {
    let mut all = store
        .list_notifications(&NoticeQuery {
            status: None,
            reminder_id: Some(id),
            limit: 200,
            after: None,
        })
        .await
        .unwrap()
        .notifications;
    all.sort_by_key(|n| n.sequence);
    all
}

fn tried(at: chrono::DateTime<chrono::Utc>, code: Option<u16>) -> NoticeTry {
    NoticeTry {
        at,
        status_code: code,
        error: code
            .filter(|c| !(200..300).contains(c))
            .map(|c| format!("HTTP {c}")),
        duration_ms: 3,
    }
}

fn completed_event(
    id: ReminderId,
    now: chrono::DateTime<chrono::Utc>,
    hook: String,
) -> Box<duecall::store::Decide> {
    let ev = domain::Event {
        reminder_id: id,
        attempt: Some(1),
        occurred_at: now,
        kind: domain::EventKind::Completed(domain::Outcome {
            result: domain::OutcomeResult::Refused,
            promised_amount_minor: None,
            promised_date: None,
            summary: None,
            transcript: None,
            duration_seconds: Some(30),
            callback_at: None,
        }),
    };
    decide_for(ev, hook, now)
}

async fn a_change_and_its_notices_commit_as_one(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = pending(&store, 16, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:01:00Z");
    let claimed = store
        .claim(&ids, now, 1000, &common::any_time_rules())
        .await
        .unwrap();
    assert_eq!(claimed.claimed.len(), 16);
    // A claim notifies nothing: nothing ended.
    for id in &ids {
        assert!(of(&store, *id).await.is_empty());
    }
    // Every event at once (they share SQLite's batch and PostgreSQL's), and
    // a change decided on a reminder as it no longer is, with its event.
    let (stale_id, rest) = ids.split_first().unwrap();
    let stale = domain::Change {
        reminder_id: *stale_id,
        expect_status: Status::Pending,
        expect_attempt: 0,
        at: now,
        reminder: Some(domain::ReminderUpdate {
            status: Status::Cancelled,
            attempt_count: 0,
            next_attempt_at: None,
            last_attempt_at: None,
            skip_reason: Some("stale".into()),
            outcome: None,
            promise: None,
        }),
        attempt: None,
        suppress: None,
        action: None,
    };
    let mut tasks = Vec::new();
    for (n, id) in rest.iter().enumerate() {
        let store = Arc::clone(&store);
        let id = *id;
        let decide = completed_event(id, now, format!("msg_done_{n}"));
        tasks.push(tokio::spawn(async move {
            store
                .ingest(id, Some(1), decide)
                .await
                .unwrap()
                .unwrap()
                .applied
        }));
    }
    let stale_apply = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.apply(&stale, None).await.unwrap() })
    };
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Applied::Done(_)));
    }
    assert_eq!(stale_apply.await.unwrap(), Applied::Stale);
    assert!(
        of(&store, *stale_id).await.is_empty(),
        "an undone change notifies nothing"
    );
    for id in rest {
        let got = of(&store, *id).await;
        let kinds: Vec<NoticeType> = got.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            [NoticeType::AttemptEnded, NoticeType::ReminderCompleted]
        );
        assert_eq!(got.iter().map(|n| n.sequence).collect::<Vec<_>>(), [1, 2]);
        assert!(got
            .iter()
            .all(|n| n.status == NoticeStatus::Pending && n.tries.is_empty()));
        assert_eq!(got[0].payload["data"]["attempt"]["status"], "completed");
        // The attempt as stored, whether the store read it back or computed it.
        let stored = store.get_attempt(*id, 1).await.unwrap().unwrap();
        assert_eq!(
            got[0].payload["data"]["attempt"],
            serde_json::to_value(&stored).unwrap()
        );
        let reminder = store.get_reminder(*id).await.unwrap().unwrap();
        let mut shown = serde_json::to_value(&reminder).unwrap();
        shown["sequence"] = json!(2);
        assert_eq!(got[1].payload["data"], shown, "the reminder as stored");
        assert_eq!(got[1].payload["data"]["status"], "completed");
        assert_eq!(got[1].payload["data"]["sequence"], 2);
        assert_eq!(got[1].next_try_at, Some(now), "due at once");
    }
    // A repeat of an event changes nothing and notifies nothing.
    let again = store
        .ingest(
            rest[0],
            Some(1),
            completed_event(rest[0], now, "msg_done_0".into()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.applied, Applied::Duplicate);
    assert_eq!(of(&store, rest[0]).await.len(), 2);

    let stats = store.notice_stats().await.unwrap();
    assert_eq!(stats.by_status[0], (NoticeStatus::Pending, 30));
    assert_eq!(stats.oldest_pending, Some(now));
    db.cleanup().await;
}
both_backends!(
    a_change_and_its_notices_commit_as_one,
    a_change_and_its_notices_commit_as_one
);

async fn leases_are_exclusive_until_they_run_out(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = pending(&store, 1, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:00:00Z");
    cancel_all(&store, &ids, now).await;
    let until = now + Duration::seconds(30);
    let a = store
        .lease_notifications("a", now, until, 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, NoticeType::ReminderCancelled);
    assert_eq!(a[0].step, 0);
    let later = now + Duration::seconds(29);
    assert!(
        store
            .lease_notifications("b", later, later + Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased to a: not b's while the lease lives"
    );
    // a's instance died: its lease runs out, and b takes the notification over.
    let over = now + Duration::seconds(30);
    let b = store
        .lease_notifications("b", over, over + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].id, a[0].id);
    assert_eq!(b[0].body, a[0].body, "the same body on every try");
    // a was only slow: its try is recorded, but it moves nothing.
    let moved = store
        .record_try(
            &a[0].id,
            "a",
            &tried(over, Some(204)),
            TryOutcome::Delivered,
        )
        .await
        .unwrap();
    assert!(!moved);
    let n = &of(&store, ids[0]).await[0];
    assert_eq!(n.status, NoticeStatus::Pending);
    assert_eq!(n.tries.len(), 1);
    let moved = store
        .record_try(
            &b[0].id,
            "b",
            &tried(over, Some(200)),
            TryOutcome::Delivered,
        )
        .await
        .unwrap();
    assert!(moved);
    let n = &of(&store, ids[0]).await[0];
    assert_eq!(n.status, NoticeStatus::Delivered);
    assert_eq!(n.delivered_at, Some(over));
    assert_eq!(n.next_try_at, None);
    assert_eq!(n.tries.len(), 2);
    assert_eq!(n.tries[1].status_code, Some(200));
    let far = over + Duration::days(3);
    assert!(store
        .lease_notifications("c", far, far, 10)
        .await
        .unwrap()
        .is_empty());
    db.cleanup().await;
}
both_backends!(
    leases_are_exclusive_until_they_run_out,
    leases_are_exclusive_until_they_run_out
);

async fn a_retry_waits_for_its_time_and_a_resend_starts_a_new_round(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = pending(&store, 1, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:00:00Z");
    cancel_all(&store, &ids, now).await;
    let lease = |at: chrono::DateTime<chrono::Utc>| {
        let store = Arc::clone(&store);
        async move {
            store
                .lease_notifications("w", at, at + Duration::seconds(30), 10)
                .await
                .unwrap()
        }
    };
    let first = lease(now).await;
    let retry_at = now + Duration::seconds(5);
    assert!(store
        .record_try(
            &first[0].id,
            "w",
            &tried(now, Some(500)),
            TryOutcome::RetryAt(retry_at)
        )
        .await
        .unwrap());
    assert!(
        lease(retry_at - Duration::milliseconds(1)).await.is_empty(),
        "not before its time"
    );
    let second = lease(retry_at).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].step, 1, "one try made in this round");
    assert!(store
        .record_try(
            &second[0].id,
            "w",
            &tried(retry_at, None),
            TryOutcome::Failed
        )
        .await
        .unwrap());
    let n = &of(&store, ids[0]).await[0];
    assert_eq!(n.status, NoticeStatus::Failed);
    assert_eq!(n.next_try_at, None);
    assert!(
        lease(now + Duration::days(30)).await.is_empty(),
        "failed: never tried again by itself"
    );

    let resent_at = now + Duration::hours(1);
    let resent = store
        .resend_notification(&n.id, resent_at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.status, NoticeStatus::Pending);
    assert_eq!(resent.next_try_at, Some(resent_at));
    assert_eq!(resent.tries.len(), 2, "the tries are kept");
    let third = lease(resent_at).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].step, 0, "a new round");
    assert!(store
        .resend_notification("msg_nosuch", now)
        .await
        .unwrap()
        .is_none());
    db.cleanup().await;
}
both_backends!(
    a_retry_waits_for_its_time_and_a_resend_starts_a_new_round,
    a_retry_waits_for_its_time_and_a_resend_starts_a_new_round
);

/// `/metrics`' figures (read every few seconds) are kept, not counted: after
/// tries that deliver, fail and retry, and resends of a delivered and a failed
/// notification, they equal a recount of every notification; and neither of
/// SQLite's queries reads the whole outbox (which only grows), only the
/// pending ones' index and the kept counts.
async fn the_outbox_figures_are_kept_and_equal_a_recount(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = pending(&store, 5, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:00:00Z");
    cancel_all(&store, &ids, now).await;
    let recount = || {
        let store = Arc::clone(&store);
        async move {
            let all = store
                .list_notifications(&NoticeQuery {
                    status: None,
                    reminder_id: None,
                    limit: 200,
                    after: None,
                })
                .await
                .unwrap()
                .notifications;
            NoticeStatus::ALL
                .iter()
                .map(|s| (*s, all.iter().filter(|n| n.status == *s).count() as u64))
                .collect::<Vec<_>>()
        }
    };
    let check = |when: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let stats = store.notice_stats().await.unwrap();
            assert_eq!(stats.by_status, recount().await, "{when}");
        }
    };
    check("all pending").await;
    let leased = store
        .lease_notifications("w", now, now + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 5);
    let outcomes = [
        TryOutcome::Delivered,
        TryOutcome::Delivered,
        TryOutcome::Failed,
        TryOutcome::RetryAt(now + Duration::seconds(5)),
        TryOutcome::Delivered,
    ];
    let tries: Vec<TryRecord> = leased
        .iter()
        .zip(outcomes)
        .map(|(d, outcome)| TryRecord {
            id: d.id.clone(),
            tried: tried(now, Some(200)),
            outcome,
        })
        .collect();
    assert!(store
        .record_tries("w", &tries)
        .await
        .unwrap()
        .iter()
        .all(|m| *m));
    check("after one round of tries").await;
    let stats = store.notice_stats().await.unwrap();
    assert_eq!(
        stats.by_status,
        vec![
            (NoticeStatus::Pending, 1),
            (NoticeStatus::Delivered, 3),
            (NoticeStatus::Failed, 1)
        ]
    );
    // A try recorded without the lease moves nothing, and counts nothing.
    assert!(!store
        .record_try(
            &leased[3].id,
            "other",
            &tried(now, None),
            TryOutcome::Failed
        )
        .await
        .unwrap());
    check("after a try without the lease").await;
    for resent in [&leased[0].id, &leased[2].id, &leased[3].id] {
        store
            .resend_notification(resent, now + Duration::minutes(1))
            .await
            .unwrap()
            .unwrap();
    }
    check("after resends of a delivered, a failed and a pending one").await;
    let stats = store.notice_stats().await.unwrap();
    assert_eq!(stats.by_status[0], (NoticeStatus::Pending, 3));
    assert_eq!(stats.oldest_pending, Some(now));

    if backend == Backend::Sqlite {
        let plans = store
            .query_plans(now, &common::default_rules())
            .await
            .unwrap();
        for name in ["notice_counts", "oldest_pending"] {
            let (_, plan) = plans
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no plan for {name}"));
            // The log (written once per change, never counted) is read at
            // its end through its key; the states through their partial index.
            let lines: Vec<&str> = plan
                .lines()
                .filter(|l| l.contains(" notice_state") || l.contains(" notice_log"))
                .collect();
            assert!(!lines.is_empty(), "{name} reads no notifications:\n{plan}");
            for line in lines {
                let kept = if line.contains(" notice_state") {
                    line.contains("INDEX notice_state_due")
                } else {
                    line.contains("SEARCH notice_log")
                };
                assert!(
                    kept,
                    "{name} reads the outbox beyond its pending ones: {line}\n{plan}"
                );
            }
        }
    }
    db.cleanup().await;
}
both_backends!(
    the_outbox_figures_are_kept_and_equal_a_recount,
    the_outbox_figures_are_kept_and_equal_a_recount
);

/// The PostgreSQL migration that starts keeping the counts seeds them and
/// starts its trigger as one step: a status change another instance (still
/// running the code before it) holds open while the migration runs is counted
/// once, not lost between the seed and the trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_counts_migration_counts_a_change_in_flight() {
    let Some((db, store)) = open(Backend::Postgres).await else {
        return;
    };
    let ids = pending(&store, 3, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:00:00Z");
    cancel_all(&store, &ids, now).await;
    let leased = store
        .lease_notifications("w", now, now + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert!(store
        .record_try(
            &leased[0].id,
            "w",
            &tried(now, Some(200)),
            TryOutcome::Delivered
        )
        .await
        .unwrap());
    drop(store);
    // The database as it was before the migration (its rows kept).
    db.execute(
        "DROP TRIGGER notification_counted ON notifications; \
         DROP TRIGGER notification_counted_new ON notifications; \
         DROP FUNCTION notification_counted(); DROP TABLE notification_counts; \
         DELETE FROM _sqlx_migrations WHERE description = 'notification counts';",
    )
    .await;
    // Another instance moves one while the migration runs, committing after.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("UPDATE notifications SET status = 'delivered' WHERE id = $1")
        .bind(&leased[1].id)
        .execute(&mut other)
        .await
        .unwrap();
    let url = db.url.clone();
    let migrating = tokio::spawn(async move {
        duecall::store::connect_with(&url, 8, true)
            .await
            .expect("open store")
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let store = migrating.await.unwrap();
    let stats = store.notice_stats().await.unwrap();
    assert_eq!(
        stats.by_status,
        vec![
            (NoticeStatus::Pending, 1),
            (NoticeStatus::Delivered, 2),
            (NoticeStatus::Failed, 0)
        ],
        "the change committed during the migration is counted"
    );
    db.cleanup().await;
}

async fn several_stores_lease_each_notification_once(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = pending(&store, 60, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:00:00Z");
    cancel_all(&store, &ids, now).await;
    let mut stores = vec![store];
    for _ in 0..3 {
        stores.push(notifying(&db).await);
    }
    let mut tasks = Vec::new();
    for (n, s) in stores.iter().enumerate() {
        let s = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .lease_notifications(&format!("w{n}"), now, now + Duration::seconds(30), 7)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|d| d.id));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 60, "each leased exactly once");
    assert_eq!(unique.len(), 60);
    db.cleanup().await;
}
both_backends!(
    several_stores_lease_each_notification_once,
    several_stores_lease_each_notification_once
);

async fn a_claim_that_cancels_and_a_timeout_notify_too(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let at = "2026-11-24T15:00:00Z";
    let now = t("2026-11-24T15:01:00Z");
    let body = common::reminder_body(
        json!({"scheduled_for": at, "phone_number": "+12125550177", "max_attempts": 2}),
    );
    let new = NewReminder::parse(body.as_object().unwrap(), &defaults()).unwrap();
    let listed = ReminderId::new();
    store.create_reminder(&new, listed, t(at)).await.unwrap();
    let add = domain::SuppressNumber {
        phone_number: domain::PhoneNumber::parse("+12125550177").unwrap(),
        reason: domain::Reason::parse("asked by letter").unwrap(),
        reminder_id: None,
    };
    store.add_suppression(&add, t(at)).await.unwrap();
    let all = store
        .list_notifications(&NoticeQuery {
            status: None,
            reminder_id: None,
            limit: 50,
            after: None,
        })
        .await
        .unwrap()
        .notifications;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].kind, NoticeType::SuppressionAdded);
    assert_eq!(all[0].reminder_id, None);
    assert_eq!(all[0].payload["data"]["phone_number"], "+12125550177");

    // The claim finds the number listed: cancelled, and notified so.
    let timed = pending(&store, 1, at).await[0];
    let report = store
        .claim(&[listed, timed], now, 1000, &common::any_time_rules())
        .await
        .unwrap();
    assert_eq!(report.suppressed, [listed]);
    let got = of(&store, listed).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, NoticeType::ReminderCancelled);
    assert_eq!(got[0].payload["data"]["skip_reason"], "suppressed");
    assert_eq!(got[0].payload["data"]["status"], "cancelled");

    // The other was dialled and timed out: its attempt ended, a retry ahead
    // (3 attempts by default), so the reminder itself is not notified.
    let retry = open_all_day(Duration::hours(2));
    let later = now + Duration::hours(1);
    let ctx = domain::Ctx {
        now: later,
        retry: &retry,
        jitter: 0.5,
        promise_grace_days: 3,
    };
    let (r, attempt) = store.get_for_event(timed, None).await.unwrap().unwrap();
    let change = domain::fail_live_attempt(&r, attempt.as_ref(), "call_timeout", &ctx).unwrap();
    assert!(matches!(
        store.apply(&change, None).await.unwrap(),
        Applied::Done(_)
    ));
    let got = of(&store, timed).await;
    let kinds: Vec<NoticeType> = got.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [NoticeType::AttemptEnded]);
    assert_eq!(got[0].payload["data"]["status"], "failed");
    assert_eq!(
        got[0].payload["data"]["attempt"]["failure"]["reason"],
        "call_timeout"
    );

    // Its last attempt times out too: that failure is final, and notified.
    let again = t("2026-11-24T20:00:00Z");
    let r = store.get_reminder(timed).await.unwrap().unwrap();
    let claim = domain::claim(&r, again).unwrap();
    assert!(matches!(
        store.apply(&claim, None).await.unwrap(),
        Applied::Done(_)
    ));
    let ctx = domain::Ctx {
        now: again + Duration::hours(1),
        retry: &retry,
        jitter: 0.5,
        promise_grace_days: 3,
    };
    let mut n = 0;
    // Exhaust the attempts (max 3 by default).
    let last = loop {
        let (cur, attempt) = store.get_for_event(timed, None).await.unwrap().unwrap();
        let change =
            domain::fail_live_attempt(&cur, attempt.as_ref(), "call_timeout", &ctx).unwrap();
        let Applied::Done(after) = store.apply(&change, None).await.unwrap() else {
            panic!("not applied");
        };
        let last = *after;
        if domain::is_final_failure(&last) {
            break last;
        }
        let claim = domain::claim(&last, ctx.now).unwrap();
        assert!(matches!(
            store.apply(&claim, None).await.unwrap(),
            Applied::Done(_)
        ));
        n += 1;
        assert!(n < 10, "attempts never ran out");
    };
    let got = of(&store, timed).await;
    let kinds: Vec<NoticeType> = got.iter().map(|n| n.kind).collect();
    let ended = kinds
        .iter()
        .filter(|k| **k == NoticeType::AttemptEnded)
        .count();
    assert_eq!(
        ended as u32, last.attempt_count,
        "one attempt.ended per attempt"
    );
    assert_eq!(kinds.last(), Some(&NoticeType::ReminderFailed));
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == NoticeType::ReminderFailed)
            .count(),
        1
    );
    let seqs: Vec<u32> = got.iter().map(|n| n.sequence).collect();
    assert_eq!(seqs, (1..=got.len() as u32).collect::<Vec<_>>());
    db.cleanup().await;
}
both_backends!(
    a_claim_that_cancels_and_a_timeout_notify_too,
    a_claim_that_cancels_and_a_timeout_notify_too
);

/// A batch in which the database refuses one event (an injected fault): the
/// refused change leaves no notice (its savepoint takes them with it), the
/// others' are written, and a reminder changed twice in one batch is
/// numbered in order.
async fn a_refused_event_takes_its_notices_with_it(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    db.refuse_events_marked_bad().await;
    let ids = pending(&store, 16, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:01:00Z");
    store
        .claim(&ids, now, 1000, &common::any_time_rules())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let hook = if n % 4 == 0 {
            format!("bad_{id}")
        } else {
            format!("ok_{id}")
        };
        let store = Arc::clone(&store);
        let id = *id;
        let decide = completed_event(id, now, hook.clone());
        tasks.push(tokio::spawn(async move {
            (hook, store.ingest(id, Some(1), decide).await)
        }));
    }
    for task in tasks {
        let (hook, result) = task.await.unwrap();
        assert_eq!(
            hook.starts_with("bad_"),
            result.is_err(),
            "{hook}: {result:?}"
        );
    }
    for (n, id) in ids.iter().enumerate() {
        let got = of(&store, *id).await;
        if n % 4 == 0 {
            assert!(got.is_empty(), "a refused change notifies nothing: {got:?}");
        } else {
            let seqs: Vec<u32> = got.iter().map(|n| n.sequence).collect();
            assert_eq!(seqs, [1, 2]);
        }
    }
    db.cleanup().await;
}
both_backends!(
    a_refused_event_takes_its_notices_with_it,
    a_refused_event_takes_its_notices_with_it
);

/// An answered call that then fails: the notified attempt (answer time kept,
/// the failure, its end) is the attempt as stored, on both stores' paths.
async fn a_notified_attempt_is_the_attempt_as_stored(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = pending(&store, 1, "2026-11-24T15:00:00Z").await;
    let id = ids[0];
    let now = t("2026-11-24T15:01:00.123Z");
    store
        .claim(&ids, now, 1000, &common::any_time_rules())
        .await
        .unwrap();
    let event = |kind, at| domain::Event {
        reminder_id: id,
        attempt: Some(1),
        occurred_at: at,
        kind,
    };
    let answered_at = now + Duration::seconds(5);
    let answered = event(domain::EventKind::Answered, answered_at);
    store
        .ingest(
            id,
            Some(1),
            decide_for(answered, "msg_a".into(), answered_at),
        )
        .await
        .unwrap()
        .unwrap();
    let failed_at = now + Duration::milliseconds(40_456);
    let failure = domain::Failure {
        reason: Some("carrier dropped".into()),
        sip_status: Some(503),
        retryable: Some(true),
    };
    let failed = event(domain::EventKind::Failed(Some(failure)), failed_at);
    let done = store
        .ingest(id, Some(1), decide_for(failed, "msg_f".into(), failed_at))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(done.applied, Applied::Done(_)));
    let got = of(&store, id).await;
    assert_eq!(got[0].kind, NoticeType::AttemptEnded);
    let stored = store.get_attempt(id, 1).await.unwrap().unwrap();
    assert!(stored.answered_at.is_some() && stored.failure.is_some());
    assert_eq!(
        got[0].payload["data"]["attempt"],
        serde_json::to_value(&stored).unwrap()
    );
    db.cleanup().await;
}
both_backends!(
    a_notified_attempt_is_the_attempt_as_stored,
    a_notified_attempt_is_the_attempt_as_stored
);

/// Every page of every filter, followed by its cursor, gives the whole list
/// in the same order, once each (on SQLite a change's notifications share a
/// row of the log, so a page may end inside one); each is found by its id
/// as listed; and a notification shows the change it reports, however its
/// reminder has changed since (a payment recorded after the call).
async fn pages_follow_the_cursor_through_every_filter(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = pending(&store, 5, "2026-11-24T15:00:00Z").await;
    let now = t("2026-11-24T15:01:00Z");
    store
        .claim(&ids, now, 1000, &common::any_time_rules())
        .await
        .unwrap();
    for (n, id) in ids.iter().enumerate() {
        let decide = completed_event(*id, now, format!("msg_page_{n}"));
        store.ingest(*id, Some(1), decide).await.unwrap().unwrap();
    }
    // A payment after the call: a third notification of the first reminder,
    // the reminder as it leaves it.
    let paid = t("2026-11-24T15:02:00Z");
    let payment = domain::NewPayment {
        amount_minor: 100,
        paid_at: None,
        reference: Some("pay-1".into()),
    };
    store
        .record_payment(ids[0], &payment, paid)
        .await
        .unwrap()
        .unwrap();
    // Five taken: delivered, delivered, failed, retrying, and one whose try is not back.
    let leased = store
        .lease_notifications("w", paid, paid + Duration::seconds(30), 5)
        .await
        .unwrap();
    assert_eq!(leased.len(), 5);
    let outcomes = [
        (Some(204), TryOutcome::Delivered),
        (Some(200), TryOutcome::Delivered),
        (Some(410), TryOutcome::Failed),
        (Some(500), TryOutcome::RetryAt(paid + Duration::minutes(5))),
    ];
    for (d, (code, outcome)) in leased.iter().zip(outcomes) {
        assert!(store
            .record_try(&d.id, "w", &tried(paid, code), outcome)
            .await
            .unwrap());
    }

    let query = |status, reminder_id, limit, after| NoticeQuery {
        status,
        reminder_id,
        limit,
        after,
    };
    let all = store
        .list_notifications(&query(None, None, 200, None))
        .await
        .unwrap();
    assert!(all.next.is_none());
    let all = all.notifications;
    assert_eq!(all.len(), 11);
    let unique: HashSet<&str> = all.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(unique.len(), 11, "ids are unique");
    // Newest first: each reminder's sequences fall down the list.
    for id in &ids {
        let seqs: Vec<u32> = all
            .iter()
            .filter(|n| n.reminder_id == Some(*id))
            .map(|n| n.sequence)
            .collect();
        let expect: Vec<u32> = (1..=seqs.len() as u32).rev().collect();
        assert_eq!(seqs, expect);
    }
    let count = |s| all.iter().filter(|n| n.status == s).count();
    assert_eq!(count(NoticeStatus::Delivered), 2);
    assert_eq!(count(NoticeStatus::Failed), 1);
    assert_eq!(count(NoticeStatus::Pending), 8);

    for status in [
        None,
        Some(NoticeStatus::Pending),
        Some(NoticeStatus::Delivered),
        Some(NoticeStatus::Failed),
    ] {
        for reminder in [None, Some(ids[0]), Some(ids[3])] {
            let expect: Vec<&Notification> = all
                .iter()
                .filter(|n| status.map_or(true, |s| n.status == s))
                .filter(|n| reminder.map_or(true, |r| n.reminder_id == Some(r)))
                .collect();
            for limit in [1, 2, 3, 200] {
                let mut got = Vec::new();
                let mut after = None;
                for _ in 0..20 {
                    let page = store
                        .list_notifications(&query(status, reminder, limit, after))
                        .await
                        .unwrap();
                    assert!(page.notifications.len() <= limit as usize);
                    got.extend(page.notifications);
                    after = page.next;
                    if after.is_none() {
                        break;
                    }
                }
                let got_ids: Vec<&str> = got.iter().map(|n| n.id.as_str()).collect();
                let want_ids: Vec<&str> = expect.iter().map(|n| n.id.as_str()).collect();
                assert_eq!(
                    got_ids, want_ids,
                    "status {status:?}, reminder {reminder:?}, pages of {limit}"
                );
            }
        }
    }
    for n in &all {
        let found = store.get_notification(&n.id).await.unwrap().unwrap();
        assert_eq!(&found, n);
    }
    let unknown = "msg_0000000000007000800000000000002a";
    assert!(store.get_notification(unknown).await.unwrap().is_none());
    assert!(store.get_notification("msg_nope").await.unwrap().is_none());
    assert!(store
        .resend_notification(unknown, paid)
        .await
        .unwrap()
        .is_none());

    // The call's notifications show the reminder as the call left it: not
    // paid; the payment's, as the payment left it.
    let first = of(&store, ids[0]).await;
    let kinds: Vec<NoticeType> = first.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            NoticeType::AttemptEnded,
            NoticeType::ReminderCompleted,
            NoticeType::PaymentRecorded
        ]
    );
    assert_eq!(first[1].payload["data"]["amount_paid_minor"], 0);
    assert_eq!(first[2].payload["data"]["amount_paid_minor"], 100);
    assert_eq!(first[2].payload["data"]["payment"]["amount_minor"], 100);
    assert_eq!(first[2].payload["data"]["sequence"], 3);
    db.cleanup().await;
}
both_backends!(
    pages_follow_the_cursor_through_every_filter,
    pages_follow_the_cursor_through_every_filter
);

/// A notification as written before migration 0013: id, subject, sequence,
/// type, status, next try.
type Legacy = (String, String, i64, &'static str, &'static str, Option<i64>);

/// SQLite's log-structured outbox (migration 0013) takes over the
/// notifications written before it as they were: ids, bodies, sequences,
/// statuses, tries, counts; the pending ones are delivered, a resend
/// finds them by their ids, and the reminder's next notification is numbered
/// after them.
#[tokio::test]
async fn sqlite_the_log_migration_keeps_the_notifications_written_before() {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let mut before = sqlx::migrate::Migrator::new(std::path::Path::new("migrations/sqlite"))
        .await
        .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= 12)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let options = SqliteConnectOptions::from_str(&db.url)
        .unwrap()
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    before.run(&mut conn).await.unwrap();

    let reminder = ReminderId::new();
    let now = t("2026-11-24T15:00:00Z");
    let ms = |m: i64| now.timestamp_millis() - 60_000 + m;
    let legacy: Vec<Legacy> = vec![
        // id, subject, sequence, type, status, next_try_at
        (
            format!("msg_{}", uuid::Uuid::now_v7().simple()),
            reminder.to_string(),
            1,
            "attempt.ended",
            "delivered",
            None,
        ),
        (
            format!("msg_{}", uuid::Uuid::now_v7().simple()),
            reminder.to_string(),
            2,
            "reminder.failed",
            "failed",
            None,
        ),
        (
            format!("msg_{}", uuid::Uuid::now_v7().simple()),
            reminder.to_string(),
            3,
            "suppression.added",
            "pending",
            Some(ms(3)),
        ),
        (
            format!("msg_{}", uuid::Uuid::now_v7().simple()),
            "number:+14155550100".to_owned(),
            1,
            "suppression.added",
            "pending",
            Some(ms(4)),
        ),
    ];
    for (n, (id, subject, sequence, kind, status, next)) in legacy.iter().enumerate() {
        let body = json!({"type": kind, "timestamp": "2026-11-24T14:59:00.000Z",
                          "data": {"legacy": n, "sequence": sequence}})
        .to_string();
        sqlx::query(
            "INSERT INTO notifications (id, subject, sequence, reminder_id, type, body, status, \
             step, next_try_at, lease_owner, lease_until, created_at, delivered_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, 'gone', ?, ?, ?)",
        )
        .bind(id)
        .bind(subject)
        .bind(sequence)
        .bind((!subject.starts_with("number:")).then(|| reminder.to_string()))
        .bind(kind)
        .bind(body)
        .bind(status)
        .bind(next)
        .bind(ms(10)) // a lease that has run out by `now`
        .bind(ms(n as i64))
        .bind((*status == "delivered").then(|| ms(20)))
        .execute(&mut conn)
        .await
        .unwrap();
        for (k, code) in [(0, 500), (1, 204)].iter().take(if n < 2 { 2 } else { 1 }) {
            sqlx::query(
                "INSERT INTO notification_tries (notification_id, at, status_code, error, duration_ms) \
                 VALUES (?, ?, ?, NULL, 7)",
            )
            .bind(id)
            .bind(ms(30 + k))
            .bind(code)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
    sqlx::query("UPDATE notification_counts SET n = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = notifying(&db).await;
    let shown = of(&store, reminder).await;
    assert_eq!(shown.len(), 3);
    for (n, got) in shown.iter().enumerate() {
        let (id, _, sequence, kind, status, _) = &legacy[n];
        assert_eq!(&got.id, id);
        assert_eq!(i64::from(got.sequence), *sequence);
        assert_eq!(got.kind.as_str(), *kind);
        assert_eq!(got.status.as_str(), *status);
        assert_eq!(got.payload["data"]["legacy"], n);
        assert_eq!(got.tries.len(), if n < 2 { 2 } else { 1 });
        assert_eq!(got.tries[0].status_code, Some(500));
        assert_eq!(got.created_at.timestamp_millis(), ms(n as i64));
        assert_eq!(&store.get_notification(id).await.unwrap().unwrap(), got);
    }
    assert_eq!(
        shown[0].delivered_at.map(|d| d.timestamp_millis()),
        Some(ms(20))
    );
    let stats = store.notice_stats().await.unwrap();
    assert_eq!(
        stats.by_status,
        [
            (NoticeStatus::Pending, 2),
            (NoticeStatus::Delivered, 1),
            (NoticeStatus::Failed, 1)
        ]
    );
    assert_eq!(
        stats.oldest_pending.map(|t| t.timestamp_millis()),
        Some(ms(2))
    );

    // The pending ones are delivered, their bodies as they were written.
    let leased = store
        .lease_notifications("w", now, now + Duration::seconds(30), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = leased.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [legacy[2].0.as_str(), legacy[3].0.as_str()]);
    assert_eq!(leased[0].step, 1);
    let body: serde_json::Value = serde_json::from_str(&leased[1].body).unwrap();
    assert_eq!(body["data"]["legacy"], 3);
    for d in &leased {
        assert!(store
            .record_try(&d.id, "w", &tried(now, Some(204)), TryOutcome::Delivered)
            .await
            .unwrap());
    }
    let again = store
        .resend_notification(&legacy[1].0, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, NoticeStatus::Pending);
    let stats = store.notice_stats().await.unwrap();
    assert_eq!(
        stats.by_status,
        [
            (NoticeStatus::Pending, 1),
            (NoticeStatus::Delivered, 3),
            (NoticeStatus::Failed, 0)
        ]
    );

    // The reminder's next notification is its fourth.
    let body = common::reminder_body(json!({"scheduled_for": "2026-11-24T15:00:00Z"}));
    let new = NewReminder::parse(body.as_object().unwrap(), &defaults()).unwrap();
    store.create_reminder(&new, reminder, now).await.unwrap();
    cancel_all(&store, &[reminder], now).await;
    let shown = of(&store, reminder).await;
    assert_eq!(shown.len(), 4);
    assert_eq!(shown[3].kind, NoticeType::ReminderCancelled);
    assert_eq!(shown[3].sequence, 4);
    assert_eq!(shown[3].payload["data"]["sequence"], 4);
    assert_ne!(shown[3].id, legacy[2].0);
    db.cleanup().await;
}

/// A notification made by a clock ahead of the lease's (another instance's,
/// or one set right since) waits for its time and holds up none after it;
/// and a lease takes the earliest due first, retries and new ones alike.
async fn a_lease_takes_the_earliest_due_and_waits_for_none_ahead(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let t0 = t("2026-11-24T15:00:00Z");
    let ids = pending(&store, 6, "2026-11-24T16:00:00Z").await;
    // Three retrying since t0 + 5 s.
    cancel_all(&store, &ids[..3], t0).await;
    let first = store
        .lease_notifications("w", t0, t0 + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    for d in &first {
        assert!(store
            .record_try(
                &d.id,
                "w",
                &tried(t0, Some(503)),
                TryOutcome::RetryAt(t0 + Duration::seconds(5))
            )
            .await
            .unwrap());
    }
    // One made an hour ahead, then two made at t0 + 1 s.
    cancel_all(&store, &ids[3..4], t0 + Duration::hours(1)).await;
    cancel_all(&store, &ids[4..], t0 + Duration::seconds(1)).await;
    let ahead = of(&store, ids[3]).await.remove(0);
    let mut later = Vec::new();
    for id in [ids[4], ids[5]] {
        later.push(of(&store, id).await.remove(0).id);
    }

    let now = t0 + Duration::seconds(10);
    let leased = store
        .lease_notifications("w", now, now + Duration::seconds(30), 3)
        .await
        .unwrap();
    let got: HashSet<&str> = leased.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(leased.len(), 3);
    for id in &later {
        assert!(
            got.contains(id.as_str()),
            "due at t0 + 1 s, before the retries: {leased:?}"
        );
    }
    assert!(!got.contains(ahead.id.as_str()));
    let retried: Vec<&duecall::store::Delivery> = leased.iter().filter(|d| d.step == 1).collect();
    assert_eq!(retried.len(), 1);
    // The rest: the two other retries; the one ahead only at its time.
    let rest = store
        .lease_notifications("w", now, now + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|d| d.step == 1));
    for d in leased.iter().chain(&rest) {
        assert!(store
            .record_try(&d.id, "w", &tried(now, Some(204)), TryOutcome::Delivered)
            .await
            .unwrap());
    }
    let shown = store.get_notification(&ahead.id).await.unwrap().unwrap();
    assert_eq!(shown.status, NoticeStatus::Pending);
    assert_eq!(shown.next_try_at, Some(t0 + Duration::hours(1)));
    let at_its_time = t0 + Duration::hours(1);
    let last = store
        .lease_notifications("w", at_its_time, at_its_time + Duration::seconds(30), 10)
        .await
        .unwrap();
    let last: Vec<&str> = last.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(last, [ahead.id.as_str()]);
    // Ids are exact: the same hex in capitals is no notification.
    let shouted = format!("msg_{}", ahead.id[4..].to_uppercase());
    assert!(store.get_notification(&shouted).await.unwrap().is_none());
    db.cleanup().await;
}
both_backends!(
    a_lease_takes_the_earliest_due_and_waits_for_none_ahead,
    a_lease_takes_the_earliest_due_and_waits_for_none_ahead
);

/// Two SQLite databases making their first notification at one moment give
/// it different ids (each database's salt), and neither finds the other's.
#[tokio::test]
async fn sqlite_two_databases_never_make_one_id() {
    let at = t("2026-11-24T15:00:00Z");
    let mut made = Vec::new();
    for _ in 0..2 {
        let (db, store) = open(Backend::Sqlite).await.unwrap();
        let ids = pending(&store, 1, "2026-11-24T16:00:00Z").await;
        cancel_all(&store, &ids, at).await;
        let n = of(&store, ids[0]).await.remove(0);
        made.push((db, store, n.id));
    }
    assert_ne!(made[0].2, made[1].2);
    assert!(made[0]
        .1
        .get_notification(&made[1].2)
        .await
        .unwrap()
        .is_none());
    assert!(made[1]
        .1
        .get_notification(&made[0].2)
        .await
        .unwrap()
        .is_none());
    for (db, _, _) in made {
        db.cleanup().await;
    }
}
