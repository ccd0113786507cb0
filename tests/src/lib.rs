//! The test harness: a `TestApp` wired exactly as a deployed function is (`App::from_config`),
//! but against the Firestore emulator (behind a counting proxy), a DynamoDB-protocol server,
//! a JWKS served on loopback, and a Management API endpoint that records what is pushed.
//! Requests go in as API Gateway events, through the same Lambda adapters as in the cloud.
//! [`transport`] puts it and the local gateway behind one client trait, so that a scenario is
//! written once and runs on both.

pub mod cluster;
pub mod faults;
pub mod runtime_api;
mod servers;
pub mod stand_ins;
pub mod sync_client;
pub mod template;
pub mod transport;

use std::collections::HashMap;

use adsync::App;
use adsync::config::Config;
use adsync::http::Route;
use adsync::ws::WsRoute;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use base64::Engine as _;
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub use faults::{Answer, Fault, FaultProxy, Gate, Matcher, RequestRecord, RuleHandle};
pub use servers::{FirestoreCalls, FirestoreProxy, Jwks, ManagementRecorder};

/// Where the test command started the real components.
pub struct Services {
    pub firestore_host: String,
    pub dynamodb_endpoint: String,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with scripts/test, which installs and starts the \
             Firestore emulator and moto_server and sets FIRESTORE_EMULATOR_HOST, \
             DYNAMODB_ENDPOINT and dummy AWS credentials"
        )
    })
}

impl Services {
    pub fn from_env() -> Self {
        required_env("AWS_ACCESS_KEY_ID");
        Self {
            firestore_host: required_env("FIRESTORE_EMULATOR_HOST"),
            dynamodb_endpoint: required_env("DYNAMODB_ENDPOINT"),
        }
    }
}

pub const SERVICE_KEY: &str = "test-service-key-0123456789";
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/tests/fixtures");

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        adsync::ids::Uid::generate().as_str().to_lowercase()
    )
}

/// One isolated backend: its own Firestore project, DynamoDB table and recorders.
pub struct TestApp {
    pub app: App,
    pub project_id: String,
    pub firestore: FirestoreProxy,
    pub management: ManagementRecorder,
    pub jwks: Jwks,
    signing_key: EncodingKey,
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with::<&str, &str>(&[]).await
    }

    /// A backend with extra settings (e.g. `EVENT_RETENTION_HOURS`).
    pub async fn spawn_with<K: AsRef<str>, V: AsRef<str>>(extra: &[(K, V)]) -> Self {
        Self::spawn_tuned(extra, |_| {}).await
    }

    /// A backend with extra settings, and its configuration changed by `tune` past what the
    /// settings accept (a writer lease shorter than a function may run, say).
    pub async fn spawn_tuned<K: AsRef<str>, V: AsRef<str>>(
        extra: &[(K, V)],
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        let services = Services::from_env();
        let firestore = FirestoreProxy::start(&services.firestore_host).await;
        let management = ManagementRecorder::start().await;
        let jwks = Jwks::start().await;
        let project_id = unique("demo-test");
        let table = unique("connections");

        let mut settings: HashMap<String, String> = [
            ("FIREBASE_PROJECT_ID", project_id.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore.host.as_str()),
            ("CONNECTIONS_TABLE", table.as_str()),
            ("DYNAMODB_ENDPOINT", services.dynamodb_endpoint.as_str()),
            ("WEBSOCKET_MANAGEMENT_URL", management.url.as_str()),
            ("FIREBASE_JWKS_URL", jwks.url.as_str()),
            ("SERVICE_KEY", SERVICE_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            settings.insert(k.as_ref().to_owned(), v.as_ref().to_owned());
        }
        let mut config = Config::from_settings(&settings).expect("test configuration");
        tune(&mut config);

        let sdk = adsync::app::aws_sdk_config(config.aws, &config.timeouts).await;
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(&services.dynamodb_endpoint)
                .build(),
        );
        local_gateway::tables::create_table(&dynamo, &table)
            .await
            .expect("create the connections table");

        let app = App::build(config, adsync::function::Function::Everything)
            .await
            .expect("app");
        firestore.calls.reset();
        let pem = std::fs::read(format!("{FIXTURES}/test-key-1.pem")).expect("fixture key");
        Self {
            app,
            project_id,
            firestore,
            management,
            jwks,
            signing_key: EncodingKey::from_rsa_pem(&pem).expect("fixture key"),
        }
    }

    /// A Firebase ID token for `uid`, signed with the fixture key the JWKS serves.
    pub fn token(&self, uid: &str) -> String {
        self.token_with(uid, 3600, json!({}))
    }

    /// A token valid for `lifetime_secs` (negative: already expired), with extra claims.
    pub fn token_with(&self, uid: &str, lifetime_secs: i64, extra: Value) -> String {
        let claims = id_token_claims(&self.project_id, uid, lifetime_secs, extra);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-key-1".into());
        jsonwebtoken::encode(&header, &claims, &self.signing_key).expect("sign token")
    }

    /// Sends a REST request through the Lambda adapter of the route API Gateway would pick,
    /// the body as API Gateway delivers it: text for JSON and `text/*`, base64 with
    /// `isBase64Encoded` for anything else (images).
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let (route, params) = match Route::resolve(&method, path) {
            Ok(found) => found,
            Err(err) => {
                // API Gateway answers unrouted requests itself; the local gateway maps them
                // the same way as the functions do.
                let r = adsync::http::ApiResponse::error(&err);
                return Response {
                    status: r.status,
                    headers: r.headers,
                    body: err.body(),
                };
            }
        };
        let mut event = http_api_event(route, &method, path, query, &params, headers);
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map_or("", |(_, v)| *v);
        let text =
            content_type.starts_with("application/json") || content_type.starts_with("text/");
        match std::str::from_utf8(body) {
            _ if body.is_empty() => {}
            Ok(body) if text => event["body"] = json!(body),
            _ => {
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
                event["isBase64Encoded"] = json!(true);
            }
        }
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event");
        let response = adsync::lambda::serve_http(&self.app, route, request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.body() {
            lambda_http::Body::Empty => Value::Null,
            other => serde_json::from_slice(other.as_ref()).expect("a JSON body"),
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// Deletes every document of `project` in the Firestore emulator (for fixed project ids).
    pub async fn reset_firestore(&self, project: &str) {
        let host = Services::from_env().firestore_host;
        let url =
            format!("http://{host}/emulator/v1/projects/{project}/databases/(default)/documents");
        let r = reqwest::Client::new()
            .delete(url)
            .send()
            .await
            .expect("emulator reset");
        assert!(r.status().is_success(), "emulator reset: {}", r.status());
    }

    /// Runs a WebSocket route event through the Lambda adapter.
    pub async fn ws(
        &self,
        route: WsRoute,
        connection: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
        let event = websocket_event(route, connection, query, headers, body);
        let event: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(event).expect("API Gateway WebSocket event");
        let invocation =
            lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default());
        adsync::lambda::serve_ws(&self.app, route, invocation).await
    }
}

