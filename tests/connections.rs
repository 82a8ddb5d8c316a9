//! Issue 12, item 11 — "No connection timeouts or limits": every connection is
//! bounded in time (header read, request body, whole request, keep-alive idle)
//! and in number (a cap below the open-file limit), and shutdown has a deadline.
//! Raw sockets on loopback, against the app in-process and the real binary.

mod common;

use std::time::{Duration, Instant};

use common::{serve_binary, Backend, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn spawn(vars: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, vars)
        .await
        .expect("SQLite is always there")
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the server closes the connection (or `within` passes: `None`).
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_timeouts_or_limits_slow_headers_are_cut_off() {
    let app = spawn(&[("HTTP_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = connect(&app).await;
        // Half a request head, and then nothing.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    for s in &mut slow {
        let closed = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(
            closed.is_some(),
            "a slow-header connection was still open after {:?}",
            started.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_timeouts_or_limits_an_idle_keep_alive_connection_is_closed() {
    let app = spawn(&[("HTTP_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive for a next request, but not for ever.
    let started = Instant::now();
    let rest = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(rest.is_some(), "an idle keep-alive connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(500));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_timeouts_or_limits_a_stalled_body_is_cut_off() {
    let app = spawn(&[("HTTP_IDLE_TIMEOUT_SECS", "1")]).await;
    let mut s = connect(&app).await;
    let head = format!(
        "POST /api/reminders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"customer_",
        common::API_KEY
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The other 89 bytes never come.
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("a stalled body held its connection for 5 s");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_unreadable"), "{answer}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_timeouts_or_limits_a_request_has_a_deadline() {
    // A body that trickles in, a byte at a time, never idle for long: only the
    // request's own deadline ends it.
    let app = spawn(&[
        ("HTTP_REQUEST_TIMEOUT_SECS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECS", "30"),
    ])
    .await;
    let (mut rd, mut wr) = connect(&app).await.into_split();
    let head = format!(
        "POST /api/reminders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n",
        common::API_KEY
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b" ").await.is_err() {
                break;
            }
        }
        wr
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("\"unavailable\""),
        "JSON like every answer: {answer}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "answered after {elapsed:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_timeouts_or_limits_connections_beyond_the_cap_wait() {
    let app = spawn(&[
        ("HTTP_MAX_CONNECTIONS", "4"),
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "30"),
    ])
    .await;
    // Four idle connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    assert!(
        client.get(app.url("/healthz")).send().await.is_err(),
        "a fifth connection was served while four were open"
    );
    // One closes: the next one is served.
    drop(idle.pop());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let resp = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

// --- The real binary -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_timeouts_or_limits_idle_sockets_cannot_exhaust_the_file_limit() {
    // 128 open files at most; 300 idle sockets used to take them all, and then
    // nobody (agents' webhooks included) was served: "Too many open files".
    let server = serve_binary(Some(128), &[("HTTP_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "/healthz did not answer behind 300 idle sockets: {e}\n{}",
                server.log()
            )
        });
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(15));
    let log = server.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("HTTP_MAX_CONNECTIONS lowered"), "{log}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_timeouts_or_limits_sigterm_does_not_wait_for_ever() {
    let mut server = serve_binary(
        None,
        &[
            ("SHUTDOWN_TIMEOUT_SECS", "1"),
            ("HTTP_REQUEST_TIMEOUT_SECS", "600"),
            ("HTTP_IDLE_TIMEOUT_SECS", "600"),
        ],
    )
    .await;
    // A request that never finishes: its body never comes.
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /api/reminders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        common::API_KEY
    );
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.sigterm().await;
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .unwrap_or_else(|_| panic!("still running 10 s after SIGTERM:\n{}", server.log()))
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        server.log().contains("shutdown deadline passed"),
        "{}",
        server.log()
    );
    let rest = read_until_closed(&mut s, Duration::from_secs(2)).await;
    assert!(
        rest.is_some(),
        "the unfinished request's connection was left open"
    );
}
