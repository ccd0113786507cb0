//! The connection table and the event log in one DynamoDB table.
//!
//! # Table
//!
//! One table (the SAM template declares exactly this):
//!
//! - key: `pk` (S, HASH) + `sk` (S, RANGE); no GSI;
//! - TTL attribute `expiresAt` (N, unix seconds);
//! - on-demand billing (`PAY_PER_REQUEST`).
//!
//! Items:
//!
//! | pk | sk | attributes | what |
//! |---|---|---|---|
//! | `USER#{uid}` | `CONN#{connectionId}` | `connectionId`, `uid`, `connectedAt`, `tokenExpiresAt`, `expiresAt` | a connection, found by user (`of_user`) |
//! | `CONN#{connectionId}` | `CONN` | the same | the same connection, found by id (`get`, `remove`: `$disconnect` only knows the id) |
//! | `USER#{uid}` | `SEQ` | `seq` (N), `reservedAt` (N, unix ms), `prevReservedAt` (N) | the user's head: the last seq handed out, when, and when the one before it was; never expires |
//! | `USER#{uid}` | `EVT#{seq:020}` | `seq` (N), `prevReservedAt` (N), `event` (S), `ts` (S), `data` (S, JSON) or `skip` (BOOL), `expiresAt` | what one reserved seq holds: an event, or nothing |
//!
//! Within a user's partition the sort order is `CONN#…` < `EVT#…` < `SEQ`, so one query with
//! `sk > EVT#{since:020}` returns the entries after `since`, oldest first, and then the head,
//! and one backwards query from the top returns the head and then the newest entries.
//!
//! TTL deletes expired items lazily (up to days later), so every read also drops rows whose
//! `expiresAt` has passed. The functions need `GetItem`, `PutItem`, `UpdateItem`,
//! `DeleteItem`, `Query` and `ConditionCheckItem` on this table (transactions are authorised
//! per contained action).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use chrono::Utc;

use super::{
    Admission, Allowance, Connection, ConnectionRegistry, Direction, EventLog, Head, LogEntry,
    LogPage, Quota, RateLimiter, RecordedEvent, RegistryError, Reservation, Reserved,
    current_window,
};
use crate::deadline;
use crate::ids::{ConnectionId, Uid};

type Item = HashMap<String, AttributeValue>;

/// The table's key attributes and its TTL attribute (the template declares the same).
pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const EXPIRES_AT: &str = "expiresAt";
const SEQ_SK: &str = "SEQ";
const RESERVED_AT: &str = "reservedAt";
const PREV_RESERVED_AT: &str = "prevReservedAt";
const SKIP: &str = "skip";
const CONN_SK: &str = "CONN";
/// The row whose version every admission of a user's connection bumps.
const CONN_SET_SK: &str = "CONNSET";
/// Admissions retried after a concurrent one changed the user's connections.
const ADMISSION_ATTEMPTS: usize = 5;

/// The connection registry and event log over one DynamoDB table (see the module docs).
pub struct DynamoRegistry {
    client: Client,
    table: String,
    /// The longest one call may take (the invocation's budget may cut it shorter).
    call_timeout: Duration,
    /// Event retention in whole seconds (the TTL attribute's unit).
    retention_secs: i64,
}

