//! Ad generation, image uploads and the n8n workflow, end to end against a running gateway:
//! real HTTP, real WebSockets, the AI provider played at the wire level by a loopback
//! server that answers as the OpenAI API does and records what it was sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{Client, Ws, next};
use futures_util::SinkExt;
use integration_tests::stand_ins::{API_KEY, Ai, CAPTION, ImageAnswer, png};
use local_gateway::Options;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 0xFF, 0xD9,
];
const WEBP: &[u8] =
    b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";

/// Gateway options that point generation at the AI stand-in.
fn ai_options(ai: &Ai, timeout_secs: u64) -> Options {
    let mut o = Options::ephemeral();
    o.ai_base_url = Some(format!("{}/v1", ai.base));
    o.ai_api_key = Some(SecretString::from(API_KEY));
    o.ai_image_model = Some("test-image-model".into());
    o.ai_chat_model = Some("test-chat-model".into());
    o.ai_timeout_secs = Some(timeout_secs);
    o
}

// ---------------------------------------------------------------------------------------
// A client of the gateway.
// ---------------------------------------------------------------------------------------

impl Client {
    async fn upload(
        &self,
        uid: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token(uid).await)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn generate(&self, uid: &str, body: Value) -> (u16, Value) {
        self.call(
            uid,
            reqwest::Method::POST,
            "/ai/generate-ad-image",
            Some(body),
        )
        .await
    }

    /// A business and a product of `uid`: their ids.
    async fn product(&self, uid: &str, product: Value) -> (String, String) {
        let (status, b) = self
            .call(
                uid,
                reqwest::Method::POST,
                "/businesses",
                Some(json!({"name": "Pottery"})),
            )
            .await;
        assert_eq!(status, 201, "{b}");
        let bid = b["id"].as_str().unwrap().to_owned();
        let (status, p) = self
            .call(
                uid,
                reqwest::Method::POST,
                &format!("/products/{bid}"),
                Some(product),
            )
            .await;
        assert_eq!(status, 201, "{p}");
        (bid, p["id"].as_str().unwrap().to_owned())
    }

    async fn stored(&self, uid: &str, bid: &str, pid: &str) -> Value {
        let (_, products) = self
            .call(uid, reqwest::Method::GET, &format!("/products/{bid}"), None)
            .await;
        products
            .as_array()
            .and_then(|all| all.iter().find(|p| p["id"] == pid))
            .cloned()
            .unwrap_or(Value::Null)
    }

    async fn fetch(&self, url: &str) -> (u16, String, Vec<u8>) {
        let r = self.http.get(url).send().await.unwrap();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            r.status().as_u16(),
            content_type,
            r.bytes().await.unwrap().to_vec(),
        )
    }
}

/// Skips the frames of the set-up (business and product created).
async fn skip(ws: &mut Ws, n: usize) {
    for _ in 0..n {
        next(ws).await;
    }
}

