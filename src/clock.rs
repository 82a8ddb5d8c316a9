//! The one place that reads the time. Everything else is handed `now`.
//!
//! Times are kept at millisecond precision everywhere (both databases store
//! them exactly, and they serialise the same on every path), so the clock
//! truncates what it reads.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Truncate a time to whole milliseconds, the precision duecall stores.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::milliseconds(1)).unwrap_or(t)
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_millis(Utc::now())
    }
}

/// A clock that only moves when told to: tests and the demo's compressed timings.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(to_millis(start))))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = to_millis(t);
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t = to_millis(*t + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now().timestamp_micros() % 1000, 0, "truncated to ms");
        assert_eq!(clock.now(), clock.now());
        clock.advance(Duration::seconds(90));
        assert_eq!(
            clock.now().to_rfc3339(),
            "2026-11-24T10:01:30.123+00:00".to_string()
        );
    }
}
