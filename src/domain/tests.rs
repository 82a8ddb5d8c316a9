//! Tests of the domain as a whole: parsing a reminder, amounts, room names, cancel.

use super::*;
use chrono::Utc;
use serde_json::{json, Map, Value};

fn defaults() -> CreateDefaults {
    CreateDefaults {
        zone_policy: ZonePolicy::All,
        timezone: TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    }
}

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn valid() -> Value {
    json!({"customer_name": "Ada Lovelace", "phone_number": "+14155550100",
           "amount_due_minor": 12345, "currency": "usd", "due_date": "2026-12-01"})
}

#[test]
fn amounts_read_in_their_currency_minor_unit() {
    let fmt = |c: &str, n| Currency::parse(c).unwrap().format_minor(n);
    assert_eq!(fmt("USD", 12345), "USD 123.45");
    assert_eq!(fmt("EUR", 5), "EUR 0.05");
    assert_eq!(fmt("JPY", 500), "JPY 500");
    assert_eq!(fmt("KWD", 1234), "KWD 1.234");
    assert_eq!(fmt("USD", -250), "USD -2.50");
    assert_eq!(fmt("USD", i64::MIN), "USD -92233720368547758.08");
}

#[test]
fn parses_a_minimal_reminder_with_defaults() {
    let r = NewReminder::parse(&body(valid()), &defaults()).unwrap();
    assert_eq!(r.currency.as_str(), "USD");
    assert_eq!(r.timezone, None, "none was given");
    assert_eq!(
        r.calling_zones[0].name(),
        "America/Los_Angeles",
        "the number's zone"
    );
    assert_eq!(r.language.as_str(), "en");
    assert_eq!(r.max_attempts, 3);
    assert!(r.metadata.is_empty());
    assert_eq!(r.external_id, None);
}

#[test]
fn each_required_field_is_named_when_missing() {
    for field in [
        "customer_name",
        "phone_number",
        "amount_due_minor",
        "currency",
        "due_date",
    ] {
        let mut b = body(valid());
        b.remove(field);
        let err = NewReminder::parse(&b, &defaults()).unwrap_err();
        assert_eq!(err.field, field);
        assert_eq!(err.message, "is required");
    }
}

#[test]
fn bad_values_are_named() {
    let cases = [
        ("phone_number", json!("4155550100")),
        ("phone_number", json!("+0155550100")),
        ("phone_number", json!("+1 415 555 0100")),
        ("phone_number", json!("+1234")),
        ("phone_number", json!("+1234567890123456")),
        ("amount_due_minor", json!(-1)),
        ("amount_due_minor", json!(12.5)),
        ("amount_due_minor", json!("100")),
        ("currency", json!("XYZ")),
        ("currency", json!("XAU")),
        ("due_date", json!("2026-13-01")),
        ("due_date", json!("01/12/2026")),
        ("timezone", json!("Mars/Olympus")),
        ("language", json!("english!")),
        ("scheduled_for", json!("tomorrow")),
        ("max_attempts", json!(0)),
        ("max_attempts", json!(11)),
        ("metadata", json!([1, 2])),
        ("customer_name", json!("   ")),
        ("customer_name", json!(42)),
        // Counted as sent: the published maxLength is 200 (found by schemathesis).
        ("customer_name", json!(format!(" {} ", "a".repeat(199)))),
        ("external_id", json!("")),
        ("external_id", json!(7)),
        ("metadata", json!({"a": "nul\u{0}here"})),
    ];
    for (field, value) in cases {
        let mut b = body(valid());
        b.insert(field.to_owned(), value.clone());
        let err = NewReminder::parse(&b, &defaults())
            .expect_err(&format!("{field}={value} must be refused"));
        assert_eq!(err.field, field, "{value}");
    }
}