/// Proves that no event is waiting: the next frame is the answer to a ping.
async fn nothing_pending(ws: &mut Ws) {
    ws.send(Message::Text(json!({"action": "ping"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(next(ws).await["event"], "pong");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn mug() -> Value {
    json!({"name": "Sunrise Mug", "price": 12.5, "currency": "EUR", "colors": ["#FF8800"],
           "description": "Hand-thrown stoneware.", "category": "Kitchen"})
}

// ---------------------------------------------------------------------------------------
// Generation.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn generation_pushes_processing_then_enriched_to_every_tab_and_stores_the_image() {
    let ai = Ai::start(ImageAnswer::Base64(png())).await;
    let c = Client::start(ai_options(&ai, 10)).await;
    let mut tab_1 = c.socket("alice").await;
    let mut tab_2 = c.socket("alice").await;
    let mut bob = c.socket("bob").await;
    let (bid, pid) = c.product("alice", mug()).await;
    skip(&mut tab_1, 2).await;
    skip(&mut tab_2, 2).await;

    let (status, product) = c
        .generate(
            "alice",
            json!({"businessId": bid, "productId": pid, "prompt": "autumn light"}),
        )
        .await;
    assert_eq!(status, 200, "{product}");
    assert_eq!(product["status"], "enriched");
    assert_eq!(
        product["caption"], CAPTION,
        "surrounding quotes are trimmed"
    );
    assert_eq!(
        product["name"], "Sunrise Mug",
        "the whole product comes back"
    );
    assert!(product.get("error").is_none());
    let url = product["generatedImageUrl"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/media/users/alice/products/{pid}/", c.base))
            && url.ends_with(".png"),
        "{url}"
    );

    for tab in [&mut tab_1, &mut tab_2] {
        let processing = next(tab).await;
        assert_eq!(processing["event"], "product:updated");
        assert_eq!(processing["data"]["status"], "processing");
        assert_eq!(processing["data"]["id"], pid.as_str());
        assert_eq!(processing["data"]["businessId"], bid.as_str());
        let done = next(tab).await;
        assert_eq!(done["event"], "product:updated");
        assert_eq!(done["seq"], processing["seq"].as_u64().unwrap() + 1);
        assert_eq!(done["data"]["status"], "enriched");
        assert_eq!(done["data"]["generatedImageUrl"], url.as_str());
        assert_eq!(done["data"]["caption"], CAPTION);
        assert_eq!(done["data"]["error"], Value::Null);
        assert_eq!(done["data"]["updatedAt"], product["updatedAt"]);
    }
    nothing_pending(&mut bob).await;

    // The image is stored and served back as it was made.
    let (status, content_type, bytes) = c.fetch(&url).await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    assert_eq!(bytes, png());
    assert_eq!(c.stored("alice", &bid, &pid).await, product);

    // What the provider was sent: the models, the key, the product and the prompt.
    let image = ai.requests("/v1/images/generations");
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

#[tokio::test]
async fn an_image_answered_by_url_is_downloaded_and_kept() {
    let ai = Ai::start(ImageAnswer::Url(JPEG.to_vec())).await;
    let c = Client::start(ai_options(&ai, 10)).await;
    let (bid, pid) = c.product("alice", json!({"name": "Vase"})).await;
    let (status, product) = c
        .generate("alice", json!({"businessId": bid, "productId": pid}))
        .await;
    assert_eq!(status, 200, "{product}");
    let url = product["generatedImageUrl"].as_str().unwrap();
    assert!(url.ends_with(".jpg"), "{url}");
    let (_, content_type, bytes) = c.fetch(url).await;
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(bytes, JPEG);
    let prompt = ai.requests("/v1/images/generations")[0].body["prompt"].clone();
    assert!(prompt.as_str().unwrap().contains("\"Vase\""), "{prompt}");
}

#[tokio::test]
async fn a_provider_error_marks_the_product_failed_and_answers_502() {
    let ai = Ai::start(ImageAnswer::Error(
        500,
        json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}),
    ))
    .await;
    let c = Client::start(ai_options(&ai, 10)).await;
    let mut ws = c.socket("alice").await;
    let (bid, pid) = c.product("alice", mug()).await;
    skip(&mut ws, 2).await;

    let (status, body) = c
        .generate("alice", json!({"businessId": bid, "productId": pid}))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "bad_gateway");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP 500") && message.contains("The server had an error"),
        "{message}"
    );
    assert!(!message.contains(API_KEY));

    assert_eq!(next(&mut ws).await["data"]["status"], "processing");
    let failed = next(&mut ws).await;
    assert_eq!(failed["data"]["status"], "failed");
    assert_eq!(failed["data"]["error"], message);
    let stored = c.stored("alice", &bid, &pid).await;
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored["error"], message);
    assert!(stored.get("generatedImageUrl").is_none());
    assert_eq!(
        ai.requests("/v1/images/generations").len(),
        1,
        "a 500 is not retried"
    );
    assert!(files_under(&c.media_dir).is_empty(), "nothing stored");

    // A later success clears the error.
    ai.set_answer(ImageAnswer::Base64(png()));
    let (status, product) = c
        .generate("alice", json!({"businessId": bid, "productId": pid}))
        .await;
    assert_eq!(status, 200, "{product}");
    assert!(product.get("error").is_none(), "{product}");
    assert_eq!(next(&mut ws).await["data"]["error"], Value::Null);
    assert_eq!(next(&mut ws).await["data"]["status"], "enriched");
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_is_504() {
    let ai = Ai::start(ImageAnswer::Sleep(Duration::from_secs(5))).await;
    let c = Client::start(ai_options(&ai, 1)).await;
    let mut ws = c.socket("alice").await;
    let (bid, pid) = c.product("alice", mug()).await;
    skip(&mut ws, 2).await;

    let started = std::time::Instant::now();
    let (status, body) = c
        .generate("alice", json!({"businessId": bid, "productId": pid}))
        .await;
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body["error"]["code"], "gateway_timeout");
    assert_eq!(
        body["error"]["message"],
        "the AI provider did not answer within 1 s"
    );
    assert_eq!(next(&mut ws).await["data"]["status"], "processing");
    let failed = next(&mut ws).await;
    assert_eq!(failed["data"]["status"], "failed");
    assert_eq!(
        failed["data"]["error"],
        "the AI provider did not answer within 1 s"
    );
}

