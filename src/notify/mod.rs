//! The delivery worker (SPEC §9): lease the notifications that are due, sign
//! each per Standard Webhooks with every `NOTIFY_SECRET`, POST it to
//! `NOTIFY_URL` (15 s timeout, a bounded number at once), record the try and
//! what it leaves the notification as. It reads only what the outbox holds:
//! what happened was decided, and written, with the change itself.
//!
//! Several instances share the outbox through leases: a notification leased
//! to one is not tried by another until its lease has run out (the instance
//! died mid-try), and a try recorded after the lease was lost moves nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::config::NotifyConfig;
use crate::domain::retry_after;
use crate::store::{Delivery, NoticeTry, Store, StoreError, TryOutcome, TryRecord};
use crate::webhook::{self, WebhookSecrets};

/// Tries that ended are recorded together once no other ends within this.
const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// A try that has not answered 2xx within this is a failed try.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(15);

/// Tuning of the worker; the defaults are the service's.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// At most this many tries at once (and leased per round).
    pub concurrency: u32,
    /// How long a leased notification is this instance's alone: longer than
    /// a try can take, so a live instance never loses one mid-try.
    pub lease: Duration,
    /// How often to look for due notifications when there were none.
    pub poll: Duration,
    pub timeout: Duration,
    /// How often the outbox's figures (`/metrics`) are read again.
    pub stats_every: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            concurrency: 32,
            lease: TRY_TIMEOUT * 4,
            poll: Duration::from_millis(500),
            timeout: TRY_TIMEOUT,
            stats_every: Duration::from_secs(5),
        }
    }
}

