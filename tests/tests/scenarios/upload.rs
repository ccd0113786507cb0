//! `POST /products/{businessId}/{productId}/image`: images checked by their bytes, stored, served
//! back and announced; everything else refused before anything is stored.

use http::{Method, StatusCode};
use integration_tests::on_both_transports;
use integration_tests::stand_ins::{JPEG, WEBP, png};
use integration_tests::transport::{Kind, SERVICE_KEY, Setup};
use serde_json::json;

on_both_transports!(
    uploads_are_checked_by_their_bytes_stored_and_announced,
    bad_uploads_are_refused_before_anything_is_stored,
    an_upload_for_a_missing_product_is_404_and_leaves_nothing,
    a_service_may_store_the_generated_image,
);

/// One byte over the upload limit.
const TOO_BIG: usize = adsync::images::MAX_UPLOAD_BYTES + 1;

async fn uploads_are_checked_by_their_bytes_stored_and_announced(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let (socket, bid, pid) = t.watched_product("alice", json!({"name": "Mug"})).await;
    let path = format!("/products/{bid}/{pid}/image");

    for (content_type, bytes, extension) in [
        ("image/png", png(), "png"),
        ("image/jpeg", JPEG.to_vec(), "jpg"),
        ("image/webp", WEBP.to_vec(), "webp"),
    ] {
        let r = t.upload("alice", &path, content_type, bytes.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{content_type}: {}", r.body);
        assert_eq!(r.body["name"], "Mug");
        let url = r.body["imageUrl"].as_str().unwrap();
        let image = t.image_at(url).await;
        assert!(
            image
                .name
                .starts_with(&format!("users/alice/products/{pid}/"))
                && image.name.ends_with(&format!(".{extension}")),
            "{}",
            image.name
        );
        assert_eq!(image.content_type, content_type);
        assert_eq!(image.bytes, bytes);
        let event = t.next(&socket).await;
        assert_eq!(event["event"], "product:updated");
        assert_eq!(
            event["data"],
            json!({"id": pid, "businessId": bid, "imageUrl": url, "updatedAt": r.body["updatedAt"], "version": r.body["version"]})
        );
    }
    t.ping(&socket).await;
    assert_eq!(t.images().await.len(), 3);
}

async fn bad_uploads_are_refused_before_anything_is_stored(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let (socket, bid, pid) = t.watched_product("alice", json!({"name": "Mug"})).await;
    let path = format!("/products/{bid}/{pid}/image");

    let mut too_big = png();
    too_big.resize(TOO_BIG, 0);
    for (content_type, bytes, status) in [
        ("image/png", b"a text file named ad.png\n".to_vec(), 415),
        ("image/jpeg", png(), 415),
        ("application/octet-stream", png(), 415),
        ("text/plain", png(), 415),
        ("image/png", Vec::new(), 400),
        ("image/png", too_big, 413),
    ] {
        let r = t.upload("alice", &path, content_type, bytes).await;
        assert_eq!(r.status.as_u16(), status, "{content_type}: {}", r.body);
    }
    // 413 comes first, even for a caller without credentials.
    let mut huge = b"not even an image".to_vec();
    huge.resize(TOO_BIG, b' ');
    let r = t.request(Method::POST, &path, &[], huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "payload_too_large");

    assert!(t.images().await.is_empty());
    t.ping(&socket).await;
}

async fn an_upload_for_a_missing_product_is_404_and_leaves_nothing(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let (socket, bid, pid) = t.watched_product("alice", json!({"name": "Mug"})).await;
    let missing = format!("/products/{bid}/missing/image");
    let r = t.upload("alice", &missing, "image/png", png()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let path = format!("/products/{bid}/{pid}/image");
    let r = t.upload("bob", &path, "image/png", png()).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "another user's product does not exist for bob"
    );
    // A service with a wrong key.
    let headers = [
        ("x-service-key", "wrong"),
        ("x-on-behalf-of", "alice"),
        ("content-type", "image/png"),
    ];
    let r = t.request(Method::POST, &path, &headers, png()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(t.images().await.is_empty());
    t.ping(&socket).await;
}

async fn a_service_may_store_the_generated_image(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let (bid, pid) = t
        .business_with_product("alice", json!({"name": "Mug"}))
        .await;
    let headers = [
        ("x-service-key", SERVICE_KEY),
        ("x-on-behalf-of", "alice"),
        ("content-type", "image/png"),
    ];
    let path = format!("/products/{bid}/{pid}/image?field=generatedImageUrl");
    let r = t.request(Method::POST, &path, &headers, png()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let image = t
        .image_at(r.body["generatedImageUrl"].as_str().unwrap())
        .await;
    assert_eq!(image.bytes, png());
    assert!(r.body.get("imageUrl").is_none());
    let path = format!("/products/{bid}/{pid}/image?field=caption");
    let r = t.request(Method::POST, &path, &headers, png()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}
