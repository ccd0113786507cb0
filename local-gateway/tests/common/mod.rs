//! A client of a gateway started in-process, shared by the gateway's test binaries: dev
//! tokens, authenticated REST calls, real WebSockets.

// Each test binary uses the part of this module it needs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use local_gateway::Options;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub media_dir: PathBuf,
    /// Only folders the test made (a temporary media folder) are removed on drop.
    remove_media_on_drop: bool,
}

impl Client {
    pub async fn start(options: Options) -> Self {
        let running = local_gateway::start(options).await.expect("gateway starts");
        let media_dir = running.media_dir.clone();
        Self {
            base: running.spawn(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
            remove_media_on_drop: media_dir.starts_with(std::env::temp_dir()),
            media_dir,
        }
    }

    pub async fn token(&self, uid: &str) -> String {
        let r: Value = self
            .http
            .get(format!("{}/dev/token?uid={uid}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["token"].as_str().unwrap().to_owned()
    }

    /// A REST call as `uid` with a JSON body: status and JSON answer.
    pub async fn call(
        &self,
        uid: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token(uid).await);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The status of `GET {path}`, without credentials.
    pub async fn status_of_get(&self, path: &str) -> u16 {
        let r = self.http.get(format!("{}{path}", self.base)).send().await;
        r.unwrap().status().as_u16()
    }

    /// A socket of `uid`, token in the query string.
    pub async fn socket(&self, uid: &str) -> Ws {
        let url = format!(
            "{}/ws?token={}",
            self.base.replace("http://", "ws://"),
            self.token(uid).await
        );
        tokio_tungstenite::connect_async(url)
            .await
            .expect("socket connects")
            .0
    }
}

impl Drop for Client {
    // The gateway keeps running in its task; a temporary media folder goes with the test.
    fn drop(&mut self) {
        if self.remove_media_on_drop {
            let _ = std::fs::remove_dir_all(&self.media_dir);
        }
    }
}

/// The next text frame, parsed; fails the test after 10 s.
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

pub async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}
