//! `GET`/`POST /api/cron/process-reminders` (SPEC §4): one tick on demand, for
//! deployments that tick from an external scheduler. Bearer `CRON_SECRET`;
//! without one configured the route does not exist (404).

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::Json;

use super::error::ApiError;
use super::{bearer, token_matches, AppState};
use crate::scheduler::TickReport;

/// One scheduler tick on demand: time out stale calls, defer what is outside its
/// window, claim and dispatch what is due.
#[utoipa::path(method(get, post), path = "/api/cron/process-reminders", tag = "scheduling",
    security(("cronSecret" = [])),
    responses(
        (status = 200, description = "What the tick did", body = TickReport),
        (status = 401, description = "Missing or wrong `Bearer $CRON_SECRET`", body = super::error::ErrorBody),
        (status = 404, description = "No `CRON_SECRET` is configured: the route does not exist", body = super::error::ErrorBody),
        (status = 405, description = "`HEAD`: never runs a tick", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; retry", body = super::error::ErrorBody),
    ))]
pub async fn process(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<TickReport>, ApiError> {
    // axum answers HEAD with the GET handler; a HEAD (a link checker, a
    // monitor's probe) must never run a tick.
    if method == Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let Some(secret) = state.config.cron_secret.as_ref() else {
        return Err(ApiError::NotFound("no such route".into()));
    };
    if !token_matches(bearer(&headers), secret) {
        return Err(ApiError::Unauthorized(
            "missing or invalid bearer token (Authorization: Bearer $CRON_SECRET)",
        ));
    }
    // The tick runs on its own task (Scheduler::tick): if this caller hangs
    // up, the tick still goes to its end.
    Ok(Json(state.scheduler.tick().await?))
}
