//! `POST /api/webhooks/call-status` (SPEC §2): verify the signature over the raw
//! body, parse, decide with the pure state machine, and store the decision and
//! the event in one transaction (`Store::ingest`). A 2xx only after the commit.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::{read_body, AppState, BODY_LIMIT};
use crate::domain::{self, Ctx, Verdict};
use crate::store::{Applied, Decide, EventRecord, Ingested};
use crate::webhook::{self, PayloadError};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// How a call-status event is decided where the store's writer reads the
/// reminder (`Store::ingest`): the pure transition at the writer's `now`, and
/// the event's row. Also the storage benchmark's (`bench/src/storage.rs`).
pub fn decider(
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    retry: std::sync::Arc<crate::policy::RetryPolicy>,
    promise_grace_days: u32,
    event: domain::Event,
    webhook_id: String,
    payload: String,
) -> Box<Decide> {
    Box::new(
        move |r: &domain::Reminder, attempt: Option<&domain::Attempt>| {
            let now = clock.now();
            let ctx = Ctx {
                now,
                retry: &retry,
                jitter: crate::jitter_draw(),
                promise_grace_days,
            };
            let decision = domain::transition(r, attempt, &event, &ctx);
            let target = event.attempt.unwrap_or(r.attempt_count);
            let record = EventRecord {
                webhook_id: webhook_id.clone(),
                reminder_id: r.id,
                attempt: Some(target).filter(|a| *a > 0),
                event_type: event.event_type(),
                occurred_at: event.occurred_at,
                received_at: now,
                applied: decision.verdict == Verdict::Applied,
                verdict: decision.verdict,
                payload: payload.clone(),
            };
            (decision, record)
        },
    )
}

