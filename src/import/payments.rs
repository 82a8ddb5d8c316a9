//! `duecall import --payments payments.csv`: record payments from a CSV
//! file, as if each row had been sent to `POST /api/reminders/{id}/payments`
//! (SPEC §8). (The file's form, the refusals' form, progress and exit
//! status: see [the module](super).)
//!
//! # The columns
//!
//! [`COLUMNS`], in any order:
//!
//! - `reminder_id` (duecall's id) or `external_id` (the business system's):
//!   which reminder was paid. The header has one of them or both; each row
//!   fills **exactly one** (a file can mix reminders known either way).
//! - `amount_minor` (required): minor units, 1 to 10^15.
//! - `paid_at` (optional, RFC 3339): when it was paid; an empty cell is the
//!   time it is recorded, as in the API.
//! - `reference` (optional): the payer's or processor's reference.
//!
//! # One validation
//!
//! Each row becomes the body the API would have received (`amount_minor` a
//! number when its cell is an integer, a string otherwise, so the refusal is
//! the API's own) and goes through [`NewPayment::parse`] and
//! [`NewPayment::check_paid_at`], as the API does; it is then stored with the
//! store's `record_payment`, in one transaction with the reminder's new sum
//! and the settlement it makes: a waiting reminder its payments now cover is
//! cancelled as `paid`, as through the API.
//!
//! # Bad rows
//!
//! A bad row is reported on stderr (`line N: <field>: <reason>`) and
//! skipped; the good rows are recorded. Besides the API's refusals of a
//! field: a row naming no reminder, or two (both id columns filled), or a
//! reminder that does not exist; and a row whose `reference` was recorded
//! already for its reminder with another amount or time (the API's 409
//! `reference_reused`, with the same reason).
//!
//! # Idempotency
//!
//! Payments are idempotent on `reference` per reminder: a row whose
//! reference is recorded already, with the same amount (and time, when the
//! row gives one), counts as "already there" and changes nothing. Importing
//! the same file twice therefore records nothing new — **for rows with a
//! `reference` only**: a row without one is a new payment every time, and
//! the summary says how many such rows it recorded.
//!
//! # Output
//!
//! The summary on stdout: `recorded 7, already there 2, refused 3 (of 12
//! rows)`, then a `note:` line when rows without `reference` were recorded.
//! Exit status 0 even when rows were refused.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use csv::StringRecord;
use serde_json::{Map, Value};

use super::{
    count_rows, fail, header_names, open, open_store, read_file, rows_word, Aborted, Progress,
    RowError, Rows,
};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{FieldError, NewPayment, ReminderId};
use crate::store::{Store, StoreError};

/// The two ways a row names its reminder.
const REMINDER_ID: &str = "reminder_id";
const EXTERNAL_ID: &str = "external_id";

/// The columns a payments file may have.
pub const COLUMNS: &[&str] = &[
    REMINDER_ID,
    EXTERNAL_ID,
    "amount_minor",
    "paid_at",
    "reference",
];

/// The payment's own columns: the fields of the API's body.
const PAYMENT_COLUMNS: &[&str] = &["amount_minor", "paid_at", "reference"];

/// Which reminder a row's payment is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payee {
    Id(ReminderId),
    ExternalId(String),
}

/// A row that passed the API's checks: its reminder and its payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub payee: Payee,
    pub payment: NewPayment,
}

/// The header of a payments file, checked: where each column is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    names: Vec<String>,
    reminder_id: Option<usize>,
    external_id: Option<usize>,
}

