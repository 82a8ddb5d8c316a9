//! PostgreSQL's event writers: group commit for `Store::ingest`.
//!
//! A few writer tasks (`WRITERS`) share one queue of ingest jobs. A writer
//! that is free takes every job waiting (up to `MAX_BATCH`) and does them in
//! one transaction on one connection:
//!
//! 1. `BEGIN`; one statement locks every job's reminder (`FOR UPDATE`), in
//!    reminder-id order, and the next reads the reminders and their attempts
//!    (as the lock found them: see `lock_and_read`). Other writers and other
//!    instances lock in the same order, so two batches do not deadlock on each
//!    other; until the commit nobody else can change what the jobs are
//!    decided on. The transaction also says that it counts the glance's
//!    changes itself (`SET LOCAL duecall.glance_by_writer`): its last
//!    statement before the commit appends them for the whole batch.
//! 2. The common batch — every job an event about another reminder, none
//!    starting an attempt, listing a number or carrying an operator's action —
//!    is decided on what was read and written by one statement for all its
//!    jobs (`batch.rs`): a batch pays one statement's start-up, not one a job.
//!    Any other batch goes job by job:
//!    each job: decide on what was read (re-read, already locked, when an
//!    earlier job in the batch wrote the same reminder), write with the same
//!    compare-and-set statement as `apply` (one statement: all or nothing; a
//!    duplicate writes nothing), and on a `Stale` (an attempt row changed
//!    under the read) re-read and decide again. A job that fails dooms
//!    PostgreSQL's transaction, so then the batch is rolled back and done
//!    again with a savepoint per job: the failed job rolls back to its own
//!    and leaves no trace, the others are written. (Savepoints every time
//!    cost a round trip a job: about a fifth of the throughput at c=32-256.)
//! 3. One `COMMIT` (`synchronous_commit=on`: one WAL flush for the batch),
//!    and only then does each job's caller hear its answer. A commit that
//!    fails fails every job in the batch (`StoreError::Commit`).
//!
//! A batch of one takes the short path instead: read, decide, and the
//! compare-and-set write, which commits by itself (two round trips, as many
//! as a lone event needs; a lost compare-and-set is decided again).
//!
//! A batch that PostgreSQL aborts as a deadlock victim or for a
//! serialization failure (with a writer that is not ours, say) is rolled back
//! and replayed as a whole: `decide` is `Fn`, so a job can be decided again.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Executor, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::batch;
use super::glance::{write_batch_changes, BatchBefore, BATCH_BEFORE_COLS};
use super::{apply_in, attempt_cols, notices, read_for_event, reminder_from_row, Notify};
use crate::domain::{Attempt, Change, Notice, Reminder, ReminderId};
use crate::store::{
    reminder_cols_of, Applied, Decide, Ingested, StoreError, JOINED_ATTEMPT_COLS, MAX_DECISIONS,
};

/// How many batches can be in flight at once, each on its own connection.
pub(super) const WRITERS: usize = 4;
/// At most this many jobs share one commit.
const MAX_BATCH: usize = 128;
/// How often a batch aborted by a deadlock or a serialization failure is replayed.
const MAX_REPLAYS: usize = 5;

type Answer = Result<Option<Ingested>, StoreError>;

/// One event to ingest, and where its answer goes.
struct Job {
    id: ReminderId,
    attempt: Option<u32>,
    decide: Box<Decide>,
    reply: oneshot::Sender<Answer>,
}

/// The handle the store keeps: where jobs go.
pub(super) struct Writers {
    jobs: mpsc::Sender<Job>,
}

fn stopped() -> StoreError {
    StoreError::Commit("the PostgreSQL writers have stopped".into())
}

impl Writers {
    /// Start the writer tasks on `pool`. They end when the store is dropped.
    pub(super) fn start(pool: &PgPool, notify: bool) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(run(pool.clone(), Arc::clone(&queue), notify));
        }
        Self { jobs }
    }

    pub(super) async fn ingest(
        &self,
        id: ReminderId,
        attempt: Option<u32>,
        decide: Box<Decide>,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            id,
            attempt,
            decide,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// One writer: take what is waiting, write it as one transaction, answer.
async fn run(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>, notify: bool) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let answers = write_batch(&pool, &batch, notify).await;
        for (job, answer) in batch.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

/// The batch's answers, one per job, once its commit is known. First without
/// savepoints; replayed with them when a job failed, and as it was when
/// PostgreSQL aborted it for a deadlock or a serialization failure.
async fn write_batch(pool: &PgPool, batch: &[Job], notify: bool) -> Vec<Answer> {
    if let [job] = batch {
        return vec![alone(pool, job, notify).await];
    }
    let mut savepoints = false;
    let mut replays = 0;
    loop {
        let failure = match try_batch(pool, batch, savepoints, notify).await {
            Ok(answers) => return answers,
            Err(Failed::Job) => {
                savepoints = true;
                continue;
            }
            Err(Failed::Batch(e)) => e,
        };
        if is_retryable(&failure) && replays < MAX_REPLAYS {
            replays += 1;
            tracing::debug!(error = %failure, replays, "event batch replayed");
            continue;
        }
        let message = failure.to_string();
        return batch
            .iter()
            .map(|_| Err(StoreError::Commit(message.clone())))
            .collect();
    }
}

/// Why a batch's transaction was given up (nothing of it committed).
enum Failed {
    /// A job failed in a batch without savepoints: replay it with them.
    Job,
    /// The batch itself: its reply, unless it is worth replaying.
    Batch(sqlx::Error),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Self::Batch(e)
    }
}

