//! Firebase ID token verification against a loopback JWKS server serving the fixture keys,
//! the emulator's unsigned tokens, and the service key.

#[path = "support/auth_keys.rs"]
mod auth_keys;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adsync::auth::{Authenticator, Principal, emulator_token};
use adsync::config::AuthConfig;
use adsync::error::AppError;
use adsync::ids::Uid;
use adsync::secrets::Secret;
use auth_keys::{KEY_1, KEY_2, TestKey};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};

const PROJECT: &str = "demo-ads";
const ISSUER: &str = "https://securetoken.google.com/demo-ads";
const SERVICE_KEY: &str = "n8n-test-service-key-0123456789";
const UID: &str = "user_1";

// ---- a stand-in for Google's key endpoint ----

struct ServerState {
    keys: Vec<Value>,
    cache_control: String,
    fail: bool,
    delay: Duration,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<ServerState>>,
    fetches: Arc<AtomicUsize>,
}

struct KeyServer {
    url: String,
    shared: Shared,
}

impl KeyServer {
    async fn start(keys: &[&TestKey], cache_control: &str) -> Self {
        let shared = Shared {
            state: Arc::new(Mutex::new(ServerState {
                keys: keys.iter().map(|k| k.jwk()).collect(),
                cache_control: cache_control.into(),
                fail: false,
                delay: Duration::ZERO,
            })),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/jwks", get(serve_keys))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            url: format!("http://{addr}/jwks"),
            shared,
        }
    }

    fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    fn with_state(&self, f: impl FnOnce(&mut ServerState)) {
        f(&mut self.shared.state.lock().unwrap());
    }

    fn authenticator(&self) -> Authenticator {
        authenticator(&self.url, false)
    }
}

async fn serve_keys(State(shared): State<Shared>) -> Response {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let (keys, cache_control, fail, delay) = {
        let s = shared.state.lock().unwrap();
        (s.keys.clone(), s.cache_control.clone(), s.fail, s.delay)
    };
    tokio::time::sleep(delay).await;
    if fail {
        return (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response();
    }
    (
        [(http::header::CACHE_CONTROL, cache_control)],
        axum::Json(json!({ "keys": keys })),
    )
        .into_response()
}

fn authenticator(jwks_url: &str, emulator: bool) -> Authenticator {
    let config = AuthConfig {
        emulator,
        jwks_url: jwks_url.into(),
        service_key: Some(Secret::from(SERVICE_KEY)),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Authenticator::new(config, PROJECT.into(), http)
}

/// A port nothing listens on: the key fetch fails fast.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/jwks")
}

// ---- tokens ----

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": PROJECT,
        "sub": UID,
        "user_id": UID,
        "iat": now - 10,
        "auth_time": now - 600,
        "exp": now + 3590,
        "email": "ada@example.com",
        "name": "Ada",
        "picture": "https://example.com/ada.png",
        "firebase": { "sign_in_provider": "password" },
    })
}

fn claims_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    f(&mut c);
    c
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.into());
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).unwrap()
}

