//! The OpenAPI 3.1 description served at `GET /api/openapi.json`, generated from
//! the code: each handler carries its own `#[utoipa::path]`, response bodies are
//! the types the handlers serialise, and `tests/openapi.rs` checks that every
//! route the router serves is described (and nothing else).
//!
//! Two request bodies are parsed by hand (field by field, for precise errors), so
//! their schemas are written here as types; unit tests below hold them to the
//! parsers' field lists and limits.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use crate::domain::{Failure, Outcome};

/// The body of `POST /api/reminders` (SPEC §5). Unknown fields are refused.
// Deserialize only so that `deny_unknown_fields` (additionalProperties: false) is read.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // a description, never built
#[serde(deny_unknown_fields)]
pub struct CreateReminder {
    /// The person called.
    #[schema(min_length = 1, max_length = 200, example = "Ada Lovelace")]
    customer_name: String,
    /// E.164: `+`, then 7 to 15 digits, the first not 0.
    #[schema(pattern = r"^\+[1-9][0-9]{6,14}$", example = "+14155550100")]
    phone_number: String,
    /// In minor units (cents).
    #[schema(minimum = 0, example = 12345)]
    amount_due_minor: i64,
    /// ISO 4217, either case.
    #[schema(pattern = "^[A-Za-z]{3}$", example = "USD")]
    currency: String,
    #[schema(value_type = String, format = Date, example = "2026-12-01")]
    due_date: String,
    /// Idempotency key: the same one answers the existing reminder.
    #[schema(min_length = 1, max_length = 255, example = "inv-1042")]
    external_id: Option<String>,
    /// IANA; default `DEFAULT_TIMEZONE`. The calling window is in this zone.
    #[schema(example = "America/New_York")]
    timezone: Option<String>,
    /// BCP 47 language tag, like `en` or `es-MX`.
    #[schema(
        max_length = 35,
        pattern = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        example = "en"
    )]
    language: Option<String>,
    /// Not called before this time (RFC 3339, years 0000–9999 in UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    scheduled_for: Option<String>,
    /// Default `DEFAULT_MAX_ATTEMPTS`.
    #[schema(minimum = 1, maximum = 10)]
    max_attempts: Option<u32>,
    /// Anything the business wants back (at most 16 KiB as JSON). One key is
    /// read: `verify`, `{"label": "ZIP code", "value": "02139"}` — a second
    /// identifier the agent asks for before it says anything about the debt
    /// (SPEC §10); label 1–60 and value 1–100 characters of plain text, stored
    /// trimmed; it alone of the metadata is passed to the agent.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// The debt it is about (SPEC §7: frequency caps and the quiet period count
    /// per debt); default its `external_id`, else its own id.
    #[schema(min_length = 1, max_length = 255)]
    debt_ref: Option<String>,
    /// ISO 3166-2 region, like `US-MA`: stricter regional caps apply.
    #[schema(pattern = "^[A-Za-z]{2}-[A-Za-z0-9]{1,3}$", example = "US-MA")]
    region: Option<String>,
}

/// The event types of the call-status webhook.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum CallStatusEventType {
    CallAnswered,
    CallCompleted,
    CallFailed,
}

