//! The operators' dashboard: server-rendered HTML (askama templates in
//! `templates/`), no JavaScript, behind the sign-in of [`super::session`].
//!
//! - `GET /` — counts by status, a status filter, the reminders newest first, a page at a time;
//! - `GET /reminders/{id}` — one reminder and its attempt timeline;
//! - `GET`/`POST /login`, `POST /logout`.
//!
//! Pages refresh themselves (`<meta http-equiv="refresh">`) and are never cached.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tower_sessions::Session;

use super::session::{self, ClientAddr};
use super::sign_in::{Admission, Refusal};
use super::AppState;
use crate::config::LooserThanLaw;
use crate::domain::{Attempt, Currency, OperatorName, Outcome, Reminder, ReminderId, Status};
use crate::store::{Cursor, ListQuery};

/// How often the signed-in pages reload themselves.
pub const REFRESH_SECS: u32 = 15;
/// Rows on one page of the list.
pub const PAGE_ROWS: u32 = 50;

pub(super) const NONE: &str = "—";

// --- Responses -----------------------------------------------------------------

/// An HTML page with the headers every dashboard answer carries: never cached
/// (it holds personal data), never framed, no scripts at all.
pub(super) fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed to render");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response();
        }
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

pub(super) fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
    class: &'a str,
}

pub(super) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let class = if status.is_server_error() || status.is_client_error() {
        "error"
    } else {
        "notice"
    };
    html(
        status,
        MessagePage {
            title,
            message: text,
            class,
        }
        .render(),
    )
}

pub(super) fn storage_failed(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard could not read the database");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Database unavailable",
        "The database did not answer. This page will work again once it does; try reloading.",
    )
}

// --- Sign-in -------------------------------------------------------------------

/// Who is signed in: the name they gave, and their session's anti-forgery
/// token (put in every form of the pages, checked on every action).
#[derive(Debug, Clone)]
pub struct Operator {
    pub name: OperatorName,
    pub csrf: String,
}

/// What the signed-in pages' header shows and their forms carry.
pub(super) struct Who {
    pub name: String,
    pub csrf: String,
}

impl Who {
    pub(super) fn of(op: &Operator) -> Self {
        Self {
            name: op.name.as_str().to_owned(),
            csrf: op.csrf.clone(),
        }
    }
}

/// The operator `session` is signed in as, if it is (and its sign-in is
/// younger than its lifetime). A session from before names were asked for
/// (no name, no token) is no sign-in: the operator signs in again.
async fn signed_in(state: &AppState, session: &Session) -> Result<Option<Operator>, Response> {
    if state.config.dashboard_password.is_none() {
        return Ok(None);
    }
    let read = async {
        let at = session.get::<i64>(session::SIGNED_IN_AT).await?;
        let name = session.get::<String>(session::OPERATOR).await?;
        let csrf = session.get::<String>(session::CSRF).await?;
        Ok::<_, tower_sessions::session::Error>((at, name, csrf))
    };
    let (at, name, csrf) = read.await.map_err(storage_failed)?;
    let live = at.is_some_and(|at| {
        state.clock.now().timestamp() < at.saturating_add(session::LIFETIME_SECS)
    });
    Ok(
        match (live, name.as_deref().map(OperatorName::parse), csrf) {
            (true, Some(Ok(name)), Some(csrf)) if !csrf.is_empty() => Some(Operator { name, csrf }),
            _ => None,
        },
    )
}

