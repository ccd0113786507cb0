//! `POST /ai/generate-ad-image` through the Lambda adapter, against the Firestore emulator
//! (calls counted), a DynamoDB-protocol server, the Management API recorder, and loopback
//! stand-ins of an OpenAI-compatible API and of Cloud Storage.

use adsync::ids::{BusinessId, ProductId, Uid};
use adsync::store::DocPath;
use http::{Method, StatusCode};
use integration_tests::stand_ins::{API_KEY, Ai, BUCKET, CAPTION, Google, ImageAnswer, png};
use integration_tests::{FirestoreCalls, TestApp};
use serde_json::{Value, json};

async fn spawn(ai: &Ai, google: &Google, timeout_secs: u64) -> TestApp {
    let mut settings = ai.settings(timeout_secs);
    settings.extend(google.settings());
    TestApp::spawn_with(&settings).await
}

/// A business and a product of `uid`: their ids.
async fn product(t: &TestApp, uid: &str) -> (String, String) {
    t.create_product(
        uid,
        json!({"name": "Sunrise Mug", "price": 12.5, "currency": "EUR"}),
    )
    .await
}

async fn generate(t: &TestApp, uid: &str, bid: &str, pid: &str) -> integration_tests::Response {
    t.as_user(
        uid,
        Method::POST,
        "/ai/generate-ad-image",
        Some(json!({"businessId": bid, "productId": pid, "prompt": "autumn light"})),
    )
    .await
}

/// The `product:updated` events pushed to `socket`, after the set-up's two.
fn updates(t: &TestApp, socket: &str) -> Vec<Value> {
    t.gateway
        .events(socket)
        .into_iter()
        .skip(2)
        .map(|e| {
            assert_eq!(e["event"], "product:updated", "{e}");
            e["data"].clone()
        })
        .collect()
}

fn calls(writes: usize, reads: usize) -> FirestoreCalls {
    FirestoreCalls {
        writes,
        reads,
        ..FirestoreCalls::default()
    }
}

fn product_path(uid: &str, bid: &str, pid: &str) -> DocPath {
    DocPath::product(
        &Uid::parse(uid).unwrap(),
        &BusinessId::parse(bid).unwrap(),
        &ProductId::parse(pid).unwrap(),
    )
}

/// Sets a product `processing` straight in the store, with its deadline `secs` from now.
async fn set_processing(t: &TestApp, path: &DocPath, secs: i64) {
    let until = (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let fields = json!({"status": "processing", "processingUntil": until});
    t.app
        .store()
        .unwrap()
        .update(
            path,
            fields.as_object().cloned().unwrap(),
            &["status".to_owned(), "processingUntil".to_owned()],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn generation_costs_two_writes_and_one_read_and_pushes_two_events() {
    let (ai, google) = (
        Ai::start(ImageAnswer::Base64(png())).await,
        Google::start().await,
    );
    let t = spawn(&ai, &google, 10).await;
    let socket = t.connect("alice").await;
    let (bid, pid) = product(&t, "alice").await;

    t.firestore.calls.reset();
    let r = generate(&t, "alice", &bid, &pid).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        t.firestore.calls.get(),
        calls(2, 1),
        "the product read, the processing commit, the final update"
    );
    assert_eq!(r.body["status"], "enriched");
    assert_eq!(r.body["caption"], CAPTION);
    assert_eq!(r.body["price"], 12.5);

    let upload = google.uploads().pop().expect("the image was stored");
    assert_eq!(upload.bucket, BUCKET);
    assert!(
        upload
            .name
            .starts_with(&format!("users/alice/products/{pid}/"))
            && upload.name.ends_with(".png")
    );
    assert_eq!(upload.content_type, "image/png");
    assert_eq!(upload.body, png());
    let url = format!(
        "https://firebasestorage.googleapis.com/v0/b/{BUCKET}/o/{}?alt=media",
        upload.name.replace('/', "%2F")
    );
    assert_eq!(r.body["generatedImageUrl"], url.as_str());

    let events = updates(&t, &socket);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["status"], "processing");
    assert_eq!(events[0]["error"], Value::Null);
    assert!(events[0]["processingUntil"].is_string());
    assert!(events[1]["version"].as_str() > events[0]["version"].as_str());
    assert_eq!(events[1]["processingUntil"], Value::Null);
    assert_eq!(events[1]["status"], "enriched");
    assert_eq!(events[1]["generatedImageUrl"], url.as_str());
    assert_eq!(events[1]["caption"], CAPTION);
    assert_eq!(events[1]["updatedAt"], r.body["updatedAt"]);

    let image = &ai.requests("/v1/images/generations")[0];
    assert_eq!(image.authorization, format!("Bearer {API_KEY}"));
    assert_eq!(image.body["model"], "test-image-model");
    let prompt = image.body["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("Sunrise Mug") && prompt.contains("autumn light"),
        "{prompt}"
    );
    let chat = &ai.requests("/v1/chat/completions")[0];
    assert_eq!(chat.body["model"], "test-chat-model");
    assert!(
        chat.body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Sunrise Mug")
    );

    assert!(
        r.body.get("processingUntil").is_none(),
        "the deadline goes with `processing`"
    );
}

#[tokio::test]
async fn a_provider_error_is_502_and_the_product_failed() {
    let ai = Ai::start(ImageAnswer::Error(
        400,
        json!({"error": {"message": "Your request was rejected by the safety system.", "type": "invalid_request_error"}}),
    ))
    .await;
    let google = Google::start().await;
    let t = spawn(&ai, &google, 10).await;
    let socket = t.connect("alice").await;
    let (bid, pid) = product(&t, "alice").await;

    t.firestore.calls.reset();
    let r = generate(&t, "alice", &bid, &pid).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(t.firestore.calls.get(), calls(2, 1));
    let message = "AI provider image generation failed (HTTP 400): Your request was rejected by the safety system.";
    assert_eq!(r.body["error"]["message"], message);
    let events = updates(&t, &socket);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["status"], "failed");
    assert_eq!(events[1]["error"], message);
    assert!(google.uploads().is_empty());
}

