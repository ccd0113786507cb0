//! The embedded document store of local mode.
//!
//! Same semantics as Firestore (preconditions, masks, all-or-nothing commits, versions that
//! increase with every change of a document, collection group queries, and Firestore's
//! rejection of values it cannot store), in a map guarded by a std mutex that is never held
//! across an await. A persistent store
//! also keeps a JSON snapshot on disk, rewritten atomically after every write, so the local
//! server keeps its data across restarts.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    CollectionPath, DocPath, Document, DocumentStore, Fields, Listing, Precondition, StoreError,
    Version, Write,
};

/// Snapshot format version, so a change of layout is detected. Version 1 had no document
/// versions; its documents are loaded with the load time as their version.
const SNAPSHOT_VERSION: u64 = 2;

type Docs = BTreeMap<String, Document>;

/// Previous values of the documents a write touched (`None`: it did not exist), newest last.
type Undo = Vec<(String, Option<Document>)>;

/// The in-process [`DocumentStore`], optionally persisted to a JSON file.
pub struct MemoryStore {
    docs: Mutex<State>,
    snapshot: Option<PathBuf>,
    /// Serializes writers of a persistent store so snapshots reach the disk in order.
    writer: tokio::sync::Mutex<()>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The documents and the clock their versions come from.
struct State {
    docs: Docs,
    /// The last version handed out: the next one is later, even if the wall clock is not.
    last: chrono::DateTime<chrono::Utc>,
}

impl State {
    fn new(docs: Docs) -> Self {
        Self {
            docs,
            last: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        }
    }

