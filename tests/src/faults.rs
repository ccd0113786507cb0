//! A loopback HTTP/1.1 proxy that injects faults between the code under test and a server it
//! talks to (the Firestore emulator, a DynamoDB-protocol server). Without a matching rule it
//! forwards every request unchanged, so the client cannot tell it from the server; a rule makes
//! it answer an error instead, wait, drop the connection before or after the server applied the
//! request, or park the request until the test decides what happens to it.
//!
//! Each accepted connection is served by hyper in its own task, raced against a per-connection
//! kill signal: a fault that drops the connection fires the signal and never answers, and the
//! race then drops the connection future, which closes the socket with nothing written.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Headers that describe one connection rather than the message: each hop sets its own, and
/// since both bodies are buffered, passing on e.g. `transfer-encoding: chunked` would be wrong.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

type ProxyBody = Full<Bytes>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A lock that survives a panicking test thread: the guarded data stays consistent because no
/// critical section here can panic halfway.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A loopback proxy in front of one upstream server; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping it (with the proxy) stops the accept loop.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

struct Shared {
    upstream: Authority,
    /// The `host` forwarded requests carry: the upstream's, as if the client had called it.
    host: HeaderValue,
    /// Pooling is safe: a connection only goes back to the pool after its response was read in
    /// full, whatever the fault does with the client's side afterwards.
    client: Client<HttpConnector, ProxyBody>,
    rules: Mutex<Vec<Rule>>,
    next_rule: AtomicU64,
    log: Mutex<Vec<RequestRecord>>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (`host:port` or
    /// `http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let authority = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream: Authority = authority
            .parse()
            .unwrap_or_else(|e| panic!("upstream {authority:?} is not host:port: {e}"));
        let host =
            HeaderValue::from_str(upstream.as_str()).expect("an authority is a header value");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            upstream,
            host,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            rules: Mutex::default(),
            next_rule: AtomicU64::new(0),
            log: Mutex::default(),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Self {
            addr,
            shared,
            stop,
            task,
        }
    }

    /// `127.0.0.1:PORT`, e.g. for `FIRESTORE_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, e.g. for `DYNAMODB_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` to every request `matcher` accepts, until removed or limited with
    /// [`RuleHandle::times`]. Rules are tried in the order they were added; the first active
    /// one that matches wins.
    pub fn add_rule(&self, matcher: Matcher, fault: Fault) -> RuleHandle {
        let id = self.shared.next_rule.fetch_add(1, Ordering::Relaxed);
        let hits = Arc::new(AtomicUsize::new(0));
        lock(&self.shared.rules).push(Rule {
            id,
            matcher,
            fault,
            limit: None,
            hits: hits.clone(),
        });
        RuleHandle {
            id,
            hits,
            shared: self.shared.clone(),
        }
    }

