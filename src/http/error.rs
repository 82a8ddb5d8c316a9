//! One error enum at the HTTP edge: every failure maps here to a status code
//! and the JSON body `{"error": {"code", "message"}}` (plus `field` for a bad field).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::reminder::FieldError;
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Field(e) => json!({"error": {
                "code": "invalid_field",
                "message": e.to_string(),
                "field": e.field,
            }}),
            ApiError::BadRequest { code, message } | ApiError::Conflict { code, message } => {
                json!({"error": {"code": code, "message": message}})
            }
            ApiError::Unauthorized(message) => {
                json!({"error": {"code": "unauthorized", "message": message}})
            }
            ApiError::UnauthorizedReason(message) => {
                json!({"error": {"code": "invalid_signature", "message": message}})
            }
            ApiError::NotFound(message) => {
                json!({"error": {"code": "not_found", "message": message}})
            }
            ApiError::MethodNotAllowed => json!({"error": {
                "code": "method_not_allowed",
                "message": "this route does not accept that method",
            }}),
            ApiError::PayloadTooLarge(limit) => json!({"error": {
                "code": "payload_too_large",
                "message": format!("the body must be at most {} KiB", limit / 1024),
            }}),
            ApiError::Storage(e) => {
                // The details go to the log (no payloads there), not to the client.
                tracing::error!(error = %e, "storage failure");
                json!({"error": {
                    "code": "storage_error",
                    "message": "storage is failing; nothing was changed, retry later",
                }})
            }
            ApiError::Unavailable(message) => {
                json!({"error": {"code": "unavailable", "message": message}})
            }
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