#[tokio::test]
async fn a_second_generation_while_one_runs_is_409_and_emits_nothing() {
    let ai = Ai::start(ImageAnswer::Hold).await;
    let c = Arc::new(Client::start(ai_options(&ai, 10)).await);
    let mut ws = c.socket("alice").await;
    let (bid, pid) = c.product("alice", mug()).await;
    skip(&mut ws, 2).await;

    let body = json!({"businessId": bid, "productId": pid});
    let first = tokio::spawn({
        let (c, body) = (c.clone(), body.clone());
        async move { c.generate("alice", body).await }
    });
    ai.wait_for_image_request().await;
    assert_eq!(next(&mut ws).await["data"]["status"], "processing");

    let (status, conflict) = c.generate("alice", body.clone()).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "conflict");
    assert_eq!(
        ai.requests("/v1/images/generations").len(),
        1,
        "the second never reached the provider"
    );

    ai.release();
    let (status, product) = first.await.unwrap();
    assert_eq!(status, 200, "{product}");
    assert_eq!(next(&mut ws).await["data"]["status"], "enriched");
    nothing_pending(&mut ws).await;

    // The lock is released: the next generation runs.
    ai.release();
    let (status, _) = c.generate("alice", body).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_rate_limited_image_request_is_retried_once() {
    let ai = Ai::start(ImageAnswer::ThrottleOnce).await;
    let c = Client::start(ai_options(&ai, 10)).await;
    let (bid, pid) = c.product("alice", mug()).await;
    let (status, product) = c
        .generate("alice", json!({"businessId": bid, "productId": pid}))
        .await;
    assert_eq!(status, 200, "{product}");
    assert_eq!(ai.requests("/v1/images/generations").len(), 2);
}

