//! `duecall import --payments` as a user runs it: the real binary, a clean
//! environment, a temp dir, on both databases. Good rows are recorded and
//! the reminders read the sums (a covered debt cancels its reminder as
//! `paid`); bad rows are refused by line and field, never echoing a value; a
//! re-run records nothing new for rows with a reference; a bad header
//! records nothing and fails before the database is opened.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{Backend, TestDb};
use duecall::domain::{Reminder, ReminderId, Status};
use duecall::store::Store;

/// Run `duecall import <args…>` in `dir` with only `DATABASE_URL` set.
async fn duecall_import(dir: &Path, args: &[&str], url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_duecall"));
    cmd.arg("import").args(args);
    // A clean environment, in a directory with no .env: only what the test says.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("import finishes")
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8 stderr")
}

/// The row reports on stderr (progress lines left out).
fn reports(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("line "))
        .map(str::to_owned)
        .collect()
}

/// Four reminders owing 1000, 1000, 500 and 2000, imported as a user would.
const REMINDERS: &str =
    "customer_name,phone_number,amount_due_minor,currency,due_date,external_id\n\
     Ada Lovelace,+14155550140,1000,USD,2026-12-01,inv-1\n\
     Grace Hopper,+14155550141,1000,USD,2026-12-01,inv-2\n\
     Alan Turing,+14155550142,500,USD,2026-12-01,inv-3\n\
     Edsger Dijkstra,+14155550143,2000,USD,2026-12-01,inv-4\n";

