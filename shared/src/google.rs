//! Google OAuth access tokens for a service account (JWT assertion, cached).
//!
//! The service account signs an RS256 assertion with its private key and exchanges it at
//! Google's token endpoint (RFC 7523, `jwt-bearer` grant) for an access token that lasts an
//! hour. The token is cached across warm invocations and refreshed a few minutes before it
//! expires; concurrent callers share one refresh. Tokens and keys never reach a log line or
//! an error message.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use crate::config::ConfigError;
use crate::outbound::{describe, percent_encode};
use crate::secrets::Secret;

/// The scope of every token: Firestore and Cloud Storage are both covered by it.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, used when the key file names none.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Lifetime requested for an assertion (Google's maximum).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is replaced this long before Google says it expires, so a request that starts
/// with it does not reach Google with an expired token.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Why no access token could be had (the exchange failed or answered nonsense).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("google access token: {0}")]
pub struct TokenError(pub String);

/// Access tokens of one service account, cached and refreshed with a single flight.
pub struct GoogleTokenSource {
    http: reqwest::Client,
    /// The key file, read again before each exchange: a rotated key is used from the next
    /// token on.
    key_json: Secret,
    /// `token_url` of the configuration (tests).
    token_url: Option<String>,
    /// The signer made from the key file's version in use.
    signer: RwLock<Arc<Signer>>,
    cached: RwLock<Option<CachedToken>>,
    /// Held while one caller exchanges an assertion; the others wait, then reuse its token.
    refresh: tokio::sync::Mutex<()>,
}

/// What one version of the key file signs assertions with.
struct Signer {
    /// The key file's version (Secrets Manager's version id; empty for a given value).
    version: String,
    client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    /// The assertion's `aud`: the key file's `token_uri`, which is what Google checks.
    audience: String,
    /// Where the assertion is sent: the override of the configuration, or `audience`.
    endpoint: String,
}

struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

