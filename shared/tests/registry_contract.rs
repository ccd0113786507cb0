//! The registry contract: every behaviour is one test body, run against the embedded
//! `MemoryRegistry` and against `DynamoRegistry` on a DynamoDB-protocol server (moto, started
//! by `scripts/test`, which exports `DYNAMODB_ENDPOINT`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::ids::{ConnectionId, Uid};
use shared::registry::dynamo::{DynamoRegistry, create_table};
use shared::registry::memory::MemoryRegistry;
use shared::registry::{Connection, ConnectionRegistry, EventLog};

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
    Arc::new(DynamoRegistry::new(client, table, retention))
}

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
    concurrent_appends_get_distinct_consecutive_seqs(retention: DAY);
    since_returns_the_events_after_it_in_order_with_the_head(retention: DAY);
    limit_cuts_the_answer_and_sets_has_more(retention: DAY);
    since_ahead_of_the_head_is_incomplete(retention: DAY);
    since_at_the_head_is_complete_and_empty(retention: DAY);
    events_dropped_by_retention_make_since_incomplete(retention: RETENTION_TEST);
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

async fn append_n(reg: &Reg, user: &Uid, n: u64) {
    for i in 0..n {
        reg.append(
            user,
            "product:updated",
            &json!({"id": format!("p{i}"), "n": i}),
        )
        .await
        .unwrap();
    }
}

fn seqs(events: &[shared::registry::RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
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
    assert_eq!(reg.head(&alice).await.unwrap(), 0);
    let data =
        json!({"id": "p1", "businessId": "b1", "status": "enriched", "tags": ["a", 1, null]});
    let first = reg.append(&alice, "product:created", &data).await.unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.event, "product:created");
    assert_eq!(first.data, data);
    // RFC 3339 UTC with milliseconds, e.g. 2026-11-24T23:42:22.169Z.
    assert_eq!(first.ts.len(), 24, "{}", first.ts);
    assert!(first.ts.ends_with('Z'), "{}", first.ts);
    assert!(chrono::DateTime::parse_from_rfc3339(&first.ts).is_ok());

    let second = reg
        .append(&alice, "product:updated", &json!({}))
        .await
        .unwrap();
    assert_eq!(second.seq, 2);
    let third = reg
        .append(&alice, "product:deleted", &json!({}))
        .await
        .unwrap();
    assert_eq!(third.seq, 3);
    assert_eq!(reg.head(&alice).await.unwrap(), 3);
}

async fn seq_is_per_user(reg: Reg) {
    append_n(&reg, &uid("alice"), 3).await;
    let bob = reg
        .append(&uid("bob"), "user:updated", &json!({}))
        .await
        .unwrap();
    assert_eq!(bob.seq, 1);
    assert_eq!(reg.head(&uid("alice")).await.unwrap(), 3);
    assert_eq!(reg.head(&uid("bob")).await.unwrap(), 1);
    let r = reg.since(&uid("bob"), 0, 10).await.unwrap();
    assert_eq!(seqs(&r.events), vec![1]);
}

async fn concurrent_appends_get_distinct_consecutive_seqs(reg: Reg) {
    let alice = uid("alice");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let reg = reg.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                reg.append(&alice, "product:updated", &json!({"n": i}))
                    .await
            })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap().unwrap().seq);
    }
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<u64>>());
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 20);
    assert_eq!(reg.head(&alice).await.unwrap(), 20);

    let r = reg.since(&alice, 0, 100).await.unwrap();
    assert!(r.complete);
    assert_eq!(seqs(&r.events), (1..=20).collect::<Vec<u64>>());
}

async fn since_returns_the_events_after_it_in_order_with_the_head(reg: Reg) {
    let alice = uid("alice");
    let mut appended = Vec::new();
    for i in 0..5 {
        appended.push(
            reg.append(
                &alice,
                "product:updated",
                &json!({"id": format!("p{i}"), "n": i}),
            )
            .await
            .unwrap(),
        );
    }
    // Another user's events and connections share the partition layout, not the answer.
    append_n(&reg, &uid("bob"), 2).await;
    reg.put(&connection("c1", "alice")).await.unwrap();

    let r = reg.since(&alice, 2, 100).await.unwrap();
    assert_eq!(r.head, 5);
    assert!(r.complete);
    assert!(!r.has_more);
    assert_eq!(r.events, appended[2..].to_vec());

    let all = reg.since(&alice, 0, 100).await.unwrap();
    assert_eq!(all.events, appended);
    assert!(all.complete);
}

