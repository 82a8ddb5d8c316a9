//! SQLite's one writer for events: a thread of its own owns two `rusqlite`
//! connections (below), and does the whole of each event there — read the reminder and
//! its attempt, run the pure state machine, write the event, the reminder and
//! the attempt — for every event that arrived while the last commit was on its
//! way to disk, in one transaction with one `fsync`. A job that has to be
//! undone (it wrote, then failed or found its guard stale) makes the thread
//! roll the batch back and run it again with a savepoint per job, so it alone
//! leaves nothing; the common batch pays for no savepoints. Statements are
//! prepared once and kept. Nobody hears "done" before the commit is durable.
//! The connections' VFS writes a commit's WAL frames in one call (`gather`).
//! Checkpoints are another thread's (`thread::checkpoints`): the writer only
//! appends.
//!
//! Two connections, two lanes: events run on one with triggers off, and
//! write the dashboard's counts those triggers kept themselves (`counts`);
//! every other job of the thread runs on the other, triggers on. A batch is
//! a transaction per lane, so at most two commits (`thread::run`).
//!
//! Why a thread and `rusqlite`, not sqlx's connection: sqlx runs each SQLite
//! connection on a worker thread and hands every statement over a channel;
//! an event took six such hand-offs (a read on the read pool, five statements
//! on the writer) and the profile was futex wake-ups, not SQL. Here an event
//! costs two: its job in, its answer out. Deciding where it is written also
//! removes the compare-and-set retry: nothing can change between the read and
//! the write.
//!
//! The other writes (creating reminders, claims, sessions) keep sqlx's write
//! connection. They and this thread take turns through one fair lock (`gate`),
//! so the two connections never wait on SQLite's busy handler for each other
//! inside one process.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, Mutex};

mod thread;

use super::{built, for_event_sql, joined_attempt, reminder_from_row};

static UPDATE_SQL: OnceLock<String> = OnceLock::new();
static GUARD_SQL: OnceLock<String> = OnceLock::new();
use crate::domain::{
    Attempt, AttemptWrite, Change, PhoneNumber, Reminder, ReminderId, ReminderUpdate,
    SuppressNumber, Suppression, SuppressionAction,
};
use crate::store::{Applied, Decide, EventRecord, Ingested, StoreError, REMINDER_COLS};

/// At most this many jobs share one commit.
const MAX_BATCH: usize = 128;

/// How a job is run this time.
#[derive(Clone, Copy)]
enum Mode<'c> {
    /// Straight in the batch's transaction: the fast way, for a batch where
    /// no job needs undoing.
    Direct(&'c Connection),
    /// In a savepoint of its own, undone when it fails or says so: the
    /// replay of a batch in which one did.
    Guarded(&'c Connection),
    /// Not at all: the batch is lost.
    Skip,
}

/// What running a job came to.
enum Ran {
    Done,
    /// Run directly, it wrote and then failed or asked to be undone: the
    /// batch is rolled back and replayed, every job in a savepoint.
    Undo,
    /// Its savepoint could not be opened or closed: nothing of the batch may
    /// be committed.
    Broken(rusqlite::Error),
}

/// Which of the thread's two connections runs a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lane {
    /// Triggers on: every write but an event's.
    General,
    /// Triggers off: events, whose batches write the glance's counts
    /// themselves (`counts`).
    Events,
}

