//! The application context, built in one place ([`App::build`]) from a [`Config`] for one
//! [`Function`]: the Lambdas and the local gateway alike. Every client is built once per cold
//! start, and the connections a function needs are opened during init, concurrently.

use std::sync::Arc;

use crate::ai::AiProvider;
use crate::ai::offline::OfflineProvider;
use crate::ai::openai::OpenAiProvider;
use crate::auth::Authenticator;
use crate::config::{
    AiConfig, AuthConfig, AwsCredentials, Config, ConfigError, Images, Push, Registry,
    SecretsSettings, Store, Timeouts, Timing,
};
use crate::domain::UrlRule;
use crate::error::AppError;
use crate::function::{Function, Need, Needs};
use crate::google::GoogleTokenSource;
use crate::images::ImageStore;
use crate::images::gcs::CloudStorage;
use crate::limits::RateLimits;
use crate::push::{ManagementApiPusher, Pusher};
use crate::registry::dynamo::DynamoRegistry;
use crate::registry::{ConnectionRegistry, EventLog, RateLimiter};
use crate::secrets::{Secret, SecretsManager};
use crate::store::DocumentStore;
use crate::store::firestore::FirestoreStore;

/// What a handler needs; the ports are injected so the same handlers run on Lambda
/// (Firestore, DynamoDB) and in the local gateway (embedded stores).
#[derive(Clone)]
pub struct App {
    /// `None` in functions that touch no document.
    store: Option<Arc<dyn DocumentStore>>,
    pub connections: Arc<dyn ConnectionRegistry>,
    pub events: Arc<dyn EventLog>,
    pub pusher: Arc<dyn Pusher>,
    pub auth: Arc<Authenticator>,
    /// The per-user and per-connection budgets, counted in the registry.
    pub budgets: Arc<dyn RateLimiter>,
    pub limits: RateLimits,
    pub timing: Timing,
    /// The AI provider of ad generation; `None` in functions that do not generate.
    pub ai: Option<Arc<dyn AiProvider>>,
    /// Where images are stored; `None` in functions that store none.
    pub images: Option<Arc<dyn ImageStore>>,
    /// Which URLs documents may hold.
    pub urls: UrlRule,
}

/// The registry ports, and the DynamoDB registry behind them when there is one (to warm).
type Registries = (
    Arc<dyn ConnectionRegistry>,
    Arc<dyn EventLog>,
    Arc<dyn RateLimiter>,
    Option<Arc<DynamoRegistry>>,
);

/// The AWS SDK configuration: region and credentials as `credentials` says, with the
/// configuration's timeouts (every call is also cut to the invocation's budget).
pub async fn aws_sdk_config(
    credentials: AwsCredentials,
    timeouts: &Timeouts,
) -> aws_config::SdkConfig {
    let timeout_config = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(timeouts.connect)
        .operation_timeout(timeouts.request)
        .build();
    let loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeout_config);
    match credentials {
        AwsCredentials::Environment => {
            let region = aws_config::meta::region::RegionProviderChain::default_provider()
                .or_else(aws_config::Region::new("us-east-1"));
            loader.region(region).load().await
        }
        // Local endpoints ignore signatures, but the SDK insists on credentials to sign with.
        AwsCredentials::Placeholder => {
            let placeholder = aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "placeholder",
            );
            loader
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(placeholder)
                .load()
                .await
        }
    }
}