async fn limit_cuts_the_answer_and_sets_has_more(reg: Reg) {
    let alice = uid("alice");
    append_n(&reg, &alice, 7).await;

    let r = reg.since(&alice, 0, 3).await.unwrap();
    assert_eq!(seqs(&r.events), vec![1, 2, 3]);
    assert_eq!(r.head, 7);
    assert!(r.complete && r.has_more);

    // Paging on from the last event returned.
    let r = reg.since(&alice, 3, 3).await.unwrap();
    assert_eq!(seqs(&r.events), vec![4, 5, 6]);
    assert!(r.complete && r.has_more);
    let r = reg.since(&alice, 6, 3).await.unwrap();
    assert_eq!(seqs(&r.events), vec![7]);
    assert_eq!(r.head, 7);
    assert!(r.complete && !r.has_more);

    // Exactly `limit` left: no more.
    let r = reg.since(&alice, 4, 3).await.unwrap();
    assert_eq!(seqs(&r.events), vec![5, 6, 7]);
    assert!(r.complete && !r.has_more);

    // No practical limit.
    let r = reg.since(&alice, 0, usize::MAX).await.unwrap();
    assert_eq!(seqs(&r.events), (1..=7).collect::<Vec<u64>>());
    assert!(r.complete && !r.has_more);
}

async fn since_ahead_of_the_head_is_incomplete(reg: Reg) {
    let alice = uid("alice");
    append_n(&reg, &alice, 2).await;
    let r = reg.since(&alice, 5, 10).await.unwrap();
    assert_eq!(r.head, 2);
    assert!(r.events.is_empty());
    assert!(!r.complete);

    // A client that remembers a seq of a user who has none (e.g. a wiped table).
    let r = reg.since(&uid("nobody"), 1, 10).await.unwrap();
    assert_eq!(r.head, 0);
    assert!(!r.complete);
}

async fn since_at_the_head_is_complete_and_empty(reg: Reg) {
    let r = reg.since(&uid("newcomer"), 0, 10).await.unwrap();
    assert_eq!((r.head, r.complete, r.has_more), (0, true, false));
    assert!(r.events.is_empty());

    let alice = uid("alice");
    append_n(&reg, &alice, 3).await;
    let r = reg.since(&alice, 3, 10).await.unwrap();
    assert_eq!((r.head, r.complete, r.has_more), (3, true, false));
    assert!(r.events.is_empty());
}

/// Long enough that the events written after the sleep are still retained when read (expiry
/// has whole-second granularity, so an event lives between `retention - 1 s` and `retention`).
const RETENTION_TEST: Duration = Duration::from_secs(3);

async fn events_dropped_by_retention_make_since_incomplete(reg: Reg) {
    let alice = uid("alice");
    append_n(&reg, &alice, 5).await;
    tokio::time::sleep(RETENTION_TEST + Duration::from_millis(200)).await;
    append_n(&reg, &alice, 3).await;

    // 1 to 5 are gone (DynamoDB TTL has not deleted them: they are filtered on read).
    let r = reg.since(&alice, 0, 10).await.unwrap();
    assert_eq!(r.head, 8);
    assert_eq!(seqs(&r.events), vec![6, 7, 8]);
    assert!(!r.complete && !r.has_more);
    // More expired rows than the limit: the reader pages past them.
    let r = reg.since(&alice, 0, 2).await.unwrap();
    assert_eq!(seqs(&r.events), vec![6, 7]);
    assert!(!r.complete && r.has_more);
    assert_eq!(r.head, 8);
    let r = reg.since(&alice, 4, 10).await.unwrap();
    assert!(!r.complete);
    // A client that saw 5 missed nothing.
    let r = reg.since(&alice, 5, 10).await.unwrap();
    assert_eq!(seqs(&r.events), vec![6, 7, 8]);
    assert!(r.complete);
    // Everything after `since` dropped is incomplete too, not "nothing happened".
    tokio::time::sleep(RETENTION_TEST + Duration::from_millis(200)).await;
    let r = reg.since(&alice, 5, 10).await.unwrap();
    assert_eq!(r.head, 8);
    assert!(r.events.is_empty());
    assert!(!r.complete);
    // ...while a client that is up to date is still complete.
    let r = reg.since(&alice, 8, 10).await.unwrap();
    assert!(r.complete && r.events.is_empty());
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
    let reg = DynamoRegistry::new(client.clone(), table.clone(), DAY);
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
    assert!(reg.since(&uid("alice"), 0, 10).await.is_err());
}

#[tokio::test]
async fn warm_up_never_fails_even_without_a_table() {
    let reg = DynamoRegistry::new(dynamo_client(), "no-such-table".into(), DAY);
    reg.warm_up().await;
}

#[tokio::test]
async fn registries_over_one_table_share_the_seq() {
    // Every Lambda builds its own registry over the same table.
    let (client, table) = dynamo_table("shared").await;
    let a = DynamoRegistry::new(client.clone(), table.clone(), DAY);
    let b = DynamoRegistry::new(client, table, DAY);
    let alice = uid("alice");
    a.append(&alice, "product:updated", &json!({}))
        .await
        .unwrap();
    assert_eq!(
        b.append(&alice, "product:updated", &json!({}))
            .await
            .unwrap()
            .seq,
        2
    );
    let r = a.since(&alice, 0, 10).await.unwrap();
    assert_eq!(seqs(&r.events), vec![1, 2]);
}