/// One write for the thread, and its caller waiting for the answer.
trait Work: Send {
    fn lane(&self) -> Lane;
    fn run(&mut self, mode: Mode<'_>) -> Ran;
    /// Answer the caller, once the batch's commit is known.
    fn answer(self: Box<Self>, commit: &Result<(), String>);
}

type Job = Box<dyn Work>;

struct Call<T, F> {
    lane: Lane,
    f: F,
    result: Option<Result<T, StoreError>>,
    tell: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Work for Call<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<(T, bool), StoreError> + Send,
{
    fn lane(&self) -> Lane {
        self.lane
    }

    fn run(&mut self, mode: Mode<'_>) -> Ran {
        let (result, ran) = match mode {
            Mode::Skip => (Err(unwritten()), Ran::Done),
            Mode::Direct(c) => {
                let before = c.total_changes();
                match (self.f)(c) {
                    Ok((value, true)) => (Ok(value), Ran::Done),
                    // Asked to be undone, but wrote nothing: nothing to undo.
                    Ok((value, false)) if c.total_changes() == before => (Ok(value), Ran::Done),
                    _ => (Err(unwritten()), Ran::Undo),
                }
            }
            Mode::Guarded(c) => match thread::in_savepoint(c, &mut self.f) {
                Ok(result) => (result, Ran::Done),
                Err(e) => (Err(unwritten()), Ran::Broken(e)),
            },
        };
        self.result = Some(result);
        ran
    }

    fn answer(self: Box<Self>, commit: &Result<(), String>) {
        let result = self.result.unwrap_or_else(|| Err(unwritten()));
        let commit = commit.as_ref().map_err(|e| StoreError::Commit(e.clone()));
        let _ = self.tell.send(commit.and(result));
    }
}

/// The handle the store keeps: where jobs go.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Every change writes the notifications it causes (SPEC §9).
    notify: bool,
}

fn stopped() -> StoreError {
    StoreError::Commit("the SQLite writer has stopped".into())
}

fn unwritten() -> StoreError {
    StoreError::Commit("the batch it was in was not written".into())
}

impl Writer {
    /// Open the (already migrated) database file and start the thread.
    pub(super) fn start(
        path: &Path,
        gate: Arc<Mutex<()>>,
        notify: bool,
    ) -> Result<Self, StoreError> {
        // SQLite's own VFS, but a commit's WAL frames written in one call (`gather`).
        super::gather::register().map_err(StoreError::Commit)?;
        let conn = thread::open_writing(path)?;
        // The events lane: the glance's triggers off, its batches count (`counts`).
        let events = thread::open_writing(path)?;
        events.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
            false,
        )?;
        // Commits gather their WAL frames only where the commit's sync writes
        // them all (`gather::usable`); otherwise straight through.
        let gather = super::gather::usable(&conn) && super::gather::usable(&events);
        if !gather {
            tracing::warn!("SQLite commits write their WAL frames one by one: the connection is not synchronous=FULL with power-safe overwrite");
        }
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(Duration::from_secs(10))?;
        let (committed, wake) = std::sync::mpsc::sync_channel(1);
        // Thread names of at most 15 bytes: Linux cuts longer ones, and `top`,
        // `perf` and /proc could not tell these two apart.
        std::thread::Builder::new()
            .name("sqlite-ckpt".into())
            .spawn(move || thread::checkpoints(checkpointer, wake))
            .map_err(|e| {
                StoreError::Commit(format!("cannot start the SQLite checkpointer: {e}"))
            })?;
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || thread::run([conn, events], queue, gate, committed, gather))
            .map_err(|e| StoreError::Commit(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { jobs, notify })
    }

