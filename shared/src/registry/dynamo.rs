//! The connection table and event log in one DynamoDB table.

use std::time::Duration;

use async_trait::async_trait;

use super::{Connection, ConnectionRegistry, EventLog, EventsSince, RecordedEvent, RegistryError};
use crate::ids::{ConnectionId, Uid};

pub struct DynamoRegistry {}

impl DynamoRegistry {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, retention: Duration) -> Self {
        let _ = (client, table, retention);
        Self {}
    }

    /// Opens the connection ahead of the first request.
    pub async fn warm_up(&self) {}
}

#[async_trait]
impl ConnectionRegistry for DynamoRegistry {
    async fn put(&self, _connection: &Connection) -> Result<(), RegistryError> {
        todo!()
    }
    async fn get(&self, _id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        todo!()
    }
    async fn of_user(&self, _uid: &Uid) -> Result<Vec<Connection>, RegistryError> {
        todo!()
    }
    async fn remove(&self, _id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        todo!()
    }
}

#[async_trait]
impl EventLog for DynamoRegistry {
    async fn append(&self, _uid: &Uid, _event: &str, _data: &serde_json::Value) -> Result<RecordedEvent, RegistryError> {
        todo!()
    }
    async fn head(&self, _uid: &Uid) -> Result<u64, RegistryError> {
        todo!()
    }
    async fn since(&self, _uid: &Uid, _since: u64, _limit: usize) -> Result<EventsSince, RegistryError> {
        todo!()
    }
}
