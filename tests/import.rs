//! `duecall import` as a user runs it: the real binary, a clean environment, a
//! temp dir. Good rows are imported, bad ones reported by line and field, a
//! re-run imports nothing new for rows with an external_id; a bad header or a
//! missing file imports nothing and fails.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{Backend, TestDb};
use duecall::domain::Reminder;
use duecall::store::{ListQuery, Store};
use serde_json::json;

const HEADER: &str = "customer_name,phone_number,amount_due_minor,currency,due_date,external_id,\
                      timezone,language,scheduled_for,max_attempts,metadata";

/// Good rows, bad rows, a duplicate, rows without external_id; the line numbers
/// in the comments are the file's (line 3's quoted metadata runs onto line 4).
fn mixed_csv() -> Vec<u8> {
    let mut csv = Vec::new();
    for line in [
        HEADER.as_bytes(),                                            // 1
        b"Ada Lovelace,+14155550120,12345,usd,2026-12-01,inv-1,,,,,", // 2 good
        b"\"Lovelace, Ada\",+442071838750,500,GBP,2026-12-02,inv-2,Europe/London,en-GB,\
          2026-11-25T14:00:00Z,5,\"{\"\"note\"\": \"\"late, twice\"\",", // 3 good …
        b"\"\"invoice\"\": \"\"1042\"\"}\"",                          // 4 … its metadata
        b"Bad Phone,4155550199,100,USD,2026-12-01,inv-3,,,,,",        // 5 phone
        b"Bad Currency,+14155550101,100,XYZ,2026-12-01,inv-4,,,,,",   // 6 currency
        b",+14155550102,100,USD,2026-12-01,inv-5,,,,,",               // 7 no name
        b"Bad Amount,+14155550103,12.50,USD,2026-12-01,inv-6,,,,,",   // 8 amount
        b"Bad Metadata,+14155550104,100,USD,2026-12-01,inv-7,,,,,{not json}", // 9 metadata
        b"Short Row,+14155550105,100,USD",                            // 10 4 cells
        b"Grace Hopper,+14155550106,0,EUR,2026-12-03,inv-8,,,,2,{}",  // 11 good
        b"Ada Again,+14155550107,999,USD,2026-12-04,inv-1,,,,,",      // 12 duplicate of 2
        b"No Id One,+14155550108,100,USD,2026-12-05,,,,,,",           // 13 good, no id
        b"",                                                          // 14 blank
        b"No Id Two,+14155550109,200,CAD,2026-12-06,,America/Toronto,fr-CA,,,", // 15 good, no id
        b"Bad Max,+14155550110,100,USD,2026-12-01,inv-9,,,,11,",      // 16 max_attempts
        b",,,,,,,,,,",                                                // 17 all empty
        b"Bad Date,+14155550111,100,USD,01/12/2026,inv-10,,,,,",      // 18 due_date
        b"Jos\xe9 Latin,+14155550112,100,USD,2026-12-01,inv-11,,,,,", // 19 Latin-1
        b"Too Many,+14155550113,100,USD,2026-12-01,inv-12,,,,,,extra", // 20 12 cells
    ] {
        csv.extend_from_slice(line);
        csv.push(b'\n');
    }
    csv
}

/// Every phone number of `mixed_csv`: none may appear in any output.
const PHONES: &[&str] = &[
    "+14155550120",
    "+442071838750",
    "4155550199",
    "+14155550101",
    "+14155550106",
    "+14155550108",
    "+14155550113",
];

/// What stderr must report, in order: each line's start (line, then field or reason).
const REPORTS: &[&str] = &[
    "line 5: phone_number: must be an E.164 number",
    "line 6: currency: must be an ISO 4217 currency code",
    "line 7: customer_name: is required",
    "line 8: amount_due_minor: must be a whole, non-negative number of minor units",
    "line 9: metadata: is not valid JSON (key must be a string at line 1 column 2 of the cell)",
    "line 10: 4 cells, but the header has 11 columns",
    "line 12: duplicate of line 2 (same external_id): skipped, the first is kept",
    "line 16: max_attempts: must be a whole number from 1 to 10",
    "line 18: due_date: must be a date like 2026-12-01",
    "line 19: is not UTF-8 text",
    "line 20: 12 cells, but the header has 11 columns",
];

const NOTE: &str = "note: 2 imported rows have no external_id: importing this file again \
                    creates them again (only rows with an external_id are imported once)";