    /// Run `f` on the writer, in the next batch: its writes are kept when it
    /// returns `(_, true)`, undone otherwise. It may be run twice (the batch
    /// replayed), so it must do nothing but its writes. The answer comes once
    /// the batch is committed (or with the reason it was not).
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> Result<(T, bool), StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_on(Lane::General, f).await
    }

    async fn call_on<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnMut(&Connection) -> Result<(T, bool), StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tell, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(Call {
            lane,
            f,
            result: None,
            tell,
        });
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(super) async fn apply(
        &self,
        change: &Change,
        event: Option<&EventRecord>,
    ) -> Result<Applied, StoreError> {
        let (change, event, notify) = (change.clone(), event.cloned(), self.notify);
        self.call(move |c| {
            let applied = apply_in(c, &change, event.as_ref(), None, notify)?;
            let keep = matches!(applied, Applied::Done(_));
            Ok((applied, keep))
        })
        .await
    }

    /// The whole event here: read, decide, write — nothing can come between.
    pub(super) fn notify(&self) -> bool {
        self.notify
    }

    pub(super) async fn ingest(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
        decide: Box<Decide>,
    ) -> Result<Option<Ingested>, StoreError> {
        let notify = self.notify;
        self.call_on(Lane::Events, move |c| {
            let Some((before, current)) = read_for_event(c, id, attempt)? else {
                return Ok((None, false));
            };
            let (decision, record) = decide(&before, current.as_ref());
            // This lane runs without the glance's triggers: the job counts
            // what it changes (`counts`). An attempt it writes but did not
            // read (none of the transitions do) is read again at the end.
            let unread = match &decision.change.attempt {
                Some(
                    AttemptWrite::Start { attempt, .. } | AttemptWrite::Update { attempt, .. },
                ) if current.as_ref().map(|a| a.attempt) != Some(*attempt) => Some(*attempt),
                _ => None,
            };
            if let Some(n) = unread {
                super::counts::note_attempt(c, &before.id.to_string(), n)?;
            }
            let known = Known {
                reminder: &before,
                attempt: current.as_ref(),
            };
            let applied = apply_in(c, &decision.change, Some(&record), Some(known), notify)?;
            let keep = matches!(applied, Applied::Done(_));
            if let Applied::Done(after) = &applied {
                let attempt = current.as_ref().and_then(|a| {
                    let write = decision.change.attempt.as_ref()?;
                    Some((a, write.applied_to(a)?))
                });
                super::counts::changed((&before, after), attempt.as_ref().map(|(b, a)| (*b, a)))?;
            }
            let done = Ingested {
                before,
                decision,
                applied,
            };
            Ok((Some(done), keep))
        })
        .await
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// The reminder and the attempt an event names (the current one when it
/// names none), as this transaction sees them.
fn read_for_event(
    conn: &Connection,
    id: ReminderId,
    attempt: Option<u32>,
) -> Result<Option<(Reminder, Option<Attempt>)>, StoreError> {
    let mut stmt = conn.prepare_cached(for_event_sql())?;
    let mut rows = stmt.query(params![attempt.map(i64::from), id.to_string()])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    Ok(Some((reminder_from_row(row)?, joined_attempt(row)?)))
}

/// One change (and its event), inside the caller's savepoint: the caller
/// keeps it on `Done` and rolls it back otherwise. `before`: the reminder as
/// this transaction read it just now (an event decided here); then the
/// reminder after the change is known without reading it back.
/// The reminder and the attempt as this transaction read them just now
/// (an event decided here): what a change leaves is then computed, not read.
#[derive(Clone, Copy)]
pub(super) struct Known<'a> {
    pub reminder: &'a Reminder,
    pub attempt: Option<&'a Attempt>,
}

/// A change (no event) to a reminder this transaction has just read, its
/// notices left to the caller.
pub(super) fn apply_known(
    conn: &Connection,
    change: &Change,
    known: Known<'_>,
) -> Result<Applied, StoreError> {
    apply_in(conn, change, None, Some(known), false)
}

