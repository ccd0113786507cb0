//! The embedded document store of local mode.

use async_trait::async_trait;

use super::{CollectionPath, DocPath, DocumentStore, Fields, StoreError, Write};

pub struct MemoryStore {}

impl MemoryStore {
    pub fn new() -> Self {
        Self {}
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
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
