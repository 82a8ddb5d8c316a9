//! The storage conformance suite: every case runs against SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::{decide_for, open_all_day, t, Backend, TestDb};
use duecall::domain::{self, CreateDefaults, Language, NewReminder, ReminderId, Status, TimeZone};
use duecall::store::{Applied, Created, ListQuery, Store};
use serde_json::json;

fn defaults() -> CreateDefaults {
    CreateDefaults {
        zone_policy: duecall::domain::ZonePolicy::All,
        timezone: TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    }
}

fn new_reminder(overrides: serde_json::Value) -> NewReminder {
    let body = common::reminder_body(overrides);
    NewReminder::parse(body.as_object().unwrap(), &defaults()).unwrap()
}

async fn open(backend: Backend) -> Option<(TestDb, Arc<dyn Store>)> {
    let db = TestDb::new(backend).await?;
    let store = db.store().await;
    assert_eq!(
        store.backend(),
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    Some((db, store))
}

async fn create_and_get(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00.123Z");
    let new = new_reminder(json!({
        "external_id": "inv-1042",
        "customer_name": "Zoë Ŝmith-O'Brien",
        "timezone": "Europe/Berlin",
        "language": "de-DE",
        "scheduled_for": "2026-11-25T09:30:00+01:00",
        "max_attempts": 5,
        "metadata": {"invoice": {"no": 1042, "lines": [1, 2.5, "x"]}, "vip": true},
    }));
    let id = ReminderId::new();
    let created = match store.create_reminder(&new, id, now).await.unwrap() {
        Created::New(r) => r,
        other => panic!("expected a new reminder, got {other:?}"),
    };
    assert_eq!(created.id, id);
    assert_eq!(created.status, Status::Pending);
    assert_eq!(created.attempt_count, 0);
    assert_eq!(created.next_attempt_at, Some(t("2026-11-25T08:30:00Z")));
    assert_eq!(created.created_at, now);

    let got = store.get_reminder(id).await.unwrap().expect("stored");
    assert_eq!(got, created, "every field reads back as written");
    assert_eq!(got.metadata["invoice"]["lines"], json!([1, 2.5, "x"]));
    assert!(store.list_attempts(id).await.unwrap().is_empty());
    assert_eq!(store.get_reminder(ReminderId::new()).await.unwrap(), None);
    store.ping().await.unwrap();
    db.cleanup().await;
}

async fn idempotent_create(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let first = new_reminder(json!({"external_id": "inv-7", "amount_due_minor": 100}));
    let Created::New(a) = store
        .create_reminder(&first, ReminderId::new(), now)
        .await
        .unwrap()
    else {
        panic!("first create must be new")
    };
    // Same key, different content, later: the existing reminder comes back unchanged.
    let again = new_reminder(json!({"external_id": "inv-7", "amount_due_minor": 999}));
    let later = now + Duration::minutes(5);
    match store
        .create_reminder(&again, ReminderId::new(), later)
        .await
        .unwrap()
    {
        Created::Existing(b) => assert_eq!(b, a),
        other => panic!("expected the existing reminder, got {other:?}"),
    }
    // Without an external_id every create is a new reminder.
    let plain = new_reminder(json!({}));
    for _ in 0..2 {
        assert!(matches!(
            store
                .create_reminder(&plain, ReminderId::new(), now)
                .await
                .unwrap(),
            Created::New(_)
        ));
    }
    let page = store
        .list_reminders(&ListQuery {
            status: None,
            limit: 10,
            after: None,
            search: None,
        })
        .await
        .unwrap();
    assert_eq!(page.reminders.len(), 3);
    db.cleanup().await;
}

async fn concurrent_creates_one_row(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let new = new_reminder(json!({"external_id": "same-key", "amount_due_minor": i}));
            store
                .create_reminder(&new, ReminderId::new(), now)
                .await
                .unwrap()
        }));
    }
    let mut new_count = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Created::New(r) => {
                new_count += 1;
                ids.insert(r.id);
            }
            Created::Existing(r) => {
                ids.insert(r.id);
            }
        }
    }
    assert_eq!(new_count, 1, "exactly one create wins");
    assert_eq!(ids.len(), 1, "everyone sees the same reminder");
    let page = store
        .list_reminders(&ListQuery {
            status: None,
            limit: 100,
            after: None,
            search: None,
        })
        .await
        .unwrap();
    assert_eq!(page.reminders.len(), 1);
    db.cleanup().await;
}

async fn list_pages_newest_first(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let start = t("2026-11-24T15:00:00Z");
    let mut made = Vec::new();
    for i in 0..7 {
        // Pairs share a creation time: the id breaks the tie, and no row is lost or repeated.
        let now = start + Duration::seconds(i / 2);
        let Created::New(r) = store
            .create_reminder(&new_reminder(json!({})), ReminderId::new(), now)
            .await
            .unwrap()
        else {
            panic!()
        };
        made.push(r);
    }
    made.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_reminders(&ListQuery {
                status: None,
                limit: 3,
                after,
                search: None,
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.reminders.len() <= 3);
        seen.extend(page.reminders.iter().map(|r| r.id));
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made.iter().map(|r| r.id).collect::<Vec<_>>());

    // A page that ends exactly at the last row says there is no next page.
    let page = store
        .list_reminders(&ListQuery {
            status: None,
            limit: 7,
            after: None,
            search: None,
        })
        .await
        .unwrap();
    assert_eq!(page.reminders.len(), 7);
    assert_eq!(page.next, None);

    // Filter by status.
    let victim = made[2].clone();
    let change = domain::cancel(&victim, start + Duration::minutes(1))
        .unwrap()
        .unwrap();
    assert!(matches!(
        store.apply(&change, None).await.unwrap(),
        Applied::Done(_)
    ));
    let cancelled = store
        .list_reminders(&ListQuery {
            status: Some(Status::Cancelled),
            limit: 50,
            after: None,
            search: None,
        })
        .await
        .unwrap();
    assert_eq!(
        cancelled.reminders.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![victim.id]
    );
    let pending = store
        .list_reminders(&ListQuery {
            status: Some(Status::Pending),
            limit: 50,
            after: None,
            search: None,
        })
        .await
        .unwrap();
    assert_eq!(pending.reminders.len(), 6);
    assert!(pending
        .reminders
        .iter()
        .all(|r| r.status == Status::Pending));
    db.cleanup().await;
}

async fn cancel_is_compare_and_set(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let Created::New(r) = store
        .create_reminder(&new_reminder(json!({})), ReminderId::new(), now)
        .await
        .unwrap()
    else {
        panic!()
    };
    let later = now + Duration::minutes(3);
    let change = domain::cancel(&r, later).unwrap().unwrap();
    let done = match store.apply(&change, None).await.unwrap() {
        Applied::Done(done) => done,
        other => panic!("expected the change to apply, got {other:?}"),
    };
    assert_eq!(done.status, Status::Cancelled);
    assert_eq!(done.next_attempt_at, None);
    assert_eq!(done.updated_at, later);
    assert_eq!(
        done.skip_reason.as_deref(),
        Some(domain::SKIP_CANCELLED_BY_OPERATOR)
    );
    assert_eq!(store.get_reminder(r.id).await.unwrap(), Some(*done.clone()));

    // The same decision again: the row has moved on, nothing is written.
    let mut again = change.clone();
    again.at = later + Duration::minutes(1);
    assert_eq!(store.apply(&again, None).await.unwrap(), Applied::Stale);
    assert_eq!(store.get_reminder(r.id).await.unwrap(), Some(*done));

    let mut ghost = change;
    ghost.reminder_id = ReminderId::new();
    assert_eq!(store.apply(&ghost, None).await.unwrap(), Applied::NotFound);
    db.cleanup().await;
}

/// `deferred_by` says what holds a waiting reminder back; once a decision
/// moves the reminder on (here an operator's cancel), nothing does.
async fn a_decision_clears_deferred_by(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    // 21:30 in New York: the window is closed.
    let now = t("2026-11-25T02:30:00Z");
    let id = ReminderId::new();
    store
        .create_reminder(&new_reminder(json!({})), id, now)
        .await
        .unwrap();
    let report = store
        .claim(&[id], now, 10, &common::default_rules())
        .await
        .unwrap();
    assert!(report.claimed.is_empty());
    let r = store.get_reminder(id).await.unwrap().unwrap();
    assert_eq!(r.deferred_by, Some(domain::DeferredBy::Window));
    let change = domain::cancel(&r, now + Duration::minutes(1))
        .unwrap()
        .unwrap();
    let Applied::Done(done) = store.apply(&change, None).await.unwrap() else {
        panic!("the cancel applies")
    };
    assert_eq!(done.deferred_by, None);
    assert_eq!(
        store.get_reminder(id).await.unwrap().unwrap().deferred_by,
        None
    );
    db.cleanup().await;
}

both_backends!(a_cancel_clears_deferred_by, a_decision_clears_deferred_by);

