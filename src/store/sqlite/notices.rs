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
//! written before the migration keep the ids and bodies they had. The
//! reads (the API's list and look-up, `/metrics`) are in `notice_reads`.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use std::sync::OnceLock;

use super::{attempt_from_row, built, from_ms, ms, ATTEMPT_NAMES};
use crate::domain::{
    attempt_ended, extra_name, render_body, Attempt, Change, Notice, NoticeType, Reminder,
    Suppression,
};
use crate::store::{Delivery, NoticeTry, StoreError, TryOutcome};

static ATTEMPT_SQL: OnceLock<String> = OnceLock::new();

/// At most this many notifications share a row (a change makes at most three).
pub(super) const MAX_PER_ROW: usize = 4;

pub(super) const LOG_COLS: &str =
    "seq, reminder_id, first_sequence, kinds, at, data, extra, legacy_id, legacy_body";

/// The last `sequence` of a subject: its newest row's first plus its count.
const LAST_ROW: &str = "SELECT first_sequence, kinds FROM notice_log WHERE subject = ? \
     ORDER BY first_sequence DESC LIMIT 1";
/// A row numbered after the log's last (`?` the number of its notifications).
const INSERT_ROW: &str = "INSERT INTO notice_log (seq, subject, reminder_id, first_sequence, \
     kinds, at, data, extra) VALUES ((SELECT COALESCE(MAX(seq), 0) FROM notice_log) + ?, \
     ?, ?, ?, ?, ?, ?, ?)";
/// The row that holds notification `?`.
pub(super) const ROW_OF: &str = "SELECT seq, reminder_id, first_sequence, kinds, at, data, extra, \
     legacy_id, legacy_body FROM notice_log WHERE seq >= ? ORDER BY seq LIMIT 1";
pub(super) const LEGACY: &str = "SELECT seq FROM notice_log WHERE legacy_id = ?";
pub(super) const FRONTIER: &str = "SELECT next_no, salt FROM notice_frontier";

pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
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
pub(super) struct Head {
    pub(super) next: i64,
    pub(super) salt: i64,
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
pub(super) fn parse_log_id(id: &str, salt: i64) -> Option<i64> {
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
pub(super) struct LogRow {
    pub(super) seq: i64,
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
pub(super) struct LogNotice {
    pub(super) no: i64,
    pub(super) id: String,
    pub(super) reminder_id: Option<String>,
    pub(super) kind: NoticeType,
    pub(super) sequence: i64,
    pub(super) created_at: DateTime<Utc>,
    pub(super) body: String,
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

    pub(super) fn from_sqlx(row: &SqliteRow) -> Result<Self, StoreError> {
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

    pub(super) fn first_no(&self) -> i64 {
        self.seq - self.count() + 1
    }

    /// Its notifications, in order, bodies rendered.
    pub(super) fn notices(&self, salt: i64) -> Result<Vec<LogNotice>, StoreError> {
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
    pub(super) fn names(&self, no: i64, salt: i64, id: &str) -> bool {
        self.legacy_id.is_none()
            && self.first_no() <= no
            && no <= self.seq
            && log_id(self.at, no, salt) == id
    }

    /// Its notification numbered `no`.
    pub(super) fn notice(&self, no: i64, salt: i64) -> Result<Option<LogNotice>, StoreError> {
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