/// Verifies a good token signed with `key`; fails the test if it is refused.
async fn accepted(auth: &Authenticator, key: &TestKey) {
    auth.verify_id_token(&sign(key, &claims()))
        .await
        .expect("a good token is accepted");
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The HTTP status of an error, failing the test on success.
fn status<T: std::fmt::Debug>(result: Result<T, AppError>) -> u16 {
    result.expect_err("expected an error").status().as_u16()
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn service_headers(key: Option<&str>, on_behalf_of: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(key) = key {
        h.insert("x-service-key", HeaderValue::from_str(key).unwrap());
    }
    if let Some(uid) = on_behalf_of {
        h.insert("x-on-behalf-of", HeaderValue::from_str(uid).unwrap());
    }
    h
}

const GOOGLE_CACHE: &str = "public, max-age=3600, must-revalidate, no-transform";

// ---- the fixtures themselves ----

#[test]
fn jwks_components_match_the_fixture_keys() {
    // A signature by the private key verifies with the (n, e) we serve, and not with the
    // other key's: the DER reading of the public key is right.
    let message = b"header.payload";
    let signature =
        jsonwebtoken::crypto::sign(message, &KEY_1.encoding_key(), Algorithm::RS256).unwrap();
    let from_jwk = |key: &TestKey| {
        let jwk = key.jwk();
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap()
    };
    let verify = |key: &DecodingKey| {
        jsonwebtoken::crypto::verify(&signature, message, key, Algorithm::RS256).unwrap()
    };
    assert!(verify(&from_jwk(&KEY_1)));
    assert!(verify(
        &DecodingKey::from_rsa_pem(KEY_1.public_pem).unwrap()
    ));
    assert!(!verify(&from_jwk(&KEY_2)));
}

// ---- Firebase ID tokens ----

#[tokio::test]
async fn a_good_token_is_accepted_with_its_claims() {
    let server = KeyServer::start(&[&KEY_1, &KEY_2], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    let c = claims();
    let token = sign(&KEY_1, &c);

    let principal = auth.authenticate(&bearer(&token)).await.unwrap();
    let Principal::User(verified) = &principal else {
        panic!("expected a user, got {principal:?}");
    };
    assert_eq!(verified.uid.as_str(), UID);
    assert_eq!(principal.uid().as_str(), UID);
    assert_eq!(verified.expires_at, c["exp"].as_i64().unwrap());
    assert_eq!(verified.email.as_deref(), Some("ada@example.com"));
    assert_eq!(verified.name.as_deref(), Some("Ada"));
    assert_eq!(
        verified.picture.as_deref(),
        Some("https://example.com/ada.png")
    );

    // Profile claims are optional.
    let bare = claims_with(|c| {
        let map = c.as_object_mut().unwrap();
        map.remove("email");
        map.remove("name");
        map.remove("picture");
    });
    let verified = auth.verify_id_token(&sign(&KEY_2, &bare)).await.unwrap();
    assert_eq!(verified.email, None);
    assert_eq!(verified.name, None);
}

/// Claims that fail one check each: (what is wrong, the claim, its value).
fn failing_claims() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("expired", "exp", json!(now() - 3600)),
        ("no exp", "exp", Value::Null),
        ("another audience", "aud", json!("someone-else")),
        // An audience list is not what Firebase issues; it is refused, not searched.
        ("an audience list", "aud", json!([PROJECT])),
        (
            "another project's issuer",
            "iss",
            json!("https://securetoken.google.com/someone-else"),
        ),
        (
            "Google accounts' issuer",
            "iss",
            json!("https://accounts.google.com"),
        ),
        ("an empty issuer", "iss", json!("")),
        ("issued in the future", "iat", json!(now() + 600)),
        ("signed in in the future", "auth_time", json!(now() + 600)),
        ("no auth_time", "auth_time", Value::Null),
        ("an empty sub", "sub", json!("")),
        ("no sub", "sub", Value::Null),
        ("a numeric sub", "sub", json!(42)),
        ("a sub with a slash", "sub", json!("a/b")),
        ("a sub over 128 characters", "sub", json!("x".repeat(129))),
    ]
}

#[tokio::test]
async fn a_token_whose_claims_fail_a_check_is_401() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    for (wrong, claim, value) in failing_claims() {
        let token = sign(&KEY_1, &claims_with(|c| c[claim] = value.clone()));
        assert_eq!(status(auth.verify_id_token(&token).await), 401, "{wrong}");
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_is_401() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    accepted(&auth, &KEY_1).await;
    assert_eq!(server.fetches(), 1);

    let unknown = TestKey {
        kid: "not-a-google-key",
        ..KEY_2
    };
    let token = sign(&unknown, &claims());
    assert_eq!(status(auth.verify_id_token(&token).await), 401);
    assert_eq!(server.fetches(), 2, "an unknown kid refetches the keys");

    // A second garbage kid within the rate-limit window does not refetch.
    let other = TestKey {
        kid: "another-garbage-kid",
        ..KEY_2
    };
    assert_eq!(
        status(auth.verify_id_token(&sign(&other, &claims())).await),
        401
    );
    assert_eq!(
        status(auth.verify_id_token(&sign(&unknown, &claims())).await),
        401
    );
    assert_eq!(server.fetches(), 2, "refetches are rate limited");

    // Known keys keep working from the cache meanwhile.
    accepted(&auth, &KEY_1).await;
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn the_unknown_kid_rate_limit_is_configurable() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server
        .authenticator()
        .with_kid_refetch_interval(Duration::ZERO);
    accepted(&auth, &KEY_1).await;
    let unknown = TestKey {
        kid: "unknown",
        ..KEY_2
    };
    for expected in [2, 3] {
        assert_eq!(
            status(auth.verify_id_token(&sign(&unknown, &claims())).await),
            401
        );
        assert_eq!(server.fetches(), expected);
    }
}

#[tokio::test]
async fn a_rotated_in_key_is_accepted_after_a_refetch() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    accepted(&auth, &KEY_1).await;
    assert_eq!(server.fetches(), 1);

    // Google publishes key 2 and retires key 1.
    server.with_state(|s| s.keys = vec![KEY_2.jwk()]);
    let verified = auth
        .verify_id_token(&sign(&KEY_2, &claims()))
        .await
        .unwrap();
    assert_eq!(verified.uid.as_str(), UID);
    assert_eq!(server.fetches(), 2);

    // The refetched set is the cache now: key 1 is gone (and the kid refetch was spent).
    assert_eq!(
        status(auth.verify_id_token(&sign(&KEY_1, &claims())).await),
        401
    );
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn alg_none_is_401_outside_emulator_mode() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    let uid = Uid::parse(UID).unwrap();
    let token = emulator_token(
        PROJECT,
        &uid,
        Some("ada@example.com"),
        Duration::from_secs(600),
    );
    assert_eq!(status(auth.verify_id_token(&token).await), 401);
    assert_eq!(status(auth.authenticate(&bearer(&token)).await), 401);

    // `none` in any spelling, with a kid and even with a real signature attached.
    let signed = sign(&KEY_1, &claims());
    let (_, rest) = signed.split_once('.').unwrap();
    for alg in ["none", "None", "NONE", ""] {
        let header = b64(&json!({ "alg": alg, "typ": "JWT", "kid": KEY_1.kid }));
        let (payload, _) = rest.split_once('.').unwrap();
        for token in [format!("{header}.{rest}"), format!("{header}.{payload}.")] {
            assert_eq!(status(auth.verify_id_token(&token).await), 401, "{alg}");
        }
    }
    assert_eq!(server.fetches(), 0, "refused before any key is fetched");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_401() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    // The classic confusion attack: the public key, which anyone has, as an HMAC secret.
    for secret in [
        KEY_1.public_pem.to_vec(),
        KEY_1.jwk().to_string().into_bytes(),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(KEY_1.kid.into());
            let token =
                jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret))
                    .unwrap();
            assert_eq!(status(auth.verify_id_token(&token).await), 401, "{alg:?}");
        }
    }
    // Other asymmetric algorithms are refused too: Firebase signs with RS256 only.
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some(KEY_1.kid.into());
    let token = jsonwebtoken::encode(&header, &claims(), &KEY_1.encoding_key()).unwrap();
    assert_eq!(status(auth.verify_id_token(&token).await), 401);
    assert_eq!(server.fetches(), 0, "refused before any key is fetched");
}

