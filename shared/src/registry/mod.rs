//! The connection table and the event log: DynamoDB in the cloud, embedded locally.

pub mod dynamo;
pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::{ConnectionId, Uid};

/// One live WebSocket connection of a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    pub uid: Uid,
    /// Unix seconds.
    pub connected_at: i64,
    /// Unix seconds at which the connection's ID token expires; no event goes out after it.
    pub token_expires_at: i64,
    /// Unix seconds at which the row may be dropped (TTL): past API Gateway's 2-hour limit.
    pub expires_at: i64,
}

/// One persisted event of a user, as recorded for catch-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub seq: u64,
    pub event: String,
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub data: serde_json::Value,
}

/// The answer to "what happened after `since`?".
#[derive(Clone, Debug, PartialEq)]
pub struct EventsSince {
    /// The user's current `seq` (0 before the first event).
    pub head: u64,
    /// Recorded events with `seq > since`, in order, at most the requested limit.
    pub events: Vec<RecordedEvent>,
    /// False when some event after `since` is no longer recorded (retention passed) or
    /// `since` is ahead of `head`: the client must resync from a fresh bootstrap.
    pub complete: bool,
    /// True when more events than the limit are recorded after the last returned one.
    pub has_more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("connection registry unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait ConnectionRegistry: Send + Sync {
    /// Stores (or replaces) a connection.
    async fn put(&self, connection: &Connection) -> Result<(), RegistryError>;

    /// Looks a connection up by id (strongly consistent).
    async fn get(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError>;

    /// Every stored connection of a user whose row has not expired.
    async fn of_user(&self, uid: &Uid) -> Result<Vec<Connection>, RegistryError>;

    /// Removes a connection; returns what was removed, if it was there.
    async fn remove(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError>;
}

#[async_trait]
pub trait EventLog: Send + Sync {
    /// Allocates the user's next `seq` (strictly increasing by one) and records the event
    /// for the retention window.
    async fn append(
        &self,
        uid: &Uid,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<RecordedEvent, RegistryError>;

    /// The user's current `seq` (0 before the first event).
    async fn head(&self, uid: &Uid) -> Result<u64, RegistryError>;

    /// Recorded events after `since`, oldest first, at most `limit` of them.
    async fn since(
        &self,
        uid: &Uid,
        since: u64,
        limit: usize,
    ) -> Result<EventsSince, RegistryError>;
}