/// Route layer of the signed-in pages: no valid session, no page — a redirect
/// to the sign-in form that comes back here afterwards.
pub async fn require_session(
    State(state): State<AppState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    match signed_in(&state, &session).await {
        Ok(Some(operator)) => {
            req.extensions_mut().insert(operator);
            return next.run(req).await;
        }
        Ok(None) => {}
        Err(failed) => return failed,
    }
    let mut back = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    // An action's form (a POST) cannot be sent again by a redirect: after
    // signing in, the operator comes back to the page the form was on
    // (`/reminders/{id}/cancel` → `/reminders/{id}`), and nothing was done.
    if req.method() != axum::http::Method::GET {
        let path = req.uri().path();
        back = path
            .rsplit_once('/')
            .map_or("/", |(page, _)| page)
            .to_owned();
        if back.is_empty() {
            back = "/".to_owned();
        }
    }
    let query = serde_urlencoded::to_string([("next", back.as_str())]).unwrap_or_default();
    see_other(&format!("/login?{query}"))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    enabled: bool,
    next: &'a str,
    /// The name as typed, given back when the form is shown again.
    name: &'a str,
    max_name: usize,
    error: Option<&'a str>,
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    name: &str,
    error: Option<&str>,
) -> Response {
    let enabled = state.config.dashboard_password.is_some();
    html(
        status,
        LoginPage {
            enabled,
            next,
            name,
            max_name: crate::domain::MAX_OPERATOR_NAME_CHARS,
            error,
        }
        .render(),
    )
}

/// The sign-in form.
#[utoipa::path(get, path = "/login", tag = "dashboard",
    params(("next" = Option<String>, Query, description = "Where to go after signing in (a path on this site)")),
    responses(
        (status = 200, description = "The sign-in form (or a notice that the dashboard is off)", body = String, content_type = "text/html"),
        (status = 303, description = "Already signed in: on to `next`"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn login_form(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let next = session::safe_next(q.get("next").map(String::as_str));
    match signed_in(&state, &session).await {
        Ok(Some(_)) => return see_other(next),
        Ok(None) => {}
        Err(failed) => return failed,
    }
    login_page(&state, StatusCode::OK, next, "", None)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
    /// Who is signing in (1 to 80 characters): recorded with every action.
    #[serde(default)]
    name: String,
    #[serde(default)]
    next: Option<String>,
}

/// A form of the signed-in pages: every one carries the session's token.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// The session's anti-forgery token, from a hidden field of the page.
    #[serde(default)]
    pub csrf_token: Option<String>,
}

/// A form without the session's token (or with another): refused, and
/// nothing is changed.
pub(super) fn forged() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Refused: the form's security token is missing or wrong",
        "Nothing was changed. This form did not carry this session's security token; \
         reload the dashboard's page and try again from there.",
    )
}

/// A state-changing request from another site (`Sec-Fetch-Site`, `Origin`).
pub(super) fn cross_site() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form can only be sent from the dashboard's own pages.",
    )
}

