//! `duecall demo` as a new user runs it: it finishes on its own, well within
//! a minute, and its summary table says what the database holds.

use std::collections::HashMap;
use std::time::Duration;

use duecall::store::ListQuery;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_settles_and_its_summary_matches_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_duecall"))
        .args(["demo", "--dir", "data"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the demo finishes within a minute")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The table: ref, customer (two words at most), amount, currency, status, attempts, result.
    let table: HashMap<String, (String, u32, String)> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Summary"))
        .filter(|l| l.starts_with("demo-"))
        .map(|l| {
            let cols: Vec<&str> = l
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(cols.len(), 6, "{l}");
            (
                cols[0].to_owned(),
                (
                    cols[3].to_owned(),
                    cols[4].parse().unwrap(),
                    cols[5].to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(table.len(), 13, "{stdout}");

    let url = format!("sqlite://{}", dir.path().join("data/duecall.db").display());
    let store = duecall::store::connect(&url, 2).await.unwrap();
    let page = store
        .list_reminders(&ListQuery {
            status: None,
            limit: 100,
            after: None,
            search: None,
        })
        .await
        .unwrap();
    assert_eq!(page.reminders.len(), 13);
    let mut reached_retry = false;
    let mut rescued = false;
    for r in &page.reminders {
        let reference = r.external_id.clone().unwrap();
        let (status, attempts, result) = &table[&reference];
        assert_eq!(status, r.status.as_str(), "{reference}");
        assert_eq!(*attempts, r.attempt_count, "{reference}");
        match &r.outcome {
            Some(o) if r.status.as_str() == "completed" => {
                assert!(
                    result.starts_with(o.result.as_str()),
                    "{reference}: {result}"
                )
            }
            _ => assert_eq!(
                Some(result.as_str()),
                r.skip_reason.as_deref(),
                "{reference}"
            ),
        }
        // Every reminder ended: nothing live, nothing waiting.
        assert!(
            matches!(r.status.as_str(), "completed" | "cancelled" | "failed"),
            "{reference}"
        );
        assert_eq!(r.next_attempt_at, None, "{reference}");
        let attempts = store.list_attempts(r.id).await.unwrap();
        assert_eq!(attempts.len() as u32, r.attempt_count, "{reference}");
        let first = &attempts[0];
        if r.status.as_str() == "completed" && r.attempt_count > 1 {
            match (&first.outcome, &first.failure) {
                (Some(o), _) if o.result.as_str() == "no_answer" => reached_retry = true,
                (_, Some(f)) if f.reason.as_deref() == Some("call_timeout") => rescued = true,
                _ => {}
            }
        }
    }
    // Someone else answered demo-13's first call: tried again, then reached.
    let by_ref = |reference: &str| {
        page.reminders
            .iter()
            .find(|r| r.external_id.as_deref() == Some(reference))
            .unwrap()
            .id
    };
    let third_party = store.list_attempts(by_ref("demo-13")).await.unwrap();
    assert_eq!(
        third_party[0].outcome.as_ref().unwrap().result.as_str(),
        "not_available"
    );
    assert_eq!(table["demo-13"].0, "completed");
    assert!(table["demo-13"].1 >= 2);
    // demo-07 asked to be called back: its next call came no earlier than asked.
    let callback = store.list_attempts(by_ref("demo-07")).await.unwrap();
    let asked = callback[0]
        .outcome
        .as_ref()
        .and_then(|o| o.callback_at)
        .expect("a callback time");
    assert!(callback.len() >= 2, "called back");
    assert!(callback[1].dispatched_at >= asked, "{callback:?}");
    assert!(
        stdout.contains("Called back at the time they asked: demo-07."),
        "{stdout}"
    );
    assert!(reached_retry, "at least one retry after no answer");
    assert!(rescued, "at least one timeout rescue");
    assert!(
        stdout.contains("data/duecall.db"),
        "it says where the data lives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_keeps_its_dashboard_open_until_interrupted() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duecall"))
        .args(["demo", "--serve", "--dir", "data"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let dashboard = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("The dashboard: ") {
                return rest.to_owned();
            }
        }
        panic!("the demo ended without offering its dashboard");
    })
    .await
    .expect("the demo settles within a minute");
    duecall::install_crypto();
    // "http://127.0.0.1:PORT/  password: demo-…"
    let (url, password) = dashboard.split_once("  password: ").unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{url}login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([("name", "Demo Operator"), ("password", password.trim())])
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let all = html
        .split("<li data-status=\"all\"")
        .nth(1)
        .and_then(|li| li.split("<span class=\"count\">").nth(1))
        .and_then(|c| c.split('<').next())
        .expect("the total");
    assert_eq!(all, "13", "the demo's thirteen reminders");
    assert!(html.contains("demo-01"));

    // Ctrl-C ends it cleanly.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("it stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
