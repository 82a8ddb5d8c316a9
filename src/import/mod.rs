//! `duecall import`: load a CSV file into the service, as if each row had
//! been sent to the API.
//!
//! Three kinds of file, one module each:
//!
//! - reminders ([`reminders`], `duecall import reminders.csv`): each row as a
//!   `POST /api/reminders`; bad rows are refused by line, the good ones taken;
//! - a do-not-call list ([`suppressions`], `--suppressions`): numbers for the
//!   suppression list, all or nothing;
//! - payments ([`payments`], `--payments`): each row as a
//!   `POST /api/reminders/{id}/payments`; bad rows are refused by line, the
//!   good ones recorded.
//!
//! # What every file shares
//!
//! - UTF-8 (a leading byte-order mark is ignored), comma-separated, fields with
//!   commas, quotes or line breaks quoted the usual way (`"Lovelace, Ada"`,
//!   `""` for a quote inside quotes).
//! - The first line names the columns, in any order. An unknown column, a
//!   missing required column, a column named twice or an unnamed one refuses
//!   the whole file before anything is imported (and before the database is
//!   opened), naming the column.
//! - Spaces around a cell are ignored, and an empty cell is an absent field.
//! - Rows whose cells are all empty (the trailing `,,,,` rows of spreadsheet
//!   exports) and blank lines are skipped and not counted.
//! - A refusal is one line on stderr, `line N: <field>: <reason>` (the API's
//!   field and message), or `line N: <reason>` for a row that is wrong as a
//!   whole (a number of cells other than the header's, text that is not
//!   UTF-8). `N` is the physical line of the file where the row starts (the
//!   header is line 1; a quoted cell spanning lines makes the next row start
//!   further down). A row reports its first problem only. Values are never
//!   echoed (they may be phone numbers): only the line, the field and the
//!   reason.
//! - Progress on stderr ([`Progress`]): a bar redrawn in place when stderr is
//!   a terminal, the refusals printed above it; otherwise a line at the start
//!   and at each quarter. The summary on stdout.
//! - Exit status 1 when the file cannot be read, its header is refused, the
//!   configuration is bad, or the database cannot be opened (nothing
//!   imported), or when storage fails midway (the summary so far is printed;
//!   run it again). Otherwise 0 — for reminders and payments **even when rows
//!   were refused** (the refusals are on stderr and counted in the summary).
//!
//! # Limits
//!
//! The file is read into memory whole (its header checked and its rows
//! counted for the progress bar before the first row is imported). Rows are
//! stored one at a time, each committed to disk before the next: a few hundred
//! rows a second on SQLite.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use csv::StringRecord;

use crate::config::Config;
use crate::domain::FieldError;
use crate::store::{Store, StoreError};

pub mod payments;
mod progress;
pub mod reminders;
pub mod suppressions;

pub use progress::Progress;
pub use reminders::{command, defaults_from, Columns, CsvFile, Summary, COLUMNS, REQUIRED};

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// One field is missing or invalid (the API's field and message).
    Field(FieldError),
    /// The row has another number of cells than the header.
    Cells { got: usize, want: usize },
    /// The row is not UTF-8 text.
    NotUtf8,
    /// The CSV reader could not read the row.
    Unreadable(String),
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::Field(e) => write!(f, "{}: {}", e.field, e.message),
            RowError::Cells { got, want } => {
                let s = if *got == 1 { "" } else { "s" };
                write!(f, "{got} cell{s}, but the header has {want} columns")
            }
            RowError::NotUtf8 => f.write_str("is not UTF-8 text (save the file as CSV UTF-8)"),
            RowError::Unreadable(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl From<FieldError> for RowError {
    fn from(e: FieldError) -> Self {
        RowError::Field(e)
    }
}

/// Storage failed midway: the rows before `line` were taken, this one and
/// those after were not.
#[derive(Debug)]
pub struct Aborted<S> {
    pub line: u64,
    pub summary: S,
    pub error: StoreError,
}

// ---------------------------------------------------------------------------
// Reading a file

fn reader(data: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        // Rows of another length are reported by us, with their line.
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data)
}

