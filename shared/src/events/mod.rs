//! Events: each user's stream of changes, numbered by `seq`, recorded for catch-up and pushed
//! to every connection of that user.
//!
//! The path of a change: [`Outbox::open`] reserves the seq and looks up the user's
//! connections, concurrently, before the write; the handler writes Firestore; then
//! [`Outbox::publish`] records the event and pushes it, concurrently (or
//! [`Outbox::abandon`] marks the seq empty when the write failed). So after the commit the
//! frame is one round trip from the sockets, and a writer that dies at any point leaves a
//! missing seq that readers detect ([`replay`]).

mod fanout;
mod outbox;
pub mod replay;

pub use fanout::fan_out;
pub use outbox::Outbox;

use serde_json::{Value, json};

use crate::push::MAX_FRAME_BYTES;
use crate::registry::RecordedEvent;

/// The events the backend emits about the documents it writes (services broadcast others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocEvent {
    BusinessCreated,
    ProductCreated,
    ProductUpdated,
    ProductDeleted,
    UserUpdated,
}

impl DocEvent {
    pub const ALL: [Self; 5] = [
        Self::BusinessCreated,
        Self::ProductCreated,
        Self::ProductUpdated,
        Self::ProductDeleted,
        Self::UserUpdated,
    ];

    /// The event's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::BusinessCreated => "business:created",
            Self::ProductCreated => "product:created",
            Self::ProductUpdated => "product:updated",
            Self::ProductDeleted => "product:deleted",
            Self::UserUpdated => "user:updated",
        }
    }
}

/// Control frames: answers and notices about the connection itself. They carry no `seq` and
/// their names cannot be broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Pong,
    ResumeDone,
    ResumePartial,
    ResyncRequired,
    AuthExpiring,
    AuthOk,
    Error,
}

impl Control {
    pub const ALL: [Self; 7] = [
        Self::Pong,
        Self::ResumeDone,
        Self::ResumePartial,
        Self::ResyncRequired,
        Self::AuthExpiring,
        Self::AuthOk,
        Self::Error,
    ];

    /// The frame's `event` on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pong => "pong",
            Self::ResumeDone => "resume:done",
            Self::ResumePartial => "resume:partial",
            Self::ResyncRequired => "resync:required",
            Self::AuthExpiring => "auth:expiring",
            Self::AuthOk => "auth:ok",
            Self::Error => "error",
        }
    }

    /// Whether `name` is a control frame's.
    pub fn is_control(name: &str) -> bool {
        Self::ALL.iter().any(|c| c.name() == name)
    }
}

/// A connection whose token expires within this many seconds is told `auth:expiring`.
pub const AUTH_EXPIRING_WINDOW_SECS: i64 = 300;

/// The event as it is recorded and sent, with its wire frame. One whose frame would exceed
/// API Gateway's limit is cut down to a notice that names what changed (`truncated: true`),
/// so the client refetches it; a product's notice is a `product:updated`, whatever the
/// product event was.
pub fn recorded(seq: u64, name: &str, data: Value) -> (RecordedEvent, String) {
    let event = RecordedEvent {
        seq,
        event: name.to_owned(),
        ts: crate::domain::now_timestamp(),
        data,
    };
    let frame = event_frame(&event);
    if frame.len() <= MAX_FRAME_BYTES {
        return (event, frame);
    }
    let mut notice = serde_json::Map::new();
    for key in ["id", "businessId", "uid", "version"] {
        if let Some(v) = event.data.get(key) {
            notice.insert(key.into(), v.clone());
        }
    }
    notice.insert("truncated".into(), Value::Bool(true));
    let notice = RecordedEvent {
        event: notice_name(name).to_owned(),
        data: Value::Object(notice),
        ..event
    };
    let frame = event_frame(&notice);
    (notice, frame)
}

/// The name a too-large event's notice goes out under: a product's is a `product:updated`,
/// whatever the product event was (the client refetches the product either way).
pub fn notice_name(name: &str) -> &str {
    if name.starts_with("product:") {
        DocEvent::ProductUpdated.name()
    } else {
        name
    }
}

/// A frame on the wire, borrowed from its event (no copy of the data to serialize it);
/// the fields in the order a JSON object of them has always had.
#[derive(serde::Serialize)]
struct Frame<'a> {
    data: &'a Value,
    event: &'a str,
    seq: u64,
    ts: &'a str,
}

/// The wire frame of a recorded event.
pub fn event_frame(event: &RecordedEvent) -> String {
    let frame = Frame {
        data: &event.data,
        event: &event.event,
        seq: event.seq,
        ts: &event.ts,
    };
    // Serialising a `Value` with string keys cannot fail.
    serde_json::to_string(&frame).unwrap_or_default()
}

/// A control frame (no `seq`).
pub fn control_frame(control: Control, data: Option<Value>) -> String {
    let mut frame = json!({"event": control.name(), "ts": crate::domain::now_timestamp()});
    if let Some(data) = data {
        frame["data"] = data;
    }
    frame.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_events_become_a_truncated_notice() {
        let big = "x".repeat(MAX_FRAME_BYTES);
        let (event, sent) = recorded(
            7,
            DocEvent::ProductCreated.name(),
            json!({"id": "p1", "businessId": "b1", "version": "v", "caption": big}),
        );
        assert_eq!(sent, event_frame(&event), "the frame is the notice's");
        assert_eq!(event.event, "product:updated");
        assert_eq!(
            event.data,
            json!({"id": "p1", "businessId": "b1", "version": "v", "truncated": true})
        );
        let (user, _) = recorded(8, "user:updated", json!({"uid": "u1", "displayName": big}));
        assert_eq!(user.event, "user:updated");
        assert_eq!(user.data, json!({"uid": "u1", "truncated": true}));
        let (small, _) = recorded(9, "product:created", json!({"id": "p1"}));
        assert_eq!(
            (small.event.as_str(), small.data),
            ("product:created", json!({"id": "p1"}))
        );
        let frame: Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(frame["seq"], 7);
        assert!(sent.len() < 1024);
        // The frame's fields, in the order clients have always had them.
        assert!(
            sent.starts_with(r#"{"data":{"businessId":"b1","id":"p1","#),
            "{sent}"
        );
        assert!(
            sent.contains(r#""event":"product:updated","seq":7,"ts":""#),
            "{sent}"
        );
    }
}
