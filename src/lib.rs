//! duecall: payment-reminder calls by a LiveKit voice agent, with every call's
//! fate stored durably. This crate builds the service from its configuration;
//! `main.rs` only wires the command line to it.

use std::future::Future;
use std::sync::Arc;

pub mod clock;
pub mod config;
pub mod demo;
pub mod dialer;
pub mod domain;
pub mod http;
pub mod import;
pub mod notify;
pub mod phone_zones;
pub mod policy;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod webhook;

use clock::Clock;
use config::{Config, DialerKind};
use dialer::Dialer;
use domain::{CreateDefaults, Language};
use http::AppState;
use scheduler::Scheduler;
use store::{Store, StoreError};

/// Open the configured store (running migrations) and assemble the shared state.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StoreError> {
    let store = store::connect_with(
        &config.database_url,
        config.database_max_connections,
        config.notify.is_some(),
    )
    .await?;
    Ok(state_with(store, clock, config))
}

/// The defaults a new reminder takes from the configuration (the API and the
/// CSV import share them).
pub fn create_defaults(config: &Config) -> CreateDefaults {
    CreateDefaults {
        timezone: config.default_timezone,
        zone_policy: config.zone_policy,
        language: Language::parse("en").expect("'en' is a language tag"),
        max_attempts: config.default_max_attempts,
    }
}

/// Install rustls's ring provider as the process default (once; later calls
/// do nothing), so every HTTP client can be built.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where this instance's own call-status webhook answers, for the simulated
/// agents: `BIND_ADDR`, with a wildcard address read as loopback.
pub fn own_webhook_url(config: &Config) -> String {
    let mut addr = config.bind_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}/api/webhooks/call-status")
}

/// The dialer the configuration names (`None` for `DIALER=none`).
pub fn dialer_for(config: &Config, clock: &Arc<dyn Clock>) -> Option<Arc<dyn Dialer>> {
    match (config.dialer, &config.livekit) {
        (DialerKind::LiveKit, Some(lk)) => Some(Arc::new(dialer::livekit::LiveKitDialer::new(
            lk,
            &config.agent_name,
        ))),
        (DialerKind::LiveKit, None) | (DialerKind::None, _) => None,
        (DialerKind::Simulated, _) => {
            let key = config.webhook_secrets.as_ref()?.keys().next()?.to_vec();
            Some(Arc::new(dialer::simulated::SimulatedDialer::new(
                own_webhook_url(config),
                key,
                Arc::clone(clock),
                dialer::simulated::Pace::default(),
            )))
        }
    }
}

/// Assemble the shared state around an already open store, with the
/// configured dialer.
pub fn state_with(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: Config) -> AppState {
    let dialer = dialer_for(&config, &clock);
    state_with_dialer(store, clock, config, dialer)
}

/// Assemble the shared state around an already open store and a given dialer.
pub fn state_with_dialer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Config,
    dialer: Option<Arc<dyn Dialer>>,
) -> AppState {
    install_crypto();
    telemetry::install();
    let defaults = create_defaults(&config);
    let retry = policy::RetryPolicy {
        base_delay: chrono::Duration::from_std(config.retry_delay)
            .unwrap_or(chrono::Duration::hours(2)),
        window: config.calling_window.clone(),
    };
    let to_chrono =
        |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let settings = scheduler::Settings {
        dispatch_timeout: to_chrono(config.dispatch_timeout),
        dial_timeout: config.dial_timeout,
        call_timeout: to_chrono(config.call_timeout),
        max_live: config.max_concurrent_calls,
        rules: config.calling_rules(),
        retry: retry.clone(),
        promise_grace_days: config.promise_grace_days,
        dispatch: dialer::DispatchSettings {
            sip_trunk_id: config.sip_outbound_trunk_id.clone(),
            disclosures: config.call_disclosures,
        },
    };
    let scheduler = Arc::new(Scheduler::new(
        Arc::clone(&store),
        Arc::clone(&clock),
        dialer,
        settings,
        jitter_draw,
    ));
    let sign_in = Arc::new(http::sign_in::SignInGuard::new(&config.sign_in_limits));
    AppState {
        store,
        clock,
        scheduler,
        config: Arc::new(config),
        defaults: Arc::new(defaults),
        retry: Arc::new(retry),
        sign_in,
    }
}

/// A uniform draw from 0.0 to 1.0 for retry jitter, from the OS's generator.
pub fn jitter_draw() -> f64 {
    // The low 53 bits of a v4 UUID are all random (version and variant bits sit higher).
    let bits = uuid::Uuid::new_v4().as_u128() & ((1u128 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}

/// Serve HTTP on `listener` until `shutdown` resolves, then finish in-flight
/// requests (for at most `SHUTDOWN_TIMEOUT_SECS`); connections are bounded as
/// [`server`] describes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, shutdown, notify::NotifySettings::default()).await
}

/// [`serve`], with the notification worker (started when `NOTIFY_URL` is set)
/// tuned by `notify_settings`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    notify_settings: notify::NotifySettings,
) -> std::io::Result<()> {
    // The dashboard's cookie-signing key, shared through the database.
    let key = http::session::signing_key(state.store.as_ref(), state.clock.now())
        .await
        .map_err(std::io::Error::other)?;
    let limits = state.config.http.clone();
    let sign_in = Arc::clone(&state.sign_in);
    let notifier = state.config.notify.as_ref().map(|config| {
        let notifier = Arc::new(notify::Notifier::new(
            Arc::clone(&state.store),
            config,
            Arc::clone(&state.clock),
            notify_settings,
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(notifier.run(async move {
            let _ = stopped.await;
        }));
        (stop, task)
    });
    let served = server::run(
        listener,
        http::router(state, key),
        &limits,
        sign_in,
        shutdown,
    )
    .await;
    if let Some((stop, mut task)) = notifier {
        // A try cut short here was not recorded: its lease runs out and the
        // notification is tried again, by this instance or another.
        let _ = stop.send(());
        let grace = std::time::Duration::from_secs(2);
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            tracing::warn!("notification tries still in flight at shutdown are retried later");
        }
    }
    served
}