#[tokio::test]
async fn bad_requests_and_missing_products_change_nothing() {
    let ai = Ai::start(ImageAnswer::Base64(png())).await;
    let c = Client::start(ai_options(&ai, 10)).await;
    let mut ws = c.socket("alice").await;
    let (bid, pid) = c.product("alice", mug()).await;
    skip(&mut ws, 2).await;

    for (body, status) in [
        (json!({"businessId": bid, "productId": "nope"}), 404),
        (json!({"businessId": "nope", "productId": pid}), 404),
        (
            json!({"businessId": bid, "productId": pid, "style": "x"}),
            400,
        ),
        (
            json!({"businessId": bid, "productId": pid, "prompt": "p".repeat(1001)}),
            400,
        ),
        (json!({"businessId": bid, "productId": "../x"}), 400),
        (json!({"productId": pid}), 400),
    ] {
        let (got, answer) = c.generate("alice", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    // Bob cannot generate for Alice's product: for him it does not exist.
    let (got, _) = c
        .generate("bob", json!({"businessId": bid, "productId": pid}))
        .await;
    assert_eq!(got, 404);
    nothing_pending(&mut ws).await;
    assert!(ai.requests("/v1/images/generations").is_empty());
    assert_eq!(c.stored("alice", &bid, &pid).await["status"], "draft");
}

#[tokio::test]
async fn the_offline_provider_is_the_default_and_makes_an_svg() {
    let c = Client::start(Options::ephemeral()).await;
    let mut ws = c.socket("alice").await;
    let (bid, pid) = c
        .product(
            "alice",
            json!({"name": "Tom & Jerry's <Cheese>", "price": 3, "currency": "USD"}),
        )
        .await;
    skip(&mut ws, 2).await;
    let (status, product) = c
        .generate("alice", json!({"businessId": bid, "productId": pid}))
        .await;
    assert_eq!(status, 200, "{product}");
    assert_eq!(
        product["caption"],
        "Meet Tom & Jerry's <Cheese>. Yours for $3."
    );
    let url = product["generatedImageUrl"].as_str().unwrap();
    assert!(url.ends_with(".svg"), "{url}");
    let (status, content_type, bytes) = c.fetch(url).await;
    assert_eq!((status, content_type.as_str()), (200, "image/svg+xml"));
    let svg = String::from_utf8(bytes).unwrap();
    assert!(
        svg.contains("Tom &amp; Jerry&apos;s &lt;Cheese&gt;"),
        "{svg}"
    );
    assert_eq!(next(&mut ws).await["data"]["status"], "processing");
    assert_eq!(next(&mut ws).await["data"]["status"], "enriched");
}

// ---------------------------------------------------------------------------------------
// Uploads.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn uploads_are_checked_by_their_bytes_stored_and_served_back() {
    let c = Client::start(Options::ephemeral()).await;
    let mut ws = c.socket("alice").await;
    let (bid, pid) = c.product("alice", mug()).await;
    skip(&mut ws, 2).await;
    let path = format!("/products/{bid}/{pid}/image");

    for (content_type, bytes, extension) in [
        ("image/png", png(), "png"),
        ("image/jpeg", JPEG.to_vec(), "jpg"),
        ("image/webp", WEBP.to_vec(), "webp"),
    ] {
        let (status, product) = c.upload("alice", &path, content_type, bytes.clone()).await;
        assert_eq!(status, 200, "{content_type}: {product}");
        let url = product["imageUrl"].as_str().unwrap();
        assert!(url.ends_with(&format!(".{extension}")), "{url}");
        let (status, served_type, served) = c.fetch(url).await;
        assert_eq!((status, served_type.as_str()), (200, content_type));
        assert_eq!(served, bytes);
        let event = next(&mut ws).await;
        assert_eq!(event["event"], "product:updated");
        assert_eq!(event["data"]["imageUrl"], url);
        assert_eq!(event["data"]["id"], pid.as_str());
    }

    let mut too_big = png();
    too_big.resize(5 * 1024 * 1024 + 1, 0);
    let mut text = b"just some text, named .png".to_vec();
    text.extend_from_slice(b"\n");
    for (content_type, bytes, status) in [
        ("image/png", text, 415),
        ("image/jpeg", png(), 415),
        ("text/plain", png(), 415),
        ("image/png", Vec::new(), 400),
        ("image/png", too_big, 413),
    ] {
        let (got, body) = c.upload("alice", &path, content_type, bytes).await;
        assert_eq!(got, status, "{content_type}: {body}");
    }
    nothing_pending(&mut ws).await;
    assert_eq!(
        files_under(&c.media_dir).len(),
        3,
        "only the three good uploads"
    );
}

#[tokio::test]
async fn an_upload_for_a_missing_product_is_404_and_leaves_nothing() {
    let c = Client::start(Options::ephemeral()).await;
    let mut ws = c.socket("alice").await;
    let (bid, pid) = c.product("alice", mug()).await;
    skip(&mut ws, 2).await;
    let (status, body) = c
        .upload(
            "alice",
            &format!("/products/{bid}/missing/image"),
            "image/png",
            png(),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = c
        .upload(
            "bob",
            &format!("/products/{bid}/{pid}/image"),
            "image/png",
            png(),
        )
        .await;
    assert_eq!(status, 404, "another user's product does not exist for bob");
    assert!(files_under(&c.media_dir).is_empty());
    nothing_pending(&mut ws).await;

    // The n8n path: a service stores the ad image it generated elsewhere.
    let r = c
        .http
        .post(format!(
            "{}/products/{bid}/{pid}/image?field=generatedImageUrl",
            c.base
        ))
        .header("x-service-key", "wrong")
        .header("x-on-behalf-of", "alice")
        .header("content-type", "image/png")
        .body(png())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a wrong service key");
}

#[tokio::test]
async fn media_urls_cannot_leave_the_media_folder() {
    let c = Client::start(Options::ephemeral()).await;
    for path in [
        "/media/../Cargo.toml",
        "/media/%2e%2e/%2e%2e/etc/passwd.png",
        "/media/users/alice/.hidden.png",
        "/media/users/alice/products/p/none.png",
        "/media/users/alice/products/p/x.txt",
    ] {
        let (status, _, _) = c.fetch(&format!("{}{path}", c.base)).await;
        assert_eq!(status, 404, "{path}");
    }
}

// ---------------------------------------------------------------------------------------
// The n8n workflow.
// ---------------------------------------------------------------------------------------

const WORKFLOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../n8n/generate-ad-image.workflow.json"
);

/// The backend path of an HTTP Request node's URL expression, with its `{{ }}` expressions
/// replaced by sample ids: `={{ $('Config').item.json.backendUrl }}/products/update/{{ ... }}/{{ ... }}`
/// becomes `/products/update/id/id`.
fn backend_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("={{ $('Config').item.json.backendUrl }}")?;
    let mut out = String::new();
    let mut rest = rest;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        out.push_str("id");
        let end = rest[start..].find("}}")? + start + 2;
        rest = &rest[end..];
    }
    out.push_str(rest);
    Some(out)
}

