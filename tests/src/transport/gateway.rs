//! The gateway transport: the local gateway in-process (`local_gateway::start`) on its embedded
//! stores, over real HTTP and real WebSockets (tokio-tungstenite); images in its media folder.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adsync::App;
use adsync::ids::ConnectionId;
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use local_gateway::Options;
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Credentials, Received, Setup, Socket, StoredImage, Transport, wait_for};
use crate::stand_ins::{API_KEY, CHAT_MODEL, IMAGE_MODEL, header};
use crate::{Response, SERVICE_KEY, id_token_claims};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a socket received and nobody read yet, filled by its reader task.
#[derive(Default)]
struct Inbox {
    state: Mutex<Unread>,
    changed: Notify,
}

#[derive(Default)]
struct Unread {
    frames: VecDeque<Value>,
    /// The server closed the socket after these frames.
    closed: bool,
}

struct Live {
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    inbox: Arc<Inbox>,
}

pub struct Gateway {
    app: App,
    /// `http://127.0.0.1:port`.
    pub base: String,
    project_id: String,
    pub media_dir: PathBuf,
    http: reqwest::Client,
    sockets: Mutex<HashMap<String, Arc<Live>>>,
    opened: AtomicUsize,
}

impl Gateway {
    pub async fn start(setup: &Setup<'_>) -> Self {
        let mut o = Options::ephemeral();
        o.service_key = Some(SecretString::from(SERVICE_KEY));
        if let Some((ai, timeout_secs)) = setup.ai {
            o.ai_base_url = Some(format!("{}/v1", ai.base));
            o.ai_api_key = Some(SecretString::from(API_KEY));
            o.ai_image_model = Some(IMAGE_MODEL.into());
            o.ai_chat_model = Some(CHAT_MODEL.into());
            o.ai_timeout_secs = Some(timeout_secs);
        }
        if let Some(secs) = setup.retention_secs {
            o.retention_secs = secs;
        }
        if let Some(secs) = setup.writer_lease_secs {
            o.writer_lease_secs = secs;
        }
        if let Some(limits) = setup.rate_limits {
            let flags = &mut o.rate_limits;
            flags.generations_per_hour = limits.generations_per_hour;
            flags.mutations_per_minute = limits.mutations_per_minute;
            flags.broadcasts_per_minute = limits.broadcasts_per_minute;
            flags.connections_per_user = limits.connections_per_user;
            flags.resumes_per_minute = limits.resumes_per_minute;
            flags.event_pages_per_minute = limits.event_pages_per_minute;
        }
        // Scenarios run the sweeper themselves, when they mean to.
        o.sweep_interval_secs = 3600;
        let running = local_gateway::start(o).await.expect("the gateway starts");
        Self {
            app: running.app.clone(),
            project_id: running.options.project_id.clone(),
            media_dir: running.media_dir.clone(),
            base: running.spawn(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
            sockets: Mutex::default(),
            opened: AtomicUsize::new(0),
        }
    }

    fn live(&self, socket: &Socket) -> Arc<Live> {
        let sockets = self.sockets.lock().expect("sockets");
        sockets.get(&socket.key).cloned().expect("an open socket")
    }
}

/// Reads `stream` into `inbox` until the server closes it.
async fn read_into(mut stream: futures_util::stream::SplitStream<Ws>, inbox: Arc<Inbox>) {
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => {
                let frame = serde_json::from_str(text.as_str()).expect("frames are JSON");
                inbox.state.lock().expect("inbox").frames.push_back(frame);
                inbox.changed.notify_waiters();
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    inbox.state.lock().expect("inbox").closed = true;
    inbox.changed.notify_waiters();
}

/// Files under `dir`, as object names (`a/b/c.png`).
fn files_under(dir: &Path, prefix: &str, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            files_under(&entry.path(), &format!("{name}/"), found);
        } else {
            found.push(name);
        }
    }
}