async fn import(dir: &Path, file: &Path, vars: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_duecall"));
    cmd.arg("import").arg(file);
    // A clean environment, in a directory with no .env: only what the test says.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("import finishes")
        .unwrap();
    // Both streams are text; neither ever carries a phone number from the file.
    for text in [&out.stdout, &out.stderr] {
        let text = String::from_utf8(text.clone()).expect("UTF-8 output");
        for phone in PHONES {
            assert!(!text.contains(phone), "{phone} in output: {text}");
        }
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The row reports on stderr (progress and log lines left out).
fn reports(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("line "))
        .map(str::to_owned)
        .collect()
}

fn assert_reports(out: &Output) {
    let got = reports(out);
    assert_eq!(got.len(), REPORTS.len(), "{got:#?}");
    for (got, want) in got.iter().zip(REPORTS) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
}

async fn all_reminders(store: &dyn Store) -> Vec<Reminder> {
    let page = store
        .list_reminders(&ListQuery {
            status: None,
            limit: 200,
            after: None,
            search: None,
        })
        .await
        .unwrap();
    assert!(page.next.is_none());
    page.reminders
}

fn by_external_id<'a>(all: &'a [Reminder], id: &str) -> &'a Reminder {
    let found: Vec<_> = all
        .iter()
        .filter(|r| r.external_id.as_deref() == Some(id))
        .collect();
    assert_eq!(found.len(), 1, "one reminder with external_id {id}");
    found[0]
}