#[tokio::test]
async fn a_tampered_payload_or_foreign_signature_is_401() {
    let server = KeyServer::start(&[&KEY_1, &KEY_2], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    let token = sign(&KEY_1, &claims());
    auth.verify_id_token(&token).await.unwrap();

    // Change a claim, keep header and signature.
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(&claims_with(|c| c["sub"] = json!("victim")));
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(status(auth.verify_id_token(&tampered).await), 401);

    // Signed by key 2 but claiming key 1's kid.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KEY_1.kid.into());
    let foreign = jsonwebtoken::encode(&header, &claims(), &KEY_2.encoding_key()).unwrap();
    assert_eq!(status(auth.verify_id_token(&foreign).await), 401);

    // No signature, a truncated one, garbage, and not a JWT at all.
    let sig = parts[2];
    for bad in [
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}.{}", parts[0], parts[1], &sig[..sig.len() - 4]),
        format!("{}.{}.!!!", parts[0], parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}.extra"),
        "not-a-token".to_owned(),
        "a.b.c".to_owned(),
    ] {
        assert_eq!(status(auth.verify_id_token(&bad).await), 401, "{bad}");
    }
}

#[tokio::test]
async fn a_small_clock_skew_is_tolerated() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    // Up to 60 s (CLOCK_SKEW) either way: an issuer clock slightly ahead of ours...
    let ahead = sign(
        &KEY_1,
        &claims_with(|c| {
            c["iat"] = json!(now() + 30);
            c["auth_time"] = json!(now() + 30);
        }),
    );
    auth.verify_id_token(&ahead).await.unwrap();
    // ...or a token that expired a moment ago by our clock.
    let just_expired = sign(&KEY_1, &claims_with(|c| c["exp"] = json!(now() - 30)));
    auth.verify_id_token(&just_expired).await.unwrap();
    let long_expired = sign(&KEY_1, &claims_with(|c| c["exp"] = json!(now() - 120)));
    assert_eq!(status(auth.verify_id_token(&long_expired).await), 401);
}

