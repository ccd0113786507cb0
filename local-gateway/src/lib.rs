//! The local gateway: API Gateway's HTTP API and WebSocket API (with its Management API)
//! emulated on one port, over the same handlers and adapters the Lambdas run, with embedded
//! stores by default. Routes come from `adsync::http::Route`, the table `template.yaml` is
//! checked against, so the two cannot drift.

mod api_docs;
mod media;
mod rest;
mod sockets;
mod static_files;
pub mod tables;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adsync::App;
use adsync::config::{
    AiConfig, AiSettings, AuthConfig, AwsCredentials, Config, DynamoConfig, FirestoreConfig,
    Images, Push, Registry, SecretsSettings, Store, Timeouts, Timing,
};
use adsync::function::Function;
use adsync::limits::RateLimits;
use adsync::registry::memory::MemoryRegistry;
use adsync::secrets::Secret;
use adsync::store::memory::MemoryStore;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use clap::{Args, CommandFactory, FromArgMatches, Parser};
use secrecy::SecretString;
use tokio::net::TcpListener;

pub use sockets::Limits;

/// How ID tokens are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// The Firebase Auth emulator's unsigned tokens, and `/dev/token`.
    Emulator,
    /// Real Firebase ID tokens, checked with Google's keys.
    Firebase,
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Emulator => "emulator",
            Self::Firebase => "firebase",
        })
    }
}

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
    /// Use real Firestore (project --project-id) with this service account key file instead
    /// of the embedded document store (the emulator wins when both are given). Only from
    /// this flag: never from GOOGLE_APPLICATION_CREDENTIALS, which many machines have set.
    #[arg(long)]
    pub google_credentials: Option<PathBuf>,
    /// Verify ID tokens: `emulator` (the Auth emulator's unsigned tokens, and /dev/token) or
    /// `firebase` (real Firebase ID tokens of --project-id, checked with Google's keys).
    #[arg(long = "auth", env = "AUTH_MODE", value_enum, default_value_t = AuthMode::Emulator)]
    pub auth_mode: AuthMode,
    /// Where Google's token keys are fetched in `firebase` auth mode.
    #[arg(long, env = "FIREBASE_JWKS_URL", default_value = adsync::config::GOOGLE_JWKS_URL)]
    pub jwks_url: String,
    /// Use a DynamoDB endpoint (moto_server, DynamoDB Local, or AWS's own with the SDK's usual
    /// credentials) instead of the embedded connection table.
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
    /// No request runs longer than this many seconds (requests get the shorter of it, less a
    /// second, and their route's Lambda timeout): a seq reserved or a generation started
    /// longer ago by a request that has not finished belongs to a dead one.
    #[arg(long, env = "WRITER_LEASE_SECONDS", default_value_t = 60)]
    pub writer_lease_secs: u64,
    /// How long a product may stay `processing` (set by a PATCH, as n8n does) before it is
    /// marked `failed`, in seconds.
    #[arg(long, env = "PROCESSING_TIMEOUT_SECONDS", default_value_t = 15 * 60)]
    pub processing_timeout_secs: u64,
    /// How often products stuck in `processing` are looked for, in seconds (the deployed
    /// sweeper runs every minute).
    #[arg(long, default_value_t = 30)]
    pub sweep_interval_secs: u64,
    /// Push through the Management API at this URL instead of straight to this gateway's
    /// sockets: another gateway holds the sockets, as API Gateway does when a function dies
    /// (fault tests).
    #[arg(long)]
    pub management_url: Option<String>,
    /// Push through this gateway's own Management API with the AWS SDK, as the deployed
    /// functions do, instead of straight to the sockets (slower: an HTTP request per frame).
    #[arg(long)]
    pub push_via_management_api: bool,
    /// AI provider: `offline` (built in: an SVG ad, no network) or `openai` (any
    /// OpenAI-compatible API). Default: `openai` when --ai-base-url or --ai-api-key is given,
    /// else `offline`.
    #[arg(long, env = "AI_PROVIDER")]
    pub ai_provider: Option<String>,
    /// The OpenAI-compatible API root, with its version (default https://api.openai.com/v1).
    #[arg(long, env = "AI_BASE_URL")]
    pub ai_base_url: Option<String>,
    /// The AI provider's API key.
    #[arg(long, env = "AI_API_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub ai_api_key: Option<SecretString>,
    /// Image model (default gpt-image-1).
    #[arg(long, env = "AI_IMAGE_MODEL")]
    pub ai_image_model: Option<String>,
    /// Chat model for captions (default gpt-4o-mini).
    #[arg(long, env = "AI_CHAT_MODEL")]
    pub ai_chat_model: Option<String>,
    /// Image size, WIDTHxHEIGHT (default 1024x1024).
    #[arg(long, env = "AI_IMAGE_SIZE")]
    pub ai_image_size: Option<String>,
    /// Budget of one generation with the provider, in seconds (default 18, at most 25).
    #[arg(long, env = "AI_TIMEOUT_SECONDS")]
    pub ai_timeout_secs: Option<u64>,
    /// Emulator auth accepts unsigned tokens that anyone can make, so the gateway refuses it
    /// with real Firestore, a DynamoDB or Management API endpoint on another machine, or a
    /// listen address other machines can reach. This flag lifts that refusal: whoever can
    /// reach the gateway can then act as any user of that data.
    #[arg(long)]
    pub dangerously_accept_unsigned_tokens: bool,
    /// The service key n8n sends (`X-Service-Key`); without it, service calls are refused.
    #[arg(long, env = "SERVICE_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub service_key: Option<SecretString>,
    /// The per-user and per-connection budgets (the deployed defaults).
    #[command(flatten)]
    pub rate_limits: RateLimitFlags,
    /// API Gateway's WebSocket limits (shorter ones in tests).
    #[arg(skip)]
    pub limits: Limits,
}

