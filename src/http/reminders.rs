//! The reminders API (SPEC §5): create, list, get one with its attempts, cancel.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::{read_body, AppState, BODY_LIMIT};
use crate::domain::{self, NewReminder, ReminderId, Status};
use crate::store::{Applied, Created, Cursor, ListQuery};

/// `GET /api/reminders/{id}` and the cancel answer: the reminder with its attempts.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReminderWithAttempts {
    #[serde(flatten)]
    pub reminder: domain::Reminder,
    /// Oldest first.
    pub attempts: Vec<domain::Attempt>,
    /// Payments recorded against it (SPEC §8), oldest first.
    pub payments: Vec<domain::Payment>,
    /// What operators did to it from the dashboard (cancel, call now,
    /// suppress its number), by whom and when, oldest first.
    pub actions: Vec<domain::ReminderAction>,
}

/// One page of `GET /api/reminders`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReminderList {
    /// Newest first.
    pub reminders: Vec<domain::Reminder>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

fn parse_id(raw: &str) -> Result<ReminderId, ApiError> {
    ReminderId::parse(raw).ok_or_else(|| ApiError::NotFound(format!("no reminder with id {raw:?}")))
}

/// The `{id}` of the path as a reminder id. A segment that does not decode
/// (percent-escapes that are not UTF-8) names no reminder either: a JSON 404
/// like any other unknown id, never axum's plain-text rejection.
pub fn id_from_path(path: Result<Path<String>, PathRejection>) -> Result<ReminderId, ApiError> {
    match path {
        Ok(Path(raw)) => parse_id(&raw),
        Err(_) => Err(ApiError::NotFound(
            "no reminder with that id (the path is not UTF-8)".into(),
        )),
    }
}

/// A list's `limit` parameter: 1 to `MAX_PAGE`, `DEFAULT_PAGE` when absent.
pub fn page_limit(
    params: &std::collections::HashMap<String, String>,
) -> Result<u32, domain::FieldError> {
    match params.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                domain::FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )
            }),
    }
}

/// The `status` filter of the list and of the export. An empty `status=` is
/// refused like any other value that is not a status (the published
/// description says so; leave the parameter out instead).
pub fn status_filter(
    params: &HashMap<String, String>,
) -> Result<Option<Status>, domain::FieldError> {
    params
        .get("status")
        .map(|s| s.parse::<Status>())
        .transpose()
}

pub(super) fn not_found(id: ReminderId) -> ApiError {
    ApiError::NotFound(format!("no reminder with id {id}"))
}

/// Parse a JSON body that must be an object.
pub fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// `POST /api/reminders`: 201 with the new reminder, or 200 with the existing one
/// when its `external_id` is already known.
#[utoipa::path(post, path = "/api/reminders", tag = "reminders",
    security(("apiKey" = [])),
    request_body(content = super::openapi::CreateReminder, content_type = "application/json"),
    responses(
        (status = 201, description = "Created (`cancelled`, `skip_reason: suppressed`, when the number is on the suppression list)", body = domain::Reminder,
            headers(("location" = String, description = "`/api/reminders/{id}`"))),
        (status = 200, description = "Its `external_id` is already known: the existing reminder",
            body = domain::Reminder),
        (status = 400, description = "Not JSON, not an object, or a missing, unknown or invalid field (named)", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; nothing was changed, retry", body = super::error::ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    let map = json_object(&bytes)?;
    let mut new = NewReminder::parse(&map, &state.defaults)?;
    // A suppressed number's reminder is stored cancelled from the start (SPEC §7);
    // one suppressed a moment later is cancelled by the scheduler's claim.
    new.suppressed = state.store.is_suppressed(&new.phone_number).await?;
    let now = state.clock.now();
    match state
        .store
        .create_reminder(&new, ReminderId::new(), now)
        .await?
    {
        Created::New(r) => {
            tracing::info!(reminder_id = %r.id, "reminder created");
            let location = format!("/api/reminders/{}", r.id);
            Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(r)).into_response())
        }
        Created::Existing(r) => {
            tracing::info!(reminder_id = %r.id, "reminder already known by its external_id");
            Ok((StatusCode::OK, Json(r)).into_response())
        }
    }
}

