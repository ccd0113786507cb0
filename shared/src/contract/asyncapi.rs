//! The AsyncAPI 3 document of the WebSocket: the client's actions ([`ClientMessage`]) with
//! their replies, the event frames ([`DocEvent`], and what services broadcast) and the control
//! frames ([`Control`]). Written from the backend's side: it receives the actions and sends
//! the frames. Each list is walked through an exhaustive match, so a new action, event or
//! control frame does not compile until it is described here.

use serde_json::{Map, Value, json};

use super::{capitalized, event_frame, event_payload, schema_ref, shared_schemas};
use crate::error::AppError;
use crate::events::{AUTH_EXPIRING_WINDOW_SECS, Control, DocEvent};
use crate::ws::{ClientMessage, MAX_RESUME_BACKLOG, RESUME_PAGE};

/// One message as the document lists it.
struct Message {
    /// Its key under `components.messages` (AsyncAPI keys allow no `:`).
    key: String,
    /// Its `event` or `action` on the wire.
    name: String,
    summary: String,
    payload: Value,
    example: Value,
}

/// `product:updated` → `productUpdated`.
fn key_of(name: &str) -> String {
    let mut key = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == ':' || c == '-' || c == '_' {
            upper = true;
        } else if upper {
            key.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            key.push(c);
        }
    }
    key
}

/// One example of each action the client sends.
pub fn client_examples() -> [ClientMessage; 3] {
    [
        ClientMessage::Ping,
        ClientMessage::Resume { since: 41 },
        ClientMessage::Auth {
            token: "<Firebase ID token>".into(),
        },
    ]
}

/// The client's action and the control frames that answer it.
fn client_message(message: &ClientMessage) -> (Message, Vec<Control>) {
    let action = |name: &str, props: Value, required: Vec<&str>, summary: &str, example: Value| {
        let mut properties = json!({"action": {"const": name}});
        if let (Some(all), Some(more)) = (properties.as_object_mut(), props.as_object()) {
            all.extend(more.clone());
        }
        let mut required_all = vec!["action"];
        required_all.extend(required);
        Message {
            key: format!("{}Action", key_of(name)),
            name: name.to_owned(),
            summary: summary.to_owned(),
            payload: json!({"type": "object", "properties": properties, "required": required_all}),
            example,
        }
    };
    match message {
        ClientMessage::Ping => (
            action(
                "ping",
                json!({}),
                vec![],
                "Asks for `pong` with the user's head; also keeps the connection inside API Gateway's 10-minute idle timeout.",
                json!({"action": "ping"}),
            ),
            vec![Control::Pong, Control::Error],
        ),
        ClientMessage::Resume { since } => (
            action(
                "resume",
                json!({"since": {"type": "integer", "minimum": 0, "description": "the client's mark: every seq up to it was received or passed over"}}),
                vec!["since"],
                &format!(
                    "Replays the recorded events after `since`, in order, at most {RESUME_PAGE} per resume, as normal event frames, then `resume:done`, `resume:partial` (ask again) or `resync:required` (more than {MAX_RESUME_BACKLOG} behind, or something lost: log in again). Send it once the socket is open, when a gap stays open, and when `pong`'s head is past the mark."
                ),
                json!({"action": "resume", "since": since}),
            ),
            vec![
                Control::ResumeDone,
                Control::ResumePartial,
                Control::ResyncRequired,
                Control::Error,
            ],
        ),
        ClientMessage::Auth { token } => (
            action(
                "auth",
                json!({"token": {"type": "string", "description": "a fresh Firebase ID token of the same user"}}),
                vec!["token"],
                "Refreshes the connection's token in place: `auth:ok`; a bad token gets `error` and the connection keeps its old one; a token of another user closes the connection.",
                json!({"action": "auth", "token": token}),
            ),
            vec![Control::AuthOk, Control::Error],
        ),
    }
}

