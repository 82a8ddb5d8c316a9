//! A whole event batch's writes as one statement (PostgreSQL).
//!
//! Job by job, an event costs one statement of five CTEs (`apply_stmt`) and
//! its notices two more per batch (`notices::write_pending`), and
//! PostgreSQL's CPU per event was mostly that statement's start-up: binding,
//! planning, and initialising its executor nodes (PERFORMANCE §1e). Here every
//! job's event row, reminder and attempt are written by one statement over
//! `unnest`ed arrays — with their notices (SPEC §9), numbered after each
//! reminder's last as the batch's read found it — so a batch pays that once.
//!
//! It writes exactly what `apply_stmt` would, for the jobs it takes:
//! - Each job was decided on its reminder and attempt as the batch read them
//!   with the reminders locked, so the guards hold by construction; the
//!   statement checks them anyway (`WHERE` on the expected status and count)
//!   and reports how many rows it wrote, and a batch whose counts are not the
//!   ones expected is rolled back and done job by job (`Written::Mismatch`).
//! - An event whose `webhook-id` is already recorded writes nothing else (its
//!   reminder and attempt are joined to the events actually inserted), and is
//!   answered `Duplicate`, as alone.
//! - The reminder each job leaves is computed (`ReminderUpdate::applied_to`,
//!   as SQLite's writer does), not read back; its times are written to the
//!   millisecond, as `applied_to` computes them. Every time a change carries
//!   is already whole milliseconds (the clock's, and the webhook's parsed
//!   ones), so this writes what `apply_stmt` would.
//!
//! It takes only the common batch (`fits`): every job an event about a
//! different reminder, none starting an attempt, adding a number to the
//! suppression list or carrying an operator's action. Any other batch is
//! written job by job, as before.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgConnection;
use sqlx::Row;
use uuid::Uuid;

use super::to_json;
use crate::clock::to_millis;
use crate::domain::{Attempt, AttemptWrite, Change, Notice, Reminder};
use crate::store::{new_notice_id, EventRecord};

/// Whether the one statement writes this job exactly as `apply_stmt` would:
/// decided on `before` and `attempt` as read under the batch's lock.
pub(super) fn fits(
    change: &Change,
    event: &EventRecord,
    before: &Reminder,
    attempt: Option<&Attempt>,
) -> bool {
    let simple = change.suppress.is_none() && change.action.is_none();
    let same = change.reminder_id == before.id && event.reminder_id == before.id;
    let guarded =
        before.status == change.expect_status && before.attempt_count == change.expect_attempt;
    let attempt_ok = match &change.attempt {
        None => true,
        Some(AttemptWrite::Start { .. }) => false,
        Some(AttemptWrite::Update {
            attempt: n,
            expect_status,
            ..
        }) => attempt.is_some_and(|a| a.attempt == *n && a.status == *expect_status),
    };
    simple && same && guarded && attempt_ok
}

/// What the statement did.
pub(super) enum Written {
    /// The `webhook-id`s it inserted: those jobs are written, the others were
    /// repeats and wrote nothing.
    Inserted(HashSet<String>),
    /// It wrote other rows than the jobs expected: the transaction must be
    /// rolled back (and the batch done job by job).
    Mismatch,
}

