//! The API contracts as files: OpenAPI 3.1 for the REST routes ([`openapi`]) and AsyncAPI 3
//! for the WebSocket ([`asyncapi`]), generated from the route table, the field tables, the
//! error kinds, the client messages and the event names, so they cannot say other than the
//! code. `docs/openapi.json` and `docs/asyncapi.json` are their output; a test keeps the files
//! equal to it (`UPDATE_DOCS=1` rewrites them), and both documents share the schemas below
//! (`components.schemas`, the same path in both).

pub mod asyncapi;
pub mod openapi;

use serde_json::{Map, Value, json};

use crate::domain::{self, FieldSpec, Kind, ProductStatus, Resource};
use crate::error::AppError;
use crate::events::DocEvent;
use crate::ids::MAX_ID_LEN;

/// The contracts' version: the library's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Not blank as the server means it: at least one character that Rust's `char::is_whitespace`
/// (Unicode `White_Space`) does not count, spelled out because regex dialects differ on `\s`.
const NOT_BLANK: &str = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

/// A `$ref` to a shared schema.
pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A path id as [`crate::ids::is_id`] accepts it, as a regular expression without anchors
/// (`MAX_ID_LEN` spelled out: a test keeps the two equal).
const ID_CHARS: &str = "[A-Za-z0-9_-]{1,128}";

/// A path id (`businessId`, `productId`, `uid`) as [`crate::ids::is_id`] accepts it.
pub fn id_schema() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^{ID_CHARS}$"),
        "description": format!("1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, `_` or `-`"),
    })
}

/// A broadcast event name, as `POST /broadcast` accepts it.
fn event_name_schema() -> Value {
    let controls: Vec<&str> = crate::events::Control::ALL.map(|c| c.name()).to_vec();
    json!({
        "type": "string",
        "pattern": "^[a-z][a-z0-9_:-]{0,63}$",
        "not": {"enum": controls},
        "description": "lowercase letters, digits, `-`, `_` and `:`, starting with a letter, at most 64; not a control frame's name",
        "examples": ["ai:progress"],
    })
}

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time", "description": "RFC 3339 UTC, e.g. `2026-11-24T23:42:22.169Z`"})
}

fn version() -> Value {
    json!({
        "type": "string",
        "description": "the document's Firestore update time after the write, RFC 3339 UTC with nine fractional digits: string order is time order (see the event contract)",
    })
}