async fn concurrent_cancels_one_winner(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let Created::New(r) = store
        .create_reminder(&new_reminder(json!({})), ReminderId::new(), now)
        .await
        .unwrap()
    else {
        panic!()
    };
    let change = domain::cancel(&r, now).unwrap().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, change) = (store.clone(), change.clone());
        tasks.push(tokio::spawn(async move {
            store.apply(&change, None).await.unwrap()
        }));
    }
    let mut done = 0;
    for task in tasks {
        match task.await.unwrap() {
            Applied::Done(_) => done += 1,
            Applied::Stale => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(done, 1, "exactly one compare-and-set wins");
    db.cleanup().await;
}

both_backends!(create_and_get_round_trips_every_field, create_and_get);
both_backends!(create_is_idempotent_on_external_id, idempotent_create);
both_backends!(
    concurrent_creates_with_one_external_id_make_one_row,
    concurrent_creates_one_row
);
both_backends!(
    list_paginates_newest_first_and_filters,
    list_pages_newest_first
);
both_backends!(apply_is_compare_and_set, cancel_is_compare_and_set);
both_backends!(
    concurrent_applies_have_one_winner,
    concurrent_cancels_one_winner
);

// --- The scheduler's operations ----------------------------------------------

/// `n` reminders due at 15:00 and claimed at 15:01 (each with a live first
/// attempt), and that 15:01: where the event tests start.
async fn live_reminders(store: &Arc<dyn Store>, n: usize) -> (Vec<ReminderId>, DateTime<Utc>) {
    let ids = due_reminders(store, n, "2026-11-24T15:00:00Z", json!({})).await;
    let now = t("2026-11-24T15:01:00Z");
    store
        .claim(&ids, now, 1000, &common::default_rules())
        .await
        .unwrap();
    (ids, now)
}

/// Store `n` reminders due at `at` (created then), returning their ids in creation order.
async fn due_reminders(
    store: &Arc<dyn Store>,
    n: usize,
    at: &str,
    extra: serde_json::Value,
) -> Vec<ReminderId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut body = extra.clone();
        body["scheduled_for"] = json!(at);
        body["external_id"] = json!(format!("due-{i}-{}", uuid::Uuid::new_v4().simple()));
        let id = ReminderId::new();
        store
            .create_reminder(&new_reminder(body), id, t(at))
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn claim_matches_the_state_machine(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(&store, 3, "2026-11-24T15:00:00Z", json!({})).await;
    let now = t("2026-11-24T15:01:00.250Z");
    // Not yet due at an earlier time.
    assert!(store
        .due(t("2026-11-24T14:59:59Z"), 10)
        .await
        .unwrap()
        .is_empty());
    let due = store.due(now, 10).await.unwrap();
    assert_eq!(due.len(), 3);

    let before = store.get_reminder(ids[0]).await.unwrap().unwrap();
    let claimed = store
        .claim(&ids[..2], now, 10, &common::default_rules())
        .await
        .unwrap()
        .claimed;
    assert_eq!(claimed.len(), 2, "only the ids asked for");
    let after = claimed.iter().find(|r| r.id == ids[0]).unwrap().clone();
    // The batch claim writes exactly what the pure `claim` decides.
    let expected = domain::claim(&before, now).unwrap();
    let u = expected.reminder.unwrap();
    assert_eq!(after.status, u.status);
    assert_eq!(after.attempt_count, u.attempt_count);
    assert_eq!(after.next_attempt_at, u.next_attempt_at);
    assert_eq!(after.last_attempt_at, u.last_attempt_at);
    assert_eq!(after.skip_reason, u.skip_reason);
    assert_eq!(after.updated_at, now);
    assert_eq!(store.get_reminder(ids[0]).await.unwrap().unwrap(), after);
    let attempts = store.list_attempts(ids[0]).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].attempt, 1);
    assert_eq!(attempts[0].status, domain::AttemptStatus::InProgress);
    assert_eq!(attempts[0].room_name, domain::room_name(ids[0], 1));
    assert_eq!(attempts[0].dispatched_at, now);

    // Claiming again finds nothing: they are live now.
    assert!(store
        .claim(&ids[..2], now, 10, &common::default_rules())
        .await
        .unwrap()
        .claimed
        .is_empty());
    assert_eq!(store.count_live().await.unwrap(), 2);
    let due = store.due(now, 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[2]]);
    db.cleanup().await;
}

async fn claim_respects_the_live_cap(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(&store, 5, "2026-11-24T15:00:00Z", json!({})).await;
    let now = t("2026-11-24T15:05:00Z");
    assert_eq!(
        store
            .claim(&ids, now, 2, &common::default_rules())
            .await
            .unwrap()
            .claimed
            .len(),
        2
    );
    assert!(
        store
            .claim(&ids, now, 2, &common::default_rules())
            .await
            .unwrap()
            .claimed
            .is_empty(),
        "the cap is full"
    );
    assert_eq!(
        store
            .claim(&ids, now, 3, &common::default_rules())
            .await
            .unwrap()
            .claimed
            .len(),
        1
    );
    assert_eq!(store.count_live().await.unwrap(), 3);
    db.cleanup().await;
}

async fn claim_refuses_what_is_not_due(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let later = due_reminders(&store, 1, "2026-11-24T18:00:00Z", json!({})).await;
    let one_try = due_reminders(
        &store,
        1,
        "2026-11-24T15:00:00Z",
        json!({"max_attempts": 1}),
    )
    .await;
    let now = t("2026-11-24T15:05:00Z");
    assert!(
        store
            .claim(&later, now, 10, &common::default_rules())
            .await
            .unwrap()
            .claimed
            .is_empty(),
        "not due yet"
    );
    // Cancelled: never claimed.
    let r = store.get_reminder(one_try[0]).await.unwrap().unwrap();
    let cancel = domain::cancel(&r, now).unwrap().unwrap();
    assert!(matches!(
        store.apply(&cancel, None).await.unwrap(),
        Applied::Done(_)
    ));
    assert!(store
        .claim(&one_try, now, 10, &common::default_rules())
        .await
        .unwrap()
        .claimed
        .is_empty());
    assert!(store.due(now, 10).await.unwrap().is_empty());
    db.cleanup().await;
}

async fn defer_moves_only_unchanged_rows(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(&store, 2, "2026-11-24T03:00:00Z", json!({})).await;
    let now = t("2026-11-24T03:30:00Z");
    let to = t("2026-11-24T13:00:00Z");
    let deferrals = [
        duecall::store::Deferral {
            id: ids[0],
            from: t("2026-11-24T03:00:00Z"),
            to,
        },
        // A stale read: it moves nothing.
        duecall::store::Deferral {
            id: ids[1],
            from: t("2026-11-24T02:00:00Z"),
            to,
        },
    ];
    assert_eq!(store.defer(&deferrals, now).await.unwrap(), 1);
    let moved = store.get_reminder(ids[0]).await.unwrap().unwrap();
    assert_eq!(moved.next_attempt_at, Some(to));
    assert_eq!(moved.updated_at, now);
    let kept = store.get_reminder(ids[1]).await.unwrap().unwrap();
    assert_eq!(kept.next_attempt_at, Some(t("2026-11-24T03:00:00Z")));
    assert_eq!(store.due(now, 10).await.unwrap().len(), 1);
    db.cleanup().await;
}

