//! Property tests of the pure state machine (SPEC §1), without a database.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use duecall::domain::*;
use duecall::policy::{CallingWindow, RetryPolicy};
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::hours(2),
        window: CallingWindow {
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            to_midnight: false,
            days: (0..6).collect(),
            blackout: Default::default(),
        },
    }
}

fn base_reminder() -> Reminder {
    let body = json!({"customer_name": "Ada", "phone_number": "+12125550100",
        "amount_due_minor": 100, "currency": "USD", "due_date": "2026-12-01"});
    let defaults = CreateDefaults {
        zone_policy: duecall::domain::ZonePolicy::All,
        timezone: TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    };
    NewReminder::parse(body.as_object().unwrap(), &defaults)
        .unwrap()
        .into_reminder(ReminderId::new(), now() - Duration::hours(1))
}

fn status() -> impl Strategy<Value = Status> {
    proptest::sample::select(Status::ALL.to_vec())
}

fn attempt_status() -> impl Strategy<Value = AttemptStatus> {
    proptest::sample::select(AttemptStatus::ALL.to_vec())
}

fn skip_reason() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(proptest::sample::select(vec![
        SKIP_CALL_TIMEOUT.to_owned(),
        SKIP_ROOM_CLOSED.to_owned(),
        SKIP_CANCELLED_BY_OPERATOR.to_owned(),
        SKIP_OPTED_OUT.to_owned(),
        SKIP_MAX_ATTEMPTS.to_owned(),
        "no_answer".to_owned(),
        "call_failed: x".to_owned(),
    ]))
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Answered),
        proptest::sample::select(OutcomeResult::ALL.to_vec()).prop_map(|result| {
            EventKind::Completed(Outcome {
                result,
                promised_amount_minor: None,
                promised_date: None,
                summary: None,
                transcript: None,
                duration_seconds: None,
                callback_at: None,
            })
        }),
        proptest::option::of(proptest::option::of(any::<bool>())).prop_map(|f| {
            EventKind::Failed(f.map(|retryable| Failure {
                reason: Some("x".into()),
                sip_status: None,
                retryable,
            }))
        }),
    ]
}

