//! SQLite's schema as the writers meet it (migration 0014): no update of any
//! column makes SQLite build a temporary b-tree to check a constraint, and
//! every constraint rewritten for that still refuses what it refused.

mod common;

use common::{load::seed_live, Backend, TestDb};
use duecall::domain::ReminderId;
use rusqlite::{params_from_iter, types::Null, Connection};

/// The migrated database of a fresh store, opened bare (a new connection
/// reads the schema as the file holds it).
async fn migrated() -> (TestDb, Connection) {
    let db = TestDb::new(Backend::Sqlite).await.expect("a SQLite file");
    drop(
        duecall::store::connect(&db.url, 2)
            .await
            .expect("open and migrate"),
    );
    let path = db.url.strip_prefix("sqlite://").expect("a sqlite:// url");
    let conn = Connection::open(path).expect("open the file");
    (db, conn)
}

/// The opcodes of `sql`'s program, with their P4 text (constraint names and
/// messages live there).
fn program(conn: &Connection, sql: &str) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let nulls = vec![Null; stmt.parameter_count()];
    let rows = stmt
        .query_map(params_from_iter(nulls), |row| {
            let p4: Option<String> = row.get::<_, rusqlite::types::Value>(5).map(|v| match v {
                rusqlite::types::Value::Text(t) => Some(t),
                _ => None,
            })?;
            Ok((row.get::<_, String>(1)?, p4.unwrap_or_default()))
        })
        .expect("explain");
    rows.map(|r| r.expect("an opcode")).collect()
}

/// Every table of ours: its name, its key columns (empty: the rowid), and
/// its other columns that a statement can set.
fn tables(conn: &Connection) -> Vec<(String, Vec<String>, Vec<String>)> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names
        .into_iter()
        .map(|name| {
            // table_xinfo: hidden = 2 or 3 for a generated column (never set).
            let cols: Vec<(String, i64, i64)> = conn
                .prepare(&format!(
                    "SELECT name, pk, hidden FROM pragma_table_xinfo('{name}')"
                ))
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = cols
                .iter()
                .filter(|c| c.1 > 0)
                .map(|c| c.0.clone())
                .collect();
            let settable = cols
                .iter()
                .filter(|c| c.1 == 0 && c.2 == 0)
                .map(|c| c.0.clone())
                .collect();
            (name, key, settable)
        })
        .collect()
}

