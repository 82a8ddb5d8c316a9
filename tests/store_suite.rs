//! The storage conformance suite: every case runs against SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use common::{t, Backend, TestDb};
use duecall::reminder::{
    self, CreateDefaults, Language, NewReminder, ReminderId, Status, TimeZone,
};
use duecall::store::{Applied, Created, ListQuery, Store};
use serde_json::json;

fn defaults() -> CreateDefaults {
    CreateDefaults {
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
        })
        .await
        .unwrap();
    assert_eq!(page.reminders.len(), 7);
    assert_eq!(page.next, None);

    // Filter by status.
    let victim = made[2].clone();
    let change = reminder::cancel(&victim, start + Duration::minutes(1))
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
    let change = reminder::cancel(&r, later).unwrap().unwrap();
    let done = match store.apply(&change, None).await.unwrap() {
        Applied::Done(done) => done,
        other => panic!("expected the change to apply, got {other:?}"),
    };
    assert_eq!(done.status, Status::Cancelled);
    assert_eq!(done.next_attempt_at, None);
    assert_eq!(done.updated_at, later);
    assert_eq!(
        done.skip_reason.as_deref(),
        Some(reminder::SKIP_CANCELLED_BY_OPERATOR)
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
    let change = reminder::cancel(&r, now).unwrap().unwrap();
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
