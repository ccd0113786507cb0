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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::config::AuthConfig;
use crate::error::AppError;
use crate::ids::Uid;

/// Header carrying the n8n service key.
pub const SERVICE_KEY_HEADER: &str = "x-service-key";
/// Header naming the user a service call acts for.
pub const ON_BEHALF_OF_HEADER: &str = "x-on-behalf-of";
/// Tolerated difference between the token issuer's clock and ours, applied to `exp`, `iat`
/// and `auth_time`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Minimum time between two refetches triggered by an unknown `kid`.
pub const DEFAULT_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Firebase ID tokens are about 1 KB (custom claims are capped at 1000 bytes); anything much
/// larger is junk and is refused before decoding.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Google's key set is a few KB; a cap keeps a misbehaving key server from filling memory.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Key cache lifetime when the response carries no usable `max-age`.
const DEFAULT_KEY_CACHE: Duration = Duration::from_secs(60);
/// Floor and ceiling of the key cache lifetime: the floor bounds how often we fetch even if
/// told not to cache, the ceiling bounds how long a mistaken `max-age` can pin old keys.
const MIN_KEY_CACHE: Duration = Duration::from_secs(1);
const MAX_KEY_CACHE: Duration = Duration::from_secs(24 * 3600);

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
    http: reqwest::Client,
    kid_refetch_interval: Duration,
    /// Short critical sections only; never held across an `.await`.
    keys: Mutex<KeyState>,
    /// Held while a key fetch is in flight, so concurrent callers share one fetch.
    fetch_lock: tokio::sync::Mutex<()>,
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

#[derive(Default)]
struct KeyState {
    /// The last key set fetched successfully.
    current: Option<Arc<KeySet>>,
    /// Finished fetch attempts; lets a caller that waited on the fetch lock see that someone
    /// else fetched meanwhile and reuse that outcome instead of fetching again.
    attempts: u64,
    /// Why the last attempt failed, if it did.
    last_error: Option<String>,
    /// When an unknown `kid` last caused a refetch (the rate limit).
    last_kid_refetch: Option<Instant>,
}

struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fresh_until: Instant,
}

impl KeySet {
    fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
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

fn unauthorized(reason: &str) -> AppError {
    AppError::Unauthorized(format!("invalid ID token: {reason}"))
}

fn unknown_kid() -> AppError {
    unauthorized("signed with an unknown key")
}

fn lock(state: &Mutex<KeyState>) -> MutexGuard<'_, KeyState> {
    // A panic elsewhere cannot leave KeyState inconsistent (every update is one assignment
    // group), so a poisoned lock is still safe to use.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn issuer_for(project_id: &str) -> String {
    format!("https://securetoken.google.com/{project_id}")
}

