//! The scheduler's metrics: one count per timeout (by the status it timed out
//! from) and per dispatch failure (by step), recorded through the `metrics`
//! facade. A test recorder stands in for the exporter; it is process-global,
//! so this binary holds this one test.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use common::fake_livekit::FakeLiveKit;
use common::{reminder_body, Backend, TestApp};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

#[derive(Default)]
struct Counts(Mutex<HashMap<String, Arc<AtomicU64>>>);

struct Cell(Arc<AtomicU64>);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// "name{label=value,…}" for a key, labels in order.
fn render(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

struct Recorder(Arc<Counts>);

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let cell = Arc::clone(self.0 .0.lock().unwrap().entry(render(key)).or_default());
        Counter::from_arc(Arc::new(Cell(cell)))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Counts {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_count_per_timeout_and_per_dispatch_failure() {
    let counts = Arc::new(Counts::default());
    metrics::set_global_recorder(Recorder(Arc::clone(&counts))).expect("the only recorder");

    let lk = FakeLiveKit::start().await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("LIVEKIT_URL", lk.url()),
            ("LIVEKIT_API_KEY", lk.api_key()),
            ("LIVEKIT_API_SECRET", lk.api_secret()),
        ],
    )
    .await
    .expect("sqlite is always there");
    for _ in 0..3 {
        assert_eq!(
            app.create(reminder_body(serde_json::json!({})))
                .await
                .status(),
            201
        );
    }
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.dispatched, 3);
    assert_eq!(counts.get("duecall_dispatched_total"), 3);

    app.clock.advance(Duration::minutes(10));
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.timed_out, 3);
    assert_eq!(counts.get("duecall_timeouts_total{status=in_progress}"), 3);
    // Nothing left to time out: the count stays.
    app.state.scheduler.tick().await.unwrap();
    assert_eq!(counts.get("duecall_timeouts_total{status=in_progress}"), 3);

    lk.fail_always("CreateRoom", Some("unavailable"));
    assert_eq!(
        app.create(reminder_body(serde_json::json!({})))
            .await
            .status(),
        201
    );
    let report = app.state.scheduler.tick().await.unwrap();
    assert_eq!(report.dispatch_failed, 1);
    assert_eq!(
        counts.get("duecall_dispatch_failures_total{step=create_room}"),
        1
    );
    app.stop().await;
}