fn control_message(control: Control) -> Message {
    let seq = |what: &str| json!({"type": "integer", "minimum": 0, "description": what});
    let retry = json!({"type": "integer", "minimum": 0, "description": "milliseconds to wait before asking again"});
    let expires = json!({"type": "integer", "description": "the token's expiry, Unix seconds"});
    let (summary, data, required, example): (String, Value, Vec<&str>, Value) = match control {
        Control::Pong => (
            "The answer to `ping`, with the user's head (left out when it cannot be read): a head past the client's mark means it missed something.".into(),
            json!({"seq": seq("the user's last seq")}),
            vec![],
            json!({"seq": 42}),
        ),
        Control::ResumeDone => (
            "A `resume` replayed everything up to `seq`, the head.".into(),
            json!({"seq": seq("the new mark")}),
            vec!["seq"],
            json!({"seq": 42}),
        ),
        Control::ResumePartial => (
            format!("A `resume` replayed everything up to `seq` and stopped: ask again from `seq` after `retryAfterMs` (0: a page of {RESUME_PAGE} ended; more: a write is still in flight)."),
            json!({"seq": seq("the new mark"), "head": seq("the user's last seq"), "retryAfterMs": retry.clone()}),
            vec!["seq", "head", "retryAfterMs"],
            json!({"seq": 140, "head": 230, "retryAfterMs": 0}),
        ),
        Control::ResyncRequired => (
            format!("Something after `since` is lost (a writer died, or it is older than the retention window), `since` is ahead of the head, or the client is more than {MAX_RESUME_BACKLOG} seqs behind: log in again."),
            json!({"seq": seq("the user's last seq")}),
            vec!["seq"],
            json!({"seq": 42}),
        ),
        Control::AuthExpiring => (
            format!("Sent with an event when the connection's token expires within {AUTH_EXPIRING_WINDOW_SECS} seconds: send `auth` with a fresh one, or the connection gets no more events."),
            json!({"expiresAt": expires.clone()}),
            vec!["expiresAt"],
            json!({"expiresAt": 1_795_000_000}),
        ),
        Control::AuthOk => (
            "The `auth` action refreshed the connection's token.".into(),
            json!({"expiresAt": expires}),
            vec!["expiresAt"],
            json!({"expiresAt": 1_795_000_000}),
        ),
        Control::Error => {
            let codes: Vec<&str> = AppError::kinds().iter().map(AppError::code).collect();
            (
                "A message could not be handled (or the connection's token expired: it is then closed).".into(),
                json!({
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                    "retryAfterMs": retry,
                }),
                vec!["code", "message"],
                json!({"code": "bad_request", "message": "unknown action (expected ping, resume or auth)"}),
            )
        }
    };
    let name = control.name();
    let mut data_schema = json!({"type": "object", "properties": data, "required": required});
    let mut frame_required = vec!["event", "ts"];
    if control != Control::Pong {
        frame_required.push("data");
    } else {
        data_schema.as_object_mut().map(|o| o.remove("required"));
    }
    Message {
        key: key_of(name),
        name: name.to_owned(),
        summary,
        payload: json!({
            "type": "object",
            "properties": {
                "event": {"const": name},
                "ts": {"type": "string", "format": "date-time"},
                "data": data_schema,
            },
            "required": frame_required,
        }),
        example: json!({"event": name, "ts": "2026-11-24T23:42:22.169Z", "data": example}),
    }
}

