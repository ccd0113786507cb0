//! What only the local gateway has, over real HTTP and real WebSockets: API Gateway's
//! WebSocket limits as it emulates them, its Management API, data kept across restarts, its
//! auth modes and its media folder. The REST and WebSocket behaviour it shares with the Lambdas
//! is in `tests/tests/scenarios/`, run on both.

use std::time::Duration;

mod common;

use common::{Client, Ws, send};
use futures_util::{SinkExt, StreamExt};
use local_gateway::{Limits, Options};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Reads `ws` until the server closes it: the close code, if it sent one. Answers to pings
/// the test sends meanwhile are passed over; `between` runs after each.
async fn close_code(ws: &mut Ws, mut between: impl AsyncFnMut(&mut Ws)) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => between(ws).await,
            _ => return None,
        }
    }
}

/// Creates a business named `name` for alice: the business.
async fn business_of_alice(c: &Client, name: &str) -> serde_json::Value {
    let (status, business) = c
        .call(
            "alice",
            reqwest::Method::POST,
            "/businesses",
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, 201, "{business}");
    business
}

/// A gateway whose WebSocket limits `tune` changed, and a socket of alice on it.
async fn socket_with(tune: impl FnOnce(&mut Limits)) -> (Client, Ws) {
    let mut o = Options::ephemeral();
    tune(&mut o.limits);
    let c = Client::start(o).await;
    let ws = c.socket("alice").await;
    (c, ws)
}

#[tokio::test]
async fn api_gateway_limits_close_oversized_and_idle_sockets() {
    let (c, mut ws) = socket_with(|l| l.idle_timeout = Duration::from_millis(400)).await;
    ws.send(Message::Text("x".repeat(128 * 1024 + 1).into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws, async |_| {}).await, Some(1009));

    let mut ws = c.socket("alice").await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut ws, async |_| {}).await, Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(350));
}

#[tokio::test]
async fn a_socket_is_closed_at_the_maximum_duration_even_when_busy() {
    let (_c, mut ws) = socket_with(|l| l.max_duration = Duration::from_millis(600)).await;
    let started = std::time::Instant::now();
    send(&mut ws, json!({"action": "ping"})).await;
    let busy = async |ws: &mut Ws| {
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(ws, json!({"action": "ping"})).await;
    };
    assert_eq!(close_code(&mut ws, busy).await, Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(550));
}

#[tokio::test]
async fn the_management_api_answers_410_for_a_gone_connection() {
    let c = Client::start(Options::ephemeral()).await;
    let url = format!("{}/@connections/nosuchid", c.base);
    let r = c.http.post(&url).body("x").send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(c.status_of_get("/@connections/nosuchid").await, 410);
}

#[tokio::test]
async fn a_restart_keeps_the_data_and_the_seq() {
    let dir = std::env::temp_dir().join(format!("gw-data-{}", adsync::ids::Uid::generate()));
    let mut o = Options::ephemeral();
    o.memory = false;
    o.data_dir = dir.clone();
    let c = Client::start(o.clone()).await;
    business_of_alice(&c, "Kept").await;
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
    let c = Client::start(o).await;
    assert_eq!(c.status_of_get("/dev/token?uid=alice").await, 404);
    let uid = adsync::ids::Uid::parse("alice").unwrap();
    let token = adsync::auth::emulator_token("demo-ads", &uid, None, Duration::from_secs(600));
    let r = c
        .http
        .post(format!("{}/auth/login", c.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn media_urls_cannot_leave_the_media_folder() {
    let c = Client::start(Options::ephemeral()).await;
    for path in [
        "/media/../Cargo.toml",
        "/media/%2e%2e/%2e%2e/etc/passwd.png",
        "/media/users/alice/.hidden.png",
        "/media/users/alice/products/p/none.png",
        "/media/users/alice/products/p/x.txt",
    ] {
        assert_eq!(c.status_of_get(path).await, 404, "{path}");
    }
}

#[tokio::test]
async fn the_contracts_and_their_pages_are_served() {
    let c = Client::start(Options::ephemeral()).await;
    let get = async |path: &str| {
        let r = c
            .http
            .get(format!("{}{path}", c.base))
            .send()
            .await
            .unwrap();
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        (r.status().as_u16(), content_type, r.text().await.unwrap())
    };
    // The served documents are the generated ones, with this gateway as the local server.
    let (status, content_type, body) = get("/openapi.json").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let mut served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served["servers"][0]["url"], c.base);
    let mut generated = adsync::contract::openapi::document();
    generated["servers"][0]["url"] = json!(c.base);
    assert_eq!(served, generated);
    let (status, _, body) = get("/asyncapi.json").await;
    assert_eq!(status, 200);
    served = serde_json::from_str(&body).unwrap();
    let host = c.base.trim_start_matches("http://");
    assert_eq!(served["servers"]["local"]["host"], host);
    assert_eq!(
        served["operations"],
        adsync::contract::asyncapi::document()["operations"]
    );

    for (page, asset) in [
        ("/api", "/api/assets/swagger-ui-bundle.js"),
        ("/api/websocket", "/api/assets/asyncapi-react-component.js"),
    ] {
        let (status, content_type, html) = get(page).await;
        assert_eq!(status, 200, "{page}");
        assert!(content_type.starts_with("text/html"), "{page}");
        assert!(html.contains(asset), "{page} loads {asset}");
        for src in html
            .split("src=\"")
            .skip(1)
            .chain(html.split("href=\"").skip(1))
        {
            let link = &src[..src.find('"').unwrap()];
            if link.starts_with("/api/assets/") {
                let (status, _, body) = get(link).await;
                assert_eq!(status, 200, "{link}");
                assert!(!body.is_empty(), "{link}");
            }
        }
    }
    assert_eq!(c.status_of_get("/api/assets/nothing.js").await, 404);
}

#[tokio::test]
async fn a_known_path_with_another_method_lists_its_methods() {
    let c = Client::start(Options::ephemeral()).await;
    let r = c
        .http
        .put(format!("{}/products/b1", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn pushes_straight_to_the_sockets_and_through_the_management_api_deliver_the_same() {
    let mut frames = Vec::new();
    for via_management_api in [false, true] {
        let mut o = Options::ephemeral();
        o.push_via_management_api = via_management_api;
        let c = Client::start(o).await;
        let mut sockets = [c.socket("alice").await, c.socket("alice").await];
        let business = business_of_alice(&c, "Pushed").await;
        for ws in &mut sockets {
            let frame = common::next(ws).await;
            assert_eq!(frame["event"], "business:created", "{frame}");
            assert_eq!(frame["data"]["id"], business["id"], "{frame}");
            frames.push((frame["event"].clone(), frame["seq"].clone()));
        }
    }
    assert!(
        frames.windows(2).all(|w| w[0] == w[1]),
        "the same frames either way: {frames:?}"
    );
}
