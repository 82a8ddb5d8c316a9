//! The money side of a reminder's page (SPEC §8): what was paid, the promise
//! its call made and what became of it, and the follow-up a broken one made.

use crate::domain::{Payment, Promise, PromiseStatus, Reminder};

use super::dashboard::{time, NONE};

/// One payment, as the reminder's page lists it.
pub(super) struct PaymentView {
    pub amount: String,
    pub paid_at: String,
    pub recorded_at: String,
    pub reference: String,
}

impl PaymentView {
    pub fn of(p: &Payment, r: &Reminder) -> Self {
        Self {
            amount: r.currency.format_minor(p.amount_minor),
            paid_at: time(Some(p.paid_at)),
            recorded_at: time(Some(p.recorded_at)),
            reference: p.reference.clone().unwrap_or_else(|| NONE.to_owned()),
        }
    }
}

/// The promise, as the page shows it.
pub(super) struct PromiseView {
    pub amount: String,
    pub date: String,
    pub status: &'static str,
    /// When it is (or was) broken if unpaid: the end of its date plus the grace.
    pub deadline: String,
    pub decided_at: String,
    /// The follow-up a broken promise made (its id, linked), or empty.
    pub follow_up_id: String,
}

impl PromiseView {
    pub fn of(p: &Promise, r: &Reminder) -> Self {
        Self {
            amount: r.currency.format_minor(p.amount_minor),
            date: p.date.to_string(),
            status: p.status.as_str(),
            deadline: time(Some(p.deadline)),
            decided_at: match p.status {
                PromiseStatus::Open => NONE.to_owned(),
                _ => time(p.decided_at),
            },
            follow_up_id: p.follow_up_id.map(|f| f.to_string()).unwrap_or_default(),
        }
    }
}

/// A reminder's payments, promise and follow-up link, for its page.
pub(super) struct Ledger {
    pub amount_paid: String,
    pub amount_owed: String,
    pub payments: Vec<PaymentView>,
    pub promise: Option<PromiseView>,
    /// The reminder whose broken promise made this one, or empty.
    pub follow_up_of: String,
}

impl Ledger {
    pub fn of(r: &Reminder, payments: &[Payment]) -> Self {
        Self {
            amount_paid: r.currency.format_minor(r.amount_paid_minor),
            amount_owed: r.currency.format_minor(r.amount_owed_minor()),
            payments: payments.iter().map(|p| PaymentView::of(p, r)).collect(),
            promise: r.promise.as_ref().map(|p| PromiseView::of(p, r)),
            follow_up_of: r.follow_up_of.map(|f| f.to_string()).unwrap_or_default(),
        }
    }
}
