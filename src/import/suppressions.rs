//! `duecall import --suppressions numbers.csv`: numbers put on the suppression
//! list (SPEC §7).
//!
//! The file is read as the reminders' is (UTF-8, a BOM ignored, quoting,
//! spaces around cells, blank rows skipped), with the columns
//! `phone_number` (required, E.164) and `reason` (optional; an empty cell is
//! `do_not_call_list`), in any order. Unlike the reminders' import it is
//! **all or nothing**: every row is checked first, each refusal is reported
//! as `line N: <field>: <reason>` (values never echoed), and one refused row
//! refuses the file before the database is opened — a typo must not leave a
//! number callable unnoticed. A number already on the list (or on an earlier
//! line) counts as "already there" and changes nothing, so the same file can
//! be imported again. The summary on stdout: `added 3, already there 2 (of 5 rows)`.
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use csv::StringRecord;

use super::{fail, header_names, open, open_store, read_file, rows_word, Progress, RowError, Rows};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{PhoneNumber, Reason, SuppressNumber, REASON_DO_NOT_CALL_LIST};
use crate::store::{Store, StoreError, Suppressed};

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
    let names = header_names(
        record,
        COLUMNS,
        || "the file is empty: its first line must be phone_number,reason".into(),
        "the columns are",
    )?;
    let phone = names
        .iter()
        .position(|n| n == "phone_number")
        .ok_or_else(|| "missing column \"phone_number\" (required)".to_owned())?;
    Ok((phone, names.iter().position(|n| n == "reason")))
}

/// Check the whole file; nothing is stored.
pub fn check(data: &[u8]) -> Result<Checked, Refused> {
    let (rdr, head) = open(data).map_err(Refused::Header)?;
    let (phone_col, reason_col) = header(&head).map_err(Refused::Header)?;
    let mut rows = Vec::new();
    let mut duplicates = Vec::new();
    let mut refusals = Vec::new();
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    for (line, row) in Rows::new(rdr, head.len()) {
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
        let rows = rows_word(self.rows);
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
    let data = match read_file(path) {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    // Checked whole before the database is opened: a refused file changes nothing.
    let checked = match check(&data) {
        Ok(c) => c,
        Err(Refused::Header(why)) => return fail(format!("{shown}: {why}; nothing was imported")),
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
    let store = match open_store(&config).await {
        Ok(s) => s,
        Err(failed) => return failed,
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

        let bad =
            b"phone_number,reason\n+14155550100,ok\n4155550101,x\n+14155550102,a\x07b\n+1,y,z\n";
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
