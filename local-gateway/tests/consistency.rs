//! The backend's one promise, shown on real components: clients converge to Firestore and
//! learn of every persisted write, under concurrent writers and whatever fails or dies between
//! the steps of a write.
//!
//! Each test runs a cluster of `local-gateway` processes on the Firestore emulator and a
//! DynamoDB server (moto, one request at a time), every call through a fault proxy: a front
//! that holds the sockets, as API Gateway does, and workers that serve the REST calls and push
//! through the front's Management API, as the functions do. Real WebSocket clients that
//! follow the documented contract (`integration_tests::sync_client`) come and go; at the end
//! each one's state is compared, field by field, with what Firestore holds.

use std::time::{Duration, Instant};

use integration_tests::cluster::{Gateway, SERVICE_KEY, Stores, Timing, firestore_truth};
use integration_tests::faults::{Fault, FaultProxy, Gate, Matcher};
use integration_tests::sync_client::SyncClient;
use reqwest::Method;
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_local-gateway");
const UID: &str = "alice";

struct Cluster {
    stores: Stores,
    front: Gateway,
    workers: Vec<Gateway>,
    /// In front of the front's Management API, when the workers push through one.
    management: Option<FaultProxy>,
    http: reqwest::Client,
    token: String,
}

impl Cluster {
    async fn start(workers: usize) -> Self {
        Self::start_with(workers, false, Timing::default()).await
    }

    /// A cluster for a burst of concurrent writers, which no fault stops: the short lease of
    /// the fault tests would also cut every request at 2 s, and the one-request-at-a-time
    /// DynamoDB server queues such a burst's calls for longer than that on a busy machine.
    async fn for_a_burst(workers: usize) -> Self {
        let timing = Timing {
            writer_lease_secs: 12,
            processing_timeout_secs: 15,
            ..Timing::default()
        };
        Self::start_with(workers, false, timing).await
    }

    /// A front and `workers` workers; with `push_proxy`, the workers push through a fault
    /// proxy in front of the front's Management API.
    async fn start_with(workers: usize, push_proxy: bool, timing: Timing) -> Self {
        let stores = Stores::start().await;
        let front = Gateway::start(BINARY.as_ref(), &stores, timing, None, "front").await;
        let management = if push_proxy {
            Some(FaultProxy::start(&front.base).await)
        } else {
            None
        };
        let push_url = management
            .as_ref()
            .map_or_else(|| front.base.clone(), FaultProxy::url);
        let mut started = Vec::new();
        for n in 0..workers {
            let name = format!("worker{n}");
            let worker =
                Gateway::start(BINARY.as_ref(), &stores, timing, Some(&push_url), &name).await;
            started.push(worker);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTP client");
        let answer: Value = http
            .get(format!("{}/dev/token?uid={UID}", front.base))
            .send()
            .await
            .expect("dev token")
            .json()
            .await
            .expect("dev token JSON");
        let token = answer["token"].as_str().expect("token").to_owned();
        Self {
            stores,
            front,
            workers: started,
            management,
            http,
            token,
        }
    }

    /// A REST call as the user, through worker `n`: status and body.
    async fn call(
        &self,
        n: usize,
        method: Method,
        path: impl AsRef<str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = path.as_ref();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.workers[n].base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            // The worker died under the request.
            Err(_) => (0, Value::Null),
        }
    }

    async fn created(&self, n: usize, path: &str, body: Value) -> Value {
        let (status, doc) = self.call(n, Method::POST, path, Some(body)).await;
        assert_eq!(status, 201, "{doc}");
        doc
    }

    async fn patch(&self, n: usize, business: &str, product: &str, body: Value) -> (u16, Value) {
        let path = format!("/products/update/{business}/{product}");
        self.call(n, Method::PATCH, &path, Some(body)).await
    }

    /// A business with `count` products: the business id and the product ids.
    async fn seed(&self, count: usize) -> (String, Vec<String>) {
        let business = self
            .created(0, "/businesses", json!({"name": "Bakery"}))
            .await;
        let bid = business["id"].as_str().expect("id").to_owned();
        let mut products = Vec::new();
        for i in 0..count {
            let p = self
                .created(
                    0,
                    &format!("/products/{bid}"),
                    json!({"name": format!("P{i}"), "price": i}),
                )
                .await;
            products.push(p["id"].as_str().expect("id").to_owned());
        }
        (bid, products)
    }

