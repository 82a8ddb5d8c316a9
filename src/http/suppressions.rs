//! The suppression list (SPEC §7): numbers that must never be called. Add,
//! list, read one with its history, remove with a reason.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::reminders::json_object;
use super::{read_body, AppState, BODY_LIMIT};
use crate::domain::{
    FieldError, PhoneNumber, Reason, SuppressNumber, Suppression, SuppressionAudit,
};
use crate::store::{Suppressed, SuppressionCursor};

/// The body of `POST /api/suppressions`. Unknown fields are refused.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // a description, never built
#[serde(deny_unknown_fields)]
pub struct AddSuppression {
    /// E.164: `+`, then 7 to 15 digits, the first not 0.
    #[schema(pattern = r"^\+[1-9][0-9]{6,14}$", example = "+14155550100")]
    phone_number: String,
    /// Why (kept in the audit): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, example = "asked not to be called")]
    reason: String,
}

/// The body of `DELETE /api/suppressions/{phone_number}` (or `?reason=`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // a description, never built
#[serde(deny_unknown_fields)]
pub struct RemoveSuppression {
    /// Why (kept in the audit): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, example = "added by mistake")]
    reason: String,
}

/// A number on the list with every add and remove of it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SuppressionWithHistory {
    #[serde(flatten)]
    pub entry: Suppression,
    /// Every add and remove of the number, oldest first.
    pub history: Vec<SuppressionAudit>,
}

/// One page of `GET /api/suppressions`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SuppressionList {
    /// Newest first.
    pub suppressions: Vec<Suppression>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Refuse any field but `allowed`.
fn only_fields(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => {
            Err(FieldError::new(unknown.clone(), "is not a field of this request").into())
        }
        None => Ok(()),
    }
}

fn string_field<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, "is required").into()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(FieldError::new(field, "must be a string").into()),
    }
}

/// The `{phone_number}` of the path (`+` sent as is or as `%2B`).
fn phone_from_path(path: Result<Path<String>, PathRejection>) -> Result<PhoneNumber, ApiError> {
    match path {
        Ok(Path(raw)) => Ok(PhoneNumber::parse(&raw)?),
        Err(_) => Err(FieldError::new("phone_number", "the path is not UTF-8 text").into()),
    }
}

/// Where an entry is read: the `+` escaped, so no client reads it as a space.
fn location(phone: &PhoneNumber) -> String {
    format!(
        "/api/suppressions/%2B{}",
        phone.as_str().trim_start_matches('+')
    )
}

/// `POST /api/suppressions`: 201 with the new entry, 200 with the entry as it
/// stands when the number is already on the list (its reason is not changed).
#[utoipa::path(post, path = "/api/suppressions", tag = "suppressions",
    security(("apiKey" = [])),
    request_body(content = AddSuppression, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = Suppression,
            headers(("location" = String, description = "`/api/suppressions/%2B{digits}`"))),
        (status = 200, description = "Already on the list: the entry as it stands, unchanged", body = Suppression),
        (status = 400, description = "Not JSON, not an object, or a missing, unknown or invalid field (named)", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; nothing was changed, retry", body = super::error::ErrorBody),
    ))]
pub async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    let map = json_object(&bytes)?;
    only_fields(&map, &["phone_number", "reason"])?;
    let phone_number = PhoneNumber::parse(string_field(&map, "phone_number")?)?;
    let reason = Reason::parse(string_field(&map, "reason")?)?;
    let add = SuppressNumber {
        phone_number,
        reason,
        reminder_id: None,
    };
    match state.store.add_suppression(&add, state.clock.now()).await? {
        Suppressed::New(entry) => {
            tracing::info!("suppression added through the API");
            let location = location(&entry.phone_number);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(entry),
            )
                .into_response())
        }
        Suppressed::Existing(entry) => {
            tracing::info!("suppression already there; nothing changed");
            Ok((StatusCode::OK, Json(entry)).into_response())
        }
    }
}