/// A call-status event from the voice agent, signed per Standard Webhooks.
#[utoipa::path(post, path = "/api/webhooks/call-status", tag = "webhooks",
    security(("webhookSignature" = [])),
    params(
        ("webhook-id" = String, Header, description = "The event's idempotency key: 1–255 visible ASCII characters"),
        ("webhook-timestamp" = String, Header, description = "Unix seconds; within ±300 s of the service's clock"),
    ),
    request_body(content = super::openapi::CallStatusEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored; `applied` says whether it changed anything", body = CallStatusAnswer),
        (status = 400, description = "Not JSON, or a missing or invalid field (named)", body = super::error::ErrorBody),
        (status = 401, description = "Missing, malformed or wrong signature, or a timestamp outside ±300 s", body = super::error::ErrorBody),
        (status = 404, description = "No reminder with that id", body = super::error::ErrorBody),
        (status = 409, description = "Not the current attempt (`stale_attempt`), or a reminder with no live attempt (`no_attempt`): recorded all the same, and a repeat is answered the same; or a `webhook-id` already used for a different event (`webhook_id_reused`): nothing changes", body = super::error::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing: retry with the same `webhook-id`", body = super::error::ErrorBody),
        (status = 503, description = "The reminder kept changing: retry with the same `webhook-id`", body = super::error::ErrorBody),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    let secrets = state
        .config
        .webhook_secrets
        .as_ref()
        .ok_or(ApiError::Unauthorized(
            "call-status webhooks are not configured (WEBHOOK_SECRET)",
        ))?;
    let now = state.clock.now();
    let webhook_id = header(&headers, "webhook-id");
    if let Err(e) = secrets.verify(
        webhook_id,
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
        &bytes,
        now.timestamp(),
    ) {
        tracing::warn!(reason = %e, "call-status webhook refused: signature");
        return Err(ApiError::UnauthorizedReason(e.to_string()));
    }
    let webhook_id = webhook_id.unwrap_or_default().to_owned();
    webhook::check_webhook_id(&webhook_id)?;

    let event = webhook::parse_event(&bytes, now).map_err(|e| match e {
        PayloadError::Json(message) => ApiError::bad_request("invalid_json", message),
        PayloadError::Field(f) => ApiError::Field(f),
        PayloadError::UnknownReminder(raw) => {
            ApiError::NotFound(format!("no reminder with id {raw:?}"))
        }
    })?;
    let id = event.reminder_id;
    // A valid UTF-8 JSON text (it parsed), kept exactly as received.
    let payload = String::from_utf8_lossy(&bytes).into_owned();

    // Decided against the reminder as the store's writer finds it, and written
    // with the event row in the same transaction (however the store batches).
    let decide = decider(
        state.clock.clone(),
        state.retry.clone(),
        state.config.promise_grace_days,
        event.clone(),
        webhook_id.clone(),
        payload.clone(),
    );
    let not_found = || ApiError::NotFound(format!("no reminder with id {id}"));
    let Ingested {
        before: r,
        decision,
        applied,
    } = state
        .store
        .ingest(id, event.attempt, decide)
        .await?
        .ok_or_else(not_found)?;
    let target = event.attempt.unwrap_or(r.attempt_count);
    let stored = match applied {
        Applied::Done(after) => {
            crate::telemetry::transition(r.status, after.status);
            after
        }
        Applied::Stale => {
            return Err(ApiError::Unavailable(
                "the reminder kept changing while the event was applied; retry".into(),
            ))
        }
        Applied::NotFound => return Err(not_found()),
        Applied::Duplicate => return repeat(&state, &webhook_id, &event, &payload).await,
    };
    tracing::info!(
        reminder_id = %id,
        attempt = target,
        event = event.event_type().as_str(),
        verdict = ?decision.verdict,
        from = %r.status,
        to = %stored.status,
        "call-status event"
    );
    answer_verdict(
        decision.verdict,
        id,
        stored.status,
        true,
        target,
        r.attempt_count,
    )
}

/// What a stored event is answered: 200 (`applied` only the first time it
/// changed something), or the 409 its verdict means.
fn answer_verdict(
    verdict: Verdict,
    id: domain::ReminderId,
    status: domain::Status,
    first: bool,
    target: u32,
    current: u32,
) -> Result<Response, ApiError> {
    match verdict {
        Verdict::Applied => Ok(answer(StatusCode::OK, id, status, first)),
        Verdict::Ignored => Ok(answer(StatusCode::OK, id, status, false)),
        Verdict::StaleAttempt => Err(ApiError::conflict(
            "stale_attempt",
            format!(
                "attempt {target} is not the current attempt ({current}); the event is recorded on it and changes no status"
            ),
        )),
        Verdict::NoAttempt => Err(ApiError::conflict(
            "no_attempt",
            format!("the reminder is {status} with no attempt to apply the event to; it is recorded"),
        )),
    }
}

/// A `webhook-id` already recorded (SPEC §2). For the same event (reminder,
/// attempt, event type) it is a repeat: nothing changes, and it is answered
/// what the first delivery was. For another event it is a 409
/// `webhook_id_reused` that changes nothing: a sender bug, never silently eaten.
async fn repeat(
    state: &AppState,
    webhook_id: &str,
    event: &domain::Event,
    payload: &str,
) -> Result<Response, ApiError> {
    let id = event.reminder_id;
    let first = state.store.get_event(webhook_id).await?;
    let current = state.store.get_reminder(id).await?;
    let (status, attempt_count) = match &current {
        Some(c) => (c.status, c.attempt_count),
        None => return Err(ApiError::NotFound(format!("no reminder with id {id}"))),
    };
    let Some(first) = first else {
        // Recorded a moment ago but not readable here yet: a repeat all the same.
        return Ok(answer(StatusCode::OK, id, status, false));
    };
    // The first delivery's own words: the attempt it named (or none), its type.
    let sent = webhook::parse_event(first.payload.as_bytes(), first.received_at).ok();
    let same = first.payload == payload
        || (first.reminder_id == id
            && first.event_type == event.event_type()
            && sent.as_ref().map_or(first.attempt, |e| e.attempt) == event.attempt);
    if !same {
        tracing::warn!(
            reminder_id = %id,
            first_reminder_id = %first.reminder_id,
            event = event.event_type().as_str(),
            first_event = first.event_type.as_str(),
            "call-status webhook-id reused for a different event; refused"
        );
        metrics::counter!("duecall_webhook_id_reused_total").increment(1);
        return Err(ApiError::conflict(
            "webhook_id_reused",
            "this webhook-id was already used for a different event (reminder, attempt or event type); \
             every event needs an id of its own, and its retries the same one",
        ));
    }
    let target = first.attempt.unwrap_or(attempt_count);
    tracing::info!(reminder_id = %id, attempt = target, event = event.event_type().as_str(), verdict = first.verdict.as_str(), "call-status repeat ignored");
    answer_verdict(first.verdict, id, status, false, target, attempt_count)
}

/// What the call-status webhook answers once the event is stored.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CallStatusAnswer {
    #[schema(value_type = String, format = "uuid")]
    pub reminder_id: domain::ReminderId,
    /// The reminder's status after the event.
    pub status: domain::Status,
    /// Whether this event changed anything (`false`: a repeated `webhook-id`, or
    /// news the attempt has already moved past).
    pub applied: bool,
}

fn answer(
    code: StatusCode,
    id: domain::ReminderId,
    status: domain::Status,
    applied: bool,
) -> Response {
    (
        code,
        Json(CallStatusAnswer {
            reminder_id: id,
            status,
            applied,
        }),
    )
        .into_response()
}
