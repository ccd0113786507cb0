//! The WebSocket routes (`$connect`, `$disconnect`, `$default`), transport-neutral: a
//! [`WsRequest`] in, an [`ApiResponse`] out. `lambda` converts API Gateway's WebSocket events;
//! the local gateway calls [`handle`] from its own sockets.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::deadline;
use crate::error::AppError;
use crate::events::replay::{self, Ending};
use crate::events::{Control, control_frame, event_frame};
use crate::http::ApiResponse;
use crate::ids::ConnectionId;
use crate::registry::{Admission, Connection};

/// Most events one `resume` invocation replays; the client asks again from where it stopped
/// (`resume:partial`), so a backlog of any size is replayed in bounded steps.
pub const RESUME_PAGE: usize = 100;
/// A client further behind than this many seqs is told to bootstrap again instead: one login
/// is cheaper than replaying that many events one frame at a time.
pub const MAX_RESUME_BACKLOG: u64 = 1000;
/// Time a resume keeps for its last frame; below it, it stops and says where.
const RESUME_FRAME_TIME: Duration = Duration::from_millis(500);

/// API Gateway ends every WebSocket connection after 2 hours; the row lives a little longer
/// so the TTL, not a race, removes it.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600 + 10 * 60;

pub const SEC_WEBSOCKET_PROTOCOL: &str = "sec-websocket-protocol";

/// The three WebSocket routes, each its own Lambda.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsRoute {
    Connect,
    Disconnect,
    Default,
}

impl WsRoute {
    pub const ALL: [WsRoute; 3] = [WsRoute::Connect, WsRoute::Disconnect, WsRoute::Default];

    /// API Gateway's route key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Connect => "$connect",
            Self::Disconnect => "$disconnect",
            Self::Default => "$default",
        }
    }

    /// The function's timeout (`Timeout` in `template.yaml`).
    pub fn timeout(self) -> Duration {
        Duration::from_secs(10)
    }

    /// The Lambda (and Cargo binary) serving this route.
    pub fn function(self) -> &'static str {
        match self {
            Self::Connect => "ws-connect",
            Self::Disconnect => "ws-disconnect",
            Self::Default => "ws-default",
        }
    }
}

/// One WebSocket event, as every transport hands it to [`handle`].
#[derive(Clone, Debug, Default)]
pub struct WsRequest {
    /// The connection it is about (API Gateway's connection id).
    pub connection_id: String,
    /// The handshake's headers (`$connect` only).
    pub headers: HeaderMap,
    /// The connect URL's query parameters (`$connect` only).
    pub query: HashMap<String, String>,
    /// The message (`$default` only).
    pub body: String,
}

fn ok() -> ApiResponse {
    ApiResponse {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: bytes::Bytes::new(),
    }
}

/// Handles one WebSocket event of `route`: 200 lets a connection in (with the subprotocol to
/// echo), anything else refuses it with the JSON error.
pub async fn handle(app: &App, route: WsRoute, request: WsRequest) -> ApiResponse {
    let Ok(id) = ConnectionId::parse(&request.connection_id) else {
        return ApiResponse::error(&AppError::BadRequest("missing connection id".into()));
    };
    let work = async {
        match route {
            WsRoute::Connect => connect(app, &id, &request).await,
            WsRoute::Disconnect => disconnect(app, &id).await.map(|()| ok()),
            WsRoute::Default => {
                on_message(app, &id, &request.body).await;
                Ok(ok())
            }
        }
    };
    let result = match deadline::current() {
        Some(deadline) => tokio::time::timeout_at(deadline::answer_by(deadline), work)
            .await
            .unwrap_or_else(|_| Err(crate::http::out_of_time())),
        None => work.await,
    };
    result.unwrap_or_else(|err| ApiResponse::error(&err))
}

/// The token of a connect request: a `Sec-WebSocket-Protocol` value that looks like a JWT
/// (browsers cannot set headers), else the `token` query parameter. Returns the protocol
/// value to echo, if that is where it came from.
fn connect_token(request: &WsRequest) -> Option<(String, Option<String>)> {
    let from_protocol = request
        .headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .map(str::trim)
                .find(|p| p.matches('.').count() == 2)
                .map(str::to_owned)
        });
    if let Some(token) = from_protocol {
        return Some((token.clone(), Some(token)));
    }
    request
        .query
        .get("token")
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_owned(), None))
}

