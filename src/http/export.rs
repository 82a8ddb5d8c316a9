//! `GET /api/reminders/export.csv`: every reminder the list holds, as CSV, so
//! an AR system can take the results (outcome, amounts paid) back in bulk.
//!
//! The same filter as the list (`status`) and its order (newest first). The
//! store is read a page at a time with the list's keyset cursor on
//! `(created_at, id)` and each page is written out as it is read, so memory
//! stays flat however many reminders there are. `created_at` never changes,
//! so a row is in exactly one page: a reminder that changes while the export
//! runs appears once, as it was when its page was read (one a status filter
//! no longer matches by then is left out; one created after the export began
//! sorts before its first row and is not in it).
//!
//! A bad filter is the list's 400 and a storage failure on the first page is
//! the usual JSON 500, both before anything is sent. A failure after that
//! cannot change the status line any more: it is logged and the body ends
//! without the chunked transfer's last chunk, so the client sees a truncated
//! transfer (curl exits 18, or 52 when even the status line was still in the
//! server's buffers), never a short file that looks whole. There is no
//! trailer row: a CSV that arrived whole is the whole export.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{stream, StreamExt};

use super::error::ApiError;
use super::reminders::status_filter;
use super::AppState;
use crate::domain::{self, format_time, Reminder, Status};
use crate::store::{Cursor, ListQuery, Store, StoreError};

/// Reminders read (and written out) at a time.
pub const EXPORT_PAGE: u32 = 500;

/// What one column makes of a reminder: the cell's text, empty for `null`.
type Getter = fn(&Reminder) -> String;

/// The columns, in order: the header and every row are made from this one
/// table, so a column cannot be named and then left out of the rows. Each
/// reads its field as the API's JSON shows it: times RFC 3339 UTC, dates
/// `YYYY-MM-DD`, `null` an empty cell, the outcome flattened to `outcome_*`.
pub const COLUMNS: &[(&str, Getter)] = &[
    ("id", |r| r.id.to_string()),
    ("external_id", |r| text(&r.external_id)),
    ("customer_name", |r| r.customer_name.clone()),
    ("phone_number", |r| r.phone_number.as_str().to_owned()),
    ("timezone", |r| {
        r.timezone.map(|z| z.name().to_owned()).unwrap_or_default()
    }),
    // IANA names hold no spaces; a `;` would split the cell for a spreadsheet
    // that reads `;` as the separator (and the csv crate does not quote it).
    ("calling_zones", |r| {
        r.calling_zones
            .iter()
            .map(|z| z.name())
            .collect::<Vec<_>>()
            .join(" ")
    }),
    ("language", |r| r.language.as_str().to_owned()),
    ("amount_due_minor", |r| r.amount_due_minor.to_string()),
    ("amount_paid_minor", |r| r.amount_paid_minor.to_string()),
    // Not in the JSON (it is due minus paid, never below 0), but what an AR
    // system reconciles by.
    ("amount_owed_minor", |r| r.amount_owed_minor().to_string()),
    ("currency", |r| r.currency.as_str().to_owned()),
    ("due_date", |r| r.due_date.to_string()),
    ("status", |r| r.status.as_str().to_owned()),
    ("attempt_count", |r| r.attempt_count.to_string()),
    ("max_attempts", |r| r.max_attempts.to_string()),
    ("next_attempt_at", |r| time(r.next_attempt_at)),
    ("last_attempt_at", |r| time(r.last_attempt_at)),
    ("skip_reason", |r| text(&r.skip_reason)),
    ("deferred_by", |r| {
        r.deferred_by
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default()
    }),
    ("debt_ref", |r| r.debt_ref.clone()),
    ("region", |r| {
        r.region
            .as_ref()
            .map(|g| g.as_str().to_owned())
            .unwrap_or_default()
    }),
    // Every field of the latest outcome (SPEC §2); all empty without one.
    ("outcome_result", |r| {
        outcome(r, |o| Some(o.result.as_str().to_owned()))
    }),
    ("outcome_promised_amount_minor", |r| {
        outcome(r, |o| o.promised_amount_minor.map(|a| a.to_string()))
    }),
    ("outcome_promised_date", |r| {
        outcome(r, |o| o.promised_date.map(|d| d.to_string()))
    }),
    ("outcome_callback_at", |r| {
        outcome(r, |o| o.callback_at.map(format_time))
    }),
    ("outcome_summary", |r| outcome(r, |o| o.summary.clone())),
    ("outcome_transcript", |r| {
        outcome(r, |o| o.transcript.clone())
    }),
    ("outcome_duration_seconds", |r| {
        outcome(r, |o| o.duration_seconds.map(|s| s.to_string()))
    }),
    // The promise its completed call made (SPEC §8); all empty without one.
    ("promise_amount_minor", |r| {
        promise(r, |p| p.amount_minor.to_string())
    }),
    ("promise_date", |r| promise(r, |p| p.date.to_string())),
    ("promise_status", |r| {
        promise(r, |p| p.status.as_str().to_owned())
    }),
    ("promise_follow_up_id", |r| {
        promise(r, |p| {
            p.follow_up_id.map(|f| f.to_string()).unwrap_or_default()
        })
    }),
    ("follow_up_of", |r| {
        r.follow_up_of.map(|f| f.to_string()).unwrap_or_default()
    }),
    ("metadata", |r| {
        serde_json::to_string(&r.metadata).expect("a JSON object serialises")
    }),
    ("created_at", |r| format_time(r.created_at)),
    ("updated_at", |r| format_time(r.updated_at)),
];

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(format_time).unwrap_or_default()
}