fn event_message(event: DocEvent) -> Message {
    let (summary, example) = match event {
        DocEvent::BusinessCreated => (
            "A business was created: the full business.",
            json!({"id": "b1", "name": "Bakery", "createdAt": "2026-11-24T23:42:22.169Z", "updatedAt": "2026-11-24T23:42:22.169Z", "version": "2026-11-24T23:42:22.170113000Z"}),
        ),
        DocEvent::ProductCreated => (
            "A product was created: the full product.",
            json!({"id": "p1", "businessId": "b1", "name": "Mug", "status": "draft", "createdAt": "2026-11-24T23:42:22.169Z", "updatedAt": "2026-11-24T23:42:22.169Z", "version": "2026-11-24T23:42:22.170113000Z"}),
        ),
        DocEvent::ProductUpdated => (
            "A product changed: the changed fields (`null`: cleared) with `id`, `businessId`, `updatedAt` and `version`; or `{id, businessId, version, truncated: true}` when the frame would exceed 128 KB (refetch). Apply each field only if the event's `version` is greater than the one held for that field.",
            json!({"id": "p1", "businessId": "b1", "status": "enriched", "generatedImageUrl": "https://example.com/ad.png", "updatedAt": "2026-11-24T23:42:22.101Z", "version": "2026-11-24T23:42:22.113284000Z"}),
        ),
        DocEvent::ProductDeleted => (
            "A product was deleted (final: ignore anything later about its id).",
            json!({"id": "p1", "businessId": "b1"}),
        ),
        DocEvent::UserUpdated => (
            "The user's profile changed: the changed fields with `uid`, `updatedAt` and `version`.",
            json!({"uid": "alice", "displayName": "Alice", "updatedAt": "2026-11-24T23:42:22.101Z", "version": "2026-11-24T23:42:22.113284000Z"}),
        ),
    };
    let name = event.name();
    Message {
        key: key_of(name),
        name: name.to_owned(),
        summary: summary.to_owned(),
        payload: event_frame(json!({"const": name}), event_payload(event)),
        example: json!({"event": name, "seq": 42, "ts": "2026-11-24T23:42:22.169Z", "data": example}),
    }
}

/// What services send with `POST /broadcast`.
fn broadcast_message() -> Message {
    Message {
        key: "broadcast".into(),
        name: "broadcast".into(),
        summary: "An event a service broadcast (`POST /broadcast`), with the data it sent; recorded and numbered like the backend's own.".into(),
        payload: event_frame(schema_ref("EventName"), json!({})),
        example: json!({"event": "ai:progress", "seq": 43, "ts": "2026-11-24T23:42:22.169Z", "data": {"productId": "p1", "percent": 50}}),
    }
}

fn message_object(m: &Message) -> Value {
    json!({
        "name": m.name,
        "title": m.name,
        "summary": m.summary,
        "contentType": "application/json",
        "payload": m.payload,
        "examples": [{"payload": m.example}],
    })
}

fn refs(keys: &[String]) -> Vec<Value> {
    keys.iter()
        .map(|k| json!({"$ref": format!("#/channels/connection/messages/{k}")}))
        .collect()
}