/// The whole story on one database: import a mixed file, check counts, reports
/// and rows, import it again.
async fn good_and_bad_rows(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reminders.csv");
    std::fs::write(&file, mixed_csv()).unwrap();
    let vars = [
        ("DATABASE_URL", url),
        // The configured defaults fill the empty cells, as in the API.
        ("DEFAULT_TIMEZONE", "Europe/Berlin"),
        ("DEFAULT_MAX_ATTEMPTS", "4"),
    ];

    let out = import(dir.path(), &file, &vars).await;
    assert!(out.status.success(), "refused rows still exit 0: {out:?}");
    assert_eq!(
        stdout(&out),
        format!("imported 5, already there 1, refused 10 (of 16 rows)\n{NOTE}\n")
    );
    assert_reports(&out);
    // Not a terminal: plain progress lines, the last one at 100%.
    let err = stderr(&out);
    assert!(err.contains("importing 16 rows from "), "{err}");
    assert!(err.contains("progress: 16/16 rows (100%)\n"), "{err}");
    assert!(!err.contains('\r'), "{err}");

    let store = duecall::store::connect(url, 2).await.unwrap();
    let all = all_reminders(&*store).await;
    assert_eq!(all.len(), 5, "{all:#?}");

    // The first row with inv-1 won; empty cells took the configured defaults.
    let ada = by_external_id(&all, "inv-1");
    assert_eq!(ada.customer_name, "Ada Lovelace");
    assert_eq!(ada.phone_number.as_str(), "+14155550120");
    assert_eq!(ada.amount_due_minor, 12345);
    assert_eq!(ada.currency.as_str(), "USD");
    assert_eq!(ada.due_date.to_string(), "2026-12-01");
    // No timezone given: the number's zone; DEFAULT_TIMEZONE is the last resort.
    assert_eq!(ada.timezone, None);
    assert_eq!(ada.primary_zone().name(), "America/Los_Angeles");
    assert_eq!(ada.language.as_str(), "en");
    assert_eq!(ada.max_attempts, 4);
    assert!(ada.metadata.is_empty());

    // The row whose quoted cells hold commas and a line break.
    let quoted = by_external_id(&all, "inv-2");
    assert_eq!(quoted.customer_name, "Lovelace, Ada");
    assert_eq!(quoted.primary_zone().name(), "Europe/London");
    assert_eq!(quoted.language.as_str(), "en-GB");
    assert_eq!(quoted.max_attempts, 5);
    assert_eq!(
        quoted.next_attempt_at,
        Some(common::t("2026-11-25T14:00:00Z"))
    );
    assert_eq!(
        serde_json::Value::Object(quoted.metadata.clone()),
        json!({"note": "late, twice", "invoice": "1042"})
    );

    let grace = by_external_id(&all, "inv-8");
    assert_eq!((grace.amount_due_minor, grace.max_attempts), (0, 2));

    let no_id: Vec<_> = all.iter().filter(|r| r.external_id.is_none()).collect();
    assert_eq!(no_id.len(), 2);
    let two = no_id
        .iter()
        .find(|r| r.customer_name == "No Id Two")
        .unwrap();
    assert_eq!(
        (
            two.currency.as_str(),
            two.language.as_str(),
            two.primary_zone().name()
        ),
        ("CAD", "fr-CA", "America/Toronto")
    );

    // Again: nothing with an external_id is imported twice; the two rows
    // without one are new reminders again, as the note said.
    let again = import(dir.path(), &file, &vars).await;
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        stdout(&again),
        format!("imported 2, already there 4, refused 10 (of 16 rows)\n{NOTE}\n")
    );
    assert_reports(&again);
    let after = all_reminders(&*store).await;
    assert_eq!(after.len(), 7);
    for id in ["inv-1", "inv-2", "inv-8"] {
        assert_eq!(by_external_id(&after, id).id, by_external_id(&all, id).id);
    }
    assert_eq!(after.iter().filter(|r| r.external_id.is_none()).count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_rows_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    good_and_bad_rows(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_rows_on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    good_and_bad_rows(&db.url).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_file_imports_whole_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sample-reminders.csv");
    let url = format!("sqlite://{}", dir.path().join("duecall.db").display());
    let vars = [("DATABASE_URL", url.as_str())];

    let out = import(dir.path(), &sample, &vars).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "imported 12, already there 0, refused 0 (of 12 rows)\n"
    );
    assert!(reports(&out).is_empty(), "{}", stderr(&out));

    let out = import(dir.path(), &sample, &vars).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "imported 0, already there 12, refused 0 (of 12 rows)\n"
    );
    let store = duecall::store::connect(&url, 2).await.unwrap();
    assert_eq!(all_reminders(&*store).await.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_header_or_a_missing_file_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("duecall.db");
    let url = format!("sqlite://{}", db_file.display());
    let vars = [("DATABASE_URL", url.as_str())];
    let good_row = "Ada Lovelace,+14155550120,12345,USD,2026-12-01\n";

    // A misspelt column: the whole file is refused, naming it.
    let file = dir.path().join("unknown.csv");
    std::fs::write(
        &file,
        format!("customer_name,phone,amount_due_minor,currency,due_date\n{good_row}"),
    )
    .unwrap();
    let out = import(dir.path(), &file, &vars).await;
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains("unknown.csv: unknown column \"phone\""),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");

    // A required column missing.
    let file = dir.path().join("missing.csv");
    std::fs::write(
        &file,
        "customer_name,phone_number,amount_due_minor,currency\nAda,+14155550120,1,USD\n",
    )
    .unwrap();
    let out = import(dir.path(), &file, &vars).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("missing column \"due_date\""),
        "{}",
        stderr(&out)
    );

    // No such file.
    let out = import(dir.path(), &dir.path().join("nowhere.csv"), &vars).await;
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains("cannot read ") && err.contains("nowhere.csv"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");

    // The database was never even opened.
    assert!(!db_file.exists());

    // The same good row under a correct header is taken.
    let file = dir.path().join("ok.csv");
    std::fs::write(
        &file,
        format!("customer_name,phone_number,amount_due_minor,currency,due_date\n{good_row}"),
    )
    .unwrap();
    let out = import(dir.path(), &file, &vars).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "imported 1, already there 0, refused 0 (of 1 row)\nnote: 1 imported row has no \
         external_id: importing this file again creates it again (only rows with an external_id \
         are imported once)\n"
    );
}

