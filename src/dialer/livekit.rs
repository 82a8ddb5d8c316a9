//! The LiveKit dialer: create the attempt's room with its metadata, then
//! dispatch the agent (`AGENT_NAME`) into it with the same metadata, through
//! LiveKit's server API (Twirp) with the official `livekit-api` crate.

use std::time::Duration;

use async_trait::async_trait;
use livekit_api::services::room::CreateRoomOptions;
use livekit_api::services::{LiveKitApi, ServerError, ServiceError};
use secrecy::ExposeSecret;

use super::{CallRequest, DialError, Dialer};
use crate::config::LiveKitConfig;

/// How long one request to LiveKit may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct LiveKitDialer {
    api: LiveKitApi,
    agent_name: String,
}

impl LiveKitDialer {
    pub fn new(config: &LiveKitConfig, agent_name: &str) -> Self {
        let api = LiveKitApi::with_api_key(
            &config.url,
            &config.api_key,
            config.api_secret.expose_secret(),
        )
        .with_request_timeout(REQUEST_TIMEOUT);
        Self {
            api,
            agent_name: agent_name.to_owned(),
        }
    }
}

/// A short, log-safe account of what LiveKit (or the network) said.
fn describe(e: &ServiceError) -> String {
    match e {
        ServiceError::Twirp(ServerError::Twirp(code)) => format!("{}: {}", code.code, code.msg),
        ServiceError::Twirp(ServerError::Request(e)) if e.is_timeout() => {
            "no answer from LiveKit in time".to_owned()
        }
        ServiceError::Twirp(ServerError::Request(e)) if e.is_connect() => {
            "could not connect to LiveKit".to_owned()
        }
        // LiveKit's auth layer answers bad credentials with a plain-text 401
        // before any Twirp handling, which the client cannot decode.
        ServiceError::Twirp(ServerError::Request(e)) if e.is_decode() => {
            "unreadable answer from LiveKit (check LIVEKIT_API_KEY and LIVEKIT_API_SECRET)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

#[async_trait]
impl Dialer for LiveKitDialer {
    fn name(&self) -> &'static str {
        "livekit"
    }

    async fn dial(&self, call: &CallRequest) -> Result<(), DialError> {
        // Creating an existing room returns it, so a retried dial is harmless.
        self.api
            .room()
            .create_room(
                &call.room_name,
                CreateRoomOptions {
                    metadata: call.metadata.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| DialError::new("create_room", describe(&e)))?;
        let dispatched = self
            .api
            .agent_dispatch()
            .create_dispatch(livekit_protocol::CreateAgentDispatchRequest {
                agent_name: self.agent_name.clone(),
                room: call.room_name.clone(),
                metadata: call.metadata.clone(),
                ..Default::default()
            })
            .await;
        // No agent is coming: the room is closed by `abandon`, once the
        // scheduler has recorded the failure.
        dispatched.map_err(|e| DialError::new("create_dispatch", describe(&e)))?;
        Ok(())
    }

    async fn abandon(&self, call: &CallRequest) {
        // Deleting the room also stops a dispatch that landed despite its
        // error; a room that was never created is no news.
        match self.api.room().delete_room(&call.room_name).await {
            Ok(()) => tracing::info!(
                reminder_id = %call.reminder_id,
                attempt = call.attempt,
                "closed the room of a failed dial"
            ),
            Err(ServiceError::Twirp(ServerError::Twirp(code))) if code.code == "not_found" => {
                tracing::debug!(reminder_id = %call.reminder_id, attempt = call.attempt, "the failed dial left no room");
            }
            Err(close) => tracing::warn!(
                reminder_id = %call.reminder_id,
                attempt = call.attempt,
                error = %describe(&close),
                "could not close the room of a failed dial"
            ),
        }
    }
}