    /// A client that logged in and holds a socket on the front.
    async fn live_client(&self, name: &str) -> SyncClient {
        let mut client = SyncClient::new(name, &self.front.base, UID).await;
        client.login().await;
        client.connect().await;
        client
    }

    /// Brings every client up to date (over its socket, or over `GET /events` for those
    /// without one) and checks that each holds exactly what Firestore holds.
    async fn assert_converged(
        &self,
        live: &mut [&mut SyncClient],
        http_only: &mut [&mut SyncClient],
    ) {
        for client in live.iter_mut() {
            client.sync().await;
        }
        for client in http_only.iter_mut() {
            client.catch_up_over_http().await;
        }
        let truth = firestore_truth(&self.stores, UID).await;
        for client in live.iter().chain(http_only.iter()) {
            let state = client.state();
            for (path, fields) in &truth {
                assert_eq!(
                    state.get(path),
                    Some(fields),
                    "{}: {path} differs from Firestore ({:?})",
                    client.name,
                    client.counters
                );
            }
            assert_eq!(
                state.keys().collect::<Vec<_>>(),
                truth.keys().collect::<Vec<_>>(),
                "{}: documents differ from Firestore",
                client.name
            );
            println!("{}: converged, {:?}", client.name, client.counters);
        }
    }
}

/// The three kinds of client of every scenario: one on its socket throughout, one that went
/// away before the trouble and comes back after it, one that only reads `GET /events`.
async fn three_clients(c: &Cluster) -> (SyncClient, SyncClient, SyncClient) {
    let live = c.live_client("live").await;
    let mut away = c.live_client("away").await;
    away.sync().await;
    away.disconnect().await;
    let mut http = SyncClient::new("http", &c.front.base, UID).await;
    http.login().await;
    (live, away, http)
}

