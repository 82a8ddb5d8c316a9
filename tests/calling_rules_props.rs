//! Property tests of the calling rules (SPEC §7). For generated reminders — a
//! `timezone` given or not, numbers from every country and area code of the
//! phone-zone vectors, either `ZONE_POLICY` — with generated histories of their
//! debt, rules and clocks over many years and their daylight-saving changes,
//! `Rules::decide` (and the store's claim, which decides inside its
//! transaction) never lets a call happen outside the window in any calling
//! zone, on a blackout date, above the frequency cap of its debt or inside a
//! quiet period, and defers a reminder to the *first* moment every rule allows.
//!
//! The oracle here is written from SPEC §7 alone: it reads the rules'
//! settings, but calls none of the rules' own functions, and takes each
//! number's zones from `spec/vectors/phone_zones.json` (what libphonenumber
//! answered), not from the service's table.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, Offset, TimeZone as _,
    Timelike, Utc,
};
use chrono_tz::Tz;
use common::{Backend, TestDb};
use duecall::domain::*;
use duecall::policy::{CallingWindow, RetryPolicy};
use duecall::store::{Applied, Store};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The numbers: every case of the phone-zone vectors that is an E.164 number

struct Number {
    e164: String,
    /// What libphonenumber answered (empty: unknown).
    zones: Vec<Tz>,
}

static NUMBERS: LazyLock<Vec<Number>> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/vectors/phone_zones.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("phone zone vectors"))
            .expect("JSON");
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| {
            let e164 = c["number"].as_str()?;
            PhoneNumber::parse(e164).ok()?;
            let zones = c["zones"]
                .as_array()?
                .iter()
                .map(|z| z.as_str().and_then(|z| z.parse::<Tz>().ok()).expect("zone"))
                .collect();
            Some(Number {
                e164: e164.to_owned(),
                zones,
            })
        })
        .collect()
});

/// Indexes into [`NUMBERS`]: every one; those that may be in several zones;
/// those outside the North American plan.
static ALL: LazyLock<Vec<usize>> = LazyLock::new(|| (0..NUMBERS.len()).collect());
static MULTI: LazyLock<Vec<usize>> = LazyLock::new(|| {
    (0..NUMBERS.len())
        .filter(|&i| NUMBERS[i].zones.len() > 1)
        .collect()
});
static ABROAD: LazyLock<Vec<usize>> = LazyLock::new(|| {
    (0..NUMBERS.len())
        .filter(|&i| !NUMBERS[i].e164.starts_with("+1"))
        .collect()
});

/// Well-known numbers of many countries, several of them multi-zone.
const KNOWN: &[&str] = &[
    "+12125550100",  // New York
    "+14155550100",  // San Francisco
    "+18085550100",  // Honolulu
    "+19075550100",  // Alaska
    "+16025550100",  // Arizona (no DST)
    "+12082155555",  // Idaho, Pacific exchange
    "+18005550100",  // toll-free: every zone of the plan
    "+16135550100",  // Ottawa
    "+17095550100",  // Newfoundland
    "+61212345678",  // Australia
    "+61812345678",  // Western/South Australia
    "+74951234567",  // Moscow
    "+70000000000",  // Russia, any of its zones
    "+551112345678", // São Paulo
    "+556812345678", // Acre
    "+525512345678", // Mexico City
    "+526641234567", // Tijuana
    "+442071234567", // London
    "+446012345678", // UK and crown dependencies
    "+919812345678", // India
    "+9771234567",   // Nepal (+05:45)
    "+6421234567",   // New Zealand
    "+6281234567",   // Indonesia
    "+80012345678",  // no zone at all
];

/// Indexes of [`KNOWN`] in [`NUMBERS`] (or, for one that is not itself a
/// vector, of the vector sharing its longest prefix).
static KNOWN_AT: LazyLock<Vec<usize>> = LazyLock::new(|| {
    KNOWN
        .iter()
        .map(|k| {
            NUMBERS
                .iter()
                .position(|n| n.e164 == *k)
                .unwrap_or_else(|| {
                    (0..NUMBERS.len())
                        .max_by_key(|&i| {
                            NUMBERS[i]
                                .e164
                                .bytes()
                                .zip(k.bytes())
                                .take_while(|(a, b)| a == b)
                                .count()
                        })
                        .expect("vectors")
                })
        })
        .collect()
});

fn number_index() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => proptest::sample::select(ALL.clone()),
        2 => proptest::sample::select(MULTI.clone()),
        2 => proptest::sample::select(ABROAD.clone()),
        2 => proptest::sample::select(KNOWN_AT.clone()),
    ]
}

/// Zones a reminder may give as its `timezone` (or a configuration as its
/// default): DST north and south, half- and quarter-hour offsets, zones whose
/// clocks change at local midnight.
const ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/St_Johns",
    "America/Halifax",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "America/Santiago",
    "America/Havana",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Moscow",
    "Atlantic/Azores",
    "Asia/Beirut",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Africa/Cairo",
    "UTC",
];

fn zone() -> impl Strategy<Value = Tz> {
    proptest::sample::select(ZONES).prop_map(|z| z.parse::<Tz>().expect("zone"))
}

// ---------------------------------------------------------------------------
// Generators: clocks, rules, reminders, histories

fn minutes(m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(m / 60, m % 60, 0).expect("a time")
}

/// Moments from 2024 to 2040, often in the months of daylight-saving changes
/// and often on a minute or quarter-hour boundary (where windows open).
fn clock() -> impl Strategy<Value = DateTime<Utc>> {
    let month = prop_oneof![
        3 => proptest::sample::select(vec![3u32, 4, 9, 10, 11]),
        2 => 1u32..=12,
    ];
    let within_day = prop_oneof![
        2 => 0i64..86_400_000,
        1 => (0i64..1440).prop_map(|m| m * 60_000),
        1 => (0i64..96).prop_map(|q| q * 900_000),
    ];
    let any_day = (2024i32..=2040, month, 1u32..=31, within_day).prop_map(|(y, m, d, ms)| {
        let date = NaiveDate::from_ymd_opt(y, m, d)
            .or_else(|| NaiveDate::from_ymd_opt(y, m, 28))
            .expect("a date");
        date.and_time(NaiveTime::MIN).and_utc() + Duration::milliseconds(ms)
    });
    // Within two days before to one after a Sunday on which clocks change
    // somewhere: the second of March and first of November (North America),
    // the last of March and of October (Europe), the first of April and of
    // October (Australia), the last of September (New Zealand).
    let sundays = proptest::sample::select(vec![
        (3u32, 2i64),
        (11, 1),
        (3, -1),
        (10, -1),
        (4, 1),
        (10, 1),
        (9, -1),
    ]);
    let near_change =
        (2024i32..=2040, sundays, -2 * 86_400_000..86_400_000i64).prop_map(|(y, (m, nth), ms)| {
            let first = NaiveDate::from_ymd_opt(y, m, 1).expect("a date");
            let sunday =
                first + Duration::days(i64::from((7 - first.weekday().num_days_from_sunday()) % 7));
            let date = if nth > 0 {
                sunday + Duration::weeks(nth - 1)
            } else {
                let mut last = sunday;
                while (last + Duration::weeks(1)).month() == m {
                    last += Duration::weeks(1);
                }
                last
            };
            date.and_time(NaiveTime::MIN).and_utc() + Duration::milliseconds(ms)
        });
    prop_oneof![3 => any_day, 1 => near_change]
}

