//! The OpenAPI 3.1 document of the REST routes: one operation per [`Route`], described by
//! the exhaustive match in [`operation`] (a new route does not compile until it has its arm
//! there); path parameters come from the route's template, bodies from the field tables,
//! error answers from [`AppError`].

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{ID_CHARS, capitalized, error_body, id_schema, schema_ref, shared_schemas};
use crate::auth::{ON_BEHALF_OF_HEADER, SERVICE_KEY_HEADER};
use crate::error::AppError;
use crate::events::DocEvent;
use crate::generate::MAX_PROMPT_CHARS;
use crate::handlers::MAX_EVENTS_PAGE;
use crate::http::Route;
use crate::images::{ImageKind, MAX_UPLOAD_BYTES};

/// Who may call a route.
enum Caller {
    /// A user's Firebase ID token, or a service acting for a user.
    User,
    /// Only a service (`X-Service-Key` + `X-On-Behalf-Of`).
    Service,
}

/// What a route takes as its body.
enum Body {
    None,
    /// A JSON object of this schema, which may also be left out.
    OptionalJson(Value),
    Json(Value),
    /// An uploaded image's bytes.
    Image,
}

/// One route as the document describes it, beyond its method and path.
struct Operation {
    id: &'static str,
    summary: &'static str,
    description: String,
    caller: Caller,
    query: Vec<Value>,
    body: Body,
    /// The success status, its description and the schema of its body.
    success: (StatusCode, &'static str, Value),
    /// The error statuses of this route besides those every route may answer
    /// ([`COMMON_ERRORS`]) and those its body brings (413, 415).
    errors: &'static [StatusCode],
    /// The events it pushes to the caller's connections.
    emits: &'static [DocEvent],
}

/// What any route may answer: a bad id or header (400), no or bad credentials (401), a
/// failed dependency (500), out of time (503).
const COMMON_ERRORS: [StatusCode; 4] = [
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::SERVICE_UNAVAILABLE,
];

fn array_of(item: &str) -> Value {
    json!({"type": "array", "items": schema_ref(item)})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// Describes `route` (exhaustive: every route has its arm).
fn operation(route: Route) -> Operation {
    use StatusCode as S;
    let seq = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    match route {
        Route::Login => Operation {
            id: "login",
            summary: "Log in: the user's state and the seq to resume from",
            description: "Verifies the token and creates `users/{uid}` from its claims on first login. \
                The first answer has `user`, `seq`, the businesses and the products that fit in 4 MiB, \
                and `next`; while `next` is not null, send `{\"after\": next}` for the documents that \
                follow (those answers have no `user` and no `seq`)."
                .into(),
            caller: Caller::User,
            query: vec![],
            body: Body::OptionalJson(json!({
                "type": "object",
                "properties": {"after": {
                    "type": ["string", "null"],
                    "pattern": format!("^(businesses(:{id})?|products(:{id}/{id})?)$", id = ID_CHARS),
                    "description": "the `next` of the previous answer (opaque: pass it back as it came)",
                }},
                "additionalProperties": false,
            })),
            success: (
                S::OK,
                "the user's state, or the next part of it",
                json!({
                    "type": "object",
                    "properties": {
                        "user": schema_ref("User"),
                        "businesses": array_of("Business"),
                        "products": array_of("Product"),
                        "seq": {"type": "integer", "minimum": 0, "description": "the mark to resume events from"},
                        "next": {"type": ["string", "null"], "description": "when not null, ask for the rest with `{\"after\": next}`"},
                    },
                    "required": ["businesses", "products", "next"],
                }),
            ),
            errors: &[],
            emits: &[],
        },
        Route::Me => Operation {
            id: "me",
            summary: "Who is calling: the caller's uid and email, from the credentials alone",
            description: "Reads and writes nothing. A service call answers for the user it acts \
                for, with no email."
                .into(),
            caller: Caller::User,
            query: vec![],
            body: Body::None,
            success: (
                S::OK,
                "the caller",
                json!({
                    "type": "object",
                    "properties": {
                        "uid": {"type": "string"},
                        "email": {"type": ["string", "null"]},
                    },
                    "required": ["uid", "email"],
                    "additionalProperties": false,
                }),
            ),
            errors: &[],
            emits: &[],
        },
        Route::ListBusinesses => Operation {
            id: "listBusinesses",
            summary: "List the caller's businesses, oldest first",
            description: String::new(),
            caller: Caller::User,
            query: vec![],
            body: Body::None,
            success: (S::OK, "the businesses", array_of("Business")),
            errors: &[],
            emits: &[],
        },
        Route::CreateBusiness => Operation {
            id: "createBusiness",
            summary: "Create a business",
            description: String::new(),
            caller: Caller::User,
            query: vec![],
            body: Body::Json(schema_ref("BusinessCreate")),
            success: (S::CREATED, "the new business", schema_ref("Business")),
            errors: &[S::TOO_MANY_REQUESTS],
            emits: &[DocEvent::BusinessCreated],
        },
        Route::ListProducts => Operation {
            id: "listProducts",
            summary: "List a business's products, oldest first",
            description: "404 when the business is not the caller's.".into(),
            caller: Caller::User,
            query: vec![],
            body: Body::None,
            success: (S::OK, "the products", array_of("Product")),
            errors: &[S::NOT_FOUND],
            emits: &[],
        },
        Route::CreateProduct => Operation {
            id: "createProduct",
            summary: "Create a product in a business",
            description: "404 when the business is missing.".into(),
            caller: Caller::User,
            query: vec![],
            body: Body::Json(schema_ref("ProductCreate")),
            success: (S::CREATED, "the new product", schema_ref("Product")),
            errors: &[S::NOT_FOUND, S::TOO_MANY_REQUESTS],
            emits: &[DocEvent::ProductCreated],
        },
        Route::UpdateProduct => Operation {
            id: "updateProduct",
            summary: "Update some of a product's fields",
            description: "Merge semantics: named fields are set, `null` clears an optional one. \
                404 when the product is missing. Setting `status` to `processing` gives the \
                product a `processingUntil` deadline."
                .into(),
            caller: Caller::User,
            query: vec![],
            body: Body::Json(schema_ref("ProductPatch")),
            success: (S::OK, "the whole product after the update", schema_ref("Product")),
            errors: &[S::NOT_FOUND, S::TOO_MANY_REQUESTS],
            emits: &[DocEvent::ProductUpdated],
        },
        Route::DeleteProduct => Operation {
            id: "deleteProduct",
            summary: "Delete a product",
            description: "404 when the product is missing.".into(),
            caller: Caller::User,
            query: vec![],
            body: Body::None,
            success: (S::OK, "what was deleted", schema_ref("ProductRef")),
            errors: &[S::NOT_FOUND, S::TOO_MANY_REQUESTS],
            emits: &[DocEvent::ProductDeleted],
        },
        Route::UpdateUser => Operation {
            id: "updateUser",
            summary: "Update some of the caller's profile fields",
            description: "Only the caller's own profile (403 for another uid); 404 before the first login."
                .into(),
            caller: Caller::User,
            query: vec![],
            body: Body::Json(schema_ref("UserPatch")),
            success: (S::OK, "the whole profile after the update", schema_ref("User")),
            errors: &[S::FORBIDDEN, S::NOT_FOUND, S::TOO_MANY_REQUESTS],
            emits: &[DocEvent::UserUpdated],
        },
        Route::ListEvents => Operation {
            id: "listEvents",
            summary: "The caller's recorded events after a seq (catch-up, polling fallback)",
            description: "`seq` is where the next page starts; `hasMore` asks for it (after \
                `retryAfterMs` when a write is still in flight); `complete: false` means something \
                after `since` is lost or expired: log in again. A page holds at most `limit` events \
                and 4 MiB."
                .into(),
            caller: Caller::User,
            query: vec![
                query("since", seq.clone(), "the mark to read after (default 0)"),
                query(
                    "limit",
                    seq,
                    &format!(
                        "most events in the page (default and most {MAX_EVENTS_PAGE}; 0 counts as 1)"
                    ),
                ),
            ],
            body: Body::None,
            success: (
                S::OK,
                "a page of events",
                json!({
                    "type": "object",
                    "properties": {
                        "events": array_of("EventFrame"),
                        "seq": {"type": "integer", "minimum": 0},
                        "head": {"type": "integer", "minimum": 0},
                        "complete": {"type": "boolean"},
                        "hasMore": {"type": "boolean"},
                        "retryAfterMs": {"type": "integer", "minimum": 1},
                    },
                    "required": ["events", "seq", "head", "complete", "hasMore"],
                }),
            ),
            errors: &[S::TOO_MANY_REQUESTS],
            emits: &[],
        },
        Route::Broadcast => Operation {
            id: "broadcast",
            summary: "Services only: push an event to a user's connections",
            description: "The event is recorded and pushed like the backend's own (n8n progress, say). \
                403 for a user's token, or a `uid` other than X-On-Behalf-Of."
                .into(),
            caller: Caller::Service,
            query: vec![],
            body: Body::Json(json!({
                "type": "object",
                "properties": {
                    "uid": {"anyOf": [id_schema(), {"type": "null"}], "description": "defaults to, and must equal, X-On-Behalf-Of"},
                    "event": schema_ref("EventName"),
                    "data": {"description": "any JSON value (default null)"},
                },
                "required": ["event"],
                "additionalProperties": false,
            })),
            success: (
                S::ACCEPTED,
                "recorded and pushed",
                json!({
                    "type": "object",
                    "properties": {
                        "uid": id_schema(),
                        "event": {"type": "string"},
                        "seq": {"type": "integer", "minimum": 1},
                    },
                    "required": ["uid", "event", "seq"],
                }),
            ),
            errors: &[S::FORBIDDEN, S::TOO_MANY_REQUESTS],
            emits: &[],
        },
        Route::UploadProductImage => Operation {
            id: "uploadProductImage",
            summary: "Store an uploaded image and set the product's `imageUrl` (or `generatedImageUrl`)",
            description: format!(
                "The body is the image's bytes, png, jpeg or webp (checked by its bytes, and they \
                 must agree with Content-Type), at most {MAX_UPLOAD_BYTES} bytes. 404 when the \
                 product is missing (nothing is left stored)."
            ),
            caller: Caller::User,
            query: vec![query(
                "field",
                json!({"type": "string", "enum": ["imageUrl", "generatedImageUrl"], "default": "imageUrl"}),
                "which product field the image's URL goes to",
            )],
            body: Body::Image,
            success: (S::OK, "the whole product after the update", schema_ref("Product")),
            errors: &[S::NOT_FOUND, S::TOO_MANY_REQUESTS],
            emits: &[DocEvent::ProductUpdated],
        },
        Route::GenerateAdImage => Operation {
            id: "generateAdImage",
            summary: "Make an ad image and caption for a product with the AI provider",
            description: "Sets the product `processing`, asks the AI provider, stores the image and \
                caption and sets it `enriched`; on any failure it is set `failed` with an `error`. \
                409 while the product is already `processing`; 502 and 504 are the AI provider's \
                error and time-out (the product is then `failed`)."
                .into(),
            caller: Caller::User,
            query: vec![],
            body: Body::Json(json!({
                "type": "object",
                "properties": {
                    "businessId": id_schema(),
                    "productId": id_schema(),
                    "prompt": {"type": ["string", "null"], "maxLength": MAX_PROMPT_CHARS, "description": "the user's direction; blank is none"},
                },
                "required": ["businessId", "productId"],
                "additionalProperties": false,
            })),
            success: (S::OK, "the enriched product", schema_ref("Product")),
            errors: &[
                S::NOT_FOUND,
                S::CONFLICT,
                S::TOO_MANY_REQUESTS,
                S::BAD_GATEWAY,
                S::GATEWAY_TIMEOUT,
            ],
            emits: &[DocEvent::ProductUpdated, DocEvent::ProductUpdated],
        },
    }
}

/// The `{name}`s of a path template.
fn path_parameters(template: &str) -> Vec<Value> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": schema_ref("Id")}))
        .collect()
}

/// The error answer of one kind (`components.responses`, by code).
fn error_response(kind: &AppError) -> Value {
    let mut response = json!({
        "description": format!("`{}`", kind.code()),
        "content": {"application/json": {"schema": error_body(kind)}},
    });
    if kind.retry_after_secs().is_some() {
        response["headers"] = json!({"Retry-After": {
            "required": true,
            "description": "seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 0},
        }});
    }
    response
}

fn request_body(body: &Body) -> Option<Value> {
    let json_body = |schema: &Value, required: bool| json!({"required": required, "content": {"application/json": {"schema": schema}}});
    match body {
        Body::None => None,
        Body::OptionalJson(schema) => Some(json_body(schema, false)),
        Body::Json(schema) => Some(json_body(schema, true)),
        Body::Image => {
            let content: Map<String, Value> = ImageKind::UPLOADABLE
                .iter()
                .map(|kind| {
                    let schema = json!({"type": "string", "format": "binary"});
                    (kind.content_type().to_owned(), json!({"schema": schema}))
                })
                .collect();
            Some(json!({"required": true, "content": content}))
        }
    }
}

fn operation_object(route: Route) -> Value {
    let op = operation(route);
    let (_, template) = route.key();
    let mut errors: Vec<StatusCode> = COMMON_ERRORS.to_vec();
    errors.extend_from_slice(op.errors);
    if !matches!(op.body, Body::None) {
        errors.extend([
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ]);
    }
    let mut responses = Map::new();
    let (status, description, schema) = &op.success;
    responses.insert(
        status.as_u16().to_string(),
        json!({"description": description, "content": {"application/json": {"schema": schema}}}),
    );
    for status in errors {
        let code = AppError::of_status(status).map_or("internal", |kind| kind.code());
        responses.insert(
            status.as_u16().to_string(),
            json!({"$ref": format!("#/components/responses/{code}")}),
        );
    }
    let mut parameters = path_parameters(template);
    parameters.extend(op.query);
    let security = match op.caller {
        Caller::User => json!([{"firebaseIdToken": []}, {"serviceKey": [], "onBehalfOf": []}]),
        Caller::Service => json!([{"serviceKey": [], "onBehalfOf": []}]),
    };
    let mut description = op.description;
    if !op.emits.is_empty() {
        let names: Vec<String> = op.emits.iter().map(|e| format!("`{}`", e.name())).collect();
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!(
            "Pushes to the caller's connections: {}.",
            names.join(", then ")
        ));
    }
    let mut object = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [tag(route)],
        "x-lambda": route.function(),
        "x-emits": op.emits.iter().map(|e| e.name()).collect::<Vec<_>>(),
        "parameters": parameters,
        "responses": responses,
        "security": security,
    });
    if !description.is_empty() {
        object["description"] = json!(description);
    }
    if let Some(body) = request_body(&op.body) {
        object["requestBody"] = body;
    }
    object
}