const WRITE: &str = "WITH v AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::int[], \
     $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bool[], $8::text[], $9::text[]) \
     AS v(webhook_id, reminder_id, attempt, event_type, occurred_at, received_at, applied, \
     verdict, payload)), \
 ev AS (INSERT INTO events (webhook_id, reminder_id, attempt, event_type, occurred_at, \
     received_at, applied, verdict, payload) SELECT webhook_id, reminder_id, attempt, \
     event_type, occurred_at, received_at, applied, verdict, payload FROM v \
     ON CONFLICT (webhook_id) DO NOTHING RETURNING webhook_id), \
 u AS (SELECT * FROM unnest($10::text[], $11::uuid[], $12::text[], $13::int[], $14::text[], \
     $15::int[], $16::timestamptz[], $17::timestamptz[], $18::text[], $19::jsonb[], \
     $20::timestamptz[], $21::bool[], $22::bigint[], $23::date[], $24::text[], \
     $25::timestamptz[], $26::timestamptz[]) \
     AS u(webhook_id, id, expect_status, expect_attempt, status, attempt_count, \
     next_attempt_at, last_attempt_at, skip_reason, outcome, at, promise, p_amount, p_date, \
     p_status, p_opened_at, p_deadline)), \
 rem AS (UPDATE reminders r SET status = u.status, attempt_count = u.attempt_count, \
     next_attempt_at = u.next_attempt_at, last_attempt_at = u.last_attempt_at, \
     skip_reason = u.skip_reason, outcome = COALESCE(u.outcome, r.outcome), \
     deferred_by = NULL, updated_at = u.at, \
     promise_amount_minor = CASE WHEN u.promise THEN u.p_amount ELSE r.promise_amount_minor END, \
     promise_date = CASE WHEN u.promise THEN u.p_date ELSE r.promise_date END, \
     promise_status = CASE WHEN u.promise THEN u.p_status ELSE r.promise_status END, \
     promise_opened_at = CASE WHEN u.promise THEN u.p_opened_at ELSE r.promise_opened_at END, \
     promise_deadline = CASE WHEN u.promise THEN u.p_deadline ELSE r.promise_deadline END, \
     promise_decided_at = CASE WHEN u.promise THEN NULL ELSE r.promise_decided_at END, \
     promise_follow_up_id = CASE WHEN u.promise THEN NULL ELSE r.promise_follow_up_id END \
     FROM u JOIN ev ON ev.webhook_id = u.webhook_id \
     WHERE r.id = u.id AND r.status = u.expect_status AND r.attempt_count = u.expect_attempt \
     RETURNING 1), \
 w AS (SELECT * FROM unnest($27::text[], $28::uuid[], $29::int[], $30::text[], $31::text[], \
     $32::timestamptz[], $33::bool[], $34::timestamptz[], $35::jsonb[], $36::jsonb[], \
     $37::timestamptz[]) AS w(webhook_id, reminder_id, attempt, expect_status, status, \
     answered_at, replace_end, ended_at, outcome, failure, at)), \
 att AS (UPDATE attempts a SET status = w.status, \
     answered_at = COALESCE(a.answered_at, w.answered_at), \
     ended_at = CASE WHEN w.replace_end THEN w.ended_at ELSE COALESCE(a.ended_at, w.ended_at) END, \
     outcome = COALESCE(a.outcome, w.outcome), failure = COALESCE(a.failure, w.failure), \
     updated_at = w.at \
     FROM w JOIN ev ON ev.webhook_id = w.webhook_id \
     WHERE a.reminder_id = w.reminder_id AND a.attempt = w.attempt AND a.status = w.expect_status \
     RETURNING 1), \
 nt AS (INSERT INTO notifications (id, subject, sequence, reminder_id, type, body, status, \
     step, next_try_at, created_at) \
     SELECT n.id, n.subject, n.sequence, n.reminder_id, n.type, n.body, 'pending', 0, n.at, n.at \
     FROM unnest($38::text[], $39::text[], $40::text[], $41::int[], $42::uuid[], $43::text[], \
     $44::text[], $45::timestamptz[]) AS n(webhook_id, id, subject, sequence, reminder_id, type, \
     body, at) JOIN ev ON ev.webhook_id = n.webhook_id RETURNING 1) \
 SELECT ARRAY(SELECT webhook_id FROM ev) AS inserted, \
     (SELECT count(*) FROM rem) AS rems, (SELECT count(*) FROM att) AS atts, \
     (SELECT count(*) FROM nt) AS nts";

