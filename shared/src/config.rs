//! Typed configuration, read once at cold start; a bad value stops the function there,
//! not at the first request.

use std::time::Duration;

use secrecy::SecretString;

/// Google's published keys for Firebase ID tokens, as a JWKS.
pub const GOOGLE_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
/// Firestore's REST endpoint.
pub const FIRESTORE_URL: &str = "https://firestore.googleapis.com";
/// Cloud Storage's JSON API endpoint.
pub const STORAGE_API_URL: &str = "https://storage.googleapis.com";
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
    pub firestore: FirestoreConfig,
    pub dynamodb: DynamoConfig,
    /// The API Gateway Management API endpoint (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub management_url: String,
    /// How long events stay recorded for catch-up.
    pub event_retention: Duration,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_allowed_origins: Vec<String>,
    pub timeouts: Timeouts,
    pub timing: Timing,
    /// The AI provider of `POST /ai/generate-ad-image`; `None` when no `AI_*` setting is
    /// given (only that function needs one, and it refuses to start without it).
    pub ai: Option<AiConfig>,
    /// Where images go (`STORAGE_BUCKET`); `None` when unset (only the image functions
    /// need it, and they refuse to start without it).
    pub storage: Option<StorageConfig>,
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
    pub api_key: Option<SecretString>,
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
    /// Cloud Storage's API root (`STORAGE_API_URL`, for tests); Google's by default.
    pub api_url: String,
    /// The service account key JSON (the same one Firestore uses).
    pub service_account: SecretString,
    /// Google's OAuth token endpoint override (tests); the key file's `token_uri` otherwise.
    pub token_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Accept the Firebase Auth emulator's unsigned tokens. Never on unless configured.
    pub emulator: bool,
    pub jwks_url: String,
    /// The n8n service key (`X-Service-Key`); service calls are refused without it.
    pub service_key: Option<SecretString>,
}

#[derive(Clone, Debug)]
pub struct FirestoreConfig {
    /// `https://firestore.googleapis.com`, or `http://{FIRESTORE_EMULATOR_HOST}`.
    pub base_url: String,
    /// True when talking to the emulator (no OAuth token, `Bearer owner`).
    pub emulator: bool,
    /// The service account key JSON; required unless `emulator`.
    pub service_account: Option<SecretString>,
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
        let auth = AuthConfig {
            emulator: auth_emulator,
            jwks_url: s
                .get("FIREBASE_JWKS_URL")
                .unwrap_or_else(|| GOOGLE_JWKS_URL.into()),
            service_key: s.get("SERVICE_KEY").map(SecretString::from),
        };

        let firestore = match s.get("FIRESTORE_EMULATOR_HOST") {
            Some(host) => FirestoreConfig {
                base_url: format!("http://{host}"),
                emulator: true,
                service_account: None,
                token_url: None,
            },
            None => FirestoreConfig {
                base_url: s
                    .get("FIRESTORE_BASE_URL")
                    .unwrap_or_else(|| FIRESTORE_URL.into()),
                emulator: false,
                service_account: Some(SecretString::from(required("GOOGLE_SERVICE_ACCOUNT_JSON")?)),
                token_url: s.get("GOOGLE_TOKEN_URL"),
            },
        };

        let dynamodb = DynamoConfig {
            table: required("CONNECTIONS_TABLE")?,
            endpoint: s.get("DYNAMODB_ENDPOINT"),
        };

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

