//! The WebSocket routes: connect (token in the query or the subprotocol), ping, errors,
//! resume, the retention window, token refresh and expiry.

use std::time::Duration;

use adsync::events::Outbox;
use adsync::ids::Uid;
use adsync::ws::RESUME_PAGE;
use http::StatusCode;
use integration_tests::on_both_transports;
use integration_tests::transport::{Credentials, Kind, Setup, Transport, id_of, names};
use serde_json::{Value, json};

on_both_transports!(
    connect_needs_a_valid_token_from_the_query_or_the_subprotocol,
    ping_answers_pong_with_the_head,
    unknown_actions_and_bad_json_get_an_error_frame,
    resume_replays_what_was_missed_in_order_then_says_done,
    a_backlog_longer_than_a_page_is_resumed_in_steps,
    resume_from_before_the_retention_window_requires_a_resync,
    auth_refreshes_the_token_in_place_and_another_users_token_closes_the_socket,
    a_connection_whose_token_expired_gets_no_more_events_and_is_dropped,
    a_token_about_to_expire_is_announced,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Records an event of `uid` straight in the event log, as a write would.
async fn publish(t: &dyn Transport, uid: &str, data: Value) {
    let uid = Uid::parse(uid).unwrap();
    Outbox::open(t.app(), &uid)
        .await
        .expect("a seq")
        .publish("business:created", data)
        .await;
}

async fn connect_needs_a_valid_token_from_the_query_or_the_subprotocol(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    // Past the 60 s of clock skew that verification allows.
    let expired = t.token_with("alice", -120, json!({}));
    for refused in [
        Credentials::Nothing,
        Credentials::Query("garbage"),
        Credentials::Query(&expired),
    ] {
        let status = t.open(refused).await.err();
        assert_eq!(status, Some(StatusCode::UNAUTHORIZED), "{refused:?}");
    }
    assert!(t.connections("alice").await.is_empty());

    let token = t.token("alice");
    let socket = t
        .open(Credentials::Subprotocol(&format!("json, {token}")))
        .await
        .expect("the token in the subprotocol is accepted");
    assert_eq!(
        socket.protocol.as_deref(),
        Some(token.as_str()),
        "browsers need the echo"
    );
    let stored = t.connections("alice").await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].expires_at > now() + 2 * 3600,
        "TTL past API Gateway's 2 hours"
    );
    t.ping(&socket).await;

    t.close(&socket).await;
    t.wait_for_connections("alice", 0).await;
}

async fn ping_answers_pong_with_the_head(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let socket = t.connect("alice").await;
    let pong = t.ping(&socket).await;
    assert!(pong.get("seq").is_none(), "control frames carry no seq");
    assert!(pong["ts"].is_string());
    assert_eq!(pong["data"], json!({"seq": 0}));
    t.business("alice", "Bakery").await;
    assert_eq!(t.next(&socket).await["seq"], 1);
    assert_eq!(t.ping(&socket).await["data"], json!({"seq": 1}));
}

async fn unknown_actions_and_bad_json_get_an_error_frame(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let socket = t.connect("alice").await;
    t.send_text(&socket, "not json").await;
    t.send(&socket, json!({"action": "dance"})).await;
    t.send(&socket, json!({"action": "resume", "since": "x"}))
        .await;
    let frames = t.next_frames(&socket, 3).await;
    assert_eq!(names(&frames), ["error"; 3]);
    for frame in &frames {
        assert_eq!(frame["data"]["code"], "bad_request", "{frame}");
    }
    t.ping(&socket).await;
}

