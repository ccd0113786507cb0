//! One scenario body, two transports. [`Transport`] is what a scenario needs of a backend: REST
//! calls, sockets, and a look behind the API (the [`App`]: connection registry, documents,
//! event log). Two implementations:
//!
//! - [`Lambda`]: API Gateway events through the Lambda adapters (`adsync::lambda`), on the
//!   Firestore emulator, moto, the Management API recorder and the Cloud Storage stand-in
//!   ([`TestApp`](crate::TestApp)); a socket is a connection id, its frames what the recorder
//!   got.
//! - [`Gateway`]: the local gateway in-process on its embedded stores, over real HTTP and real
//!   WebSockets; images in its media folder.
//!
//! Scenarios take a [`Kind`] and are instantiated for both with [`on_both_transports!`].

mod gateway;
mod lambda;

use std::future::Future;
use std::time::Duration;

use adsync::App;
use adsync::ids::{BusinessId, ConnectionId, ProductId, Uid};
use adsync::registry::Connection;
use adsync::store::{DocPath, Document};
use async_trait::async_trait;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub use gateway::Gateway;
pub use lambda::Lambda;

use crate::stand_ins::Ai;
pub use crate::{Response, SERVICE_KEY};

/// How long a frame, a close or a registry change may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// Makes one `#[tokio::test]` per transport of each scenario `name(kind: Kind)`:
/// `name::lambda` and `name::gateway`, so that a failure names its transport.
#[macro_export]
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn lambda() {
                super::$name($crate::transport::Kind::Lambda).await;
            }
            #[tokio::test]
            async fn gateway() {
                super::$name($crate::transport::Kind::Gateway).await;
            }
        }
    )*};
}

/// The transport a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Lambda,
    Gateway,
}

impl Kind {
    /// A fresh backend on this transport.
    pub async fn start(self, setup: Setup<'_>) -> Box<dyn Transport> {
        match self {
            Self::Lambda => Box::new(Lambda::start(&setup).await),
            Self::Gateway => Box::new(Gateway::start(&setup).await),
        }
    }
}

/// What a scenario needs of its backend beyond the defaults.
#[derive(Clone, Copy, Default)]
pub struct Setup<'a> {
    /// The AI provider stand-in and the generation budget in seconds; `None`: the offline
    /// provider.
    pub ai: Option<(&'a Ai, u64)>,
    /// How long events stay recorded, in seconds.
    pub retention_secs: Option<u64>,
    /// How long a writer may hold a seq, in seconds.
    pub writer_lease_secs: Option<u64>,
    /// The per-user budgets; `None`: the deployed defaults.
    pub rate_limits: Option<adsync::limits::RateLimits>,
}

impl<'a> Setup<'a> {
    /// Generation through the AI stand-in, with a budget of `timeout_secs`.
    pub fn ai(ai: &'a Ai, timeout_secs: u64) -> Self {
        Self {
            ai: Some((ai, timeout_secs)),
            ..Self::default()
        }
    }
}

