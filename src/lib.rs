//! duecall: payment-reminder calls by a LiveKit voice agent, with every call's
//! fate stored durably. This crate builds the service from its configuration;
//! `main.rs` only wires the command line to it.

use std::future::Future;
use std::sync::Arc;

pub mod clock;
pub mod config;
pub mod http;
pub mod reminder;
pub mod store;
pub mod webhook;

use clock::Clock;
use config::Config;
use http::AppState;
use reminder::{CreateDefaults, Language};
use store::{Store, StoreError};

/// Open the configured store (running migrations) and assemble the shared state.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StoreError> {
    let store = store::connect(&config.database_url, config.database_max_connections).await?;
    Ok(state_with(store, clock, config))
}

/// Assemble the shared state around an already open store.
pub fn state_with(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: Config) -> AppState {
    let defaults = CreateDefaults {
        timezone: config.default_timezone,
        language: Language::parse("en").expect("'en' is a language tag"),
        max_attempts: config.default_max_attempts,
    };
    AppState {
        store,
        clock,
        config: Arc::new(config),
        defaults,
    }
}

/// Serve HTTP on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
