//! Property test of a promise's verdict (SPEC §8), without a database: for
//! generated promised dates, graces, zones (daylight-saving changes at and
//! around midnight, a skipped day), payment histories and moments, the
//! domain's `decide` agrees with a plain reference written here from the
//! spec's words — which reads each moment as the customer's *local date*
//! instead of comparing instants with a computed deadline.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Offset, TimeZone as _, Utc};
use duecall::domain::*;
use proptest::prelude::*;
use serde_json::json;

/// Zones whose clocks change at or across midnight, or skip a day, and some plain ones.
const ZONES: &[&str] = &[
    "America/Havana",      // spring forward at 00:00
    "America/Santiago",    // changes at 24:00
    "Asia/Beirut",         // 00:00
    "America/Sao_Paulo",   // midnight changes until 2019
    "Asia/Tehran",         // midnight changes until 2022
    "Pacific/Apia",        // 2011-12-30 never happened
    "Australia/Lord_Howe", // half-hour changes
    "Pacific/Chatham",
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "UTC",
];

fn tz(name: &str) -> chrono_tz::Tz {
    name.parse().unwrap()
}

/// The customer's date at `t`.
fn local_date(zone: &str, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz(zone)).date_naive()
}

/// Days in `year` whose offset at noon differs from the day before's (the
/// clock changed), and 2011-12-29/31 in Apia.
fn changes(zone: &str, year: i32) -> Vec<NaiveDate> {
    let z = tz(zone);
    let offset = |d: NaiveDate| {
        z.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap())
            .offset()
            .fix()
            .local_minus_utc()
    };
    let mut out = Vec::new();
    let mut d = NaiveDate::from_ymd_opt(year, 1, 2).unwrap();
    while d.year() == year {
        if offset(d) != offset(d.pred_opt().unwrap()) {
            out.push(d);
        }
        d = d.succ_opt().unwrap();
    }
    out
}

#[derive(Debug, Clone)]
struct Case {
    zone: &'static str,
    date: NaiveDate,
    grace: u32,
    due: i64,
    promised: Option<i64>,
    /// Seconds from the end of the last day a payment counts (roughly).
    opened: i64,
    /// (paid_at, recorded_at, amount): seconds from the same point.
    payments: Vec<(i64, i64, i64)>,
    now: i64,
}

fn case() -> impl Strategy<Value = Case> {
    let zone = proptest::sample::select(ZONES.to_vec());
    (
        zone,
        2010i32..2031,
        0usize..8,
        -2i64..=2,
        0u32..6,
        1i64..50_000,
        proptest::option::of(1i64..60_000),
        -10i64 * 86_400..-60,
        proptest::collection::vec(
            (
                -12i64 * 86_400..4 * 86_400,
                -12i64 * 86_400..6 * 86_400,
                1i64..30_000,
            ),
            0..5,
        ),
        prop_oneof![-4i64 * 3_600..4 * 3_600, -10i64 * 86_400..10 * 86_400],
        any::<bool>(),
    )
        .prop_map(
            |(zone, year, pick, shift, grace, due, promised, opened, payments, now, near)| {
                // Half the cases put the last counting day next to a clock change.
                let near_change = changes(zone, year);
                let last_day = if near && !near_change.is_empty() {
                    near_change[pick % near_change.len()] + Duration::days(shift)
                } else {
                    NaiveDate::from_ymd_opt(year, 1 + (pick as u32 % 12), 10 + pick as u32).unwrap()
                        + Duration::days(shift * 7)
                };
                let date = last_day - Days::new(u64::from(grace));
                Case {
                    zone,
                    date,
                    grace,
                    due,
                    promised,
                    opened,
                    payments,
                    now,
                }
            },
        )
}