async fn overdue_finds_attempts_past_their_deadline(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(&store, 2, "2026-11-24T15:00:00Z", json!({})).await;
    let dispatched = t("2026-11-24T15:00:00Z");
    store
        .claim(&ids, dispatched, 10, &common::default_rules())
        .await
        .unwrap();
    // The second is answered ten minutes in: processing.
    let r = store.get_reminder(ids[1]).await.unwrap().unwrap();
    let att = store.get_attempt(ids[1], 1).await.unwrap().unwrap();
    let answered = t("2026-11-24T15:10:00Z");
    let ev = domain::Event {
        reminder_id: ids[1],
        attempt: Some(1),
        occurred_at: answered,
        kind: domain::EventKind::Answered,
    };
    let retry = open_all_day(Duration::hours(2));
    let ctx = domain::Ctx {
        now: answered,
        retry: &retry,
        jitter: 0.5,
        promise_grace_days: 3,
    };
    let d = domain::transition(&r, Some(&att), &ev, &ctx);
    assert!(matches!(
        store.apply(&d.change, None).await.unwrap(),
        Applied::Done(_)
    ));

    let ten = Duration::minutes(10);
    let thirty = Duration::minutes(30);
    let ids_at = |now: chrono::DateTime<chrono::Utc>| {
        let store = Arc::clone(&store);
        async move {
            store
                .overdue(now - ten, now - thirty, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert!(ids_at(t("2026-11-24T15:09:59Z")).await.is_empty());
    // in_progress: ten minutes after dispatch.
    assert_eq!(ids_at(t("2026-11-24T15:10:00Z")).await, vec![ids[0]]);
    // processing: thirty minutes after the answer, not after the dispatch.
    assert_eq!(ids_at(t("2026-11-24T15:30:00Z")).await, vec![ids[0]]);
    assert_eq!(
        ids_at(t("2026-11-24T15:40:00Z")).await,
        vec![ids[0], ids[1]]
    );
    db.cleanup().await;
}

async fn weekly_cap_is_enforced_by_the_claim(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(
        &store,
        1,
        "2026-11-16T15:00:00Z",
        json!({"max_attempts": 10}),
    )
    .await;
    let id = ids[0];
    // Seven attempts, each ending unreached, a day apart from Nov 16.
    let retry = open_all_day(Duration::seconds(1));
    // Every day and hour open: only the frequency cap (7/7d) can say no.
    let rules = common::test_config(
        "sqlite://unused.db",
        &[
            ("CALLING_WINDOW", "00:00-24:00"),
            ("CALLING_DAYS", "Mon-Sun"),
        ],
    )
    .calling_rules();
    let mut now = t("2026-11-16T15:00:00Z");
    for n in 1..=7u32 {
        assert_eq!(
            store
                .claim(&[id], now, 10, &rules)
                .await
                .unwrap()
                .claimed
                .len(),
            1,
            "attempt {n}"
        );
        let r = store.get_reminder(id).await.unwrap().unwrap();
        let att = store.get_attempt(id, n).await.unwrap().unwrap();
        let ev = domain::Event {
            reminder_id: id,
            attempt: Some(n),
            occurred_at: now,
            kind: domain::EventKind::Completed(
                serde_json::from_value(json!({"result": "no_answer"})).unwrap(),
            ),
        };
        let ctx = domain::Ctx {
            now,
            retry: &retry,
            jitter: 0.0,
            promise_grace_days: 3,
        };
        let d = domain::transition(&r, Some(&att), &ev, &ctx);
        assert!(matches!(
            store.apply(&d.change, None).await.unwrap(),
            Applied::Done(_)
        ));
        now += Duration::hours(20);
    }
    // Nov 22 11:00: seven attempts in the last seven days: the claim refuses.
    assert_eq!(
        store.due(now, 10).await.unwrap().len(),
        1,
        "due as far as the row goes"
    );
    assert!(store
        .claim(&[id], now, 10, &rules)
        .await
        .unwrap()
        .claimed
        .is_empty());
    // Once the first (Nov 16 15:00) is more than seven days old, it may be called.
    let later = t("2026-11-23T15:00:00.001Z");
    assert_eq!(
        store
            .claim(&[id], later, 10, &rules)
            .await
            .unwrap()
            .claimed
            .len(),
        1
    );
    db.cleanup().await;
}

both_backends!(
    claim_writes_what_the_state_machine_decides,
    claim_matches_the_state_machine
);
both_backends!(
    claim_keeps_live_attempts_under_the_cap,
    claim_respects_the_live_cap
);
both_backends!(
    claim_takes_only_due_reminders,
    claim_refuses_what_is_not_due
);
both_backends!(defer_is_compare_and_set, defer_moves_only_unchanged_rows);
both_backends!(
    overdue_uses_dispatch_and_answer_times,
    overdue_finds_attempts_past_their_deadline
);
both_backends!(
    weekly_cap_holds_in_the_claim,
    weekly_cap_is_enforced_by_the_claim
);

/// However an attempt is started (the claim, or a `Start` change applied on
/// its own), it counts against every reminder of its debt.
async fn an_applied_start_counts_against_its_debt(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let at = "2026-11-24T15:00:00Z";
    let ids = due_reminders(&store, 2, at, json!({"debt_ref": "DEBT-shared"})).await;
    let first = store.get_reminder(ids[0]).await.unwrap().unwrap();
    let start = domain::claim(&first, t(at)).unwrap();
    assert!(matches!(
        store.apply(&start, None).await.unwrap(),
        Applied::Done(_)
    ));
    let rules = common::test_config(
        "sqlite://unused.db",
        &[
            ("CALLING_WINDOW", "00:00-24:00"),
            ("CALLING_DAYS", "Mon-Sun"),
            ("CALL_FREQUENCY", "1/7d"),
        ],
    )
    .calling_rules();
    let report = store.claim(&[ids[1]], t(at), 10, &rules).await.unwrap();
    assert!(report.claimed.is_empty(), "{report:?}");
    let second = store.get_reminder(ids[1]).await.unwrap().unwrap();
    assert_eq!(second.deferred_by, Some(domain::DeferredBy::Frequency));
    assert_eq!(second.next_attempt_at, Some(t("2026-12-01T15:00:00Z")));
    db.cleanup().await;
}

both_backends!(
    a_started_attempt_counts_against_its_debt,
    an_applied_start_counts_against_its_debt
);

async fn many_concurrent_applies_each_commit_once(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(&store, 64, "2026-11-24T15:00:00Z", json!({})).await;
    let now = t("2026-11-24T15:01:00Z");
    assert_eq!(
        store
            .claim(&ids, now, 1000, &common::default_rules())
            .await
            .unwrap()
            .claimed
            .len(),
        64
    );
    let retry = open_all_day(Duration::hours(2));
    // Each reminder's completion, sent twice at once (as a retrying agent might):
    // 128 applies in flight together, which SQLite's writer groups into shared commits.
    let mut tasks = Vec::new();
    for id in &ids {
        let r = store.get_reminder(*id).await.unwrap().unwrap();
        let att = store.get_attempt(*id, 1).await.unwrap().unwrap();
        let ev = domain::Event {
            reminder_id: *id,
            attempt: Some(1),
            occurred_at: now,
            kind: domain::EventKind::Completed(
                serde_json::from_value(json!({"result": "paid"})).unwrap(),
            ),
        };
        let ctx = domain::Ctx {
            now,
            retry: &retry,
            jitter: 0.5,
            promise_grace_days: 3,
        };
        let change = domain::transition(&r, Some(&att), &ev, &ctx).change;
        let record = duecall::store::EventRecord {
            webhook_id: format!("msg_{id}"),
            reminder_id: *id,
            attempt: Some(1),
            event_type: domain::EventType::CallCompleted,
            occurred_at: now,
            received_at: now,
            applied: true,
            verdict: domain::Verdict::Applied,
            payload: "{}".into(),
        };
        for _ in 0..2 {
            let store = Arc::clone(&store);
            let (change, record) = (change.clone(), record.clone());
            tasks.push(tokio::spawn(async move {
                store.apply(&change, Some(&record)).await.unwrap()
            }));
        }
    }
    let (mut done, mut other) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Applied::Done(r) => {
                assert_eq!(r.status, Status::Completed);
                done += 1;
            }
            Applied::Duplicate | Applied::Stale => other += 1,
            Applied::NotFound => panic!("every reminder exists"),
        }
    }
    assert_eq!((done, other), (64, 64), "one of each pair wins");
    for id in &ids {
        assert_eq!(store.count_events(*id).await.unwrap(), 1, "the event once");
        let r = store.get_reminder(*id).await.unwrap().unwrap();
        assert_eq!(r.status, Status::Completed);
        let att = store.get_attempt(*id, 1).await.unwrap().unwrap();
        assert_eq!(att.status, domain::AttemptStatus::Completed);
    }
    // And it is all on disk: a new store on the same database sees it.
    drop(store);
    let again = db.store().await;
    for id in &ids {
        assert_eq!(
            again.get_reminder(*id).await.unwrap().unwrap().status,
            Status::Completed
        );
    }
    db.cleanup().await;
}

both_backends!(
    concurrent_applies_commit_each_event_once,
    many_concurrent_applies_each_commit_once
);

async fn concurrent_ingests_each_decide_on_what_is_written(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let (ids, now) = live_reminders(&store, 32).await;
    let event = |id: ReminderId, kind: domain::EventKind| domain::Event {
        reminder_id: id,
        attempt: Some(1),
        occurred_at: now,
        kind,
    };
    // Each reminder's answer and completion at once, and the completion's
    // retry: 96 events in flight, each decided against the reminder as the
    // events before it (perhaps in the same batch, uncommitted) left it.
    let mut tasks = Vec::new();
    for id in &ids {
        let paid = domain::EventKind::Completed(
            serde_json::from_value(json!({"result": "paid"})).unwrap(),
        );
        for (webhook_id, kind) in [
            (format!("ans_{id}"), domain::EventKind::Answered),
            (format!("end_{id}"), paid.clone()),
            (format!("end_{id}"), paid),
        ] {
            let store = Arc::clone(&store);
            let decide = decide_for(event(*id, kind), webhook_id, now);
            let id = *id;
            tasks.push(tokio::spawn(async move {
                store.ingest(id, Some(1), decide).await.unwrap().unwrap()
            }));
        }
    }
    let mut duplicates = 0;
    for task in tasks {
        let done = task.await.unwrap();
        match done.applied {
            Applied::Done(after) => assert_eq!(after.id, done.before.id),
            Applied::Duplicate => duplicates += 1,
            other => panic!("{other:?}: a decision made where it is written is never stale"),
        }
    }
    assert_eq!(duplicates, 32, "each completion's retry is a repeat");
    for id in &ids {
        assert_eq!(
            store.count_events(*id).await.unwrap(),
            2,
            "both events, once"
        );
        let r = store.get_reminder(*id).await.unwrap().unwrap();
        assert_eq!(r.status, Status::Completed);
        let att = store.get_attempt(*id, 1).await.unwrap().unwrap();
        assert_eq!(att.status, domain::AttemptStatus::Completed);
    }
    // What an event leaves is what is stored, to the millisecond (SQLite
    // computes it rather than reading it back): answered, then completed.
    let more = due_reminders(
        &store,
        1,
        "2026-11-24T15:00:00Z",
        json!({"external_id": "exact-1"}),
    )
    .await;
    store
        .claim(&more, now, 1000, &common::default_rules())
        .await
        .unwrap();
    let at = now + Duration::milliseconds(1234) + Duration::microseconds(567);
    let busy =
        domain::EventKind::Completed(serde_json::from_value(json!({"result": "busy"})).unwrap());
    for (n, kind) in [domain::EventKind::Answered, busy].into_iter().enumerate() {
        let decide = decide_for(event(more[0], kind), format!("exact_{n}"), at);
        let done = store
            .ingest(more[0], Some(1), decide)
            .await
            .unwrap()
            .unwrap();
        let Applied::Done(after) = done.applied else {
            panic!("{:?}", done.applied)
        };
        assert_eq!(*after, store.get_reminder(more[0]).await.unwrap().unwrap());
    }

    // No such reminder: nothing decided, nothing written.
    let stranger = ReminderId::new();
    let decide = decide_for(
        event(stranger, domain::EventKind::Answered),
        "msg_stranger".into(),
        now,
    );
    assert!(store
        .ingest(stranger, None, decide)
        .await
        .unwrap()
        .is_none());
    assert!(store.get_event("msg_stranger").await.unwrap().is_none());
    db.cleanup().await;
}

both_backends!(
    concurrent_ingests_decide_on_what_is_written,
    concurrent_ingests_each_decide_on_what_is_written
);

async fn an_undone_write_takes_nothing_else_with_it(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let (ids, now) = live_reminders(&store, 24).await;
    // A change decided on a reminder as it no longer is (pending, attempt 0),
    // with its event: the event row is written first and must be undone.
    let (stale_id, rest) = ids.split_first().unwrap();
    let stale = domain::Change {
        reminder_id: *stale_id,
        expect_status: Status::Pending,
        expect_attempt: 0,
        at: now,
        reminder: None,
        attempt: None,
        suppress: None,
        action: None,
    };
    let record = duecall::store::EventRecord {
        webhook_id: "msg_stale".into(),
        reminder_id: *stale_id,
        attempt: Some(1),
        event_type: domain::EventType::CallAnswered,
        occurred_at: now,
        received_at: now,
        applied: true,
        verdict: domain::Verdict::Applied,
        payload: "{}".into(),
    };
    // Sent together with other events, so that on SQLite they share its batch.
    let mut tasks = Vec::new();
    for (n, id) in rest.iter().enumerate() {
        let store = Arc::clone(&store);
        let ev = domain::Event {
            reminder_id: *id,
            attempt: Some(1),
            occurred_at: now,
            kind: domain::EventKind::Answered,
        };
        let decide = decide_for(ev, format!("msg_ok_{n}"), now);
        let id = *id;
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
        tokio::spawn(async move { store.apply(&stale, Some(&record)).await.unwrap() })
    };
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Applied::Done(_)));
    }
    assert_eq!(stale_apply.await.unwrap(), Applied::Stale);
    assert!(
        store.get_event("msg_stale").await.unwrap().is_none(),
        "the stale change's event row was undone"
    );
    for (n, id) in rest.iter().enumerate() {
        assert!(store
            .get_event(&format!("msg_ok_{n}"))
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            store.get_reminder(*id).await.unwrap().unwrap().status,
            Status::Processing
        );
    }
    assert_eq!(
        store.get_reminder(*stale_id).await.unwrap().unwrap().status,
        Status::InProgress
    );
    db.cleanup().await;
}

