//! Posting frames to WebSocket connections through the API Gateway Management API.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use crate::ids::ConnectionId;

/// API Gateway's WebSocket frame limit (128 KB).
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// What became of one post to one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// 410: the connection is gone; its row must be deleted.
    Gone,
    /// 429: API Gateway throttled the post.
    Throttled,
    /// 413: the frame is over the limit.
    TooLarge,
    /// Anything else (timeout, 5xx, forbidden).
    Failed(String),
}

impl PushOutcome {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Gone => "gone",
            Self::Throttled => "throttled",
            Self::TooLarge => "too_large",
            Self::Failed(_) => "failed",
        }
    }
}

#[async_trait]
pub trait Pusher: Send + Sync {
    /// Posts one text frame to one connection.
    async fn post(&self, connection: &ConnectionId, frame: &[u8]) -> PushOutcome;

    /// Closes a connection from the server side (expired token, user mismatch).
    async fn close(&self, connection: &ConnectionId) -> PushOutcome;
}

/// The real thing: `PostToConnection` / `DeleteConnection` with the AWS SDK.
pub struct ManagementApiPusher {
    client: Client,
    timeout: Duration,
    /// A Management API on this machine (the local gateway's) has no handshake worth
    /// warming, and may not be serving yet while its own gateway starts.
    local: bool,
}

impl ManagementApiPusher {
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str, timeout: Duration) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        let local = crate::outbound::is_loopback_url(endpoint);
        Self {
            client: Client::from_conf(config),
            timeout,
            local,
        }
    }
}

fn outcome_of<E, R>(
    result: Result<Result<R, SdkError<E>>, tokio::time::error::Elapsed>,
) -> PushOutcome
where
    E: std::error::Error + 'static,
{
    match result {
        Err(_) => PushOutcome::Failed("timed out".into()),
        Ok(Ok(_)) => PushOutcome::Delivered,
        Ok(Err(err)) => match err.raw_response().map(|r| r.status().as_u16()) {
            Some(410) => PushOutcome::Gone,
            Some(429) => PushOutcome::Throttled,
            Some(413) => PushOutcome::TooLarge,
            Some(status) => PushOutcome::Failed(format!("status {status}")),
            None => PushOutcome::Failed(
                aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err).to_string(),
            ),
        },
    }
}

impl ManagementApiPusher {
    /// Opens the connection to the Management API at cold start, so the first push does not
    /// pay for the TLS handshake: a `GetConnection` of an id that cannot exist, whose answer
    /// (410, or 403 without that permission) does not matter.
    pub async fn warm_up(&self) {
        if self.local {
            return;
        }
        let call = self.client.get_connection().connection_id("warm-up").send();
        let _ = tokio::time::timeout(self.timeout, call).await;
    }
}

#[async_trait]
impl Pusher for ManagementApiPusher {
    async fn post(&self, connection: &ConnectionId, frame: &[u8]) -> PushOutcome {
        let started = Instant::now();
        let call = self
            .client
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(frame))
            .send();
        let outcome = outcome_of(crate::deadline::limit(self.timeout, call).await);
        tracing::debug!(
            connection = %connection,
            outcome = outcome.label(),
            latency_ms = started.elapsed().as_millis() as u64,
            "post to connection"
        );
        outcome
    }

    async fn close(&self, connection: &ConnectionId) -> PushOutcome {
        let call = self
            .client
            .delete_connection()
            .connection_id(connection.as_str())
            .send();
        outcome_of(crate::deadline::limit(self.timeout, call).await)
    }
}
