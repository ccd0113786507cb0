//! The product's resources (user, business, product), their known fields, and the
//! validation every body goes through before any I/O.
//!
//! The field tables below are the contract; `docs/fields.md` is generated from them
//! (`fields_markdown`) and a test keeps the two equal.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::error::AppError;
use crate::store::Fields;

/// Largest accepted JSON request body (413 above it).
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Largest `metadata` object, serialized.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest URL field.
pub const MAX_URL_LEN: usize = 2048;

/// A product's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductStatus {
    /// The default.
    Draft,
    /// An ad is being made (by generation, or by a service such as n8n); it carries a
    /// `processingUntil` deadline, past which the sweeper marks it `failed`.
    Processing,
    /// The ad image and caption are there.
    Enriched,
    /// Making the ad failed; `error` says why.
    Failed,
}

impl ProductStatus {
    pub const ALL: [Self; 4] = [Self::Draft, Self::Processing, Self::Enriched, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Processing => "processing",
            Self::Enriched => "enriched",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The status of a stored product (`draft` when it has none).
    pub fn of(fields: &Fields) -> Option<Self> {
        match fields.get("status") {
            None => Some(Self::Draft),
            Some(value) => value.as_str().and_then(Self::parse),
        }
    }
}

/// What a field holds, with its limits.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A string of `min..=max` characters (`min` 1 also means not blank).
    Text { min: usize, max: usize },
    /// An `https://` URL without user or password (locally also `http://` to this
    /// machine), at most 2,048 characters.
    Url,
    /// A number in `min..=max`.
    Number { min: f64, max: f64 },
    /// An ISO 4217 code: three capital letters.
    Currency,
    /// A [`ProductStatus`].
    Status,
    /// Up to `max` colours as `#RRGGBB`.
    Colors { max: usize },
    /// Up to `max` strings of 1 to `len` characters.
    Tags { max: usize, len: usize },
    /// A JSON object of at most 16 KB.
    Object,
}

impl Kind {
    /// The type and limits in words, as `docs/fields.md` and the client's declarations say them.
    pub fn describe(self) -> String {
        match self {
            Kind::Text { min, max } => format!("string, {min} to {max} characters"),
            Kind::Url => format!("https URL, at most {MAX_URL_LEN} characters"),
            Kind::Number { min, max } => format!("number, {min} to {max}"),
            Kind::Currency => "ISO 4217 code (`USD`)".into(),
            Kind::Status => format!(
                "one of {} (default `draft`)",
                ProductStatus::ALL
                    .map(|s| format!("`{}`", s.as_str()))
                    .join(", ")
            ),
            Kind::Colors { max } => format!("list of at most {max} `#RRGGBB` colours"),
            Kind::Tags { max, len } => {
                format!("list of at most {max} strings of 1 to {len} characters")
            }
            Kind::Object => format!("JSON object, at most {MAX_METADATA_BYTES} bytes"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// Must be present on create and cannot be cleared.
    pub required: bool,
}

const fn field(name: &'static str, kind: Kind, required: bool) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required,
    }
}

const NAME: Kind = Kind::Text { min: 1, max: 200 };

pub const BUSINESS_FIELDS: &[FieldSpec] = &[
    field("name", NAME, true),
    field("description", Kind::Text { min: 0, max: 2000 }, false),
    field("category", Kind::Text { min: 0, max: 100 }, false),
    field("website", Kind::Url, false),
    field("logoUrl", Kind::Url, false),
    field("brandColors", Kind::Colors { max: 8 }, false),
    field("metadata", Kind::Object, false),
];

pub const PRODUCT_FIELDS: &[FieldSpec] = &[
    field("name", NAME, true),
    field("description", Kind::Text { min: 0, max: 5000 }, false),
    field("price", Kind::Number { min: 0.0, max: 1e9 }, false),
    field("currency", Kind::Currency, false),
    field("category", Kind::Text { min: 0, max: 100 }, false),
    field("colors", Kind::Colors { max: 8 }, false),
    field("tags", Kind::Tags { max: 20, len: 50 }, false),
    field("imageUrl", Kind::Url, false),
    field("generatedImageUrl", Kind::Url, false),
    field("caption", Kind::Text { min: 0, max: 2200 }, false),
    field("status", Kind::Status, false),
    field("error", Kind::Text { min: 0, max: 1000 }, false),
    field("metadata", Kind::Object, false),
];

pub const USER_FIELDS: &[FieldSpec] = &[
    field("displayName", NAME, false),
    field("photoURL", Kind::Url, false),
    field("locale", Kind::Text { min: 0, max: 35 }, false),
    field("timezone", Kind::Text { min: 0, max: 64 }, false),
    field("metadata", Kind::Object, false),
];

/// The resources a client writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    User,
    Business,
    Product,
}

impl Resource {
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            Self::User => USER_FIELDS,
            Self::Business => BUSINESS_FIELDS,
            Self::Product => PRODUCT_FIELDS,
        }
    }

    /// Fields only the server sets.
    pub fn server_fields(self) -> &'static [&'static str] {
        match self {
            Self::User => &["uid", "email", "createdAt", "updatedAt", "version"],
            Self::Business => &["id", "createdAt", "updatedAt", "version"],
            Self::Product => &[
                "id",
                "businessId",
                "createdAt",
                "updatedAt",
                "processingUntil",
                "version",
            ],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Business => "business",
            Self::Product => "product",
        }
    }
}