#[tokio::test]
async fn a_provider_timeout_is_504_and_the_product_failed() {
    let ai = Ai::start(ImageAnswer::Sleep(std::time::Duration::from_secs(4))).await;
    let google = Google::start().await;
    let t = spawn(&ai, &google, 1).await;
    let socket = t.connect("alice").await;
    let (bid, pid) = product(&t, "alice").await;
    let r = generate(&t, "alice", &bid, &pid).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    let events = updates(&t, &socket);
    assert_eq!(events[1]["status"], "failed");
    assert_eq!(
        events[1]["error"],
        "the AI provider did not answer within 1 s"
    );
}

#[tokio::test]
async fn a_second_generation_is_409_from_the_read_alone() {
    let (ai, google) = (Ai::start(ImageAnswer::Hold).await, Google::start().await);
    let t = spawn(&ai, &google, 10).await;
    let socket = t.connect("alice").await;
    let (bid, pid) = product(&t, "alice").await;

    let second = async {
        ai.wait_for_image_request().await;
        t.firestore.calls.reset();
        let r = generate(&t, "alice", &bid, &pid).await;
        // The read the prompt needs anyway shows `processing`: no write.
        assert_eq!(t.firestore.calls.get(), calls(0, 1));
        ai.release();
        r
    };
    let (first, second) = tokio::join!(generate(&t, "alice", &bid, &pid), second);
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    let statuses: Vec<Value> = updates(&t, &socket)
        .iter()
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        ["processing", "enriched"],
        "the 409 emitted nothing"
    );
    assert_eq!(ai.requests("/v1/images/generations").len(), 1);
}

#[tokio::test]
async fn two_generations_started_together_run_once() {
    let (ai, google) = (Ai::start(ImageAnswer::Hold).await, Google::start().await);
    let t = spawn(&ai, &google, 10).await;
    let (bid, pid) = product(&t, "alice").await;
    // Both read the product before either writes: the version precondition decides.
    let both = futures_util::future::join_all((0..4).map(|_| generate(&t, "alice", &bid, &pid)));
    let release = async {
        ai.wait_for_image_request().await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        ai.release();
    };
    let (answers, ()) = tokio::join!(both, release);
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409, 409, 409], "{answers:?}");
    assert_eq!(ai.requests("/v1/images/generations").len(), 1);
}

