//! The WebSocket routes (`$connect`, `$disconnect`, `$default`) over API Gateway's
//! WebSocket event shape. The local gateway builds the same events, so both run this code.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use http::HeaderValue;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::AppError;
use crate::events::{control_frame, event_frame};
use crate::handlers::MAX_EVENTS_PAGE;
use crate::ids::ConnectionId;
use crate::registry::Connection;

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

    /// The Lambda (and Cargo binary) serving this route.
    pub fn function(self) -> &'static str {
        match self {
            Self::Connect => "ws-connect",
            Self::Disconnect => "ws-disconnect",
            Self::Default => "ws-default",
        }
    }
}

fn response(status: i64) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r
}

fn refuse(err: &AppError) -> ApiGatewayProxyResponse {
    if let AppError::Internal(detail) = err {
        tracing::error!(detail, "websocket route failed");
    }
    let mut r = response(i64::from(err.status().as_u16()));
    r.body = Some(Body::Text(err.body().to_string()));
    r
}

/// Handles one WebSocket event of `route`.
pub async fn handle(
    app: &App,
    route: WsRoute,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let Some(id) = event
        .request_context
        .connection_id
        .as_deref()
        .and_then(|id| ConnectionId::parse(id).ok())
    else {
        return refuse(&AppError::BadRequest("missing connection id".into()));
    };
    let result = match route {
        WsRoute::Connect => connect(app, &id, &event).await,
        WsRoute::Disconnect => disconnect(app, &id).await.map(|()| response(200)),
        WsRoute::Default => {
            on_message(app, &id, event.body.as_deref().unwrap_or_default()).await;
            Ok(response(200))
        }
    };
    result.unwrap_or_else(|err| refuse(&err))
}

/// The token of a connect request: a `Sec-WebSocket-Protocol` value that looks like a JWT
/// (browsers cannot set headers), else the `token` query parameter. Returns the protocol
/// value to echo, if that is where it came from.
fn connect_token(event: &ApiGatewayWebsocketProxyRequest) -> Option<(String, Option<String>)> {
    let from_protocol = event
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
    event
        .query_string_parameters
        .first("token")
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_owned(), None))
}

async fn connect(
    app: &App,
    id: &ConnectionId,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, AppError> {
    let (token, protocol) = connect_token(event).ok_or_else(|| {
        AppError::Unauthorized(
            "a token is required (Sec-WebSocket-Protocol or the `token` query parameter)".into(),
        )
    })?;
    let verified = app.auth.verify_id_token(&token).await?;
    let now = chrono::Utc::now().timestamp();
    app.connections
        .put(&Connection {
            id: id.clone(),
            uid: verified.uid.clone(),
            connected_at: now,
            token_expires_at: verified.expires_at,
            expires_at: now + CONNECTION_TTL_SECS,
        })
        .await?;
    tracing::info!(connection = %id, uid = %verified.uid, "connected");
    let mut ok = response(200);
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

async fn send(app: &App, id: &ConnectionId, frame: &str) {
    let outcome = app.pusher.post(id, frame.as_bytes()).await;
    if outcome != crate::push::PushOutcome::Delivered {
        tracing::warn!(connection = %id, outcome = outcome.label(), "reply not delivered");
    }
}

async fn send_error(app: &App, id: &ConnectionId, code: &str, message: &str) {
    let frame = control_frame("error", Some(json!({"code": code, "message": message})));
    send(app, id, &frame).await;
}

/// `$default`: the client's actions. Problems are answered with an `error` frame.
async fn on_message(app: &App, id: &ConnectionId, body: &str) {
    let message: Value = match serde_json::from_str(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return send_error(
                app,
                id,
                "bad_request",
                "send a JSON object with an `action`",
            )
            .await;
        }
    };
    match message.get("action").and_then(Value::as_str) {
        Some("ping") => send(app, id, &control_frame("pong", None)).await,
        Some("resume") => match message.get("since").and_then(Value::as_u64) {
            Some(since) => resume(app, id, since).await,
            None => {
                send_error(app, id, "bad_request", "`since` must be a whole number").await;
            }
        },
        Some("auth") => match message.get("token").and_then(Value::as_str) {
            Some(token) => reauth(app, id, token).await,
            None => send_error(app, id, "bad_request", "`token` must be a string").await,
        },
        _ => {
            send_error(
                app,
                id,
                "bad_request",
                "unknown action (expected ping, resume or auth)",
            )
            .await;
        }
    }
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

/// Replays every recorded event after `since`, in order, then `resume:done` (or
/// `resync:required` when some are no longer recorded).
async fn resume(app: &App, id: &ConnectionId, since: u64) {
    let Some(conn) = live_connection(app, id).await else {
        return;
    };
    let mut cursor = since;
    loop {
        let page = match app.events.since(&conn.uid, cursor, MAX_EVENTS_PAGE).await {
            Ok(page) => page,
            Err(err) => {
                tracing::error!(connection = %id, error = %err, "resume failed");
                return send_error(app, id, "internal", "resume failed; try again").await;
            }
        };
        if !page.complete {
            let frame = control_frame("resync:required", Some(json!({"seq": page.head})));
            return send(app, id, &frame).await;
        }
        // Posts go one at a time: the client must see them in seq order.
        for event in &page.events {
            send(app, id, &event_frame(event)).await;
            cursor = event.seq;
        }
        if !page.has_more || page.events.is_empty() {
            let frame = control_frame("resume:done", Some(json!({"seq": page.head.max(cursor)})));
            return send(app, id, &frame).await;
        }
    }
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
        "auth:ok",
        Some(json!({"expiresAt": refreshed.token_expires_at})),
    );
    send(app, id, &frame).await;
}