#[test]
fn the_n8n_workflow_is_well_formed_and_calls_the_backend_as_it_expects() {
    use adsync::http::Route;

    let text = std::fs::read_to_string(WORKFLOW).expect("the workflow file");
    let workflow: Value = serde_json::from_str(&text).expect("valid JSON");
    let nodes = workflow["nodes"].as_array().expect("nodes");
    let names: Vec<&str> = nodes
        .iter()
        .map(|n| n["name"].as_str().expect("a name"))
        .collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "node names are unique");
    let mut ids: Vec<&str> = nodes
        .iter()
        .map(|n| n["id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), nodes.len(), "node ids are unique");
    for node in nodes {
        assert!(
            node["type"]
                .as_str()
                .unwrap()
                .starts_with("n8n-nodes-base."),
            "{node}"
        );
        assert!(node["typeVersion"].is_number(), "{node}");
        assert_eq!(node["position"].as_array().map(Vec::len), Some(2), "{node}");
    }

    // Every connection joins existing nodes, and every node but the trigger is reached.
    let connections = workflow["connections"].as_object().expect("connections");
    let mut reached = std::collections::HashSet::new();
    for (from, outputs) in connections {
        assert!(
            names.contains(&from.as_str()),
            "connection from unknown node {from}"
        );
        for output in outputs["main"].as_array().expect("main outputs") {
            for link in output.as_array().expect("an output") {
                let to = link["node"].as_str().expect("a target");
                assert!(names.contains(&to), "connection to unknown node {to}");
                assert_eq!(link["type"], "main");
                reached.insert(to);
            }
        }
    }
    for node in nodes {
        let name = node["name"].as_str().unwrap();
        let trigger = node["type"] == "n8n-nodes-base.webhook";
        assert_eq!(reached.contains(name), !trigger, "{name} reached");
    }
    let webhook = nodes
        .iter()
        .find(|n| n["type"] == "n8n-nodes-base.webhook")
        .expect("a webhook");
    assert_eq!(webhook["parameters"]["httpMethod"], "POST");

    // Backend calls: known routes, with the service key credential and X-On-Behalf-Of.
    let http_nodes: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["type"] == "n8n-nodes-base.httpRequest")
        .collect();
    let mut routes = Vec::new();
    let mut ai_calls = Vec::new();
    for node in &http_nodes {
        let p = &node["parameters"];
        let url = p["url"].as_str().expect("a url");
        let method = p["method"].as_str().unwrap_or("GET");
        if let Some(path) = backend_path(url) {
            let method: http::Method = method.parse().unwrap();
            let (route, _) = Route::resolve(&method, &path)
                .unwrap_or_else(|e| panic!("{} {path} is not a backend route: {e}", node["name"]));
            let headers: Vec<&str> = p["headerParameters"]["parameters"]
                .as_array()
                .map(|h| h.iter().filter_map(|h| h["name"].as_str()).collect())
                .unwrap_or_default();
            if route == Route::Login {
                // The caller's own token, forwarded: this is how the workflow learns the uid.
                assert_eq!(headers, ["Authorization"], "{}", node["name"]);
            } else {
                assert_eq!(
                    p["authentication"], "genericCredentialType",
                    "{}",
                    node["name"]
                );
                assert_eq!(p["genericAuthType"], "httpHeaderAuth", "{}", node["name"]);
                assert!(node["credentials"]["httpHeaderAuth"]["name"].is_string());
                assert!(headers.contains(&"X-On-Behalf-Of"), "{}", node["name"]);
            }
            if route == Route::Broadcast {
                let body = p["jsonBody"].as_str().expect("a JSON body");
                assert!(body.contains("\"ai:progress\""), "{body}");
                assert!(body.contains("uid") && body.contains("data"), "{body}");
            }
            routes.push(route);
        } else {
            let path = url
                .strip_prefix("={{ $('Config').item.json.aiBaseUrl }}")
                .unwrap_or_else(|| {
                    panic!(
                        "{}: the URL must start with the Config node's backendUrl or aiBaseUrl",
                        node["name"]
                    )
                });
            assert_eq!(method, "POST");
            assert_eq!(p["genericAuthType"], "httpHeaderAuth", "{}", node["name"]);
            ai_calls.push(path.to_owned());
        }
    }
    for route in [
        Route::Login,
        Route::UpdateProduct,
        Route::Broadcast,
        Route::UploadProductImage,
    ] {
        assert!(routes.contains(&route), "the workflow calls {route:?}");
    }
    ai_calls.sort();
    assert_eq!(ai_calls, ["/chat/completions", "/images/generations"]);
}
