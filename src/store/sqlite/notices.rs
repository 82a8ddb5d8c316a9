//! SQLite's outbox (SPEC §9), log-structured (migration 0013): a change's
//! notifications are one row of `notice_log`, written in the change's
//! transaction (on the writer thread, or in a claim's transaction on sqlx's
//! write connection); the delivery worker takes them in the order they were
//! written (`notice_frontier`), writing a small `notice_state` row for each
//! and a `notice_tries` row per try; reads run on the read pool.
//!
//! A notification is known by its number across the outbox (`no`); a row
//! holds the numbers `seq - n + 1 ..= seq`. Its id is made from that number
//! and its time, in a UUIDv7 layout (see [`log_id`]); the notifications
//! written before the migration keep the ids and bodies they had.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::HashMap;

use std::sync::OnceLock;

use super::{attempt_from_row, built, from_ms, ms, opt_from_ms, ATTEMPT_NAMES};
use crate::domain::{
    attempt_ended, extra_name, render_body, Attempt, Change, Notice, NoticeStatus, NoticeType,
    Reminder, ReminderId, Suppression,
};
use crate::store::{Delivery, NoticeTry, Notification, RawNotice, StoreError, TryOutcome};

static ATTEMPT_SQL: OnceLock<String> = OnceLock::new();

/// At most this many notifications share a row (a change makes at most three).
const MAX_PER_ROW: usize = 4;

const LOG_COLS: &str =
    "seq, reminder_id, first_sequence, kinds, at, data, extra, legacy_id, legacy_body";

/// The last `sequence` of a subject: its newest row's first plus its count.
const LAST_ROW: &str = "SELECT first_sequence, kinds FROM notice_log WHERE subject = ? \
     ORDER BY first_sequence DESC LIMIT 1";
/// A row numbered after the log's last (`?` the number of its notifications).
const INSERT_ROW: &str = "INSERT INTO notice_log (seq, subject, reminder_id, first_sequence, \
     kinds, at, data, extra) VALUES ((SELECT COALESCE(MAX(seq), 0) FROM notice_log) + ?, \
     ?, ?, ?, ?, ?, ?, ?)";
/// The row that holds notification `?`.
const ROW_OF: &str = "SELECT seq, reminder_id, first_sequence, kinds, at, data, extra, \
     legacy_id, legacy_body FROM notice_log WHERE seq >= ? ORDER BY seq LIMIT 1";
const LEGACY: &str = "SELECT seq FROM notice_log WHERE legacy_id = ?";
const FRONTIER: &str = "SELECT next_no, salt FROM notice_frontier";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("notification {what}"))
}

/// Bits of a notification's number in its id (a trillion notifications).
const NO_BITS: u32 = 40;
const NO_MASK: u128 = (1 << NO_BITS) - 1;
/// Bits of the database's own random salt (`notice_frontier.salt`): two
/// databases posting to one receiver never make the same id.
const SALT_BITS: u32 = 34;
const SALT_MASK: u128 = (1 << SALT_BITS) - 1;

/// The outbox's head: the first number not taken yet, and the salt of its ids.
#[derive(Clone, Copy)]
struct Head {
    next: i64,
    salt: i64,
}

/// A notification's id from its time, its number and the database's salt:
/// `msg_` and a UUIDv7 (48 bits of Unix milliseconds, version 7, then the
/// salt's 34 bits and the number's 40 around the variant), so ids sort by
/// time, differ between databases, and a try, a resend or a look-up finds
/// its row by the number without an index.
fn log_id(at_ms: i64, no: i64, salt: i64) -> String {
    let millis = u128::from(at_ms.max(0) as u64 & 0xFFFF_FFFF_FFFF);
    let salt = salt.max(0) as u128 & SALT_MASK;
    let rand = salt << NO_BITS | (no.max(0) as u128 & NO_MASK); // 74 bits
    let v = millis << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1));
    format!("msg_{v:032x}")
}

