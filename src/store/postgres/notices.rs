//! PostgreSQL's outbox (SPEC §9): notices written in the transaction of the
//! change they report; leases with `FOR UPDATE SKIP LOCKED`, so several
//! instances never try one notification at once while its lease lives.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::Row;

use super::attempt_cols;
use crate::domain::{attempt_ended, Change, Notice, Reminder, Suppression};
use crate::store::{
    new_notice_id, Delivery, NoticeTry, Notification, RawNotice, StoreError, TryOutcome, TryRecord,
    NOTICE_COLS,
};

/// Write one notice, numbered after its subject's last, due at once. The
/// subject's row (the reminder, or the list's entry) is locked by the change
/// this notice reports, so two transactions never number one subject at once.
pub(super) async fn insert_notice(
    conn: &mut PgConnection,
    notice: &Notice,
) -> Result<(), StoreError> {
    let last: i32 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(sequence), 0) FROM notifications WHERE subject = $1",
    )
    .bind(&notice.subject)
    .fetch_one(&mut *conn)
    .await?;
    let sequence = u32::try_from(last + 1)
        .map_err(|e| StoreError::Corrupt(format!("notification sequence: {e}")))?;
    sqlx::query(
        "INSERT INTO notifications (id, subject, sequence, reminder_id, type, body, status, \
         step, next_try_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(new_notice_id())
    .bind(&notice.subject)
    .bind(sequence as i32)
    .bind(notice.reminder_id.map(|id| id.as_uuid()))
    .bind(notice.kind.as_str())
    .bind(notice.body(sequence))
    .bind(notice.at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The notices a written change causes (`after`: the reminder it left), and
/// the list's entry when it put a number on the list (`listed`). Two round
/// trips whatever their number: one read (the reminder's last sequence and
/// the attempt as just written), one insert of them all. The reminder is
/// locked by the change, so no other transaction numbers it meanwhile.
pub(super) async fn write_notices(
    conn: &mut PgConnection,
    change: &Change,
    after: &Reminder,
    listed: bool,
) -> Result<(), StoreError> {
    let listed = listed && change.suppress.is_some();
    let ended = attempt_ended(change, after);
    if !listed && crate::domain::for_change(change, after).is_empty() {
        return Ok(());
    }
    let subject = after.id.to_string();
    let row = sqlx::query(
        "SELECT (SELECT COALESCE(MAX(sequence), 0) FROM notifications WHERE subject = $1) AS last, \
         a.attempt, a.status, a.room_name, a.dispatched_at, a.answered_at, a.ended_at, \
         a.outcome, a.failure \
         FROM (SELECT 1) AS one LEFT JOIN attempts a ON a.reminder_id = $2 AND a.attempt = $3",
    )
    .bind(&subject)
    .bind(after.id.as_uuid())
    .bind(ended.map(|a| a as i32))
    .fetch_one(&mut *conn)
    .await?;
    let last: i32 = row.try_get("last")?;
    let found: Option<i32> = row.try_get("attempt")?;
    let attempt = found.map(|_| attempt_cols(&row, "")).transpose()?;
    let mut notices = Notice::for_change(change, after, attempt.as_ref());
    if let (true, Some(add)) = (listed, &change.suppress) {
        let entry = Suppression {
            phone_number: add.phone_number.clone(),
            reason: add.reason.as_str().to_owned(),
            reminder_id: add.reminder_id,
            created_at: change.at,
        };
        let notice = Notice::about_suppression(&entry);
        if notice.subject == subject {
            notices.push(notice);
        } else {
            // A list entry numbered among its number's own (no reminder).
            insert_notice(conn, &notice).await?;
        }
    }
    if notices.is_empty() {
        return Ok(());
    }
    insert_numbered(conn, &notices, last).await
}

/// Write notices of one subject, numbered after its last (its row is
/// locked by the caller's transaction), in two statements.
pub(super) async fn insert_notices(
    conn: &mut PgConnection,
    notices: &[Notice],
) -> Result<(), StoreError> {
    let Some(first) = notices.first() else {
        return Ok(());
    };
    let last: i32 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(sequence), 0) FROM notifications WHERE subject = $1",
    )
    .bind(&first.subject)
    .fetch_one(&mut *conn)
    .await?;
    insert_numbered(conn, notices, last).await
}

