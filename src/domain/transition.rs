//! Events and decisions: what an agent reports, and what each report, an
//! operator's cancel, a claim or a timeout writes (the table of SPEC §1).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::*;

// Events: what an agent reports (SPEC §2), parsed

/// The kind of a call-status event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    CallAnswered,
    CallCompleted,
    CallFailed,
}

impl EventType {
    pub const ALL: [EventType; 3] = [
        EventType::CallAnswered,
        EventType::CallCompleted,
        EventType::CallFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallAnswered => "call_answered",
            EventType::CallCompleted => "call_completed",
            EventType::CallFailed => "call_failed",
        }
    }
}

impl FromStr for EventType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or(())
    }
}

/// What happened on the call, with what the agent said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Answered,
    Completed(Outcome),
    Failed(Option<Failure>),
}

/// One parsed call-status event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub reminder_id: ReminderId,
    /// The attempt it belongs to; `None` means the reminder's current one.
    pub attempt: Option<u32>,
    pub occurred_at: DateTime<Utc>,
    pub kind: EventKind,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self.kind {
            EventKind::Answered => EventType::CallAnswered,
            EventKind::Completed(_) => EventType::CallCompleted,
            EventKind::Failed(_) => EventType::CallFailed,
        }
    }
}

// ---------------------------------------------------------------------------
// Changes: what a decision writes

/// New values for the reminder row (all of them; `outcome: None` keeps the stored one).
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderUpdate {
    pub status: Status,
    pub attempt_count: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub skip_reason: Option<String>,
    pub outcome: Option<Outcome>,
    /// A promise this update opens (SPEC §8); `None` keeps the stored one.
    pub promise: Option<Promise>,
}

impl ReminderUpdate {
    /// `r` as the store leaves it after writing this update at `at`: what
    /// both stores' guarded `UPDATE` sets (times kept to the millisecond, the
    /// outcome kept when the update brings none, `deferred_by` cleared).
    pub fn applied_to(&self, r: &Reminder, at: DateTime<Utc>) -> Reminder {
        use crate::clock::to_millis;
        Reminder {
            status: self.status,
            attempt_count: self.attempt_count,
            next_attempt_at: self.next_attempt_at.map(to_millis),
            last_attempt_at: self.last_attempt_at.map(to_millis),
            skip_reason: self.skip_reason.clone(),
            outcome: self.outcome.clone().or_else(|| r.outcome.clone()),
            promise: self.promise.clone().or_else(|| r.promise.clone()),
            updated_at: to_millis(at),
            deferred_by: None,
            ..r.clone()
        }
    }
}

impl AttemptWrite {
    /// The attempt `a` as the store leaves it after writing this update:
    /// what both stores' `UPDATE` sets (a field already known keeps its first
    /// value; times kept to the millisecond). `None` for a start, or for
    /// another attempt than `a`.
    pub fn applied_to(&self, a: &Attempt) -> Option<Attempt> {
        use crate::clock::to_millis;
        let AttemptWrite::Update {
            attempt,
            status,
            answered_at,
            ended_at,
            replace_end,
            outcome,
            failure,
            ..
        } = self
        else {
            return None;
        };
        if *attempt != a.attempt {
            return None;
        }
        let ended_at = ended_at.map(to_millis);
        Some(Attempt {
            status: *status,
            answered_at: a.answered_at.or(answered_at.map(to_millis)),
            ended_at: if *replace_end {
                ended_at
            } else {
                a.ended_at.or(ended_at)
            },
            outcome: a.outcome.clone().or_else(|| outcome.clone()),
            failure: a.failure.clone().or_else(|| failure.clone()),
            ..a.clone()
        })
    }
}

/// What to write on an attempt's own record.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptWrite {
    /// A new attempt row (the scheduler's claim).
    Start { attempt: u32, room_name: String },
    /// Move the attempt from `expect_status` to `status` and fill what was not
    /// yet known (a field already set keeps its first value).
    Update {
        attempt: u32,
        expect_status: AttemptStatus,
        status: AttemptStatus,
        answered_at: Option<DateTime<Utc>>,
        ended_at: Option<DateTime<Utc>>,
        /// `ended_at` replaces the one stored: the agent's report of how a
        /// call ended corrects the end the service guessed (a timeout), so
        /// the quiet period after a conversation (SPEC §7) runs from it.
        replace_end: bool,
        outcome: Option<Outcome>,
        failure: Option<Failure>,
    },
}