/// The number an id made by [`log_id`] with `salt` carries (the caller
/// checks the whole id against its row).
fn parse_log_id(id: &str, salt: i64) -> Option<i64> {
    let hex = id.strip_prefix("msg_")?;
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let v = u128::from_str_radix(hex, 16).ok()?;
    if (v >> 76) & 0xF != 7 || (v >> 62) & 0b11 != 0b10 {
        return None;
    }
    let rand = ((v >> 64) & 0xFFF) << 62 | (v & ((1 << 62) - 1));
    let no = i64::try_from(rand & NO_MASK).ok()?;
    (rand >> NO_BITS == salt.max(0) as u128 & SALT_MASK && no >= 1).then_some(no)
}

/// One row of the log, as read.
struct LogRow {
    seq: i64,
    reminder_id: Option<String>,
    first_sequence: i64,
    kinds: String,
    at: i64,
    data: Option<String>,
    extra: Option<String>,
    legacy_id: Option<String>,
    legacy_body: Option<String>,
}

/// One notification of a row.
struct LogNotice {
    no: i64,
    id: String,
    reminder_id: Option<String>,
    kind: NoticeType,
    sequence: i64,
    created_at: DateTime<Utc>,
    body: String,
}

impl LogRow {
    fn from_lite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get(0)?,
            reminder_id: row.get(1)?,
            first_sequence: row.get(2)?,
            kinds: row.get(3)?,
            at: row.get(4)?,
            data: row.get(5)?,
            extra: row.get(6)?,
            legacy_id: row.get(7)?,
            legacy_body: row.get(8)?,
        })
    }

    fn from_sqlx(row: &SqliteRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: row.try_get(0)?,
            reminder_id: row.try_get(1)?,
            first_sequence: row.try_get(2)?,
            kinds: row.try_get(3)?,
            at: row.try_get(4)?,
            data: row.try_get(5)?,
            extra: row.try_get(6)?,
            legacy_id: row.try_get(7)?,
            legacy_body: row.try_get(8)?,
        })
    }

    fn count(&self) -> i64 {
        self.kinds.split(',').count() as i64
    }

    fn first_no(&self) -> i64 {
        self.seq - self.count() + 1
    }

    /// Its notifications, in order, bodies rendered.
    fn notices(&self, salt: i64) -> Result<Vec<LogNotice>, StoreError> {
        let created_at = from_ms(self.at)?;
        let first_no = self.first_no();
        let mut out = Vec::with_capacity(MAX_PER_ROW);
        for (k, name) in self.kinds.split(',').enumerate() {
            let kind: NoticeType = name
                .parse()
                .map_err(|_| corrupt(format!("type {name:?}")))?;
            let no = first_no + k as i64;
            if no as u128 > NO_MASK {
                return Err(corrupt(format!("number {no}: past what an id holds")));
            }
            let sequence = self.first_sequence + k as i64;
            let (id, body) = match (&self.legacy_id, &self.legacy_body, &self.data) {
                (Some(id), Some(body), _) => (id.clone(), body.clone()),
                (None, None, Some(data)) => {
                    let extra = match (k, &self.extra) {
                        (0, Some(text)) => {
                            let name = extra_name(kind)
                                .ok_or_else(|| corrupt(format!("{kind} with a member more")))?;
                            Some((name, text.as_str()))
                        }
                        _ => None,
                    };
                    let sequence =
                        u32::try_from(sequence).map_err(|e| corrupt(format!("sequence: {e}")))?;
                    (
                        log_id(self.at, no, salt),
                        render_body(kind, created_at, data, extra, sequence),
                    )
                }
                _ => {
                    return Err(corrupt(format!(
                        "row {}: neither kept nor rendered",
                        self.seq
                    )))
                }
            };
            out.push(LogNotice {
                no,
                id,
                reminder_id: self.reminder_id.clone(),
                kind,
                sequence,
                created_at,
                body,
            });
        }
        Ok(out)
    }

    /// Whether `id` is the id this row gives its notification `no`.
    fn names(&self, no: i64, salt: i64, id: &str) -> bool {
        self.legacy_id.is_none()
            && self.first_no() <= no
            && no <= self.seq
            && log_id(self.at, no, salt) == id
    }

    /// Its notification numbered `no`.
    fn notice(&self, no: i64, salt: i64) -> Result<Option<LogNotice>, StoreError> {
        Ok(self.notices(salt)?.into_iter().find(|n| n.no == no))
    }
}

