//! The registry contract: every behaviour is one test body, run against the embedded
//! `MemoryRegistry` and against `DynamoRegistry` on a DynamoDB-protocol server (moto, started
//! by `scripts/test`, which exports `DYNAMODB_ENDPOINT`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use adsync::ids::{ConnectionId, Uid};
use adsync::registry::dynamo::DynamoRegistry;
use adsync::registry::memory::MemoryRegistry;
use adsync::registry::{
    Admission, Allowance, Connection, ConnectionRegistry, EventLog, LogEntry, Quota, RateLimiter,
    RecordedEvent, Reservation, Reserved,
};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use local_gateway::tables::create_table;
use serde_json::json;

/// The three ports, as one object under test.
trait Registry: ConnectionRegistry + EventLog + RateLimiter {}
impl<T: ConnectionRegistry + EventLog + RateLimiter> Registry for T {}

type Reg = Arc<dyn Registry>;

const DAY: Duration = Duration::from_secs(86_400);

fn memory(retention: Duration) -> Reg {
    Arc::new(MemoryRegistry::new(retention))
}

/// The DynamoDB server to test against.
const THREADED: &str = "DYNAMODB_ENDPOINT";
/// moto's threaded server races on concurrent conditional writes (its bug, not ours): tests
/// of concurrent writes run on a server that answers one request at a time.
const SERIAL: &str = "DYNAMODB_SERIAL_ENDPOINT";

fn dynamo_client() -> aws_sdk_dynamodb::Client {
    dynamo_client_of(THREADED)
}

fn dynamo_client_of(server: &str) -> aws_sdk_dynamodb::Client {
    let Ok(endpoint) = std::env::var(server) else {
        panic!("{server} is not set: run scripts/test, which starts moto_server");
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
    dynamo_table_on(THREADED, test).await
}

async fn dynamo_table_on(server: &str, test: &str) -> (aws_sdk_dynamodb::Client, String) {
    let client = dynamo_client_of(server);
    let table = table_name(test);
    create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("creating table {table}: {e}"));
    (client, table)
}

async fn dynamo(server: &str, test: &str, retention: Duration) -> Reg {
    let (client, table) = dynamo_table_on(server, test).await;
    Arc::new(DynamoRegistry::new(client, table, retention, CALL_TIMEOUT))
}

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

macro_rules! server_or_threaded {
    () => {
        THREADED
    };
    ($server:expr) => {
        $server
    };
}

/// Declares each test body once and runs it against both registries.
macro_rules! contract {
    ($($test:ident(retention: $retention:expr $(, server: $server:expr)?);)*) => {
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
                    let server = server_or_threaded!($($server)?);
                    super::$test(super::dynamo(server, stringify!($test), $retention).await).await;
                }
            )*
        }
    };
}

contract! {
    connections_are_stored_found_and_removed(retention: DAY);
    put_replaces_a_connection(retention: DAY);
    expired_connection_rows_are_ignored(retention: DAY);
    concurrent_removes_report_the_connection_once(retention: DAY, server: SERIAL);
    seq_starts_at_one_and_increases_by_one(retention: DAY);
    seq_is_per_user(retention: DAY);
    concurrent_reservations_get_distinct_consecutive_seqs(retention: DAY, server: SERIAL);
    entries_come_back_after_a_seq_in_order_with_the_head(retention: DAY);
    a_limit_cuts_the_page_and_sets_has_more(retention: DAY);
    entries_come_back_newest_first_before_a_seq(retention: DAY);
    a_seq_without_an_entry_stays_missing(retention: DAY);
    entries_dropped_by_retention_are_not_returned(retention: RETENTION_TEST);
    admission_stops_at_the_limit_of_live_connections(retention: DAY);
    concurrent_admissions_never_pass_the_limit(retention: DAY, server: SERIAL);
    a_spent_quota_refuses_the_reservation_and_reserves_nothing(retention: DAY);
    concurrent_reservations_never_pass_a_quota(retention: DAY, server: SERIAL);
    a_quota_starts_afresh_in_the_next_window(retention: DAY);
    a_budget_counts_uses_per_key_until_its_limit(retention: DAY);
    budgets_of_different_windows_do_not_reset_each_other(retention: DAY);
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
    let reservation = reserve(&**reg, user).await;
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

/// A reservation without a quota, which is never refused.
async fn reserve(log: &(impl EventLog + ?Sized), user: &Uid) -> Reservation {
    match log.reserve(user, None).await.unwrap() {
        Reserved::Seq(reservation) => reservation,
        refused => panic!("no quota, yet {refused:?}"),
    }
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
    let first = reserve(&*reg, &alice).await;
    assert_eq!((first.seq, first.prev_reserved_at_ms), (1, 0));
    let head = reg.head(&alice).await.unwrap();
    assert_eq!(head.seq, 1);
    assert!(head.reserved_at_ms >= before, "{head:?}");
    let second = reserve(&*reg, &alice).await;
    assert_eq!(second.seq, 2);
    // Each reservation knows when the one before it was made.
    assert_eq!(second.prev_reserved_at_ms, head.reserved_at_ms);
    let head = reg.head(&alice).await.unwrap();
    assert_eq!(head.prev_reserved_at_ms, second.prev_reserved_at_ms);
    assert_eq!(reserve(&*reg, &alice).await.seq, 3);
}

async fn seq_is_per_user(reg: Reg) {
    append_n(&reg, &uid("alice"), 3).await;
    assert_eq!(reserve(&*reg, &uid("bob")).await.seq, 1);
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
            tokio::spawn(async move { reserve(&*reg, &alice).await })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap().seq);
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
    let lost = reserve(&*reg, &alice).await;
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
    assert_eq!(reserve(&a, &alice).await.seq, 1);
    assert_eq!(reserve(&b, &alice).await.seq, 2);
}

