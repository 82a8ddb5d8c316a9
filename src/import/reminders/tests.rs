//! The reminders' import, row by row (the command itself: tests/import.rs).

use super::*;
use crate::domain::{Language, TimeZone};
use serde_json::json;

fn defaults() -> CreateDefaults {
    CreateDefaults {
        zone_policy: crate::domain::ZonePolicy::All,
        timezone: TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    }
}

fn record(cells: &[&str]) -> StringRecord {
    StringRecord::from(cells.to_vec())
}

#[test]
fn every_column_is_a_field_the_api_accepts() {
    // A row with every column filled in parses: COLUMNS holds no field the API would refuse.
    let cols = Columns::parse(&record(COLUMNS)).unwrap();
    let row = record(&[
        "Ada Lovelace",
        "+14155550100",
        "12345",
        "usd",
        "2026-12-01",
        "inv-1",
        "Europe/Berlin",
        "de",
        "2026-11-25T14:00:00Z",
        "5",
        r#"{"invoice": "1042"}"#,
        "acct-7",
        "us-ma",
        "ZIP code",
        " 02139 ",
    ]);
    let body = cols.body(&row).unwrap();
    assert_eq!(body["amount_due_minor"], json!(12345));
    assert_eq!(body["max_attempts"], json!(5));
    assert_eq!(
        body["metadata"],
        json!({"invoice": "1042", "verify": {"label": "ZIP code", "value": "02139"}})
    );
    let new = NewReminder::parse(&body, &defaults()).unwrap();
    assert_eq!(new.max_attempts, 5);
    assert_eq!(new.timezone.map(|t| t.name()), Some("Europe/Berlin"));
    assert_eq!(new.debt_ref.as_deref(), Some("acct-7"));
    assert_eq!(new.region.map(|r| r.to_string()).as_deref(), Some("US-MA"));
}

#[test]
fn required_columns_are_the_apis_required_fields() {
    for field in REQUIRED {
        let mut body = Map::new();
        for other in REQUIRED.iter().filter(|f| *f != field) {
            let v = match *other {
                "amount_due_minor" => json!(1),
                "phone_number" => json!("+14155550100"),
                "currency" => json!("USD"),
                "due_date" => json!("2026-12-01"),
                _ => json!("Ada"),
            };
            body.insert((*other).to_owned(), v);
        }
        let err = NewReminder::parse(&body, &defaults()).unwrap_err();
        assert_eq!(err.field, *field);
    }
}

#[test]
fn the_header_is_checked_and_the_culprit_named() {
    let err = |cells: &[&str]| Columns::parse(&record(cells)).unwrap_err();
    let ok = &REQUIRED.to_vec();
    assert!(Columns::parse(&record(ok)).is_ok());
    let mut unknown = ok.clone();
    unknown.push("phone");
    assert!(err(&unknown).starts_with("unknown column \"phone\""));
    let mut twice = ok.clone();
    twice.push("currency");
    assert!(err(&twice).contains("\"currency\" appears twice"));
    assert!(err(&ok[1..]).starts_with("missing column \"customer_name\""));
    let mut unnamed = ok.clone();
    unnamed.insert(2, "");
    assert_eq!(err(&unnamed), "column 3 of the header has no name");
    assert!(err(&[""]).starts_with("the file is empty"));
}