async fn by_external_id(store: &dyn Store, id: &str) -> Reminder {
    store
        .get_reminder_by_external_id(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is stored"))
}

/// What stderr must report, in order: each line's start (line, then field).
const REPORTS: &[&str] = &[
    "line 6: amount_minor: must be a whole, positive number of minor units",
    "line 7: external_id: no reminder has this external_id",
    "line 8: reminder_id: no reminder has this id",
    "line 9: external_id: must be empty when reminder_id is given",
    "line 10: reminder_id: is required (or external_id)",
    "line 11: paid_at: must be an RFC 3339 time",
    "line 12: reference: already recorded for this reminder with another amount or time (payment ",
    "line 13: paid_at: is in the future",
    "line 14: amount_minor: must be a whole, positive number of minor units",
    "line 15: 3 cells, but the header has 5 columns",
];

/// Cell values of the bad rows: none may be echoed.
const NEVER_ECHOED: &[&str] = &["12.50", "inv-nope", "yesterday", "tx-", "2099-01-01"];

fn assert_reports(out: &Output, unknown_id: &str) {
    let got = reports(out);
    assert_eq!(got.len(), REPORTS.len(), "{got:#?}");
    for (got, want) in got.iter().zip(REPORTS) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    let err = stderr(out);
    for value in NEVER_ECHOED.iter().chain([&unknown_id]) {
        assert!(!err.contains(value), "{value} echoed: {err}");
    }
}

async fn payments_recorded_and_refused(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let reminders = dir.path().join("reminders.csv");
    std::fs::write(&reminders, REMINDERS).unwrap();
    let out = duecall_import(dir.path(), &[reminders.to_str().unwrap()], url).await;
    assert!(out.status.success(), "{out:?}");

    let store = duecall::store::connect(url, 2).await.unwrap();
    let two = by_external_id(&*store, "inv-2").await.id.to_string();
    let unknown = ReminderId::new().to_string();
    // Line numbers are the file's; both id columns, each row filling one.
    let file = dir.path().join("payments.csv");
    std::fs::write(
        &file,
        format!(
            "reminder_id,external_id,amount_minor,paid_at,reference\n\
             ,inv-1,400,2026-11-20T10:00:00Z,tx-1\n\
             ,inv-1,600,,tx-2\n\
             {two},,250,,tx-3\n\
             ,inv-3, 100 ,,\n\
             ,inv-1,12.50,,tx-4\n\
             ,inv-nope,100,,tx-5\n\
             {unknown},,100,,tx-6\n\
             {two},inv-2,100,,tx-7\n\
             ,,100,,tx-8\n\
             ,inv-2,100,yesterday,tx-9\n\
             ,inv-1,999,,tx-1\n\
             ,inv-4,100,2099-01-01T00:00:00Z,tx-10\n\
             ,inv-2,0,,tx-11\n\
             ,inv-4,100\n\
             \n\
             ,inv-1,400,,tx-1\n"
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let out = duecall_import(dir.path(), &["--payments", path], url).await;
    assert!(out.status.success(), "refused rows still exit 0: {out:?}");
    assert_eq!(
        stdout(&out),
        "recorded 4, already there 1, refused 10 (of 15 rows)\n\
         note: 1 recorded row has no reference: importing this file again records it again \
         (only rows with a reference are recorded once)\n"
    );
    assert_reports(&out, &unknown);
    // Not a terminal: plain progress lines, the last one at 100%.
    let err = stderr(&out);
    assert!(err.contains("importing 15 rows from "), "{err}");
    assert!(err.contains("progress: 15/15 rows (100%)\n"), "{err}");
    assert!(!err.contains('\r'), "{err}");

    // The sums, and the settlement: inv-1's payments cover its debt.
    let one = by_external_id(&*store, "inv-1").await;
    assert_eq!(one.amount_paid_minor, 1000);
    assert_eq!(one.status, Status::Cancelled);
    assert_eq!(one.skip_reason.as_deref(), Some("paid"));
    let paid = store.list_payments(one.id).await.unwrap();
    assert_eq!(paid.len(), 2, "{paid:#?}");
    assert_eq!(paid[0].reference.as_deref(), Some("tx-1"));
    assert_eq!(paid[0].amount_minor, 400, "the first tx-1 stays as it was");
    assert_eq!(paid[0].paid_at, common::t("2026-11-20T10:00:00Z"));
    let grace = by_external_id(&*store, "inv-2").await;
    assert_eq!(
        (grace.amount_paid_minor, grace.status),
        (250, Status::Pending)
    );
    let alan = by_external_id(&*store, "inv-3").await;
    assert_eq!(
        (alan.amount_paid_minor, alan.status),
        (100, Status::Pending)
    );
    let edsger = by_external_id(&*store, "inv-4").await;
    assert_eq!(edsger.amount_paid_minor, 0, "its rows were all refused");

    // Again: every row with a reference is there already; the one without is
    // a new payment again, as the note said.
    let again = duecall_import(dir.path(), &["--payments", path], url).await;
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        stdout(&again),
        "recorded 1, already there 4, refused 10 (of 15 rows)\n\
         note: 1 recorded row has no reference: importing this file again records it again \
         (only rows with a reference are recorded once)\n"
    );
    assert_reports(&again, &unknown);
    assert_eq!(store.list_payments(one.id).await.unwrap().len(), 2);
    assert_eq!(
        by_external_id(&*store, "inv-1").await.amount_paid_minor,
        1000
    );
    assert_eq!(
        by_external_id(&*store, "inv-2").await.amount_paid_minor,
        250
    );
    assert_eq!(
        by_external_id(&*store, "inv-3").await.amount_paid_minor,
        200
    );

    // A file that pays the rest of inv-2 by its external_id alone settles it.
    let rest = dir.path().join("rest.csv");
    std::fs::write(&rest, "amount_minor,external_id\n750,inv-2\n").unwrap();
    let out = duecall_import(dir.path(), &["--payments", rest.to_str().unwrap()], url).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "recorded 1, already there 0, refused 0 (of 1 row)\n\
         note: 1 recorded row has no reference: importing this file again records it again \
         (only rows with a reference are recorded once)\n"
    );
    let grace = by_external_id(&*store, "inv-2").await;
    assert_eq!(grace.amount_paid_minor, 1000);
    assert_eq!(
        (grace.status, grace.skip_reason.as_deref()),
        (Status::Cancelled, Some("paid"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_recorded_and_refused_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    payments_recorded_and_refused(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_recorded_and_refused_on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    payments_recorded_and_refused(&db.url).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_payments_pay_the_sample_reminders_once() {
    let dir = tempfile::tempdir().unwrap();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let url = format!("sqlite://{}", dir.path().join("duecall.db").display());
    let reminders = docs.join("sample-reminders.csv");
    let out = duecall_import(dir.path(), &[reminders.to_str().unwrap()], &url).await;
    assert!(out.status.success(), "{out:?}");
    let payments = docs.join("sample-payments.csv");
    let payments = payments.to_str().unwrap();

    let out = duecall_import(dir.path(), &["--payments", payments], &url).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "recorded 4, already there 0, refused 0 (of 4 rows)\n"
    );
    assert!(reports(&out).is_empty(), "{}", stderr(&out));
    let store = duecall::store::connect(&url, 2).await.unwrap();
    // Paid in full, in one payment or two: cancelled as paid; part paid: still waiting.
    for id in ["inv-1001", "inv-1002", "inv-1004"] {
        let r = by_external_id(&*store, id).await;
        assert_eq!(r.amount_paid_minor, r.amount_due_minor, "{id}");
        assert_eq!(
            (r.status, r.skip_reason.as_deref()),
            (Status::Cancelled, Some("paid")),
            "{id}"
        );
    }
    let two = by_external_id(&*store, "inv-1002").await;
    let paid = store.list_payments(two.id).await.unwrap();
    assert_eq!(paid[0].paid_at, common::t("2026-11-27T20:05:00Z"));
    assert_eq!(
        paid[1].reference.as_deref(),
        Some("bank:2026-11-30/3, second half")
    );
    assert_eq!(
        by_external_id(&*store, "inv-1003").await.status,
        Status::Pending
    );

    let out = duecall_import(dir.path(), &["--payments", payments], &url).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "recorded 0, already there 4, refused 0 (of 4 rows)\n"
    );
    assert_eq!(store.list_payments(two.id).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_header_records_nothing_and_opens_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("duecall.db");
    let url = format!("sqlite://{}", db_file.display());
    for (name, text, why) in [
        (
            "unknown.csv",
            "external_id,amount,reference\ninv-1,100,tx-1\n",
            "unknown.csv: unknown column \"amount\"",
        ),
        (
            "no-amount.csv",
            "external_id,paid_at,reference\ninv-1,,tx-1\n",
            "no-amount.csv: missing column \"amount_minor\"",
        ),
        (
            "no-reminder.csv",
            "amount_minor,reference\n100,tx-1\n",
            "no-reminder.csv: missing column \"reminder_id\" or \"external_id\"",
        ),
        (
            "twice.csv",
            "external_id,amount_minor,external_id\ninv-1,100,inv-1\n",
            "twice.csv: column \"external_id\" appears twice",
        ),
        ("empty.csv", "", "empty.csv: the file is empty"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = duecall_import(dir.path(), &["--payments", file.to_str().unwrap()], &url).await;
        assert!(!out.status.success(), "{name}: {out:?}");
        assert_eq!(stdout(&out), "", "{name}");
        let err = stderr(&out);
        assert!(err.contains(why), "{name}: {err}");
        assert!(err.contains("nothing was imported"), "{name}: {err}");
        // Refused as a whole: no row is reported, no value echoed.
        assert!(reports(&out).is_empty(), "{name}: {err}");
        assert!(!err.contains("tx-1"), "{name}: {err}");
    }
    // No such file.
    let out = duecall_import(dir.path(), &["--payments", "nowhere.csv"], &url).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr(&out).contains("cannot read nowhere.csv"), "{out:?}");
    // The database was never even opened.
    assert!(!db_file.exists());

    // A do-not-call list and payments at once is a usage error.
    let file = dir.path().join("unknown.csv");
    let out = duecall_import(
        dir.path(),
        &["--payments", "--suppressions", file.to_str().unwrap()],
        &url,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("cannot be used with"), "{out:?}");
    assert!(!db_file.exists());
}