async fn connect(
    app: &App,
    id: &ConnectionId,
    request: &WsRequest,
) -> Result<ApiResponse, AppError> {
    let (token, protocol) = connect_token(request).ok_or_else(|| {
        AppError::Unauthorized(
            "a token is required (Sec-WebSocket-Protocol or the `token` query parameter)".into(),
        )
    })?;
    let verified = app.auth.verify_id_token(&token).await?;
    let now = chrono::Utc::now().timestamp();
    let connection = Connection {
        id: id.clone(),
        uid: verified.uid.clone(),
        connected_at: now,
        token_expires_at: verified.expires_at,
        expires_at: now + CONNECTION_TTL_SECS,
    };
    // One user cannot hold more than their share of sockets (and of pushes per event).
    let limit = app.limits.connections_per_user;
    if app.connections.admit(&connection, limit).await? == Admission::Full {
        return Err(AppError::TooManyRequests {
            message: format!(
                "too many open connections (at most {limit} per user); close one first"
            ),
            retry_after_secs: 60,
        });
    }
    tracing::info!(connection = %id, uid = %verified.uid, "connected");
    let mut ok = ok();
    if let Some(protocol) = protocol {
        // Browsers drop a connection whose chosen subprotocol is not echoed.
        if let Ok(value) = HeaderValue::from_str(&protocol) {
            ok.headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    Ok(ok)
}

async fn disconnect(app: &App, id: &ConnectionId) -> Result<(), AppError> {
    let removed = app.connections.remove(id).await?;
    tracing::info!(connection = %id, known = removed.is_some(), "disconnected");
    Ok(())
}

/// Posts one frame to the connection; whether it was delivered.
async fn send(app: &App, id: &ConnectionId, frame: &str) -> bool {
    let outcome = app.pusher.post(id, frame.as_bytes()).await;
    let delivered = outcome == crate::push::PushOutcome::Delivered;
    if !delivered {
        tracing::warn!(connection = %id, outcome = outcome.label(), "reply not delivered");
    }
    delivered
}

async fn send_error(app: &App, id: &ConnectionId, code: &str, message: &str) {
    let frame = control_frame(
        Control::Error,
        Some(json!({"code": code, "message": message})),
    );
    send(app, id, &frame).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_or_say_what_is_wrong() {
        assert_eq!(
            ClientMessage::parse(r#"{"action":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"resume","since":7}"#),
            Ok(ClientMessage::Resume { since: 7 })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"auth","token":"t"}"#),
            Ok(ClientMessage::Auth { token: "t".into() })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"resume","since":-1}"#),
            Err("`since` must be a whole number")
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"auth"}"#),
            Err("`token` must be a string")
        );
        assert!(ClientMessage::parse(r#"{"action":"jump"}"#).is_err());
        assert!(ClientMessage::parse("[1]").is_err());
        assert!(ClientMessage::parse("").is_err());
    }
}

/// What a client can send (route selection on `action`).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ClientMessage {
    Ping,
    Resume { since: u64 },
    Auth { token: String },
}

impl ClientMessage {
    /// Parses a message body; the error is the message of the `error` frame.
    pub fn parse(body: &str) -> Result<Self, &'static str> {
        let value: Value = match serde_json::from_str(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err("send a JSON object with an `action`"),
        };
        let action = value
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_owned);
        serde_json::from_value(value).map_err(|_| match action.as_deref() {
            Some("resume") => "`since` must be a whole number",
            Some("auth") => "`token` must be a string",
            _ => "unknown action (expected ping, resume or auth)",
        })
    }
}

/// `$default`: the client's actions. Problems are answered with an `error` frame.
async fn on_message(app: &App, id: &ConnectionId, body: &str) {
    match ClientMessage::parse(body) {
        Ok(ClientMessage::Ping) => pong(app, id).await,
        Ok(ClientMessage::Resume { since }) => resume(app, id, since).await,
        Ok(ClientMessage::Auth { token }) => reauth(app, id, &token).await,
        Err(message) => send_error(app, id, "bad_request", message).await,
    }
}

/// `pong`, with the user's head so that a client can tell it missed something (the loss of
/// the last event before a quiet spell shows nowhere else). Without it when it cannot be read.
async fn pong(app: &App, id: &ConnectionId) {
    let head = match app.connections.get(id).await {
        Ok(Some(conn)) => app.events.head(&conn.uid).await.ok(),
        _ => None,
    };
    let data = head.map(|h| json!({"seq": h.seq}));
    send(app, id, &control_frame(Control::Pong, data)).await;
}

