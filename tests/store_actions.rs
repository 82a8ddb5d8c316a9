//! Operators' actions in storage, on SQLite and PostgreSQL: an action's row is
//! written in the transaction of the change it records — with it, or not at
//! all (a change whose compare-and-set guard fails writes neither).

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{t, Backend, TestDb};
use duecall::domain::{
    self, ActionKind, ActionRecord, CreateDefaults, Language, NewReminder, OperatorName, Reminder,
    ReminderId, Status, TimeZone,
};
use duecall::store::{Applied, Created, Store, Suppressed};
use serde_json::json;

fn new_reminder(overrides: serde_json::Value) -> NewReminder {
    let defaults = CreateDefaults {
        zone_policy: domain::ZonePolicy::All,
        timezone: TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    };
    let body = common::reminder_body(overrides);
    NewReminder::parse(body.as_object().unwrap(), &defaults).unwrap()
}

async fn open(backend: Backend) -> Option<(TestDb, Arc<dyn Store>)> {
    let db = TestDb::new(backend).await?;
    let store = db.store().await;
    Some((db, store))
}

async fn created(store: &dyn Store, overrides: serde_json::Value) -> Reminder {
    let now = t("2026-11-24T15:00:00Z");
    match store
        .create_reminder(&new_reminder(overrides), ReminderId::new(), now)
        .await
        .unwrap()
    {
        Created::New(r) => r,
        other => panic!("{other:?}"),
    }
}

fn record(id: ReminderId, action: ActionKind, actor: &str) -> ActionRecord {
    ActionRecord {
        reminder_id: id,
        action,
        actor: OperatorName::parse(actor).unwrap(),
        detail: Some("from pending".into()),
    }
}

async fn an_action_is_written_with_its_change_and_only_with_it(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let r = created(
        &*store,
        json!({"scheduled_for": "2099-01-01T12:00:00Z", "external_id": "act-1"}),
    )
    .await;
    assert!(store.list_actions(r.id).await.unwrap().is_empty());

    // Call now: written, and its row with it.
    let at = t("2026-11-24T15:01:00.250Z");
    let mut change = domain::call_now(&r, at).unwrap().expect("a change");
    change.action = Some(record(r.id, ActionKind::CallNow, "Ada"));
    let after = match store.apply(&change, None).await.unwrap() {
        Applied::Done(after) => after,
        other => panic!("{other:?}"),
    };
    assert_eq!(after.status, Status::Pending);
    assert_eq!(after.next_attempt_at, Some(at));
    let actions = store.list_actions(r.id).await.unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].action, ActionKind::CallNow);
    assert_eq!(actions[0].actor, "Ada");
    assert_eq!(actions[0].at, at);
    assert_eq!(actions[0].detail.as_deref(), Some("from pending"));

    // A cancel decided on a reminder as it no longer is: the guard fails,
    // and neither the reminder nor the history changes.
    let moved = store.get_reminder(r.id).await.unwrap().unwrap();
    let claim = domain::claim(&moved, at + Duration::seconds(1)).unwrap();
    assert!(matches!(
        store.apply(&claim, None).await.unwrap(),
        Applied::Done(_)
    ));
    let mut stale = domain::cancel(&moved, at + Duration::seconds(2))
        .unwrap()
        .expect("a cancel of the pending reminder as read");
    stale.action = Some(record(r.id, ActionKind::Cancel, "Grace"));
    assert_eq!(store.apply(&stale, None).await.unwrap(), Applied::Stale);
    let now = store.get_reminder(r.id).await.unwrap().unwrap();
    assert_eq!(now.status, Status::InProgress);
    let actions = store.list_actions(r.id).await.unwrap();
    assert_eq!(actions.len(), 1, "no row for the stale cancel: {actions:?}");

    // A change for a reminder that does not exist writes no row either.
    let mut ghost = stale.clone();
    ghost.reminder_id = ReminderId::new();
    ghost.action = Some(record(ghost.reminder_id, ActionKind::Cancel, "Grace"));
    assert_eq!(store.apply(&ghost, None).await.unwrap(), Applied::NotFound);
    assert!(store
        .list_actions(ghost.reminder_id)
        .await
        .unwrap()
        .is_empty());
    db.cleanup().await;
}
both_backends!(
    an_action_is_written_with_its_change_and_only_with_it,
    an_action_is_written_with_its_change_and_only_with_it
);

