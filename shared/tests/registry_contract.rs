//! The registry contract: every behaviour is one test body, run against the embedded
//! `MemoryRegistry` and against `DynamoRegistry` on a DynamoDB-protocol server (moto, started
//! by `scripts/test`, which exports `DYNAMODB_ENDPOINT`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use adsync::ids::{ConnectionId, Uid};
use adsync::registry::dynamo::DynamoRegistry;
use adsync::registry::memory::MemoryRegistry;
use adsync::registry::{Connection, ConnectionRegistry, EventLog, LogEntry, RecordedEvent};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use local_gateway::tables::create_table;
use serde_json::json;

/// Both ports, as one object under test.
trait Registry: ConnectionRegistry + EventLog {}
impl<T: ConnectionRegistry + EventLog> Registry for T {}

type Reg = Arc<dyn Registry>;

const DAY: Duration = Duration::from_secs(86_400);

fn memory(retention: Duration) -> Reg {
    Arc::new(MemoryRegistry::new(retention))
}

fn dynamo_client() -> aws_sdk_dynamodb::Client {
    let Ok(endpoint) = std::env::var("DYNAMODB_ENDPOINT") else {
        panic!("DYNAMODB_ENDPOINT is not set: run scripts/test, which starts moto_server");
    };
    // Static dummy credentials and a fixed region: the SDK never looks for real ones.
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A fresh table per test (unique across runs against a long-lived server), so tests run in
/// parallel and start empty.
fn table_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("registry-{test}-{}-{nanos}", std::process::id())
}

async fn dynamo_table(test: &str) -> (aws_sdk_dynamodb::Client, String) {
    let client = dynamo_client();
    let table = table_name(test);
    create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("creating table {table}: {e}"));
    (client, table)
}

async fn dynamo(test: &str, retention: Duration) -> Reg {
    let (client, table) = dynamo_table(test).await;
    Arc::new(DynamoRegistry::new(client, table, retention, CALL_TIMEOUT))
}

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Declares each test body once and runs it against both registries.
macro_rules! contract {
    ($($test:ident(retention: $retention:expr);)*) => {
        mod memory_registry {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::memory($retention)).await;
                }
            )*
        }
        mod dynamo_registry {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::dynamo(stringify!($test), $retention).await).await;
                }
            )*
        }
    };
}

contract! {
    connections_are_stored_found_and_removed(retention: DAY);
    put_replaces_a_connection(retention: DAY);
    expired_connection_rows_are_ignored(retention: DAY);
    concurrent_removes_report_the_connection_once(retention: DAY);
    seq_starts_at_one_and_increases_by_one(retention: DAY);
    seq_is_per_user(retention: DAY);
    concurrent_reservations_get_distinct_consecutive_seqs(retention: DAY);
    entries_come_back_after_a_seq_in_order_with_the_head(retention: DAY);
    a_limit_cuts_the_page_and_sets_has_more(retention: DAY);
    entries_come_back_newest_first_before_a_seq(retention: DAY);
    a_seq_without_an_entry_stays_missing(retention: DAY);
    entries_dropped_by_retention_are_not_returned(retention: RETENTION_TEST);
}

fn uid(raw: &str) -> Uid {
    Uid::parse(raw).unwrap()
}

fn conn_id(raw: &str) -> ConnectionId {
    ConnectionId::parse(raw).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn connection(id: &str, user: &str) -> Connection {
    Connection {
        id: conn_id(id),
        uid: uid(user),
        connected_at: now(),
        token_expires_at: now() + 3600,
        expires_at: now() + 3 * 3600,
    }
}

fn event(seq: u64, data: serde_json::Value) -> RecordedEvent {
    RecordedEvent {
        seq,
        event: "product:updated".into(),
        ts: "2026-11-24T23:42:22.169Z".into(),
        data,
    }
}

/// Reserves a seq and records an event at it (`None` data: an empty seq); the entry.
async fn append(reg: &Reg, user: &Uid, data: Option<serde_json::Value>) -> LogEntry {
    let reservation = reg.reserve(user).await.unwrap();
    let entry = LogEntry {
        seq: reservation.seq,
        prev_reserved_at_ms: reservation.prev_reserved_at_ms,
        event: data.map(|d| event(reservation.seq, d)),
    };
    reg.record(user, &entry).await.unwrap();
    entry
}

async fn append_n(reg: &Reg, user: &Uid, n: u64) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    for i in 0..n {
        entries.push(append(reg, user, Some(json!({"id": format!("p{i}"), "n": i}))).await);
    }
    entries
}