/// What a client may send in a field: the type and every limit [`domain`] checks.
fn input_field(kind: Kind) -> Value {
    match kind {
        Kind::Text { min, max } => {
            let mut text = json!({"type": "string", "minLength": min, "maxLength": max});
            if min > 0 {
                text["pattern"] = json!(NOT_BLANK);
                text["description"] = json!("not blank");
            }
            text
        }
        Kind::Url => json!({
            "type": "string",
            "format": "uri",
            "pattern": "^https://",
            "maxLength": domain::MAX_URL_LEN,
            "description": "an absolute https URL with a host and no user or password, parsed as browsers parse it (the local gateway also accepts http to this machine)",
        }),
        Kind::Number { min, max } => json!({"type": "number", "minimum": min, "maximum": max}),
        Kind::Currency => {
            json!({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code, e.g. `USD`"})
        }
        Kind::Status => status_schema(),
        Kind::Colors { max } => json!({
            "type": "array",
            "maxItems": max,
            "items": {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"},
        }),
        Kind::Tags { max, len } => json!({
            "type": "array",
            "maxItems": max,
            "items": {"type": "string", "maxLength": len, "pattern": NOT_BLANK},
        }),
        Kind::Object => {
            let mut object = schema_ref("Metadata");
            object["description"] = json!(format!(
                "at most {} bytes as JSON, maps and lists nested at most 20 deep, dotted key paths of at most 1,500 bytes",
                domain::MAX_METADATA_BYTES
            ));
            object
        }
    }
}

/// What a stored document holds in a field: the type (limits are the input's; stored data
/// may predate them).
fn output_field(kind: Kind) -> Value {
    match kind {
        Kind::Text { .. } | Kind::Url | Kind::Currency => json!({"type": "string"}),
        Kind::Number { .. } => json!({"type": "number"}),
        Kind::Status => status_schema(),
        Kind::Colors { .. } | Kind::Tags { .. } => {
            json!({"type": "array", "items": {"type": "string"}})
        }
        Kind::Object => json!({"type": "object"}),
    }
}

fn status_schema() -> Value {
    let names: Vec<&str> = ProductStatus::ALL.map(ProductStatus::as_str).to_vec();
    json!({"type": "string", "enum": names})
}

/// The server-managed fields of a resource, as documents carry them.
fn server_field(name: &str) -> Value {
    match name {
        "createdAt" | "updatedAt" => timestamp(),
        "processingUntil" => {
            let mut t = timestamp();
            t["description"] =
                json!("while `processing`: past this time the sweeper marks the product `failed`");
            t
        }
        "version" => version(),
        "email" => json!({"type": "string"}),
        _ => id_schema(),
    }
}

fn properties(fields: &[FieldSpec], schema: impl Fn(&FieldSpec) -> Value) -> Map<String, Value> {
    fields
        .iter()
        .map(|f| (f.name.to_owned(), schema(f)))
        .collect()
}

/// The stored document of a resource.
fn document(resource: Resource) -> Value {
    let mut props = properties(resource.fields(), |f| output_field(f.kind));
    for name in resource.server_fields() {
        props.insert((*name).to_owned(), server_field(name));
    }
    let key = match resource {
        Resource::User => "uid",
        Resource::Business | Resource::Product => "id",
    };
    json!({"type": "object", "properties": props, "required": [key, "version"]})
}

/// A field a client may send: an optional one may also be `null` (on create: left out; on
/// update: cleared).
fn sent_field(spec: &FieldSpec) -> Value {
    if spec.required {
        input_field(spec.kind)
    } else {
        json!({"anyOf": [input_field(spec.kind), {"type": "null"}]})
    }
}

/// A create body: the known fields, the required ones present, nothing else.
fn create_body(resource: Resource) -> Value {
    let fields = resource.fields();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "type": "object",
        "properties": properties(fields, sent_field),
        "required": required,
        "additionalProperties": false,
        "description": "an optional field sent as `null` is left out",
    })
}

/// A partial update: at least one known field; `null` clears an optional one.
fn patch_body(resource: Resource) -> Value {
    let props = properties(resource.fields(), sent_field);
    json!({
        "type": "object",
        "properties": props,
        "minProperties": 1,
        "additionalProperties": false,
        "description": "merge semantics: named fields are set, `null` clears an optional field, others are kept",
    })
}

/// An update event's payload: the changed fields (`null`: cleared) with the ids, `updatedAt`
/// and `version`; or, when the frame would be too large, only the ids, `version` and
/// `truncated: true` (refetch).
fn changes(resource: Resource) -> Value {
    let mut props = properties(
        resource.fields(),
        |f| json!({"anyOf": [output_field(f.kind), {"type": "null"}]}),
    );
    for name in resource.server_fields() {
        let schema = match *name {
            "processingUntil" => json!({"anyOf": [server_field(name), {"type": "null"}]}),
            _ => server_field(name),
        };
        props.insert((*name).to_owned(), schema);
    }
    props.insert(
        "truncated".into(),
        json!({"const": true, "description": "the change was too large for a frame: refetch the document"}),
    );
    let required = match resource {
        Resource::User => json!(["uid"]),
        Resource::Business | Resource::Product => json!(["id", "businessId"]),
    };
    json!({"type": "object", "properties": props, "required": required})
}

/// What a document event carries in `data`.
pub fn event_payload(event: DocEvent) -> Value {
    match event {
        DocEvent::BusinessCreated => schema_ref("Business"),
        DocEvent::ProductCreated => schema_ref("Product"),
        DocEvent::ProductUpdated => schema_ref("ProductChanges"),
        DocEvent::ProductDeleted => schema_ref("ProductRef"),
        DocEvent::UserUpdated => schema_ref("UserChanges"),
    }
}

/// An event frame (with `seq`): `event` is `name`'s schema, `data` is `data`.
pub fn event_frame(name: Value, data: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "event": name,
            "seq": {"type": "integer", "minimum": 1, "description": "per user, one more for each write attempted"},
            "ts": timestamp(),
            "data": data,
        },
        "required": ["event", "seq", "ts", "data"],
    })
}

