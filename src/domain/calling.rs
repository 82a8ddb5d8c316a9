//! May we call, and when (SPEC §7): a reminder's calling zones, and the rules
//! every claim is held to — the calling window and the blackout dates in every
//! calling zone, the frequency caps of its debt, the quiet period after a
//! conversation, the suppression list's answer.
//!
//! Pure: the store gathers the facts (the debt's recent attempts, whether the
//! number is suppressed) inside the claim's own transaction and hands them in
//! with `now`, so two instances deciding at once see the same facts.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Serialize, Serializer};

use super::*;
use crate::policy::CallingWindow;

// ---------------------------------------------------------------------------
// The facts of a reminder that the rules read

/// An ISO 3166-2 subdivision, like `US-MA` (country, dash, 1–3 letters or digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let upper = s.trim().to_ascii_uppercase();
        let ok = match upper.split_once('-') {
            Some((country, sub)) => {
                country.len() == 2
                    && country.bytes().all(|b| b.is_ascii_uppercase())
                    && (1..=3).contains(&sub.len())
                    && sub
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
            None => false,
        };
        if ok {
            Ok(Self(upper))
        } else {
            Err(FieldError::new(
                "region",
                "must be an ISO 3166-2 subdivision code, like US-MA or CA-QC",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which zones a reminder may be called in (`ZONE_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZonePolicy {
    /// The given `timezone` together with every zone the number may be in.
    #[default]
    All,
    /// The given `timezone` alone when there is one (operator's choice, for
    /// data whose zone is authoritative); the number's zones otherwise.
    Given,
}

impl FromStr for ZonePolicy {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "given" => Ok(Self::Given),
            _ => Err(()),
        }
    }
}

/// A reminder's calling zones: its `timezone` (when given) and, unless the
/// policy says the given one is enough, every zone libphonenumber's data puts
/// the number in (`phone_zones`), the given zone first, no repeats.
/// `default` only when neither gives any.
pub fn calling_zones(
    given: Option<TimeZone>,
    phone: &PhoneNumber,
    policy: ZonePolicy,
    default: TimeZone,
) -> Vec<TimeZone> {
    let mut zones: Vec<TimeZone> = given.into_iter().collect();
    if policy == ZonePolicy::All || given.is_none() {
        for tz in crate::phone_zones::zones_for(phone.as_str()) {
            let tz = TimeZone::from_tz(*tz);
            if !zones.contains(&tz) {
                zones.push(tz);
            }
        }
    }
    if zones.is_empty() {
        zones.push(default);
    }
    zones
}

/// Which rule last held a due reminder back (SPEC §7 `deferred_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeferredBy {
    Window,
    Blackout,
    Frequency,
    QuietPeriod,
}

impl DeferredBy {
    pub const ALL: [DeferredBy; 4] = [
        DeferredBy::Window,
        DeferredBy::Blackout,
        DeferredBy::Frequency,
        DeferredBy::QuietPeriod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeferredBy::Window => "window",
            DeferredBy::Blackout => "blackout",
            DeferredBy::Frequency => "frequency",
            DeferredBy::QuietPeriod => "quiet_period",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl Serialize for DeferredBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// At most `max` attempts in any rolling `period` (`7/7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frequency {
    pub max: u32,
    pub period: Duration,
}

impl Frequency {
    /// `N/Pd` (days) or `N/Ph` (hours): `7/7d`, `2/7d`, `1/24h`.
    pub fn parse(s: &str) -> Option<Self> {
        let (n, p) = s.trim().split_once('/')?;
        let max: u32 = n.trim().parse().ok().filter(|n| *n >= 1)?;
        Some(Self {
            max,
            period: parse_span(p)?,
        })
    }

    /// When an attempt may next be made under this cap, given when the
    /// debt's attempts were dispatched: `at` itself when fewer than `max` were
    /// dispatched since `at - period`, else when enough of them have aged out.
    /// An attempt stamped after `at` counts as well: another instance whose
    /// clock runs ahead dispatched it, and it is no less a call.
    pub fn clears_at(&self, dispatched: &[DateTime<Utc>], at: DateTime<Utc>) -> DateTime<Utc> {
        let mut recent: Vec<DateTime<Utc>> = dispatched
            .iter()
            .copied()
            .filter(|t| *t > at - self.period)
            .collect();
        if recent.len() < self.max as usize {
            return at;
        }
        recent.sort();
        // Once the oldest `len - max + 1` have aged out, fewer than `max` remain.
        recent[recent.len() - self.max as usize] + self.period
    }

    /// Whether this cap allows fewer attempts over time than `other`.
    pub fn stricter_than(&self, other: &Frequency) -> bool {
        // max/period < other.max/other.period, without floating point.
        i128::from(self.max) * i128::from(other.period.num_seconds())
            < i128::from(other.max) * i128::from(self.period.num_seconds())
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.max, describe_span(self.period))
    }
}

/// A span like `7d`, `36h` or `0` (none).
pub fn parse_span(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::zero());
    }
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok().filter(|n| (1..=3650 * 24).contains(n))?;
    match unit {
        "d" if n <= 3650 => Some(Duration::days(n)),
        "h" => Some(Duration::hours(n)),
        _ => None,
    }
}

pub fn describe_span(d: Duration) -> String {
    if d.is_zero() {
        "0".to_owned()
    } else if d.num_seconds() % 86_400 == 0 {
        format!("{}d", d.num_days())
    } else {
        format!("{}h", d.num_hours())
    }
}

// ---------------------------------------------------------------------------
// The rules

/// One attempt of the debt, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastAttempt {
    pub reminder_id: ReminderId,
    pub attempt: u32,
    pub dispatched_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub result: Option<OutcomeResult>,
}

impl PastAttempt {
    /// When the conversation this attempt was ended, if it was one.
    fn conversation_ended(&self) -> Option<DateTime<Utc>> {
        self.result
            .filter(|r| r.is_conversation())
            .and(self.ended_at.or(Some(self.dispatched_at)))
    }
}

/// What the rules say about calling a due reminder now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallVerdict {
    /// Every rule allows a call now.
    Now,
    /// Not yet: the first moment every rule allows, and the rule that held it.
    Defer {
        until: DateTime<Utc>,
        by: DeferredBy,
    },
    /// The number is on the suppression list: never dialled (`cancelled`, `suppressed`).
    Suppressed,
    /// Its calling zones share no calling window: never called
    /// (`failed`, `no_lawful_calling_time`).
    NoLawfulTime,
}

pub const SKIP_NO_LAWFUL_TIME: &str = "no_lawful_calling_time";

/// Every limit of SPEC §7 in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Hours, days and blackout dates, in each calling zone.
    pub window: CallingWindow,
    /// `CALL_FREQUENCY`: attempts per debt.
    pub frequency: Frequency,
    /// `REGION_CALL_FREQUENCY`: stricter caps by ISO 3166-2 region.
    pub region_frequency: Vec<(Region, Frequency)>,
    /// `QUIET_AFTER_CONVERSATION`.
    pub quiet_after_conversation: Duration,
}

