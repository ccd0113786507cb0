//! What only the Lambda transport can check: the Firestore calls each route costs (counted by
//! the proxy in front of the emulator), the requests Cloud Storage and Google's token endpoint
//! get (the stand-in records them), and a dependency that is down. The behaviour itself is in
//! `scenarios/`, on both transports.

use std::future::Future;

use http::{Method, StatusCode};
use integration_tests::stand_ins::{ACCESS_TOKEN, Ai, BUCKET, ImageAnswer, JPEG, WEBP, png};
use integration_tests::transport::{Lambda, Setup, Transport, id_of};
use integration_tests::{FirestoreCalls, TestApp};
use serde_json::json;

/// The Firestore calls `work` makes, and its result.
async fn counted<T>(lambda: &Lambda, work: impl Future<Output = T>) -> (FirestoreCalls, T) {
    lambda.harness.firestore.calls.reset();
    let out = work.await;
    (lambda.harness.firestore.calls.get(), out)
}

fn calls(reads: usize, lists: usize, queries: usize, writes: usize) -> FirestoreCalls {
    FirestoreCalls {
        reads,
        lists,
        queries,
        writes,
    }
}

#[tokio::test]
async fn me_costs_nothing_the_login_one_read_and_two_queries_and_every_mutation_one_write() {
    let lambda = Lambda::start(&Setup::default()).await;
    let t: &dyn Transport = &lambda;
    let login = || t.as_user("alice", Method::POST, "/auth/login", None);

    // Who is calling: the token alone.
    let (me, r) = counted(&lambda, t.as_user("alice", Method::GET, "/me", None)).await;
    assert_eq!((r.status, me), (StatusCode::OK, calls(0, 0, 0, 0)));

    // First login: the user read, the user create, a businesses query and a products query.
    let (first, r) = counted(&lambda, login()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(first, calls(1, 0, 2, 1));
    let (business, b) = counted(&lambda, t.business("alice", "Bakery")).await;
    assert_eq!(business, calls(0, 0, 0, 1));
    let bid = id_of(&b);
    // A product create reads its business (for the 404), then writes once.
    let (product, p) = counted(&lambda, t.product("alice", &bid, json!({"name": "Bread"}))).await;
    assert_eq!(product, calls(1, 0, 0, 1));
    let pid = id_of(&p);
    let update = format!("/products/update/{bid}/{pid}");
    let change = Some(json!({"price": 4}));
    let (patch, r) = counted(&lambda, t.as_user("alice", Method::PATCH, &update, change)).await;
    assert_eq!((r.status, patch), (StatusCode::OK, calls(0, 0, 0, 1)));
    let change = Some(json!({"displayName": "Alice B"}));
    let (profile, r) = counted(
        &lambda,
        t.as_user("alice", Method::PATCH, "/users/alice", change),
    )
    .await;
    assert_eq!((r.status, profile), (StatusCode::OK, calls(0, 0, 0, 1)));
    // Later logins: the user read, one query of the businesses, one of every product.
    let (later, r) = counted(&lambda, login()).await;
    assert_eq!(r.body["products"].as_array().map(Vec::len), Some(1));
    assert_eq!(later, calls(1, 0, 2, 0));
    let delete = format!("/products/{bid}/{pid}");
    let (deleted, r) = counted(&lambda, t.as_user("alice", Method::DELETE, &delete, None)).await;
    assert_eq!((r.status, deleted), (StatusCode::OK, calls(0, 0, 0, 1)));
}

#[tokio::test]
async fn a_generation_costs_one_read_and_two_writes_and_a_refusal_one_read() {
    let ai = Ai::start(ImageAnswer::Hold).await;
    let lambda = Lambda::start(&Setup::ai(&ai, 10)).await;
    let t: &dyn Transport = &lambda;
    let (bid, pid) = t
        .business_with_product("alice", json!({"name": "Mug"}))
        .await;
    let ids = json!({"businessId": bid, "productId": pid});

    // While one runs, the read the prompt needs anyway shows `processing`: no write.
    let second = ai.while_held(counted(&lambda, t.generate("alice", ids.clone())));
    let (first, (conflict, r)) = tokio::join!(t.generate("alice", ids.clone()), second);
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        (r.status, conflict),
        (StatusCode::CONFLICT, calls(1, 0, 0, 0))
    );

    // The product read, the `processing` commit, the final update; a failure the same.
    ai.set_answer(ImageAnswer::Base64(png()));
    let (generation, r) = counted(&lambda, t.generate("alice", ids.clone())).await;
    assert_eq!((r.status, generation), (StatusCode::OK, calls(1, 0, 0, 2)));
    ai.set_answer(ImageAnswer::Error(400, json!({"error": {"message": "no"}})));
    let (failure, r) = counted(&lambda, t.generate("alice", ids.clone())).await;
    assert_eq!(
        (r.status, failure),
        (StatusCode::BAD_GATEWAY, calls(1, 0, 0, 2))
    );
    let missing = json!({"businessId": bid, "productId": "missing"});
    let (not_found, r) = counted(&lambda, t.generate("alice", missing)).await;
    assert_eq!(
        (r.status, not_found),
        (StatusCode::NOT_FOUND, calls(1, 0, 0, 0))
    );

    // The sweeper: one query for everything `processing`, one write for each stuck.
    t.set_processing("alice", &bid, &pid, -1).await;
    let (sweep, swept) = counted(&lambda, adsync::generate::sweep_stuck(t.app())).await;
    assert_eq!(swept.unwrap().failed, 1);
    assert_eq!(sweep, calls(0, 0, 1, 1));
}