/// The body of `POST /api/webhooks/call-status` (SPEC §2). Unknown fields are ignored.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CallStatusEvent {
    event_type: CallStatusEventType,
    /// The reminder's id (one that is not a UUID is a 404).
    reminder_id: String,
    /// The attempt the event is about; default the current one.
    #[schema(minimum = 1, maximum = 10)]
    attempt: Option<u32>,
    /// When it happened (RFC 3339, years 0000–9999 in UTC); default when it
    /// was received. Kept on the event; the attempt's times are the service's.
    #[schema(value_type = Option<String>, format = DateTime)]
    occurred_at: Option<String>,
    /// Required for `call_completed`.
    outcome: Option<Outcome>,
    /// For `call_failed`.
    failure: Option<Failure>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "duecall",
        description = "Payment-reminder calls by a LiveKit voice agent, with every call's fate stored durably. \
                       Errors read `{\"error\": {\"code\", \"message\"}}` (plus `field` for a bad field)."
    ),
    paths(
        super::reminders::create,
        super::reminders::list,
        super::export::export,
        super::reminders::get_one,
        super::reminders::cancel,
        super::payments::record,
        super::suppressions::add,
        super::suppressions::list,
        super::suppressions::get_one,
        super::suppressions::remove,
        super::notifications::list,
        super::notifications::get_one,
        super::notifications::resend,
        super::call_status::receive,
        super::livekit::receive,
        super::cron::process,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        openapi_json,
        super::dashboard::home,
        super::glance::glance,
        super::dashboard::reminder,
        super::dashboard::login_form,
        super::dashboard::login,
        super::dashboard::logout,
        super::actions::cancel,
        super::actions::call_now,
        super::actions::suppress,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "reminders", description = "The business system's API (`Authorization: Bearer $DUECALL_API_KEY`)"),
        (name = "suppressions", description = "Numbers never called, with the audit of every add and remove (`Authorization: Bearer $DUECALL_API_KEY`)"),
        (name = "notifications", description = "Outcome notifications to the business system (`NOTIFY_URL`), with every delivery try (`Authorization: Bearer $DUECALL_API_KEY`)"),
        (name = "webhooks", description = "Signed status reports: the voice agent's, and LiveKit's own"),
        (name = "scheduling", description = "Ticks on demand, for deployments driven by an outside scheduler"),
        (name = "operating", description = "Health, readiness, metrics, this description"),
        (name = "dashboard", description = "The operators' HTML pages, behind a sign-in"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_owned()))
                    .build(),
            )
        };
        components.add_security_scheme("apiKey", bearer("`DUECALL_API_KEY`"));
        components.add_security_scheme("cronSecret", bearer("`CRON_SECRET`"));
        components.add_security_scheme(
            "webhookSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "webhook-signature",
                "Standard Webhooks: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` under `WEBHOOK_SECRET`",
            ))),
        );
        components.add_security_scheme(
            "livekitToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "A JWT signed with `LIVEKIT_API_SECRET` whose `sha256` claim covers the body",
            ))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "duecall_session",
                "Set by `POST /login` with `DASHBOARD_PASSWORD`",
            ))),
        );
    }
}

/// The description, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc
    })
}

/// This description.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operating",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| document().to_json().expect("the description serialises"));
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn schema(name: &str) -> Value {
        let doc = serde_json::to_value(document()).unwrap();
        doc["components"]["schemas"][name].clone()
    }

    #[test]
    fn the_create_schema_has_exactly_the_parsers_fields() {
        let s = schema("CreateReminder");
        let mut described: Vec<&str> = s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut parsed = crate::domain::CREATE_FIELDS.to_vec();
        described.sort_unstable();
        parsed.sort_unstable();
        assert_eq!(described, parsed);
        assert_eq!(s["additionalProperties"], Value::Bool(false));
        let mut required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(
            required,
            [
                "amount_due_minor",
                "currency",
                "customer_name",
                "due_date",
                "phone_number"
            ]
        );
        assert_eq!(
            s["properties"]["max_attempts"]["maximum"],
            crate::domain::MAX_ATTEMPTS_LIMIT
        );
        let event = schema("CallStatusEvent");
        assert_eq!(
            event["properties"]["attempt"]["maximum"],
            crate::domain::MAX_ATTEMPTS_LIMIT,
            "the webhook's attempt is bounded as the parser bounds it"
        );
        assert_eq!(
            s["properties"]["customer_name"]["maxLength"],
            crate::domain::MAX_NAME_CHARS
        );
        assert_eq!(
            s["properties"]["external_id"]["maxLength"],
            crate::domain::MAX_EXTERNAL_ID_CHARS
        );
    }

    #[test]
    fn the_phone_pattern_agrees_with_the_parser() {
        // The schema's pattern, applied by hand to the parser's edge cases.
        let by_pattern = |s: &str| {
            s.strip_prefix('+').is_some_and(|d| {
                (7..=15).contains(&d.len())
                    && d.bytes().all(|b| b.is_ascii_digit())
                    && !d.starts_with('0')
            })
        };
        assert_eq!(
            schema("CreateReminder")["properties"]["phone_number"]["pattern"],
            r"^\+[1-9][0-9]{6,14}$"
        );
        for n in [
            "+1415555",
            "+141555",
            "+123456789012345",
            "+1234567890123456",
            "+0415555010",
            "14155550100",
            "+1 415",
        ] {
            assert_eq!(
                crate::domain::PhoneNumber::parse(n).is_ok(),
                by_pattern(n),
                "{n}"
            );
        }
    }

    #[test]
    fn the_event_schema_names_the_parsers_event_types() {
        let s = schema("CallStatusEventType");
        let described: Vec<&str> = s["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for t in &described {
            assert!(t.parse::<crate::domain::EventType>().is_ok(), "{t}");
        }
        assert_eq!(described.len(), 3);
    }
}
