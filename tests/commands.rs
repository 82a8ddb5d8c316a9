//! The command line as a user runs it: `duecall tick` runs one tick and prints
//! its counts; `duecall serve` ticks by itself and stops cleanly on SIGTERM.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::fake_livekit::FakeLiveKit;
use duecall::domain::{CreateDefaults, Language, NewReminder, ReminderId, Status, TimeZone};
use serde_json::{json, Value};

/// A SQLite database in a temp dir holding one reminder due now.
async fn db_with_one_due() -> (tempfile::TempDir, String, ReminderId) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("duecall.db").display());
    let store = duecall::store::connect(&url, 2).await.unwrap();
    let defaults = CreateDefaults {
        zone_policy: duecall::domain::ZonePolicy::All,
        timezone: TimeZone::parse("America/New_York").unwrap(),
        language: Language::parse("en").unwrap(),
        max_attempts: 3,
    };
    let body = common::reminder_body(json!({}));
    let new = NewReminder::parse(body.as_object().unwrap(), &defaults).unwrap();
    let id = ReminderId::new();
    store
        .create_reminder(&new, id, chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    (dir, url, id)
}

fn command(sub: &str, dir: &tempfile::TempDir, vars: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_duecall"));
    cmd.arg(sub);
    // A clean environment, in a directory with no .env: only what the test says.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CALLING_WINDOW", "00:00-23:59")
        .env("CALLING_DAYS", "Mon-Sun")
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_runs_one_tick_and_prints_its_counts() {
    let lk = FakeLiveKit::start().await;
    let (dir, url, id) = db_with_one_due().await;

    // Without a dialer nobody is called, and it says so.
    let out = command("tick", &dir, &[("DATABASE_URL", &url)])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts["dispatched"], 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("DIALER is none"));

    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("LIVEKIT_URL", lk.url()),
        ("LIVEKIT_API_KEY", lk.api_key()),
        ("LIVEKIT_API_SECRET", lk.api_secret()),
    ];
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        command("tick", &dir, &vars).output(),
    )
    .await
    .expect("tick finishes")
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        counts,
        json!({"timed_out": 0, "dispatched": 1, "dispatch_failed": 0, "deferred": 0,
               "suppressed": 0, "no_lawful_calling_time": 0,
           "promises_kept": 0, "promises_broken": 0})
    );
    assert_eq!(lk.dispatches().len(), 1);
    assert_eq!(lk.dispatches()[0].room, format!("reminder-{id}-1"));
    // The log names the reminder, never the phone number.
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains(&id.to_string()), "{logs}");
    assert!(!logs.contains("+12125550100"), "{logs}");

    // A bad setting is one clear line, not a tick.
    let out = command(
        "tick",
        &dir,
        &[("DATABASE_URL", &url), ("DISPATCH_TIMEOUT_SECS", "soon")],
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DISPATCH_TIMEOUT_SECS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_ticks_by_itself_and_stops_on_sigterm() {
    let lk = FakeLiveKit::start().await;
    let (dir, url, id) = db_with_one_due().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = command(
        "serve",
        &dir,
        &[
            ("DATABASE_URL", &url),
            ("BIND_ADDR", &bind),
            ("WEBHOOK_SECRET", common::WEBHOOK_SECRET),
            ("DUECALL_API_KEY", common::API_KEY),
            ("SCHEDULER_INTERVAL_SECS", "1"),
            ("LIVEKIT_URL", lk.url()),
            ("LIVEKIT_API_KEY", lk.api_key()),
            ("LIVEKIT_API_SECRET", lk.api_secret()),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();

    // The built-in ticker dispatches it, with no cron call.
    let dispatched = tokio::time::timeout(Duration::from_secs(20), async {
        while lk.dispatches().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(dispatched.is_ok(), "the ticker dispatched nothing in 20 s");
    assert_eq!(lk.dispatches()[0].room, format!("reminder-{id}-1"));

    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stops within 20 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");

    let store = duecall::store::connect(&url, 2).await.unwrap();
    let r = store.get_reminder(id).await.unwrap().unwrap();
    assert_eq!(r.status, Status::InProgress);
    assert_eq!(r.attempt_count, 1);
    assert_eq!(
        lk.dispatches().len(),
        1,
        "ticked many times, dispatched once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_one_structured_log_line() {
    let (dir, url, id) = db_with_one_due().await;
    let store = duecall::store::connect(&url, 2).await.unwrap();
    let dispatched = chrono::Utc::now() - chrono::Duration::minutes(11);
    assert_eq!(
        store
            .claim(&[id], dispatched, 10, &common::any_time_rules())
            .await
            .unwrap()
            .claimed
            .len(),
        1
    );
    drop(store);

    let out = command("tick", &dir, &[("DATABASE_URL", &url)])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts["timed_out"], 1);
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("call timed out"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let line = lines[0];
    for field in [
        format!("reminder_id={id}"),
        "attempt=1".to_owned(),
        "was=in_progress".to_owned(),
        "WARN".to_owned(),
    ] {
        assert!(line.contains(&field), "{field} in {line}");
    }
    assert!(!logs.contains("+12125550100"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line() {
    let (dir, url, id) = db_with_one_due().await;
    let store = duecall::store::connect(&url, 2).await.unwrap();
    let dispatched = chrono::Utc::now() - chrono::Duration::minutes(11);
    assert_eq!(
        store
            .claim(&[id], dispatched, 10, &common::any_time_rules())
            .await
            .unwrap()
            .claimed
            .len(),
        1
    );
    drop(store);

    let out = command(
        "tick",
        &dir,
        &[("DATABASE_URL", &url), ("LOG_FORMAT", "json")],
    )
    .output()
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let timeout = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("call timed out"))
        })
        .expect("the timeout line");
    assert_eq!(timeout["level"], "WARN");
    assert_eq!(timeout["fields"]["reminder_id"], id.to_string());
    assert_eq!(timeout["fields"]["was"], "in_progress");
    assert!(timeout["timestamp"].is_string());

    let out = command(
        "tick",
        &dir,
        &[("DATABASE_URL", &url), ("LOG_FORMAT", "xml")],
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOG_FORMAT"));
}

#[tokio::test]
async fn init_writes_every_secret_once_and_serve_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = command("init", &dir, &[]).output().await.unwrap();
    assert!(out.status.success());
    let env_file = dir.path().join(".env");
    let text = std::fs::read_to_string(&env_file).unwrap();
    let vars: std::collections::HashMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for name in [
        "WEBHOOK_SECRET",
        "DUECALL_API_KEY",
        "CRON_SECRET",
        "DASHBOARD_PASSWORD",
    ] {
        assert!(vars.get(name).is_some_and(|v| v.len() >= 12), "{name}");
    }
    // What init wrote is a configuration `serve` accepts as it is.
    let config = duecall::config::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    config.check_serve().unwrap();
    assert!(config.dashboard_password.is_some());
    // A second run keeps the secrets.
    let out = command("init", &dir, &[]).output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_of_any_length_are_accepted_no_more() {
    // Issue 12, item 15: `serve` refuses a bearer secret shorter than 32 characters.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("duecall.db").display());
    for (var, short) in [
        ("DUECALL_API_KEY", "short-key-qzx"),
        ("CRON_SECRET", "cron-secret-31-characters-long!"),
    ] {
        let mut vars = vec![
            ("DATABASE_URL", url.as_str()),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("WEBHOOK_SECRET", common::WEBHOOK_SECRET),
            ("DUECALL_API_KEY", common::API_KEY),
        ];
        vars.retain(|(k, _)| *k != var);
        vars.push((var, short));
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            command("serve", &dir, &vars).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("serve started with a {}-character {var}", short.len()))
        .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{var}: must be at least 32 characters")),
            "{stderr}"
        );
        assert!(!stderr.contains(short), "the secret was printed: {stderr}");
    }
}
