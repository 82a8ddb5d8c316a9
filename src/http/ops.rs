//! Liveness and readiness.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use std::time::Duration;

use super::error::ApiError;
use super::AppState;
use crate::store::StoreError;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// A readiness probe waits this long for the database, then says no.
const READY_WITHIN: Duration = Duration::from_secs(1);

/// The database answers (within a second).
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let pinged = tokio::time::timeout(READY_WITHIN, state.store.ping())
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                READY_WITHIN.as_millis()
            )))
        });
    match pinged {
        Ok(()) => Ok(Json(
            json!({"status": "ready", "database": state.store.backend()}),
        )),
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
pub async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
}
