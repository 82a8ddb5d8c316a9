//! `phone_zones::zones_for` against every case of spec/vectors/phone_zones.json: what the PyPI
//! package `phonenumbers` itself answered for each number (scripts/gen_phone_zones.py).

use duecall::phone_zones::{self, zones_for};
use serde_json::Value;

fn vectors() -> (Value, Vec<Value>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/vectors/phone_zones.json");
    let text = std::fs::read_to_string(path).expect("spec/vectors/phone_zones.json");
    let mut doc: Value = serde_json::from_str(&text).expect("vectors are JSON");
    let cases = doc["cases"].as_array_mut().expect("cases").split_off(0);
    (doc["about"].take(), cases)
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("a list of zones")
        .iter()
        .map(|z| z.as_str().expect("a zone name"))
        .collect()
}

#[test]
fn every_vector_answers_what_phonenumbers_answered() {
    let (about, cases) = vectors();
    assert_eq!(
        about["source"],
        phone_zones::SOURCE,
        "vectors and table from one version"
    );
    assert_eq!(about["count"], cases.len());
    assert!(cases.len() > 3000, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let number = case["number"].as_str().expect("number");
        let got: Vec<&str> = zones_for(number).iter().map(|z| z.name()).collect();
        let want = names(&case["zones"]);
        if got != want {
            wrong.push(format!("{number}: got {got:?}, phonenumbers {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_vectors_cover_what_they_claim() {
    let (_, cases) = vectors();
    let numbers: Vec<&str> = cases
        .iter()
        .map(|c| c["number"].as_str().unwrap())
        .collect();
    // Every NANP area code of the table has a vector.
    let mut area_codes: Vec<&str> = numbers
        .iter()
        .filter(|n| n.starts_with("+1"))
        .map(|n| &n[2..5])
        .collect();
    area_codes.sort_unstable();
    area_codes.dedup();
    assert!(area_codes.len() > 300, "{} area codes", area_codes.len());
    // Many countries, unknown numbers, and both extreme lengths.
    let mut ccs: Vec<&str> = numbers.iter().map(|n| &n[1..3]).collect();
    ccs.sort_unstable();
    ccs.dedup();
    assert!(ccs.len() > 80, "{} two-digit country prefixes", ccs.len());
    assert!(cases.iter().any(|c| names(&c["zones"]).is_empty()));
    assert!(numbers.iter().any(|n| n.len() == 8));
    assert!(numbers.iter().any(|n| n.len() == 16));
    for cc in ["+1", "+7", "+61", "+55", "+52", "+62"] {
        let multi = cases
            .iter()
            .any(|c| c["number"].as_str().unwrap().starts_with(cc) && names(&c["zones"]).len() > 1);
        assert!(multi, "a multi-zone answer under {cc}");
    }
}