impl DynamoRegistry {
    /// The two rows of a connection (by user, for fan-out; by id, for lookups), written
    /// together: a row by id without its row by user would never get events.
    fn connection_rows(
        &self,
        connection: &Connection,
    ) -> Result<[TransactWriteItem; 2], RegistryError> {
        let put = |pk: String, sk: String| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(connection_item(pk, sk, connection)))
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| unavailable("TransactWriteItems", e))
        };
        Ok([
            put(user_pk(&connection.uid), conn_sk(&connection.id))?,
            put(conn_pk(&connection.id), CONN_SK.to_owned())?,
        ])
    }

    /// How many live connections `uid` holds besides `except`, and the version of the set.
    async fn connection_set(
        &self,
        uid: &Uid,
        except: &ConnectionId,
    ) -> Result<(usize, u64), RegistryError> {
        let now = now_secs();
        let (mut held, mut version) = (0, 0);
        // "CONN" covers the connection rows ("CONN#…") and the set's version ("CONNSET").
        for item in self.user_rows(uid, "CONN").await? {
            if item.get(SK) == Some(&s(CONN_SET_SK)) {
                version = attr_n(&item, "version")?;
                continue;
            }
            let connection = parse_connection(&item)?;
            if connection.expires_at > now && &connection.id != except {
                held += 1;
            }
        }
        Ok((held, version))
    }

    /// Every row of `uid`'s partition whose sort key starts with `prefix` (strongly
    /// consistent, all pages).
    async fn user_rows(&self, uid: &Uid, prefix: &str) -> Result<Vec<Item>, RegistryError> {
        let mut rows = Vec::new();
        let mut start_key = None;
        loop {
            let call = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(user_pk(uid)))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send();
            let out = self.run("Query", call).await?;
            rows.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(rows),
            }
        }
    }

    /// A registry over `table`; entries are kept for `retention` after they are recorded.
    pub fn new(client: Client, table: String, retention: Duration, call_timeout: Duration) -> Self {
        Self {
            client,
            table,
            call_timeout,
            retention_secs: i64::try_from(retention.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Opens the connection ahead of the first request: a cold start otherwise pays for the
    /// TLS handshake inside the first user request. A GetItem of a key that never exists is
    /// the cheapest call the table policy already allows. Logs a warning on failure.
    pub async fn warm_up(&self) {
        let result = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s("WARMUP"))
            .key(SK, s("WARMUP"))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(
                table = %self.table,
                error = %DisplayErrorContext(&e),
                "DynamoDB warm-up failed"
            );
        }
    }

    async fn get_item(
        &self,
        pk: String,
        sk: &str,
        op: &str,
    ) -> Result<Option<Item>, RegistryError> {
        let call = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send();
        Ok(self.run(op, call).await?.item)
    }
}

#[async_trait]
impl ConnectionRegistry for DynamoRegistry {
    async fn put(&self, connection: &Connection) -> Result<(), RegistryError> {
        let call = self
            .connection_rows(connection)?
            .into_iter()
            .fold(self.client.transact_write_items(), |call, item| {
                call.transact_items(item)
            })
            .send();
        self.run("TransactWriteItems", call).await?;
        Ok(())
    }

    async fn admit(&self, connection: &Connection, limit: u32) -> Result<Admission, RegistryError> {
        // Optimistic: count the user's live connections and the version of that set, then
        // store the rows only if the version is still the one counted. A concurrent
        // admission bumps the version first and this one counts again.
        for _ in 0..ADMISSION_ATTEMPTS {
            let (held, version) = self.connection_set(&connection.uid, &connection.id).await?;
            if held >= usize::try_from(limit).unwrap_or(usize::MAX) {
                return Ok(Admission::Full);
            }
            let bump = Update::builder()
                .table_name(&self.table)
                .key(PK, s(user_pk(&connection.uid)))
                .key(SK, s(CONN_SET_SK))
                .update_expression("SET #v = :next")
                .condition_expression("attribute_not_exists(#v) OR #v = :seen")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":seen", n(version))
                .expression_attribute_values(":next", n(version + 1))
                .build()
                .map_err(|e| unavailable("TransactWriteItems", e))?;
            let call = self
                .connection_rows(connection)?
                .into_iter()
                .fold(self.client.transact_write_items(), |call, item| {
                    call.transact_items(item)
                })
                .transact_items(TransactWriteItem::builder().update(bump).build())
                .send();
            match self.run_raw("TransactWriteItems", call).await? {
                Ok(_) => return Ok(Admission::Admitted),
                Err(e) if cancelled_by_a_condition(&e) => continue,
                Err(e) => return Err(unavailable("TransactWriteItems", e)),
            }
        }
        Err(RegistryError::Unavailable(
            "connections of one user changed under every admission attempt".into(),
        ))
    }

    async fn get(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        let Some(item) = self.get_item(conn_pk(id), CONN_SK, "GetItem").await? else {
            return Ok(None);
        };
        let connection = parse_connection(&item)?;
        // TTL deletes lazily; an expired row is a connection API Gateway has already closed.
        Ok((connection.expires_at > now_secs()).then_some(connection))
    }

    async fn of_user(&self, uid: &Uid) -> Result<Vec<Connection>, RegistryError> {
        let now = now_secs();
        let mut connections = Vec::new();
        for item in self.user_rows(uid, "CONN#").await? {
            let connection = parse_connection(&item)?;
            if connection.expires_at > now {
                connections.push(connection);
            }
        }
        Ok(connections)
    }

    async fn remove(&self, id: &ConnectionId) -> Result<Option<Connection>, RegistryError> {
        let Some(item) = self.get_item(conn_pk(id), CONN_SK, "GetItem").await? else {
            return Ok(None);
        };
        let connection = parse_connection(&item)?;
        let key = |pk: String, sk: String| {
            HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
        };
        // The condition makes concurrent removes ($disconnect racing a 410 prune) report the
        // connection exactly once.
        let by_id = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(conn_pk(id), CONN_SK.to_owned())))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| unavailable("TransactWriteItems", e))?;
        let by_user = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(&connection.uid), conn_sk(id))))
            .build()
            .map_err(|e| unavailable("TransactWriteItems", e))?;
        let call = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(by_id).build())
            .transact_items(TransactWriteItem::builder().delete(by_user).build())
            .send();
        let result = deadline::limit(self.call_timeout, call)
            .await
            .map_err(|_| {
                RegistryError::Unavailable("DynamoDB TransactWriteItems: no answer in time".into())
            })?;
        match result {
            Ok(_) => Ok(Some(connection)),
            Err(e) if cancelled_by_a_condition(&e) => Ok(None),
            Err(e) => Err(unavailable("TransactWriteItems", e)),
        }
    }
}

