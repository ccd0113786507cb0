//! The REST surface: the route table (one Lambda per route) and the one place where
//! requests become handler calls and `AppError`s become HTTP responses. CORS belongs to the
//! transport: API Gateway answers it when deployed, the local gateway locally.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde_json::Value;

use crate::app::App;
use crate::domain;
use crate::error::AppError;
use crate::generate::{self, GenerateRequest};
use crate::handlers;
use crate::ids::{BusinessId, ProductId, Uid};
use crate::images;

/// Every REST route, each served by its own Lambda (named by [`Route::function`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Login,
    /// `GET /me`: who is calling, from the credentials alone.
    Me,
    ListBusinesses,
    CreateBusiness,
    ListProducts,
    CreateProduct,
    UpdateProduct,
    DeleteProduct,
    UpdateUser,
    ListEvents,
    Broadcast,
    UploadProductImage,
    GenerateAdImage,
}

impl Route {
    pub const ALL: [Route; 13] = [
        Route::Login,
        Route::Me,
        Route::ListBusinesses,
        Route::CreateBusiness,
        Route::ListProducts,
        Route::CreateProduct,
        Route::UpdateProduct,
        Route::DeleteProduct,
        Route::UpdateUser,
        Route::ListEvents,
        Route::Broadcast,
        Route::UploadProductImage,
        Route::GenerateAdImage,
    ];

    /// Method and path template, as API Gateway's route key has them.
    pub fn key(self) -> (Method, &'static str) {
        match self {
            Self::Login => (Method::POST, "/auth/login"),
            Self::Me => (Method::GET, "/me"),
            Self::ListBusinesses => (Method::GET, "/businesses"),
            Self::CreateBusiness => (Method::POST, "/businesses"),
            Self::ListProducts => (Method::GET, "/products/{businessId}"),
            Self::CreateProduct => (Method::POST, "/products/{businessId}"),
            Self::UpdateProduct => (Method::PATCH, "/products/update/{businessId}/{productId}"),
            Self::DeleteProduct => (Method::DELETE, "/products/{businessId}/{productId}"),
            Self::UpdateUser => (Method::PATCH, "/users/{uid}"),
            Self::ListEvents => (Method::GET, "/events"),
            Self::Broadcast => (Method::POST, "/broadcast"),
            Self::UploadProductImage => (Method::POST, "/products/{businessId}/{productId}/image"),
            Self::GenerateAdImage => (Method::POST, "/ai/generate-ad-image"),
        }
    }

    /// The function's timeout (`Timeout` in `template.yaml`, which a test keeps equal): the
    /// invocation's deadline, and the local gateway's.
    pub fn timeout(self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Self::UploadProductImage => 20,
            Self::GenerateAdImage => 29,
            _ => 10,
        })
    }

    /// The Lambda (and Cargo binary, and `events/` sample) serving this route.
    pub fn function(self) -> &'static str {
        match self {
            Self::Login => "auth-login",
            Self::Me => "me",
            Self::ListBusinesses => "businesses-list",
            Self::CreateBusiness => "businesses-create",
            Self::ListProducts => "products-list",
            Self::CreateProduct => "products-create",
            Self::UpdateProduct => "products-update",
            Self::DeleteProduct => "products-delete",
            Self::UpdateUser => "users-update",
            Self::ListEvents => "events-list",
            Self::Broadcast => "broadcast",
            Self::UploadProductImage => "products-upload-image",
            Self::GenerateAdImage => "ai-generate-ad-image",
        }
    }

    /// The methods some route serves `path` with (the `Allow` header of a 405).
    pub fn methods_of(path: &str) -> Vec<Method> {
        Self::ALL
            .into_iter()
            .filter(|route| match_template(route.key().1, path).is_some())
            .map(|route| route.key().0)
            .collect()
    }

    /// Finds the route of a request path, with its path parameters (as API Gateway does).
    /// `Err(MethodNotAllowed)` when the path exists for another method.
    pub fn resolve(
        method: &Method,
        path: &str,
    ) -> Result<(Route, HashMap<String, String>), AppError> {
        let mut path_matched = false;
        for route in Self::ALL {
            let (m, template) = route.key();
            if let Some(params) = match_template(template, path) {
                if m == method {
                    return Ok((route, params));
                }
                path_matched = true;
            }
        }
        if path_matched {
            Err(AppError::MethodNotAllowed(format!(
                "{method} is not allowed on {path}"
            )))
        } else {
            Err(AppError::NotFound(format!("no route for {path}")))
        }
    }
}