impl Columns {
    /// Check a header row. The error names the column at fault.
    pub fn parse(header: &StringRecord) -> Result<Self, String> {
        let names = header_names(
            header,
            COLUMNS,
            || {
                "the file is empty: its first line must name the columns, like \
                 external_id,amount_minor,paid_at,reference"
                    .into()
            },
            "the columns are",
        )?;
        let at = |name: &str| names.iter().position(|n| n == name);
        let (reminder_id, external_id) = (at(REMINDER_ID), at(EXTERNAL_ID));
        if reminder_id.is_none() && external_id.is_none() {
            return Err(
                "missing column \"reminder_id\" or \"external_id\" (one of them names each \
                 row's reminder)"
                    .into(),
            );
        }
        if at("amount_minor").is_none() {
            return Err("missing column \"amount_minor\" (required)".into());
        }
        Ok(Self {
            names,
            reminder_id,
            external_id,
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The row's reminder and payment, checked as the API checks them at `now`.
    pub fn row(
        &self,
        row: &StringRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<PaymentRow, RowError> {
        if row.len() != self.names.len() {
            return Err(RowError::Cells {
                got: row.len(),
                want: self.names.len(),
            });
        }
        let cell = |at: Option<usize>| at.map(|i| row[i].trim()).filter(|c| !c.is_empty());
        let payee = match (cell(self.reminder_id), cell(self.external_id)) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    EXTERNAL_ID,
                    "must be empty when reminder_id is given (one of them names the reminder)",
                )
                .into())
            }
            (Some(id), None) => Payee::Id(ReminderId::parse(id).ok_or_else(|| {
                FieldError::new(
                    REMINDER_ID,
                    "is not a reminder id (a UUID, as the API returns it)",
                )
            })?),
            (None, Some(external)) => Payee::ExternalId(external.to_owned()),
            (None, None) => {
                let missing = match (self.reminder_id, self.external_id) {
                    (Some(_), Some(_)) => {
                        "is required (or external_id): one of them names the reminder"
                    }
                    _ => "is required",
                };
                let field = if self.reminder_id.is_some() {
                    REMINDER_ID
                } else {
                    EXTERNAL_ID
                };
                return Err(FieldError::new(field, missing).into());
            }
        };
        let mut body = Map::new();
        for (name, cell) in self.names.iter().zip(row.iter()) {
            let cell = cell.trim();
            if cell.is_empty() || !PAYMENT_COLUMNS.contains(&name.as_str()) {
                continue;
            }
            let value = match (name.as_str(), cell.parse::<i64>()) {
                ("amount_minor", Ok(n)) => Value::from(n),
                // Not an integer: passed on as text for the API's own refusal.
                _ => Value::String(cell.to_owned()),
            };
            body.insert(name.clone(), value);
        }
        let payment = NewPayment::parse(&body)?;
        payment.check_paid_at(now)?;
        Ok(PaymentRow { payee, payment })
    }
}

/// A payments file whose header was accepted, ready to import.
pub struct CsvFile<'a> {
    data: &'a [u8],
    columns: Columns,
    rows: u64,
}

/// How one row went.
enum Outcome {
    Recorded,
    AlreadyThere,
    Refused(FieldError),
}

impl<'a> CsvFile<'a> {
    /// Check the header and count the rows; nothing is recorded yet.
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        let (_, header) = open(data)?;
        let columns = Columns::parse(&header)?;
        Ok(Self {
            data,
            columns,
            rows: count_rows(data),
        })
    }

    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The rows to import (blank ones not counted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Record every row, in order: refusals and progress to `progress`.
    pub async fn import(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        progress: &mut Progress<impl Write>,
    ) -> Result<Summary, Aborted<Summary>> {
        let mut summary = Summary {
            rows: self.rows,
            ..Summary::default()
        };
        let (rdr, _) = open(self.data).expect("checked by parse");
        progress.start(self.rows);
        for (line, row) in Rows::new(rdr, self.columns.names.len()) {
            let outcome = match row.and_then(|row| self.columns.row(&row, clock.now())) {
                Err(e) => Err(e),
                Ok(row) => match record(store, &row, clock).await {
                    Ok(Outcome::Refused(e)) => Err(e.into()),
                    Ok(Outcome::Recorded) => {
                        summary.recorded += 1;
                        if row.payment.reference.is_none() {
                            summary.recorded_without_reference += 1;
                        }
                        Ok(())
                    }
                    Ok(Outcome::AlreadyThere) => {
                        summary.already_there += 1;
                        Ok(())
                    }
                    Err(error) => {
                        progress.finish();
                        return Err(Aborted {
                            line,
                            summary,
                            error,
                        });
                    }
                },
            };
            if let Err(e) = outcome {
                summary.refused += 1;
                progress.say(&format!("line {line}: {e}"));
            }
            progress.advance();
        }
        progress.finish();
        Ok(summary)
    }
}

