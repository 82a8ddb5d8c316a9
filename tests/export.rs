//! `GET /api/reminders/export.csv`, black-box through HTTP on both databases:
//! the export holds every reminder the list holds, in the list's order, each
//! row reading what the reminder's JSON reads; its filter and its refusals are
//! the list's; a storage failure is a JSON 500 before the first row and a
//! truncated transfer after it.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// More than two of the export's pages (500) and six of the list's (200).
const REMINDERS: usize = 1_200;

async fn export(app: &TestApp, query: &str) -> reqwest::Response {
    app.api(
        reqwest::Method::GET,
        &format!("/api/reminders/export.csv{query}"),
    )
    .send()
    .await
    .unwrap()
}

/// An export that must succeed: its header and its rows, by column name.
async fn export_rows(app: &TestApp, query: &str) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let resp = export(app, query).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"reminders.csv\""
    );
    parse(&resp.text().await.unwrap())
}

fn parse(text: &str) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), header.len());
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}

/// Every page of `GET /api/reminders` (with `filter`), in order.
async fn list_all(app: &TestApp, filter: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/reminders?limit=200{filter}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app
            .api(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.extend(page["reminders"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// What a column must read for a reminder as its JSON shows it.
fn expected_cell(r: &Value, column: &str) -> String {
    if column == "amount_owed_minor" {
        let owed =
            r["amount_due_minor"].as_i64().unwrap() - r["amount_paid_minor"].as_i64().unwrap();
        return owed.max(0).to_string();
    }
    let v = if let Some(field) = column.strip_prefix("outcome_") {
        &r["outcome"][field]
    } else if let Some(field) = column.strip_prefix("promise_") {
        &r["promise"][field]
    } else {
        &r[column]
    };
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(zones) => zones
            .iter()
            .map(|z| z.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .api(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `n` reminders (a multiple of 50) in batches of 50 made at once (so many
/// share a `created_at` and the id breaks the tie), a second apart; every
/// tenth cancelled, one paid in part, one paid in full; and one more, newest,
/// after a completed call. Their ids: (paid in part, paid in full, called).
async fn populate(app: &TestApp, n: usize) -> (String, String, String) {
    let mut ids = Vec::with_capacity(n);
    for batch in 0..n / 50 {
        app.clock.advance(chrono::Duration::seconds(1));
        let made: Vec<String> = futures_util::stream::iter(0..50)
            .map(|i| async move {
                let n = batch * 50 + i;
                let resp = app
                    .create(reminder_body(json!({
                        "external_id": format!("inv-{n}"),
                        "customer_name": format!("Customer {n}"),
                        "amount_due_minor": 1000 + n,
                        "metadata": {"row": n, "note": "a, \"b\""},
                    })))
                    .await;
                assert_eq!(resp.status(), 201);
                let body: Value = resp.json().await.unwrap();
                body["id"].as_str().unwrap().to_owned()
            })
            .buffered(8)
            .collect()
            .await;
        ids.extend(made);
    }
    for id in ids.iter().step_by(10) {
        let (status, _) = post(app, &format!("/api/reminders/{id}/cancel"), json!({})).await;
        assert_eq!(status, 200);
    }
    let partly = ids[1].clone();
    let (status, _) = post(
        app,
        &format!("/api/reminders/{partly}/payments"),
        json!({"amount_minor": 400}),
    )
    .await;
    assert_eq!(status, 201);
    let fully = ids[2].clone();
    let (status, body) = post(
        app,
        &format!("/api/reminders/{fully}/payments"),
        json!({"amount_minor": 1002}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["reminder"]["skip_reason"], "paid");

    // A call that ended in a promise, with a name and a transcript that need
    // quoting (a name holds no line break: create refuses control characters).
    app.clock.advance(chrono::Duration::seconds(1));
    let called = app
        .live_reminder(json!({"external_id": "inv-called",
            "customer_name": "Lovelace, Ada \"The Countess\""}))
        .await;
    let body = event(
        "call_completed",
        called,
        json!({"outcome": {"result": "payment_promised", "promised_amount_minor": 6000,
            "promised_date": "2026-12-10", "summary": "Promised, \"on Friday\"",
            "transcript": "agent: Hello\nuser: I'll pay, on Friday\r\nagent: \"Thanks\"",
            "duration_seconds": 42}}),
    );
    assert_eq!(app.send_event(&msg_id(), &body).await.status(), 200);
    (partly, fully, called.to_string())
}

async fn the_export_holds_every_reminder_the_list_holds(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (partly, fully, called) = populate(&app, REMINDERS).await;

    let listed = list_all(&app, "").await;
    assert_eq!(listed.len(), REMINDERS + 1);
    let (header, rows) = export_rows(&app, "").await;

    // Every field of the reminder's JSON is a column (the outcome's flattened),
    // and nothing else but what is owed.
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let props = |name: &str| -> BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let mut want: BTreeSet<String> = props("Reminder");
    want.remove("outcome");
    want.extend(props("Outcome").into_iter().map(|k| format!("outcome_{k}")));
    want.remove("promise");
    want.extend(props("Promise").into_iter().map(|k| format!("promise_{k}")));
    want.insert("amount_owed_minor".into());
    let have: BTreeSet<String> = header.iter().cloned().collect();
    assert_eq!(have, want);
    assert_eq!(have.len(), header.len(), "no column twice: {header:?}");
    assert_eq!(header[0], "id");

    // The same reminders in the same order, every cell what the JSON reads.
    let exported: Vec<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    let in_list: Vec<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(exported, in_list);
    for (row, json) in rows.iter().zip(&listed) {
        for column in &header {
            assert_eq!(
                row[column],
                expected_cell(json, column),
                "{column} of {}",
                row["id"]
            );
        }
    }

    // A few cells spelt out, so the comparison above is not only with itself.
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap();
    let p = by_id(&partly);
    assert_eq!(
        (
            p["amount_due_minor"].as_str(),
            p["amount_paid_minor"].as_str()
        ),
        ("1001", "400")
    );
    assert_eq!(p["amount_owed_minor"], "601");
    let f = by_id(&fully);
    assert_eq!(f["status"], "cancelled");
    assert_eq!(f["skip_reason"], "paid");
    assert_eq!(f["amount_owed_minor"], "0");
    let c = by_id(&called);
    assert_eq!(rows[0]["id"], called, "newest first");
    assert_eq!(c["customer_name"], "Lovelace, Ada \"The Countess\"");
    assert_eq!(c["status"], "completed");
    assert_eq!(c["outcome_result"], "payment_promised");
    assert_eq!(c["outcome_promised_amount_minor"], "6000");
    assert_eq!(c["outcome_promised_date"], "2026-12-10");
    assert_eq!(c["promise_amount_minor"], "6000");
    assert_eq!(c["promise_date"], "2026-12-10");
    assert_eq!(c["promise_status"], "open");
    assert_eq!(c["promise_follow_up_id"], "");
    assert_eq!(c["follow_up_of"], "");
    assert_eq!(c["outcome_summary"], "Promised, \"on Friday\"");
    assert_eq!(
        c["outcome_transcript"],
        "agent: Hello\nuser: I'll pay, on Friday\r\nagent: \"Thanks\""
    );
    assert_eq!(c["outcome_duration_seconds"], "42");
    assert_eq!(c["calling_zones"], "America/New_York");
    assert_eq!(c["timezone"], "", "none was given");
    assert_eq!(c["outcome_callback_at"], "");
    // (Made at the same moment as the rest of its batch: where it sorts among
    // them is the id's to say.)
    let first_made = rows.iter().find(|r| r["external_id"] == "inv-0").unwrap();
    assert_eq!(first_made["customer_name"], "Customer 0");
    assert_eq!(first_made["status"], "cancelled", "every tenth was");
    assert!(
        first_made["metadata"].contains(r#""note":"a, \"b\"""#),
        "{}",
        first_made["metadata"]
    );
    assert_eq!(first_made["outcome_result"], "");

    // The status filter is the list's.
    for status in ["cancelled", "pending", "completed", "failed"] {
        let listed: Vec<String> = list_all(&app, &format!("&status={status}"))
            .await
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let (_, rows) = export_rows(&app, &format!("?status={status}")).await;
        let exported: Vec<String> = rows.iter().map(|r| r["id"].clone()).collect();
        assert_eq!(exported, listed, "{status}");
        assert!(rows.iter().all(|r| r["status"] == status), "{status}");
    }
    // Every tenth cancelled, and the one paid in full; the called one completed.
    let (_, cancelled) = export_rows(&app, "?status=cancelled").await;
    assert_eq!(cancelled.len(), REMINDERS / 10 + 1);
    let (_, completed) = export_rows(&app, "?status=completed").await;
    assert_eq!(completed.len(), 1);
    // Nothing matches: the header alone.
    let (header, failed) = export_rows(&app, "?status=failed").await;
    assert!(failed.is_empty());
    assert_eq!(header[0], "id");
    app.stop().await;
}

both_backends!(
    the_export_holds_every_reminder_the_list_holds,
    the_export_holds_every_reminder_the_list_holds
);

/// The JSON error of a refused export.
async fn refused(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

async fn refusals_are_the_lists_before_any_row(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.create(reminder_body(json!({}))).await.status(), 201);

    for (query, field) in [
        ("?status=bogus", "status"),
        ("?status=", "status"),
        ("?limit=10", "limit"),
        ("?cursor=abc", "cursor"),
    ] {
        let body = refused(export(&app, query).await, 400).await;
        assert_eq!(body["error"]["code"], "invalid_field", "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    // The list answers the bad status the same way.
    let list = app
        .api(reqwest::Method::GET, "/api/reminders?status=bogus")
        .send()
        .await
        .unwrap();
    let listed = refused(list, 400).await;
    let exported = refused(export(&app, "?status=bogus").await, 400).await;
    assert_eq!(listed, exported);

    let anonymous = app
        .client
        .get(app.url("/api/reminders/export.csv"))
        .send()
        .await
        .unwrap();
    let body = refused(anonymous, 401).await;
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = app
        .client
        .get(app.url("/api/reminders/export.csv"))
        .bearer_auth("not-the-key")
        .send()
        .await
        .unwrap();
    refused(wrong, 401).await;

    // The route is not taken for a reminder's id, nor the other way round.
    let (header, rows) = export_rows(&app, "").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(header.len(), rows[0].len());
    let one = app
        .api(
            reqwest::Method::GET,
            &format!("/api/reminders/{}", rows[0]["id"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let (status, body) = post(&app, "/api/reminders/export.csv/cancel", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let posted = app
        .api(reqwest::Method::POST, "/api/reminders/export.csv")
        .send()
        .await
        .unwrap();
    refused(posted, 405).await;
    app.stop().await;
}

both_backends!(
    refusals_are_the_lists_before_any_row,
    refusals_are_the_lists_before_any_row
);

/// A row the store cannot read: in the first page the export is a JSON 500;
/// in a later page the rows already sent stand and the transfer is cut.
async fn a_storage_failure_is_a_500_or_a_cut_transfer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    populate(&app, 600).await;
    let order: Vec<String> = list_all(&app, "")
        .await
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let unreadable = |id: &str| {
        format!(r#"UPDATE reminders SET outcome = '{{"result": "bogus"}}' WHERE id = '{id}'"#)
    };

    // In the second page (rows 501 to 601).
    app.db.execute(&unreadable(&order[550])).await;
    // The connection is closed at the failure: what was still in the
    // server's buffers is lost with it, sometimes the status line too (the
    // client then hears an empty reply). Either way the client knows.
    let mut got = Vec::new();
    let sent = app
        .api(reqwest::Method::GET, "/api/reminders/export.csv")
        .send()
        .await;
    let cut = match sent {
        Err(_) => true,
        Ok(mut resp) => {
            assert_eq!(resp.status(), 200, "the first page was readable");
            loop {
                match resp.chunk().await {
                    Ok(Some(bytes)) => got.extend_from_slice(&bytes),
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            }
        }
    };
    assert!(cut, "the transfer must end abruptly, not as a whole file");
    // What did arrive is the start of the export, and nothing of the page
    // that failed (the last row may be cut anywhere).
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(got.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().filter_map(Result::ok).collect();
    assert!(records.len() <= 500, "{} rows", records.len());
    for (record, id) in records.iter().zip(&order) {
        if record.len() == reader.headers().unwrap().len() {
            assert_eq!(&record[0], id.as_str());
        }
    }

    // In the first page: nothing sent but the JSON error.
    app.db.execute(&unreadable(&order[3])).await;
    let body = refused(export(&app, "").await, 500).await;
    assert_eq!(body["error"]["code"], "storage_error");
    app.stop().await;
}

both_backends!(
    a_storage_failure_is_a_500_or_a_cut_transfer,
    a_storage_failure_is_a_500_or_a_cut_transfer
);
