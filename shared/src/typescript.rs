//! TypeScript declarations of the resources, the event frames and the client messages, for
//! the client package (`client/src/types.d.ts`). Generated from the same tables as
//! `docs/fields.md` (the field tables, [`DocEvent`], [`Control`], [`ClientMessage`]);
//! a test keeps the file equal to them.

use std::fmt::Write;

use crate::domain::{FieldSpec, Kind, ProductStatus, Resource};
use crate::events::{Control, DocEvent, notice_name};
use crate::ws::ClientMessage;

/// Where a server-managed field appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Names the document: in every document, event and notice about it.
    Identity,
    /// In every document, never in a change.
    Created,
    /// In every document and every change.
    Stamp,
    /// In some documents, from their creation on; never in a change.
    Once,
    /// In some documents; a change may set or clear it.
    Sometimes,
}

struct ServerField {
    name: &'static str,
    ty: &'static str,
    role: Role,
    doc: &'static str,
}

const fn server(
    name: &'static str,
    ty: &'static str,
    role: Role,
    doc: &'static str,
) -> ServerField {
    ServerField {
        name,
        ty,
        role,
        doc,
    }
}

/// Every server-managed field of [`Resource::server_fields`] (a test checks that none is missing).
const SERVER_FIELDS: &[ServerField] = &[
    server(
        "id",
        "string",
        Role::Identity,
        "The document's id, made by the server (20 characters of `[A-Za-z0-9]`).",
    ),
    server(
        "businessId",
        "string",
        Role::Identity,
        "The business the product belongs to.",
    ),
    server(
        "uid",
        "string",
        Role::Identity,
        "The user's id (the token's `sub`).",
    ),
    server(
        "email",
        "string",
        Role::Once,
        "From the sign-in token, when it has one.",
    ),
    server(
        "createdAt",
        "Timestamp",
        Role::Created,
        "When the document was created.",
    ),
    server(
        "updatedAt",
        "Timestamp",
        Role::Stamp,
        "When the document was last written.",
    ),
    server(
        "processingUntil",
        "Timestamp",
        Role::Sometimes,
        "While `processing`: when the sweeper marks the product `failed` if nothing finished it.",
    ),
    server(
        "version",
        "Version",
        Role::Stamp,
        "The document's Firestore `updateTime` after the write: compare versions as strings.",
    ),
];

/// The data of each control frame: (name, TypeScript type, whether `data` may be absent, doc).
const CONTROL_DATA: &[(&str, &str, bool, &str)] = &[
    (
        "pong",
        "{ seq: number }",
        true,
        "The answer to `ping`, with the user's head `seq` (no data when the head could not be read).",
    ),
    (
        "resume:done",
        "{ seq: number }",
        false,
        "A `resume` replayed everything up to `seq`, the head.",
    ),
    (
        "resume:partial",
        "{ seq: number; head: number; retryAfterMs: number }",
        false,
        "A `resume` replayed everything up to `seq` and stopped: ask again from `seq` after `retryAfterMs`.",
    ),
    (
        "resync:required",
        "{ seq: number }",
        false,
        "What is missing cannot be replayed: bootstrap again.",
    ),
    (
        "auth:expiring",
        "{ expiresAt: number }",
        false,
        "The connection's token expires at `expiresAt` (unix seconds), within 5 minutes: send `auth`.",
    ),
    (
        "auth:ok",
        "{ expiresAt: number }",
        false,
        "The `auth` action refreshed the connection's token.",
    ),
    (
        "error",
        "{ code: string; message: string; retryAfterMs?: number }",
        false,
        "A message could not be handled.",
    ),
];

/// What each document event carries.
enum Payload {
    /// The whole document.
    Full(Resource),
    /// The changed fields, `null` for a cleared one, with the identity and stamps.
    Changes(Resource),
    /// The identity only.
    Deleted(Resource),
}

fn payload(event: DocEvent) -> Payload {
    match event {
        DocEvent::BusinessCreated => Payload::Full(Resource::Business),
        DocEvent::ProductCreated => Payload::Full(Resource::Product),
        DocEvent::ProductUpdated => Payload::Changes(Resource::Product),
        DocEvent::ProductDeleted => Payload::Deleted(Resource::Product),
        DocEvent::UserUpdated => Payload::Changes(Resource::User),
    }
}