/// What notices can share a row: one subject, one time, one `data`, and a
/// member more only on the first (the one its type names).
fn rows_of(notices: &[Notice]) -> Result<Vec<&[Notice]>, StoreError> {
    let mut rows = Vec::new();
    let mut start = 0;
    for (i, n) in notices.iter().enumerate() {
        if let Some((name, _)) = n.extra() {
            if extra_name(n.kind) != Some(name) {
                return Err(corrupt(format!("{} with a member {name:?}", n.kind)));
            }
        }
        let first = &notices[start];
        let joins = i > start
            && i - start < MAX_PER_ROW
            && n.extra().is_none()
            && n.subject == first.subject
            && n.at == first.at
            && n.data_text() == first.data_text();
        if i > start && !joins {
            rows.push(&notices[start..i]);
            start = i;
        }
    }
    if start < notices.len() {
        rows.push(&notices[start..]);
    }
    Ok(rows)
}

/// A row's parts to bind, after `n` and before nothing (`INSERT_ROW`'s order).
struct RowParts<'a> {
    n: i64,
    subject: &'a str,
    reminder_id: Option<String>,
    first_sequence: i64,
    kinds: String,
    at: i64,
    data: &'a str,
    extra: Option<&'a str>,
}

fn parts(row: &[Notice], last: i64) -> Result<RowParts<'_>, StoreError> {
    let first = &row[0];
    let n = row.len() as i64;
    u32::try_from(last + n).map_err(|e| corrupt(format!("sequence: {e}")))?;
    let kinds: Vec<&str> = row.iter().map(|n| n.kind.as_str()).collect();
    Ok(RowParts {
        n,
        subject: &first.subject,
        reminder_id: first.reminder_id.map(|id| id.to_string()),
        first_sequence: last + 1,
        kinds: kinds.join(","),
        at: ms(first.at),
        data: first.data_text(),
        extra: first.extra().map(|(_, v)| v),
    })
}

fn last_of(first_sequence: i64, kinds: &str) -> i64 {
    first_sequence + kinds.split(',').count() as i64 - 1
}

/// Write notices, numbered after their subjects' last, due at once.
pub(super) fn insert_notices(conn: &Connection, notices: &[Notice]) -> Result<(), StoreError> {
    let mut known: Option<(&str, i64)> = None;
    for row in rows_of(notices)? {
        let subject = row[0].subject.as_str();
        let last = match known {
            Some((s, last)) if s == subject => last,
            _ => conn
                .prepare_cached(LAST_ROW)?
                .query_row([subject], |r| {
                    Ok(last_of(r.get(0)?, &r.get::<_, String>(1)?))
                })
                .optional()?
                .unwrap_or(0),
        };
        let p = parts(row, last)?;
        conn.prepare_cached(INSERT_ROW)?.execute(params![
            p.n,
            p.subject,
            p.reminder_id,
            p.first_sequence,
            p.kinds,
            p.at,
            p.data,
            p.extra
        ])?;
        known = Some((subject, last + p.n));
    }
    Ok(())
}

/// Write one notice, numbered after its subject's last, due at once.
pub(super) fn insert_notice(conn: &Connection, notice: &Notice) -> Result<(), StoreError> {
    insert_notices(conn, std::slice::from_ref(notice))
}

/// The notices a written change causes (`after`: the reminder it left).
pub(super) fn write_notices(
    conn: &Connection,
    change: &Change,
    after: &Reminder,
    attempt: Option<Attempt>,
) -> Result<(), StoreError> {
    let attempt = match (attempt_ended(change, after), attempt) {
        (Some(n), Some(known)) if known.attempt == n => Some(known),
        (Some(n), _) => conn
            .prepare_cached(built(&ATTEMPT_SQL, || {
                format!(
                    "SELECT {} FROM attempts WHERE reminder_id = ? AND attempt = ?",
                    ATTEMPT_NAMES.join(", ")
                )
            }))?
            .query_row(params![after.id.to_string(), i64::from(n)], |row| {
                Ok(attempt_from_row(row))
            })
            .optional()?
            .transpose()?,
        (None, _) => None,
    };
    insert_notices(conn, &Notice::for_change(change, after, attempt.as_ref()))
}