/// The current time as stored: RFC 3339 UTC with milliseconds, e.g. `2026-11-24T23:42:22.169Z`.
pub fn now_timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a JSON body into an object, with 400/413 for anything else.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, AppError> {
    if body.len() > MAX_JSON_BODY {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_JSON_BODY,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AppError::BadRequest(
            "request body must be a JSON object".into(),
        )),
        Err(err) => Err(AppError::BadRequest(format!(
            "request body is not valid JSON: {err}"
        ))),
    }
}

/// The longest value of a text field, from the field tables (0 for a field that is not text).
pub fn max_chars(resource: Resource, field: &str) -> usize {
    resource
        .fields()
        .iter()
        .find(|f| f.name == field)
        .map_or(0, |f| match f.kind {
            Kind::Text { max, .. } => max,
            _ => 0,
        })
}

/// A validated create body: known fields only, required ones present and not null (a `null`
/// optional field is as if left out).
pub fn validate_new(
    resource: Resource,
    body: Map<String, Value>,
    urls: UrlRule,
) -> Result<Fields, AppError> {
    for spec in resource.fields().iter().filter(|s| s.required) {
        if body.get(spec.name).is_none_or(Value::is_null) {
            return Err(AppError::BadRequest(format!(
                "field `{}` is required",
                spec.name
            )));
        }
    }
    let mut out = Fields::new();
    for (key, value) in body {
        let spec = spec_of(resource, &key)?;
        if value.is_null() {
            continue;
        }
        check(spec, &value, urls)?;
        out.insert(key, value);
    }
    Ok(out)
}

/// A validated partial update: the fields to set and the mask of every named field
/// (a `null` clears an optional field).
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    pub set: Fields,
    pub mask: Vec<String>,
}

pub fn validate_patch(
    resource: Resource,
    body: Map<String, Value>,
    urls: UrlRule,
) -> Result<Patch, AppError> {
    if body.is_empty() {
        return Err(AppError::BadRequest(format!(
            "a {} update needs at least one field",
            resource.name()
        )));
    }
    let mut patch = Patch {
        set: Fields::new(),
        mask: Vec::with_capacity(body.len()),
    };
    for (key, value) in body {
        let spec = spec_of(resource, &key)?;
        if value.is_null() {
            if spec.required {
                return Err(AppError::BadRequest(format!(
                    "field `{key}` is required and cannot be cleared"
                )));
            }
        } else {
            check(spec, &value, urls)?;
            patch.set.insert(key.clone(), value);
        }
        patch.mask.push(key);
    }
    Ok(patch)
}

fn spec_of(resource: Resource, key: &str) -> Result<&'static FieldSpec, AppError> {
    if resource.server_fields().contains(&key) {
        return Err(AppError::BadRequest(format!(
            "field `{key}` is set by the server"
        )));
    }
    resource
        .fields()
        .iter()
        .find(|s| s.name == key)
        .ok_or_else(|| AppError::BadRequest(format!("unknown {} field `{key}`", resource.name())))
}

