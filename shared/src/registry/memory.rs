//! The embedded connection table and event log of local mode.
//!
//! The same semantics as the DynamoDB registry (expired connection rows are ignored, entries
//! are dropped after the retention window), kept in process. [`MemoryRegistry::persistent`]
//! also keeps each user's log in a JSON snapshot, so that restarting the local server does
//! not reset `seq` under clients that remember it. Connections are not persisted: every
//! socket dies with the server.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    Admission, Allowance, Connection, ConnectionRegistry, Direction, EventLog, Head, LogEntry,
    LogPage, Quota, RateLimiter, RecordedEvent, RegistryError, Reservation, Reserved,
    current_window,
};
use crate::ids::{ConnectionId, Uid};

/// Version of the snapshot file format (1 had no reservation times; it is still read).
const SNAPSHOT_VERSION: u32 = 2;

/// The in-process connection registry and event log (see the module docs).
pub struct MemoryRegistry {
    /// Entry retention in whole seconds, like the DynamoDB TTL attribute.
    retention_secs: i64,
    /// Only ever locked for in-memory work, never across an await.
    state: Mutex<State>,
    snapshot: Option<Snapshot>,
}

#[derive(Default)]
struct State {
    connections: Connections,
    logs: BTreeMap<Uid, UserLog>,
    /// Uses counted per (key, window start), with the unix second the window ends.
    budgets: HashMap<(String, i64), Budget>,
}

/// The connections, by user and by id: a user's are found without looking at the others'.
#[derive(Default)]
struct Connections {
    /// Each user's connections, in id order (the DynamoDB registry's sort-key order).
    by_user: HashMap<Uid, BTreeMap<ConnectionId, Connection>>,
    owner: HashMap<ConnectionId, Uid>,
}

impl Connections {
    /// Drops the connections whose time is up: a stand-in for TTL, so that sockets whose
    /// `$disconnect` never came do not pile up.
    fn expire(&mut self, now: i64) {
        let owner = &mut self.owner;
        self.by_user.retain(|_, of_user| {
            of_user.retain(|id, c| {
                let live = c.expires_at > now;
                if !live {
                    owner.remove(id);
                }
                live
            });
            !of_user.is_empty()
        });
    }

    fn insert(&mut self, connection: &Connection) {
        self.remove(&connection.id);
        self.owner
            .insert(connection.id.clone(), connection.uid.clone());
        self.by_user
            .entry(connection.uid.clone())
            .or_default()
            .insert(connection.id.clone(), connection.clone());
    }

    fn get(&self, id: &ConnectionId) -> Option<&Connection> {
        self.by_user.get(self.owner.get(id)?)?.get(id)
    }

    fn remove(&mut self, id: &ConnectionId) -> Option<Connection> {
        let uid = self.owner.remove(id)?;
        let of_user = self.by_user.get_mut(&uid)?;
        let removed = of_user.remove(id);
        if of_user.is_empty() {
            self.by_user.remove(&uid);
        }
        removed
    }

    fn of_user(&self, uid: &Uid) -> impl Iterator<Item = &Connection> {
        self.by_user.get(uid).into_iter().flat_map(BTreeMap::values)
    }
}

struct Budget {
    used: u32,
    ends_at: i64,
}

#[derive(Default, Serialize, Deserialize)]
struct UserLog {
    head: Head,
    entries: BTreeMap<u64, StoredEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEntry {
    entry: LogEntry,
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
    users: serde_json::Value,
}

/// A user's log as version 1 kept it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserLogV1 {
    head: u64,
    events: Vec<StoredEventV1>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEventV1 {
    event: RecordedEvent,
    expires_at: i64,
}

impl From<UserLogV1> for UserLog {
    fn from(old: UserLogV1) -> Self {
        let entries = old
            .events
            .into_iter()
            .map(|e| {
                let entry = LogEntry {
                    seq: e.event.seq,
                    prev_reserved_at_ms: 0,
                    event: Some(e.event),
                };
                (
                    entry.seq,
                    StoredEntry {
                        entry,
                        expires_at: e.expires_at,
                    },
                )
            })
            .collect();
        Self {
            head: Head {
                seq: old.head,
                ..Head::default()
            },
            entries,
        }
    }
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
                let unreadable = |e: String| {
                    RegistryError::Unavailable(format!("reading {}: {e}", path.display()))
                };
                let file: SnapshotFile =
                    serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
                let logs = match file.version {
                    1 => serde_json::from_value::<BTreeMap<Uid, UserLogV1>>(file.users)
                        .map(|users| users.into_iter().map(|(u, l)| (u, l.into())).collect()),
                    SNAPSHOT_VERSION => serde_json::from_value(file.users),
                    other => {
                        return Err(unreadable(format!("unsupported snapshot version {other}")));
                    }
                }
                .map_err(|e| unreadable(e.to_string()))?;
                let state = registry
                    .state
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner);
                state.logs = logs;
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
        crate::snapshot::write_atomically(&snapshot.path, &bytes)
            .await
            .map_err(|e| file_error("writing", &snapshot.path, e))
    }
}