/// The same on sqlx's write connection (a claim's ends), in its transaction.
pub(super) async fn insert_notice_sqlx(
    conn: &mut SqliteConnection,
    notice: &Notice,
) -> Result<(), StoreError> {
    let last = sqlx::query_as::<_, (i64, String)>(LAST_ROW)
        .bind(&notice.subject)
        .fetch_optional(&mut *conn)
        .await?
        .map_or(0, |(first, kinds)| last_of(first, &kinds));
    let row = std::slice::from_ref(notice);
    rows_of(row)?;
    let p = parts(row, last)?;
    sqlx::query(INSERT_ROW)
        .bind(p.n)
        .bind(p.subject)
        .bind(p.reminder_id)
        .bind(p.first_sequence)
        .bind(p.kinds)
        .bind(p.at)
        .bind(p.data)
        .bind(p.extra)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A number just put on the list.
pub(super) fn notice_suppression(conn: &Connection, entry: &Suppression) -> Result<(), StoreError> {
    insert_notice(conn, &Notice::about_suppression(entry))
}

/// The row holding notification `no`, if it is one.
fn row_of(conn: &Connection, no: i64) -> Result<Option<LogRow>, StoreError> {
    let row = conn
        .prepare_cached(ROW_OF)?
        .query_row([no], LogRow::from_lite)
        .optional()?;
    Ok(row.filter(|r| r.first_no() <= no))
}

/// The number of the notification `id`, if there is one.
/// (An id written before the migration is looked up by its index; one made
/// here names its row, whose time must match.)
fn resolve(conn: &Connection, id: &str) -> Result<Option<i64>, StoreError> {
    let head = head(conn)?;
    if let Some(no) = parse_log_id(id, head.salt) {
        if row_of(conn, no)?.is_some_and(|r| r.names(no, head.salt, id)) {
            return Ok(Some(no));
        }
    }
    Ok(conn
        .prepare_cached(LEGACY)?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

fn head(conn: &Connection) -> Result<Head, StoreError> {
    Ok(conn.prepare_cached(FRONTIER)?.query_row([], |r| {
        Ok(Head {
            next: r.get(0)?,
            salt: r.get(1)?,
        })
    })?)
}

/// Lease up to `limit` due notifications to `owner` until `until`, the
/// earliest due first: those taken before (retries, and leases that ran
/// out), merged with new ones in the order they were written, each new one
/// given its state row now. A new one made later than `now` (a clock ahead)
/// gets its state row unleased, due at its time, so it holds up none after it.
pub(super) fn lease(
    conn: &Connection,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let limit = limit as usize;
    let head = head(conn)?;
    let retries: Vec<(i64, i64, u32)> = conn
        .prepare_cached(
            "SELECT no, next_try_at, step FROM notice_state WHERE status = 'pending'              AND next_try_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)              ORDER BY next_try_at, no LIMIT ?2",
        )?
        .query_map(params![ms(now), limit as i64], |r| {
            let step = u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX);
            Ok((r.get(0)?, r.get(1)?, step))
        })?
        .collect::<Result<_, _>>()?;
    let rows: Vec<LogRow> = conn
        .prepare_cached(&format!(
            "SELECT {LOG_COLS} FROM notice_log WHERE seq >= ? ORDER BY seq LIMIT ?"
        ))?
        .query_map(params![head.next, limit as i64], LogRow::from_lite)?
        .collect::<Result<_, _>>()?;
    let mut fresh = Vec::new();
    for row in &rows {
        fresh.extend(
            row.notices(head.salt)?
                .into_iter()
                .filter(|n| n.no >= head.next)
                .map(|n| (row.at, n)),
        );
    }
    let mut fresh = fresh.into_iter().peekable();
    let mut retries = retries.into_iter().peekable();
    let mut next = head.next;
    let mut leased = Vec::with_capacity(limit);
    let mut take_new = conn.prepare_cached(
        "INSERT INTO notice_state (no, status, step, next_try_at, lease_owner, lease_until, \
         created_at) VALUES (?, 'pending', 0, ?, ?, ?, ?)",
    )?;
    while leased.len() < limit {
        let new_due = fresh.peek().map(|(at, _)| *at);
        if let Some(at) = new_due.filter(|at| *at > ms(now)) {
            let (_, notice) = fresh.next().expect("peeked");
            take_new.execute(params![notice.no, at, None::<&str>, None::<i64>, at])?;
            next = notice.no + 1;
            continue;
        }
        let retry_first = match (retries.peek(), new_due) {
            (Some((_, due, _)), Some(at)) => *due <= at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if retry_first {
            let (no, _, step) = retries.next().expect("peeked");
            conn.prepare_cached(
                "UPDATE notice_state SET lease_owner = ?, lease_until = ? WHERE no = ?",
            )?
            .execute(params![owner, ms(until), no])?;
            let notice = row_of(conn, no)?
                .map(|r| r.notice(no, head.salt))
                .transpose()?
                .flatten()
                .ok_or_else(|| corrupt(format!("{no}: a state without its row")))?;
            leased.push(delivery(notice, step));
        } else {
            let (at, notice) = fresh.next().expect("peeked");
            take_new.execute(params![notice.no, at, owner, ms(until), at])?;
            next = notice.no + 1;
            leased.push(delivery(notice, 0));
        }
    }
    if next != head.next {
        conn.prepare_cached("UPDATE notice_frontier SET next_no = ?")?
            .execute([next])?;
    }
    leased.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(leased)
}

fn delivery(notice: LogNotice, step: u32) -> Delivery {
    Delivery {
        id: notice.id,
        kind: notice.kind,
        body: notice.body,
        step,
        created_at: notice.created_at,
    }
}

/// Record a try; move the notification only while `owner` holds its lease.
pub(super) fn record(
    conn: &Connection,
    id: &str,
    owner: &str,
    t: &NoticeTry,
    outcome: TryOutcome,
) -> Result<bool, StoreError> {
    let Some(no) = resolve(conn, id)? else {
        return Ok(false);
    };
    conn.prepare_cached(
        "INSERT INTO notice_tries (no, at, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        no,
        ms(t.at),
        t.status_code,
        t.error,
        i64::try_from(t.duration_ms).unwrap_or(i64::MAX)
    ])?;
    let (status, next, delivered) = match outcome {
        TryOutcome::Delivered => ("delivered", None, Some(ms(t.at))),
        TryOutcome::RetryAt(at) => ("pending", Some(ms(at)), None),
        TryOutcome::Failed => ("failed", None, None),
    };
    let moved = conn
        .prepare_cached(
            "UPDATE notice_state SET status = ?, next_try_at = ?, delivered_at = ?, \
             step = step + 1, lease_owner = NULL, lease_until = NULL \
             WHERE no = ? AND lease_owner = ? AND status = 'pending'",
        )?
        .execute(params![status, next, delivered, no, owner])?;
    Ok(moved == 1)
}

/// Queue a notification again: a delivered or failed one starts a new round
/// of tries now; a pending one is tried now (one not taken yet is due
/// already). `false`: no such notification.
pub(super) fn resend(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let Some(no) = resolve(conn, id)? else {
        return Ok(false);
    };
    let moved = conn
        .prepare_cached(
            "UPDATE notice_state SET next_try_at = ?1, \
             step = CASE WHEN status = 'pending' THEN step ELSE 0 END, status = 'pending' \
             WHERE no = ?2",
        )?
        .execute(params![ms(now), no])?;
    if moved == 1 || no >= head(conn)?.next {
        return Ok(true);
    }
    Err(corrupt(format!("{no}: taken but without a state")))
}

// ---- reads, on the read pool (one snapshot per request) ----

async fn row_of_sqlx(read: &mut SqliteConnection, no: i64) -> Result<Option<LogRow>, StoreError> {
    let row = sqlx::query(ROW_OF)
        .bind(no)
        .fetch_optional(&mut *read)
        .await?
        .map(|r| LogRow::from_sqlx(&r))
        .transpose()?;
    Ok(row.filter(|r| r.first_no() <= no))
}

async fn resolve_sqlx(
    read: &mut SqliteConnection,
    id: &str,
    head: Head,
) -> Result<Option<i64>, StoreError> {
    if let Some(no) = parse_log_id(id, head.salt) {
        let row = row_of_sqlx(read, no).await?;
        if row.is_some_and(|r| r.names(no, head.salt, id)) {
            return Ok(Some(no));
        }
    }
    Ok(sqlx::query_scalar::<_, i64>(LEGACY)
        .bind(id)
        .fetch_optional(&mut *read)
        .await?)
}

async fn head_sqlx(read: &mut SqliteConnection) -> Result<Head, StoreError> {
    let (next, salt) = sqlx::query_as(FRONTIER).fetch_one(&mut *read).await?;
    Ok(Head { next, salt })
}

/// `SELECT … WHERE no IN (…)` over `nos` (at most a page's worth).
fn by_no<'a>(select: &str, nos: &'a [i64], tail: &str) -> QueryBuilder<'a, Sqlite> {
    let mut qb = QueryBuilder::new(select);
    qb.push(" WHERE no IN (");
    let mut list = qb.separated(", ");
    for no in nos {
        list.push_bind(*no);
    }
    qb.push(")").push(tail);
    qb
}