/// What to write when a decision is taken about a reminder. The store writes
/// it in one transaction, and only if the reminder is still at `expect_status`
/// / `expect_attempt` (and the attempt at its `expect_status`): a
/// compare-and-set, so two racing decisions can never both win.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub reminder_id: ReminderId,
    pub expect_status: Status,
    pub expect_attempt: u32,
    pub at: DateTime<Utc>,
    pub reminder: Option<ReminderUpdate>,
    pub attempt: Option<AttemptWrite>,
    /// A number to add to the suppression list in the same transaction (an
    /// opt-out), if the change is written at all.
    pub suppress: Option<SuppressNumber>,
    /// The operator's action this change carries out, recorded in the
    /// reminder's history in the same transaction (only if it is written).
    pub action: Option<ActionRecord>,
}

impl Change {
    fn guard(r: &Reminder, at: DateTime<Utc>) -> Self {
        Self {
            reminder_id: r.id,
            expect_status: r.status,
            expect_attempt: r.attempt_count,
            at,
            reminder: None,
            attempt: None,
            suppress: None,
            action: None,
        }
    }
}

/// Why a decision was refused: the transition is not in SPEC §1's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub message: String,
}

pub const SKIP_CANCELLED_BY_OPERATOR: &str = "cancelled_by_operator";
pub const SKIP_OPTED_OUT: &str = "opted_out";
/// A pending reminder waiting for the callback the customer asked for.
pub const SKIP_CALLBACK_REQUESTED: &str = "callback_requested";
pub const SKIP_MAX_ATTEMPTS: &str = "max_attempts_reached";
pub const SKIP_CALL_TIMEOUT: &str = "call_timeout";
pub const SKIP_ROOM_CLOSED: &str = "room_closed_without_report";
/// The prefix of `dispatch_failed: {step}: {message}`.
pub const SKIP_DISPATCH_FAILED: &str = "dispatch_failed";

/// Was the current attempt failed by the service's guess rather than by the
/// agent's word? A timeout, a room closed without a report, or a dial that
/// reported an error (a dispatch can land even when its request failed). A
/// completion the agent reports for that attempt then still counts.
pub fn failed_by_guess(skip_reason: Option<&str>) -> bool {
    match skip_reason {
        Some(SKIP_CALL_TIMEOUT | SKIP_ROOM_CLOSED) => true,
        Some(s) => s
            .strip_prefix(SKIP_DISPATCH_FAILED)
            .is_some_and(|rest| rest.starts_with(':')),
        None => false,
    }
}

/// An operator cancels: allowed from `pending` and `failed` (SPEC §1); a live
/// call cannot be cancelled under it, and a finished reminder stays finished.
/// Cancelling an already cancelled reminder is not a change (`Ok(None)`).
pub fn cancel(reminder: &Reminder, now: DateTime<Utc>) -> Result<Option<Change>, Refusal> {
    match reminder.status {
        Status::Pending | Status::Failed => Ok(Some(Change {
            reminder: Some(ReminderUpdate {
                status: Status::Cancelled,
                attempt_count: reminder.attempt_count,
                next_attempt_at: None,
                last_attempt_at: reminder.last_attempt_at,
                skip_reason: Some(SKIP_CANCELLED_BY_OPERATOR.to_owned()),
                outcome: None,
                promise: None,
            }),
            ..Change::guard(reminder, now)
        })),
        Status::Cancelled => Ok(None),
        s @ (Status::InProgress | Status::Processing) => Err(Refusal {
            status: s,
            message: format!("a call is live ({s}); it can be cancelled once the attempt ends"),
        }),
        s @ Status::Completed => Err(Refusal {
            status: s,
            message: "the reminder is completed; there is nothing left to cancel".to_owned(),
        }),
    }
}

