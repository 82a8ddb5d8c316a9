//! The HTTP edge: router, shared state, and the middleware every route shares
//! (bearer auth, body limits, request logs).

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::Config;
use crate::policy::RetryPolicy;
use crate::reminder::CreateDefaults;
use crate::scheduler::Scheduler;
use crate::store::Store;

pub mod call_status;
pub mod cron;
pub mod dashboard;
pub mod error;
pub mod livekit;
pub mod ops;
pub mod reminders;
pub mod session;

use error::ApiError;

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub scheduler: Arc<Scheduler>,
    pub config: Arc<Config>,
    pub defaults: CreateDefaults,
    pub retry: RetryPolicy,
}

/// Bodies larger than this are refused with 413 (SPEC §2; the reminders API uses the same).
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/reminders",
            post(reminders::create).get(reminders::list),
        )
        .route("/api/reminders/{id}", get(reminders::get_one))
        .route("/api/reminders/{id}/cancel", post(reminders::cancel))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));

    let pages = Router::new()
        .route("/", get(dashboard::home))
        .route("/reminders/{id}", get(dashboard::reminder))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            dashboard::require_session,
        ));

    Router::new()
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/webhooks/call-status", post(call_status::receive))
        .route("/api/webhooks/livekit", post(livekit::receive))
        .route(
            "/api/cron/process-reminders",
            get(cron::process).post(cron::process),
        )
        .merge(api)
        .merge(pages)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(log_requests))
        .with_state(state)
}

/// Read a whole body, refusing more than `limit` bytes with 413 (checked against
/// `Content-Length` first, then while reading, for chunked bodies).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(_) => Err(ApiError::bad_request(
            "body_unreadable",
            "the request body could not be read",
        )),
    }
}

/// The bearer token in `Authorization`, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compare a presented token with the expected secret in constant time.
pub fn token_matches(presented: Option<&str>, expected: &SecretString) -> bool {
    match presented {
        Some(p) => p
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into(),
        None => false,
    }
}

async fn require_api_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ok = state
        .config
        .api_key
        .as_ref()
        .is_some_and(|key| token_matches(bearer(req.headers()), key));
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized(
            "missing or invalid bearer token (Authorization: Bearer $DUECALL_API_KEY)",
        )
        .into_response()
    }
}

/// One log line per request: method, route pattern, status, time. Never bodies.
async fn log_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    metrics::counter!(
        "duecall_http_requests_total",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, %route, status, micros, "request");
    } else {
        tracing::debug!(%method, %route, status, micros, "request");
    }
    response
}