/// Notifications as the API shows them, with their states and tries (two
/// reads for them all), keeping those in `status` when given, up to `want`.
async fn show(
    read: &mut SqliteConnection,
    notices: Vec<LogNotice>,
    head: Head,
    status: Option<NoticeStatus>,
    want: usize,
) -> Result<Vec<Notification>, StoreError> {
    type State = (String, Option<i64>, Option<i64>);
    let taken: Vec<i64> = notices
        .iter()
        .map(|n| n.no)
        .filter(|no| *no < head.next)
        .collect();
    let mut states: HashMap<i64, State> = HashMap::new();
    if !taken.is_empty() {
        let mut qb = by_no(
            "SELECT no, status, next_try_at, delivered_at FROM notice_state",
            &taken,
            "",
        );
        for row in qb.build().fetch_all(&mut *read).await? {
            states.insert(
                row.try_get(0)?,
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
            );
        }
    }
    let mut kept = Vec::with_capacity(want.min(notices.len()));
    for notice in notices {
        if kept.len() >= want {
            break;
        }
        let state = if notice.no >= head.next {
            (
                NoticeStatus::Pending.as_str().to_owned(),
                Some(ms(notice.created_at)),
                None,
            )
        } else {
            states
                .remove(&notice.no)
                .ok_or_else(|| corrupt(format!("{}: taken but without a state", notice.no)))?
        };
        if status.map_or(true, |s| s.as_str() == state.0) {
            kept.push((notice, state));
        }
    }
    let tried: Vec<i64> = kept
        .iter()
        .map(|(n, _)| n.no)
        .filter(|no| *no < head.next)
        .collect();
    let mut tries: HashMap<i64, Vec<NoticeTry>> = HashMap::new();
    if !tried.is_empty() {
        let mut qb = by_no(
            "SELECT no, at, status_code, error, duration_ms FROM notice_tries",
            &tried,
            " ORDER BY no, rowid",
        );
        for row in qb.build().fetch_all(&mut *read).await? {
            tries
                .entry(row.try_get(0)?)
                .or_default()
                .push(try_from_row(&row)?);
        }
    }
    kept.into_iter()
        .map(|(notice, (status, next, delivered))| {
            let reminder_id = notice
                .reminder_id
                .as_deref()
                .map(|r| {
                    ReminderId::parse(r)
                        .map(|id| id.as_uuid())
                        .ok_or_else(|| corrupt(format!("reminder {r:?}")))
                })
                .transpose()?;
            RawNotice {
                kind: notice.kind.as_str().to_owned(),
                reminder_id,
                sequence: notice.sequence,
                status,
                created_at: notice.created_at,
                next_try_at: opt_from_ms(next)?,
                delivered_at: opt_from_ms(delivered)?,
                body: notice.body,
                id: notice.id,
            }
            .into_notification(tries.remove(&notice.no).unwrap_or_default())
        })
        .collect()
}