#[tokio::test]
async fn keys_are_cached_for_max_age() {
    let server = KeyServer::start(&[&KEY_1, &KEY_2], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    accepted(&auth, &KEY_1).await;
    accepted(&auth, &KEY_2).await;
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn keys_are_refetched_when_max_age_runs_out() {
    let server = KeyServer::start(&[&KEY_1], "public, max-age=2").await;
    let auth = server.authenticator();
    accepted(&auth, &KEY_1).await;
    accepted(&auth, &KEY_1).await;
    assert_eq!(server.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    accepted(&auth, &KEY_1).await;
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn stale_keys_verify_while_fetching_fails_until_the_grace_runs_out() {
    let server = KeyServer::start(&[&KEY_1], "public, max-age=1").await;
    let auth = server
        .authenticator()
        .with_stale_keys_grace(Duration::from_secs(2));
    let token = sign(&KEY_1, &claims());
    auth.verify_id_token(&token).await.unwrap();
    server.with_state(|s| s.fail = true);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Expired, fetching fails: the cached keys still verify, and the failing endpoint is
    // not asked again on every request.
    for _ in 0..3 {
        auth.verify_id_token(&token)
            .await
            .expect("stale keys within the grace");
    }
    assert_eq!(server.fetches(), 2, "one failed refetch");
    let forged = sign(&KEY_2, &claims());
    let err = auth
        .verify_id_token(&forged)
        .await
        .expect_err("unknown key");
    assert_eq!(err.status(), 401);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let err = auth
        .verify_id_token(&token)
        .await
        .expect_err("past the grace");
    assert_eq!(err.status(), 500, "{err}");
    server.with_state(|s| s.fail = false);
    auth.verify_id_token(&token)
        .await
        .expect("fresh keys once fetching works again");
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    server.with_state(|s| s.delay = Duration::from_millis(200));
    let auth = server.authenticator();
    let token = sign(&KEY_1, &claims());
    let results =
        futures_util::future::join_all((0..8).map(|_| auth.verify_id_token(&token))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn a_failing_key_fetch_is_500_and_shared() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    server.with_state(|s| {
        s.fail = true;
        s.delay = Duration::from_millis(200);
    });
    let auth = server.authenticator();
    let token = sign(&KEY_1, &claims());
    let results =
        futures_util::future::join_all((0..4).map(|_| auth.verify_id_token(&token))).await;
    for result in results {
        assert_eq!(status(result), 500);
    }
    assert_eq!(server.fetches(), 1, "waiters reuse the failed attempt");

    // The next request tries again, and succeeds once the key server is back.
    server.with_state(|s| s.fail = false);
    auth.verify_id_token(&token).await.unwrap();
    assert_eq!(server.fetches(), 2);

    // Nothing listening at all is a 500 too, not a 401.
    let auth = authenticator(&dead_url().await, false);
    assert_eq!(status(auth.verify_id_token(&token).await), 500);
}

#[tokio::test]
async fn warm_up_fetches_once_and_never_panics() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    auth.warm_up().await;
    assert_eq!(server.fetches(), 1);
    auth.warm_up().await;
    accepted(&auth, &KEY_1).await;
    assert_eq!(server.fetches(), 1, "the request used the warmed keys");

    // A failing key server only logs a warning.
    let down = authenticator(&dead_url().await, false);
    down.warm_up().await;

    // Emulator mode does not fetch at all.
    let emulator = authenticator(&server.url, true);
    emulator.warm_up().await;
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn errors_never_echo_the_token() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    let expired = sign(&KEY_1, &claims_with(|c| c["exp"] = json!(now() - 3600)));
    let wrong_aud = sign(&KEY_1, &claims_with(|c| c["aud"] = json!("x")));
    let unknown = sign(
        &TestKey {
            kid: "secret-looking-kid",
            ..KEY_2
        },
        &claims(),
    );
    for token in [
        expired,
        wrong_aud,
        unknown,
        "gArBaGe1.qQzZ9x.w7Yv3k".to_owned(),
    ] {
        let err = auth.authenticate(&bearer(&token)).await.unwrap_err();
        let message = err.body().to_string();
        for part in token.split('.').filter(|p| p.len() > 4) {
            assert!(!message.contains(part), "{message}");
        }
        assert!(!message.contains("secret-looking-kid"), "{message}");
    }
}

// ---- the Firebase Auth emulator ----

#[tokio::test]
async fn emulator_tokens_are_accepted_only_in_emulator_mode() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let uid = Uid::parse(UID).unwrap();
    let token = emulator_token(
        PROJECT,
        &uid,
        Some("ada@example.com"),
        Duration::from_secs(600),
    );

    let emulator = authenticator(&server.url, true);
    let principal = emulator.authenticate(&bearer(&token)).await.unwrap();
    let Principal::User(verified) = principal else {
        panic!("expected a user");
    };
    assert_eq!(verified.uid, uid);
    assert_eq!(verified.email.as_deref(), Some("ada@example.com"));
    assert!(verified.expires_at > now() + 500);
    assert_eq!(server.fetches(), 0, "unsigned tokens need no keys");

    let off = server.authenticator();
    assert_eq!(status(off.verify_id_token(&token).await), 401);
}

#[tokio::test]
async fn emulator_mode_still_checks_the_claims() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = authenticator(&server.url, true);
    let uid = Uid::parse(UID).unwrap();

    let other_project = emulator_token("other-project", &uid, None, Duration::from_secs(600));
    assert_eq!(status(auth.verify_id_token(&other_project).await), 401);

    let header = b64(&json!({ "alg": "none", "typ": "JWT" }));
    let unsigned = |c: &Value| format!("{header}.{}.", b64(c));
    for (wrong, claim, value) in failing_claims() {
        let bad = claims_with(|c| c[claim] = value);
        assert_eq!(
            status(auth.verify_id_token(&unsigned(&bad)).await),
            401,
            "{wrong}"
        );
    }
    assert!(auth.verify_id_token(&unsigned(&claims())).await.is_ok());

    // An HMAC token is no more acceptable in emulator mode than outside it.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(KEY_1.kid.into());
    let hmac = jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(b"x")).unwrap();
    assert_eq!(status(auth.verify_id_token(&hmac).await), 401);

    // Real tokens are still verified in emulator mode.
    accepted(&auth, &KEY_1).await;
    let forged = format!(
        "{}.{}.",
        b64(&json!({ "alg": "RS256", "kid": KEY_1.kid })),
        b64(&claims())
    );
    assert_eq!(status(auth.verify_id_token(&forged).await), 401);
}

// ---- services and missing credentials ----

#[tokio::test]
async fn the_right_service_key_acts_on_behalf_of_a_user() {
    let auth = authenticator(&dead_url().await, false);
    let headers = service_headers(Some(SERVICE_KEY), Some(UID));
    let principal = auth.authenticate(&headers).await.unwrap();
    assert_eq!(
        principal,
        Principal::Service {
            on_behalf_of: Uid::parse(UID).unwrap()
        }
    );
    assert_eq!(
        auth.authenticate_service(&headers).await.unwrap().as_str(),
        UID
    );
}

#[tokio::test]
async fn a_wrong_or_missing_service_key_is_401() {
    let auth = authenticator(&dead_url().await, false);
    for key in [
        "wrong",
        "",
        &SERVICE_KEY[..SERVICE_KEY.len() - 1],
        &format!("{SERVICE_KEY}x"),
    ] {
        let headers = service_headers(Some(key), Some(UID));
        assert_eq!(status(auth.authenticate(&headers).await), 401, "{key:?}");
        assert_eq!(
            status(auth.authenticate_service(&headers).await),
            401,
            "{key:?}"
        );
    }

    // No key configured: every service call is refused, even one with an empty key.
    let config = AuthConfig {
        emulator: false,
        jwks_url: dead_url().await,
        service_key: None,
    };
    let keyless = Authenticator::new(config, PROJECT.into(), reqwest::Client::new());
    for key in [SERVICE_KEY, ""] {
        let headers = service_headers(Some(key), Some(UID));
        assert_eq!(status(keyless.authenticate(&headers).await), 401);
        assert_eq!(status(keyless.authenticate_service(&headers).await), 401);
    }
}

#[tokio::test]
async fn on_behalf_of_missing_is_401_and_invalid_is_400() {
    let auth = authenticator(&dead_url().await, false);
    let missing = service_headers(Some(SERVICE_KEY), None);
    assert_eq!(status(auth.authenticate(&missing).await), 401);
    assert_eq!(status(auth.authenticate_service(&missing).await), 401);
    for bad in ["a/b", "", "..", "has space"] {
        let headers = service_headers(Some(SERVICE_KEY), Some(bad));
        assert_eq!(status(auth.authenticate(&headers).await), 400, "{bad:?}");
        assert_eq!(
            status(auth.authenticate_service(&headers).await),
            400,
            "{bad:?}"
        );
    }
    // The key is checked first: a wrong key with a bad uid is 401, not 400.
    let headers = service_headers(Some("wrong"), Some("a/b"));
    assert_eq!(status(auth.authenticate(&headers).await), 401);
}

#[tokio::test]
async fn a_user_token_on_the_service_route_is_403() {
    let server = KeyServer::start(&[&KEY_1], GOOGLE_CACHE).await;
    let auth = server.authenticator();
    let headers = bearer(&sign(&KEY_1, &claims()));
    assert_eq!(status(auth.authenticate_service(&headers).await), 403);
    assert_eq!(
        status(auth.authenticate_service(&HeaderMap::new()).await),
        401
    );
}

#[tokio::test]
async fn no_credentials_is_401() {
    let auth = authenticator(&dead_url().await, false);
    let err = auth.authenticate(&HeaderMap::new()).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 401);
    assert!(err.to_string().contains("Authorization"), "{err}");

    for value in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "token-without-scheme",
    ] {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(value));
        assert_eq!(status(auth.authenticate(&h).await), 401, "{value:?}");
    }
}
