//! The REST routes end to end: Firestore emulator, DynamoDB-protocol server, pushes
//! recorded at the Management API, requests as API Gateway events through the Lambda adapter.

use http::{Method, StatusCode};
use integration_tests::{FirestoreCalls, SERVICE_KEY, TestApp};
use serde_json::{Value, json};

async fn business(t: &TestApp, uid: &str, name: &str) -> Value {
    let r = t
        .as_user(
            uid,
            Method::POST,
            "/businesses",
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn product(t: &TestApp, uid: &str, business_id: &str, body: Value) -> Value {
    let r = t
        .as_user(
            uid,
            Method::POST,
            &format!("/products/{business_id}"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

fn writes(n: usize) -> FirestoreCalls {
    FirestoreCalls {
        writes: n,
        ..FirestoreCalls::default()
    }
}

#[tokio::test]
async fn login_creates_the_user_and_returns_everything_in_one_bootstrap() {
    let t = TestApp::spawn().await;
    let token = t.token_with(
        "alice",
        3600,
        json!({"email": "alice@example.com", "name": "Alice"}),
    );
    let auth = format!("Bearer {token}");
    let r = t
        .request(
            Method::POST,
            "/auth/login",
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user"]["uid"], "alice");
    assert_eq!(r.body["user"]["email"], "alice@example.com");
    assert_eq!(r.body["user"]["displayName"], "Alice");
    assert_eq!(r.body["businesses"], json!([]));
    assert_eq!(r.body["products"], json!([]));
    assert_eq!(r.body["seq"], 0);
    // First login: the user read, the user create, one listing and one products query.
    assert_eq!(
        t.firestore.calls.get(),
        FirestoreCalls {
            reads: 1,
            lists: 1,
            queries: 1,
            writes: 1
        }
    );

    let b1 = business(&t, "alice", "Bakery").await;
    let b2 = business(&t, "alice", "Florist").await;
    let p1 = product(
        &t,
        "alice",
        b1["id"].as_str().unwrap(),
        json!({"name": "Bread"}),
    )
    .await;
    let p2 = product(
        &t,
        "alice",
        b2["id"].as_str().unwrap(),
        json!({"name": "Roses"}),
    )
    .await;
    business(&t, "bob", "Bob's").await;

    t.firestore.calls.reset();
    let r = t
        .request(
            Method::POST,
            "/auth/login",
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["businesses"], json!([b1, b2]));
    assert_eq!(r.body["products"], json!([p1, p2]));
    assert_eq!(
        r.body["seq"], 4,
        "two businesses and two products were created"
    );
    // Later logins: one read for the user, one listing, one query for every product.
    assert_eq!(
        t.firestore.calls.get(),
        FirestoreCalls {
            reads: 1,
            lists: 1,
            queries: 1,
            writes: 0
        }
    );
}

#[tokio::test]
async fn every_mutation_costs_one_write_and_no_read_and_reaches_every_socket_of_its_user_only() {
    let t = TestApp::spawn().await;
    let alice_1 = t.connect("alice").await;
    let alice_2 = t.connect("alice").await;
    let bob = t.connect("bob").await;

    t.firestore.calls.reset();
    let b = business(&t, "alice", "Bakery").await;
    assert_eq!(t.firestore.calls.get(), writes(1));
    let bid = b["id"].as_str().unwrap().to_owned();
    assert_eq!(bid.len(), 20);
    assert!(b["createdAt"].as_str().unwrap().ends_with('Z'));

    t.firestore.calls.reset();
    let p = product(
        &t,
        "alice",
        &bid,
        json!({"name": "Bread", "price": 3.5, "currency": "EUR", "tags": ["fresh"]}),
    )
    .await;
    // A product create reads its business (for the 404), then writes once.
    assert_eq!(
        t.firestore.calls.get(),
        FirestoreCalls {
            reads: 1,
            writes: 1,
            ..FirestoreCalls::default()
        }
    );
    assert_eq!(p["status"], "draft");
    assert_eq!(p["businessId"], bid.as_str());
    let pid = p["id"].as_str().unwrap().to_owned();

    t.firestore.calls.reset();
    let r = t
        .as_user(
            "alice",
            Method::PATCH,
            &format!("/products/update/{bid}/{pid}"),
            Some(json!({"price": 4, "tags": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.firestore.calls.get(), writes(1));
    assert_eq!(r.body["price"], 4);
    assert_eq!(r.body["name"], "Bread", "merge keeps the other fields");
    assert!(r.body.get("tags").is_none(), "null clears a field");
    let updated_at = r.body["updatedAt"].clone();
    let version = r.body["version"].clone();
    assert!(version.as_str().unwrap() > p["version"].as_str().unwrap());

    t.firestore.calls.reset();
    let r = t
        .as_user(
            "alice",
            Method::DELETE,
            &format!("/products/{bid}/{pid}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.firestore.calls.get(), writes(1));

    for socket in [&alice_1, &alice_2] {
        let events = t.gateway.events(socket);
        let names: Vec<_> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
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
        let seqs: Vec<_> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(events[0]["data"], b);
        assert_eq!(events[1]["data"], p);
        assert_eq!(
            events[2]["data"],
            json!({"id": pid, "businessId": bid, "price": 4, "tags": null, "updatedAt": updated_at, "version": version})
        );
        assert_eq!(events[3]["data"], json!({"id": pid, "businessId": bid}));
        assert!(events[0]["ts"].as_str().unwrap().ends_with('Z'));
    }
    assert!(t.gateway.frames(&bob).is_empty(), "bob saw alice's events");
}

#[tokio::test]
async fn another_users_business_does_not_exist_for_you() {
    let t = TestApp::spawn().await;
    let alice = t.connect("alice").await;
    let bob = t.connect("bob").await;
    let b = business(&t, "alice", "Bakery").await;
    let bid = b["id"].as_str().unwrap();
    let p = product(&t, "alice", bid, json!({"name": "Bread"})).await;
    let pid = p["id"].as_str().unwrap();
    t.gateway.clear();

    let attempts = [
        (Method::GET, format!("/products/{bid}"), None),
        (
            Method::POST,
            format!("/products/{bid}"),
            Some(json!({"name": "Stolen"})),
        ),
        (
            Method::PATCH,
            format!("/products/update/{bid}/{pid}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/products/{bid}/{pid}"), None),
    ];
    for (method, path, body) in attempts {
        let r = t.as_user("bob", method.clone(), &path, body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "not_found");
    }
    let r = t.as_user("bob", Method::GET, "/businesses", None).await;
    assert_eq!(r.body, json!([]));
    assert_eq!(t.gateway.post_count(), 0, "no event anywhere");
    let _ = (alice, bob);

    // Alice's data is untouched.
    let r = t
        .as_user("alice", Method::GET, &format!("/products/{bid}"), None)
        .await;
    assert_eq!(r.body, json!([p]));
}

#[tokio::test]
async fn missing_documents_are_404_and_nothing_is_created() {
    let t = TestApp::spawn().await;
    let socket = t.connect("alice").await;
    let r = t
        .as_user(
            "alice",
            Method::POST,
            "/products/nosuchbusiness",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let b = business(&t, "alice", "Bakery").await;
    let bid = b["id"].as_str().unwrap();
    let r = t
        .as_user(
            "alice",
            Method::PATCH,
            &format!("/products/update/{bid}/nope"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .as_user(
            "alice",
            Method::DELETE,
            &format!("/products/{bid}/nope"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .as_user("alice", Method::GET, &format!("/products/{bid}"), None)
        .await;
    assert_eq!(
        r.body,
        json!([]),
        "a failed update must not create the product"
    );
    let r = t
        .as_user("alice", Method::GET, "/products/nosuchbusiness", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(t.gateway.events(&socket).len(), 1, "only business:created");
}

/// Method, path, headers, body, expected status and error code.
type Case<'a> = (
    Method,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<String>,
    StatusCode,
    &'a str,
);

#[tokio::test]
async fn error_paths_answer_json_with_the_right_status() {
    let t = TestApp::spawn().await;
    let alice = format!("Bearer {}", t.token("alice"));
    let json_ct = ("content-type", "application/json");
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/businesses",
            vec![],
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/businesses",
            vec![("authorization", "Bearer not.a.token")],
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/businesses",
            vec![("authorization", "Basic abc")],
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::POST,
            "/businesses",
            vec![("authorization", &alice), json_ct],
            Some("{".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            vec![("authorization", &alice), json_ct],
            Some("[]".into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            vec![("authorization", &alice), json_ct],
            Some(r#"{"name":"x","owner":"y"}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            vec![("authorization", &alice), json_ct],
            Some(r#"{"name":42}"#.into()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            vec![("authorization", &alice), ("content-type", "text/plain")],
            Some(r#"{"name":"x"}"#.into()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/businesses",
            vec![("authorization", &alice), json_ct],
            Some(format!(
                r#"{{"name":"x","description":"{}"}}"#,
                "d".repeat(70_000)
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Method::GET,
            "/products/bad$id",
            vec![("authorization", &alice)],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::PATCH,
            "/users/bob",
            vec![("authorization", &alice), json_ct],
            Some(r#"{"displayName":"B"}"#.into()),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::GET,
            "/events?since=abc",
            vec![("authorization", &alice)],
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/broadcast",
            vec![("authorization", &alice), json_ct],
            Some(r#"{"uid":"alice","event":"x:y"}"#.into()),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::POST,
            "/broadcast",
            vec![
                ("x-service-key", "wrong"),
                ("x-on-behalf-of", "alice"),
                json_ct,
            ],
            Some(r#"{"uid":"alice","event":"x:y"}"#.into()),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::PUT,
            "/businesses",
            vec![("authorization", &alice)],
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let r = t
            .request(method.clone(), path, &headers, body.as_deref())
            .await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{method} {path}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let r = t
        .request(
            Method::POST,
            "/businesses",
            &[("authorization", &alice), json_ct],
            Some(r#"{"name":42}"#),
        )
        .await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`name`")
    );
    let r = t.as_user("alice", Method::GET, "/businesses", None).await;
    assert_eq!(r.body, json!([]), "nothing was half-written");
}

#[tokio::test]
async fn a_user_updates_only_their_own_profile() {
    let t = TestApp::spawn().await;
    let socket = t.connect("alice").await;
    let r = t
        .as_user(
            "alice",
            Method::PATCH,
            "/users/alice",
            Some(json!({"displayName": "A"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no profile before the first login"
    );
    let r = t.as_user("alice", Method::POST, "/auth/login", None).await;
    assert_eq!(r.status, StatusCode::OK);
    t.firestore.calls.reset();
    let r = t
        .as_user(
            "alice",
            Method::PATCH,
            "/users/alice",
            Some(json!({"displayName": "Alice B", "locale": "fr-FR"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.firestore.calls.get(), writes(1));
    assert_eq!(r.body["displayName"], "Alice B");
    assert_eq!(r.body["uid"], "alice");
    let events = t.gateway.events(&socket);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "user:updated");
    assert_eq!(events[0]["data"]["uid"], "alice");
    assert_eq!(events[0]["data"]["displayName"], "Alice B");
    assert_eq!(events[0]["data"]["locale"], "fr-FR");
    let r = t
        .as_user(
            "alice",
            Method::PATCH,
            "/users/alice",
            Some(json!({"uid": "bob"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn events_can_be_fetched_after_a_seq() {
    let t = TestApp::spawn().await;
    let b = business(&t, "alice", "Bakery").await;
    let bid = b["id"].as_str().unwrap();
    for i in 0..3 {
        product(&t, "alice", bid, json!({"name": format!("P{i}")})).await;
    }
    let r = t
        .as_user("alice", Method::GET, "/events?since=1", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["seq"], 4);
    assert_eq!(r.body["complete"], true);
    assert_eq!(r.body["hasMore"], false);
    let seqs: Vec<_> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(2), json!(3), json!(4)]);
    assert_eq!(r.body["events"][0]["event"], "product:created");

    assert_eq!(r.body["head"], 4);
    let r = t
        .as_user("alice", Method::GET, "/events?since=1&limit=2", None)
        .await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["hasMore"], true);
    assert_eq!(
        r.body["seq"], 3,
        "the next page starts after the last event"
    );

    let r = t
        .as_user("alice", Method::GET, "/events?since=9", None)
        .await;
    assert_eq!(
        r.body["complete"], false,
        "a seq from the future means resync"
    );
    let r = t.as_user("bob", Method::GET, "/events", None).await;
    assert_eq!(
        r.body,
        json!({"events": [], "seq": 0, "head": 0, "complete": true, "hasMore": false})
    );
}

#[tokio::test]
async fn services_act_on_behalf_of_a_user_and_broadcast_to_them() {
    let t = TestApp::spawn().await;
    let alice = t.connect("alice").await;
    let bob = t.connect("bob").await;
    let b = business(&t, "alice", "Bakery").await;
    let bid = b["id"].as_str().unwrap();
    let p = product(&t, "alice", bid, json!({"name": "Bread"})).await;
    let pid = p["id"].as_str().unwrap();
    let service = [
        ("x-service-key", SERVICE_KEY),
        ("x-on-behalf-of", "alice"),
        ("content-type", "application/json"),
    ];
    let r = t
        .request(
            Method::PATCH,
            &format!("/products/update/{bid}/{pid}"),
            &service,
            Some(r#"{"status":"enriched","caption":"Fresh every morning"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["caption"], "Fresh every morning");

    let r = t
        .request(
            Method::POST,
            "/broadcast",
            &service,
            Some(r#"{"uid":"alice","event":"ai:progress","data":{"productId":"p","percent":50}}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let events = t.gateway.events(&alice);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "ai:progress");
    assert_eq!(last["data"]["percent"], 50);
    assert_eq!(last["seq"], 4);
    assert!(t.gateway.frames(&bob).is_empty());

    let r = t
        .request(
            Method::POST,
            "/broadcast",
            &service,
            Some(r#"{"uid":"alice","event":"pong"}"#),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "control frame names are reserved"
    );
}

#[tokio::test]
async fn a_gone_connection_is_deleted_and_does_not_fail_the_write_or_the_others() {
    let t = TestApp::spawn().await;
    let live = t.connect("alice").await;
    let gone = t.connect("alice").await;
    t.gateway.set_gone(&gone);
    let b = business(&t, "alice", "Bakery").await;
    assert_eq!(t.gateway.events(&live).len(), 1);
    let remaining = t
        .app
        .connections
        .of_user(&adsync::ids::Uid::parse("alice").unwrap())
        .await
        .unwrap();
    let ids: Vec<_> = remaining.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(
        ids,
        vec![live.clone()],
        "exactly the gone connection is deleted"
    );
    let _ = b;
}

#[tokio::test]
async fn a_failing_dependency_is_a_bare_500_never_a_hang_or_a_leak() {
    // Firestore "down": nothing listens on port 1, so every call fails fast.
    let t = TestApp::spawn_with(&[("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")]).await;
    let started = std::time::Instant::now();
    let r = t.as_user("alice", Method::GET, "/businesses", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body,
        json!({"error": {"code": "internal", "message": "internal error"}})
    );
    let r = t
        .as_user(
            "alice",
            Method::POST,
            "/businesses",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
