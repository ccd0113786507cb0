//! Typed configuration, read once at cold start; a bad value, or a setting the function
//! needs and does not have, stops it there, not at the first request. Each port names its
//! backend: the cloud one with its settings, or the embedded one of local mode, ready made.

use std::sync::Arc;
use std::time::Duration;

use crate::function::{Function, Need};
use crate::images::local::LocalFolder;
use crate::limits::RateLimits;
use crate::push::Pusher;
use crate::registry::memory::MemoryRegistry;
use crate::secrets::{self, Secret};
use crate::store::memory::MemoryStore;

/// Google's published keys for Firebase ID tokens, as a JWKS.
pub const GOOGLE_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
/// Firestore's REST endpoint.
pub const FIRESTORE_URL: &str = "https://firestore.googleapis.com";
/// Cloud Storage's JSON API endpoint.
pub const STORAGE_API_URL: &str = "https://storage.googleapis.com";
/// Where Firebase serves a bucket's objects.
pub const FIREBASE_DOWNLOAD_URL: &str = "https://firebasestorage.googleapis.com";
/// OpenAI's API, the default of an OpenAI-compatible provider (`AI_BASE_URL` overrides it).
pub const OPENAI_URL: &str = "https://api.openai.com/v1";
/// Default image model (`AI_IMAGE_MODEL`).
pub const DEFAULT_IMAGE_MODEL: &str = "gpt-image-1";
/// Default chat model for captions (`AI_CHAT_MODEL`).
pub const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";
/// Default image size (`AI_IMAGE_SIZE`); every OpenAI image model accepts it.
pub const DEFAULT_IMAGE_SIZE: &str = "1024x1024";
/// Default budget of one generation with the provider (`AI_TIMEOUT_SECONDS`): with the
/// image upload and two Firestore commits after it, a request stays inside API Gateway's
/// 29 s.
pub const DEFAULT_AI_TIMEOUT: Duration = Duration::from_secs(18);
/// Longest accepted `AI_TIMEOUT_SECONDS`: more would outlast API Gateway's 29 s.
pub const MAX_AI_TIMEOUT: Duration = Duration::from_secs(25);

#[derive(Clone, Debug)]
pub struct Config {
    /// The Firebase / Google Cloud project id (`aud` of ID tokens, Firestore project).
    pub project_id: String,
    pub auth: AuthConfig,
    /// Where the documents live; `None` when nothing says (only functions that touch no
    /// document may start so).
    pub store: Option<Store>,
    /// The connection table and event log.
    pub registry: Registry,
    /// How frames reach the sockets.
    pub push: Push,
    /// Where images go; `None` when nothing says (only the image functions need it).
    pub images: Option<Images>,
    /// The AI provider of `POST /ai/generate-ad-image`; `None` when no `AI_*` setting is
    /// given (only that function needs one).
    pub ai: Option<AiConfig>,
    /// How the AWS clients get credentials.
    pub aws: AwsCredentials,
    /// How secrets kept in Secrets Manager are read.
    pub secrets: SecretsSettings,
    /// How long events stay recorded for catch-up.
    pub event_retention: Duration,
    pub timeouts: Timeouts,
    pub timing: Timing,
    pub limits: RateLimits,
}

/// The document store's backend.
#[derive(Clone)]
pub enum Store {
    Firestore(FirestoreConfig),
    Embedded(Arc<MemoryStore>),
}

/// Where the functions read the secrets that are kept in Secrets Manager.
#[derive(Clone, Debug)]
pub struct SecretsSettings {
    /// A Secrets Manager-protocol endpoint (a local server); the regional one when absent.
    pub endpoint: Option<String>,
    /// How long a value read is used before it is read again.
    pub refresh_after: Duration,
}

impl Default for SecretsSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            refresh_after: secrets::DEFAULT_REFRESH,
        }
    }
}

/// The connection table's and event log's backend.
#[derive(Clone)]
pub enum Registry {
    DynamoDb(DynamoConfig),
    Embedded(Arc<MemoryRegistry>),
}