/// The whole document.
pub fn document() -> Value {
    let mut messages = Map::new();
    let add = |m: Message, messages: &mut Map<String, Value>| {
        let key = m.key.clone();
        messages.insert(key.clone(), message_object(&m));
        key
    };
    let controls: Vec<(Control, String)> = Control::ALL
        .into_iter()
        .map(|c| (c, add(control_message(c), &mut messages)))
        .collect();
    let control_key = |c: Control| {
        controls
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, key)| key.clone())
            .unwrap_or_default()
    };
    let events: Vec<String> = DocEvent::ALL
        .into_iter()
        .map(|e| add(event_message(e), &mut messages))
        .collect();
    let broadcast = add(broadcast_message(), &mut messages);
    let mut operations = Map::new();
    for example in client_examples() {
        let (message, answers) = client_message(&example);
        let name = message.name.clone();
        let key = add(message, &mut messages);
        let mut replies: Vec<String> = answers.into_iter().map(control_key).collect();
        if matches!(example, ClientMessage::Resume { .. }) {
            replies.splice(0..0, events.iter().cloned().chain([broadcast.clone()]));
        }
        operations.insert(
            format!("receive{}", capitalized(&key_of(&name))),
            json!({
                "action": "receive",
                "title": format!("{{\"action\": \"{name}\"}}"),
                "summary": format!("The client sends `{name}`."),
                "channel": {"$ref": "#/channels/connection"},
                "messages": refs(&[key]),
                "reply": {"channel": {"$ref": "#/channels/connection"}, "messages": refs(&replies)},
            }),
        );
    }
    let mut pushed = events;
    pushed.push(broadcast);
    operations.insert(
        "sendEvents".into(),
        json!({
            "action": "send",
            "title": "Events",
            "summary": "Every persisted change of the user's data, pushed to every connection of that user and no one else, one JSON text frame per event. Frames of concurrent writes may arrive in any order: apply fields by `version`.",
            "channel": {"$ref": "#/channels/connection"},
            "messages": refs(&pushed),
        }),
    );
    operations.insert(
        "sendNotices".into(),
        json!({
            "action": "send",
            "title": "Notices",
            "summary": "Control frames the backend sends on its own: the token is about to expire, or has (then the connection is closed).",
            "channel": {"$ref": "#/channels/connection"},
            "messages": refs(&[control_key(Control::AuthExpiring), control_key(Control::Error)]),
        }),
    );
    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|k| {
            (
                k.clone(),
                json!({"$ref": format!("#/components/messages/{k}")}),
            )
        })
        .collect();
    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "Ad sync backend: WebSocket API",
            "version": super::VERSION,
            "description": "One connection per browser tab. The backend pushes every persisted change of the user's data as an event frame (`event`, `seq`, `ts`, `data`) and answers the client's actions (`action`) with control frames, which carry no `seq`. Nothing is sent during the handshake: once open, send `resume`. The REST API is in the OpenAPI document (`openapi.json`). Generated from the code (shared/src/contract); do not edit.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:3000",
                "pathname": "/ws",
                "protocol": "ws",
                "description": "the local gateway (cargo run -p local-gateway)",
                "security": [{"$ref": "#/components/securitySchemes/tokenQuery"}, {"$ref": "#/components/securitySchemes/tokenProtocol"}],
            },
            "deployed": {
                "host": "{apiId}.execute-api.{region}.amazonaws.com",
                "pathname": "/{stage}",
                "protocol": "wss",
                "description": "deployed: the stack's WebSocketUrl output",
                "variables": {
                    "apiId": {"default": "your-api-id"},
                    "region": {"default": "us-east-1"},
                    "stage": {"default": "prod"},
                },
                "security": [{"$ref": "#/components/securitySchemes/tokenQuery"}, {"$ref": "#/components/securitySchemes/tokenProtocol"}],
            },
        },
        "channels": {
            "connection": {
                "title": "The user's connection",
                "description": "A missing or bad token refuses the connection (401); a user holding too many connections is refused with 429. A connection whose token has expired gets no more events: it is closed and the client reconnects with a fresh token.",
                "messages": channel_messages,
                "bindings": {"ws": {
                    "query": {
                        "type": "object",
                        "properties": {"token": {"type": "string", "description": "the Firebase ID token (or send it as a Sec-WebSocket-Protocol value)"}},
                    },
                }},
            },
        },
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": shared_schemas(),
            "securitySchemes": {
                "tokenQuery": {"type": "httpApiKey", "in": "query", "name": "token", "description": "the Firebase ID token in the connect URL"},
                "tokenProtocol": {"type": "httpApiKey", "in": "header", "name": "Sec-WebSocket-Protocol", "description": "the Firebase ID token as a subprotocol (browsers cannot set headers; it is echoed back): new WebSocket(url, [token])"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_asyncapi_json_is_the_generated_document() {
        super::super::check_file("asyncapi.json", &document());
    }

    #[test]
    fn examples_are_what_the_server_parses_and_sends() {
        let doc = document();
        for example in client_examples() {
            let (message, _) = client_message(&example);
            let text = message.example.to_string();
            assert_eq!(ClientMessage::parse(&text), Ok(example), "{text}");
        }
        let messages = doc["components"]["messages"].as_object().unwrap();
        for control in Control::ALL {
            assert!(
                messages.values().any(|m| m["name"] == control.name()),
                "{}",
                control.name()
            );
        }
        for event in DocEvent::ALL {
            assert!(messages.values().any(|m| m["name"] == event.name()));
        }
        assert_eq!(key_of("resync:required"), "resyncRequired");
    }
}
