//! One *tick* (SPEC §4): rescue attempts whose agent went silent, then claim
//! the reminders that are due and start their calls.
//!
//! Safe to run from any number of service instances at once: a claim is one
//! guarded statement, so an attempt is started by exactly one of them.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::dialer::{CallRequest, DialError, Dialer};
use crate::domain::Rules;
use crate::domain::{
    fail_live_attempt, Ctx, Reminder, Status, SKIP_CALL_TIMEOUT, SKIP_DISPATCH_FAILED,
};
use crate::policy::RetryPolicy;
use crate::store::{Applied, Store, StoreError};

/// Due reminders read per claiming pass.
pub const BATCH: u32 = 500;
/// Passes per tick at most; what is left waits for the next tick.
pub const MAX_PASSES: u32 = 40;
/// Timed-out attempts handled per tick at most.
pub const MAX_TIMEOUTS: u32 = 2_000;
/// Calls being started at once.
pub const DIAL_CONCURRENCY: usize = 16;
/// One dial (room + dispatch) may take this long before it counts as failed.
pub const DIAL_DEADLINE: StdDuration = StdDuration::from_secs(30);
/// Closing what a failed dial left behind may take this long.
pub const ABANDON_DEADLINE: StdDuration = StdDuration::from_secs(15);

/// How one dial ended: dispatched, or failed with whether the failure was stored.
enum DialOutcome {
    Dispatched,
    Failed(DialError, Result<(), StoreError>),
}

/// The scheduler's settings, from `Config`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dispatch_timeout: Duration,
    /// One dial may take this long (`DIAL_TIMEOUT_SECS`, default [`DIAL_DEADLINE`]).
    pub dial_timeout: StdDuration,
    pub call_timeout: Duration,
    pub max_live: u32,
    /// Every rule of SPEC §7 a claim is held to.
    pub rules: Rules,
    pub retry: RetryPolicy,
    /// `PROMISE_GRACE_DAYS` (SPEC §8).
    pub promise_grace_days: u32,
    /// What every dispatch carries besides the reminder (SPEC §3).
    pub dispatch: crate::dialer::DispatchSettings,
}

/// What one tick did; the cron route answers it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TickReport {
    /// Live attempts failed with `call_timeout`.
    pub timed_out: u64,
    /// Attempts claimed and handed to the dialer successfully.
    pub dispatched: u64,
    /// Attempts claimed whose dial failed (`dispatch_failed: …`).
    pub dispatch_failed: u64,
    /// Due reminders moved to the first moment every calling rule allows.
    pub deferred: u64,
    /// Due reminders cancelled instead of dialled: their number is suppressed.
    pub suppressed: u64,
    /// Due reminders failed for good: their zones share no calling time.
    pub no_lawful_calling_time: u64,
    /// Promises whose deadline passed with their payments covering them.
    pub promises_kept: u64,
    /// Promises whose deadline passed without: each made one follow-up reminder.
    pub promises_broken: u64,
}