impl Payload {
    fn resource(&self) -> Resource {
        match *self {
            Self::Full(r) | Self::Changes(r) | Self::Deleted(r) => r,
        }
    }

    fn type_name(&self) -> String {
        let noun = type_noun(self.resource());
        match self {
            Self::Full(_) => noun,
            Self::Changes(_) => format!("{noun}Changes"),
            Self::Deleted(_) => format!("{noun}Deleted"),
        }
    }
}

/// The action name and fields (name, TypeScript type) of a client message.
fn client_message(
    message: &ClientMessage,
) -> (&'static str, &'static [(&'static str, &'static str)]) {
    match message {
        ClientMessage::Ping => ("ping", &[]),
        ClientMessage::Resume { .. } => ("resume", &[("since", "number")]),
        ClientMessage::Auth { .. } => ("auth", &[("token", "string")]),
    }
}

/// One of each client message, in the order they are declared.
fn client_messages() -> [ClientMessage; 3] {
    [
        ClientMessage::Ping,
        ClientMessage::Resume { since: 0 },
        ClientMessage::Auth {
            token: String::new(),
        },
    ]
}

const RESOURCES: [Resource; 3] = [Resource::User, Resource::Business, Resource::Product];

/// `product` -> `Product`.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// `User`, `Business`, `Product`.
fn type_noun(resource: Resource) -> String {
    capitalized(resource.name())
}

fn ts_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text { .. } | Kind::Url | Kind::Currency => "string",
        Kind::Number { .. } => "number",
        Kind::Status => "ProductStatus",
        Kind::Colors { .. } => "HexColour[]",
        Kind::Tags { .. } => "string[]",
        Kind::Object => "JsonObject",
    }
}

fn server_field(name: &str) -> Option<&'static ServerField> {
    SERVER_FIELDS.iter().find(|f| f.name == name)
}

/// The server-managed fields of `resource` with the given roles, in the table's order.
fn server_fields(resource: Resource, roles: &[Role]) -> Vec<&'static ServerField> {
    resource
        .server_fields()
        .iter()
        .filter_map(|name| server_field(name))
        .filter(|f| roles.contains(&f.role))
        .collect()
}

fn doc_line(out: &mut String, text: &str) {
    let _ = writeln!(out, "  /** {text} */");
}

fn writable(out: &mut String, spec: &FieldSpec, patch: bool) {
    let what = spec.kind.describe();
    let ty = ts_type(spec.kind);
    if patch && spec.required {
        doc_line(out, &format!("{what}; required, so it cannot be cleared."));
        let _ = writeln!(out, "  {}?: {ty};", spec.name);
    } else if patch {
        doc_line(out, &format!("{what}; `null` clears it."));
        let _ = writeln!(out, "  {}?: {ty} | null;", spec.name);
    } else {
        doc_line(out, &what);
        let optional = if spec.required { "" } else { "?" };
        let _ = writeln!(out, "  {}{optional}: {ty};", spec.name);
    }
}