fn seqs(entries: &[LogEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

async fn connections_are_stored_found_and_removed(reg: Reg) {
    // API Gateway ids are base64-ish: `=`, `+` and `/` must survive the key encoding.
    let a1 = connection("L0SM9cOFvHcCIhw=", "alice");
    let a2 = connection("a2+/x", "alice");
    let b1 = connection("b1", "bob");
    for c in [&a1, &a2, &b1] {
        reg.put(c).await.unwrap();
    }

    assert_eq!(reg.get(&a1.id).await.unwrap(), Some(a1.clone()));
    assert_eq!(reg.get(&conn_id("nope")).await.unwrap(), None);
    let mut of_alice = reg.of_user(&uid("alice")).await.unwrap();
    of_alice.sort_by(|x, y| x.id.cmp(&y.id));
    let mut expected = vec![a1.clone(), a2.clone()];
    expected.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(of_alice, expected);
    assert_eq!(reg.of_user(&uid("bob")).await.unwrap(), vec![b1.clone()]);
    assert!(reg.of_user(&uid("carol")).await.unwrap().is_empty());

    assert_eq!(reg.remove(&a1.id).await.unwrap(), Some(a1.clone()));
    assert_eq!(reg.remove(&a1.id).await.unwrap(), None);
    assert_eq!(reg.get(&a1.id).await.unwrap(), None);
    assert_eq!(reg.of_user(&uid("alice")).await.unwrap(), vec![a2.clone()]);
    assert_eq!(reg.remove(&conn_id("never-there")).await.unwrap(), None);
    assert_eq!(reg.of_user(&uid("bob")).await.unwrap(), vec![b1]);
}

async fn put_replaces_a_connection(reg: Reg) {
    let mut c = connection("c1", "alice");
    reg.put(&c).await.unwrap();
    // `auth` refreshes the token by storing the connection again.
    c.token_expires_at += 1800;
    reg.put(&c).await.unwrap();
    assert_eq!(reg.get(&c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(reg.of_user(&c.uid).await.unwrap(), vec![c]);
}

async fn expired_connection_rows_are_ignored(reg: Reg) {
    let live = connection("live", "alice");
    let mut stale = connection("stale", "alice");
    stale.expires_at = now() - 10;
    reg.put(&live).await.unwrap();
    reg.put(&stale).await.unwrap();

    assert_eq!(reg.of_user(&uid("alice")).await.unwrap(), vec![live]);
    assert_eq!(reg.get(&stale.id).await.unwrap(), None);
    // Removing it still works (a 410 prune or a late $disconnect).
    assert_eq!(reg.remove(&stale.id).await.unwrap(), Some(stale.clone()));
    assert_eq!(reg.remove(&stale.id).await.unwrap(), None);
}

async fn concurrent_removes_report_the_connection_once(reg: Reg) {
    let c = connection("racy", "alice");
    reg.put(&c).await.unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let reg = reg.clone();
            let id = c.id.clone();
            tokio::spawn(async move { reg.remove(&id).await })
        })
        .collect();
    let mut removed = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().is_some() {
            removed += 1;
        }
    }
    assert_eq!(removed, 1);
    assert!(reg.of_user(&c.uid).await.unwrap().is_empty());
}

async fn seq_starts_at_one_and_increases_by_one(reg: Reg) {
    let alice = uid("alice");
    assert_eq!(reg.head(&alice).await.unwrap().seq, 0);
    let before = chrono::Utc::now().timestamp_millis();
    let first = reg.reserve(&alice).await.unwrap();
    assert_eq!((first.seq, first.prev_reserved_at_ms), (1, 0));
    let head = reg.head(&alice).await.unwrap();
    assert_eq!(head.seq, 1);
    assert!(head.reserved_at_ms >= before, "{head:?}");
    let second = reg.reserve(&alice).await.unwrap();
    assert_eq!(second.seq, 2);
    // Each reservation knows when the one before it was made.
    assert_eq!(second.prev_reserved_at_ms, head.reserved_at_ms);
    let head = reg.head(&alice).await.unwrap();
    assert_eq!(head.prev_reserved_at_ms, second.prev_reserved_at_ms);
    assert_eq!(reg.reserve(&alice).await.unwrap().seq, 3);
}

async fn seq_is_per_user(reg: Reg) {
    append_n(&reg, &uid("alice"), 3).await;
    assert_eq!(reg.reserve(&uid("bob")).await.unwrap().seq, 1);
    assert_eq!(reg.head(&uid("alice")).await.unwrap().seq, 3);
    assert_eq!(reg.head(&uid("bob")).await.unwrap().seq, 1);
    let page = reg.after(&uid("bob"), 0, 10).await.unwrap();
    assert!(page.entries.is_empty(), "reserved, not recorded");
}

async fn concurrent_reservations_get_distinct_consecutive_seqs(reg: Reg) {
    let alice = uid("alice");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let reg = reg.clone();
            let alice = alice.clone();
            tokio::spawn(async move { reg.reserve(&alice).await })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap().unwrap().seq);
    }
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<u64>>());
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 20);
    assert_eq!(reg.head(&alice).await.unwrap().seq, 20);
}