/// A row that is nothing but empty cells (or a line of spaces).
fn is_blank(row: &csv::ByteRecord) -> bool {
    row.iter().all(|c| c.iter().all(u8::is_ascii_whitespace))
}

/// The file's first line, and a reader positioned after it.
fn open(data: &[u8]) -> Result<(csv::Reader<&[u8]>, StringRecord), String> {
    let mut rdr = reader(data);
    match rdr.headers() {
        Ok(h) => {
            let header = h.clone();
            Ok((rdr, header))
        }
        Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
            Err("its first line is not UTF-8 text (save the file as CSV UTF-8)".into())
        }
        Err(e) => Err(format!("its first line cannot be read: {e}")),
    }
}

/// Check a header's names: none unnamed, each one of `allowed`, none twice.
/// `empty` is the refusal of a file with no header at all; `known` says what
/// the columns are in the refusal of an unknown one (`unknown column "x"
/// ({known}: a, b, c)`). The names are returned in file order.
fn header_names(
    header: &StringRecord,
    allowed: &[&str],
    empty: impl FnOnce() -> String,
    known: &str,
) -> Result<Vec<String>, String> {
    if header.iter().all(str::is_empty) {
        return Err(empty());
    }
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("column {} of the header has no name", i + 1));
        }
        if !allowed.contains(&name) {
            return Err(format!(
                "unknown column {name:?} ({known}: {})",
                allowed.join(", ")
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(format!("column {name:?} appears twice in the header"));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// The rows after the header, in order, each with the line it starts on:
/// blank rows skipped, a row that is not UTF-8 or has another number of
/// cells than the header (`width`) refused as a whole.
struct Rows<'a> {
    rdr: csv::Reader<&'a [u8]>,
    raw: csv::ByteRecord,
    width: usize,
}

impl<'a> Rows<'a> {
    fn new(rdr: csv::Reader<&'a [u8]>, width: usize) -> Self {
        Self {
            rdr,
            raw: csv::ByteRecord::new(),
            width,
        }
    }
}

impl Iterator for Rows<'_> {
    type Item = (u64, Result<StringRecord, RowError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let read = self.rdr.read_byte_record(&mut self.raw);
            let line = match &read {
                Ok(_) => self.raw.position().map_or(0, |p| p.line()),
                Err(e) => e.position().map_or(0, |p| p.line()),
            };
            let row = match read {
                Ok(false) => return None,
                Ok(true) if is_blank(&self.raw) => continue,
                Ok(true) => match StringRecord::from_byte_record(self.raw.clone()) {
                    Ok(row) if row.len() != self.width => Err(RowError::Cells {
                        got: row.len(),
                        want: self.width,
                    }),
                    Ok(row) => Ok(row),
                    Err(_) => Err(RowError::NotUtf8),
                },
                Err(e) => Err(RowError::Unreadable(e.to_string())),
            };
            return Some((line, row));
        }
    }
}

/// How many rows [`Rows`] will yield: a row the import will refuse is still a row.
fn count_rows(data: &[u8]) -> u64 {
    match open(data) {
        Ok((rdr, header)) => Rows::new(rdr, header.len()).count() as u64,
        Err(_) => 0,
    }
}

// ---------------------------------------------------------------------------
// The commands' common steps

fn fail(message: impl fmt::Display) -> ExitCode {
    eprintln!("duecall: {message}");
    ExitCode::FAILURE
}

/// The file's bytes, or the failure that says it cannot be read.
fn read_file(path: &Path) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path).map_err(|e| {
        fail(format!(
            "cannot read {}: {e}; nothing was imported",
            path.display()
        ))
    })
}

/// The configured database, or the failure that says it cannot be opened.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ExitCode> {
    let db = crate::store::redact_url(&config.database_url);
    crate::store::connect(&config.database_url, config.database_max_connections)
        .await
        .map_err(|e| {
            fail(format!(
                "cannot open the database {db}: {e}; nothing was imported"
            ))
        })
}

/// "row" or "rows", for `n`.
fn rows_word(n: u64) -> &'static str {
    if n == 1 {
        "row"
    } else {
        "rows"
    }
}
