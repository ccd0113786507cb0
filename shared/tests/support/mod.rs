//! Helpers of the store tests: stores on both backends, loopback stand-in servers, fixtures.

#![allow(dead_code)] // Each test crate that includes this module uses part of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adsync::config::FirestoreConfig;
use adsync::ids::{BusinessId, ProductId, Uid};
use adsync::store::firestore::FirestoreStore;
use adsync::store::{DocPath, Fields};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use rand::Rng;
use serde_json::Value;

pub const EMULATOR_MISSING: &str =
    "FIRESTORE_EMULATOR_HOST is not set: run scripts/test, which starts the Firestore emulator";

/// The client the functions build: bounded connect and request timeouts.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// `host:port` of the Firestore emulator; the tests fail (not skip) without it.
pub fn emulator_host() -> String {
    match std::env::var("FIRESTORE_EMULATOR_HOST") {
        Ok(host) if !host.trim().is_empty() => host,
        _ => panic!("{EMULATOR_MISSING}"),
    }
}

/// Lowercase letters and digits, for names that must not collide between tests.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

pub fn emulator_config(base_url: String) -> FirestoreConfig {
    FirestoreConfig {
        base_url,
        emulator: true,
        service_account: None,
        token_url: None,
    }
}

/// A Firestore store on the emulator, in a project of its own (the emulator keeps projects
/// apart), so tests run in parallel without seeing each other's documents.
pub fn emulator_store() -> FirestoreStore {
    let config = emulator_config(format!("http://{}", emulator_host()));
    let project = format!("demo-test-{}", random_suffix());
    FirestoreStore::new(
        &config,
        &project,
        http_client(),
        std::time::Duration::from_secs(10),
    )
    .expect("firestore store")
}

/// A temporary directory of its own, removed by the caller when it likes.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("store-contract-{}", random_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A JSON object literal as document fields.
pub fn fields(value: Value) -> Fields {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

pub fn uid(s: &str) -> Uid {
    Uid::parse(s).expect("uid")
}

pub fn business(user: &str, id: &str) -> DocPath {
    DocPath::business(&uid(user), &BusinessId::parse(id).expect("business id"))
}

pub fn product(user: &str, business: &str, id: &str) -> DocPath {
    DocPath::product(
        &uid(user),
        &BusinessId::parse(business).expect("business id"),
        &ProductId::parse(id).expect("product id"),
    )
}

/// Serves `router` on a loopback port; the server lives as long as the test's runtime.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    addr
}

/// A loopback reverse proxy to the emulator that records every request it forwards as
/// `METHOD /path`, to count the HTTP calls a store makes.
pub struct CountingProxy {
    pub base_url: String,
    calls: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    pub async fn start() -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: format!("http://{}", emulator_host()),
            http: http_client(),
            calls: calls.clone(),
        };
        let addr = serve(Router::new().fallback(forward).with_state(state)).await;
        Self {
            base_url: format!("http://{addr}"),
            calls,
        }
    }

    /// The calls recorded since the last `take`.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().expect("calls"))
    }
}

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    state
        .calls
        .lock()
        .expect("calls")
        .push(format!("{} {}", parts.method, parts.uri.path()));
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let mut upstream = state
        .http
        .request(parts.method, format!("{}{path_and_query}", state.upstream))
        .body(body);
    for name in ["authorization", "content-type"] {
        if let Some(value) = parts.headers.get(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.expect("upstream");
    let mut response = Response::builder().status(answer.status());
    if let Some(value) = answer.headers().get("content-type") {
        response = response.header("content-type", value);
    }
    let bytes = answer.bytes().await.expect("upstream body");
    response.body(Body::from(bytes)).expect("response")
}

/// A file of `shared/tests/fixtures` (the test RSA keys), as text.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
