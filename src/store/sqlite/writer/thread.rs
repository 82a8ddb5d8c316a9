//! The writer's thread (see `writer`): take the jobs that have arrived, run
//! them in a transaction per run of one lane's jobs, commit, answer; and the
//! checkpointer's thread beside it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, Mutex};

use super::{Job, Lane, Mode, Ran, MAX_BATCH};
use crate::store::StoreError;

/// The thread: take what has arrived, write it (a transaction per lane),
/// answer. Ends when the store (every sender) is gone.
pub(super) fn run(
    mut conns: [Connection; 2],
    mut queue: mpsc::Receiver<Job>,
    gate: Arc<Mutex<()>>,
    committed: std::sync::mpsc::SyncSender<()>,
    gather: bool,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A transaction for each lane's jobs, each in the order they came:
        // at most two commits, however the lanes interleave. Any order is
        // one the callers could have seen: none of these jobs has been
        // answered, and a caller sends its next job only once answered, so
        // all of them were under way at once.
        let (events, general): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(|j| j.lane() == Lane::Events);
        let mut written = Vec::new();
        let turn = gate.blocking_lock();
        for (lane, mut part) in [(Lane::Events, events), (Lane::General, general)] {
            if part.is_empty() {
                continue;
            }
            let conn = &mut conns[usize::from(lane == Lane::Events)];
            let commit = write_batch(conn, &mut part, gather, lane == Lane::Events);
            written.push((part, commit));
        }
        drop(turn);
        if written.iter().any(|(_, commit)| commit.is_ok()) {
            // Full: a checkpoint is already due; it will see this commit too.
            let _ = committed.try_send(());
        }
        for (part, commit) in written {
            for job in part {
                job.answer(&commit);
            }
        }
    }
}

/// A connection of the thread's, as both lanes open theirs.
pub(super) fn open_writing(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::default(),
        super::super::gather::NAME,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL is the file's (set when sqlx created it); these are the connection's own.
    // The savepoints' statement journals in memory, not in temporary files.
    // No checkpoints here: the checkpointer thread does them (see `checkpoints`).
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = 0;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The shortest time between two checkpoints: while events keep coming, the
/// WAL is copied into the database about this often (not after every commit).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The checkpointer thread: after commits, copy the WAL's pages into the
/// database file (`PASSIVE`: it never blocks the writer or a reader), so that
/// work — page writes and the database file's fsync — is off the writer's
/// path and its commits only append to the WAL. A commit is durable in the
/// WAL already (`synchronous=FULL`); a checkpoint only keeps the WAL short.
/// Ends, after a last checkpoint, when the writer does.
pub(super) fn checkpoints(conn: Connection, wake: std::sync::mpsc::Receiver<()>) {
    let mut last = std::time::Instant::now();
    while wake.recv().is_ok() {
        if let Some(wait) = CHECKPOINT_EVERY.checked_sub(last.elapsed()) {
            std::thread::sleep(wait);
        }
        checkpoint(&conn);
        last = std::time::Instant::now();
    }
    checkpoint(&conn);
}

fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "SQLite checkpoint failed; the next commit tries again");
    }
}

/// Run the batch in one transaction and commit it: first every job straight
/// in the transaction; if one of them needs undoing, roll back and run them
/// all again, each in a savepoint. The commit's result.
fn write_batch(
    conn: &mut Connection,
    batch: &mut [Job],
    gather: bool,
    counts: bool,
) -> Result<(), String> {
    let result = write_batch_once(conn, batch, gather, counts);
    super::super::counts::end();
    result
}

/// `write_batch`; with `counts`, the batch writes the glance's counts of
/// what its jobs changed before it commits (`counts`).
fn write_batch_once(
    conn: &mut Connection,
    batch: &mut [Job],
    gather: bool,
    counts: bool,
) -> Result<(), String> {
    let mut guarded = false;
    loop {
        if let Err(e) = begin(conn) {
            // Should a transaction have been left open, end it: otherwise
            // every later BEGIN on this connection fails, and the other
            // connection waits out its busy timeout for the lock.
            rollback(conn);
            skip_all(batch);
            return Err(e.to_string());
        }
        if counts {
            super::super::counts::begin();
        }
        let mut undo = false;
        for job in batch.iter_mut() {
            let mode = if guarded {
                Mode::Guarded(conn)
            } else {
                Mode::Direct(conn)
            };
            match job.run(mode) {
                Ran::Done => {}
                Ran::Undo => {
                    undo = true;
                    break;
                }
                Ran::Broken(e) => {
                    rollback(conn);
                    skip_all(batch);
                    return Err(e.to_string());
                }
            }
        }
        if undo {
            rollback(conn);
            guarded = true;
            continue;
        }
        // The counts' statements are plain upserts and updates of tables
        // without constraints; should one fail all the same, the whole run
        // of events fails with it (nothing half-counted is committed).
        if counts {
            if let Err(e) = super::super::counts::finish(conn) {
                rollback(conn);
                skip_all(batch);
                return Err(format!("the glance's counts: {e}"));
            }
        }
        let run = || conn.prepare_cached("COMMIT")?.execute([]);
        let commit = if gather {
            super::super::gather::gathering(run)
        } else {
            run()
        };
        let commit = commit.map(|_| ()).map_err(|e| e.to_string());
        if commit.is_err() {
            rollback(conn);
        }
        return commit;
    }
}

/// IMMEDIATE: the write lock first, so no other process's writer can make
/// the transaction fail half-way (several processes may share the file).
fn begin(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "the SQLite writer could not roll a batch back");
        }
    }
}

fn skip_all(batch: &mut [Job]) {
    for job in batch.iter_mut() {
        job.run(Mode::Skip);
    }
}

/// Run `f` in a savepoint: kept when it says so, rolled back otherwise (and
/// on its error), so a job leaves either all of its writes or none. The outer
/// error: the savepoint itself could not be opened or closed.
pub(super) fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<(T, bool), StoreError>,
) -> Result<Result<T, StoreError>, rusqlite::Error> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let result = f(conn);
    if !matches!(result, Ok((_, true))) {
        conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
    }
    conn.prepare_cached("RELEASE job")?.execute([])?;
    Ok(result.map(|(value, _)| value))
}