/// The connection behind `id`, if it is still allowed to receive events.
async fn live_connection(app: &App, id: &ConnectionId) -> Option<Connection> {
    match app.connections.get(id).await {
        Ok(Some(conn)) if conn.token_expires_at > chrono::Utc::now().timestamp() => Some(conn),
        Ok(Some(conn)) => {
            send_error(
                app,
                id,
                "unauthorized",
                "token expired; reconnect with a fresh one",
            )
            .await;
            app.pusher.close(id).await;
            let _ = app.connections.remove(&conn.id).await;
            None
        }
        Ok(None) => {
            send_error(app, id, "unauthorized", "unknown connection; reconnect").await;
            app.pusher.close(id).await;
            None
        }
        Err(err) => {
            tracing::error!(connection = %id, error = %err, "connection lookup failed");
            send_error(app, id, "internal", "try again").await;
            None
        }
    }
}

/// Replays the recorded events after `since`, in order, a bounded number per invocation,
/// then says how it ended: `resume:done` (caught up), `resume:partial` (ask again from its
/// `seq`, after `retryAfterMs`), or `resync:required`.
async fn resume(app: &App, id: &ConnectionId, since: u64) {
    let Some(conn) = live_connection(app, id).await else {
        return;
    };
    // A client looping `resume` cannot multiply the load: a budget per connection.
    if let Err(err) = crate::limits::spend(app, crate::limits::Budget::Resumes, id.as_str()).await {
        let retry_after_ms = err.retry_after_secs().unwrap_or(1) * 1000;
        let frame = control_frame(
            Control::Error,
            Some(
                json!({"code": err.code(), "message": err.to_string(), "retryAfterMs": retry_after_ms}),
            ),
        );
        send(app, id, &frame).await;
        return;
    }
    let page = match app.events.after(&conn.uid, since, RESUME_PAGE).await {
        Ok(page) => page,
        Err(err) => {
            tracing::error!(connection = %id, error = %err, "resume failed");
            return send_error(app, id, "internal", "resume failed; try again").await;
        }
    };
    let head = page.head.seq;
    if head.saturating_sub(since) > MAX_RESUME_BACKLOG {
        let frame = control_frame(Control::ResyncRequired, Some(json!({"seq": head})));
        send(app, id, &frame).await;
        return;
    }
    let replayed = replay::replay_page(since, &page, app.timing.writer_lease);
    if replayed.ending == Ending::Resync {
        let frame = control_frame(Control::ResyncRequired, Some(json!({"seq": head})));
        send(app, id, &frame).await;
        return;
    }
    // Posts go one at a time: the client sees them in seq order.
    let mut mark = since;
    for event in &replayed.events {
        if deadline::short_of(RESUME_FRAME_TIME) {
            return partial(app, id, mark, head, Duration::ZERO).await;
        }
        if !send(app, id, &event_frame(event)).await {
            return;
        }
        mark = event.seq;
    }
    match replayed.ending {
        Ending::More { retry_after } => partial(app, id, replayed.mark, head, retry_after).await,
        _ => {
            let frame = control_frame(Control::ResumeDone, Some(json!({"seq": replayed.mark})));
            send(app, id, &frame).await;
        }
    }
}

async fn partial(app: &App, id: &ConnectionId, mark: u64, head: u64, retry_after: Duration) {
    let data = json!({"seq": mark, "head": head, "retryAfterMs": retry_after.as_millis() as u64});
    send(app, id, &control_frame(Control::ResumePartial, Some(data))).await;
}

/// Refreshes the connection's token in place; a token of another user closes it.
async fn reauth(app: &App, id: &ConnectionId, token: &str) {
    let Some(conn) = live_connection(app, id).await else {
        return;
    };
    let verified = match app.auth.verify_id_token(token).await {
        Ok(v) => v,
        Err(err) => return send_error(app, id, err.code(), &err.to_string()).await,
    };
    if verified.uid != conn.uid {
        send_error(app, id, "forbidden", "token of another user").await;
        app.pusher.close(id).await;
        let _ = app.connections.remove(id).await;
        return;
    }
    let refreshed = Connection {
        token_expires_at: verified.expires_at,
        ..conn
    };
    if let Err(err) = app.connections.put(&refreshed).await {
        tracing::error!(connection = %id, error = %err, "token refresh not stored");
        return send_error(app, id, "internal", "token refresh failed; try again").await;
    }
    let frame = control_frame(
        Control::AuthOk,
        Some(json!({"expiresAt": refreshed.token_expires_at})),
    );
    send(app, id, &frame).await;
}