/// The section a route is listed in: its path's first segment.
fn tag(route: Route) -> String {
    let (_, template) = route.key();
    template
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in Route::ALL {
        let (method, template) = route.key();
        let item = paths
            .entry(template.to_owned())
            .or_insert_with(|| json!({}));
        item[method.as_str().to_ascii_lowercase()] = operation_object(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Ad sync backend: REST API",
            "version": super::VERSION,
            "description": "Every mutation is persisted to Firestore, then pushed as an event to every WebSocket \
                connection of that user (see the AsyncAPI document, `asyncapi.json`). Errors are always \
                `{\"error\": {\"code\", \"message\"}}`. Field limits: docs/fields.md. Generated from the \
                code (shared/src/contract); do not edit.",
        },
        "servers": [
            {"url": "http://127.0.0.1:3000", "description": "the local gateway (cargo run -p local-gateway)"},
            {
                "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
                "description": "deployed: the stack's HttpApiUrl output",
                "variables": {
                    "apiId": {"default": "your-api-id"},
                    "region": {"default": "us-east-1"},
                },
            },
        ],
        "paths": paths,
        "components": {
            "schemas": shared_schemas(),
            "responses": AppError::kinds()
                .iter()
                .map(|kind| (kind.code().to_owned(), error_response(kind)))
                .collect::<Map<String, Value>>(),
            "securitySchemes": {
                "firebaseIdToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a Firebase ID token (locally, an emulator token from GET /dev/token?uid=alice)",
                },
                "serviceKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": header_name(SERVICE_KEY_HEADER),
                    "description": "services (n8n): the shared service key, with X-On-Behalf-Of",
                },
                "onBehalfOf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": header_name(ON_BEHALF_OF_HEADER),
                    "description": "services: the uid the call acts for",
                },
            },
        },
    })
}