async fn entries_come_back_after_a_seq_in_order_with_the_head(reg: Reg) {
    let alice = uid("alice");
    let mut appended = append_n(&reg, &alice, 3).await;
    // A seq whose write failed carries no event.
    appended.push(append(&reg, &alice, None).await);
    let data =
        json!({"id": "p1", "businessId": "b1", "status": "enriched", "tags": ["a", 1, null]});
    appended.push(append(&reg, &alice, Some(data.clone())).await);
    // Another user's log and connections share the partition layout, not the answer.
    append_n(&reg, &uid("bob"), 2).await;
    reg.put(&connection("c1", "alice")).await.unwrap();

    let page = reg.after(&alice, 2, 100).await.unwrap();
    assert_eq!(page.head.seq, 5);
    assert!(!page.has_more);
    assert_eq!(page.entries, appended[2..].to_vec());
    assert_eq!(page.entries[1].event, None);
    assert_eq!(page.entries[2].event.as_ref().unwrap().data, data);

    let all = reg.after(&alice, 0, 100).await.unwrap();
    assert_eq!(all.entries, appended);
    let none = reg.after(&alice, 5, 100).await.unwrap();
    assert!(none.entries.is_empty() && !none.has_more);
    assert_eq!(none.head.seq, 5);
    let nobody = reg.after(&uid("nobody"), 0, 10).await.unwrap();
    assert_eq!(nobody.head.seq, 0);
    assert!(nobody.entries.is_empty());
}

async fn a_limit_cuts_the_page_and_sets_has_more(reg: Reg) {
    let alice = uid("alice");
    append_n(&reg, &alice, 7).await;
    let page = reg.after(&alice, 0, 3).await.unwrap();
    assert_eq!(seqs(&page.entries), vec![1, 2, 3]);
    assert_eq!(page.head.seq, 7);
    assert!(page.has_more);
    let page = reg.after(&alice, 3, 3).await.unwrap();
    assert_eq!(seqs(&page.entries), vec![4, 5, 6]);
    assert!(page.has_more);
    // Exactly `limit` left: no more.
    let page = reg.after(&alice, 4, 3).await.unwrap();
    assert_eq!(seqs(&page.entries), vec![5, 6, 7]);
    assert!(!page.has_more);
    assert_eq!(page.head.seq, 7);
    let page = reg.after(&alice, 0, usize::MAX).await.unwrap();
    assert_eq!(seqs(&page.entries), (1..=7).collect::<Vec<u64>>());
    assert!(!page.has_more);
}