/// `CALLING_WINDOW`: start, end, whether it ends at 24:00.
fn window_hours() -> impl Strategy<Value = (NaiveTime, NaiveTime, bool)> {
    let quarters =
        (0u32..96).prop_flat_map(|q| (Just(q * 15), ((q + 1)..=96).prop_map(|e| e * 15)));
    let any_minute = (0u32..1440).prop_flat_map(|s| (Just(s), (s + 1)..=1440));
    // Windows that end inside an hour a clock change repeats (01:00–02:00,
    // or 23:00–24:00 where clocks fall back at midnight): the window opens
    // again at the change itself, without passing its start.
    let small_hours = prop_oneof![0u32..8, 88u32..96].prop_flat_map(|q| {
        (
            Just(q * 15),
            ((q + 1)..=(q + 12).min(96)).prop_map(|e| e * 15),
        )
    });
    prop_oneof![
        2 => Just((8 * 60, 21 * 60)),
        1 => Just((8 * 60, 1440)),
        4 => quarters,
        2 => any_minute,
        2 => small_hours,
    ]
    .prop_map(|(s, e)| {
        if e == 1440 {
            (minutes(s), NaiveTime::MIN, true)
        } else {
            (minutes(s), minutes(e), false)
        }
    })
}

/// `CALLING_DAYS`: 0 = Monday … 6 = Sunday, never empty.
fn days() -> impl Strategy<Value = BTreeSet<u8>> {
    prop_oneof![
        3 => Just((0..6).collect()),
        1 => Just((0..7).collect()),
        1 => Just((0..5).collect()),
        3 => (1u8..128).prop_map(|bits| (0..7).filter(|d| bits & (1 << d) != 0).collect()),
    ]
}

/// Blackout dates as days from the clock's UTC date: a few scattered, and a run.
fn blackout_offsets() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => proptest::collection::vec(-2i64..30, 1..5),
        1 => (-2i64..10, 1i64..6).prop_map(|(from, len)| (from..from + len).collect()),
    ]
}

fn span() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => (1i64..=14).prop_map(Duration::days),
        3 => (1i64..=72).prop_map(Duration::hours),
        1 => (300i64..=400).prop_map(Duration::days),
    ]
}

fn frequency() -> impl Strategy<Value = Frequency> {
    prop_oneof![
        2 => Just(Frequency { max: 7, period: Duration::days(7) }),
        3 => (1u32..=8, span()).prop_map(|(max, period)| Frequency { max, period }),
    ]
}

fn quiet() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::zero()),
        2 => Just(Duration::days(7)),
        3 => span(),
    ]
}

const REGIONS: &[&str] = &["US-MA", "US-NY", "CA-QC", "AU-NSW"];

fn region() -> impl Strategy<Value = Region> {
    proptest::sample::select(REGIONS).prop_map(|r| Region::parse(r).expect("region"))
}

fn region_caps() -> impl Strategy<Value = Vec<(Region, Frequency)>> {
    prop_oneof![
        1 => Just(Vec::new()),
        2 => Just(vec![(
            Region::parse("US-MA").expect("region"),
            Frequency { max: 2, period: Duration::days(7) },
        )]),
        2 => proptest::collection::vec((region(), frequency()), 1..3),
    ]
}

/// Rules, and their blackout dates as days from the clock's UTC date.
#[derive(Debug, Clone)]
struct RulesNear(Rules, Vec<i64>);

impl RulesNear {
    fn at(&self, now: DateTime<Utc>) -> Rules {
        let mut rules = self.0.clone();
        let today = now.date_naive();
        rules.window.blackout = self.1.iter().map(|d| today + Duration::days(*d)).collect();
        rules
    }
}

prop_compose! {
    fn rules_near()(
        (start, end, to_midnight) in window_hours(),
        days in days(),
        blackout in blackout_offsets(),
        frequency in frequency(),
        region_frequency in region_caps(),
        quiet_after_conversation in quiet(),
    ) -> RulesNear {
        let window = CallingWindow { start, end, to_midnight, days, blackout: BTreeSet::new() };
        RulesNear(Rules { window, frequency, region_frequency, quiet_after_conversation }, blackout)
    }
}

const CONVERSATIONS: [OutcomeResult; 7] = [
    // SPEC §1: the customer was reached and spoken with.
    OutcomeResult::PaymentPromised,
    OutcomeResult::Paid,
    OutcomeResult::Refused,
    OutcomeResult::Disputed,
    OutcomeResult::Other,
    OutcomeResult::CallbackRequested,
    OutcomeResult::OptedOut,
];

fn spoken_with(r: OutcomeResult) -> bool {
    CONVERSATIONS.contains(&r)
}

/// A reminder as created through the API's parser: its number, a `timezone`
/// or none, the zone policy and the default zone of the configuration.
#[derive(Debug, Clone)]
struct Who {
    number: usize,
    given: Option<Tz>,
    policy: ZonePolicy,
    default: Tz,
    region: Option<Region>,
}

fn who() -> impl Strategy<Value = Who> {
    (
        number_index(),
        proptest::option::of(zone()),
        prop_oneof![3 => Just(ZonePolicy::All), 1 => Just(ZonePolicy::Given)],
        zone(),
        proptest::option::weighted(0.4, region()),
    )
        .prop_map(|(number, given, policy, default, region)| Who {
            number,
            given,
            policy,
            default,
            region,
        })
}

fn uuid(n: u128) -> ReminderId {
    ReminderId::from_uuid(uuid::Uuid::from_u128(
        0x5eed_0000_0000_0000_0000_0000_0000_0000 + n,
    ))
}

fn create_body(who: &Who, debt_ref: &str, extra: Value) -> serde_json::Map<String, Value> {
    let mut body = json!({
        "customer_name": "Ada Lovelace",
        "phone_number": NUMBERS[who.number].e164,
        "amount_due_minor": 12345,
        "currency": "USD",
        "due_date": "2026-12-01",
        "debt_ref": debt_ref,
        "max_attempts": 10,
    });
    let b = body.as_object_mut().expect("object");
    if let Some(tz) = who.given {
        b.insert("timezone".into(), json!(tz.name()));
    }
    if let Some(region) = &who.region {
        b.insert("region".into(), json!(region.as_str()));
    }
    if let Some(extra) = extra.as_object() {
        b.extend(extra.clone());
    }
    body.as_object().expect("object").clone()
}

