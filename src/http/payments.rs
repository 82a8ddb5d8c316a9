//! `POST /api/reminders/{id}/payments` (SPEC §8): record a payment; once
//! payments cover the debt, a reminder waiting for a call is cancelled as
//! `paid` and a live call gets no further attempt.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::reminders::{id_from_path, json_object, not_found};
use super::{read_body, AppState, BODY_LIMIT};
use crate::domain::{NewPayment, Payment, Reminder};

/// The body of `POST /api/reminders/{id}/payments`. Unknown fields are refused.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // a description, never built
#[serde(deny_unknown_fields)]
pub struct RecordPayment {
    /// Minor units (cents), 1 to 10^15.
    #[schema(minimum = 1, example = 5000)]
    amount_minor: i64,
    /// When it was paid (RFC 3339, not ahead of the service's clock by more than 5 min); the time it is recorded when absent.
    #[schema(format = DateTime)]
    paid_at: Option<String>,
    /// The payer's or processor's reference, 1–200 characters: a payment sent
    /// again with the same reference is recorded once.
    #[schema(example = "stripe:pi_3Nx…")]
    reference: Option<String>,
}

/// What `POST /api/reminders/{id}/payments` answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentAnswer {
    pub payment: Payment,
    /// The reminder as the payment left it: `amount_paid_minor`, and
    /// `cancelled` with `skip_reason = paid` if it settled a waiting reminder.
    pub reminder: Reminder,
}

#[utoipa::path(post, path = "/api/reminders/{id}/payments", tag = "reminders",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The reminder's id (anything else is a 404)")),
    request_body(content = RecordPayment, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = PaymentAnswer),
        (status = 200, description = "Its `reference` was recorded already, with the same amount: the first payment, nothing changed", body = PaymentAnswer),
        (status = 400, description = "Not JSON, not an object, or a missing, unknown or invalid field (named)", body = super::error::ErrorBody),
        (status = 401, description = "Missing or wrong `Bearer $DUECALL_API_KEY`", body = super::error::ErrorBody),
        (status = 404, description = "No reminder with that id", body = super::error::ErrorBody),
        (status = 409, description = "Its `reference` was recorded already for another amount or time (`reference_reused`): nothing changed", body = super::error::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = super::error::ErrorBody),
        (status = 500, description = "Storage failing; nothing was changed, retry (with the same `reference`)", body = super::error::ErrorBody),
    ))]
pub async fn record(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = id_from_path(path)?;
    let bytes = read_body(&headers, body, BODY_LIMIT).await?;
    let new = NewPayment::parse(&json_object(&bytes)?)?;
    let now = state.clock.now();
    new.check_paid_at(now)?;
    let recorded = state
        .store
        .record_payment(id, &new, now)
        .await?
        .ok_or_else(|| not_found(id))?;
    if !recorded.new && !recorded.payment.is_same(&new) {
        return Err(ApiError::conflict(
            crate::domain::REFERENCE_REUSED,
            format!(
                "payment reference {}",
                crate::domain::reference_reused(&recorded.payment)
            ),
        ));
    }
    let status = if recorded.new {
        tracing::info!(
            reminder_id = %id,
            payment = recorded.payment.id,
            settled = recorded.reminder.is_settled(),
            status = %recorded.reminder.status,
            "payment recorded"
        );
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(PaymentAnswer {
            payment: recorded.payment,
            reminder: recorded.reminder,
        }),
    )
        .into_response())
}