async fn resume_replays_what_was_missed_in_order_then_says_done(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let first = t.connect("alice").await;
    let bid = id_of(&t.business("alice", "Bakery").await);
    assert_eq!(t.next(&first).await["seq"], 1);
    // The connection drops; what happens meanwhile is replayed on the next one.
    t.close(&first).await;
    for i in 0..3 {
        t.product("alice", &bid, json!({"name": format!("P{i}")}))
            .await;
    }
    // Bob's events never show up in Alice's replay.
    t.business("bob", "Bob's").await;

    let socket = t.connect("alice").await;
    t.send(&socket, json!({"action": "resume", "since": 1}))
        .await;
    let frames = t.next_frames(&socket, 4).await;
    assert_eq!(
        names(&frames),
        [
            "product:created",
            "product:created",
            "product:created",
            "resume:done"
        ]
    );
    let replayed: Vec<_> = frames[..3]
        .iter()
        .map(|f| {
            (
                f["seq"].as_u64().unwrap(),
                f["data"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(replayed, [(2, "P0"), (3, "P1"), (4, "P2")]);
    assert_eq!(frames[3]["data"], json!({"seq": 4}));
    assert!(frames[3].get("seq").is_none());

    t.send(&socket, json!({"action": "resume", "since": 4}))
        .await;
    let done = t.next(&socket).await;
    assert_eq!(
        (done["event"].as_str(), &done["data"]),
        (Some("resume:done"), &json!({"seq": 4}))
    );

    t.send(&socket, json!({"action": "resume", "since": 40}))
        .await;
    let resync = t.next(&socket).await;
    assert_eq!(resync["event"], "resync:required");
    assert_eq!(resync["data"]["seq"], 4);
    t.ping(&socket).await;
}

async fn a_backlog_longer_than_a_page_is_resumed_in_steps(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let total = RESUME_PAGE as u64 + 1;
    for n in 0..total {
        publish(&*t, "alice", json!({"n": n})).await;
    }
    let socket = t.connect("alice").await;
    t.send(&socket, json!({"action": "resume", "since": 0}))
        .await;
    let frames = t.next_frames(&socket, RESUME_PAGE + 1).await;
    let seqs: Vec<_> = frames[..RESUME_PAGE]
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..total).collect::<Vec<_>>(),
        "in order, none skipped"
    );
    assert_eq!(frames[RESUME_PAGE]["event"], "resume:partial");
    assert_eq!(
        frames[RESUME_PAGE]["data"],
        json!({"seq": total - 1, "head": total, "retryAfterMs": 0}),
        "a page ended: go on at once"
    );
    t.send(&socket, json!({"action": "resume", "since": total - 1}))
        .await;
    let rest = t.next_frames(&socket, 2).await;
    assert_eq!(rest[0]["seq"], total);
    assert_eq!(rest[1]["event"], "resume:done");
    assert_eq!(rest[1]["data"]["seq"], total);
}

async fn resume_from_before_the_retention_window_requires_a_resync(kind: Kind) {
    // Events older than the window are dropped; a client that missed them must be told.
    // A missing seq is only known lost once no writer can still record it: the writer lease
    // (60 s in the cloud, well under the 24 h retention) is made short too, though not below
    // 3 s: the gateway gives each invocation the lease less a second.
    let setup = Setup {
        retention_secs: Some(2),
        writer_lease_secs: Some(3),
        ..Setup::default()
    };
    let t = kind.start(setup).await;
    publish(&*t, "alice", json!({"id": "b"})).await;
    publish(&*t, "alice", json!({"id": "c"})).await;
    // Past the window and the lease: the first two events are gone for good.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    publish(&*t, "alice", json!({"id": "d"})).await;

    let socket = t.connect("alice").await;
    t.send(&socket, json!({"action": "resume", "since": 0}))
        .await;
    let resync = t.next(&socket).await;
    assert_eq!(resync["event"], "resync:required");
    assert_eq!(resync["data"]["seq"], 3);

    t.send(&socket, json!({"action": "resume", "since": 2}))
        .await;
    let frames = t.next_frames(&socket, 2).await;
    assert_eq!(names(&frames), ["business:created", "resume:done"]);
    assert_eq!(frames[0]["data"]["id"], "d");
}

async fn auth_refreshes_the_token_in_place_and_another_users_token_closes_the_socket(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let socket = t.connect("alice").await;
    let longer = t.token_with("alice", 7200, json!({}));
    t.send(&socket, json!({"action": "auth", "token": longer}))
        .await;
    let ok = t.next(&socket).await;
    assert_eq!(ok["event"], "auth:ok");
    let expires_at = ok["data"]["expiresAt"].as_i64().unwrap();
    assert!(expires_at > now() + 3600, "{ok}");
    let stored = t.connections("alice").await;
    assert_eq!(stored[0].token_expires_at, expires_at);

    t.send(&socket, json!({"action": "auth", "token": "bad"}))
        .await;
    let error = t.next(&socket).await;
    assert_eq!(error["event"], "error");
    assert_eq!(error["data"]["code"], "unauthorized");
    // A bad token alone does not close the socket.
    t.ping(&socket).await;

    let bobs = t.token("bob");
    t.send(&socket, json!({"action": "auth", "token": bobs}))
        .await;
    let last = t.closed(&socket).await;
    assert_eq!(names(&last), ["error"]);
    assert_eq!(last[0]["data"]["code"], "forbidden");
    t.wait_for_connections("alice", 0).await;
}

async fn a_connection_whose_token_expired_gets_no_more_events_and_is_dropped(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let fresh = t.connect("alice").await;
    // Expired, but within the clock skew verification allows: let in, then found expired by
    // the first event.
    let stale_token = t.token_with("alice", -30, json!({}));
    let stale = t
        .open(Credentials::Query(&stale_token))
        .await
        .expect("within the clock skew");

    t.business("alice", "Bakery").await;
    assert_eq!(t.next(&fresh).await["event"], "business:created");
    let got = t.closed(&stale).await;
    assert!(got.is_empty(), "an expired socket got {got:?}");
    let left = t.wait_for_connections("alice", 1).await;
    assert!(left[0].token_expires_at > now(), "the fresh one is left");
}

async fn a_token_about_to_expire_is_announced(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let token = t.token_with("alice", 120, json!({}));
    let socket = t.open(Credentials::Query(&token)).await.expect("accepted");
    t.business("alice", "Bakery").await;
    let frames = t.next_frames(&socket, 2).await;
    assert_eq!(names(&frames), ["business:created", "auth:expiring"]);
    let expires_at = frames[1]["data"]["expiresAt"].as_i64().unwrap();
    assert!(
        (now() + 100..=now() + 120).contains(&expires_at),
        "{}",
        frames[1]
    );
    t.ping(&socket).await;
}