/// The scheduler claims a due reminder for its next attempt: `pending` or a
/// retryable `failed` with attempts remaining becomes `in_progress`, with a new
/// attempt row. (Whether it is *due* — time, window, caps — is the policy's call.)
pub fn claim(reminder: &Reminder, now: DateTime<Utc>) -> Result<Change, Refusal> {
    let claimable = match reminder.status {
        Status::Pending => true,
        Status::Failed => reminder.next_attempt_at.is_some(),
        _ => false,
    };
    if !claimable || !reminder.attempts_remain() || reminder.is_settled() {
        return Err(Refusal {
            status: reminder.status,
            message: format!(
                "a {} reminder with {} of {} attempts made cannot be claimed",
                reminder.status, reminder.attempt_count, reminder.max_attempts
            ),
        });
    }
    let attempt = reminder.attempt_count + 1;
    Ok(Change {
        reminder: Some(ReminderUpdate {
            status: Status::InProgress,
            attempt_count: attempt,
            next_attempt_at: None,
            last_attempt_at: Some(now),
            skip_reason: None,
            outcome: None,
            promise: None,
        }),
        attempt: Some(AttemptWrite::Start {
            attempt,
            room_name: room_name(reminder.id, attempt),
        }),
        ..Change::guard(reminder, now)
    })
}

/// What the state machine needs besides the reminder and the event.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub retry: &'a crate::policy::RetryPolicy,
    /// A draw from 0.0 to 1.0 for the retry jitter (random in service, fixed in tests).
    pub jitter: f64,
    /// `PROMISE_GRACE_DAYS`: the days after a promised date before the
    /// promise a completion opens is broken.
    pub promise_grace_days: u32,
}

/// How an event was taken (SPEC §2's status codes follow from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It changed the reminder: 200, `applied: true`.
    Applied,
    /// News the current attempt has already moved past (answered after
    /// completed, a second report): recorded, 200, `applied: false`.
    Ignored,
    /// For an attempt other than the current one: recorded on that attempt, 409.
    StaleAttempt,
    /// The reminder has no attempt to apply it to (never dispatched, or
    /// cancelled by an operator): 409.
    NoAttempt,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Applied,
        Verdict::Ignored,
        Verdict::StaleAttempt,
        Verdict::NoAttempt,
    ];

    /// As stored with the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Applied => "applied",
            Verdict::Ignored => "ignored",
            Verdict::StaleAttempt => "stale_attempt",
            Verdict::NoAttempt => "no_attempt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The decision on one event: how it was taken, and what to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub change: Change,
}

/// Where a retry goes when a call ended without reaching an outcome: `pending`
/// or retryable `failed` with the next attempt scheduled, or — when no attempt
/// remains or the failure is permanent — terminal with `next_attempt_at = null`.
fn after_unsuccessful(
    r: &Reminder,
    status: Status,
    skip_reason: String,
    retry: bool,
    ctx: &Ctx,
) -> ReminderUpdate {
    let next = (retry && r.attempts_remain()).then(|| {
        ctx.retry
            .retry_at(r.attempt_count, ctx.now, &r.calling_zones, ctx.jitter)
    });
    unless_settled(
        r,
        ReminderUpdate {
            status,
            attempt_count: r.attempt_count,
            next_attempt_at: next,
            last_attempt_at: r.last_attempt_at,
            skip_reason: Some(skip_reason),
            outcome: None,
            promise: None,
        },
    )
}

/// A debt its payments settled (SPEC §8) gets no further attempt: an end
/// that would call again cancels the reminder as `paid` instead.
fn unless_settled(r: &Reminder, mut update: ReminderUpdate) -> ReminderUpdate {
    if r.is_settled() && update.next_attempt_at.is_some() {
        update.status = Status::Cancelled;
        update.next_attempt_at = None;
        update.skip_reason = Some(SKIP_PAID.to_owned());
    }
    update
}