both_backends!(
    an_undone_write_takes_nothing_else_with_it,
    an_undone_write_takes_nothing_else_with_it
);

/// Events that arrive together share a commit; one the database refuses
/// (an injected fault) fails alone: it leaves no trace, the others are written.
async fn a_refused_event_fails_alone(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    db.refuse_events_marked_bad().await;
    let (ids, now) = live_reminders(&store, 16).await;
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let mut events = vec![(format!("ans_{id}"), domain::EventKind::Answered)];
        if n % 4 == 0 {
            let paid = serde_json::from_value(json!({"result": "paid"})).unwrap();
            events.push((format!("bad_{id}"), domain::EventKind::Completed(paid)));
        }
        for (webhook_id, kind) in events {
            let store = Arc::clone(&store);
            let ev = domain::Event {
                reminder_id: *id,
                attempt: Some(1),
                occurred_at: now,
                kind,
            };
            let decide = decide_for(ev, webhook_id.clone(), now);
            let id = *id;
            tasks.push(tokio::spawn(async move {
                (webhook_id, store.ingest(id, Some(1), decide).await)
            }));
        }
    }
    for task in tasks {
        let (webhook_id, result) = task.await.unwrap();
        if webhook_id.starts_with("bad_") {
            assert!(result.is_err(), "{webhook_id}: {result:?}");
        } else {
            let done = result.unwrap().unwrap();
            assert!(matches!(done.applied, Applied::Done(_)), "{webhook_id}");
        }
    }
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(store.count_events(*id).await.unwrap(), 1, "the answer only");
        assert!(store
            .get_event(&format!("ans_{id}"))
            .await
            .unwrap()
            .is_some());
        if n % 4 == 0 {
            assert!(store
                .get_event(&format!("bad_{id}"))
                .await
                .unwrap()
                .is_none());
        }
        let att = store.get_attempt(*id, 1).await.unwrap().unwrap();
        assert_ne!(att.status, domain::AttemptStatus::Completed, "no trace");
    }
    db.cleanup().await;
}

both_backends!(a_refused_event_fails_alone, a_refused_event_fails_alone);

/// Events that arrive together, of every kind a call produces — answers,
/// completions that open a promise (two rivals on some reminders), a busy
/// line, failures, a repeat, one refused by the database — leave the
/// dashboard's counts equal to a recount. SQLite's event batches write those
/// counts themselves (their connection runs without the triggers), so this is
/// what holds them to what the triggers counted; PostgreSQL's batches do the
/// same for two of its triggers.
async fn a_batch_of_events_leaves_the_glance_equal_to_a_recount(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    db.refuse_events_marked_bad().await;
    let (ids, now) = live_reminders(&store, 40).await;
    let completed = |outcome: serde_json::Value| {
        domain::EventKind::Completed(serde_json::from_value(outcome).unwrap())
    };
    let promised = |amount: i64| {
        completed(
            json!({"result": "payment_promised", "promised_amount_minor": amount,
                         "promised_date": "2026-12-24"}),
        )
    };
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let mut events = vec![(format!("ans_{id}"), domain::EventKind::Answered)];
        match n % 5 {
            0 => events.push((format!("p1_{id}"), promised(1000 + n as i64))),
            1 => {
                events.push((format!("p1_{id}"), promised(500)));
                events.push((format!("p2_{id}"), promised(700)));
            }
            2 => events.push((format!("busy_{id}"), completed(json!({"result": "busy"})))),
            3 => events.push((
                format!("fail_{id}"),
                domain::EventKind::Failed(
                    serde_json::from_value(json!({"reason": "no_answer"})).unwrap(),
                ),
            )),
            _ => events.push((format!("bad_{id}"), completed(json!({"result": "paid"})))),
        }
        // A repeat of the answer, in the same burst.
        events.push((format!("ans_{id}"), domain::EventKind::Answered));
        for (webhook_id, kind) in events {
            let store = Arc::clone(&store);
            let id = *id;
            let ev = domain::Event {
                reminder_id: id,
                attempt: Some(1),
                occurred_at: now,
                kind,
            };
            let decide = decide_for(ev, webhook_id.clone(), now);
            tasks.push(tokio::spawn(async move {
                (webhook_id, store.ingest(id, Some(1), decide).await)
            }));
        }
    }
    let mut promises = 0;
    for task in tasks {
        let (webhook_id, result) = task.await.unwrap();
        if webhook_id.starts_with("bad_") {
            assert!(result.is_err(), "{webhook_id}: {result:?}");
            continue;
        }
        let done = result.unwrap().unwrap();
        if webhook_id.starts_with('p')
            && matches!(done.applied, Applied::Done(_))
            && done.decision.verdict == domain::Verdict::Applied
        {
            promises += 1;
        }
    }
    // One promise opened per reminder offered one or two.
    assert_eq!(promises, 16, "promises opened");
    common::load::assert_glance_recounts(&db.url).await;
    db.cleanup().await;
}
both_backends!(
    a_batch_of_events_leaves_the_glance_equal_to_a_recount,
    a_batch_of_events_leaves_the_glance_equal_to_a_recount
);

