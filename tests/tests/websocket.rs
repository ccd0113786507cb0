//! The WebSocket routes as API Gateway invokes them, with replies and pushes recorded at the
//! Management API.

use adsync::events::Outbox;
use adsync::ids::{ConnectionId, Uid};
use adsync::ws::WsRoute;
use http::Method;
use integration_tests::TestApp;
use serde_json::{Value, json};

fn uid(s: &str) -> Uid {
    Uid::parse(s).unwrap()
}

fn names(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["event"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn connect_needs_a_valid_token_from_the_query_or_the_subprotocol() {
    let t = TestApp::spawn().await;
    let id = ConnectionId::generate().to_string();
    let r = t.ws(WsRoute::Connect, &id, &[], &[], None).await;
    assert_eq!(r.status_code, 401);
    let r = t
        .ws(WsRoute::Connect, &id, &[("token", "garbage")], &[], None)
        .await;
    assert_eq!(r.status_code, 401);
    // Past the 60 s of clock skew that verification allows.
    let expired = t.token_with("alice", -120, json!({}));
    let r = t
        .ws(WsRoute::Connect, &id, &[("token", &expired)], &[], None)
        .await;
    assert_eq!(r.status_code, 401);
    assert!(
        t.app
            .connections
            .of_user(&uid("alice"))
            .await
            .unwrap()
            .is_empty()
    );

    let token = t.token("alice");
    let protocols = format!("json, {token}");
    let r = t
        .ws(
            WsRoute::Connect,
            &id,
            &[],
            &[("Sec-WebSocket-Protocol", &protocols)],
            None,
        )
        .await;
    assert_eq!(r.status_code, 200);
    assert_eq!(
        r.headers["sec-websocket-protocol"],
        token.as_str(),
        "browsers need the echo"
    );
    let stored = t.app.connections.of_user(&uid("alice")).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id.as_str(), id);
    let now = chrono::Utc::now().timestamp();
    assert!(
        stored[0].expires_at > now + 2 * 3600,
        "TTL past API Gateway's 2 hours"
    );

    let r = t.ws(WsRoute::Disconnect, &id, &[], &[], None).await;
    assert_eq!(r.status_code, 200);
    assert!(
        t.app
            .connections
            .of_user(&uid("alice"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn ping_answers_pong_without_seq() {
    let t = TestApp::spawn().await;
    let socket = t.connect("alice").await;
    t.send(&socket, json!({"action": "ping"})).await;
    let frames = t.gateway.frames(&socket);
    assert_eq!(names(&frames), ["pong"]);
    assert!(frames[0].get("seq").is_none());
    assert!(frames[0]["ts"].is_string());
}

#[tokio::test]
async fn unknown_actions_and_bad_json_get_an_error_frame() {
    let t = TestApp::spawn().await;
    let socket = t.connect("alice").await;
    let r = t
        .ws(WsRoute::Default, &socket, &[], &[], Some("not json"))
        .await;
    assert_eq!(r.status_code, 200);
    t.send(&socket, json!({"action": "dance"})).await;
    t.send(&socket, json!({"action": "resume", "since": "x"}))
        .await;
    let frames = t.gateway.frames(&socket);
    assert_eq!(names(&frames), ["error", "error", "error"]);
    assert_eq!(frames[0]["data"]["code"], "bad_request");
}

#[tokio::test]
async fn resume_replays_what_was_missed_in_order_then_says_done() {
    let t = TestApp::spawn().await;
    let r = t
        .as_user(
            "alice",
            Method::POST,
            "/businesses",
            Some(json!({"name": "Bakery"})),
        )
        .await;
    let bid = r.body["id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        t.as_user(
            "alice",
            Method::POST,
            &format!("/products/{bid}"),
            Some(json!({"name": format!("P{i}")})),
        )
        .await;
    }
    // Bob's events never show up in Alice's replay.
    t.as_user(
        "bob",
        Method::POST,
        "/businesses",
        Some(json!({"name": "Bob's"})),
    )
    .await;

    let socket = t.connect("alice").await;
    t.send(&socket, json!({"action": "resume", "since": 1}))
        .await;
    let frames = t.gateway.frames(&socket);
    assert_eq!(
        names(&frames),
        [
            "product:created",
            "product:created",
            "product:created",
            "resume:done"
        ]
    );
    let seqs: Vec<_> = frames[..3]
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(frames[3]["data"]["seq"], 4);
    assert!(frames[3].get("seq").is_none());

    t.gateway.clear();
    t.send(&socket, json!({"action": "resume", "since": 4}))
        .await;
    assert_eq!(names(&t.gateway.frames(&socket)), ["resume:done"]);

    t.gateway.clear();
    t.send(&socket, json!({"action": "resume", "since": 40}))
        .await;
    let frames = t.gateway.frames(&socket);
    assert_eq!(names(&frames), ["resync:required"]);
    assert_eq!(frames[0]["data"]["seq"], 4);
}

#[tokio::test]
async fn resume_from_before_the_retention_window_requires_a_resync() {
    // Events older than the window are dropped; a client that missed them must be told.
    // A missing seq is only known lost once no writer can still record it: the writer lease
    // (60 s in the cloud, well under the 24 h retention) is made shorter than this window.
    let t = TestApp::spawn_tuned(&[("EVENT_RETENTION_SECONDS", "2")], |config| {
        config.timing.writer_lease = std::time::Duration::from_secs(1);
    })
    .await;
    let alice = uid("alice");
    Outbox::open(&t.app, &alice)
        .await
        .unwrap()
        .publish("business:created", json!({"id": "b"}))
        .await;
    Outbox::open(&t.app, &alice)
        .await
        .unwrap()
        .publish("business:created", json!({"id": "c"}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    Outbox::open(&t.app, &alice)
        .await
        .unwrap()
        .publish("business:created", json!({"id": "d"}))
        .await;

    let socket = t.connect("alice").await;
    t.send(&socket, json!({"action": "resume", "since": 0}))
        .await;
    let frames = t.gateway.frames(&socket);
    assert_eq!(names(&frames), ["resync:required"]);
    assert_eq!(frames[0]["data"]["seq"], 3);

    t.gateway.clear();
    t.send(&socket, json!({"action": "resume", "since": 2}))
        .await;
    let frames = t.gateway.frames(&socket);
    assert_eq!(names(&frames), ["business:created", "resume:done"]);
    assert_eq!(frames[0]["data"]["id"], "d");
}

#[tokio::test]
async fn auth_refreshes_the_token_in_place_and_another_users_token_closes_the_socket() {
    let t = TestApp::spawn().await;
    let socket = t.connect("alice").await;
    let longer = t.token_with("alice", 7200, json!({}));
    t.send(&socket, json!({"action": "auth", "token": longer}))
        .await;
    let frames = t.gateway.frames(&socket);
    assert_eq!(names(&frames), ["auth:ok"]);
    let conn = t
        .app
        .connections
        .get(&ConnectionId::parse(&socket).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(conn.token_expires_at > chrono::Utc::now().timestamp() + 3600);

    t.send(&socket, json!({"action": "auth", "token": "bad"}))
        .await;
    assert_eq!(t.gateway.frames(&socket).last().unwrap()["event"], "error");
    assert!(
        t.gateway.closed().is_empty(),
        "a bad token alone does not close the socket"
    );

    let bobs = t.token("bob");
    t.send(&socket, json!({"action": "auth", "token": bobs}))
        .await;
    assert_eq!(t.gateway.closed(), vec![socket.clone()]);
    assert!(
        t.app
            .connections
            .of_user(&uid("alice"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_connection_whose_token_expired_gets_no_more_events_and_is_dropped() {
    let t = TestApp::spawn().await;
    let fresh = t.connect("alice").await;
    let stale = ConnectionId::generate().to_string();
    let short = t.token_with("alice", 2, json!({}));
    let r = t
        .ws(WsRoute::Connect, &stale, &[("token", &short)], &[], None)
        .await;
    assert_eq!(r.status_code, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;

    t.as_user(
        "alice",
        Method::POST,
        "/businesses",
        Some(json!({"name": "Bakery"})),
    )
    .await;
    assert_eq!(t.gateway.events(&fresh).len(), 1);
    assert!(
        t.gateway.frames(&stale).is_empty(),
        "an expired socket got an event"
    );
    assert_eq!(t.gateway.closed(), vec![stale.clone()]);
    let left: Vec<_> = t
        .app
        .connections
        .of_user(&uid("alice"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(left, [fresh]);
}

#[tokio::test]
async fn a_token_about_to_expire_is_announced() {
    let t = TestApp::spawn().await;
    let socket = ConnectionId::generate().to_string();
    let token = t.token_with("alice", 120, json!({}));
    t.ws(WsRoute::Connect, &socket, &[("token", &token)], &[], None)
        .await;
    t.as_user(
        "alice",
        Method::POST,
        "/businesses",
        Some(json!({"name": "Bakery"})),
    )
    .await;
    assert_eq!(
        names(&t.gateway.frames(&socket)),
        ["business:created", "auth:expiring"]
    );
}