fn match_template(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut t = template.trim_matches('/').split('/');
    let mut p = path
        .trim_end_matches('/')
        .trim_start_matches('/')
        .split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => {
                if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if ps.is_empty() {
                        return None;
                    }
                    params.insert(name.to_owned(), ps.to_owned());
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// A request as every transport (Lambda, the local gateway) hands it to [`dispatch`].
#[derive(Clone, Debug, Default)]
pub struct ApiRequest {
    pub headers: HeaderMap,
    pub path_params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Bytes,
}

#[derive(Clone, Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json(status: StatusCode, value: &Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            status,
            headers,
            body: Bytes::from(value.to_string()),
        }
    }

    pub fn error(err: &AppError) -> Self {
        if let AppError::Internal(detail) = err {
            tracing::error!(detail, "internal error");
        }
        let mut response = Self::json(err.status(), &err.body());
        if let Some(secs) = err.retry_after_secs() {
            response
                .headers
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The answer when a handler is stopped at its deadline, or a write got no answer.
pub fn out_of_time() -> AppError {
    AppError::Unavailable(
        "the request did not finish in time; it may or may not have taken effect".into(),
    )
}

/// Runs one route: path ids (400 before any I/O), the caller (401/403), the body
/// (400/413/415), then the handler; maps the result.
pub async fn dispatch(app: &App, route: Route, req: ApiRequest) -> ApiResponse {
    let handled = match crate::deadline::current() {
        // Stopped in time to answer with the JSON error rather than be killed mid-way.
        Some(deadline) => {
            tokio::time::timeout_at(crate::deadline::answer_by(deadline), run(app, route, &req))
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(route = route.function(), "stopped at the deadline");
                    Err(out_of_time())
                })
        }
        None => run(app, route, &req).await,
    };
    match handled {
        Ok((status, value)) => ApiResponse::json(status, &value),
        Err(err) => ApiResponse::error(&err),
    }
}

fn param<T>(
    req: &ApiRequest,
    name: &str,
    parse: fn(&str) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let raw = req
        .path_params
        .get(name)
        .ok_or_else(|| AppError::BadRequest(format!("missing path parameter `{name}`")))?;
    parse(raw)
}

fn json_body(req: &ApiRequest) -> Result<serde_json::Map<String, Value>, AppError> {
    if req.body.len() > domain::MAX_JSON_BODY {
        return Err(AppError::PayloadTooLarge {
            limit: domain::MAX_JSON_BODY,
        });
    }
    let content_type = req
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(AppError::UnsupportedMediaType(
            "send the body as Content-Type: application/json".into(),
        ));
    }
    domain::parse_object(&req.body)
}

/// The body of `POST /auth/login`: none (or `{}`) for the first answer, the `next` of the
/// previous one for the rest.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[serde(default)]
    after: Option<String>,
}

impl LoginRequest {
    fn parse(body: serde_json::Map<String, Value>) -> Result<Self, AppError> {
        serde_json::from_value(Value::Object(body))
            .map_err(|e| AppError::BadRequest(format!("login body: {e}")))
    }
}

fn query_u64(req: &ApiRequest, name: &str, default: u64) -> Result<u64, AppError> {
    match req.query.get(name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|_| {
            AppError::BadRequest(format!("query parameter `{name}` must be a whole number"))
        }),
    }
}

