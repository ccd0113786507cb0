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
//! | `USER#{uid}` | `SEQ` | `seq` (N) | the user's seq head; never expires |
//! | `USER#{uid}` | `EVT#{seq:020}` | `seq` (N), `event` (S), `ts` (S), `data` (S, JSON), `expiresAt` | one recorded event |
//!
//! Within a user's partition the sort order is `CONN#…` < `EVT#…` < `SEQ`, so one query with
//! `sk > EVT#{since:020}` returns the events after `since`, oldest first, and then the head.
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
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ReturnValue, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem,
};
use chrono::{SecondsFormat, Utc};

use super::memory::events_since;
use super::{Connection, ConnectionRegistry, EventLog, EventsSince, RecordedEvent, RegistryError};
use crate::ids::{ConnectionId, Uid};

type Item = HashMap<String, AttributeValue>;

const PK: &str = "pk";
const SK: &str = "sk";
const EXPIRES_AT: &str = "expiresAt";
const SEQ_SK: &str = "SEQ";
const CONN_SK: &str = "CONN";

/// Largest `data` recorded as is. A DynamoDB item is at most 400 KB, while a Firestore
/// document can reach 1 MiB; such an event could not reach a client in one API Gateway frame
/// anyway (128 KB), so it is recorded in the same truncated form the push sends (SPEC 5).
const MAX_RECORDED_DATA_BYTES: usize = 350 * 1024;

/// How long `create_table` waits for a new table to become active.
const CREATE_TABLE_WAIT: Duration = Duration::from_secs(120);

/// The connection registry and event log over one DynamoDB table (see the module docs).
pub struct DynamoRegistry {
    client: Client,
    table: String,
    /// Event retention in whole seconds (the TTL attribute's unit).
    retention_secs: i64,
}

impl DynamoRegistry {
    /// A registry over `table`; events are kept for `retention` after they are appended.
    pub fn new(client: Client, table: String, retention: Duration) -> Self {
        Self {
            client,
            table,
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
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(op, e))?;
        Ok(out.item)
    }
}

/// Creates the registry table (schema in the module docs), waits until it is active and
/// enables TTL on `expiresAt`. Succeeds if the table already exists. For tests and the local
/// dev server; the deployed table comes from the SAM template.
pub async fn create_table(client: &Client, table: &str) -> Result<(), RegistryError> {
    let build = |e| unavailable("CreateTable", e);
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(SK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(SK)
                .key_type(KeyType::Range)
                .build()
                .map_err(build)?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) => {}
        Err(e) => return Err(unavailable("CreateTable", e)),
    }

    // Real DynamoDB creates tables asynchronously, and TTL can only be set on an active one.
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(CREATE_TABLE_WAIT)
        .await
        .map_err(|e| unavailable("DescribeTable", e))?;

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| unavailable("DescribeTimeToLive", e))?;
    let status = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    // Enabling TTL twice is a ValidationException, so only enable it when it is off.
    if !matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(EXPIRES_AT)
                    .build()
                    .map_err(|e| unavailable("UpdateTimeToLive", e))?,
            )
            .send()
            .await
            .map_err(|e| unavailable("UpdateTimeToLive", e))?;
    }
    Ok(())
}

#[async_trait]
impl ConnectionRegistry for DynamoRegistry {
    async fn put(&self, connection: &Connection) -> Result<(), RegistryError> {
        let by_user = Put::builder()
            .table_name(&self.table)
            .set_item(Some(connection_item(
                user_pk(&connection.uid),
                conn_sk(&connection.id),
                connection,
            )))
            .build()
            .map_err(|e| unavailable("TransactWriteItems", e))?;
        let by_id = Put::builder()
            .table_name(&self.table)
            .set_item(Some(connection_item(
                conn_pk(&connection.id),
                CONN_SK.to_owned(),
                connection,
            )))
            .build()
            .map_err(|e| unavailable("TransactWriteItems", e))?;
        // Both rows or neither: a row by id without its row by user would never get events.
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(by_user).build())
            .transact_items(TransactWriteItem::builder().put(by_id).build())
            .send()
            .await
            .map_err(|e| unavailable("TransactWriteItems", e))?;
        Ok(())
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
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(user_pk(uid)))
                .expression_attribute_values(":prefix", s("CONN#"))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            for item in out.items() {
                let connection = parse_connection(item)?;
                if connection.expires_at > now {
                    connections.push(connection);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(connections),
            }
        }
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
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(by_id).build())
            .transact_items(TransactWriteItem::builder().delete(by_user).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(connection)),
            Err(e) => {
                let already_gone = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")),
                    _ => false,
                };
                if already_gone {
                    Ok(None)
                } else {
                    Err(unavailable("TransactWriteItems", e))
                }
            }
        }
    }
}

