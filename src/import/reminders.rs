//! `duecall import reminders.csv`: load reminders from a CSV file, as if each
//! row had been sent to `POST /api/reminders`. (The file's form, the
//! refusals' form, progress and exit status: see [the module](super).)
//!
//! # The columns
//!
//! The API's field names, in any order: [`COLUMNS`]. The [`REQUIRED`] ones
//! must be there. An empty cell is an absent field, so the configured default
//! applies: `DEFAULT_TIMEZONE`, language `en`, `DEFAULT_MAX_ATTEMPTS`, no
//! `metadata`.
//!
//! # One validation
//!
//! Each row becomes the JSON object the API would have received —
//! `amount_due_minor` and `max_attempts` as numbers when the cell is an
//! integer, `metadata` as the JSON parsed from its cell, every other field as a
//! string — and goes through the same [`NewReminder::parse`] as the API, with
//! the same defaults. A cell that is not an integer where one is expected is
//! passed on as a string, so the refusal is the API's own message. CSV and API
//! therefore accept and refuse exactly the same values.
//!
//! # Bad rows
//!
//! A bad row is reported on stderr (`line N: <field>: <reason>`) and
//! skipped; the good rows are imported.
//!
//! # Idempotency
//!
//! Rows are imported in file order, one transaction each, through the store's
//! `create_reminder`, which is idempotent on `external_id`: a row whose
//! `external_id` is already stored counts as "already there" and changes
//! nothing (even when its other cells differ — as with the API). Within one
//! file, the first valid row with an `external_id` wins; a later row with the
//! same one is noted on stderr (`line N: duplicate of line M …`) and counted as
//! already there. Importing the same file twice therefore imports nothing new
//! — **for rows with an `external_id` only**: a row without one is a new
//! reminder every time, and the summary says how many such rows it imported.
//! An import stopped midway (Ctrl-C, a storage failure) can simply be run again.
//!
//! # Output
//!
//! The summary on stdout: `imported 7, already there 2, refused 3 (of 12
//! rows)`, then a `note:` line when rows without `external_id` were imported.
//! Exit status 0 even when rows were refused.

use std::collections::HashMap;
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
use crate::domain::{CreateDefaults, FieldError, NewReminder, ReminderId};
use crate::store::{Created, Store};

/// The columns a file may have: the fields of `POST /api/reminders` (SPEC §5).
pub const COLUMNS: &[&str] = &[
    "customer_name",
    "phone_number",
    "amount_due_minor",
    "currency",
    "due_date",
    "external_id",
    "timezone",
    "language",
    "scheduled_for",
    "max_attempts",
    "metadata",
    "debt_ref",
    "region",
    VERIFY_LABEL,
    VERIFY_VALUE,
];

/// The two columns that make `metadata.verify` (the agent's second
/// identifier, SPEC §10): both or neither on a row.
const VERIFY_LABEL: &str = "verify_label";
const VERIFY_VALUE: &str = "verify_value";

/// The columns every file must have (the API's required fields).
pub const REQUIRED: &[&str] = &[
    "customer_name",
    "phone_number",
    "amount_due_minor",
    "currency",
    "due_date",
];

/// Columns whose cells are integers (JSON numbers in the API).
const INTEGER_COLUMNS: &[&str] = &["amount_due_minor", "max_attempts"];

/// The defaults a create body is completed with, from the configuration — as
/// the service builds them (`DEFAULT_TIMEZONE`, language `en`, `DEFAULT_MAX_ATTEMPTS`).
pub fn defaults_from(config: &Config) -> CreateDefaults {
    crate::create_defaults(config)
}

// ---------------------------------------------------------------------------
// The header

/// The file's columns, in order, checked against [`COLUMNS`] and [`REQUIRED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns(Vec<String>);

impl Columns {
    /// Check a header row. The error names the column at fault.
    pub fn parse(header: &StringRecord) -> Result<Self, String> {
        let names = header_names(
            header,
            COLUMNS,
            || {
                format!(
                    "the file is empty: its first line must name the columns, like {}",
                    REQUIRED.join(",")
                )
            },
            "the columns are the API's fields",
        )?;
        if let Some(missing) = REQUIRED.iter().find(|r| !names.iter().any(|n| n == *r)) {
            return Err(format!(
                "missing column {missing:?} (required: {})",
                REQUIRED.join(", ")
            ));
        }
        Ok(Self(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The create body a row stands for: empty cells left out, integers and
    /// `metadata` converted to their JSON types, everything else a string.
    pub fn body(&self, row: &StringRecord) -> Result<Map<String, Value>, RowError> {
        if row.len() != self.0.len() {
            return Err(RowError::Cells {
                got: row.len(),
                want: self.0.len(),
            });
        }
        let mut body = Map::new();
        let (mut label, mut value) = (None, None);
        for (name, cell) in self.0.iter().zip(row.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            match name.as_str() {
                VERIFY_LABEL => {
                    label = Some(cell);
                    continue;
                }
                VERIFY_VALUE => {
                    value = Some(cell);
                    continue;
                }
                _ => {}
            }
            let value = if INTEGER_COLUMNS.contains(&name.as_str()) {
                // Not an integer: passed on as text for the API's own refusal.
                match cell.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => Value::String(cell.to_owned()),
                }
            } else if name == "metadata" {
                serde_json::from_str::<Value>(cell).map_err(|e| {
                    RowError::Field(FieldError::new(
                        "metadata",
                        format!(
                            "is not valid JSON ({e} of the cell); it must be a JSON object, \
                             like {{\"invoice\": \"1042\"}}"
                        ),
                    ))
                })?
            } else {
                Value::String(cell.to_owned())
            };
            body.insert(name.clone(), value);
        }
        match (label, value) {
            (None, None) => {}
            (Some(label), Some(value)) => with_verify(&mut body, label, value)?,
            (Some(_), None) => {
                return Err(RowError::Field(FieldError::new(
                    VERIFY_VALUE,
                    "is required when verify_label is given",
                )))
            }
            (None, Some(_)) => {
                return Err(RowError::Field(FieldError::new(
                    VERIFY_LABEL,
                    "is required when verify_value is given",
                )))
            }
        }
        Ok(body)
    }
}

/// Put the row's `verify_label`/`verify_value` into its `metadata` as
/// `verify`, where the API takes it (and checks it, in `NewReminder::parse`).
fn with_verify(body: &mut Map<String, Value>, label: &str, value: &str) -> Result<(), RowError> {
    let verify = serde_json::json!({"label": label, "value": value});
    // Not an object: the API's own refusal of the metadata cell follows.
    if let Value::Object(m) = body
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        if m.contains_key(crate::domain::VERIFY_KEY) {
            return Err(RowError::Field(FieldError::new(
                "metadata.verify",
                "is given twice: in the metadata cell and as verify_label/verify_value",
            )));
        }
        m.insert(crate::domain::VERIFY_KEY.to_owned(), verify);
    }
    Ok(())
}

/// A CSV file whose header was accepted, ready to import.
pub struct CsvFile<'a> {
    data: &'a [u8],
    columns: Columns,
    rows: u64,
}