/// The reminder as `change` leaves `before` (what `batch::write` writes).
fn after_of(change: &Change, before: &Reminder) -> Reminder {
    match &change.reminder {
        Some(u) => u.applied_to(before, change.at),
        None => before.clone(),
    }
}

/// A job with no company: the short path, two round trips and no explicit
/// transaction. Read without a lock, decide, and write with the
/// compare-and-set statement, which commits by itself; on a `Stale` (another
/// writer came between) read and decide again.
async fn alone(pool: &PgPool, job: &Job, notify: bool) -> Answer {
    if notify {
        // The change and its notices commit as one.
        let mut tx = pool.begin().await?;
        let answer = ingest_one(&mut tx, job, None, false, Notify::Now).await?;
        tx.commit().await?;
        return Ok(answer);
    }
    let mut conn = pool.acquire().await?;
    ingest_one(&mut conn, job, None, false, Notify::Off).await
}

/// A deadlock victim (40P01) or a serialization failure (40001).
fn is_retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// One transaction for the whole batch. `Err`: nothing of it was committed.
///
/// Without `savepoints` a job costs one round trip less (its write is one
/// statement, all or nothing; a duplicate or a stale one writes nothing),
/// but a job that fails dooms the transaction (PostgreSQL refuses every
/// statement after a failed one): `Failed::Job`, and the batch is replayed
/// with a savepoint per job, so the failed job leaves no trace and the others
/// are written.
async fn try_batch(
    pool: &PgPool,
    batch: &[Job],
    savepoints: bool,
    notify: bool,
) -> Result<Vec<Answer>, Failed> {
    // This transaction appends the glance's changes itself, at its end (the
    // row triggers stand aside: `0011_glance_by_writer.sql`); one round trip.
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL duecall.glance_by_writer = 'on'")
        .await?;
    let mut glance = BatchBefore::default();
    let Read {
        jobs: mut read,
        last,
    } = lock_and_read(&mut tx, batch, &mut glance, notify).await?;
    if !savepoints {
        if let Some(answers) = all_at_once(&mut tx, batch, &mut read, &last, notify).await? {
            let written = answers.iter().any(|a| {
                matches!(
                    a,
                    Ok(Some(Ingested {
                        applied: Applied::Done(_),
                        ..
                    }))
                )
            });
            if written {
                write_batch_changes(&mut tx, &glance).await?;
            }
            // Its notices went with its statement.
            tx.commit().await?;
            return Ok(answers);
        }
    }
    // Reminders an earlier job of this batch wrote: read again, not from `read`.
    let mut written = HashSet::new();
    let mut answers = Vec::with_capacity(batch.len());
    // Every written job's notices, written together before the commit.
    let mut pending = Vec::new();
    for (n, job) in batch.iter().enumerate() {
        let first = if written.contains(&job.id) {
            None
        } else {
            Some(read[n].take())
        };
        if savepoints {
            // Keep the previous job's writes; open this one's savepoint.
            let sql = if n == 0 {
                "SAVEPOINT job"
            } else {
                "RELEASE SAVEPOINT job; SAVEPOINT job"
            };
            simple(&mut tx, sql).await?;
        }
        let kept = pending.len();
        let mode = if notify {
            Notify::Later(&mut pending)
        } else {
            Notify::Off
        };
        let answer = match ingest_one(&mut tx, job, first, true, mode).await {
            Ok(answer) => Ok(answer),
            Err(StoreError::Database(e)) if is_retryable(&e) => return Err(Failed::Batch(e)),
            Err(_) if !savepoints => return Err(Failed::Job),
            Err(e) => {
                simple(&mut tx, "ROLLBACK TO SAVEPOINT job").await?;
                // Its notices went with its writes.
                pending.truncate(kept);
                Err(e)
            }
        };
        if let Ok(Some(Ingested {
            applied: Applied::Done(_),
            ..
        })) = &answer
        {
            written.insert(job.id);
        }
        answers.push(answer);
    }
    if !written.is_empty() {
        write_batch_changes(&mut tx, &glance).await?;
    }
    write_notices(&mut tx, &pending).await?;
    tx.commit().await?;
    Ok(answers)
}