/// The reminder after its current attempt ended with `outcome`.
fn after_outcome(r: &Reminder, outcome: &Outcome, ctx: &Ctx) -> ReminderUpdate {
    let update = if outcome.result == OutcomeResult::OptedOut {
        ReminderUpdate {
            status: Status::Cancelled,
            attempt_count: r.attempt_count,
            next_attempt_at: None,
            last_attempt_at: r.last_attempt_at,
            skip_reason: Some(SKIP_OPTED_OUT.to_owned()),
            outcome: None,
            promise: None,
        }
    } else if outcome.result == OutcomeResult::CallbackRequested && r.attempts_remain() {
        // Called back when the customer asked (moved into the calling window;
        // the claim holds it to every rule of SPEC §7 but the quiet period),
        // or after the retry delay when they named no time.
        let next = match outcome.callback_at {
            Some(at) => ctx.retry.open_from(at.max(ctx.now), &r.calling_zones),
            None => ctx
                .retry
                .retry_at(r.attempt_count, ctx.now, &r.calling_zones, ctx.jitter),
        };
        ReminderUpdate {
            status: Status::Pending,
            attempt_count: r.attempt_count,
            next_attempt_at: Some(next),
            last_attempt_at: r.last_attempt_at,
            skip_reason: Some(SKIP_CALLBACK_REQUESTED.to_owned()),
            outcome: None,
            promise: None,
        }
    } else if outcome.result.is_unreached() {
        if r.attempts_remain() {
            after_unsuccessful(
                r,
                Status::Pending,
                outcome.result.as_str().to_owned(),
                true,
                ctx,
            )
        } else {
            after_unsuccessful(r, Status::Failed, SKIP_MAX_ATTEMPTS.to_owned(), false, ctx)
        }
    } else {
        ReminderUpdate {
            status: Status::Completed,
            attempt_count: r.attempt_count,
            next_attempt_at: None,
            last_attempt_at: r.last_attempt_at,
            skip_reason: None,
            outcome: None,
            promise: None,
        }
    };
    let mut update = unless_settled(r, update);
    if update.status == Status::Completed {
        update.promise = opened_by(r, outcome, ctx.now, ctx.promise_grace_days);
    }
    update.outcome = Some(outcome.clone());
    update
}

