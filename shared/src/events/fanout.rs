//! Pushing one frame to every connection of a user.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::json;

use super::AUTH_EXPIRING_WINDOW_SECS;
use crate::app::App;
use crate::push::PushOutcome;
use crate::registry::Connection;
use crate::telemetry::{self, PushMetrics};

/// Posts one frame to each of `connections`, concurrently (one slow or dead connection does
/// not hold up the others); deletes the gone ones and drops the ones whose token has expired.
/// Returns how many were delivered.
pub async fn fan_out(app: &App, connections: &[Connection], frame: &str) -> usize {
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
    if let Some(first) = connections.first() {
        // One line per event, not per post: the failures have their own.
        let slowest_ms = metrics.push_latency_ms.iter().copied().fold(0.0, f64::max);
        tracing::info!(
            uid = %first.uid,
            connections = connections.len(),
            delivered = metrics.events_pushed,
            gone = metrics.gone_connections,
            failed = metrics.failed_pushes,
            slowest_ms,
            "pushed"
        );
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
        let notice = super::control_frame(
            super::Control::AuthExpiring,
            Some(json!({"expiresAt": conn.token_expires_at})),
        );
        app.pusher.post(&conn.id, notice.as_bytes()).await;
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &outcome {
        PushOutcome::Delivered => {}
        PushOutcome::Gone => {
            tracing::info!(connection = %conn.id, uid = %conn.uid, "connection gone: removed");
            remove(app, conn).await;
        }
        other => {
            let why = match other {
                PushOutcome::Failed(why) => why.as_str(),
                _ => other.label(),
            };
            tracing::warn!(connection = %conn.id, uid = %conn.uid, why, "push failed");
        }
    }
    (outcome, latency_ms)
}

async fn remove(app: &App, conn: &Connection) {
    if let Err(err) = app.connections.remove(&conn.id).await {
        tracing::warn!(connection = %conn.id, error = %err, "connection not removed");
    }
}
