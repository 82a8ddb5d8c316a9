//! What the dashboard's glance reads from the store: the counts of one period,
//! by local day. The database keeps them by 15-minute slot since the epoch
//! (UTC) in tables its own triggers maintain (migration `0010_glance`), so
//! the caller names each day by the slots that bound it: every zone's
//! midnight falls on a quarter hour, and the database knows nothing of zones.

use chrono::{DateTime, Utc};

/// The width of a slot. Slot `n` holds the instants in
/// `[n × GLANCE_SLOT_SECS, (n + 1) × GLANCE_SLOT_SECS)` seconds since the epoch.
pub const GLANCE_SLOT_SECS: i64 = 900;

/// The slot an instant falls in.
pub fn slot_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(GLANCE_SLOT_SECS)
}

/// Attempts dispatched on one day (the index into the bounds' days) with one
/// outcome result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptDay {
    pub day: usize,
    /// The outcome's `result` as stored; `None` while live, or for an
    /// attempt that failed without one.
    pub result: Option<String>,
    pub count: u64,
}

/// Promises opened on one day, by their status now and their currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseDay {
    pub day: usize,
    /// `open`, `kept` or `broken`.
    pub status: String,
    pub currency: String,
    pub count: u64,
    /// The sum of their `promise_amount_minor`.
    pub amount_minor: i64,
}

/// Payments recorded in the period, in one currency, against reminders
/// called at least once before the payment was made (`paid_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidAfterCall {
    pub currency: String,
    pub count: u64,
    pub amount_minor: i64,
}

/// Everything the glance counts in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlanceRows {
    pub attempts: Vec<AttemptDay>,
    pub promises: Vec<PromiseDay>,
    pub paid_after_call: Vec<PaidAfterCall>,
    /// Numbers added to the suppression list with reason `opted_out`.
    pub opt_outs: u64,
}

/// `WITH d(i, lo, hi) AS (VALUES …)`: the days as slot ranges, bound as
/// `?`/`$n` parameters in the order [`day_params`] gives them.
pub(crate) fn days_cte(days: usize, postgres: bool) -> String {
    let mut sql = String::from("WITH d(i, lo, hi) AS (VALUES ");
    for i in 0..days {
        if i > 0 {
            sql.push_str(", ");
        }
        if postgres {
            let n = 3 * i;
            sql.push_str(&format!(
                "(${}::int, ${}::bigint, ${}::bigint)",
                n + 1,
                n + 2,
                n + 3
            ));
        } else {
            sql.push_str("(?, ?, ?)");
        }
    }
    sql.push_str(") ");
    sql
}

/// `(day, first slot, first slot after)` of each day between `bounds`.
pub(crate) fn day_params(bounds: &[DateTime<Utc>]) -> Vec<(i32, i64, i64)> {
    bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i as i32, slot_of(w[0]), slot_of(w[1])))
        .collect()
}

/// The rows as the store hands them out (`''` is no result yet).
pub(crate) fn glance_rows(
    attempts: Vec<(i64, String, i64)>,
    promises: Vec<(i64, String, String, i64, i64)>,
    paid: Vec<(String, i64, i64)>,
    opt_outs: i64,
) -> GlanceRows {
    GlanceRows {
        attempts: attempts
            .into_iter()
            .map(|(day, result, count)| AttemptDay {
                day: day as usize,
                result: (!result.is_empty()).then_some(result),
                count: count as u64,
            })
            .collect(),
        promises: promises
            .into_iter()
            .map(|(day, status, currency, count, amount)| PromiseDay {
                day: day as usize,
                status,
                currency,
                count: count as u64,
                amount_minor: amount,
            })
            .collect(),
        paid_after_call: paid
            .into_iter()
            .map(|(currency, count, amount)| PaidAfterCall {
                currency,
                count: count as u64,
                amount_minor: amount,
            })
            .collect(),
        opt_outs: opt_outs as u64,
    }
}