async fn entries_come_back_newest_first_before_a_seq(reg: Reg) {
    let alice = uid("alice");
    append_n(&reg, &alice, 5).await;
    reg.put(&connection("c1", "alice")).await.unwrap();
    let top = reg.before(&alice, None, 2).await.unwrap();
    assert_eq!(seqs(&top.entries), vec![5, 4]);
    assert!(top.has_more);
    assert_eq!(top.head.seq, 5);
    let rest = reg.before(&alice, Some(4), 10).await.unwrap();
    assert_eq!(seqs(&rest.entries), vec![3, 2, 1]);
    assert!(!rest.has_more);
    assert_eq!(rest.head.seq, 5);
    let exact = reg.before(&alice, Some(3), 2).await.unwrap();
    assert_eq!(seqs(&exact.entries), vec![2, 1]);
    assert!(!exact.has_more);
    assert!(
        reg.before(&alice, Some(1), 10)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    let nobody = reg.before(&uid("nobody"), None, 10).await.unwrap();
    assert_eq!(nobody.head.seq, 0);
    assert!(nobody.entries.is_empty() && !nobody.has_more);
}

async fn a_seq_without_an_entry_stays_missing(reg: Reg) {
    let alice = uid("alice");
    append(&reg, &alice, Some(json!({"n": 1}))).await;
    let lost = reg.reserve(&alice).await.unwrap();
    let third = append(&reg, &alice, Some(json!({"n": 3}))).await;
    assert_eq!(lost.seq, 2);
    // The entry after the hole knows when the hole was reserved.
    assert!(third.prev_reserved_at_ms > 0);
    let page = reg.after(&alice, 0, 10).await.unwrap();
    assert_eq!(seqs(&page.entries), vec![1, 3]);
    let page = reg.before(&alice, None, 10).await.unwrap();
    assert_eq!(seqs(&page.entries), vec![3, 1]);
}

/// Long enough that the entries written after the sleep are still retained when read (expiry
/// has whole-second granularity, so an entry lives between `retention - 1 s` and `retention`).
const RETENTION_TEST: Duration = Duration::from_secs(3);

async fn entries_dropped_by_retention_are_not_returned(reg: Reg) {
    let alice = uid("alice");
    append_n(&reg, &alice, 5).await;
    tokio::time::sleep(RETENTION_TEST + Duration::from_millis(200)).await;
    append_n(&reg, &alice, 3).await;
    // 1 to 5 are gone (DynamoDB TTL has not deleted them: they are filtered on read).
    let page = reg.after(&alice, 0, 10).await.unwrap();
    assert_eq!(page.head.seq, 8);
    assert_eq!(seqs(&page.entries), vec![6, 7, 8]);
    assert!(!page.has_more);
    // More expired rows than the limit: the reader pages past them.
    let page = reg.after(&alice, 0, 2).await.unwrap();
    assert_eq!(seqs(&page.entries), vec![6, 7]);
    assert!(page.has_more);
    let page = reg.before(&alice, None, 10).await.unwrap();
    assert_eq!(seqs(&page.entries), vec![8, 7, 6]);
    assert!(!page.has_more);
}

// DynamoDB-only behaviours.

#[tokio::test]
async fn create_table_is_idempotent() {
    let (client, table) = dynamo_table("idempotent").await;
    create_table(&client, &table).await.unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some("expiresAt"));
}

#[tokio::test]
async fn a_malformed_item_is_an_error_not_a_panic() {
    let (client, table) = dynamo_table("malformed").await;
    let reg = DynamoRegistry::new(client.clone(), table.clone(), DAY, CALL_TIMEOUT);
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("CONN#bad".into()))
        .item("sk", AttributeValue::S("CONN".into()))
        .item("uid", AttributeValue::S("alice".into()))
        .send()
        .await
        .unwrap();
    assert!(reg.get(&conn_id("bad")).await.is_err());
    assert!(reg.remove(&conn_id("bad")).await.is_err());

    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("USER#alice".into()))
        .item("sk", AttributeValue::S("SEQ".into()))
        .item("seq", AttributeValue::S("one".into()))
        .send()
        .await
        .unwrap();
    assert!(reg.head(&uid("alice")).await.is_err());
    assert!(reg.after(&uid("alice"), 0, 10).await.is_err());
    assert!(reg.before(&uid("alice"), None, 10).await.is_err());
}

#[tokio::test]
async fn warm_up_never_fails_even_without_a_table() {
    let reg = DynamoRegistry::new(dynamo_client(), "no-such-table".into(), DAY, CALL_TIMEOUT);
    reg.warm_up().await;
}

#[tokio::test]
async fn registries_over_one_table_share_the_seq() {
    // Every Lambda builds its own registry over the same table.
    let (client, table) = dynamo_table("shared").await;
    let a = DynamoRegistry::new(client.clone(), table.clone(), DAY, CALL_TIMEOUT);
    let b = DynamoRegistry::new(client, table, DAY, CALL_TIMEOUT);
    let alice = uid("alice");
    assert_eq!(a.reserve(&alice).await.unwrap().seq, 1);
    assert_eq!(b.reserve(&alice).await.unwrap().seq, 2);
}
