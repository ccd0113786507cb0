//! A client of the sync contract (`docs/api.md`, "The event contract"), written as an app
//! developer would from the docs: bootstrap, apply events by version field by field, keep a
//! seq mark, resume, resync, page `GET /events`. The consistency suite runs several of these
//! against real stores, under concurrent writers and faults, and compares what each one holds
//! with Firestore. `client/src/sync-client.js` implements the same rules for browsers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A document as the client holds it: its fields, and the version each field was written at.
#[derive(Clone, Debug, Default)]
struct Tracked {
    fields: Map<String, Value>,
    /// The version of every field not in `versions` (a snapshot's, or none yet).
    base: Option<String>,
    versions: BTreeMap<String, String>,
}

/// Keys of event data that describe the event, not the document.
const NOT_FIELDS: [&str; 2] = ["version", "truncated"];

fn version_of(data: &Map<String, Value>) -> Option<String> {
    data.get("version")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Whether a write at `version` beats what the field holds (no version: always).
fn newer(version: Option<&str>, current: Option<&str>) -> bool {
    match (version, current) {
        (Some(v), Some(c)) => v > c,
        _ => true,
    }
}

impl Tracked {
    fn field_version(&self, name: &str) -> Option<&str> {
        self.versions
            .get(name)
            .map(String::as_str)
            .or(self.base.as_deref())
    }

    fn set(&mut self, name: &str, value: Option<Value>, version: Option<&str>) {
        match value {
            Some(Value::Null) | None => self.fields.remove(name),
            Some(v) => self.fields.insert(name.to_owned(), v),
        };
        if let Some(v) = version {
            self.versions.insert(name.to_owned(), v.to_owned());
        }
    }

    /// The changed fields of an update event: each one, if the event is newer for it.
    fn apply_partial(&mut self, data: &Map<String, Value>) {
        let version = version_of(data);
        for (name, value) in data {
            if NOT_FIELDS.contains(&name.as_str()) {
                continue;
            }
            if newer(version.as_deref(), self.field_version(name)) {
                self.set(name, Some(value.clone()), version.as_deref());
            }
        }
    }

    /// A whole document at its version: every field it has or lacks, where it is newer.
    fn apply_full(&mut self, doc: &Map<String, Value>) {
        let version = version_of(doc);
        let names: BTreeSet<String> = doc
            .keys()
            .chain(self.fields.keys())
            .filter(|k| !NOT_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for name in names {
            if newer(version.as_deref(), self.field_version(&name)) {
                self.set(&name, doc.get(&name).cloned(), version.as_deref());
            }
        }
    }
}

/// What a client holds.
#[derive(Debug, Default)]
struct Model {
    user: Tracked,
    businesses: BTreeMap<String, Tracked>,
    products: BTreeMap<String, Tracked>,
    /// Updates of products not seen yet (their create comes later): never shown.
    held: BTreeMap<String, Tracked>,
    /// Deleted products: deletes are final, ids are never reused.
    deleted: BTreeSet<String>,
}

impl Model {
    fn product_full(&mut self, doc: &Map<String, Value>) {
        let Some(id) = doc.get("id").and_then(Value::as_str) else {
            return;
        };
        if self.deleted.contains(id) {
            return;
        }
        let mut tracked = self
            .products
            .remove(id)
            .or_else(|| self.held.remove(id))
            .unwrap_or_default();
        tracked.apply_full(doc);
        self.products.insert(id.to_owned(), tracked);
    }

    fn apply(&mut self, event: &str, data: &Map<String, Value>) {
        let id = data.get("id").and_then(Value::as_str).map(str::to_owned);
        match (event, id) {
            ("business:created", Some(id)) => {
                self.businesses.entry(id).or_default().apply_full(data);
            }
            ("product:created", Some(_)) => self.product_full(data),
            ("product:updated", Some(id)) if !self.deleted.contains(&id) => {
                match self.products.get_mut(&id) {
                    Some(product) => product.apply_partial(data),
                    None => self.held.entry(id).or_default().apply_partial(data),
                }
            }
            ("product:deleted", Some(id)) => {
                self.products.remove(&id);
                self.held.remove(&id);
                self.deleted.insert(id);
            }
            ("user:updated", _) => self.user.apply_partial(data),
            _ => {}
        }
    }

    /// A bootstrap: its documents replace the state (tombstones still filter them).
    fn snapshot(&mut self, snap: &Value) {
        self.user = Tracked::default();
        if let Some(user) = snap["user"].as_object() {
            self.user.apply_full(user);
        }
        self.businesses.clear();
        for b in snap["businesses"].as_array().into_iter().flatten() {
            if let Some(doc) = b.as_object() {
                self.apply("business:created", doc);
            }
        }
        self.products.clear();
        self.held.clear();
        for p in snap["products"].as_array().into_iter().flatten() {
            if let Some(doc) = p.as_object() {
                self.product_full(doc);
            }
        }
    }

    /// The state as Firestore paths to fields, comparable with `cluster::firestore_truth`.
    fn state(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        if !self.user.fields.is_empty() {
            out.insert("user".to_owned(), Value::Object(self.user.fields.clone()));
        }
        for (id, b) in &self.businesses {
            out.insert(format!("business/{id}"), Value::Object(b.fields.clone()));
        }
        for (id, p) in &self.products {
            out.insert(format!("product/{id}"), Value::Object(p.fields.clone()));
        }
        out
    }
}

/// How a client has fared, for the test's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub events_applied: usize,
    pub duplicates: usize,
    pub resumes: usize,
    pub partials: usize,
    pub resyncs: usize,
}

/// One client of one user.
pub struct SyncClient {
    pub name: String,
    base: String,
    ws_url: String,
    token: String,
    http: reqwest::Client,
    socket: Option<Ws>,
    model: Model,
    /// Every seq up to here was received or carries nothing.
    mark: u64,
    /// Seqs received above the mark.
    seen: BTreeSet<u64>,
    pub counters: Counters,
}

/// How long any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

impl SyncClient {
    /// A client of `uid` on the gateway at `base` (REST and WebSocket), with a dev token.
    pub async fn new(name: &str, base: &str, uid: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTP client");
        let answer: Value = http
            .get(format!("{base}/dev/token?uid={uid}"))
            .send()
            .await
            .expect("dev token")
            .json()
            .await
            .expect("dev token JSON");
        Self {
            name: name.to_owned(),
            base: base.to_owned(),
            ws_url: format!("{}/ws", base.replace("http://", "ws://")),
            token: answer["token"].as_str().expect("a token").to_owned(),
            http,
            socket: None,
            model: Model::default(),
            mark: 0,
            seen: BTreeSet::new(),
            counters: Counters::default(),
        }
    }

    pub fn mark(&self) -> u64 {
        self.mark
    }

    /// `POST /auth/login`: the state from the snapshot (following `next` to its end), the
    /// mark from its `seq`.
    pub async fn login(&mut self) {
        let mut snap = self.login_answer(None).await;
        let mut next = snap["next"].as_str().map(str::to_owned);
        while let Some(after) = next {
            let more = self.login_answer(Some(&after)).await;
            for list in ["businesses", "products"] {
                let items = more[list].as_array().cloned().unwrap_or_default();
                if let Some(all) = snap[list].as_array_mut() {
                    all.extend(items);
                }
            }
            next = more["next"].as_str().map(str::to_owned);
        }
        self.model.snapshot(&snap);
        self.mark = snap["seq"].as_u64().expect("a seq");
        self.seen.clear();
    }

    async fn login_answer(&self, after: Option<&str>) -> Value {
        let mut request = self
            .http
            .post(format!("{}/auth/login", self.base))
            .bearer_auth(&self.token);
        if let Some(after) = after {
            request = request.json(&serde_json::json!({ "after": after }));
        }
        request
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login JSON")
    }

    /// Opens the socket and asks for what was missed since the mark.
    pub async fn connect(&mut self) {
        let url = format!("{}?token={}", self.ws_url, self.token);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the socket opens");
        self.socket = Some(socket);
        self.resume().await;
    }

    /// Closes the socket; the client keeps its state and mark (it went away).
    pub async fn disconnect(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
    }

    async fn send(&mut self, message: Value) {
        let socket = self.socket.as_mut().expect("connected");
        socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    async fn resume(&mut self) {
        self.counters.resumes += 1;
        let since = self.mark;
        self.send(json!({"action": "resume", "since": since})).await;
    }

    /// The next frame from the socket, within `wait`.
    async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        let socket = self.socket.as_mut().expect("connected");
        loop {
            let message = tokio::time::timeout(wait, socket.next()).await.ok()??;
            match message {
                Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Applies one data frame (a duplicate is dropped).
    fn on_event(&mut self, frame: &Value) {
        let Some(seq) = frame["seq"].as_u64() else {
            return;
        };
        if seq <= self.mark || self.seen.contains(&seq) {
            self.counters.duplicates += 1;
            return;
        }
        if let (Some(event), Some(data)) = (frame["event"].as_str(), frame["data"].as_object()) {
            self.model.apply(event, data);
        }
        self.counters.events_applied += 1;
        self.seen.insert(seq);
        self.advance();
    }

    fn advance(&mut self) {
        while self.seen.remove(&(self.mark + 1)) {
            self.mark += 1;
        }
        let mark = self.mark;
        self.seen.retain(|s| *s > mark);
    }

    fn raise_mark(&mut self, seq: u64) {
        self.mark = self.mark.max(seq);
        self.advance();
    }

    /// Reads what the socket has, applying events, until it is quiet for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) {
        while let Some(frame) = self.next_frame(quiet).await {
            self.on_frame(frame).await;
        }
    }

    /// Reads frames, applying events, until the answer to the last `resume`; returns its name
    /// (`resume:done`, `resume:partial` or `resync:required`; the client has acted on it).
    pub async fn resume_answer(&mut self) -> String {
        loop {
            let frame = self
                .next_frame(PATIENCE)
                .await
                .unwrap_or_else(|| panic!("{}: no answer to resume", self.name));
            let name = frame["event"].as_str().unwrap_or_default().to_owned();
            if let Some(Control::Done | Control::Again) = self.on_frame(frame).await {
                return name;
            }
        }
    }

    /// Handles one frame; control frames drive resumes and resyncs.
    async fn on_frame(&mut self, frame: Value) -> Option<Control> {
        let data = frame["data"].clone();
        match frame["event"].as_str() {
            Some("resume:done") => {
                self.raise_mark(data["seq"].as_u64().unwrap_or_default());
                Some(Control::Done)
            }
            Some("resume:partial") => {
                self.counters.partials += 1;
                self.raise_mark(data["seq"].as_u64().unwrap_or_default());
                let wait = data["retryAfterMs"].as_u64().unwrap_or_default();
                tokio::time::sleep(Duration::from_millis(wait)).await;
                self.resume().await;
                Some(Control::Again)
            }
            Some("resync:required") => {
                self.counters.resyncs += 1;
                self.login().await;
                self.resume().await;
                Some(Control::Again)
            }
            Some("pong") => Some(Control::Pong(data["seq"].as_u64())),
            Some("error") => panic!("{}: error frame {frame}", self.name),
            _ => {
                self.on_event(&frame);
                None
            }
        }
    }

    /// Brings the client up to date over its socket: asks the head (`ping`), resumes from
    /// the mark until the server says it is done, and repeats until nothing is missing.
    pub async fn sync(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(
                Instant::now() < deadline,
                "{}: not in sync within {PATIENCE:?} (mark {}, seen {:?})",
                self.name,
                self.mark,
                self.seen
            );
            self.send(json!({"action": "ping"})).await;
            let head = loop {
                let frame = self
                    .next_frame(PATIENCE)
                    .await
                    .unwrap_or_else(|| panic!("{}: no pong", self.name));
                if let Some(Control::Pong(head)) = self.on_frame(frame).await {
                    break head.expect("pong carries the head");
                }
            };
            if self.mark >= head && self.seen.is_empty() {
                return;
            }
            self.resume().await;
            loop {
                let frame = self
                    .next_frame(PATIENCE)
                    .await
                    .unwrap_or_else(|| panic!("{}: no answer to resume", self.name));
                if let Some(Control::Done) = self.on_frame(frame).await {
                    break;
                }
            }
        }
    }

    /// Brings the client up to date with `GET /events` pages only (no socket), as a client
    /// without WebSockets would.
    pub async fn catch_up_over_http(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "{}: not caught up", self.name);
            let page: Value = self
                .http
                .get(format!("{}/events?since={}&limit=50", self.base, self.mark))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("GET /events")
                .json()
                .await
                .expect("events JSON");
            if page["complete"] == false {
                self.counters.resyncs += 1;
                self.login().await;
                continue;
            }
            for frame in page["events"].as_array().into_iter().flatten() {
                self.on_event(frame);
            }
            self.raise_mark(page["seq"].as_u64().expect("seq"));
            if page["hasMore"] == true {
                self.counters.partials += 1;
                let wait = page["retryAfterMs"].as_u64().unwrap_or_default();
                tokio::time::sleep(Duration::from_millis(wait)).await;
                continue;
            }
            if self.mark >= page["head"].as_u64().expect("head") {
                return;
            }
        }
    }

    /// What the client holds, by Firestore path; held partials must all have found their
    /// product by now.
    pub fn state(&self) -> BTreeMap<String, Value> {
        assert!(
            self.model.held.is_empty(),
            "{}: updates of products it never saw created: {:?}",
            self.name,
            self.model.held.keys().collect::<Vec<_>>()
        );
        self.model.state()
    }
}

enum Control {
    Done,
    Again,
    Pong(Option<u64>),
}
