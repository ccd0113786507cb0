//! The Lambda Runtime API, emulated: a function binary runs against it as it runs in Lambda
//! (custom runtime, `provided.al2023`), takes the queued events, and posts its answers here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::Notify;

/// Hands out queued events, collects what the function answers.
#[derive(Clone, Default)]
pub struct Runtime {
    queue: Arc<Mutex<VecDeque<(String, Value)>>>,
    answers: Arc<Mutex<Vec<(String, Value)>>>,
    /// `GET .../invocation/next` calls so far: the first one ends the function's init.
    nexts: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

async fn next(State(rt): State<Runtime>) -> Response {
    rt.nexts.fetch_add(1, Ordering::SeqCst);
    rt.changed.notify_waiters();
    let queued = rt.queue.lock().expect("queue").pop_front();
    let Some((id, event)) = queued else {
        // Nothing more to run: hold the request, as Lambda freezes an idle function.
        return std::future::pending().await;
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 10_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5e1b4151-5ac6c58f5b5daa6532e4f1f6".into(),
    );
    (headers, Json(event)).into_response()
}

fn record(rt: &Runtime, what: String, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    rt.answers.lock().expect("answers").push((what, value));
    rt.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn answer(
    State(rt): State<Runtime>,
    Path((id, kind)): Path<(String, String)>,
    body: String,
) -> StatusCode {
    record(&rt, format!("{kind} {id}"), body)
}

async fn init_error(State(rt): State<Runtime>, body: String) -> StatusCode {
    record(&rt, "init error".into(), body)
}

impl Runtime {
    /// A runtime that will hand out `events`, in order.
    pub fn with_events(events: &[Value]) -> Self {
        let runtime = Self::default();
        runtime.queue.lock().expect("queue").extend(
            events
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("request-{i}"), e.clone())),
        );
        runtime
    }

    /// Serves the API on a free loopback port; its `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub async fn serve(&self) -> String {
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr.to_string()
    }

    /// Waits (at most 30 s) until `n` answers came; all of them.
    pub async fn answers(&self, n: usize) -> Vec<(String, Value)> {
        self.until(Duration::from_secs(30), || {
            self.answers.lock().expect("answers").len() >= n
        })
        .await;
        self.answers.lock().expect("answers").clone()
    }

    /// Waits (at most `timeout`) for the function's first `/next`, the end of its init;
    /// whether it came. An init error or a dead process never gets there.
    pub async fn initialised(&self, timeout: Duration) -> bool {
        self.until(timeout, || self.nexts.load(Ordering::SeqCst) > 0)
            .await
    }

    /// What the function posted (answers, errors, an init error), so far.
    pub fn posted(&self) -> Vec<(String, Value)> {
        self.answers.lock().expect("answers").clone()
    }

    async fn until(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if done() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done();
            }
        }
    }
}

/// Everything `pipe` yields until it closes.
pub fn drain<R>(pipe: Option<R>) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut out).await;
        }
        out
    })
}