    /// Removes every rule: from now on everything is forwarded untouched.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Every request received since the start or the last [`FaultProxy::reset_log`], in order
    /// of arrival (faulted ones included).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// How many logged requests `matcher` accepts.
    pub fn count(&self, matcher: &Matcher) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| matcher.matches(r))
            .count()
    }

    /// Forgets the logged requests.
    pub fn reset_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Stops accepting and closes every client connection, parked requests included (they are
    /// neither forwarded nor answered); returns once all are closed.
    pub async fn shutdown(self) {
        drop(self.stop);
        // The accept loop never panics; a join error could only mean the runtime is shutting
        // down, which closes everything anyway.
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    let mut next_connection = 0;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    next_connection += 1;
                    connections.spawn(serve(stream, shared.clone(), next_connection));
                }
                // Accept fails on transient conditions (e.g. out of file descriptors); retrying
                // at once would spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// One client connection.
struct Connection {
    id: u64,
    kill: Notify,
}

impl Connection {
    /// Closes the connection without an answer: the serving task sees the signal and drops
    /// the hyper connection, and with it this (forever pending) request.
    async fn drop_unanswered<T>(&self) -> T {
        self.kill.notify_one();
        std::future::pending().await
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>, id: u64) {
    let connection = Arc::new(Connection {
        id,
        kill: Notify::new(),
    });
    let service = {
        let connection = connection.clone();
        service_fn(move |request| handle(shared.clone(), connection.clone(), request))
    };
    // hyper closes the connection by itself when the client does (half-closes are off by
    // default), dropping a parked request with it.
    let serving = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = serving => {}
        () = connection.kill.notified() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, hyper::Error> {
    let (parts, body) = request.into_parts();
    // A body that cannot be read means the client is gone: the error closes the connection.
    let body = body.collect().await?.to_bytes();
    let mut record = RequestRecord::new(connection.id, &parts, body.clone());
    let fault = shared.pick(&record);
    record.fault = fault.clone();
    lock(&shared.log).push(record);

    let response = match fault {
        None => shared.forward(&parts, body).await,
        Some(Fault::Status(answer)) => answer.response(),
        Some(Fault::Delay(pause)) => {
            tokio::time::sleep(pause).await;
            shared.forward(&parts, body).await
        }
        Some(Fault::DropBefore) => return connection.drop_unanswered().await,
        Some(Fault::DropAfter) => {
            shared.forward(&parts, body).await;
            return connection.drop_unanswered().await;
        }
        Some(Fault::StatusAfter(answer)) => {
            shared.forward(&parts, body).await;
            answer.response()
        }
        Some(Fault::Hold(gate)) => {
            let response = shared.forward(&parts, body).await;
            match gate.park().await {
                Verdict::Release => response,
                Verdict::Drop => return connection.drop_unanswered().await,
            }
        }
        Some(Fault::HoldBefore(gate)) => match gate.park().await {
            Verdict::Release => shared.forward(&parts, body).await,
            Verdict::Drop => return connection.drop_unanswered().await,
        },
    };
    Ok(response)
}

impl Shared {
    /// The fault of the first active rule matching `request`, counted as one application.
    fn pick(&self, request: &RequestRecord) -> Option<Fault> {
        let rules = lock(&self.rules);
        let rule = rules.iter().find(|rule| {
            rule.limit
                .is_none_or(|limit| rule.hits.load(Ordering::Relaxed) < limit)
                && rule.matcher.matches(request)
        })?;
        // Counted under the rules lock, so concurrent requests cannot exceed a limit.
        rule.hits.fetch_add(1, Ordering::Relaxed);
        Some(rule.fault.clone())
    }

    /// The upstream's answer to the request, read in full; 502 if the upstream failed, which
    /// is a broken test setup rather than an injected fault, hence the message on stderr.
    async fn forward(&self, parts: &Parts, body: Bytes) -> Response<ProxyBody> {
        match self.try_forward(parts, body).await {
            Ok(response) => response,
            Err(err) => {
                eprintln!(
                    "fault proxy: forwarding {} {} to {} failed: {err:?}",
                    parts.method, parts.uri, self.upstream
                );
                let mut response = Response::new(Full::new(Bytes::from(format!(
                    "fault proxy: the upstream failed: {err}"
                ))));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        }
    }

    async fn try_forward(
        &self,
        parts: &Parts,
        body: Bytes,
    ) -> Result<Response<ProxyBody>, BoxError> {
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.upstream.clone())
            .path_and_query(path_and_query)
            .build()?;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.clone_from(&parts.headers);
        strip_hop_by_hop(headers);
        headers.insert(header::HOST, self.host.clone());

        let (mut head, body) = self.client.request(request).await?.into_parts();
        let body = body.collect().await?.to_bytes();
        strip_hop_by_hop(&mut head.headers);
        Ok(Response::from_parts(head, Full::new(body)))
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

struct Rule {
    id: u64,
    matcher: Matcher,
    fault: Fault,
    limit: Option<usize>,
    hits: Arc<AtomicUsize>,
}

/// A rule added with [`FaultProxy::add_rule`]. Dropping the handle leaves the rule in place.
pub struct RuleHandle {
    id: u64,
    hits: Arc<AtomicUsize>,
    shared: Arc<Shared>,
}

impl RuleHandle {
    /// Limits the rule to its first `n` matching requests in total, after which it expires;
    /// call it right after `add_rule`.
    pub fn times(self, n: usize) -> Self {
        if let Some(rule) = lock(&self.shared.rules)
            .iter_mut()
            .find(|r| r.id == self.id)
        {
            rule.limit = Some(n);
        }
        self
    }

    /// How many requests the rule has been applied to.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Removes the rule; requests already being faulted carry on.
    pub fn remove(&self) {
        lock(&self.shared.rules).retain(|r| r.id != self.id);
    }
}

/// A condition on text: where the needle must occur.
#[derive(Clone, Debug)]
enum Text {
    Contains(String),
    EndsWith(String),
}

impl Text {
    fn test(&self, haystack: &str) -> bool {
        match self {
            Text::Contains(needle) => haystack.contains(needle.as_str()),
            Text::EndsWith(needle) => haystack.ends_with(needle.as_str()),
        }
    }
}

/// Which requests a rule applies to (or [`FaultProxy::count`] counts): every condition given
/// must hold; none given matches everything.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    method: Option<Method>,
    path: Vec<Text>,
    headers: Vec<(String, Text)>,
    body: Vec<Vec<u8>>,
}

impl Matcher {
    /// Every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// DynamoDB operation `operation` (e.g. `"PutItem"`), named by the `x-amz-target` header.
    pub fn dynamo(operation: &str) -> Self {
        Self::any().header_ends_with("x-amz-target", &format!(".{operation}"))
    }

    /// Firestore commits (`…/documents:commit`), i.e. batched and transactional writes.
    pub fn firestore_commit() -> Self {
        Self::any().path_ends_with(":commit")
    }

    /// Requests with this method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Requests whose path (without the query) contains `needle`.
    pub fn path_contains(mut self, needle: &str) -> Self {
        self.path.push(Text::Contains(needle.to_owned()));
        self
    }

    /// Requests whose path (without the query) ends with `suffix`.
    pub fn path_ends_with(mut self, suffix: &str) -> Self {
        self.path.push(Text::EndsWith(suffix.to_owned()));
        self
    }

    /// Requests with a header `name` whose value contains `needle`.
    pub fn header_contains(mut self, name: &str, needle: &str) -> Self {
        self.headers
            .push((name.to_owned(), Text::Contains(needle.to_owned())));
        self
    }

    /// Requests with a header `name` whose value ends with `suffix`.
    pub fn header_ends_with(mut self, name: &str, suffix: &str) -> Self {
        self.headers
            .push((name.to_owned(), Text::EndsWith(suffix.to_owned())));
        self
    }

    /// Requests whose body contains `needle`.
    pub fn body_contains(mut self, needle: &str) -> Self {
        self.body.push(needle.as_bytes().to_vec());
        self
    }

    /// Whether `request` meets every condition.
    pub fn matches(&self, request: &RequestRecord) -> bool {
        self.method.as_ref().is_none_or(|m| *m == request.method)
            && self.path.iter().all(|t| t.test(&request.path))
            && self.headers.iter().all(|(name, text)| {
                request
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| text.test(v))
            })
            && self
                .body
                .iter()
                .all(|needle| contains(&request.body, needle))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A response the proxy makes up.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// `status` with a body of type `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("a valid content type"),
        );
        Self {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            headers,
            body: body.into(),
        }
    }

    /// A DynamoDB error as the service sends it (JSON 1.0 protocol): `error_type` is the
    /// exception's short name, e.g. `ConditionalCheckFailedException`.
    pub fn dynamo(status: u16, error_type: &str, message: &str) -> Self {
        let body = json!({
            "__type": format!("com.amazonaws.dynamodb.v20120810#{error_type}"),
            "message": message,
        });
        let mut answer = Self::new(status, "application/x-amz-json-1.0", body.to_string());
        for (name, value) in [
            ("x-amzn-errortype", error_type),
            (
                "x-amzn-requestid",
                "FAULTPROXY00000000000000000000000000000000000000000000",
            ),
        ] {
            answer.headers.insert(
                name,
                HeaderValue::from_str(value).expect("a valid header value"),
            );
        }
        answer
    }

    /// A Firestore REST error: HTTP `code` with the gRPC status name, e.g. `409, "ABORTED"`.
    pub fn firestore(code: u16, status_name: &str, message: &str) -> Self {
        let body = json!({"error": {"code": code, "message": message, "status": status_name}});
        Self::new(code, "application/json; charset=UTF-8", body.to_string())
    }

    fn response(&self) -> Response<ProxyBody> {
        let mut response = Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// What the proxy does to a request a rule matched.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers this without forwarding: the request never reaches the upstream.
    Status(Answer),
    /// Waits, then forwards normally.
    Delay(Duration),
    /// Closes the client's connection without forwarding or answering: not applied.
    DropBefore,
    /// Forwards (the upstream applies it), reads the whole response, then closes the client's
    /// connection without answering: applied but unseen, the ambiguous failure.
    DropAfter,
    /// Forwards (applied), then answers this instead of the upstream's response.
    StatusAfter(Answer),
    /// Forwards (applied), then parks the response until the gate releases or drops it.
    Hold(Gate),
    /// Parks the request before forwarding until the gate releases (forwards) or drops it
    /// (not applied).
    HoldBefore(Gate),
}

impl Fault {
    /// DynamoDB throttling (400 `ProvisionedThroughputExceededException`), which the AWS SDK
    /// retries with backoff.
    pub fn dynamo_throttled() -> Self {
        Self::Status(Answer::dynamo(
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        ))
    }

    /// A DynamoDB 500 `InternalServerError`.
    pub fn dynamo_internal() -> Self {
        Self::Status(Answer::dynamo(
            500,
            "InternalServerError",
            "Internal server error",
        ))
    }

    /// Firestore's 503 `UNAVAILABLE`.
    pub fn firestore_unavailable() -> Self {
        Self::Status(Answer::firestore(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        ))
    }

    /// A Firestore error with HTTP `code` and gRPC status `status_name` (e.g. `409, "ABORTED"`).
    pub fn firestore_status(code: u16, status_name: &str) -> Self {
        Self::Status(Answer::firestore(
            code,
            status_name,
            &format!("Injected fault: {status_name}"),
        ))
    }
}

#[derive(Clone, Copy, Debug)]
enum Verdict {
    Release,
    Drop,
}

/// Where [`Fault::Hold`] and [`Fault::HoldBefore`] park requests until the test decides.
/// Clones share the same parked requests.
#[derive(Clone, Default)]
pub struct Gate(Arc<GateInner>);

#[derive(Default)]
struct GateInner {
    waiting: Mutex<Vec<(u64, oneshot::Sender<Verdict>)>>,
    /// How many requests are parked, mirrored for waiters.
    parked: watch::Sender<usize>,
    next: AtomicU64,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("parked", &self.parked())
            .finish()
    }
}

impl Gate {
    /// A gate with nothing parked.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many requests are parked now.
    pub fn parked(&self) -> usize {
        *self.0.parked.borrow()
    }

    /// Waits until at least one request is parked (at once if one already is); returns how
    /// many are.
    pub async fn reached(&self) -> usize {
        self.reached_n(1).await
    }

    /// Waits until at least `n` requests are parked; returns how many are.
    pub async fn reached_n(&self, n: usize) -> usize {
        let mut parked = self.0.parked.subscribe();
        *parked
            .wait_for(|count| *count >= n)
            .await
            .expect("the gate's sender lives as long as the gate")
    }

    /// Lets the requests parked now continue normally; returns how many there were.
    /// Requests arriving later are parked again while the rule is active.
    pub fn release(&self) -> usize {
        self.decide(Verdict::Release)
    }

    /// Closes the connections of the requests parked now without answering; returns how
    /// many there were.
    pub fn drop_all(&self) -> usize {
        self.decide(Verdict::Drop)
    }

    fn decide(&self, verdict: Verdict) -> usize {
        let parked: Vec<_> = {
            let mut waiting = lock(&self.0.waiting);
            self.0.parked.send_replace(0);
            waiting.drain(..).collect()
        };
        let count = parked.len();
        for (_, decision) in parked {
            // A request whose client left meanwhile has nobody to tell.
            let _ = decision.send(verdict);
        }
        count
    }

    async fn park(&self) -> Verdict {
        let (decision, decided) = oneshot::channel();
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut waiting = lock(&self.0.waiting);
            waiting.push((id, decision));
            self.0.parked.send_replace(waiting.len());
        }
        let _unpark = Unpark { gate: &self.0, id };
        // The sender is only dropped after sending, so this default is never taken.
        decided.await.unwrap_or(Verdict::Drop)
    }
}

/// Takes a parked request off its gate if it goes away undecided (its client left, or the
/// proxy stopped), so the count stays true.
struct Unpark<'a> {
    gate: &'a GateInner,
    id: u64,
}

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.gate.waiting);
        let before = waiting.len();
        waiting.retain(|(id, _)| *id != self.id);
        if waiting.len() != before {
            self.gate.parked.send_replace(waiting.len());
        }
    }
}

