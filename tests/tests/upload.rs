//! `POST /products/{businessId}/{productId}/image` through the Lambda adapter, as API Gateway
//! delivers binary bodies (base64, `isBase64Encoded: true`), with Cloud Storage and Google's
//! token endpoint played by a loopback stand-in and Firestore calls counted.

use adsync::http::Route;
use base64::Engine as _;
use http::{Method, StatusCode};
use integration_tests::stand_ins::{ACCESS_TOKEN, BUCKET, Google, png};
use integration_tests::{FirestoreCalls, SERVICE_KEY, TestApp, http_api_event};
use serde_json::{Value, json};

const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 0xFF, 0xD9,
];
const WEBP: &[u8] =
    b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";

async fn spawn(google: &Google) -> TestApp {
    let settings = google.settings();
    TestApp::spawn_with(&settings).await
}

/// A business and a product of `uid`: their ids.
async fn product(t: &TestApp, uid: &str) -> (String, String) {
    t.create_product(uid, json!({"name": "Mug"})).await
}

/// Sends `bytes` as API Gateway does: base64 in the event, `isBase64Encoded: true`.
async fn upload(
    t: &TestApp,
    headers: &[(&str, &str)],
    path_and_query: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let (route, params) = Route::resolve(&Method::POST, path).expect("a route");
    assert_eq!(route, Route::UploadProductImage);
    let mut event = http_api_event(route, &Method::POST, path, query, &params, headers, None);
    if !bytes.is_empty() {
        event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        event["isBase64Encoded"] = json!(true);
    }
    let request = lambda_http::request::from_str(&event.to_string()).expect("API Gateway event");
    let response = adsync::lambda::serve_http(&t.app, route, request).await;
    let body = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status(), body)
}

async fn upload_as(
    t: &TestApp,
    uid: &str,
    path: &str,
    content_type: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let auth = format!("Bearer {}", t.token(uid));
    upload(
        t,
        &[("authorization", &auth), ("content-type", content_type)],
        path,
        bytes,
    )
    .await
}

#[tokio::test]
async fn an_upload_is_stored_in_the_bucket_with_one_firestore_write() {
    let google = Google::start().await;
    let t = spawn(&google).await;
    let socket = t.connect("alice").await;
    let (bid, pid) = product(&t, "alice").await;
    let path = format!("/products/{bid}/{pid}/image");

    for (content_type, bytes, extension) in [
        ("image/png", png(), "png"),
        ("image/jpeg", JPEG.to_vec(), "jpg"),
        ("image/webp", WEBP.to_vec(), "webp"),
    ] {
        t.firestore.calls.reset();
        let (status, body) = upload_as(&t, "alice", &path, content_type, &bytes).await;
        assert_eq!(status, StatusCode::OK, "{content_type}: {body}");
        assert_eq!(
            t.firestore.calls.get(),
            FirestoreCalls {
                writes: 1,
                ..FirestoreCalls::default()
            },
            "one write, no read"
        );
        // The request Cloud Storage got: the bucket, an object name built from the ids, the
        // content type, the service account's token, the very bytes.
        let sent = google.uploads().pop().expect("an upload");
        assert_eq!(sent.bucket, BUCKET);
        assert_eq!(sent.upload_type, "media");
        assert!(
            sent.name
                .starts_with(&format!("users/alice/products/{pid}/"))
                && sent.name.ends_with(&format!(".{extension}")),
            "{}",
            sent.name
        );
        assert_eq!(sent.content_type, content_type);
        assert_eq!(sent.authorization, format!("Bearer {ACCESS_TOKEN}"));
        assert_eq!(sent.body, bytes);
        // The URL is Firebase's download form of that object.
        let expected = format!(
            "https://firebasestorage.googleapis.com/v0/b/{BUCKET}/o/{}?alt=media",
            sent.name.replace('/', "%2F")
        );
        assert_eq!(body["imageUrl"], expected.as_str());
        assert_eq!(body["name"], "Mug");
        let event = t.gateway.events(&socket).pop().expect("an event");
        assert_eq!(event["event"], "product:updated");
        assert_eq!(
            event["data"],
            json!({"id": pid, "businessId": bid, "imageUrl": expected, "updatedAt": body["updatedAt"], "version": body["version"]})
        );
    }
    assert_eq!(google.token_exchanges(), 1, "the access token is cached");
}

#[tokio::test]
async fn bad_uploads_are_refused_before_anything_is_stored() {
    let google = Google::start().await;
    let t = spawn(&google).await;
    let socket = t.connect("alice").await;
    let (bid, pid) = product(&t, "alice").await;
    let path = format!("/products/{bid}/{pid}/image");
    let posts = t.gateway.post_count();

    let mut too_big = png();
    too_big.resize(5 * 1024 * 1024 + 1, 0);
    t.firestore.calls.reset();
    for (content_type, bytes, status) in [
        ("image/png", b"a text file named ad.png".to_vec(), 415),
        ("image/jpeg", png(), 415),
        ("application/octet-stream", png(), 415),
        ("image/png", Vec::new(), 400),
        ("image/png", too_big, 413),
    ] {
        let (got, body) = upload_as(&t, "alice", &path, content_type, &bytes).await;
        assert_eq!(got.as_u16(), status, "{content_type}: {body}");
    }
    // 413 comes first, even for a caller without credentials.
    let mut huge = b"not even an image".to_vec();
    huge.resize(5 * 1024 * 1024 + 1, b' ');
    let (status, body) = upload(&t, &[], &path, &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    assert_eq!(t.firestore.calls.get(), FirestoreCalls::default());
    assert!(google.uploads().is_empty());
    assert_eq!(t.gateway.post_count(), posts);
    assert!(
        t.gateway.events(&socket).len() == 2,
        "only the set-up's events"
    );
}

#[tokio::test]
async fn an_upload_for_a_missing_product_is_404_and_the_object_is_deleted_again() {
    let google = Google::start().await;
    let t = spawn(&google).await;
    let socket = t.connect("alice").await;
    let (bid, _) = product(&t, "alice").await;
    t.firestore.calls.reset();
    let (status, body) = upload_as(
        &t,
        "alice",
        &format!("/products/{bid}/missing/image"),
        "image/png",
        &png(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        t.firestore.calls.get(),
        FirestoreCalls {
            writes: 1,
            ..FirestoreCalls::default()
        }
    );
    let uploads = google.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        google.deletes(),
        [(BUCKET.to_owned(), uploads[0].name.clone())]
    );
    assert_eq!(t.gateway.events(&socket).len(), 2, "no event for a 404");
}

#[tokio::test]
async fn a_service_may_store_the_generated_image() {
    let google = Google::start().await;
    let t = spawn(&google).await;
    let (bid, pid) = product(&t, "alice").await;
    let headers = [
        ("x-service-key", SERVICE_KEY),
        ("x-on-behalf-of", "alice"),
        ("content-type", "image/png"),
    ];
    let path = format!("/products/{bid}/{pid}/image?field=generatedImageUrl");
    let (status, body) = upload(&t, &headers, &path, &png()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["generatedImageUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://firebasestorage.googleapis.com/")
    );
    assert!(body.get("imageUrl").is_none());
    let path = format!("/products/{bid}/{pid}/image?field=caption");
    let (status, _) = upload(&t, &headers, &path, &png()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
