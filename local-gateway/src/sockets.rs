//! API Gateway's WebSocket API, emulated: `$connect` before the upgrade completes (a refusal
//! refuses the upgrade), `$default` per message, `$disconnect` on close or when the client
//! vanishes, API Gateway's limits, and the Management API the functions push through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adsync::ids::ConnectionId;
use adsync::ws::{self, SEC_WEBSOCKET_PROTOCOL, WsRoute};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
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

/// An API Gateway WebSocket event, built as API Gateway builds it and parsed with the same
/// type the Lambdas receive.
fn event(
    route: WsRoute,
    id: &str,
    ip: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Option<&str>,
) -> Option<ApiGatewayWebsocketProxyRequest> {
    let now = chrono::Utc::now();
    let event_type = match route {
        WsRoute::Connect => "CONNECT",
        WsRoute::Disconnect => "DISCONNECT",
        WsRoute::Default => "MESSAGE",
    };
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), json!(v.to_str().ok()?))))
        .collect();
    let mut e = json!({
        "requestContext": {
            "routeKey": route.key(),
            "eventType": event_type,
            "messageDirection": "IN",
            "stage": "local",
            "connectedAt": now.timestamp_millis(),
            "requestTimeEpoch": now.timestamp_millis(),
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "identity": {"sourceIp": ip},
            "requestId": ConnectionId::generate().as_str(),
            "domainName": "127.0.0.1",
            "connectionId": id,
            "apiId": "local"
        },
        "isBase64Encoded": false
    });
    if !headers.is_empty() {
        e["headers"] = Value::Object(headers);
    }
    if !query.is_empty() {
        e["queryStringParameters"] = json!(query);
    }
    if let Some(body) = body {
        e["body"] = json!(body);
    }
    if route == WsRoute::Disconnect {
        e["requestContext"]["disconnectStatusCode"] = json!(1000);
    }
    serde_json::from_value(e)
        .map_err(|err| tracing::error!(error = %err, "websocket event"))
        .ok()
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
    let query = parse_query(query.as_deref());
    let Some(connect) = event(WsRoute::Connect, &id, &ip, &query, &headers, None) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let deadline = gw.deadline(WsRoute::Connect.timeout());
    let answer =
        adsync::deadline::scope(deadline, ws::handle(&gw.app, WsRoute::Connect, connect)).await;
    if answer.status_code != 200 {
        let status = u16::try_from(answer.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::FORBIDDEN);
        let body = match answer.body {
            Some(aws_lambda_events::encodings::Body::Text(t)) => t,
            _ => String::new(),
        };
        return (status, [("content-type", "application/json")], body).into_response();
    }
    let protocol = answer
        .headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut upgrade = upgrade.max_message_size(gw.sockets.limits.max_message);
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
                    let (gw, id, ip) = (gw.clone(), id.clone(), ip.clone());
                    tokio::spawn(async move {
                        let body = text.to_string();
                        if let Some(e) = event(WsRoute::Default, &id, &ip, &HashMap::new(), &HeaderMap::new(), Some(&body)) {
                            let deadline = gw.deadline(WsRoute::Default.timeout());
                            adsync::deadline::scope(deadline, ws::handle(&gw.app, WsRoute::Default, e)).await;
                        }
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
    if let Some(e) = event(
        WsRoute::Disconnect,
        &id,
        &ip,
        &HashMap::new(),
        &HeaderMap::new(),
        None,
    ) {
        let deadline = gw.deadline(WsRoute::Disconnect.timeout());
        adsync::deadline::scope(deadline, ws::handle(&gw.app, WsRoute::Disconnect, e)).await;
    }
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

/// The Management API: `POST` (PostToConnection), `GET` (GetConnection), `DELETE`
/// (DeleteConnection) on `/@connections/{id}`; 410 for a gone id.
pub(crate) async fn management(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    method: Method,
    body: Bytes,
) -> Response {
    let limit = gw.sockets.limits.max_message;
    gw.sockets.with(|sockets| {
        let Some(live) = sockets.get_mut(&id) else {
            return aws_error(StatusCode::GONE, "GoneException", "connection is gone");
        };
        match method {
            Method::POST => {
                if body.len() > limit {
                    return aws_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PayloadTooLargeException",
                        "payload too large",
                    );
                }
                let text = String::from_utf8_lossy(&body).into_owned();
                if live.tx.send(Outbound::Text(text)).is_err() {
                    return aws_error(StatusCode::GONE, "GoneException", "connection is gone");
                }
                live.last_active = chrono::Utc::now();
                StatusCode::OK.into_response()
            }
            Method::GET => (
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
            Method::DELETE => {
                let _ = live.tx.send(Outbound::Close);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        }
    })
}