/// The events' columns, one array each.
#[derive(Default)]
struct Events<'a> {
    webhook_id: Vec<&'a str>,
    reminder_id: Vec<Uuid>,
    attempt: Vec<Option<i32>>,
    event_type: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
    received_at: Vec<DateTime<Utc>>,
    applied: Vec<bool>,
    verdict: Vec<&'a str>,
    payload: Vec<&'a str>,
}

/// The reminders' writes (`apply_stmt`'s `rem`), one array per column.
#[derive(Default)]
struct Reminders<'a> {
    webhook_id: Vec<&'a str>,
    id: Vec<Uuid>,
    expect_status: Vec<&'a str>,
    expect_attempt: Vec<i32>,
    status: Vec<&'a str>,
    attempt_count: Vec<i32>,
    next_attempt_at: Vec<Option<DateTime<Utc>>>,
    last_attempt_at: Vec<Option<DateTime<Utc>>>,
    skip_reason: Vec<Option<&'a str>>,
    outcome: Vec<Option<serde_json::Value>>,
    at: Vec<DateTime<Utc>>,
    promise: Vec<bool>,
    p_amount: Vec<Option<i64>>,
    p_date: Vec<Option<NaiveDate>>,
    p_status: Vec<Option<&'a str>>,
    p_opened_at: Vec<Option<DateTime<Utc>>>,
    p_deadline: Vec<Option<DateTime<Utc>>>,
}

/// The attempts' writes (`apply_stmt`'s `att`), one array per column.
#[derive(Default)]
struct Attempts<'a> {
    webhook_id: Vec<&'a str>,
    reminder_id: Vec<Uuid>,
    attempt: Vec<i32>,
    expect_status: Vec<&'a str>,
    status: Vec<&'a str>,
    answered_at: Vec<Option<DateTime<Utc>>>,
    replace_end: Vec<bool>,
    ended_at: Vec<Option<DateTime<Utc>>>,
    outcome: Vec<Option<serde_json::Value>>,
    failure: Vec<Option<serde_json::Value>>,
    at: Vec<DateTime<Utc>>,
}

/// A notice a job causes, numbered; written only if its job's event is.
pub(super) struct NoticeRow<'a> {
    pub webhook_id: &'a str,
    pub sequence: u32,
    pub notice: Notice,
}

