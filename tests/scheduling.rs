mod common;

// Scheduling (SPEC §4) through the real `Scheduler`: the calling window in
// the customer's own time zone (daylight-saving changes included), the
// weekly attempt cap, the concurrency cap, and several scheduler instances
// ticking against one database with every attempt dispatched exactly once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use common::fake_livekit::FakeLiveKit;
use common::{t, test_config, Backend, TestDb};
use duecall::clock::{Clock, ManualClock};
use duecall::dialer::{CallRequest, DialError, Dialer};
use duecall::domain::{
    self, room_name, Ctx, Event, EventKind, NewReminder, Reminder, ReminderId, Status, Verdict,
};
use duecall::http::AppState;
use duecall::scheduler::TickReport;
use duecall::store::{Applied, Created, Store};
use serde_json::{json, Value};
use tokio::task::JoinSet;

// --- Helpers ------------------------------------------------------------------

/// A dialer that only writes down what it was asked to dial.
#[derive(Default)]
struct RecordingDialer {
    calls: Mutex<Vec<CallRequest>>,
}

impl RecordingDialer {
    fn calls(&self) -> Vec<CallRequest> {
        self.calls.lock().unwrap().clone()
    }

    /// `(reminder, attempt, room)` of every call so far, sorted.
    fn dialled(&self) -> Vec<(ReminderId, u32, String)> {
        let mut out: Vec<_> = self
            .calls()
            .into_iter()
            .map(|c| (c.reminder_id, c.attempt, c.room_name))
            .collect();
        out.sort();
        out
    }
}

#[async_trait]
impl Dialer for RecordingDialer {
    fn name(&self) -> &'static str {
        "recording"
    }

    async fn dial(&self, call: &CallRequest) -> Result<(), DialError> {
        self.calls.lock().unwrap().push(call.clone());
        Ok(())
    }
}

/// `(reminder, attempt, room)` sorted the way `RecordingDialer::dialled` sorts.
fn expected_calls(ids: &[(ReminderId, u32)]) -> Vec<(ReminderId, u32, String)> {
    let mut out: Vec<_> = ids
        .iter()
        .map(|&(id, n)| (id, n, room_name(id, n)))
        .collect();
    out.sort();
    out
}

/// One scheduler on a fresh database with a recording dialer and a manual clock.
struct Rig {
    db: TestDb,
    clock: ManualClock,
    state: AppState,
    dialer: Arc<RecordingDialer>,
}

impl Rig {
    async fn new(backend: Backend, start: &str, extra: &[(&str, &str)]) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let store = db.store().await;
        let clock = ManualClock::new(t(start));
        let dialer = Arc::new(RecordingDialer::default());
        // These tests are about the window in the zone each reminder names.
        let mut vars = vec![("ZONE_POLICY", "given")];
        vars.extend_from_slice(extra);
        let state = duecall::state_with_dialer(
            store,
            Arc::new(clock.clone()) as Arc<dyn Clock>,
            test_config(&db.url, &vars),
            Some(Arc::clone(&dialer) as Arc<dyn Dialer>),
        );
        Some(Self {
            db,
            clock,
            state,
            dialer,
        })
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn tick(&self) -> TickReport {
        self.state.scheduler.tick().await.expect("tick")
    }

    /// Tick at `at`.
    async fn tick_at(&self, at: &str) -> TickReport {
        self.clock.set(t(at));
        self.tick().await
    }

    /// A reminder created now, due now.
    async fn create(&self, overrides: Value) -> ReminderId {
        create_reminder(self.store(), &self.state, self.now(), overrides).await
    }

    async fn get(&self, id: ReminderId) -> Reminder {
        self.store()
            .get_reminder(id)
            .await
            .unwrap()
            .expect("reminder exists")
    }

    /// The current attempt ends with `result`, reported now.
    async fn end_attempt(&self, id: ReminderId, result: &str) -> Reminder {
        end_attempt(&self.state, id, result, self.now()).await
    }

    /// The reminder was deferred, untouched otherwise: still pending, no attempt.
    async fn assert_deferred_to(&self, id: ReminderId, to: &str) {
        let r = self.get(id).await;
        assert_eq!(r.status, Status::Pending, "{}", r.primary_zone().name());
        assert_eq!(r.attempt_count, 0, "{}", r.primary_zone().name());
        assert_eq!(
            r.next_attempt_at,
            Some(t(to)),
            "{}",
            r.primary_zone().name()
        );
        assert_eq!(r.skip_reason, None);
        assert!(self.store().list_attempts(id).await.unwrap().is_empty());
    }

    /// The reminder's attempt `n` is live.
    async fn assert_dispatched(&self, id: ReminderId, n: u32) {
        let r = self.get(id).await;
        assert_eq!(r.status, Status::InProgress, "{}", r.primary_zone().name());
        assert_eq!(r.attempt_count, n, "{}", r.primary_zone().name());
        assert_eq!(r.next_attempt_at, None);
        assert_eq!(r.last_attempt_at, Some(self.now()));
        let att = self.store().get_attempt(id, n).await.unwrap().unwrap();
        assert_eq!(att.room_name, room_name(id, n));
        assert_eq!(att.dispatched_at, self.now());
    }

    /// Deferred after `made` attempts.
    async fn assert_deferred_to_attempt(&self, id: ReminderId, made: u32, to: &str) {
        let r = self.get(id).await;
        assert_eq!(r.status, Status::Pending);
        assert_eq!(r.attempt_count, made);
        assert_eq!(r.next_attempt_at, Some(t(to)));
        assert_eq!(
            self.store().list_attempts(id).await.unwrap().len(),
            made as usize
        );
    }

