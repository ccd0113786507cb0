//! The document store port: Firestore in the cloud, an embedded store locally.
//!
//! Documents are JSON objects. Ownership lives in the path (`users/{uid}/...`), built only
//! from parsed ids, so a handler can never address another user's documents.

pub mod firestore;
pub mod google_token;
pub mod memory;

use async_trait::async_trait;

use crate::ids::{BusinessId, ProductId, Uid};

/// A document's fields, as JSON.
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// A document path relative to the database root, e.g. `users/u1/businesses/b1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocPath(String);

impl DocPath {
    pub fn user(uid: &Uid) -> Self {
        Self(format!("users/{uid}"))
    }

    pub fn business(uid: &Uid, business: &BusinessId) -> Self {
        Self(format!("users/{uid}/businesses/{business}"))
    }

    pub fn product(uid: &Uid, business: &BusinessId, product: &ProductId) -> Self {
        Self(format!(
            "users/{uid}/businesses/{business}/products/{product}"
        ))
    }

    /// A child document of this one, e.g. a lock document under a product.
    pub fn child(&self, collection: &str, id: &str) -> Self {
        Self(format!("{}/{collection}/{id}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment: the document's id.
    pub fn id(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }
}

/// A collection path relative to the database root, e.g. `users/u1/businesses`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CollectionPath(String);

impl CollectionPath {
    pub fn businesses(uid: &Uid) -> Self {
        Self(format!("users/{uid}/businesses"))
    }

    pub fn products(uid: &Uid, business: &BusinessId) -> Self {
        Self(format!("users/{uid}/businesses/{business}/products"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One write of an atomic [`DocumentStore::commit`].
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Creates the document; the commit fails with `AlreadyExists` if it is there.
    Create { path: DocPath, fields: Fields },
    /// Merges the `mask` fields of `fields` into an existing document (a masked name absent
    /// from `fields` is removed); the commit fails with `NotFound` if it is missing.
    Update {
        path: DocPath,
        fields: Fields,
        mask: Vec<String>,
    },
    /// Deletes the document; the commit fails with `NotFound` if it is missing.
    Delete { path: DocPath },
    /// Changes nothing; the commit fails with `NotFound` if the document is missing.
    RequireExists { path: DocPath },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("document not found: {0}")]
    NotFound(String),
    #[error("document already exists: {0}")]
    AlreadyExists(String),
    #[error("document store unavailable: {0}")]
    Unavailable(String),
}

/// Every operation is one round trip; none reads before it writes.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Reads one document (one read).
    async fn get(&self, path: &DocPath) -> Result<Option<Fields>, StoreError>;

    /// Every document of one collection (one list call).
    async fn list(&self, collection: &CollectionPath) -> Result<Vec<Fields>, StoreError>;

    /// Every document of the collections named `collection_id` anywhere under `parent`
    /// (one query: a collection-group query scoped to `parent`).
    async fn list_descendants(
        &self,
        parent: &DocPath,
        collection_id: &str,
    ) -> Result<Vec<Fields>, StoreError>;

    /// Creates a document and returns it as stored (one write; `AlreadyExists` if present).
    async fn create(&self, path: &DocPath, fields: Fields) -> Result<Fields, StoreError>;

    /// Merges the `mask` fields into an existing document and returns the whole document
    /// as the write left it (one write, no read; `NotFound` if missing).
    async fn update(
        &self,
        path: &DocPath,
        fields: Fields,
        mask: &[String],
    ) -> Result<Fields, StoreError>;

    /// Deletes an existing document (one write; `NotFound` if missing).
    async fn delete(&self, path: &DocPath) -> Result<(), StoreError>;

    /// Applies all writes atomically, or none (one write call).
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}
