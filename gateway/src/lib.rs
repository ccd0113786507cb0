//! The local gateway: API Gateway's HTTP API and WebSocket API (with its Management API)
//! emulated on one port, over the same handlers and adapters the Lambdas run, with embedded
//! stores by default. Routes come from `shared::http::Route`, the table `template.yaml` is
//! checked against, so the two cannot drift.

mod rest;
mod sockets;
mod static_files;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_apigatewaymanagement::config::{Credentials, Region, SharedCredentialsProvider};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use clap::Parser;
use shared::App;
use shared::auth::Authenticator;
use shared::config::{AuthConfig, FirestoreConfig, Timeouts};
use shared::push::ManagementApiPusher;
use shared::registry::dynamo::{DynamoRegistry, create_table};
use shared::registry::memory::MemoryRegistry;
use shared::store::firestore::FirestoreStore;
use shared::store::memory::MemoryStore;
use tokio::net::TcpListener;

pub use sockets::Limits;

/// Command-line flags (each also readable from the environment).
#[derive(Clone, Debug, Parser)]
#[command(name = "local-gateway", about = "Runs the whole sync backend locally.")]
pub struct Options {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Folder that keeps the embedded stores' data across restarts.
    #[arg(long, env = "DATA_DIR", default_value = ".local-data")]
    pub data_dir: PathBuf,
    /// Keep everything in memory (a throwaway run).
    #[arg(long)]
    pub memory: bool,
    /// Use the Firestore emulator at HOST:PORT instead of the embedded document store.
    #[arg(long, env = "FIRESTORE_EMULATOR_HOST")]
    pub firestore_emulator: Option<String>,
    /// Use a DynamoDB endpoint (e.g. moto_server) instead of the embedded connection table.
    #[arg(long, env = "DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// Table name on that endpoint (created if missing).
    #[arg(long, env = "CONNECTIONS_TABLE", default_value = "connections")]
    pub table: String,
    /// The Firebase project id the emulator tokens are for.
    #[arg(long, env = "FIREBASE_PROJECT_ID", default_value = "demo-ads")]
    pub project_id: String,
    /// How long events stay recorded for catch-up, in seconds.
    #[arg(long, env = "EVENT_RETENTION_SECONDS", default_value_t = 24 * 3600)]
    pub retention_secs: u64,
    /// API Gateway's WebSocket limits (shorter ones in tests).
    #[arg(skip)]
    pub limits: Limits,
}

impl Options {
    /// Defaults for tests: in memory, a free port.
    pub fn ephemeral() -> Self {
        let mut options = Self::parse_from(["local-gateway", "--memory", "--port", "0"]);
        options.firestore_emulator = None;
        options.dynamodb_endpoint = None;
        options
    }
}

#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// What the routes share.
#[derive(Clone)]
pub(crate) struct Gateway {
    pub app: App,
    pub sockets: sockets::Hub,
    pub project_id: Arc<str>,
}

pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    pub options: Options,
    listener: TcpListener,
    router: Router,
}

fn local_sdk_config() -> aws_config::SdkConfig {
    // Local endpoints ignore signatures, but the SDK insists on credentials to sign with.
    aws_config::SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local",
            "local",
            None,
            None,
            "local-gateway",
        )))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