fn apply_in(
    conn: &Connection,
    change: &Change,
    event: Option<&EventRecord>,
    known: Option<Known<'_>>,
    notify: bool,
) -> Result<Applied, StoreError> {
    let before = known.map(|k| k.reminder);
    if let Some(ev) = event {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO events (webhook_id, reminder_id, attempt, event_type, occurred_at, \
                 received_at, applied, verdict, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (webhook_id) DO NOTHING",
            )?
            .execute(params![
                ev.webhook_id,
                ev.reminder_id.to_string(),
                ev.attempt.map(i64::from),
                ev.event_type.as_str(),
                ms(ev.occurred_at),
                ms(ev.received_at),
                ev.applied,
                ev.verdict.as_str(),
                ev.payload,
            ])?;
        if inserted == 0 {
            return Ok(Applied::Duplicate);
        }
    }

    let id = change.reminder_id.to_string();
    let guarded = match before {
        Some(before) => guard_known(conn, change, before)?,
        None => guard_returning(conn, change, &id)?,
    };
    let Some(mut now) = guarded else {
        let exists = conn
            .prepare_cached("SELECT 1 FROM reminders WHERE id = ?")?
            .exists(params![id])?;
        return Ok(if exists {
            Applied::Stale
        } else {
            Applied::NotFound
        });
    };
    if let Some(p) = change.reminder.as_ref().and_then(|u| u.promise.as_ref()) {
        // `guard_known` wrote it with the reminder's other fields.
        if before.is_none() {
            super::promises::open(conn, &id, p)?;
        }
        now.promise = Some(p.clone());
    }

    let attempt_written = match &change.attempt {
        None => 1,
        Some(AttemptWrite::Start { attempt, room_name }) => conn
            .prepare_cached(
                // The attempt counts against its debt (SPEC §7) whatever path started it.
                "INSERT INTO attempts (reminder_id, attempt, status, room_name, dispatched_at, updated_at, debt_ref) \
                 VALUES (?1, ?2, 'in_progress', ?3, ?4, ?4, (SELECT debt_ref FROM reminders WHERE id = ?1)) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![id, i64::from(*attempt), room_name, ms(change.at)])?,
        Some(AttemptWrite::Update {
            attempt,
            expect_status,
            status,
            answered_at,
            ended_at,
            replace_end,
            outcome,
            failure,
        }) => conn
            .prepare_cached(
                "UPDATE attempts SET status = ?, answered_at = COALESCE(answered_at, ?), \
                 ended_at = CASE WHEN ? THEN ? ELSE COALESCE(ended_at, ?) END, \
                 outcome = COALESCE(outcome, ?), \
                 failure = COALESCE(failure, ?), updated_at = ? \
                 WHERE reminder_id = ? AND attempt = ? AND status = ?",
            )?
            .execute(params![
                status.as_str(),
                answered_at.map(ms),
                *replace_end,
                ended_at.map(ms),
                ended_at.map(ms),
                outcome.as_ref().map(to_json),
                failure.as_ref().map(to_json),
                ms(change.at),
                id,
                i64::from(*attempt),
                expect_status.as_str(),
            ])?,
    };
    if attempt_written == 0 {
        return Ok(Applied::Stale);
    }
    if notify {
        let attempt = known
            .and_then(|k| k.attempt)
            .zip(change.attempt.as_ref())
            .and_then(|(a, write)| write.applied_to(a));
        super::notices::write_notices(conn, change, &now, attempt)?;
    }
    if let Some(add) = &change.suppress {
        insert_suppression(conn, add, change.at, notify)?;
    }
    if let Some(record) = &change.action {
        super::actions::insert_action(conn, record, change.at)?;
    }
    Ok(Applied::Done(Box::new(now)))
}

/// The guard and the reminder's write, returning the reminder as it now is
/// (no read-back later); `None`: the guard failed.
fn guard_returning(
    conn: &Connection,
    change: &Change,
    id: &str,
) -> Result<Option<Reminder>, StoreError> {
    let row = match &change.reminder {
        Some(u) => conn
            .prepare_cached(built(&UPDATE_SQL, || {
                format!("{UPDATE_REMINDER} RETURNING {REMINDER_COLS}")
            }))?
            .query_row(params_from_iter(update_params(u, change, id)), |row| {
                Ok(reminder_from_row(row))
            })
            .optional()?,
        None => conn
            .prepare_cached(built(&GUARD_SQL, || {
                format!(
                    "SELECT {REMINDER_COLS} FROM reminders WHERE id = ? AND status = ? AND attempt_count = ?"
                )
            }))?
            .query_row(
                params![
                    id,
                    change.expect_status.as_str(),
                    i64::from(change.expect_attempt)
                ],
                |row| Ok(reminder_from_row(row)),
            )
            .optional()?,
    };
    row.transpose()
}

/// The same for a reminder this transaction has just read (`before`): the
/// row it leaves is computed, not read back (a tenth of an event's work).
fn guard_known(
    conn: &Connection,
    change: &Change,
    before: &Reminder,
) -> Result<Option<Reminder>, StoreError> {
    let unchanged =
        before.status == change.expect_status && before.attempt_count == change.expect_attempt;
    let Some(u) = &change.reminder else {
        return Ok(unchanged.then(|| before.clone()));
    };
    let id = before.id.to_string();
    let mut values = update_params(u, change, &id);
    let sql = match &u.promise {
        None => UPDATE_REMINDER,
        // A completion that opens a promise: its columns in the same
        // statement, one write of the row instead of two (§1i).
        Some(p) => {
            let at = values.len() - GUARD_PARAMS;
            values.splice(at..at, promise_params(p));
            built(&UPDATE_WITH_PROMISE_SQL, || {
                UPDATE_REMINDER.replacen(
                    " WHERE ",
                    &format!(", {} WHERE ", super::promises::OPEN_SET),
                    1,
                )
            })
        }
    };
    let written = conn
        .prepare_cached(sql)?
        .execute(params_from_iter(values))?;
    Ok((written == 1).then(|| u.applied_to(before, change.at)))
}

static UPDATE_WITH_PROMISE_SQL: OnceLock<String> = OnceLock::new();

/// The last parameters of `update_params`: the guard's (id, status, attempt count).
const GUARD_PARAMS: usize = 3;

fn promise_params<'a>(p: &'a crate::domain::Promise) -> Vec<Box<dyn rusqlite::ToSql + 'a>> {
    vec![
        Box::new(p.amount_minor),
        Box::new(p.date.format("%Y-%m-%d").to_string()),
        Box::new(p.status.as_str()),
        Box::new(ms(p.opened_at)),
        Box::new(ms(p.deadline)),
    ]
}