/// Every job's notices, before the batch's commit.
async fn write_notices(
    conn: &mut PgConnection,
    pending: &[notices::Pending],
) -> Result<(), Failed> {
    if pending.is_empty() {
        return Ok(());
    }
    match notices::write_pending(conn, pending).await {
        Ok(()) => Ok(()),
        Err(StoreError::Database(e)) => Err(Failed::Batch(e)),
        Err(e) => Err(Failed::Batch(sqlx::Error::Protocol(e.to_string()))),
    }
}

/// The common batch (`batch::fits`: every job an event about another
/// reminder, each found by the read) decided on what was read and written by
/// one statement: the answers. `None`, having written nothing: the batch is
/// not one of those, and is done job by job. A statement that wrote other
/// rows than expected (it should not) fails the batch as a failed job does,
/// so it is rolled back and done again job by job, each in a savepoint.
async fn all_at_once(
    conn: &mut PgConnection,
    batch: &[Job],
    read: &mut [Option<(Reminder, Option<Attempt>)>],
    last: &[i32],
    notify: bool,
) -> Result<Option<Vec<Answer>>, Failed> {
    let mut ids = HashSet::with_capacity(batch.len());
    let mut decided = Vec::with_capacity(batch.len());
    for (job, found) in batch.iter().zip(read.iter()) {
        let Some((before, attempt)) = found else {
            return Ok(None);
        };
        let (decision, record) = (job.decide)(before, attempt.as_ref());
        if !ids.insert(job.id) || !batch::fits(&decision.change, &record, before, attempt.as_ref())
        {
            return Ok(None);
        }
        decided.push((decision, record));
    }
    let mut hooks = HashSet::with_capacity(decided.len());
    if !decided
        .iter()
        .all(|(_, r)| hooks.insert(r.webhook_id.as_str()))
    {
        return Ok(None);
    }
    // Each job's notices (SPEC §9), numbered after its reminder's last: what
    // `notices::write_pending` would write, from the reminder and the attempt
    // as the job leaves them (computed, as the statement writes them).
    let mut notices = Vec::new();
    if notify {
        for (((decision, record), found), last) in decided.iter().zip(read.iter()).zip(last) {
            let Some((before, attempt)) = found else {
                continue;
            };
            let change = &decision.change;
            let after = after_of(change, before);
            let ended = attempt
                .as_ref()
                .zip(change.attempt.as_ref())
                .and_then(|(a, write)| write.applied_to(a));
            let made = Notice::for_change(change, &after, ended.as_ref());
            for (n, notice) in made.into_iter().enumerate() {
                let sequence = u32::try_from(i64::from(*last) + 1 + n as i64).map_err(|e| {
                    Failed::Batch(sqlx::Error::Protocol(format!("notification sequence: {e}")))
                })?;
                notices.push(batch::NoticeRow {
                    webhook_id: &record.webhook_id,
                    sequence,
                    notice,
                });
            }
        }
    }
    let jobs: Vec<_> = decided.iter().map(|(d, r)| (&d.change, r)).collect();
    let inserted = match batch::write(conn, &jobs, &notices).await {
        Ok(batch::Written::Inserted(inserted)) => inserted,
        Err(e) if is_retryable(&e) => return Err(Failed::Batch(e)),
        // One job's row refused (a constraint, a trigger): done again job by
        // job, each in a savepoint, so that one fails alone.
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "an event batch's statement failed; done again job by job");
            return Err(Failed::Job);
        }
        Ok(batch::Written::Mismatch) => {
            tracing::warn!(
                jobs = batch.len(),
                "an event batch's statement wrote other rows than decided; done again job by job"
            );
            return Err(Failed::Job);
        }
    };
    let answers = decided
        .into_iter()
        .zip(read.iter_mut())
        .map(|((decision, record), found)| {
            let (before, _) = found.take().expect("checked above");
            let applied = if !inserted.contains(&record.webhook_id) {
                Applied::Duplicate
            } else {
                Applied::Done(Box::new(after_of(&decision.change, &before)))
            };
            Ok(Some(Ingested {
                before,
                decision,
                applied,
            }))
        })
        .collect();
    Ok(Some(answers))
}