#[async_trait]
impl ConnectionRegistry for MemoryRegistry {
    async fn put(&self, connection: &Connection) -> Result<(), RegistryError> {
        let mut state = self.lock();
        state.connections.expire(now_secs());
        state.connections.insert(connection);
        Ok(())
    }

    async fn admit(&self, connection: &Connection, limit: u32) -> Result<Admission, RegistryError> {
        let mut state = self.lock();
        state.connections.expire(now_secs());
        let held = state
            .connections
            .of_user(&connection.uid)
            .filter(|c| c.id != connection.id)
            .count();
        if held >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Ok(Admission::Full);
        }
        state.connections.insert(connection);
        Ok(Admission::Admitted)
    }

    async fn get(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        Ok(live(self.lock().connections.get(id), now_secs()).next())
    }

    async fn of_user(&self, uid: &Uid) -> Result<Vec<Connection>, RegistryError> {
        Ok(live(self.lock().connections.of_user(uid), now_secs()).collect())
    }

    async fn remove(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        Ok(self.lock().connections.remove(id))
    }
}

#[async_trait]
impl RateLimiter for MemoryRegistry {
    async fn spend(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Allowance, RegistryError> {
        Ok(self.lock().spend(key, limit, window))
    }
}

impl MemoryRegistry {
    /// Up to `limit` live entries of `uid`'s log in `direction`, with the head.
    fn log_page(&self, uid: &Uid, direction: Direction, limit: usize) -> LogPage {
        let now = now_secs();
        let state = self.lock();
        let Some(log) = state.logs.get(uid) else {
            return LogPage::default();
        };
        let entries: Box<dyn Iterator<Item = &StoredEntry>> = match direction {
            Direction::Forward(since) => {
                Box::new(log.entries.range(since.saturating_add(1)..).map(|(_, e)| e))
            }
            Direction::Backward(before) => Box::new(
                log.entries
                    .range(..before.unwrap_or(u64::MAX))
                    .rev()
                    .map(|(_, e)| e),
            ),
        };
        let mut live = entries
            .filter(|e| e.expires_at > now)
            .map(|e| e.entry.clone());
        page(log.head, &mut live, limit)
    }
}

impl State {
    /// Counts one use of `key`'s budget in the current window, unless it is spent.
    fn spend(&mut self, key: &str, limit: u32, window: Duration) -> Allowance {
        let now = now_secs();
        let (start, left) = current_window(now, window);
        // Windows that are over are forgotten (the table's TTL does this in DynamoDB).
        self.budgets.retain(|_, budget| budget.ends_at > now);
        let budget = self
            .budgets
            .entry((key.to_owned(), start))
            .or_insert(Budget {
                used: 0,
                ends_at: now.saturating_add(i64::try_from(left.as_secs()).unwrap_or(i64::MAX)),
            });
        if budget.used >= limit {
            return Allowance::Refused { retry_after: left };
        }
        budget.used += 1;
        Allowance::Allowed
    }
}

#[async_trait]
impl EventLog for MemoryRegistry {
    async fn reserve(&self, uid: &Uid, quota: Option<Quota>) -> Result<Reserved, RegistryError> {
        let reservation = {
            let mut state = self.lock();
            if let Some(quota) = quota {
                let key = format!("{}#{uid}", quota.name);
                if let Allowance::Refused { retry_after } =
                    state.spend(&key, quota.limit, quota.window)
                {
                    return Ok(Reserved::OverQuota { quota, retry_after });
                }
            }
            let log = state.logs.entry(uid.clone()).or_default();
            let head = &mut log.head;
            let reservation = Reservation {
                seq: head.seq + 1,
                prev_reserved_at_ms: head.reserved_at_ms,
            };
            *head = Head {
                seq: reservation.seq,
                reserved_at_ms: now_ms(),
                prev_reserved_at_ms: head.reserved_at_ms,
            };
            reservation
        };
        self.save().await?;
        Ok(Reserved::Seq(reservation))
    }

    async fn record(&self, uid: &Uid, entry: &LogEntry) -> Result<(), RegistryError> {
        {
            let mut state = self.lock();
            let log = state.logs.entry(uid.clone()).or_default();
            prune(log, now_secs());
            log.entries.insert(
                entry.seq,
                StoredEntry {
                    entry: entry.clone(),
                    expires_at: now_secs().saturating_add(self.retention_secs),
                },
            );
        }
        self.save().await
    }

    async fn head(&self, uid: &Uid) -> Result<Head, RegistryError> {
        Ok(self
            .lock()
            .logs
            .get(uid)
            .map(|log| log.head)
            .unwrap_or_default())
    }