impl<'a> CsvFile<'a> {
    /// Check the header and count the rows; nothing is imported yet.
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

    /// Import every row, in order: refusals and progress to `progress`.
    pub async fn import(
        &self,
        store: &dyn Store,
        defaults: &CreateDefaults,
        clock: &dyn Clock,
        progress: &mut Progress<impl Write>,
    ) -> Result<Summary, Aborted<Summary>> {
        let mut summary = Summary {
            rows: self.rows,
            ..Summary::default()
        };
        // external_id → the line of its first valid row in this file.
        let mut first_seen: HashMap<String, u64> = HashMap::new();
        let (rdr, _) = open(self.data).expect("checked by parse");
        progress.start(self.rows);
        for (line, row) in Rows::new(rdr, self.columns.0.len()) {
            let body = row.and_then(|row| self.columns.body(&row));
            let parsed =
                body.and_then(|b| NewReminder::parse(&b, defaults).map_err(RowError::Field));
            match parsed {
                Err(e) => {
                    summary.refused += 1;
                    progress.say(&format!("line {line}: {e}"));
                }
                Ok(mut new) => {
                    let first = new
                        .external_id
                        .as_ref()
                        .and_then(|id| first_seen.get(id).copied());
                    if let Some(first) = first {
                        summary.already_there += 1;
                        progress.say(&format!(
                            "line {line}: duplicate of line {first} (same external_id): \
                             skipped, the first is kept"
                        ));
                    } else {
                        if let Some(id) = &new.external_id {
                            first_seen.insert(id.clone(), line);
                        }
                        // As the API does: a suppressed number's reminder is stored cancelled.
                        let created = match store.is_suppressed(&new.phone_number).await {
                            Ok(suppressed) => {
                                new.suppressed = suppressed;
                                store
                                    .create_reminder(&new, ReminderId::new(), clock.now())
                                    .await
                            }
                            Err(e) => Err(e),
                        };
                        match created {
                            Ok(Created::New(_)) => {
                                summary.imported += 1;
                                if new.external_id.is_none() {
                                    summary.imported_without_external_id += 1;
                                }
                            }
                            Ok(Created::Existing(_)) => summary.already_there += 1,
                            Err(error) => {
                                progress.finish();
                                return Err(Aborted {
                                    line,
                                    summary,
                                    error,
                                });
                            }
                        }
                    }
                }
            }
            progress.advance();
        }
        progress.finish();
        Ok(summary)
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows in the file (the header and blank rows not counted).
    pub rows: u64,
    /// New reminders stored.
    pub imported: u64,
    /// Rows whose `external_id` was already stored, or already on an earlier line.
    pub already_there: u64,
    /// Rows refused (each reported with its line).
    pub refused: u64,
    /// Of `imported`, those without `external_id`: another import creates them again.
    pub imported_without_external_id: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = rows_word(self.rows);
        write!(
            f,
            "imported {}, already there {}, refused {} (of {} {rows})",
            self.imported, self.already_there, self.refused, self.rows
        )?;
        match self.imported_without_external_id {
            0 => {}
            1 => f.write_str(
                "\nnote: 1 imported row has no external_id: importing this file again creates it \
                 again (only rows with an external_id are imported once)",
            )?,
            n => write!(
                f,
                "\nnote: {n} imported rows have no external_id: importing this file again creates \
                 them again (only rows with an external_id are imported once)"
            )?,
        }
        Ok(())
    }
}

/// `duecall import <path>`: the summary on stdout, everything else on stderr.
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
    let defaults = defaults_from(&config);
    let mut progress = Progress::stderr(shown.to_string());
    match file
        .import(&*store, &defaults, &SystemClock, &mut progress)
        .await
    {
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
                 the rows counted above were taken — run it again to import the rest \
                 (rows with an external_id are not imported twice)"
            ))
        }
    }
}

#[cfg(test)]
mod tests;
