//! When to call: the calling window in the customer's own time zone, and the
//! retry delay (doubling per attempt, with jitter) moved forward into the window.
//!
//! Pure: callers hand in `now` and the jitter draw.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset as _,
    TimeZone as _, Utc, Weekday,
};

use crate::domain::TimeZone;

/// The customer's local hours and days in which calls may be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingWindow {
    pub start: NaiveTime,
    /// The end, exclusive (ignored when `to_midnight`).
    pub end: NaiveTime,
    /// The window runs to the end of the day (`CALLING_WINDOW` ending `24:00`).
    pub to_midnight: bool,
    /// 0 = Monday … 6 = Sunday.
    pub days: BTreeSet<u8>,
    /// Local dates never called (`CALLING_BLACKOUT_DATES`).
    pub blackout: BTreeSet<NaiveDate>,
}

impl CallingWindow {
    /// The window with its hours and days only (every blackout date lifted).
    pub fn without_blackout(&self) -> Self {
        Self {
            blackout: BTreeSet::new(),
            ..self.clone()
        }
    }

    pub fn allows_day(&self, day: Weekday) -> bool {
        self.days.contains(&(day.num_days_from_monday() as u8))
    }

    /// A local date may be called on: its weekday is a calling day and it is
    /// no blackout date.
    pub fn allows_date(&self, date: NaiveDate) -> bool {
        self.allows_day(date.weekday()) && !self.blackout.contains(&date)
    }

    /// `t` falls inside the window, in `tz`.
    pub fn is_open(&self, t: DateTime<Utc>, tz: TimeZone) -> bool {
        let local = t.with_timezone(&tz.tz());
        let time = local.time();
        self.allows_date(local.date_naive())
            && time >= self.start
            && (self.to_midnight || time < self.end)
    }

    /// `t` falls inside the window in every one of `zones`.
    pub fn is_open_all(&self, t: DateTime<Utc>, zones: &[TimeZone]) -> bool {
        zones.iter().all(|z| self.is_open(t, *z))
    }

    /// The first moment at or after `t` that is inside the window in every one
    /// of `zones` (SPEC §7: only times convenient in all of them), or `None`
    /// when there is none before `horizon`. Each step moves to the latest of
    /// the zones' next openings: no common moment can come before it, since
    /// the zone that opens last is closed until then.
    pub fn next_open_all(
        &self,
        t: DateTime<Utc>,
        zones: &[TimeZone],
        horizon: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut at = t;
        while at <= horizon {
            if self.is_open_all(at, zones) {
                return Some(at);
            }
            let next = zones.iter().map(|z| self.next_open(at, *z)).max()?;
            if next <= at {
                // Every zone reads open yet not all are: cannot happen; stay safe.
                return None;
            }
            at = next;
        }
        None
    }

    /// Whether the zones share any calling hours at all (days and hours only,
    /// blackout dates aside) in the nine days from `now`: a reminder whose
    /// zones do not is never called (`no_lawful_calling_time`).
    pub fn has_common_hours(&self, zones: &[TimeZone], now: DateTime<Utc>) -> bool {
        if self.is_open_all(now, zones) {
            return true;
        }
        self.without_blackout()
            .next_open_all(now, zones, now + Duration::days(9))
            .is_some()
    }

    /// `t` itself if the window is open then, else the next time it opens.
    /// A window start that falls in a daylight-saving gap opens at the end of
    /// the gap (the first valid local time after it); one that falls in a
    /// repeated hour opens at its first occurrence after `t` (so at the second
    /// one, if `t` is between them). A day whose window lies wholly inside a gap
    /// has no opening.
    pub fn next_open(&self, t: DateTime<Utc>, tz: TimeZone) -> DateTime<Utc> {
        if self.is_open(t, tz) {
            return t;
        }
        let local = t.with_timezone(&tz.tz());
        let today = local.date_naive();
        let mut by_start = None;
        // Each blackout date can push the opening one day further.
        let days_ahead = 8 + self.blackout.len() as i64;
        for offset in 0..=days_ahead {
            let day = today + Duration::days(offset);
            if !self.allows_date(day) {
                continue;
            }
            let found = local_instants(tz, day.and_time(self.start))
                .into_iter()
                .flatten()
                .find(|opening| *opening > t && self.is_open(*opening, tz));
            if found.is_some() {
                by_start = found;
                break;
            }
        }
        // A fall-back can also carry the local clock back into the window
        // without passing its start: the window opens at that transition.
        let horizon = by_start.unwrap_or(t + Duration::days(days_ahead + 1));
        let by_transition = transitions(tz, t, horizon)
            .into_iter()
            .find(|at| *at > t && self.is_open(*at, tz));
        match (by_start, by_transition) {
            (Some(a), Some(b)) => return a.min(b),
            (Some(a), None) | (None, Some(a)) => return a,
            (None, None) => {}
        }
        // Unreachable with a non-empty day set; stay safe rather than panic.
        t + Duration::days(1)
    }
}