#[async_trait]
impl EventLog for DynamoRegistry {
    async fn reserve(&self, uid: &Uid, quota: Option<Quota>) -> Result<Reserved, RegistryError> {
        // An atomic counter: concurrent writers of one user each get their own seq. The
        // operands are read before the update, so `prevReservedAt` becomes the time the
        // previous seq was handed out.
        let mut expression =
            "SET #prev = if_not_exists(#at, :zero), #at = :now ADD #seq :one".to_owned();
        let mut call = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(uid)))
            .key(SK, s(SEQ_SK))
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#at", RESERVED_AT)
            .expression_attribute_names("#prev", PREV_RESERVED_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(Utc::now().timestamp_millis()))
            .return_values(ReturnValue::AllNew);
        let mut counter = None;
        if let Some(quota) = quota {
            // The quota is counted on the same row, in the same write: the window is part of
            // the counter's name, so a new window starts at zero without a read, and the
            // previous window's counter is dropped as it goes.
            let (start, left) = current_window(now_secs(), quota.window);
            let length = i64::try_from(quota.window.as_secs()).unwrap_or(i64::MAX);
            let used = quota_counter(quota.name, start);
            expression.push_str(", #used :one REMOVE #previous");
            call = call
                .condition_expression("attribute_not_exists(#used) OR #used < :limit")
                .expression_attribute_names("#used", &used)
                .expression_attribute_names(
                    "#previous",
                    quota_counter(quota.name, start.saturating_sub(length)),
                )
                .expression_attribute_values(":limit", n(quota.limit));
            counter = Some((quota, used, left));
        }
        let Some(out) = self
            .run_conditional("UpdateItem", call.update_expression(expression).send())
            .await?
        else {
            return match counter {
                Some((quota, _, retry_after)) => Ok(Reserved::OverQuota { quota, retry_after }),
                None => Err(RegistryError::Unavailable(
                    "DynamoDB UpdateItem: an unconditional update failed its condition".into(),
                )),
            };
        };
        let item = out.attributes.unwrap_or_default();
        if let Some((quota, used, _)) = counter {
            self.drop_stale_counters(uid, &item, quota.name, &used)
                .await;
        }
        let head = parse_head(&item)?;
        Ok(Reserved::Seq(Reservation {
            seq: head.seq,
            prev_reserved_at_ms: head.prev_reserved_at_ms,
        }))
    }

    async fn record(&self, uid: &Uid, entry: &LogEntry) -> Result<(), RegistryError> {
        let expires_at = Utc::now().timestamp().saturating_add(self.retention_secs);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(user_pk(uid)))
            .item(SK, s(evt_sk(entry.seq)))
            .item("seq", n(entry.seq))
            .item(PREV_RESERVED_AT, n(entry.prev_reserved_at_ms))
            .item(EXPIRES_AT, n(expires_at));
        put = match &entry.event {
            Some(event) => {
                let data = serde_json::to_string(&event.data).map_err(|e| {
                    RegistryError::Unavailable(format!("serialising event data: {e}"))
                })?;
                put.item("event", s(event.event.clone()))
                    .item("ts", s(event.ts.clone()))
                    .item("data", s(data))
            }
            None => put.item(SKIP, AttributeValue::Bool(true)),
        };
        self.run("PutItem", put.send()).await?;
        Ok(())
    }

    async fn head(&self, uid: &Uid) -> Result<Head, RegistryError> {
        match self.get_item(user_pk(uid), SEQ_SK, "GetItem").await? {
            Some(item) => parse_head(&item),
            None => Ok(Head::default()),
        }
    }

    async fn page(
        &self,
        uid: &Uid,
        direction: Direction,
        limit: usize,
    ) -> Result<LogPage, RegistryError> {
        self.log_page(uid, direction, limit).await
    }
}

