//! The document store port: Firestore in the cloud, an embedded store locally.
//!
//! Documents are JSON objects. Ownership lives in the path (`users/{uid}/...`), built only
//! from parsed ids, so a handler can never address another user's documents.

pub mod firestore;
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

    /// A path as the store names it (`users/u1/...`); `None` unless every segment is an id
    /// (`[A-Za-z0-9_-]`, 1 to 128), as every path this backend builds is.
    pub fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.split('/').collect();
        let valid =
            segments.len().is_multiple_of(2) && segments.iter().all(|s| crate::ids::is_id(s));
        valid.then(|| Self(path.to_owned()))
    }

    /// The document this one is a child of, e.g. the product of a lock.
    pub fn parent(&self) -> Option<Self> {
        let mut segments: Vec<&str> = self.0.split('/').collect();
        if segments.len() < 4 {
            return None;
        }
        segments.truncate(segments.len() - 2);
        Some(Self(segments.join("/")))
    }

    /// The segment after `collection`, e.g. the uid after `users`.
    pub fn segment_after(&self, collection: &str) -> Option<&str> {
        let mut segments = self.0.split('/');
        while let Some(s) = segments.next() {
            if s == collection {
                return segments.next();
            }
        }
        None
    }
}

/// How deep maps and lists may nest in one field (Firestore's limit).
pub const MAX_FIELD_DEPTH: usize = 20;
/// The longest field path, its keys joined by dots, in bytes (Firestore's limit).
pub const MAX_FIELD_PATH_BYTES: usize = 1500;

/// What Firestore cannot store (it answers INVALID_ARGUMENT): an empty field name, a reserved
/// one (`__name__`-style: two underscores at both ends), an array directly inside an array,
/// maps and lists nested more than [`MAX_FIELD_DEPTH`] deep, or a field path longer than
/// [`MAX_FIELD_PATH_BYTES`]. One rule for the validation of client data and for the embedded
/// store.
pub fn storable(fields: &Fields) -> Result<(), String> {
    fields
        .iter()
        .try_for_each(|(name, value)| storable_field(name, value))
}

/// [`storable`] for one top-level field.
pub fn storable_field(name: &str, value: &serde_json::Value) -> Result<(), String> {
    check_key(name, 0)?;
    check_value(value, name.len(), 0, false)
}

fn check_key(name: &str, path_bytes: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("a key is empty".into());
    }
    if name.len() >= 4 && name.starts_with("__") && name.ends_with("__") {
        return Err(format!("the key `{name}` is reserved (like __name__)"));
    }
    if path_bytes > MAX_FIELD_PATH_BYTES {
        let shown: String = name.chars().take(40).collect();
        return Err(format!(
            "the key `{shown}…` makes a path of {path_bytes} bytes (at most {MAX_FIELD_PATH_BYTES}, keys joined by dots)"
        ));
    }
    Ok(())
}

/// `path_bytes`: the length of the dotted path to `value`; `depth`: the maps and lists
/// around it within its top-level field.
fn check_value(
    value: &serde_json::Value,
    path_bytes: usize,
    depth: usize,
    in_array: bool,
) -> Result<(), String> {
    let nested = |depth: usize| {
        if depth > MAX_FIELD_DEPTH {
            Err(format!(
                "maps and lists are nested more than {MAX_FIELD_DEPTH} levels deep"
            ))
        } else {
            Ok(depth)
        }
    };
    match value {
        serde_json::Value::Array(_) if in_array => Err("a list cannot hold a list directly".into()),
        serde_json::Value::Array(items) => {
            let depth = nested(depth + 1)?;
            items
                .iter()
                .try_for_each(|v| check_value(v, path_bytes, depth, true))
        }
        serde_json::Value::Object(map) => {
            let depth = nested(depth + 1)?;
            map.iter().try_for_each(|(key, v)| {
                let path_bytes = path_bytes + 1 + key.len();
                check_key(key, path_bytes)?;
                check_value(v, path_bytes, depth, false)
            })
        }
        _ => Ok(()),
    }
}

/// What [`DocumentStore::list_page`] lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listing {
    /// The documents of one collection.
    Collection(CollectionPath),
    /// The documents of every collection named `collection_id` anywhere under `parent`.
    Descendants {
        parent: DocPath,
        collection_id: &'static str,
    },
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

/// A document's version: Firestore's `updateTime`, the time of the last commit that changed
/// it. Commits of one document get strictly increasing times (a write that changes nothing
/// keeps the old one), so a greater version is a later state. Kept as RFC 3339 UTC with nine
/// fractional digits: fixed width, so string order is time order for every client.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Version(String);

impl Version {
    /// Any RFC 3339 timestamp (Firestore sends 0, 3, 6 or 9 fractional digits), normalised.
    pub fn parse(timestamp: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(timestamp)
            .ok()
            .map(|t| Self::at(t.with_timezone(&chrono::Utc)))
    }