/// How frames reach the sockets.
#[derive(Clone)]
pub enum Push {
    /// API Gateway's Management API at this endpoint
    /// (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`, or the local gateway's).
    ManagementApi { url: String },
    /// Straight to the sockets of the process that holds them (the local gateway).
    Embedded(Arc<dyn Pusher>),
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ManagementApi { url } => {
                f.debug_struct("ManagementApi").field("url", url).finish()
            }
            Self::Embedded(_) => f.write_str("Embedded"),
        }
    }
}

/// The image store's backend.
#[derive(Clone)]
pub enum Images {
    CloudStorage(StorageConfig),
    /// A local folder (the local gateway serves it).
    Folder(Arc<LocalFolder>),
}

/// Where the AWS clients find credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsCredentials {
    /// The SDK's usual chain (a Lambda's role, `AWS_*` variables, a profile).
    Environment,
    /// Placeholders, for local endpoints that check no signature (moto, the local gateway).
    Placeholder,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Firestore(c) => f.debug_tuple("Firestore").field(c).finish(),
            Self::Embedded(_) => f.write_str("Embedded"),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DynamoDb(c) => f.debug_tuple("DynamoDb").field(c).finish(),
            Self::Embedded(_) => f.write_str("Embedded"),
        }
    }
}

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CloudStorage(c) => f.debug_tuple("CloudStorage").field(c).finish(),
            Self::Folder(folder) => f.debug_tuple("Folder").field(&folder.root()).finish(),
        }
    }
}

/// Which AI provider makes ad images and captions.
#[derive(Clone, Debug)]
pub enum AiConfig {
    /// The built-in provider: a deterministic SVG and a template caption, no network.
    Offline,
    /// An OpenAI-compatible API.
    OpenAi(OpenAiConfig),
}

/// An OpenAI-compatible API (`/images/generations`, `/chat/completions`).
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// The API root, including the version: `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; a self-hosted server may need none.
    pub api_key: Option<Secret>,
    /// The model of `/images/generations` (`AI_IMAGE_MODEL`).
    pub image_model: String,
    /// The model of `/chat/completions`, which writes the caption (`AI_CHAT_MODEL`).
    pub chat_model: String,
    /// `WIDTHxHEIGHT`, as the images API takes it.
    pub image_size: String,
    /// Budget of one generation: image, caption and image download together.
    pub timeout: Duration,
}

/// The Firebase Storage bucket, reached with Cloud Storage's JSON API.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// The bucket name, e.g. `my-project.firebasestorage.app`.
    pub bucket: String,
    /// Cloud Storage's API root (`STORAGE_API_URL`, for tests); Google's by default, or
    /// `http://{FIREBASE_STORAGE_EMULATOR_HOST}`.
    pub api_url: String,
    /// Where the stored images are served from: Firebase's download host, or the emulator.
    pub download_url: String,
    /// The credentials of every call: the service account key JSON (the same one Firestore
    /// uses), or none for the Firebase Storage emulator, which takes `Bearer owner`.
    pub service_account: Option<Secret>,
    /// Google's OAuth token endpoint override (tests); the key file's `token_uri` otherwise.
    pub token_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Accept the Firebase Auth emulator's unsigned tokens. Never on unless configured.
    pub emulator: bool,
    pub jwks_url: String,
    /// The n8n service key (`X-Service-Key`); service calls are refused without it.
    pub service_key: Option<Secret>,
}

#[derive(Clone, Debug)]
pub struct FirestoreConfig {
    /// `https://firestore.googleapis.com`, or `http://{FIRESTORE_EMULATOR_HOST}`.
    pub base_url: String,
    /// True when talking to the emulator (no OAuth token, `Bearer owner`).
    pub emulator: bool,
    /// The service account key JSON; required unless `emulator`.
    pub service_account: Option<Secret>,
    /// Google's OAuth token endpoint override (tests); the key file's `token_uri` otherwise.
    pub token_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DynamoConfig {
    pub table: String,
    /// A DynamoDB-protocol endpoint (local server); the regional endpoint when absent.
    pub endpoint: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Connect timeout of every outbound HTTP call.
    pub connect: Duration,
    /// Whole-request timeout of a Firestore, Google or DynamoDB call.
    pub request: Duration,
    /// Timeout of one `PostToConnection`.
    pub push: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(10),
            push: Duration::from_secs(3),
        }
    }
}