/// The budgets of `adsync::limits::RateLimits`, as flags with the deployed settings' names.
#[derive(Args, Debug, Clone)]
pub struct RateLimitFlags {
    /// AI generations one user may start per hour.
    #[arg(long, env = "RATE_GENERATIONS_PER_HOUR", default_value_t = DEFAULT_LIMITS.generations_per_hour, value_parser = clap::value_parser!(u32).range(1..))]
    pub generations_per_hour: u32,
    /// Writes one user may make per minute.
    #[arg(long, env = "RATE_MUTATIONS_PER_MINUTE", default_value_t = DEFAULT_LIMITS.mutations_per_minute, value_parser = clap::value_parser!(u32).range(1..))]
    pub mutations_per_minute: u32,
    /// Events a service may broadcast to one user per minute.
    #[arg(long, env = "RATE_BROADCASTS_PER_MINUTE", default_value_t = DEFAULT_LIMITS.broadcasts_per_minute, value_parser = clap::value_parser!(u32).range(1..))]
    pub broadcasts_per_minute: u32,
    /// WebSocket connections one user may hold at once.
    #[arg(long, env = "MAX_CONNECTIONS_PER_USER", default_value_t = DEFAULT_LIMITS.connections_per_user, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections_per_user: u32,
    /// `resume` messages one connection may send per minute.
    #[arg(long, env = "RATE_RESUMES_PER_MINUTE", default_value_t = DEFAULT_LIMITS.resumes_per_minute, value_parser = clap::value_parser!(u32).range(1..))]
    pub resumes_per_minute: u32,
    /// `GET /events` pages one user may read per minute.
    #[arg(long, env = "RATE_EVENT_PAGES_PER_MINUTE", default_value_t = DEFAULT_LIMITS.event_pages_per_minute, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_pages_per_minute: u32,
}

const DEFAULT_LIMITS: RateLimits = RateLimits::DEFAULT;

impl RateLimitFlags {
    pub fn limits(&self) -> RateLimits {
        RateLimits {
            generations_per_hour: self.generations_per_hour,
            mutations_per_minute: self.mutations_per_minute,
            broadcasts_per_minute: self.broadcasts_per_minute,
            connections_per_user: self.connections_per_user,
            resumes_per_minute: self.resumes_per_minute,
            event_pages_per_minute: self.event_pages_per_minute,
        }
    }
}