/// Who makes a REST request.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    /// A user, with a fresh token.
    User(&'a str),
    /// Whoever this token is for.
    Token(&'a str),
    /// A service (n8n) on behalf of this user: `X-Service-Key` and `X-On-Behalf-Of`.
    Service(&'a str),
}

/// Where a socket's token goes in the handshake.
#[derive(Clone, Copy, Debug)]
pub enum Credentials<'a> {
    /// None at all.
    Nothing,
    /// The `token` query parameter.
    Query(&'a str),
    /// The `Sec-WebSocket-Protocol` header, as a browser sends `new WebSocket(url, [token])`.
    Subprotocol(&'a str),
}

/// An open socket.
#[derive(Debug)]
pub struct Socket {
    /// What the transport knows it by (a connection id on Lambda).
    key: String,
    /// The subprotocol the server echoed.
    pub protocol: Option<String>,
}

/// What a socket received next.
#[derive(Debug)]
pub enum Received {
    Frame(Value),
    /// The server closed it (after every frame received before).
    Closed,
    /// Nothing within the time given.
    Nothing,
}

/// An image as the image store holds it, fetched the way a browser would fetch its URL.
#[derive(Clone, Debug)]
pub struct StoredImage {
    /// The object name (`users/{uid}/products/{productId}/…`).
    pub name: String,
    pub url: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The operations a scenario needs; helpers built on them are on `dyn Transport`.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The backend behind the API, for what no client can see.
    fn app(&self) -> &App;

    /// An ID token this transport's backend accepts for `uid`, valid for `lifetime_secs`
    /// (negative: already expired), with `extra` claims.
    fn token_with(&self, uid: &str, lifetime_secs: i64, extra: Value) -> String;

    /// A REST request (the URI: the path and query) as the backend answers it.
    async fn handle(&self, request: http::Request<Vec<u8>>) -> Response;

    /// Opens a socket; the status of a refusal.
    async fn open(&self, credentials: Credentials<'_>) -> Result<Socket, StatusCode>;

    /// Sends a text message on `socket`.
    async fn send_text(&self, socket: &Socket, text: &str);

    /// The next frame `socket` received that was not read yet, waiting up to `within`.
    async fn receive(&self, socket: &Socket, within: Duration) -> Received;

    /// The client closes `socket`.
    async fn close(&self, socket: &Socket);

    /// From now on the Management API answers 410 for `connection`, as API Gateway does for
    /// a client that went away without a `$disconnect`.
    async fn vanish(&self, connection: &ConnectionId);

    /// The images the backend holds now.
    async fn images(&self) -> Vec<StoredImage>;
}

/// Waits until `check` finds something, re-checking whenever `changed` is notified; `None`
/// after `within`.
pub(crate) async fn wait_for<T>(
    changed: &Notify,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        // Registered before the check: a change between the check and the wait still wakes it.
        notified.as_mut().enable();
        if let Some(found) = check() {
            return Some(found);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return check();
        }
    }
}

/// The `id` of a document in an answer.
pub fn id_of(document: &Value) -> String {
    document["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {document}"))
        .to_owned()
}

/// The `event` names of frames.
pub fn names(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| {
            f["event"]
                .as_str()
                .unwrap_or_else(|| panic!("no event in {f}"))
        })
        .collect()
}

fn parse_uid(raw: &str) -> Uid {
    Uid::parse(raw).expect("a valid uid")
}

fn product_path(uid: &str, business: &str, product: &str) -> DocPath {
    DocPath::product(
        &parse_uid(uid),
        &BusinessId::parse(business).expect("a business id"),
        &ProductId::parse(product).expect("a product id"),
    )
}

/// Waits until `condition` holds, checking every 10 ms (the registry has no change signal);
/// fails after [`PATIENCE`] with `what`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut condition: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = condition().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl dyn Transport + '_ {
    /// An ID token for `uid`, valid for an hour.
    pub fn token(&self, uid: &str) -> String {
        self.token_with(uid, 3600, json!({}))
    }

    /// A REST request: the path with its query, the headers, the body (empty: none).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().expect("a path and query");
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            let value = http::HeaderValue::from_str(value).expect("a header value");
            request.headers_mut().append(name, value);
        }
        self.handle(request).await
    }

    /// A request by `caller` with `body` as JSON.
    pub async fn call(
        &self,
        caller: Caller<'_>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let credentials = match caller {
            Caller::User(uid) => vec![("authorization", format!("Bearer {}", self.token(uid)))],
            Caller::Token(token) => vec![("authorization", format!("Bearer {token}"))],
            Caller::Service(uid) => vec![
                ("x-service-key", SERVICE_KEY.to_owned()),
                ("x-on-behalf-of", uid.to_owned()),
            ],
        };
        let mut headers: Vec<(&str, &str)> =
            credentials.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.request(method, path, &headers, body).await
    }

    /// A request as user `uid` with `body` as JSON.
    pub async fn as_user(
        &self,
        uid: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        self.call(Caller::User(uid), method, path, body).await
    }

    /// Uploads `bytes` as `uid` to `path`.
    pub async fn upload(
        &self,
        uid: &str,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        let auth = format!("Bearer {}", self.token(uid));
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", content_type),
        ];
        self.request(Method::POST, path, &headers, bytes).await
    }

    /// `POST /ai/generate-ad-image` as `uid`.
    pub async fn generate(&self, uid: &str, body: Value) -> Response {
        self.as_user(uid, Method::POST, "/ai/generate-ad-image", Some(body))
            .await
    }

    /// Creates a business of `uid`; the business.
    pub async fn business(&self, uid: &str, name: &str) -> Value {
        let r = self
            .as_user(
                uid,
                Method::POST,
                "/businesses",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// Creates a product of `uid` in `business`; the product.
    pub async fn product(&self, uid: &str, business: &str, fields: Value) -> Value {
        let path = format!("/products/{business}");
        let r = self.as_user(uid, Method::POST, &path, Some(fields)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// A business of `uid` with one product made of `fields`: their ids.
    pub async fn business_with_product(&self, uid: &str, fields: Value) -> (String, String) {
        let business = id_of(&self.business(uid, "Pottery").await);
        let product = id_of(&self.product(uid, &business, fields).await);
        (business, product)
    }

    /// A socket of `uid` and a product of theirs made of `fields`, the socket past the
    /// set-up's two events: the socket and the business and product ids.
    pub async fn watched_product(&self, uid: &str, fields: Value) -> (Socket, String, String) {
        let socket = self.connect(uid).await;
        let (business, product) = self.business_with_product(uid, fields).await;
        let set_up = self.next_frames(&socket, 2).await;
        assert_eq!(names(&set_up), ["business:created", "product:created"]);
        (socket, business, product)
    }

    /// The product as `GET /products/{businessId}` lists it (`null` if it does not).
    pub async fn listed_product(&self, uid: &str, business: &str, product: &str) -> Value {
        let path = format!("/products/{business}");
        let r = self.as_user(uid, Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
            .as_array()
            .and_then(|all| all.iter().find(|p| p["id"] == product))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The stored image at `url`.
    pub async fn image_at(&self, url: &str) -> StoredImage {
        let images = self.images().await;
        images
            .iter()
            .find(|i| i.url == url)
            .cloned()
            .unwrap_or_else(|| panic!("no stored image at {url}: {images:?}"))
    }

    /// The product document of `uid` in the store, as no client sees it.
    pub async fn product_document(
        &self,
        uid: &str,
        business: &str,
        product: &str,
    ) -> Option<Document> {
        let store = self.app().store().expect("a document store");
        store
            .get(&product_path(uid, business, product))
            .await
            .expect("the store answers")
    }

    /// Sets a product of `uid` `processing` straight in the store (a job that died leaves it
    /// so), with its deadline `secs` from now.
    pub async fn set_processing(&self, uid: &str, business: &str, product: &str, secs: i64) {
        let until = (chrono::Utc::now() + chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let fields = json!({"status": "processing", "processingUntil": until});
        let fields = fields.as_object().cloned().expect("an object");
        let mask = ["status".to_owned(), "processingUntil".to_owned()];
        let store = self.app().store().expect("a document store");
        store
            .update(&product_path(uid, business, product), fields, &mask)
            .await
            .expect("updated");
    }

    /// A socket of `uid`, token in the query string.
    pub async fn connect(&self, uid: &str) -> Socket {
        let token = self.token(uid);
        self.open(Credentials::Query(&token))
            .await
            .unwrap_or_else(|status| panic!("connect refused: {status}"))
    }

    /// Sends `message` (JSON) on `socket`.
    pub async fn send(&self, socket: &Socket, message: Value) {
        self.send_text(socket, &message.to_string()).await;
    }

    /// The next frame of `socket`; fails if none comes or the socket is closed.
    pub async fn next(&self, socket: &Socket) -> Value {
        match self.receive(socket, PATIENCE).await {
            Received::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next `n` frames of `socket`.
    pub async fn next_frames(&self, socket: &Socket, n: usize) -> Vec<Value> {
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            frames.push(self.next(socket).await);
        }
        frames
    }

    /// Sends a `ping` and returns the answer, which must be the next frame: proof that
    /// nothing else was waiting on the socket.
    pub async fn ping(&self, socket: &Socket) -> Value {
        self.send(socket, json!({"action": "ping"})).await;
        let frame = self.next(socket).await;
        assert_eq!(
            frame["event"], "pong",
            "nothing else may be pending: {frame}"
        );
        frame
    }

    /// Waits until the server closes `socket`; the frames it got before.
    pub async fn closed(&self, socket: &Socket) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            match self.receive(socket, PATIENCE).await {
                Received::Frame(frame) => frames.push(frame),
                Received::Closed => return frames,
                Received::Nothing => panic!("not closed; frames: {frames:?}"),
            }
        }
    }

    /// The connections of `uid` in the registry.
    pub async fn connections(&self, uid: &str) -> Vec<Connection> {
        self.app()
            .connections
            .of_user(&parse_uid(uid))
            .await
            .expect("the registry answers")
    }

    /// Waits until `uid` has `n` connections in the registry (a `$disconnect` may run after
    /// the socket closed); them.
    pub async fn wait_for_connections(&self, uid: &str, n: usize) -> Vec<Connection> {
        let what = format!("{uid} never had {n} connections");
        eventually(&what, || async {
            let connections = self.connections(uid).await;
            (connections.len() == n).then_some(connections)
        })
        .await
    }

    /// A connection of `uid` in the registry whose client went away without a `$disconnect`:
    /// pushes to it answer 410.
    pub async fn ghost(&self, uid: &str) -> ConnectionId {
        let id = ConnectionId::generate();
        let now = chrono::Utc::now().timestamp();
        let row = Connection {
            id: id.clone(),
            uid: parse_uid(uid),
            connected_at: now,
            token_expires_at: now + 3600,
            expires_at: now + adsync::ws::CONNECTION_TTL_SECS,
        };
        self.app().connections.put(&row).await.expect("registered");
        self.vanish(&id).await;
        id
    }
}
