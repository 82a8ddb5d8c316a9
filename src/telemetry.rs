//! Metrics in Prometheus's text format at `GET /metrics`, through the
//! `metrics` facade: HTTP requests by route and status, status transitions,
//! timeouts, dispatch failures, tick duration, live attempts. They name no
//! reminder and no person, so the route needs no credentials.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::domain::Status;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the Prometheus recorder as the process's recorder (once; if another
/// recorder was installed first, as in a test, `/metrics` stays empty).
pub fn install() {
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().ok());
}

/// The current metrics, in Prometheus's text exposition format.
pub fn render() -> String {
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Count a reminder's status change.
pub fn transition(from: Status, to: Status) {
    if from != to {
        metrics::counter!("duecall_transitions_total", "from" => from.as_str(), "to" => to.as_str())
            .increment(1);
    }
}