const MINUTE: Duration = Duration::from_secs(60);

fn quota(name: &'static str, limit: u32, window: Duration) -> Quota {
    Quota {
        name,
        limit,
        window,
    }
}

/// Waits, if need be, until the current window of `window` has at least `room` left, so
/// that a test's next calls fall in one window.
async fn room_in_window(window: Duration, room: Duration) {
    let left = window.as_millis() - unix_ms() % window.as_millis();
    if left < room.as_millis() {
        sleep_ms(left + 20).await;
    }
}

/// Waits until the next window of `window` has begun.
async fn next_window(window: Duration) {
    sleep_ms(window.as_millis() - unix_ms() % window.as_millis() + 20).await;
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

async fn sleep_ms(ms: u128) {
    tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap())).await;
}

async fn a_spent_quota_refuses_the_reservation_and_reserves_nothing(reg: Reg) {
    let alice = uid("alice");
    let mutations = quota("mutations", 3, MINUTE);
    room_in_window(MINUTE, Duration::from_secs(10)).await;
    for expected in 1..=3 {
        match reg.reserve(&alice, Some(mutations)).await.unwrap() {
            Reserved::Seq(r) => assert_eq!(r.seq, expected),
            refused => panic!("use {expected} of 3 refused: {refused:?}"),
        }
    }
    match reg.reserve(&alice, Some(mutations)).await.unwrap() {
        Reserved::OverQuota { quota, retry_after } => {
            assert_eq!(quota, mutations);
            assert!(
                retry_after >= Duration::from_secs(1) && retry_after <= MINUTE,
                "{retry_after:?}"
            );
        }
        granted => panic!("the fourth use passed the quota: {granted:?}"),
    }
    assert_eq!(reg.head(&alice).await.unwrap().seq, 3, "nothing reserved");
    // Other quotas, unquoted reservations and other users are not affected.
    let other = reg
        .reserve(&alice, Some(quota("generations", 1, MINUTE)))
        .await
        .unwrap();
    assert!(matches!(other, Reserved::Seq(r) if r.seq == 4), "{other:?}");
    assert_eq!(reserve(&*reg, &alice).await.seq, 5);
    let bob = reg.reserve(&uid("bob"), Some(mutations)).await.unwrap();
    assert!(matches!(bob, Reserved::Seq(r) if r.seq == 1), "{bob:?}");
}