#[tokio::test]
async fn images_reach_cloud_storage_as_its_api_expects_with_one_firestore_write() {
    let ai = Ai::start(ImageAnswer::Hold).await;
    let lambda = Lambda::start(&Setup::ai(&ai, 10)).await;
    let t: &dyn Transport = &lambda;
    let google = &lambda.google;
    let (bid, pid) = t
        .business_with_product("alice", json!({"name": "Mug"}))
        .await;
    let path = format!("/products/{bid}/{pid}/image");

    let images = [
        ("image/png", png()),
        ("image/jpeg", JPEG.to_vec()),
        ("image/webp", WEBP.to_vec()),
    ];
    for (content_type, bytes) in images {
        let upload = t.upload("alice", &path, content_type, bytes.clone());
        let (upload_calls, r) = counted(&lambda, upload).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(upload_calls, calls(0, 0, 0, 1), "one write, no read");
        // The request Cloud Storage got: the bucket, a media upload, the content type, the
        // service account's token, the very bytes.
        let sent = google.uploads().pop().expect("an upload");
        assert_eq!(
            (sent.bucket.as_str(), sent.upload_type.as_str()),
            (BUCKET, "media")
        );
        assert_eq!(sent.authorization, format!("Bearer {ACCESS_TOKEN}"));
        assert_eq!(
            (sent.content_type.as_str(), sent.body),
            (content_type, bytes)
        );
    }
    assert_eq!(google.token_exchanges(), 1, "the access token is cached");

    // Refused before any call: a type its bytes are not, no bytes, too many.
    let mut too_big = png();
    too_big.resize(adsync::images::MAX_UPLOAD_BYTES + 1, 0);
    let refusals = async {
        let mut statuses = Vec::new();
        for (content_type, bytes) in [
            ("image/jpeg", png()),
            ("image/png", vec![]),
            ("image/png", too_big),
        ] {
            statuses.push(
                t.upload("alice", &path, content_type, bytes)
                    .await
                    .status
                    .as_u16(),
            );
        }
        statuses
    };
    let (refused, statuses) = counted(&lambda, refusals).await;
    assert_eq!(
        (statuses, refused),
        (vec![415, 400, 413], FirestoreCalls::default())
    );
    assert_eq!(google.uploads().len(), 3, "no more objects");

    // The product is missing: its update is the one write, and the object goes again.
    let missing = format!("/products/{bid}/missing/image");
    let (not_found, r) = counted(&lambda, t.upload("alice", &missing, "image/png", png())).await;
    assert_eq!(
        (r.status, not_found),
        (StatusCode::NOT_FOUND, calls(0, 0, 0, 1))
    );
    let orphan = google.uploads().pop().expect("the object was stored first");
    assert_eq!(google.deletes(), [(BUCKET.to_owned(), orphan.name)]);

    // A generation whose product is deleted meanwhile: its object is deleted too.
    let ids = json!({"businessId": bid, "productId": pid});
    let delete = ai.while_held(async {
        let path = format!("/products/{bid}/{pid}");
        let r = t.as_user("alice", Method::DELETE, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    });
    let (r, ()) = tokio::join!(t.generate("alice", ids), delete);
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let made = google
        .uploads()
        .pop()
        .expect("the generated image was stored first");
    assert_eq!(made.bucket, BUCKET);
    assert!(
        made.name
            .starts_with(&format!("users/alice/products/{pid}/")),
        "{}",
        made.name
    );
    assert_eq!(google.deletes().pop(), Some((BUCKET.to_owned(), made.name)));
}

#[tokio::test]
async fn a_failing_dependency_is_a_bare_500_never_a_hang_or_a_leak() {
    // Firestore "down": nothing listens on port 1, so every call fails fast.
    let t = TestApp::spawn_with(&[("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")]).await;
    let auth = format!("Bearer {}", t.token("alice"));
    let started = std::time::Instant::now();
    let r = t
        .request(Method::GET, "/businesses", &[("authorization", &auth)], &[])
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body,
        json!({"error": {"code": "internal", "message": "internal error"}})
    );
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let r = t
        .request(Method::POST, "/businesses", &headers, br#"{"name":"x"}"#)
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn the_storage_emulator_is_reached_without_a_key_and_serves_what_it_stores() {
    use adsync::ids::{ProductId, Uid};
    use adsync::images::{Image, ImageKind, ObjectName};
    let google = integration_tests::stand_ins::Google::storage_emulator().await;
    let host = google.base.trim_start_matches("http://").to_owned();
    let t = TestApp::spawn_with(&[
        ("STORAGE_BUCKET", BUCKET),
        ("FIREBASE_STORAGE_EMULATOR_HOST", host.as_str()),
        ("AI_PROVIDER", "offline"),
    ])
    .await;
    let images = t.app.images.as_deref().expect("an image store");
    let name = ObjectName::new(
        &Uid::parse("alice").unwrap(),
        &ProductId::parse("p1").unwrap(),
        ImageKind::Png,
    );
    let image = Image {
        bytes: png().into(),
        kind: ImageKind::Png,
    };
    let url = images.put(&name, &image).await.expect("stored");
    assert!(
        url.starts_with(&format!("{}/v0/b/{BUCKET}/o/users%2Falice", google.base)),
        "{url}"
    );
    let sent = google.uploads().pop().expect("an upload");
    assert_eq!(sent.authorization, "Bearer owner", "the emulator's admin");
    assert_eq!(google.token_exchanges(), 0, "no key, no token");
}