/// One request the proxy received.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Serial number of the client connection it came on (from 1).
    pub connection: u64,
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    pub query: Option<String>,
    /// The `x-amz-target` header (the DynamoDB operation), if any.
    pub target: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The fault applied, if a rule matched.
    pub fault: Option<Fault>,
    /// When it arrived, to order requests across proxies.
    pub at: std::time::Instant,
}

impl RequestRecord {
    fn new(connection: u64, parts: &Parts, body: Bytes) -> Self {
        Self {
            connection,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            target: parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            headers: parts.headers.clone(),
            body,
            fault: None,
            at: std::time::Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::extract::State;
    use serde_json::Value;

    /// A request the echo upstream received.
    #[derive(Clone, Debug)]
    struct Seen {
        method: Method,
        uri: String,
        headers: HeaderMap,
        body: Bytes,
    }

    /// An echo server that records what it receives; `/status/NNN` answers NNN.
    #[derive(Clone, Default)]
    struct Upstream {
        addr: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Upstream {
        async fn start() -> Self {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let router = Router::new().fallback(echo).with_state(seen.clone());
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address").to_string();
            tokio::spawn(async move { axum::serve(listener, router).await });
            Self { addr, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().expect("seen").clone()
        }
    }

    async fn echo(
        State(seen): State<Arc<Mutex<Vec<Seen>>>>,
        request: axum::extract::Request,
    ) -> axum::response::Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("request body");
        let status = parts
            .uri
            .path()
            .strip_prefix("/status/")
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let n = {
            let mut seen = seen.lock().expect("seen");
            seen.push(Seen {
                method: parts.method.clone(),
                uri: parts.uri.to_string(),
                headers: parts.headers.clone(),
                body: body.clone(),
            });
            seen.len()
        };
        let echo = json!({
            "n": n,
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "body": String::from_utf8_lossy(&body),
        });
        axum::response::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-upstream", "echo")
            .body(axum::body::Body::from(echo.to_string()))
            .expect("response")
    }

    async fn setup() -> (Upstream, FaultProxy, reqwest::Client) {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&format!("http://{}", upstream.addr)).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        (upstream, proxy, client)
    }

    async fn json_of(response: reqwest::Response) -> Value {
        response.json().await.expect("a JSON body")
    }

    /// Fails instead of hanging when something that should finish does not.
    async fn soon<F: std::future::Future>(what: &str, future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish"))
    }

    /// What the spawned request `task` was answered, within [`soon`]'s limit.
    async fn answered(
        what: &str,
        task: JoinHandle<reqwest::Result<reqwest::Response>>,
    ) -> reqwest::Response {
        soon(what, task).await.expect("task").expect("answered")
    }

    #[tokio::test]
    async fn forwards_requests_and_responses_unchanged_over_one_connection() {
        let (upstream, proxy, client) = setup().await;
        assert_eq!(proxy.url(), format!("http://{}", proxy.host()));

        let r = client
            .post(format!(
                "{}/v1/projects/p/databases/(default)/documents:commit?x=1&y=2",
                proxy.url()
            ))
            .header("content-type", "application/json")
            .header("authorization", "Bearer owner")
            .header("x-amz-target", "DynamoDB_20120810.PutItem")
            .header("x-amz-date", "20260101T000000Z")
            .body(r#"{"writes":[]}"#)
            .send()
            .await
            .expect("forwarded");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-upstream"], "echo");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = json_of(r).await;
        assert_eq!(body["method"], "POST");
        assert_eq!(
            body["uri"],
            "/v1/projects/p/databases/(default)/documents:commit?x=1&y=2"
        );
        assert_eq!(body["body"], r#"{"writes":[]}"#);

        let r = client
            .get(format!("{}/status/404", proxy.url()))
            .send()
            .await
            .expect("forwarded");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_of(r).await["n"], 2);
        let r = client
            .delete(format!("{}/doc", proxy.url()))
            .send()
            .await
            .expect("forwarded");
        assert_eq!(json_of(r).await["method"], "DELETE");

        let seen = upstream.seen();
        assert_eq!(seen.len(), 3);
        let first = &seen[0].headers;
        assert_eq!(first["host"], upstream.addr.as_str());
        assert_eq!(first["content-type"], "application/json");
        assert_eq!(first["authorization"], "Bearer owner");
        assert_eq!(first["x-amz-target"], "DynamoDB_20120810.PutItem");
        assert_eq!(first["x-amz-date"], "20260101T000000Z");
        assert_eq!(seen[2].method, Method::DELETE);

        let log = proxy.requests();
        assert_eq!(log.len(), 3);
        assert!(log.iter().all(|r| r.fault.is_none()));
        assert!(
            log.iter().all(|r| r.connection == log[0].connection),
            "the client kept one connection alive: {log:?}"
        );
        assert_eq!(
            log[0].path,
            "/v1/projects/p/databases/(default)/documents:commit"
        );
        assert_eq!(log[0].query.as_deref(), Some("x=1&y=2"));
        assert_eq!(log[0].target.as_deref(), Some("DynamoDB_20120810.PutItem"));
        assert_eq!(log[1].target, None);
    }

    #[tokio::test]
    async fn status_answers_without_forwarding() {
        let (upstream, proxy, client) = setup().await;
        proxy.add_rule(Matcher::firestore_commit(), Fault::firestore_unavailable());
        proxy.add_rule(Matcher::dynamo("PutItem"), Fault::dynamo_throttled());
        proxy.add_rule(Matcher::dynamo("Query"), Fault::dynamo_internal());

        let r = client
            .post(format!("{}/v1/documents:commit", proxy.url()))
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("application/json")
        );
        let body = json_of(r).await;
        assert_eq!(body["error"]["code"], 503);
        assert_eq!(body["error"]["status"], "UNAVAILABLE");

        let r = client
            .post(proxy.url())
            .header("x-amz-target", "DynamoDB_20120810.PutItem")
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()["x-amzn-errortype"],
            "ProvisionedThroughputExceededException"
        );
        assert_eq!(r.headers()["content-type"], "application/x-amz-json-1.0");
        assert_eq!(
            json_of(r).await["__type"],
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        );

        let r = client
            .post(proxy.url())
            .header("x-amz-target", "DynamoDB_20120810.Query")
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()["x-amzn-errortype"], "InternalServerError");

        let r = client
            .post(format!("{}/v1/documents:commit", proxy.url()))
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(upstream.seen().is_empty(), "nothing reached the upstream");
        assert!(
            proxy
                .requests()
                .iter()
                .all(|r| matches!(&r.fault, Some(Fault::Status(_))))
        );

        let r = client
            .post(format!("{}/v1/documents:runQuery", proxy.url()))
            .send()
            .await
            .expect("forwarded");
        assert_eq!(r.status(), StatusCode::OK);
        let answer = Fault::firestore_status(409, "ABORTED");
        let Fault::Status(answer) = answer else {
            panic!("a status fault")
        };
        assert_eq!(answer.status, StatusCode::CONFLICT);
    }