async fn concurrent_reservations_never_pass_a_quota(reg: Reg) {
    let alice = uid("alice");
    let mutations = quota("mutations", 5, MINUTE);
    room_in_window(MINUTE, Duration::from_secs(10)).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let reg = reg.clone();
            let alice = alice.clone();
            tokio::spawn(async move { reg.reserve(&alice, Some(mutations)).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        if let Reserved::Seq(r) = task.await.unwrap() {
            granted.push(r.seq);
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, [1, 2, 3, 4, 5]);
    assert_eq!(reg.head(&alice).await.unwrap().seq, 5);
}

async fn a_quota_starts_afresh_in_the_next_window(reg: Reg) {
    let alice = uid("alice");
    let window = Duration::from_secs(2);
    let burst = quota("broadcasts", 1, window);
    // The next window, then one after a quiet window: each starts at zero.
    for quiet in [0, 1] {
        next_window(window).await;
        for _ in 0..quiet {
            next_window(window).await;
        }
        let first = reg.reserve(&alice, Some(burst)).await.unwrap();
        assert!(
            matches!(first, Reserved::Seq(_)),
            "{quiet} quiet: {first:?}"
        );
        let second = reg.reserve(&alice, Some(burst)).await.unwrap();
        assert!(
            matches!(second, Reserved::OverQuota { .. }),
            "{quiet} quiet: {second:?}"
        );
    }
}

async fn a_budget_counts_uses_per_key_until_its_limit(reg: Reg) {
    room_in_window(MINUTE, Duration::from_secs(10)).await;
    for _ in 0..2 {
        assert_eq!(
            reg.spend("resumes#c1", 2, MINUTE).await.unwrap(),
            Allowance::Allowed
        );
    }
    match reg.spend("resumes#c1", 2, MINUTE).await.unwrap() {
        Allowance::Refused { retry_after } => assert!(retry_after <= MINUTE),
        Allowance::Allowed => panic!("the third use of two passed"),
    }
    assert_eq!(
        reg.spend("resumes#c2", 2, MINUTE).await.unwrap(),
        Allowance::Allowed
    );
}

async fn budgets_of_different_windows_do_not_reset_each_other(reg: Reg) {
    let hour = Duration::from_secs(3600);
    room_in_window(MINUTE, Duration::from_secs(10)).await;
    assert_eq!(
        reg.spend("generations#alice", 1, hour).await.unwrap(),
        Allowance::Allowed
    );
    assert_eq!(
        reg.spend("event-pages#alice", 5, MINUTE).await.unwrap(),
        Allowance::Allowed
    );
    assert!(matches!(
        reg.spend("generations#alice", 1, hour).await.unwrap(),
        Allowance::Refused { .. }
    ));
}

#[tokio::test]
async fn a_quota_leaves_no_counters_of_past_windows_behind() {
    let (client, table) = dynamo_table("counters").await;
    let reg = DynamoRegistry::new(client.clone(), table.clone(), DAY, CALL_TIMEOUT);
    let alice = uid("alice");
    let window = Duration::from_secs(1);
    // Uses in three windows with quiet windows between them.
    for _ in 0..3 {
        next_window(window).await;
        let r = reg
            .reserve(&alice, Some(quota("mutations", 10, window)))
            .await
            .unwrap();
        assert!(matches!(r, Reserved::Seq(_)), "{r:?}");
        next_window(window).await;
    }
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("USER#{}", alice.as_str())))
        .key("sk", AttributeValue::S("SEQ".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    let counters: Vec<&String> = item.keys().filter(|k| k.starts_with("quota#")).collect();
    assert_eq!(
        counters.len(),
        1,
        "one counter, the current window's: {item:?}"
    );
}

async fn admission_stops_at_the_limit_of_live_connections(reg: Reg) {
    for id in ["c1", "c2"] {
        let admitted = reg.admit(&connection(id, "alice"), 2).await.unwrap();
        assert_eq!(admitted, Admission::Admitted, "{id}");
    }
    let third = connection("c3", "alice");
    assert_eq!(reg.admit(&third, 2).await.unwrap(), Admission::Full);
    assert_eq!(reg.get(&third.id).await.unwrap(), None, "nothing stored");
    // Other users have their own limit; a connection admitted again is not counted twice.
    let bob = reg.admit(&connection("c4", "bob"), 2).await.unwrap();
    assert_eq!(bob, Admission::Admitted);
    let again = reg.admit(&connection("c2", "alice"), 2).await.unwrap();
    assert_eq!(again, Admission::Admitted);
    // Expired rows and removed connections free their place.
    let mut stale = connection("c1", "alice");
    stale.expires_at = now() - 1;
    reg.put(&stale).await.unwrap();
    assert_eq!(reg.admit(&third, 2).await.unwrap(), Admission::Admitted);
    reg.remove(&third.id).await.unwrap();
    let fourth = reg.admit(&connection("c5", "alice"), 2).await.unwrap();
    assert_eq!(fourth, Admission::Admitted);
    assert_eq!(reg.of_user(&uid("alice")).await.unwrap().len(), 2);
}

async fn concurrent_admissions_never_pass_the_limit(reg: Reg) {
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let reg = reg.clone();
            tokio::spawn(async move { reg.admit(&connection(&format!("c{i}"), "alice"), 3).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        // A user who keeps changing their connections may be told to try again (503); what
        // matters is that no admission passes the limit.
        if matches!(task.await.unwrap(), Ok(Admission::Admitted)) {
            admitted += 1;
        }
    }
    let held = reg.of_user(&uid("alice")).await.unwrap().len();
    assert_eq!(held, admitted);
    assert!((1..=3).contains(&held), "{held} connections held, limit 3");
}