fn defaults(who: &Who) -> CreateDefaults {
    CreateDefaults {
        timezone: TimeZone::from_tz(who.default),
        zone_policy: who.policy,
        language: Language::parse("en").expect("en"),
        max_attempts: 3,
    }
}

/// SPEC §7 "Calling zones", from the vectors: the given zone and, unless the
/// policy is `given` and a zone was given, every zone of the number; the
/// default only when that leaves none.
fn oracle_zones(who: &Who) -> Vec<Tz> {
    let mut zones: Vec<Tz> = who.given.into_iter().collect();
    if who.policy == ZonePolicy::All || who.given.is_none() {
        zones.extend(NUMBERS[who.number].zones.iter().copied());
    }
    if zones.is_empty() {
        zones.push(who.default);
    }
    zones.sort_by_key(|z| z.name());
    zones.dedup();
    zones
}

/// One past attempt of the debt: whose (0: the reminder decided on; 1, 2:
/// other reminders of its debt), how long before the clock, how long it
/// lasted, what it came to (`None`: no outcome — still live, or failed).
#[derive(Debug, Clone)]
struct Past {
    whose: u8,
    ago_ms: i64,
    lasted_ms: i64,
    result: Option<OutcomeResult>,
    ended: bool,
}

fn past() -> impl Strategy<Value = Past> {
    (
        0u8..3,
        prop_oneof![
            3 => 1i64..(21 * 86_400_000),
            1 => 1i64..(2 * 86_400_000),
        ],
        0i64..(40 * 60_000),
        proptest::option::weighted(0.8, proptest::sample::select(OutcomeResult::ALL.to_vec())),
        any::<bool>(),
    )
        .prop_map(|(whose, ago_ms, lasted_ms, result, ended)| Past {
            whose,
            ago_ms,
            lasted_ms,
            result,
            ended: ended || result.is_some(),
        })
}

/// One reminder due at `now`, the attempts of its debt, and what the oracle
/// takes its zones to be.
#[derive(Debug, Clone)]
struct Case {
    rules: Rules,
    reminder: Reminder,
    zones: Vec<Tz>,
    debt: Vec<PastAttempt>,
    now: DateTime<Utc>,
    suppressed: bool,
}

/// The debt's attempts from their descriptions: each reminder's numbered
/// 1, 2, … oldest first; returns them and how many are the first reminder's.
fn history(ids: &[ReminderId], past: &[Past], now: DateTime<Utc>) -> (Vec<PastAttempt>, u32) {
    let mut out = Vec::new();
    let mut own = 0;
    for (w, id) in ids.iter().enumerate() {
        let mut mine: Vec<&Past> = past.iter().filter(|p| usize::from(p.whose) == w).collect();
        mine.sort_by_key(|p| std::cmp::Reverse(p.ago_ms));
        for (n, p) in mine.iter().enumerate() {
            let dispatched = now - Duration::milliseconds(p.ago_ms);
            let ended = (dispatched + Duration::milliseconds(p.lasted_ms)).min(now);
            out.push(PastAttempt {
                reminder_id: *id,
                attempt: n as u32 + 1,
                dispatched_at: dispatched,
                ended_at: p.ended.then_some(ended),
                result: p.result,
            });
        }
        if w == 0 {
            own = mine.len() as u32;
        }
    }
    (out, own)
}

/// A due reminder's part of the generated data: who it calls, its debt's
/// past attempts, whether its own last attempt asked for a callback (how
/// long ago, and whether it is still waiting for it), its number suppressed.
#[derive(Debug, Clone)]
struct Due {
    who: Who,
    past: Vec<Past>,
    callback: Option<(i64, bool)>,
    suppressed: bool,
}

fn due() -> impl Strategy<Value = Due> {
    (
        who(),
        proptest::collection::vec(past(), 0..8),
        proptest::option::weighted(0.3, (1i64..(3 * 86_400_000), any::<bool>())),
        proptest::bool::weighted(0.08),
    )
        .prop_map(|(who, past, callback, suppressed)| Due {
            who,
            past,
            callback,
            suppressed,
        })
}

/// The reminder `ids[0]` of debt `debt_ref`, due at `now`, as the API's parser
/// makes it, and the attempts of its debt that `d` describes (`ids[1]`,
/// `ids[2]`: other reminders of the debt).
fn due_reminder(
    d: &Due,
    ids: [ReminderId; 3],
    debt_ref: &str,
    now: DateTime<Utc>,
) -> (Reminder, Vec<PastAttempt>) {
    let mut past = d.past.clone();
    if let Some((ago_ms, _)) = d.callback {
        let newest_own = past
            .iter()
            .filter(|p| p.whose == 0)
            .map(|p| p.ago_ms)
            .min()
            .unwrap_or(i64::MAX);
        past.push(Past {
            whose: 0,
            ago_ms: ago_ms.min(newest_own - 1).max(1),
            lasted_ms: 120_000,
            result: Some(OutcomeResult::CallbackRequested),
            ended: true,
        });
    }
    let (debt, own) = history(&ids, &past, now);
    let new = NewReminder::parse(&create_body(&d.who, debt_ref, json!({})), &defaults(&d.who))
        .expect("a valid create body");
    let mut reminder = new.into_reminder(ids[0], now - Duration::days(30));
    reminder.attempt_count = own;
    reminder.next_attempt_at = Some(now);
    let last_own = debt
        .iter()
        .filter(|a| a.reminder_id == ids[0])
        .max_by_key(|a| a.attempt);
    let waiting = d.callback.map_or(true, |(_, waiting)| waiting);
    reminder.skip_reason = match last_own.and_then(|a| a.result) {
        Some(OutcomeResult::CallbackRequested) if waiting => {
            Some(SKIP_CALLBACK_REQUESTED.to_owned())
        }
        Some(r) if r.is_unreached() => Some(r.as_str().to_owned()),
        _ => None,
    };
    (reminder, debt)
}

/// Zones whose clocks change, at various local hours (Havana, Santiago and
/// the Azores at midnight, Lord Howe by half an hour).
const CHANGING: &[&str] = &[
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Havana",
    "America/Santiago",
    "Europe/London",
    "Europe/Berlin",
    "Atlantic/Azores",
    "Asia/Beirut",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
];