fn resource_types(out: &mut String, resource: Resource, changes: bool) {
    let noun = type_noun(resource);
    let name = resource.name();
    let _ = writeln!(
        out,
        "\n/** The fields a client writes on a {name} (docs/fields.md). */\nexport interface {noun}Fields {{"
    );
    for spec in resource.fields() {
        writable(out, spec, false);
    }
    out.push_str("}\n");

    let _ = writeln!(
        out,
        "\n/** A {name} as the API returns it: its fields and the server-managed ones. */\nexport interface {noun} extends {noun}Fields {{"
    );
    for field in resource.server_fields() {
        match server_field(field) {
            Some(f) => {
                doc_line(out, f.doc);
                let optional = if matches!(f.role, Role::Once | Role::Sometimes) {
                    "?"
                } else {
                    ""
                };
                let _ = writeln!(out, "  {}{optional}: {};", f.name, f.ty);
            }
            None => {
                doc_line(out, "Set by the server.");
                let _ = writeln!(out, "  {field}?: string;");
            }
        }
    }
    out.push_str("}\n");

    let identity = server_fields(resource, &[Role::Identity]);
    let _ = writeln!(
        out,
        "\n/** A {name} event too large for API Gateway, sent instead of it: refetch the {name}. */\nexport interface {noun}Truncated {{"
    );
    for f in &identity {
        let _ = writeln!(out, "  {}: {};", f.name, f.ty);
    }
    out.push_str("  version?: Version;\n  truncated: true;\n}\n");

    if !changes {
        return;
    }
    let _ = writeln!(
        out,
        "\n/** The body of a {name} update: some fields, merged into the stored ones. */\nexport interface {noun}Patch {{"
    );
    for spec in resource.fields() {
        writable(out, spec, true);
    }
    out.push_str("}\n");

    let _ = writeln!(
        out,
        "\n/** What a {name} update changed: the fields it named (`null` = cleared), the {name}'s identity, `updatedAt` and `version`. */\nexport interface {noun}Changes extends {noun}Patch {{"
    );
    for f in server_fields(resource, &[Role::Identity, Role::Stamp]) {
        doc_line(out, f.doc);
        let _ = writeln!(out, "  {}: {};", f.name, f.ty);
    }
    for f in server_fields(resource, &[Role::Sometimes]) {
        doc_line(out, f.doc);
        let _ = writeln!(out, "  {}?: {} | null;", f.name, f.ty);
    }
    out.push_str("}\n");
}