/// How long the consistency machinery waits for work that may still be under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// No invocation runs longer than this (`WRITER_LEASE_SECONDS`): a seq reserved, or a
    /// generation lock taken, this long ago by a writer that has not finished belongs to a
    /// dead writer. It must exceed every function's timeout (the longest is 29 s) plus the
    /// clock differences between functions.
    pub writer_lease: Duration,
    /// How long a product set `processing` by a client or a service (n8n) may stay so before
    /// the sweeper marks it `failed` (`PROCESSING_TIMEOUT_SECONDS`).
    pub processing_timeout: Duration,
}

/// The shortest writer lease accepted in a deployed function: the longest function
/// timeout (29 s) plus room for clock differences.
pub const MIN_WRITER_LEASE: Duration = Duration::from_secs(40);

impl Default for Timing {
    fn default() -> Self {
        Self {
            writer_lease: Duration::from_secs(60),
            processing_timeout: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// A source of settings: the process environment, or a map in tests and the local gateway.
pub trait Settings {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Settings for Env {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<S: std::hash::BuildHasher> Settings for std::collections::HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        self.get(key).cloned().filter(|v| !v.trim().is_empty())
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_settings(&Env)
    }

    pub fn from_settings(s: &impl Settings) -> Result<Self, ConfigError> {
        let required = |key: &str| {
            s.get(key)
                .ok_or_else(|| ConfigError(format!("{key} must be set")))
        };
        let project_id = s
            .get("FIREBASE_PROJECT_ID")
            .or_else(|| s.get("GOOGLE_CLOUD_PROJECT"))
            .ok_or_else(|| ConfigError("FIREBASE_PROJECT_ID must be set".into()))?;

        let auth_emulator = match s.get("AUTH_MODE").as_deref() {
            Some("emulator") => true,
            Some("firebase") => false,
            Some(other) => {
                return Err(ConfigError(format!(
                    "AUTH_MODE must be `firebase` or `emulator`, not `{other}`"
                )));
            }
            None => s.get("FIREBASE_AUTH_EMULATOR_HOST").is_some(),
        };
        // `sam local` runs functions in the Lambda environment, with AWS_SAM_LOCAL set.
        let deployed = s.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
            && s.get("AWS_SAM_LOCAL").as_deref() != Some("true");
        if auth_emulator && deployed {
            return Err(ConfigError(
                "emulator auth (AUTH_MODE=emulator or FIREBASE_AUTH_EMULATOR_HOST) accepts unsigned tokens: it is refused in a deployed function".into(),
            ));
        }
        let auth = AuthConfig {
            emulator: auth_emulator,
            jwks_url: s
                .get("FIREBASE_JWKS_URL")
                .unwrap_or_else(|| GOOGLE_JWKS_URL.into()),
            // With its previous version: callers switch to a rotated key at their own pace.
            service_key: secret(s, "SERVICE_KEY", "SERVICE_KEY_SECRET_ID", true)?,
        };

        let service_account = secret(
            s,
            "GOOGLE_SERVICE_ACCOUNT_JSON",
            "GOOGLE_SERVICE_ACCOUNT_SECRET_ID",
            false,
        )?;
        let store = match (s.get("FIRESTORE_EMULATOR_HOST"), &service_account) {
            (Some(host), _) => Some(Store::Firestore(FirestoreConfig {
                base_url: format!("http://{host}"),
                emulator: true,
                service_account: None,
                token_url: None,
            })),
            (None, Some(key)) => Some(Store::Firestore(FirestoreConfig {
                base_url: s
                    .get("FIRESTORE_BASE_URL")
                    .unwrap_or_else(|| FIRESTORE_URL.into()),
                emulator: false,
                service_account: Some(key.clone()),
                token_url: s.get("GOOGLE_TOKEN_URL"),
            })),
            (None, None) => None,
        };

        let registry = Registry::DynamoDb(DynamoConfig {
            table: required("CONNECTIONS_TABLE")?,
            endpoint: s.get("DYNAMODB_ENDPOINT"),
        });

        // Seconds (for tests and tuning) win over hours; both must be positive.
        let positive = |key: &str| -> Result<Option<u64>, ConfigError> {
            s.get(key)
                .map(|v| {
                    v.parse()
                        .ok()
                        .filter(|n: &u64| *n > 0)
                        .ok_or_else(|| ConfigError(format!("{key} must be a positive integer")))
                })
                .transpose()
        };
        let defaults = Timing::default();
        let timing = Timing {
            writer_lease: positive("WRITER_LEASE_SECONDS")?
                .map_or(defaults.writer_lease, Duration::from_secs),
            processing_timeout: positive("PROCESSING_TIMEOUT_SECONDS")?
                .map_or(defaults.processing_timeout, Duration::from_secs),
        };
        if timing.writer_lease < MIN_WRITER_LEASE {
            return Err(ConfigError(format!(
                "WRITER_LEASE_SECONDS must be at least {} (longer than any function runs)",
                MIN_WRITER_LEASE.as_secs()
            )));
        }
        if timing.processing_timeout < timing.writer_lease {
            return Err(ConfigError(
                "PROCESSING_TIMEOUT_SECONDS must be at least WRITER_LEASE_SECONDS".into(),
            ));
        }

        let event_retention = match (
            positive("EVENT_RETENTION_SECONDS")?,
            positive("EVENT_RETENTION_HOURS")?,
        ) {
            (Some(secs), _) => Duration::from_secs(secs),
            (None, Some(hours)) => Duration::from_secs(hours * 3600),
            (None, None) => Duration::from_secs(24 * 3600),
        };

        let images = match s.get("STORAGE_BUCKET") {
            None => None,
            Some(bucket) => Some(Images::CloudStorage(storage_config(
                s,
                valid_bucket(bucket)?,
                service_account,
            )?)),
        };

        Ok(Self {
            project_id,
            auth,
            store,
            registry,
            push: Push::ManagementApi {
                url: required("WEBSOCKET_MANAGEMENT_URL")?,
            },
            images,
            ai: AiConfig::from_settings(s, None)?,
            aws: AwsCredentials::Environment,
            secrets: SecretsSettings {
                endpoint: url_setting(s, "SECRETS_MANAGER_ENDPOINT")?,
                refresh_after: positive("SECRETS_REFRESH_SECONDS")?
                    .map_or(secrets::DEFAULT_REFRESH, Duration::from_secs),
            },
            event_retention,
            timeouts: Timeouts::default(),
            timing,
            limits: rate_limits(s)?,
        })
    }

    /// The configuration of the function running here, from the environment: everything it
    /// needs, or an error naming what is missing.
    pub fn from_env_for(function: Function) -> Result<Self, ConfigError> {
        let config = Self::from_env()?;
        config.check(function)?;
        Ok(config)
    }

    /// Whether this configuration has what `function` needs; an error naming the settings
    /// otherwise.
    pub fn check(&self, function: Function) -> Result<(), ConfigError> {
        let needs = function.needs();
        let name = function.name();
        if needs.documents && self.store.is_none() {
            return Err(ConfigError(format!(
                "GOOGLE_SERVICE_ACCOUNT_SECRET_ID, GOOGLE_SERVICE_ACCOUNT_JSON or FIRESTORE_EMULATOR_HOST must be set for {name}"
            )));
        }
        if needs.images == Need::Required && self.images.is_none() {
            return Err(ConfigError(format!(
                "STORAGE_BUCKET must be set for {name}"
            )));
        }
        if needs.ai == Need::Required && self.ai.is_none() {
            return Err(ConfigError(format!(
                "AI_API_KEY_SECRET_ID or AI_API_KEY (and AI_BASE_URL for a provider other than OpenAI), or AI_PROVIDER=offline, must be set for {name}"
            )));
        }
        Ok(())
    }
}

/// The AI settings as given (the `AI_*` environment, or the local gateway's flags), before
/// defaults and checks; [`AiConfig::resolve`] makes them a provider, the same way for both.
#[derive(Clone, Debug, Default)]
pub struct AiSettings {
    /// `offline` or `openai`.
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub image_model: Option<String>,
    pub chat_model: Option<String>,
    /// `WIDTHxHEIGHT`.
    pub image_size: Option<String>,
    pub timeout_secs: Option<u64>,
}

impl AiConfig {
    /// Reads `AI_PROVIDER` and the other `AI_*` settings (see [`AiConfig::resolve`]).
    pub fn from_settings(
        s: &impl Settings,
        fallback: Option<AiConfig>,
    ) -> Result<Option<Self>, ConfigError> {
        let timeout_secs = s
            .get("AI_TIMEOUT_SECONDS")
            .map(|v| v.parse().map_err(|_| ai_timeout_error()))
            .transpose()?;
        let settings = AiSettings {
            provider: s.get("AI_PROVIDER"),
            base_url: s.get("AI_BASE_URL"),
            api_key: secret(s, "AI_API_KEY", "AI_API_KEY_SECRET_ID", false)?,
            image_model: s.get("AI_IMAGE_MODEL"),
            chat_model: s.get("AI_CHAT_MODEL"),
            image_size: s.get("AI_IMAGE_SIZE"),
            timeout_secs,
        };
        Self::resolve(settings, fallback)
    }

    /// The provider `settings` name: `offline`, or an OpenAI-compatible API with defaults
    /// filled in. Without a provider, it is `openai` when a base URL or an API key is given,
    /// and `fallback` otherwise (`None` in the cloud, where only the generation function
    /// needs a provider; offline in the local gateway).
    pub fn resolve(
        settings: AiSettings,
        fallback: Option<AiConfig>,
    ) -> Result<Option<Self>, ConfigError> {
        let base_url = settings.base_url.map(|u| u.trim().to_owned());
        if let Some(url) = &base_url
            && !is_http_url(url)
        {
            return Err(ConfigError("AI_BASE_URL must be an http(s) URL".into()));
        }
        let openai = match settings.provider.as_deref() {
            Some("offline") => return Ok(Some(Self::Offline)),
            Some("openai") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "AI_PROVIDER must be `offline` or `openai`, not `{other}`"
                )));
            }
            None => base_url.is_some() || settings.api_key.is_some(),
        };
        if !openai {
            return Ok(fallback);
        }
        if base_url.is_none() && settings.api_key.is_none() {
            return Err(ConfigError(
                "AI_PROVIDER=openai needs AI_API_KEY or AI_API_KEY_SECRET_ID (and AI_BASE_URL for a provider other than OpenAI)"
                    .into(),
            ));
        }
        let timeout = match settings.timeout_secs {
            None => DEFAULT_AI_TIMEOUT,
            Some(secs) => Some(Duration::from_secs(secs))
                .filter(|d| !d.is_zero() && *d <= MAX_AI_TIMEOUT)
                .ok_or_else(ai_timeout_error)?,
        };
        let image_size = settings
            .image_size
            .unwrap_or_else(|| DEFAULT_IMAGE_SIZE.into());
        let valid_size = image_size
            .split_once('x')
            .is_some_and(|(w, h)| w.parse::<u16>().is_ok() && h.parse::<u16>().is_ok());
        if !valid_size {
            return Err(ConfigError(format!(
                "AI_IMAGE_SIZE must look like 1024x1024, not `{image_size}`"
            )));
        }
        Ok(Some(Self::OpenAi(OpenAiConfig {
            base_url: base_url
                .unwrap_or_else(|| OPENAI_URL.into())
                .trim_end_matches('/')
                .to_owned(),
            api_key: settings.api_key,
            image_model: settings
                .image_model
                .unwrap_or_else(|| DEFAULT_IMAGE_MODEL.into()),
            chat_model: settings
                .chat_model
                .unwrap_or_else(|| DEFAULT_CHAT_MODEL.into()),
            image_size,
            timeout,
        })))
    }
}

