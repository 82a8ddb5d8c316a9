//! `duecall import reminders.csv`: load reminders from a CSV file, as if each
//! row had been sent to `POST /api/reminders`.
//!
//! # The file
//!
//! - UTF-8 (a leading byte-order mark is ignored), comma-separated, fields with
//!   commas, quotes or line breaks quoted the usual way (`"Lovelace, Ada"`,
//!   `""` for a quote inside quotes).
//! - The first line names the columns, with the API's field names, in any
//!   order: [`COLUMNS`]. The [`REQUIRED`] ones must be there. An unknown column,
//!   a missing required column, a column named twice or an unnamed one refuses
//!   the whole file before anything is imported (and before the database is
//!   opened), naming the column.
//! - Spaces around a cell are ignored, and an empty cell is an absent field
//!   (so the configured default applies: `DEFAULT_TIMEZONE`, language `en`,
//!   `DEFAULT_MAX_ATTEMPTS`, no `metadata`).
//! - Rows whose cells are all empty (the trailing `,,,,` rows of spreadsheet
//!   exports) and blank lines are skipped and not counted.
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
//! A bad row is reported on stderr and skipped; the good rows are imported.
//! Each report is one line, `line N: <field>: <reason>` (the API's field and
//! message), or `line N: <reason>` for a row that is wrong as a whole (a
//! number of cells other than the header's, text that is not UTF-8). `N` is
//! the physical line of the file where the row starts (the header is line 1;
//! a quoted cell spanning lines makes the next row start further down). A row
//! reports its first problem only. Values are never echoed (they may be phone
//! numbers): only the line, the field and the reason.
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
//! # Output and exit status
//!
//! - Progress on stderr: a bar redrawn in place (`\r`) when stderr is a
//!   terminal; otherwise a line at the start and at each quarter.
//! - The summary on stdout: `imported 7, already there 2, refused 3 (of 12
//!   rows)`, then a `note:` line when rows without `external_id` were imported.
//! - Exit status 0 when the whole file was read, **even when rows were
//!   refused** (the refusals are on stderr and counted in the summary); 1 when
//!   the file cannot be read, its header is refused, the configuration is bad,
//!   or the database cannot be opened (nothing imported) — or when storage
//!   fails midway (the summary so far is printed; run it again).
//!
//! # Limits
//!
//! The file is read into memory whole (its header checked and its rows
//! counted for the progress bar before the first row is imported). Rows are
//! stored one at a time, each committed to disk before the next: a few hundred
//! rows a second on SQLite.

use std::collections::HashMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use csv::StringRecord;
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{CreateDefaults, FieldError, NewReminder, ReminderId};
use crate::store::{Created, Store, StoreError};

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
        if header.iter().all(str::is_empty) {
            return Err(format!(
                "the file is empty: its first line must name the columns, like {}",
                REQUIRED.join(",")
            ));
        }
        let mut names: Vec<String> = Vec::with_capacity(header.len());
        for (i, name) in header.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("column {} of the header has no name", i + 1));
            }
            if !COLUMNS.contains(&name) {
                return Err(format!(
                    "unknown column {name:?} (the columns are the API's fields: {})",
                    COLUMNS.join(", ")
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("column {name:?} appears twice in the header"));
            }
            names.push(name.to_owned());
        }
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

// ---------------------------------------------------------------------------
// The file

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

/// A CSV file whose header was accepted, ready to import.
pub struct CsvFile<'a> {
    data: &'a [u8],
    columns: Columns,
    rows: u64,
}