/// How long past the moment the other rules allow the window may stay shut
/// before the reminder is read as never callable (a year and a week: every
/// blackout list of dates). Counted from that moment, not from `now`: a cap
/// or a quiet period may itself be longer than a year.
const HORIZON_DAYS: i64 = 372;

impl Rules {
    /// How far back a claim must read the debt's attempts (the longest cap
    /// period, or the quiet period, plus a call's longest life).
    pub fn lookback(&self) -> Duration {
        let caps = self
            .region_frequency
            .iter()
            .map(|(_, f)| f.period)
            .chain([self.frequency.period])
            .max()
            .unwrap_or_else(Duration::zero);
        caps.max(self.quiet_after_conversation) + Duration::days(2)
    }

    /// The caps that apply to a reminder: `CALL_FREQUENCY` and its region's.
    pub fn caps_for(&self, region: Option<&Region>) -> Vec<Frequency> {
        let mut caps = vec![self.frequency];
        if let Some(region) = region {
            caps.extend(
                self.region_frequency
                    .iter()
                    .filter(|(r, _)| r == region)
                    .map(|(_, f)| *f),
            );
        }
        caps
    }

    /// The decision on a due reminder `r` at `now`, given every attempt of its
    /// debt in the last [`lookback`](Self::lookback) (any order) and the
    /// suppression list's answer for its number.
    pub fn decide(
        &self,
        r: &Reminder,
        debt: &[PastAttempt],
        suppressed: bool,
        now: DateTime<Utc>,
    ) -> CallVerdict {
        if suppressed {
            return CallVerdict::Suppressed;
        }
        let zones = &r.calling_zones;
        if !self.window.has_common_hours(zones, now) {
            return CallVerdict::NoLawfulTime;
        }
        let dispatched: Vec<DateTime<Utc>> = debt.iter().map(|a| a.dispatched_at).collect();
        let caps = self.caps_for(r.region.as_ref());
        let quiet_until = self.quiet_until(r, debt);
        let mut at = now;
        let mut by = None;
        // Each rule only ever moves `at` forward; once no rule moves it, every
        // rule allows `at`, and it is the first such moment.
        for _ in 0..64 {
            let before = at;
            if let Some(q) = quiet_until.filter(|q| *q > at) {
                at = q;
                by.get_or_insert(DeferredBy::QuietPeriod);
            }
            for cap in &caps {
                let cleared = cap.clears_at(&dispatched, at);
                if cleared > at {
                    at = cleared;
                    by.get_or_insert(DeferredBy::Frequency);
                }
            }
            let horizon = at + Duration::days(HORIZON_DAYS);
            match self.window.next_open_all(at, zones, horizon) {
                Some(open) if open > at => {
                    let rule = if self.window.blackout.is_empty()
                        || self
                            .window
                            .without_blackout()
                            .next_open_all(at, zones, horizon)
                            == Some(open)
                    {
                        DeferredBy::Window
                    } else {
                        DeferredBy::Blackout
                    };
                    at = open;
                    by.get_or_insert(rule);
                }
                Some(_) => {}
                None => return CallVerdict::NoLawfulTime,
            }
            if at == before {
                break;
            }
        }
        match by {
            None => CallVerdict::Now,
            Some(by) => CallVerdict::Defer {
                until: crate::clock::to_millis(at),
                by,
            },
        }
    }

