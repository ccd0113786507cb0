//! Loopback stand-ins of the outside services generation and uploads talk to, at the wire
//! level: an OpenAI-compatible API, and Google (the OAuth token endpoint and Cloud Storage's
//! upload and delete endpoints). Each records what it was sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub const API_KEY: &str = "sk-test-0123";
pub const IMAGE_MODEL: &str = "test-image-model";
pub const CHAT_MODEL: &str = "test-chat-model";
/// The caption the chat stand-in answers (wrapped in quotes, which the provider trims).
pub const CAPTION: &str = "Fresh from the kiln. #mug #handmade";
pub const BUCKET: &str = "demo-test.firebasestorage.app";
pub const ACCESS_TOKEN: &str = "ya29.storage-test-token";
const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

/// A JPEG's opening and closing markers: what sniffing looks at.
pub const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 0xFF, 0xD9,
];
/// A WebP (VP8L) header: what sniffing looks at.
pub const WEBP: &[u8] =
    b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";

/// A real 1×1 PNG.
pub fn png() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .expect("fixture PNG")
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// How the AI stand-in answers image requests.
#[derive(Clone)]
pub enum ImageAnswer {
    /// These bytes, as `b64_json`.
    Base64(Vec<u8>),
    /// A URL on the stand-in, from which these bytes are then served.
    Url(Vec<u8>),
    Error(u16, Value),
    /// A PNG after a pause.
    Sleep(Duration),
    /// Waits for [`Ai::release`], then answers with a PNG.
    Hold,
    /// 429 (retry after 0 s) the first time, a PNG after.
    ThrottleOnce,
}

/// One request the AI stand-in got.
#[derive(Clone, Debug)]
pub struct AiRequest {
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

/// An OpenAI-compatible API: `/v1/images/generations`, `/v1/chat/completions`, and
/// `/files/ad` for images answered by URL.
#[derive(Clone)]
pub struct Ai {
    pub base: String,
    answer: Arc<Mutex<ImageAnswer>>,
    requests: Arc<Mutex<Vec<AiRequest>>>,
    gate: Arc<Semaphore>,
}

impl Ai {
    pub async fn start(answer: ImageAnswer) -> Self {
        // Bound first: the handlers need the base URL for images answered by URL.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let ai = Self {
            base: format!("http://{}", listener.local_addr().expect("address")),
            answer: Arc::new(Mutex::new(answer)),
            requests: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        };
        let router = Router::new()
            .route("/v1/images/generations", post(ai_images))
            .route("/v1/chat/completions", post(ai_chat))
            .route("/files/ad", get(ai_file))
            .with_state(ai.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        ai
    }

    /// The settings that point a function at this stand-in.
    pub fn settings(&self, timeout_secs: u64) -> Vec<(String, String)> {
        [
            ("AI_PROVIDER", "openai".to_owned()),
            ("AI_BASE_URL", format!("{}/v1", self.base)),
            ("AI_API_KEY", API_KEY.to_owned()),
            ("AI_IMAGE_MODEL", IMAGE_MODEL.to_owned()),
            ("AI_CHAT_MODEL", CHAT_MODEL.to_owned()),
            ("AI_TIMEOUT_SECONDS", timeout_secs.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn requests(&self, path: &str) -> Vec<AiRequest> {
        let requests = self.requests.lock().expect("requests");
        requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Changes how the next image requests are answered.
    pub fn set_answer(&self, answer: ImageAnswer) {
        *self.answer.lock().expect("answer") = answer;
    }

    pub fn release(&self) {
        self.gate.add_permits(1);
    }

    /// Once an image request is held ([`ImageAnswer::Hold`]), runs `meanwhile`, then lets
    /// the request go on; what `meanwhile` returned.
    pub async fn while_held<T>(&self, meanwhile: impl std::future::Future<Output = T>) -> T {
        self.wait_for_image_request().await;
        let out = meanwhile.await;
        self.release();
        out
    }

    /// Waits until an image request has arrived.
    pub async fn wait_for_image_request(&self) {
        for _ in 0..500 {
            if !self.requests("/v1/images/generations").is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no image request reached the stand-in");
    }
}

async fn record(ai: &Ai, request: Request) {
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    ai.requests.lock().expect("requests").push(AiRequest {
        path,
        authorization,
        body,
    });
}

fn b64_answer(bytes: &[u8]) -> Response {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    Json(json!({"created": 1_700_000_000, "data": [{"b64_json": b64}]})).into_response()
}

async fn ai_images(State(ai): State<Ai>, request: Request) -> Response {
    let asked_before = !ai.requests("/v1/images/generations").is_empty();
    record(&ai, request).await;
    let answer = ai.answer.lock().expect("answer").clone();
    match answer {
        ImageAnswer::Base64(bytes) => b64_answer(&bytes),
        ImageAnswer::Url(_) => {
            Json(json!({"data": [{"url": format!("{}/files/ad", ai.base)}]})).into_response()
        }
        ImageAnswer::Error(status, body) => {
            (StatusCode::from_u16(status).expect("status"), Json(body)).into_response()
        }
        ImageAnswer::Sleep(pause) => {
            tokio::time::sleep(pause).await;
            b64_answer(&png())
        }
        ImageAnswer::Hold => {
            let _permit = ai.gate.acquire().await.expect("gate");
            b64_answer(&png())
        }
        ImageAnswer::ThrottleOnce if !asked_before => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(json!({"error": {"message": "Rate limit reached", "type": "requests"}})),
        )
            .into_response(),
        ImageAnswer::ThrottleOnce => b64_answer(&png()),
    }
}

async fn ai_chat(State(ai): State<Ai>, request: Request) -> Response {
    record(&ai, request).await;
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("\"{CAPTION}\"")}, "finish_reason": "stop"}],
    }))
    .into_response()
}

