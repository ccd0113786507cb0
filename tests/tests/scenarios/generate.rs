//! `POST /ai/generate-ad-image`, the AI provider played at the wire level by a loopback server
//! answering as the OpenAI API does (`stand_ins::Ai`, requests recorded).

use std::time::Duration;

use http::{Method, StatusCode};
use integration_tests::on_both_transports;
use integration_tests::stand_ins::{API_KEY, Ai, CAPTION, ImageAnswer, JPEG, png};
use integration_tests::transport::{Kind, Setup, Socket, Transport, names};
use serde_json::{Value, json};

on_both_transports!(
    generation_pushes_processing_then_enriched_to_every_socket_and_stores_the_image,
    an_image_answered_by_url_is_downloaded_and_kept,
    the_offline_provider_makes_an_svg,
    a_provider_error_is_502_and_the_product_failed,
    a_provider_that_does_not_answer_in_time_is_504,
    a_rate_limited_image_request_is_retried_once,
    a_second_generation_while_one_runs_is_409_and_emits_nothing,
    two_generations_started_together_run_once,
    a_product_processing_by_any_path_is_409_until_its_deadline_passes,
    the_sweeper_fails_products_stuck_past_their_deadline_with_an_event,
    bad_requests_and_missing_products_change_nothing,
    a_product_deleted_during_generation_is_404_and_its_image_removed,
);

const IMAGES: &str = "/v1/images/generations";

fn mug() -> Value {
    json!({"name": "Sunrise Mug", "price": 12.5, "currency": "EUR", "colors": ["#FF8800"],
           "description": "Hand-thrown stoneware.", "category": "Kitchen"})
}

fn ids(bid: &str, pid: &str) -> Value {
    json!({"businessId": bid, "productId": pid})
}

/// The statuses of the next `n` frames of `socket`, all `product:updated`.
async fn statuses(t: &dyn Transport, socket: &Socket, n: usize) -> Vec<Value> {
    let frames = t.next_frames(socket, n).await;
    assert_eq!(names(&frames), vec!["product:updated"; n]);
    frames.iter().map(|f| f["data"]["status"].clone()).collect()
}

async fn generation_pushes_processing_then_enriched_to_every_socket_and_stores_the_image(
    kind: Kind,
) {
    let ai = Ai::start(ImageAnswer::Base64(png())).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let tabs = [t.connect("alice").await, t.connect("alice").await];
    let bob = t.connect("bob").await;
    let (bid, pid) = t.business_with_product("alice", mug()).await;
    for tab in &tabs {
        t.next_frames(tab, 2).await;
    }

    let mut body = ids(&bid, &pid);
    body["prompt"] = json!("autumn light");
    let r = t.generate("alice", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let product = r.body;
    assert_eq!(product["status"], "enriched");
    assert_eq!(
        product["caption"], CAPTION,
        "surrounding quotes are trimmed"
    );
    assert_eq!(
        product["name"], "Sunrise Mug",
        "the whole product comes back"
    );
    assert_eq!(product["price"], 12.5);
    assert!(product.get("error").is_none());
    assert!(
        product.get("processingUntil").is_none(),
        "the deadline goes with `processing`"
    );
    let url = product["generatedImageUrl"].as_str().unwrap();
    let image = t.image_at(url).await;
    assert!(
        image
            .name
            .starts_with(&format!("users/alice/products/{pid}/"))
            && image.name.ends_with(".png"),
        "{}",
        image.name
    );
    assert_eq!(
        (image.content_type.as_str(), image.bytes),
        ("image/png", png())
    );

    for tab in &tabs {
        let frames = t.next_frames(tab, 2).await;
        let (processing, done) = (&frames[0], &frames[1]);
        assert_eq!(names(&frames), ["product:updated"; 2]);
        assert_eq!(processing["data"]["status"], "processing");
        assert_eq!(processing["data"]["id"], pid.as_str());
        assert_eq!(processing["data"]["businessId"], bid.as_str());
        assert_eq!(processing["data"]["error"], Value::Null);
        assert!(processing["data"]["processingUntil"].is_string());
        assert_eq!(done["seq"], processing["seq"].as_u64().unwrap() + 1);
        assert!(done["data"]["version"].as_str() > processing["data"]["version"].as_str());
        assert_eq!(done["data"]["status"], "enriched");
        assert_eq!(done["data"]["processingUntil"], Value::Null);
        assert_eq!(done["data"]["generatedImageUrl"], url);
        assert_eq!(done["data"]["caption"], CAPTION);
        assert_eq!(done["data"]["error"], Value::Null);
        assert_eq!(done["data"]["updatedAt"], product["updatedAt"]);
    }
    t.ping(&bob).await;
    assert_eq!(t.listed_product("alice", &bid, &pid).await, product);

    // What the provider was sent: the models, the key, the product and the prompt.
    let image = ai.requests(IMAGES);
    assert_eq!(image.len(), 1);
    assert_eq!(image[0].authorization, format!("Bearer {API_KEY}"));
    assert_eq!(image[0].body["model"], "test-image-model");
    assert_eq!(image[0].body["n"], 1);
    assert_eq!(image[0].body["size"], "1024x1024");
    let prompt = image[0].body["prompt"].as_str().unwrap();
    for part in ["Sunrise Mug", "€12.50", "#FF8800", "autumn light"] {
        assert!(prompt.contains(part), "{part} in {prompt}");
    }
    let chat = ai.requests("/v1/chat/completions");
    assert_eq!(chat.len(), 1);
    assert_eq!(chat[0].authorization, format!("Bearer {API_KEY}"));
    assert_eq!(chat[0].body["model"], "test-chat-model");
    assert_eq!(chat[0].body["messages"][0]["role"], "system");
    let user = chat[0].body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("Product: Sunrise Mug") && user.contains("autumn light"),
        "{user}"
    );
}

