//! The embedded connection table and event log of local mode.
//!
//! The same semantics as the DynamoDB registry (expired connection rows are ignored, events
//! are pruned after the retention window), kept in process. [`MemoryRegistry::persistent`]
//! also keeps each user's seq head and recorded events in a JSON snapshot, so that restarting
//! the local server does not reset `seq` under clients that remember it. Connections are not
//! persisted: every socket dies with the server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{Connection, ConnectionRegistry, EventLog, EventsSince, RecordedEvent, RegistryError};
use crate::ids::{ConnectionId, Uid};

/// Version of the snapshot file format.
const SNAPSHOT_VERSION: u32 = 1;

/// The in-process connection registry and event log (see the module docs).
pub struct MemoryRegistry {
    /// Event retention in whole seconds, like the DynamoDB TTL attribute.
    retention_secs: i64,
    /// Only ever locked for in-memory work, never across an await.
    state: Mutex<State>,
    snapshot: Option<Snapshot>,
}

#[derive(Default)]
struct State {
    connections: HashMap<ConnectionId, Connection>,
    logs: BTreeMap<Uid, UserLog>,
}

#[derive(Default, Serialize, Deserialize)]
struct UserLog {
    head: u64,
    /// Oldest first; seqs strictly increasing.
    events: VecDeque<StoredEvent>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEvent {
    event: RecordedEvent,
    /// Unix seconds.
    expires_at: i64,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    users: &'a BTreeMap<Uid, UserLog>,
}

#[derive(Deserialize)]
struct SnapshotFile {
    version: u32,
    users: BTreeMap<Uid, UserLog>,
}

struct Snapshot {
    path: PathBuf,
    /// Serialises the rewrites, so that the last rename carries the latest state.
    writer: tokio::sync::Mutex<()>,
}

impl MemoryRegistry {
    /// An empty registry that lives as long as the process; events are kept for `retention`.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention_secs: i64::try_from(retention.as_secs()).unwrap_or(i64::MAX),
            state: Mutex::new(State::default()),
            snapshot: None,
        }
    }

    /// A registry whose seq heads and recorded events are kept in the JSON file at `path`:
    /// loaded now (a missing file is an empty registry) and rewritten atomically after each
    /// append (an append whose rewrite fails returns an error, its seq already taken). Its
    /// parent directory is created if needed.
    pub fn persistent(
        path: impl Into<PathBuf>,
        retention: Duration,
    ) -> Result<Self, RegistryError> {
        let path = path.into();
        let mut registry = Self::new(retention);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| file_error("creating", parent, e))?;
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| {
                    RegistryError::Unavailable(format!("reading {}: {e}", path.display()))
                })?;
                if file.version != SNAPSHOT_VERSION {
                    return Err(RegistryError::Unavailable(format!(
                        "{}: unsupported snapshot version {}",
                        path.display(),
                        file.version
                    )));
                }
                let state = registry
                    .state
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner);
                state.logs = file.users;
                let now = now_secs();
                for log in state.logs.values_mut() {
                    prune(log, now);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error("reading", &path, e)),
        }
        registry.snapshot = Some(Snapshot {
            path,
            writer: tokio::sync::Mutex::new(()),
        });
        Ok(registry)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters to callers, so keep serving rather than poisoning every later call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rewrites the snapshot, if there is one: serialised under the state lock, written to a
    /// temporary file and renamed over the old one, so a crash leaves the old or the new file.
    async fn save(&self) -> Result<(), RegistryError> {
        let Some(snapshot) = &self.snapshot else {
            return Ok(());
        };
        let _writer = snapshot.writer.lock().await;
        let bytes = {
            let mut state = self.lock();
            let now = now_secs();
            for log in state.logs.values_mut() {
                prune(log, now);
            }
            serde_json::to_vec(&SnapshotRef {
                version: SNAPSHOT_VERSION,
                users: &state.logs,
            })
            .map_err(|e| RegistryError::Unavailable(format!("serialising the snapshot: {e}")))?
        };
        let path = snapshot.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| RegistryError::Unavailable(format!("writing the snapshot: {e}")))?
    }
}