impl TickReport {
    fn is_quiet(&self) -> bool {
        *self == Self::default()
    }
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// `None` with `DIALER=none`: timeouts are still handled, nobody is called.
    dialer: Option<Arc<dyn Dialer>>,
    settings: Settings,
    jitter: fn() -> f64,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        dialer: Option<Arc<dyn Dialer>>,
        settings: Settings,
        jitter: fn() -> f64,
    ) -> Self {
        Self {
            store,
            clock,
            dialer,
            settings,
            jitter,
        }
    }

    /// Let the dialer finish what it has in flight (at most `within`).
    pub async fn drain(&self, within: StdDuration) {
        if let Some(d) = &self.dialer {
            d.drain(within).await;
        }
    }

    pub fn dialer_name(&self) -> &'static str {
        self.dialer.as_ref().map_or("none", |d| d.name())
    }

    /// One tick: timeouts first, then claims and dials. The tick runs on a
    /// task of its own, so it goes to its end whatever becomes of the caller:
    /// a cron client that hangs up (and with it the request future) never
    /// leaves a claimed attempt undialled or its failure unrecorded (SPEC §4).
    pub async fn tick(self: &Arc<Self>) -> Result<TickReport, StoreError> {
        let me = Arc::clone(self);
        match tokio::spawn(async move { me.tick_to_the_end().await }).await {
            Ok(report) => report,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::Unavailable(
                "the tick was cancelled by the runtime shutting down".into(),
            )),
        }
    }

    async fn tick_to_the_end(self: Arc<Self>) -> Result<TickReport, StoreError> {
        let started = std::time::Instant::now();
        let mut report = TickReport::default();
        self.time_out(&mut report).await?;
        self.decide_promises(&mut report).await?;
        if let Some(dialer) = &self.dialer {
            self.claim_and_dial(dialer, &mut report).await?;
        }
        let elapsed = started.elapsed();
        metrics::histogram!("duecall_tick_duration_seconds").record(elapsed.as_secs_f64());
        metrics::gauge!("duecall_live_attempts").set(self.store.count_live().await? as f64);
        if !report.is_quiet() {
            tracing::info!(
                timed_out = report.timed_out,
                dispatched = report.dispatched,
                dispatch_failed = report.dispatch_failed,
                deferred = report.deferred,
                promises_kept = report.promises_kept,
                promises_broken = report.promises_broken,
                ms = elapsed.as_millis() as u64,
                "tick"
            );
        }
        Ok(report)
    }

    fn ctx(&self, now: DateTime<Utc>) -> Ctx<'_> {
        Ctx {
            now,
            retry: &self.settings.retry,
            jitter: (self.jitter)(),
            promise_grace_days: self.settings.promise_grace_days,
        }
    }

    /// Decide the promises whose deadline has passed (SPEC §8), before the
    /// claim, so a follow-up due at once is claimed (and held to every rule
    /// of §7) in the same tick.
    async fn decide_promises(&self, report: &mut TickReport) -> Result<(), StoreError> {
        let now = self.clock.now();
        for _ in 0..MAX_PASSES {
            let decided = self.store.decide_promises(now, BATCH).await?;
            report.promises_kept += decided.kept.len() as u64;
            report.promises_broken += decided.broken.len() as u64;
            for (id, follow_up) in &decided.broken {
                tracing::info!(reminder_id = %id, follow_up_id = %follow_up, "promise broken: follow-up made");
            }
            metrics::counter!("duecall_promises_decided_total", "verdict" => "kept")
                .increment(decided.kept.len() as u64);
            metrics::counter!("duecall_promises_decided_total", "verdict" => "broken")
                .increment(decided.broken.len() as u64);
            if decided.kept.len() + decided.broken.len() < BATCH as usize {
                break;
            }
        }
        Ok(())
    }

    /// Fail every live attempt past its deadline with `call_timeout`.
    async fn time_out(&self, report: &mut TickReport) -> Result<(), StoreError> {
        let now = self.clock.now();
        let dispatched_by = now - self.settings.dispatch_timeout;
        let answered_by = now - self.settings.call_timeout;
        let mut handled = 0;
        while handled < MAX_TIMEOUTS {
            let page = 200.min(MAX_TIMEOUTS - handled);
            let overdue = self.store.overdue(dispatched_by, answered_by, page).await?;
            let mut progressed = false;
            for r in &overdue {
                handled += 1;
                if self.time_out_one(r, now).await? {
                    report.timed_out += 1;
                    progressed = true;
                }
            }
            if (overdue.len() as u32) < page || !progressed {
                break;
            }
        }
        Ok(())
    }

    /// Returns whether this call failed the attempt (an event or another
    /// instance may have moved it first).
    async fn time_out_one(&self, r: &Reminder, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let attempt = self.store.get_attempt(r.id, r.attempt_count).await?;
        let Some(change) =
            fail_live_attempt(r, attempt.as_ref(), SKIP_CALL_TIMEOUT, &self.ctx(now))
        else {
            return Ok(false);
        };
        match self.store.apply(&change, None).await? {
            Applied::Done(after) => {
                crate::telemetry::transition(r.status, after.status);
                let since = match r.status {
                    Status::Processing => attempt.as_ref().and_then(|a| a.answered_at),
                    _ => None,
                }
                .or(r.last_attempt_at);
                tracing::warn!(
                    reminder_id = %r.id,
                    attempt = r.attempt_count,
                    was = %r.status,
                    waited_secs = since.map_or(0, |t| (now - t).num_seconds()),
                    retry_at = %crate::domain::describe_time(after.next_attempt_at),
                    "call timed out: no report from the agent in time"
                );
                metrics::counter!("duecall_timeouts_total", "status" => r.status.as_str())
                    .increment(1);
                Ok(true)
            }
            Applied::Stale | Applied::NotFound | Applied::Duplicate => Ok(false),
        }
    }

    async fn claim_and_dial(
        self: &Arc<Self>,
        dialer: &Arc<dyn Dialer>,
        report: &mut TickReport,
    ) -> Result<(), StoreError> {
        for _ in 0..MAX_PASSES {
            let now = self.clock.now();
            if self.store.count_live().await? >= u64::from(self.settings.max_live) {
                break;
            }
            let due = self.store.due(now, BATCH).await?;
            if due.is_empty() {
                break;
            }
            let ids: Vec<_> = due.iter().map(|r| r.id).collect();
            // Every rule of SPEC §7 is decided inside the claim, on facts read
            // in its own transaction.
            let claim = self
                .store
                .claim(&ids, now, self.settings.max_live, &self.settings.rules)
                .await?;
            for c in &claim.claimed {
                if let Some(was) = due.iter().find(|r| r.id == c.id) {
                    crate::telemetry::transition(was.status, c.status);
                }
            }
            self.log_held_back(&due, &claim);
            report.deferred += claim.deferred.len() as u64;
            report.suppressed += claim.suppressed.len() as u64;
            report.no_lawful_calling_time += claim.no_lawful_time.len() as u64;
            let progressed = !claim.claimed.is_empty()
                || !claim.deferred.is_empty()
                || !claim.suppressed.is_empty()
                || !claim.no_lawful_time.is_empty();
            self.dial_all(dialer, claim.claimed, report).await;
            if (due.len() as u32) < BATCH || !progressed {
                break;
            }
        }
        Ok(())
    }

    /// One line (ids only) and one count for each reminder a rule held back.
    fn log_held_back(&self, due: &[Reminder], claim: &crate::store::ClaimReport) {
        let was = |id| due.iter().find(|r| r.id == id).map(|r| r.status);
        for (id, by) in &claim.deferred {
            metrics::counter!("duecall_deferred_total", "rule" => by.as_str()).increment(1);
            tracing::debug!(reminder_id = %id, rule = by.as_str(), "deferred by a calling rule");
        }
        for id in &claim.suppressed {
            if let Some(was) = was(*id) {
                crate::telemetry::transition(was, Status::Cancelled);
            }
            metrics::counter!("duecall_claims_refused_total", "reason" => crate::domain::SKIP_SUPPRESSED)
                .increment(1);
            tracing::info!(reminder_id = %id, "not dialled: the number is on the suppression list; cancelled");
        }
        for id in &claim.no_lawful_time {
            if let Some(was) = was(*id) {
                crate::telemetry::transition(was, Status::Failed);
            }
            metrics::counter!("duecall_claims_refused_total", "reason" => crate::domain::SKIP_NO_LAWFUL_TIME)
                .increment(1);
            tracing::warn!(reminder_id = %id, "never called: its calling zones share no calling window (no_lawful_calling_time)");
        }
    }

    /// Start the claimed attempts, `DIAL_CONCURRENCY` at a time. A failed
    /// start (or one that ran out of time) fails its attempt
    /// (`dispatch_failed: …`, retry scheduled) *before* the dialer closes
    /// what it may have left behind, so LiveKit's `room_finished` for that
    /// room finds the attempt already ended with its real reason. A storage
    /// error on one attempt is logged and counted; the others go on.
    async fn dial_all(
        self: &Arc<Self>,
        dialer: &Arc<dyn Dialer>,
        claimed: Vec<Reminder>,
        report: &mut TickReport,
    ) {
        let gate = Arc::new(Semaphore::new(DIAL_CONCURRENCY));
        let mut dials = JoinSet::new();
        for r in claimed {
            let call = CallRequest::for_claimed(&r, &self.settings.dispatch);
            let dialer = Arc::clone(dialer);
            let gate = Arc::clone(&gate);
            let me = Arc::clone(self);
            dials.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let deadline = me.settings.dial_timeout;
                let result = match tokio::time::timeout(deadline, dialer.dial(&call)).await {
                    Ok(result) => result,
                    // The dial is dropped where it stood: recorded below, then
                    // its room closed by `abandon` like any failed dial's.
                    Err(_) => Err(DialError::new(
                        "dispatch",
                        format!("no answer in {} s", deadline.as_secs()),
                    )),
                };
                let outcome = match result {
                    Ok(()) => DialOutcome::Dispatched,
                    Err(e) => {
                        let recorded = me.fail_dispatch(r, &call, &e).await;
                        match tokio::time::timeout(ABANDON_DEADLINE, dialer.abandon(&call)).await {
                            Ok(()) => {}
                            Err(_) => tracing::warn!(
                                reminder_id = %call.reminder_id,
                                attempt = call.attempt,
                                "closing the room of a failed dial took too long; left to LiveKit's own timeouts"
                            ),
                        }
                        DialOutcome::Failed(e, recorded)
                    }
                };
                (call, outcome)
            });
        }
        while let Some(joined) = dials.join_next().await {
            let Ok((call, outcome)) = joined else {
                // A dial task panicked: its attempt stays in_progress and the
                // dispatch timeout rescues it.
                tracing::error!(
                    "a dial task panicked; the timeout monitor will rescue its attempt"
                );
                continue;
            };
            match outcome {
                DialOutcome::Dispatched => {
                    report.dispatched += 1;
                    metrics::counter!("duecall_dispatched_total").increment(1);
                    tracing::info!(
                        reminder_id = %call.reminder_id,
                        attempt = call.attempt,
                        room = %call.room_name,
                        dialer = dialer.name(),
                        "call dispatched"
                    );
                }
                DialOutcome::Failed(e, recorded) => {
                    report.dispatch_failed += 1;
                    metrics::counter!("duecall_dispatch_failures_total", "step" => e.step)
                        .increment(1);
                    if let Err(store) = recorded {
                        metrics::counter!("duecall_dispatch_failures_unrecorded_total")
                            .increment(1);
                        tracing::error!(
                            reminder_id = %call.reminder_id,
                            attempt = call.attempt,
                            error = %e,
                            store_error = %store,
                            "dispatch failed and the failure could not be stored; the dispatch timeout will fail the attempt"
                        );
                    }
                }
            }
        }
    }

    async fn fail_dispatch(
        &self,
        mut r: Reminder,
        call: &CallRequest,
        e: &DialError,
    ) -> Result<(), StoreError> {
        let reason = format!("{SKIP_DISPATCH_FAILED}: {e}");
        for _ in 0..4 {
            // Only the attempt we started, and only while nobody has heard from
            // it: an agent that reported despite the error wins.
            if r.attempt_count != call.attempt || r.status != Status::InProgress {
                tracing::info!(
                    reminder_id = %r.id,
                    attempt = call.attempt,
                    error = %e,
                    "dial reported an error, but the attempt has moved on; leaving it"
                );
                return Ok(());
            }
            let now = self.clock.now();
            let attempt = self.store.get_attempt(r.id, call.attempt).await?;
            let Some(change) = fail_live_attempt(&r, attempt.as_ref(), &reason, &self.ctx(now))
            else {
                return Ok(());
            };
            match self.store.apply(&change, None).await? {
                Applied::Done(after) => {
                    crate::telemetry::transition(r.status, after.status);
                    tracing::warn!(
                        reminder_id = %r.id,
                        attempt = call.attempt,
                        error = %e,
                        retry_at = %crate::domain::describe_time(after.next_attempt_at),
                        "dispatch failed"
                    );
                    return Ok(());
                }
                Applied::NotFound | Applied::Duplicate => return Ok(()),
                Applied::Stale => match self.store.get_reminder(r.id).await? {
                    Some(now) => r = now,
                    None => return Ok(()),
                },
            }
        }
        Ok(())
    }

    /// Tick every `every` until `stop` says so; a tick in progress finishes
    /// first (so no claimed attempt is left undialled by a clean shutdown).
    pub async fn run(
        self: Arc<Self>,
        every: StdDuration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "tick failed; the next one tries again");
            }
        }
    }
}