/// A try from a row of `no, at, status_code, error, duration_ms`.
fn try_from_row(row: &SqliteRow) -> Result<NoticeTry, StoreError> {
    let code: Option<i64> = row.try_get(2)?;
    Ok(NoticeTry {
        at: from_ms(row.try_get(1)?)?,
        status_code: code.and_then(|c| u16::try_from(c).ok()),
        error: row.try_get(3)?,
        duration_ms: u64::try_from(row.try_get::<i64, _>(4)?).unwrap_or(0),
    })
}

/// One notification by its id.
pub(super) async fn get(
    read: &mut SqliteConnection,
    id: &str,
) -> Result<Option<Notification>, StoreError> {
    let head = head_sqlx(read).await?;
    let Some(no) = resolve_sqlx(read, id, head).await? else {
        return Ok(None);
    };
    let Some(row) = row_of_sqlx(read, no).await? else {
        return Ok(None);
    };
    let Some(notice) = row.notice(no, head.salt)? else {
        return Ok(None);
    };
    Ok(show(read, vec![notice], head, None, 1).await?.pop())
}

/// Up to `want` notifications, newest first, below `below` (a number), of
/// `subject` when given, in `status` when given.
pub(super) async fn list(
    read: &mut SqliteConnection,
    status: Option<NoticeStatus>,
    subject: Option<String>,
    after: Option<&str>,
    want: usize,
) -> Result<Vec<Notification>, StoreError> {
    let head = head_sqlx(read).await?;
    // The cursor's number: one of ours (even if no row has it: the ids
    // below it), or one written before the migration; another is no cursor
    // of this list (nothing below it).
    let below = match after {
        None => i64::MAX,
        Some(id) => match parse_log_id(id, head.salt) {
            Some(no) => no,
            None => match resolve_sqlx(read, id, head).await? {
                Some(no) => no,
                None => return Ok(Vec::new()),
            },
        },
    };
    let mut out = Vec::with_capacity(want);
    match (status, &subject) {
        (Some(status @ (NoticeStatus::Delivered | NoticeStatus::Failed)), None) => {
            let nos: Vec<i64> = sqlx::query_scalar(
                "SELECT no FROM notice_state WHERE status = ? AND no < ? ORDER BY no DESC LIMIT ?",
            )
            .bind(status.as_str())
            .bind(below)
            .bind(want as i64)
            .fetch_all(&mut *read)
            .await?;
            by_numbers(read, &nos, head, &mut out).await?;
        }
        (Some(NoticeStatus::Pending), None) => {
            // The ones not taken yet (the newest), then those taken and waiting.
            let new_ones = Filter {
                subject: None,
                status: None,
                floor: head.next,
            };
            walk(read, new_ones, below, head, want, &mut out).await?;
            if out.len() < want {
                let nos: Vec<i64> = sqlx::query_scalar(
                    "SELECT no FROM notice_state INDEXED BY notice_state_due \
                     WHERE status = 'pending' AND no < ? ORDER BY no DESC LIMIT ?",
                )
                .bind(below.min(head.next))
                .bind((want - out.len()) as i64)
                .fetch_all(&mut *read)
                .await?;
                by_numbers(read, &nos, head, &mut out).await?;
            }
        }
        (status, subject) => {
            let filter = Filter {
                subject: subject.as_deref(),
                status,
                floor: 0,
            };
            walk(read, filter, below, head, want, &mut out).await?;
        }
    }
    Ok(out)
}

