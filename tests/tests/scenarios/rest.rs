//! The REST routes: the login bootstrap, CRUD and its events, ownership, errors, the profile,
//! `GET /events`, services and broadcast.

use http::{Method, StatusCode};
use integration_tests::on_both_transports;
use integration_tests::transport::{Caller, Kind, Setup, id_of, names};
use serde_json::json;

on_both_transports!(
    login_creates_the_user_and_returns_everything_in_one_bootstrap,
    me_answers_who_is_calling_from_the_credentials,
    every_mutation_reaches_every_socket_of_its_user_and_no_other,
    another_users_business_does_not_exist_for_you,
    missing_documents_are_404_and_nothing_is_created,
    error_paths_answer_json_with_the_right_status,
    a_user_updates_only_their_own_profile,
    events_can_be_fetched_after_a_seq_in_pages,
    services_act_on_behalf_of_a_user_and_broadcast_to_them,
    a_gone_connection_is_deleted_and_does_not_fail_the_write_or_the_others,
);

async fn login_creates_the_user_and_returns_everything_in_one_bootstrap(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let claims = json!({"email": "alice@example.com", "name": "Alice"});
    let token = t.token_with("alice", 3600, claims);
    let r = t
        .call(Caller::Token(&token), Method::POST, "/auth/login", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user"]["uid"], "alice");
    assert_eq!(r.body["user"]["email"], "alice@example.com");
    assert_eq!(r.body["user"]["displayName"], "Alice");
    assert_eq!(r.body["businesses"], json!([]));
    assert_eq!(r.body["products"], json!([]));
    assert_eq!(r.body["seq"], 0);

    let b1 = t.business("alice", "Bakery").await;
    let b2 = t.business("alice", "Florist").await;
    let p1 = t
        .product("alice", &id_of(&b1), json!({"name": "Bread"}))
        .await;
    let p2 = t
        .product("alice", &id_of(&b2), json!({"name": "Roses"}))
        .await;
    t.business("bob", "Bob's").await;

    let r = t
        .call(Caller::Token(&token), Method::POST, "/auth/login", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user"]["uid"], "alice");
    assert_eq!(r.body["businesses"], json!([b1, b2]));
    assert_eq!(r.body["products"], json!([p1, p2]));
    assert_eq!(
        r.body["seq"], 4,
        "two businesses and two products were created"
    );
}

async fn me_answers_who_is_calling_from_the_credentials(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let token = t.token_with("alice", 3600, json!({"email": "alice@example.com"}));
    let r = t
        .call(Caller::Token(&token), Method::GET, "/me", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"uid": "alice", "email": "alice@example.com"})
    );
    // No email claim, and a service acting for a user: the uid alone.
    let r = t.call(Caller::User("bob"), Method::GET, "/me", None).await;
    assert_eq!(r.body, json!({"uid": "bob", "email": null}), "{}", r.body);
    let r = t
        .call(Caller::Service("carol"), Method::GET, "/me", None)
        .await;
    assert_eq!(r.body, json!({"uid": "carol", "email": null}), "{}", r.body);
    // Nobody creates a profile by asking.
    let r = t
        .call(
            Caller::User("bob"),
            Method::PATCH,
            "/users/bob",
            Some(json!({"displayName": "B"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let expired = t.token_with("alice", -120, json!({}));
    let r = t
        .call(Caller::Token(&expired), Method::GET, "/me", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "unauthorized");
}

async fn every_mutation_reaches_every_socket_of_its_user_and_no_other(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let alice = [t.connect("alice").await, t.connect("alice").await];
    let bob = t.connect("bob").await;

    let b = t.business("alice", "Bakery").await;
    let bid = id_of(&b);
    assert!(
        bid.len() == 20 && bid.bytes().all(|c| c.is_ascii_alphanumeric()),
        "{bid}"
    );
    assert!(b["createdAt"].as_str().unwrap().ends_with('Z'));
    let fields = json!({"name": "Bread", "price": 3.5, "currency": "EUR", "tags": ["fresh"]});
    let p = t.product("alice", &bid, fields).await;
    assert_eq!(p["status"], "draft");
    assert_eq!(p["businessId"], bid.as_str());
    let pid = id_of(&p);

    let path = format!("/products/update/{bid}/{pid}");
    let change = json!({"price": 4, "tags": null});
    let r = t.as_user("alice", Method::PATCH, &path, Some(change)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["price"], 4);
    assert_eq!(r.body["name"], "Bread", "merge keeps the other fields");
    assert!(r.body.get("tags").is_none(), "null clears a field");
    let (updated_at, version) = (r.body["updatedAt"].clone(), r.body["version"].clone());
    assert!(version.as_str().unwrap() > p["version"].as_str().unwrap());

    let path = format!("/products/{bid}/{pid}");
    let r = t.as_user("alice", Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"id": pid, "businessId": bid}));

    for socket in &alice {
        let events = t.next_frames(socket, 4).await;
        assert_eq!(
            names(&events),
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
    t.ping(&bob).await;
    // Seqs are per user: Bob's first event is his 1.
    t.business("bob", "Bob's").await;
    let first = t.next(&bob).await;
    assert_eq!(
        (first["event"].as_str(), first["seq"].as_u64()),
        (Some("business:created"), Some(1))
    );
    assert_eq!(first["data"]["name"], "Bob's");
}

async fn another_users_business_does_not_exist_for_you(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let (alice, bid, pid) = t.watched_product("alice", json!({"name": "Bread"})).await;
    let before = t.listed_product("alice", &bid, &pid).await;
    assert_eq!(before["name"], "Bread");
    let bob = t.connect("bob").await;

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
    // No event anywhere.
    t.ping(&alice).await;
    t.ping(&bob).await;
    // Alice's data is untouched.
    assert_eq!(t.listed_product("alice", &bid, &pid).await, before);
}

async fn missing_documents_are_404_and_nothing_is_created(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let socket = t.connect("alice").await;
    let body = Some(json!({"name": "x"}));
    let r = t
        .as_user(
            "alice",
            Method::POST,
            "/products/nosuchbusiness",
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let bid = id_of(&t.business("alice", "Bakery").await);
    let path = format!("/products/update/{bid}/nope");
    let r = t.as_user("alice", Method::PATCH, &path, body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let path = format!("/products/{bid}/nope");
    let r = t.as_user("alice", Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
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
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(t.next(&socket).await["event"], "business:created");
    t.ping(&socket).await;
}

async fn error_paths_answer_json_with_the_right_status(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let bearer = format!("Bearer {}", t.token("alice"));
    let token = ("authorization", bearer.as_str());
    let json_ct = ("content-type", "application/json");
    let none: &[(&str, &str)] = &[];
    let user: &[(&str, &str)] = &[token];
    let user_json: &[(&str, &str)] = &[token, json_ct];
    let user_text: &[(&str, &str)] = &[token, ("content-type", "text/plain")];
    let not_a_token: &[(&str, &str)] = &[("authorization", "Bearer not.a.token")];
    let basic: &[(&str, &str)] = &[("authorization", "Basic abc")];
    let wrong_key: &[(&str, &str)] = &[
        ("x-service-key", "wrong"),
        ("x-on-behalf-of", "alice"),
        json_ct,
    ];
    let big = format!(r#"{{"name":"x","description":"{}"}}"#, "d".repeat(70_000));
    let broadcast = r#"{"uid":"alice","event":"x:y"}"#;
    let cases = [
        (Method::GET, "/businesses", none, "", 401, "unauthorized"),
        (
            Method::GET,
            "/businesses",
            not_a_token,
            "",
            401,
            "unauthorized",
        ),
        (Method::GET, "/businesses", basic, "", 401, "unauthorized"),
        (
            Method::POST,
            "/businesses",
            user_json,
            "{",
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            user_json,
            "[]",
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            user_json,
            r#"{"name":"x","owner":"y"}"#,
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            user_json,
            r#"{"name":42}"#,
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/businesses",
            user_text,
            r#"{"name":"x"}"#,
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/businesses",
            user_json,
            big.as_str(),
            413,
            "payload_too_large",
        ),
        (
            Method::GET,
            "/products/bad$id",
            user,
            "",
            400,
            "bad_request",
        ),
        (
            Method::PATCH,
            "/users/bob",
            user_json,
            r#"{"displayName":"B"}"#,
            403,
            "forbidden",
        ),
        (
            Method::GET,
            "/events?since=abc",
            user,
            "",
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/broadcast",
            user_json,
            broadcast,
            403,
            "forbidden",
        ),
        (
            Method::POST,
            "/broadcast",
            wrong_key,
            broadcast,
            401,
            "unauthorized",
        ),
        (
            Method::PUT,
            "/businesses",
            user,
            "",
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let r = t.request(method.clone(), path, headers, body.into()).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{method} {path}");
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{method} {path}: {}", r.body);
        assert_eq!(
            r.headers["content-type"], "application/json",
            "{method} {path}"
        );
    }
    let body = br#"{"name":42}"#.to_vec();
    let r = t
        .request(Method::POST, "/businesses", user_json, body)
        .await;
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`name`"), "{message}");
    let r = t.as_user("alice", Method::GET, "/businesses", None).await;
    assert_eq!(r.body, json!([]), "nothing was half-written");
}

async fn a_user_updates_only_their_own_profile(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let socket = t.connect("alice").await;
    let change = Some(json!({"displayName": "A"}));
    let r = t
        .as_user("alice", Method::PATCH, "/users/alice", change)
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no profile before the first login"
    );
    let r = t.as_user("alice", Method::POST, "/auth/login", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let change = Some(json!({"displayName": "Alice B", "locale": "fr-FR"}));
    let r = t
        .as_user("alice", Method::PATCH, "/users/alice", change)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "Alice B");
    assert_eq!(r.body["uid"], "alice");
    let event = t.next(&socket).await;
    assert_eq!(event["event"], "user:updated");
    assert_eq!(event["data"]["uid"], "alice");
    assert_eq!(event["data"]["displayName"], "Alice B");
    assert_eq!(event["data"]["locale"], "fr-FR");
    assert_eq!(event["data"]["version"], r.body["version"]);
    let change = Some(json!({"uid": "bob"}));
    let r = t
        .as_user("alice", Method::PATCH, "/users/alice", change)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    t.ping(&socket).await;
}

async fn events_can_be_fetched_after_a_seq_in_pages(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let bid = id_of(&t.business("alice", "Bakery").await);
    for i in 0..3 {
        t.product("alice", &bid, json!({"name": format!("P{i}")}))
            .await;
    }
    let r = t
        .as_user("alice", Method::GET, "/events?since=1", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            &r.body["seq"],
            &r.body["head"],
            &r.body["complete"],
            &r.body["hasMore"]
        ),
        (&json!(4), &json!(4), &json!(true), &json!(false))
    );
    let events = r.body["events"].as_array().unwrap();
    let seqs: Vec<_> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(names(events), ["product:created"; 3]);
    assert_eq!(events[0]["data"]["name"], "P0");

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

async fn services_act_on_behalf_of_a_user_and_broadcast_to_them(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let (alice, bid, pid) = t.watched_product("alice", json!({"name": "Bread"})).await;
    let bob = t.connect("bob").await;
    let service = Caller::Service("alice");
    let path = format!("/products/update/{bid}/{pid}");
    let change = json!({"status": "enriched", "caption": "Fresh every morning"});
    let r = t.call(service, Method::PATCH, &path, Some(change)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["caption"], "Fresh every morning");
    let event = t.next(&alice).await;
    assert_eq!(event["event"], "product:updated");
    assert_eq!(event["data"]["caption"], "Fresh every morning");

    let progress =
        json!({"uid": "alice", "event": "ai:progress", "data": {"productId": "p", "percent": 50}});
    let r = t
        .call(service, Method::POST, "/broadcast", Some(progress))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"uid": "alice", "event": "ai:progress", "seq": 4})
    );
    let event = t.next(&alice).await;
    assert_eq!(event["event"], "ai:progress");
    assert_eq!(event["data"]["percent"], 50);
    assert_eq!(event["seq"], 4);
    // Acting for alice, a service cannot broadcast to bob.
    let to_bob = json!({"uid": "bob", "event": "ai:progress"});
    let r = t
        .call(service, Method::POST, "/broadcast", Some(to_bob))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    t.ping(&bob).await;

    let reserved = json!({"uid": "alice", "event": "pong"});
    let r = t
        .call(service, Method::POST, "/broadcast", Some(reserved))
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "control frame names are reserved"
    );
    t.ping(&alice).await;
}

async fn a_gone_connection_is_deleted_and_does_not_fail_the_write_or_the_others(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let live = t.connect("alice").await;
    let gone = t.ghost("alice").await;
    assert_eq!(t.connections("alice").await.len(), 2);
    t.business("alice", "Bakery").await;
    assert_eq!(t.next(&live).await["event"], "business:created");
    let left = t.connections("alice").await;
    assert_eq!(left.len(), 1, "exactly the gone connection is deleted");
    assert_ne!(left[0].id, gone);
}