    pub fn at(time: chrono::DateTime<chrono::Utc>) -> Self {
        Self(time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored document: its fields and its version.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub fields: Fields,
    pub version: Version,
}

impl Document {
    /// The document as clients see it: its fields plus the server-managed `version`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut fields = self.fields.clone();
        fields.insert(
            "version".into(),
            serde_json::Value::String(self.version.as_str().to_owned()),
        );
        serde_json::Value::Object(fields)
    }
}

/// What must hold of a document for a write to it to apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Precondition {
    /// The document exists (`NotFound` otherwise).
    Exists,
    /// The document is at exactly this version (`PreconditionFailed` otherwise; `NotFound` if
    /// it is gone): compare-and-set.
    At(Version),
    /// Nothing: a delete of a missing document succeeds.
    None,
}

/// One write of an atomic [`DocumentStore::commit`].
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Creates the document; the commit fails with `AlreadyExists` if it is there.
    Create { path: DocPath, fields: Fields },
    /// Merges the `mask` fields of `fields` into the document (a masked name absent from
    /// `fields` is removed), if `precondition` holds.
    Update {
        path: DocPath,
        fields: Fields,
        mask: Vec<String>,
        precondition: Precondition,
    },
    /// Deletes the document, if `precondition` holds.
    Delete {
        path: DocPath,
        precondition: Precondition,
    },
}

impl Write {
    pub fn path(&self) -> &DocPath {
        match self {
            Self::Create { path, .. } | Self::Update { path, .. } | Self::Delete { path, .. } => {
                path
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("document not found: {0}")]
    NotFound(String),
    #[error("document already exists: {0}")]
    AlreadyExists(String),
    /// A version precondition did not hold: the document changed since it was read.
    #[error("document changed: {0}")]
    PreconditionFailed(String),
    /// The store could not be reached or refused the call; nothing was written.
    #[error("document store unavailable: {0}")]
    Unavailable(String),
    /// A write whose outcome is unknown: it was sent, and no answer came back (a timeout, a
    /// dropped connection, a server error after the request was taken). It may have been
    /// applied.
    #[error("document store write outcome unknown: {0}")]
    Indeterminate(String),
}

impl StoreError {
    /// Whether the failed call certainly left the store unchanged.
    pub fn wrote_nothing(&self) -> bool {
        !matches!(self, Self::Indeterminate(_))
    }
}

/// Every operation is one round trip; none reads before it writes.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Reads one document (one read).
    async fn get(&self, path: &DocPath) -> Result<Option<Document>, StoreError>;

    /// Every document of one collection (one list call).
    async fn list(&self, collection: &CollectionPath) -> Result<Vec<Document>, StoreError>;

    /// Every document of the collections named `collection_id` anywhere under `parent`
    /// (one query: a collection-group query scoped to `parent`).
    async fn list_descendants(
        &self,
        parent: &DocPath,
        collection_id: &str,
    ) -> Result<Vec<Document>, StoreError>;

    /// One page of `listing` in path order: up to `limit` documents (at least one) whose
    /// path sorts after `after` (from the start when `None`), each with its path. One query.
    async fn list_page(
        &self,
        listing: &Listing,
        after: Option<&DocPath>,
        limit: usize,
    ) -> Result<Vec<(DocPath, Document)>, StoreError>;

    /// Every document, with its path, of the collections named `collection_id` in the whole
    /// database whose string field `field` equals `value` (one collection-group query; in
    /// production it needs that field's collection-group index, see `docs/deploy.md`).
    async fn find_in_group(
        &self,
        collection_id: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<(DocPath, Document)>, StoreError>;

    /// Creates a document and returns it as stored (one write; `AlreadyExists` if present).
    async fn create(&self, path: &DocPath, fields: Fields) -> Result<Document, StoreError>;

    /// Merges the `mask` fields into an existing document and returns the whole document
    /// as the write left it (one write, no read; `NotFound` if missing). The mask is never
    /// empty.
    async fn update(
        &self,
        path: &DocPath,
        fields: Fields,
        mask: &[String],
    ) -> Result<Document, StoreError>;

    /// Deletes an existing document (one write; `NotFound` if missing).
    async fn delete(&self, path: &DocPath) -> Result<(), StoreError>;

    /// Applies all writes atomically, or none (one write call). Returns, for each write in
    /// order, the version it left (`None` for a delete).
    async fn commit(&self, writes: Vec<Write>) -> Result<Vec<Option<Version>>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unstorable_values_are_refused_as_firestore_refuses_them() {
        let refused = |v: serde_json::Value| storable(v.as_object().expect("object")).is_err();
        assert!(refused(serde_json::json!({"a": [[1]]})));
        assert!(refused(serde_json::json!({"": 1})));
        assert!(refused(serde_json::json!({"m": {"": 1}})));
        assert!(refused(serde_json::json!({"__x__": 1})));
        assert!(refused(serde_json::json!({"m": {"__key__": 1}})));
        assert!(!refused(
            serde_json::json!({"a": [{"b": [1]}], "__": 1, "_x_": {"y": []}})
        ));
    }
}
