//! Firestore through its REST API (v1), over reqwest.

use async_trait::async_trait;

use super::{CollectionPath, DocPath, DocumentStore, Fields, StoreError, Write};
use crate::config::{ConfigError, FirestoreConfig};

pub struct FirestoreStore {}

impl FirestoreStore {
    pub fn new(
        config: &FirestoreConfig,
        project_id: &str,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let _ = (config, project_id, http);
        Ok(Self {})
    }

    /// Opens the connection (and fetches an access token) ahead of the first request.
    pub async fn warm_up(&self) {}
}

#[async_trait]
impl DocumentStore for FirestoreStore {
    async fn get(&self, _path: &DocPath) -> Result<Option<Fields>, StoreError> {
        todo!()
    }
    async fn list(&self, _collection: &CollectionPath) -> Result<Vec<Fields>, StoreError> {
        todo!()
    }
    async fn list_descendants(&self, _parent: &DocPath, _id: &str) -> Result<Vec<Fields>, StoreError> {
        todo!()
    }
    async fn create(&self, _path: &DocPath, _fields: Fields) -> Result<Fields, StoreError> {
        todo!()
    }
    async fn update(&self, _path: &DocPath, _fields: Fields, _mask: &[String]) -> Result<Fields, StoreError> {
        todo!()
    }
    async fn delete(&self, _path: &DocPath) -> Result<(), StoreError> {
        todo!()
    }
    async fn commit(&self, _writes: Vec<Write>) -> Result<(), StoreError> {
        todo!()
    }
}