prop_compose! {
    fn scenario()(
        st in status(),
        max in 1u32..=5,
        made in 0u32..=5,
        reason in skip_reason(),
        next in any::<bool>(),
        row in proptest::option::of((attempt_status(), 0u32..=2)),
        kind in event_kind(),
        ev_attempt in proptest::option::of(1u32..=6),
        jitter in 0.0f64..=1.0,
    ) -> (Reminder, Option<Attempt>, Event, f64) {
        let mut r = base_reminder();
        r.status = st;
        r.max_attempts = max;
        r.attempt_count = made.min(max);
        r.skip_reason = reason;
        r.next_attempt_at = next.then(now);
        r.last_attempt_at = (r.attempt_count > 0).then(|| now() - Duration::minutes(5));
        let target = ev_attempt.unwrap_or(r.attempt_count);
        let attempt = row.filter(|_| target >= 1).map(|(status, off)| Attempt {
            attempt: if off == 0 { target } else { target + off },
            status,
            room_name: room_name(r.id, target),
            dispatched_at: now() - Duration::minutes(5),
            answered_at: None,
            ended_at: None,
            outcome: None,
            failure: None,
        });
        let event = Event { reminder_id: r.id, attempt: ev_attempt, occurred_at: now(), kind };
        (r, attempt, event, jitter)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn property_state_machine_follows_the_table((r, attempt, ev, jitter) in scenario()) {
        let retry = retry();
        let ctx = Ctx { now: now(), retry: &retry, jitter, promise_grace_days: 3 };
        let d = transition(&r, attempt.as_ref(), &ev, &ctx);
        let target = ev.attempt.unwrap_or(r.attempt_count);

        // The write is guarded by what the decision saw.
        prop_assert_eq!(d.change.expect_status, r.status);
        prop_assert_eq!(d.change.expect_attempt, r.attempt_count);
        prop_assert_eq!(d.change.reminder_id, r.id);

        // Fencing: no attempt, or another attempt, never changes the reminder.
        if r.attempt_count == 0 {
            prop_assert_eq!(d.verdict, Verdict::NoAttempt);
        } else if target != r.attempt_count {
            prop_assert_eq!(d.verdict, Verdict::StaleAttempt);
        }
        if d.verdict != Verdict::Applied {
            prop_assert!(d.change.reminder.is_none());
        }

        // The attempt record is only written for the attempt the event names.
        match &d.change.attempt {
            None => prop_assert!(attempt.as_ref().is_none_or(|a| a.attempt != target)),
            Some(AttemptWrite::Update { attempt: n, expect_status, .. }) => {
                let a = attempt.as_ref().unwrap();
                prop_assert_eq!(*n, target);
                prop_assert_eq!(*expect_status, a.status);
            }
            Some(AttemptWrite::Start { .. }) => prop_assert!(false, "events never start attempts"),
        }

        if let Some(u) = &d.change.reminder {
            let guessed = r.status == Status::Failed
                && matches!(r.skip_reason.as_deref(), Some(SKIP_CALL_TIMEOUT | SKIP_ROOM_CLOSED));
            // Only a live attempt, or one failed by a guess, moves.
            prop_assert!(r.status.is_live() || guessed, "{} moved", r.status);
            prop_assert_eq!(u.attempt_count, r.attempt_count, "events never count attempts");
            prop_assert_eq!(u.last_attempt_at, r.last_attempt_at);
            match (&ev.kind, u.status) {
                (EventKind::Answered, to) => {
                    prop_assert_eq!(r.status, Status::InProgress);
                    prop_assert_eq!(to, Status::Processing);
                }
                (EventKind::Completed(o), to) => {
                    prop_assert_eq!(u.outcome.as_ref(), Some(o));
                    let expected = if o.result == OutcomeResult::OptedOut {
                        Status::Cancelled
                    } else if o.result == OutcomeResult::CallbackRequested {
                        // Called back when asked while attempts remain.
                        if r.attempts_remain() { Status::Pending } else { Status::Completed }
                    } else if !o.result.is_unreached() {
                        Status::Completed
                    } else if r.attempts_remain() {
                        Status::Pending
                    } else {
                        Status::Failed
                    };
                    prop_assert_eq!(to, expected);
                }
                (EventKind::Failed(_), to) => {
                    prop_assert!(r.status.is_live());
                    prop_assert_eq!(to, Status::Failed);
                }
            }
            // A retry is scheduled exactly when one may happen, in the future, inside the window.
            match (u.status, u.next_attempt_at) {
                (Status::Pending, None) => prop_assert!(false, "pending without a next attempt"),
                (Status::Completed | Status::Cancelled | Status::InProgress | Status::Processing, Some(_)) => {
                    prop_assert!(false, "{} with a next attempt", u.status)
                }
                (_, Some(next)) => {
                    prop_assert!(r.attempts_remain());
                    prop_assert!(next > now());
                    prop_assert!(retry.window.is_open_all(next, &r.calling_zones));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn property_claim_only_from_claimable_states(st in status(), max in 1u32..=5, made in 0u32..=5, next in any::<bool>()) {
        let mut r = base_reminder();
        r.status = st;
        r.max_attempts = max;
        r.attempt_count = made.min(max);
        r.next_attempt_at = next.then(now);
        let claimable = (st == Status::Pending || (st == Status::Failed && next)) && r.attempts_remain();
        match claim(&r, now()) {
            Ok(c) => {
                prop_assert!(claimable);
                let u = c.reminder.unwrap();
                prop_assert_eq!(u.status, Status::InProgress);
                prop_assert_eq!(u.attempt_count, r.attempt_count + 1);
                prop_assert_eq!(u.last_attempt_at, Some(now()));
                prop_assert_eq!(u.next_attempt_at, None);
                prop_assert_eq!(
                    c.attempt,
                    Some(AttemptWrite::Start { attempt: r.attempt_count + 1, room_name: room_name(r.id, r.attempt_count + 1) })
                );
            }
            Err(_) => prop_assert!(!claimable),
        }
    }
}

// --- the calling window ------------------------------------------------------

fn zone() -> impl Strategy<Value = TimeZone> {
    proptest::sample::select(vec![
        "America/New_York",
        "America/Los_Angeles",
        "Europe/London",
        "Europe/Berlin",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "Asia/Tokyo",
        "Asia/Kolkata",
        "America/St_Johns",
        "Pacific/Chatham",
    ])
    .prop_map(|name| TimeZone::parse(name).unwrap())
}

/// Instants of 2026: anywhere in the year, or within three days of a
/// daylight-saving change somewhere in `zone()`.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let changes: Vec<i64> = [
        "2026-03-08T07:00:00Z", // America/New_York forward
        "2026-11-01T06:00:00Z", // America/New_York back
        "2026-03-29T01:00:00Z", // Europe forward
        "2026-10-25T01:00:00Z", // Europe back
        "2026-04-04T16:00:00Z", // Australia/Sydney back
        "2026-10-03T16:00:00Z", // Australia/Sydney forward
        "2026-03-08T05:30:00Z", // America/St_Johns forward
        "2026-04-04T14:00:00Z", // Pacific/Chatham back
    ]
    .iter()
    .map(|s| DateTime::parse_from_rfc3339(s).unwrap().timestamp())
    .collect();
    prop_oneof![
        (1_767_225_600i64..1_800_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        (
            proptest::sample::select(changes),
            -3 * 86_400i64..3 * 86_400
        )
            .prop_map(|(c, d)| DateTime::from_timestamp(c + d, 0).unwrap()),
    ]
}

prop_compose! {
    fn window()(start in prop_oneof![0u32..(23 * 60), 0u32..(4 * 60)], len in 15u32..(12 * 60),
                days in proptest::collection::btree_set(0u8..7, 1..=7)) -> CallingWindow {
        let end = (start + len).min(23 * 60 + 59);
        CallingWindow {
            start: NaiveTime::from_hms_opt(start / 60, start % 60, 0).unwrap(),
            end: NaiveTime::from_hms_opt(end / 60, end % 60, 0).unwrap(),
            to_midnight: false,
            days,
            blackout: Default::default(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// `next_open` answers an instant at or after `t` at which the window is
    /// open, and the window is closed at every whole minute before it — in any
    /// zone, across the year's daylight-saving changes.
    #[test]
    fn property_next_open_is_the_first_open_instant(
        tz in zone(),
        w in window(),
        t in instant(),
    ) {
        let open = w.next_open(t, tz);
        prop_assert!(open >= t);
        prop_assert!(w.is_open(open, tz), "{t} → {open} is closed");
        prop_assert!(open - t <= Duration::days(8), "{t} → {open}");
        let mut m = t + Duration::seconds(60 - t.timestamp() % 60);
        while m < open {
            prop_assert!(!w.is_open(m, tz), "{t} → {open}, but open at {m}");
            m += Duration::minutes(1);
        }
    }
}
