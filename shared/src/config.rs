//! Typed configuration, read once at cold start; a bad value stops the function there,
//! not at the first request.

use std::time::Duration;

use secrecy::SecretString;

/// Google's published keys for Firebase ID tokens, as a JWKS.
pub const GOOGLE_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
/// Firestore's REST endpoint.
pub const FIRESTORE_URL: &str = "https://firestore.googleapis.com";

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

        Ok(Self {
            project_id,
            auth,
            firestore,
            dynamodb,
            management_url: required("WEBSOCKET_MANAGEMENT_URL")?,
            event_retention,
            cors_allowed_origins,
            timeouts: Timeouts::default(),
        })
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
    }
}
