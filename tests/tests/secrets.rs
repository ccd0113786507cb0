//! Secrets kept in Secrets Manager, on moto (which speaks its protocol on the DynamoDB
//! server's port, `DYNAMODB_ENDPOINT`): read during init, read again while warm once due (so a
//! rotation reaches running functions without a redeploy), kept when a re-read fails, and a
//! missing one stops the cold start with an error that names it.

use std::collections::HashMap;
use std::time::Duration;

use adsync::App;
use adsync::config::{AwsCredentials, Config};
use adsync::function::Function;
use adsync::google::GoogleTokenSource;
use adsync::http::Route;
use adsync::secrets::{Secret, SecretsManager};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use integration_tests::{Answer, Fault, FaultProxy, Matcher, put_secret, secrets_manager};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn moto() -> String {
    std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DYNAMODB_ENDPOINT is not set: run scripts/test, which starts moto")
    })
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        adsync::ids::Uid::generate().as_str().to_lowercase()
    )
}

async fn create(name: &str, value: &str) {
    put_secret(&moto(), name, value).await;
}

async fn rotate(name: &str, value: &str) {
    put_secret(&moto(), name, value).await;
}

async fn manager(endpoint: &str) -> SecretsManager {
    SecretsManager {
        client: secrets_manager(endpoint).await,
        refresh_after: REFRESH,
    }
}

const REFRESH: Duration = Duration::from_millis(300);

/// Waits past the refresh interval.
async fn until_due() {
    tokio::time::sleep(REFRESH + Duration::from_millis(100)).await;
}

fn values(versions: &adsync::secrets::Versions) -> (String, Option<String>) {
    (
        versions.current.expose_secret().to_owned(),
        versions
            .previous
            .as_ref()
            .map(|p| p.expose_secret().to_owned()),
    )
}

#[tokio::test]
async fn a_secret_is_read_at_load_then_again_once_due_with_its_previous_version() {
    let name = unique("rotating");
    create(&name, "key-1").await;
    let secret = Secret::managed(name.clone(), true);
    assert!(secret.versions().await.is_none(), "nothing before the load");
    secret
        .load(&manager(&moto()).await, "SERVICE_KEY_SECRET_ID")
        .await
        .unwrap();
    let first = secret.versions().await.unwrap();
    assert_eq!(values(&first), ("key-1".into(), None));

    rotate(&name, "key-2").await;
    let cached = secret.versions().await.unwrap();
    assert_eq!(values(&cached), ("key-1".into(), None), "not due yet");

    until_due().await;
    let rotated = secret.versions().await.unwrap();
    assert_eq!(
        values(&rotated),
        ("key-2".into(), Some("key-1".into())),
        "a warm function reads the rotated value once due"
    );
    assert_ne!(rotated.version, first.version);
    assert!(!format!("{secret:?}").contains("key-"), "{secret:?}");
}

#[tokio::test]
async fn a_failed_re_read_keeps_the_value_in_hand_and_is_tried_again() {
    let name = unique("outage");
    create(&name, "key-1").await;
    let proxy = FaultProxy::start(&moto()).await;
    let secret = Secret::managed(name.clone(), false);
    secret
        .load(
            &manager(&proxy.url()).await,
            "GOOGLE_SERVICE_ACCOUNT_SECRET_ID",
        )
        .await
        .unwrap();

    rotate(&name, "key-2").await;
    let outage = proxy.add_rule(
        Matcher::any(),
        Fault::Status(Answer::dynamo(
            500,
            "InternalServiceError",
            "injected outage",
        )),
    );
    until_due().await;
    let during = secret.versions().await.unwrap();
    assert_eq!(values(&during), ("key-1".into(), None), "stale, not lost");
    assert!(outage.hits() > 0, "the re-read was tried");

    outage.remove();
    until_due().await;
    let after = secret.versions().await.unwrap();
    assert_eq!(values(&after).0, "key-2", "tried again after the failure");
}