/// `GET /api/reminders?status=&limit=&cursor=`: newest first, one page at a time.
#[utoipa::path(get, path = "/api/reminders", tag = "reminders",
    security(("apiKey" = [])),
    params(
        ("status" = Option<domain::Status>, Query, description = "Only reminders in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page, newest first", body = ReminderList),
        (status = 400, description = "Bad `status`, `limit` or `cursor`", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; retry", body = super::error::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ReminderList>, ApiError> {
    let Query(params) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let status = status_filter(&params)?;
    let limit = page_limit(&params)?;
    let after = params
        .get("cursor")
        .filter(|s| !s.is_empty())
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| {
                domain::FieldError::new("cursor", "is not a cursor this service handed out")
            })
        })
        .transpose()?;
    let page = state
        .store
        .list_reminders(&ListQuery {
            status,
            limit,
            after,
            search: None,
        })
        .await?;
    Ok(Json(ReminderList {
        reminders: page.reminders,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// The reminder with its attempts, oldest first.
async fn with_attempts(
    state: &AppState,
    r: domain::Reminder,
) -> Result<Json<ReminderWithAttempts>, ApiError> {
    let attempts = state.store.list_attempts(r.id).await?;
    let payments = state.store.list_payments(r.id).await?;
    let actions = state.store.list_actions(r.id).await?;
    Ok(Json(ReminderWithAttempts {
        reminder: r,
        attempts,
        payments,
        actions,
    }))
}

/// `GET /api/reminders/{id}`
#[utoipa::path(get, path = "/api/reminders/{id}", tag = "reminders",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The reminder's id (anything else is a 404)")),
    responses(
        (status = 200, description = "The reminder with its attempts, oldest first", body = ReminderWithAttempts),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 404, description = "No reminder with that id", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; retry", body = super::error::ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ReminderWithAttempts>, ApiError> {
    let id = id_from_path(path)?;
    let r = state
        .store
        .get_reminder(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    with_attempts(&state, r).await
}

/// `POST /api/reminders/{id}/cancel`: from `pending` or `failed`; cancelling a
/// cancelled reminder answers it as it is; a live or completed one is a 409.
#[utoipa::path(post, path = "/api/reminders/{id}/cancel", tag = "reminders",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The reminder's id (anything else is a 404)")),
    responses(
        (status = 200, description = "Cancelled (or already cancelled): the reminder with its attempts", body = ReminderWithAttempts),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 404, description = "No reminder with that id", body = super::error::ErrorBody),
        (status = 409, description = "A live call or a completed reminder cannot be cancelled (`invalid_transition`)", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; nothing was changed, retry", body = super::error::ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ReminderWithAttempts>, ApiError> {
    let id = id_from_path(path)?;
    // The decision is made on what was read and applied only if nothing moved
    // in between; if something did, decide again on the fresh row.
    for _ in 0..5 {
        let r = state
            .store
            .get_reminder(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let change = match domain::cancel(&r, state.clock.now()) {
            Ok(Some(change)) => change,
            Ok(None) => return with_attempts(&state, r).await,
            Err(refusal) => return Err(ApiError::conflict("invalid_transition", refusal.message)),
        };
        match state.store.apply(&change, None).await? {
            Applied::Done(r) => {
                crate::telemetry::transition(change.expect_status, r.status);
                tracing::info!(reminder_id = %id, from = %change.expect_status, "reminder cancelled by operator");
                return with_attempts(&state, *r).await;
            }
            Applied::NotFound => return Err(not_found(id)),
            Applied::Stale | Applied::Duplicate => continue,
        }
    }
    Err(ApiError::conflict(
        "busy",
        "the reminder kept changing while it was being cancelled; retry",
    ))
}