    async fn page(
        &self,
        uid: &Uid,
        direction: Direction,
        limit: usize,
    ) -> Result<LogPage, RegistryError> {
        Ok(self.log_page(uid, direction, limit))
    }
}

/// At most `limit` entries of `entries`, and whether more are left.
fn page(head: Head, entries: &mut impl Iterator<Item = LogEntry>, limit: usize) -> LogPage {
    let taken: Vec<LogEntry> = entries.by_ref().take(limit).collect();
    LogPage {
        head,
        entries: taken,
        has_more: entries.next().is_some(),
    }
}

/// Drops the expired entries at the start of the log. Entries expire about in seq order (each
/// is kept for the same time after it is recorded), so this stops at the first one still
/// kept, at the cost of keeping a late-recorded older one a little longer: one look per
/// write, not a scan of the whole log.
fn prune(log: &mut UserLog, now: i64) {
    while log
        .entries
        .first_key_value()
        .is_some_and(|(_, e)| e.expires_at <= now)
    {
        log.entries.pop_first();
    }
}

/// The connections of `found` whose time is not up at `now`, copied.
fn live<'a>(
    found: impl IntoIterator<Item = &'a Connection>,
    now: i64,
) -> impl Iterator<Item = Connection> {
    found
        .into_iter()
        .filter(move |c| c.expires_at > now)
        .cloned()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn file_error(doing: &str, path: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Unavailable(format!("{doing} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_path(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("memory-registry-{}-{name}", std::process::id()))
            .join("registry.json")
    }

    async fn append(registry: &MemoryRegistry, uid: &Uid, n: u64) -> u64 {
        let Reserved::Seq(reservation) = registry.reserve(uid, None).await.unwrap() else {
            panic!("no quota, no refusal");
        };
        let entry = LogEntry {
            seq: reservation.seq,
            prev_reserved_at_ms: reservation.prev_reserved_at_ms,
            event: Some(RecordedEvent {
                seq: reservation.seq,
                event: "product:updated".into(),
                ts: "2026-11-24T23:42:22.169Z".into(),
                data: serde_json::json!({"n": n}),
            }),
        };
        registry.record(uid, &entry).await.unwrap();
        reservation.seq
    }

    #[tokio::test]
    async fn a_persistent_registry_keeps_the_log_but_not_connections() {
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
                append(&registry, &uid, n).await;
            }
            // Reserved, never recorded: stays missing across the restart.
            registry.reserve(&uid, None).await.unwrap();
        }
        let registry = MemoryRegistry::persistent(&path, day).unwrap();
        let page = registry.after(&uid, 1, 10).await.unwrap();
        assert_eq!(page.head.seq, 4);
        assert!(page.head.reserved_at_ms > 0);
        assert_eq!(
            page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(
            page.entries[0].event.as_ref().unwrap().data,
            serde_json::json!({"n": 2})
        );
        assert!(registry.of_user(&uid).await.unwrap().is_empty());
        assert_eq!(append(&registry, &uid, 5).await, 5);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn expired_entries_are_dropped_from_the_snapshot_on_load() {
        let path = snapshot_path("expiry");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let uid = Uid::parse("bob").unwrap();
        // Zero retention: every entry is expired as soon as it is written.
        let registry = MemoryRegistry::persistent(&path, Duration::ZERO).unwrap();
        append(&registry, &uid, 1).await;
        let registry = MemoryRegistry::persistent(&path, Duration::from_secs(60)).unwrap();
        let page = registry.after(&uid, 0, 10).await.unwrap();
        assert_eq!(page.head.seq, 1);
        assert!(page.entries.is_empty() && !page.has_more);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_version_1_snapshot_is_still_read() {
        let path = snapshot_path("v1");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let v1 = serde_json::json!({"version": 1, "users": {"carol": {"head": 2, "events": [
            {"event": {"seq": 2, "event": "user:updated", "ts": "2026-11-24T23:42:22.169Z", "data": {}},
             "expiresAt": now_secs() + 60}
        ]}}});
        std::fs::write(&path, v1.to_string()).unwrap();
        let registry = MemoryRegistry::persistent(&path, Duration::from_secs(60)).unwrap();
        let state = registry.lock();
        let log = &state.logs[&Uid::parse("carol").unwrap()];
        assert_eq!(log.head.seq, 2);
        assert_eq!(
            log.entries[&2].entry.event.as_ref().unwrap().event,
            "user:updated"
        );
        drop(state);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_corrupt_snapshot_is_an_error() {
        let path = snapshot_path("corrupt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        assert!(MemoryRegistry::persistent(&path, Duration::from_secs(60)).is_err());
        std::fs::write(&path, br#"{"version": 9, "users": {}}"#).unwrap();
        assert!(MemoryRegistry::persistent(&path, Duration::from_secs(60)).is_err());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