/// Binds the port and wires the backend; `serve*` then runs it.
pub async fn start(options: Options) -> Result<Running, StartError> {
    let listener = TcpListener::bind((options.host.as_str(), options.port))
        .await
        .map_err(|e| {
            StartError(format!(
                "cannot listen on {}:{}: {e}",
                options.host, options.port
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;
    let timeouts = Timeouts::default();
    let retention = Duration::from_secs(options.retention_secs.max(1));
    let http = reqwest_client(&timeouts)?;
    let sdk = local_sdk_config();

    let store: Arc<dyn shared::store::DocumentStore> = match &options.firestore_emulator {
        Some(host) => Arc::new(
            FirestoreStore::new(
                &FirestoreConfig {
                    base_url: format!("http://{host}"),
                    emulator: true,
                    service_account: None,
                    token_url: None,
                },
                &options.project_id,
                http.clone(),
            )
            .map_err(|e| StartError(e.to_string()))?,
        ),
        None if options.memory => Arc::new(MemoryStore::new()),
        None => Arc::new(
            MemoryStore::persistent(options.data_dir.join("documents.json"))
                .map_err(|e| StartError(format!("data folder: {e}")))?,
        ),
    };

    let (connections, events): (
        Arc<dyn shared::registry::ConnectionRegistry>,
        Arc<dyn shared::registry::EventLog>,
    ) = match &options.dynamodb_endpoint {
        Some(endpoint) => {
            let client = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .endpoint_url(endpoint)
                    .build(),
            );
            create_table(&client, &options.table)
                .await
                .map_err(|e| StartError(format!("DynamoDB table: {e}")))?;
            let registry = Arc::new(DynamoRegistry::new(
                client,
                options.table.clone(),
                retention,
            ));
            (registry.clone(), registry)
        }
        None => {
            let registry = if options.memory {
                Arc::new(MemoryRegistry::new(retention))
            } else {
                Arc::new(
                    MemoryRegistry::persistent(options.data_dir.join("events.json"), retention)
                        .map_err(|e| StartError(format!("data folder: {e}")))?,
                )
            };
            (registry.clone(), registry)
        }
    };

    let auth = Arc::new(Authenticator::new(
        AuthConfig {
            emulator: true,
            jwks_url: shared::config::GOOGLE_JWKS_URL.into(),
            service_key: std::env::var("SERVICE_KEY").ok().map(Into::into),
        },
        options.project_id.clone(),
        http,
    ));
    // The functions push through the real Management API client, to this very server.
    let pusher = Arc::new(ManagementApiPusher::new(
        &sdk,
        &format!("http://{addr}"),
        timeouts.push,
    ));
    let app = App {
        store,
        connections,
        events,
        pusher,
        auth,
        cors_allowed_origins: vec!["*".to_owned()].into(),
    };
    let gateway = Gateway {
        app: app.clone(),
        sockets: sockets::Hub::new(options.limits),
        project_id: options.project_id.clone().into(),
    };
    Ok(Running {
        addr,
        app,
        options,
        listener,
        router: router(gateway),
    })
}

fn reqwest_client(t: &Timeouts) -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .connect_timeout(t.connect)
        .timeout(t.request)
        .build()
        .map_err(|e| StartError(format!("HTTP client: {e}")))
}

fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/", get(static_files::index))
        .route("/demo/{file}", get(static_files::asset))
        .route("/dev/token", get(rest::dev_token))
        .route("/ws", get(sockets::upgrade))
        .route("/@connections/{id}", any(sockets::management))
        .fallback(rest::api)
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(gateway)
}

impl Running {
    /// What a person needs on start: the URLs, ready tokens, where the data lives.
    pub fn banner(&self) -> String {
        let base = format!("http://{}", self.addr);
        let token = |uid: &str| {
            shared::ids::Uid::parse(uid)
                .map(|u| {
                    shared::auth::emulator_token(
                        &self.options.project_id,
                        &u,
                        Some(&format!("{uid}@example.com")),
                        Duration::from_secs(24 * 3600),
                    )
                })
                .unwrap_or_default()
        };
        let data = match (&self.options.firestore_emulator, self.options.memory) {
            (Some(host), _) => format!("Firestore emulator at {host}"),
            (None, true) => "in memory (gone when this process stops)".to_owned(),
            (None, false) => format!(
                "{} (delete it to start afresh; --memory for a throwaway run)",
                std::path::absolute(&self.options.data_dir)
                    .unwrap_or_else(|_| self.options.data_dir.clone())
                    .display()
            ),
        };
        let registry = match &self.options.dynamodb_endpoint {
            Some(endpoint) => format!("DynamoDB at {endpoint}, table {}", self.options.table),
            None => "embedded".to_owned(),
        };
        format!(
            "Ad sync backend, local mode (emulator-mode auth, project {project})\n\
             \n  Demo page      {base}/\n  REST API       {base}\n  WebSocket      ws://{addr}/ws?token=<token>\n  \
             Management API {base}/@connections/<id>\n  Dev tokens     {base}/dev/token?uid=alice\n\
             \n  Documents      {data}\n  Connections    {registry}\n\
             \n  Token for alice (24 h):\n    {alice}\n  Token for bob (24 h):\n    {bob}\n\
             \n  Try: curl -X POST {base}/auth/login -H \"Authorization: Bearer $TOKEN\"\n",
            project = self.options.project_id,
            addr = self.addr,
            alice = token("alice"),
            bob = token("bob"),
        )
    }

    /// Serves until the future completes.
    pub async fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    pub async fn serve_until_ctrl_c(self) -> std::io::Result<()> {
        self.serve_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    }

    /// Serves in the background (tests); returns the base URL.
    pub fn spawn(self) -> String {
        let url = format!("http://{}", self.addr);
        tokio::spawn(self.serve_until(std::future::pending()));
        url
    }
}