async fn by_numbers(
    read: &mut SqliteConnection,
    nos: &[i64],
    head: Head,
    out: &mut Vec<Notification>,
) -> Result<(), StoreError> {
    let mut notices = Vec::with_capacity(nos.len());
    for &no in nos {
        let row = row_of_sqlx(read, no)
            .await?
            .ok_or_else(|| corrupt(format!("{no}: a state without its row")))?;
        notices.push(
            row.notice(no, head.salt)?
                .ok_or_else(|| corrupt(format!("{no}: a state without its row")))?,
        );
    }
    out.extend(show(read, notices, head, None, nos.len()).await?);
    Ok(())
}

/// Rows newest first, a page at a time, holding notifications below `below`
/// (a row holds at most `MAX_PER_ROW`, so its last number is below
/// `below + MAX_PER_ROW - 1`).
async fn rows_below(
    read: &mut SqliteConnection,
    subject: Option<&str>,
    below: i64,
) -> Result<Vec<LogRow>, StoreError> {
    let top = below.saturating_add(MAX_PER_ROW as i64 - 2);
    let rows = match subject {
        Some(s) => {
            sqlx::query(&format!(
                "SELECT {LOG_COLS} FROM notice_log WHERE subject = ? AND seq <= ? \
                 ORDER BY seq DESC LIMIT 32"
            ))
            .bind(s)
            .bind(top)
            .fetch_all(&mut *read)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {LOG_COLS} FROM notice_log WHERE seq <= ? ORDER BY seq DESC LIMIT 32"
            ))
            .bind(top)
            .fetch_all(&mut *read)
            .await?
        }
    };
    rows.iter().map(LogRow::from_sqlx).collect()
}