/// A secret given as the value in `value_key`, or kept in Secrets Manager under the name
/// or ARN in `id_key` (deployed); not both, which would leave unclear which one counts.
fn secret(
    s: &impl Settings,
    value_key: &str,
    id_key: &str,
    with_previous: bool,
) -> Result<Option<Secret>, ConfigError> {
    match (s.get(value_key), s.get(id_key)) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "set {value_key} or {id_key}, not both"
        ))),
        (Some(value), None) => Ok(Some(Secret::from(value))),
        (None, Some(id)) => Ok(Some(Secret::managed(id.trim().to_owned(), with_previous))),
        (None, None) => Ok(None),
    }
}

fn ai_timeout_error() -> ConfigError {
    ConfigError(format!(
        "AI_TIMEOUT_SECONDS must be a whole number from 1 to {}",
        MAX_AI_TIMEOUT.as_secs()
    ))
}

fn is_http_url(value: &str) -> bool {
    reqwest::Url::parse(value).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

/// The rate limits: each `RATE_*` (and `MAX_CONNECTIONS_PER_USER`) a positive whole number,
/// the default where unset.
fn rate_limits(s: &impl Settings) -> Result<RateLimits, ConfigError> {
    let defaults = RateLimits::default();
    let read = |key: &str, default: u32| -> Result<u32, ConfigError> {
        match s.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .ok()
                .filter(|n: &u32| *n > 0)
                .ok_or_else(|| ConfigError(format!("{key} must be a positive whole number"))),
        }
    };
    Ok(RateLimits {
        generations_per_hour: read("RATE_GENERATIONS_PER_HOUR", defaults.generations_per_hour)?,
        mutations_per_minute: read("RATE_MUTATIONS_PER_MINUTE", defaults.mutations_per_minute)?,
        broadcasts_per_minute: read("RATE_BROADCASTS_PER_MINUTE", defaults.broadcasts_per_minute)?,
        connections_per_user: read("MAX_CONNECTIONS_PER_USER", defaults.connections_per_user)?,
        resumes_per_minute: read("RATE_RESUMES_PER_MINUTE", defaults.resumes_per_minute)?,
        event_pages_per_minute: read(
            "RATE_EVENT_PAGES_PER_MINUTE",
            defaults.event_pages_per_minute,
        )?,
    })
}