/// The reminder after its current attempt failed as the agent reported.
fn after_failure(r: &Reminder, failure: Option<&Failure>, ctx: &Ctx) -> ReminderUpdate {
    let reason = failure
        .and_then(|f| f.reason.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    let retryable = failure.and_then(|f| f.retryable).unwrap_or(true);
    after_unsuccessful(
        r,
        Status::Failed,
        format!("call_failed: {reason}"),
        retryable,
        ctx,
    )
}

/// The record an event leaves on its attempt. `guessed`: the attempt was failed
/// by the service (timeout, room closed) rather than by the agent's word, so
/// the agent's completion may still correct it. The attempt's times are the
/// service's own (`received`, when the event reached it): they measure the
/// call limit, and an agent's clock hours or years off must not stretch it.
/// What the agent reported (`occurred_at`) stays on the stored event.
fn record_on_attempt(
    att: &Attempt,
    ev: &Event,
    guessed: bool,
    received: DateTime<Utc>,
) -> AttemptWrite {
    use AttemptStatus as A;
    let live = matches!(att.status, A::InProgress | A::Processing);
    let mut replace_end = false;
    let (status, answered_at, ended_at, outcome, failure) = match &ev.kind {
        EventKind::Answered => {
            let status = if att.status == A::InProgress {
                A::Processing
            } else {
                att.status
            };
            (status, Some(received), None, None, None)
        }
        EventKind::Completed(o) => {
            // The first word of how the call ended, for an attempt the
            // service failed by a guess (current or already superseded).
            replace_end = att.status == A::Failed
                && att.outcome.is_none()
                && failed_by_guess(att.failure.as_ref().and_then(|f| f.reason.as_deref()));
            let status = if live || (guessed && att.status == A::Failed) {
                A::Completed
            } else {
                att.status
            };
            (status, None, Some(received), Some(o.clone()), None)
        }
        EventKind::Failed(f) => {
            let status = if live { A::Failed } else { att.status };
            let failure = f.clone().unwrap_or(Failure {
                reason: None,
                sip_status: None,
                retryable: None,
            });
            (status, None, Some(received), None, Some(failure))
        }
    };
    AttemptWrite::Update {
        attempt: att.attempt,
        expect_status: att.status,
        status,
        answered_at,
        ended_at,
        replace_end,
        outcome,
        failure,
    }
}

/// The state machine of SPEC §1 for agent events: what `ev` does to `r`.
/// `attempt` is the stored record of the attempt the event names (the current
/// one when it names none), if there is one.
pub fn transition(r: &Reminder, attempt: Option<&Attempt>, ev: &Event, ctx: &Ctx) -> Decision {
    let target = ev.attempt.unwrap_or(r.attempt_count);
    let mut change = Change::guard(r, ctx.now);
    let guessed = r.status == Status::Failed && failed_by_guess(r.skip_reason.as_deref());
    change.attempt = attempt
        .filter(|a| a.attempt == target)
        .map(|a| record_on_attempt(a, ev, guessed && target == r.attempt_count, ctx.now));

    let verdict = if r.attempt_count == 0 {
        Verdict::NoAttempt
    } else if target != r.attempt_count {
        Verdict::StaleAttempt
    } else {
        match (r.status, &ev.kind) {
            (Status::InProgress, EventKind::Answered) => {
                change.reminder = Some(ReminderUpdate {
                    status: Status::Processing,
                    attempt_count: r.attempt_count,
                    next_attempt_at: None,
                    last_attempt_at: r.last_attempt_at,
                    skip_reason: None,
                    outcome: None,
                    promise: None,
                });
                Verdict::Applied
            }
            (Status::InProgress | Status::Processing, EventKind::Completed(o)) => {
                change.reminder = Some(after_outcome(r, o, ctx));
                Verdict::Applied
            }
            (Status::InProgress | Status::Processing, EventKind::Failed(f)) => {
                change.reminder = Some(after_failure(r, f.as_ref(), ctx));
                Verdict::Applied
            }
            // A late completion of a timed-out attempt: evidence beats a guess.
            (Status::Failed, EventKind::Completed(o)) if guessed => {
                change.reminder = Some(after_outcome(r, o, ctx));
                Verdict::Applied
            }
            (Status::Cancelled, _)
                if r.skip_reason.as_deref() == Some(SKIP_CANCELLED_BY_OPERATOR) =>
            {
                Verdict::NoAttempt
            }
            // Answered twice, answered after completed, a second report of an ended attempt.
            _ => Verdict::Ignored,
        }
    };
    // An opt-out is never lost: whatever the verdict (late, stale, already
    // ended), the number goes on the list with the event.
    if let EventKind::Completed(o) = &ev.kind {
        if o.result == OutcomeResult::OptedOut {
            change.suppress = Some(SuppressNumber::opted_out(r));
        }
    }
    Decision { verdict, change }
}

/// The service gives up waiting on the current attempt (`call_timeout`), or
/// learns its room closed without a report (`room_closed_without_report`).
/// Only a live attempt can be failed so; `None` otherwise.
pub fn fail_live_attempt(
    r: &Reminder,
    attempt: Option<&Attempt>,
    reason: &str,
    ctx: &Ctx,
) -> Option<Change> {
    if !r.status.is_live() {
        return None;
    }
    let mut change = Change::guard(r, ctx.now);
    change.reminder = Some(after_unsuccessful(
        r,
        Status::Failed,
        reason.to_owned(),
        true,
        ctx,
    ));
    change.attempt =
        attempt
            .filter(|a| a.attempt == r.attempt_count)
            .map(|a| AttemptWrite::Update {
                attempt: a.attempt,
                expect_status: a.status,
                status: AttemptStatus::Failed,
                answered_at: None,
                ended_at: Some(ctx.now),
                replace_end: false,
                outcome: None,
                failure: Some(Failure {
                    reason: Some(reason.to_owned()),
                    sip_status: None,
                    retryable: Some(true),
                }),
            });
    Some(change)
}
