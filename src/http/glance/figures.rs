//! The glance's figures: the local days of the dashboard's zone (whose
//! bounds the store sums its counts between) and the store's per-day counts
//! added up as docs/DECISIONS.md defines them.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;

use crate::domain::OutcomeResult;
use crate::store::GlanceRows;

/// The periods offered, in days; the first link is the default's neighbour.
pub const PERIODS: [u32; 3] = [7, 30, 90];
pub const DEFAULT_PERIOD: u32 = 30;

/// The `period` query parameter: absent means [`DEFAULT_PERIOD`].
pub fn parse_period(raw: Option<&str>) -> Result<u32, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(DEFAULT_PERIOD),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|d| PERIODS.contains(d))
            .ok_or_else(|| format!("The period must be 7, 30 or 90 (days), not “{s}”.")),
    }
}

/// The first instant of `date` in `tz`. Where a zone skips its midnight (a
/// daylight-saving change at 00:00), the day starts at its first instant
/// that exists.
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..24 * 4 {
        if let Some(first) = tz.from_local_datetime(&t).earliest() {
            return first.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
    // No real zone skips a whole day at midnight; a day that did would start
    // where UTC's does.
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The last `days` local days in `tz`, today included: their dates and the
/// `days + 1` instants that bound them (the last is tomorrow's midnight).
pub fn period_days(days: u32, now: DateTime<Utc>, tz: Tz) -> (Vec<NaiveDate>, Vec<DateTime<Utc>>) {
    let today = now.with_timezone(&tz).date_naive();
    let first = today - Duration::days(i64::from(days) - 1);
    let dates: Vec<NaiveDate> = (0..days)
        .map(|i| first + Duration::days(i64::from(i)))
        .collect();
    let mut bounds: Vec<DateTime<Utc>> = dates.iter().map(|d| local_midnight(tz, *d)).collect();
    bounds.push(local_midnight(tz, today + Duration::days(1)));
    (dates, bounds)
}

/// How an attempt is drawn in the attempts chart (darkest to lightest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Promised,
    Conversation,
    WrongNumber,
    Unreached,
    NoOutcome,
}

impl Bucket {
    pub const ALL: [Bucket; 5] = [
        Bucket::Promised,
        Bucket::Conversation,
        Bucket::WrongNumber,
        Bucket::Unreached,
        Bucket::NoOutcome,
    ];

    pub fn of(result: Option<&str>) -> Self {
        match result.and_then(|r| r.parse::<OutcomeResult>().ok()) {
            Some(OutcomeResult::PaymentPromised) => Bucket::Promised,
            Some(r) if r.is_conversation() => Bucket::Conversation,
            Some(OutcomeResult::WrongNumber) => Bucket::WrongNumber,
            Some(_) => Bucket::Unreached,
            None => Bucket::NoOutcome,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Promised => "promised",
            Bucket::Conversation => "conversation",
            Bucket::WrongNumber => "wrong_number",
            Bucket::Unreached => "unreached",
            Bucket::NoOutcome => "no_outcome",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Bucket::Promised => "promise to pay",
            Bucket::Conversation => "other conversation",
            Bucket::WrongNumber => "wrong number",
            Bucket::Unreached => "not reached",
            Bucket::NoOutcome => "no outcome (live or failed)",
        }
    }

    fn index(self) -> usize {
        Bucket::ALL.iter().position(|b| *b == self).unwrap_or(0)
    }
}

/// One local day's attempts, by bucket (in [`Bucket::ALL`]'s order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayAttempts {
    pub date: NaiveDate,
    pub counts: [u64; 5],
}

impl DayAttempts {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The promises opened in one week (Monday first, only the period's days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekPromises {
    pub start: NaiveDate,
    pub kept: u64,
    pub broken: u64,
    pub open: u64,
}

impl WeekPromises {
    pub fn total(&self) -> u64 {
        self.kept + self.broken + self.open
    }
}

/// An amount in one currency (and how many rows made it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub currency: String,
    pub minor: i64,
    pub count: u64,
}

/// Everything the page shows for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub attempts: u64,
    pub right_party: u64,
    pub promises: u64,
    /// Promised, per currency, the largest first.
    pub promised: Vec<Amount>,
    pub kept: u64,
    pub broken: u64,
    pub open: u64,
    /// Paid after a call, per currency, the largest first.
    pub paid_after_call: Vec<Amount>,
    pub opt_outs: u64,
    pub by_day: Vec<DayAttempts>,
    pub by_week: Vec<WeekPromises>,
}

/// `part / whole`, none when nothing was there to divide.
pub fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn add_amount(list: &mut Vec<Amount>, currency: &str, minor: i64, count: u64) {
    match list.iter_mut().find(|a| a.currency == currency) {
        Some(a) => {
            a.minor += minor;
            a.count += count;
        }
        None => list.push(Amount {
            currency: currency.to_owned(),
            minor,
            count,
        }),
    }
}

fn largest_first(list: &mut [Amount]) {
    list.sort_by(|a, b| b.minor.cmp(&a.minor).then(a.currency.cmp(&b.currency)));
}

