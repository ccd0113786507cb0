//! The quick-validation checklist, end to end against a running gateway over real HTTP and
//! real WebSockets. Every test body runs twice: on the embedded stores, and on the Firestore
//! emulator plus a DynamoDB-protocol server, so the two backends cannot drift.

use std::time::Duration;

mod common;

use common::{Client, next, send};
use futures_util::{SinkExt, StreamExt};
use local_gateway::{Limits, Options};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Emulators,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test, which starts the Firestore emulator and moto_server")
    })
}

fn options(backend: Backend) -> Options {
    let mut o = Options::ephemeral();
    if let Backend::Emulators = backend {
        let unique = adsync::ids::Uid::generate().as_str().to_lowercase();
        o.firestore_emulator = Some(env("FIRESTORE_EMULATOR_HOST"));
        o.dynamodb_endpoint = Some(env("DYNAMODB_ENDPOINT"));
        o.project_id = format!("demo-gw-{unique}");
        o.table = format!("gw-{unique}");
    }
    o
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn embedded() {
                super::$name(super::Backend::Embedded).await;
            }
            #[tokio::test]
            async fn emulators() {
                super::$name(super::Backend::Emulators).await;
            }
        }
    )*};
}

on_both_backends!(
    socket_connects_on_login_and_answers_ping,
    login_returns_the_data_with_no_extra_fetch,
    mutations_appear_instantly_on_every_socket_of_the_user_and_no_other,
    a_dropped_connection_loses_nothing_after_resume,
);