async fn history_is_oldest_first_and_per_reminder(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let a = created(&*store, json!({"external_id": "act-a"})).await;
    let b = created(&*store, json!({"external_id": "act-b"})).await;
    let at = t("2026-11-24T15:05:00Z");
    let mut cancel_a = domain::cancel(&a, at).unwrap().unwrap();
    cancel_a.action = Some(record(a.id, ActionKind::Cancel, "Zoë O'Brien"));
    assert!(matches!(
        store.apply(&cancel_a, None).await.unwrap(),
        Applied::Done(_)
    ));
    let mut cancel_b = domain::cancel(&b, at + Duration::seconds(5))
        .unwrap()
        .unwrap();
    cancel_b.action = Some(record(b.id, ActionKind::Cancel, "Grace"));
    assert!(matches!(
        store.apply(&cancel_b, None).await.unwrap(),
        Applied::Done(_)
    ));
    let add = domain::SuppressNumber {
        phone_number: a.phone_number.clone(),
        reason: domain::Reason::parse("operator: Zoë O'Brien").unwrap(),
        reminder_id: None,
    };
    let later = record(a.id, ActionKind::Suppress, "Zoë O'Brien");
    store
        .add_suppression_as(&add, Some(&later), at + Duration::seconds(10))
        .await
        .unwrap();
    let of_a = store.list_actions(a.id).await.unwrap();
    let kinds: Vec<_> = of_a.iter().map(|x| x.action).collect();
    assert_eq!(kinds, [ActionKind::Cancel, ActionKind::Suppress]);
    assert_eq!(of_a[0].actor, "Zoë O'Brien");
    assert_eq!(of_a[1].at, at + Duration::seconds(10));
    let of_b = store.list_actions(b.id).await.unwrap();
    assert_eq!(of_b.len(), 1);
    assert_eq!(of_b[0].actor, "Grace");
    assert_eq!(of_b[0].at, at + Duration::seconds(5));
    db.cleanup().await;
}
both_backends!(
    history_is_oldest_first_and_per_reminder,
    history_is_oldest_first_and_per_reminder
);

async fn a_suppression_records_its_action_only_when_it_adds_the_number(backend: Backend) {
    let Some((db, store)) = open(backend).await else {
        return;
    };
    let r = created(&*store, json!({"phone_number": "+14155550177"})).await;
    let add = domain::SuppressNumber {
        phone_number: r.phone_number.clone(),
        reason: domain::Reason::parse("operator: Ada").unwrap(),
        reminder_id: None,
    };
    let at = t("2026-11-24T15:10:00Z");
    let rec = record(r.id, ActionKind::Suppress, "Ada");
    match store
        .add_suppression_as(&add, Some(&rec), at)
        .await
        .unwrap()
    {
        Suppressed::New(entry) => {
            assert_eq!(entry.reason, "operator: Ada");
            assert_eq!(entry.reminder_id, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(store.is_suppressed(&r.phone_number).await.unwrap());
    // Already there: nothing is written, the history included.
    let again = record(r.id, ActionKind::Suppress, "Grace");
    assert!(matches!(
        store
            .add_suppression_as(&add, Some(&again), at + Duration::seconds(1))
            .await
            .unwrap(),
        Suppressed::Existing(_)
    ));
    let actions = store.list_actions(r.id).await.unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].action, ActionKind::Suppress);
    assert_eq!(actions[0].actor, "Ada");
    assert_eq!(actions[0].at, at);
    db.cleanup().await;
}
both_backends!(
    a_suppression_records_its_action_only_when_it_adds_the_number,
    a_suppression_records_its_action_only_when_it_adds_the_number
);
