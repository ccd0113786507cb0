//! Tokens in the Firebase Auth emulator's format: unsigned (`alg: none`), accepted only by an
//! authenticator in emulator mode (local development and tests).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::{issuer_for, unix_now};
use crate::ids::Uid;

/// Mints an unsigned token in the Firebase Auth emulator's format (`alg: none`, empty
/// signature) for `uid`, valid for `lifetime` from now. Accepted only by an
/// [`super::Authenticator`] in emulator mode; used by the local dev server's `/dev/token` and tests.
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
