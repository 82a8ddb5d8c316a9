//! Bulk seeding for the benchmarks: many rows per statement, straight into
//! duecall's tables (after its own migrations have run), so a benchmark spends
//! its time on what it measures.
//!
//! The claim and scale benchmarks seed a *realistic mix* (the calling rules of
//! SPEC §7 have real work to do): reminders grouped into debts of 1–4
//! reminders, numbers from a handful of zones (mostly one zone each, some
//! several), a tenth of the debts in US-MA (2 attempts in 7 days), a quarter
//! with recent attempts (the frequency caps count them), a few with a recent
//! conversation (the quiet period holds them), and a 10,000-number suppression
//! list that names 2 % of the debts. Every property of a debt is a hash of its
//! index, so a run is the same every time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use duecall::domain::{PhoneNumber, TimeZone, ZonePolicy};
use sqlx::{Connection, QueryBuilder};
use uuid::Uuid;

/// One reminder row to seed, with the attempts it has made.
#[derive(Clone)]
struct Row {
    id: Uuid,
    debt: Debt,
    status: &'static str,
    attempt_count: i32,
    max_attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    skip_reason: Option<&'static str>,
    /// Its attempts, oldest first (attempt 1, 2, …).
    attempts: Vec<SeedAttempt>,
}

#[derive(Clone, Copy)]
struct SeedAttempt {
    status: &'static str,
    dispatched_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    result: Option<&'static str>,
}

/// Reminders per statement (attempts go in statements of their own).
const PER_STATEMENT: usize = 1_000;
const ATTEMPTS_PER_STATEMENT: usize = 2_000;
/// Numbers on the suppression list.
pub const SUPPRESSIONS: usize = 10_000;

/// A debt: its index decides its number, zones, region, history and whether
/// its number is suppressed.
#[derive(Clone, Copy, Debug)]
struct Debt(u64);

/// A debt's earlier history (attempts of an earlier, ended reminder of it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum History {
    None,
    /// Three unanswered attempts, 6, 4 and 2 days ago: counted by the caps.
    RecentNoAnswer,
    /// A conversation (`refused`) 3 days ago: the quiet period holds the debt.
    RecentConversation,
    /// Attempts 20 days ago: outside every window, not read.
    Old,
}