async fn an_image_answered_by_url_is_downloaded_and_kept(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Url(JPEG.to_vec())).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (bid, pid) = t
        .business_with_product("alice", json!({"name": "Vase"}))
        .await;
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let image = t
        .image_at(r.body["generatedImageUrl"].as_str().unwrap())
        .await;
    assert!(image.name.ends_with(".jpg"), "{}", image.name);
    assert_eq!(
        (image.content_type.as_str(), image.bytes.as_slice()),
        ("image/jpeg", JPEG)
    );
    let prompt = ai.requests(IMAGES)[0].body["prompt"].clone();
    assert!(prompt.as_str().unwrap().contains("\"Vase\""), "{prompt}");
}

async fn the_offline_provider_makes_an_svg(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let fields = json!({"name": "Tom & Jerry's <Cheese>", "price": 3, "currency": "USD"});
    let (socket, bid, pid) = t.watched_product("alice", fields).await;
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["caption"],
        "Meet Tom & Jerry's <Cheese>. Yours for $3."
    );
    let image = t
        .image_at(r.body["generatedImageUrl"].as_str().unwrap())
        .await;
    assert!(image.name.ends_with(".svg"), "{}", image.name);
    assert_eq!(image.content_type, "image/svg+xml");
    let svg = String::from_utf8(image.bytes).unwrap();
    assert!(
        svg.contains("Tom &amp; Jerry&apos;s &lt;Cheese&gt;"),
        "{svg}"
    );
    assert_eq!(statuses(&*t, &socket, 2).await, ["processing", "enriched"]);
}

async fn a_provider_error_is_502_and_the_product_failed(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Error(
        500,
        json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}),
    ))
    .await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (socket, bid, pid) = t.watched_product("alice", mug()).await;

    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "bad_gateway");
    let message = "AI provider image generation failed (HTTP 500): The server had an error while processing your request.";
    assert_eq!(r.body["error"]["message"], message);
    let frames = t.next_frames(&socket, 2).await;
    assert_eq!(frames[0]["data"]["status"], "processing");
    assert_eq!(frames[1]["data"]["status"], "failed");
    assert_eq!(frames[1]["data"]["error"], message);
    let stored = t.listed_product("alice", &bid, &pid).await;
    assert_eq!(
        (&stored["status"], &stored["error"]),
        (&json!("failed"), &json!(message))
    );
    assert!(stored.get("generatedImageUrl").is_none());
    assert_eq!(ai.requests(IMAGES).len(), 1, "a 500 is not retried");
    assert!(t.images().await.is_empty(), "nothing stored");

    // A later success clears the error.
    ai.set_answer(ImageAnswer::Base64(png()));
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("error").is_none(), "{}", r.body);
    let frames = t.next_frames(&socket, 2).await;
    assert_eq!(frames[0]["data"]["error"], Value::Null);
    assert_eq!(frames[1]["data"]["status"], "enriched");
}

async fn a_provider_that_does_not_answer_in_time_is_504(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Sleep(Duration::from_secs(5))).await;
    let t = kind.start(Setup::ai(&ai, 1)).await;
    let (socket, bid, pid) = t.watched_product("alice", mug()).await;

    let started = std::time::Instant::now();
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let message = "the AI provider did not answer within 1 s";
    assert_eq!(
        r.body["error"],
        json!({"code": "gateway_timeout", "message": message})
    );
    let frames = t.next_frames(&socket, 2).await;
    assert_eq!(frames[0]["data"]["status"], "processing");
    assert_eq!(frames[1]["data"]["status"], "failed");
    assert_eq!(frames[1]["data"]["error"], message);
}

async fn a_rate_limited_image_request_is_retried_once(kind: Kind) {
    let ai = Ai::start(ImageAnswer::ThrottleOnce).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (bid, pid) = t.business_with_product("alice", mug()).await;
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ai.requests(IMAGES).len(), 2);
}