    /// The end of the quiet period after the debt's last conversation, unless
    /// that conversation was this reminder's own request to be called back
    /// (the one exception: the callback the customer asked for).
    fn quiet_until(&self, r: &Reminder, debt: &[PastAttempt]) -> Option<DateTime<Utc>> {
        if self.quiet_after_conversation.is_zero() {
            return None;
        }
        let last = debt
            .iter()
            .filter_map(|a| a.conversation_ended().map(|t| (t, a)))
            .max_by_key(|(t, a)| (*t, a.attempt))?;
        let (ended, attempt) = last;
        let own_callback = attempt.reminder_id == r.id
            && attempt.attempt == r.attempt_count
            && attempt.result == Some(OutcomeResult::CallbackRequested)
            && r.skip_reason.as_deref() == Some(SKIP_CALLBACK_REQUESTED);
        (!own_callback).then(|| ended + self.quiet_after_conversation)
    }
}

// ---------------------------------------------------------------------------
// One claim's decisions

/// What a claim does with one due reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAction {
    /// Start its next attempt now.
    Claim,
    /// Move `next_attempt_at` to `until`: the first moment every rule allows.
    Defer {
        until: DateTime<Utc>,
        by: DeferredBy,
    },
    /// Never dialled: the number is suppressed (`cancelled`, `suppressed`).
    CancelSuppressed,
    /// Never called: no common calling time (`failed`, `no_lawful_calling_time`).
    FailNoLawfulTime,
}