/// The instants in `[from, to]` at which `tz`'s offset from UTC changes (its
/// daylight-saving transitions), found hour by hour, then to the second.
fn transitions(tz: TimeZone, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| t.with_timezone(&tz.tz()).offset().fix().local_minus_utc();
    let mut out = Vec::new();
    let mut a = from;
    while a < to {
        let b = (a + Duration::hours(1)).min(to);
        if offset(a) != offset(b) {
            // Invariant: offset(lo) is the old one, offset(hi) the new one (whole seconds).
            let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or(a);
            let (mut lo, mut hi) = (a.timestamp(), b.timestamp());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(at(mid)) == offset(a) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let hi = at(hi);
            out.push(hi);
        }
        a = b;
    }
    out
}

/// The instants that read as local `naive` in `tz`, earliest first: one, two
/// in a fall-back overlap, or — in a spring-forward gap, where there is none —
/// the end of the gap (the first instant whose local time is past `naive`).
fn local_instants(tz: TimeZone, naive: NaiveDateTime) -> [Option<DateTime<Utc>>; 2] {
    match tz.tz().from_local_datetime(&naive) {
        LocalResult::Single(t) => [Some(t.with_timezone(&Utc)), None],
        LocalResult::Ambiguous(a, b) => [Some(a.with_timezone(&Utc)), Some(b.with_timezone(&Utc))],
        LocalResult::None => [gap_end(tz, naive), None],
    }
}