#[tokio::test]
async fn sqlite_no_update_of_any_column_builds_a_temporary_tree() {
    let (_db, conn) = migrated().await;
    let mut offenders = Vec::new();
    let mut checked = 0;
    for (table, key, settable) in tables(&conn) {
        let by = if key.is_empty() {
            "rowid = ?".to_owned()
        } else {
            key.iter()
                .map(|k| format!("\"{k}\" = ?"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        for col in settable {
            let sql = format!("UPDATE \"{table}\" SET \"{col}\" = ? WHERE {by}");
            checked += 1;
            if program(&conn, &sql)
                .iter()
                .any(|(op, _)| op == "OpenEphemeral")
            {
                offenders.push(format!("{table}.{col}"));
            }
        }
    }
    assert!(
        checked >= 50,
        "only {checked} columns: the walk found no tables"
    );
    assert!(
        offenders.is_empty(),
        "an update of these columns builds a temporary b-tree (a CHECK with IN and \
         more than two constants?): {offenders:?}"
    );
    // What the walk would have caught: the constraints as migration 0001 wrote them.
    conn.execute_batch(
        "CREATE TEMP TABLE was (status TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'failed')))",
    )
    .unwrap();
    assert!(
        program(&conn, "UPDATE temp.was SET status = ? WHERE rowid = ?")
            .iter()
            .any(|(op, _)| op == "OpenEphemeral")
    );
}

#[tokio::test]
async fn sqlite_the_rewritten_checks_refuse_what_they_refused() {
    let (db, conn) = migrated().await;
    let id = ReminderId::new();
    seed_live(&db.url, &[id]).await;
    let id = id.to_string();
    let refused = |sql: &str| match conn.execute(sql, [&id]) {
        Err(e) => assert!(
            e.to_string().contains("CHECK constraint failed"),
            "{sql}: refused, but not by its CHECK: {e}"
        ),
        Ok(n) => panic!("{sql}: accepted ({n} rows)"),
    };
    let taken = |sql: &str| {
        let tx = conn.unchecked_transaction().unwrap();
        assert_eq!(
            tx.execute(sql, [&id])
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            1,
            "{sql}"
        );
        // Rolled back: each case starts from the seeded row.
    };
    for status in [
        "pending",
        "in_progress",
        "processing",
        "completed",
        "failed",
        "cancelled",
    ] {
        taken(&format!(
            "UPDATE reminders SET status = '{status}' WHERE id = ?"
        ));
    }
    refused("UPDATE reminders SET status = 'Completed' WHERE id = ?");
    refused("UPDATE reminders SET status = '' WHERE id = ?");
    for status in ["open", "kept", "broken"] {
        taken(&format!(
            "UPDATE reminders SET promise_status = '{status}' WHERE id = ?"
        ));
    }
    taken("UPDATE reminders SET promise_status = NULL WHERE id = ?");
    refused("UPDATE reminders SET promise_status = 'pending' WHERE id = ?");
    for status in ["in_progress", "processing", "completed", "failed"] {
        taken(&format!(
            "UPDATE attempts SET status = '{status}' WHERE reminder_id = ?"
        ));
    }
    refused("UPDATE attempts SET status = 'cancelled' WHERE reminder_id = ?");
    for action in ["cancel", "call_now", "suppress"] {
        taken(&format!(
            "INSERT INTO reminder_actions (reminder_id, action, actor, at) VALUES (?, '{action}', 'a test', 0)"
        ));
    }
    refused("INSERT INTO reminder_actions (reminder_id, action, actor, at) VALUES (?, 'delete', 'a test', 0)");
    conn.execute("INSERT INTO notice_state (no, status, step, next_try_at, created_at) VALUES (1, 'pending', 0, 0, 0)", [])
        .unwrap();
    for status in ["pending", "delivered", "failed"] {
        let n = conn
            .execute(
                &format!("UPDATE notice_state SET status = '{status}' WHERE no = 1"),
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let bad = conn.execute("UPDATE notice_state SET status = 'held' WHERE no = 1", []);
    assert!(
        bad.as_ref()
            .is_err_and(|e| e.to_string().contains("CHECK constraint failed")),
        "{bad:?}"
    );
    // And the file is whole.
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// SQLite's event writer runs its batches on a connection with triggers off
/// and writes the glance's counts itself (`src/store/sqlite/counts.rs`): it
/// stands in for exactly the triggers an event's writes would fire. A new
/// trigger is a new thing those batches must do themselves.
#[tokio::test]
async fn sqlite_the_event_writer_stands_in_for_these_triggers_only() {
    let (_db, conn) = migrated().await;
    let triggers: Vec<(String, String)> = conn
        .prepare("SELECT name, tbl_name FROM sqlite_schema WHERE type = 'trigger' ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let known = [
        // Counted by the event batches (an event updates an attempt and,
        // when it opens a promise, the reminder's promise).
        ("glance_attempt_changed", "attempts"),
        ("glance_promise_changed", "reminders"),
        // On writes an event never makes (new attempts, new reminders,
        // payments, the outbox's delivery states): other jobs, triggers on.
        ("glance_attempt_added", "attempts"),
        ("glance_payment_added", "payments"),
        ("glance_promise_added", "reminders"),
        ("notice_counted", "notice_state"),
    ];
    let mut known: Vec<(String, String)> = known
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    known.sort();
    assert_eq!(
        triggers, known,
        "the triggers changed: SQLite's event batches run without them \
         (src/store/sqlite/counts.rs) — make them do what a new one does, then list it here"
    );
    // And the two it stands in for are still the ones 0010 made, word for
    // word: a new body (another key, condition or amount) is a change to
    // `counts.rs` too.
    let migration = std::fs::read_to_string("migrations/sqlite/0010_glance.sql").unwrap();
    for name in ["glance_attempt_changed", "glance_promise_changed"] {
        let start = migration
            .find(&format!("CREATE TRIGGER {name} "))
            .unwrap_or_else(|| panic!("{name} in 0010"));
        let end = start + migration[start..].find("END;").unwrap() + "END".len();
        let now: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = ?",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            now,
            migration[start..end],
            "{name} is not 0010's any more: make src/store/sqlite/counts.rs count as it does"
        );
    }
}
