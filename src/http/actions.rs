//! The dashboard's operator actions on a reminder — cancel it, call it at the
//! next lawful moment, put its number on the suppression list:
//!
//! - `POST /reminders/{id}/cancel`, `POST /reminders/{id}/call-now`,
//!   `POST /reminders/{id}/suppress`.
//!
//! Each is a form of the reminder's page with the session's anti-forgery
//! token in a hidden field: a form from another site (`Sec-Fetch-Site`,
//! `Origin`), or one without the token or with another, is a 403 and changes
//! nothing. Each action is written with its record (who, what, when) in one
//! transaction, and answers 303 back to the reminder's page (POST, redirect,
//! GET) with a message shown once; a refusal is that page again, 409, saying why.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use chrono::{DateTime, Utc};
use tower_sessions::Session;

use super::dashboard::{
    cross_site, forged, no_such_reminder, reminder_page, see_other, storage_failed, Operator,
    Shown, TokenForm,
};
use super::session;
use super::AppState;
use crate::domain::{
    self, ActionKind, ActionRecord, Change, Reason, Refusal, Reminder, ReminderAction, ReminderId,
    Status, SuppressNumber,
};
use crate::store::{Applied, Suppressed};

/// The session field holding the message of the last action, shown once on
/// the page it redirected to.
pub const FLASH: &str = "flash";

/// How often an action decides again when the reminder moved under it.
const TRIES: usize = 5;

/// Which actions apply to a reminder as it is now (the page shows only those).
pub struct Can {
    pub cancel: bool,
    pub call_now: bool,
    pub suppress: bool,
}

impl Can {
    pub fn of(r: &Reminder, suppressed: bool, now: DateTime<Utc>) -> Self {
        Self {
            cancel: matches!(domain::cancel(r, now), Ok(Some(_))),
            call_now: matches!(domain::call_now(r, now), Ok(Some(_))),
            suppress: !suppressed,
        }
    }

    pub fn any(&self) -> bool {
        self.cancel || self.call_now || self.suppress
    }
}

/// One entry of a reminder's history.
pub struct ActionView {
    pub action: &'static str,
    pub label: &'static str,
    pub actor: String,
    pub at: String,
    pub detail: String,
}

impl ActionView {
    pub fn of(a: &ReminderAction, at: String) -> Self {
        Self {
            action: a.action.as_str(),
            label: match a.action {
                ActionKind::Cancel => "Cancelled",
                ActionKind::CallNow => "Call at the next lawful moment",
                ActionKind::Suppress => "Number added to the suppression list",
            },
            actor: a.actor.clone(),
            at,
            detail: a.detail.clone().unwrap_or_default(),
        }
    }
}