/// Mints an unsigned token in the Firebase Auth emulator's format (`alg: none`, empty
/// signature) for `uid`, valid for `lifetime` from now. Accepted only by an
/// [`Authenticator`] in emulator mode; used by the local dev server's `/dev/token` and tests.
pub fn emulator_token(
    project_id: &str,
    uid: &Uid,
    email: Option<&str>,
    lifetime: Duration,
) -> String {
    let now = unix_now();
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let mut claims = json!({
        "iss": issuer_for(project_id),
        "aud": project_id,
        "auth_time": now,
        "user_id": uid.as_str(),
        "sub": uid.as_str(),
        "iat": now,
        "exp": now.saturating_add(lifetime),
    });
    let firebase = match email {
        Some(email) => {
            claims["email"] = json!(email);
            claims["email_verified"] = json!(false);
            json!({ "identities": { "email": [email] }, "sign_in_provider": "password" })
        }
        None => json!({ "identities": {}, "sign_in_provider": "custom" }),
    };
    claims["firebase"] = firebase;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

impl Authenticator {
    /// An authenticator for ID tokens of `project_id`; `http` should carry timeouts, as the
    /// key fetch happens inside a request.
    pub fn new(config: AuthConfig, project_id: String, http: reqwest::Client) -> Self {
        Self {
            issuer: issuer_for(&project_id),
            config,
            project_id,
            http,
            kid_refetch_interval: DEFAULT_KID_REFETCH_INTERVAL,
            keys: Mutex::new(KeyState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Overrides how often an unknown `kid` may trigger a refetch (default 30 s).
    pub fn with_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.kid_refetch_interval = interval;
        self
    }

    /// Fetches the signing keys ahead of the first request (opens the TLS connection too).
    /// Skipped in emulator mode; a failure is logged and retried by the first request.
    pub async fn warm_up(&self) {
        if self.config.emulator {
            return;
        }
        let seen = {
            let state = lock(&self.keys);
            if state
                .current
                .as_ref()
                .is_some_and(|k| k.is_fresh(Instant::now()))
            {
                return;
            }
            state.attempts
        };
        // `refresh` has logged the failure already; warm-up must never stop a cold start.
        let _ = self.refresh(seen).await;
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

        let key = self.key_for(&kid).await?;
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
            return self
                .service_principal(headers)
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
    pub fn authenticate_service(&self, headers: &HeaderMap) -> Result<Uid, AppError> {
        if headers.contains_key(SERVICE_KEY_HEADER) {
            return self.service_principal(headers);
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

    fn service_principal(&self, headers: &HeaderMap) -> Result<Uid, AppError> {
        let expected = self
            .config
            .service_key
            .as_ref()
            .map(|k| k.expose_secret().as_bytes())
            .filter(|k| !k.is_empty());
        let Some(expected) = expected else {
            return Err(AppError::Unauthorized(
                "service keys are not accepted by this deployment".into(),
            ));
        };
        let presented = headers
            .get(SERVICE_KEY_HEADER)
            .map_or(&b""[..], |v| v.as_bytes());
        // Constant time in the content; only the length can leak, which says nothing useful
        // about a random key.
        if !bool::from(presented.ct_eq(expected)) {
            return Err(AppError::Unauthorized("invalid service key".into()));
        }
        let Some(on_behalf_of) = headers.get(ON_BEHALF_OF_HEADER) else {
            return Err(AppError::Unauthorized(
                "`X-On-Behalf-Of: <uid>` is required with `X-Service-Key`".into(),
            ));
        };
        let raw = on_behalf_of
            .to_str()
            .map_err(|_| AppError::BadRequest("`X-On-Behalf-Of` must be a valid uid".into()))?;
        Uid::parse(raw)
            .map_err(|_| AppError::BadRequest("`X-On-Behalf-Of` must be a valid uid".into()))
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

    /// The key for `kid`: from a fresh cache, else after a (shared, rate-limited) fetch.
    async fn key_for(&self, kid: &str) -> Result<Arc<DecodingKey>, AppError> {
        let now = Instant::now();
        let (seen, cache_was_fresh) = {
            let mut state = lock(&self.keys);
            match state.current.as_ref().filter(|k| k.is_fresh(now)) {
                Some(keys) => {
                    if let Some(key) = keys.keys.get(kid) {
                        return Ok(key.clone());
                    }
                    let recently = state
                        .last_kid_refetch
                        .is_some_and(|t| now.duration_since(t) < self.kid_refetch_interval);
                    if recently {
                        return Err(unknown_kid());
                    }
                    // Claimed before fetching, so concurrent unknown kids do not all queue
                    // up for a refetch.
                    state.last_kid_refetch = Some(now);
                    (state.attempts, true)
                }
                None => (state.attempts, false),
            }
        };
        match self.refresh(seen).await {
            Ok(keys) => keys.keys.get(kid).cloned().ok_or_else(unknown_kid),
            // The fresh cache already said the kid is unknown; the refetch was a courtesy
            // for key rotation, and its failure (logged in `refresh`) does not make the
            // token any more valid.
            Err(_) if cache_was_fresh => Err(unknown_kid()),
            Err(err) => Err(err),
        }
    }

    /// Fetches the key set, unless another caller finished a fetch since we saw `seen`
    /// attempts: then its outcome (keys or failure) is reused.
    async fn refresh(&self, seen: u64) -> Result<Arc<KeySet>, AppError> {
        let _guard = self.fetch_lock.lock().await;
        {
            let state = lock(&self.keys);
            if state.attempts != seen {
                return match (&state.last_error, &state.current) {
                    (None, Some(keys)) => Ok(keys.clone()),
                    (Some(err), _) => Err(AppError::Internal(err.clone())),
                    (None, None) => Err(AppError::Internal("no signing keys".into())),
                };
            }
        }
        let outcome = self.fetch_keys().await;
        let mut state = lock(&self.keys);
        state.attempts += 1;
        match outcome {
            Ok(keys) => {
                let keys = Arc::new(keys);
                state.current = Some(keys.clone());
                state.last_error = None;
                Ok(keys)
            }
            Err(err) => {
                tracing::warn!(error = %err, "fetching Firebase signing keys failed");
                state.last_error = Some(err.clone());
                Err(AppError::Internal(err))
            }
        }
    }

    async fn fetch_keys(&self) -> Result<KeySet, String> {
        let url = &self.config.jwks_url;
        let mut response = self
            .http
            .get(url)
            .timeout(crate::deadline::budget(
                crate::config::Timeouts::default().request,
            ))
            .send()
            .await
            .map_err(|e| format!("fetching signing keys from {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("fetching signing keys from {url}: HTTP {status}"));
        }
        let lifetime = cache_lifetime(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading signing keys from {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "signing keys from {url} exceed {MAX_JWKS_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body).map_err(|e| format!("signing keys from {url}: {e}"))?;
        Ok(KeySet {
            keys,
            fresh_until: Instant::now() + lifetime,
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

/// How long a key response may be cached, from its `Cache-Control`.
fn cache_lifetime(headers: &HeaderMap) -> Duration {
    let directives = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let mut max_age = None;
    for directive in directives {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_KEY_CACHE;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            max_age = secs.trim_matches('"').parse::<u64>().ok();
        }
    }
    max_age
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_KEY_CACHE)
        .clamp(MIN_KEY_CACHE, MAX_KEY_CACHE)
}

/// The RSA signing keys of a JWKS by `kid`; keys of other types or uses are skipped, so one
/// odd entry does not take the whole set down.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    let jwks: Jwks = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        let usable = field("kty") == Some("RSA")
            && field("alg").is_none_or(|a| a == "RS256")
            && field("use").is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e)) = (field("kid"), field("n"), field("e")) else {
            continue;
        };
        if !usable {
            continue;
        }
        if let Ok(key) = DecodingKey::from_rsa_components(n, e) {
            keys.insert(kid.to_owned(), Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err("no usable RS256 keys".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cache_control: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_str(cache_control).unwrap(),
        );
        h
    }

    #[test]
    fn cache_lifetime_follows_max_age_within_bounds() {
        let google = "public, max-age=19204, must-revalidate, no-transform";
        assert_eq!(cache_lifetime(&headers(google)), Duration::from_secs(19204));
        assert_eq!(cache_lifetime(&HeaderMap::new()), DEFAULT_KEY_CACHE);
        assert_eq!(cache_lifetime(&headers("max-age=0")), MIN_KEY_CACHE);
        assert_eq!(cache_lifetime(&headers("no-store")), MIN_KEY_CACHE);
        assert_eq!(cache_lifetime(&headers("max-age=999999999")), MAX_KEY_CACHE);
        assert_eq!(cache_lifetime(&headers("max-age=junk")), DEFAULT_KEY_CACHE);
    }

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

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let body = json!({ "keys": [
            { "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB" },
            { "kty": "RSA", "kid": "ok", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB" },
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ok"]);
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }
}
