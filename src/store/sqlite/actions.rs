//! SQLite's record of operators' actions (`reminder_actions`): written on the
//! writer thread inside the transaction of the change each one records.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_ms, ms};
use crate::domain::{ActionRecord, ReminderAction};
use crate::store::{stored_action, StoreError};

/// One row of a reminder's history, in the caller's transaction.
pub(super) fn insert_action(
    conn: &Connection,
    record: &ActionRecord,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO reminder_actions (reminder_id, action, actor, at, detail) \
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        record.reminder_id.to_string(),
        record.action.as_str(),
        record.actor.as_str(),
        ms(at),
        record.detail,
    ])?;
    Ok(())
}

/// A row of `ACTION_COLS`.
pub(super) fn action_from_row(row: &SqliteRow) -> Result<ReminderAction, StoreError> {
    let action: String = row.try_get(0)?;
    Ok(ReminderAction {
        action: stored_action(&action)?,
        actor: row.try_get(1)?,
        at: from_ms(row.try_get(2)?)?,
        detail: row.try_get(3)?,
    })
}
