//! Who is calling: Firebase ID tokens (verified as the Admin SDK does), the Firebase Auth
//! emulator's unsigned tokens in emulator mode only, and the n8n service key.
//!
//! Behaviour worth knowing:
//! - Only `RS256` tokens are verified against Google's keys; `none` is accepted only in
//!   emulator mode, every other `alg` (HMAC included) is refused before any key is touched.
//! - Time claims allow [`CLOCK_SKEW`] (60 s) either way: `exp` may be up to 60 s past,
//!   `iat` and `auth_time` up to 60 s in the future, to absorb drift between Google's
//!   clocks and ours.
//! - Claims are checked before the signature, so a token that could never pass (wrong
//!   project, expired) never costs a key fetch.
//! - Keys are cached for the response's `Cache-Control: max-age` (clamped to 1 s .. 24 h,
//!   60 s when absent). Concurrent fetches are collapsed into one whose outcome is shared.
//! - A `kid` missing from a fresh key set triggers one refetch, at most once per
//!   [`DEFAULT_KID_REFETCH_INTERVAL`] (30 s), so random `kid`s cannot make us hammer Google.
//! - Failing to fetch the keys is our dependency failing: `AppError::Internal` (500).
//! - Tokens and keys never reach a log line or an error message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use crate::config::AuthConfig;
use crate::error::AppError;
use crate::ids::Uid;

mod emulator;
mod keys;

pub use keys::STALE_KEYS_GRACE;
mod service;

pub use emulator::emulator_token;
pub use keys::DEFAULT_KID_REFETCH_INTERVAL;

/// Header carrying the n8n service key.
pub const SERVICE_KEY_HEADER: &str = "x-service-key";
/// Header naming the user a service call acts for.
pub const ON_BEHALF_OF_HEADER: &str = "x-on-behalf-of";
/// Tolerated difference between the token issuer's clock and ours, applied to `exp`, `iat`
/// and `auth_time`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Firebase ID tokens are about 1 KB (custom claims are capped at 1000 bytes); anything much
/// larger is junk and is refused before decoding.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The verified caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user, from a verified ID token.
    User(VerifiedToken),
    /// A service (n8n) with the right `X-Service-Key`, acting for `X-On-Behalf-Of`.
    Service {
        /// The user whose data the service call addresses.
        on_behalf_of: Uid,
    },
}

impl Principal {
    /// The user whose data the request addresses.
    pub fn uid(&self) -> &Uid {
        match self {
            Self::User(token) => &token.uid,
            Self::Service { on_behalf_of } => on_behalf_of,
        }
    }
}

/// The claims of a verified Firebase ID token that the backend uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The token's `sub`.
    pub uid: Uid,
    /// The token's `exp`, Unix seconds.
    pub expires_at: i64,
    /// The `email` claim, when the token has one.
    pub email: Option<String>,
    /// The `name` claim (display name), when the token has one.
    pub name: Option<String>,
    /// The `picture` claim (photo URL), when the token has one.
    pub picture: Option<String>,
}