async fn converge_all(
    c: &Cluster,
    live: &mut SyncClient,
    away: &mut SyncClient,
    http: &mut SyncClient,
) {
    away.connect().await;
    c.assert_converged(&mut [live, away], &mut [http]).await;
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_writers_of_one_field_for_twelve_rounds_converge() {
    let c = Cluster::for_a_burst(2).await;
    let (bid, products) = c.seed(1).await;
    let pid = products[0].clone();
    let (mut live_a, mut away, mut http) = three_clients(&c).await;
    let mut live_b = c.live_client("live-b").await;
    // Some writers' Firestore calls are slower, so commits land out of the order in which
    // their seqs were handed out.
    for (tag, ms) in [("-w1\"", 40), ("-w4\"", 25), ("-w6\"", 10)] {
        c.stores.firestore.add_rule(
            Matcher::any().method(Method::PATCH).body_contains(tag),
            Fault::Delay(Duration::from_millis(ms)),
        );
    }
    for round in 0..12 {
        let writes = (0..8).map(|w| {
            let body = json!({"name": format!("r{round}-w{w}")});
            c.patch(w % 2, &bid, &pid, body)
        });
        for (status, body) in futures_util::future::join_all(writes).await {
            assert_eq!(status, 200, "{body}");
        }
        if round == 4 {
            away.disconnect().await;
        }
    }
    converge_all(&c, &mut live_a, &mut away, &mut http).await;
    live_b.sync().await;
    c.assert_converged(&mut [&mut live_b], &mut []).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_updates_and_deletes_of_many_documents_converge() {
    let c = Cluster::for_a_burst(2).await;
    let (bid, products) = c.seed(4).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    c.stores.firestore.add_rule(
        Matcher::any().method(Method::PATCH).body_contains("slow"),
        Fault::Delay(Duration::from_millis(30)),
    );
    let doomed = products[3].clone();
    let mut work = Vec::new();
    for round in 0..6 {
        for (i, pid) in products.iter().enumerate() {
            let field = ["price", "caption", "category"][i % 3];
            let value = match field {
                "price" => json!(round * 10 + i),
                other => json!(format!("{other} {round} slow")),
            };
            work.push((i % 2, pid.clone(), json!({ field: value })));
            work.push((
                (i + 1) % 2,
                pid.clone(),
                json!({"name": format!("n{round}-{i}")}),
            ));
        }
    }
    let updates = work
        .iter()
        .map(|(w, pid, body)| c.patch(*w, &bid, pid, body.clone()));
    let delete = async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        c.call(
            1,
            Method::DELETE,
            &format!("/products/{bid}/{doomed}"),
            None,
        )
        .await
    };
    let creates = futures_util::future::join_all((0..4).map(|i| {
        c.call(
            i % 2,
            Method::POST,
            format!("/products/{bid}"),
            Some(json!({"name": format!("New {i}"), "tags": ["fresh"]})),
        )
    }));
    let profile = futures_util::future::join_all((0..4).map(|i| {
        c.call(
            i % 2,
            Method::PATCH,
            format!("/users/{UID}"),
            Some(json!({"displayName": format!("Alice {i}"), "locale": if i % 2 == 0 { json!("en") } else { json!(null) }})),
        )
    }));
    let (answers, deleted, created, profiled) = tokio::join!(
        futures_util::future::join_all(updates),
        delete,
        creates,
        profile
    );
    assert_eq!(deleted.0, 200, "{}", deleted.1);
    for (status, body) in answers.into_iter().chain(created).chain(profiled) {
        // An update of the deleted product after its delete is a 404; nothing else fails.
        assert!(matches!(status, 200 | 201 | 404), "{status} {body}");
    }
    converge_all(&c, &mut live, &mut away, &mut http).await;
    assert!(
        !firestore_truth(&c.stores, UID)
            .await
            .contains_key(&format!("product/{doomed}")),
        "late updates did not bring the deleted product back"
    );
}

// ---------------------------------------------------------------------------------------
// Faults of the event log (DynamoDB)
// ---------------------------------------------------------------------------------------

/// One PATCH while `fault` hits every recording of an event, then (unless `last`) more
/// writes: the write is persisted and answered, and every client still converges.
async fn recording_fails(fault: Fault, last: bool) {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(2).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    let rule = c
        .stores
        .dynamodb
        .add_rule(Matcher::dynamo("PutItem"), fault);
    let (status, body) = c
        .patch(
            0,
            &bid,
            &products[0],
            json!({"name": "while the log was down"}),
        )
        .await;
    assert_eq!(status, 200, "the write is persisted and answered: {body}");
    assert!(rule.hits() > 0, "the fault was hit");
    rule.remove();
    if !last {
        let (status, _) = c
            .patch(0, &bid, &products[1], json!({"name": "after"}))
            .await;
        assert_eq!(status, 200);
    }
    converge_all(&c, &mut live, &mut away, &mut http).await;
    // The away client could not replay the lost event: it was told to resync.
    assert!(away.counters.resyncs >= 1, "{:?}", away.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_log_outage_during_a_write_is_noticed_by_every_client() {
    recording_fails(Fault::dynamo_internal(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_recording_of_the_last_write_is_noticed() {
    recording_fails(Fault::dynamo_throttled(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_seq_nothing_is_written() {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(1).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    let before = firestore_truth(&c.stores, UID).await;
    let rule = c
        .stores
        .dynamodb
        .add_rule(Matcher::dynamo("UpdateItem"), Fault::dynamo_internal());
    let (status, body) = c
        .patch(0, &bid, &products[0], json!({"name": "never"}))
        .await;
    rule.remove();
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    assert_eq!(
        firestore_truth(&c.stores, UID).await,
        before,
        "nothing written"
    );
    converge_all(&c, &mut live, &mut away, &mut http).await;
}

// ---------------------------------------------------------------------------------------
// Faults of Firestore
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firestore_answers_lost_after_the_write_are_recovered_without_a_duplicate() {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(2).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    let drop_once = |m: Matcher| c.stores.firestore.add_rule(m, Fault::DropAfter).times(1);

    // An update: applied, answer lost, repeated (same values: harmless).
    let rule = drop_once(Matcher::any().method(Method::PATCH));
    let (status, body) = c.patch(0, &bid, &products[0], json!({"price": 42})).await;
    assert_eq!((status, rule.hits()), (200, 1), "{body}");
    // A create: applied, answer lost; the repeat finds its own document.
    let rule = drop_once(
        Matcher::any()
            .method(Method::POST)
            .path_contains("/products"),
    );
    let (status, body) = c
        .call(
            0,
            Method::POST,
            &format!("/products/{bid}"),
            Some(json!({"name": "Once"})),
        )
        .await;
    assert_eq!((status, rule.hits()), (201, 1), "{body}");
    // A delete: applied, answer lost; the repeat finds it gone.
    let rule = drop_once(Matcher::any().method(Method::DELETE));
    let (status, body) = c
        .call(
            0,
            Method::DELETE,
            &format!("/products/{bid}/{}", products[1]),
            None,
        )
        .await;
    assert_eq!((status, rule.hits()), (200, 1), "{body}");

    converge_all(&c, &mut live, &mut away, &mut http).await;
    let truth = firestore_truth(&c.stores, UID).await;
    let named_once = truth.values().filter(|d| d["name"] == "Once").count();
    assert_eq!(named_once, 1, "the repeated create made one product");
    assert_eq!(
        live.counters.resyncs, 0,
        "nothing was lost: {:?}",
        live.counters
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_firestore_outage_fails_the_request_and_clients_still_converge() {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(1).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    // Every attempt refused: the write may or may not have happened as far as the worker
    // knows (a 503), so its seq is left missing rather than marked empty.
    let rule = c.stores.firestore.add_rule(
        Matcher::any().method(Method::PATCH),
        Fault::firestore_unavailable(),
    );
    let (status, body) = c.patch(0, &bid, &products[0], json!({"name": "x"})).await;
    rule.remove();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        rule.hits() >= 2,
        "retried within the budget: {}",
        rule.hits()
    );
    let (status, _) = c.patch(0, &bid, &products[0], json!({"name": "y"})).await;
    assert_eq!(status, 200);
    converge_all(&c, &mut live, &mut away, &mut http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_firestore_gets_a_json_answer_before_the_deadline() {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(1).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    c.stores.firestore.add_rule(
        Matcher::any().method(Method::PATCH),
        Fault::Delay(Duration::from_secs(6)),
    );
    let started = Instant::now();
    let (status, body) = c
        .patch(0, &bid, &products[0], json!({"name": "slow"}))
        .await;
    let took = started.elapsed();
    c.stores.firestore.clear_rules();
    // The worker's deadline is the writer lease less a second (2 s here).
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    converge_all(&c, &mut live, &mut away, &mut http).await;
}

// ---------------------------------------------------------------------------------------
// Faults of the push (the Management API)
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_that_never_arrive_are_caught_up() {
    let c = Cluster::start_with(1, true, Timing::default()).await;
    let (bid, products) = c.seed(1).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    let management = c.management.as_ref().expect("a push proxy");
    let rule = management.add_rule(
        Matcher::any()
            .method(Method::POST)
            .path_contains("/@connections/"),
        Fault::DropBefore,
    );
    let (status, _) = c
        .patch(0, &bid, &products[0], json!({"name": "unheard"}))
        .await;
    assert_eq!(status, 200);
    assert!(rule.hits() >= 1);
    rule.remove();
    converge_all(&c, &mut live, &mut away, &mut http).await;
}

// ---------------------------------------------------------------------------------------
// A worker killed between the steps of a write
// ---------------------------------------------------------------------------------------

/// Where a worker is killed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    /// Its seq is reserved; its Firestore write has not left.
    BeforeTheFirestoreWrite,
    /// Firestore committed the write; the worker never heard back.
    AfterTheFirestoreCommit,
    /// The event is recorded; the worker never heard back (its push may or may not be out).
    AfterRecording,
    /// The push is on its way to the Management API.
    WhilePushing,
}

/// Kills the only worker at `stage` of a PATCH, then checks that every client converges.
async fn kill_the_worker(stage: Stage) {
    let mut c = Cluster::start_with(1, stage == Stage::WhilePushing, Timing::default()).await;
    let (bid, products) = c.seed(1).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    let before = firestore_truth(&c.stores, UID).await;
    let Cluster {
        stores,
        workers,
        management,
        http: client,
        token,
        ..
    } = &mut c;
    let gate = Gate::new();
    let patch = Matcher::any().method(Method::PATCH);
    let (proxy, matcher, fault) = match stage {
        Stage::BeforeTheFirestoreWrite => {
            (&stores.firestore, patch, Fault::HoldBefore(gate.clone()))
        }
        Stage::AfterTheFirestoreCommit => (&stores.firestore, patch, Fault::Hold(gate.clone())),
        Stage::AfterRecording => (
            &stores.dynamodb,
            Matcher::dynamo("PutItem"),
            Fault::Hold(gate.clone()),
        ),
        Stage::WhilePushing => (
            management.as_ref().expect("a push proxy"),
            Matcher::any()
                .method(Method::POST)
                .path_contains("/@connections/"),
            Fault::HoldBefore(gate.clone()),
        ),
    };
    let rule = proxy.add_rule(matcher, fault);
    let worker = &mut workers[0];
    let url = format!("{}/products/update/{bid}/{}", worker.base, products[0]);
    let write = client
        .patch(url)
        .bearer_auth(token.as_str())
        .json(&json!({"name": "the last words"}))
        .send();
    let kill = async {
        gate.reached().await;
        worker.kill().await;
        gate.drop_all();
    };
    let (answer, ()) = tokio::join!(write, kill);
    rule.remove();
    assert!(answer.is_err(), "the worker died under the request");
    let name = &firestore_truth(&c.stores, UID).await[&format!("product/{}", products[0])]["name"];
    if stage == Stage::BeforeTheFirestoreWrite {
        assert_eq!(
            firestore_truth(&c.stores, UID).await,
            before,
            "nothing was written"
        );
    } else {
        assert_eq!(name, "the last words", "Firestore has the write");
    }
    converge_all(&c, &mut live, &mut away, &mut http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_before_its_firestore_write_costs_at_most_a_resync() {
    kill_the_worker(Stage::BeforeTheFirestoreWrite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_after_its_firestore_commit_leaves_no_client_behind() {
    kill_the_worker(Stage::AfterTheFirestoreCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_after_recording_leaves_no_client_behind() {
    kill_the_worker(Stage::AfterRecording).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_while_pushing_leaves_no_client_behind() {
    kill_the_worker(Stage::WhilePushing).await;
}

// ---------------------------------------------------------------------------------------
// Nothing stuck
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generation_whose_worker_died_is_failed_by_the_sweeper_and_can_run_again() {
    let mut c = Cluster::start(2).await;
    let (bid, products) = c.seed(1).await;
    let pid = products[0].clone();
    let (mut live, mut away, mut http) = three_clients(&c).await;
    // Hold the generation's last write (the result): the worker dies with the product
    // `processing`.
    let gate = Gate::new();
    let rule = c.stores.firestore.add_rule(
        Matcher::any()
            .method(Method::PATCH)
            .body_contains("enriched"),
        Fault::HoldBefore(gate.clone()),
    );
    let Cluster {
        workers,
        http: client,
        token,
        ..
    } = &mut c;
    let url = format!("{}/ai/generate-ad-image", workers[0].base);
    let generate = client
        .post(url)
        .bearer_auth(token.as_str())
        .json(&json!({"businessId": bid, "productId": pid}))
        .send();
    let worker = &mut workers[0];
    let kill = async {
        gate.reached().await;
        worker.kill().await;
        gate.drop_all();
    };
    let (answer, ()) = tokio::join!(generate, kill);
    rule.remove();
    assert!(answer.is_err());
    let path = format!("product/{pid}");
    assert_eq!(
        firestore_truth(&c.stores, UID).await[&path]["status"],
        "processing"
    );
    // A second generation meanwhile is refused.
    let body = json!({"businessId": bid, "productId": pid});
    let (status, _) = c
        .call(1, Method::POST, "/ai/generate-ad-image", Some(body.clone()))
        .await;
    assert_eq!(status, 409);
    // The front's sweeper (every second) fails it once its deadline (the writer lease) passes.
    let started = Instant::now();
    loop {
        let truth = firestore_truth(&c.stores, UID).await;
        if truth[&path]["status"] == "failed" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still {}",
            truth[&path]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    converge_all(&c, &mut live, &mut away, &mut http).await;
    let (status, product) = c
        .call(1, Method::POST, "/ai/generate-ad-image", Some(body))
        .await;
    assert_eq!(status, 200, "{product}");
    assert_eq!(product["status"], "enriched");
    c.assert_converged(&mut [&mut live, &mut away], &mut [&mut http])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_product_set_processing_by_a_service_is_failed_after_its_timeout() {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(1).await;
    let (mut live, mut away, mut http) = three_clients(&c).await;
    // n8n's path: a service PATCH, then nothing (its run died).
    let response = c
        .http
        .patch(format!(
            "{}/products/update/{bid}/{}",
            c.workers[0].base, products[0]
        ))
        .header("x-service-key", SERVICE_KEY)
        .header("x-on-behalf-of", UID)
        .json(&json!({"status": "processing"}))
        .send()
        .await
        .expect("the PATCH");
    assert_eq!(response.status().as_u16(), 200);
    let path = format!("product/{}", products[0]);
    let started = Instant::now();
    while firestore_truth(&c.stores, UID).await[&path]["status"] != "failed" {
        assert!(started.elapsed() < Duration::from_secs(15), "never failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The processing timeout of this cluster is 5 s, the sweep every second.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    converge_all(&c, &mut live, &mut away, &mut http).await;
}

// ---------------------------------------------------------------------------------------
// The critical path and what an event costs
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_commit_only_the_push_stands_between_a_write_and_the_sockets() {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(1).await;
    let mut live = c.live_client("live").await;
    live.sync().await;
    c.stores.dynamodb.reset_log();
    c.stores.firestore.reset_log();
    // Hold the recording of the event: the frame must reach the socket anyway, since the
    // record and the push go out together after the commit.
    let gate = Gate::new();
    let rule = c
        .stores
        .dynamodb
        .add_rule(Matcher::dynamo("PutItem"), Fault::Hold(gate.clone()));
    let write = c.patch(0, &bid, &products[0], json!({"name": "fast"}));
    let watch = async {
        gate.reached().await;
        let mark = live.mark();
        live.drain(Duration::from_millis(500)).await;
        let arrived = live.mark() > mark;
        gate.release();
        arrived
    };
    let ((status, body), arrived) = tokio::join!(write, watch);
    rule.remove();
    assert_eq!(status, 200, "{body}");
    assert!(
        arrived,
        "the frame arrived while its recording was still held"
    );

    // What one event cost, and in which order: the seq (with the user's mutation quota, in
    // the same write) and the connections before the write, together; the record after it.
    let dynamo: Vec<(String, std::time::Instant)> = c
        .stores
        .dynamodb
        .requests()
        .into_iter()
        .filter_map(|r| Some((r.target?.rsplit('.').next()?.to_owned(), r.at)))
        .collect();
    let ops: Vec<&str> = dynamo.iter().map(|(op, _)| op.as_str()).collect();
    let mut sorted = ops.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["PutItem", "Query", "UpdateItem"],
        "2 writes and 1 query: {ops:?}"
    );
    let commit = c
        .stores
        .firestore
        .requests()
        .into_iter()
        .find(|r| r.method == Method::PATCH)
        .expect("the Firestore write")
        .at;
    for (op, at) in &dynamo {
        let before = *at < commit;
        let expected = op != "PutItem";
        assert_eq!(
            before,
            expected,
            "{op} {} the write",
            if before { "before" } else { "after" }
        );
    }
    live.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_that_races_a_recording_waits_instead_of_resyncing() {
    let c = Cluster::start(1).await;
    let (bid, products) = c.seed(1).await;
    let mut away = c.live_client("away").await;
    away.sync().await;
    away.disconnect().await;
    let gate = Gate::new();
    let rule = c
        .stores
        .dynamodb
        .add_rule(Matcher::dynamo("PutItem"), Fault::HoldBefore(gate.clone()));
    let write = c.patch(0, &bid, &products[0], json!({"name": "in flight"}));
    let watch = async {
        gate.reached().await;
        // The seq is reserved, the write committed, the entry not yet recorded.
        away.connect().await;
        let answer = away.resume_answer().await;
        gate.release();
        answer
    };
    let ((status, body), answer) = tokio::join!(write, watch);
    rule.remove();
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer, "resume:partial", "told to wait");
    away.sync().await;
    assert_eq!(
        away.counters.resyncs, 0,
        "not sent to bootstrap: {:?}",
        away.counters
    );
    c.assert_converged(&mut [&mut away], &mut []).await;
}
