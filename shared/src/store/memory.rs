//! The embedded document store of local mode.
//!
//! Same semantics as Firestore (preconditions, masks, all-or-nothing commits, collection
//! group queries scoped to a parent, and Firestore's rejection of values it cannot store),
//! in a map guarded by a std mutex that is never held across an await. A persistent store
//! also keeps a JSON snapshot on disk, rewritten atomically after every write, so the local
//! server keeps its data across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{CollectionPath, DocPath, DocumentStore, Fields, StoreError, Write};

/// Snapshot format version, so a future change of layout can be detected.
const SNAPSHOT_VERSION: u64 = 1;

type Docs = BTreeMap<String, Fields>;

/// Previous values of the documents a write touched (`None`: it did not exist), newest last.
type Undo = Vec<(String, Option<Fields>)>;

/// The in-process [`DocumentStore`], optionally persisted to a JSON file.
pub struct MemoryStore {
    docs: Mutex<Docs>,
    snapshot: Option<PathBuf>,
    /// Serializes writers of a persistent store so snapshots reach the disk in order.
    writer: tokio::sync::Mutex<()>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store that lives as long as the process.
    pub fn new() -> Self {
        Self {
            docs: Mutex::new(Docs::new()),
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
            docs: Mutex::new(docs),
            snapshot: Some(path),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Docs> {
        // Nothing panics while the lock is held, but a poisoned map is still consistent:
        // every mutation is undone on error before the guard is released.
        self.docs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `writes` all or nothing, persists, and returns the documents they left.
    async fn apply(&self, writes: &[Write]) -> Result<Vec<Option<Fields>>, StoreError> {
        let _writer = match &self.snapshot {
            Some(_) => Some(self.writer.lock().await),
            None => None,
        };
        let (results, undo, snapshot) = {
            let mut docs = self.lock();
            let mut undo = Undo::new();
            let mut results = Vec::with_capacity(writes.len());
            for write in writes {
                match apply_one(&mut docs, write, &mut undo) {
                    Ok(doc) => results.push(doc),
                    Err(e) => {
                        rollback(&mut docs, undo);
                        return Err(e);
                    }
                }
            }
            let snapshot = self.snapshot.as_ref().map(|_| snapshot_bytes(&docs));
            (results, undo, snapshot)
        };
        if let (Some(path), Some(bytes)) = (&self.snapshot, snapshot) {
            // Readers may see the write before it is on disk; if the disk refuses it, it is
            // undone so the store never claims a write it did not keep.
            if let Err(e) = write_atomically(path, &bytes).await {
                rollback(&mut self.lock(), undo);
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

/// One write with its precondition; returns the document it left (`None` if deleted).
fn apply_one(
    docs: &mut Docs,
    write: &Write,
    undo: &mut Undo,
) -> Result<Option<Fields>, StoreError> {
    match write {
        Write::Create { path, fields } => {
            check_fields(fields)?;
            let key = path.as_str();
            if docs.contains_key(key) {
                return Err(StoreError::AlreadyExists(key.into()));
            }
            undo.push((key.into(), None));
            docs.insert(key.into(), fields.clone());
            Ok(Some(fields.clone()))
        }
        Write::Update { path, fields, mask } => {
            let key = path.as_str();
            let doc = docs
                .get_mut(key)
                .ok_or_else(|| StoreError::NotFound(key.into()))?;
            let mut updated = doc.clone();
            for name in mask {
                match fields.get(name) {
                    Some(value) => updated.insert(name.clone(), value.clone()),
                    // Firestore semantics: a masked name without a value is removed.
                    None => updated.remove(name),
                };
            }
            check_fields(&updated)?;
            let previous = std::mem::replace(doc, updated.clone());
            undo.push((key.into(), Some(previous)));
            Ok(Some(updated))
        }
        Write::Delete { path } => {
            let key = path.as_str();
            let previous = docs
                .remove(key)
                .ok_or_else(|| StoreError::NotFound(key.into()))?;
            undo.push((key.into(), Some(previous)));
            Ok(None)
        }
        Write::RequireExists { path } => docs
            .get(path.as_str())
            .cloned()
            .map(Some)
            .ok_or_else(|| StoreError::NotFound(path.as_str().into())),
    }
}

/// Refuses what Firestore refuses (its INVALID_ARGUMENT), so local mode fails where the
/// deployed backend would: empty or reserved (`__name__`-style) field names, and arrays
/// directly inside arrays.
fn check_fields(fields: &Fields) -> Result<(), StoreError> {
    fn check(value: &Value, in_array: bool) -> Result<(), String> {
        match value {
            Value::Array(_) if in_array => Err("an array cannot directly contain an array".into()),
            Value::Array(items) => items.iter().try_for_each(|v| check(v, true)),
            Value::Object(map) => check_map(map),
            _ => Ok(()),
        }
    }
    fn check_map(map: &Fields) -> Result<(), String> {
        for (name, value) in map {
            if name.is_empty() {
                return Err("a field name is empty".into());
            }
            if name.len() >= 4 && name.starts_with("__") && name.ends_with("__") {
                return Err(format!("field name {name} is reserved"));
            }
            check(value, false)?;
        }
        Ok(())
    }
    check_map(fields).map_err(|e| StoreError::Unavailable(format!("invalid document: {e}")))
}

fn parse_snapshot(bytes: &[u8]) -> Result<Docs, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    match value.get("version").and_then(Value::as_u64) {
        Some(SNAPSHOT_VERSION) => {}
        other => return Err(format!("unknown snapshot version {other:?}")),
    }
    let documents = value
        .get("documents")
        .and_then(Value::as_object)
        .ok_or("no documents object")?;
    documents
        .iter()
        .map(|(path, doc)| match doc {
            Value::Object(fields) => Ok((path.clone(), fields.clone())),
            _ => Err(format!("document {path} is not an object")),
        })
        .collect()
}

fn snapshot_bytes(docs: &Docs) -> Vec<u8> {
    let snapshot = json!({ "version": SNAPSHOT_VERSION, "documents": docs });
    // Serializing a JSON value to memory cannot fail; an empty file would be refused at load.
    serde_json::to_vec_pretty(&snapshot).unwrap_or_default()
}

/// Writes to a temporary file next to `path`, flushes it, and renames it over `path`, so a
/// crash leaves either the old snapshot or the new one, never half of one.
async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;

    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let mut file = tokio::fs::File::create(&temp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temp, path).await
}

/// Whether `path` is a document directly in `collection`.
fn in_collection(path: &str, collection: &str) -> bool {
    path.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

#[async_trait]
impl DocumentStore for MemoryStore {
    async fn get(&self, path: &DocPath) -> Result<Option<Fields>, StoreError> {
        Ok(self.lock().get(path.as_str()).cloned())
    }

    async fn list(&self, collection: &CollectionPath) -> Result<Vec<Fields>, StoreError> {
        let prefix = format!("{}/", collection.as_str());
        let docs = self.lock();
        Ok(docs
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
    ) -> Result<Vec<Fields>, StoreError> {
        let prefix = format!("{}/", parent.as_str());
        let docs = self.lock();
        Ok(docs
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| {
                // `.../{collection_id}/{id}`: the segment before the id names the collection.
                let mut segments = path.rsplit('/');
                segments.next();
                segments.next() == Some(collection_id)
            })
            .map(|(_, doc)| doc.clone())
            .collect())
    }

    async fn create(&self, path: &DocPath, fields: Fields) -> Result<Fields, StoreError> {
        let write = Write::Create {
            path: path.clone(),
            fields,
        };
        let mut left = self.apply(std::slice::from_ref(&write)).await?;
        Ok(left.pop().flatten().unwrap_or_default())
    }

    async fn update(
        &self,
        path: &DocPath,
        fields: Fields,
        mask: &[String],
    ) -> Result<Fields, StoreError> {
        if mask.is_empty() {
            // Nothing changes: no need to rewrite the snapshot.
            return self
                .get(path)
                .await?
                .ok_or_else(|| StoreError::NotFound(path.as_str().into()));
        }
        let write = Write::Update {
            path: path.clone(),
            fields,
            mask: mask.to_vec(),
        };
        let mut left = self.apply(std::slice::from_ref(&write)).await?;
        Ok(left.pop().flatten().unwrap_or_default())
    }

    async fn delete(&self, path: &DocPath) -> Result<(), StoreError> {
        self.apply(&[Write::Delete { path: path.clone() }]).await?;
        Ok(())
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.apply(&writes).await?;
        Ok(())
    }
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
    fn unstorable_values_are_refused_like_firestore_does() {
        let refuse = |v: Value| {
            let Value::Object(fields) = v else {
                panic!("object")
            };
            check_fields(&fields).is_err()
        };
        assert!(refuse(json!({"a": [[1]]})));
        assert!(refuse(json!({"": 1})));
        assert!(refuse(json!({"m": {"": 1}})));
        assert!(refuse(json!({"__x__": 1})));
        assert!(!refuse(
            json!({"a": [{"b": [1]}], "__": 1, "_x_": {"y": []}})
        ));
    }

    #[test]
    fn a_bad_snapshot_is_refused() {
        assert!(parse_snapshot(b"").is_err());
        assert!(parse_snapshot(br#"{"version": 2, "documents": {}}"#).is_err());
        assert!(parse_snapshot(br#"{"version": 1, "documents": {"a/b": 1}}"#).is_err());
        let docs =
            parse_snapshot(br#"{"version": 1, "documents": {"a/b": {"x": 1}}}"#).expect("valid");
        assert_eq!(docs["a/b"]["x"], json!(1));
    }
}
