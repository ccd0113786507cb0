//! The application context: every client built once per cold start and shared by all
//! requests of a warm function.

use std::sync::Arc;

use crate::ai::AiProvider;
use crate::ai::offline::OfflineProvider;
use crate::ai::openai::OpenAiProvider;
use crate::auth::Authenticator;
use crate::config::{AiConfig, Config, ConfigError, Timing};
use crate::images::ImageStore;
use crate::images::gcs::CloudStorage;
use crate::push::{ManagementApiPusher, Pusher};
use crate::registry::dynamo::DynamoRegistry;
use crate::registry::{ConnectionRegistry, EventLog};
use crate::store::DocumentStore;
use crate::store::firestore::FirestoreStore;
use crate::google::GoogleTokenSource;

/// What a handler needs; the ports are injected so the same handlers run on Lambda (Firestore,
/// DynamoDB) and in the local gateway (embedded stores).
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn DocumentStore>,
    pub connections: Arc<dyn ConnectionRegistry>,
    pub events: Arc<dyn EventLog>,
    pub pusher: Arc<dyn Pusher>,
    pub auth: Arc<Authenticator>,
    pub timing: Timing,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_allowed_origins: Arc<[String]>,
    /// The AI provider of ad generation; `None` in functions that do not generate.
    pub ai: Option<Arc<dyn AiProvider>>,
    /// Where images are stored; `None` in functions that store none.
    pub images: Option<Arc<dyn ImageStore>>,
}

/// The AI provider a configuration names.
pub fn ai_provider(
    config: &AiConfig,
    connect_timeout: std::time::Duration,
) -> Result<Arc<dyn AiProvider>, ConfigError> {
    Ok(match config {
        AiConfig::Offline => Arc::new(OfflineProvider),
        AiConfig::OpenAi(openai) => Arc::new(OpenAiProvider::new(openai.clone(), connect_timeout)?),
    })
}

/// One HTTP client for every Google call, with the timeouts of the configuration.
pub fn http_client(config: &Config) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(config.timeouts.connect)
        .timeout(config.timeouts.request)
        .pool_idle_timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| ConfigError(format!("building the HTTP client: {e}")))
}

/// The AWS SDK configuration (region, credentials, timeouts) from the environment.
pub async fn aws_sdk_config(config: &Config) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(config.timeouts.connect)
        .operation_timeout(config.timeouts.request)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

impl App {
    /// The deployed wiring: Firestore, DynamoDB and the Management API, all from `config`.
    /// Connections are opened here, during init, so the first request does not pay for TLS.
    pub async fn from_config(config: Config) -> Result<Self, ConfigError> {
        let http = http_client(&config)?;
        let sdk = aws_sdk_config(&config).await;

        let mut dynamo = aws_sdk_dynamodb::config::Builder::from(&sdk);
        if let Some(endpoint) = &config.dynamodb.endpoint {
            dynamo = dynamo.endpoint_url(endpoint);
        }
        let registry = Arc::new(DynamoRegistry::new(
            aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
            config.dynamodb.table.clone(),
            config.event_retention,
            config.timeouts.request,
        ));
        let store = Arc::new(FirestoreStore::new(
            &config.firestore,
            &config.project_id,
            http.clone(),
            config.timeouts.request,
        )?);
        let auth = Arc::new(Authenticator::new(
            config.auth.clone(),
            config.project_id.clone(),
            http.clone(),
        ));
        let pusher = Arc::new(ManagementApiPusher::new(
            &sdk,
            &config.management_url,
            config.timeouts.push,
        ));
        let images = match &config.storage {
            None => None,
            Some(storage) => {
                // One token source for the account, so Firestore and Storage share its
                // cached token; the emulator has none, so Storage then gets its own.
                let tokens = match store.token_source() {
                    Some(tokens) => tokens,
                    None => Arc::new(GoogleTokenSource::new(
                        &storage.service_account,
                        storage.token_url.as_deref(),
                        http.clone(),
                    )?),
                };
                Some(Arc::new(CloudStorage::new(storage, tokens, http.clone())))
            }
        };
        let ai = config
            .ai
            .as_ref()
            .map(|ai| ai_provider(ai, config.timeouts.connect))
            .transpose()?;

        let warm_images = async {
            if let Some(images) = &images {
                images.warm_up().await;
            }
        };
        let warm_ai = async {
            if let Some(ai) = &ai {
                ai.warm_up().await;
            }
        };
        tokio::join!(
            store.warm_up(),
            registry.warm_up(),
            auth.warm_up(),
            pusher.warm_up(),
            warm_images,
            warm_ai
        );

        Ok(Self {
            store,
            connections: registry.clone(),
            events: registry,
            pusher,
            auth,
            timing: config.timing,
            cors_allowed_origins: config.cors_allowed_origins.into(),
            ai,
            images: images.map(|i| i as Arc<dyn ImageStore>),
        })
    }
}