/// Store one checked row: find its reminder, record its payment.
async fn record(
    store: &dyn Store,
    row: &PaymentRow,
    clock: &dyn Clock,
) -> Result<Outcome, StoreError> {
    let (id, unknown) = match &row.payee {
        Payee::Id(id) => (
            Some(*id),
            FieldError::new(REMINDER_ID, "no reminder has this id"),
        ),
        Payee::ExternalId(external) => (
            store
                .get_reminder_by_external_id(external)
                .await?
                .map(|r| r.id),
            FieldError::new(EXTERNAL_ID, "no reminder has this external_id"),
        ),
    };
    let Some(id) = id else {
        return Ok(Outcome::Refused(unknown));
    };
    let Some(recorded) = store.record_payment(id, &row.payment, clock.now()).await? else {
        return Ok(Outcome::Refused(unknown));
    };
    Ok(if recorded.new {
        Outcome::Recorded
    } else if recorded.payment.is_same(&row.payment) {
        Outcome::AlreadyThere
    } else {
        Outcome::Refused(FieldError::new(
            "reference",
            crate::domain::reference_reused(&recorded.payment),
        ))
    })
}

/// What a payments import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows in the file (the header and blank rows not counted).
    pub rows: u64,
    /// New payments recorded.
    pub recorded: u64,
    /// Rows whose reference was recorded already (the same payment).
    pub already_there: u64,
    /// Rows refused (each reported with its line).
    pub refused: u64,
    /// Of `recorded`, those without a reference: another import records them again.
    pub recorded_without_reference: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "recorded {}, already there {}, refused {} (of {} {})",
            self.recorded,
            self.already_there,
            self.refused,
            self.rows,
            rows_word(self.rows)
        )?;
        match self.recorded_without_reference {
            0 => {}
            1 => f.write_str(
                "\nnote: 1 recorded row has no reference: importing this file again records it \
                 again (only rows with a reference are recorded once)",
            )?,
            n => write!(
                f,
                "\nnote: {n} recorded rows have no reference: importing this file again records \
                 them again (only rows with a reference are recorded once)"
            )?,
        }
        Ok(())
    }
}