/// Verifies tokens and service keys. Built once per cold start; caches Google's keys.
pub struct Authenticator {
    config: AuthConfig,
    project_id: String,
    issuer: String,
    keys: keys::GoogleKeys,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The service key stays out of debug output (SecretString redacts it anyway).
        f.debug_struct("Authenticator")
            .field("project_id", &self.project_id)
            .field("emulator", &self.config.emulator)
            .field("jwks_url", &self.config.jwks_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims we check or use; types are strict for the checked ones (a wrong type is a
/// malformed token), lenient for the profile ones (custom claims could shadow them).
#[derive(Deserialize)]
struct Claims {
    aud: Option<String>,
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    auth_time: Option<i64>,
    #[serde(default)]
    email: Option<Value>,
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    picture: Option<Value>,
}

pub(crate) fn unauthorized(reason: &str) -> AppError {
    AppError::Unauthorized(format!("invalid ID token: {reason}"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn issuer_for(project_id: &str) -> String {
    format!("https://securetoken.google.com/{project_id}")
}

impl Authenticator {
    /// An authenticator for ID tokens of `project_id`; `http` should carry timeouts, as the
    /// key fetch happens inside a request.
    pub fn new(config: AuthConfig, project_id: String, http: reqwest::Client) -> Self {
        Self {
            issuer: issuer_for(&project_id),
            keys: keys::GoogleKeys::new(config.jwks_url.clone(), http),
            config,
            project_id,
        }
    }

    /// Overrides how often an unknown `kid` may trigger a refetch (default 30 s).
    pub fn with_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.keys.set_kid_refetch_interval(interval);
        self
    }

    /// Overrides how long stale keys still verify tokens while fetching fails (default
    /// [`STALE_KEYS_GRACE`]).
    pub fn with_stale_keys_grace(mut self, grace: Duration) -> Self {
        self.keys.set_stale_grace(grace);
        self
    }

    /// Fetches the signing keys ahead of the first request (opens the TLS connection too).
    /// Skipped in emulator mode; a failure is logged and retried by the first request.
    pub async fn warm_up(&self) {
        if !self.config.emulator {
            self.keys.warm_up().await;
        }
    }

    /// Verifies a Firebase ID token; anything wrong with it is a 401. Failing to fetch
    /// Google's keys is a 500.
    pub async fn verify_id_token(&self, token: &str) -> Result<VerifiedToken, AppError> {
        if token.is_empty() {
            return Err(unauthorized("empty"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(unauthorized("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unauthorized(
                "not a JWT (expected three dot-separated parts)",
            ));
        };
        let header: JwtHeader = decode_part(header_b64, "header")?;

        // The algorithm decides everything else, so it is checked first and from a fixed
        // list; an attacker-chosen HMAC or `none` never reaches a key.
        match header.alg.as_str() {
            "RS256" => {}
            "none" if self.config.emulator => {
                if !signature_b64.is_empty() {
                    return Err(unauthorized(
                        "an unsigned token must have an empty signature",
                    ));
                }
                let claims: Claims = decode_part(payload_b64, "payload")?;
                return self.check_claims(claims);
            }
            _ => return Err(unauthorized("unsupported algorithm (expected RS256)")),
        }
        let Some(kid) = header.kid.filter(|k| !k.is_empty()) else {
            return Err(unauthorized("no key id (kid) in the header"));
        };
        let claims: Claims = decode_part(payload_b64, "payload")?;
        let verified = self.check_claims(claims)?;

        let key = self.keys.key_for(&kid).await?;
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(
            signature_b64,
            message.as_bytes(),
            &key,
            Algorithm::RS256,
        ) {
            Ok(true) => Ok(verified),
            Ok(false) | Err(_) => Err(unauthorized("bad signature")),
        }
    }

    /// A user (`Authorization: Bearer`) or a service (`X-Service-Key` + `X-On-Behalf-Of`).
    /// A present `X-Service-Key` always selects the service path.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AppError> {
        if headers.contains_key(SERVICE_KEY_HEADER) {
            return service::on_behalf_of(self.config.service_key.as_ref(), headers)
                .await
                .map(|on_behalf_of| Principal::Service { on_behalf_of });
        }
        match bearer_token(headers)? {
            Some(token) => self.verify_id_token(token).await.map(Principal::User),
            None => Err(AppError::Unauthorized(
                "missing credentials: send `Authorization: Bearer <Firebase ID token>`, or \
                 `X-Service-Key` with `X-On-Behalf-Of` for services"
                    .into(),
            )),
        }
    }

    /// For service-only routes (broadcast): the uid the service acts for. A user's token
    /// here is 403, no credentials 401.
    pub async fn authenticate_service(&self, headers: &HeaderMap) -> Result<Uid, AppError> {
        if headers.contains_key(SERVICE_KEY_HEADER) {
            return service::on_behalf_of(self.config.service_key.as_ref(), headers).await;
        }
        if headers.contains_key(AUTHORIZATION) {
            return Err(AppError::Forbidden(
                "this route is for services only (`X-Service-Key`)".into(),
            ));
        }
        Err(AppError::Unauthorized(
            "missing credentials: send `X-Service-Key` with `X-On-Behalf-Of`".into(),
        ))
    }

    fn check_claims(&self, claims: Claims) -> Result<VerifiedToken, AppError> {
        let now = unix_now();
        let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(0);
        if claims.aud.as_deref() != Some(self.project_id.as_str()) {
            return Err(unauthorized("wrong audience (aud is not this project)"));
        }
        if claims.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(unauthorized("wrong issuer"));
        }
        let Some(exp) = claims.exp else {
            return Err(unauthorized("no expiry (exp)"));
        };
        if exp.saturating_add(skew) <= now {
            return Err(unauthorized("expired"));
        }
        let Some(iat) = claims.iat else {
            return Err(unauthorized("no issue time (iat)"));
        };
        if iat > now.saturating_add(skew) {
            return Err(unauthorized("issued in the future"));
        }
        let Some(auth_time) = claims.auth_time else {
            return Err(unauthorized("no auth_time"));
        };
        if auth_time > now.saturating_add(skew) {
            return Err(unauthorized("auth_time is in the future"));
        }
        let sub = claims.sub.unwrap_or_default();
        if sub.is_empty() {
            return Err(unauthorized("no subject (sub)"));
        }
        let uid = Uid::parse(&sub).map_err(|_| unauthorized("subject (sub) is not a valid uid"))?;
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(VerifiedToken {
            uid,
            expires_at: exp,
            email: text(claims.email),
            name: text(claims.name),
            picture: text(claims.picture),
        })
    }
}

/// The token of an `Authorization: Bearer` header; `None` when there is no such header.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed =
        || AppError::Unauthorized("`Authorization` must be `Bearer <Firebase ID token>`".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    // The scheme is case-insensitive (RFC 9110 section 11.1).
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, AppError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| unauthorized(&format!("malformed {what}")))?;
    serde_json::from_slice(&bytes).map_err(|_| unauthorized(&format!("malformed {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h).unwrap(), Some("abc"));
        for bad in ["Bearer", "Bearer ", "Basic abc", "abc"] {
            h.insert(AUTHORIZATION, bad.parse().unwrap());
            assert!(bearer_token(&h).is_err(), "{bad:?}");
        }
    }
}
