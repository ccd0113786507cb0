//! API Gateway's WebSocket API, emulated: `$connect` before the upgrade completes (a refusal
//! refuses the upgrade), `$default` per message, `$disconnect` on close or when the client
//! vanishes, API Gateway's limits, and the Management API the functions push through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adsync::http::ApiResponse;
use adsync::ids::ConnectionId;
use adsync::push::{PushOutcome, Pusher};
use adsync::ws::{self, SEC_WEBSOCKET_PROTOCOL, WsRequest, WsRoute};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use crate::Gateway;

/// API Gateway's WebSocket limits, as a client meets them in the cloud.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest message (frame) either way: 128 KB.
    pub max_message: usize,
    /// A connection with no message for this long is closed: 10 minutes.
    pub idle_timeout: Duration,
    /// No connection lives longer: 2 hours.
    pub max_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: adsync::push::MAX_FRAME_BYTES,
            idle_timeout: Duration::from_secs(10 * 60),
            max_duration: Duration::from_secs(2 * 3600),
        }
    }
}

/// The read buffer of each socket (frames larger than it are read in several steps).
const READ_BUFFER_BYTES: usize = 4 * 1024;

enum Outbound {
    Text(String),
    Close,
}

struct LiveSocket {
    tx: mpsc::UnboundedSender<Outbound>,
    connected_at: chrono::DateTime<chrono::Utc>,
    last_active: chrono::DateTime<chrono::Utc>,
    source_ip: String,
}

/// The live sockets of this gateway, by connection id.
#[derive(Clone)]
pub(crate) struct Hub {
    sockets: Arc<Mutex<HashMap<String, LiveSocket>>>,
    pub limits: Limits,
}

impl Hub {
    pub fn new(limits: Limits) -> Self {
        Self {
            sockets: Arc::default(),
            limits,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, LiveSocket>) -> R) -> R {
        let mut guard = self
            .sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    fn touch(&self, id: &str) {
        self.with(|s| {
            if let Some(live) = s.get_mut(id) {
                live.last_active = chrono::Utc::now();
            }
        });
    }
}

fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    let Some(raw) = raw else {
        return HashMap::new();
    };
    let uri = format!("/?{raw}");
    uri.parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| axum::extract::Query::<HashMap<String, String>>::try_from_uri(&u).ok())
        .map(|q| q.0)
        .unwrap_or_default()
}

/// `GET /ws`: runs `$connect`; upgrades only if it answered 200.
pub(crate) async fn upgrade(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = ConnectionId::generate().to_string();
    let ip = peer.ip().to_string();
    let connect = WsRequest {
        connection_id: id.clone(),
        headers,
        query: parse_query(query.as_deref()),
        body: String::new(),
    };
    let answer = invoke(&gw, WsRoute::Connect, connect).await;
    if answer.status != StatusCode::OK {
        return crate::rest::into_response(answer);
    }
    let protocol = answer
        .headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // A small read buffer: tungstenite zeroes the whole buffer before each read, and the
    // default 128 KiB made that memset a tenth of the gateway's CPU under load; the clients
    // send little (pings, resumes).
    let mut upgrade = upgrade
        .max_message_size(gw.sockets.limits.max_message)
        .read_buffer_size(READ_BUFFER_BYTES);
    if let Some(protocol) = protocol {
        upgrade = upgrade.protocols([protocol]);
    }
    upgrade.on_upgrade(move |socket| run(gw, socket, id, ip))
}