/// The declarations of `client/src/types.d.ts`.
pub fn declarations() -> String {
    let mut out = String::from(
        "// Generated from the Rust tables (shared/src/domain.rs: fields; shared/src/events/mod.rs:\n\
         // events and control frames; shared/src/ws.rs: client messages) by shared/src/typescript.rs.\n\
         // Do not edit: a test keeps this file equal to the code, and\n\
         // `UPDATE_DOCS=1 cargo test -p adsync --lib typescript` rewrites it.\n\n\
         /** A JSON value. */\n\
         export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };\n\
         /** A JSON object. */\n\
         export type JsonObject = { [key: string]: Json };\n\
         /** An RFC 3339 UTC timestamp, e.g. `2026-11-24T23:42:22.169Z`. */\n\
         export type Timestamp = string;\n\
         /**\n * A document's Firestore `updateTime`: RFC 3339 UTC with nine fractional digits, fixed width,\n * so string order is time order (`2026-11-24T23:42:22.113284000Z`).\n */\n\
         export type Version = string;\n\
         /** A colour as `#RRGGBB`. */\n\
         export type HexColour = `#${string}`;\n",
    );
    let statuses: Vec<String> = ProductStatus::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "/** A product's `status` (`draft` when it has none). */\nexport type ProductStatus = {};",
        statuses.join(" | ")
    );

    let events: Vec<Payload> = DocEvent::ALL.into_iter().map(payload).collect();
    for resource in RESOURCES {
        let changes = events
            .iter()
            .any(|p| matches!(p, Payload::Changes(r) if *r == resource));
        resource_types(&mut out, resource, changes);
        let new_noun = type_noun(resource);
        if resource != Resource::User {
            let _ = writeln!(
                out,
                "\n/** The body of a {} create. */\nexport type New{new_noun} = {new_noun}Fields;",
                resource.name()
            );
        }
    }
    for resource in RESOURCES {
        if !events
            .iter()
            .any(|p| matches!(p, Payload::Deleted(r) if *r == resource))
        {
            continue;
        }
        let noun = type_noun(resource);
        let _ = writeln!(
            out,
            "\n/** A deleted {}: its identity. */\nexport interface {noun}Deleted {{",
            resource.name()
        );
        for f in server_fields(resource, &[Role::Identity]) {
            let _ = writeln!(out, "  {}: {};", f.name, f.ty);
        }
        out.push_str("}\n");
    }

    out.push_str(
        "\n/** Each kind of document, by the name the client's `applyDocument` takes. */\nexport interface Documents {\n",
    );
    for resource in RESOURCES {
        let _ = writeln!(out, "  {}: {};", resource.name(), type_noun(resource));
    }
    out.push_str("}\n");

    out.push_str(
        "\n/** A data frame: one event of the user's stream, numbered by `seq` (per user). */\n\
         export interface EventFrame<E extends string = string, D = unknown> {\n  event: E;\n  seq: number;\n  ts: Timestamp;\n  data: D;\n}\n",
    );
    let mut frames = Vec::new();
    for event in DocEvent::ALL {
        let name = event.name();
        let p = payload(event);
        let mut data = p.type_name();
        // A too-large event goes out as a notice, under its own name or another's.
        if let Some(notice) = DocEvent::ALL
            .into_iter()
            .find(|e| notice_name(e.name()) == name)
        {
            data = format!(
                "{data} | {}Truncated",
                type_noun(payload(notice).resource())
            );
        }
        let frame = format!(
            "{}Frame",
            name.split(':').map(capitalized).collect::<String>()
        );
        let _ = writeln!(
            out,
            "/** `{name}` */\nexport type {frame} = EventFrame<'{name}', {data}>;"
        );
        frames.push(frame);
    }
    let _ = writeln!(
        out,
        "/** Every event the backend emits about the documents it writes. */\nexport type DocEventFrame = {};\n\
         /** The names of those events. */\nexport type DocEventName = DocEventFrame['event'];\n\
         /** An event a service broadcast (`POST /broadcast`; n8n progress, say): any other name, free data. */\n\
         export type BroadcastFrame = EventFrame<string, Json | undefined>;",
        frames.join(" | ")
    );

    out.push_str(
        "\n/** A control frame: no `seq`, not data. */\n\
         export interface ControlFrame<E extends string = string, D = unknown> {\n  event: E;\n  ts: Timestamp;\n  data: D;\n}\n",
    );
    let mut controls = Vec::new();
    out.push_str("/** Every control frame:\n");
    for name in Control::ALL.map(Control::name) {
        let (data, doc) = match CONTROL_DATA.iter().find(|(n, ..)| *n == name) {
            Some((_, data, true, doc)) => (format!("{data} | undefined"), *doc),
            Some((_, data, false, doc)) => ((*data).to_owned(), *doc),
            None => ("unknown".to_owned(), ""),
        };
        let _ = writeln!(out, " * - `{name}`: {doc}");
        controls.push(format!("ControlFrame<'{name}', {data}>"));
    }
    let _ = writeln!(
        out,
        " */\nexport type ControlFrames =\n  | {};\n/** The names of control frames. */\nexport type ControlEventName = ControlFrames['event'];",
        controls.join("\n  | ")
    );
    out.push_str("/** Any frame the server sends. */\nexport type ServerFrame = DocEventFrame | ControlFrames | BroadcastFrame;\n");

    out.push_str("\n/** What a client sends on the socket (route selection on `action`). */\nexport type ClientMessage =\n");
    for message in client_messages() {
        let (action, fields) = client_message(&message);
        let mut shape = format!("{{ action: '{action}'");
        for (field, ty) in fields {
            let _ = write!(shape, "; {field}: {ty}");
        }
        let _ = writeln!(out, "  | {shape} }}");
    }
    out.truncate(out.trim_end().len());
    out.push_str(";\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    #[test]
    fn every_server_field_is_described() {
        for resource in RESOURCES {
            for name in resource.server_fields() {
                assert!(
                    server_field(name).is_some(),
                    "server field `{name}` of {} has no entry in SERVER_FIELDS",
                    resource.name()
                );
            }
        }
    }

    #[test]
    fn every_control_frame_has_its_data() {
        let described: Vec<&str> = CONTROL_DATA.iter().map(|(name, ..)| *name).collect();
        assert_eq!(described, Control::ALL.map(Control::name).to_vec());
    }

    #[test]
    fn client_messages_are_what_the_server_parses() {
        for message in client_messages() {
            let (action, fields) = client_message(&message);
            let mut body = Map::new();
            body.insert("action".into(), json!(action));
            for (field, ty) in fields {
                let sample = if *ty == "number" {
                    json!(7)
                } else {
                    json!("t")
                };
                body.insert((*field).into(), sample);
            }
            let parsed = ClientMessage::parse(&Value::Object(body).to_string())
                .unwrap_or_else(|why| panic!("{action}: {why}"));
            assert_eq!(
                std::mem::discriminant(&parsed),
                std::mem::discriminant(&message),
                "{action}"
            );
        }
    }

    #[test]
    fn client_types_match_the_tables() {
        crate::generated::keep_equal("client/src/types.d.ts", &declarations());
    }
}
