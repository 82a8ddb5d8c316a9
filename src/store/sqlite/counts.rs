//! The glance's counts for the event writer's batches, written by the batch
//! itself: its connection runs with triggers off (`writer`: the events lane),
//! so `glance_attempt_changed` and `glance_promise_changed` (0010) do not run
//! once per event with the statement journal they force (PERFORMANCE.md §1i).
//!
//! Each job that changed a row adds what the trigger would have counted
//! (`-1` where the row was counted before, `+1` where it is counted now), from
//! the reminder and attempt it read in its transaction and what it wrote
//! (`changed`); the batch sums them and writes the sums before its commit
//! (`finish`), a statement per count that moved. Where a job writes an attempt
//! other than the one it read, it notes that row as the database holds it
//! before (`note_attempt`), and the batch reads it again at the end, as
//! PostgreSQL's batches do for all (`postgres/glance.rs`). A job counts only
//! once its writes are kept; a batch replayed starts its sums again (`begin`).
//! The events lane must run nothing else a trigger counts:
//! `tests/sqlite_schema.rs` names the triggers this stands in for, and
//! `tests/store_suite.rs` holds the counts to a recount after every kind of
//! event.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::{Attempt, PromiseStatus, Reminder};
use crate::store::StoreError;

/// An attempt as the glance counts it: its slot and result ('' for none).
type AttemptKey = (i64, String);

/// A promise's count key (slot, status, currency).
type PromiseKey = (i64, String, String);

#[derive(Default)]
struct Notes {
    /// Counts moved by the batch's jobs, by key.
    attempts: BTreeMap<AttemptKey, i64>,
    promises: BTreeMap<PromiseKey, (i64, i64)>,
    /// (reminder, attempt) → the attempt's key before the batch (`None`: no
    /// row), for attempts a job wrote without having read them.
    read: HashMap<(String, i64), Option<AttemptKey>>,
}

/// The slot the glance counts a time in: its 15 minutes since the epoch
/// (SQLite's integer division of the milliseconds, as the triggers did).
fn slot(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis() / 900_000
}

fn attempt_key(a: &Attempt) -> AttemptKey {
    let result = a.outcome.as_ref().map_or("", |o| o.result.as_str());
    (slot(a.dispatched_at), result.to_owned())
}

/// A promise's columns the trigger compared (status, opened at, amount).
type PromiseColumns = (PromiseStatus, DateTime<Utc>, i64);

/// A reminder's promise as the trigger compared it, and as it counted it.
fn promise_of(r: &Reminder) -> Option<(PromiseColumns, PromiseKey)> {
    r.promise.as_ref().map(|p| {
        (
            (p.status, p.opened_at, p.amount_minor),
            (
                slot(p.opened_at),
                p.status.as_str().to_owned(),
                r.currency.as_str().to_owned(),
            ),
        )
    })
}

/// A job's writes are kept: count what it changed. `reminder`: the reminder
/// before and after; `attempt`: the attempt before and after, when the job
/// read the one it wrote.
pub(super) fn changed(
    reminder: (&Reminder, &Reminder),
    attempt: Option<(&Attempt, &Attempt)>,
) -> Result<(), StoreError> {
    with_notes(|notes| {
        // An attempt noted earlier in the batch is counted by reading it again
        // at the end, which takes this change in too.
        let noted = |a: &Attempt| {
            !notes.read.is_empty()
                && notes
                    .read
                    .contains_key(&(reminder.0.id.to_string(), i64::from(a.attempt)))
        };
        if let Some((before, after)) = attempt.filter(|(b, _)| !noted(b)) {
            let (b, a) = (attempt_key(before), attempt_key(after));
            if b != a {
                *notes.attempts.entry(b).or_default() -= 1;
                *notes.attempts.entry(a).or_default() += 1;
            }
        }
        let (before, after) = (promise_of(reminder.0), promise_of(reminder.1));
        if before.as_ref().map(|p| &p.0) != after.as_ref().map(|p| &p.0) {
            for (state, sign, amount) in [
                (before, -1, reminder.0.promise.as_ref()),
                (after, 1, reminder.1.promise.as_ref()),
            ] {
                if let (Some((_, key)), Some(p)) = (state, amount) {
                    let e = notes.promises.entry(key).or_default();
                    e.0 += sign;
                    e.1 += sign * p.amount_minor;
                }
            }
        }
        Ok(())
    })
}

