//! The write path of one event: reserve a seq before the write, then record and push after.

use serde_json::Value;

use super::{DocEvent, fan_out, recorded};
use crate::app::App;
use crate::error::AppError;
use crate::ids::Uid;
use crate::limits::{self, Budget};
use crate::registry::{Connection, LogEntry, Reservation, Reserved};
use crate::store::StoreError;

/// A seq reserved for one write of one user, with that user's connections. Consumed by
/// [`Outbox::publish`] when the write succeeded, or [`Outbox::abandon`] when it failed; an
/// outbox dropped without either (the invocation stopped in between) leaves its seq missing,
/// which readers treat like a dead writer's.
pub struct Outbox<'a> {
    app: &'a App,
    uid: Uid,
    reservation: Reservation,
    /// `None` when the lookup failed; `publish` tries once more.
    connections: Option<Vec<Connection>>,
    finished: bool,
}

impl<'a> Outbox<'a> {
    /// Reserves the next seq of `uid` and looks up its connections, concurrently. Fails,
    /// with nothing written anywhere, when no seq can be reserved: a write without a seq could
    /// be lost to clients without their knowing.
    pub async fn open(app: &'a App, uid: &Uid) -> Result<Self, AppError> {
        Self::open_spending(app, uid, None).await
    }

    /// [`Outbox::open`], spending one use of the user's `budget` in the same write as the
    /// reservation: a spent budget is a 429, with nothing reserved and nothing written.
    pub async fn open_spending(
        app: &'a App,
        uid: &Uid,
        budget: Option<Budget>,
    ) -> Result<Self, AppError> {
        let quota = budget.map(|budget| limits::quota(app, budget));
        let (reserved, connections) =
            tokio::join!(app.events.reserve(uid, quota), app.connections.of_user(uid));
        let reservation = match reserved.map_err(|e| AppError::internal("event log", e))? {
            Reserved::Seq(reservation) => reservation,
            Reserved::OverQuota { quota, retry_after } => {
                return Err(limits::too_many(quota, retry_after));
            }
        };
        let connections = connections
            .map_err(|e| tracing::warn!(%uid, error = %e, "connections not listed; retrying after the write"))
            .ok();
        Ok(Self {
            app,
            uid: uid.clone(),
            reservation,
            connections,
            finished: false,
        })
    }

    pub fn seq(&self) -> u64 {
        self.reservation.seq
    }

    /// The write succeeded: records the event and pushes it to the user's connections,
    /// concurrently. Never fails, since the write is already persisted: a recording that
    /// fails leaves the seq missing (logged), and readers find out.
    pub async fn publish(mut self, name: &str, data: Value) -> u64 {
        self.finished = true;
        let seq = self.reservation.seq;
        let (event, frame) = recorded(seq, name, data);
        let entry = LogEntry {
            seq,
            prev_reserved_at_ms: self.reservation.prev_reserved_at_ms,
            event: Some(event),
        };
        let (app, uid) = (self.app, &self.uid);
        let record = async {
            if let Err(err) = app.events.record(uid, &entry).await {
                tracing::error!(%uid, seq, event = name, error = %err, "event not recorded; readers will resync");
            }
        };
        let push = async {
            let connections = match self.connections.take() {
                Some(connections) => connections,
                None => match app.connections.of_user(uid).await {
                    Ok(connections) => connections,
                    Err(err) => {
                        tracing::error!(%uid, seq, error = %err, "connections not listed; event not pushed");
                        return;
                    }
                },
            };
            fan_out(app, &connections, &frame).await;
        };
        tokio::join!(record, push);
        seq
    }

    /// The write failed. If it certainly wrote nothing, the seq is recorded as carrying no
    /// event, so readers pass over it; if it may have been applied, the seq is left missing,
    /// and readers that need it are told to resync once it is certainly lost.
    pub async fn abandon(mut self, wrote_nothing: bool) {
        self.finished = true;
        let (uid, seq) = (&self.uid, self.reservation.seq);
        if !wrote_nothing {
            tracing::warn!(%uid, seq, "a write of unknown outcome; its seq is left missing");
            return;
        }
        let entry = LogEntry {
            seq,
            prev_reserved_at_ms: self.reservation.prev_reserved_at_ms,
            event: None,
        };
        if let Err(err) = self.app.events.record(uid, &entry).await {
            tracing::warn!(%uid, seq, error = %err, "empty seq not recorded; readers will resync");
        }
    }

    /// Publishes `(event, data)` if `result` holds a success, abandons the seq otherwise;
    /// returns the value or the error.
    pub async fn finish<T>(
        self,
        result: Result<(T, DocEvent, Value), StoreError>,
    ) -> Result<T, StoreError> {
        match result {
            Ok((value, event, data)) => {
                self.publish(event.name(), data).await;
                Ok(value)
            }
            Err(err) => {
                self.abandon(err.wrote_nothing()).await;
                Err(err)
            }
        }
    }
}

impl Drop for Outbox<'_> {
    fn drop(&mut self) {
        if !self.finished {
            tracing::warn!(uid = %self.uid, seq = self.reservation.seq, "the invocation stopped between reserving a seq and recording it");
        }
    }
}
