//! `POST /api/webhooks/livekit` (SPEC §3): LiveKit's own server webhooks,
//! verified with `livekit-api`'s receiver (a JWT signed with the API secret
//! whose `sha256` claim covers the body). `room_finished` for a room whose
//! attempt is still live fails that attempt at once
//! (`room_closed_without_report`) rather than waiting for the timeout; every
//! other event is acknowledged and left alone.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use livekit_api::access_token::{AccessTokenError, TokenVerifier};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::{read_body, AppState, BODY_LIMIT};
use crate::domain::{self, Ctx, SKIP_ROOM_CLOSED};
use crate::store::Applied;

const MAX_DECISIONS: usize = 8;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Answer {
    /// The LiveKit event's name (`room_finished`, …).
    event: String,
    /// Did it fail a live attempt.
    applied: bool,
}

fn ignored(event: &str) -> Json<Answer> {
    Json(Answer {
        event: event.to_owned(),
        applied: false,
    })
}

/// LiveKit's own server webhooks; `room_finished` for a live attempt fails it.
#[utoipa::path(post, path = "/api/webhooks/livekit", tag = "webhooks",
    security(("livekitToken" = [])),
    request_body(content = Object, description = "LiveKit's `WebhookEvent` as JSON", content_type = "application/webhook+json"),
    responses(
        (status = 200, description = "Acknowledged; `applied` says whether it failed a live attempt", body = Answer),
        (status = 400, description = "Not a LiveKit webhook event", body = super::error::ErrorBody),
        (status = 401, description = "Missing or invalid token (signed with `LIVEKIT_API_SECRET`, covering the body)", body = super::error::ErrorBody),
        (status = 404, description = "LiveKit is not configured (`LIVEKIT_URL` unset)", body = super::error::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; LiveKit retries", body = super::error::ErrorBody),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Answer>, ApiError> {
    let Some(lk) = state.config.livekit.as_ref() else {
        return Err(ApiError::NotFound(
            "no such route (LiveKit is not configured)".into(),
        ));
    };
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    // LiveKit sends the bare token; accept a `Bearer ` prefix as well.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        })
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::UnauthorizedReason(
            "missing Authorization token".into(),
        ))?;
    // The signature first, over the raw bytes: nothing about the body is
    // looked at (not even whether it is UTF-8) before it is known to be LiveKit's.
    verify(token, &bytes, &lk.api_key, lk.api_secret.expose_secret()).map_err(|why| {
        tracing::warn!(reason = %why, "LiveKit webhook refused: signature");
        ApiError::UnauthorizedReason(format!("invalid LiveKit webhook token: {why}"))
    })?;
    let event: livekit_protocol::WebhookEvent = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_request("invalid_json", "the body is not UTF-8"))
        .and_then(|body| {
            serde_json::from_str(body).map_err(|e| {
                ApiError::bad_request("invalid_json", format!("not a LiveKit webhook event: {e}"))
            })
        })?;
    if event.event != "room_finished" {
        return Ok(ignored(&event.event));
    }
    let room = event.room.map(|r| r.name).unwrap_or_default();
    let Some((id, attempt)) = domain::parse_room_name(&room) else {
        tracing::debug!("room_finished for a room that is not a reminder's");
        return Ok(ignored(&event.event));
    };
    for _ in 0..MAX_DECISIONS {
        let Some(r) = state.store.get_reminder(id).await? else {
            return Ok(ignored(&event.event));
        };
        if r.attempt_count != attempt {
            return Ok(ignored(&event.event));
        }
        let current = state.store.get_attempt(id, attempt).await?;
        let ctx = Ctx {
            now: state.clock.now(),
            retry: &state.retry,
            jitter: crate::jitter_draw(),
            promise_grace_days: state.config.promise_grace_days,
        };
        let Some(change) = domain::fail_live_attempt(&r, current.as_ref(), SKIP_ROOM_CLOSED, &ctx)
        else {
            // The agent reported first (or the attempt ended otherwise): nothing to rescue.
            return Ok(ignored(&event.event));
        };
        match state.store.apply(&change, None).await? {
            Applied::Done(after) => {
                crate::telemetry::transition(r.status, after.status);
                tracing::warn!(
                    reminder_id = %id,
                    attempt,
                    was = %r.status,
                    retry_at = %crate::domain::describe_time(after.next_attempt_at),
                    "room closed without a report from the agent"
                );
                metrics::counter!("duecall_rooms_closed_without_report_total").increment(1);
                return Ok(Json(Answer {
                    event: event.event,
                    applied: true,
                }));
            }
            Applied::Stale => continue,
            Applied::NotFound | Applied::Duplicate => return Ok(ignored(&event.event)),
        }
    }
    Err(ApiError::Unavailable(
        "the reminder kept changing while the event was applied; retry".into(),
    ))
}

/// Check a LiveKit webhook's token (a JWT signed with the API secret, issued
/// by our API key, within its validity) and that its `sha256` claim is the
/// hash of `body`: the checks of `livekit-api`'s `WebhookReceiver`, done on the
/// raw bytes and saying which one failed.
fn verify(token: &str, body: &[u8], api_key: &str, api_secret: &str) -> Result<(), String> {
    let claims = TokenVerifier::with_api_key(api_key, api_secret)
        .verify(token)
        .map_err(|e| describe_token_error(&e))?;
    let claimed = base64::engine::general_purpose::STANDARD
        .decode(claims.sha256.as_bytes())
        .map_err(|_| "its sha256 claim is missing or not base64".to_owned())?;
    let hash = Sha256::digest(body);
    if bool::from(claimed.ct_eq(hash.as_slice())) {
        Ok(())
    } else {
        Err("its sha256 claim does not match the body".to_owned())
    }
}

/// What was wrong with a token, in words an operator can act on (never the
/// token itself).
fn describe_token_error(e: &AccessTokenError) -> String {
    match e {
        AccessTokenError::Encoding(jwt) => match jwt.kind() {
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => "it is not a well-formed JWT".to_owned(),
            ErrorKind::InvalidSignature => {
                "its signature does not match LIVEKIT_API_SECRET".to_owned()
            }
            ErrorKind::ExpiredSignature => "it has expired".to_owned(),
            ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".to_owned(),
            ErrorKind::InvalidIssuer => {
                "it was issued for another API key than LIVEKIT_API_KEY".to_owned()
            }
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                "it is not signed with HS256".to_owned()
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("it lacks the {claim:?} claim"),
            ErrorKind::InvalidClaimFormat(claim) => format!("its {claim:?} claim is malformed"),
            other => format!("it could not be verified ({other:?})"),
        },
        AccessTokenError::InvalidClaims(why) => format!("its claims are invalid: {why}"),
        other => format!("it could not be verified: {other}"),
    }
}
