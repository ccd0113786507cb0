//! Loopback servers of the harness: a counting proxy in front of the Firestore emulator,
//! a Management API endpoint that records posts, and a JWKS endpoint.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use serde_json::Value;
use tokio::sync::Notify;

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Firestore calls seen by the proxy, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirestoreCalls {
    /// Single-document GETs.
    pub reads: usize,
    /// Collection listings.
    pub lists: usize,
    /// `runQuery` calls.
    pub queries: usize,
    /// Creates, patches, deletes and commits.
    pub writes: usize,
}

#[derive(Clone, Default)]
pub struct CallCounter(Arc<Mutex<FirestoreCalls>>);

impl CallCounter {
    pub fn get(&self) -> FirestoreCalls {
        *self.0.lock().expect("counter")
    }

    pub fn reset(&self) {
        *self.0.lock().expect("counter") = FirestoreCalls::default();
    }

    fn count(&self, method: &Method, path: &str) {
        let mut c = self.0.lock().expect("counter");
        let after = path.split("/documents").nth(1).unwrap_or("");
        let segments = after
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .count();
        if path.ends_with(":runQuery") {
            c.queries += 1;
        } else if path.ends_with(":commit") || *method != Method::GET {
            c.writes += 1;
        } else if segments % 2 == 0 {
            c.reads += 1;
        } else {
            c.lists += 1;
        }
    }
}

/// Forwards everything to the Firestore emulator and counts each call.
pub struct FirestoreProxy {
    /// `127.0.0.1:port`, to use as `FIRESTORE_EMULATOR_HOST`.
    pub host: String,
    pub calls: CallCounter,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    calls: CallCounter,
}

async fn forward(State(s): State<ProxyState>, req: Request) -> impl IntoResponse {
    let method = req.method().clone();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    s.calls.count(&method, req.uri().path());
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut upstream = s
        .client
        .request(method, format!("http://{}{path_and_query}", s.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(r) => {
            let status = r.status();
            let content_type = r.headers().get("content-type").cloned();
            let body = r.bytes().await.unwrap_or_default();
            let mut out = HeaderMap::new();
            if let Some(ct) = content_type {
                out.insert("content-type", ct);
            }
            (status, out, body).into_response()
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

impl FirestoreProxy {
    pub async fn start(upstream: &str) -> Self {
        let calls = CallCounter::default();
        let state = ProxyState {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            calls: calls.clone(),
        };
        let addr = serve(Router::new().fallback(forward).with_state(state)).await;
        Self {
            host: addr.to_string(),
            calls,
        }
    }
}

#[derive(Default)]
struct Recorded {
    posts: Vec<(String, String)>,
    closed: Vec<String>,
    gone: HashSet<String>,
}

/// Speaks the API Gateway Management API (`/@connections/{id}`) and records every post;
/// connections marked gone answer 410, as API Gateway does.
#[derive(Clone)]
pub struct ManagementRecorder {
    pub url: String,
    state: Arc<Mutex<Recorded>>,
    /// Woken by every post and close recorded.
    changed: Arc<Notify>,
}

async fn connection(
    State((state, changed)): State<(Arc<Mutex<Recorded>>, Arc<Notify>)>,
    Path(id): Path<String>,
    method: Method,
    body: Bytes,
) -> StatusCode {
    let mut s = state.lock().expect("recorder");
    if s.gone.contains(&id) {
        return StatusCode::GONE;
    }
    let status = match method {
        Method::POST => {
            s.posts
                .push((id, String::from_utf8_lossy(&body).into_owned()));
            StatusCode::OK
        }
        Method::DELETE => {
            s.closed.push(id.clone());
            s.gone.insert(id);
            StatusCode::NO_CONTENT
        }
        _ => return StatusCode::OK,
    };
    changed.notify_waiters();
    status
}

impl ManagementRecorder {
    pub async fn start() -> Self {
        let (state, changed) = (Arc::default(), Arc::default());
        let router = Router::new()
            .route("/@connections/{id}", any(connection))
            .with_state((Arc::clone(&state), Arc::clone(&changed)));
        let addr = serve(router).await;
        Self {
            url: format!("http://{addr}"),
            state,
            changed,
        }
    }

    /// Woken whenever a post or a close is recorded.
    pub fn changed(&self) -> &Notify {
        &self.changed
    }

    /// Every frame posted to `connection`, parsed.
    pub fn frames(&self, connection: &str) -> Vec<Value> {
        self.state
            .lock()
            .expect("recorder")
            .posts
            .iter()
            .filter(|(id, _)| id == connection)
            .map(|(_, body)| serde_json::from_str(body).expect("frames are JSON"))
            .collect()
    }

    /// Connections closed with `DeleteConnection`.
    pub fn closed(&self) -> Vec<String> {
        self.state.lock().expect("recorder").closed.clone()
    }

    /// From now on `connection` answers 410 Gone.
    pub fn set_gone(&self, connection: &str) {
        self.state
            .lock()
            .expect("recorder")
            .gone
            .insert(connection.to_owned());
    }
}

/// Serves the fixture keys' JWKS, as Google serves its keys.
pub struct Jwks {
    pub url: String,
}

impl Jwks {
    pub async fn start() -> Self {
        let jwks = std::fs::read_to_string(format!("{}/jwks.json", crate::FIXTURES))
            .expect("fixture JWKS");
        let router = Router::new().route(
            "/jwks",
            any(move || {
                let jwks = jwks.clone();
                async move {
                    (
                        [
                            ("content-type", "application/json"),
                            ("cache-control", "public, max-age=3600"),
                        ],
                        jwks,
                    )
                }
            }),
        );
        let addr = serve(router).await;
        Self {
            url: format!("http://{addr}/jwks"),
        }
    }
}