#[async_trait]
impl ConnectionRegistry for MemoryRegistry {
    async fn put(&self, connection: &Connection) -> Result<(), RegistryError> {
        let now = now_secs();
        let mut state = self.lock();
        // Stand-in for TTL: sockets whose $disconnect never came do not pile up.
        state.connections.retain(|_, c| c.expires_at > now);
        state
            .connections
            .insert(connection.id.clone(), connection.clone());
        Ok(())
    }

    async fn get(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        let now = now_secs();
        Ok(self
            .lock()
            .connections
            .get(id)
            .filter(|c| c.expires_at > now)
            .cloned())
    }

    async fn of_user(&self, uid: &Uid) -> Result<Vec<Connection>, RegistryError> {
        let now = now_secs();
        let mut connections: Vec<Connection> = self
            .lock()
            .connections
            .values()
            .filter(|c| &c.uid == uid && c.expires_at > now)
            .cloned()
            .collect();
        // The DynamoDB registry returns them in sort-key order; keep the same order.
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(connections)
    }

    async fn remove(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        Ok(self.lock().connections.remove(id))
    }
}

#[async_trait]
impl EventLog for MemoryRegistry {
    async fn append(
        &self,
        uid: &Uid,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<RecordedEvent, RegistryError> {
        let recorded = {
            let now = Utc::now();
            let mut state = self.lock();
            let log = state.logs.entry(uid.clone()).or_default();
            prune(log, now.timestamp());
            log.head += 1;
            let recorded = RecordedEvent {
                seq: log.head,
                event: event.to_owned(),
                ts: now.to_rfc3339_opts(SecondsFormat::Millis, true),
                data: data.clone(),
            };
            log.events.push_back(StoredEvent {
                event: recorded.clone(),
                expires_at: now.timestamp().saturating_add(self.retention_secs),
            });
            recorded
        };
        self.save().await?;
        Ok(recorded)
    }

    async fn head(&self, uid: &Uid) -> Result<u64, RegistryError> {
        Ok(self.lock().logs.get(uid).map_or(0, |log| log.head))
    }

    async fn since(
        &self,
        uid: &Uid,
        since: u64,
        limit: usize,
    ) -> Result<EventsSince, RegistryError> {
        let mut state = self.lock();
        let Some(log) = state.logs.get_mut(uid) else {
            return Ok(events_since(since, limit, 0, Vec::new()));
        };
        prune(log, now_secs());
        let start = log.events.partition_point(|e| e.event.seq <= since);
        let fetched = log
            .events
            .iter()
            .skip(start)
            .take(limit.saturating_add(1))
            .map(|e| e.event.clone())
            .collect();
        Ok(events_since(since, limit, log.head, fetched))
    }
}

/// The contract's answer from the retained events after `since` (oldest first, up to
/// `limit + 1` of them) and the head; shared by both registries so they cannot disagree.
///
/// `complete` is false when `since` is ahead of `head`, or when the retained events do not
/// continue `since` one by one (retention dropped something, or an append failed after
/// taking its seq). With no retained event after an older `since`, everything after it was
/// dropped: also incomplete.
pub(super) fn events_since(
    since: u64,
    limit: usize,
    head: u64,
    mut fetched: Vec<RecordedEvent>,
) -> EventsSince {
    let contiguous = fetched
        .iter()
        .zip(1u64..)
        .all(|(event, offset)| since.checked_add(offset) == Some(event.seq));
    let complete = match since.cmp(&head) {
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => contiguous,
        std::cmp::Ordering::Less => !fetched.is_empty() && contiguous,
    };
    let has_more = fetched.len() > limit;
    fetched.truncate(limit);
    EventsSince {
        head,
        events: fetched,
        complete,
        has_more,
    }
}

fn prune(log: &mut UserLog, now: i64) {
    while log.events.front().is_some_and(|e| e.expires_at <= now) {
        log.events.pop_front();
    }
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

fn file_error(doing: &str, path: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Unavailable(format!("{doing} {}: {e}", path.display()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(|e| file_error("creating", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_error("renaming to", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> RecordedEvent {
        RecordedEvent {
            seq,
            event: "product:updated".into(),
            ts: "2026-11-24T23:42:22.169Z".into(),
            data: serde_json::json!({"n": seq}),
        }
    }

    fn snapshot_path(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("memory-registry-{}-{name}", std::process::id()))
            .join("registry.json")
    }

    #[test]
    fn events_since_reports_gaps_limits_and_heads() {
        let r = events_since(2, 10, 4, vec![event(3), event(4)]);
        assert!(r.complete && !r.has_more && r.events.len() == 2);
        // A gap in the middle is a lost event too.
        assert!(!events_since(2, 10, 5, vec![event(3), event(5)]).complete);
        assert!(!events_since(2, 10, 4, vec![event(4)]).complete);
        assert!(!events_since(2, 10, 4, vec![]).complete);
        assert!(!events_since(5, 10, 4, vec![]).complete);
        assert!(events_since(4, 10, 4, vec![]).complete);
        let r = events_since(0, 2, 9, vec![event(1), event(2), event(3)]);
        assert!(r.complete && r.has_more);
        assert_eq!(r.events, vec![event(1), event(2)]);
        let r = events_since(0, 0, 9, vec![event(1)]);
        assert!(r.complete && r.has_more && r.events.is_empty());
    }

    #[tokio::test]
    async fn a_persistent_registry_keeps_seq_and_events_but_not_connections() {
        let path = snapshot_path("restart");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let uid = Uid::parse("alice").unwrap();
        let day = Duration::from_secs(86_400);
        {
            let registry = MemoryRegistry::persistent(&path, day).unwrap();
            registry
                .put(&Connection {
                    id: ConnectionId::parse("c1").unwrap(),
                    uid: uid.clone(),
                    connected_at: now_secs(),
                    token_expires_at: now_secs() + 3600,
                    expires_at: now_secs() + 3600,
                })
                .await
                .unwrap();
            for n in 1..=3 {
                registry
                    .append(&uid, "product:updated", &serde_json::json!({"n": n}))
                    .await
                    .unwrap();
            }
        }
        let registry = MemoryRegistry::persistent(&path, day).unwrap();
        assert_eq!(registry.head(&uid).await.unwrap(), 3);
        let r = registry.since(&uid, 1, 10).await.unwrap();
        assert!(r.complete);
        assert_eq!(
            r.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(r.events[0].data, serde_json::json!({"n": 2}));
        assert!(registry.of_user(&uid).await.unwrap().is_empty());
        let next = registry
            .append(&uid, "product:updated", &serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!(next.seq, 4);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn expired_events_are_dropped_from_the_snapshot_on_load() {
        let path = snapshot_path("expiry");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let uid = Uid::parse("bob").unwrap();
        // Zero retention: every event is expired as soon as it is written.
        let registry = MemoryRegistry::persistent(&path, Duration::ZERO).unwrap();
        registry
            .append(&uid, "product:updated", &serde_json::json!({}))
            .await
            .unwrap();
        let registry = MemoryRegistry::persistent(&path, Duration::from_secs(60)).unwrap();
        let r = registry.since(&uid, 0, 10).await.unwrap();
        assert_eq!(r.head, 1);
        assert!(r.events.is_empty() && !r.complete);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_corrupt_snapshot_is_an_error() {
        let path = snapshot_path("corrupt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        assert!(MemoryRegistry::persistent(&path, Duration::from_secs(60)).is_err());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