/// Events (SQLite: the writer's events lane, counting for itself) in the same
/// batches as payments and promise verdicts (its other lane, counted by the
/// triggers), round after round: the dashboard's counts equal a recount, and
/// promises end open, kept and broken.
async fn events_payments_and_verdicts_together_leave_the_glance_equal_to_a_recount(
    backend: Backend,
) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:01:00Z");
    for round in 0..3 {
        let ids = due_reminders(&store, 24, "2026-11-24T15:00:00Z", json!({})).await;
        store
            .claim(&ids, now, 1000, &common::default_rules())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let id = *id;
            let promised = domain::EventKind::Completed(
                serde_json::from_value(json!({"result": "payment_promised",
                    "promised_amount_minor": 500 + n as i64, "promised_date": "2026-11-25"}))
                .unwrap(),
            );
            for (webhook_id, kind) in [
                (format!("a{round}_{id}"), domain::EventKind::Answered),
                (format!("p{round}_{id}"), promised),
            ] {
                let store = Arc::clone(&store);
                let ev = domain::Event {
                    reminder_id: id,
                    attempt: Some(1),
                    occurred_at: now,
                    kind,
                };
                let decide = decide_for(ev, webhook_id, now);
                tasks.push(tokio::spawn(async move {
                    store.ingest(id, Some(1), decide).await.unwrap();
                }));
            }
            // Every other reminder pays in full (its promise, once open, is kept).
            if n % 2 == 0 {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    let paid = domain::NewPayment {
                        amount_minor: 10_000,
                        paid_at: None,
                        reference: None,
                    };
                    store
                        .record_payment(id, &paid, now + Duration::seconds(1))
                        .await
                        .unwrap();
                }));
            }
            // And now and then the sweep decides what is due (the rest broken).
            if n % 6 == 0 {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    store
                        .decide_promises(t("2026-12-30T00:00:00Z"), 1000)
                        .await
                        .unwrap();
                }));
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    common::load::assert_glance_recounts(&db.url).await;
    let glance = store
        .glance(&[t("2026-11-24T00:00:00Z"), t("2026-11-25T00:00:00Z")])
        .await
        .unwrap();
    let statuses: std::collections::BTreeSet<String> =
        glance.promises.iter().map(|p| p.status.clone()).collect();
    assert!(
        statuses.len() >= 2,
        "promises of one status only: {statuses:?}"
    );
    db.cleanup().await;
}
both_backends!(
    events_payments_and_verdicts_together_leave_the_glance_equal_to_a_recount,
    events_payments_and_verdicts_together_leave_the_glance_equal_to_a_recount
);

/// Two service instances (two stores, two pools, their own batching writers)
/// ingest the same events on the same reminders at once, in opposite orders:
/// each webhook-id is written once, exactly one of two rival completions
/// wins, and no deadlock (or any other error) reaches a caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_ingest_the_same_reminders_at_once() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let (a, b) = (db.store().await, db.store().await);
    let ids = due_reminders(&a, 32, "2026-11-24T15:00:00Z", json!({})).await;
    let now = t("2026-11-24T15:01:00Z");
    a.claim(&ids, now, 1000, &common::default_rules())
        .await
        .unwrap();
    let event = |id: ReminderId, kind: domain::EventKind| domain::Event {
        reminder_id: id,
        attempt: Some(1),
        occurred_at: now,
        kind,
    };
    let completed = |result: &str| {
        domain::EventKind::Completed(serde_json::from_value(json!({ "result": result })).unwrap())
    };
    let mut tasks = Vec::new();
    for (store, order) in [(&a, ids.clone()), (&b, ids.iter().rev().copied().collect())] {
        for id in order {
            // Both instances hear every event (a retry that went elsewhere);
            // the two completions are rivals.
            for (webhook_id, kind) in [
                (format!("ans_{id}"), domain::EventKind::Answered),
                (format!("paid_{id}"), completed("paid")),
                (format!("busy_{id}"), completed("busy")),
            ] {
                let store = Arc::clone(store);
                let decide = decide_for(event(id, kind), webhook_id.clone(), now);
                tasks.push(tokio::spawn(async move {
                    let done = store.ingest(id, Some(1), decide).await.unwrap().unwrap();
                    (id, webhook_id, done)
                }));
            }
        }
    }
    let mut written = HashSet::new();
    let mut duplicates = 0;
    let mut winners = std::collections::HashMap::<ReminderId, Vec<String>>::new();
    for task in tasks {
        let (id, webhook_id, done) = task.await.unwrap();
        match done.applied {
            Applied::Done(_) => {
                assert!(written.insert(webhook_id.clone()), "{webhook_id} twice");
                let completion = !webhook_id.starts_with("ans_");
                if completion && done.decision.verdict == domain::Verdict::Applied {
                    winners.entry(id).or_default().push(webhook_id);
                }
            }
            Applied::Duplicate => duplicates += 1,
            other => panic!("{webhook_id}: {other:?}"),
        }
    }
    assert_eq!(written.len(), 3 * 32, "every event written once");
    assert_eq!(duplicates, 3 * 32, "and heard once more as a repeat");
    for id in &ids {
        let won = &winners[id];
        assert_eq!(won.len(), 1, "one completion wins: {won:?}");
        assert_eq!(a.count_events(*id).await.unwrap(), 3);
        // Paid: done; busy: a retry later.
        let r = b.get_reminder(*id).await.unwrap().unwrap();
        let expected = if won[0].starts_with("paid_") {
            Status::Completed
        } else {
            Status::Pending
        };
        assert_eq!(r.status, expected, "{}", won[0]);
    }
    // The dashboard's counts, which each batch appends for what it changed,
    // equal a recount: a batch that waited for the other instance's lock
    // counts from what it finds once it has it, not from before it waited.
    common::load::assert_glance_recounts(&db.url).await;
    db.cleanup().await;
}

/// PostgreSQL writes a batch of events about different reminders with one
/// statement (`src/store/postgres/batch.rs`): what it stores is what each job
/// was answered — the reminder to the millisecond, a promise's columns, the
/// attempt — and a repeat in such a batch writes nothing. A trigger records
/// which statement wrote each event, to show the batch's statement did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_of_events_is_written_by_one_statement() {
    use sqlx::Connection;
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    // With notifications on: the statement writes each job's notices too.
    let store = duecall::store::connect_with(&db.url, 8, true)
        .await
        .unwrap();
    db.execute(
        "CREATE TABLE event_writers (webhook_id TEXT, query TEXT); \
         CREATE FUNCTION note_writer() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN INSERT INTO event_writers VALUES (NEW.webhook_id, current_query()); \
         RETURN NEW; END $$; \
         CREATE TRIGGER note_writer AFTER INSERT ON events FOR EACH ROW \
         EXECUTE FUNCTION note_writer();",
    )
    .await;
    let now = t("2026-11-24T15:01:00Z");
    let at = now + Duration::milliseconds(1234) + Duration::microseconds(567);
    let mut batched = 0;
    // Batches form when events wait for a writer: a few rounds at most.
    for round in 0..5 {
        let ids = due_reminders(&store, 40, "2026-11-24T15:00:00Z", json!({})).await;
        store
            .claim(&ids, now, 1000, &common::default_rules())
            .await
            .unwrap();
        let event = |id: ReminderId, kind: domain::EventKind| domain::Event {
            reminder_id: id,
            attempt: Some(1),
            occurred_at: at,
            kind,
        };
        // The first reminder's answer is recorded before; heard again below.
        let repeat = format!("r{round}_ans_{}", ids[0]);
        let decide = decide_for(
            event(ids[0], domain::EventKind::Answered),
            repeat.clone(),
            at,
        );
        store
            .ingest(ids[0], Some(1), decide)
            .await
            .unwrap()
            .unwrap();
        let mut tasks = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let (webhook_id, kind) = match n {
                0 => (repeat.clone(), domain::EventKind::Answered),
                n if n % 3 == 0 => (format!("r{round}_ans_{id}"), domain::EventKind::Answered),
                n => {
                    let outcome = if n % 3 == 1 {
                        json!({"result": "payment_promised", "promised_date": "2026-11-27"})
                    } else {
                        json!({"result": "busy"})
                    };
                    let kind =
                        domain::EventKind::Completed(serde_json::from_value(outcome).unwrap());
                    (format!("r{round}_end_{id}"), kind)
                }
            };
            let store = Arc::clone(&store);
            let decide = decide_for(event(*id, kind), webhook_id.clone(), at);
            let id = *id;
            tasks.push(tokio::spawn(async move {
                let done = store.ingest(id, Some(1), decide).await.unwrap().unwrap();
                (id, webhook_id, done)
            }));
        }
        for task in tasks {
            let (id, webhook_id, done) = task.await.unwrap();
            if webhook_id == repeat {
                assert_eq!(done.applied, Applied::Duplicate, "{webhook_id}");
                assert_eq!(
                    store.count_events(id).await.unwrap(),
                    1,
                    "the repeat wrote nothing"
                );
                continue;
            }
            let Applied::Done(after) = done.applied else {
                panic!("{webhook_id}: {:?}", done.applied)
            };
            let stored = store.get_reminder(id).await.unwrap().unwrap();
            assert_eq!(*after, stored, "{webhook_id}: as answered, as stored");
            if webhook_id.contains("_end_") && stored.status == Status::Completed {
                let promise = stored.promise.as_ref().expect("a promise opened");
                assert_eq!(promise.date.to_string(), "2026-11-27");
            }
            let att = store.get_attempt(id, 1).await.unwrap().unwrap();
            let expected = if webhook_id.contains("_end_") {
                domain::AttemptStatus::Completed
            } else {
                domain::AttemptStatus::Processing
            };
            assert_eq!(att.status, expected, "{webhook_id}");
            assert_eq!(store.count_events(id).await.unwrap(), 1, "{webhook_id}");
            // Its notices: numbered from 1, each showing the reminder (and
            // the attempt) as stored.
            let mut notices = store
                .list_notifications(&duecall::store::NoticeQuery {
                    status: None,
                    reminder_id: Some(id),
                    limit: 50,
                    after: None,
                })
                .await
                .unwrap()
                .notifications;
            notices.sort_by_key(|n| n.sequence);
            let sequences: Vec<u32> = notices.iter().map(|n| n.sequence).collect();
            let expected: Vec<u32> = (1..=notices.len() as u32).collect();
            assert_eq!(sequences, expected, "{webhook_id}");
            assert_eq!(
                !notices.is_empty(),
                webhook_id.contains("_end_"),
                "{webhook_id}"
            );
            for n in &notices {
                let data = &n.payload["data"];
                if n.kind == domain::NoticeType::AttemptEnded {
                    assert_eq!(data["attempt"], serde_json::to_value(&att).unwrap());
                }
                let mut shown = serde_json::to_value(&stored).unwrap();
                shown["sequence"] = json!(n.sequence);
                for (key, value) in shown.as_object().unwrap() {
                    assert_eq!(&data[key], value, "{webhook_id}: {key}");
                }
            }
        }
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        batched = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM event_writers WHERE query LIKE 'WITH v AS (SELECT * FROM unnest(%'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if batched >= 2 {
            break;
        }
    }
    assert!(batched >= 2, "no batch was written by the one statement");
    common::load::assert_glance_recounts(&db.url).await;
    db.cleanup().await;
}

