//! The HTTP API, emulated: each request goes to the route `adsync::http::Route` resolves,
//! through the same `dispatch` the Lambda adapter calls.

use std::collections::HashMap;
use std::time::Duration;

use adsync::AppError;
use adsync::http::{ApiRequest, ApiResponse, Route, dispatch};
use adsync::ids::Uid;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::ALLOW;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Gateway;

pub(crate) fn into_response(r: ApiResponse) -> Response {
    let mut out = (r.status, r.body).into_response();
    out.headers_mut().extend(r.headers);
    out
}

fn error(err: &AppError) -> Response {
    into_response(ApiResponse::error(err))
}

/// Every REST route.
pub(crate) async fn api(
    State(gw): State<Gateway>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (route, path_params) = match Route::resolve(&method, uri.path()) {
        Ok(found) => found,
        Err(err @ AppError::MethodNotAllowed(_)) => {
            // RFC 9110: a 405 lists the methods the path has.
            let methods = Route::methods_of(uri.path());
            let allowed: Vec<&str> = methods.iter().map(Method::as_str).collect();
            let mut response = error(&err);
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(ALLOW, value);
            }
            return response;
        }
        Err(err) => return error(&err),
    };
    let query = match Query::<HashMap<String, String>>::try_from_uri(&uri) {
        Ok(Query(q)) => q,
        Err(_) => {
            let err = AppError::BadRequest("malformed query string".into());
            return error(&err);
        }
    };
    let request = ApiRequest {
        headers,
        path_params,
        query,
        body,
    };
    let deadline = gw.deadline(route.timeout());
    into_response(adsync::deadline::scope(deadline, dispatch(&gw.app, route, request)).await)
}

/// `GET /dev/token?uid=alice`: an emulator token for that user (local mode only).
pub(crate) async fn dev_token(
    State(gw): State<Gateway>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !gw.dev_tokens {
        return error(&AppError::NotFound(
            "dev tokens exist only with --auth emulator".into(),
        ));
    }
    let raw = params.get("uid").map_or("alice", String::as_str);
    let uid = match Uid::parse(raw) {
        Ok(uid) => uid,
        Err(err) => return error(&err),
    };
    let lifetime = Duration::from_secs(3600);
    let email = format!("{uid}@example.com");
    let token = adsync::auth::emulator_token(&gw.project_id, &uid, Some(&email), lifetime);
    let expires_at = chrono::Utc::now().timestamp() + 3600;
    (
        StatusCode::OK,
        axum::Json(json!({"uid": uid, "token": token, "expiresAt": expires_at})),
    )
        .into_response()
}