/// `POST /login`: the password, answered with a session cookie and a redirect
/// to where the operator was going; a wrong one is a 401 with the form again.
/// Too many attempts (from this address, or from everyone) are a 429 with
/// `Retry-After`, and the password is not even looked at.
#[utoipa::path(post, path = "/login", tag = "dashboard",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: a `duecall_session` cookie (`__Host-duecall_session` when `Secure`), and on to `next`"),
        (status = 400, description = "Not a form", body = String, content_type = "text/html"),
        (status = 413, description = "Larger than 64 KiB", body = String, content_type = "text/html"),
        (status = 415, description = "Not `application/x-www-form-urlencoded`", body = String, content_type = "text/html"),
        (status = 401, description = "Wrong password: the form again", body = String, content_type = "text/html"),
        (status = 403, description = "The dashboard is off (`DASHBOARD_PASSWORD` unset), or the form was sent from another site", body = String, content_type = "text/html"),
        (status = 429, description = "Too many sign-in attempts: `Retry-After` says when to try again", body = String, content_type = "text/html",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    session: Session,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !session::same_origin(&headers) {
        return cross_site();
    }
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let status = rejection.status();
            let why = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "The sign-in form was too large."
            } else {
                "The sign-in form was not sent as a form."
            };
            return login_page(&state, status, "/", "", Some(why));
        }
    };
    let next = session::safe_next(form.next.as_deref());
    let Some(password) = state.config.dashboard_password.clone() else {
        return login_page(&state, StatusCode::FORBIDDEN, next, "", None);
    };
    if let Admission::Limited { retry_after, scope } = state.sign_in.admit(client) {
        metrics::counter!("duecall_dashboard_sign_ins_total", "result" => "rate_limited")
            .increment(1);
        state.sign_in.refused(client, Refusal::RateLimited);
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let secs = secs.max(1);
        let text = if scope == "address" {
            format!("Too many sign-in attempts from this address. Try again in {secs} s.")
        } else {
            format!("Too many sign-in attempts. Try again in {secs} s.")
        };
        let mut res = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            &form.name,
            Some(&text),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    // The name is checked after the rate limit (a flood of bad names is
    // limited like one of bad passwords) and before the slow password check.
    let name = match OperatorName::parse(&form.name) {
        Ok(name) => name,
        Err(e) => {
            let text = format!("Your name {}.", e.message);
            return login_page(&state, StatusCode::BAD_REQUEST, next, "", Some(&text));
        }
    };
    // Argon2id is slow on purpose: off the async threads.
    let presented = form.password;
    let matches = tokio::task::spawn_blocking(move || password.verify(&presented))
        .await
        .unwrap_or(false);
    if !matches {
        metrics::counter!("duecall_dashboard_sign_ins_total", "result" => "refused").increment(1);
        state.sign_in.refused(client, Refusal::WrongPassword);
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            name.as_str(),
            Some("Wrong password."),
        );
    }
    // A new session id at every sign-in (a planted cookie never becomes a session).
    let started = async {
        session.cycle_id().await?;
        session
            .insert(session::SIGNED_IN_AT, state.clock.now().timestamp())
            .await?;
        session.insert(session::OPERATOR, name.as_str()).await?;
        session
            .insert(session::CSRF, session::new_csrf_token())
            .await
    };
    if let Err(e) = started.await {
        return storage_failed(e);
    }
    metrics::counter!("duecall_dashboard_sign_ins_total", "result" => "accepted").increment(1);
    tracing::info!(client = %client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()), "dashboard sign-in");
    see_other(next)
}