#[test]
fn a_second_identifier_is_checked_at_the_door_and_stored_trimmed() {
    let with_verify = |v: Value| {
        let mut b = body(valid());
        b.insert("metadata".into(), json!({"invoice": "1042", "verify": v}));
        NewReminder::parse(&b, &defaults())
    };
    let ok = with_verify(json!({"label": " ZIP code ", "value": "\t02139 "})).unwrap();
    assert_eq!(
        Value::Object(ok.metadata),
        json!({"invoice": "1042", "verify": {"label": "ZIP code", "value": "02139"}})
    );
    // null is no second identifier, as if absent (and kept as given).
    assert!(with_verify(Value::Null).is_ok());
    let label_limit = "L".repeat(MAX_VERIFY_LABEL_CHARS);
    let value_limit = "é".repeat(MAX_VERIFY_VALUE_CHARS);
    assert!(with_verify(json!({"label": label_limit, "value": value_limit})).is_ok());
    let refused = [
        (json!("02139"), "metadata.verify"),
        (json!({"label": "ZIP code"}), "metadata.verify.value"),
        (json!({"value": "02139"}), "metadata.verify.label"),
        (
            json!({"label": "ZIP code", "value": 2139}),
            "metadata.verify.value",
        ),
        (
            json!({"label": "  ", "value": "02139"}),
            "metadata.verify.label",
        ),
        (
            json!({"label": "ZIP code", "value": ""}),
            "metadata.verify.value",
        ),
        (
            json!({"label": "ZIP\ncode", "value": "02139"}),
            "metadata.verify.label",
        ),
        (
            json!({"label": "ZIP code", "value": "02\u{85}139"}),
            "metadata.verify.value",
        ),
        (
            json!({"label": format!("{label_limit}L"), "value": "1"}),
            "metadata.verify.label",
        ),
        (
            json!({"label": "a", "value": format!("{value_limit}é")}),
            "metadata.verify.value",
        ),
        (
            json!({"label": "a", "value": "b", "hint": "c"}),
            "metadata.verify",
        ),
    ];
    for (v, field) in refused {
        let err = with_verify(v.clone()).expect_err(&format!("{v} must be refused"));
        assert_eq!(err.field, field, "{v}");
        // The message never echoes the value (it is personal data).
        assert!(!err.message.contains("02139"), "{}", err.message);
    }
}

#[test]
fn unknown_fields_are_refused() {
    let mut b = body(valid());
    b.insert("max_attempt".into(), json!(2));
    let err = NewReminder::parse(&b, &defaults()).unwrap_err();
    assert_eq!(err.field, "max_attempt");
}

#[test]
fn e164_accepts_real_numbers() {
    for n in ["+14155550100", "+442071838750", "+4930901820", "+6831234"] {
        assert!(PhoneNumber::parse(n).is_ok(), "{n}");
    }
}

#[test]
fn cancel_follows_the_table() {
    let now = Utc::now();
    let mut r = NewReminder::parse(&body(valid()), &defaults())
        .unwrap()
        .into_reminder(ReminderId::new(), now);
    for (status, expect) in [
        (Status::Pending, Some(true)),
        (Status::Failed, Some(true)),
        (Status::Cancelled, Some(false)),
        (Status::InProgress, None),
        (Status::Processing, None),
        (Status::Completed, None),
    ] {
        r.status = status;
        match (cancel(&r, now), expect) {
            (Ok(Some(c)), Some(true)) => {
                let u = c.reminder.expect("cancel changes the reminder");
                assert_eq!(u.status, Status::Cancelled);
                assert_eq!(c.expect_status, status);
                assert_eq!(u.next_attempt_at, None);
            }
            (Ok(None), Some(false)) => {}
            (Err(refusal), None) => assert_eq!(refusal.status, status),
            (got, _) => panic!("{status}: unexpected {got:?}"),
        }
    }
}

#[test]
fn room_names_parse_back_and_strangers_do_not() {
    let id = ReminderId::new();
    assert_eq!(parse_room_name(&room_name(id, 3)), Some((id, 3)));
    for other in [
        "reminder-",
        "reminder-xyz-1",
        "lobby",
        &format!("reminder-{id}-0"),
        &format!("reminder-{id}-01"),
        &format!("reminder-{id}-+1"),
        &format!("reminder-{}-1", id.to_string().to_uppercase()),
        &format!("Reminder-{id}-1"),
    ] {
        assert_eq!(parse_room_name(other), None, "{other}");
    }
}

#[test]
fn room_names_follow_the_spec() {
    let id = ReminderId::parse("0190f1f4-7c1e-7a4b-9a55-6c1f0f0e0d0c").unwrap();
    assert_eq!(
        room_name(id, 2),
        "reminder-0190f1f4-7c1e-7a4b-9a55-6c1f0f0e0d0c-2"
    );
}