impl Options {
    /// Defaults for tests: in memory, a free port, the offline AI provider, whatever the
    /// environment says.
    pub fn ephemeral() -> Self {
        // The flags' defaults, with no environment variable read: a test's gateway is the
        // same on every machine.
        let command = Self::command().mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from(["local-gateway", "--memory", "--port", "0"]);
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The consistency timing; the lease may be short here (tests), never zero.
    pub fn timing(&self) -> Result<Timing, StartError> {
        let timing = Timing {
            writer_lease: Duration::from_secs(self.writer_lease_secs),
            processing_timeout: Duration::from_secs(self.processing_timeout_secs),
        };
        if timing.writer_lease < Duration::from_secs(2) {
            return Err(StartError("--writer-lease-secs must be at least 2".into()));
        }
        if timing.processing_timeout < timing.writer_lease {
            return Err(StartError(
                "--processing-timeout-secs must be at least --writer-lease-secs".into(),
            ));
        }
        Ok(timing)
    }

    /// The AI provider, resolved by the same rules as a deployed function's, except that it
    /// defaults to offline.
    pub fn ai_config(&self) -> Result<AiConfig, StartError> {
        let settings = AiSettings {
            provider: self.ai_provider.clone(),
            base_url: self.ai_base_url.clone(),
            api_key: self.ai_api_key.clone().map(Secret::from),
            image_model: self.ai_image_model.clone(),
            chat_model: self.ai_chat_model.clone(),
            image_size: self.ai_image_size.clone(),
            timeout_secs: self.ai_timeout_secs,
        };
        AiConfig::resolve(settings, Some(AiConfig::Offline))
            .map(|ai| ai.unwrap_or(AiConfig::Offline))
            .map_err(|e| StartError(e.to_string()))
    }
}

fn parse_secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
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
    /// `/dev/token` works only where its tokens are accepted: emulator auth.
    pub dev_tokens: bool,
    pub media: Arc<media::Media>,
    pub api_docs: api_docs::Docs,
}

impl Gateway {
    /// The deadline of an invocation of a function whose timeout is `timeout`: never past
    /// the writer lease, which must outlast every request.
    pub fn deadline(&self, timeout: Duration) -> tokio::time::Instant {
        let cap = self
            .app
            .timing
            .writer_lease
            .saturating_sub(Duration::from_secs(1));
        tokio::time::Instant::now() + timeout.min(cap)
    }
}

/// Looks for products stuck in `processing` every `interval`, as the deployed sweeper
/// function does on its schedule.
async fn sweep(app: App, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let deadline = tokio::time::Instant::now() + interval.min(Duration::from_secs(30));
        if let Err(err) =
            adsync::deadline::scope(deadline, adsync::generate::sweep_stuck(&app)).await
        {
            tracing::warn!(error = %err, "sweep failed");
        }
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    pub options: Options,
    /// The folder that holds stored images (served at `/media/`).
    pub media_dir: PathBuf,
    ai: AiConfig,
    listener: TcpListener,
    router: Router,
}

/// Whether the environment holds AWS credentials (for a real DynamoDB endpoint).
fn environment_has_aws_credentials() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some())
}

impl Options {
    /// The backend these options describe: a backend chosen per port, every setting typed;
    /// `App::build` does the rest, as it does for the Lambdas. Creates the DynamoDB table when
    /// one is asked for.
    async fn config(
        &self,
        addr: SocketAddr,
        media: &media::Media,
        sockets: &sockets::Hub,
    ) -> Result<Config, StartError> {
        let timeouts = Timeouts::default();
        let retention = Duration::from_secs(self.retention_secs.max(1));
        let data = |e: &dyn std::fmt::Display| StartError(format!("data folder: {e}"));
        let store = match (&self.firestore_emulator, &self.google_credentials) {
            (Some(host), _) => Store::Firestore(FirestoreConfig {
                base_url: format!("http://{host}"),
                emulator: true,
                service_account: None,
                token_url: None,
            }),
            (None, Some(path)) => {
                let key = std::fs::read_to_string(path).map_err(|e| {
                    StartError(format!("service account key {}: {e}", path.display()))
                })?;
                Store::Firestore(FirestoreConfig {
                    base_url: adsync::config::FIRESTORE_URL.into(),
                    emulator: false,
                    service_account: Some(Secret::from(key)),
                    token_url: None,
                })
            }
            (None, None) if self.memory => Store::Embedded(Arc::new(MemoryStore::new())),
            (None, None) => Store::Embedded(Arc::new(
                MemoryStore::persistent(self.data_dir.join("documents.json"))
                    .map_err(|e| data(&e))?,
            )),
        };
        let aws = if self.dynamodb_endpoint.is_some() && environment_has_aws_credentials() {
            AwsCredentials::Environment
        } else {
            AwsCredentials::Placeholder
        };
        let registry = match &self.dynamodb_endpoint {
            Some(endpoint) => {
                let sdk = adsync::app::aws_sdk_config(aws, &timeouts).await;
                let client = aws_sdk_dynamodb::Client::from_conf(
                    aws_sdk_dynamodb::config::Builder::from(&sdk)
                        .endpoint_url(endpoint)
                        .build(),
                );
                tables::create_table(&client, &self.table)
                    .await
                    .map_err(|e| StartError(format!("DynamoDB table: {e}")))?;
                Registry::DynamoDb(DynamoConfig {
                    table: self.table.clone(),
                    endpoint: Some(endpoint.clone()),
                })
            }
            None if self.memory => Registry::Embedded(Arc::new(MemoryRegistry::new(retention))),
            None => Registry::Embedded(Arc::new(
                MemoryRegistry::persistent(self.data_dir.join("events.json"), retention)
                    .map_err(|e| data(&e))?,
            )),
        };
        Ok(Config {
            project_id: self.project_id.clone(),
            auth: AuthConfig {
                emulator: self.auth_mode == AuthMode::Emulator,
                jwks_url: self.jwks_url.clone(),
                service_key: self.service_key.clone().map(Secret::from),
            },
            store: Some(store),
            registry,
            // Straight to the sockets; or through the real Management API client, to this
            // very server or to the one --management-url names.
            push: match (&self.management_url, self.push_via_management_api) {
                (Some(url), _) => Push::ManagementApi { url: url.clone() },
                (None, true) => Push::ManagementApi {
                    url: format!("http://{addr}"),
                },
                (None, false) => Push::Embedded(Arc::new(sockets.clone())),
            },
            images: Some(Images::Folder(media.folder())),
            ai: Some(self.ai_config()?),
            aws,
            // The local gateway takes secrets as flags; it reads none from Secrets Manager.
            secrets: SecretsSettings::default(),
            event_retention: retention,
            timeouts,
            timing: self.timing()?,
            limits: self.rate_limits.limits(),
        })
    }
}