/// A clock shortly before one of a zone's clock changes, and a window whose
/// edges sit around the local times either side of it: one that ends inside
/// the hour a fall-back repeats (it opens again at the change itself) or
/// starts inside the hour a spring-forward skips (it opens at the gap's end).
fn at_a_clock_change() -> impl Strategy<Value = (DateTime<Utc>, Tz, NaiveTime, NaiveTime, bool)> {
    (
        proptest::sample::select(CHANGING).prop_map(|z| z.parse::<Tz>().expect("zone")),
        2024i32..=2040,
        any::<bool>(),
        0i64..(3 * 3_600_000),
        0u32..8,
        0u32..8,
    )
        .prop_map(|(tz, year, later_half, before_ms, lead_q, span_q)| {
            let from = NaiveDate::from_ymd_opt(year, if later_half { 7 } else { 1 }, 1)
                .expect("a date")
                .and_time(NaiveTime::MIN)
                .and_utc();
            let change = offset_changes(tz, from, from + Duration::days(183))
                .first()
                .copied()
                .unwrap_or(from);
            let now = change - Duration::milliseconds(before_ms);
            let was = (change - Duration::seconds(1)).with_timezone(&tz).time();
            let is = change.with_timezone(&tz).time();
            let quarter = |t: NaiveTime| {
                let m = t.num_seconds_from_midnight() / 60;
                m - m % 15
            };
            let (start, end) = if is < was {
                // Fall-back: start at or before the repeated hour's start,
                // end inside it.
                let start = quarter(is).saturating_sub(lead_q * 15);
                let end = (quarter(is) + 15 * (1 + span_q % 4))
                    .min(quarter(was) + 15)
                    .max(start + 15);
                (start, end)
            } else {
                // Spring-forward: start inside the skipped hour.
                let start =
                    (quarter(was) + 15 * (1 + span_q % 4)).min(quarter(is).max(quarter(was) + 15));
                (start, start + 15 * (1 + lead_q))
            };
            let end = end.min(1440);
            let time = |m: u32| minutes(m.min(1439));
            (now, tz, time(start), time(end), end == 1440)
        })
}

fn plain_case() -> impl Strategy<Value = Case> {
    (clock(), rules_near(), due()).prop_map(|(now, rules, d)| {
        let (reminder, debt) = due_reminder(&d, [uuid(1), uuid(2), uuid(3)], "debt-1", now);
        Case {
            rules: rules.at(now),
            zones: oracle_zones(&d.who),
            reminder,
            debt,
            now,
            suppressed: d.suppressed,
        }
    })
}

/// A reminder in one zone whose clock is about to change, called in a window
/// around the change (every day, no cap or quiet period in the way).
fn clock_change_case() -> impl Strategy<Value = Case> {
    (at_a_clock_change(), rules_near(), due()).prop_map(
        |((now, tz, start, end, to_midnight), rules, mut d)| {
            d.who.given = Some(tz);
            d.who.policy = ZonePolicy::Given;
            d.past.clear();
            d.callback = None;
            d.suppressed = false;
            let (reminder, debt) = due_reminder(&d, [uuid(1), uuid(2), uuid(3)], "debt-1", now);
            let mut rules = rules.at(now);
            rules.window.start = start;
            rules.window.end = end;
            rules.window.to_midnight = to_midnight;
            rules.window.days = (0..7).collect();
            Case {
                rules,
                zones: oracle_zones(&d.who),
                reminder,
                debt,
                now,
                suppressed: false,
            }
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![6 => plain_case(), 1 => clock_change_case()]
}

/// Several due reminders of two debts, decided in one claim with `slots`
/// calls free.
#[derive(Debug, Clone)]
struct Batch {
    rules: Rules,
    now: DateTime<Utc>,
    /// In the claim's order (earliest due first), with the oracle's zones.
    candidates: Vec<(Reminder, Vec<Tz>)>,
    debts: HashMap<String, Vec<PastAttempt>>,
    suppressed: HashSet<String>,
    slots: usize,
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        clock(),
        rules_near(),
        proptest::collection::vec((due(), 0u8..2), 2..6),
        0usize..5,
    )
        .prop_map(|(now, rules, dues, slots)| {
            let mut debts: HashMap<String, Vec<PastAttempt>> = HashMap::new();
            let mut candidates = Vec::new();
            let mut suppressed = HashSet::new();
            for (i, (d, debt)) in dues.iter().enumerate() {
                let i = i as u128;
                let ids = [uuid(10 + i), uuid(20 + i), uuid(30 + i)];
                let debt_ref = format!("debt-{debt}");
                let (r, attempts) = due_reminder(d, ids, &debt_ref, now);
                debts.entry(debt_ref).or_default().extend(attempts);
                if d.suppressed {
                    suppressed.insert(r.phone_number.as_str().to_owned());
                }
                candidates.push((r, oracle_zones(&d.who)));
            }
            Batch {
                rules: rules.at(now),
                now,
                candidates,
                debts,
                suppressed,
                slots,
            }
        })
}

// ---------------------------------------------------------------------------
// The oracle: SPEC §7, written out plainly

struct Oracle<'a> {
    window: &'a CallingWindow,
    zones: &'a [Tz],
    /// When the debt's attempts were dispatched.
    dispatched: Vec<DateTime<Utc>>,
    /// Every cap that applies: attempts at most, per rolling period.
    caps: Vec<(usize, Duration)>,
    /// When the debt's conversations ended (none when its quiet period is
    /// lifted: the latest one is this reminder's own request to be called
    /// back, and it is that callback that is due).
    conversations: Vec<DateTime<Utc>>,
    quiet: Duration,
}

impl<'a> Oracle<'a> {
    fn new(rules: &'a Rules, r: &Reminder, zones: &'a [Tz], debt: &[PastAttempt]) -> Self {
        let mut caps = vec![(rules.frequency.max as usize, rules.frequency.period)];
        if let Some(region) = &r.region {
            caps.extend(
                rules
                    .region_frequency
                    .iter()
                    .filter(|(reg, _)| reg == region)
                    .map(|(_, f)| (f.max as usize, f.period)),
            );
        }
        let talks: Vec<(DateTime<Utc>, &PastAttempt)> = debt
            .iter()
            .filter(|a| a.result.is_some_and(spoken_with))
            .map(|a| (a.ended_at.unwrap_or(a.dispatched_at), a))
            .collect();
        // The callback the customer asked for: the debt's latest conversation
        // is this reminder's current attempt, which ended asking for it, and
        // the reminder waits for it (skip_reason callback_requested).
        let asked_callback = talks.iter().max_by_key(|(t, _)| *t).is_some_and(|(_, a)| {
            a.reminder_id == r.id
                && a.attempt == r.attempt_count
                && a.result == Some(OutcomeResult::CallbackRequested)
                && r.skip_reason.as_deref() == Some("callback_requested")
        });
        let quiet = rules.quiet_after_conversation;
        Self {
            window: &rules.window,
            zones,
            dispatched: debt.iter().map(|a| a.dispatched_at).collect(),
            caps,
            conversations: if asked_callback || quiet.is_zero() {
                Vec::new()
            } else {
                talks.iter().map(|(t, _)| *t).collect()
            },
            quiet,
        }
    }