#[async_trait]
impl RateLimiter for DynamoRegistry {
    async fn spend(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Allowance, RegistryError> {
        let (start, left) = current_window(now_secs(), window);
        // One item per key and window, counted atomically; the condition refuses the use that
        // would pass the limit, and the TTL clears the item once its window is over.
        let expires_at = start.saturating_add(i64::try_from(window.as_secs()).unwrap_or(0) + 60);
        let call = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(format!("LIMIT#{key}")))
            .key(SK, s(format!("W#{start}")))
            .update_expression("ADD #used :one SET #exp = :exp")
            .condition_expression("attribute_not_exists(#used) OR #used < :limit")
            .expression_attribute_names("#used", "used")
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":exp", n(expires_at))
            .send();
        Ok(match self.run_conditional("UpdateItem", call).await? {
            Some(_) => Allowance::Allowed,
            None => Allowance::Refused { retry_after: left },
        })
    }
}

impl DynamoRegistry {
    /// Runs one SDK call within the invocation's budget.
    async fn run<T, E: std::error::Error>(
        &self,
        op: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, RegistryError> {
        match deadline::limit(self.call_timeout, call).await {
            Ok(result) => result.map_err(|e| unavailable(op, e)),
            Err(_) => Err(RegistryError::Unavailable(format!(
                "DynamoDB {op}: no answer in time"
            ))),
        }
    }

    /// Runs one conditional SDK call within the invocation's budget: `None` when its
    /// condition failed.
    async fn run_conditional<T, E>(
        &self,
        op: &str,
        call: impl std::future::Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<Option<T>, RegistryError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match self.run_raw(op, call).await? {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(e) => Err(unavailable(op, e)),
        }
    }

    /// Runs one SDK call within the invocation's budget, leaving its error to the caller.
    async fn run_raw<T, E>(
        &self,
        op: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<Result<T, E>, RegistryError> {
        deadline::limit(self.call_timeout, call)
            .await
            .map_err(|_| RegistryError::Unavailable(format!("DynamoDB {op}: no answer in time")))
    }

    /// Removes counters of `quota` left from windows before `current` (a quota unused for
    /// a whole window leaves its last counter behind). Only needed after a quiet spell; a
    /// failure is harmless and logged, the next spell's first write tries again.
    async fn drop_stale_counters(&self, uid: &Uid, item: &Item, quota: &str, current: &str) {
        let prefix = quota_counter_prefix(quota);
        let stale: Vec<&String> = item
            .keys()
            .filter(|name| name.starts_with(&prefix) && name.as_str() != current)
            .collect();
        if stale.is_empty() {
            return;
        }
        let mut call = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(uid)))
            .key(SK, s(SEQ_SK));
        let mut names = Vec::with_capacity(stale.len());
        for (i, name) in stale.into_iter().enumerate() {
            let placeholder = format!("#stale{i}");
            call = call.expression_attribute_names(&placeholder, name);
            names.push(placeholder);
        }
        let call = call.update_expression(format!("REMOVE {}", names.join(", ")));
        if let Err(e) = self.run("UpdateItem", call.send()).await {
            tracing::warn!(%uid, error = %e, "stale quota counters not removed");
        }
    }