/// An event PostgreSQL refuses (an injected fault) in a batch that the one
/// statement would write: the batch is done again job by job, and that event
/// fails alone while every other is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_event_in_a_batch_of_distinct_reminders_fails_alone() {
    let Some((db, store)) = open(Backend::Postgres).await else {
        return;
    };
    db.execute(
        "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$; \
         CREATE TRIGGER refuse_bad BEFORE INSERT ON events FOR EACH ROW \
         WHEN (NEW.webhook_id LIKE 'bad_%') EXECUTE FUNCTION refuse_bad();",
    )
    .await;
    let now = t("2026-11-24T15:01:00Z");
    let ids = due_reminders(&store, 48, "2026-11-24T15:00:00Z", json!({})).await;
    store
        .claim(&ids, now, 1000, &common::default_rules())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        // One event per reminder; every eighth is refused.
        let webhook_id = if n % 8 == 3 {
            format!("bad_{id}")
        } else {
            format!("ans_{id}")
        };
        let store = Arc::clone(&store);
        let ev = domain::Event {
            reminder_id: *id,
            attempt: Some(1),
            occurred_at: now,
            kind: domain::EventKind::Answered,
        };
        let decide = decide_for(ev, webhook_id.clone(), now);
        let id = *id;
        tasks.push(tokio::spawn(async move {
            (id, webhook_id, store.ingest(id, Some(1), decide).await)
        }));
    }
    for task in tasks {
        let (id, webhook_id, result) = task.await.unwrap();
        let status = store.get_reminder(id).await.unwrap().unwrap().status;
        if webhook_id.starts_with("bad_") {
            assert!(result.is_err(), "{webhook_id}: {result:?}");
            assert_eq!(store.count_events(id).await.unwrap(), 0, "{webhook_id}");
            assert_eq!(status, Status::InProgress, "{webhook_id}: no trace");
        } else {
            let done = result.unwrap().unwrap();
            assert!(matches!(done.applied, Applied::Done(_)), "{webhook_id}");
            assert_eq!(status, Status::Processing, "{webhook_id}");
        }
    }
    db.cleanup().await;
}

async fn get_for_event_reads_the_named_attempt(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(&store, 1, "2026-11-24T15:00:00Z", json!({})).await;
    let id = ids[0];
    let (r, att) = store.get_for_event(id, None).await.unwrap().unwrap();
    assert_eq!((r.attempt_count, att), (0, None), "no attempt yet");
    store
        .claim(
            &ids,
            t("2026-11-24T15:00:00Z"),
            10,
            &common::default_rules(),
        )
        .await
        .unwrap();
    let (r, att) = store.get_for_event(id, None).await.unwrap().unwrap();
    assert_eq!(r, store.get_reminder(id).await.unwrap().unwrap());
    assert_eq!(
        att,
        store.get_attempt(id, 1).await.unwrap(),
        "the current one"
    );
    assert_eq!(
        store.get_for_event(id, Some(1)).await.unwrap().unwrap().1,
        att
    );
    assert_eq!(
        store.get_for_event(id, Some(2)).await.unwrap().unwrap().1,
        None
    );
    assert!(store
        .get_for_event(ReminderId::new(), None)
        .await
        .unwrap()
        .is_none());
    db.cleanup().await;
}

both_backends!(
    get_for_event_reads_reminder_and_attempt_at_once,
    get_for_event_reads_the_named_attempt
);

async fn count_by_status_counts_every_status(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let zeros: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
    assert_eq!(store.count_by_status().await.unwrap(), zeros, "empty");

    let ids = due_reminders(&store, 5, "2026-11-24T15:00:00Z", json!({})).await;
    let now = t("2026-11-24T15:05:00Z");
    // Two live, one cancelled, two left pending.
    assert_eq!(
        store
            .claim(&ids[..2], now, 10, &common::default_rules())
            .await
            .unwrap()
            .claimed
            .len(),
        2
    );
    let r = store.get_reminder(ids[4]).await.unwrap().unwrap();
    let change = domain::cancel(&r, now).unwrap().unwrap();
    assert!(matches!(
        store.apply(&change, None).await.unwrap(),
        Applied::Done(_)
    ));

    let counts = store.count_by_status().await.unwrap();
    let of = |s: Status| counts.iter().find(|(st, _)| *st == s).unwrap().1;
    assert_eq!(
        counts.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        Status::ALL.to_vec(),
        "every status, in order"
    );
    assert_eq!(of(Status::InProgress), 2);
    assert_eq!(of(Status::Cancelled), 1);
    assert_eq!(of(Status::Pending), 2);
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 5);
    db.cleanup().await;
}

both_backends!(
    count_by_status_counts_every_status_with_zeros,
    count_by_status_counts_every_status
);

async fn list_searches_by_external_id_or_phone(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let mut ids = Vec::new();
    for (i, (external_id, phone)) in [
        ("inv-1", "+14155550101"),
        ("inv-2", "+14155550102"),
        ("inv-3", "+14155550101"),
    ]
    .into_iter()
    .enumerate()
    {
        let new = new_reminder(json!({"external_id": external_id, "phone_number": phone}));
        let at = now + Duration::seconds(i as i64);
        let Created::New(r) = store
            .create_reminder(&new, ReminderId::new(), at)
            .await
            .unwrap()
        else {
            panic!("new")
        };
        ids.push(r.id);
    }
    let search = |text: &str, status: Option<Status>| ListQuery {
        status,
        limit: 10,
        after: None,
        search: Some(text.to_owned()),
    };
    let found =
        |page: duecall::store::Page| page.reminders.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        found(store.list_reminders(&search("inv-2", None)).await.unwrap()),
        vec![ids[1]]
    );
    assert_eq!(
        found(
            store
                .list_reminders(&search("+14155550101", None))
                .await
                .unwrap()
        ),
        vec![ids[2], ids[0]],
        "both with that number, newest first"
    );
    assert!(found(store.list_reminders(&search("inv", None)).await.unwrap()).is_empty());
    assert!(found(
        store
            .list_reminders(&search("inv-2", Some(Status::Cancelled)))
            .await
            .unwrap()
    )
    .is_empty());
    // Searches page like any list.
    let mut first = search("+14155550101", None);
    first.limit = 1;
    let page = store.list_reminders(&first).await.unwrap();
    assert_eq!(found(page.clone()), vec![ids[2]]);
    let mut second = first.clone();
    second.after = page.next;
    assert_eq!(
        found(store.list_reminders(&second).await.unwrap()),
        vec![ids[0]]
    );
    db.cleanup().await;
}