impl std::fmt::Debug for GoogleTokenSource {
    // Hand-written so that no key or token can ever be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signer = self.signer();
        f.debug_struct("GoogleTokenSource")
            .field("client_email", &signer.client_email)
            .field("endpoint", &signer.endpoint)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads a service-account key file (JSON with `client_email`, `private_key` and
    /// optionally `token_uri`, `private_key_id`). `token_url` overrides where assertions
    /// are exchanged (tests).
    fn new(
        key_json: &SecretString,
        version: &str,
        token_url: Option<&str>,
    ) -> Result<Self, ConfigError> {
        // Parsed as a `Value` first and read by hand: serde's typed errors can quote the
        // offending value, which could be the private key.
        let key: Value = serde_json::from_str(key_json.expose_secret()).map_err(|e| {
            ConfigError(format!(
                "the service account key is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let text = |name: &str| key.get(name).and_then(Value::as_str).map(str::to_owned);
        let client_email = text("client_email")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConfigError("the service account key has no client_email".into()))?;
        let private_key = text("private_key")
            .ok_or_else(|| ConfigError("the service account key has no private_key".into()))?;
        let audience = text("token_uri")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
        let endpoint = token_url
            .filter(|s| !s.trim().is_empty())
            .map_or_else(|| audience.clone(), str::to_owned);
        reqwest::Url::parse(&endpoint)
            .map_err(|_| ConfigError("the Google token URL is not a valid URL".into()))?;

        let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|_| {
            ConfigError("the service account private_key is not an RSA PEM key".into())
        })?;
        let signer = Self {
            version: version.to_owned(),
            client_email,
            key_id: text("private_key_id").filter(|s| !s.is_empty()),
            key,
            audience,
            endpoint,
        };
        // The PEM is only decoded into an RSA key when signing, so sign once now.
        signer.assertion().map_err(|_| {
            ConfigError("the service account private_key cannot sign (is it an RSA key?)".into())
        })?;
        Ok(signer)
    }

    fn assertion(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = AssertionClaims {
            iss: &self.client_email,
            scope: CLOUD_PLATFORM_SCOPE,
            aud: &self.audience,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs() as i64,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

impl GoogleTokenSource {
    /// Access tokens for the service account whose key file is `key_json` (given, or read
    /// from Secrets Manager already). `token_url` overrides where assertions are exchanged
    /// (tests). A key that cannot sign is a configuration error here, at cold start, rather
    /// than at the first request.
    pub fn new(
        key_json: &Secret,
        token_url: Option<&str>,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let versions = key_json
            .in_hand()
            .ok_or_else(|| ConfigError("the service account key was not read".into()))?;
        let signer = Signer::new(&versions.current, &versions.version, token_url)?;
        Ok(Self {
            http,
            key_json: key_json.clone(),
            token_url: token_url.map(str::to_owned),
            signer: RwLock::new(Arc::new(signer)),
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The signer in use.
    fn signer(&self) -> Arc<Signer> {
        self.signer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The signer of the key file's current version: a new one when the key was rotated.
    /// A rotated key that cannot sign is logged, and the one in use stays.
    async fn current_signer(&self) -> Arc<Signer> {
        let signer = self.signer();
        let Some(versions) = self.key_json.versions().await else {
            return signer;
        };
        if versions.version == signer.version {
            return signer;
        }
        match Signer::new(
            &versions.current,
            &versions.version,
            self.token_url.as_deref(),
        ) {
            Ok(rotated) => {
                let rotated = Arc::new(rotated);
                *self.signer.write().unwrap_or_else(PoisonError::into_inner) = rotated.clone();
                rotated
            }
            Err(error) => {
                tracing::error!(%error, "the rotated service account key is unusable; the previous one stays");
                signer
            }
        }
    }

    /// A valid access token: the cached one, or a fresh one from one exchange shared by all
    /// concurrent callers.
    pub async fn access_token(&self) -> Result<SecretString, TokenError> {
        if let Some(token) = self.fresh_cached() {
            return Ok(token);
        }
        let _flight = self.refresh.lock().await;
        // Whoever held the lock before us may have refreshed it already.
        if let Some(token) = self.fresh_cached() {
            return Ok(token);
        }
        let (token, lifetime) = self.exchange().await?;
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let cached = CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        };
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
        Ok(token)
    }

    /// Drops the cached token, so the next caller fetches a new one: for an API that
    /// refused it (HTTP 401) before it was due to expire, e.g. after a key rotation.
    pub fn forget(&self) {
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn fresh_cached(&self) -> Option<SecretString> {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// One round trip to the token endpoint: the token and how long it lives.
    async fn exchange(&self) -> Result<(SecretString, Duration), TokenError> {
        let signer = self.current_signer().await;
        let assertion = signer
            .assertion()
            .map_err(|_| TokenError("signing the assertion failed".into()))?;
        let body = format!(
            "grant_type={}&assertion={}",
            percent_encode(JWT_BEARER_GRANT),
            percent_encode(&assertion)
        );
        let response = self
            .http
            .post(&signer.endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .timeout(crate::deadline::budget(
                crate::config::Timeouts::default().request,
            ))
            .send()
            .await
            .map_err(|e| TokenError(describe(&e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TokenError(describe(&e)))?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            // Google's OAuth errors are `{"error": "...", "error_description": "..."}`;
            // neither holds the assertion.
            let field = |name: &str| {
                body.as_ref()
                    .and_then(|b| b.get(name))
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(200).collect::<String>())
            };
            let detail = match (field("error"), field("error_description")) {
                (Some(e), Some(d)) => format!(": {e}: {d}"),
                (Some(e), None) => format!(": {e}"),
                _ => String::new(),
            };
            return Err(TokenError(format!(
                "the token endpoint answered HTTP {}{detail}",
                status.as_u16()
            )));
        }
        let body = body.ok_or_else(|| TokenError("the token endpoint answered non-JSON".into()))?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError("the token endpoint answered no access_token".into()))?;
        // Google always sends `expires_in`; without it, assume the documented hour.
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .map_or(ASSERTION_LIFETIME, Duration::from_secs);
        Ok((SecretString::from(token), lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_type_is_form_encoded() {
        assert_eq!(
            percent_encode(JWT_BEARER_GRANT),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
    }

    #[test]
    fn bad_key_files_are_configuration_errors() {
        let http = reqwest::Client::new();
        let cases = [
            "not json",
            r#""-----BEGIN PRIVATE KEY-----secret""#,
            r#"{"private_key": "x"}"#,
            r#"{"client_email": "a@b.iam.gserviceaccount.com"}"#,
            r#"{"client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
        ];
        for case in cases {
            let err =
                GoogleTokenSource::new(&Secret::from(case), None, http.clone()).expect_err(case);
            assert!(!err.0.contains("secret"), "{err}");
            assert!(!err.0.contains("AAAA"), "{err}");
        }
    }
}