    /// A page of `uid`'s log in `direction`, with the head.
    async fn log_page(
        &self,
        uid: &Uid,
        direction: Direction,
        limit: usize,
    ) -> Result<LogPage, RegistryError> {
        // The SEQ row sorts after every entry: a query that reaches it also reads the head.
        let (entries, head, has_more) = self.query_entries(uid, direction, limit).await?;
        let head = match head {
            Some(head) => head,
            None => self.head(uid).await?,
        };
        Ok(LogPage {
            head,
            entries,
            has_more,
        })
    }

    /// Up to `limit` live entries in `direction`, the head if the query met the SEQ row, and
    /// whether more entries are left.
    async fn query_entries(
        &self,
        uid: &Uid,
        direction: Direction,
        limit: usize,
    ) -> Result<(Vec<LogEntry>, Option<Head>, bool), RegistryError> {
        let now = now_secs();
        let mut entries = Vec::new();
        let mut head = None;
        let mut start_key = None;
        let (condition, low, high, forward) = match direction {
            Direction::Forward(since) => ("#pk = :pk AND #sk > :low", evt_sk(since), None, true),
            Direction::Backward(None) => {
                ("#pk = :pk AND #sk >= :low", "EVT#".to_owned(), None, false)
            }
            Direction::Backward(Some(0)) => return Ok((entries, head, false)),
            Direction::Backward(Some(before)) => (
                "#pk = :pk AND #sk BETWEEN :low AND :high",
                "EVT#".to_owned(),
                Some(evt_sk(before - 1)),
                false,
            ),
        };
        loop {
            // One more than needed tells `has_more`; one more again lets the SEQ row fit.
            let page_limit =
                i32::try_from((limit - entries.len()).saturating_add(2)).unwrap_or(i32::MAX);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(user_pk(uid)))
                .expression_attribute_values(":low", s(low.clone()))
                .scan_index_forward(forward)
                .consistent_read(true)
                .limit(page_limit)
                .set_exclusive_start_key(start_key);
            if let Some(high) = &high {
                query = query.expression_attribute_values(":high", s(high.clone()));
            }
            let out = self.run("Query", query.send()).await?;
            for item in out.items() {
                let sk = attr_s(item, SK)?;
                if sk == SEQ_SK {
                    head = Some(parse_head(item)?);
                    if forward {
                        return Ok((entries, head, false));
                    }
                    continue;
                }
                if !sk.starts_with("EVT#") {
                    continue;
                }
                let (entry, expires_at) = parse_entry(item)?;
                if expires_at <= now {
                    continue;
                }
                if entries.len() == limit {
                    return Ok((entries, head, true));
                }
                entries.push(entry);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok((entries, head, false)),
            }
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn user_pk(uid: &Uid) -> String {
    format!("USER#{uid}")
}

fn conn_pk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

fn conn_sk(id: &ConnectionId) -> String {
    format!("CONN#{id}")
}

/// Zero-padded so that the string order of the sort key is the numeric order of seq.
fn evt_sk(seq: u64) -> String {
    format!("EVT#{seq:020}")
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// Whether a transaction was cancelled because one of its conditions failed.
fn cancelled_by_a_condition(e: &SdkError<TransactWriteItemsError>) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

fn unavailable<E: std::error::Error>(op: &str, err: E) -> RegistryError {
    RegistryError::Unavailable(format!("DynamoDB {op}: {}", DisplayErrorContext(err)))
}

fn malformed(what: &str) -> RegistryError {
    RegistryError::Unavailable(format!("malformed DynamoDB item: {what}"))
}

fn attr_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, RegistryError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(malformed(&format!("{name} is not a string"))),
    }
}

/// A number that may be absent (an item written before the attribute existed): 0 then.
fn attr_n_or_zero<T: FromStr + Default>(item: &Item, name: &str) -> Result<T, RegistryError> {
    match item.get(name) {
        None => Ok(T::default()),
        Some(_) => attr_n(item, name),
    }
}

fn attr_n<T: FromStr>(item: &Item, name: &str) -> Result<T, RegistryError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| malformed(&format!("{name} is not a valid number"))),
        _ => Err(malformed(&format!("{name} is not a number"))),
    }
}