both_backends!(
    list_searches_by_external_id_or_phone_number,
    list_searches_by_external_id_or_phone
);

async fn get_by_external_id_finds_exactly_that_one(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let mut created = Vec::new();
    for external_id in ["inv-1", "inv-10", "INV-1"] {
        let new = new_reminder(json!({"external_id": external_id}));
        let Created::New(r) = store
            .create_reminder(&new, ReminderId::new(), now)
            .await
            .unwrap()
        else {
            panic!("new")
        };
        created.push(r);
    }
    // One without an external_id is never found by one.
    store
        .create_reminder(&new_reminder(json!({})), ReminderId::new(), now)
        .await
        .unwrap();
    for r in &created {
        let id = r.external_id.as_deref().unwrap();
        let got = store.get_reminder_by_external_id(id).await.unwrap();
        assert_eq!(got.as_ref(), Some(r), "{id}: the whole reminder, exactly");
    }
    // Exact matches only: no prefix, no case folding, no empty id.
    for missing in ["inv", "inv-", "Inv-1", "", "inv-1 "] {
        assert_eq!(
            store.get_reminder_by_external_id(missing).await.unwrap(),
            None,
            "{missing:?}"
        );
    }
    db.cleanup().await;
}

both_backends!(
    get_reminder_by_external_id_is_exact,
    get_by_external_id_finds_exactly_that_one
);

// --- The suppression list (SPEC §7) -----------------------------------------

fn phone(s: &str) -> domain::PhoneNumber {
    domain::PhoneNumber::parse(s).unwrap()
}

fn by_operator(number: &str, reason: &str) -> domain::SuppressNumber {
    domain::SuppressNumber {
        phone_number: phone(number),
        reason: domain::Reason::parse(reason).unwrap(),
        reminder_id: None,
    }
}

async fn suppressions_add_once_and_keep_every_change(backend: Backend) {
    use domain::SuppressionAction::{Added, Removed};
    use duecall::store::Suppressed;
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let n = phone("+14155550100");
    let at = t("2026-11-24T15:00:00.123Z");
    assert!(!store.is_suppressed(&n).await.unwrap());
    assert_eq!(store.get_suppression(&n).await.unwrap(), (None, vec![]));

    let added = match store
        .add_suppression(&by_operator("+14155550100", "asked by letter"), at)
        .await
        .unwrap()
    {
        Suppressed::New(s) => s,
        other => panic!("expected new, got {other:?}"),
    };
    assert_eq!(added.phone_number, n);
    assert_eq!(added.reason, "asked by letter");
    assert_eq!(added.reminder_id, None);
    assert_eq!(added.created_at, at);
    assert!(store.is_suppressed(&n).await.unwrap());
    // Another number is not suppressed by it.
    assert!(!store.is_suppressed(&phone("+14155550101")).await.unwrap());

    // Adding again changes nothing: same entry, no audit row.
    let later = at + Duration::hours(1);
    match store
        .add_suppression(&by_operator("+14155550100", "another reason"), later)
        .await
        .unwrap()
    {
        Suppressed::Existing(s) => assert_eq!(s, added),
        other => panic!("expected existing, got {other:?}"),
    }
    let (entry, history) = store.get_suppression(&n).await.unwrap();
    assert_eq!(entry, Some(added.clone()));
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0].action, history[0].reason.as_str(), history[0].at),
        (Added, "asked by letter", at)
    );

    // Remove: gone, with its audit row; removing again finds nothing, writes nothing.
    let reason = domain::Reason::parse("added by mistake").unwrap();
    let removed = store.remove_suppression(&n, &reason, later).await.unwrap();
    assert_eq!(removed, Some(added));
    assert!(!store.is_suppressed(&n).await.unwrap());
    assert_eq!(
        store.remove_suppression(&n, &reason, later).await.unwrap(),
        None
    );
    let (entry, history) = store.get_suppression(&n).await.unwrap();
    assert_eq!(entry, None);
    assert_eq!(
        history
            .iter()
            .map(|h| (h.action, h.reason.as_str(), h.at))
            .collect::<Vec<_>>(),
        vec![
            (Added, "asked by letter", at),
            (Removed, "added by mistake", later)
        ]
    );

    // Added back: a new entry, and the whole history.
    let again = later + Duration::hours(1);
    assert!(matches!(
        store
            .add_suppression(&by_operator("+14155550100", "asked again"), again)
            .await
            .unwrap(),
        Suppressed::New(_)
    ));
    let (entry, history) = store.get_suppression(&n).await.unwrap();
    assert_eq!(entry.unwrap().created_at, again);
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].action, Added);
    db.cleanup().await;
}

both_backends!(
    suppressions_are_idempotent_and_audited,
    suppressions_add_once_and_keep_every_change
);

async fn suppressions_list_newest_first_by_cursor(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let at = t("2026-11-24T15:00:00Z");
    // Two share a creation time: the number breaks the tie, so no page skips or repeats.
    let numbers = [
        "+14155550100",
        "+14155550101",
        "+14155550102",
        "+14155550103",
    ];
    let times = [
        at,
        at + Duration::seconds(1),
        at + Duration::seconds(1),
        at + Duration::seconds(2),
    ];
    for (n, when) in numbers.iter().zip(times) {
        store
            .add_suppression(&by_operator(n, "list"), when)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_suppressions(3, after.as_ref()).await.unwrap();
        assert!(page.suppressions.len() <= 3);
        seen.extend(
            page.suppressions
                .iter()
                .map(|s| s.phone_number.as_str().to_owned()),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "+14155550103",
            "+14155550102",
            "+14155550101",
            "+14155550100"
        ]
    );
    // The cursor survives its round trip as a token.
    let first = store.list_suppressions(1, None).await.unwrap();
    let token = first.next.unwrap().encode();
    let decoded = duecall::store::SuppressionCursor::decode(&token).unwrap();
    let second = store.list_suppressions(1, Some(&decoded)).await.unwrap();
    assert_eq!(second.suppressions[0].phone_number.as_str(), "+14155550102");
    db.cleanup().await;
}

both_backends!(
    suppressions_list_pages_newest_first,
    suppressions_list_newest_first_by_cursor
);

/// An opt-out's change adds the number in the same write, once; a change that
/// is not written (stale) adds nothing.
async fn an_applied_change_suppresses_once(backend: Backend) {
    use duecall::store::EventRecord;
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let id = ReminderId::new();
    let r = match store
        .create_reminder(&new_reminder(json!({})), id, now)
        .await
        .unwrap()
    {
        Created::New(r) => r,
        other => panic!("{other:?}"),
    };
    let mut change = domain::claim(&r, now).unwrap();
    change.suppress = Some(domain::SuppressNumber::opted_out(&r));
    // A stale change (the reminder is not where it says) writes nothing at all.
    let mut stale = change.clone();
    stale.expect_attempt = 7;
    assert_eq!(store.apply(&stale, None).await.unwrap(), Applied::Stale);
    assert!(!store.is_suppressed(&r.phone_number).await.unwrap());

    let record = |webhook_id: &str| EventRecord {
        webhook_id: webhook_id.to_owned(),
        reminder_id: id,
        attempt: Some(1),
        event_type: domain::EventType::CallCompleted,
        occurred_at: now,
        received_at: now,
        applied: true,
        verdict: domain::Verdict::Applied,
        payload: "{}".to_owned(),
    };
    assert!(matches!(
        store.apply(&change, Some(&record("msg_1"))).await.unwrap(),
        Applied::Done(_)
    ));
    let (entry, history) = store.get_suppression(&r.phone_number).await.unwrap();
    let entry = entry.unwrap();
    assert_eq!(
        (entry.reason.as_str(), entry.reminder_id),
        ("opted_out", Some(id))
    );
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].reminder_id, Some(id));
    // A repeat of the event is a duplicate: nothing more.
    let after = store.get_reminder(id).await.unwrap().unwrap();
    let mut again = domain::claim(&r, now).unwrap();
    again.expect_status = after.status;
    again.expect_attempt = after.attempt_count;
    again.reminder = None;
    again.attempt = None;
    again.suppress = Some(domain::SuppressNumber::opted_out(&r));
    assert_eq!(
        store.apply(&again, Some(&record("msg_1"))).await.unwrap(),
        Applied::Duplicate
    );
    // Another event for a number already there: written, no second audit row.
    assert!(matches!(
        store.apply(&again, Some(&record("msg_2"))).await.unwrap(),
        Applied::Done(_)
    ));
    assert_eq!(
        store
            .get_suppression(&r.phone_number)
            .await
            .unwrap()
            .1
            .len(),
        1
    );
    db.cleanup().await;
}

both_backends!(
    an_opt_out_change_adds_the_number_once,
    an_applied_change_suppresses_once
);