/// Which notifications a walk keeps: of a subject, in a status, numbered
/// from `floor` up (when given).
#[derive(Clone, Copy)]
struct Filter<'a> {
    subject: Option<&'a str>,
    status: Option<NoticeStatus>,
    floor: i64,
}

/// The notifications `filter` keeps below `below`, newest first, until `want`.
async fn walk(
    read: &mut SqliteConnection,
    filter: Filter<'_>,
    below: i64,
    head: Head,
    want: usize,
    out: &mut Vec<Notification>,
) -> Result<(), StoreError> {
    let mut below = below;
    while out.len() < want {
        let before = below;
        let rows = rows_below(read, filter.subject, below).await?;
        if rows.is_empty() {
            return Ok(());
        }
        // This page's notifications below `below` (and from `floor`), newest first.
        let mut page = Vec::new();
        let mut floor_reached = false;
        for row in &rows {
            for notice in row.notices(head.salt)?.into_iter().rev() {
                if notice.no >= below {
                    continue;
                }
                if notice.no < filter.floor {
                    floor_reached = true;
                    break;
                }
                page.push(notice);
            }
            below = below.min(row.first_no());
        }
        let room = want - out.len();
        out.extend(show(read, page, head, filter.status, room).await?);
        if floor_reached || below == before {
            break;
        }
    }
    Ok(())
}

/// /metrics' figures: pending ones (taken and waiting, through their partial
/// index, and those not taken yet: the log's last number past the
/// frontier), delivered and failed as the trigger keeps them.
pub(super) const NOTICE_COUNTS: &str = "SELECT 'pending', \
     (SELECT count(*) FROM notice_state INDEXED BY notice_state_due WHERE status = 'pending') \
     + max(0, (SELECT COALESCE(MAX(seq), 0) FROM notice_log) \
              - (SELECT next_no FROM notice_frontier) + 1) \
     UNION ALL SELECT status, n FROM notification_counts";
/// When the oldest pending one was made: the oldest taken and waiting, or the
/// first not taken yet.
pub(super) const OLDEST_PENDING: &str = "SELECT MIN(t) FROM (\
     SELECT MIN(created_at) AS t FROM notice_state INDEXED BY notice_state_due \
     WHERE status = 'pending' \
     UNION ALL SELECT (SELECT at FROM notice_log \
       WHERE seq >= (SELECT next_no FROM notice_frontier) ORDER BY seq LIMIT 1))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_carries_its_time_number_and_salt_and_sorts_by_time() {
        let at = 1_796_000_000_123;
        let salt = 0x2_dead_beef; // 34 bits
        for no in [1, 2, 77, (1 << 39) + 3, (1 << 40) - 1] {
            let id = log_id(at, no, salt);
            assert_eq!(id.len(), 36, "{id}");
            let uuid = uuid::Uuid::parse_str(&id[4..]).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
            assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, at as u64);
            assert_eq!(parse_log_id(&id, salt), Some(no));
            // Another database's salt: not one of its ids.
            assert_eq!(parse_log_id(&id, salt ^ 1), None);
            assert_eq!(parse_log_id(&id, salt ^ (1 << 33)), None);
            assert_eq!(
                parse_log_id(&id.to_uppercase().replace("MSG_", "msg_"), salt),
                None
            );
        }
        assert_ne!(log_id(at, 5, 1), log_id(at, 5, 2));
        assert!(log_id(at, 9, salt) < log_id(at + 1, 1, salt));
        assert!(log_id(at, 9, salt) < log_id(at, 10, salt));
        assert_eq!(parse_log_id("msg_short", salt), None);
        assert_eq!(parse_log_id(&format!("msg_{:032x}", 0u128), 0), None);
    }
}
