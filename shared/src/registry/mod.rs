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

/// A seq handed to a writer before its write, with what the log knew when it was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub seq: u64,
    /// When `seq - 1` was reserved (unix ms; 0 for the first seq): recorded with the entry,
    /// it tells readers how old a missing `seq - 1` is.
    pub prev_reserved_at_ms: i64,
}

/// What a reserved seq holds once its writer is done: the event, or nothing (the write
/// failed and wrote nothing, so there is nothing to tell).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub seq: u64,
    /// From the entry's [`Reservation`].
    pub prev_reserved_at_ms: i64,
    /// `None`: the seq carries no event; readers skip it.
    pub event: Option<RecordedEvent>,
}

/// The top of a user's log: the last seq handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// The user's last reserved seq (0 before the first).
    pub seq: u64,
    /// When it was reserved (unix ms).
    pub reserved_at_ms: i64,
    /// When the seq before it was reserved (unix ms; 0 for the first).
    pub prev_reserved_at_ms: i64,
}

/// A run of a user's log entries and its head. Reserved seqs without an entry are missing
/// from `entries`: in flight, lost with their writer, or past the retention window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogPage {
    pub head: Head,
    /// In the order asked for; only entries within the retention window.
    pub entries: Vec<LogEntry>,
    /// Whether more entries lie beyond the last one, in the direction asked for.
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

    /// Stores a new connection unless its user already holds `limit` live ones, atomically:
    /// concurrent admissions of one user never pass the limit together.
    async fn admit(&self, connection: &Connection, limit: u32) -> Result<Admission, RegistryError>;

    /// Looks a connection up by id (strongly consistent).
    async fn get(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError>;

    /// Every stored connection of a user whose row has not expired.
    async fn of_user(&self, uid: &Uid) -> Result<Vec<Connection>, RegistryError>;

    /// Removes a connection; returns what was removed, if it was there.
    async fn remove(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError>;
}

/// What [`ConnectionRegistry::admit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// The user holds the limit already; nothing was stored.
    Full,
}

/// Each user's log of events, numbered by `seq`. A writer reserves the next seq before it
/// writes, then records what the seq holds; a seq whose writer died stays missing, which is
/// how readers learn that something may have been lost.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Hands out the user's next seq (strictly increasing by one, atomically), spending one
    /// use of `quota` in the same write when given: a spent quota hands out nothing.
    async fn reserve(&self, uid: &Uid, quota: Option<Quota>) -> Result<Reserved, RegistryError>;

    /// Records what a reserved seq holds, for the retention window.
    async fn record(&self, uid: &Uid, entry: &LogEntry) -> Result<(), RegistryError>;

    /// The user's head.
    async fn head(&self, uid: &Uid) -> Result<Head, RegistryError>;

    /// At most `limit` entries of `uid`'s log, read the way `direction` says.
    async fn page(
        &self,
        uid: &Uid,
        direction: Direction,
        limit: usize,
    ) -> Result<LogPage, RegistryError>;

    /// Entries with `seq > since`, oldest first, at most `limit` of them.
    async fn after(&self, uid: &Uid, since: u64, limit: usize) -> Result<LogPage, RegistryError> {
        self.page(uid, Direction::Forward(since), limit).await
    }

    /// Entries with `seq < before` (all of them when `None`), newest first, at most `limit`.
    async fn before(
        &self,
        uid: &Uid,
        before: Option<u64>,
        limit: usize,
    ) -> Result<LogPage, RegistryError> {
        self.page(uid, Direction::Backward(before), limit).await
    }
}

/// A per-user budget spent by a reservation: at most `limit` reservations per `window`,
/// counted under `name` (one budget per kind of write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub name: &'static str,
    pub limit: u32,
    pub window: std::time::Duration,
}

/// What [`EventLog::reserve`] handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    Seq(Reservation),
    /// `quota` is spent for the current window; the next one starts after `retry_after`.
    OverQuota {
        quota: Quota,
        retry_after: std::time::Duration,
    },
}

/// Which way a page of a user's log is read.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    /// Entries after this seq, oldest first.
    Forward(u64),
    /// Entries before this seq (from the top when `None`), newest first.
    Backward(Option<u64>),
}

/// What a rate limit allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    Allowed,
    /// The budget of the current window is spent; the next window starts after this long.
    Refused {
        retry_after: std::time::Duration,
    },
}

/// Fixed-window counters: a budget of uses per window, per key (a user, a connection).
/// One atomic write per use, and no read.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one use of `key`'s budget in the current `window`: refused once `limit` uses
    /// were counted in it.
    async fn spend(
        &self,
        key: &str,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<Allowance, RegistryError>;
}

/// The current window of `window` length at `now_secs`: its start and how long it has left.
pub(crate) fn current_window(
    now_secs: i64,
    window: std::time::Duration,
) -> (i64, std::time::Duration) {
    let length = i64::try_from(window.as_secs()).unwrap_or(i64::MAX).max(1);
    let start = now_secs - now_secs.rem_euclid(length);
    let left = u64::try_from(start + length - now_secs).unwrap_or(1);
    (start, std::time::Duration::from_secs(left.max(1)))
}