/// Decide a claim's candidates in order (earliest due first), the facts read
/// inside the claim's transaction: `debts` holds each debt's recent attempts,
/// `suppressed` the candidates' numbers that are on the list, `slots` how
/// many calls may still start (`MAX_CONCURRENT_CALLS` less the live ones).
/// A claim counts at once against its debt, so two reminders of one debt in
/// one batch are held to the cap together. A candidate allowed now but past
/// the slots is left as it is (`None`) for a later tick.
pub fn plan_claims(
    rules: &Rules,
    candidates: &[Reminder],
    debts: &mut std::collections::HashMap<String, Vec<PastAttempt>>,
    suppressed: &std::collections::HashSet<String>,
    mut slots: usize,
    now: DateTime<Utc>,
) -> Vec<(ReminderId, ClaimAction)> {
    let mut plan = Vec::with_capacity(candidates.len());
    for r in candidates {
        let history = debts.entry(r.debt_ref.clone()).or_default();
        let verdict = rules.decide(
            r,
            history,
            suppressed.contains(r.phone_number.as_str()),
            now,
        );
        let action = match verdict {
            CallVerdict::Now if slots == 0 => continue,
            CallVerdict::Now => {
                slots -= 1;
                history.push(PastAttempt {
                    reminder_id: r.id,
                    attempt: r.attempt_count + 1,
                    dispatched_at: now,
                    ended_at: None,
                    result: None,
                });
                ClaimAction::Claim
            }
            CallVerdict::Defer { until, by } => ClaimAction::Defer { until, by },
            CallVerdict::Suppressed => ClaimAction::CancelSuppressed,
            CallVerdict::NoLawfulTime => ClaimAction::FailNoLawfulTime,
        };
        plan.push((r.id, action));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rules() -> Rules {
        Rules {
            window: CallingWindow {
                start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
                to_midnight: false,
                days: (0..6).collect(),
                blackout: Default::default(),
            },
            frequency: Frequency::parse("7/7d").unwrap(),
            region_frequency: vec![(
                Region::parse("US-MA").unwrap(),
                Frequency::parse("2/7d").unwrap(),
            )],
            quiet_after_conversation: Duration::days(7),
        }
    }

    fn reminder(phone: &str, zones: &[&str]) -> Reminder {
        let body = serde_json::json!({"customer_name": "Ada", "phone_number": phone,
            "amount_due_minor": 100, "currency": "USD", "due_date": "2026-12-01"});
        let defaults = CreateDefaults {
            timezone: TimeZone::parse("America/New_York").unwrap(),
            zone_policy: ZonePolicy::All,
            language: Language::parse("en").unwrap(),
            max_attempts: 10,
        };
        let mut r = NewReminder::parse(body.as_object().unwrap(), &defaults)
            .unwrap()
            .into_reminder(ReminderId::new(), t("2026-11-20T00:00:00Z"));
        r.calling_zones = zones.iter().map(|z| TimeZone::parse(z).unwrap()).collect();
        r
    }

    fn past(r: &Reminder, at: &str, result: Option<OutcomeResult>) -> PastAttempt {
        PastAttempt {
            reminder_id: r.id,
            attempt: 1,
            dispatched_at: t(at),
            ended_at: Some(t(at)),
            result,
        }
    }

    #[test]
    fn the_window_must_hold_in_every_zone() {
        // Tuesday 13:00 UTC: 08:00 in New York, 05:00 in Los Angeles.
        let r = reminder("+14155550100", &["America/New_York", "America/Los_Angeles"]);
        let now = t("2026-11-24T13:00:00Z");
        assert_eq!(
            rules().decide(&r, &[], false, now),
            CallVerdict::Defer {
                until: t("2026-11-24T16:00:00Z"),
                by: DeferredBy::Window
            },
            "08:00 in Los Angeles"
        );
        // A 08:00-12:00 window in New York and Tokyo (14 hours apart) never overlaps.
        let mut narrow = rules();
        narrow.window.end = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
        let far = reminder("+14155550100", &["America/New_York", "Asia/Tokyo"]);
        assert_eq!(
            narrow.decide(&far, &[], false, now),
            CallVerdict::NoLawfulTime
        );
    }

    #[test]
    fn suppression_wins_over_everything() {
        let r = reminder("+12125550100", &["America/New_York"]);
        assert_eq!(
            rules().decide(&r, &[], true, t("2026-11-24T15:00:00Z")),
            CallVerdict::Suppressed
        );
    }

    #[test]
    fn the_frequency_cap_counts_the_debt_and_the_region_is_stricter() {
        let mut r = reminder("+12125550100", &["America/New_York"]);
        let now = t("2026-11-24T15:00:00Z");
        let history: Vec<_> = (0..7)
            .map(|d| past(&r, &format!("2026-11-{:02}T15:00:00Z", 18 + d % 6), None))
            .collect();
        match rules().decide(&r, &history, false, now) {
            CallVerdict::Defer {
                by: DeferredBy::Frequency,
                until,
            } => assert!(until > now),
            other => panic!("{other:?}"),
        }
        r.region = Some(Region::parse("us-ma").unwrap());
        let two = &history[..2];
        assert!(matches!(
            rules().decide(&r, two, false, now),
            CallVerdict::Defer {
                by: DeferredBy::Frequency,
                ..
            }
        ));
        assert_eq!(
            rules().decide(&r, &history[..1], false, now),
            CallVerdict::Now
        );
    }

    #[test]
    fn the_quiet_period_follows_a_conversation_but_not_the_callback_asked_for() {
        let mut r = reminder("+12125550100", &["America/New_York"]);
        let now = t("2026-11-24T15:00:00Z");
        let talked = [past(
            &r,
            "2026-11-23T15:00:00Z",
            Some(OutcomeResult::Disputed),
        )];
        assert_eq!(
            rules().decide(&r, &talked, false, now),
            CallVerdict::Defer {
                until: t("2026-11-30T15:00:00Z"),
                by: DeferredBy::QuietPeriod
            }
        );
        let unreached = [past(
            &r,
            "2026-11-23T15:00:00Z",
            Some(OutcomeResult::NoAnswer),
        )];
        assert_eq!(rules().decide(&r, &unreached, false, now), CallVerdict::Now);
        r.attempt_count = 1;
        r.skip_reason = Some(SKIP_CALLBACK_REQUESTED.to_owned());
        let callback = [past(
            &r,
            "2026-11-23T15:00:00Z",
            Some(OutcomeResult::CallbackRequested),
        )];
        assert_eq!(rules().decide(&r, &callback, false, now), CallVerdict::Now);
    }

    #[test]
    fn an_attempt_stamped_ahead_of_the_clock_still_counts() {
        // Another instance, its clock a minute ahead, dispatched the debt's attempt.
        let cap = Frequency::parse("1/7d").unwrap();
        let now = t("2026-11-24T15:00:00Z");
        assert_eq!(
            cap.clears_at(&[t("2026-11-24T15:01:00Z")], now),
            t("2026-12-01T15:01:00Z")
        );
    }

    #[test]
    fn a_blackout_date_is_named_as_such() {
        let mut rules = rules();
        rules
            .window
            .blackout
            .insert(chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        let r = reminder("+12125550100", &["America/New_York"]);
        assert_eq!(
            rules.decide(&r, &[], false, t("2026-11-24T15:00:00Z")),
            CallVerdict::Defer {
                until: t("2026-11-25T13:00:00Z"),
                by: DeferredBy::Blackout
            }
        );
    }

    #[test]
    fn a_cap_or_quiet_period_longer_than_a_year_defers_rather_than_fails() {
        // Both are accepted settings, stricter than the law. Found by
        // tests/calling_rules_props.rs: deferring past a year from `now` read
        // as "no lawful calling time", and the reminder was failed for good.
        let r = reminder("+12125550100", &["America/New_York"]);
        let now = t("2026-11-24T15:00:00Z"); // Tuesday 10:00 in New York
        let mut long = rules();
        long.frequency = Frequency::parse("1/400d").unwrap();
        let called = [past(
            &r,
            "2026-11-23T15:00:00Z",
            Some(OutcomeResult::NoAnswer),
        )];
        assert_eq!(
            long.decide(&r, &called, false, now),
            CallVerdict::Defer {
                // Tuesday 10:00 in New York, 400 days after the attempt.
                until: t("2027-12-28T15:00:00Z"),
                by: DeferredBy::Frequency
            }
        );
        let mut long = rules();
        long.quiet_after_conversation = Duration::days(400);
        let talked = [past(
            &r,
            "2026-11-23T15:00:00Z",
            Some(OutcomeResult::Refused),
        )];
        assert_eq!(
            long.decide(&r, &talked, false, now),
            CallVerdict::Defer {
                until: t("2027-12-28T15:00:00Z"),
                by: DeferredBy::QuietPeriod
            }
        );
    }

    #[test]
    fn frequencies_and_spans_parse() {
        assert_eq!(Frequency::parse("2/7d").unwrap().period, Duration::days(7));
        assert_eq!(Frequency::parse("3/24h").unwrap().max, 3);
        for bad in ["0/7d", "7", "7/7", "x/7d", "7/7w"] {
            assert!(Frequency::parse(bad).is_none(), "{bad}");
        }
        assert!(Frequency::parse("7/7d")
            .unwrap()
            .stricter_than(&Frequency::parse("8/7d").unwrap()));
        assert_eq!(parse_span("0"), Some(Duration::zero()));
        assert!(Region::parse("USMA").is_err());
    }
}