/// The guarded write of a reminder's decided fields (`?` in `update_params`' order).
const UPDATE_REMINDER: &str = "UPDATE reminders SET status = ?, attempt_count = ?, \
     next_attempt_at = ?, last_attempt_at = ?, skip_reason = ?, outcome = COALESCE(?, outcome), \
     updated_at = ?, deferred_by = NULL WHERE id = ? AND status = ? AND attempt_count = ?";

fn update_params<'a>(
    u: &'a ReminderUpdate,
    change: &'a Change,
    id: &'a str,
) -> Vec<Box<dyn rusqlite::ToSql + 'a>> {
    vec![
        Box::new(u.status.as_str()),
        Box::new(i64::from(u.attempt_count)),
        Box::new(u.next_attempt_at.map(ms)),
        Box::new(u.last_attempt_at.map(ms)),
        Box::new(u.skip_reason.as_deref()),
        Box::new(u.outcome.as_ref().map(to_json)),
        Box::new(ms(change.at)),
        Box::new(id),
        Box::new(change.expect_status.as_str()),
        Box::new(i64::from(change.expect_attempt)),
    ]
}

/// Put a number on the list with its `added` audit row, unless it is there
/// already (then nothing is written). Returns whether it was added.
pub(super) fn insert_suppression(
    conn: &Connection,
    add: &SuppressNumber,
    at: DateTime<Utc>,
    notify: bool,
) -> Result<bool, StoreError> {
    let reminder_id = add.reminder_id.map(|id| id.to_string());
    let inserted = conn
        .prepare_cached(
            "INSERT INTO suppressions (phone_number, reason, reminder_id, created_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (phone_number) DO NOTHING",
        )?
        .execute(params![
            add.phone_number.as_str(),
            add.reason.as_str(),
            reminder_id,
            ms(at)
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    audit(
        conn,
        &add.phone_number,
        SuppressionAction::Added,
        add.reason.as_str(),
        reminder_id,
        at,
    )?;
    if notify {
        super::notices::notice_suppression(
            conn,
            &Suppression {
                phone_number: add.phone_number.clone(),
                reason: add.reason.as_str().to_owned(),
                reminder_id: add.reminder_id,
                created_at: at,
            },
        )?;
    }
    Ok(true)
}

/// One row of the suppression list's audit.
pub(super) fn audit(
    conn: &Connection,
    phone: &PhoneNumber,
    action: SuppressionAction,
    reason: &str,
    reminder_id: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO suppression_audit (phone_number, action, reason, reminder_id, at) \
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        phone.as_str(),
        action.as_str(),
        reason,
        reminder_id,
        ms(at)
    ])?;
    Ok(())
}