async fn run(gw: Gateway, socket: WebSocket, id: String, ip: String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let now = chrono::Utc::now();
    gw.sockets.with(|s| {
        s.insert(
            id.clone(),
            LiveSocket {
                tx,
                connected_at: now,
                last_active: now,
                source_ip: ip.clone(),
            },
        )
    });
    let limits = gw.sockets.limits;
    let (mut sink, mut stream) = socket.split();
    let deadline = tokio::time::sleep(limits.max_duration);
    tokio::pin!(deadline);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);

    let close = |code, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                    gw.sockets.touch(&id);
                    // Each message is its own invocation, as API Gateway does it.
                    let (gw, id) = (gw.clone(), id.clone());
                    tokio::spawn(async move {
                        let body = text.to_string();
                        let message = WsRequest { connection_id: id, body, ..WsRequest::default() };
                        invoke(&gw, WsRoute::Default, message).await;
                    });
                }
                Some(Ok(Message::Binary(_))) => {
                    let _ = sink.send(close(close_code::UNSUPPORTED, "binary frames are not supported")).await;
                    break;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                }
                Some(Err(err)) => {
                    // Over-size messages end here, as API Gateway closes them (1009).
                    tracing::info!(connection = %id, error = %err, "socket error");
                    let _ = sink.send(close(close_code::SIZE, "message too big")).await;
                    break;
                }
                Some(Ok(Message::Close(_))) | None => break,
            },
            outbound = rx.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(close(close_code::NORMAL, "closed by the server")).await;
                    break;
                }
            },
            () = &mut idle => {
                let _ = sink.send(close(close_code::AWAY, "idle timeout")).await;
                break;
            }
            () = &mut deadline => {
                let _ = sink.send(close(close_code::AWAY, "maximum connection duration")).await;
                break;
            }
        }
    }
    gw.sockets.with(|s| s.remove(&id));
    let disconnect = WsRequest {
        connection_id: id,
        ..WsRequest::default()
    };
    invoke(&gw, WsRoute::Disconnect, disconnect).await;
}

/// One invocation of a WebSocket route, as API Gateway makes it: its own deadline.
async fn invoke(gw: &Gateway, route: WsRoute, request: WsRequest) -> ApiResponse {
    let deadline = gw.deadline(route.timeout());
    adsync::deadline::scope(deadline, ws::handle(&gw.app, route, request)).await
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-amzn-errortype", kind),
        ],
        json!({"message": message}).to_string(),
    )
        .into_response()
}

/// Pushes straight to the sockets this gateway holds: what the Management API does, without
/// the HTTP round trip and its signing (the default locally).
#[async_trait::async_trait]
impl Pusher for Hub {
    async fn post(&self, connection: &ConnectionId, frame: &[u8]) -> PushOutcome {
        self.post_text(connection.as_str(), frame)
    }

    async fn close(&self, connection: &ConnectionId) -> PushOutcome {
        self.with(|sockets| match sockets.get(connection.as_str()) {
            Some(live) if live.tx.send(Outbound::Close).is_ok() => PushOutcome::Delivered,
            _ => PushOutcome::Gone,
        })
    }
}

impl Hub {
    /// Queues `frame` on connection `id`, within API Gateway's frame limit.
    fn post_text(&self, id: &str, frame: &[u8]) -> PushOutcome {
        if frame.len() > self.limits.max_message {
            return PushOutcome::TooLarge;
        }
        let Ok(text) = std::str::from_utf8(frame) else {
            return PushOutcome::Failed("a text frame must be UTF-8".into());
        };
        self.with(|sockets| {
            let Some(live) = sockets.get_mut(id) else {
                return PushOutcome::Gone;
            };
            if live.tx.send(Outbound::Text(text.to_owned())).is_err() {
                return PushOutcome::Gone;
            }
            live.last_active = chrono::Utc::now();
            PushOutcome::Delivered
        })
    }
}

/// The Management API: `POST` (PostToConnection), `GET` (GetConnection), `DELETE`
/// (DeleteConnection) on `/@connections/{id}`; 410 for a gone id.
pub(crate) async fn management(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    method: Method,
    body: Bytes,
) -> Response {
    let gone = || aws_error(StatusCode::GONE, "GoneException", "connection is gone");
    match method {
        Method::POST => match gw.sockets.post_text(&id, &body) {
            PushOutcome::Delivered => StatusCode::OK.into_response(),
            PushOutcome::TooLarge => aws_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeException",
                "payload too large",
            ),
            PushOutcome::Failed(why) => {
                aws_error(StatusCode::BAD_REQUEST, "BadRequestException", &why)
            }
            PushOutcome::Gone | PushOutcome::Throttled => gone(),
        },
        Method::GET => gw.sockets.with(|sockets| match sockets.get(&id) {
            None => gone(),
            Some(live) => (
                StatusCode::OK,
                [("content-type", "application/json")],
                json!({
                    "ConnectedAt": live.connected_at.to_rfc3339(),
                    "LastActiveAt": live.last_active.to_rfc3339(),
                    "Identity": {"SourceIp": live.source_ip, "UserAgent": ""}
                })
                .to_string(),
            )
                .into_response(),
        }),
        Method::DELETE => gw.sockets.with(|sockets| match sockets.get(&id) {
            None => gone(),
            Some(live) => {
                let _ = live.tx.send(Outbound::Close);
                StatusCode::NO_CONTENT.into_response()
            }
        }),
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
