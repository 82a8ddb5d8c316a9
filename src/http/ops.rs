//! Liveness and readiness.

use axum::extract::State;
use axum::Json;

use std::time::Duration;

use super::error::ApiError;
use super::AppState;
use crate::store::StoreError;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready` (a database that does not answer is a 503).
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operating",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// A readiness probe waits this long for the database, then says no.
const READY_WITHIN: Duration = Duration::from_secs(1);

/// The database answers (within a second).
#[utoipa::path(get, path = "/readyz", tag = "operating",
    responses(
        (status = 200, description = "The database answered within a second", body = Ready),
        (status = 503, description = "The database did not answer", body = super::error::ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let pinged = tokio::time::timeout(READY_WITHIN, state.store.ping())
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                READY_WITHIN.as_millis()
            )))
        });
    match pinged {
        Ok(()) => Ok(Json(Ready {
            status: "ready",
            database: state.store.backend(),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            Err(ApiError::Unavailable(format!(
                "the {} database is unreachable",
                state.store.backend()
            )))
        }
    }
}

/// Prometheus text exposition of the service's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operating",
    responses((status = 200, description = "Prometheus text exposition format; no personal data",
        body = String, content_type = "text/plain")))]
pub async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
}
