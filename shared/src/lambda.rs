//! The Lambda adapters: what every function's `main` calls.

use std::convert::Infallible;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use bytes::Bytes;
use lambda_http::{Body, RequestExt};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::http::{ApiRequest, Route, dispatch};
use crate::ws::{self, WsRoute};

pub type Error = lambda_runtime::Error;

async fn cold_start(route: Option<Route>) -> Result<App, Error> {
    crate::telemetry::init();
    let config = Config::from_env()?;
    if let Some(route) = route {
        check_route_config(&config, route)?;
    }
    Ok(App::from_config(config).await?)
}

/// The settings only some functions need: without them, that function stops at cold start
/// with a message naming them, rather than failing its requests.
pub fn check_route_config(config: &Config, route: Route) -> Result<(), ConfigError> {
    let needs_storage = matches!(route, Route::UploadProductImage | Route::GenerateAdImage);
    if needs_storage && config.storage.is_none() {
        return Err(ConfigError(format!(
            "STORAGE_BUCKET must be set for {}",
            route.function()
        )));
    }
    if route == Route::GenerateAdImage && config.ai.is_none() {
        return Err(ConfigError(format!(
            "AI_API_KEY (and AI_BASE_URL for a provider other than OpenAI), or AI_PROVIDER=offline, must be set for {}",
            route.function()
        )));
    }
    Ok(())
}

/// Converts an API Gateway HTTP API request (payload v2) into the transport-neutral shape.
pub fn api_request(req: lambda_http::Request) -> ApiRequest {
    let path_params = req
        .path_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let query = req
        .query_string_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    ApiRequest {
        headers: parts.headers,
        path_params,
        query,
        body,
    }
}

/// The invocation's deadline (`Context::deadline`, unix ms) as an instant.
pub fn deadline_of(context: &lambda_runtime::Context) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let left = u128::from(context.deadline).saturating_sub(now_ms);
    tokio::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
}

/// Serves one API Gateway HTTP request for `route`, within its invocation's deadline.
pub async fn serve_http(
    app: &App,
    route: Route,
    req: lambda_http::Request,
) -> lambda_http::Response<Body> {
    // Without a context (a request built by hand), the function's own timeout.
    let deadline = req.lambda_context_ref().map_or_else(
        || tokio::time::Instant::now() + route.timeout(),
        deadline_of,
    );
    let response = crate::deadline::scope(deadline, dispatch(app, route, api_request(req))).await;
    // JSON goes back as text, so API Gateway (and `sam local invoke`) show it as is.
    let body = match String::from_utf8(response.body.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(bytes) => Body::Binary(bytes.into_bytes()),
    };
    let mut out = lambda_http::Response::new(body);
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    out
}

/// The whole life of a REST Lambda: cold start once, then serve `route`.
pub async fn run_http(route: Route) -> Result<(), Error> {
    let app = cold_start(Some(route)).await?;
    let app = &app;
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, Infallible>(serve_http(app, route, req).await)
    }))
    .await
}

/// The whole life of a WebSocket Lambda: cold start once, then serve `route`.
pub async fn run_ws(route: WsRoute) -> Result<(), Error> {
    let app = cold_start(None).await?;
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let deadline = deadline_of(&event.context);
            let answer =
                crate::deadline::scope(deadline, ws::handle(app, route, event.payload)).await;
            Ok::<ApiGatewayProxyResponse, Infallible>(answer)
        },
    ))
    .await
}

/// The whole life of the sweeper Lambda (run on a schedule): cold start once, then, at each
/// invocation, mark the products stuck in `processing` as `failed`.
pub async fn run_sweeper() -> Result<(), Error> {
    let app = cold_start(None).await?;
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = deadline_of(&event.context);
            let sweep = crate::deadline::scope(deadline, crate::generate::sweep_stuck(app))
                .await
                .map_err(|e| Error::from(e.to_string()))?;
            Ok::<_, Error>(serde_json::json!({
                "processing": sweep.processing,
                "failed": sweep.failed,
            }))
        },
    ))
    .await
}
