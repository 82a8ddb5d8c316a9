//! One error enum at the HTTP edge: every failure maps here to a status code
//! and the JSON body `{"error": {"code", "message"}}` (plus `field` for a bad field).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::FieldError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 400: a field is missing or invalid.
    Field(FieldError),
    /// 400: the request as a whole is malformed.
    BadRequest { code: &'static str, message: String },
    /// 401: missing or wrong credentials.
    Unauthorized(&'static str),
    /// 401 with a reason worked out at run time (a webhook signature).
    UnauthorizedReason(String),
    /// 404
    NotFound(String),
    /// 405
    MethodNotAllowed,
    /// 409: the request is understood but conflicts with the state.
    Conflict { code: &'static str, message: String },
    /// 413
    PayloadTooLarge(usize),
    /// 500: storage failed; the client should retry.
    Storage(StoreError),
    /// 503: not ready (the database is unreachable).
    Unavailable(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Field(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::UnauthorizedReason(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Field(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Storage(e)
    }
}

/// Every error answer: `{"error": {"code", "message"}}`, with `field` for a bad field.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_field`, `invalid_json`, `unauthorized`, `invalid_signature`,
    /// `not_found`, `invalid_transition`, `stale_attempt`, `payload_too_large`, `storage_error`, …
    pub code: String,
    /// For people; never contains a payload.
    pub message: String,
    /// The field at fault, for `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// The `code` and `message` of the answer (and the field, for a bad field).
    fn detail(&self) -> ErrorDetail {
        let (code, message, field) = match self {
            ApiError::Field(e) => ("invalid_field", e.to_string(), Some(e.field.to_string())),
            ApiError::BadRequest { code, message } | ApiError::Conflict { code, message } => {
                (*code, message.clone(), None)
            }
            ApiError::Unauthorized(message) => ("unauthorized", (*message).to_owned(), None),
            ApiError::UnauthorizedReason(message) => ("invalid_signature", message.clone(), None),
            ApiError::NotFound(message) => ("not_found", message.clone(), None),
            ApiError::MethodNotAllowed => (
                "method_not_allowed",
                "this route does not accept that method".to_owned(),
                None,
            ),
            ApiError::PayloadTooLarge(limit) => (
                "payload_too_large",
                format!("the body must be at most {} KiB", limit / 1024),
                None,
            ),
            ApiError::Storage(e) => {
                // The details go to the log (no payloads there), not to the client.
                tracing::error!(error = %e, "storage failure");
                (
                    "storage_error",
                    "storage is failing; nothing was changed, retry later".to_owned(),
                    None,
                )
            }
            ApiError::Unavailable(message) => ("unavailable", message.clone(), None),
        };
        ErrorDetail {
            code: code.to_owned(),
            message,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