async fn ai_file(State(ai): State<Ai>) -> Response {
    match ai.answer.lock().expect("answer").clone() {
        ImageAnswer::Url(bytes) => ([("content-type", "image/jpeg")], bytes).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// One upload Cloud Storage got.
#[derive(Clone, Debug)]
pub struct Upload {
    pub bucket: String,
    pub name: String,
    pub upload_type: String,
    pub content_type: String,
    pub authorization: String,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct GoogleState {
    /// The `Authorization` Cloud Storage accepts.
    authorization: String,
    token_exchanges: usize,
    uploads: Vec<Upload>,
    deletes: Vec<(String, String)>,
}

/// Google: `/token` (service-account assertions) and Cloud Storage's JSON API.
#[derive(Clone)]
pub struct Google {
    pub base: String,
    state: Arc<Mutex<GoogleState>>,
}

impl Google {
    /// Google, accepting the access token its `/token` hands out.
    pub async fn start() -> Self {
        Self::accepting(format!("Bearer {ACCESS_TOKEN}")).await
    }

    /// The Firebase Storage emulator's API: no token exchange, `Bearer owner` for an admin.
    pub async fn storage_emulator() -> Self {
        Self::accepting("Bearer owner".to_owned()).await
    }

    async fn accepting(authorization: String) -> Self {
        let state = Arc::new(Mutex::new(GoogleState {
            authorization,
            ..GoogleState::default()
        }));
        let router = Router::new()
            .route("/token", post(token))
            .route("/upload/storage/v1/b/{bucket}/o", post(upload))
            .route("/storage/v1/b/{bucket}/o/{object}", delete(remove))
            .with_state(state.clone());
        Self {
            base: serve(router).await,
            state,
        }
    }

    /// The settings that point a function's image store at this stand-in.
    pub fn settings(&self) -> Vec<(String, String)> {
        let key = json!({
            "type": "service_account",
            "project_id": "demo-test",
            "private_key_id": "test-key-1",
            "private_key": std::fs::read_to_string(format!("{}/test-key-1.pem", crate::FIXTURES))
                .expect("fixture key"),
            "client_email": "sync-backend@demo-test.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        [
            ("STORAGE_BUCKET", BUCKET.to_owned()),
            ("STORAGE_API_URL", self.base.clone()),
            ("GOOGLE_SERVICE_ACCOUNT_JSON", key.to_string()),
            ("GOOGLE_TOKEN_URL", format!("{}/token", self.base)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.state.lock().expect("state").uploads.clone()
    }

    /// `(bucket, object name)` of every delete.
    pub fn deletes(&self) -> Vec<(String, String)> {
        self.state.lock().expect("state").deletes.clone()
    }

    pub fn token_exchanges(&self) -> usize {
        self.state.lock().expect("state").token_exchanges
    }
}

async fn token(
    State(state): State<Arc<Mutex<GoogleState>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant = form.get("grant_type").map(String::as_str);
    let assertion = form.get("assertion").map_or(0, |a| a.split('.').count());
    if grant != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") || assertion != 3 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    state.lock().expect("state").token_exchanges += 1;
    Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

/// A header's value as text (empty if absent).
pub fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn upload(
    State(state): State<Arc<Mutex<GoogleState>>>,
    Path(bucket): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = header(&headers, "authorization");
    if authorization != state.lock().expect("state").authorization {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401}})),
        )
            .into_response();
    }
    let name = query.get("name").cloned().unwrap_or_default();
    let content_type = header(&headers, "content-type");
    state.lock().expect("state").uploads.push(Upload {
        bucket: bucket.clone(),
        name: name.clone(),
        upload_type: query.get("uploadType").cloned().unwrap_or_default(),
        content_type: content_type.clone(),
        authorization,
        body: body.to_vec(),
    });
    Json(
        json!({"kind": "storage#object", "bucket": bucket, "name": name,
                "contentType": content_type, "size": body.len().to_string()}),
    )
    .into_response()
}

async fn remove(
    State(state): State<Arc<Mutex<GoogleState>>>,
    Path((bucket, object)): Path<(String, String)>,
    headers: HeaderMap,
) -> StatusCode {
    let mut state = state.lock().expect("state");
    if header(&headers, "authorization") != state.authorization {
        return StatusCode::UNAUTHORIZED;
    }
    state.deletes.push((bucket, object));
    StatusCode::NO_CONTENT
}
