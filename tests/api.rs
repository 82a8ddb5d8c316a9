//! Black-box tests of the reminders API and the operating routes, through HTTP
//! against the real service on port 0, on both databases.

mod common;

use common::{reminder_body, Backend, TestApp, API_KEY};
use duecall::domain::ReminderId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const REMINDER_KEYS: &[&str] = &[
    "id",
    "external_id",
    "customer_name",
    "phone_number",
    "timezone",
    "language",
    "amount_due_minor",
    "amount_paid_minor",
    "currency",
    "due_date",
    "status",
    "attempt_count",
    "max_attempts",
    "next_attempt_at",
    "last_attempt_at",
    "skip_reason",
    "outcome",
    "metadata",
    "created_at",
    "updated_at",
    "debt_ref",
    "region",
    "calling_zones",
    "deferred_by",
    "promise",
    "follow_up_of",
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

async fn error_of(resp: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json",
        "errors are JSON"
    );
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

async fn health_and_readiness(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["database"],
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    let r = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    let body = error_of(r, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"]["code"], "not_found");
    let r = app.client.delete(app.url("/healthz")).send().await.unwrap();
    error_of(r, StatusCode::METHOD_NOT_ALLOWED).await;
    app.stop().await;
}

async fn every_api_route_needs_the_key(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = ReminderId::new();
    let routes = [
        (Method::POST, "/api/reminders".to_owned()),
        (Method::GET, "/api/reminders".to_owned()),
        (Method::GET, format!("/api/reminders/{id}")),
        (Method::POST, format!("/api/reminders/{id}/cancel")),
    ];
    for (method, path) in routes {
        for auth in [
            None,
            Some("Bearer wrong-key"),
            Some(&*format!("Basic {API_KEY}")),
            Some("Bearer"),
        ] {
            let mut req = app
                .client
                .request(method.clone(), app.url(&path))
                .json(&reminder_body(json!({})));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            let body = error_of(resp, StatusCode::UNAUTHORIZED).await;
            assert_eq!(
                body["error"]["code"], "unauthorized",
                "{method} {path} {auth:?}"
            );
        }
    }
    // Nothing was created by the refused requests.
    let list: Value = app
        .api(Method::GET, "/api/reminders")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["reminders"], json!([]));
    app.stop().await;
}

async fn create_get_and_idempotency(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let resp = app
        .create(reminder_body(
            json!({"external_id": "inv-1042", "metadata": {"plan": "gold"}}),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(
        keys(&created),
        sorted(REMINDER_KEYS),
        "the reminder reads as SPEC §5 says"
    );
    assert_eq!(
        location,
        format!("/api/reminders/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["status"], "pending");
    assert_eq!(created["attempt_count"], 0);
    assert_eq!(created["max_attempts"], 3);
    assert_eq!(created["timezone"], Value::Null, "none was given");
    assert_eq!(
        created["calling_zones"],
        json!(["America/New_York"]),
        "the number's"
    );
    assert_eq!(created["debt_ref"], created["external_id"]);
    assert_eq!(created["deferred_by"], Value::Null);
    assert_eq!(created["language"], "en");
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["due_date"], "2026-12-01");
    assert_eq!(created["amount_due_minor"], 12345);
    assert_eq!(created["next_attempt_at"], "2026-11-24T15:00:00Z");
    assert_eq!(created["created_at"], "2026-11-24T15:00:00Z");
    assert_eq!(created["last_attempt_at"], Value::Null);
    assert_eq!(created["outcome"], Value::Null);
    assert_eq!(created["metadata"], json!({"plan": "gold"}));

    let got: Value = app
        .api(Method::GET, &location)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut without_attempts = got.clone();
    assert_eq!(
        without_attempts.as_object_mut().unwrap().remove("attempts"),
        Some(json!([]))
    );
    assert_eq!(
        without_attempts.as_object_mut().unwrap().remove("payments"),
        Some(json!([]))
    );
    assert_eq!(
        without_attempts.as_object_mut().unwrap().remove("actions"),
        Some(json!([])),
        "no operator has acted on it"
    );
    assert_eq!(without_attempts, created);

    // The same external_id: 200 with the existing reminder, even with other fields.
    app.clock.advance(chrono::Duration::minutes(1));
    let resp = app
        .create(reminder_body(
            json!({"external_id": "inv-1042", "amount_due_minor": 1}),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), created);

    // Optional fields are honoured.
    let resp = app
        .create(reminder_body(json!({
            "timezone": "Europe/Paris", "language": "fr", "max_attempts": 5,
            "scheduled_for": "2026-11-25T09:00:00+01:00", "currency": "eur"
        })))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["timezone"], "Europe/Paris");
    assert_eq!(r["language"], "fr");
    assert_eq!(r["max_attempts"], 5);
    assert_eq!(r["currency"], "EUR");
    assert_eq!(r["next_attempt_at"], "2026-11-25T08:00:00Z");
    assert_eq!(r["external_id"], Value::Null);
    app.stop().await;
}

async fn create_refuses_bad_input(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let field_cases = [
        (json!({"customer_name": null}), "customer_name"),
        (json!({"phone_number": "555-0100"}), "phone_number"),
        (json!({"amount_due_minor": -5}), "amount_due_minor"),
        (json!({"amount_due_minor": 1e30}), "amount_due_minor"),
        (json!({"currency": "DOLLARS"}), "currency"),
        (json!({"due_date": "next week"}), "due_date"),
        (json!({"timezone": "Nowhere/Town"}), "timezone"),
        (json!({"max_attempts": 99}), "max_attempts"),
        (json!({"metadata": "x"}), "metadata"),
        (json!({"scheduled_for": "2026-11-25"}), "scheduled_for"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (overrides, field) in field_cases {
        let resp = app.create(reminder_body(overrides.clone())).await;
        let body = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "invalid_field", "{overrides}");
        assert_eq!(body["error"]["field"], field, "{overrides}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(field));
    }
    for raw in [
        "not json",
        "[1,2]",
        "",
        "{\"customer_name\": \"A\"",
        "\u{0}",
    ] {
        let resp = app
            .api(Method::POST, "/api/reminders")
            .header("content-type", "application/json")
            .body(raw.to_owned())
            .send()
            .await
            .unwrap();
        let body = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["code"], "invalid_json", "{raw:?}");
    }
    // Invalid UTF-8.
    let resp = app
        .api(Method::POST, "/api/reminders")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    error_of(resp, StatusCode::BAD_REQUEST).await;
    // Too large, declared and chunked.
    let big = reminder_body(json!({"metadata": {"blob": "x".repeat(70 * 1024)}}));
    let resp = app.create(big.clone()).await;
    let body = error_of(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (status, text) = common::raw_post(
        &app,
        "/api/reminders",
        &serde_json::to_vec(&big).unwrap(),
        true,
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    // Metadata that fits the body but not the metadata limit.
    let resp = app
        .create(reminder_body(
            json!({"metadata": {"blob": "x".repeat(20 * 1024)}}),
        ))
        .await;
    let body = error_of(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"]["field"], "metadata");

    let list: Value = app
        .api(Method::GET, "/api/reminders")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["reminders"], json!([]), "nothing half-written");
    app.stop().await;
}

async fn get_unknown_is_404(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in [
        format!("/api/reminders/{}", ReminderId::new()),
        "/api/reminders/not-a-uuid".to_owned(),
        format!("/api/reminders/{}/cancel", ReminderId::new()),
        "/api/reminders/12345/cancel".to_owned(),
    ] {
        let method = if path.ends_with("cancel") {
            Method::POST
        } else {
            Method::GET
        };
        let resp = app.api(method, &path).send().await.unwrap();
        let body = error_of(resp, StatusCode::NOT_FOUND).await;
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    app.stop().await;
}

async fn list_paginates_and_filters(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        app.clock.advance(chrono::Duration::seconds(1));
        let r: Value = app
            .create(reminder_body(json!({"external_id": format!("inv-{i}")})))
            .await
            .json()
            .await
            .unwrap();
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first

    let mut seen = Vec::new();
    let mut path = "/api/reminders?limit=2".to_owned();
    loop {
        let page: Value = app
            .api(Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for r in page["reminders"].as_array().unwrap() {
            assert_eq!(keys(r), sorted(REMINDER_KEYS));
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/reminders?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let resp = app
        .api(Method::POST, &format!("/api/reminders/{}/cancel", ids[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = app
        .api(Method::GET, "/api/reminders?status=cancelled")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got: Vec<&str> = page["reminders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[1].as_str()]);
    assert_eq!(page["next_cursor"], Value::Null);

    for (query, field) in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=abc", "limit"),
        ("cursor=garbage", "cursor"),
        // Empty is not a value (schemathesis found these accepted against the description).
        ("status=", "status"),
        ("limit=", "limit"),
    ] {
        let resp = app
            .api(Method::GET, &format!("/api/reminders?{query}"))
            .send()
            .await
            .unwrap();
        let body = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    app.stop().await;
}

async fn cancel_follows_the_state_machine(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r: Value = app
        .create(reminder_body(json!({})))
        .await
        .json()
        .await
        .unwrap();
    let id = r["id"].as_str().unwrap();
    app.clock.advance(chrono::Duration::minutes(2));
    let resp = app
        .api(Method::POST, &format!("/api/reminders/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cancelled: Value = resp.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["next_attempt_at"], Value::Null);
    assert_eq!(cancelled["skip_reason"], "cancelled_by_operator");
    assert_eq!(cancelled["updated_at"], "2026-11-24T15:02:00Z");
    assert_eq!(cancelled["attempts"], json!([]));
    // Again: nothing changes, the answer is the same.
    app.clock.advance(chrono::Duration::minutes(2));
    let again: Value = app
        .api(Method::POST, &format!("/api/reminders/{id}/cancel"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, cancelled);

    // A live call cannot be cancelled: 409, and the row is untouched.
    let live: Value = app
        .create(reminder_body(json!({})))
        .await
        .json()
        .await
        .unwrap();
    let live_id = ReminderId::parse(live["id"].as_str().unwrap()).unwrap();
    let now = duecall::clock::Clock::now(&app.clock);
    let stored = app
        .state
        .store
        .get_reminder(live_id)
        .await
        .unwrap()
        .unwrap();
    let claim = duecall::domain::claim(&stored, now).unwrap();
    app.state.store.apply(&claim, None).await.unwrap();
    let resp = app
        .api(Method::POST, &format!("/api/reminders/{live_id}/cancel"))
        .send()
        .await
        .unwrap();
    let body = error_of(resp, StatusCode::CONFLICT).await;
    assert_eq!(body["error"]["code"], "invalid_transition");
    let still: Value = app
        .api(Method::GET, &format!("/api/reminders/{live_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "in_progress");
    app.stop().await;
}

async fn storage_failure_is_a_500(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r: Value = app
        .create(reminder_body(json!({})))
        .await
        .json()
        .await
        .unwrap();
    let id = r["id"].as_str().unwrap().to_owned();
    // Break the storage under the running service: its queries now fail.
    let sql = "DROP TABLE attempts";
    match backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
    let resp = app
        .api(Method::GET, &format!("/api/reminders/{id}"))
        .send()
        .await
        .unwrap();
    let body = error_of(resp, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(body["error"]["code"], "storage_error");
    assert!(
        !body.to_string().contains("attempts"),
        "no database details leak to the client"
    );
    // The service lives on.
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

both_backends!(health_readiness_and_unknown_routes, health_and_readiness);
both_backends!(
    every_reminders_route_requires_the_api_key,
    every_api_route_needs_the_key
);
both_backends!(
    create_and_get_and_idempotent_create,
    create_get_and_idempotency
);
both_backends!(
    create_refuses_bad_input_with_the_field_named,
    create_refuses_bad_input
);
both_backends!(unknown_or_malformed_ids_are_404, get_unknown_is_404);
both_backends!(
    list_is_paginated_newest_first_and_filtered,
    list_paginates_and_filters
);
both_backends!(
    cancel_follows_the_state_machine_through_http,
    cancel_follows_the_state_machine
);
both_backends!(
    storage_failure_answers_500_not_a_panic,
    storage_failure_is_a_500
);

// --- issue 12: client input never answers 500 or plain text --------------------

async fn crafted_cursors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    use base64::Engine;
    let id = uuid::Uuid::new_v4();
    // Times far outside what either database stores (PostgreSQL's range ends
    // in year 294276; chrono's in 262143), and just outside 0000–9999.
    for ms in [
        8_210_266_876_799_999i64,
        -8_334_601_228_800_000,
        253_402_300_800_000,
        -62_167_219_200_001,
    ] {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ms}.{id}"));
        let resp = app
            .api(Method::GET, &format!("/api/reminders?cursor={cursor}"))
            .send()
            .await
            .unwrap();
        let body = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["field"], "cursor", "{ms}");
    }
    // A cursor at the edge of the range is just a cursor.
    let edge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}.{id}", 253_402_300_799_999i64));
    let resp = app
        .api(Method::GET, &format!("/api/reminders?cursor={edge}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

both_backends!(
    a_list_cursor_outside_the_storable_range_is_a_400,
    crafted_cursors
);

async fn metadata_text_that_only_looks_like_nul(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // The text `\u0000` (a backslash and five characters) is not a NUL.
    let metadata = json!({"note": "\\u0000", "nested": [{"\\u0000": "x"}]});
    let resp = app
        .create(reminder_body(json!({ "metadata": metadata })))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    let got: Value = app
        .api(Method::GET, &format!("/api/reminders/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["metadata"], metadata, "stored exactly as sent");
    // A real NUL, in a value or a key, at any depth, is still refused.
    for bad in [
        json!({"note": "a\u{0}b"}),
        json!({"deep": {"list": ["ok", "\u{0}"]}}),
        json!({"k\u{0}": 1}),
    ] {
        let resp = app.create(reminder_body(json!({ "metadata": bad }))).await;
        let body = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["field"], "metadata", "{bad}");
    }
    app.stop().await;
}

both_backends!(
    metadata_with_the_text_backslash_u0000_is_accepted,
    metadata_text_that_only_looks_like_nul
);

async fn scheduled_for_past_year_9999(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for at in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+00:01"] {
        let resp = app
            .create(reminder_body(json!({ "scheduled_for": at })))
            .await;
        let body = error_of(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"]["field"], "scheduled_for", "{at}");
    }
    let resp = app
        .create(reminder_body(
            json!({ "scheduled_for": "9999-12-31T23:59:59+00:00" }),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["next_attempt_at"], "9999-12-31T23:59:59Z");
    app.stop().await;
}

both_backends!(
    scheduled_for_outside_years_0000_to_9999_is_a_400,
    scheduled_for_past_year_9999
);

async fn path_not_utf8(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in ["/api/reminders/%FF%FE", "/api/reminders/%C3%28/cancel"] {
        let method = if path.ends_with("cancel") {
            Method::POST
        } else {
            Method::GET
        };
        let resp = app.api(method, path).send().await.unwrap();
        let body = error_of(resp, StatusCode::NOT_FOUND).await;
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    app.stop().await;
}

both_backends!(an_id_path_that_is_not_utf8_answers_json, path_not_utf8);

#[tokio::test]
async fn made_up_method_names_do_not_grow_the_metrics() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let name = format!("XMADEUP{}", "Q".repeat(4_000));
    for i in 0..20 {
        let method = Method::from_bytes(format!("{name}{i}").as_bytes()).unwrap();
        let resp = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("XMADEUP"), "a client named a metrics series");
    assert!(
        text.lines().any(
            |l| l.starts_with("duecall_http_requests_total{") && l.contains("method=\"other\"")
        ),
        "made-up methods are counted as other"
    );
    app.stop().await;
}