/// Insert notices of one subject, numbered from `last + 1`, in one statement.
async fn insert_numbered(
    conn: &mut PgConnection,
    notices: &[Notice],
    last: i32,
) -> Result<(), StoreError> {
    let numbered = notices
        .iter()
        .enumerate()
        .map(|(n, notice)| Ok((notice, sequence_after(i64::from(last) + n as i64)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    insert_all(conn, &numbered).await
}

fn sequence_after(last: i64) -> Result<u32, StoreError> {
    u32::try_from(last + 1).map_err(|e| StoreError::Corrupt(format!("notification sequence: {e}")))
}

/// Insert numbered notices, due at once, in one statement.
async fn insert_all(
    conn: &mut PgConnection,
    numbered: &[(&Notice, u32)],
) -> Result<(), StoreError> {
    let n = numbered.len();
    let (mut ids, mut subjects, mut sequences) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut reminders, mut kinds, mut bodies, mut ats) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (notice, sequence) in numbered {
        ids.push(new_notice_id());
        subjects.push(notice.subject.as_str());
        sequences.push(*sequence as i32);
        reminders.push(notice.reminder_id.map(|id| id.as_uuid()));
        kinds.push(notice.kind.as_str());
        bodies.push(notice.body(*sequence));
        ats.push(notice.at);
    }
    sqlx::query(
        "INSERT INTO notifications (id, subject, sequence, reminder_id, type, body, status, step, \
         next_try_at, created_at) \
         SELECT id, subject, sequence, reminder_id, type, body, 'pending', 0, at, at \
         FROM UNNEST($1::text[], $2::text[], $3::int[], $4::uuid[], $5::text[], $6::text[], \
                     $7::timestamptz[]) AS v(id, subject, sequence, reminder_id, type, body, at)",
    )
    .bind(&ids)
    .bind(&subjects)
    .bind(&sequences)
    .bind(&reminders)
    .bind(&kinds)
    .bind(&bodies)
    .bind(&ats)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A change a batch wrote, whose notices it writes at its end.
pub(crate) struct Pending {
    pub change: Change,
    pub after: Reminder,
    pub listed: bool,
}

/// Every pending change's notices, in two statements for the whole batch:
/// one read (each reminder's last sequence, each ended attempt as written),
/// one insert. The batch holds every reminder's lock, so the sequences read
/// here are the last; two changes of one reminder are numbered in order.
pub(super) async fn write_pending(
    conn: &mut PgConnection,
    pending: &[Pending],
) -> Result<(), StoreError> {
    let subjects: Vec<String> = pending.iter().map(|p| p.after.id.to_string()).collect();
    let rids: Vec<uuid::Uuid> = pending.iter().map(|p| p.after.id.as_uuid()).collect();
    let attempts: Vec<Option<i32>> = pending
        .iter()
        .map(|p| attempt_ended(&p.change, &p.after).map(|a| a as i32))
        .collect();
    let rows = sqlx::query(
        "SELECT v.n, (SELECT COALESCE(MAX(sequence), 0) FROM notifications \
           WHERE subject = v.subject) AS last, \
         a.attempt, a.status, a.room_name, a.dispatched_at, a.answered_at, a.ended_at, \
         a.outcome, a.failure \
         FROM UNNEST($1::text[], $2::uuid[], $3::int[]) WITH ORDINALITY AS v(subject, rid, att, n) \
         LEFT JOIN attempts a ON a.reminder_id = v.rid AND a.attempt = v.att ORDER BY v.n",
    )
    .bind(&subjects)
    .bind(&rids)
    .bind(&attempts)
    .fetch_all(&mut *conn)
    .await?;
    let mut next: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut notices: Vec<Notice> = Vec::new();
    let mut own_subject: Vec<Notice> = Vec::new();
    for (p, row) in pending.iter().zip(&rows) {
        let last: i32 = row.try_get("last")?;
        let found: Option<i32> = row.try_get("attempt")?;
        let attempt = found.map(|_| attempt_cols(row, "")).transpose()?;
        next.entry(p.after.id.to_string())
            .or_insert_with(|| i64::from(last));
        notices.extend(Notice::for_change(&p.change, &p.after, attempt.as_ref()));
        if let (true, Some(add)) = (p.listed, &p.change.suppress) {
            let entry = Suppression {
                phone_number: add.phone_number.clone(),
                reason: add.reason.as_str().to_owned(),
                reminder_id: add.reminder_id,
                created_at: p.change.at,
            };
            let notice = Notice::about_suppression(&entry);
            if next.contains_key(&notice.subject) {
                notices.push(notice);
            } else {
                own_subject.push(notice);
            }
        }
    }
    let mut numbered = Vec::with_capacity(notices.len());
    for notice in &notices {
        let last = next.get_mut(&notice.subject).ok_or_else(|| {
            StoreError::Corrupt(format!("notice subject {:?} not read", notice.subject))
        })?;
        let sequence = sequence_after(*last)?;
        *last += 1;
        numbered.push((notice, sequence));
    }
    if !numbered.is_empty() {
        insert_all(conn, &numbered).await?;
    }
    for notice in &own_subject {
        insert_notice(conn, notice).await?;
    }
    Ok(())
}

pub(super) async fn lease(
    pool: &PgPool,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query(
        "UPDATE notifications n SET lease_owner = $1, lease_until = $2 FROM (\
           SELECT id FROM notifications WHERE status = 'pending' AND next_try_at <= $3 \
           AND (lease_until IS NULL OR lease_until <= $3) ORDER BY next_try_at \
           LIMIT $4 FOR UPDATE SKIP LOCKED) due \
         WHERE n.id = due.id RETURNING n.id, n.type, n.body, n.step, n.created_at",
    )
    .bind(owner)
    .bind(until)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let mut leased = rows
        .iter()
        .map(|row| {
            let kind: String = row.try_get("type")?;
            Ok(Delivery {
                id: row.try_get("id")?,
                kind: kind
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("notification type {kind:?}")))?,
                body: row.try_get("body")?,
                step: u32::try_from(row.try_get::<i32, _>("step")?).unwrap_or(u32::MAX),
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    leased.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(leased)
}

/// Every try in one statement (one round trip, one commit).
pub(super) async fn record(
    pool: &PgPool,
    owner: &str,
    tries: &[TryRecord],
) -> Result<Vec<bool>, StoreError> {
    if tries.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(tries.len());
    let mut ats = Vec::with_capacity(tries.len());
    let mut codes = Vec::with_capacity(tries.len());
    let mut errors = Vec::with_capacity(tries.len());
    let mut durations = Vec::with_capacity(tries.len());
    let mut statuses = Vec::with_capacity(tries.len());
    let mut nexts = Vec::with_capacity(tries.len());
    let mut delivered = Vec::with_capacity(tries.len());
    for t in tries {
        let (status, next, done) = match t.outcome {
            TryOutcome::Delivered => ("delivered", None, Some(t.tried.at)),
            TryOutcome::RetryAt(at) => ("pending", Some(at), None),
            TryOutcome::Failed => ("failed", None, None),
        };
        ids.push(t.id.as_str());
        ats.push(t.tried.at);
        codes.push(t.tried.status_code.map(i32::from));
        errors.push(t.tried.error.as_deref());
        durations.push(i32::try_from(t.tried.duration_ms).unwrap_or(i32::MAX));
        statuses.push(status);
        nexts.push(next);
        delivered.push(done);
    }
    let moved: Vec<String> = sqlx::query_scalar(
        "WITH v AS (SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::int[], $4::text[], \
           $5::int[], $6::text[], $7::timestamptz[], $8::timestamptz[]) WITH ORDINALITY \
           AS v(id, at, code, error, ms, status, next, delivered, n)), \
         tried AS (INSERT INTO notification_tries (notification_id, at, status_code, error, \
           duration_ms) SELECT id, at, code, error, ms FROM v ORDER BY n), \
         moved AS (UPDATE notifications SET status = v.status, next_try_at = v.next, \
           delivered_at = v.delivered, step = notifications.step + 1, lease_owner = NULL, \
           lease_until = NULL FROM v \
           WHERE notifications.id = v.id AND notifications.lease_owner = $9 \
             AND notifications.status = 'pending' RETURNING notifications.id) \
         SELECT id FROM moved",
    )
    .bind(&ids)
    .bind(&ats)
    .bind(&codes)
    .bind(&errors)
    .bind(&durations)
    .bind(&statuses)
    .bind(&nexts)
    .bind(&delivered)
    .bind(owner)
    .fetch_all(pool)
    .await?;
    Ok(tries.iter().map(|t| moved.contains(&t.id)).collect())
}

pub(super) async fn resend(
    pool: &PgPool,
    id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let moved = sqlx::query(
        "UPDATE notifications SET next_try_at = $1, \
         step = CASE WHEN status = 'pending' THEN step ELSE 0 END, status = 'pending' \
         WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

fn notice_from_row(row: &PgRow) -> Result<RawNotice, StoreError> {
    Ok(RawNotice {
        id: row.try_get("id")?,
        kind: row.try_get("type")?,
        reminder_id: row.try_get("reminder_id")?,
        sequence: i64::from(row.try_get::<i32, _>("sequence")?),
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        next_try_at: row.try_get("next_try_at")?,
        delivered_at: row.try_get("delivered_at")?,
        body: row.try_get("body")?,
    })
}

/// Notifications with their tries (one statement for all of a page's tries).
pub(super) async fn with_tries(
    conn: &mut PgConnection,
    rows: Vec<PgRow>,
) -> Result<Vec<Notification>, StoreError> {
    let raws = rows
        .iter()
        .map(notice_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<&str> = raws.iter().map(|r| r.id.as_str()).collect();
    let tries = sqlx::query(
        "SELECT notification_id, at, status_code, error, duration_ms FROM notification_tries \
         WHERE notification_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(raws.len());
    for raw in raws {
        let mine = tries
            .iter()
            .filter(|t| t.try_get::<&str, _>("notification_id").ok() == Some(raw.id.as_str()))
            .map(|t| {
                let code: Option<i32> = t.try_get("status_code")?;
                Ok(NoticeTry {
                    at: t.try_get("at")?,
                    status_code: code.and_then(|c| u16::try_from(c).ok()),
                    error: t.try_get("error")?,
                    duration_ms: u64::try_from(t.try_get::<i32, _>("duration_ms")?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.push(raw.into_notification(mine)?);
    }
    Ok(out)
}

pub(super) fn select_notices() -> String {
    format!("SELECT {NOTICE_COLS} FROM notifications")
}