fn check(spec: &FieldSpec, value: &Value, urls: UrlRule) -> Result<(), AppError> {
    let name = spec.name;
    let bad = |why: String| Err(AppError::BadRequest(format!("field `{name}` {why}")));
    match spec.kind {
        Kind::Text { min, max } => {
            let Some(s) = value.as_str() else {
                return bad("must be a string".into());
            };
            let len = s.chars().count();
            if len > max || len < min || (min > 0 && s.trim().is_empty()) {
                return bad(format!("must be {min} to {max} characters"));
            }
        }
        Kind::Url => {
            let Some(s) = value.as_str() else {
                return bad("must be a string".into());
            };
            if !is_acceptable_url(s, urls) {
                let schemes = match urls {
                    UrlRule::HttpsOnly => "an https URL",
                    UrlRule::HttpsOrLocalHttp => "an https URL (or http to this machine)",
                };
                return bad(format!(
                    "must be {schemes} without a user or password, of at most {MAX_URL_LEN} characters"
                ));
            }
        }
        Kind::Number { min, max } => match value.as_f64() {
            Some(n) if (min..=max).contains(&n) => {}
            Some(_) => return bad(format!("must be between {min} and {max}")),
            None => return bad("must be a number".into()),
        },
        Kind::Currency => match value.as_str() {
            Some(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) => {}
            _ => return bad("must be a three-letter currency code such as USD".into()),
        },
        Kind::Status => match value.as_str() {
            Some(s) if ProductStatus::parse(s).is_some() => {}
            _ => {
                let names: Vec<&str> = ProductStatus::ALL.map(ProductStatus::as_str).to_vec();
                return bad(format!("must be one of {}", names.join(", ")));
            }
        },
        Kind::Colors { max } => {
            let ok = value.as_array().is_some_and(|a| {
                a.len() <= max && a.iter().all(|c| c.as_str().is_some_and(is_hex_colour))
            });
            if !ok {
                return bad(format!(
                    "must be a list of at most {max} colours like #1A2B3C"
                ));
            }
        }
        Kind::Tags { max, len } => {
            let ok = value.as_array().is_some_and(|a| {
                a.len() <= max
                    && a.iter().all(|t| {
                        t.as_str()
                            .is_some_and(|s| !s.trim().is_empty() && s.chars().count() <= len)
                    })
            });
            if !ok {
                return bad(format!(
                    "must be a list of at most {max} strings of 1 to {len} characters"
                ));
            }
        }
        Kind::Object => {
            if !value.is_object() {
                return bad("must be an object".into());
            }
            if value.to_string().len() > MAX_METADATA_BYTES {
                return bad(format!(
                    "must be at most {MAX_METADATA_BYTES} bytes as JSON"
                ));
            }
            if let Err(why) = crate::store::storable_field(name, value) {
                return bad(format!("cannot be stored: {why}"));
            }
        }
    }
    Ok(())
}

/// `#RRGGBB`.
pub fn is_hex_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Which URLs a document may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlRule {
    /// `https://` only: deployed.
    HttpsOnly,
    /// Also `http://` to this machine: the local gateway serves its media so.
    HttpsOrLocalHttp,
}

/// An absolute URL (parsed as browsers do) with a host, no user or password, and a scheme
/// `rule` allows; at most [`MAX_URL_LEN`] characters.
pub fn is_acceptable_url(s: &str, rule: UrlRule) -> bool {
    if s.len() > MAX_URL_LEN || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Ok(url) = url::Url::parse(s) else {
        return false;
    };
    // `http://localhost:80@evil.com/` is evil.com: credentials in a URL only ever deceive.
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => rule == UrlRule::HttpsOrLocalHttp && crate::outbound::is_loopback_host(host),
        _ => false,
    }
}

