//! PostgreSQL's record of operators' actions (`reminder_actions`): written in
//! the transaction (or the one statement) of the change each one records.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow, Postgres};
use sqlx::{QueryBuilder, Row};

use crate::domain::{ActionRecord, ReminderAction};
use crate::store::{stored_action, StoreError};

/// A data-modifying CTE of `apply_stmt`: the action's row, only if the
/// change's guard let it write (`write` has its row).
pub(super) fn push_action_cte(
    q: &mut QueryBuilder<'_, Postgres>,
    record: &ActionRecord,
    at: DateTime<Utc>,
) {
    q.push(
        ", act AS (INSERT INTO reminder_actions (reminder_id, action, actor, at, detail) SELECT ",
    )
    .push_bind(record.reminder_id.as_uuid())
    .push(", ")
    .push_bind(record.action.as_str())
    .push(", ")
    .push_bind(record.actor.as_str().to_owned())
    .push(", ")
    .push_bind(at)
    .push(", ")
    .push_bind(record.detail.clone())
    .push(" FROM write)");
}

/// One row of a reminder's history, in the caller's transaction.
pub(super) async fn insert_action(
    conn: &mut PgConnection,
    record: &ActionRecord,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reminder_actions (reminder_id, action, actor, at, detail) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(record.reminder_id.as_uuid())
    .bind(record.action.as_str())
    .bind(record.actor.as_str())
    .bind(at)
    .bind(record.detail.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

/// A row of `ACTION_COLS`.
pub(super) fn action_from_row(row: &PgRow) -> Result<ReminderAction, StoreError> {
    let action: String = row.try_get(0)?;
    Ok(ReminderAction {
        action: stored_action(&action)?,
        actor: row.try_get(1)?,
        at: row.try_get(2)?,
        detail: row.try_get(3)?,
    })
}