fn connection_item(pk: String, sk: String, c: &Connection) -> Item {
    HashMap::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        ("connectionId".to_owned(), s(c.id.as_str())),
        ("uid".to_owned(), s(c.uid.as_str())),
        (
            "connectedAt".to_owned(),
            AttributeValue::N(c.connected_at.to_string()),
        ),
        (
            "tokenExpiresAt".to_owned(),
            AttributeValue::N(c.token_expires_at.to_string()),
        ),
        (
            EXPIRES_AT.to_owned(),
            AttributeValue::N(c.expires_at.to_string()),
        ),
    ])
}

fn parse_connection(item: &Item) -> Result<Connection, RegistryError> {
    Ok(Connection {
        id: ConnectionId::parse(attr_s(item, "connectionId")?)
            .map_err(|_| malformed("invalid connectionId"))?,
        uid: Uid::parse(attr_s(item, "uid")?).map_err(|_| malformed("invalid uid"))?,
        connected_at: attr_n(item, "connectedAt")?,
        token_expires_at: attr_n(item, "tokenExpiresAt")?,
        expires_at: attr_n(item, EXPIRES_AT)?,
    })
}

/// A log entry row and its `expiresAt`.
fn parse_entry(item: &Item) -> Result<(LogEntry, i64), RegistryError> {
    let seq = attr_n(item, "seq")?;
    let event = match item.get(SKIP) {
        Some(AttributeValue::Bool(true)) => None,
        _ => Some(RecordedEvent {
            seq,
            event: attr_s(item, "event")?.to_owned(),
            ts: attr_s(item, "ts")?.to_owned(),
            data: serde_json::from_str(attr_s(item, "data")?)
                .map_err(|_| malformed("data is not JSON"))?,
        }),
    };
    let entry = LogEntry {
        seq,
        prev_reserved_at_ms: attr_n_or_zero(item, PREV_RESERVED_AT)?,
        event,
    };
    Ok((entry, attr_n(item, EXPIRES_AT)?))
}

/// The attribute of the SEQ row counting `quota` in the window starting at `start`.
fn quota_counter(quota: &str, start: i64) -> String {
    format!("{}{start}", quota_counter_prefix(quota))
}

fn quota_counter_prefix(quota: &str) -> String {
    format!("quota#{quota}#")
}

fn parse_head(item: &Item) -> Result<Head, RegistryError> {
    Ok(Head {
        seq: attr_n(item, "seq")?,
        reserved_at_ms: attr_n_or_zero(item, RESERVED_AT)?,
        prev_reserved_at_ms: attr_n_or_zero(item, PREV_RESERVED_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sort_keys_sort_numerically_and_between_connections_and_head() {
        assert!(evt_sk(9) < evt_sk(10));
        assert!(evt_sk(u64::MAX).len() == "EVT#".len() + 20);
        assert!("CONN#zzz" < evt_sk(0).as_str());
        assert!(evt_sk(u64::MAX).as_str() < SEQ_SK);
    }

    #[test]
    fn malformed_items_are_errors() {
        let mut item = connection_item(
            "CONN#c1".into(),
            CONN_SK.into(),
            &Connection {
                id: ConnectionId::parse("c1").unwrap(),
                uid: Uid::parse("alice").unwrap(),
                connected_at: 1,
                token_expires_at: 2,
                expires_at: 3,
            },
        );
        assert!(parse_connection(&item).is_ok());
        item.insert("connectedAt".into(), s("soon"));
        assert!(parse_connection(&item).is_err());
        item.insert("connectedAt".into(), AttributeValue::N("x".into()));
        assert!(parse_connection(&item).is_err());
        item.insert("connectedAt".into(), AttributeValue::N("1".into()));
        item.insert("uid".into(), s("a/b"));
        assert!(parse_connection(&item).is_err());

        let entry = HashMap::from([
            ("seq".to_owned(), n(1)),
            ("event".to_owned(), s("product:updated")),
            ("ts".to_owned(), s("2026-11-24T23:42:22.169Z")),
            ("data".to_owned(), s("{not json")),
            (EXPIRES_AT.to_owned(), n(1)),
        ]);
        assert!(parse_entry(&entry).is_err());
        let mut skipped = entry.clone();
        skipped.insert(SKIP.to_owned(), AttributeValue::Bool(true));
        let (parsed, _) = parse_entry(&skipped).expect("a skip entry has no event to parse");
        assert_eq!(parsed.event, None);
        assert_eq!(parsed.prev_reserved_at_ms, 0);
    }
}
