//! The outbox (SPEC §9) through the API: list notifications with every
//! delivery try, read one, queue one again.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;

use super::error::ApiError;
use super::AppState;
use crate::domain::{FieldError, NoticeStatus, ReminderId};
use crate::store::{NoticeCursor, NoticeQuery, Notification};

/// One page of `GET /api/notifications`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    /// Newest first, each with its tries (oldest first).
    pub notifications: Vec<Notification>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /api/notifications?status=&reminder_id=&limit=&cursor=`.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications",
    security(("apiKey" = [])),
    params(
        ("status" = Option<String>, Query, description = "`pending`, `delivered` or `failed`"),
        ("reminder_id" = Option<String>, Query, description = "Only this reminder's"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page, newest first", body = NotificationList),
        (status = 400, description = "Bad `status`, `reminder_id`, `limit` or `cursor` (named)", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; retry", body = super::error::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<NotificationList>, ApiError> {
    let Query(params) = query
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    if let Some(unknown) = params
        .keys()
        .find(|k| !["status", "reminder_id", "limit", "cursor"].contains(&k.as_str()))
    {
        return Err(FieldError::new(unknown.clone(), "is not a parameter of this list").into());
    }
    let status = params
        .get("status")
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<NoticeStatus>())
        .transpose()?;
    let reminder_id = params
        .get("reminder_id")
        .filter(|s| !s.is_empty())
        .map(|s| {
            ReminderId::parse(s).ok_or_else(|| FieldError::new("reminder_id", "must be a UUID"))
        })
        .transpose()?;
    let limit = super::reminders::page_limit(&params)?;
    let after = params
        .get("cursor")
        .filter(|s| !s.is_empty())
        .map(|c| {
            NoticeCursor::decode(c)
                .ok_or_else(|| FieldError::new("cursor", "is not a cursor this service handed out"))
        })
        .transpose()?;
    let page = state
        .store
        .list_notifications(&NoticeQuery {
            status,
            reminder_id,
            limit,
            after,
        })
        .await?;
    Ok(Json(NotificationList {
        notifications: page.notifications,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

fn notice_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    match path {
        Ok(Path(id)) if id.starts_with("msg_") && id.len() <= 64 => Ok(id),
        _ => Err(ApiError::NotFound("no notification with that id".into())),
    }
}

/// `GET /api/notifications/{id}`: one notification with its tries.
#[utoipa::path(get, path = "/api/notifications/{id}", tag = "notifications",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The notification's id (its `webhook-id`)")),
    responses(
        (status = 200, description = "The notification and every try, oldest first", body = Notification),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 404, description = "No notification with that id", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; retry", body = super::error::ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Notification>, ApiError> {
    let id = notice_id(path)?;
    match state.store.get_notification(&id).await? {
        Some(n) => Ok(Json(n)),
        None => Err(ApiError::NotFound("no notification with that id".into())),
    }
}

/// `POST /api/notifications/{id}/resend`: queue it again, due now. A
/// delivered or failed one gets a new round of tries (the same `webhook-id`,
/// so a receiver that keeps ids sees a repeat); a pending one is tried now.
#[utoipa::path(post, path = "/api/notifications/{id}/resend", tag = "notifications",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The notification's id (its `webhook-id`)")),
    responses(
        (status = 200, description = "Queued: the notification, `pending`, due now", body = Notification),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 404, description = "No notification with that id", body = super::error::ErrorBody),
        (status = 409, description = "Notifications are off (`NOTIFY_URL` is not set): nothing would send it", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; nothing changed, retry", body = super::error::ErrorBody),
    ))]
pub async fn resend(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Notification>, ApiError> {
    let id = notice_id(path)?;
    if state.config.notify.is_none() {
        return Err(ApiError::conflict(
            "notifications_off",
            "notifications are off on this instance (NOTIFY_URL is not set): nothing would send it",
        ));
    }
    match state
        .store
        .resend_notification(&id, state.clock.now())
        .await?
    {
        Some(n) => {
            tracing::info!(id = %n.id, "notification queued again through the API");
            Ok(Json(n))
        }
        None => Err(ApiError::NotFound("no notification with that id".into())),
    }
}