    /// Attempt 1 went out at `at`.
    async fn assert_dispatched_at(&self, id: ReminderId, at: DateTime<Utc>) {
        let r = self.get(id).await;
        assert_eq!(r.status, Status::InProgress);
        assert_eq!(r.attempt_count, 1);
        assert_eq!(r.last_attempt_at, Some(at));
    }

    async fn finish(self) {
        self.db.cleanup().await;
    }
}

async fn create_reminder(
    store: &Arc<dyn Store>,
    state: &AppState,
    now: DateTime<Utc>,
    overrides: Value,
) -> ReminderId {
    let body = common::reminder_body(overrides);
    let new = NewReminder::parse(body.as_object().unwrap(), &state.defaults).unwrap();
    let id = ReminderId::new();
    match store.create_reminder(&new, id, now).await.unwrap() {
        Created::New(r) => assert_eq!(r.next_attempt_at, Some(now)),
        other => panic!("expected a new reminder, got {other:?}"),
    }
    id
}

/// Apply `call_completed` with `result` to the current attempt, as the
/// webhook would (fixed jitter 0.0: retries land at 90 % of the delay).
async fn end_attempt(
    state: &AppState,
    id: ReminderId,
    result: &str,
    now: DateTime<Utc>,
) -> Reminder {
    let r = state.store.get_reminder(id).await.unwrap().unwrap();
    let att = state.store.get_attempt(id, r.attempt_count).await.unwrap();
    let ev = Event {
        reminder_id: id,
        attempt: Some(r.attempt_count),
        occurred_at: now,
        kind: EventKind::Completed(serde_json::from_value(json!({ "result": result })).unwrap()),
    };
    let ctx = Ctx {
        now,
        retry: &state.retry,
        jitter: 0.0,
        promise_grace_days: 3,
    };
    let d = domain::transition(&r, att.as_ref(), &ev, &ctx);
    assert_eq!(d.verdict, Verdict::Applied, "{r:?}");
    match state.store.apply(&d.change, None).await.unwrap() {
        Applied::Done(after) => *after,
        other => panic!("completion not applied: {other:?}"),
    }
}

fn report(dispatched: u64, deferred: u64) -> TickReport {
    TickReport {
        timed_out: 0,
        dispatched,
        dispatch_failed: 0,
        deferred,
        ..TickReport::default()
    }
}

const QUIET: TickReport = TickReport {
    timed_out: 0,
    dispatched: 0,
    dispatch_failed: 0,
    deferred: 0,
    suppressed: 0,
    no_lawful_calling_time: 0,
    promises_kept: 0,
    promises_broken: 0,
};

/// Attempts may stay live for a day: no timeout interferes.
const NO_TIMEOUTS: [(&str, &str); 2] = [
    ("DISPATCH_TIMEOUT_SECS", "86400"),
    ("CALL_TIMEOUT_SECS", "86400"),
];

// --- 1. The calling window across time zones ------------------------------------

/// Tuesday 2026-11-24 14:00 UTC, default window 08:00–21:00 Mon–Sat:
/// New York 09:00 EST (open), London 14:00 GMT (open), Los Angeles 06:00 PST
/// (opens 08:00 PST = 16:00Z), Sydney Wed 01:00 AEDT (opens Wed 08:00 AEDT =
/// 21:00Z Tue), Tokyo 23:00 JST (opens Wed 08:00 JST = 23:00Z Tue).
async fn window_across_time_zones(backend: Backend) {
    let Some(rig) = Rig::new(backend, "2026-11-24T14:00:00Z", &NO_TIMEOUTS).await else {
        return;
    };
    let mut ids = Vec::new();
    for tz in [
        "America/New_York",
        "Asia/Tokyo",
        "Europe/London",
        "Australia/Sydney",
        "America/Los_Angeles",
    ] {
        ids.push(rig.create(json!({ "timezone": tz })).await);
    }
    let [ny, tokyo, london, sydney, la] = ids[..] else {
        unreachable!()
    };

    assert_eq!(rig.tick().await, report(2, 3));
    rig.assert_dispatched(ny, 1).await;
    rig.assert_dispatched(london, 1).await;
    rig.assert_deferred_to(la, "2026-11-24T16:00:00Z").await;
    rig.assert_deferred_to(sydney, "2026-11-24T21:00:00Z").await;
    rig.assert_deferred_to(tokyo, "2026-11-24T23:00:00Z").await;
    assert_eq!(
        rig.dialer.dialled(),
        expected_calls(&[(ny, 1), (london, 1)])
    );
    for call in rig.dialer.calls() {
        let meta: Value = serde_json::from_str(&call.metadata).unwrap();
        let tz = rig.get(call.reminder_id).await.primary_zone().name();
        assert_eq!(meta["timezone"], tz);
        assert_eq!(meta["attempt"], 1);
        assert_eq!(meta["reminder_id"], call.reminder_id.to_string());
    }
    assert_eq!(rig.store().count_live().await.unwrap(), 2);

    // Nothing more to do at the same instant: the deferred ones are not due.
    assert_eq!(rig.tick().await, QUIET);
    // One millisecond before Los Angeles opens: still nothing.
    assert_eq!(rig.tick_at("2026-11-24T15:59:59.999Z").await, QUIET);
    // Each deferred reminder is dispatched when its own window opens, alone.
    assert_eq!(rig.tick_at("2026-11-24T16:00:00Z").await, report(1, 0));
    rig.assert_dispatched(la, 1).await;
    assert_eq!(rig.tick_at("2026-11-24T20:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-24T21:00:00Z").await, report(1, 0));
    rig.assert_dispatched(sydney, 1).await;
    assert_eq!(rig.tick_at("2026-11-24T22:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-24T23:00:00Z").await, report(1, 0));
    rig.assert_dispatched(tokyo, 1).await;
    assert_eq!(
        rig.dialer.dialled(),
        expected_calls(&[(ny, 1), (london, 1), (la, 1), (sydney, 1), (tokyo, 1)])
    );
    assert_eq!(rig.dialer.calls().len(), 5, "each dialled once");
    rig.finish().await;
}