/// The settings of a function with its secrets in Secrets Manager, on moto.
fn settings(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut s: HashMap<String, String> = [
        ("FIREBASE_PROJECT_ID", "demo-secrets"),
        ("CONNECTIONS_TABLE", "secrets-unused"),
        ("WEBSOCKET_MANAGEMENT_URL", "http://127.0.0.1:9"),
        ("SECRETS_REFRESH_SECONDS", "1"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    s.insert("DYNAMODB_ENDPOINT".into(), moto());
    s.insert("SECRETS_MANAGER_ENDPOINT".into(), moto());
    s
}

async fn build(settings: &HashMap<String, String>, function: Function) -> Result<App, String> {
    let mut config = Config::from_settings(settings).map_err(|e| e.to_string())?;
    config.aws = AwsCredentials::Placeholder;
    App::build(config, function)
        .await
        .map_err(|e| e.to_string())
}

fn service_call(key: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-service-key", key.parse().unwrap());
    headers.insert("x-on-behalf-of", "alice".parse().unwrap());
    headers
}

#[tokio::test]
async fn a_missing_secret_stops_the_cold_start_and_names_it() {
    let missing = unique("never-created");
    let err = build(
        &settings(&[("SERVICE_KEY_SECRET_ID", &missing)]),
        Function::Http(Route::Broadcast),
    )
    .await
    .err()
    .expect("no cold start without the service key");
    assert!(err.contains("SERVICE_KEY_SECRET_ID"), "{err}");
    assert!(err.contains(&missing), "{err}");

    let both = build(
        &settings(&[("SERVICE_KEY_SECRET_ID", &missing), ("SERVICE_KEY", "k")]),
        Function::Http(Route::Broadcast),
    )
    .await
    .err()
    .expect("a value and a secret name for one setting are refused");
    assert!(both.contains("not both"), "{both}");

    // A function that uses no service key does not read it, nor need it to exist.
    build(
        &settings(&[("SERVICE_KEY_SECRET_ID", &missing)]),
        Function::Ws(adsync::ws::WsRoute::Disconnect),
    )
    .await
    .expect("ws-disconnect starts without reading the service key");
}

#[tokio::test]
async fn a_rotated_service_key_is_taken_by_a_warm_function_and_the_previous_one_still_works() {
    let name = unique("service-key");
    create(&name, "key-1").await;
    let app = build(
        &settings(&[("SERVICE_KEY_SECRET_ID", &name)]),
        Function::Http(Route::Broadcast),
    )
    .await
    .unwrap();
    let accepts = async |key: &str| app.auth.authenticate_service(&service_call(key)).await;
    assert_eq!(accepts("key-1").await.unwrap().as_str(), "alice");
    assert!(accepts("key-2").await.is_err());

    // The operator stores a new key; n8n still sends the old one for a while.
    rotate(&name, "key-2").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        accepts("key-2").await.is_ok(),
        "the new key, without a redeploy"
    );
    assert!(
        accepts("key-1").await.is_ok(),
        "the previous key, until the next rotation"
    );

    rotate(&name, "key-3").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(accepts("key-3").await.is_ok());
    assert!(accepts("key-2").await.is_ok());
    assert!(
        accepts("key-1").await.is_err(),
        "two rotations retire a key"
    );
}

/// A Google token endpoint that answers every assertion and records the key id it was
/// signed with.
async fn token_endpoint() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
    async fn token(State(seen): State<Seen>, body: String) -> axum::Json<Value> {
        let assertion = body
            .split('&')
            .find_map(|pair| pair.strip_prefix("assertion="))
            .unwrap_or_default()
            .to_owned();
        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        seen.lock().unwrap().push(header.kid.unwrap_or_default());
        axum::Json(json!({"access_token": "ya29.stand-in", "expires_in": 3600}))
    }
    let seen = Seen::default();
    let router = Router::new()
        .route("/token", post(token))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/token"), seen)
}

fn key_file(kid: &str, pem: &str) -> String {
    let pem = std::fs::read_to_string(format!(
        "{}/../shared/tests/fixtures/{pem}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    json!({
        "type": "service_account",
        "private_key_id": kid,
        "private_key": pem,
        "client_email": "sync@demo-secrets.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

#[tokio::test]
async fn a_rotated_service_account_key_signs_the_next_token_and_a_broken_one_is_not_taken() {
    let name = unique("google-key");
    create(&name, &key_file("k1", "test-key-1.pem")).await;
    let secret = Secret::managed(name.clone(), false);
    secret
        .load(&manager(&moto()).await, "GOOGLE_SERVICE_ACCOUNT_SECRET_ID")
        .await
        .unwrap();
    let (url, seen) = token_endpoint().await;
    let tokens = GoogleTokenSource::new(&secret, Some(&url), reqwest::Client::new()).unwrap();
    tokens.access_token().await.unwrap();

    rotate(&name, &key_file("k2", "test-key-2.pem")).await;
    until_due().await;
    // A token is only exchanged when the cached one is due or was refused.
    tokens.forget();
    tokens.access_token().await.unwrap();

    rotate(&name, "{ not a key file").await;
    until_due().await;
    tokens.forget();
    tokens.access_token().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["k1", "k2", "k2"],
        "the rotated key from the next token on; an unusable one leaves the last good one"
    );
}
