//! The Lambda adapters: what every function's `main` calls.

use std::convert::Infallible;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use bytes::Bytes;
use lambda_http::{Body, RequestExt};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::app::App;
use crate::config::Config;
use crate::function::Function;
use crate::http::{ApiRequest, Route, dispatch};
use crate::ws::{self, WsRequest, WsRoute};

pub type Error = lambda_runtime::Error;

async fn cold_start(function: Function) -> Result<App, Error> {
    crate::telemetry::init();
    let config = Config::from_env_for(function)?;
    Ok(App::build(config, function).await?)
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

/// The invocation's deadline (`Context::deadline`, unix ms) as an instant; the function's
/// own `timeout` from now when the context has none (an event built by hand).
pub fn deadline_of(
    context: Option<&lambda_runtime::Context>,
    timeout: std::time::Duration,
) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let Some(deadline_ms) = context.map(|c| c.deadline).filter(|d| *d > 0) else {
        return now + timeout;
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let left = u128::from(deadline_ms).saturating_sub(now_ms);
    now + std::time::Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
}

/// Serves one API Gateway HTTP request for `route`, within its invocation's deadline.
pub async fn serve_http(
    app: &App,
    route: Route,
    req: lambda_http::Request,
) -> lambda_http::Response<Body> {
    let deadline = deadline_of(req.lambda_context_ref(), route.timeout());
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
async fn run_http(route: Route) -> Result<(), Error> {
    let app = cold_start(Function::Http(route)).await?;
    let app = &app;
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, Infallible>(serve_http(app, route, req).await)
    }))
    .await
}

/// The whole life of a WebSocket Lambda: cold start once, then serve `route`.
async fn run_ws(route: WsRoute) -> Result<(), Error> {
    let app = cold_start(Function::Ws(route)).await?;
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<ApiGatewayProxyResponse, Infallible>(serve_ws(app, route, event).await)
        },
    ))
    .await
}

/// API Gateway's WebSocket event in the transport-neutral shape.
pub fn ws_request(event: ApiGatewayWebsocketProxyRequest) -> WsRequest {
    WsRequest {
        connection_id: event.request_context.connection_id.unwrap_or_default(),
        headers: event.headers,
        query: event
            .query_string_parameters
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        body: event.body.unwrap_or_default(),
    }
}

/// Serves one API Gateway WebSocket event for `route`, within its invocation's deadline.
pub async fn serve_ws(
    app: &App,
    route: WsRoute,
    event: LambdaEvent<ApiGatewayWebsocketProxyRequest>,
) -> ApiGatewayProxyResponse {
    let deadline = deadline_of(Some(&event.context), route.timeout());
    let request = ws_request(event.payload);
    let answer = crate::deadline::scope(deadline, ws::handle(app, route, request)).await;
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(answer.status.as_u16());
    response.headers = answer.headers;
    if !answer.body.is_empty() {
        response.body = Some(aws_lambda_events::encodings::Body::Text(
            String::from_utf8_lossy(&answer.body).into_owned(),
        ));
    }
    response
}

/// The sweeper's timeout (`template.yaml`).
pub const SWEEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The whole life of the sweeper Lambda (run on a schedule): cold start once, then, at each
/// invocation, mark the products stuck in `processing` as `failed`.
async fn run_sweeper() -> Result<(), Error> {
    let app = cold_start(Function::Sweeper).await?;
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = deadline_of(Some(&event.context), SWEEP_TIMEOUT);
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

/// Runs `function` for the life of the process: the whole `main` of a Lambda binary. The
/// async runtime is built here rather than in each binary, so that a binary is a call and a
/// link (seventeen binaries compile in seconds instead of minutes).
pub fn start(function: Function) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match function {
            Function::Http(route) => run_http(route).await,
            Function::Ws(route) => run_ws(route).await,
            Function::Sweeper => run_sweeper().await,
            Function::Everything => Err(Error::from(
                "every route at once is the local gateway's, not a Lambda's",
            )),
        }
    })
}
