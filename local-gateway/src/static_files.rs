//! The demo page and its client module, compiled into the binary (no build step). The client
//! module is the npm package's own source (`client/src/sync-client.js`), served as is.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

const INDEX: &str = include_str!("../static/index.html");
const FILES: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/app.js"),
    ),
    (
        "sync-client.js",
        "text/javascript; charset=utf-8",
        include_str!("../../client/src/sync-client.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../static/style.css"),
    ),
];

pub(crate) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    named_file(&FILES, &file)
}

/// The file called `name` of `files` (name, content type, body), or 404.
pub(crate) fn named_file(files: &[(&str, &str, &'static str)], name: &str) -> Response {
    match files.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                ("content-type", *content_type),
                ("cache-control", "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