/// Saturday 2026-11-28 23:30 UTC: Saturday afternoon in Los Angeles (15:30)
/// and New York (18:30): open. Saturday 23:30 in London: closed, and Sunday is
/// closed too: Monday 08:00 GMT. Sunday 08:30 in Tokyo and Sunday 10:30 in
/// Sydney: inside the hours, but Sunday: Monday 08:00 local.
async fn sunday_is_local(backend: Backend) {
    let Some(rig) = Rig::new(backend, "2026-11-28T23:30:00Z", &NO_TIMEOUTS).await else {
        return;
    };
    let la = rig
        .create(json!({ "timezone": "America/Los_Angeles" }))
        .await;
    let ny = rig.create(json!({ "timezone": "America/New_York" })).await;
    let london = rig.create(json!({ "timezone": "Europe/London" })).await;
    let tokyo = rig.create(json!({ "timezone": "Asia/Tokyo" })).await;
    let sydney = rig.create(json!({ "timezone": "Australia/Sydney" })).await;

    assert_eq!(rig.tick().await, report(2, 3));
    rig.assert_dispatched(la, 1).await;
    rig.assert_dispatched(ny, 1).await;
    rig.assert_deferred_to(sydney, "2026-11-29T21:00:00Z").await;
    rig.assert_deferred_to(tokyo, "2026-11-29T23:00:00Z").await;
    rig.assert_deferred_to(london, "2026-11-30T08:00:00Z").await;
    assert_eq!(rig.dialer.dialled(), expected_calls(&[(la, 1), (ny, 1)]));
    // The two calls end (paid), so nothing else is live over the weekend.
    rig.end_attempt(la, "paid").await;
    rig.end_attempt(ny, "paid").await;

    // All of Sunday (UTC) up to Sydney's Monday morning: nobody is called.
    assert_eq!(rig.tick_at("2026-11-29T12:00:00Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-29T20:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-29T21:00:00Z").await, report(1, 0));
    rig.assert_dispatched(sydney, 1).await;
    assert_eq!(rig.tick_at("2026-11-29T23:00:00Z").await, report(1, 0));
    rig.assert_dispatched(tokyo, 1).await;
    assert_eq!(rig.tick_at("2026-11-30T07:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-30T08:00:00Z").await, report(1, 0));
    rig.assert_dispatched(london, 1).await;
    assert_eq!(rig.dialer.calls().len(), 5);
    rig.finish().await;
}

/// The window's end is exclusive: 20:59:59.999 local is inside, 21:00 is not.
async fn window_edges(backend: Backend) {
    // Tuesday 2026-11-24 20:59:59.999 EST.
    let Some(rig) = Rig::new(backend, "2026-11-25T01:59:59.999Z", &[]).await else {
        return;
    };
    let early = rig.create(json!({ "timezone": "America/New_York" })).await;
    assert_eq!(rig.tick().await, report(1, 0));
    rig.assert_dispatched(early, 1).await;
    // 21:00 EST: closed until Wednesday 08:00 EST.
    rig.clock.set(t("2026-11-25T02:00:00Z"));
    let late = rig.create(json!({ "timezone": "America/New_York" })).await;
    assert_eq!(rig.tick().await, report(0, 1));
    rig.assert_deferred_to(late, "2026-11-25T13:00:00Z").await;
    assert_eq!(rig.dialer.dialled(), expected_calls(&[(early, 1)]));
    rig.finish().await;
}

both_backends!(
    calling_window_is_local_to_each_customer,
    window_across_time_zones
);
both_backends!(calling_window_end_is_exclusive, window_edges);
both_backends!(sunday_is_the_customers_sunday, sunday_is_local);

// --- 2. Daylight-saving changes ---------------------------------------------------

/// New York springs forward on Sunday 2026-03-08 (02:00 EST → 03:00 EDT).
/// Saturday 22:00 EST (03:00Z Sunday) defers to Monday 08:00 EDT = 12:00Z, not
/// 13:00Z. London (still GMT until March 29) opens Monday at 08:00Z.
async fn spring_forward(backend: Backend) {
    let Some(rig) = Rig::new(backend, "2026-03-08T03:00:00Z", &NO_TIMEOUTS).await else {
        return;
    };
    let ny = rig.create(json!({ "timezone": "America/New_York" })).await;
    let london = rig.create(json!({ "timezone": "Europe/London" })).await;
    assert_eq!(rig.tick().await, report(0, 2));
    rig.assert_deferred_to(ny, "2026-03-09T12:00:00Z").await;
    rig.assert_deferred_to(london, "2026-03-09T08:00:00Z").await;

    assert_eq!(rig.tick_at("2026-03-09T08:00:00Z").await, report(1, 0));
    rig.assert_dispatched(london, 1).await;
    assert_eq!(rig.tick_at("2026-03-09T11:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-03-09T12:00:00Z").await, report(1, 0));
    rig.assert_dispatched(ny, 1).await;
    assert_eq!(
        rig.dialer.dialled(),
        expected_calls(&[(ny, 1), (london, 1)])
    );
    rig.finish().await;
}