/// About where the last counting day ends (not exact: offsets are read at noon).
fn anchor(c: &Case) -> DateTime<Utc> {
    let last = c.date + Days::new(u64::from(c.grace));
    let noon = tz(c.zone).from_utc_datetime(&last.and_hms_opt(12, 0, 0).unwrap());
    let off = i64::from(noon.offset().fix().local_minus_utc());
    (last + Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        - Duration::seconds(off)
}

fn reminder(c: &Case) -> Reminder {
    let body = json!({"customer_name": "Ada", "phone_number": "+12125550100",
        "amount_due_minor": c.due, "currency": "USD", "due_date": "2026-12-01",
        "timezone": c.zone});
    let defaults = CreateDefaults {
        zone_policy: ZonePolicy::Given,
        timezone: duecall::domain::TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    };
    NewReminder::parse(body.as_object().unwrap(), &defaults)
        .unwrap()
        .into_reminder(ReminderId::new(), Utc::now())
}

/// The spec's words: kept when the payments recorded since the promise cover
/// its amount by the end of `promised_date + grace` in the customer's zone
/// (or the debt is paid off); broken once that day is over; open before.
fn reference(
    c: &Case,
    r: &Reminder,
    amount: i64,
    opened_at: DateTime<Utc>,
    payments: &[Payment],
    now: DateTime<Utc>,
) -> Option<PromiseStatus> {
    let last_day = c.date + Days::new(u64::from(c.grace));
    let counted: i64 = payments
        .iter()
        .filter(|p| p.recorded_at >= opened_at && local_date(c.zone, p.paid_at) <= last_day)
        .map(|p| p.amount_minor)
        .sum();
    let paid: i64 = payments.iter().map(|p| p.amount_minor).sum();
    if counted >= amount || (paid > 0 && paid >= r.amount_due_minor) {
        Some(PromiseStatus::Kept)
    } else if local_date(c.zone, now) > last_day {
        Some(PromiseStatus::Broken)
    } else {
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn a_verdict_matches_the_reference(c in case()) {
        let at = |secs: i64| duecall::clock::to_millis(anchor(&c) + Duration::seconds(secs));
        let opened_at = at(c.opened);
        let now = at(c.now).max(opened_at);
        let mut r = reminder(&c);
        let outcome = Outcome {
            result: OutcomeResult::PaymentPromised,
            promised_amount_minor: c.promised,
            promised_date: Some(c.date),
            summary: None,
            transcript: None,
            duration_seconds: None,
            callback_at: None,
        };
        let promise = opened_by(&r, &outcome, opened_at, c.grace).expect("a promise with a date");
        prop_assert_eq!(promise.amount_minor, c.promised.unwrap_or(c.due));
        prop_assert_eq!(promise.status, PromiseStatus::Open);
        let amount = promise.amount_minor;
        r.promise = Some(promise);
        // What has been recorded by `now` is all the store knows.
        let payments: Vec<Payment> = c
            .payments
            .iter()
            .enumerate()
            .map(|(i, (paid, recorded, amount))| Payment {
                id: i as i64 + 1,
                reminder_id: r.id,
                amount_minor: *amount,
                paid_at: at(*paid),
                reference: None,
                recorded_at: at(*recorded),
            })
            .filter(|p| p.recorded_at <= now)
            .collect();
        r.amount_paid_minor = payments.iter().map(|p| p.amount_minor).sum();
        let want = reference(&c, &r, amount, opened_at, &payments, now);
        prop_assert_eq!(decide(&r, &payments, now), want);
    }

    /// The deadline is the first moment of the day after the last counting
    /// day: every moment before it reads as that day or earlier, and it and
    /// every moment after it as a later day (checked a second either side).
    #[test]
    fn the_deadline_is_where_the_customer_day_turns(c in case()) {
        let zone = duecall::domain::TimeZone::parse(c.zone).unwrap();
        let d = deadline(c.date, c.grace, zone);
        let last_day = c.date + Days::new(u64::from(c.grace));
        prop_assert!(local_date(c.zone, d) > last_day, "{} reads {}", d, local_date(c.zone, d));
        prop_assert!(local_date(c.zone, d - Duration::seconds(1)) <= last_day);
        for h in 1..=30 {
            prop_assert!(local_date(c.zone, d + Duration::hours(h)) > last_day);
        }
    }
}

/// The cases the generator is meant to reach, pinned.
#[test]
fn known_days() {
    let zone = |n: &str| duecall::domain::TimeZone::parse(n).unwrap();
    let day = |s: &str| s.parse::<NaiveDate>().unwrap();
    let utc = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    // New York, no change: the end of 2026-11-28 is 05:00Z on the 29th.
    assert_eq!(
        deadline(day("2026-11-25"), 3, zone("America/New_York")),
        utc("2026-11-29T05:00:00Z")
    );
    // Havana springs forward at midnight on 2026-03-08: that day starts at 01:00 CDT.
    assert_eq!(
        deadline(day("2026-03-07"), 0, zone("America/Havana")),
        utc("2026-03-08T05:00:00Z")
    );
    // Apia skipped 2011-12-30: the day after the 29th is the 31st.
    assert_eq!(
        deadline(day("2011-12-29"), 0, zone("Pacific/Apia")),
        utc("2011-12-30T10:00:00Z")
    );
    // Santiago falls back at 24:00 on 2026-04-04: the 5th starts at 00:00 -04 (04:00Z)
    // the second time midnight comes round, an hour after the first.
    let d = deadline(day("2026-04-04"), 0, zone("America/Santiago"));
    assert_eq!(local_date("America/Santiago", d), day("2026-04-05"));
    assert_eq!(
        local_date("America/Santiago", d - Duration::seconds(1)),
        day("2026-04-04")
    );
}
