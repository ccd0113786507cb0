//! The Lambda transport: API Gateway events through the Lambda adapters, on the Firestore
//! emulator (calls counted), moto, the Management API recorder and the Cloud Storage stand-in.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use adsync::App;
use adsync::ids::ConnectionId;
use adsync::ws::WsRoute;
use async_trait::async_trait;
use http::StatusCode;
use serde_json::Value;

use super::{Credentials, Received, Setup, Socket, StoredImage, Transport, wait_for};
use crate::stand_ins::{BUCKET, Google};
use crate::{Response, TestApp};

pub struct Lambda {
    /// The backend, with its Firestore call counter and Management API recorder.
    pub harness: TestApp,
    /// Cloud Storage and Google's token endpoint.
    pub google: Google,
    /// How many frames of each socket were read.
    read: Mutex<HashMap<String, usize>>,
}

impl Lambda {
    pub async fn start(setup: &Setup<'_>) -> Self {
        let google = Google::start().await;
        let mut settings = google.settings();
        match setup.ai {
            Some((ai, timeout_secs)) => settings.extend(ai.settings(timeout_secs)),
            None => settings.push(("AI_PROVIDER".into(), "offline".into())),
        }
        if let Some(secs) = setup.retention_secs {
            settings.push(("EVENT_RETENTION_SECONDS".into(), secs.to_string()));
        }
        if let Some(limits) = setup.rate_limits {
            settings.extend(
                [
                    ("RATE_GENERATIONS_PER_HOUR", limits.generations_per_hour),
                    ("RATE_MUTATIONS_PER_MINUTE", limits.mutations_per_minute),
                    ("RATE_BROADCASTS_PER_MINUTE", limits.broadcasts_per_minute),
                    ("MAX_CONNECTIONS_PER_USER", limits.connections_per_user),
                    ("RATE_RESUMES_PER_MINUTE", limits.resumes_per_minute),
                    ("RATE_EVENT_PAGES_PER_MINUTE", limits.event_pages_per_minute),
                ]
                .map(|(name, value)| (name.into(), value.to_string())),
            );
        }
        let lease = setup.writer_lease_secs;
        // A lease shorter than the functions may run is refused by the settings; tests that
        // need expired reservations soon set it past them.
        let harness = TestApp::spawn_tuned(&settings, |config| {
            if let Some(secs) = lease {
                config.timing.writer_lease = Duration::from_secs(secs);
            }
        })
        .await;
        Self {
            harness,
            google,
            read: Mutex::default(),
        }
    }
}

/// Where Firebase serves an object of the bucket.
fn download_url(name: &str) -> String {
    format!(
        "https://firebasestorage.googleapis.com/v0/b/{BUCKET}/o/{}?alt=media",
        name.replace('/', "%2F")
    )
}

#[async_trait]
impl Transport for Lambda {
    fn app(&self) -> &App {
        &self.harness.app
    }

    fn token_with(&self, uid: &str, lifetime_secs: i64, extra: Value) -> String {
        self.harness.token_with(uid, lifetime_secs, extra)
    }

    async fn handle(&self, request: http::Request<Vec<u8>>) -> Response {
        let (parts, body) = request.into_parts();
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().expect("a text header")))
            .collect();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.harness
            .request(parts.method, path, &headers, &body)
            .await
    }

    async fn open(&self, credentials: Credentials<'_>) -> Result<Socket, StatusCode> {
        let id = ConnectionId::generate().to_string();
        let (query, headers) = match credentials {
            Credentials::Nothing => (vec![], vec![]),
            Credentials::Query(token) => (vec![("token", token)], vec![]),
            Credentials::Subprotocol(list) => (vec![], vec![("Sec-WebSocket-Protocol", list)]),
        };
        let r = self
            .harness
            .ws(WsRoute::Connect, &id, &query, &headers, None)
            .await;
        if r.status_code != 200 {
            let status = u16::try_from(r.status_code).expect("an HTTP status");
            return Err(StatusCode::from_u16(status).expect("an HTTP status"));
        }
        let protocol = r
            .headers
            .get(adsync::ws::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Socket { key: id, protocol })
    }

    async fn send_text(&self, socket: &Socket, text: &str) {
        let r = self
            .harness
            .ws(WsRoute::Default, &socket.key, &[], &[], Some(text))
            .await;
        assert_eq!(r.status_code, 200, "{:?}", r.body);
    }

    async fn receive(&self, socket: &Socket, within: Duration) -> Received {
        let recorder = &self.harness.management;
        let found = wait_for(recorder.changed(), within, || {
            let frames = recorder.frames(&socket.key);
            let mut read = self.read.lock().expect("read counts");
            let read = read.entry(socket.key.clone()).or_default();
            if let Some(frame) = frames.get(*read) {
                *read += 1;
                Some(Received::Frame(frame.clone()))
            } else if recorder.closed().contains(&socket.key) {
                Some(Received::Closed)
            } else {
                None
            }
        })
        .await;
        found.unwrap_or(Received::Nothing)
    }

    async fn close(&self, socket: &Socket) {
        let r = self
            .harness
            .ws(WsRoute::Disconnect, &socket.key, &[], &[], None)
            .await;
        assert_eq!(r.status_code, 200, "{:?}", r.body);
    }

    async fn vanish(&self, connection: &ConnectionId) {
        self.harness.management.set_gone(connection.as_str());
    }

    /// What Cloud Storage holds: the objects uploaded and not deleted since.
    async fn images(&self) -> Vec<StoredImage> {
        let deleted: HashSet<String> = self.google.deletes().into_iter().map(|(_, n)| n).collect();
        self.google
            .uploads()
            .into_iter()
            .filter(|u| !deleted.contains(&u.name))
            .map(|u| StoredImage {
                url: download_url(&u.name),
                name: u.name,
                content_type: u.content_type,
                bytes: u.body,
            })
            .collect()
    }
}