/// New York falls back on Sunday 2026-11-01 (02:00 EDT → 01:00 EST).
/// Saturday 2026-10-31 22:00 EDT (02:00Z) defers to Monday 08:00 EST = 13:00Z.
async fn fall_back(backend: Backend) {
    let Some(rig) = Rig::new(backend, "2026-11-01T02:00:00Z", &[]).await else {
        return;
    };
    let ny = rig.create(json!({ "timezone": "America/New_York" })).await;
    assert_eq!(rig.tick().await, report(0, 1));
    rig.assert_deferred_to(ny, "2026-11-02T13:00:00Z").await;
    // 08:00 EDT would have been 12:00Z: closed now (07:00 EST).
    assert_eq!(rig.tick_at("2026-11-02T12:00:00Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-02T12:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-02T13:00:00Z").await, report(1, 0));
    rig.assert_dispatched(ny, 1).await;
    assert_eq!(rig.dialer.dialled(), expected_calls(&[(ny, 1)]));
    rig.finish().await;
}

/// A window that opens at 02:00, every day. On 2026-03-08 02:00 does not
/// exist in New York; at 01:30 EST (06:30Z) the reminder is deferred to the
/// first valid local time after the gap, 03:00 EDT = 07:00Z (policy.rs
/// `next_open`), and is dispatched then.
async fn window_start_in_the_gap(backend: Backend) {
    let extra = [
        ("CALLING_WINDOW", "02:00-04:00"),
        ("CALLING_DAYS", "Mon-Sun"),
    ];
    let Some(rig) = Rig::new(backend, "2026-03-08T06:30:00Z", &extra).await else {
        return;
    };
    let ny = rig.create(json!({ "timezone": "America/New_York" })).await;
    assert_eq!(rig.tick().await, report(0, 1));
    rig.assert_deferred_to(ny, "2026-03-08T07:00:00Z").await;
    assert_eq!(rig.tick_at("2026-03-08T06:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-03-08T07:00:00Z").await, report(1, 0));
    rig.assert_dispatched(ny, 1).await;
    assert_eq!(rig.dialer.dialled(), expected_calls(&[(ny, 1)]));
    rig.finish().await;
}

/// A window that opens at 01:30, every day. On 2026-11-01 01:30 happens twice
/// in New York (EDT at 05:30Z, EST at 06:30Z): it opens at the first.
async fn window_start_in_the_overlap(backend: Backend) {
    let extra = [
        ("CALLING_WINDOW", "01:30-04:00"),
        ("CALLING_DAYS", "Mon-Sun"),
    ];
    // 00:00 EDT on Sunday 2026-11-01.
    let Some(rig) = Rig::new(backend, "2026-11-01T04:00:00Z", &extra).await else {
        return;
    };
    let ny = rig.create(json!({ "timezone": "America/New_York" })).await;
    assert_eq!(rig.tick().await, report(0, 1));
    rig.assert_deferred_to(ny, "2026-11-01T05:30:00Z").await;
    assert_eq!(rig.tick_at("2026-11-01T05:30:00Z").await, report(1, 0));
    rig.assert_dispatched(ny, 1).await;
    rig.finish().await;
}

/// Like the gap case above, but the window starts at 02:15, which is not on
/// a half hour: 02:15 EST does not exist on 2026-03-08 either, and the first
/// valid local time after the gap is still 03:00 EDT = 07:00Z (the window is
/// open then: 03:00 is inside 02:15–04:00).
async fn window_start_off_the_half_hour_in_the_gap(backend: Backend) {
    let extra = [
        ("CALLING_WINDOW", "02:15-04:00"),
        ("CALLING_DAYS", "Mon-Sun"),
    ];
    let Some(rig) = Rig::new(backend, "2026-03-08T06:30:00Z", &extra).await else {
        return;
    };
    let ny = rig.create(json!({ "timezone": "America/New_York" })).await;
    assert_eq!(rig.tick().await, report(0, 1));
    rig.assert_deferred_to(ny, "2026-03-08T07:00:00Z").await;
    assert_eq!(rig.tick_at("2026-03-08T07:00:00Z").await, report(1, 0));
    rig.assert_dispatched(ny, 1).await;
    rig.finish().await;
}

/// On 2026-11-01 New York lives 01:00–02:00 twice. A window 01:30–04:00:
/// at 01:10 EST (06:10Z, the second pass) the window is closed, and it opens
/// again at 01:30 EST = 06:30Z that same night (`is_open` says so), not a
/// day later.
async fn window_reopens_in_the_repeated_hour(backend: Backend) {
    let extra = [
        ("CALLING_WINDOW", "01:30-04:00"),
        ("CALLING_DAYS", "Mon-Sun"),
    ];
    let Some(rig) = Rig::new(backend, "2026-11-01T06:10:00Z", &extra).await else {
        return;
    };
    let ny = rig.create(json!({ "timezone": "America/New_York" })).await;
    assert_eq!(rig.tick().await, report(0, 1));
    rig.assert_deferred_to(ny, "2026-11-01T06:30:00Z").await;
    assert_eq!(rig.tick_at("2026-11-01T06:30:00Z").await, report(1, 0));
    rig.assert_dispatched(ny, 1).await;
    rig.finish().await;
}

both_backends!(
    dst_window_start_off_the_half_hour_in_the_gap,
    window_start_off_the_half_hour_in_the_gap
);
both_backends!(
    dst_window_reopens_in_the_repeated_hour,
    window_reopens_in_the_repeated_hour
);
both_backends!(
    dst_spring_forward_opens_an_hour_earlier_in_utc,
    spring_forward
);
both_backends!(dst_fall_back_opens_an_hour_later_in_utc, fall_back);
both_backends!(dst_window_start_in_the_gap, window_start_in_the_gap);
both_backends!(dst_window_start_in_the_overlap, window_start_in_the_overlap);