async fn a_second_generation_while_one_runs_is_409_and_emits_nothing(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Hold).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (socket, bid, pid) = t.watched_product("alice", mug()).await;

    let second = ai.while_held(async {
        assert_eq!(statuses(&*t, &socket, 1).await, ["processing"]);
        t.generate("alice", ids(&bid, &pid)).await
    });
    let (first, second) = tokio::join!(t.generate("alice", ids(&bid, &pid)), second);
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    assert_eq!(second.body["error"]["code"], "conflict");
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        ai.requests(IMAGES).len(),
        1,
        "the second never reached the provider"
    );
    assert_eq!(statuses(&*t, &socket, 1).await, ["enriched"]);
    t.ping(&socket).await;

    // The lock is released: the next generation runs.
    ai.release();
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn two_generations_started_together_run_once(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Hold).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (bid, pid) = t.business_with_product("alice", mug()).await;
    // All read the product before any writes: the version precondition decides.
    let all = futures_util::future::join_all((0..4).map(|_| t.generate("alice", ids(&bid, &pid))));
    let release = async {
        ai.wait_for_image_request().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ai.release();
    };
    let (answers, ()) = tokio::join!(all, release);
    let mut codes: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    codes.sort_unstable();
    assert_eq!(codes, [200, 409, 409, 409], "{answers:?}");
    assert_eq!(ai.requests(IMAGES).len(), 1);
}

async fn a_product_processing_by_any_path_is_409_until_its_deadline_passes(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Base64(png())).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (bid, pid) = t.business_with_product("alice", mug()).await;
    // n8n's path: a PATCH sets `processing` (and the server its deadline).
    let path = format!("/products/update/{bid}/{pid}");
    let change = json!({"status": "processing"});
    let r = t.as_user("alice", Method::PATCH, &path, Some(change)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["processingUntil"].is_string());
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(ai.requests(IMAGES).is_empty());

    // Its job died and the deadline passed: the next generation takes over.
    t.set_processing("alice", &bid, &pid, -5).await;
    let r = t.generate("alice", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "enriched");
}

async fn the_sweeper_fails_products_stuck_past_their_deadline_with_an_event(kind: Kind) {
    let t = kind.start(Setup::default()).await;
    let (socket, bid, stuck) = t.watched_product("alice", mug()).await;
    let running = t
        .product("alice", &bid, json!({"name": "Still running"}))
        .await;
    let running = running["id"].as_str().unwrap();
    assert_eq!(t.next(&socket).await["event"], "product:created");
    t.set_processing("alice", &bid, &stuck, -1).await;
    t.set_processing("alice", &bid, running, 60).await;

    let sweep = adsync::generate::sweep_stuck(t.app()).await.unwrap();
    assert_eq!((sweep.processing, sweep.failed), (2, 1));
    let doc = t.product_document("alice", &bid, &stuck).await.unwrap();
    assert_eq!(doc.fields["status"], "failed");
    assert!(doc.fields.get("processingUntil").is_none());
    let event = t.next(&socket).await;
    assert_eq!(event["event"], "product:updated");
    assert_eq!(event["data"]["id"], stuck.as_str());
    assert_eq!(event["data"]["status"], "failed");
    assert_eq!(event["data"]["version"], doc.version.as_str());
    t.ping(&socket).await;
    // Nothing left to do.
    let again = adsync::generate::sweep_stuck(t.app()).await.unwrap();
    assert_eq!((again.processing, again.failed), (1, 0));
}

async fn bad_requests_and_missing_products_change_nothing(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Base64(png())).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (socket, bid, pid) = t.watched_product("alice", mug()).await;

    let long = "p".repeat(1001);
    for (body, status) in [
        (ids(&bid, "missing"), 404),
        (ids("missing", &pid), 404),
        (
            json!({"businessId": bid, "productId": pid, "style": "x"}),
            400,
        ),
        (
            json!({"businessId": bid, "productId": pid, "prompt": long}),
            400,
        ),
        (ids(&bid, "../x"), 400),
        (json!({"productId": pid}), 400),
    ] {
        let r = t.generate("alice", body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.body);
    }
    // Bob cannot generate for Alice's product: for him it does not exist.
    let r = t.generate("bob", ids(&bid, &pid)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    t.ping(&socket).await;
    assert!(ai.requests(IMAGES).is_empty());
    assert_eq!(
        t.listed_product("alice", &bid, &pid).await["status"],
        "draft"
    );
}

async fn a_product_deleted_during_generation_is_404_and_its_image_removed(kind: Kind) {
    let ai = Ai::start(ImageAnswer::Hold).await;
    let t = kind.start(Setup::ai(&ai, 10)).await;
    let (socket, bid, pid) = t.watched_product("alice", mug()).await;
    let delete = ai.while_held(async {
        let path = format!("/products/{bid}/{pid}");
        let r = t.as_user("alice", Method::DELETE, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    });
    let (r, ()) = tokio::join!(t.generate("alice", ids(&bid, &pid)), delete);
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(
        t.images().await.is_empty(),
        "the image made for it is removed"
    );
    let frames = t.next_frames(&socket, 2).await;
    assert_eq!(names(&frames), ["product:updated", "product:deleted"]);
    assert_eq!(frames[0]["data"]["status"], "processing");
    t.ping(&socket).await;
    assert!(
        t.product_document("alice", &bid, &pid).await.is_none(),
        "the late result did not bring the product back"
    );
}