impl<'a> CsvFile<'a> {
    /// Check the header and count the rows; nothing is imported yet.
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        let mut rdr = reader(data);
        let header = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
                return Err("its first line is not UTF-8 text (save the file as CSV UTF-8)".into())
            }
            Err(e) => return Err(format!("its first line cannot be read: {e}")),
        };
        let columns = Columns::parse(&header)?;
        let mut rows = 0;
        let mut record = csv::ByteRecord::new();
        loop {
            match rdr.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) if is_blank(&record) => {}
                // A row the import will refuse is still a row.
                Ok(true) | Err(_) => rows += 1,
            }
        }
        Ok(Self {
            data,
            columns,
            rows,
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
    ) -> Result<Summary, Aborted> {
        let mut summary = Summary {
            rows: self.rows,
            ..Summary::default()
        };
        // external_id → the line of its first valid row in this file.
        let mut first_seen: HashMap<String, u64> = HashMap::new();
        let mut rdr = reader(self.data);
        let mut raw = csv::ByteRecord::new();
        progress.start(self.rows);
        loop {
            let read = rdr.read_byte_record(&mut raw);
            let line = match &read {
                Ok(_) => raw.position().map_or(0, |p| p.line()),
                Err(e) => e.position().map_or(0, |p| p.line()),
            };
            let body = match read {
                Ok(false) => break,
                Ok(true) if is_blank(&raw) => continue,
                Ok(true) => match StringRecord::from_byte_record(raw.clone()) {
                    Ok(row) => self.columns.body(&row),
                    Err(_) => Err(RowError::NotUtf8),
                },
                Err(e) => Err(RowError::Unreadable(e.to_string())),
            };
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
        let rows = if self.rows == 1 { "row" } else { "rows" };
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

/// Storage failed midway: the rows before `line` were taken, this one and
/// those after were not.
#[derive(Debug)]
pub struct Aborted {
    pub line: u64,
    pub summary: Summary,
    pub error: StoreError,
}

// ---------------------------------------------------------------------------
// Progress

const BAR_WIDTH: usize = 30;
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Progress and row reports on one stream (stderr): a bar redrawn in place on
/// a terminal, a few plain lines otherwise.
pub struct Progress<W: Write> {
    out: W,
    tty: bool,
    label: String,
    total: u64,
    done: u64,
    /// Terminal: the length of the bar on screen (0: none), when it was drawn.
    drawn: usize,
    drawn_done: u64,
    last_draw: Option<Instant>,
    /// Plain: the last quarter reported.
    quarter: u64,
}

impl Progress<std::io::Stderr> {
    /// On stderr, in place if it is a terminal.
    pub fn stderr(label: impl Into<String>) -> Self {
        let err = std::io::stderr();
        let tty = err.is_terminal();
        Self::new(err, tty, label)
    }
}

impl<W: Write> Progress<W> {
    pub fn new(out: W, tty: bool, label: impl Into<String>) -> Self {
        Self {
            out,
            tty,
            label: label.into(),
            total: 0,
            done: 0,
            drawn: 0,
            drawn_done: 0,
            last_draw: None,
            quarter: 0,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn start(&mut self, total: u64) {
        self.total = total;
        self.done = 0;
        let rows = if total == 1 { "row" } else { "rows" };
        if self.tty {
            self.draw();
        } else {
            let _ = writeln!(self.out, "importing {total} {rows} from {}", self.label);
        }
    }

    /// One more row done.
    fn advance(&mut self) {
        self.done += 1;
        if self.tty {
            let due = match self.last_draw {
                None => true,
                Some(t) => t.elapsed() >= REDRAW_EVERY,
            };
            if due || self.done == self.total {
                self.draw();
            }
        } else if let Some(quarter) = (self.done * 4).checked_div(self.total) {
            if quarter > self.quarter {
                self.quarter = quarter;
                let _ = writeln!(
                    self.out,
                    "progress: {}/{} rows ({}%)",
                    self.done,
                    self.total,
                    self.done * 100 / self.total
                );
            }
        }
    }

    /// A line of its own (a refused row), above the bar.
    fn say(&mut self, line: &str) {
        if self.tty {
            self.clear();
            let _ = writeln!(self.out, "{line}");
            self.draw();
        } else {
            let _ = writeln!(self.out, "{line}");
        }
    }

    /// Leave the bar as it stands and move below it.
    fn finish(&mut self) {
        if self.tty && self.drawn > 0 {
            if self.drawn_done != self.done {
                self.draw();
            }
            let _ = writeln!(self.out);
            self.drawn = 0;
        }
        let _ = self.out.flush();
    }

    fn clear(&mut self) {
        if self.drawn > 0 {
            let _ = write!(self.out, "\r{:width$}\r", "", width = self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self) {
        // An empty file is done at once.
        let filled = (self.done * BAR_WIDTH as u64)
            .checked_div(self.total)
            .map_or(BAR_WIDTH, |f| f as usize);
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let bar = format!(
            "importing {} [{}{}] {pct:>3}% {}/{} rows",
            self.label,
            "#".repeat(filled),
            "-".repeat(BAR_WIDTH - filled),
            self.done,
            self.total
        );
        // Pad over a longer previous line.
        let width = self.drawn.max(bar.len());
        let _ = write!(self.out, "\r{bar:<width$}");
        let _ = self.out.flush();
        self.drawn = bar.len();
        self.drawn_done = self.done;
        self.last_draw = Some(Instant::now());
    }
}

// ---------------------------------------------------------------------------
// The command

fn fail(message: impl fmt::Display) -> ExitCode {
    eprintln!("duecall: {message}");
    ExitCode::FAILURE
}

/// `duecall import <path>`: the summary on stdout, everything else on stderr.
pub async fn command(config: Config, path: &Path) -> ExitCode {
    let shown = path.display();
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => return fail(format!("cannot read {shown}: {e}; nothing was imported")),
    };
    // The header is checked before the database is opened: a refused file changes nothing.
    let file = match CsvFile::parse(&data) {
        Ok(f) => f,
        Err(why) => return fail(format!("{shown}: {why}; nothing was imported")),
    };
    let db = crate::store::redact_url(&config.database_url);
    let store =
        match crate::store::connect(&config.database_url, config.database_max_connections).await {
            Ok(s) => s,
            Err(e) => {
                return fail(format!(
                    "cannot open the database {db}: {e}; nothing was imported"
                ))
            }
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

// ---------------------------------------------------------------------------
// A do-not-call list

/// `duecall import --suppressions numbers.csv`: numbers put on the suppression
/// list (SPEC §7).
///
/// The file is read as the reminders' is (UTF-8, a BOM ignored, quoting,
/// spaces around cells, blank rows skipped), with the columns
/// `phone_number` (required, E.164) and `reason` (optional; an empty cell is
/// `do_not_call_list`), in any order. Unlike the reminders' import it is
/// **all or nothing**: every row is checked first, each refusal is reported
/// as `line N: <field>: <reason>` (values never echoed), and one refused row
/// refuses the file before the database is opened — a typo must not leave a
/// number callable unnoticed. A number already on the list (or on an earlier
/// line) counts as "already there" and changes nothing, so the same file can
/// be imported again. The summary on stdout: `added 3, already there 2 (of 5 rows)`.
pub mod suppressions {
    use super::*;
    use crate::domain::{PhoneNumber, Reason, SuppressNumber, REASON_DO_NOT_CALL_LIST};
    use crate::store::Suppressed;

    /// The columns a do-not-call file may have.
    pub const COLUMNS: &[&str] = &["phone_number", "reason"];

    /// A file whose every row was accepted: what to add, with each row's line.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Checked {
        pub rows: Vec<(u64, SuppressNumber)>,
        /// Rows naming a number an earlier line named: (line, first line).
        pub duplicates: Vec<(u64, u64)>,
    }

    /// Why a file is refused whole.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Refused {
        /// The header is wrong (named), or unreadable.
        Header(String),
        /// These rows, each `line N: …`.
        Rows(Vec<String>),
    }

    fn header(record: &StringRecord) -> Result<(usize, Option<usize>), String> {
        if record.iter().all(str::is_empty) {
            return Err("the file is empty: its first line must be phone_number,reason".into());
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, name) in record.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("column {} of the header has no name", i + 1));
            }
            if !COLUMNS.contains(&name) {
                return Err(format!(
                    "unknown column {name:?} (the columns are: {})",
                    COLUMNS.join(", ")
                ));
            }
            if names.contains(&name) {
                return Err(format!("column {name:?} appears twice in the header"));
            }
            names.push(name);
        }
        let phone = names
            .iter()
            .position(|n| *n == "phone_number")
            .ok_or_else(|| "missing column \"phone_number\" (required)".to_owned())?;
        Ok((phone, names.iter().position(|n| *n == "reason")))
    }

    /// Check the whole file; nothing is stored.
    pub fn check(data: &[u8]) -> Result<Checked, Refused> {
        let mut rdr = reader(data);
        let head = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
                return Err(Refused::Header(
                    "its first line is not UTF-8 text (save the file as CSV UTF-8)".into(),
                ))
            }
            Err(e) => {
                return Err(Refused::Header(format!(
                    "its first line cannot be read: {e}"
                )))
            }
        };
        let (phone_col, reason_col) = header(&head).map_err(Refused::Header)?;
        let width = head.len();
        let mut rows = Vec::new();
        let mut duplicates = Vec::new();
        let mut refusals = Vec::new();
        let mut first_seen: HashMap<String, u64> = HashMap::new();
        let mut raw = csv::ByteRecord::new();
        loop {
            let read = rdr.read_byte_record(&mut raw);
            let line = match &read {
                Ok(_) => raw.position().map_or(0, |p| p.line()),
                Err(e) => e.position().map_or(0, |p| p.line()),
            };
            let row = match read {
                Ok(false) => break,
                Ok(true) if is_blank(&raw) => continue,
                Ok(true) => match StringRecord::from_byte_record(raw.clone()) {
                    Ok(row) if row.len() != width => Err(RowError::Cells {
                        got: row.len(),
                        want: width,
                    }),
                    Ok(row) => Ok(row),
                    Err(_) => Err(RowError::NotUtf8),
                },
                Err(e) => Err(RowError::Unreadable(e.to_string())),
            };
            let parsed = row.and_then(|row| {
                let phone_number =
                    PhoneNumber::parse(row[phone_col].trim()).map_err(RowError::Field)?;
                let reason = match reason_col.map(|c| row[c].trim()) {
                    None | Some("") => Reason::fixed(REASON_DO_NOT_CALL_LIST),
                    Some(r) => Reason::parse(r).map_err(RowError::Field)?,
                };
                Ok(SuppressNumber {
                    phone_number,
                    reason,
                    reminder_id: None,
                })
            });
            match parsed {
                Err(e) => refusals.push(format!("line {line}: {e}")),
                Ok(add) => match first_seen.get(add.phone_number.as_str()) {
                    Some(first) => duplicates.push((line, *first)),
                    None => {
                        first_seen.insert(add.phone_number.as_str().to_owned(), line);
                        rows.push((line, add));
                    }
                },
            }
        }
        if refusals.is_empty() {
            Ok(Checked { rows, duplicates })
        } else {
            Err(Refused::Rows(refusals))
        }
    }

    /// What an import of a do-not-call list did.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Summary {
        pub rows: u64,
        pub added: u64,
        pub already_there: u64,
    }

    impl fmt::Display for Summary {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let rows = if self.rows == 1 { "row" } else { "rows" };
            write!(
                f,
                "added {}, already there {} (of {} {rows})",
                self.added, self.already_there, self.rows
            )
        }
    }

    /// Add every checked row, in file order, one transaction each.
    pub async fn import(
        checked: &Checked,
        store: &dyn Store,
        clock: &dyn Clock,
        progress: &mut Progress<impl Write>,
    ) -> Result<Summary, (u64, Summary, StoreError)> {
        let mut summary = Summary {
            rows: (checked.rows.len() + checked.duplicates.len()) as u64,
            already_there: checked.duplicates.len() as u64,
            ..Summary::default()
        };
        progress.start(checked.rows.len() as u64);
        for (line, first) in &checked.duplicates {
            progress.say(&format!(
                "line {line}: duplicate of line {first} (same number): skipped"
            ));
        }
        for (line, add) in &checked.rows {
            match store.add_suppression(add, clock.now()).await {
                Ok(Suppressed::New(_)) => summary.added += 1,
                Ok(Suppressed::Existing(_)) => summary.already_there += 1,
                Err(e) => {
                    progress.finish();
                    return Err((*line, summary, e));
                }
            }
            progress.advance();
        }
        progress.finish();
        Ok(summary)
    }

    /// `duecall import --suppressions <path>`.
    pub async fn command(config: Config, path: &Path) -> ExitCode {
        let shown = path.display();
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => return fail(format!("cannot read {shown}: {e}; nothing was imported")),
        };
        // Checked whole before the database is opened: a refused file changes nothing.
        let checked = match check(&data) {
            Ok(c) => c,
            Err(Refused::Header(why)) => {
                return fail(format!("{shown}: {why}; nothing was imported"))
            }
            Err(Refused::Rows(lines)) => {
                for line in &lines {
                    eprintln!("{line}");
                }
                let n = lines.len();
                let rows = if n == 1 { "row is" } else { "rows are" };
                return fail(format!(
                    "{shown}: {n} {rows} refused, so nothing was imported (a do-not-call list \
                     is taken whole or not at all: fix the lines above and run it again)"
                ));
            }
        };
        let db = crate::store::redact_url(&config.database_url);
        let store = match crate::store::connect(
            &config.database_url,
            config.database_max_connections,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                return fail(format!(
                    "cannot open the database {db}: {e}; nothing was imported"
                ))
            }
        };
        let mut progress = Progress::stderr(shown.to_string());
        match import(&checked, &*store, &SystemClock, &mut progress).await {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err((line, summary, error)) => {
                println!("{summary}");
                fail(format!(
                    "storage failed at line {line}, so the import stopped there: {error}; \
                     the numbers counted above were added — run it again to add the rest \
                     (numbers already there are not added twice)"
                ))
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rows_are_checked_whole_with_their_lines() {
            let data = b"reason,phone_number\n\
                         ,+14155550100\n\
                         asked by letter,+14155550101\n\
                         dup,+14155550100\n";
            let checked = check(data).unwrap();
            assert_eq!(checked.rows.len(), 2);
            assert_eq!(checked.rows[0].0, 2);
            assert_eq!(checked.rows[0].1.reason.as_str(), "do_not_call_list");
            assert_eq!(checked.rows[1].1.reason.as_str(), "asked by letter");
            assert_eq!(checked.duplicates, vec![(4, 2)]);

            let bad = b"phone_number,reason\n+14155550100,ok\n4155550101,x\n+14155550102,a\x07b\n+1,y,z\n";
            match check(bad).unwrap_err() {
                Refused::Rows(lines) => {
                    assert_eq!(lines.len(), 3, "{lines:?}");
                    assert!(lines[0].starts_with("line 3: phone_number: "), "{lines:?}");
                    assert!(lines[1].starts_with("line 4: reason: "), "{lines:?}");
                    assert_eq!(lines[2], "line 5: 3 cells, but the header has 2 columns");
                    assert!(!lines.iter().any(|l| l.contains("4155550101")));
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn the_header_is_checked() {
            let err = |h: &[u8]| match check(h).unwrap_err() {
                Refused::Header(why) => why,
                other => panic!("{other:?}"),
            };
            assert!(err(b"phone,reason\n").starts_with("unknown column \"phone\""));
            assert!(err(b"reason\n").starts_with("missing column \"phone_number\""));
            assert!(err(b"phone_number,phone_number\n").contains("twice"));
            assert!(check(b"phone_number\n+14155550100\n").is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn progress_redraws_in_place_on_a_terminal_and_prints_lines_elsewhere() {
        let mut p = Progress::new(Vec::new(), true, "f.csv");
        p.start(2);
        p.advance();
        p.say("line 3: currency: bad");
        p.advance();
        p.finish();
        let out = String::from_utf8(p.into_inner()).unwrap();
        assert!(out.contains('\r'));
        assert!(out.contains("\rline 3: currency: bad\n"), "{out:?}");
        assert_eq!(out.matches("100% 2/2 rows").count(), 1, "{out:?}");
        assert!(out.ends_with("100% 2/2 rows\n"), "{out:?}");

        let mut p = Progress::new(Vec::new(), false, "f.csv");
        p.start(8);
        for _ in 0..8 {
            p.advance();
        }
        p.finish();
        let out = String::from_utf8(p.into_inner()).unwrap();
        assert!(!out.contains('\r'));
        assert_eq!(
            out,
            "importing 8 rows from f.csv\nprogress: 2/8 rows (25%)\nprogress: 4/8 rows (50%)\n\
             progress: 6/8 rows (75%)\nprogress: 8/8 rows (100%)\n"
        );
    }
}