/// Write every job (each `fits`, each about another reminder) and its
/// notices in one statement. `Mismatch`: roll the transaction back.
pub(super) async fn write(
    conn: &mut PgConnection,
    jobs: &[(&Change, &EventRecord)],
    notices: &[NoticeRow<'_>],
) -> Result<Written, sqlx::Error> {
    let mut ev = Events::default();
    let mut rem = Reminders::default();
    let mut att = Attempts::default();
    for (change, event) in jobs {
        let hook = event.webhook_id.as_str();
        ev.webhook_id.push(hook);
        ev.reminder_id.push(event.reminder_id.as_uuid());
        ev.attempt.push(event.attempt.map(|a| a as i32));
        ev.event_type.push(event.event_type.as_str());
        ev.occurred_at.push(event.occurred_at);
        ev.received_at.push(event.received_at);
        ev.applied.push(event.applied);
        ev.verdict.push(event.verdict.as_str());
        ev.payload.push(event.payload.as_str());
        let id = change.reminder_id.as_uuid();
        if let Some(u) = &change.reminder {
            rem.webhook_id.push(hook);
            rem.id.push(id);
            rem.expect_status.push(change.expect_status.as_str());
            rem.expect_attempt.push(change.expect_attempt as i32);
            rem.status.push(u.status.as_str());
            rem.attempt_count.push(u.attempt_count as i32);
            rem.next_attempt_at.push(u.next_attempt_at.map(to_millis));
            rem.last_attempt_at.push(u.last_attempt_at.map(to_millis));
            rem.skip_reason.push(u.skip_reason.as_deref());
            rem.outcome.push(u.outcome.as_ref().map(to_json));
            rem.at.push(to_millis(change.at));
            let p = u.promise.as_ref();
            rem.promise.push(p.is_some());
            rem.p_amount.push(p.map(|p| p.amount_minor));
            rem.p_date.push(p.map(|p| p.date));
            rem.p_status.push(p.map(|p| p.status.as_str()));
            rem.p_opened_at.push(p.map(|p| p.opened_at));
            rem.p_deadline.push(p.map(|p| p.deadline));
        }
        if let Some(AttemptWrite::Update {
            attempt,
            expect_status,
            status,
            answered_at,
            ended_at,
            replace_end,
            outcome,
            failure,
        }) = &change.attempt
        {
            att.webhook_id.push(hook);
            att.reminder_id.push(id);
            att.attempt.push(*attempt as i32);
            att.expect_status.push(expect_status.as_str());
            att.status.push(status.as_str());
            att.answered_at.push(answered_at.map(to_millis));
            att.replace_end.push(*replace_end);
            att.ended_at.push(ended_at.map(to_millis));
            att.outcome.push(outcome.as_ref().map(to_json));
            att.failure.push(failure.as_ref().map(to_json));
            att.at.push(to_millis(change.at));
        }
    }
    let n = notices.len();
    let mut nt = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for row in notices {
        let notice = &row.notice;
        nt.0.push(row.webhook_id);
        nt.1.push(new_notice_id());
        nt.2.push(notice.subject.as_str());
        nt.3.push(row.sequence as i32);
        nt.4.push(notice.reminder_id.map(|id| id.as_uuid()));
        nt.5.push(notice.kind.as_str());
        nt.6.push(notice.body(row.sequence));
        nt.7.push(notice.at);
    }
    let row = sqlx::query(WRITE)
        .bind(&ev.webhook_id)
        .bind(&ev.reminder_id)
        .bind(&ev.attempt)
        .bind(&ev.event_type)
        .bind(&ev.occurred_at)
        .bind(&ev.received_at)
        .bind(&ev.applied)
        .bind(&ev.verdict)
        .bind(&ev.payload)
        .bind(&rem.webhook_id)
        .bind(&rem.id)
        .bind(&rem.expect_status)
        .bind(&rem.expect_attempt)
        .bind(&rem.status)
        .bind(&rem.attempt_count)
        .bind(&rem.next_attempt_at)
        .bind(&rem.last_attempt_at)
        .bind(&rem.skip_reason)
        .bind(&rem.outcome)
        .bind(&rem.at)
        .bind(&rem.promise)
        .bind(&rem.p_amount)
        .bind(&rem.p_date)
        .bind(&rem.p_status)
        .bind(&rem.p_opened_at)
        .bind(&rem.p_deadline)
        .bind(&att.webhook_id)
        .bind(&att.reminder_id)
        .bind(&att.attempt)
        .bind(&att.expect_status)
        .bind(&att.status)
        .bind(&att.answered_at)
        .bind(&att.replace_end)
        .bind(&att.ended_at)
        .bind(&att.outcome)
        .bind(&att.failure)
        .bind(&att.at)
        .bind(&nt.0)
        .bind(&nt.1)
        .bind(&nt.2)
        .bind(&nt.3)
        .bind(&nt.4)
        .bind(&nt.5)
        .bind(&nt.6)
        .bind(&nt.7)
        .fetch_one(conn)
        .await?;
    let inserted: HashSet<String> = row
        .try_get::<Vec<String>, _>("inserted")?
        .into_iter()
        .collect();
    let rems: i64 = row.try_get("rems")?;
    let atts: i64 = row.try_get("atts")?;
    let nts: i64 = row.try_get("nts")?;
    // What the inserted events' jobs should have written, row for row.
    let expect = |hooks: &[&str]| hooks.iter().filter(|h| inserted.contains(**h)).count() as i64;
    if rems != expect(&rem.webhook_id) || atts != expect(&att.webhook_id) || nts != expect(&nt.0) {
        return Ok(Written::Mismatch);
    }
    Ok(Written::Inserted(inserted))
}