/// Delivers the outbox to one endpoint.
pub struct Notifier {
    store: Arc<dyn Store>,
    url: reqwest::Url,
    secrets: WebhookSecrets,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// This instance's name on its leases.
    owner: String,
    settings: NotifySettings,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        config: &NotifyConfig,
        clock: Arc<dyn Clock>,
        settings: NotifySettings,
    ) -> Self {
        crate::install_crypto();
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("duecall/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with the default TLS settings");
        Self {
            store,
            url: config.url.clone(),
            secrets: config.secrets.clone(),
            client,
            clock,
            owner: format!("notify-{}", uuid::Uuid::new_v4().simple()),
            settings,
        }
    }

    /// One round: lease what is due now, try each (at most `concurrency` at
    /// once), record every try. Returns how many were tried.
    pub async fn run_once(self: &Arc<Self>) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let until = now
            + chrono::Duration::from_std(self.settings.lease)
                .unwrap_or(chrono::Duration::minutes(1));
        let due = self
            .store
            .lease_notifications(&self.owner, now, until, self.settings.concurrency)
            .await?;
        let n = due.len();
        let mut tries = JoinSet::new();
        for delivery in due {
            let me = Arc::clone(self);
            tries.spawn(async move { me.deliver(delivery).await });
        }
        // Tries are recorded in batches (one transaction each), as they end:
        // whatever has ended is written once no other try ends within
        // `FLUSH_AFTER`, or once the round is over.
        let mut ended = Vec::new();
        loop {
            match tokio::time::timeout(FLUSH_AFTER, tries.join_next()).await {
                Ok(Some(Ok(record))) => ended.push(record),
                Ok(Some(Err(e))) => tracing::error!(error = %e, "a notification try panicked"),
                Ok(None) => break,
                Err(_) => self.record(&mut ended).await,
            }
        }
        self.record(&mut ended).await;
        Ok(n)
    }

    /// Rounds until `stop` resolves; a round that found nothing waits `poll`.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let every = self.settings.stats_every;
        let mut last_stats: Option<Instant> = None;
        loop {
            if last_stats.map_or(true, |t| t.elapsed() >= every) {
                self.publish_stats().await;
                last_stats = Some(Instant::now());
            }
            let wait = match self.run_once().await {
                Ok(n) if n > 0 => Duration::ZERO,
                Ok(_) => self.settings.poll,
                Err(e) => {
                    tracing::warn!(error = %e, "notifications: cannot lease; trying again");
                    self.settings.poll * 4
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn publish_stats(&self) {
        match self.store.notice_stats().await {
            Ok(stats) => {
                for (status, n) in &stats.by_status {
                    metrics::gauge!("duecall_notifications", "status" => status.as_str())
                        .set(*n as f64);
                }
                let age = stats
                    .oldest_pending
                    .map(|t| (self.clock.now() - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                metrics::gauge!("duecall_notifications_oldest_pending_seconds").set(age);
            }
            Err(e) => tracing::warn!(error = %e, "notifications: cannot read the outbox's figures"),
        }
    }

    /// Write what the tries in `ended` came to, and empty it. A batch that
    /// cannot be written is tried again once its leases run out (at least once).
    async fn record(&self, ended: &mut Vec<TryRecord>) {
        if ended.is_empty() {
            return;
        }
        match self.store.record_tries(&self.owner, ended).await {
            Ok(moved) => {
                for (t, moved) in ended.iter().zip(moved) {
                    if !moved {
                        tracing::warn!(id = %t.id, "notification try recorded after its lease was lost; another instance has it");
                    }
                }
            }
            Err(e) => tracing::error!(
                error = %e, tries = ended.len(),
                "notification tries could not be recorded; they are made again when their leases run out"
            ),
        }
        ended.clear();
    }

    /// One try of one notification: what it came to, to record.
    async fn deliver(&self, d: Delivery) -> TryRecord {
        let at = self.clock.now();
        let started = Instant::now();
        let answer = self.post(&d, at).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (status_code, error) = match answer {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("HTTP {code}"))),
            Err(e) => (None, Some(e)),
        };
        let outcome = match &error {
            None => TryOutcome::Delivered,
            Some(_) => match retry_after(d.step + 1) {
                // From the try's start, whatever it took.
                Some(wait) => TryOutcome::RetryAt(later(at, wait)),
                None => TryOutcome::Failed,
            },
        };
        let result = match outcome {
            TryOutcome::Delivered => "delivered",
            TryOutcome::RetryAt(_) => "retry",
            TryOutcome::Failed => "failed",
        };
        metrics::counter!("duecall_notification_tries_total", "type" => d.kind.as_str(), "result" => result)
            .increment(1);
        match (&error, outcome) {
            (None, _) => tracing::debug!(id = %d.id, r#type = %d.kind, "notification delivered"),
            (Some(e), TryOutcome::Failed) => tracing::error!(
                id = %d.id, r#type = %d.kind, error = %e, tries = d.step + 1,
                "notification failed after its last try; POST /api/notifications/{{id}}/resend queues it again"
            ),
            (Some(e), _) => tracing::warn!(
                id = %d.id, r#type = %d.kind, error = %e, tries = d.step + 1,
                "notification try failed; it will be retried"
            ),
        }
        TryRecord {
            id: d.id,
            tried: NoticeTry {
                at,
                status_code,
                error,
                duration_ms,
            },
            outcome,
        }
    }

    /// POST the notification; its status code, or why none came back (never
    /// the body: it holds a person's data).
    async fn post(&self, d: &Delivery, at: DateTime<Utc>) -> Result<u16, String> {
        let ts = at.timestamp();
        let signature = self
            .secrets
            .keys()
            .map(|key| webhook::sign(key, &d.id, ts, d.body.as_bytes()))
            .collect::<Vec<_>>()
            .join(" ");
        let response = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e, self.settings.timeout))?;
        Ok(response.status().as_u16())
    }
}

fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(10))
}

/// A transport error in a few words, without the URL's query or any body.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {} s", timeout.as_secs_f64())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_request() {
        "the request could not be sent".to_owned()
    } else {
        "the response could not be read".to_owned()
    }
}