fn with_notes<T>(f: impl FnOnce(&mut Notes) -> Result<T, StoreError>) -> Result<T, StoreError> {
    NOTES.with(|cell| match cell.borrow_mut().as_mut() {
        Some(notes) => f(notes),
        None => Err(StoreError::Commit(
            "an event was written outside a batch that counts it".into(),
        )),
    })
}

thread_local! {
    /// The batch being written on this (the writer's) thread, if it counts.
    static NOTES: RefCell<Option<Notes>> = const { RefCell::new(None) };
}

const ATTEMPT_SQL: &str = "SELECT dispatched_at / 900000, COALESCE(result, '') FROM attempts \
     WHERE reminder_id = ? AND attempt = ?";
fn attempt_now(c: &Connection, rid: &str, attempt: i64) -> Result<Option<AttemptKey>, StoreError> {
    Ok(c.prepare_cached(ATTEMPT_SQL)?
        .query_row(params![rid, attempt], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A batch on this thread starts (or starts again, replayed): nothing noted.
pub(super) fn begin() {
    NOTES.with(|n| *n.borrow_mut() = Some(Notes::default()));
}

/// The batch is over (written or not).
pub(super) fn end() {
    NOTES.with(|n| *n.borrow_mut() = None);
}

/// A job is about to write attempt `attempt` of reminder `rid` without
/// having read it: note it as the database holds it now (the first note of
/// a row in a batch wins), to be read again at the end.
pub(super) fn note_attempt(c: &Connection, rid: &str, attempt: u32) -> Result<(), StoreError> {
    let key = (rid.to_owned(), i64::from(attempt));
    let noted = with_notes(|notes| Ok(notes.read.contains_key(&key)))?;
    if !noted {
        let now = attempt_now(c, rid, i64::from(attempt))?;
        with_notes(|notes| {
            notes.read.insert(key, now);
            Ok(())
        })?;
    }
    Ok(())
}

/// Before the batch's commit: write what its jobs changed of the counts.
pub(super) fn finish(c: &Connection) -> Result<(), StoreError> {
    let Some(notes) = NOTES.with(|n| n.borrow_mut().take()) else {
        return Ok(());
    };
    let Notes {
        mut attempts,
        promises,
        read,
    } = notes;
    for ((rid, a), before) in read {
        let after = attempt_now(c, &rid, a)?;
        if before != after {
            if let Some(k) = before {
                *attempts.entry(k).or_default() -= 1;
            }
            if let Some(k) = after {
                *attempts.entry(k).or_default() += 1;
            }
        }
    }
    for ((slot, result), n) in attempts {
        // A count taken away updates the row it was in, as the trigger did
        // (never creating one); a count added creates it if need be.
        let sql = match n {
            0 => continue,
            n if n < 0 => "UPDATE glance_attempts SET n = n + ?3 WHERE slot = ?1 AND result = ?2",
            _ => {
                "INSERT INTO glance_attempts (slot, result, n) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (slot, result) DO UPDATE SET n = n + excluded.n"
            }
        };
        c.prepare_cached(sql)?.execute(params![slot, result, n])?;
    }
    for ((slot, status, currency), (n, amount)) in promises {
        let sql = match (n, amount) {
            (0, 0) => continue,
            (n, _) if n <= 0 => {
                "UPDATE glance_promises SET n = n + ?4, amount = amount + ?5 \
                 WHERE slot = ?1 AND status = ?2 AND currency = ?3"
            }
            _ => {
                "INSERT INTO glance_promises (slot, status, currency, n, amount) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (slot, status, currency) \
                 DO UPDATE SET n = n + excluded.n, amount = amount + excluded.amount"
            }
        };
        c.prepare_cached(sql)?
            .execute(params![slot, status, currency, n, amount])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AttemptStatus, CreateDefaults, Language, NewReminder, OutcomeResult, ReminderId, TimeZone,
        ZonePolicy,
    };

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn reminder() -> Reminder {
        let body = serde_json::json!({"customer_name": "Ada", "phone_number": "+14155550100",
            "amount_due_minor": 100, "currency": "USD", "due_date": "2026-12-01"});
        let defaults = CreateDefaults {
            timezone: TimeZone::parse("America/New_York").unwrap(),
            zone_policy: ZonePolicy::All,
            language: Language::parse("en").unwrap(),
            max_attempts: 3,
        };
        NewReminder::parse(body.as_object().unwrap(), &defaults)
            .unwrap()
            .into_reminder(ReminderId::new(), at("2026-11-20T00:00:00Z"))
    }

    /// The counts of `glance_attempts`, after a batch in which one job noted
    /// attempt 1 (it wrote it unread) and another counted its own change of
    /// it, in either order: the change is counted once.
    #[test]
    fn an_attempt_both_noted_and_counted_in_a_batch_is_counted_once() {
        let r = reminder();
        let rid = r.id.to_string();
        let before = Attempt {
            attempt: 1,
            status: AttemptStatus::Processing,
            room_name: "room".into(),
            dispatched_at: at("2026-11-24T15:00:00Z"),
            answered_at: None,
            ended_at: None,
            outcome: None,
            failure: None,
        };
        let after = Attempt {
            status: AttemptStatus::Completed,
            outcome: Some(serde_json::from_value(serde_json::json!({"result": "paid"})).unwrap()),
            ..before.clone()
        };
        let slot = before.dispatched_at.timestamp_millis() / 900_000;
        for noted_first in [true, false] {
            let c = Connection::open_in_memory().unwrap();
            c.execute_batch(
                "CREATE TABLE attempts (reminder_id TEXT, attempt INTEGER, dispatched_at INTEGER, \
                   outcome TEXT, result TEXT GENERATED ALWAYS AS (json_extract(outcome, '$.result')), \
                   PRIMARY KEY (reminder_id, attempt));
                 CREATE TABLE glance_attempts (slot INTEGER, result TEXT, n INTEGER, \
                   PRIMARY KEY (slot, result)) WITHOUT ROWID;",
            )
            .unwrap();
            c.execute(
                "INSERT INTO attempts (reminder_id, attempt, dispatched_at) VALUES (?, 1, ?)",
                params![rid, before.dispatched_at.timestamp_millis()],
            )
            .unwrap();
            c.execute("INSERT INTO glance_attempts VALUES (?, '', 1)", [slot])
                .unwrap();
            begin();
            if noted_first {
                note_attempt(&c, &rid, 1).unwrap();
            }
            c.execute(
                "UPDATE attempts SET outcome = '{\"result\":\"paid\"}' WHERE attempt = 1",
                [],
            )
            .unwrap();
            changed((&r, &r), Some((&before, &after))).unwrap();
            if !noted_first {
                note_attempt(&c, &rid, 1).unwrap();
            }
            finish(&c).unwrap();
            end();
            let counts: Vec<(String, i64)> = c
                .prepare("SELECT result, n FROM glance_attempts ORDER BY result")
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(
                counts,
                vec![(String::new(), 0), ("paid".to_owned(), 1)],
                "noted first: {noted_first}"
            );
        }
    }

    /// The result a job counts is the one SQLite's `result` column (the
    /// stored JSON's `$.result`) holds for the outcome it wrote.
    #[test]
    fn a_result_counted_is_the_result_stored() {
        for r in OutcomeResult::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str(), "{r:?}");
        }
    }
}