// --- 3. The weekly attempt cap ------------------------------------------------------

/// Seven unanswered attempts 20 hours apart from Monday 2026-11-16 10:00Z
/// (the last on Saturday 10:00Z): the eighth waits until the first is seven
/// days old, Monday 2026-11-23 10:00Z exactly, then goes out.
async fn weekly_cap(backend: Backend) {
    let extra = [
        ("CALLING_WINDOW", "00:00-23:59"),
        ("CALLING_DAYS", "Mon-Sun"),
        ("RETRY_DELAY_SECS", "60"),
    ];
    let first = t("2026-11-16T10:00:00Z");
    let Some(rig) = Rig::new(backend, "2026-11-16T10:00:00Z", &extra).await else {
        return;
    };
    let id = rig
        .create(json!({ "timezone": "Etc/UTC", "max_attempts": 10 }))
        .await;
    for n in 1..=7u32 {
        let dispatch_at = first + Duration::hours(20) * (n as i32 - 1);
        rig.clock.set(dispatch_at);
        assert_eq!(rig.tick().await, report(1, 0), "attempt {n}");
        rig.assert_dispatched(id, n).await;
        // No answer, a minute later: a retry 90 % of 60 s · 2^(n-1) later.
        rig.clock.advance(Duration::minutes(1));
        let after = rig.end_attempt(id, "no_answer").await;
        assert_eq!(after.status, Status::Pending, "attempt {n}");
        let retry_in = Duration::milliseconds(54_000 * (1 << (n - 1)));
        assert_eq!(after.next_attempt_at, Some(rig.now() + retry_in), "{n}");
    }
    assert_eq!(
        rig.dialer.dialled(),
        expected_calls(&(1..=7).map(|n| (id, n)).collect::<Vec<_>>())
    );

    // Due again (Saturday 10:01 + 57 min 36 s), but seven attempts in seven days.
    let due_again = rig.get(id).await.next_attempt_at.unwrap();
    assert_eq!(due_again, t("2026-11-21T10:58:36Z"));
    rig.clock.set(due_again);
    assert_eq!(rig.tick().await, report(0, 1), "the cap defers it");
    let r = rig.get(id).await;
    assert_eq!(r.status, Status::Pending);
    assert_eq!(r.attempt_count, 7);
    assert_eq!(r.next_attempt_at, Some(first + Duration::days(7)));
    assert_eq!(r.next_attempt_at, Some(t("2026-11-23T10:00:00Z")));
    assert_eq!(rig.dialer.calls().len(), 7);
    assert_eq!(rig.tick().await, QUIET);

    assert_eq!(rig.tick_at("2026-11-23T09:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-23T10:00:00Z").await, report(1, 0));
    rig.assert_dispatched(id, 8).await;
    assert_eq!(rig.dialer.calls().len(), 8);
    assert_eq!(rig.dialer.calls()[7].room_name, room_name(id, 8));

    // The window slides: attempts 2–8 (from Tuesday 2026-11-17 06:00Z) are
    // seven in seven days, so the ninth waits for the second to age out.
    rig.clock.advance(Duration::minutes(1));
    rig.end_attempt(id, "no_answer").await;
    let due_again = rig.get(id).await.next_attempt_at.unwrap();
    assert_eq!(due_again, t("2026-11-23T11:56:12Z"), "10:01 + 54 s · 2^7");
    rig.clock.set(due_again);
    assert_eq!(rig.tick().await, report(0, 1));
    let r = rig.get(id).await;
    assert_eq!((r.status, r.attempt_count), (Status::Pending, 8));
    assert_eq!(r.next_attempt_at, Some(t("2026-11-24T06:00:00Z")));
    assert_eq!(rig.tick_at("2026-11-24T05:59:59.999Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-24T06:00:00Z").await, report(1, 0));
    rig.assert_dispatched(id, 9).await;
    assert_eq!(rig.dialer.calls().len(), 9);
    rig.finish().await;
}

/// The weekly cap and the calling window together, across the autumn change.
/// In New York, default window, the first attempt goes out on Saturday
/// 2026-10-31 08:30 EDT (12:30Z), six more during the next week. Seven days
/// after the first is Saturday 2026-11-07 12:30Z, which is 07:30 EST: closed.
/// The eighth is deferred to when both allow it: 08:00 EST = 13:00Z.
async fn weekly_cap_inside_the_window(backend: Backend) {
    let extra = [("RETRY_DELAY_SECS", "60")];
    let Some(rig) = Rig::new(backend, "2026-10-31T12:30:00Z", &extra).await else {
        return;
    };
    let id = rig
        .create(json!({ "timezone": "America/New_York", "max_attempts": 10 }))
        .await;
    let dispatches = [
        "2026-10-31T12:30:00Z",
        "2026-11-02T14:00:00Z",
        "2026-11-03T14:00:00Z",
        "2026-11-04T14:00:00Z",
        "2026-11-05T14:00:00Z",
        "2026-11-06T14:00:00Z",
        "2026-11-06T15:00:00Z",
    ];
    for (i, at) in dispatches.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(rig.tick_at(at).await, report(1, 0), "attempt {n} at {at}");
        rig.assert_dispatched(id, n).await;
        rig.clock.advance(Duration::minutes(1));
        let after = rig.end_attempt(id, "no_answer").await;
        assert_eq!(after.status, Status::Pending);
    }
    // Due again on Friday 10:01 EST + 57 min 36 s: inside the window, over the cap.
    let due_again = rig.get(id).await.next_attempt_at.unwrap();
    assert_eq!(due_again, t("2026-11-06T15:58:36Z"));
    rig.clock.set(due_again);
    assert_eq!(rig.tick().await, report(0, 1));
    rig.assert_deferred_to_attempt(id, 7, "2026-11-07T13:00:00Z")
        .await;
    // 12:30Z: the cap has cleared, but it is 07:30 in New York.
    assert_eq!(rig.tick_at("2026-11-07T12:30:00Z").await, QUIET);
    assert_eq!(rig.tick_at("2026-11-07T13:00:00Z").await, report(1, 0));
    rig.assert_dispatched(id, 8).await;
    assert_eq!(rig.dialer.calls().len(), 8);
    rig.finish().await;
}