/// The Secrets Manager secrets that `function` uses, each with the setting that names it.
fn secrets_to_read(config: &Config, function: Function) -> Vec<(Secret, &'static str)> {
    let needs = function.needs();
    let mut wanted: Vec<(Secret, &'static str)> = Vec::new();
    if needs.service_key
        && let Some(key) = &config.auth.service_key
    {
        wanted.push((key.clone(), "SERVICE_KEY_SECRET_ID"));
    }
    if needs.documents
        && let Some(Store::Firestore(firestore)) = &config.store
        && let Some(key) = &firestore.service_account
    {
        wanted.push((key.clone(), "GOOGLE_SERVICE_ACCOUNT_SECRET_ID"));
    }
    if needs.images != Need::No
        && let Some(Images::CloudStorage(storage)) = &config.images
        && let Some(key) = &storage.service_account
    {
        wanted.push((key.clone(), "GOOGLE_SERVICE_ACCOUNT_SECRET_ID"));
    }
    if needs.ai != Need::No
        && let Some(AiConfig::OpenAi(openai)) = &config.ai
        && let Some(key) = &openai.api_key
    {
        wanted.push((key.clone(), "AI_API_KEY_SECRET_ID"));
    }
    wanted.retain(|(secret, _)| secret.is_managed());
    // Firestore and Cloud Storage share the account's key: one read.
    wanted.dedup_by(|a, b| a.0.is_same(&b.0));
    wanted
}

/// Reads `secrets` from Secrets Manager, concurrently; one that cannot be read stops the
/// cold start with an error naming it.
async fn read_secrets(
    secrets: Vec<(Secret, &'static str)>,
    settings: SecretsSettings,
    sdk: &aws_config::SdkConfig,
) -> Result<(), ConfigError> {
    if secrets.is_empty() {
        return Ok(());
    }
    let mut client = aws_sdk_secretsmanager::config::Builder::from(sdk);
    if let Some(endpoint) = &settings.endpoint {
        client = client.endpoint_url(endpoint);
    }
    let manager = SecretsManager {
        client: aws_sdk_secretsmanager::Client::from_conf(client.build()),
        refresh_after: settings.refresh_after,
    };
    let reads = secrets
        .iter()
        .map(|(secret, setting)| secret.load(&manager, setting));
    futures_util::future::try_join_all(reads).await?;
    Ok(())
}

/// The document store port, and the Firestore client behind it when there is one (to warm).
type DocumentStores = (Option<Arc<dyn DocumentStore>>, Option<Arc<FirestoreStore>>);

/// The document store `store` names, and the Firestore client behind it when there is one.
fn document_store(
    store: Option<Store>,
    project_id: &str,
    http: &reqwest::Client,
    timeouts: &Timeouts,
) -> Result<DocumentStores, ConfigError> {
    Ok(match store {
        None => (None, None),
        Some(Store::Embedded(store)) => (Some(store), None),
        Some(Store::Firestore(firestore)) => {
            let store = Arc::new(FirestoreStore::new(
                &firestore,
                project_id,
                http.clone(),
                timeouts.request,
            )?);
            (Some(store.clone()), Some(store))
        }
    })
}

/// The image store `images` names, if the function stores images.
fn image_store(
    images: Option<Images>,
    needs: Needs,
    firestore: Option<&FirestoreStore>,
    http: &reqwest::Client,
) -> Result<Option<Arc<dyn ImageStore>>, ConfigError> {
    Ok(match images {
        _ if needs.images == Need::No => None,
        None => None,
        Some(Images::Folder(folder)) => Some(folder),
        Some(Images::CloudStorage(storage)) => {
            // One token source for the account, so Firestore and Storage share its
            // cached token; the Firestore emulator has none, so Storage then gets its
            // own; the Storage emulator needs none.
            let tokens = match (
                &storage.service_account,
                firestore.and_then(FirestoreStore::token_source),
            ) {
                (None, _) => None,
                (Some(_), Some(tokens)) => Some(tokens),
                (Some(key), None) => Some(Arc::new(GoogleTokenSource::new(
                    key,
                    storage.token_url.as_deref(),
                    http.clone(),
                )?)),
            };
            Some(Arc::new(CloudStorage::new(&storage, tokens, http.clone())))
        }
    })
}

/// The AI provider `ai` names, if the function generates.
fn ai_provider(
    ai: Option<AiConfig>,
    needs: Needs,
    timeouts: &Timeouts,
) -> Result<Option<Arc<dyn AiProvider>>, ConfigError> {
    Ok(match ai {
        _ if needs.ai == Need::No => None,
        None => None,
        Some(AiConfig::Offline) => Some(Arc::new(OfflineProvider) as Arc<dyn AiProvider>),
        Some(AiConfig::OpenAi(openai)) => {
            Some(Arc::new(OpenAiProvider::new(openai, timeouts.connect)?) as Arc<dyn AiProvider>)
        }
    })
}

impl App {
    /// Builds what `function` needs from `config`, and opens its connections.
    pub async fn build(config: Config, function: Function) -> Result<Self, ConfigError> {
        config.check(function)?;
        let needs = function.needs();
        let secrets = secrets_to_read(&config, function);
        let Config {
            project_id,
            auth,
            store,
            registry,
            push,
            images,
            ai,
            aws,
            secrets: secrets_settings,
            event_retention,
            timeouts,
            timing,
            limits,
        } = config;
        let http = crate::outbound::client(&timeouts)?;
        let sdk = aws_sdk_config(aws, &timeouts).await;

        let (connections, events, budgets, dynamo): Registries = match registry {
            Registry::DynamoDb(dynamodb) => {
                let mut client = aws_sdk_dynamodb::config::Builder::from(&sdk);
                if let Some(endpoint) = &dynamodb.endpoint {
                    client = client.endpoint_url(endpoint);
                }
                let registry = Arc::new(DynamoRegistry::new(
                    aws_sdk_dynamodb::Client::from_conf(client.build()),
                    dynamodb.table,
                    event_retention,
                    timeouts.request,
                ));
                (
                    registry.clone(),
                    registry.clone(),
                    registry.clone(),
                    Some(registry),
                )
            }
            Registry::Embedded(registry) => (registry.clone(), registry.clone(), registry, None),
        };
        let auth = Arc::new(Authenticator::new(
            AuthConfig {
                service_key: auth.service_key.filter(|_| needs.service_key),
                ..auth
            },
            project_id.clone(),
            http.clone(),
        ));
        let (pusher, management): (Arc<dyn Pusher>, _) = match push {
            Push::ManagementApi { url } => {
                let api = Arc::new(ManagementApiPusher::new(&sdk, &url, timeouts.push));
                (api.clone(), Some(api))
            }
            Push::Embedded(pusher) => (pusher, None),
        };

        // Images served from a local folder are the local gateway's: its `http://` media URLs
        // (to this machine) are then acceptable in documents. Deployed, only `https://` is.
        let urls = match images {
            Some(Images::Folder(_)) => UrlRule::HttpsOrLocalHttp,
            _ => UrlRule::HttpsOnly,
        };
        // The clients that sign with a secret are built once it is read, while the
        // connections that need none open.
        let with_secrets = async {
            read_secrets(secrets, secrets_settings, &sdk).await?;
            let documents = store.filter(|_| needs.documents);
            let (store, firestore) = document_store(documents, &project_id, &http, &timeouts)?;
            let images = image_store(images, needs, firestore.as_deref(), &http)?;
            let ai = ai_provider(ai, needs, &timeouts)?;
            tokio::join!(
                async {
                    if let Some(firestore) = &firestore {
                        firestore.warm_up().await;
                    }
                },
                async {
                    if let Some(images) = &images {
                        images.warm_up().await;
                    }
                },
                async {
                    if let Some(ai) = &ai {
                        ai.warm_up().await;
                    }
                },
            );
            Ok::<_, ConfigError>((store, images, ai))
        };
        let without_secrets = async {
            tokio::join!(
                async {
                    if let Some(dynamo) = dynamo.as_ref().filter(|_| needs.table) {
                        dynamo.warm_up().await;
                    }
                },
                async {
                    if needs.id_tokens {
                        auth.warm_up().await;
                    }
                },
                async {
                    if needs.pushes
                        && let Some(management) = &management
                    {
                        management.warm_up().await;
                    }
                },
            )
        };
        // Boxed: in a debug build these futures are large enough to overflow a test
        // thread's stack.
        let (built, _) = tokio::join!(Box::pin(with_secrets), Box::pin(without_secrets));
        let (store, images, ai) = built?;

        Ok(Self {
            store,
            connections,
            events,
            pusher,
            auth,
            budgets,
            limits,
            timing,
            ai,
            images,
            urls,
        })
    }

    /// The document store; only functions that touch documents have one.
    pub fn store(&self) -> Result<&dyn DocumentStore, AppError> {
        self.store.as_deref().ok_or_else(|| {
            AppError::internal("configuration", "this function has no document store")
        })
    }
}