/// `GET /api/suppressions?limit=&cursor=`: newest first, one page at a time.
#[utoipa::path(get, path = "/api/suppressions", tag = "suppressions",
    security(("apiKey" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page, newest first", body = SuppressionList),
        (status = 400, description = "Bad `limit` or `cursor`", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; retry", body = super::error::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<SuppressionList>, ApiError> {
    let Query(params) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let limit = super::reminders::page_limit(&params)?;
    let after = params
        .get("cursor")
        .filter(|s| !s.is_empty())
        .map(|c| {
            SuppressionCursor::decode(c)
                .ok_or_else(|| FieldError::new("cursor", "is not a cursor this service handed out"))
        })
        .transpose()?;
    let page = state.store.list_suppressions(limit, after.as_ref()).await?;
    Ok(Json(SuppressionList {
        suppressions: page.suppressions,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

fn not_suppressed(history: &[SuppressionAudit]) -> ApiError {
    match history.last() {
        Some(last) => ApiError::NotFound(format!(
            "the number is not on the suppression list (it was, and was removed at {}; \
             its history is kept and shown again if it is added back)",
            crate::domain::format_time(last.at)
        )),
        None => ApiError::NotFound("the number is not on the suppression list".into()),
    }
}

/// `GET /api/suppressions/{phone_number}`: the entry with its history.
#[utoipa::path(get, path = "/api/suppressions/{phone_number}", tag = "suppressions",
    security(("apiKey" = [])),
    params(("phone_number" = String, Path, description = "E.164; the `+` as is or as `%2B`")),
    responses(
        (status = 200, description = "On the list: the entry with every add and remove of the number, oldest first", body = SuppressionWithHistory),
        (status = 400, description = "The path's number is not E.164 (`phone_number`)", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 404, description = "Not on the list (also when it was once and was removed)", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; retry", body = super::error::ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SuppressionWithHistory>, ApiError> {
    let phone = phone_from_path(path)?;
    match state.store.get_suppression(&phone).await? {
        (Some(entry), history) => Ok(Json(SuppressionWithHistory { entry, history })),
        (None, history) => Err(not_suppressed(&history)),
    }
}

/// The `reason` of a removal: from the JSON body `{"reason"}` or `?reason=`
/// (both may be given only when they agree).
fn removal_reason(params: &HashMap<String, String>, bytes: &[u8]) -> Result<Reason, ApiError> {
    let from_body = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let map = json_object(bytes)?;
        only_fields(&map, &["reason"])?;
        Some(Reason::parse(string_field(&map, "reason")?)?)
    };
    let from_query = params.get("reason").map(|r| Reason::parse(r)).transpose()?;
    match (from_body, from_query) {
        (Some(b), Some(q)) if b != q => Err(FieldError::new(
            "reason",
            "is given in the body and in the query, differently; give it once",
        )
        .into()),
        (Some(r), _) | (None, Some(r)) => Ok(r),
        (None, None) => Err(FieldError::new(
            "reason",
            "is required (a JSON body {\"reason\": …} or ?reason=); it is kept in the audit",
        )
        .into()),
    }
}

/// `DELETE /api/suppressions/{phone_number}` with a `reason`: 200 with what
/// was removed and the number's history (the removal last).
#[utoipa::path(delete, path = "/api/suppressions/{phone_number}", tag = "suppressions",
    security(("apiKey" = [])),
    params(
        ("phone_number" = String, Path, description = "E.164; the `+` as is or as `%2B`"),
        ("reason" = Option<String>, Query, description = "Why (kept in the audit), when not in the body"),
    ),
    request_body(content = Option<RemoveSuppression>, content_type = "application/json",
        description = "The reason, when not given as `?reason=`"),
    responses(
        (status = 200, description = "Removed: the entry as it was, with its history (the removal last)", body = SuppressionWithHistory),
        (status = 400, description = "The path's number is not E.164 (`phone_number`), or the `reason` is missing or invalid", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 404, description = "Not on the list; nothing was changed", body = super::error::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; nothing was changed, retry", body = super::error::ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SuppressionWithHistory>, ApiError> {
    let phone = phone_from_path(path)?;
    let Query(params) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    let reason = removal_reason(&params, &bytes)?;
    let Some(entry) = state
        .store
        .remove_suppression(&phone, &reason, state.clock.now())
        .await?
    else {
        let (_, history) = state.store.get_suppression(&phone).await?;
        return Err(not_suppressed(&history));
    };
    tracing::info!("suppression removed through the API");
    let (_, history) = state.store.get_suppression(&phone).await?;
    Ok(Json(SuppressionWithHistory { entry, history }))
}