/// The checks every action makes before it reads anything: the form comes
/// from this site's own page, and carries this session's token. `Some`: the
/// refusal to answer.
fn refused_at_the_door(
    operator: &Operator,
    headers: &HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Option<Response> {
    if !session::same_origin(headers) {
        return Some(cross_site());
    }
    let presented = form.ok().and_then(|Form(f)| f.csrf_token);
    if !session::csrf_matches(&operator.csrf, presented.as_deref()) {
        metrics::counter!("duecall_dashboard_actions_total", "result" => "forged").increment(1);
        return Some(forged());
    }
    None
}

fn reminder_id(path: Result<Path<String>, PathRejection>) -> Option<ReminderId> {
    path.ok().and_then(|Path(raw)| ReminderId::parse(&raw))
}

/// Back to the reminder's page, with `message` shown there once.
async fn done(session: &Session, id: ReminderId, message: String) -> Response {
    if let Err(e) = session.insert(FLASH, message).await {
        return storage_failed(e);
    }
    see_other(&format!("/reminders/{id}"))
}

/// The reminder's page again, 409, saying why nothing was done.
async fn refused(state: &AppState, operator: &Operator, id: ReminderId, why: String) -> Response {
    metrics::counter!("duecall_dashboard_actions_total", "result" => "refused").increment(1);
    let shown = Shown {
        status: StatusCode::CONFLICT,
        flash: None,
        refused: Some(why),
    };
    reminder_page(state, operator, id, shown).await
}

/// Decide on the reminder as read, write the change with its record if
/// nothing moved in between (the store's compare-and-set), and decide again
/// on the fresh row if something did — as the API's cancel does.
async fn decide_and_apply(
    state: &AppState,
    session: &Session,
    operator: &Operator,
    id: ReminderId,
    kind: ActionKind,
    decide: fn(&Reminder, DateTime<Utc>) -> Result<Option<Change>, Refusal>,
) -> Response {
    for _ in 0..TRIES {
        let r = match state.store.get_reminder(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return no_such_reminder(),
            Err(e) => return storage_failed(e),
        };
        let now = state.clock.now();
        let mut change = match decide(&r, now) {
            Ok(Some(change)) => change,
            Ok(None) => {
                let already = match kind {
                    ActionKind::CallNow => {
                        "It is due already: the next tick takes it, if every calling rule allows."
                    }
                    _ => "It was cancelled already: nothing changed.",
                };
                return done(session, id, already.to_owned()).await;
            }
            Err(refusal) => return refused(state, operator, id, refusal.message).await,
        };
        let detail = match kind {
            ActionKind::CallNow => format!(
                "{}, next attempt was {}",
                r.status,
                r.next_attempt_at.map_or_else(
                    || "none".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                )
            ),
            _ => format!("from {}", r.status),
        };
        change.action = Some(ActionRecord {
            reminder_id: id,
            action: kind,
            actor: operator.name.clone(),
            detail: Some(detail),
        });
        match state.store.apply(&change, None).await {
            Ok(Applied::Done(after)) => {
                crate::telemetry::transition(change.expect_status, after.status);
                metrics::counter!("duecall_dashboard_actions_total", "result" => "done")
                    .increment(1);
                tracing::info!(reminder_id = %id, action = %kind, actor = operator.name.as_str(),
                    from = %change.expect_status, to = %after.status, "operator action");
                let message = match kind {
                    ActionKind::CallNow => {
                        "Brought forward: due now. The next tick calls it if \
                        every calling rule allows it now, and otherwise defers it to the first \
                        moment they all do."
                    }
                    _ => "Cancelled: it will not be called again.",
                };
                return done(session, id, message.to_owned()).await;
            }
            Ok(Applied::NotFound) => return no_such_reminder(),
            Ok(Applied::Stale | Applied::Duplicate) => continue,
            Err(e) => return storage_failed(e),
        }
    }
    refused(
        state,
        operator,
        id,
        "The reminder kept changing while the action was being taken; nothing was changed. Try again."
            .to_owned(),
    )
    .await
}

/// Cancel the reminder, as the API's cancel does (SPEC §1: from `pending`
/// or `failed`; a live call or a completed reminder is refused).
#[utoipa::path(post, path = "/reminders/{id}/cancel", tag = "dashboard",
    security(("session" = []), ()),
    params(("id" = String, Path, description = "The reminder's id")),
    request_body(content = Option<TokenForm>, content_type = "application/x-www-form-urlencoded", description = "The session's `csrf_token`. Not required by the schema: a request without a session is sent to sign in (303) before its body is read, and one with a session but no token is refused (403)."),
    responses(
        (status = 303, description = "Cancelled (or cancelled already): back to `/reminders/{id}`; or not signed in: to `/login?next=…`"),
        (status = 403, description = "Sent from another site, or without the session's `csrf_token`: nothing changed", body = String, content_type = "text/html"),
        (status = 404, description = "No such reminder", body = String, content_type = "text/html"),
        (status = 409, description = "Refused (a live call, a completed reminder): the page, saying why", body = String, content_type = "text/html"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    session: Session,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = refused_at_the_door(&operator, &headers, form) {
        return refusal;
    }
    let Some(id) = reminder_id(path) else {
        return no_such_reminder();
    };
    decide_and_apply(
        &state,
        &session,
        &operator,
        id,
        ActionKind::Cancel,
        domain::cancel,
    )
    .await
}

/// Call the reminder at the next lawful moment: a `pending` or retryable
/// `failed` reminder becomes due now, and the next claim holds it to every
/// rule of SPEC §7 (it bypasses none).
#[utoipa::path(post, path = "/reminders/{id}/call-now", tag = "dashboard",
    security(("session" = []), ()),
    params(("id" = String, Path, description = "The reminder's id")),
    request_body(content = Option<TokenForm>, content_type = "application/x-www-form-urlencoded", description = "The session's `csrf_token`. Not required by the schema: a request without a session is sent to sign in (303) before its body is read, and one with a session but no token is refused (403)."),
    responses(
        (status = 303, description = "Due now (or due already): back to `/reminders/{id}`; or not signed in: to `/login?next=…`"),
        (status = 403, description = "Sent from another site, or without the session's `csrf_token`: nothing changed", body = String, content_type = "text/html"),
        (status = 404, description = "No such reminder", body = String, content_type = "text/html"),
        (status = 409, description = "Refused (live, terminal, settled, no attempt left, a callback the customer asked for): the page, saying why", body = String, content_type = "text/html"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn call_now(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    session: Session,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = refused_at_the_door(&operator, &headers, form) {
        return refusal;
    }
    let Some(id) = reminder_id(path) else {
        return no_such_reminder();
    };
    decide_and_apply(
        &state,
        &session,
        &operator,
        id,
        ActionKind::CallNow,
        domain::call_now,
    )
    .await
}

/// Put the reminder's number on the suppression list (reason `operator:
/// {name}`): it is never dialled again, by this reminder or any other; this
/// one is cancelled (`suppressed`) by its next claim.
#[utoipa::path(post, path = "/reminders/{id}/suppress", tag = "dashboard",
    security(("session" = []), ()),
    params(("id" = String, Path, description = "The reminder's id")),
    request_body(content = Option<TokenForm>, content_type = "application/x-www-form-urlencoded", description = "The session's `csrf_token`. Not required by the schema: a request without a session is sent to sign in (303) before its body is read, and one with a session but no token is refused (403)."),
    responses(
        (status = 303, description = "The number is on the list: back to `/reminders/{id}`; or not signed in: to `/login?next=…`"),
        (status = 403, description = "Sent from another site, or without the session's `csrf_token`: nothing changed", body = String, content_type = "text/html"),
        (status = 404, description = "No such reminder", body = String, content_type = "text/html"),
        (status = 409, description = "The number is on the list already: the page, saying so", body = String, content_type = "text/html"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn suppress(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    session: Session,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = refused_at_the_door(&operator, &headers, form) {
        return refusal;
    }
    let Some(id) = reminder_id(path) else {
        return no_such_reminder();
    };
    let r = match state.store.get_reminder(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return no_such_reminder(),
        Err(e) => return storage_failed(e),
    };
    let reason = match Reason::parse(&format!("operator: {}", operator.name.as_str())) {
        Ok(reason) => reason,
        Err(e) => return refused(&state, &operator, id, e.to_string()).await,
    };
    // `reminder_id` of an entry names the reminder whose opt-out added it
    // (SPEC §7); an operator's entry has none, and its history row names the
    // reminder instead.
    let add = SuppressNumber {
        phone_number: r.phone_number.clone(),
        reason,
        reminder_id: None,
    };
    let record = ActionRecord {
        reminder_id: id,
        action: ActionKind::Suppress,
        actor: operator.name.clone(),
        detail: Some(format!(
            "reason \"{}\", while {}",
            add.reason.as_str(),
            r.status
        )),
    };
    let now = state.clock.now();
    match state
        .store
        .add_suppression_as(&add, Some(&record), now)
        .await
    {
        Ok(Suppressed::New(_)) => {
            metrics::counter!("duecall_dashboard_actions_total", "result" => "done").increment(1);
            tracing::info!(reminder_id = %id, action = %ActionKind::Suppress,
                actor = operator.name.as_str(), "operator action");
            let message = match r.status {
                Status::Pending | Status::Failed => {
                    "The number is on the suppression list: it is never dialled again, and this \
                     reminder is cancelled (suppressed) when it next comes due."
                }
                _ => "The number is on the suppression list: it is never dialled again.",
            };
            done(&session, id, message.to_owned()).await
        }
        Ok(Suppressed::Existing(entry)) => {
            let why = format!(
                "The number is on the suppression list already (since {}, reason \"{}\"); nothing was changed.",
                entry.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                entry.reason
            );
            refused(&state, &operator, id, why).await
        }
        Err(e) => storage_failed(e),
    }
}