/// The claims of a Firebase ID token of `project_id` for `uid`, valid for `lifetime_secs`
/// (negative: already expired), with `extra` claims.
pub fn id_token_claims(project_id: &str, uid: &str, lifetime_secs: i64, extra: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": format!("https://securetoken.google.com/{project_id}"),
        "aud": project_id,
        "sub": uid,
        "user_id": uid,
        "iat": now - 60,
        "auth_time": now - 60,
        "exp": now + lifetime_secs,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    claims
}

/// An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it, without its body.
pub fn http_api_event(
    route: Route,
    method: &Method,
    path: &str,
    query: &str,
    params: &HashMap<String, String>,
    headers: &[(&str, &str)],
) -> Value {
    let (_, template) = route.key();
    let route_key = format!("{method} {template}");
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": object(headers),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "testapi",
            "domainName": "testapi.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "testapi",
            "http": {"method": method.as_str(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "integration-tests"},
            "requestId": "req-1",
            "routeKey": route_key,
            "stage": "$default",
            "time": "25/Nov/2026:01:50:25 +0000",
            "timeEpoch": 1_795_571_425_000_i64
        },
        "isBase64Encoded": false
    });
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    if !query.is_empty() {
        let q: serde_json::Map<String, Value> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        event["queryStringParameters"] = Value::Object(q);
    }
    event
}

/// `{name: value}` of string pairs.
fn object(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// An API Gateway WebSocket event for `route`.
pub fn websocket_event(
    route: WsRoute,
    connection: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let event_type = match route {
        WsRoute::Connect => "CONNECT",
        WsRoute::Disconnect => "DISCONNECT",
        WsRoute::Default => "MESSAGE",
    };
    let mut event = json!({
        "requestContext": {
            "routeKey": route.key(),
            "eventType": event_type,
            "extendedRequestId": "ext-1",
            "requestTime": "25/Nov/2026:01:50:25 +0000",
            "messageDirection": "IN",
            "stage": "prod",
            "connectedAt": 1_795_571_425_000_i64,
            "requestTimeEpoch": 1_795_571_425_000_i64,
            "identity": {"sourceIp": "127.0.0.1"},
            "requestId": "req-1",
            "domainName": "testws.execute-api.us-east-1.amazonaws.com",
            "connectionId": connection,
            "apiId": "testws"
        },
        "isBase64Encoded": false
    });
    if !headers.is_empty() {
        event["headers"] = object(headers);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = object(query);
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

/// A Secrets Manager client of `endpoint` (moto speaks the protocol on the DynamoDB
/// server's port), with placeholder credentials.
pub async fn secrets_manager(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let sdk = adsync::app::aws_sdk_config(
        adsync::config::AwsCredentials::Placeholder,
        &adsync::config::Timeouts::default(),
    )
    .await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// Stores `value` as secret `name` on `endpoint`: creates the secret, or, when it exists,
/// makes `value` its current version (the previous one becomes `AWSPREVIOUS`), as a
/// rotation does.
pub async fn put_secret(endpoint: &str, name: &str, value: &str) {
    let client = secrets_manager(endpoint).await;
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await;
    if let Err(e) = created {
        let exists = e
            .as_service_error()
            .is_some_and(|e| e.is_resource_exists_exception());
        assert!(exists, "creating secret {name}: {e:?}");
        client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|e| panic!("rotating secret {name}: {e:?}"));
    }
}
