//! SQLite's outbox as the API and `/metrics` read it (SPEC §9), on the read
//! pool, one snapshot per request: a notification's state and tries with its
//! row of the log (see `notices` for how they are written).

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::notices::{
    corrupt, parse_log_id, Head, LogNotice, LogRow, FRONTIER, LEGACY, LOG_COLS, MAX_PER_ROW, ROW_OF,
};
use super::{from_ms, ms, opt_from_ms};
use crate::domain::{NoticeStatus, ReminderId};
use crate::store::{NoticeTry, Notification, RawNotice, StoreError};

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
