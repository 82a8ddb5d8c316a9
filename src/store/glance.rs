//! What the dashboard's glance reads from the store: counts of one period,
//! grouped by 15-minute slot, so the caller can place each slot in a local
//! day of any zone (every zone's midnight falls on a quarter hour) without
//! the database knowing zones.

/// The width of a slot. A slot `n` holds the instants in
/// `[n × GLANCE_SLOT_SECS, (n + 1) × GLANCE_SLOT_SECS)` seconds since the epoch.
pub const GLANCE_SLOT_SECS: i64 = 900;

/// Attempts dispatched in one slot with one outcome result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSlot {
    pub slot: i64,
    /// The outcome's `result` as stored; `None` while live, or for an
    /// attempt that failed without one.
    pub result: Option<String>,
    pub count: u64,
}

/// Promises opened in one slot, by their status now and their currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseSlot {
    pub slot: i64,
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
    pub attempts: Vec<AttemptSlot>,
    pub promises: Vec<PromiseSlot>,
    pub paid_after_call: Vec<PaidAfterCall>,
    /// Numbers added to the suppression list with reason `opted_out`.
    pub opt_outs: u64,
}

/// The slot an instant (milliseconds since the epoch) falls in.
pub fn slot_of_ms(ms: i64) -> i64 {
    ms.div_euclid(GLANCE_SLOT_SECS * 1000)
}