/// The first instant of local day `date` in `tz`: its midnight, the earlier
/// one where midnight repeats, the end of the gap where it is skipped.
pub fn first_instant_of(tz: TimeZone, date: NaiveDate) -> DateTime<Utc> {
    let [first, _] = local_instants(tz, date.and_time(NaiveTime::MIN));
    first.unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The first instant whose local time is at or after `naive`, which lies in a
/// gap. Local time runs forward around a gap (transitions are months apart),
/// so a binary search over a bracket of ±26 hours finds it to the second.
fn gap_end(tz: TimeZone, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let local = |secs: i64| {
        DateTime::from_timestamp(secs, 0).map(|u| u.with_timezone(&tz.tz()).naive_local())
    };
    let mut lo = (naive - Duration::hours(26)).and_utc().timestamp();
    let mut hi = (naive + Duration::hours(26)).and_utc().timestamp();
    // Invariant: local(lo) < naive <= local(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local(mid)? < naive {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// Everything the state machine needs to schedule a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first attempt; it doubles with each attempt made.
    pub base_delay: Duration,
    pub window: CallingWindow,
}

/// Jitter spreads retries over ±10 % of the delay.
pub const JITTER_SPREAD: f64 = 0.10;

impl RetryPolicy {
    /// The delay after attempt number `attempt` (1-based) before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.base_delay * (1i32 << doublings)
    }

    /// When to try again after attempt `attempt` ended at `now`: the doubled
    /// delay, stretched by `jitter` (a draw from 0.0 to 1.0: −10 % to +10 %),
    /// moved forward to the next opening of the customer's calling window.
    pub fn retry_at(
        &self,
        attempt: u32,
        now: DateTime<Utc>,
        zones: &[TimeZone],
        jitter: f64,
    ) -> DateTime<Utc> {
        let base_ms = self.delay(attempt).num_milliseconds() as f64;
        let factor = 1.0 - JITTER_SPREAD + 2.0 * JITTER_SPREAD * jitter.clamp(0.0, 1.0);
        let delayed = now + Duration::milliseconds((base_ms * factor).round() as i64);
        crate::clock::to_millis(self.open_from(delayed, zones))
    }

    /// `t` moved to the first moment the window is open in every zone (`t`
    /// itself when there is none: the claim then finds the reminder has no
    /// lawful calling time).
    pub fn open_from(&self, t: DateTime<Utc>, zones: &[TimeZone]) -> DateTime<Utc> {
        self.window
            .next_open_all(t, zones, t + Duration::days(372))
            .unwrap_or(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> CallingWindow {
        CallingWindow {
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            to_midnight: false,
            days: (0..6).collect(),
            blackout: BTreeSet::new(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::parse(name).unwrap()
    }

    #[test]
    fn open_hours_are_local_to_the_customer() {
        let w = window();
        // 13:00 UTC on Tuesday 2026-11-24 is 08:00 in New York, 22:00 in Tokyo.
        let t = utc("2026-11-24T13:00:00Z");
        assert!(w.is_open(t, tz("America/New_York")));
        assert!(!w.is_open(t, tz("Asia/Tokyo")));
        assert!(!w.is_open(t - Duration::seconds(1), tz("America/New_York")));
        // The end is exclusive: 21:00 local is closed.
        assert!(!w.is_open(utc("2026-11-25T02:00:00Z"), tz("America/New_York")));
        // Sunday is closed all day.
        assert!(!w.is_open(utc("2026-11-29T15:00:00Z"), tz("America/New_York")));
    }

    #[test]
    fn next_open_skips_nights_and_sundays() {
        let w = window();
        let ny = tz("America/New_York");
        // Saturday 22:00 local → Monday 08:00 local.
        let sat_night = utc("2026-11-29T03:00:00Z");
        assert_eq!(w.next_open(sat_night, ny), utc("2026-11-30T13:00:00Z"));
        // Early morning → the same day's opening.
        assert_eq!(
            w.next_open(utc("2026-11-24T10:00:00Z"), ny),
            utc("2026-11-24T13:00:00Z")
        );
        // Already open → unchanged.
        let open = utc("2026-11-24T15:00:00Z");
        assert_eq!(w.next_open(open, ny), open);
    }

    #[test]
    fn daylight_saving_changes_move_the_opening_in_utc() {
        let w = window();
        let ny = tz("America/New_York");
        // 2026-03-08: clocks jump 02:00 → 03:00 in New York. Before: 08:00 EST = 13:00 UTC;
        // after: 08:00 EDT = 12:00 UTC.
        assert_eq!(
            w.next_open(utc("2026-03-07T03:00:00Z"), ny),
            utc("2026-03-07T13:00:00Z")
        );
        assert_eq!(
            w.next_open(utc("2026-03-09T03:00:00Z"), ny),
            utc("2026-03-09T12:00:00Z")
        );
        // A window that opens inside the gap opens just after it.
        let mut gap = w.clone();
        gap.start = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        gap.days = (0..7).collect();
        let opened = gap.next_open(utc("2026-03-08T05:00:00Z"), ny);
        assert_eq!(
            opened,
            utc("2026-03-08T07:00:00Z"),
            "03:00 EDT, the first valid time"
        );
        assert!(gap.is_open(opened, ny));
    }

    #[test]
    fn retry_delay_doubles_with_jitter_inside_the_window() {
        let p = RetryPolicy {
            base_delay: Duration::hours(2),
            window: window(),
        };
        assert_eq!(p.delay(1), Duration::hours(2));
        assert_eq!(p.delay(2), Duration::hours(4));
        assert_eq!(p.delay(3), Duration::hours(8));
        let ny = tz("America/New_York");
        let now = utc("2026-11-24T14:00:00Z"); // 09:00 local
        assert_eq!(p.retry_at(1, now, &[ny], 0.5), utc("2026-11-24T16:00:00Z"));
        assert_eq!(p.retry_at(1, now, &[ny], 0.0), utc("2026-11-24T15:48:00Z"));
        assert_eq!(p.retry_at(1, now, &[ny], 1.0), utc("2026-11-24T16:12:00Z"));
        // 8 h after 19:00 local is 03:00: moved to 08:00 the next day.
        let evening = utc("2026-11-25T00:00:00Z");
        assert_eq!(
            p.retry_at(3, evening, &[ny], 0.5),
            utc("2026-11-25T13:00:00Z")
        );
    }
}
