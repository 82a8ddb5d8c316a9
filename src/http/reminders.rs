//! The reminders API (SPEC §5): create, list, get one with its attempts, cancel.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{read_body, AppState, BODY_LIMIT};
use crate::reminder::{self, NewReminder, ReminderId, Status};
use crate::store::{Applied, Created, Cursor, ListQuery};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

fn parse_id(raw: &str) -> Result<ReminderId, ApiError> {
    ReminderId::parse(raw).ok_or_else(|| ApiError::NotFound(format!("no reminder with id {raw:?}")))
}

fn not_found(id: ReminderId) -> ApiError {
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
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    let map = json_object(&bytes)?;
    let new = NewReminder::parse(&map, &state.defaults)?;
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
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let status = params
        .get("status")
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Status>())
        .transpose()?;
    let limit = match params.get("limit").filter(|s| !s.is_empty()) {
        None => DEFAULT_PAGE,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                reminder::FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let after = params
        .get("cursor")
        .filter(|s| !s.is_empty())
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| {
                reminder::FieldError::new("cursor", "is not a cursor this service handed out")
            })
        })
        .transpose()?;
    let page = state
        .store
        .list_reminders(&ListQuery {
            status,
            limit,
            after,
        })
        .await?;
    Ok(Json(json!({
        "reminders": page.reminders,
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}

/// The reminder with its attempts, oldest first.
async fn with_attempts(state: &AppState, r: reminder::Reminder) -> Result<Json<Value>, ApiError> {
    let attempts = state.store.list_attempts(r.id).await?;
    let mut body = serde_json::to_value(&r).map_err(|e| {
        ApiError::Storage(crate::store::StoreError::Corrupt(format!("serialise: {e}")))
    })?;
    body["attempts"] = json!(attempts);
    Ok(Json(body))
}

/// `GET /api/reminders/{id}`
pub async fn get_one(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let r = state
        .store
        .get_reminder(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    with_attempts(&state, r).await
}

/// `POST /api/reminders/{id}/cancel`: from `pending` or `failed`; cancelling a
/// cancelled reminder answers it as it is; a live or completed one is a 409.
pub async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    // The decision is made on what was read and applied only if nothing moved
    // in between; if something did, decide again on the fresh row.
    for _ in 0..5 {
        let r = state
            .store
            .get_reminder(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let change = match reminder::cancel(&r, state.clock.now()) {
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