fn promise(r: &Reminder, cell: fn(&domain::Promise) -> String) -> String {
    r.promise.as_ref().map(cell).unwrap_or_default()
}

fn outcome(r: &Reminder, cell: fn(&domain::Outcome) -> Option<String>) -> String {
    r.outcome.as_ref().and_then(cell).unwrap_or_default()
}

/// The header line's names.
pub fn header() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().map(|(name, _)| *name)
}

/// One reminder's cells, in the header's order.
pub fn row(r: &Reminder) -> impl Iterator<Item = String> + '_ {
    COLUMNS.iter().map(move |(_, cell)| cell(r))
}

/// CSV text of some reminders (after the header, when `with_header`): RFC
/// 4180, CRLF line ends, a cell quoted only when it must be (a comma, a
/// quote, a line break). Values are written exactly as stored: no escaping of
/// a leading `=`, `+`, `-` or `@` (docs/DECISIONS.md, "Export").
fn encode(with_header: bool, reminders: &[Reminder]) -> Bytes {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(512 * (reminders.len() + 1)));
    // Writing to memory fails only on a record of the wrong length, which one
    // table for the header and the rows rules out.
    if with_header {
        out.write_record(header()).expect("CSV into memory");
    }
    for r in reminders {
        out.write_record(row(r)).expect("CSV into memory");
    }
    Bytes::from(out.into_inner().expect("CSV into memory"))
}

/// Where the export stands between two pages.
struct Pages {
    store: Arc<dyn Store>,
    status: Option<Status>,
    next: Option<Cursor>,
    /// Rows sent so far (for the log line of an export cut short).
    sent: u64,
}

/// The next page as CSV, `None` after the last. A storage failure here is
/// after the status line was sent: logged, and returned to end the body
/// abruptly.
async fn next_page(mut pages: Pages) -> Result<Option<(Bytes, Pages)>, StoreError> {
    let Some(after) = pages.next else {
        return Ok(None);
    };
    let page = pages
        .store
        .list_reminders(&ListQuery {
            status: pages.status,
            limit: EXPORT_PAGE,
            after: Some(after),
            search: None,
        })
        .await
        .inspect_err(|e| {
            tracing::error!(error = %e, rows_sent = pages.sent,
                "reminders export cut short: storage failed after the first page; the client sees a truncated transfer");
        })?;
    pages.next = page.next;
    pages.sent += page.reminders.len() as u64;
    Ok(Some((encode(false, &page.reminders), pages)))
}

/// `GET /api/reminders/export.csv?status=`: every reminder, newest first, as CSV.
#[utoipa::path(get, path = "/api/reminders/export.csv", tag = "reminders",
    security(("apiKey" = [])),
    params(
        ("status" = Option<domain::Status>, Query, description = "Only reminders in this status"),
    ),
    responses(
        (status = 200, description = "Every reminder the list holds (with this `status`), newest first, \
            one CSV row each under a header line: every field of the reminder as its JSON reads, \
            `null` an empty cell, the outcome flattened to `outcome_*` columns, `calling_zones` \
            space-separated, `metadata` as JSON text, plus `amount_owed_minor`. Streamed: a storage \
            failure after the first page ends the transfer before its end (a truncated body).",
            body = String, content_type = "text/csv",
            headers(("content-disposition" = String, description = "`attachment; filename=\"reminders.csv\"`"))),
        (status = 400, description = "Bad `status`, or `limit` or `cursor` given (the export is not paged)", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing before the first row; retry", body = super::error::ErrorBody),
    ))]
pub async fn export(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let status = status_filter(&params)?;
    // The list's paging parameters would be silently ignored here, and an
    // export of "the first 50" that holds everything is a surprise.
    for paging in ["limit", "cursor"] {
        if params.contains_key(paging) {
            return Err(domain::FieldError::new(
                paging,
                "is not taken by the export: it holds every reminder that matches, in one file",
            )
            .into());
        }
    }
    // The first page is read before answering, so that a database that is
    // down is a 500 the client can tell from a short file.
    let first = state
        .store
        .list_reminders(&ListQuery {
            status,
            limit: EXPORT_PAGE,
            after: None,
            search: None,
        })
        .await?;
    let head = encode(true, &first.reminders);
    let pages = Pages {
        store: Arc::clone(&state.store),
        status,
        next: first.next,
        sent: first.reminders.len() as u64,
    };
    let rest = stream::try_unfold(pages, next_page);
    let body = stream::once(async move { Ok::<_, StoreError>(head) }).chain(rest);
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"reminders.csv\""),
            ),
            // Names, numbers and amounts owed: not for a shared cache.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