/// `duecall import --payments <path>`: the summary on stdout, everything else on stderr.
pub async fn command(config: Config, path: &Path) -> ExitCode {
    let shown = path.display();
    let data = match read_file(path) {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    // The header is checked before the database is opened: a refused file changes nothing.
    let file = match CsvFile::parse(&data) {
        Ok(f) => f,
        Err(why) => return fail(format!("{shown}: {why}; nothing was imported")),
    };
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(failed) => return failed,
    };
    let mut progress = Progress::stderr(shown.to_string());
    match file.import(&*store, &SystemClock, &mut progress).await {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(Aborted {
            line,
            summary,
            error,
        }) => {
            println!("{summary}");
            fail(format!(
                "storage failed at line {line}, so the import stopped there: {error}; \
                 the rows counted above were recorded — run it again to record the rest \
                 (rows with a reference are not recorded twice)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> StringRecord {
        StringRecord::from(cells.to_vec())
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_header_needs_a_reminder_column_and_the_amount() {
        let err = |cells: &[&str]| Columns::parse(&record(cells)).unwrap_err();
        assert!(Columns::parse(&record(&["external_id", "amount_minor"])).is_ok());
        assert!(Columns::parse(&record(&["amount_minor", "reminder_id"])).is_ok());
        assert!(Columns::parse(&record(COLUMNS)).is_ok());
        assert!(err(&["external_id", "amount"]).starts_with("unknown column \"amount\""));
        assert!(err(&["amount_minor", "reference"])
            .starts_with("missing column \"reminder_id\" or \"external_id\""));
        assert!(err(&["external_id", "paid_at"]).starts_with("missing column \"amount_minor\""));
        assert!(err(&["external_id", "external_id", "amount_minor"]).contains("twice"));
        assert!(err(&[""]).starts_with("the file is empty"));
    }

    #[test]
    fn each_row_names_exactly_one_reminder() {
        let cols = Columns::parse(&record(COLUMNS)).unwrap();
        let id = ReminderId::new();
        let id_text = id.to_string();
        let field = |cells: &[&str]| match cols.row(&record(cells), now()) {
            Err(RowError::Field(e)) => (e.field, e.message),
            other => panic!("{other:?}"),
        };
        let row = cols
            .row(&record(&[&id_text, "", "500", "", " tx-1 "]), now())
            .unwrap();
        assert_eq!(row.payee, Payee::Id(id));
        assert_eq!(row.payment.amount_minor, 500);
        assert_eq!(row.payment.paid_at, None);
        assert_eq!(row.payment.reference.as_deref(), Some("tx-1"));
        let row = cols
            .row(
                &record(&["", "inv-1", "1", "2026-11-24T10:00:00+01:00", ""]),
                now(),
            )
            .unwrap();
        assert_eq!(row.payee, Payee::ExternalId("inv-1".into()));
        assert_eq!(
            row.payment.paid_at,
            Some("2026-11-24T09:00:00Z".parse().unwrap())
        );
        assert_eq!(row.payment.reference, None);

        assert_eq!(field(&[&id_text, "inv-1", "1", "", ""]).0, "external_id");
        let (f, why) = field(&["", "", "1", "", ""]);
        assert_eq!(f, "reminder_id");
        assert!(why.contains("or external_id"), "{why}");
        assert_eq!(field(&["not-a-uuid", "", "1", "", ""]).0, "reminder_id");

        // With one id column, its name.
        let only = Columns::parse(&record(&["external_id", "amount_minor"])).unwrap();
        match only.row(&record(&["", "1"]), now()) {
            Err(RowError::Field(e)) => assert_eq!(
                (e.field, e.message.as_str()),
                ("external_id".into(), "is required")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_payment_gets_the_apis_refusals() {
        let cols = Columns::parse(&record(COLUMNS)).unwrap();
        let field = |amount: &str, paid_at: &str, reference: &str| match cols
            .row(&record(&["", "inv-1", amount, paid_at, reference]), now())
        {
            Err(RowError::Field(e)) => e.field,
            other => panic!("{other:?}"),
        };
        for amount in ["", "0", "-5", "12.50", "ten", "1000000000000001"] {
            assert_eq!(field(amount, "", ""), "amount_minor", "{amount:?}");
        }
        assert_eq!(field("1", "yesterday", ""), "paid_at");
        assert_eq!(field("1", "2026-11-24", ""), "paid_at");
        // Ahead of the clock beyond skew, as the API refuses it.
        assert_eq!(field("1", "2026-11-24T12:06:00Z", ""), "paid_at");
        assert!(cols
            .row(
                &record(&["", "inv-1", "1", "2026-11-24T12:04:00Z", ""]),
                now()
            )
            .is_ok());
        assert_eq!(field("1", "", &"x".repeat(201)), "reference");
        assert_eq!(
            cols.row(&record(&["", "inv-1"]), now())
                .unwrap_err()
                .to_string(),
            "2 cells, but the header has 5 columns"
        );
    }

    #[test]
    fn the_summary_reads_like_the_reminders_one() {
        let mut s = Summary {
            rows: 12,
            recorded: 7,
            already_there: 2,
            refused: 3,
            recorded_without_reference: 0,
        };
        assert_eq!(
            s.to_string(),
            "recorded 7, already there 2, refused 3 (of 12 rows)"
        );
        s.recorded_without_reference = 1;
        assert!(s.to_string().ends_with(
            "\nnote: 1 recorded row has no reference: importing this file again records it \
             again (only rows with a reference are recorded once)"
        ));
    }
}