#[tokio::test]
async fn a_product_processing_by_any_path_is_409_until_its_deadline_passes() {
    let (ai, google) = (
        Ai::start(ImageAnswer::Base64(png())).await,
        Google::start().await,
    );
    let t = spawn(&ai, &google, 10).await;
    let (bid, pid) = product(&t, "alice").await;
    // n8n's path: a PATCH sets `processing` (and the server its deadline).
    let r = t
        .as_user(
            "alice",
            Method::PATCH,
            &format!("/products/update/{bid}/{pid}"),
            Some(json!({"status": "processing"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["processingUntil"].is_string());
    let r = generate(&t, "alice", &bid, &pid).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(ai.requests("/v1/images/generations").is_empty());

    // Its job died and the deadline passed: the next generation takes over.
    set_processing(&t, &product_path("alice", &bid, &pid), -5).await;
    let r = generate(&t, "alice", &bid, &pid).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "enriched");
}

#[tokio::test]
async fn the_sweeper_fails_products_stuck_past_their_deadline_with_an_event() {
    let (ai, google) = (
        Ai::start(ImageAnswer::Base64(png())).await,
        Google::start().await,
    );
    let t = spawn(&ai, &google, 10).await;
    let socket = t.connect("alice").await;
    let (bid, stuck) = product(&t, "alice").await;
    let (_, running) = t
        .create_product_in(&bid, "alice", json!({"name": "Still running"}))
        .await;
    set_processing(&t, &product_path("alice", &bid, &stuck), -1).await;
    set_processing(&t, &product_path("alice", &bid, &running), 60).await;
    let posts = t.gateway.post_count();

    t.firestore.calls.reset();
    let sweep = adsync::generate::sweep_stuck(&t.app).await.unwrap();
    assert_eq!((sweep.processing, sweep.failed), (2, 1));
    assert_eq!(
        t.firestore.calls.get(),
        FirestoreCalls {
            queries: 1,
            writes: 1,
            ..FirestoreCalls::default()
        }
    );
    let doc = t
        .app
        .store()
        .unwrap()
        .get(&product_path("alice", &bid, &stuck))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.fields["status"], "failed");
    assert!(doc.fields.get("processingUntil").is_none());
    assert_eq!(t.gateway.post_count(), posts + 1);
    let event = t.gateway.events(&socket).pop().unwrap();
    assert_eq!(event["event"], "product:updated");
    assert_eq!(event["data"]["id"], stuck.as_str());
    assert_eq!(event["data"]["status"], "failed");
    assert_eq!(event["data"]["version"], doc.version.as_str());
    // Nothing left to do.
    let again = adsync::generate::sweep_stuck(&t.app).await.unwrap();
    assert_eq!((again.processing, again.failed), (1, 0));
}

#[tokio::test]
async fn a_missing_product_is_404_with_one_read_and_no_event() {
    let (ai, google) = (
        Ai::start(ImageAnswer::Base64(png())).await,
        Google::start().await,
    );
    let t = spawn(&ai, &google, 10).await;
    let socket = t.connect("alice").await;
    let (bid, _) = product(&t, "alice").await;
    let posts = t.gateway.post_count();
    t.firestore.calls.reset();
    let r = generate(&t, "alice", &bid, "missing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(t.firestore.calls.get(), calls(0, 1));
    assert_eq!(t.gateway.post_count(), posts);
    assert!(updates(&t, &socket).is_empty());
    assert!(ai.requests("/v1/images/generations").is_empty());
}

#[tokio::test]
async fn a_product_deleted_during_generation_is_404_and_its_image_removed() {
    let (ai, google) = (Ai::start(ImageAnswer::Hold).await, Google::start().await);
    let t = spawn(&ai, &google, 10).await;
    let socket = t.connect("alice").await;
    let (bid, pid) = product(&t, "alice").await;
    let delete = async {
        ai.wait_for_image_request().await;
        let r = t
            .as_user(
                "alice",
                Method::DELETE,
                &format!("/products/{bid}/{pid}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        ai.release();
    };
    let (r, ()) = tokio::join!(generate(&t, "alice", &bid, &pid), delete);
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let uploads = google.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        google.deletes(),
        [(BUCKET.to_owned(), uploads[0].name.clone())]
    );
    let names: Vec<Value> = t
        .gateway
        .events(&socket)
        .iter()
        .map(|e| e["event"].clone())
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
    assert!(
        t.app
            .store()
            .unwrap()
            .get(&product_path("alice", &bid, &pid))
            .await
            .unwrap()
            .is_none(),
        "the late result did not bring the product back"
    );
}