    /// In `tz`, at `t`: a calling day, inside the hours, and (when asked) no
    /// blackout date — all read on the local clock.
    fn open_in(&self, t: DateTime<Utc>, tz: Tz, blackout_too: bool) -> bool {
        let local = t.with_timezone(&tz);
        let w = self.window;
        let weekday = local.weekday().num_days_from_monday() as u8;
        let time = local.time();
        w.days.contains(&weekday)
            && !(blackout_too && w.blackout.contains(&local.date_naive()))
            && time >= w.start
            && (w.to_midnight || time < w.end)
    }

    /// The window (hours, days, blackout dates) holds in every zone.
    fn window_ok(&self, t: DateTime<Utc>) -> bool {
        self.zones.iter().all(|z| self.open_in(t, *z, true))
    }

    /// Hours and days alone hold in every zone.
    fn hours_ok(&self, t: DateTime<Utc>) -> bool {
        self.zones.iter().all(|z| self.open_in(t, *z, false))
    }

    /// The local date is a blackout date in none of the zones.
    fn blackout_ok(&self, t: DateTime<Utc>) -> bool {
        self.zones.iter().all(|z| {
            !self
                .window
                .blackout
                .contains(&t.with_timezone(z).date_naive())
        })
    }

    /// Fewer attempts than each cap in the period ending at `t`.
    fn frequency_ok(&self, t: DateTime<Utc>) -> bool {
        self.caps.iter().all(|(max, period)| {
            let recent = self
                .dispatched
                .iter()
                .filter(|d| **d > t - *period && **d <= t)
                .count();
            recent < *max
        })
    }

    /// No conversation ended within the quiet period before `t`.
    fn quiet_ok(&self, t: DateTime<Utc>) -> bool {
        self.conversations
            .iter()
            .all(|e| !(*e <= t && t < *e + self.quiet))
    }

    fn allows(&self, t: DateTime<Utc>) -> bool {
        self.window_ok(t) && self.frequency_ok(t) && self.quiet_ok(t)
    }

    fn why_not(&self, t: DateTime<Utc>) -> String {
        let local: Vec<String> = self
            .zones
            .iter()
            .map(|z| format!("{} {}", z.name(), t.with_timezone(z).format("%a %F %T%:z")))
            .collect();
        format!(
            "at {t}: hours {} blackout {} frequency {} quiet {} — local {local:?}",
            self.hours_ok(t),
            self.blackout_ok(t),
            self.frequency_ok(t),
            self.quiet_ok(t)
        )
    }

    /// Every instant in `[from, to)` at which a stretch of time allowed by
    /// every rule can begin: `from`; in each zone, each day's window start
    /// (both readings of a repeated hour) and each change of the zone's
    /// offset (a gap or an overlap can carry the clock into the window); the
    /// moments attempts age out of a cap; the ends of quiet periods. The
    /// allowed set is a union of stretches closed on the left, so if no
    /// candidate is allowed, no instant in `[from, to)` is.
    fn candidates(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = vec![from];
        for &tz in self.zones {
            let mut day = from.with_timezone(&tz).date_naive() - Duration::days(1);
            let last = to.with_timezone(&tz).date_naive() + Duration::days(1);
            while day <= last {
                match tz.from_local_datetime(&day.and_time(self.window.start)) {
                    LocalResult::Single(a) => out.push(a.with_timezone(&Utc)),
                    LocalResult::Ambiguous(a, b) => {
                        out.push(a.with_timezone(&Utc));
                        out.push(b.with_timezone(&Utc));
                    }
                    LocalResult::None => {}
                }
                day += Duration::days(1);
            }
            out.extend(offset_changes(tz, from, to));
        }
        for (_, period) in &self.caps {
            out.extend(self.dispatched.iter().map(|d| *d + *period));
        }
        out.extend(self.conversations.iter().map(|e| *e + self.quiet));
        out.retain(|c| *c >= from && *c < to);
        out.sort();
        out.dedup();
        out
    }

    /// The zones share calling hours (days and hours, blackout dates aside)
    /// somewhere in `[from, to]`.
    fn common_hours(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.candidates(from, to + Duration::milliseconds(1))
            .into_iter()
            .any(|c| self.hours_ok(c))
    }
}

/// The instants after `from` at which `tz`'s offset from UTC changes, up to
/// `to` (and perhaps a little past it), found three hours at a time, then to
/// the second.
fn offset_changes(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let at = |s: i64| DateTime::from_timestamp(s, 0).expect("a time");
    let step = Duration::hours(3);
    let mut out = Vec::new();
    let mut a = from;
    while a < to {
        let b = a + step;
        if offset(a) != offset(b) {
            let (mut lo, mut hi) = (a.timestamp(), b.timestamp());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(at(mid)) == offset(a) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(at(hi));
        }
        a = b;
    }
    out
}

/// The deferral to `until` by `by` is right: later than `now`, allowed by
/// every rule, the claim at `until` would call, no earlier moment is allowed,
/// and `by` names a rule that held the reminder back at `now`.
fn check_deferral(
    rules: &Rules,
    r: &Reminder,
    o: &Oracle,
    debt: &[PastAttempt],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    by: DeferredBy,
) -> Result<(), TestCaseError> {
    prop_assert!(until > now, "deferred to {until}, not after {now}");
    prop_assert!(
        o.allows(until),
        "deferred to a moment not allowed: {}",
        o.why_not(until)
    );
    prop_assert_eq!(
        rules.decide(r, debt, false, until),
        CallVerdict::Now,
        "the claim at the deferred moment {} does not call",
        until
    );
    for c in o.candidates(now, until) {
        prop_assert!(
            !o.allows(c),
            "needless delay to {until}: every rule already allows {}",
            o.why_not(c)
        );
    }
    // A plain scan as well where it is short: every quarter hour.
    if until - now <= Duration::days(2) {
        let mut c = now;
        while c < until {
            prop_assert!(!o.allows(c), "needless delay to {until}: {}", o.why_not(c));
            c += Duration::minutes(15);
        }
    }
    let held = match by {
        DeferredBy::Window => !o.hours_ok(now),
        DeferredBy::Blackout => {
            // The window is closed now and a blackout date lies between now
            // and the deferral in some zone.
            !o.window_ok(now)
                && o.zones.iter().any(|z| {
                    let (a, b) = (
                        now.with_timezone(z).date_naive(),
                        until.with_timezone(z).date_naive(),
                    );
                    rules.window.blackout.range(a..=b).next().is_some()
                })
        }
        DeferredBy::Frequency => !o.frequency_ok(now),
        DeferredBy::QuietPeriod => !o.quiet_ok(now),
    };
    prop_assert!(
        held,
        "deferred_by {:?} held nothing: {}",
        by,
        o.why_not(now)
    );
    Ok(())
}

/// What one claim did with one of its candidates.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Claimed,
    Deferred(DateTime<Utc>, DeferredBy),
    Suppressed,
    NoLawfulTime,
    /// Left as it was: allowed, but no call slot was free.
    Left,
}