async fn run(app: &App, route: Route, req: &ApiRequest) -> Result<(StatusCode, Value), AppError> {
    use StatusCode as S;
    match route {
        Route::Login => {
            // No body: the first answer; `{"after": next}`: the rest of the bootstrap.
            let after = if req.body.is_empty() {
                None
            } else {
                Some(LoginRequest::parse(json_body(req)?)?)
            };
            let who = app.auth.authenticate(&req.headers).await?;
            let after = after.and_then(|r| r.after);
            Ok((S::OK, handlers::login(app, &who, after.as_deref()).await?))
        }
        Route::Me => {
            let who = app.auth.authenticate(&req.headers).await?;
            Ok((S::OK, handlers::me(&who)))
        }
        Route::ListBusinesses => {
            let who = app.auth.authenticate(&req.headers).await?;
            Ok((S::OK, handlers::list_businesses(app, &who).await?))
        }
        Route::CreateBusiness => {
            let who = app.auth.authenticate(&req.headers).await?;
            let body = json_body(req)?;
            Ok((
                S::CREATED,
                handlers::create_business(app, &who, body).await?,
            ))
        }
        Route::ListProducts => {
            let business = param(req, "businessId", BusinessId::parse)?;
            let who = app.auth.authenticate(&req.headers).await?;
            Ok((S::OK, handlers::list_products(app, &who, &business).await?))
        }
        Route::CreateProduct => {
            let business = param(req, "businessId", BusinessId::parse)?;
            let who = app.auth.authenticate(&req.headers).await?;
            let body = json_body(req)?;
            let product = handlers::create_product(app, &who, &business, body).await?;
            Ok((S::CREATED, product))
        }
        Route::UpdateProduct => {
            let business = param(req, "businessId", BusinessId::parse)?;
            let product = param(req, "productId", ProductId::parse)?;
            let who = app.auth.authenticate(&req.headers).await?;
            let body = json_body(req)?;
            let doc = handlers::update_product(app, &who, &business, &product, body).await?;
            Ok((S::OK, doc))
        }
        Route::DeleteProduct => {
            let business = param(req, "businessId", BusinessId::parse)?;
            let product = param(req, "productId", ProductId::parse)?;
            let who = app.auth.authenticate(&req.headers).await?;
            let deleted = handlers::delete_product(app, &who, &business, &product).await?;
            Ok((S::OK, deleted))
        }
        Route::UpdateUser => {
            let uid = param(req, "uid", Uid::parse)?;
            let who = app.auth.authenticate(&req.headers).await?;
            let body = json_body(req)?;
            Ok((S::OK, handlers::update_user(app, &who, &uid, body).await?))
        }
        Route::ListEvents => {
            let since = query_u64(req, "since", 0)?;
            let limit = query_u64(req, "limit", handlers::MAX_EVENTS_PAGE as u64)?;
            let who = app.auth.authenticate(&req.headers).await?;
            let limit = usize::try_from(limit).unwrap_or(handlers::MAX_EVENTS_PAGE);
            Ok((S::OK, handlers::list_events(app, &who, since, limit).await?))
        }
        Route::Broadcast => {
            let on_behalf_of = app.auth.authenticate_service(&req.headers).await?;
            let request = handlers::BroadcastRequest::parse(json_body(req)?)?;
            Ok((
                S::ACCEPTED,
                handlers::broadcast(app, &on_behalf_of, request).await?,
            ))
        }
        Route::UploadProductImage => {
            // The size first: nothing else is looked at in a body that is too large.
            if req.body.len() > images::MAX_UPLOAD_BYTES {
                return Err(AppError::PayloadTooLarge {
                    limit: images::MAX_UPLOAD_BYTES,
                });
            }
            let business = param(req, "businessId", BusinessId::parse)?;
            let product = param(req, "productId", ProductId::parse)?;
            let field = handlers::ImageField::parse(req.query.get("field").map(String::as_str))?;
            let who = app.auth.authenticate(&req.headers).await?;
            let image = images::parse_upload(&req.headers, &req.body)?;
            let doc = handlers::upload_product_image(app, &who, &business, &product, image, field)
                .await?;
            Ok((S::OK, doc))
        }
        Route::GenerateAdImage => {
            let who = app.auth.authenticate(&req.headers).await?;
            let request = GenerateRequest::parse(json_body(req)?)?;
            Ok((
                S::OK,
                generate::generate_ad_image(app, &who, request).await?,
            ))
        }
    }
}

/// What a browser on another origin may send: the CORS policy API Gateway applies when
/// deployed (`template.yaml`, `CorsConfiguration`) and the local gateway applies itself; a test
/// keeps the two equal.
pub const CORS_ALLOWED_HEADERS: [&str; 2] = ["authorization", "content-type"];
/// Response headers a page may read besides the safelisted ones: when to retry a 429 or 503.
pub const CORS_EXPOSED_HEADERS: [&str; 1] = ["retry-after"];
pub const CORS_ALLOWED_METHODS: [&str; 5] = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"];
/// How long a browser may cache a preflight's answer.
pub const CORS_MAX_AGE_SECS: u64 = 600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_routes_and_path_parameters() {
        let (route, params) = Route::resolve(&Method::PATCH, "/products/update/b1/p2").unwrap();
        assert_eq!(route, Route::UpdateProduct);
        assert_eq!(params["businessId"], "b1");
        assert_eq!(params["productId"], "p2");
        let (route, _) = Route::resolve(&Method::DELETE, "/products/b1/p2").unwrap();
        assert_eq!(route, Route::DeleteProduct);
        let (route, params) = Route::resolve(&Method::POST, "/products/b1/p2/image").unwrap();
        assert_eq!(route, Route::UploadProductImage);
        assert_eq!(params["productId"], "p2");
        let (route, _) = Route::resolve(&Method::POST, "/ai/generate-ad-image").unwrap();
        assert_eq!(route, Route::GenerateAdImage);
        let (route, _) = Route::resolve(&Method::GET, "/me").unwrap();
        assert_eq!(route, Route::Me);
        assert!(matches!(
            Route::resolve(&Method::GET, "/products/b1/p2/image"),
            Err(AppError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            Route::resolve(&Method::PUT, "/businesses"),
            Err(AppError::MethodNotAllowed(_))
        ));
        assert_eq!(
            Route::methods_of("/businesses"),
            [Method::GET, Method::POST]
        );
        assert_eq!(
            Route::methods_of("/products/b1"),
            [Method::GET, Method::POST]
        );
        assert!(Route::methods_of("/nope").is_empty());
        assert!(matches!(
            Route::resolve(&Method::GET, "/nope"),
            Err(AppError::NotFound(_))
        ));
        assert!(Route::resolve(&Method::GET, "/products/").is_err());
    }
}