    #[tokio::test]
    async fn delay_waits_then_forwards() {
        let (upstream, proxy, client) = setup().await;
        let pause = Duration::from_millis(300);
        proxy.add_rule(Matcher::any(), Fault::Delay(pause));
        let started = std::time::Instant::now();
        let r = client.get(proxy.url()).send().await.expect("forwarded");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            started.elapsed() >= pause,
            "answered after {:?}",
            started.elapsed()
        );
        assert_eq!(upstream.seen().len(), 1);
    }

    #[tokio::test]
    async fn drop_before_closes_without_forwarding() {
        let (upstream, proxy, client) = setup().await;
        let rule = proxy.add_rule(Matcher::any(), Fault::DropBefore).times(1);
        let err = client
            .post(proxy.url())
            .body("x")
            .send()
            .await
            .expect_err("the connection was dropped");
        assert!(!err.is_status(), "{err:?}");
        assert!(upstream.seen().is_empty());
        assert_eq!(rule.hits(), 1);

        let r = client
            .post(proxy.url())
            .body("y")
            .send()
            .await
            .expect("forwarded");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(upstream.seen().len(), 1);
        let log = proxy.requests();
        assert!(matches!(log[0].fault, Some(Fault::DropBefore)));
        assert_ne!(
            log[0].connection, log[1].connection,
            "the dropped connection is gone"
        );
    }

    #[tokio::test]
    async fn drop_after_applies_then_closes() {
        let (upstream, proxy, client) = setup().await;
        proxy.add_rule(Matcher::any(), Fault::DropAfter);
        client
            .put(format!("{}/doc", proxy.url()))
            .body("applied")
            .send()
            .await
            .expect_err("the connection was dropped");
        let seen = upstream.seen();
        assert_eq!(seen.len(), 1, "the upstream applied it");
        assert_eq!(seen[0].body, "applied");
        assert_eq!(seen[0].uri, "/doc");
    }

    #[tokio::test]
    async fn status_after_applies_then_answers_the_error() {
        let (upstream, proxy, client) = setup().await;
        proxy.add_rule(
            Matcher::any(),
            Fault::StatusAfter(Answer::dynamo(500, "InternalServerError", "boom")),
        );
        let r = client
            .post(proxy.url())
            .body("applied")
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json_of(r).await["message"], "boom");
        assert_eq!(upstream.seen().len(), 1, "the upstream applied it");
    }

    #[tokio::test]
    async fn hold_parks_the_response_until_released() {
        let (upstream, proxy, client) = setup().await;
        let gate = Gate::new();
        proxy.add_rule(Matcher::any(), Fault::Hold(gate.clone()));
        let request = tokio::spawn(client.post(proxy.url()).body("held").send());
        assert_eq!(soon("parking", gate.reached()).await, 1);
        assert_eq!(upstream.seen().len(), 1, "forwarded before parking");
        assert!(!request.is_finished());

        assert_eq!(gate.release(), 1);
        let r = answered("the released request", request).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(json_of(r).await["body"], "held");
        assert_eq!(gate.parked(), 0);
    }

    #[tokio::test]
    async fn hold_drop_all_applies_but_never_answers() {
        let (upstream, proxy, client) = setup().await;
        let gate = Gate::new();
        proxy.add_rule(Matcher::any(), Fault::Hold(gate.clone()));
        let request = tokio::spawn(client.post(proxy.url()).send());
        soon("parking", gate.reached()).await;
        assert_eq!(gate.drop_all(), 1);
        soon("the dropped request", request)
            .await
            .expect("task")
            .expect_err("the connection was dropped");
        assert_eq!(upstream.seen().len(), 1, "the upstream applied it");
    }

    #[tokio::test]
    async fn hold_before_forwards_only_when_released() {
        let (upstream, proxy, client) = setup().await;
        let gate = Gate::new();
        proxy.add_rule(Matcher::any(), Fault::HoldBefore(gate.clone()));

        let dropped = tokio::spawn(client.post(proxy.url()).body("first").send());
        soon("parking", gate.reached()).await;
        assert_eq!(gate.drop_all(), 1);
        soon("the dropped request", dropped)
            .await
            .expect("task")
            .expect_err("the connection was dropped");
        assert!(
            upstream.seen().is_empty(),
            "a dropped parked request is never forwarded"
        );

        let released = tokio::spawn(client.post(proxy.url()).body("second").send());
        soon("parking", gate.reached()).await;
        assert!(upstream.seen().is_empty(), "not forwarded while parked");
        assert_eq!(gate.release(), 1);
        let r = answered("the released request", released).await;
        assert_eq!(json_of(r).await["body"], "second");
        assert_eq!(upstream.seen().len(), 1);
    }

    #[tokio::test]
    async fn a_gate_counts_and_releases_every_parked_request() {
        let (upstream, proxy, client) = setup().await;
        let gate = Gate::new();
        proxy.add_rule(Matcher::any(), Fault::HoldBefore(gate.clone()));
        let requests: Vec<_> = (0..3)
            .map(|i| tokio::spawn(client.post(proxy.url()).body(format!("r{i}")).send()))
            .collect();
        assert_eq!(soon("parking", gate.reached_n(3)).await, 3);
        assert_eq!(gate.release(), 3);
        for request in requests {
            let r = answered("a released request", request).await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        assert_eq!(upstream.seen().len(), 3);
        assert_eq!(gate.release(), 0, "nothing left parked");
    }

    #[tokio::test]
    async fn a_parked_request_does_not_block_others() {
        let (upstream, proxy, client) = setup().await;
        let gate = Gate::new();
        proxy.add_rule(
            Matcher::any().path_contains("/slow"),
            Fault::Hold(gate.clone()),
        );
        let slow = tokio::spawn(client.get(format!("{}/slow", proxy.url())).send());
        soon("parking", gate.reached()).await;

        for _ in 0..3 {
            let r = soon(
                "a request beside the parked one",
                client.get(format!("{}/fast", proxy.url())).send(),
            )
            .await
            .expect("answered");
            assert_eq!(r.status(), StatusCode::OK);
        }
        assert!(!slow.is_finished());
        gate.release();
        let r = answered("the released request", slow).await;
        assert_eq!(json_of(r).await["uri"], "/slow");
        assert_eq!(upstream.seen().len(), 4);
    }

    #[tokio::test]
    async fn times_limits_a_rule_then_it_expires() {
        let (upstream, proxy, client) = setup().await;
        let rule = proxy
            .add_rule(Matcher::any(), Fault::firestore_status(409, "ABORTED"))
            .times(2);
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let r = client.get(proxy.url()).send().await.expect("answered");
            statuses.push(r.status().as_u16());
        }
        assert_eq!(statuses, [409, 409, 200, 200]);
        assert_eq!(rule.hits(), 2);
        assert_eq!(upstream.seen().len(), 2);
    }

    #[tokio::test]
    async fn matchers_select_requests_and_the_first_rule_wins() {
        let (upstream, proxy, client) = setup().await;
        proxy.add_rule(
            Matcher::any()
                .method(Method::POST)
                .path_contains("/documents")
                .header_contains("authorization", "owner")
                .body_contains("\"poison\""),
            Fault::firestore_status(400, "INVALID_ARGUMENT"),
        );
        let later = proxy.add_rule(
            Matcher::any().body_contains("\"poison\""),
            Fault::firestore_status(404, "NOT_FOUND"),
        );
        proxy.add_rule(Matcher::dynamo("GetItem"), Fault::dynamo_internal());

        let send = |method: Method, path: &str, auth: &str, body: &str, target: &str| {
            client
                .request(method, format!("{}{path}", proxy.url()))
                .header("authorization", auth)
                .header("x-amz-target", target)
                .body(body.to_owned())
                .send()
        };
        let status = |r: reqwest::Result<reqwest::Response>| r.expect("answered").status().as_u16();
        let poison = r#"{"v":"poison"}"#;
        assert_eq!(
            status(send(Method::POST, "/documents/a", "Bearer owner", poison, "").await),
            400
        );
        assert_eq!(
            status(send(Method::PUT, "/documents/a", "Bearer owner", poison, "").await),
            404
        );
        assert_eq!(
            status(send(Method::POST, "/other", "Bearer owner", poison, "").await),
            404
        );
        assert_eq!(
            status(send(Method::POST, "/documents/a", "Bearer guest", poison, "").await),
            404
        );
        assert_eq!(
            status(send(Method::POST, "/documents/a", "Bearer owner", "{}", "").await),
            200
        );
        assert_eq!(
            status(send(Method::POST, "/", "", "{}", "DynamoDB_20120810.GetItem").await),
            500
        );
        assert_eq!(
            status(
                send(
                    Method::POST,
                    "/",
                    "",
                    "{}",
                    "DynamoDB_20120810.BatchGetItem"
                )
                .await
            ),
            200
        );
        assert_eq!(upstream.seen().len(), 2);

        assert_eq!(proxy.count(&Matcher::any()), 7);
        assert_eq!(proxy.count(&Matcher::any().body_contains("poison")), 4);
        assert_eq!(proxy.count(&Matcher::dynamo("GetItem")), 1);
        assert_eq!(proxy.count(&Matcher::any().method(Method::PUT)), 1);

        later.remove();
        assert_eq!(
            status(send(Method::PUT, "/documents/a", "Bearer owner", poison, "").await),
            200
        );
        proxy.clear_rules();
        assert_eq!(
            status(send(Method::POST, "/documents/a", "Bearer owner", poison, "").await),
            200
        );
        proxy.reset_log();
        assert!(proxy.requests().is_empty());
        assert_eq!(proxy.count(&Matcher::any()), 0);
    }

    #[tokio::test]
    async fn a_client_that_leaves_takes_its_parked_request_along() {
        let (upstream, proxy, _) = setup().await;
        let gate = Gate::new();
        proxy.add_rule(Matcher::any(), Fault::HoldBefore(gate.clone()));
        let mut stream = TcpStream::connect(proxy.host()).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"POST /doc HTTP/1.1\r\nhost: proxy\r\ncontent-length: 1\r\n\r\nx",
        )
        .await
        .expect("write a request");
        soon("parking", gate.reached()).await;

        drop(stream);
        let mut parked = gate.0.parked.subscribe();
        soon("unparking", parked.wait_for(|n| *n == 0))
            .await
            .expect("the gate is alive");
        assert_eq!(gate.release(), 0);
        assert!(upstream.seen().is_empty(), "never forwarded");
    }

    #[tokio::test]
    async fn shutdown_closes_the_port_and_every_connection() {
        let (upstream, proxy, client) = setup().await;
        let gate = Gate::new();
        proxy.add_rule(Matcher::any(), Fault::HoldBefore(gate.clone()));
        let parked = tokio::spawn(client.get(proxy.url()).send());
        soon("parking", gate.reached()).await;
        let host = proxy.host();

        soon("shutdown", proxy.shutdown()).await;
        assert_eq!(
            gate.parked(),
            0,
            "the parked request went away with its connection"
        );
        soon("the parked request", parked)
            .await
            .expect("task")
            .expect_err("its connection was closed");
        assert!(
            TcpStream::connect(&host).await.is_err(),
            "nothing listens any more"
        );
        assert!(upstream.seen().is_empty());
    }
}