    /// A commit time later than every earlier one, as Firestore's are.
    fn next_version(&mut self) -> Version {
        let now = chrono::Utc::now();
        self.last = if now > self.last {
            now
        } else {
            self.last + chrono::Duration::nanoseconds(1)
        };
        Version::at(self.last)
    }
}

impl MemoryStore {
    /// An empty store that lives as long as the process.
    pub fn new() -> Self {
        Self {
            docs: Mutex::new(State::new(Docs::new())),
            snapshot: None,
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// A store kept in the JSON file at `path`: loaded now if the file exists, rewritten
    /// after every successful write. A file that cannot be read or parsed is an error
    /// rather than silently starting empty (and overwriting it at the next write).
    pub fn persistent(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let docs = match std::fs::read(&path) {
            Ok(bytes) => parse_snapshot(&bytes).map_err(|e| {
                StoreError::Unavailable(format!("snapshot {}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!("creating {}: {e}", dir.display()))
                    })?;
                }
                Docs::new()
            }
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Self {
            docs: Mutex::new(State::new(docs)),
            snapshot: Some(path),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held, but a poisoned map is still consistent:
        // every mutation is undone on error before the guard is released.
        self.docs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `writes` all or nothing, persists, and returns the documents they left.
    async fn apply(&self, writes: &[Write]) -> Result<Vec<Option<Document>>, StoreError> {
        let _writer = match &self.snapshot {
            Some(_) => Some(self.writer.lock().await),
            None => None,
        };
        let (results, undo, snapshot) = {
            let mut state = self.lock();
            let version = state.next_version();
            let mut undo = Undo::new();
            let mut results = Vec::with_capacity(writes.len());
            for write in writes {
                match apply_one(&mut state.docs, write, &version, &mut undo) {
                    Ok(doc) => results.push(doc),
                    Err(e) => {
                        rollback(&mut state.docs, undo);
                        return Err(e);
                    }
                }
            }
            let snapshot = self.snapshot.as_ref().map(|_| snapshot_bytes(&state.docs));
            (results, undo, snapshot)
        };
        if let (Some(path), Some(bytes)) = (&self.snapshot, snapshot) {
            // Readers may see the write before it is on disk; if the disk refuses it, it is
            // undone so the store never claims a write it did not keep.
            if let Err(e) = crate::snapshot::write_atomically(path, &bytes).await {
                rollback(&mut self.lock().docs, undo);
                return Err(StoreError::Unavailable(format!(
                    "saving {}: {e}",
                    path.display()
                )));
            }
        }
        Ok(results)
    }
}

fn rollback(docs: &mut Docs, undo: Undo) {
    for (path, previous) in undo.into_iter().rev() {
        match previous {
            Some(doc) => docs.insert(path, doc),
            None => docs.remove(&path),
        };
    }
}

/// One write with its precondition, at commit `version`; returns the document it left
/// (`None` if deleted).
fn apply_one(
    docs: &mut Docs,
    write: &Write,
    version: &Version,
    undo: &mut Undo,
) -> Result<Option<Document>, StoreError> {
    let key = write.path().as_str();
    match write {
        Write::Create { fields, .. } => {
            check_fields(fields)?;
            if docs.contains_key(key) {
                return Err(StoreError::AlreadyExists(key.into()));
            }
            let doc = Document {
                fields: fields.clone(),
                version: version.clone(),
            };
            undo.push((key.into(), None));
            docs.insert(key.into(), doc.clone());
            Ok(Some(doc))
        }
        Write::Update {
            fields,
            mask,
            precondition,
            ..
        } => {
            let Some(doc) = docs.get_mut(key) else {
                return match precondition {
                    // Firestore: an update without an existence precondition creates.
                    Precondition::None => {
                        let created: Fields = mask
                            .iter()
                            .filter_map(|n| fields.get(n).map(|v| (n.clone(), v.clone())))
                            .collect();
                        check_fields(&created)?;
                        let doc = Document {
                            fields: created,
                            version: version.clone(),
                        };
                        undo.push((key.into(), None));
                        docs.insert(key.into(), doc.clone());
                        Ok(Some(doc))
                    }
                    _ => Err(StoreError::NotFound(key.into())),
                };
            };
            check_version(key, &doc.version, precondition)?;
            let mut updated = doc.fields.clone();
            for name in mask {
                match fields.get(name) {
                    Some(value) => updated.insert(name.clone(), value.clone()),
                    // Firestore semantics: a masked name without a value is removed.
                    None => updated.remove(name),
                };
            }
            check_fields(&updated)?;
            // Firestore keeps the update time of a write that changes nothing.
            let version = if updated == doc.fields {
                doc.version.clone()
            } else {
                version.clone()
            };
            let previous = std::mem::replace(
                doc,
                Document {
                    fields: updated,
                    version,
                },
            );
            undo.push((key.into(), Some(previous)));
            Ok(Some(doc.clone()))
        }
        Write::Delete { precondition, .. } => {
            let Some(doc) = docs.get(key) else {
                return match precondition {
                    Precondition::None => Ok(None),
                    _ => Err(StoreError::NotFound(key.into())),
                };
            };
            check_version(key, &doc.version, precondition)?;
            if let Some(previous) = docs.remove(key) {
                undo.push((key.into(), Some(previous)));
            }
            Ok(None)
        }
    }
}

fn check_version(
    key: &str,
    current: &Version,
    precondition: &Precondition,
) -> Result<(), StoreError> {
    match precondition {
        Precondition::At(expected) if expected != current => {
            Err(StoreError::PreconditionFailed(key.into()))
        }
        _ => Ok(()),
    }
}

/// Refuses what Firestore refuses (its INVALID_ARGUMENT), so local mode fails where the
/// deployed backend would.
fn check_fields(fields: &Fields) -> Result<(), StoreError> {
    super::storable(fields)
        .map_err(|why| StoreError::Unavailable(format!("invalid document: {why}")))
}

fn parse_snapshot(bytes: &[u8]) -> Result<Docs, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let version = value.get("version").and_then(Value::as_u64);
    if !matches!(version, Some(1 | SNAPSHOT_VERSION)) {
        return Err(format!("unknown snapshot version {version:?}"));
    }
    let documents = value
        .get("documents")
        .and_then(Value::as_object)
        .ok_or("no documents object")?;
    let loaded_at = Version::at(chrono::Utc::now());
    documents
        .iter()
        .map(|(path, doc)| {
            let doc = match (version, doc) {
                (Some(1), Value::Object(fields)) => Document {
                    fields: fields.clone(),
                    version: loaded_at.clone(),
                },
                (_, Value::Object(entry)) => Document {
                    fields: entry
                        .get("fields")
                        .and_then(Value::as_object)
                        .cloned()
                        .ok_or_else(|| format!("document {path} has no fields"))?,
                    version: entry
                        .get("version")
                        .and_then(Value::as_str)
                        .and_then(Version::parse)
                        .ok_or_else(|| format!("document {path} has no valid version"))?,
                },
                _ => return Err(format!("document {path} is not an object")),
            };
            Ok((path.clone(), doc))
        })
        .collect()
}

fn snapshot_bytes(docs: &Docs) -> Vec<u8> {
    let documents: serde_json::Map<String, Value> = docs
        .iter()
        .map(|(path, doc)| {
            (
                path.clone(),
                json!({"fields": doc.fields, "version": doc.version}),
            )
        })
        .collect();
    let snapshot = json!({ "version": SNAPSHOT_VERSION, "documents": documents });
    // Serializing a JSON value to memory cannot fail; an empty file would be refused at load.
    serde_json::to_vec_pretty(&snapshot).unwrap_or_default()
}

/// Whether `path` is a document directly in `collection`.
fn in_collection(path: &str, collection: &str) -> bool {
    path.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

#[async_trait]
impl DocumentStore for MemoryStore {
    async fn get(&self, path: &DocPath) -> Result<Option<Document>, StoreError> {
        Ok(self.lock().docs.get(path.as_str()).cloned())
    }

    async fn list(&self, collection: &CollectionPath) -> Result<Vec<Document>, StoreError> {
        let prefix = format!("{}/", collection.as_str());
        let state = self.lock();
        Ok(state
            .docs
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| in_collection(path, collection.as_str()))
            .map(|(_, doc)| doc.clone())
            .collect())
    }

    async fn list_descendants(
        &self,
        parent: &DocPath,
        collection_id: &str,
    ) -> Result<Vec<Document>, StoreError> {
        let prefix = format!("{}/", parent.as_str());
        let state = self.lock();
        Ok(state
            .docs
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| in_group(path, collection_id))
            .map(|(_, doc)| doc.clone())
            .collect())
    }

    async fn list_page(
        &self,
        listing: &Listing,
        after: Option<&DocPath>,
        limit: usize,
    ) -> Result<Vec<(DocPath, Document)>, StoreError> {
        let prefix = match listing {
            Listing::Collection(collection) => format!("{}/", collection.as_str()),
            Listing::Descendants { parent, .. } => format!("{}/", parent.as_str()),
        };
        let belongs = |path: &str| match listing {
            Listing::Collection(collection) => in_collection(path, collection.as_str()),
            Listing::Descendants { collection_id, .. } => in_group(path, collection_id),
        };
        let start = match after {
            Some(after) => Bound::Excluded(after.as_str().to_owned()),
            None => Bound::Included(prefix.clone()),
        };
        let state = self.lock();
        Ok(state
            .docs
            .range((start, Bound::Unbounded))
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| belongs(path))
            .filter_map(|(path, doc)| Some((DocPath::parse(path)?, doc.clone())))
            .take(limit.max(1))
            .collect())
    }

    async fn find_in_group(
        &self,
        collection_id: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<(DocPath, Document)>, StoreError> {
        let state = self.lock();
        Ok(state
            .docs
            .iter()
            .filter(|(path, _)| in_group(path, collection_id))
            .filter(|(_, doc)| doc.fields.get(field).and_then(Value::as_str) == Some(value))
            .filter_map(|(path, doc)| Some((DocPath::parse(path)?, doc.clone())))
            .collect())
    }

    async fn create(&self, path: &DocPath, fields: Fields) -> Result<Document, StoreError> {
        let write = Write::Create {
            path: path.clone(),
            fields,
        };
        self.apply(std::slice::from_ref(&write))
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| StoreError::Unavailable("create left no document".into()))
    }

    async fn update(
        &self,
        path: &DocPath,
        fields: Fields,
        mask: &[String],
    ) -> Result<Document, StoreError> {
        let write = Write::Update {
            path: path.clone(),
            fields,
            mask: mask.to_vec(),
            precondition: Precondition::Exists,
        };
        self.apply(std::slice::from_ref(&write))
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| StoreError::Unavailable("update left no document".into()))
    }

    async fn delete(&self, path: &DocPath) -> Result<(), StoreError> {
        let write = Write::Delete {
            path: path.clone(),
            precondition: Precondition::Exists,
        };
        self.apply(&[write]).await?;
        Ok(())
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Vec<Option<Version>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let left = self.apply(&writes).await?;
        Ok(left.into_iter().map(|doc| doc.map(|d| d.version)).collect())
    }
}

/// Whether `path` is a document of a collection named `collection_id`: the segment before
/// the id names the collection.
fn in_group(path: &str, collection_id: &str) -> bool {
    let mut segments = path.rsplit('/');
    segments.next();
    segments.next() == Some(collection_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_membership_is_exact() {
        assert!(in_collection(
            "users/u1/businesses/b1",
            "users/u1/businesses"
        ));
        assert!(!in_collection(
            "users/u1/businesses/b1/products/p1",
            "users/u1/businesses"
        ));
        assert!(!in_collection(
            "users/u1/businesses2/b1",
            "users/u1/businesses"
        ));
        assert!(!in_collection("users/u1/businesses", "users/u1/businesses"));
    }

    #[test]
    fn a_bad_snapshot_is_refused() {
        assert!(parse_snapshot(b"").is_err());
        assert!(parse_snapshot(br#"{"version": 3, "documents": {}}"#).is_err());
        assert!(parse_snapshot(br#"{"version": 1, "documents": {"a/b": 1}}"#).is_err());
        assert!(
            parse_snapshot(br#"{"version": 2, "documents": {"a/b": {"fields": {}}}}"#).is_err()
        );
        let docs =
            parse_snapshot(br#"{"version": 1, "documents": {"a/b": {"x": 1}}}"#).expect("valid");
        assert_eq!(docs["a/b"].fields["x"], json!(1));
        let v2 = br#"{"version": 2, "documents": {"a/b": {"fields": {"x": 2}, "version": "2026-01-02T03:04:05.5Z"}}}"#;
        let docs = parse_snapshot(v2).expect("valid");
        assert_eq!(docs["a/b"].fields["x"], json!(2));
        assert_eq!(
            docs["a/b"].version.as_str(),
            "2026-01-02T03:04:05.500000000Z"
        );
    }
}