        let cors_allowed_origins = s
            .get("CORS_ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();

        let storage = match s.get("STORAGE_BUCKET") {
            None => None,
            Some(bucket) => Some(StorageConfig {
                bucket: valid_bucket(bucket)?,
                api_url: url_setting(s, "STORAGE_API_URL")?
                    .unwrap_or_else(|| STORAGE_API_URL.into()),
                service_account: SecretString::from(
                    s.get("GOOGLE_SERVICE_ACCOUNT_JSON").ok_or_else(|| {
                        ConfigError(
                            "GOOGLE_SERVICE_ACCOUNT_JSON must be set with STORAGE_BUCKET".into(),
                        )
                    })?,
                ),
                token_url: s.get("GOOGLE_TOKEN_URL"),
            }),
        };

        Ok(Self {
            project_id,
            auth,
            firestore,
            dynamodb,
            management_url: required("WEBSOCKET_MANAGEMENT_URL")?,
            event_retention,
            cors_allowed_origins,
            timeouts: Timeouts::default(),
            timing,
            ai: AiConfig::from_settings(s, None)?,
            storage,
        })
    }
}

impl AiConfig {
    /// Reads `AI_PROVIDER` (`offline` or `openai`) and the `AI_*` settings of an
    /// OpenAI-compatible provider. Without `AI_PROVIDER`, the provider is `openai` when
    /// `AI_BASE_URL` or `AI_API_KEY` is set, and `fallback` otherwise (`None` in the cloud,
    /// where only the generation function needs a provider; offline in the local gateway).
    pub fn from_settings(
        s: &impl Settings,
        fallback: Option<AiConfig>,
    ) -> Result<Option<Self>, ConfigError> {
        let base_url = url_setting(s, "AI_BASE_URL")?;
        let api_key = s.get("AI_API_KEY").map(SecretString::from);
        let openai = match s.get("AI_PROVIDER").as_deref() {
            Some("offline") => return Ok(Some(Self::Offline)),
            Some("openai") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "AI_PROVIDER must be `offline` or `openai`, not `{other}`"
                )));
            }
            None => base_url.is_some() || api_key.is_some(),
        };
        if !openai {
            return Ok(fallback);
        }
        if base_url.is_none() && api_key.is_none() {
            return Err(ConfigError(
                "AI_PROVIDER=openai needs AI_API_KEY (and AI_BASE_URL for a provider other than OpenAI)"
                    .into(),
            ));
        }
        let timeout = match s.get("AI_TIMEOUT_SECONDS") {
            None => DEFAULT_AI_TIMEOUT,
            Some(v) => v
                .parse()
                .ok()
                .map(Duration::from_secs)
                .filter(|d| !d.is_zero() && *d <= MAX_AI_TIMEOUT)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "AI_TIMEOUT_SECONDS must be a whole number from 1 to {}",
                        MAX_AI_TIMEOUT.as_secs()
                    ))
                })?,
        };
        let image_size = s
            .get("AI_IMAGE_SIZE")
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
            api_key,
            image_model: s
                .get("AI_IMAGE_MODEL")
                .unwrap_or_else(|| DEFAULT_IMAGE_MODEL.into()),
            chat_model: s
                .get("AI_CHAT_MODEL")
                .unwrap_or_else(|| DEFAULT_CHAT_MODEL.into()),
            image_size,
            timeout,
        })))
    }
}

/// An optional `http(s)://` URL setting.
fn url_setting(s: &impl Settings, key: &str) -> Result<Option<String>, ConfigError> {
    let Some(value) = s.get(key) else {
        return Ok(None);
    };
    let value = value.trim().to_owned();
    match reqwest::Url::parse(&value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Some(value)),
        _ => Err(ConfigError(format!("{key} must be an http(s) URL"))),
    }
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
        assert!(cfg.firestore.emulator);
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
        s.remove("FIRESTORE_EMULATOR_HOST");
        let err = Config::from_settings(&s).unwrap_err();
        assert!(err.0.contains("GOOGLE_SERVICE_ACCOUNT_JSON"), "{err}");

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
        assert!(cfg.storage.is_none());

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
        let storage = Config::from_settings(&s).unwrap().storage.unwrap();
        assert_eq!(storage.bucket, "demo-ads.firebasestorage.app");
        assert_eq!(storage.api_url, STORAGE_API_URL);
    }
}
