//! The per-user budgets: no caller can run up the AI bill or starve the others. A spent budget
//! is a 429 with `Retry-After` and the JSON error, and nothing is written or pushed.

use adsync::limits::RateLimits;
use http::{Method, StatusCode};
use integration_tests::on_both_transports;
use integration_tests::transport::{Caller, Kind, Response, Setup, id_of};
use serde_json::json;

on_both_transports!(
    a_spent_mutation_budget_is_429_and_writes_and_pushes_nothing,
    generations_have_an_hourly_budget_per_user,
    broadcasts_have_a_budget_per_user,
    a_user_holds_at_most_the_connection_limit,
    resume_and_event_pages_cannot_be_looped,
);

/// Small budgets, so that a test spends them in a few calls.
fn small() -> Setup<'static> {
    Setup {
        rate_limits: Some(RateLimits {
            generations_per_hour: 1,
            mutations_per_minute: 3,
            broadcasts_per_minute: 2,
            connections_per_user: 2,
            resumes_per_minute: 2,
            event_pages_per_minute: 2,
        }),
        ..Setup::default()
    }
}

/// A 429 as the contract shapes it: `Retry-After` in whole seconds (at most the window),
/// and the JSON error naming the budget.
fn assert_refused(r: &Response, budget: &str, window_secs: u64) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let retry_after: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", r.headers));
    assert!(
        (1..=window_secs).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(r.body["error"]["code"], "too_many_requests", "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(budget), "{message}");
}

/// Budgets are counted per fixed window: waits, if the current minute is about to end, for
/// the next one, so that a test's calls fall in one window.
async fn room_in_the_minute() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now % 60 > 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - now % 60)).await;
    }
}

async fn a_spent_mutation_budget_is_429_and_writes_and_pushes_nothing(kind: Kind) {
    let t = kind.start(small()).await;
    room_in_the_minute().await;
    let socket = t.connect("alice").await;
    let bid = id_of(&t.business("alice", "Bakery").await);
    t.product("alice", &bid, json!({"name": "Bread"})).await;
    t.product("alice", &bid, json!({"name": "Rolls"})).await;
    let r = t
        .as_user(
            "alice",
            Method::POST,
            &format!("/products/{bid}"),
            Some(json!({"name": "Cake"})),
        )
        .await;
    assert_refused(&r, "mutations", 60);
    let frames = t.next_frames(&socket, 3).await;
    let seqs: Vec<_> = frames.iter().map(|f| f["seq"].clone()).collect();
    assert_eq!(seqs, [json!(1), json!(2), json!(3)]);
    let pong = t.ping(&socket).await;
    assert_eq!(
        pong["data"]["seq"], 3,
        "the refused write took no seq: {pong}"
    );
    let listed = t
        .as_user("alice", Method::GET, &format!("/products/{bid}"), None)
        .await;
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(2),
        "{}",
        listed.body
    );
    // Reading is not a mutation, and other users have their own budget.
    let r = t.as_user("alice", Method::GET, "/businesses", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.business("bob", "Florist").await;
}

async fn generations_have_an_hourly_budget_per_user(kind: Kind) {
    let t = kind.start(small()).await;
    let bid = id_of(&t.business("alice", "Bakery").await);
    let first = id_of(&t.product("alice", &bid, json!({"name": "Bread"})).await);
    let second = id_of(&t.product("alice", &bid, json!({"name": "Rolls"})).await);
    let r = t
        .generate("alice", json!({"businessId": bid, "productId": first}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Another product does not get around the budget: it is the user's, not the product's.
    let r = t
        .generate("alice", json!({"businessId": bid, "productId": second}))
        .await;
    assert_refused(&r, "generations", 3600);
    let product = t.listed_product("alice", &bid, &second).await;
    assert_eq!(product["status"], "draft", "untouched: {product}");
    let bob_bid = id_of(&t.business("bob", "Florist").await);
    let bob_pid = id_of(&t.product("bob", &bob_bid, json!({"name": "Roses"})).await);
    let r = t
        .generate("bob", json!({"businessId": bob_bid, "productId": bob_pid}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn broadcasts_have_a_budget_per_user(kind: Kind) {
    let t = kind.start(small()).await;
    room_in_the_minute().await;
    let socket = t.connect("alice").await;
    let progress = json!({"event": "ai:progress", "data": {"percent": 50}});
    let broadcast = async |to: &str| {
        t.call(
            Caller::Service(to),
            Method::POST,
            "/broadcast",
            Some(progress.clone()),
        )
        .await
    };
    for seq in 1..=2 {
        let r = broadcast("alice").await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(t.next(&socket).await["seq"], seq);
    }
    assert_refused(&broadcast("alice").await, "broadcasts", 60);
    t.ping(&socket).await;
    let r = broadcast("bob").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

async fn a_user_holds_at_most_the_connection_limit(kind: Kind) {
    let t = kind.start(small()).await;
    let first = t.connect("alice").await;
    let _second = t.connect("alice").await;
    let token = t.token("alice");
    let third = t
        .open(integration_tests::transport::Credentials::Query(&token))
        .await;
    assert_eq!(third.err(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(t.connections("alice").await.len(), 2, "nothing stored");
    let _bob = t.connect("bob").await;
    // A closed connection frees its place.
    t.close(&first).await;
    t.wait_for_connections("alice", 1).await;
    let _third = t.connect("alice").await;
}

async fn resume_and_event_pages_cannot_be_looped(kind: Kind) {
    let t = kind.start(small()).await;
    room_in_the_minute().await;
    let socket = t.connect("alice").await;
    for _ in 0..2 {
        t.send(&socket, json!({"action": "resume", "since": 0}))
            .await;
        assert_eq!(t.next(&socket).await["event"], "resume:done");
    }
    t.send(&socket, json!({"action": "resume", "since": 0}))
        .await;
    let refused = t.next(&socket).await;
    assert_eq!(refused["event"], "error", "{refused}");
    assert_eq!(refused["data"]["code"], "too_many_requests", "{refused}");
    let retry_after_ms = refused["data"]["retryAfterMs"].as_u64().unwrap_or(0);
    assert!((1000..=60_000).contains(&retry_after_ms), "{refused}");
    // The budget is the connection's: a new one may resume.
    let other = t.connect("alice").await;
    t.send(&other, json!({"action": "resume", "since": 0}))
        .await;
    assert_eq!(t.next(&other).await["event"], "resume:done");

    for _ in 0..2 {
        let r = t
            .as_user("alice", Method::GET, "/events?since=0", None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = t
        .as_user("alice", Method::GET, "/events?since=0", None)
        .await;
    assert_refused(&r, "event pages", 60);
}