both_backends!(weekly_cap_defers_the_eighth_attempt, weekly_cap);
both_backends!(weekly_cap_and_window_together, weekly_cap_inside_the_window);

// --- 4. The concurrency cap -----------------------------------------------------------

async fn concurrency_cap(backend: Backend) {
    // Tuesday 10:00 in New York: open.
    let extra = [("MAX_CONCURRENT_CALLS", "5")];
    let Some(rig) = Rig::new(backend, "2026-11-24T15:00:00Z", &extra).await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(rig.create(json!({})).await);
    }
    assert_eq!(rig.tick().await, report(5, 0));
    assert_eq!(rig.store().count_live().await.unwrap(), 5);
    assert_eq!(rig.tick().await, QUIET, "the cap is reached");
    rig.clock.advance(Duration::minutes(1));
    assert_eq!(rig.tick().await, QUIET, "still reached a minute later");

    let first: Vec<ReminderId> = rig.dialer.calls().iter().map(|c| c.reminder_id).collect();
    assert_eq!(first.iter().collect::<HashSet<_>>().len(), 5);
    for id in &first {
        rig.assert_dispatched_at(*id, t("2026-11-24T15:00:00Z"))
            .await;
    }
    // Two calls end.
    for id in &first[..2] {
        let r = rig.end_attempt(*id, "paid").await;
        assert_eq!(r.status, Status::Completed);
    }
    assert_eq!(rig.store().count_live().await.unwrap(), 3);
    assert_eq!(rig.tick().await, report(2, 0));
    assert_eq!(rig.store().count_live().await.unwrap(), 5);
    assert_eq!(rig.tick().await, QUIET);

    let calls = rig.dialer.calls();
    assert_eq!(calls.len(), 7);
    let called: HashSet<ReminderId> = calls.iter().map(|c| c.reminder_id).collect();
    assert_eq!(called.len(), 7, "seven different reminders");
    assert!(calls.iter().all(|c| c.attempt == 1));
    let mut pending = 0;
    for id in &ids {
        let r = rig.get(*id).await;
        if called.contains(id) {
            assert_eq!(r.attempt_count, 1);
        } else {
            assert_eq!(r.status, Status::Pending);
            assert_eq!(r.attempt_count, 0);
            pending += 1;
        }
    }
    assert_eq!(pending, 5);
    rig.finish().await;
}

both_backends!(concurrency_cap_limits_live_attempts, concurrency_cap);

// --- 5. Several schedulers, one database ------------------------------------------------

/// Everything one multi-instance run is bounded by.
const RUN_LIMIT: StdDuration = StdDuration::from_secs(120);

/// One service instance: its own pool, its own scheduler, the LiveKit dialer.
struct Instance {
    state: AppState,
}

async fn instances(
    db: &TestDb,
    clock: &ManualClock,
    fake: &FakeLiveKit,
    n: usize,
    max_live: &str,
) -> Vec<Instance> {
    let extra = [
        ("LIVEKIT_URL", fake.url()),
        ("LIVEKIT_API_KEY", fake.api_key()),
        ("LIVEKIT_API_SECRET", fake.api_secret()),
        ("MAX_CONCURRENT_CALLS", max_live),
    ];
    let mut out = Vec::new();
    // One at a time: each runs the migrations as it opens.
    for _ in 0..n {
        let store = duecall::store::connect(&db.url, 8).await.expect("connect");
        let config = test_config(&db.url, &extra);
        let state = duecall::state_with(store, Arc::new(clock.clone()) as Arc<dyn Clock>, config);
        assert_eq!(state.scheduler.dialer_name(), "livekit");
        out.push(Instance { state });
    }
    out
}