/// A claim's decisions on its candidates (in its order) break no rule: a
/// suppressed number is cancelled; zones with no common hours fail; a claimed
/// reminder is allowed by every rule, its debt's attempts counting those
/// claimed before it in the same claim; a deferred one goes to the first
/// moment every rule allows; one left as it is was allowed, with every slot
/// taken.
fn check_batch(
    rules: &Rules,
    now: DateTime<Utc>,
    candidates: &[(Reminder, Vec<Tz>)],
    mut debts: HashMap<String, Vec<PastAttempt>>,
    suppressed: &HashSet<String>,
    slots: usize,
    got: &[Got],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(candidates.len(), got.len());
    let mut used = 0;
    for ((r, zones), got) in candidates.iter().zip(got) {
        let debt = debts.entry(r.debt_ref.clone()).or_default();
        if suppressed.contains(r.phone_number.as_str()) {
            prop_assert_eq!(
                got,
                &Got::Suppressed,
                "{} is suppressed",
                r.phone_number.as_str()
            );
            continue;
        }
        let o = Oracle::new(rules, r, zones, debt);
        let allowed = o.allows(now);
        if !o.common_hours(now, now + Duration::days(9)) {
            prop_assert_eq!(got, &Got::NoLawfulTime, "zones {:?} share no hours", zones);
            continue;
        }
        match got {
            Got::Claimed => {
                prop_assert!(allowed, "claimed {}: {}", r.id, o.why_not(now));
                prop_assert!(used < slots, "claimed past the free slots");
                used += 1;
            }
            Got::Deferred(until, by) => {
                prop_assert!(!allowed, "deferred though allowed: {}", o.why_not(now));
                check_deferral(rules, r, &o, debt, now, *until, *by)?;
            }
            Got::Left => {
                prop_assert!(
                    allowed,
                    "left as it was though not allowed: {}",
                    o.why_not(now)
                );
                prop_assert_eq!(used, slots, "allowed and a slot free, yet not claimed");
            }
            other => prop_assert!(false, "{:?}: {}", other, o.why_not(now)),
        }
        if *got == Got::Claimed {
            debt.push(PastAttempt {
                reminder_id: r.id,
                attempt: r.attempt_count + 1,
                dispatched_at: now,
                ended_at: None,
                result: None,
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties of `Rules::decide`

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// SPEC §7 "Calling zones": the reminder's zones are its given zone and
    /// every zone libphonenumber gives its number (unless `ZONE_POLICY=given`
    /// and a zone was given), the default only when that leaves none.
    #[test]
    fn calling_zones_are_the_given_zone_and_every_zone_of_the_number(c in case()) {
        let mut got: Vec<Tz> = c.reminder.calling_zones.iter().map(|z| z.tz()).collect();
        if let Some(given) = c.reminder.timezone {
            prop_assert_eq!(got.first().copied(), Some(given.tz()), "the given zone first");
        }
        let n = got.len();
        got.sort_by_key(|z| z.name());
        got.dedup();
        prop_assert_eq!(got.len(), n, "no zone twice");
        prop_assert_eq!(got, c.zones.clone());
    }

    /// A call now breaks no rule: inside the window in every calling zone, on
    /// no blackout date, under every frequency cap of its debt (the region's
    /// too), outside every quiet period unless it is the callback asked for.
    /// And the other way: when every rule allows now, the verdict is now.
    #[test]
    fn a_call_now_breaks_no_rule(c in case()) {
        let o = Oracle::new(&c.rules, &c.reminder, &c.zones, &c.debt);
        let verdict = c.rules.decide(&c.reminder, &c.debt, c.suppressed, c.now);
        if verdict == CallVerdict::Now {
            prop_assert!(!c.suppressed);
            prop_assert!(o.window_ok(c.now), "outside the window: {}", o.why_not(c.now));
            prop_assert!(o.blackout_ok(c.now), "on a blackout date: {}", o.why_not(c.now));
            prop_assert!(o.frequency_ok(c.now), "above a cap: {}", o.why_not(c.now));
            prop_assert!(o.quiet_ok(c.now), "in a quiet period: {}", o.why_not(c.now));
        }
        if !c.suppressed && o.allows(c.now) {
            prop_assert_eq!(verdict, CallVerdict::Now, "every rule allows now");
        }
    }

    /// A deferral goes to the first moment every rule allows: no needless delay.
    #[test]
    fn a_deferral_is_the_first_moment_every_rule_allows(c in case()) {
        let o = Oracle::new(&c.rules, &c.reminder, &c.zones, &c.debt);
        let verdict = c.rules.decide(&c.reminder, &c.debt, c.suppressed, c.now);
        if let CallVerdict::Defer { until, by } = verdict {
            prop_assert!(!c.suppressed);
            check_deferral(&c.rules, &c.reminder, &o, &c.debt, c.now, until, by)?;
        }
    }

    /// A suppressed number is never dialled, whatever else holds (checked first).
    #[test]
    fn suppression_comes_first(c in case()) {
        prop_assert_eq!(
            c.rules.decide(&c.reminder, &c.debt, true, c.now),
            CallVerdict::Suppressed
        );
    }

    /// `no_lawful_calling_time` exactly when the calling zones share no
    /// calling hours (hours and days; the service looks nine days ahead).
    #[test]
    fn no_lawful_time_exactly_when_the_zones_share_no_hours(c in case()) {
        let o = Oracle::new(&c.rules, &c.reminder, &c.zones, &c.debt);
        let verdict = c.rules.decide(&c.reminder, &c.debt, false, c.now);
        let common = o.common_hours(c.now, c.now + Duration::days(9));
        prop_assert_eq!(
            verdict == CallVerdict::NoLawfulTime,
            !common,
            "{:?} for zones {:?}",
            verdict,
            c.zones.iter().map(|z| z.name()).collect::<Vec<_>>()
        );
    }

    /// One claim decides its candidates in turn, and a debt's attempts count
    /// those claimed before in the same claim (`plan_claims`).
    #[test]
    fn a_claim_holds_each_debt_to_its_caps_together(b in batch()) {
        let reminders: Vec<Reminder> = b.candidates.iter().map(|(r, _)| r.clone()).collect();
        let mut debts = b.debts.clone();
        let plan =
            plan_claims(&b.rules, &reminders, &mut debts, &b.suppressed, b.slots, b.now);
        let got: Vec<Got> = reminders
            .iter()
            .map(|r| match plan.iter().find(|(id, _)| *id == r.id).map(|(_, a)| a) {
                None => Got::Left,
                Some(ClaimAction::Claim) => Got::Claimed,
                Some(ClaimAction::Defer { until, by }) => Got::Deferred(*until, *by),
                Some(ClaimAction::CancelSuppressed) => Got::Suppressed,
                Some(ClaimAction::FailNoLawfulTime) => Got::NoLawfulTime,
            })
            .collect();
        let debts = b.debts.clone();
        check_batch(&b.rules, b.now, &b.candidates, debts, &b.suppressed, b.slots, &got)?;
    }
}

// ---------------------------------------------------------------------------
// Through the real store: the claim decides inside its transaction

/// One reminder to seed: who it calls, its debt (of two), and its attempts
/// so far, made through the store's own claim and ended through the state
/// machine (`None`: the attempt is still live). Seeding stops at an attempt
/// that leaves it unclaimable (a conversation that completes it, an opt-out).
#[derive(Debug, Clone)]
struct Seed {
    who: Who,
    debt: u8,
    attempts: Vec<Option<OutcomeResult>>,
    /// The first attempt, minutes before the clock; then the gaps between them.
    first_ago_min: i64,
    gaps_min: Vec<i64>,
    lasted_min: i64,
    /// When the callback its last attempt may ask for is wanted, from the clock.
    callback_in_min: i64,
    /// With no attempt: when it is first due, from the clock.
    scheduled_in_min: i64,
    /// Its number is put on the suppression list.
    suppress: bool,
}

/// What a seeded attempt came to: mostly unreached (the reminder stays due),
/// sometimes a callback asked for, a conversation, an opt-out, or nothing yet.
fn seeded_outcome() -> impl Strategy<Value = Option<OutcomeResult>> {
    use OutcomeResult as O;
    prop_oneof![
        5 => proptest::sample::select(vec![O::NoAnswer, O::Busy, O::Voicemail, O::NotAvailable])
            .prop_map(Some),
        2 => Just(Some(O::CallbackRequested)),
        2 => proptest::sample::select(vec![
            O::PaymentPromised, O::Paid, O::Refused, O::Disputed, O::Other, O::WrongNumber,
        ])
        .prop_map(Some),
        1 => Just(Some(O::OptedOut)),
        1 => Just(None),
    ]
}

fn seed() -> impl Strategy<Value = Seed> {
    (
        who(),
        0u8..2,
        proptest::collection::vec(seeded_outcome(), 0..4),
        (60 * 24)..(60 * 24 * 20i64),
        proptest::collection::vec(90..(60 * 24 * 4i64), 3),
        1..30i64,
        -(60 * 24 * 3)..(60 * 24i64),
        prop_oneof![3 => -(60 * 24 * 3)..0i64, 1 => 0..(60 * 24i64)],
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(
                who,
                debt,
                attempts,
                first_ago_min,
                gaps_min,
                lasted_min,
                callback_in_min,
                scheduled_in_min,
                suppress,
            )| Seed {
                who,
                debt,
                attempts,
                first_ago_min,
                gaps_min,
                lasted_min,
                callback_in_min,
                scheduled_in_min,
                suppress,
            },
        )
}

#[derive(Debug, Clone)]
struct StoreCase {
    now: DateTime<Utc>,
    rules: RulesNear,
    seeds: Vec<Seed>,
    max_live: u32,
}

fn store_case() -> impl Strategy<Value = StoreCase> {
    (
        clock(),
        rules_near(),
        proptest::collection::vec(seed(), 3..7),
        1u32..6,
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(now, mut rules, seeds, max_live, all_day)| {
            if all_day {
                // Open all day every day: more claims, so more of the caps
                // and quiet periods counting what the same claim called.
                rules.0.window.start = NaiveTime::MIN;
                rules.0.window.to_midnight = true;
                rules.0.window.days = (0..7).collect();
            }
            StoreCase {
                now,
                rules,
                seeds,
                max_live,
            }
        })
}

fn minutes_d(m: i64) -> Duration {
    Duration::minutes(m)
}

/// A retry policy that never holds a retry back long: seeding makes each
/// attempt hours after the last.
fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::minutes(1),
        window: CallingWindow {
            start: NaiveTime::MIN,
            end: NaiveTime::MIN,
            to_midnight: true,
            days: (0..7).collect(),
            blackout: BTreeSet::new(),
        },
    }
}

fn claimable(r: &Reminder) -> bool {
    r.attempts_remain()
        && match r.status {
            Status::Pending => true,
            Status::Failed => r.next_attempt_at.is_some(),
            _ => false,
        }
}

macro_rules! db {
    ($e:expr) => {
        $e.map_err(|e| TestCaseError::fail(format!("{}: {e:?}", stringify!($e))))?
    };
}

/// Seed the reminders and their attempts, then claim them all at the clock
/// with the generated rules, and check every decision the claim wrote.
async fn claim_through_the_store(backend: Backend, sc: StoreCase) -> Result<(), TestCaseError> {
    let Some(db) = TestDb::new(backend).await else {
        return Ok(());
    };
    let store = db.store().await;
    let result = seed_and_claim(&store, &sc).await;
    drop(store);
    db.cleanup().await;
    result
}

async fn seed_and_claim(store: &Arc<dyn Store>, sc: &StoreCase) -> Result<(), TestCaseError> {
    let now = sc.now;
    let rules = sc.rules.at(now);
    let anytime = common::any_time_rules();
    let retry = quick_retry();
    let numbers: HashSet<usize> = sc.seeds.iter().map(|s| s.who.number).collect();
    prop_assume!(
        numbers.len() == sc.seeds.len(),
        "a number of its own for each"
    );

    let mut ids = Vec::new();
    let mut meant_suppressed = HashSet::new();
    for (i, s) in sc.seeds.iter().enumerate() {
        let id = uuid(100 + i as u128);
        ids.push(id);
        let extra = if s.attempts.is_empty() {
            json!({"scheduled_for": (now + minutes_d(s.scheduled_in_min)).to_rfc3339()})
        } else {
            json!({})
        };
        let body = create_body(&s.who, &format!("debt-{}", s.debt), extra);
        let new = NewReminder::parse(&body, &defaults(&s.who)).expect("a valid create body");
        db!(store
            .create_reminder(&new, id, now - Duration::days(30))
            .await);
        let mut at = now - minutes_d(s.first_ago_min);
        for (k, result) in s.attempts.iter().enumerate() {
            if k > 0 {
                at += minutes_d(s.gaps_min[k - 1]);
            }
            if at > now - Duration::hours(1) {
                break;
            }
            let claimed = db!(store.claim(&[id], at, 1000, &anytime).await).claimed;
            prop_assert_eq!(claimed.len(), 1, "seeding attempt {} of {}", k + 1, id);
            let Some(result) = *result else {
                break; // left live
            };
            let last = k + 1 == s.attempts.len();
            let result = match result {
                OutcomeResult::CallbackRequested if !last => OutcomeResult::NoAnswer,
                r => r,
            };
            let ended = at + minutes_d(s.lasted_min);
            let r = db!(store.get_reminder(id).await).expect("seeded");
            let att = db!(store.get_attempt(id, r.attempt_count).await).expect("started");
            let outcome = Outcome {
                result,
                promised_amount_minor: None,
                promised_date: None,
                summary: None,
                transcript: None,
                duration_seconds: None,
                callback_at: (result == OutcomeResult::CallbackRequested)
                    .then(|| now + minutes_d(s.callback_in_min)),
            };
            let ev = Event {
                reminder_id: id,
                attempt: Some(r.attempt_count),
                occurred_at: ended,
                kind: EventKind::Completed(outcome),
            };
            let ctx = Ctx {
                now: ended,
                retry: &retry,
                jitter: 0.5,
                promise_grace_days: 3,
            };
            let d = transition(&r, Some(&att), &ev, &ctx);
            let applied = db!(store.apply(&d.change, None).await);
            prop_assert!(matches!(applied, Applied::Done(_)), "{:?}", applied);
            if result == OutcomeResult::OptedOut {
                meant_suppressed.insert(r.phone_number.as_str().to_owned());
            }
            if !claimable(&db!(store.get_reminder(id).await).expect("seeded")) {
                break;
            }
        }
        if s.suppress {
            let phone = PhoneNumber::parse(&NUMBERS[s.who.number].e164).expect("a number");
            meant_suppressed.insert(phone.as_str().to_owned());
            let add = SuppressNumber {
                phone_number: phone,
                reason: Reason::parse("on the do-not-call list").expect("a reason"),
                reminder_id: None,
            };
            db!(store.add_suppression(&add, now - Duration::hours(1)).await);
        }
    }

    // What the claim will see.
    let mut before = Vec::new();
    let mut debts: HashMap<String, Vec<PastAttempt>> = HashMap::new();
    let mut suppressed = HashSet::new();
    for (id, s) in ids.iter().zip(&sc.seeds) {
        let r = db!(store.get_reminder(*id).await).expect("seeded");
        let mut stored: Vec<&str> = r.calling_zones.iter().map(|z| z.name()).collect();
        stored.sort_unstable();
        let meant: Vec<&str> = oracle_zones(&s.who).iter().map(|z| z.name()).collect();
        prop_assert_eq!(
            stored,
            meant,
            "calling zones of {}",
            r.phone_number.as_str()
        );
        for a in db!(store.list_attempts(*id).await) {
            debts
                .entry(r.debt_ref.clone())
                .or_default()
                .push(PastAttempt {
                    reminder_id: r.id,
                    attempt: a.attempt,
                    dispatched_at: a.dispatched_at,
                    ended_at: a.ended_at,
                    result: a.outcome.map(|o| o.result),
                });
        }
        if db!(store.is_suppressed(&r.phone_number).await) {
            suppressed.insert(r.phone_number.as_str().to_owned());
        }
        before.push((r, oracle_zones(&s.who)));
    }
    prop_assert_eq!(&suppressed, &meant_suppressed);
    let live = db!(store.count_live().await);
    let slots = u64::from(sc.max_live).saturating_sub(live) as usize;

    let report = db!(store.claim(&ids, now, sc.max_live, &rules).await);

    let (mut candidates, others): (Vec<_>, Vec<_>) = before
        .into_iter()
        .partition(|(r, _)| claimable(r) && r.next_attempt_at.is_some_and(|n| n <= now));
    candidates.sort_by_key(|(r, _)| (r.next_attempt_at, r.id.to_string()));
    let mut got = Vec::new();
    for (b, _) in &candidates {
        let a = db!(store.get_reminder(b.id).await).expect("seeded");
        let g = if a.status == Status::InProgress && a.attempt_count == b.attempt_count + 1 {
            let att = db!(store.get_attempt(a.id, a.attempt_count).await).expect("started");
            prop_assert_eq!(att.dispatched_at, now);
            prop_assert!(report.claimed.iter().any(|c| c.id == a.id));
            Got::Claimed
        } else if a.status == Status::Cancelled && a.skip_reason.as_deref() == Some(SKIP_SUPPRESSED)
        {
            prop_assert!(report.suppressed.contains(&a.id));
            Got::Suppressed
        } else if a.status == Status::Failed
            && a.skip_reason.as_deref() == Some(SKIP_NO_LAWFUL_TIME)
        {
            prop_assert!(a.next_attempt_at.is_none());
            prop_assert!(report.no_lawful_time.contains(&a.id));
            Got::NoLawfulTime
        } else if a.next_attempt_at != b.next_attempt_at {
            let (Some(until), Some(by)) = (a.next_attempt_at, a.deferred_by) else {
                return Err(TestCaseError::fail(format!("moved without a rule: {a:?}")));
            };
            prop_assert_eq!(a.status, b.status);
            prop_assert!(report.deferred.contains(&(a.id, by)));
            Got::Deferred(until, by)
        } else {
            prop_assert_eq!((a.status, a.attempt_count), (b.status, b.attempt_count));
            Got::Left
        };
        got.push(g);
    }
    // What was not due is untouched.
    for (b, _) in &others {
        let a = db!(store.get_reminder(b.id).await).expect("seeded");
        prop_assert_eq!(
            (a.status, a.attempt_count, a.next_attempt_at, a.deferred_by),
            (b.status, b.attempt_count, b.next_attempt_at, b.deferred_by),
            "{} was not due",
            b.id
        );
    }
    check_batch(&rules, now, &candidates, debts, &suppressed, slots, &got)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// SQLite: every reminder the claim calls is allowed by every rule, every
    /// one it defers goes to the first moment every rule allows.
    #[test]
    fn the_claim_keeps_every_rule_on_sqlite(sc in store_case()) {
        runtime().block_on(claim_through_the_store(Backend::Sqlite, sc))?;
    }

}

/// Every table of the test's PostgreSQL schema emptied (its migrations kept).
const EMPTY_SCHEMA: &str = "DO $$ DECLARE t text; BEGIN \
    FOR t IN SELECT tablename FROM pg_tables \
        WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations' \
    LOOP EXECUTE format('TRUNCATE %I CASCADE', t); END LOOP; END $$";

/// The same on PostgreSQL (skipped, loudly, when it is not there and not
/// required). A schema of its own per case costs PostgreSQL about a third of
/// a second, so the cases share one and empty it before each.
#[test]
fn the_claim_keeps_every_rule_on_postgres() {
    use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
    let rt = runtime();
    let Some(db) = rt.block_on(TestDb::new(Backend::Postgres)) else {
        return;
    };
    let store = rt.block_on(db.store());
    let mut runner = TestRunner::new(Config {
        cases: 24,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let result = runner.run(&store_case(), |sc| {
        rt.block_on(async {
            db.execute(EMPTY_SCHEMA).await;
            seed_and_claim(&store, &sc).await
        })
    });
    drop(store);
    rt.block_on(db.cleanup());
    if let Err(e) = result {
        panic!("{e}");
    }
}