#[async_trait]
impl EventLog for DynamoRegistry {
    async fn append(
        &self,
        uid: &Uid,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<RecordedEvent, RegistryError> {
        // An atomic counter: concurrent appends of one user each get their own seq.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(uid)))
            .key(SK, s(SEQ_SK))
            .update_expression("ADD #seq :one")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| unavailable("UpdateItem", e))?;
        let seq: u64 = match out.attributes() {
            Some(attributes) => attr_n(attributes, "seq")?,
            None => return Err(malformed("UpdateItem returned no seq")),
        };

        let (event, data) = recordable(event, data);
        let data_json = serde_json::to_string(&data)
            .map_err(|e| RegistryError::Unavailable(format!("serialising event data: {e}")))?;
        let now = Utc::now();
        let recorded = RecordedEvent {
            seq,
            event,
            ts: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            data,
        };
        let expires_at = now.timestamp().saturating_add(self.retention_secs);
        // If this put fails the seq stays allocated without an event: a reader behind it is
        // told to resync (`complete: false`), which is the safe outcome.
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(user_pk(uid)))
            .item(SK, s(evt_sk(seq)))
            .item("seq", AttributeValue::N(seq.to_string()))
            .item("event", s(recorded.event.clone()))
            .item("ts", s(recorded.ts.clone()))
            .item("data", s(data_json))
            .item(EXPIRES_AT, AttributeValue::N(expires_at.to_string()))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        Ok(recorded)
    }

    async fn head(&self, uid: &Uid) -> Result<u64, RegistryError> {
        match self.get_item(user_pk(uid), SEQ_SK, "GetItem").await? {
            Some(item) => attr_n(&item, "seq"),
            None => Ok(0),
        }
    }

    async fn since(
        &self,
        uid: &Uid,
        since: u64,
        limit: usize,
    ) -> Result<EventsSince, RegistryError> {
        let now = now_secs();
        // One more than the limit tells `has_more`, and at least one tells `complete`.
        let want = limit.saturating_add(1);
        let mut fetched = Vec::new();
        let mut head = None;
        let mut start_key = None;
        'pages: loop {
            // +1 so that the SEQ row, which sorts after every event, usually fits the page.
            let page_limit =
                i32::try_from((want - fetched.len()).saturating_add(1)).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk > :from")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(user_pk(uid)))
                .expression_attribute_values(":from", s(evt_sk(since)))
                .consistent_read(true)
                .limit(page_limit)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            for item in out.items() {
                let sk = attr_s(item, SK)?;
                if sk == SEQ_SK {
                    head = Some(attr_n(item, "seq")?);
                    break 'pages;
                }
                if !sk.starts_with("EVT#") {
                    continue;
                }
                let (event, expires_at) = parse_event(item)?;
                if expires_at <= now {
                    continue;
                }
                fetched.push(event);
                if fetched.len() >= want {
                    break 'pages;
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        // The limit cut the query before the SEQ row (or there is none): read it.
        let head = match head {
            Some(head) => head,
            None => self.head(uid).await?,
        };
        Ok(events_since(since, limit, head, fetched))
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
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

/// An event row and its `expiresAt`.
fn parse_event(item: &Item) -> Result<(RecordedEvent, i64), RegistryError> {
    let data =
        serde_json::from_str(attr_s(item, "data")?).map_err(|_| malformed("data is not JSON"))?;
    let event = RecordedEvent {
        seq: attr_n(item, "seq")?,
        event: attr_s(item, "event")?.to_owned(),
        ts: attr_s(item, "ts")?.to_owned(),
        data,
    };
    Ok((event, attr_n(item, EXPIRES_AT)?))
}

/// The event as it is recorded: as given, or, when its data would not fit an item, the
/// truncated `product:updated` the push uses for oversized frames (SPEC 5).
fn recordable(event: &str, data: &serde_json::Value) -> (String, serde_json::Value) {
    let size = serde_json::to_string(data).map_or(usize::MAX, |json| json.len());
    if size <= MAX_RECORDED_DATA_BYTES {
        return (event.to_owned(), data.clone());
    }
    let mut truncated = serde_json::Map::new();
    for field in ["id", "businessId"] {
        if let Some(value) = data.get(field) {
            truncated.insert(field.to_owned(), value.clone());
        }
    }
    truncated.insert("truncated".to_owned(), serde_json::Value::Bool(true));
    (
        "product:updated".to_owned(),
        serde_json::Value::Object(truncated),
    )
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

        let event = HashMap::from([
            ("seq".to_owned(), AttributeValue::N("1".into())),
            ("event".to_owned(), s("product:updated")),
            ("ts".to_owned(), s("2026-11-24T23:42:22.169Z")),
            ("data".to_owned(), s("{not json")),
            (EXPIRES_AT.to_owned(), AttributeValue::N("1".into())),
        ]);
        assert!(parse_event(&event).is_err());
    }

    #[test]
    fn oversized_data_is_recorded_truncated() {
        let small = serde_json::json!({"id": "p1", "businessId": "b1"});
        assert_eq!(
            recordable("product:created", &small),
            ("product:created".to_owned(), small.clone())
        );
        let big = serde_json::json!({
            "id": "p1", "businessId": "b1", "description": "x".repeat(MAX_RECORDED_DATA_BYTES)
        });
        assert_eq!(
            recordable("product:created", &big),
            (
                "product:updated".to_owned(),
                serde_json::json!({"id": "p1", "businessId": "b1", "truncated": true})
            )
        );
    }
}
