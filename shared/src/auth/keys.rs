//! Google's public keys for Firebase ID tokens: fetched from the JWKS URL, cached for their
//! `Cache-Control: max-age` (clamped to 1 s .. 24 h, 60 s when absent), refetched on an
//! unknown `kid` at most once per [`DEFAULT_KID_REFETCH_INTERVAL`], one fetch at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::unauthorized;
use crate::error::AppError;

/// Minimum time between two refetches triggered by an unknown `kid`.
pub const DEFAULT_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Google's key set is a few KB; a cap keeps a misbehaving key server from filling memory.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Key cache lifetime when the response carries no usable `max-age`.
const DEFAULT_KEY_CACHE: Duration = Duration::from_secs(60);
/// Floor and ceiling of the key cache lifetime: the floor bounds how often we fetch even if
/// told not to cache, the ceiling bounds how long a mistaken `max-age` can pin old keys.
const MIN_KEY_CACHE: Duration = Duration::from_secs(1);
const MAX_KEY_CACHE: Duration = Duration::from_secs(24 * 3600);
/// How long past their lifetime cached keys still verify tokens while fetching new ones
/// fails (stale-if-error): an outage of Google's key endpoint does not lock every user out,
/// and keys Google withdrew stop working within this bound.
pub const STALE_KEYS_GRACE: Duration = Duration::from_secs(3600);
/// While serving stale keys, how long to wait after a failed fetch before trying again.
const RETRY_AFTER_FAILED_FETCH: Duration = Duration::from_secs(10);

/// The key cache of one authenticator.
pub(super) struct GoogleKeys {
    jwks_url: String,
    http: reqwest::Client,
    kid_refetch_interval: Duration,
    stale_grace: Duration,
    /// Short critical sections only; never held across an `.await`.
    state: Mutex<KeyState>,
    /// Held while a key fetch is in flight, so concurrent callers share one fetch.
    fetch_lock: tokio::sync::Mutex<()>,
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
    /// When the last attempt failed, if it did.
    failed_at: Option<Instant>,
}

struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fresh_until: Instant,
}

impl KeySet {
    fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// Still usable, when no fresh set can be had.
    fn is_within_grace(&self, now: Instant, grace: Duration) -> bool {
        now < self.fresh_until + grace
    }
}

fn unknown_kid() -> AppError {
    unauthorized("signed with an unknown key")
}

fn lock(state: &Mutex<KeyState>) -> MutexGuard<'_, KeyState> {
    // A panic elsewhere cannot leave KeyState inconsistent (every update is one assignment
    // group), so a poisoned lock is still safe to use.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GoogleKeys {
    pub(super) fn new(jwks_url: String, http: reqwest::Client) -> Self {
        Self {
            jwks_url,
            http,
            kid_refetch_interval: DEFAULT_KID_REFETCH_INTERVAL,
            stale_grace: STALE_KEYS_GRACE,
            state: Mutex::new(KeyState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn set_kid_refetch_interval(&mut self, interval: Duration) {
        self.kid_refetch_interval = interval;
    }

    pub(super) fn set_stale_grace(&mut self, grace: Duration) {
        self.stale_grace = grace;
    }

    /// Fetches the keys unless fresh ones are cached; a failure is logged, never returned.
    pub(super) async fn warm_up(&self) {
        let seen = {
            let state = lock(&self.state);
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

    /// The key for `kid`: from a fresh cache, else after a (shared, rate-limited) fetch.
    pub(super) async fn key_for(&self, kid: &str) -> Result<Arc<DecodingKey>, AppError> {
        let now = Instant::now();
        let (seen, cache_was_fresh) = {
            let mut state = lock(&self.state);
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
                None => {
                    // Stale keys within their grace, right after a failed fetch: used as
                    // they are, rather than sending every request to a failing endpoint.
                    let failed_recently = state
                        .failed_at
                        .is_some_and(|t| now.duration_since(t) < RETRY_AFTER_FAILED_FETCH);
                    if failed_recently && let Some(stale) = self.within_grace(&state, now) {
                        return stale.keys.get(kid).cloned().ok_or_else(unknown_kid);
                    }
                    (state.attempts, false)
                }
            }
        };
        match self.refresh(seen).await {
            Ok(keys) => keys.keys.get(kid).cloned().ok_or_else(unknown_kid),
            // The fresh cache already said the kid is unknown; the refetch was a courtesy
            // for key rotation, and its failure (logged in `refresh`) does not make the
            // token any more valid.
            Err(_) if cache_was_fresh => Err(unknown_kid()),
            Err(err) => match self.within_grace(&lock(&self.state), Instant::now()) {
                Some(stale) => stale.keys.get(kid).cloned().ok_or_else(unknown_kid),
                None => Err(err),
            },
        }
    }

    /// The last key set fetched, if it is stale by less than the grace.
    fn within_grace(&self, state: &KeyState, now: Instant) -> Option<Arc<KeySet>> {
        state
            .current
            .as_ref()
            .filter(|keys| keys.is_within_grace(now, self.stale_grace))
            .cloned()
    }

    /// Fetches the key set, unless another caller finished a fetch since we saw `seen`
    /// attempts: then its outcome (keys or failure) is reused.
    async fn refresh(&self, seen: u64) -> Result<Arc<KeySet>, AppError> {
        let _guard = self.fetch_lock.lock().await;
        {
            let state = lock(&self.state);
            if state.attempts != seen {
                return match (&state.last_error, &state.current) {
                    (None, Some(keys)) => Ok(keys.clone()),
                    (Some(err), _) => Err(AppError::Internal(err.clone())),
                    (None, None) => Err(AppError::Internal("no signing keys".into())),
                };
            }
        }
        let outcome = self.fetch_keys().await;
        let mut state = lock(&self.state);
        state.attempts += 1;
        match outcome {
            Ok(keys) => {
                let keys = Arc::new(keys);
                state.current = Some(keys.clone());
                state.last_error = None;
                state.failed_at = None;
                Ok(keys)
            }
            Err(err) => {
                tracing::warn!(error = %err, "fetching Firebase signing keys failed");
                state.last_error = Some(err.clone());
                state.failed_at = Some(Instant::now());
                Err(AppError::Internal(err))
            }
        }
    }

    async fn fetch_keys(&self) -> Result<KeySet, String> {
        let url = &self.jwks_url;
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
    use serde_json::json;

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