/// splitmix64: a debt's properties, independent of each other.
fn mix(d: u64, salt: u64) -> u64 {
    let mut z = d
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Debt {
    fn debt_ref(self) -> String {
        format!("debt-{}", self.0)
    }

    /// 1 to 4 reminders (2.5 on average).
    fn size(self) -> usize {
        1 + (mix(self.0, 1) % 4) as usize
    }

    /// (number prefix, digits after it, the `timezone` given, region).
    fn zone_class(
        self,
    ) -> (
        &'static str,
        usize,
        Option<&'static str>,
        Option<&'static str>,
    ) {
        match mix(self.0, 2) % 100 {
            // Boston: US-MA's 2/7d cap.
            0..=9 => ("+1617", 7, Some("America/New_York"), Some("US-MA")),
            10..=39 => ("+1212", 7, Some("America/New_York"), None),
            40..=54 => ("+1312", 7, None, None),
            55..=64 => ("+1303", 7, None, None),
            65..=79 => ("+1415", 7, Some("America/Los_Angeles"), None),
            80..=84 => ("+1808", 7, None, None),
            // Numbers that may be in several zones (libphonenumber's data):
            // Boise + Los Angeles (Idaho: 208, 986), Adak + Anchorage.
            85..=89 => ("+1208", 7, None, None),
            90..=93 => ("+1986", 7, None, None),
            94..=95 => ("+1907", 7, None, None),
            96..=97 => ("+4420", 8, None, None),
            // Tokyo: outside the window at the benchmark's hour.
            _ => ("+813", 8, None, None),
        }
    }

    fn phone(self) -> String {
        let (prefix, digits, _, _) = self.zone_class();
        // Exchanges from 200 up (NANP), unique per debt below 8 M debts.
        format!("{prefix}{:0digits$}", 2_000_000 + self.0)
    }

    fn history(self) -> History {
        match mix(self.0, 3) % 100 {
            0..=24 => History::RecentNoAnswer,
            25..=27 => History::RecentConversation,
            28..=39 => History::Old,
            _ => History::None,
        }
    }

    fn suppressed(self) -> bool {
        mix(self.0, 4) % 100 < 2
    }

    /// (timezone column, timezone given, calling zones, region).
    fn zones(self) -> (String, bool, Vec<String>, Option<&'static str>) {
        let (_, _, given, region) = self.zone_class();
        let given = given.map(|z| TimeZone::parse(z).expect("a zone"));
        let phone = PhoneNumber::parse(&self.phone()).expect("an E.164 number");
        let default = TimeZone::parse("America/New_York").expect("a zone");
        let zones = duecall::domain::calling_zones(given, &phone, ZonePolicy::All, default);
        let primary = given.unwrap_or(zones[0]);
        (
            primary.name().to_owned(),
            given.is_some(),
            zones.iter().map(|z| z.name().to_owned()).collect(),
            region,
        )
    }
}

/// What was seeded, so the reader sees the mix.
#[derive(Default, Debug)]
pub struct Mix {
    pub due: usize,
    pub debts: usize,
    pub due_debts_with_recent_attempts: usize,
    pub due_debts_with_recent_conversation: usize,
    pub due_debts_in_us_ma: usize,
    pub due_multi_zone: usize,
    pub due_suppressed: usize,
    pub rows: usize,
    pub attempts: usize,
    pub suppressions: usize,
}

impl Mix {
    pub fn describe(&self) -> String {
        format!(
            "{} reminders, {} attempts, {} suppressed numbers; {} due in {} debts \
             ({} debts with attempts in the last 7 days, {} with a conversation in them, \
             {} in US-MA; {} due reminders with several calling zones, {} with a suppressed number)",
            self.rows,
            self.attempts,
            self.suppressions,
            self.due,
            self.debts,
            self.due_debts_with_recent_attempts,
            self.due_debts_with_recent_conversation,
            self.due_debts_in_us_ma,
            self.due_multi_zone,
            self.due_suppressed,
        )
    }
}

/// The rows of one debt with `due` reminders due at `at`, plus the earlier
/// reminder that carries its history (if it has one).
fn due_debt(d: Debt, due: usize, at: DateTime<Utc>, now: DateTime<Utc>, mix: &mut Mix) -> Vec<Row> {
    let mut rows: Vec<Row> = (0..due).map(|_| pending(d, at)).collect();
    mix.due += due;
    mix.debts += 1;
    let (_, _, zones, region) = d.zones();
    if zones.len() > 1 {
        mix.due_multi_zone += due;
    }
    if region.is_some() {
        mix.due_debts_in_us_ma += 1;
    }
    if d.suppressed() {
        mix.due_suppressed += due;
    }
    let no_answer = |days: i64| SeedAttempt {
        status: "completed",
        dispatched_at: now - Duration::days(days),
        ended_at: Some(now - Duration::days(days) + Duration::seconds(40)),
        result: Some("no_answer"),
    };
    let earlier = match d.history() {
        History::None => None,
        History::RecentNoAnswer => {
            mix.due_debts_with_recent_attempts += 1;
            Some(ended(
                d,
                "failed",
                Some("max_attempts"),
                vec![no_answer(6), no_answer(4), no_answer(2)],
            ))
        }
        History::RecentConversation => {
            mix.due_debts_with_recent_attempts += 1;
            mix.due_debts_with_recent_conversation += 1;
            let at = now - Duration::days(3);
            Some(ended(
                d,
                "completed",
                None,
                vec![SeedAttempt {
                    status: "completed",
                    dispatched_at: at,
                    ended_at: Some(at + Duration::seconds(95)),
                    result: Some("refused"),
                }],
            ))
        }
        History::Old => Some(ended(
            d,
            "completed",
            None,
            vec![no_answer(22), no_answer(20)],
        )),
    };
    rows.extend(earlier);
    rows
}

fn pending(debt: Debt, at: DateTime<Utc>) -> Row {
    Row {
        id: Uuid::now_v7(),
        debt,
        status: "pending",
        attempt_count: 0,
        max_attempts: 3,
        next_attempt_at: Some(at),
        last_attempt_at: None,
        skip_reason: None,
        attempts: Vec::new(),
    }
}

fn ended(
    debt: Debt,
    status: &'static str,
    skip_reason: Option<&'static str>,
    attempts: Vec<SeedAttempt>,
) -> Row {
    Row {
        id: Uuid::now_v7(),
        debt,
        status,
        attempt_count: attempts.len() as i32,
        max_attempts: 3.max(attempts.len() as i32),
        next_attempt_at: None,
        last_attempt_at: attempts.last().map(|a| a.dispatched_at),
        skip_reason,
        attempts,
    }
}

/// `n` reminders with a live first attempt (`in_progress`), dispatched a
/// minute ago, each its own debt; returns their ids.
pub async fn live(url: &str, n: usize, now: DateTime<Utc>) -> anyhow::Result<Vec<Uuid>> {
    let rows: Vec<Row> = (0..n as u64)
        .map(|d| live_row(Debt(d), now - Duration::minutes(1)))
        .collect();
    insert(url, &rows, &[]).await?;
    Ok(rows.iter().map(|r| r.id).collect())
}

fn live_row(debt: Debt, at: DateTime<Utc>) -> Row {
    Row {
        id: Uuid::now_v7(),
        debt,
        status: "in_progress",
        attempt_count: 1,
        max_attempts: 3,
        next_attempt_at: None,
        last_attempt_at: Some(at),
        skip_reason: None,
        attempts: vec![SeedAttempt {
            status: "in_progress",
            dispatched_at: at,
            ended_at: None,
            result: None,
        }],
    }
}

/// `n` pending reminders due before `now`, each its own debt and number in
/// New York, no history, nothing suppressed: a claim with nothing to hold
/// back (the claim benchmark's ceiling).
pub async fn plain_due(url: &str, n: usize, now: DateTime<Utc>) -> anyhow::Result<Mix> {
    // Debts whose zone class is New York with no region, history or suppression.
    let rows: Vec<Row> = (0u64..)
        .map(Debt)
        .filter(|d| d.zone_class().0 == "+1212" && d.history() == History::None && !d.suppressed())
        .take(n)
        .enumerate()
        .map(|(i, d)| pending(d, due_at(now, i)))
        .collect();
    insert(url, &rows, &[]).await?;
    Ok(Mix {
        due: n,
        debts: n,
        rows: n,
        ..Mix::default()
    })
}

/// Spread the due times over a second before `now - 1 min`, so "earliest due
/// first" orders something.
fn due_at(now: DateTime<Utc>, i: usize) -> DateTime<Utc> {
    now - Duration::minutes(1) - Duration::milliseconds((i % 1000) as i64)
}

/// `n` reminders due before `now` in the realistic mix (module doc), with
/// their debts' earlier reminders and the suppression list.
pub async fn due(url: &str, n: usize, now: DateTime<Utc>) -> anyhow::Result<Mix> {
    let mut mix = Mix::default();
    let mut rows = Vec::new();
    let mut suppressed = Vec::new();
    let mut d = 0u64;
    while mix.due < n {
        let debt = Debt(d);
        let k = debt.size().min(n - mix.due);
        if debt.suppressed() {
            suppressed.push(debt.phone());
        }
        rows.extend(due_debt(debt, k, due_at(now, mix.due), now, &mut mix));
        d += 1;
    }
    let list = suppression_list(suppressed);
    mix.rows = rows.len();
    mix.attempts = rows.iter().map(|r| r.attempts.len()).sum();
    mix.suppressions = list.len();
    insert(url, &rows, &list).await?;
    Ok(mix)
}

/// The suppression list: `named` first, then numbers of nobody seeded, to
/// [`SUPPRESSIONS`] in all.
fn suppression_list(mut named: Vec<String>) -> Vec<String> {
    named.truncate(SUPPRESSIONS);
    let filler = SUPPRESSIONS - named.len();
    named.extend((0..filler as u64).map(|i| format!("+1646{:07}", 2_000_000 + i)));
    named
}

/// Where the scale table's due and live reminders' debts start (the ended
/// ones' count from 0, and stay below at every size).
const DUE_DEBTS: u64 = 5_000_000;
const LIVE_DEBTS: u64 = 6_000_000;

/// A table of about `rows` reminders as a busy deployment has it, in the
/// realistic mix: nearly all ended (completed, cancelled, terminally failed,
/// 1–3 attempts each over the last four months), a few waiting for a later
/// time, plus exactly 100 due now (in debts of their own, the same at every
/// size, with the histories of the mix) and 50 live attempts of which 25 are overdue once the clock
/// moves 2 minutes (dispatched 9 minutes before `now`; the dispatch timeout is
/// 10). Returns what it seeded and 20 numbers, spread over the table, with how
/// many reminders each has (the dashboard's search).
pub async fn table(
    url: &str,
    rows: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<(Mix, Vec<(String, usize)>)> {
    let fixed = 100 + 50;
    let target = rows.saturating_sub(fixed);
    let mut all = Vec::with_capacity(rows + rows / 10);
    let mut suppressed_due = Vec::new();
    let mut suppressed_ended = Vec::new();
    let mut sizes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut d = 0u64;
    let mut i = 0usize;
    while i < target {
        let debt = Debt(d);
        let k = debt.size().min(target - i);
        sizes.insert(d, k);
        if debt.suppressed() {
            suppressed_ended.push(debt.phone());
        }
        for _ in 0..k {
            all.push(table_row(debt, i, now));
            i += 1;
        }
        d += 1;
    }
    let mut mix = Mix::default();
    let mut due = 0;
    // The due reminders' debts are the same at every size: the same mix is
    // decided against tables of 10 k … 1 M.
    let mut d = DUE_DEBTS;
    while due < 100 {
        let debt = Debt(d);
        let k = debt.size().min(100 - due);
        if debt.suppressed() {
            suppressed_due.push(debt.phone());
        }
        all.extend(due_debt(debt, k, now - Duration::minutes(5), now, &mut mix));
        due += k;
        d += 1;
    }
    for j in 0..50 {
        let ago = if j < 25 {
            Duration::minutes(9)
        } else {
            Duration::seconds(30)
        };
        all.push(live_row(Debt(LIVE_DEBTS + j), now - ago));
    }
    suppressed_due.extend(suppressed_ended);
    let list = suppression_list(suppressed_due);
    mix.rows = all.len();
    mix.attempts = all.iter().map(|r| r.attempts.len()).sum();
    mix.suppressions = list.len();
    let ended_debts = sizes.len() as u64;
    let samples = (0..20u64)
        .map(|s| {
            let d = s * (ended_debts / 20).max(1);
            (Debt(d).phone(), sizes[&d])
        })
        .collect();
    insert(url, &all, &list).await?;
    Ok((mix, samples))
}

/// How the table's completed reminders ended (their last attempt), in turn:
/// four in ten promised to pay (the glance's promises), the rest the other
/// conversations and a wrong number.
const ENDINGS: [&str; 10] = [
    "payment_promised",
    "refused",
    "payment_promised",
    "disputed",
    "paid",
    "payment_promised",
    "wrong_number",
    "callback_requested",
    "payment_promised",
    "other",
];

/// The `i`th ended (or later) reminder of the table, of debt `debt`.
fn table_row(debt: Debt, i: usize, now: DateTime<Utc>) -> Row {
    let k = 1 + (i % 3);
    // Spread over the last 120 days (the glance reads up to 90).
    let last = now - Duration::days(1 + (i % 120) as i64) - Duration::minutes((i % 1440) as i64);
    let attempt = |n: usize, result| {
        let at = last - Duration::days(2 * (k - 1 - n) as i64);
        SeedAttempt {
            status: "completed",
            dispatched_at: at,
            ended_at: Some(at + Duration::seconds(60)),
            result: Some(result),
        }
    };
    let tries = |last_result| {
        (0..k)
            .map(|n| attempt(n, if n + 1 == k { last_result } else { "no_answer" }))
            .collect::<Vec<_>>()
    };
    match i % 100 {
        0..=89 => ended(
            debt,
            "completed",
            None,
            tries(ENDINGS[(i / 100) % ENDINGS.len()]),
        ),
        90..=94 => ended(debt, "cancelled", Some("cancelled"), Vec::new()),
        95..=97 => ended(debt, "failed", Some("max_attempts"), tries("no_answer")),
        // Waiting for later: pending, due in the future.
        _ => pending(debt, now + Duration::hours(1 + (i % 48) as i64)),
    }
}

/// How many reminders each rule deferred (`deferred_by`), from the table.
pub async fn deferred_by(url: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let sql = "SELECT deferred_by, COUNT(*) FROM reminders WHERE deferred_by IS NOT NULL \
               GROUP BY deferred_by ORDER BY deferred_by";
    Ok(if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query_as(sql).fetch_all(&mut conn).await?
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query_as(sql).fetch_all(&mut conn).await?
    })
}

/// Insert the rows, their attempts, and the suppression list.
async fn insert(url: &str, rows: &[Row], suppressions: &[String]) -> anyhow::Result<()> {
    // Migrate through duecall itself, so the schema is exactly the service's.
    drop(duecall::store::connect(url, 2).await?);
    // libphonenumber's data splits some area codes by exchange: each debt's own.
    let zones_of = |d: Debt| d.zones();
    let attempts: Vec<(Uuid, i32, SeedAttempt, String)> = rows
        .iter()
        .flat_map(|r| {
            r.attempts
                .iter()
                .enumerate()
                .map(move |(n, a)| (r.id, n as i32 + 1, *a, r.debt.debt_ref()))
        })
        .collect();
    let outcome = |a: &SeedAttempt| a.result.map(|r| serde_json::json!({ "result": r }));
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        for chunk in rows.chunks(PER_STATEMENT) {
            let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new(
                "INSERT INTO reminders (id, customer_name, phone_number, timezone, language, \
                 amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
                 next_attempt_at, last_attempt_at, skip_reason, metadata, created_at, updated_at, \
                 debt_ref, region, calling_zones, timezone_given) ",
            );
            qb.push_values(chunk, |mut b, r| {
                let (tz, given, calling, region) = zones_of(r.debt);
                let created = r
                    .attempts
                    .first()
                    .map(|a| a.dispatched_at)
                    .or(r.next_attempt_at)
                    .unwrap_or_else(Utc::now)
                    - Duration::hours(1);
                b.push_bind(r.id)
                    .push_bind("Bench Customer")
                    .push_bind(r.debt.phone())
                    .push_bind(tz)
                    .push_bind("en")
                    .push_bind(12_345i64)
                    .push_bind("USD")
                    .push_bind(chrono::NaiveDate::from_ymd_opt(2026, 12, 1))
                    .push_bind(r.status)
                    .push_bind(r.attempt_count)
                    .push_bind(r.max_attempts)
                    .push_bind(r.next_attempt_at)
                    .push_bind(r.last_attempt_at)
                    .push_bind(r.skip_reason)
                    .push_bind(serde_json::json!({}))
                    .push_bind(created)
                    .push_bind(created)
                    .push_bind(r.debt.debt_ref())
                    .push_bind(region)
                    .push_bind(calling)
                    .push_bind(given);
            });
            qb.build().execute(&mut conn).await?;
        }
        for chunk in attempts.chunks(ATTEMPTS_PER_STATEMENT) {
            let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new(
                "INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, \
                 ended_at, outcome, updated_at, debt_ref) ",
            );
            qb.push_values(chunk, |mut b, (id, n, a, debt)| {
                b.push_bind(*id)
                    .push_bind(*n)
                    .push_bind(a.status)
                    .push_bind(format!("reminder-{id}-{n}"))
                    .push_bind(a.dispatched_at)
                    .push_bind(a.ended_at)
                    .push_bind(outcome(a))
                    .push_bind(a.ended_at.unwrap_or(a.dispatched_at))
                    .push_bind(debt.clone());
            });
            qb.build().execute(&mut conn).await?;
        }
        for chunk in suppressions.chunks(PER_STATEMENT) {
            let mut qb: QueryBuilder<sqlx::Postgres> = QueryBuilder::new(
                "INSERT INTO suppressions (phone_number, reason, reminder_id, created_at) ",
            );
            qb.push_values(chunk, |mut b, phone| {
                b.push_bind(phone)
                    .push_bind("asked not to be called")
                    .push_bind(None::<Uuid>)
                    .push_bind(Utc::now() - Duration::days(30));
            });
            qb.build().execute(&mut conn).await?;
        }
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        for chunk in rows.chunks(PER_STATEMENT) {
            let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                "INSERT INTO reminders (id, customer_name, phone_number, timezone, language, \
                 amount_due_minor, currency, due_date, status, attempt_count, max_attempts, \
                 next_attempt_at, last_attempt_at, skip_reason, metadata, created_at, updated_at, \
                 debt_ref, region, calling_zones, timezone_given) ",
            );
            qb.push_values(chunk, |mut b, r| {
                let (tz, given, calling, region) = zones_of(r.debt);
                let created = r
                    .attempts
                    .first()
                    .map(|a| a.dispatched_at)
                    .or(r.next_attempt_at)
                    .unwrap_or_else(Utc::now)
                    - Duration::hours(1);
                b.push_bind(r.id.to_string())
                    .push_bind("Bench Customer")
                    .push_bind(r.debt.phone())
                    .push_bind(tz)
                    .push_bind("en")
                    .push_bind(12_345i64)
                    .push_bind("USD")
                    .push_bind("2026-12-01")
                    .push_bind(r.status)
                    .push_bind(r.attempt_count)
                    .push_bind(r.max_attempts)
                    .push_bind(r.next_attempt_at.map(ms))
                    .push_bind(r.last_attempt_at.map(ms))
                    .push_bind(r.skip_reason)
                    .push_bind("{}")
                    .push_bind(ms(created))
                    .push_bind(ms(created))
                    .push_bind(r.debt.debt_ref())
                    .push_bind(region)
                    .push_bind(serde_json::to_string(&calling).expect("JSON"))
                    .push_bind(given);
            });
            qb.build().execute(&mut conn).await?;
        }
        for chunk in attempts.chunks(ATTEMPTS_PER_STATEMENT) {
            let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                "INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, \
                 ended_at, outcome, updated_at, debt_ref) ",
            );
            qb.push_values(chunk, |mut b, (id, n, a, debt)| {
                b.push_bind(id.to_string())
                    .push_bind(*n)
                    .push_bind(a.status)
                    .push_bind(format!("reminder-{id}-{n}"))
                    .push_bind(ms(a.dispatched_at))
                    .push_bind(a.ended_at.map(ms))
                    .push_bind(outcome(a).map(|o| o.to_string()))
                    .push_bind(ms(a.ended_at.unwrap_or(a.dispatched_at)))
                    .push_bind(debt.clone());
            });
            qb.build().execute(&mut conn).await?;
        }
        for chunk in suppressions.chunks(PER_STATEMENT) {
            let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                "INSERT INTO suppressions (phone_number, reason, reminder_id, created_at) ",
            );
            qb.push_values(chunk, |mut b, phone| {
                b.push_bind(phone)
                    .push_bind("asked not to be called")
                    .push_bind(None::<String>)
                    .push_bind(ms(Utc::now() - Duration::days(30)));
            });
            qb.build().execute(&mut conn).await?;
        }
    }
    Ok(())
}