/// An optional `http(s)://` URL setting.
fn url_setting(s: &impl Settings, key: &str) -> Result<Option<String>, ConfigError> {
    let Some(value) = s.get(key) else {
        return Ok(None);
    };
    let value = value.trim().to_owned();
    if is_http_url(&value) {
        Ok(Some(value))
    } else {
        Err(ConfigError(format!("{key} must be an http(s) URL")))
    }
}

/// Where the bucket is reached and with what: the Firebase Storage emulator when
/// `FIREBASE_STORAGE_EMULATOR_HOST` is set (as the Admin SDK reads it), Cloud Storage with the
/// service account otherwise.
fn storage_config(
    s: &impl Settings,
    bucket: String,
    service_account: Option<Secret>,
) -> Result<StorageConfig, ConfigError> {
    if let Some(host) = s.get("FIREBASE_STORAGE_EMULATOR_HOST") {
        let root = format!("http://{}", host.trim());
        if !is_http_url(&root) {
            return Err(ConfigError(
                "FIREBASE_STORAGE_EMULATOR_HOST must be host:port".into(),
            ));
        }
        return Ok(StorageConfig {
            bucket,
            api_url: root.clone(),
            download_url: root,
            service_account: None,
            token_url: None,
        });
    }
    let service_account = service_account.ok_or_else(|| {
        ConfigError(
            "GOOGLE_SERVICE_ACCOUNT_SECRET_ID, GOOGLE_SERVICE_ACCOUNT_JSON or FIREBASE_STORAGE_EMULATOR_HOST must be set with STORAGE_BUCKET"
                .into(),
        )
    })?;
    Ok(StorageConfig {
        bucket,
        api_url: url_setting(s, "STORAGE_API_URL")?.unwrap_or_else(|| STORAGE_API_URL.into()),
        download_url: FIREBASE_DOWNLOAD_URL.into(),
        service_account: Some(service_account),
        token_url: s.get("GOOGLE_TOKEN_URL"),
    })
}