/// The field tables as the Markdown of `docs/fields.md`.
pub fn fields_markdown() -> String {
    let mut out = String::from(
        "# Resource fields\n\nGenerated from `shared/src/domain.rs` (a test keeps this file equal to it).\n\
         Unknown fields, server-managed fields and wrong types are 400 with a message naming the field.\n\
         On update, `null` clears an optional field.\n",
    );
    for resource in [Resource::User, Resource::Business, Resource::Product] {
        out.push_str(&format!(
            "\n## {}\n\nServer-managed: {}.\n\n| field | type and limits | required |\n|---|---|---|\n",
            resource.name(),
            resource
                .server_fields()
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for spec in resource.fields() {
            let kind = spec.kind.describe();
            out.push_str(&format!(
                "| `{}` | {kind} | {} |\n",
                spec.name,
                if spec.required { "yes" } else { "no" }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn new_product(v: Value) -> Result<Map<String, Value>, AppError> {
        validate_new(Resource::Product, obj(v), UrlRule::HttpsOnly)
    }

    fn patch(v: Value, urls: UrlRule) -> Result<Patch, AppError> {
        validate_patch(Resource::Product, obj(v), urls)
    }

    #[test]
    fn create_needs_the_required_fields_and_names_the_bad_one() {
        for (body, named) in [
            (json!({"price": 3}), "`name`"),
            (json!({"name": "A", "price": "3"}), "`price`"),
            (json!({"name": "A", "colour": "red"}), "`colour`"),
        ] {
            let err = new_product(body).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
        // A required field sent as null is missing, not left out.
        let business = |v: Value| validate_new(Resource::Business, obj(v), UrlRule::HttpsOnly);
        let err = business(json!({"name": null})).unwrap_err();
        assert!(err.to_string().contains("`name` is required"), "{err}");
        let ok = business(json!({"name": "A", "website": null})).unwrap();
        assert!(!ok.contains_key("website"));
        let err = validate_new(
            Resource::Business,
            obj(json!({"name": "A", "id": "x"})),
            UrlRule::HttpsOnly,
        )
        .unwrap_err();
        assert!(err.to_string().contains("set by the server"), "{err}");
        let ok = new_product(
            json!({"name": "Mug", "price": 12.5, "currency": "EUR", "colors": ["#112233"]}),
        )
        .unwrap();
        assert_eq!(ok["price"], json!(12.5));
    }

    #[test]
    fn limits_are_enforced() {
        for name in [json!("x".repeat(201)), json!("  ")] {
            let business = obj(json!({ "name": name }));
            assert!(validate_new(Resource::Business, business, UrlRule::HttpsOnly).is_err());
        }
        let refused = [
            json!({"caption": "c".repeat(2201)}),
            json!({"metadata": {"blob": "m".repeat(MAX_METADATA_BYTES)}}),
            json!({"status": "done"}),
            json!({"metadata": {"a": [[1]]}}),
            json!({"metadata": {"": 1}}),
            json!({"metadata": {"x": {"__key__": 1}}}),
            json!({"imageUrl": "ftp://x/y"}),
            json!({"imageUrl": "http://evil.com/a"}),
        ];
        for body in refused {
            assert!(patch(body.clone(), UrlRule::HttpsOnly).is_err(), "{body}");
        }
        let nested = json!({"metadata": {"a": [{"b": [1]}]}});
        assert!(patch(nested, UrlRule::HttpsOnly).is_ok());
        let local = json!({"imageUrl": "http://127.0.0.1:3000/a"});
        assert!(patch(local, UrlRule::HttpsOrLocalHttp).is_ok());
    }

    #[test]
    fn urls_are_parsed_as_browsers_do() {
        let local = UrlRule::HttpsOrLocalHttp;
        for (url, deployed, in_local_mode) in [
            ("https://cdn.example.com/a.png", true, true),
            ("http://127.0.0.1:3000/media/a.png", false, true),
            ("http://localhost/media/a.png", false, true),
            ("http://[::1]:3000/a", false, true),
            // The host is evil.com: what precedes `@` is a user and password.
            ("http://localhost:80@evil.com/x", false, false),
            ("https://user@cdn.example.com/a.png", false, false),
            ("https://user:pw@cdn.example.com/a.png", false, false),
            ("http://127.0.0.1.evil.com/x", false, false),
            ("http://evil.com/a", false, false),
            ("https://", false, false),
            ("https://exa mple.com/a", false, false),
            ("ftp://example.com/a", false, false),
            ("javascript:alert(1)", false, false),
            ("/relative/path", false, false),
        ] {
            assert_eq!(
                is_acceptable_url(url, UrlRule::HttpsOnly),
                deployed,
                "{url} deployed"
            );
            assert_eq!(is_acceptable_url(url, local), in_local_mode, "{url} local");
        }
    }

    #[test]
    fn patch_masks_every_named_field_and_null_clears() {
        let clearing = patch(json!({"caption": null, "price": 2}), UrlRule::HttpsOnly).unwrap();
        assert_eq!(clearing.mask, ["caption", "price"]);
        assert_eq!(clearing.set.len(), 1);
        assert!(patch(json!({"name": null}), UrlRule::HttpsOnly).is_err());
        assert!(validate_patch(Resource::Product, Map::new(), UrlRule::HttpsOnly).is_err());
    }

    #[test]
    fn bodies_that_are_not_objects_are_rejected() {
        assert!(parse_object(b"").is_err());
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"{").is_err());
        let huge = vec![b' '; MAX_JSON_BODY + 1];
        assert!(matches!(
            parse_object(&huge),
            Err(AppError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn docs_match_the_field_tables() {
        crate::generated::keep_equal("docs/fields.md", &fields_markdown());
    }
}