/// `duecall import --suppressions`: a do-not-call list on one database.
async fn a_do_not_call_list(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("DATABASE_URL", url)];
    let run = |file: std::path::PathBuf| {
        let dir = dir.path().to_owned();
        async move {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_duecall"));
            cmd.arg("import").arg("--suppressions").arg(&file);
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("DATABASE_URL", vars[0].1)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let out = cmd.output().await.unwrap();
            for text in [&out.stdout, &out.stderr] {
                let text = String::from_utf8_lossy(text);
                for phone in ["+14155550130", "+14155550131", "4155550132"] {
                    assert!(!text.contains(phone), "{phone} in output: {text}");
                }
            }
            out
        }
    };

    // One bad row refuses the whole file, every refusal reported by line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "phone_number,reason\n+14155550130,asked by letter\n4155550132,\n+14155550131,\"a\nb\"\n",
    )
    .unwrap();
    let out = run(bad).await;
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "");
    let got = reports(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("line 3: phone_number: must be an E.164 number"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("line 4: reason: must not contain control characters"),
        "{got:?}"
    );
    assert!(
        stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    let store = duecall::store::connect(url, 2).await.unwrap();
    let n = |s: &str| duecall::domain::PhoneNumber::parse(s).unwrap();
    assert!(!store.is_suppressed(&n("+14155550130")).await.unwrap());

    // A good one: added, a repeat in the file counted as already there.
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "reason,phone_number\nasked by letter,+14155550130\n,+14155550131\nagain,+14155550130\n",
    )
    .unwrap();
    let out = run(good.clone()).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "added 2, already there 1 (of 3 rows)\n");
    assert_eq!(
        reports(&out),
        ["line 4: duplicate of line 2 (same number): skipped"]
    );
    let (entry, history) = store.get_suppression(&n("+14155550131")).await.unwrap();
    assert_eq!(entry.unwrap().reason, "do_not_call_list");
    assert_eq!(history.len(), 1);
    assert_eq!(
        store
            .get_suppression(&n("+14155550130"))
            .await
            .unwrap()
            .0
            .unwrap()
            .reason,
        "asked by letter"
    );

    // Again: nothing new, no audit rows.
    let out = run(good).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "added 0, already there 3 (of 3 rows)\n");
    assert_eq!(
        store
            .get_suppression(&n("+14155550130"))
            .await
            .unwrap()
            .1
            .len(),
        1
    );

    // A reminders import for a listed number stores it cancelled (suppressed).
    let reminders = dir.path().join("reminders.csv");
    std::fs::write(
        &reminders,
        "customer_name,phone_number,amount_due_minor,currency,due_date,external_id\n\
         Ada,+14155550130,100,USD,2026-12-01,inv-s1\nBob,+14155550199,100,USD,2026-12-01,inv-s2\n",
    )
    .unwrap();
    let out = import(dir.path(), &reminders, &vars).await;
    assert!(out.status.success(), "{out:?}");
    let all = all_reminders(&*store).await;
    let ada = by_external_id(&all, "inv-s1");
    assert_eq!(ada.status, duecall::domain::Status::Cancelled);
    assert_eq!(ada.skip_reason.as_deref(), Some("suppressed"));
    assert_eq!(
        by_external_id(&all, "inv-s2").status,
        duecall::domain::Status::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_do_not_call_list_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    a_do_not_call_list(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_do_not_call_list_on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    a_do_not_call_list(&db.url).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debt_ref_and_region_columns_import_as_the_api_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("debts.csv");
    std::fs::write(
        &file,
        "external_id,customer_name,phone_number,amount_due_minor,currency,due_date,debt_ref,region\n\
         d-1,Ada Lovelace,+16175550120,100,USD,2026-12-01,acct-7,us-ma\n\
         d-2,Ada Lovelace,+16175550120,200,USD,2026-12-02,acct-7,\n\
         d-3,Grace Hopper,+16175550121,300,USD,2026-12-03,,\n\
         d-4,Bad Region,+16175550122,400,USD,2026-12-04,,Massachusetts\n",
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("duecall.db").display());
    let out = import(dir.path(), &file, &[("DATABASE_URL", url.as_str())]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "imported 3, already there 0, refused 1 (of 4 rows)\n"
    );
    assert_eq!(
        reports(&out),
        ["line 5: region: must be an ISO 3166-2 subdivision code, like US-MA or CA-QC"]
    );
    let store = duecall::store::connect(&url, 2).await.unwrap();
    let all = all_reminders(&*store).await;
    let one = by_external_id(&all, "d-1");
    assert_eq!(
        (
            one.debt_ref.as_str(),
            one.region.as_ref().map(|r| r.as_str())
        ),
        ("acct-7", Some("US-MA"))
    );
    let two = by_external_id(&all, "d-2");
    assert_eq!(
        (two.debt_ref.as_str(), two.region.as_ref()),
        ("acct-7", None)
    );
    // No debt_ref: the external id (SPEC §7).
    assert_eq!(by_external_id(&all, "d-3").debt_ref, "d-3");
}