/// End the session: its record is deleted, so the cookie (and any copy of it)
/// opens nothing any more, on every instance.
/// A signed-in session is ended only by a form that carries its token (a
/// forged sign-out is a nuisance, not harmless: it throws away the
/// operator's page); without a session there is nothing to end.
#[utoipa::path(post, path = "/logout", tag = "dashboard",
    request_body(content = Option<TokenForm>, content_type = "application/x-www-form-urlencoded", description = "The session's `csrf_token`. Not required by the schema: a request without a session is sent to sign in (303) before its body is read, and one with a session but no token is refused (403)."),
    responses(
        (status = 303, description = "Signed out (or was not signed in): on to `/login`"),
        (status = 403, description = "Sent from another site, or without the session's `csrf_token`", body = String, content_type = "text/html"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !session::same_origin(&headers) {
        return cross_site();
    }
    let operator = match signed_in(&state, &session).await {
        Ok(op) => op,
        Err(failed) => return failed,
    };
    if let Some(op) = operator {
        let presented = form.ok().and_then(|Form(f)| f.csrf_token);
        if !session::csrf_matches(&op.csrf, presented.as_deref()) {
            return forged();
        }
    }
    if let Err(e) = session.flush().await {
        return storage_failed(e);
    }
    see_other("/login")
}

// --- Formatting ------------------------------------------------------------------

pub(super) fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || NONE.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn or_none(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or(NONE).to_owned()
}

fn status_label(s: &str) -> String {
    s.replace('_', " ")
}

struct OutcomeView {
    result: String,
    promised_amount: String,
    promised_date: String,
    summary: String,
    duration: String,
    transcript: Option<String>,
}

impl OutcomeView {
    fn of(outcome: Option<&Outcome>, currency: Currency) -> Self {
        Self {
            result: outcome.map_or(NONE.to_owned(), |o| o.result.as_str().to_owned()),
            promised_amount: outcome
                .and_then(|o| o.promised_amount_minor)
                .map_or(NONE.to_owned(), |m| currency.format_minor(m)),
            promised_date: outcome
                .and_then(|o| o.promised_date)
                .map_or(NONE.to_owned(), |d| d.to_string()),
            summary: or_none(outcome.and_then(|o| o.summary.as_deref())),
            duration: outcome
                .and_then(|o| o.duration_seconds)
                .map_or(NONE.to_owned(), |s| format!("{}:{:02}", s / 60, s % 60)),
            transcript: outcome
                .and_then(|o| o.transcript.clone())
                .filter(|t| !t.is_empty()),
        }
    }
}

struct ReminderView {
    id: String,
    customer_name: String,
    external_id: String,
    phone_number: String,
    /// Every zone the window must hold in (SPEC §7).
    calling_zones: String,
    language: String,
    amount_due: String,
    due_date: String,
    status: &'static str,
    status_label: String,
    attempts: String,
    next_attempt_at: String,
    next_attempt_utc: String,
    skip_reason: String,
    outcome: OutcomeView,
    created_at: String,
    updated_at: String,
    /// The `timezone` as given (SPEC §7), or none.
    timezone_given: String,
    debt_ref: String,
    region: String,
    /// What a pending reminder waits for; none for the others.
    waiting: String,
}

/// Why a pending reminder is not being called yet, in words (SPEC §7's
/// `deferred_by`, a requested callback, a retry, or its scheduled time).
fn waiting_for(r: &Reminder) -> String {
    use crate::domain::{DeferredBy, SKIP_CALLBACK_REQUESTED};
    if r.status != Status::Pending {
        return NONE.to_owned();
    }
    match r.deferred_by {
        Some(DeferredBy::Window) => {
            "the calling window (CALLING_WINDOW, CALLING_DAYS), which must be open in every calling zone".to_owned()
        }
        Some(DeferredBy::Blackout) => {
            "a blackout date in a calling zone (CALLING_BLACKOUT_DATES)".to_owned()
        }
        Some(DeferredBy::Frequency) => {
            "the frequency cap of its debt (CALL_FREQUENCY, REGION_CALL_FREQUENCY)".to_owned()
        }
        Some(DeferredBy::QuietPeriod) => {
            "the quiet period after a conversation about its debt (QUIET_AFTER_CONVERSATION)".to_owned()
        }
        None if r.skip_reason.as_deref() == Some(SKIP_CALLBACK_REQUESTED) => {
            "the callback the customer asked for".to_owned()
        }
        None if r.attempt_count > 0 => format!("the retry after attempt {}", r.attempt_count),
        None => "its scheduled time".to_owned(),
    }
}

impl ReminderView {
    fn of(r: &Reminder) -> Self {
        Self {
            id: r.id.to_string(),
            customer_name: r.customer_name.clone(),
            external_id: or_none(r.external_id.as_deref()),
            phone_number: r.phone_number.as_str().to_owned(),
            calling_zones: r
                .calling_zones
                .iter()
                .map(|z| z.name())
                .collect::<Vec<_>>()
                .join(", "),
            language: r.language.as_str().to_owned(),
            amount_due: r.currency.format_minor(r.amount_due_minor),
            due_date: r.due_date.to_string(),
            status: r.status.as_str(),
            status_label: status_label(r.status.as_str()),
            attempts: format!("{} of {}", r.attempt_count, r.max_attempts),
            next_attempt_at: match r.next_attempt_at {
                None => NONE.to_owned(),
                Some(t) => format!(
                    "{} ({} for the customer)",
                    time(Some(t)),
                    t.with_timezone(&r.primary_zone().tz())
                        .format("%a %H:%M %Z")
                ),
            },
            next_attempt_utc: time(r.next_attempt_at),
            skip_reason: or_none(r.skip_reason.as_deref()),
            outcome: OutcomeView::of(r.outcome.as_ref(), r.currency),
            created_at: time(Some(r.created_at)),
            updated_at: time(Some(r.updated_at)),
            timezone_given: r
                .timezone
                .as_ref()
                .map_or_else(|| "none given".to_owned(), |z| z.name().to_owned()),
            debt_ref: r.debt_ref.clone(),
            region: r
                .region
                .as_ref()
                .map_or_else(|| NONE.to_owned(), |g| g.as_str().to_owned()),
            waiting: waiting_for(r),
        }
    }
}

struct AttemptView {
    attempt: u32,
    status: &'static str,
    status_label: String,
    room_name: String,
    dispatched_at: String,
    answered_at: String,
    ended_at: String,
    outcome: OutcomeView,
    failure: String,
}

impl AttemptView {
    fn of(a: &Attempt, currency: Currency) -> Self {
        let failure = a.failure.as_ref().map_or(NONE.to_owned(), |f| {
            let mut text = f.reason.clone().unwrap_or_else(|| "failed".to_owned());
            if let Some(sip) = f.sip_status {
                text.push_str(&format!(" (SIP {sip})"));
            }
            if f.retryable == Some(false) {
                text.push_str(", not retryable");
            }
            text
        });
        Self {
            attempt: a.attempt,
            status: a.status.as_str(),
            status_label: status_label(a.status.as_str()),
            room_name: a.room_name.clone(),
            dispatched_at: time(Some(a.dispatched_at)),
            answered_at: time(a.answered_at),
            ended_at: time(a.ended_at),
            outcome: OutcomeView::of(a.outcome.as_ref(), currency),
            failure,
        }
    }
}

// --- Pages ---------------------------------------------------------------------

struct CountView {
    status: &'static str,
    label: String,
    count: u64,
    href: String,
    current: bool,
}

struct OptionView {
    value: &'static str,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    who: Who,
    refresh_secs: u32,
    now: String,
    looser: Vec<LooserThanLaw>,
    counts: Vec<CountView>,
    options: Vec<OptionView>,
    filter: String,
    search: String,
    heading: String,
    rows: Vec<ReminderView>,
    first_page: Option<String>,
    next_page: Option<String>,
}

/// What the search box was given, as the store compares it: trimmed, and a
/// phone number typed with spaces, dashes, dots or brackets put back into E.164.
fn search_text(raw: &str) -> Option<String> {
    let text = raw.trim();
    if text.is_empty() {
        return None;
    }
    let is_phone_like = text.starts_with('+')
        && text[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || " -.()".contains(c));
    if is_phone_like {
        return Some(text.chars().filter(|c| !" -.()".contains(*c)).collect());
    }
    Some(text.to_owned())
}

fn list_href(status: &str, search: &str, cursor: Option<&str>) -> String {
    let mut params = Vec::new();
    if !status.is_empty() {
        params.push(("status", status));
    }
    if !search.is_empty() {
        params.push(("q", search));
    }
    if let Some(c) = cursor {
        params.push(("cursor", c));
    }
    if params.is_empty() {
        return "/".to_owned();
    }
    format!(
        "/?{}",
        serde_urlencoded::to_string(params).unwrap_or_default()
    )
}

/// Counts by status and the reminders, newest first.
// Without a session the answer is a redirect, not a refusal: the session is optional
// as far as the description goes.
#[utoipa::path(get, path = "/", tag = "dashboard",
    security(("session" = []), ()),
    params(
        ("status" = Option<String>, Query, description = "Only reminders in this status"),
        ("q" = Option<String>, Query, description = "Only reminders with this external id or phone number"),
        ("cursor" = Option<String>, Query, description = "A page link's cursor"),
    ),
    responses(
        (status = 200, description = "The dashboard", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to `/login?next=…`"),
        (status = 400, description = "Unknown status or a cursor the dashboard did not make", body = String, content_type = "text/html"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn home(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad address",
            "The address has a malformed query string.",
        );
    };
    let filter = q.get("status").map(String::as_str).unwrap_or("").trim();
    let status = match filter {
        "" => None,
        s => match s.parse::<Status>() {
            Ok(s) => Some(s),
            Err(e) => return message(StatusCode::BAD_REQUEST, "Unknown status", &e.message),
        },
    };
    let search = q.get("q").and_then(|s| search_text(s));
    let cursor = q
        .get("cursor")
        .map(String::as_str)
        .filter(|c| !c.is_empty());
    let after =
        match cursor.map(Cursor::decode) {
            None => None,
            Some(Some(c)) => Some(c),
            Some(None) => return message(
                StatusCode::BAD_REQUEST,
                "Bad page link",
                "This page link is not one the dashboard made; start again from the first page.",
            ),
        };
    let counts = match state.store.count_by_status().await {
        Ok(c) => c,
        Err(e) => return storage_failed(e),
    };
    let page = match state
        .store
        .list_reminders(&ListQuery {
            status,
            limit: PAGE_ROWS,
            after,
            search: search.clone(),
        })
        .await
    {
        Ok(p) => p,
        Err(e) => return storage_failed(e),
    };

    let filter = status.map_or("", |s| s.as_str());
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let mut count_views: Vec<CountView> = counts
        .iter()
        .map(|(s, n)| CountView {
            status: s.as_str(),
            label: status_label(s.as_str()),
            count: *n,
            href: list_href(s.as_str(), "", None),
            current: filter == s.as_str(),
        })
        .collect();
    count_views.push(CountView {
        status: "all",
        label: "all".to_owned(),
        count: total,
        href: "/".to_owned(),
        current: filter.is_empty(),
    });
    let mut options = vec![OptionView {
        value: "",
        label: "all".to_owned(),
        selected: filter.is_empty(),
    }];
    options.extend(Status::ALL.iter().map(|s| OptionView {
        value: s.as_str(),
        label: status_label(s.as_str()),
        selected: filter == s.as_str(),
    }));
    let search = search.unwrap_or_default();
    let mut heading = match status {
        None => "All reminders".to_owned(),
        Some(s) => format!("Reminders {}", status_label(s.as_str())),
    };
    if !search.is_empty() {
        heading.push_str(&format!(" with external id or phone number {search}"));
    }
    heading.push_str(", newest first");
    let next_cursor = page.next.map(|c| c.encode());
    html(
        StatusCode::OK,
        DashboardPage {
            who: Who::of(&operator),
            refresh_secs: REFRESH_SECS,
            now: time(Some(state.clock.now())),
            looser: state.config.looser_than_law(),
            counts: count_views,
            options,
            filter: filter.to_owned(),
            heading,
            rows: page.reminders.iter().map(ReminderView::of).collect(),
            first_page: cursor.map(|_| list_href(filter, &search, None)),
            next_page: next_cursor.map(|c| list_href(filter, &search, Some(&c))),
            search,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "reminder.html")]
struct ReminderPage {
    who: Who,
    refresh_secs: u32,
    now: String,
    looser: Vec<LooserThanLaw>,
    r: ReminderView,
    /// What the last action did (a flash message after its redirect).
    flash: Option<String>,
    /// Why an action was refused (the page answers 409 then).
    refused: Option<String>,
    /// The operator actions that apply to the reminder as it is.
    can: super::actions::Can,
    /// Its history: what operators did to it, oldest first.
    history: Vec<super::actions::ActionView>,
    attempts: Vec<AttemptView>,
    /// Whether this instance sends notifications (`NOTIFY_URL`).
    notify_on: bool,
    notifications: Vec<NoticeView>,
    /// Its payments, promise and follow-up link (SPEC §8).
    ledger: super::ledger::Ledger,
}

/// One notification of the reminder (SPEC §9) and its last try.
struct NoticeView {
    id: String,
    kind: &'static str,
    sequence: u32,
    status: &'static str,
    created_at: String,
    tries: usize,
    last_try: String,
    next_try_at: String,
}

impl NoticeView {
    fn of(n: &crate::store::Notification) -> Self {
        Self {
            id: n.id.clone(),
            kind: n.kind.as_str(),
            sequence: n.sequence,
            status: n.status.as_str(),
            created_at: time(Some(n.created_at)),
            tries: n.tries.len(),
            last_try: n.tries.last().map_or_else(
                || "not tried yet".to_owned(),
                |t| {
                    let answer = match (t.status_code, &t.error) {
                        (Some(code), None) => format!("HTTP {code}"),
                        (_, Some(e)) => e.clone(),
                        (None, None) => NONE.to_owned(),
                    };
                    format!("{}: {answer} ({} ms)", time(Some(t.at)), t.duration_ms)
                },
            ),
            next_try_at: time(n.next_try_at),
        }
    }
}

/// One reminder and its attempt timeline.
#[utoipa::path(get, path = "/reminders/{id}", tag = "dashboard",
    security(("session" = []), ()),
    params(("id" = String, Path, description = "The reminder's id")),
    responses(
        (status = 200, description = "The reminder's page", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to `/login?next=…`"),
        (status = 404, description = "No such reminder", body = String, content_type = "text/html"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn reminder(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    session: Session,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    // A path that does not decode (not UTF-8) names no reminder either.
    let Some(id) = path.ok().and_then(|Path(raw)| ReminderId::parse(&raw)) else {
        return no_such_reminder();
    };
    // Shown once: the message of the action that redirected here.
    let flash = match session.remove::<String>(super::actions::FLASH).await {
        Ok(flash) => flash,
        Err(e) => return storage_failed(e),
    };
    let page = Shown {
        status: StatusCode::OK,
        flash,
        refused: None,
    };
    reminder_page(&state, &operator, id, page).await
}

pub(super) fn no_such_reminder() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "No such reminder",
        "There is no reminder with this id.",
    )
}

/// How a reminder's page is shown: its status, and a message above it.
pub(super) struct Shown {
    pub status: StatusCode,
    pub flash: Option<String>,
    pub refused: Option<String>,
}

/// A reminder's page: the reminder, its actions, history, attempts and notifications.
pub(super) async fn reminder_page(
    state: &AppState,
    operator: &Operator,
    id: ReminderId,
    shown: Shown,
) -> Response {
    let not_found = no_such_reminder;
    let r = match state.store.get_reminder(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => return storage_failed(e),
    };
    let attempts = match state.store.list_attempts(id).await {
        Ok(a) => a,
        Err(e) => return storage_failed(e),
    };
    let query = crate::store::NoticeQuery {
        status: None,
        reminder_id: Some(id),
        limit: 100,
        after: None,
    };
    let mut notifications = match state.store.list_notifications(&query).await {
        Ok(page) => page.notifications,
        Err(e) => return storage_failed(e),
    };
    notifications.sort_by_key(|n| n.sequence);
    let payments = match state.store.list_payments(id).await {
        Ok(p) => p,
        Err(e) => return storage_failed(e),
    };
    let history = match state.store.list_actions(id).await {
        Ok(h) => h,
        Err(e) => return storage_failed(e),
    };
    let suppressed = match state.store.is_suppressed(&r.phone_number).await {
        Ok(s) => s,
        Err(e) => return storage_failed(e),
    };
    let now = state.clock.now();
    html(
        shown.status,
        ReminderPage {
            who: Who::of(operator),
            flash: shown.flash,
            refused: shown.refused,
            can: super::actions::Can::of(&r, suppressed, now),
            history: history
                .iter()
                .map(|a| super::actions::ActionView::of(a, time(Some(a.at))))
                .collect(),
            notify_on: state.config.notify.is_some(),
            notifications: notifications.iter().map(NoticeView::of).collect(),
            refresh_secs: REFRESH_SECS,
            now: time(Some(now)),
            looser: state.config.looser_than_law(),
            attempts: attempts
                .iter()
                .map(|a| AttemptView::of(a, r.currency))
                .collect(),
            ledger: super::ledger::Ledger::of(&r, &payments),
            r: ReminderView::of(&r),
        }
        .render(),
    )
}