impl Options {
    /// What the options expose beyond this machine's own throwaway data: real data, or
    /// listeners other machines can reach.
    pub fn exposures(&self) -> Vec<String> {
        let mut exposures = Vec::new();
        if self.firestore_emulator.is_none() && self.google_credentials.is_some() {
            exposures.push(format!(
                "real Firestore (project {}, --google-credentials)",
                self.project_id
            ));
        }
        if let Some(endpoint) = self
            .dynamodb_endpoint
            .as_deref()
            .filter(|e| !adsync::outbound::is_loopback_url(e))
        {
            exposures.push(format!("the DynamoDB endpoint {endpoint}"));
        }
        if let Some(url) = self
            .management_url
            .as_deref()
            .filter(|u| !adsync::outbound::is_loopback_url(u))
        {
            exposures.push(format!("the Management API at {url}"));
        }
        if !adsync::outbound::is_loopback_host(&self.host) {
            exposures.push(format!(
                "the listen address {}, which other machines can reach",
                self.host
            ));
        }
        exposures
    }

    /// Emulator auth only where nothing real is exposed, unless explicitly accepted.
    fn check_exposure(&self) -> Result<(), StartError> {
        let exposures = self.exposures();
        if self.auth_mode != AuthMode::Emulator
            || exposures.is_empty()
            || self.dangerously_accept_unsigned_tokens
        {
            return Ok(());
        }
        Err(StartError(format!(
            "emulator auth accepts unsigned tokens that anyone can make, and this gateway would \
             expose {}. Use --auth firebase (real Firebase ID tokens), or, if you really mean \
             it, --dangerously-accept-unsigned-tokens.",
            exposures.join(", ")
        )))
    }
}

/// Binds the port and wires the backend; `serve*` then runs it.
pub async fn start(options: Options) -> Result<Running, StartError> {
    options.check_exposure()?;
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
    let media = Arc::new(media::Media::new(
        &options.data_dir,
        options.memory,
        &public_base(addr),
    )?);
    let sockets = sockets::Hub::new(options.limits);
    let config = options.config(addr, &media, &sockets).await?;
    let ai = config.ai.clone().unwrap_or(AiConfig::Offline);
    let app = App::build(config, Function::Everything)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let gateway = Gateway {
        app: app.clone(),
        sockets,
        project_id: options.project_id.clone().into(),
        dev_tokens: options.auth_mode == AuthMode::Emulator,
        media: media.clone(),
        api_docs: Arc::new(api_docs::ApiDocs::new(&public_base(addr))),
    };
    Ok(Running {
        addr,
        app,
        options,
        media_dir: media.dir().to_path_buf(),
        ai,
        listener,
        router: router(gateway),
    })
}

/// The base of the URLs images are served at: this server, by an address a browser on this
/// machine can use (a wildcard listen address is not one).
fn public_base(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// CORS as API Gateway answers it when deployed (the same headers and methods; a test keeps
/// them equal), for any origin: the demo page and a front end on another local port alike.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    let headers = adsync::http::CORS_ALLOWED_HEADERS.map(HeaderName::from_static);
    let exposed = adsync::http::CORS_EXPOSED_HEADERS.map(HeaderName::from_static);
    let methods = adsync::http::CORS_ALLOWED_METHODS
        .map(|m| Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET));
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_headers(headers)
        .allow_methods(methods)
        .expose_headers(exposed)
        .max_age(Duration::from_secs(adsync::http::CORS_MAX_AGE_SECS))
}

fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/", get(static_files::index))
        .route("/demo/{file}", get(static_files::asset))
        .route("/dev/token", get(rest::dev_token))
        .route("/ws", get(sockets::upgrade))
        .route("/@connections/{id}", any(sockets::management))
        .route("/media/{*path}", get(media::serve))
        .route("/openapi.json", get(api_docs::openapi))
        .route("/asyncapi.json", get(api_docs::asyncapi))
        .route("/api", get(api_docs::rest_page))
        .route("/api/websocket", get(api_docs::websocket_page))
        .route("/api/assets/{file}", get(api_docs::asset))
        .fallback(rest::api)
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .layer(cors())
        .with_state(gateway)
}

impl Running {
    /// What a person needs on start: the URLs, ready tokens, where the data lives.
    pub fn banner(&self) -> String {
        let base = format!("http://{}", self.addr);
        let token = |uid: &str| {
            adsync::ids::Uid::parse(uid)
                .map(|u| {
                    adsync::auth::emulator_token(
                        &self.options.project_id,
                        &u,
                        Some(&format!("{uid}@example.com")),
                        Duration::from_secs(24 * 3600),
                    )
                })
                .unwrap_or_default()
        };
        let data = match (
            &self.options.firestore_emulator,
            &self.options.google_credentials,
            self.options.memory,
        ) {
            (Some(host), _, _) => format!("Firestore emulator at {host}"),
            (None, Some(_), _) => format!("Firestore, project {}", self.options.project_id),
            (None, None, true) => "in memory (gone when this process stops)".to_owned(),
            (None, None, false) => format!(
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
        let exposures = self.options.exposures();
        let real = if exposures.is_empty() {
            "nothing: local data, on this machine only".to_owned()
        } else {
            format!("REAL: {}", exposures.join("; "))
        };
        let auth = match self.options.auth_mode {
            AuthMode::Emulator
                if self.options.dangerously_accept_unsigned_tokens && !exposures.is_empty() =>
            {
                "EMULATOR: unsigned tokens accepted, from anyone, on real data".to_owned()
            }
            AuthMode::Emulator => "emulator (unsigned tokens, /dev/token)".to_owned(),
            AuthMode::Firebase => format!("Firebase ID tokens of {}", self.options.project_id),
        };
        let ai = match &self.ai {
            AiConfig::Offline => "offline (an SVG ad from the product's fields)".to_owned(),
            AiConfig::OpenAi(c) => format!(
                "OpenAI-compatible at {} (images {}, captions {}, {} s budget)",
                c.base_url,
                c.image_model,
                c.chat_model,
                c.timeout.as_secs()
            ),
        };
        let pushes = match (
            &self.options.management_url,
            self.options.push_via_management_api,
        ) {
            (Some(url), _) => format!("through the Management API at {url}"),
            (None, true) => "through this gateway's Management API (AWS SDK)".to_owned(),
            (None, false) => "straight to this gateway's sockets".to_owned(),
        };
        format!(
            "Ad sync backend, local mode (project {project})\n\
             \n  Auth           {auth}\n  Exposed        {real}\n\
             \n  Demo page      {base}/\n  API page       {base}/api (contracts: {base}/openapi.json, {base}/asyncapi.json)\n  REST API       {base}\n  WebSocket      ws://{addr}/ws?token=<token>\n  \
             Management API {base}/@connections/<id>\n  Dev tokens     {base}/dev/token?uid=alice\n\
             \n  Documents      {data}\n  Connections    {registry}\n  Pushes         {pushes}\n  Images         {media}\n  AI provider    {ai}\n\
             \n  Token for alice (24 h):\n    {alice}\n  Token for bob (24 h):\n    {bob}\n\
             \n  Try: curl -X POST {base}/auth/login -H \"Authorization: Bearer $TOKEN\"\n",
            project = self.options.project_id,
            addr = self.addr,
            media = self.media_dir.display(),
            alice = token("alice"),
            bob = token("bob"),
        )
    }

    /// Serves until the future completes.
    pub async fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let interval = Duration::from_secs(self.options.sweep_interval_secs.max(1));
        let sweeper = tokio::spawn(sweep(self.app.clone(), interval));
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        sweeper.abort();
        served
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