async fn socket_connects_on_login_and_answers_ping(backend: Backend) {
    let c = Client::start(options(backend)).await;
    let (status, body) = c
        .call("alice", reqwest::Method::POST, "/auth/login", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let mut ws = c.socket("alice").await;
    send(&mut ws, json!({"action": "ping"})).await;
    assert_eq!(next(&mut ws).await["event"], "pong");
}

async fn login_returns_the_data_with_no_extra_fetch(backend: Backend) {
    let c = Client::start(options(backend)).await;
    let (_, b) = c
        .call(
            "alice",
            reqwest::Method::POST,
            "/businesses",
            Some(json!({"name": "Bakery"})),
        )
        .await;
    let bid = b["id"].as_str().unwrap();
    let (_, p) = c
        .call(
            "alice",
            reqwest::Method::POST,
            &format!("/products/{bid}"),
            Some(json!({"name": "Bread", "price": 3})),
        )
        .await;
    let (status, login) = c
        .call("alice", reqwest::Method::POST, "/auth/login", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(login["businesses"], json!([b]));
    assert_eq!(login["products"], json!([p]));
    assert_eq!(login["seq"], 2);
    assert_eq!(login["user"]["uid"], "alice");
}

async fn mutations_appear_instantly_on_every_socket_of_the_user_and_no_other(backend: Backend) {
    let c = Client::start(options(backend)).await;
    let mut alice_1 = c.socket("alice").await;
    let mut alice_2 = c.socket("alice").await;
    let mut bob = c.socket("bob").await;

    let (_, b) = c
        .call(
            "alice",
            reqwest::Method::POST,
            "/businesses",
            Some(json!({"name": "Bakery"})),
        )
        .await;
    let bid = b["id"].as_str().unwrap().to_owned();
    let (_, p) = c
        .call(
            "alice",
            reqwest::Method::POST,
            &format!("/products/{bid}"),
            Some(json!({"name": "Bread"})),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let (status, _) = c
        .call(
            "alice",
            reqwest::Method::PATCH,
            &format!("/products/update/{bid}/{pid}"),
            Some(json!({"name": "Rye"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .call(
            "alice",
            reqwest::Method::DELETE,
            &format!("/products/{bid}/{pid}"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    for ws in [&mut alice_1, &mut alice_2] {
        let frames = [
            next(ws).await,
            next(ws).await,
            next(ws).await,
            next(ws).await,
        ];
        let names: Vec<_> = frames
            .iter()
            .map(|f| f["event"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "business:created",
                "product:created",
                "product:updated",
                "product:deleted"
            ]
        );
        assert_eq!(frames[2]["data"]["name"], "Rye");
        assert_eq!(frames[3]["data"], json!({"id": pid, "businessId": bid}));
    }
    // Bob's first frame is his own event: none of Alice's reached him before it.
    c.call(
        "bob",
        reqwest::Method::POST,
        "/businesses",
        Some(json!({"name": "Bob's"})),
    )
    .await;
    let first = next(&mut bob).await;
    assert_eq!(first["event"], "business:created");
    assert_eq!(first["data"]["name"], "Bob's");
    assert_eq!(first["seq"], 1);
}

async fn a_dropped_connection_loses_nothing_after_resume(backend: Backend) {
    let c = Client::start(options(backend)).await;
    let mut ws = c.socket("alice").await;
    c.call(
        "alice",
        reqwest::Method::POST,
        "/businesses",
        Some(json!({"name": "One"})),
    )
    .await;
    let first = next(&mut ws).await;
    assert_eq!(first["seq"], 1);
    drop(ws);
    c.call(
        "alice",
        reqwest::Method::POST,
        "/businesses",
        Some(json!({"name": "Two"})),
    )
    .await;
    c.call(
        "alice",
        reqwest::Method::POST,
        "/businesses",
        Some(json!({"name": "Three"})),
    )
    .await;

    let mut ws = c.socket("alice").await;
    send(&mut ws, json!({"action": "resume", "since": 1})).await;
    let replay = [
        next(&mut ws).await,
        next(&mut ws).await,
        next(&mut ws).await,
    ];
    assert_eq!(replay[0]["data"]["name"], "Two");
    assert_eq!(replay[1]["data"]["name"], "Three");
    assert_eq!(replay[2]["event"], "resume:done");
    assert_eq!(replay[2]["data"]["seq"], 3);
}

#[tokio::test]
async fn the_token_can_come_as_a_subprotocol_and_is_echoed() {
    let c = Client::start(Options::ephemeral()).await;
    let token = c.token("alice").await;
    let mut req = format!("{}/ws", c.base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", token.parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    assert_eq!(response.headers()["sec-websocket-protocol"], token.as_str());
    send(&mut ws, json!({"action": "ping"})).await;
    assert_eq!(next(&mut ws).await["event"], "pong");
}

#[tokio::test]
async fn a_bad_token_refuses_the_upgrade() {
    let c = Client::start(Options::ephemeral()).await;
    let url = format!("{}/ws?token=nonsense", c.base.replace("http://", "ws://"));
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
}

#[tokio::test]
async fn the_management_api_answers_410_for_a_gone_connection() {
    let c = Client::start(Options::ephemeral()).await;
    let r = c
        .http
        .post(format!("{}/@connections/nosuchid", c.base))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    let r = c
        .http
        .get(format!("{}/@connections/nosuchid", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
}

#[tokio::test]
async fn api_gateway_limits_close_oversized_and_idle_sockets() {
    let mut o = Options::ephemeral();
    o.limits = Limits {
        idle_timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let c = Client::start(o).await;
    let mut ws = c.socket("alice").await;
    ws.send(Message::Text("x".repeat(128 * 1024 + 1).into()))
        .await
        .unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1009));

    let mut ws = c.socket("alice").await;
    let started = std::time::Instant::now();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(350));
}

#[tokio::test]
async fn a_socket_is_closed_at_the_maximum_duration_even_when_busy() {
    let mut o = Options::ephemeral();
    o.limits = Limits {
        max_duration: Duration::from_millis(600),
        ..Limits::default()
    };
    let c = Client::start(o).await;
    let mut ws = c.socket("alice").await;
    let started = std::time::Instant::now();
    let closed = loop {
        send(&mut ws, json!({"action": "ping"})).await;
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer or the close in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => break None,
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(550));
}

#[tokio::test]
async fn a_restart_keeps_the_data_and_the_seq() {
    let dir = std::env::temp_dir().join(format!("gw-data-{}", adsync::ids::Uid::generate()));
    let mut o = Options::ephemeral();
    o.memory = false;
    o.data_dir = dir.clone();
    let c = Client::start(o.clone()).await;
    c.call(
        "alice",
        reqwest::Method::POST,
        "/businesses",
        Some(json!({"name": "Kept"})),
    )
    .await;
    drop(c);

    let c = Client::start(o).await;
    let (_, login) = c
        .call("alice", reqwest::Method::POST, "/auth/login", None)
        .await;
    assert_eq!(login["businesses"][0]["name"], "Kept");
    assert_eq!(login["seq"], 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn firebase_auth_mode_refuses_emulator_tokens_and_has_no_dev_tokens() {
    let mut o = Options::ephemeral();
    o.auth_mode = local_gateway::AuthMode::Firebase;
    // Keys from a closed port: no network needed to refuse an unsigned token.
    o.jwks_url = "http://127.0.0.1:1/jwks".into();
    let running = local_gateway::start(o).await.expect("gateway starts");
    let base = running.spawn();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/dev/token?uid=alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let uid = adsync::ids::Uid::parse("alice").unwrap();
    let token = adsync::auth::emulator_token("demo-ads", &uid, None, Duration::from_secs(600));
    let r = http
        .post(format!("{base}/auth/login"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
