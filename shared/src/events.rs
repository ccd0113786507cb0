//! Events: recorded with a per-user `seq`, then pushed to every connection of that user.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::app::App;
use crate::ids::Uid;
use crate::push::{MAX_FRAME_BYTES, PushOutcome};
use crate::registry::{Connection, RecordedEvent};
use crate::telemetry::{self, PushMetrics};

pub const BUSINESS_CREATED: &str = "business:created";
pub const PRODUCT_CREATED: &str = "product:created";
pub const PRODUCT_UPDATED: &str = "product:updated";
pub const PRODUCT_DELETED: &str = "product:deleted";
pub const USER_UPDATED: &str = "user:updated";

/// Names of control frames: they carry no `seq` and cannot be broadcast.
pub const CONTROL_EVENTS: [&str; 6] = [
    "pong",
    "resume:done",
    "resync:required",
    "auth:expiring",
    "auth:ok",
    "error",
];

/// A connection whose token expires within this many seconds is told `auth:expiring`.
pub const AUTH_EXPIRING_WINDOW_SECS: i64 = 300;

/// The wire frame of a recorded event; a frame over API Gateway's limit becomes a small
/// `truncated` notice so the client refetches.
pub fn event_frame(event: &RecordedEvent) -> String {
    let frame = json!({"event": event.event, "seq": event.seq, "ts": event.ts, "data": event.data})
        .to_string();
    if frame.len() <= MAX_FRAME_BYTES {
        return frame;
    }
    let mut data = serde_json::Map::new();
    for key in ["id", "businessId", "uid"] {
        if let Some(v) = event.data.get(key) {
            data.insert(key.into(), v.clone());
        }
    }
    data.insert("truncated".into(), Value::Bool(true));
    let name = if data.contains_key("businessId") {
        PRODUCT_UPDATED
    } else {
        event.event.as_str()
    };
    json!({"event": name, "seq": event.seq, "ts": event.ts, "data": data}).to_string()
}

/// A control frame (no `seq`).
pub fn control_frame(event: &str, data: Option<Value>) -> String {
    let mut frame = json!({"event": event, "ts": crate::domain::now_timestamp()});
    if let Some(data) = data {
        frame["data"] = data;
    }
    frame.to_string()
}

/// Records the event and pushes it to every live connection of `uid`. Never fails: the write
/// that caused it is already persisted, so problems are logged and counted, not returned.
/// Returns the event's `seq` when it was recorded.
pub async fn publish(app: &App, uid: &Uid, event: &str, data: Value) -> Option<u64> {
    let (frame, seq) = match app.events.append(uid, event, &data).await {
        Ok(recorded) => (event_frame(&recorded), Some(recorded.seq)),
        Err(err) => {
            // Still push, without a seq: live tabs stay right; catch-up cannot include it.
            tracing::error!(%uid, event, error = %err, "event not recorded");
            let frame = json!({"event": event, "ts": crate::domain::now_timestamp(), "data": data});
            (frame.to_string(), None)
        }
    };
    fan_out(app, uid, &frame).await;
    seq
}

/// Posts one frame to every connection of `uid`, concurrently; deletes the gone ones and
/// drops the ones whose token has expired. Returns how many were delivered.
pub async fn fan_out(app: &App, uid: &Uid, frame: &str) -> usize {
    let connections = match app.connections.of_user(uid).await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(%uid, error = %err, "connections not listed; event not pushed");
            return 0;
        }
    };
    let now = chrono::Utc::now().timestamp();
    let results = join_all(
        connections
            .iter()
            .map(|c| push_one(app, c, frame.as_bytes(), now)),
    )
    .await;

    let mut metrics = PushMetrics::default();
    for (outcome, latency_ms) in &results {
        metrics.push_latency_ms.push(*latency_ms);
        match outcome {
            PushOutcome::Delivered => metrics.events_pushed += 1,
            PushOutcome::Gone => metrics.gone_connections += 1,
            _ => metrics.failed_pushes += 1,
        }
    }
    if !results.is_empty() {
        telemetry::emit(&metrics);
    }
    metrics.events_pushed as usize
}

async fn push_one(app: &App, conn: &Connection, frame: &[u8], now: i64) -> (PushOutcome, f64) {
    let started = Instant::now();
    if conn.token_expires_at <= now {
        // The token behind this socket has expired: no more events; the client reconnects.
        let closed = app.pusher.close(&conn.id).await;
        remove(app, conn).await;
        tracing::info!(connection = %conn.id, uid = %conn.uid, outcome = closed.label(), "dropped connection with expired token");
        return (PushOutcome::Gone, started.elapsed().as_secs_f64() * 1000.0);
    }
    let outcome = app.pusher.post(&conn.id, frame).await;
    if outcome == PushOutcome::Delivered && conn.token_expires_at - now <= AUTH_EXPIRING_WINDOW_SECS
    {
        let notice = control_frame(
            "auth:expiring",
            Some(json!({"expiresAt": conn.token_expires_at})),
        );
        app.pusher.post(&conn.id, notice.as_bytes()).await;
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &outcome {
        PushOutcome::Gone => remove(app, conn).await,
        PushOutcome::Failed(why) => {
            tracing::warn!(connection = %conn.id, uid = %conn.uid, why, "push failed");
        }
        _ => {}
    }
    tracing::info!(
        connection = %conn.id,
        uid = %conn.uid,
        outcome = outcome.label(),
        latency_ms,
        "push"
    );
    (outcome, latency_ms)
}

async fn remove(app: &App, conn: &Connection) {
    if let Err(err) = app.connections.remove(&conn.id).await {
        tracing::warn!(connection = %conn.id, error = %err, "connection not removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_frames_become_a_truncated_product_update() {
        let event = RecordedEvent {
            seq: 7,
            event: PRODUCT_UPDATED.into(),
            ts: "2026-11-24T23:42:22.169Z".into(),
            data: json!({"id": "p1", "businessId": "b1", "caption": "x".repeat(MAX_FRAME_BYTES)}),
        };
        let frame: Value = serde_json::from_str(&event_frame(&event)).unwrap();
        assert_eq!(frame["seq"], 7);
        assert_eq!(
            frame["data"],
            json!({"id": "p1", "businessId": "b1", "truncated": true})
        );
        let small = RecordedEvent {
            data: json!({"id": "p1"}),
            ..event
        };
        assert!(event_frame(&small).contains("\"id\":\"p1\""));
    }
}