#[test]
fn cells_become_the_apis_json_types() {
    let cols = Columns::parse(&record(COLUMNS)).unwrap();
    let mut cells = vec![""; COLUMNS.len()];
    cells[0] = "Ada";
    cells[2] = "12.50";
    cells[5] = "1042";
    cells[9] = "three";
    let body = cols.body(&record(&cells)).unwrap();
    // Empty cells are absent fields; text where a number belongs stays text
    // (refused by the API's own rule); an external_id of digits stays a string.
    assert_eq!(
        Value::Object(body),
        json!({"customer_name": "Ada", "amount_due_minor": "12.50",
               "external_id": "1042", "max_attempts": "three"})
    );
    cells[10] = "{not json";
    match cols.body(&record(&cells)).unwrap_err() {
        RowError::Field(e) => assert_eq!(e.field, "metadata"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cols.body(&record(&["a", "b"])).unwrap_err().to_string(),
        "2 cells, but the header has 15 columns"
    );
}

#[test]
fn the_verify_columns_make_metadata_verify_both_or_neither() {
    let cols = Columns::parse(&record(&[
        "customer_name",
        "phone_number",
        "amount_due_minor",
        "currency",
        "due_date",
        "metadata",
        "verify_label",
        "verify_value",
    ]))
    .unwrap();
    let row = |metadata: &str, label: &str, value: &str| {
        record(&[
            "Ada",
            "+14155550100",
            "1",
            "USD",
            "2026-12-01",
            metadata,
            label,
            value,
        ])
    };
    let field_of = |r: StringRecord| match cols.body(&r) {
        Err(RowError::Field(e)) => e.field,
        other => panic!("{other:?}"),
    };
    // Alone, without a metadata cell: a metadata object of its own.
    let body = cols.body(&row("", "Birth year", "1815")).unwrap();
    assert_eq!(
        body["metadata"],
        json!({"verify": {"label": "Birth year", "value": "1815"}})
    );
    assert!(body.get("verify_label").is_none() && body.get("verify_value").is_none());
    let new = NewReminder::parse(&body, &defaults()).unwrap();
    assert_eq!(new.metadata["verify"]["value"], "1815");
    // Neither: no metadata at all.
    assert!(!cols
        .body(&row("", "", ""))
        .unwrap()
        .contains_key("metadata"));
    // One without the other names the missing one.
    assert_eq!(field_of(row("", "ZIP code", "")), "verify_value");
    assert_eq!(field_of(row("", "", "02139")), "verify_label");
    // Given twice is refused rather than one silently winning.
    assert_eq!(
        field_of(row(
            r#"{"verify": {"label": "a", "value": "b"}}"#,
            "ZIP code",
            "02139"
        )),
        "metadata.verify"
    );
    // Merged with the other metadata of the row.
    let body = cols
        .body(&row(r#"{"invoice": "7"}"#, "ZIP code", "02139"))
        .unwrap();
    assert_eq!(
        body["metadata"],
        json!({"invoice": "7", "verify": {"label": "ZIP code", "value": "02139"}})
    );
    // A metadata cell that is not an object still gets the API's refusal.
    let body = cols.body(&row("[1]", "ZIP code", "02139")).unwrap();
    assert_eq!(
        NewReminder::parse(&body, &defaults()).unwrap_err().field,
        "metadata"
    );
    // A bad value is the API's refusal, naming the field inside metadata.
    let long = "9".repeat(crate::domain::MAX_VERIFY_VALUE_CHARS + 1);
    let body = cols.body(&row("", "ZIP code", &long)).unwrap();
    let err = NewReminder::parse(&body, &defaults()).unwrap_err();
    assert_eq!(err.field, "metadata.verify.value");
}

#[test]
fn rows_are_counted_and_a_bom_is_ignored() {
    let data = "\u{feff}customer_name,phone_number,amount_due_minor,currency,due_date\n\
                a,b,1,USD,2026-12-01\n\
                \n\
                ,,,,\n\
                \"multi\nline\",b,1,USD,2026-12-01\n\
                short\n";
    let file = CsvFile::parse(data.as_bytes()).unwrap();
    assert_eq!(file.columns().names()[0], "customer_name");
    assert_eq!(file.rows(), 3);
}

#[test]
fn the_summary_reads_plainly() {
    let mut s = Summary {
        rows: 12,
        imported: 7,
        already_there: 2,
        refused: 3,
        imported_without_external_id: 0,
    };
    assert_eq!(
        s.to_string(),
        "imported 7, already there 2, refused 3 (of 12 rows)"
    );
    s.imported_without_external_id = 2;
    assert!(s
        .to_string()
        .ends_with("\nnote: 2 imported rows have no external_id: importing this file again creates them again (only rows with an external_id are imported once)"));
}