async fn a_reminder_for_a_suppressed_number_is_born_cancelled(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T15:00:00Z");
    let mut new = new_reminder(json!({}));
    new.suppressed = true;
    let id = ReminderId::new();
    let Created::New(r) = store.create_reminder(&new, id, now).await.unwrap() else {
        panic!("new");
    };
    let stored = store.get_reminder(id).await.unwrap().unwrap();
    assert_eq!(stored, r);
    assert_eq!(stored.status, Status::Cancelled);
    assert_eq!(stored.skip_reason.as_deref(), Some("suppressed"));
    assert_eq!(stored.next_attempt_at, None);
    assert!(store
        .due(now + Duration::days(1), 10)
        .await
        .unwrap()
        .is_empty());
    db.cleanup().await;
}

both_backends!(
    created_suppressed_is_cancelled,
    a_reminder_for_a_suppressed_number_is_born_cancelled
);

// --- Issue 12, item 13: the dashboard's stored sessions and the shared key ---

async fn a_service_key_is_made_once_and_shared(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T10:00:00Z");
    let first = store.service_key("k", &[1; 64], now).await.unwrap();
    assert_eq!(first, vec![1; 64]);
    // Another instance, with its own fresh candidate, gets the stored one.
    let other = db.store().await;
    assert_eq!(other.service_key("k", &[2; 64], now).await.unwrap(), first);
    assert_eq!(
        store.service_key("another", &[3; 64], now).await.unwrap(),
        vec![3; 64]
    );
    // Several instances starting at once agree on one key.
    let racers: Vec<_> = (0..8u8)
        .map(|i| {
            let s = Arc::clone(&store);
            tokio::spawn(async move { s.service_key("raced", &[i; 64], now).await.unwrap() })
        })
        .collect();
    let mut seen = HashSet::new();
    for r in racers {
        seen.insert(r.await.unwrap());
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    db.cleanup().await;
}

both_backends!(
    a_service_key_is_made_once_and_shared,
    a_service_key_is_made_once_and_shared
);

async fn dashboard_sessions_end_when_deleted_or_expired(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let now = t("2026-11-24T10:00:00Z");
    let expires = now + Duration::hours(12);
    assert!(store
        .insert_session("a", "{\"x\":1}", expires)
        .await
        .unwrap());
    assert!(
        !store.insert_session("a", "{}", expires).await.unwrap(),
        "a taken id is refused"
    );
    let (data, at) = store.load_session("a", now).await.unwrap().unwrap();
    assert_eq!(data, "{\"x\":1}");
    assert_eq!(at, expires);
    // Every instance reads the same session.
    let other = db.store().await;
    assert!(other.load_session("a", now).await.unwrap().is_some());
    // Saving replaces it.
    store
        .save_session("a", "{\"x\":2}", expires + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        store.load_session("a", now).await.unwrap().unwrap().0,
        "{\"x\":2}"
    );
    store.save_session("b", "{}", expires).await.unwrap();
    // Expired sessions are not loaded, and are forgotten on request.
    assert!(store.load_session("b", expires).await.unwrap().is_none());
    assert!(store
        .load_session("b", expires - Duration::seconds(1))
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.delete_expired_sessions(expires).await.unwrap(), 1);
    assert!(store.load_session("a", expires).await.unwrap().is_some());
    // Deleting ends it for every instance; deleting twice is no error.
    other.delete_session("a").await.unwrap();
    other.delete_session("a").await.unwrap();
    assert!(store.load_session("a", now).await.unwrap().is_none());
    db.cleanup().await;
}

both_backends!(
    dashboard_sessions_end_when_deleted_or_expired,
    dashboard_sessions_end_when_deleted_or_expired
);

#[tokio::test]
async fn an_in_memory_sqlite_database_is_refused_with_the_reason() {
    for url in ["sqlite::memory:", "sqlite://file.db?mode=memory"] {
        let err = duecall::store::connect(url, 4)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} must be refused"));
        assert!(err.to_string().contains("must name a file"), "{url}: {err}");
    }
}

/// SQLite's writer leaves checkpoints to a thread of its own: while events
/// keep coming in bursts, the WAL is copied into the database between them,
/// so the WAL file is reused from its start instead of growing with every
/// event ever written.
#[tokio::test]
async fn sqlite_checkpoints_keep_the_wal_from_growing() {
    let Some((db, store)) = open(Backend::Sqlite).await else {
        return;
    };
    let wal = std::path::PathBuf::from(format!("{}-wal", db.url.trim_start_matches("sqlite://")));
    let now = t("2026-11-24T15:01:00Z");
    let mut sizes = Vec::new();
    for round in 0..5 {
        let ids = due_reminders(&store, 40, "2026-11-24T15:00:00Z", json!({})).await;
        store
            .claim(&ids, now, 100_000, &common::default_rules())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let store = Arc::clone(&store);
            let ev = domain::Event {
                reminder_id: *id,
                attempt: Some(1),
                occurred_at: now,
                kind: domain::EventKind::Answered,
            };
            let decide = decide_for(ev, format!("wal_{round}_{n}"), now);
            let id = *id;
            tasks.push(tokio::spawn(async move {
                store.ingest(id, Some(1), decide).await.unwrap().unwrap()
            }));
        }
        for task in tasks {
            assert!(matches!(task.await.unwrap().applied, Applied::Done(_)));
        }
        // Time for the checkpointer (it waits at most 100 ms between two).
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        sizes.push(std::fs::metadata(&wal).unwrap().len());
    }
    assert!(
        sizes[4] < 2 * sizes[0],
        "the WAL grew with every round: {sizes:?} bytes"
    );
    db.cleanup().await;
}

/// The glance's counts, kept by the database's triggers: attempts by day
/// (`[bounds[i], bounds[i + 1])`, on slot boundaries), payments recorded in
/// the period only when the reminder was called before the money came,
/// opt-outs only with reason `opted_out`. (Outcomes moving an attempt from
/// "none yet" to its result: tests/glance.rs, through the webhook.)
async fn glance_counts_by_day(backend: Backend) {
    use duecall::domain::NewPayment;
    use duecall::store::{AttemptDay, PaidAfterCall};
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let ids = due_reminders(&store, 4, "2026-11-24T15:00:00Z", json!({})).await;
    let rules = common::default_rules();
    for (id, at) in [
        (ids[0], "2026-11-24T15:00:00Z"),
        (ids[1], "2026-11-24T15:14:59.999Z"),
        (ids[2], "2026-11-24T15:15:00Z"),
    ] {
        let claimed = store.claim(&[id], t(at), 10, &rules).await.unwrap();
        assert_eq!(claimed.claimed.len(), 1, "{at}");
    }
    let pay = |amount: i64, paid_at: Option<&str>| NewPayment {
        amount_minor: amount,
        paid_at: paid_at.map(t),
        reference: None,
    };
    let recorded = t("2026-11-24T15:30:00Z");
    // After its call; before its call; never called.
    for (id, p) in [
        (ids[0], pay(700, None)),
        (ids[1], pay(200, Some("2026-11-24T14:00:00Z"))),
        (ids[3], pay(300, None)),
    ] {
        assert!(store
            .record_payment(id, &p, recorded)
            .await
            .unwrap()
            .is_some());
    }
    let r = store.get_reminder(ids[0]).await.unwrap().unwrap();
    let opted = domain::SuppressNumber::opted_out(&r);
    store
        .add_suppression(&opted, t("2026-11-24T15:20:00Z"))
        .await
        .unwrap();
    store
        .add_suppression(
            &by_operator("+14155550199", "asked by letter"),
            t("2026-11-24T15:20:00Z"),
        )
        .await
        .unwrap();

    let bounds = [
        t("2026-11-24T15:00:00Z"),
        t("2026-11-24T15:15:00Z"),
        t("2026-11-24T16:00:00Z"),
    ];
    let g = store.glance(&bounds).await.unwrap();
    let mut attempts = g.attempts.clone();
    attempts.sort_by_key(|a| a.day);
    assert_eq!(
        attempts,
        vec![
            AttemptDay {
                day: 0,
                result: None,
                count: 2
            },
            AttemptDay {
                day: 1,
                result: None,
                count: 1
            },
        ]
    );
    assert_eq!(
        g.paid_after_call,
        vec![PaidAfterCall {
            currency: "USD".into(),
            count: 1,
            amount_minor: 700
        }]
    );
    assert_eq!(g.opt_outs, 1);
    assert!(g.promises.is_empty());

    // The end is not in the period, the start is.
    let g = store
        .glance(&[t("2026-11-24T15:15:00Z"), t("2026-11-24T15:30:00Z")])
        .await
        .unwrap();
    assert_eq!(g.attempts.iter().map(|a| a.count).sum::<u64>(), 1);
    assert_eq!(
        (g.opt_outs, g.paid_after_call.len()),
        (1, 0),
        "the opt-out at 15:20 is in, the payment at 15:30 is not"
    );
    db.cleanup().await;
}

both_backends!(
    glance_counts_attempts_payments_and_opt_outs_by_day,
    glance_counts_by_day
);
