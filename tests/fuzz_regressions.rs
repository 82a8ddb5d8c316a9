//! The webhook fuzz target's regressions, replayed on stable without libFuzzer:
//! every file in fuzz/regressions/webhook/ (crashes `scripts/fuzz` found, and
//! hand-made nasty inputs) and the seed corpus go through the very checks the
//! fuzzer asserts, fuzz/webhook_check.rs (its docs give the input format and
//! the invariants).

#[path = "../fuzz/webhook_check.rs"]
mod webhook_check;

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use webhook_check::{check, Checked};

/// The files of `dir` (below the crate root) whose names pass `keep`, sorted.
fn files(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    files.sort();
    files
}

/// Check every file, then fail naming each one that broke an invariant.
fn replay(files: &[PathBuf]) -> Vec<Checked> {
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for path in files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            Ok(checked) => results.push(checked),
            Err(cause) => {
                let message = cause
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| cause.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failures.push(format!("{}: {message}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} input(s) broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
    results
}

#[test]
fn fuzz_regressions_hold() {
    let files = files("fuzz/regressions/webhook", |_| true);
    assert!(
        files.len() >= 8,
        "the hand-made inputs are missing: {files:?}"
    );
    let results = replay(&files);
    assert!(
        results.iter().any(|c| c.verified),
        "no regression reaches past the verifier"
    );
}

#[test]
fn seed_corpus_holds() {
    // Only the kept seeds: what libFuzzer adds to the directory is local (gitignored).
    let files = files("fuzz/corpus/webhook", |name| name.starts_with("seed-"));
    assert!(files.len() >= 5, "the seed corpus is missing: {files:?}");
    let results = replay(&files);
    assert!(
        results.iter().any(|c| c.verified && c.parsed),
        "no seed verifies and parses"
    );
    assert!(results.iter().any(|c| !c.verified), "every seed verifies");
}

/// The harness itself: a broken input format would fuzz nothing and say nothing.
#[test]
fn harness_reaches_the_parser_and_refuses_the_other_key() {
    assert_eq!(webhook_check::BASE_TEXT.parse(), Ok(webhook_check::BASE));
    let body =
        br#"{"event_type":"call_answered","reminder_id":"6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10"}"#;
    let signed = |signature: &str, now: &str| {
        let mut input = format!("msg_1\n1795515300\n{signature}\n{now}\n").into_bytes();
        input.extend_from_slice(body);
        check(&input)
    };
    let ok = Checked {
        verified: true,
        parsed: true,
    };
    let refused = Checked {
        verified: false,
        parsed: true,
    };
    assert_eq!(check(body), ok, "the body-only form is signed with {{sig}}");
    assert_eq!(signed("{sig}", "0"), ok);
    assert_eq!(signed("v2,abc {other} {sig}", "-300"), ok);
    assert_eq!(signed("{other}", "0"), refused);
    assert_eq!(signed("{sig}", "301"), refused);
    assert_eq!(signed("", "0"), refused);
}