/// `x-service-key` as people write it: `X-Service-Key`.
fn header_name(lower: &str) -> String {
    lower
        .split('-')
        .map(capitalized)
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_openapi_json_is_the_generated_document() {
        super::super::check_file("openapi.json", &document());
    }

    #[test]
    fn every_route_is_an_operation_with_its_path_parameters() {
        let doc = document();
        for route in Route::ALL {
            let (method, template) = route.key();
            let op = &doc["paths"][template][method.as_str().to_ascii_lowercase()];
            assert_eq!(op["x-lambda"], route.function(), "{template}");
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let (_, params) = Route::resolve(&method, &template.replace(['{', '}'], "")).unwrap();
            let mut expected: Vec<&str> = params.keys().map(String::as_str).collect();
            expected.sort_unstable();
            let mut names = names;
            names.sort_unstable();
            assert_eq!(names, expected, "{template}");
        }
    }

    #[test]
    fn every_error_kind_is_a_response_and_every_reference_resolves() {
        let doc = document();
        let responses = &doc["components"]["responses"];
        for kind in AppError::kinds() {
            let schema = &responses[kind.code()]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["properties"]["error"]["properties"]["code"]["const"],
                kind.code()
            );
        }
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if let Some(target) = response["$ref"].as_str() {
                        let code = target.trim_start_matches("#/components/responses/");
                        let kind = AppError::of_status(status.parse().unwrap()).unwrap();
                        assert_eq!(code, kind.code(), "{status}");
                    }
                }
            }
        }
        assert_eq!(header_name("x-on-behalf-of"), "X-On-Behalf-Of");
    }
}