/// Cloud Storage bucket names: 3 to 222 of lowercase letters, digits, `-`, `_` and `.`.
fn valid_bucket(bucket: String) -> Result<String, ConfigError> {
    let ok = (3..=222).contains(&bucket.len())
        && bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if ok {
        Ok(bucket)
    } else {
        Err(ConfigError(format!(
            "STORAGE_BUCKET `{bucket}` is not a Cloud Storage bucket name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::http::Route;
    use crate::ws::WsRoute;

    fn base() -> HashMap<String, String> {
        [
            ("FIREBASE_PROJECT_ID", "demo-ads"),
            ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"),
            ("CONNECTIONS_TABLE", "connections"),
            ("WEBSOCKET_MANAGEMENT_URL", "http://127.0.0.1:3000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn emulator_auth_is_off_unless_configured() {
        let cfg = Config::from_settings(&base()).unwrap();
        assert!(!cfg.auth.emulator);
        assert!(matches!(&cfg.store, Some(Store::Firestore(f)) if f.emulator));
        assert_eq!(cfg.event_retention, Duration::from_secs(24 * 3600));

        let mut s = base();
        s.insert(
            "FIREBASE_AUTH_EMULATOR_HOST".into(),
            "127.0.0.1:9099".into(),
        );
        assert!(Config::from_settings(&s).unwrap().auth.emulator);
    }

    #[test]
    fn missing_or_bad_settings_fail_at_start_up() {
        let mut s = base();
        s.remove("CONNECTIONS_TABLE");
        let err = Config::from_settings(&s).unwrap_err();
        assert!(err.0.contains("CONNECTIONS_TABLE"), "{err}");

        let mut s = base();
        s.insert("AUTH_MODE".into(), "none".into());
        assert!(Config::from_settings(&s).is_err());

        let mut s = base();
        s.insert("EVENT_RETENTION_HOURS".into(), "0".into());
        assert!(Config::from_settings(&s).is_err());

        for (key, value) in [
            ("WRITER_LEASE_SECONDS", "10"),
            ("PROCESSING_TIMEOUT_SECONDS", "45"),
        ] {
            let mut s = base();
            s.insert(key.into(), value.into());
            assert!(Config::from_settings(&s).is_err(), "{key}={value}");
        }
        let mut s = base();
        s.insert("WRITER_LEASE_SECONDS".into(), "45".into());
        s.insert("PROCESSING_TIMEOUT_SECONDS".into(), "120".into());
        let timing = Config::from_settings(&s).unwrap().timing;
        assert_eq!(timing.writer_lease, Duration::from_secs(45));
        assert_eq!(timing.processing_timeout, Duration::from_secs(120));
    }

    #[test]
    fn ai_provider_follows_the_settings() {
        let cfg = Config::from_settings(&base()).unwrap();
        assert!(cfg.ai.is_none(), "no AI setting, no provider");
        assert!(cfg.images.is_none());

        let mut s = base();
        s.insert("AI_API_KEY".into(), "sk-secret-value".into());
        let Some(AiConfig::OpenAi(ai)) = Config::from_settings(&s).unwrap().ai else {
            panic!("a key alone selects OpenAI");
        };
        assert_eq!(ai.base_url, OPENAI_URL);
        assert_eq!(ai.image_model, DEFAULT_IMAGE_MODEL);
        assert_eq!(ai.timeout, DEFAULT_AI_TIMEOUT);
        assert!(
            !format!("{ai:?}").contains("sk-secret-value"),
            "Debug hides the key"
        );

        let mut s = base();
        s.insert("AI_BASE_URL".into(), "http://127.0.0.1:9/v1/".into());
        s.insert("AI_TIMEOUT_SECONDS".into(), "3".into());
        let Some(AiConfig::OpenAi(ai)) = Config::from_settings(&s).unwrap().ai else {
            panic!("a base URL alone selects OpenAI-compatible");
        };
        assert_eq!(ai.base_url, "http://127.0.0.1:9/v1");
        assert!(ai.api_key.is_none());

        let mut s = base();
        s.insert("AI_PROVIDER".into(), "offline".into());
        assert!(matches!(
            Config::from_settings(&s).unwrap().ai,
            Some(AiConfig::Offline)
        ));

        let key = ("AI_API_KEY", "k");
        for case in [
            vec![("AI_PROVIDER", "magic")],
            vec![("AI_PROVIDER", "openai")],
            vec![("AI_BASE_URL", "not a url")],
            vec![key, ("AI_TIMEOUT_SECONDS", "0")],
            vec![key, ("AI_TIMEOUT_SECONDS", "60")],
            vec![key, ("AI_IMAGE_SIZE", "big")],
            vec![("STORAGE_BUCKET", "Bad/Bucket")],
            vec![("STORAGE_BUCKET", "fine-bucket")],
        ] {
            let mut s = base();
            for (k, v) in &case {
                s.insert((*k).into(), (*v).into());
            }
            assert!(Config::from_settings(&s).is_err(), "{case:?}");
        }

        let mut s = base();
        s.insert(
            "STORAGE_BUCKET".into(),
            "demo-ads.firebasestorage.app".into(),
        );
        s.insert("GOOGLE_SERVICE_ACCOUNT_JSON".into(), "{}".into());
        let Some(Images::CloudStorage(storage)) = Config::from_settings(&s).unwrap().images else {
            panic!("a bucket selects Cloud Storage");
        };
        assert_eq!(storage.bucket, "demo-ads.firebasestorage.app");
        assert_eq!(storage.api_url, STORAGE_API_URL);
        assert_eq!(storage.download_url, FIREBASE_DOWNLOAD_URL);

        // The Storage emulator needs no key, and serves what it stores.
        let mut s = base();
        s.insert("STORAGE_BUCKET".into(), "demo-ads.appspot.com".into());
        s.insert(
            "FIREBASE_STORAGE_EMULATOR_HOST".into(),
            "127.0.0.1:9199".into(),
        );
        let Some(Images::CloudStorage(storage)) = Config::from_settings(&s).unwrap().images else {
            panic!("the emulator is Cloud Storage's API");
        };
        assert_eq!(storage.api_url, "http://127.0.0.1:9199");
        assert_eq!(storage.download_url, "http://127.0.0.1:9199");
        assert!(storage.service_account.is_none());
        s.insert("FIREBASE_STORAGE_EMULATOR_HOST".into(), "a b".into());
        assert!(Config::from_settings(&s).is_err());
    }

    #[test]
    fn each_function_needs_only_its_own_settings() {
        // No Google key, no emulator: the functions that touch no document still start.
        let mut s = base();
        s.remove("FIRESTORE_EMULATOR_HOST");
        let config = Config::from_settings(&s).unwrap();
        assert!(config.store.is_none());
        for function in [
            Function::Ws(WsRoute::Connect),
            Function::Ws(WsRoute::Disconnect),
            Function::Ws(WsRoute::Default),
            Function::Http(Route::Broadcast),
            Function::Http(Route::ListEvents),
        ] {
            assert!(config.check(function).is_ok(), "{function:?}");
        }
        let err = config
            .check(Function::Http(Route::UpdateProduct))
            .unwrap_err();
        assert!(err.0.contains("GOOGLE_SERVICE_ACCOUNT_JSON"), "{err}");
        assert!(config.check(Function::Sweeper).is_err());

        // The image functions need a bucket, and generation an AI provider.
        let check = |extra: &[(&str, &str)], route| {
            let mut s = base();
            for (k, v) in extra {
                s.insert((*k).into(), (*v).into());
            }
            Config::from_settings(&s)
                .unwrap()
                .check(Function::Http(route))
        };
        let err = check(&[], Route::GenerateAdImage).unwrap_err();
        assert!(err.0.contains("STORAGE_BUCKET"), "{err}");
        let storage = [
            ("STORAGE_BUCKET", "b-u-c"),
            ("GOOGLE_SERVICE_ACCOUNT_JSON", "{}"),
        ];
        let err = check(&storage, Route::GenerateAdImage).unwrap_err();
        assert!(err.0.contains("AI_API_KEY"), "{err}");
        assert!(check(&storage, Route::UploadProductImage).is_ok());
        assert!(check(&[], Route::UploadProductImage).is_err());
        assert!(check(&[], Route::UpdateProduct).is_ok());
        let mut offline = storage.to_vec();
        offline.push(("AI_PROVIDER", "offline"));
        assert!(check(&offline, Route::GenerateAdImage).is_ok());
    }
}