/// The body of an error of this kind.
pub fn error_body(kind: &AppError) -> Value {
    json!({
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"const": kind.code()},
                    "message": {"type": "string"},
                },
                "required": ["code", "message"],
            },
        },
        "required": ["error"],
    })
}

/// The schemas both documents share, by name.
pub fn shared_schemas() -> Map<String, Value> {
    let scalar = json!({"type": ["null", "boolean", "number", "string"]});
    let mut schemas = Map::new();
    let mut put = |name: &str, schema: Value| {
        schemas.insert(name.to_owned(), schema);
    };
    put("Id", id_schema());
    put("User", document(Resource::User));
    put("Business", document(Resource::Business));
    put("Product", document(Resource::Product));
    put("UserPatch", patch_body(Resource::User));
    put("BusinessCreate", create_body(Resource::Business));
    put("ProductCreate", create_body(Resource::Product));
    put("ProductPatch", patch_body(Resource::Product));
    put("ProductChanges", changes(Resource::Product));
    put("UserChanges", changes(Resource::User));
    put(
        "ProductRef",
        json!({
            "type": "object",
            "properties": {"id": id_schema(), "businessId": id_schema()},
            "required": ["id", "businessId"],
        }),
    );
    put("EventName", event_name_schema());
    put(
        "EventFrame",
        event_frame(json!({"type": "string"}), json!({})),
    );
    // Firestore's rules for a map: no empty key, no `__reserved__` one, no list in a list.
    put(
        "Metadata",
        json!({
            "type": "object",
            "propertyNames": {"minLength": 1, "not": {"pattern": "^__[\\s\\S]*__$"}},
            "additionalProperties": schema_ref("MetadataValue"),
        }),
    );
    put(
        "MetadataValue",
        json!({"anyOf": [
            scalar,
            schema_ref("Metadata"),
            {"type": "array", "items": {"anyOf": [scalar, schema_ref("Metadata")]}},
        ]}),
    );
    schemas
}

/// `s` with its first letter in upper case.
fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Writes `generated` to `docs/<file>` under `UPDATE_DOCS=1`; otherwise fails when the file
/// differs (the staleness tests).
#[cfg(test)]
fn check_file(file: &str, generated: &Value) {
    let path = format!("{}/../docs/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = format!("{}\n", serde_json::to_string_pretty(generated).unwrap());
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != text {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, text).unwrap();
        } else {
            panic!("docs/{file} is stale: rerun with UPDATE_DOCS=1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_pattern_has_the_id_length() {
        assert!(ID_CHARS.ends_with(&format!("{{1,{MAX_ID_LEN}}}")));
    }

    /// The whitespace the pattern excludes is exactly what the server trims.
    #[test]
    fn not_blank_excludes_exactly_rusts_whitespace() {
        let listed: String = NOT_BLANK
            .trim_start_matches("[^")
            .trim_end_matches(']')
            .to_owned();
        let unescape = |s: &str| -> Vec<char> {
            let mut out = Vec::new();
            let mut rest = s;
            while !rest.is_empty() {
                let (c, tail) = match rest.strip_prefix('\\') {
                    Some(esc) if esc.starts_with('u') => {
                        let code = u32::from_str_radix(&esc[1..5], 16).unwrap();
                        (char::from_u32(code).unwrap(), &esc[5..])
                    }
                    Some(esc) => {
                        let c = match &esc[..1] {
                            "t" => '\t',
                            "n" => '\n',
                            "f" => '\u{c}',
                            "r" => '\r',
                            other => panic!("escape {other}"),
                        };
                        (c, &esc[1..])
                    }
                    None => (rest.chars().next().unwrap(), &rest[1..]),
                };
                out.push(c);
                rest = tail;
            }
            out
        };
        let chars = unescape(&listed);
        let mut set = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            if i + 2 < chars.len() && chars[i + 1] == '-' {
                set.extend(chars[i]..=chars[i + 2]);
                i += 3;
            } else {
                set.push(chars[i]);
                i += 1;
            }
        }
        let whitespace: Vec<char> = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        set.sort_unstable();
        assert_eq!(set, whitespace);
    }
}
