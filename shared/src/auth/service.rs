//! Services (n8n): `X-Service-Key` plus `X-On-Behalf-Of: <uid>`.

use http::HeaderMap;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{ON_BEHALF_OF_HEADER, SERVICE_KEY_HEADER};
use crate::error::AppError;
use crate::ids::Uid;
use crate::secrets::Secret;

/// The uid a service (n8n) acts for: its `X-Service-Key` must equal `key`, or the key's
/// value before its last rotation (compared in constant time), and `X-On-Behalf-Of` names
/// the user.
pub(super) async fn on_behalf_of(
    key: Option<&Secret>,
    headers: &HeaderMap,
) -> Result<Uid, AppError> {
    let versions = match key {
        Some(key) => key.versions().await,
        None => None,
    };
    let accepted: Vec<&[u8]> = versions
        .iter()
        .flat_map(|v| std::iter::once(&v.current).chain(&v.previous))
        .map(|k| k.expose_secret().as_bytes())
        .filter(|k| !k.is_empty())
        .collect();
    if accepted.is_empty() {
        return Err(AppError::Unauthorized(
            "service keys are not accepted by this deployment".into(),
        ));
    }
    let presented = headers
        .get(SERVICE_KEY_HEADER)
        .map_or(&b""[..], |v| v.as_bytes());
    // Constant time in the content; only the length can leak, which says nothing useful
    // about a random key. Every accepted key is compared, whichever matches.
    let matched = accepted
        .iter()
        .fold(subtle::Choice::from(0), |any, k| any | presented.ct_eq(k));
    if !bool::from(matched) {
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
    Uid::parse(raw).map_err(|_| AppError::BadRequest("`X-On-Behalf-Of` must be a valid uid".into()))
}
