//! Promises to pay (SPEC §8): opened by a `payment_promised` completion,
//! decided once — kept when the payments recorded since cover it by the end
//! of `promised_date + PROMISE_GRACE_DAYS` in the customer's zone, broken
//! otherwise — and the one follow-up reminder a broken promise makes.
//!
//! Pure: the stores read the promise and its payments, call [`decide`], and
//! write the verdict, its notification and the follow-up in one transaction.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Serialize, Serializer};

use super::*;

/// The grace after a promised date before a promise is broken, by default.
pub const DEFAULT_PROMISE_GRACE_DAYS: u32 = 3;
/// The longest grace `PROMISE_GRACE_DAYS` accepts.
pub const MAX_PROMISE_GRACE_DAYS: u32 = 60;

/// Where a promise stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromiseStatus {
    /// Its deadline has not passed and its payments do not cover it yet.
    Open,
    /// The payments recorded since it was made cover it.
    Kept,
    /// Its deadline passed without them: a follow-up reminder was made.
    Broken,
}

impl PromiseStatus {
    pub const ALL: [PromiseStatus; 3] = [Self::Open, Self::Kept, Self::Broken];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Kept => "kept",
            Self::Broken => "broken",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A promise to pay `amount_minor` by `date` (the customer's date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Promise {
    pub amount_minor: i64,
    #[serde(serialize_with = "ser_date")]
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub status: PromiseStatus,
    /// The reminder a broken promise made; `null` otherwise.
    #[serde(serialize_with = "ser_opt_id")]
    #[schema(value_type = Option<String>, format = "uuid", required = true)]
    pub follow_up_id: Option<ReminderId>,
    /// When it was made: payments recorded from then on count towards it.
    #[serde(skip)]
    pub opened_at: DateTime<Utc>,
    /// The end of `date + PROMISE_GRACE_DAYS` in the customer's zone (the
    /// grace in force when it was made): a promise not kept by then is broken.
    #[serde(skip)]
    pub deadline: DateTime<Utc>,
    /// When it was kept or broken.
    #[serde(skip)]
    pub decided_at: Option<DateTime<Utc>>,
}

fn ser_date<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.format("%Y-%m-%d"))
}

fn ser_opt_id<S: Serializer>(v: &Option<ReminderId>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

/// The first instant of the customer's day after `date + grace_days` in
/// `zone`: local midnight, or where midnight falls in a spring-forward gap,
/// the end of the gap; in a fall-back overlap, the earlier of the two.
pub fn deadline(date: NaiveDate, grace_days: u32, zone: TimeZone) -> DateTime<Utc> {
    let day_after = date
        .checked_add_days(Days::new(u64::from(grace_days) + 1))
        .unwrap_or(NaiveDate::MAX);
    crate::policy::first_instant_of(zone, day_after)
}

/// The promise a completion opens on `r` (as it was before the event): a
/// `payment_promised` outcome with a `promised_date`, for a reminder that
/// has no promise yet. Its amount is `promised_amount_minor`, or what is still
/// owed when the agent named none; a promise of nothing is not tracked.
pub fn opened_by(
    r: &Reminder,
    outcome: &Outcome,
    now: DateTime<Utc>,
    grace_days: u32,
) -> Option<Promise> {
    if outcome.result != OutcomeResult::PaymentPromised || r.promise.is_some() {
        return None;
    }
    let date = outcome.promised_date?;
    let amount_minor = outcome
        .promised_amount_minor
        .unwrap_or_else(|| r.amount_owed_minor());
    (amount_minor > 0).then(|| Promise {
        amount_minor,
        date,
        status: PromiseStatus::Open,
        follow_up_id: None,
        opened_at: crate::clock::to_millis(now),
        deadline: crate::clock::to_millis(deadline(date, grace_days, r.primary_zone())),
        decided_at: None,
    })
}

/// What counts towards `p`: payments recorded since it was made, paid before its deadline.
pub fn counts_towards(p: &Promise, payment: &Payment) -> bool {
    payment.recorded_at >= p.opened_at && payment.paid_at < p.deadline
}

/// The verdict on an open promise of `r` at `now`, given every payment of
/// `r`: `Kept` once those that count cover its amount (or the debt is
/// settled), `Broken` once its deadline has passed without that, `None`
/// while it is still open (or is not open).
pub fn decide(r: &Reminder, payments: &[Payment], now: DateTime<Utc>) -> Option<PromiseStatus> {
    let p = r
        .promise
        .as_ref()
        .filter(|p| p.status == PromiseStatus::Open)?;
    let counted: i64 = payments
        .iter()
        .filter(|pay| pay.reminder_id == r.id && counts_towards(p, pay))
        .map(|pay| pay.amount_minor)
        .fold(0, i64::saturating_add);
    if counted >= p.amount_minor || r.is_settled() {
        Some(PromiseStatus::Kept)
    } else if now >= p.deadline {
        Some(PromiseStatus::Broken)
    } else {
        None
    }
}

/// `r` with its promise decided as `verdict` at `now` (and, when broken, the
/// follow-up it made).
pub fn with_verdict(
    r: &Reminder,
    verdict: PromiseStatus,
    follow_up: Option<ReminderId>,
    now: DateTime<Utc>,
) -> Reminder {
    let now = crate::clock::to_millis(now);
    let mut after = r.clone();
    if let Some(p) = after.promise.as_mut() {
        p.status = verdict;
        p.follow_up_id = follow_up;
        p.decided_at = Some(now);
    }
    after.updated_at = now;
    after
}

/// The `external_id` of the follow-up to `r`: `<external_id or id>/promise-<n>`,
/// where `n` counts the broken promises along the chain (a follow-up's own
/// broken promise makes `…/promise-2`, not `…/promise-1/promise-1`).
pub fn follow_up_external_id(r: &Reminder) -> String {
    let own = r.external_id.clone().unwrap_or_else(|| r.id.to_string());
    if r.follow_up_of.is_some() {
        if let Some((base, n)) = own.rsplit_once("/promise-") {
            if let Ok(n) = n.parse::<u32>() {
                return format!("{base}/promise-{}", n.saturating_add(1));
            }
        }
    }
    format!("{own}/promise-1")
}

/// The follow-up a broken promise of `r` makes (SPEC §8): the same customer,
/// number, zones, region, language and debt; what is still owed; due at once
/// — and held, like any reminder, to every rule of §7 at its claim (the quiet
/// period after the conversation that made the promise included).
/// `suppressed`: the number is on the list now, so it is stored cancelled.
pub fn follow_up(r: &Reminder, id: ReminderId, now: DateTime<Utc>, suppressed: bool) -> Reminder {
    let new = NewReminder {
        external_id: Some(follow_up_external_id(r)),
        customer_name: r.customer_name.clone(),
        phone_number: r.phone_number.clone(),
        timezone: r.timezone,
        calling_zones: r.calling_zones.clone(),
        debt_ref: Some(r.debt_ref.clone()),
        region: r.region.clone(),
        language: r.language.clone(),
        amount_due_minor: r.amount_owed_minor(),
        currency: r.currency,
        due_date: r.due_date,
        scheduled_for: None,
        max_attempts: r.max_attempts,
        metadata: r.metadata.clone(),
        suppressed,
    };
    let mut follow_up = new.into_reminder(id, crate::clock::to_millis(now));
    follow_up.follow_up_of = Some(r.id);
    follow_up
}
