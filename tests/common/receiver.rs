//! A business system's endpoint for notifications (SPEC §9), on loopback:
//! it checks every signature against both secrets of a rotation, records each
//! request, and answers as told.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use duecall::webhook::WebhookSecrets;
use serde_json::Value;

/// Two secrets, as during a rotation: every notification carries a signature by each.
pub const NOTIFY_SECRET_A: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const NOTIFY_SECRET_B: &str = "whsec_dGhpcyBpcyB0aGUgc2Vjb25kIHNlY3JldCE=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Status(u16),
    /// Never answer (the service's try times out).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Got {
    pub id: String,
    pub body: Value,
}

/// A business system's endpoint: checks every signature against both
/// secrets, records each request, answers as `mode` says.
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Got>>>,
    mode: Arc<Mutex<Mode>>,
    bad_signatures: Arc<Mutex<u32>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener).await
    }

    pub async fn on(listener: tokio::net::TcpListener) -> Self {
        let url = format!("http://{}/hooks/duecall", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Ok));
        let bad = Arc::new(Mutex::new(0));
        let (g, m, b) = (Arc::clone(&got), Arc::clone(&mode), Arc::clone(&bad));
        let app = axum::Router::new().route(
            "/hooks/duecall",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (g, m, b) = (Arc::clone(&g), Arc::clone(&m), Arc::clone(&b));
                async move {
                    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                    let now = chrono::Utc::now().timestamp();
                    // The service's clock is a test's manual one: check the
                    // signature at the timestamp it sent, per secret.
                    let ts: i64 = h("webhook-timestamp")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(now);
                    for secret in [NOTIFY_SECRET_A, NOTIFY_SECRET_B] {
                        let one = WebhookSecrets::parse(secret).unwrap();
                        let signatures = h("webhook-signature").unwrap_or_default();
                        if one
                            .verify(
                                h("webhook-id"),
                                h("webhook-timestamp"),
                                Some(signatures),
                                &body,
                                ts,
                            )
                            .is_err()
                        {
                            *b.lock().unwrap() += 1;
                        }
                    }
                    let id = h("webhook-id").unwrap_or_default().to_owned();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    g.lock().unwrap().push(Got { id, body });
                    let mode = *m.lock().unwrap();
                    match mode {
                        Mode::Ok => StatusCode::NO_CONTENT,
                        Mode::Status(code) => StatusCode::from_u16(code).unwrap(),
                        Mode::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            StatusCode::OK
                        }
                    }
                }
            }),
        );
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            got,
            mode,
            bad_signatures: bad,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub fn bad_signatures(&self) -> u32 {
        *self.bad_signatures.lock().unwrap()
    }
}

pub fn notify_vars(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("NOTIFY_URL", url.to_owned()),
        (
            "NOTIFY_SECRET",
            format!("{NOTIFY_SECRET_A},{NOTIFY_SECRET_B}"),
        ),
    ]
}