/// Statements without parameters (savepoints), in one round trip.
async fn simple(conn: &mut PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    // A bare string: PostgreSQL's simple protocol, several statements at once.
    conn.execute(sql).await?;
    Ok(())
}

/// Every job's reminder and attempt, as `read_for_event` would read them;
/// the reminders locked first, in id order. `None`: no such reminder.
///
/// Two statements: the lock, then the read. One `SELECT … JOIN attempts …
/// FOR UPDATE OF r` that waited for another transaction's lock would return
/// the reminder as that transaction left it but the attempt as it was
/// before (PostgreSQL re-reads only the locked rows), and the glance would
/// count that transaction's change a second time (`BatchBefore`). Read after
/// the locks are held, every row is as the last writer left it, and nobody
/// changes it before this batch commits (every writer of a reminder's
/// attempts holds the reminder's lock).
async fn lock_and_read(
    conn: &mut PgConnection,
    batch: &[Job],
    glance: &mut BatchBefore,
    notify: bool,
) -> Result<Read, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = batch.iter().map(|j| j.id.as_uuid()).collect();
    let attempts: Vec<Option<i32>> = batch.iter().map(|j| j.attempt.map(|a| a as i32)).collect();
    sqlx::query("SELECT 1 FROM reminders WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    let cols = reminder_cols_of("r");
    // Each reminder's last notification, for the one-statement batch to
    // number its notices after (the reminder is locked: nobody else numbers it).
    let last = if notify {
        "(SELECT COALESCE(MAX(sequence), 0) FROM notifications WHERE subject = r.id::text)"
    } else {
        "0"
    };
    let rows = sqlx::query(&format!(
        "SELECT v.n, {cols}, {JOINED_ATTEMPT_COLS}, {BATCH_BEFORE_COLS}, {last} AS last_sequence \
         FROM unnest($1::uuid[], $2::int[]) WITH ORDINALITY AS v(rid, att, n) \
         JOIN reminders r ON r.id = v.rid \
         LEFT JOIN attempts a ON a.reminder_id = r.id AND a.attempt = COALESCE(v.att, r.attempt_count)"
    ))
    .bind(&ids)
    .bind(&attempts)
    .fetch_all(conn)
    .await?;
    let mut read: Vec<Option<(Reminder, Option<Attempt>)>> = batch.iter().map(|_| None).collect();
    let mut last = vec![0; batch.len()];
    for row in &rows {
        glance.note(row)?;
        let n: i64 = row.try_get("n")?;
        last[(n - 1) as usize] = row.try_get("last_sequence")?;
        let found: Option<i32> = row.try_get("a_attempt")?;
        let parsed = reminder_from_row(row).and_then(|r| {
            let attempt = found.map(|_| attempt_cols(row, "a_")).transpose()?;
            Ok((r, attempt))
        });
        // Unreadable data: the job reads again alone and hears the error.
        if let Ok(pair) = parsed {
            read[(n - 1) as usize] = Some(pair);
        }
    }
    Ok(Read { jobs: read, last })
}

/// What a batch read: each job's reminder and attempt (`None`: not found,
/// or unreadable), and its reminder's last notification's `sequence` (0
/// when notifications are off).
struct Read {
    jobs: Vec<Option<(Reminder, Option<Attempt>)>>,
    last: Vec<i32>,
}

/// One job: decide on `first` (the batch's read; `None`: read it now,
/// `FOR UPDATE` when `lock`), write, and on a `Stale` read and decide again.
async fn ingest_one(
    conn: &mut PgConnection,
    job: &Job,
    mut first: Option<Option<(Reminder, Option<Attempt>)>>,
    lock: bool,
    mut notify: Notify<'_>,
) -> Answer {
    let mut last = None;
    for _ in 0..MAX_DECISIONS {
        let current = match first.take() {
            Some(Some(pair)) => Some(pair),
            // Not in the batch's read: see for ourselves (the reminder may
            // be missing, or unreadable, and this says which).
            Some(None) | None => read_for_event(&mut *conn, job.id, job.attempt, lock).await?,
        };
        let Some((before, attempt)) = current else {
            return Ok(None);
        };
        let (decision, record) = (job.decide)(&before, attempt.as_ref());
        let mode = match &mut notify {
            Notify::Off => Notify::Off,
            Notify::Now => Notify::Now,
            Notify::Later(pending) => Notify::Later(pending),
        };
        let applied = apply_in(&mut *conn, &decision.change, Some(&record), mode).await?;
        let stale = applied == Applied::Stale;
        let done = Ingested {
            before,
            decision,
            applied,
        };
        if !stale {
            return Ok(Some(done));
        }
        last = Some(done);
    }
    Ok(last)
}
