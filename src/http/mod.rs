//! The HTTP edge: router, shared state, and the middleware every route shares
//! (bearer auth, body limits, request logs).

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::CreateDefaults;
use crate::policy::RetryPolicy;
use crate::scheduler::Scheduler;
use crate::store::Store;

pub mod actions;
pub mod call_status;
pub mod cron;
pub mod dashboard;
pub mod error;
pub mod export;
pub mod glance;
mod ledger;
pub mod livekit;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod payments;
pub mod reminders;
pub mod session;
pub mod sign_in;
pub mod suppressions;

use error::ApiError;

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub scheduler: Arc<Scheduler>,
    pub config: Arc<Config>,
    // Shared, not owned: axum clones the state for every request.
    pub defaults: Arc<CreateDefaults>,
    pub retry: Arc<RetryPolicy>,
    /// The dashboard sign-in's rate limits and refusal log.
    pub sign_in: Arc<sign_in::SignInGuard>,
}

/// Bodies larger than this are refused with 413 (SPEC §2; the reminders API uses the same).
pub const BODY_LIMIT: usize = 64 * 1024;

/// One group of routes being built, with the `(method, path)` of each as it is
/// added: the router and the list of what it serves cannot disagree.
struct Routes {
    router: Router<AppState>,
    served: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            served: Vec::new(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a routable method");
        self.router = self.router.route(path, on(filter, handler));
        self.served.push((method, path));
        self
    }
}

/// The routes in their three groups: open, the API's (bearer `DUECALL_API_KEY`),
/// and the dashboard's pages (a signed-in session).
fn routes() -> [Routes; 3] {
    let open = Routes::new()
        .add(Method::GET, "/healthz", ops::healthz)
        .add(Method::GET, "/readyz", ops::readyz)
        .add(Method::GET, "/metrics", ops::metrics)
        .add(Method::GET, "/api/openapi.json", openapi::openapi_json)
        .add(
            Method::POST,
            "/api/webhooks/call-status",
            call_status::receive,
        )
        .add(Method::POST, "/api/webhooks/livekit", livekit::receive)
        .add(Method::GET, "/api/cron/process-reminders", cron::process)
        .add(Method::POST, "/api/cron/process-reminders", cron::process)
        .add(Method::GET, "/login", dashboard::login_form)
        .add(Method::POST, "/login", dashboard::login)
        .add(Method::POST, "/logout", dashboard::logout);
    let api = Routes::new()
        .add(Method::POST, "/api/reminders", reminders::create)
        .add(Method::GET, "/api/reminders", reminders::list)
        // A static segment wins over `{id}` in axum's router whatever the
        // order (tests/export.rs holds it to that).
        .add(Method::GET, "/api/reminders/export.csv", export::export)
        .add(Method::GET, "/api/reminders/{id}", reminders::get_one)
        .add(
            Method::POST,
            "/api/reminders/{id}/cancel",
            reminders::cancel,
        )
        .add(
            Method::POST,
            "/api/reminders/{id}/payments",
            payments::record,
        )
        .add(Method::POST, "/api/suppressions", suppressions::add)
        .add(Method::GET, "/api/suppressions", suppressions::list)
        .add(
            Method::GET,
            "/api/suppressions/{phone_number}",
            suppressions::get_one,
        )
        .add(
            Method::DELETE,
            "/api/suppressions/{phone_number}",
            suppressions::remove,
        )
        .add(Method::GET, "/api/notifications", notifications::list)
        .add(
            Method::GET,
            "/api/notifications/{id}",
            notifications::get_one,
        )
        .add(
            Method::POST,
            "/api/notifications/{id}/resend",
            notifications::resend,
        );
    let pages = Routes::new()
        .add(Method::GET, "/", dashboard::home)
        .add(Method::GET, "/glance", glance::glance)
        .add(Method::GET, "/reminders/{id}", dashboard::reminder)
        .add(Method::POST, "/reminders/{id}/cancel", actions::cancel)
        .add(Method::POST, "/reminders/{id}/call-now", actions::call_now)
        .add(Method::POST, "/reminders/{id}/suppress", actions::suppress);
    [open, api, pages]
}

/// Every `(method, path)` the router serves (`tests/openapi.rs` holds the
/// OpenAPI description to it).
pub fn served_routes() -> Vec<(Method, &'static str)> {
    routes().into_iter().flat_map(|r| r.served).collect()
}

/// The router, with the dashboard's sessions signed by `session_key`.
pub fn router(state: AppState, session_key: tower_sessions::cookie::Key) -> Router {
    let sessions = session::layer(
        Arc::clone(&state.store),
        Arc::clone(&state.clock),
        session_key,
        state.config.dashboard_cookie_secure,
    );
    let request_timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        state.config.http.request_timeout,
    );
    let [open, api, pages] = routes();
    let api = api.router.route_layer(middleware::from_fn_with_state(
        state.clone(),
        require_api_key,
    ));
    let pages = pages.router.route_layer(middleware::from_fn_with_state(
        state.clone(),
        dashboard::require_session,
    ));
    open.router
        .merge(api)
        .merge(pages)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // The sign-in form is read by axum's `Form`, which honours this (the
        // JSON routes read their bodies through `read_body`, with the same limit).
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(sessions)
        .layer(request_timeout)
        .layer(middleware::map_response(timeout_answer))
        .layer(middleware::from_fn(log_requests))
        .with_state(state)
}

/// A request that outlived `HTTP_REQUEST_TIMEOUT_SECS` (tower-http answers an
/// empty 503) gets the JSON error body every answer has; the client may retry.
async fn timeout_answer(res: Response) -> Response {
    if res.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
        && !res.headers().contains_key(header::CONTENT_TYPE)
    {
        return ApiError::Unavailable("the request took too long to answer; try again".into())
            .into_response();
    }
    res
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

/// The method as a metrics label and in logs: one of a fixed set, so a client
/// cannot mint new series (hyper accepts made-up methods of any length, and
/// the metrics registry never forgets a series).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// One log line per request: method, route pattern, status, time. Never bodies.
/// Every label is from a bounded set: the method's ([`method_label`]), the
/// route *pattern* (or `(unmatched)`), and the status code.
async fn log_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    metrics::counter!(
        "duecall_http_requests_total",
        "method" => method,
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