/// `n` due reminders, created through `store` by a few concurrent tasks.
async fn create_many(
    store: &Arc<dyn Store>,
    state: &AppState,
    now: DateTime<Utc>,
    n: usize,
) -> Vec<ReminderId> {
    let tasks = if store.backend() == "postgres" { 8 } else { 1 };
    let mut set = JoinSet::new();
    for k in 0..tasks {
        let store = Arc::clone(store);
        let state = state.clone();
        let count = n / tasks + usize::from(k < n % tasks);
        set.spawn(async move {
            let mut ids = Vec::with_capacity(count);
            for i in 0..count {
                let phone = format!("+1212555{:04}", (k * 1000 + i) % 10_000);
                ids.push(
                    create_reminder(&store, &state, now, json!({ "phone_number": phone })).await,
                );
            }
            ids
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(part) = set.join_next().await {
        ids.extend(part.expect("create task"));
    }
    assert_eq!(ids.len(), n);
    ids
}

/// Every instance ticks in a loop, all at once, until a tick dispatches
/// nothing and nothing is left to claim (no due reminder, or the cap is
/// reached). Returns every instance's reports.
async fn run_all(instances: &[Instance], max_live: u64) -> Vec<Vec<TickReport>> {
    let mut set = JoinSet::new();
    for (i, inst) in instances.iter().enumerate() {
        let state = inst.state.clone();
        set.spawn(async move {
            let mut reports = Vec::new();
            loop {
                let r = state
                    .scheduler
                    .tick()
                    .await
                    .unwrap_or_else(|e| panic!("instance {i}: tick failed: {e}"));
                reports.push(r);
                if r.dispatched == 0 {
                    let now = state.clock.now();
                    let due = state.store.due(now, 1).await.expect("due");
                    let live = state.store.count_live().await.expect("count_live");
                    if due.is_empty() || live >= max_live {
                        break;
                    }
                }
                assert!(reports.len() < 100_000, "instance {i} never settles");
            }
            (i, reports)
        });
    }
    let joined = tokio::time::timeout(RUN_LIMIT, async {
        let mut all = vec![Vec::new(); instances.len()];
        while let Some(done) = set.join_next().await {
            let (i, reports) = done.expect("instance task");
            all[i] = reports;
        }
        all
    })
    .await;
    match joined {
        Ok(all) => all,
        Err(_) => {
            set.abort_all();
            panic!("the schedulers did not settle within {RUN_LIMIT:?}");
        }
    }
}

fn total(reports: &[Vec<TickReport>]) -> TickReport {
    let mut sum = TickReport::default();
    for r in reports.iter().flatten() {
        sum.timed_out += r.timed_out;
        sum.dispatched += r.dispatched;
        sum.dispatch_failed += r.dispatch_failed;
        sum.deferred += r.deferred;
    }
    sum
}

/// Check that `ids` are all live on attempt 1 with one attempt row each.
async fn assert_all_live_once(store: &Arc<dyn Store>, ids: &[ReminderId]) {
    let mut set = JoinSet::new();
    for chunk in ids.chunks(ids.len().div_ceil(4).max(1)) {
        let store = Arc::clone(store);
        let chunk = chunk.to_vec();
        set.spawn(async move {
            for id in chunk {
                let r = store.get_reminder(id).await.unwrap().unwrap();
                assert_eq!(r.status, Status::InProgress, "{id}");
                assert_eq!(r.attempt_count, 1, "{id}");
                let attempts = store.list_attempts(id).await.unwrap();
                assert_eq!(attempts.len(), 1, "{id}: {attempts:?}");
                assert_eq!(attempts[0].attempt, 1);
                assert_eq!(attempts[0].room_name, room_name(id, 1));
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.expect("check task");
    }
}

async fn exactly_once(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let n = 2_000;
    let fake = FakeLiveKit::start().await;
    let clock = ManualClock::new(t("2026-11-24T15:00:00Z"));
    let fleet = instances(&db, &clock, &fake, 4, "100000").await;
    let lead = &fleet[0].state;

    let started = Instant::now();
    let ids = create_many(&lead.store, lead, clock.now(), n).await;
    let created_in = started.elapsed();

    let started = Instant::now();
    let reports = run_all(&fleet, u64::MAX).await;
    let ticked_in = started.elapsed();
    eprintln!(
        "exactly_once[{backend:?}]: {n} reminders created in {created_in:?}, \
         dispatched by 4 instances in {ticked_in:?} (ticks {:?}, dispatched {:?})",
        reports.iter().map(Vec::len).collect::<Vec<_>>(),
        reports
            .iter()
            .map(|r| r.iter().map(|r| r.dispatched).sum::<u64>())
            .collect::<Vec<_>>(),
    );

    let sum = total(&reports);
    assert_eq!(
        sum,
        TickReport {
            timed_out: 0,
            dispatched: n as u64,
            dispatch_failed: 0,
            deferred: 0,
            ..TickReport::default()
        }
    );
    let dispatches = fake.dispatches();
    assert_eq!(dispatches.len(), n);
    let rooms: HashSet<String> = dispatches.iter().map(|d| d.room.clone()).collect();
    assert_eq!(rooms.len(), n, "a room was dispatched to twice");
    let expected: HashSet<String> = ids.iter().map(|id| room_name(*id, 1)).collect();
    assert_eq!(expected.len(), n);
    assert_eq!(rooms, expected);
    for d in &dispatches {
        assert_eq!(d.agent_name, "payment-reminder");
    }
    assert_eq!(fake.calls("CreateRoom"), n);
    assert_eq!(fake.calls("CreateDispatch"), n);
    assert_eq!(fake.calls("DeleteRoom"), 0);
    assert_eq!(fake.rooms().len(), n);
    assert_eq!(lead.store.count_live().await.unwrap(), n as u64);
    assert_all_live_once(&lead.store, &ids).await;
    assert!(lead.store.due(clock.now(), 10).await.unwrap().is_empty());

    drop(fleet);
    db.cleanup().await;
}

async fn shared_cap(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let fake = FakeLiveKit::start().await;
    let clock = ManualClock::new(t("2026-11-24T15:00:00Z"));
    let fleet = instances(&db, &clock, &fake, 4, "50").await;
    let lead = &fleet[0].state;
    let ids = create_many(&lead.store, lead, clock.now(), 300).await;

    let started = Instant::now();
    let reports = run_all(&fleet, 50).await;
    eprintln!(
        "shared_cap[{backend:?}]: settled in {:?}",
        started.elapsed()
    );
    assert_eq!(total(&reports), report(50, 0));
    assert_eq!(lead.store.count_live().await.unwrap(), 50);
    let dispatches = fake.dispatches();
    assert_eq!(dispatches.len(), 50);
    assert_eq!(fake.calls("CreateRoom"), 50);
    let rooms: HashSet<String> = dispatches.iter().map(|d| d.room.clone()).collect();
    assert_eq!(rooms.len(), 50);

    let mut live = Vec::new();
    for id in &ids {
        let r = lead.store.get_reminder(*id).await.unwrap().unwrap();
        match r.status {
            Status::InProgress => live.push(*id),
            Status::Pending => assert_eq!(r.attempt_count, 0),
            other => panic!("{id}: unexpected status {other}"),
        }
    }
    assert_eq!(live.len(), 50);
    assert_all_live_once(&lead.store, &live).await;
    let expected: HashSet<String> = live.iter().map(|id| room_name(*id, 1)).collect();
    assert_eq!(rooms, expected);

    // One more tick each, at once: still nothing while the cap is reached.
    let mut set = JoinSet::new();
    for inst in &fleet {
        let state = inst.state.clone();
        set.spawn(async move { state.scheduler.tick().await.expect("tick") });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap(), QUIET);
    }
    assert_eq!(fake.dispatches().len(), 50);

    drop(fleet);
    db.cleanup().await;
}

/// Half the reminders are in Tokyo (00:00 JST on Wednesday: closed), half in
/// New York (10:00 EST: open). Four instances at once: each New York reminder
/// is dispatched once, each Tokyo reminder deferred once (to 08:00 JST =
/// 23:00Z) and counted once.
async fn deferred_once(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let fake = FakeLiveKit::start().await;
    let clock = ManualClock::new(t("2026-11-24T15:00:00Z"));
    let fleet = instances(&db, &clock, &fake, 4, "100000").await;
    let lead = &fleet[0].state;
    let mut tokyo = Vec::new();
    let mut ny = Vec::new();
    for i in 0..600 {
        let tz = if i % 2 == 0 {
            "Asia/Tokyo"
        } else {
            "America/New_York"
        };
        let id = create_reminder(&lead.store, lead, clock.now(), json!({ "timezone": tz })).await;
        if i % 2 == 0 {
            tokyo.push(id);
        } else {
            ny.push(id);
        }
    }
    let started = Instant::now();
    let reports = run_all(&fleet, u64::MAX).await;
    eprintln!(
        "deferred_once[{backend:?}]: settled in {:?}",
        started.elapsed()
    );
    assert_eq!(total(&reports), report(300, 300));
    assert_eq!(fake.dispatches().len(), 300);
    assert_all_live_once(&lead.store, &ny).await;
    for id in &tokyo {
        let r = lead.store.get_reminder(*id).await.unwrap().unwrap();
        assert_eq!(r.status, Status::Pending);
        assert_eq!(r.attempt_count, 0);
        assert_eq!(r.next_attempt_at, Some(t("2026-11-24T23:00:00Z")));
    }
    drop(fleet);
    db.cleanup().await;
}

/// 300 live attempts dispatched by four instances; ten minutes later
/// (`DISPATCH_TIMEOUT_SECS` default 600) all four tick at once: each attempt
/// times out exactly once, with its retry scheduled 2 h ± 10 % later.
async fn timed_out_once(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let fake = FakeLiveKit::start().await;
    let clock = ManualClock::new(t("2026-11-24T15:00:00Z"));
    let fleet = instances(&db, &clock, &fake, 4, "100000").await;
    let lead = &fleet[0].state;
    let ids = create_many(&lead.store, lead, clock.now(), 300).await;
    assert_eq!(total(&run_all(&fleet, u64::MAX).await), report(300, 0));
    assert_eq!(fake.dispatches().len(), 300);

    clock.advance(Duration::minutes(10));
    let now = clock.now();
    let mut set = JoinSet::new();
    for inst in &fleet {
        let state = inst.state.clone();
        set.spawn(async move {
            let mut reports = Vec::new();
            loop {
                reports.push(state.scheduler.tick().await.expect("tick"));
                let left = state
                    .store
                    .overdue(now - Duration::minutes(10), now - Duration::minutes(30), 1)
                    .await
                    .expect("overdue");
                if left.is_empty() {
                    break;
                }
                assert!(reports.len() < 10_000, "never settles");
            }
            reports
        });
    }
    let reports = tokio::time::timeout(RUN_LIMIT, async {
        let mut all = Vec::new();
        while let Some(done) = set.join_next().await {
            all.push(done.expect("instance task"));
        }
        all
    })
    .await
    .expect("the schedulers did not settle in time");
    assert_eq!(
        total(&reports),
        TickReport {
            timed_out: 300,
            ..TickReport::default()
        }
    );
    for id in &ids {
        let r = lead.store.get_reminder(*id).await.unwrap().unwrap();
        assert_eq!(r.status, Status::Failed, "{id}");
        assert_eq!(r.skip_reason.as_deref(), Some("call_timeout"));
        assert_eq!(r.attempt_count, 1);
        assert_eq!(r.updated_at, now);
        let retry = r.next_attempt_at.expect("retry scheduled");
        assert!(
            retry >= now + Duration::seconds(6480) && retry <= now + Duration::seconds(7920),
            "{id}: retry at {retry}"
        );
        let attempts = lead.store.list_attempts(*id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status, domain::AttemptStatus::Failed);
        assert_eq!(attempts[0].ended_at, Some(now));
    }
    assert_eq!(fake.dispatches().len(), 300, "no retry is due yet");
    drop(fleet);
    db.cleanup().await;
}

both_backends!(several_schedulers_dispatch_each_attempt_once, exactly_once);
both_backends!(
    several_schedulers_time_out_each_attempt_once,
    timed_out_once
);
both_backends!(several_schedulers_defer_each_reminder_once, deferred_once);
both_backends!(several_schedulers_share_the_concurrency_cap, shared_cap);