impl Figures {
    /// Adds up `rows` (read for the days of `dates`) over `dates`.
    pub fn of(rows: &GlanceRows, dates: &[NaiveDate]) -> Self {
        let day_of = |day: usize| (day < dates.len()).then_some(day);
        let mut by_day: Vec<DayAttempts> = dates
            .iter()
            .map(|d| DayAttempts {
                date: *d,
                counts: [0; 5],
            })
            .collect();
        let mut right_party = 0;
        for a in &rows.attempts {
            let Some(i) = day_of(a.day) else { continue };
            let bucket = Bucket::of(a.result.as_deref());
            by_day[i].counts[bucket.index()] += a.count;
            if matches!(bucket, Bucket::Promised | Bucket::Conversation) {
                right_party += a.count;
            }
        }
        let mut by_week: Vec<WeekPromises> = Vec::new();
        let mut last_monday = None;
        let week_of: Vec<usize> = dates
            .iter()
            .map(|d| {
                let monday = *d - Duration::days(i64::from(d.weekday().num_days_from_monday()));
                if last_monday != Some(monday) {
                    last_monday = Some(monday);
                    by_week.push(WeekPromises {
                        start: monday.max(dates[0]),
                        kept: 0,
                        broken: 0,
                        open: 0,
                    });
                }
                by_week.len() - 1
            })
            .collect();
        let mut promised = Vec::new();
        let (mut kept, mut broken, mut open) = (0, 0, 0);
        for p in &rows.promises {
            let Some(i) = day_of(p.day) else { continue };
            let week = &mut by_week[week_of[i]];
            match p.status.as_str() {
                "kept" => {
                    week.kept += p.count;
                    kept += p.count;
                }
                "broken" => {
                    week.broken += p.count;
                    broken += p.count;
                }
                _ => {
                    week.open += p.count;
                    open += p.count;
                }
            }
            add_amount(&mut promised, &p.currency, p.amount_minor, p.count);
        }
        largest_first(&mut promised);
        let mut paid_after_call = Vec::new();
        for p in &rows.paid_after_call {
            add_amount(&mut paid_after_call, &p.currency, p.amount_minor, p.count);
        }
        largest_first(&mut paid_after_call);
        Self {
            attempts: by_day.iter().map(DayAttempts::total).sum(),
            right_party,
            promises: kept + broken + open,
            promised,
            kept,
            broken,
            open,
            paid_after_call,
            opt_outs: rows.opt_outs,
            by_day,
            by_week,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttemptDay, PromiseDay};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The day of `bounds` that `at` falls in, as the store finds it.
    fn day(bounds: &[DateTime<Utc>], at: &str) -> usize {
        bounds.partition_point(|b| *b <= t(at)) - 1
    }

    #[test]
    fn periods_are_seven_thirty_or_ninety_days() {
        assert_eq!(parse_period(None), Ok(30));
        assert_eq!(parse_period(Some("")), Ok(30));
        assert_eq!(parse_period(Some("7")), Ok(7));
        assert_eq!(parse_period(Some("90")), Ok(90));
        assert!(parse_period(Some("31")).is_err());
        assert!(parse_period(Some("week")).is_err());
    }

    #[test]
    fn days_are_local_and_follow_daylight_saving() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 2026-11-02 01:30 New York: the period spans the end of DST (Nov 1).
        let (dates, bounds) = period_days(7, t("2026-11-02T06:30:00Z"), tz);
        assert_eq!(dates.first().unwrap().to_string(), "2026-10-27");
        assert_eq!(dates.last().unwrap().to_string(), "2026-11-02");
        assert_eq!(bounds[0], t("2026-10-27T04:00:00Z"));
        assert_eq!(bounds[7], t("2026-11-03T05:00:00Z"));
        // The day of the change is 25 hours long.
        assert_eq!(bounds[6] - bounds[5], Duration::hours(25));
    }

    #[test]
    fn slots_land_in_their_local_day_and_week() {
        let tz: Tz = "Asia/Kolkata".parse().unwrap();
        // Wednesday 2026-12-02 in Kolkata (+05:30).
        let (dates, bounds) = period_days(7, t("2026-12-02T10:00:00Z"), tz);
        let rows = GlanceRows {
            attempts: vec![
                // 23:45 local on Tuesday 12-01, then 00:00 local on Wednesday.
                AttemptDay {
                    day: day(&bounds, "2026-12-01T18:15:00Z"),
                    result: Some("no_answer".into()),
                    count: 2,
                },
                AttemptDay {
                    day: day(&bounds, "2026-12-01T18:30:00Z"),
                    result: Some("paid".into()),
                    count: 1,
                },
                AttemptDay {
                    day: day(&bounds, "2026-12-01T18:30:00Z"),
                    result: Some("wrong_number".into()),
                    count: 1,
                },
            ],
            promises: vec![
                PromiseDay {
                    day: day(&bounds, "2026-11-27T06:00:00Z"),
                    status: "kept".into(),
                    currency: "EUR".into(),
                    count: 1,
                    amount_minor: 500,
                },
                PromiseDay {
                    day: day(&bounds, "2026-12-01T06:00:00Z"),
                    status: "open".into(),
                    currency: "USD".into(),
                    count: 2,
                    amount_minor: 9000,
                },
            ],
            paid_after_call: vec![],
            opt_outs: 3,
        };
        let f = Figures::of(&rows, &dates);
        let tue = f
            .by_day
            .iter()
            .find(|d| d.date.to_string() == "2026-12-01")
            .unwrap();
        let wed = f
            .by_day
            .iter()
            .find(|d| d.date.to_string() == "2026-12-02")
            .unwrap();
        assert_eq!(tue.counts, [0, 0, 0, 2, 0]);
        assert_eq!(wed.counts, [0, 1, 1, 0, 0]);
        assert_eq!((f.attempts, f.right_party), (4, 1));
        // The period (Thu 11-26 .. Wed 12-02) touches two weeks.
        assert_eq!(f.by_week.len(), 2);
        assert_eq!(f.by_week[0].start.to_string(), "2026-11-26");
        assert_eq!((f.by_week[0].kept, f.by_week[1].open), (1, 2));
        assert_eq!(f.promised[0].currency, "USD");
        assert_eq!((f.kept, f.broken, f.open, f.opt_outs), (1, 0, 2, 3));
    }
}
