//! Input that would deceive or break the backend: URLs that are not what they look like,
//! metadata Firestore cannot store, a state too large for one answer.

use adsync::limits::RateLimits;
use http::{Method, StatusCode};
use integration_tests::on_both_transports;
use integration_tests::transport::{Kind, Setup, id_of};
use serde_json::{Value, json};

on_both_transports!(
    urls_are_checked_as_browsers_read_them,
    metadata_firestore_cannot_store_is_a_400_naming_the_field,
    a_state_too_large_for_one_answer_comes_in_several,
);

async fn urls_are_checked_as_browsers_read_them(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let bid = id_of(&t.business("alice", "Bakery").await);
    let pid = id_of(&t.product("alice", &bid, json!({"name": "Bread"})).await);
    let path = format!("/products/update/{bid}/{pid}");
    let set = |url: &str| json!({ "imageUrl": url });
    // The host is evil.com: `localhost:80` is a user and password.
    for deceptive in [
        "http://localhost:80@evil.com/x",
        "https://user:pw@cdn.example.com/a.png",
        "javascript:alert(1)",
    ] {
        let r = t
            .as_user("alice", Method::PATCH, &path, Some(set(deceptive)))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{deceptive}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("imageUrl"), "{message}");
    }
    // Plain http only where this machine serves the images: the local gateway.
    let local = "http://127.0.0.1:3000/media/a.png";
    let r = t
        .as_user("alice", Method::PATCH, &path, Some(set(local)))
        .await;
    let expected = match kind {
        Kind::Lambda => StatusCode::BAD_REQUEST,
        Kind::Gateway => StatusCode::OK,
    };
    assert_eq!(r.status, expected, "{}", r.body);
    let r = t
        .as_user(
            "alice",
            Method::PATCH,
            &path,
            Some(set("https://cdn.example.com/a.png")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn metadata_firestore_cannot_store_is_a_400_naming_the_field(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let socket = t.connect("alice").await;
    let deep = (0..21).fold(json!("x"), |inner, _| json!({ "a": inner }));
    let long_key = json!({ "k".repeat(1500): 1 });
    for metadata in [deep, long_key] {
        let r = t
            .as_user(
                "alice",
                Method::POST,
                "/businesses",
                Some(json!({"name": "Bakery", "metadata": metadata})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("`metadata`"), "{message}");
    }
    let r = t.as_user("alice", Method::GET, "/businesses", None).await;
    assert_eq!(r.body, json!([]), "nothing written");
    t.ping(&socket).await;
}

/// A product as large as the fields allow, in characters that grow most when escaped.
fn largest_product(n: usize) -> Value {
    let quotes = |len: usize| "\"".repeat(len);
    json!({
        "name": format!("{n} {}", quotes(190)),
        "description": quotes(5000),
        "caption": quotes(2200),
        "category": quotes(100),
        "tags": (0..20).map(|_| quotes(50)).collect::<Vec<_>>(),
        "metadata": { "notes": quotes(8000) },
    })
}

/// What a body weighs as Lambda carries it: escaped once more inside the response envelope.
fn carried(body: &Value) -> usize {
    serde_json::to_string(&Value::String(body.to_string()))
        .expect("JSON")
        .len()
}

async fn a_state_too_large_for_one_answer_comes_in_several(kind: Kind) {
    let t = kind
        .start(Setup {
            rate_limits: Some(RateLimits {
                mutations_per_minute: 1000,
                ..RateLimits::DEFAULT
            }),
            ..Setup::default()
        })
        .await;
    let bid = id_of(&t.business("alice", "Bakery").await);
    let count = 90;
    for n in 0..count {
        let r = t
            .as_user(
                "alice",
                Method::POST,
                &format!("/products/{bid}"),
                Some(largest_product(n)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let mut first = t.as_user("alice", Method::POST, "/auth/login", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["user"]["uid"], "alice");
    assert_eq!(first.body["seq"], count + 1);
    let mut products: Vec<Value> = Vec::new();
    let mut answers = 0;
    loop {
        answers += 1;
        let size = carried(&first.body);
        assert!(size < 5 * 1024 * 1024, "answer {answers}: {size} bytes");
        products.extend(
            first.body["products"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        let Some(next) = first.body["next"].as_str().map(str::to_owned) else {
            break;
        };
        first = t
            .as_user(
                "alice",
                Method::POST,
                "/auth/login",
                Some(json!({ "after": next })),
            )
            .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        assert!(
            first.body.get("user").is_none(),
            "only the first has the user"
        );
    }
    assert!(answers >= 2, "{answers} answer(s)");
    let mut names: Vec<String> = products
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort_by_key(|n| n.split(' ').next().and_then(|i| i.parse::<usize>().ok()));
    names.dedup();
    assert_eq!(names.len(), count, "every product exactly once");

    let r = t
        .as_user(
            "alice",
            Method::POST,
            "/auth/login",
            Some(json!({ "after": "products:../x" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}