#[async_trait]
impl Transport for Gateway {
    fn app(&self) -> &App {
        &self.app
    }

    /// A token in the Firebase Auth emulator's format (unsigned), as the gateway's emulator
    /// mode accepts.
    fn token_with(&self, uid: &str, lifetime_secs: i64, extra: Value) -> String {
        let claims = id_token_claims(&self.project_id, uid, lifetime_secs, extra);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.")
    }

    async fn handle(&self, request: http::Request<Vec<u8>>) -> Response {
        let (parts, body) = request.into_parts();
        let r = self
            .http
            .request(parts.method, format!("{}{}", self.base, parts.uri))
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .expect("the gateway answers");
        let (status, headers) = (r.status(), r.headers().clone());
        let bytes = r.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {bytes:?}"))
        };
        Response {
            status,
            headers,
            body,
        }
    }

    async fn open(&self, credentials: Credentials<'_>) -> Result<Socket, StatusCode> {
        let mut url = format!("{}/ws", self.base.replace("http://", "ws://"));
        if let Credentials::Query(token) = credentials {
            url = format!("{url}?token={token}");
        }
        let mut request = url.into_client_request().expect("a WebSocket request");
        if let Credentials::Subprotocol(list) = credentials {
            let value = list.parse().expect("a header value");
            request
                .headers_mut()
                .insert("sec-websocket-protocol", value);
        }
        let (ws, response) = match tokio_tungstenite::connect_async(request).await {
            Ok(connected) => connected,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(response.status());
            }
            Err(other) => panic!("the handshake failed: {other}"),
        };
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (sink, stream) = ws.split();
        let inbox = Arc::new(Inbox::default());
        tokio::spawn(read_into(stream, inbox.clone()));
        let key = self.opened.fetch_add(1, Ordering::Relaxed).to_string();
        let live = Live {
            sink: tokio::sync::Mutex::new(sink),
            inbox,
        };
        let mut sockets = self.sockets.lock().expect("sockets");
        sockets.insert(key.clone(), Arc::new(live));
        Ok(Socket { key, protocol })
    }

    async fn send_text(&self, socket: &Socket, text: &str) {
        let live = self.live(socket);
        let mut sink = live.sink.lock().await;
        sink.send(Message::Text(text.into())).await.expect("sent");
    }

    async fn receive(&self, socket: &Socket, within: Duration) -> Received {
        let inbox = self.live(socket).inbox.clone();
        let found = wait_for(&inbox.changed, within, || {
            let mut unread = inbox.state.lock().expect("inbox");
            match unread.frames.pop_front() {
                Some(frame) => Some(Received::Frame(frame)),
                None if unread.closed => Some(Received::Closed),
                None => None,
            }
        })
        .await;
        found.unwrap_or(Received::Nothing)
    }

    async fn close(&self, socket: &Socket) {
        let live = self.live(socket);
        let mut sink = live.sink.lock().await;
        // The server may be gone first; either way the socket is closed.
        let _ = sink.send(Message::Close(None)).await;
    }

    /// Nothing to do: the gateway answers 410 for any connection it does not hold.
    async fn vanish(&self, _connection: &ConnectionId) {}

    /// The media folder's files, each fetched from its URL.
    async fn images(&self) -> Vec<StoredImage> {
        let mut names = Vec::new();
        files_under(&self.media_dir, "", &mut names);
        let mut images = Vec::new();
        for name in names {
            let url = format!("{}/media/{name}", self.base);
            let r = self
                .http
                .get(&url)
                .send()
                .await
                .expect("the gateway answers");
            assert_eq!(r.status(), StatusCode::OK, "{url} is not served");
            let content_type = header(r.headers(), "content-type");
            let bytes = r.bytes().await.expect("the image").to_vec();
            images.push(StoredImage {
                name,
                url,
                content_type,
                bytes,
            });
        }
        images
    }
}
