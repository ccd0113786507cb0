//! Who is calling: Firebase ID tokens (verified as the Admin SDK does), the Firebase Auth
//! emulator's unsigned tokens in emulator mode only, and the n8n service key.

use http::HeaderMap;

use crate::config::AuthConfig;
use crate::error::AppError;
use crate::ids::Uid;

/// The verified caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user, from a verified ID token.
    User(VerifiedToken),
    /// A service (n8n) with the right `X-Service-Key`, acting for `X-On-Behalf-Of`.
    Service { on_behalf_of: Uid },
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
    pub uid: Uid,
    /// Unix seconds.
    pub expires_at: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
}

/// Verifies tokens and service keys. Built once per cold start; caches Google's keys.
pub struct Authenticator {
    _config: AuthConfig,
}

impl Authenticator {
    pub fn new(config: AuthConfig, project_id: String, http: reqwest::Client) -> Self {
        let _ = (project_id, http);
        Self { _config: config }
    }

    /// Fetches the signing keys ahead of the first request (opens the TLS connection too).
    pub async fn warm_up(&self) {}

    /// Verifies a Firebase ID token; anything wrong with it is a 401.
    pub async fn verify_id_token(&self, _token: &str) -> Result<VerifiedToken, AppError> {
        Err(AppError::Unauthorized("not implemented".into()))
    }

    /// The service key of a service-only route; returns the `X-On-Behalf-Of` uid.
    pub fn authenticate_service(&self, _headers: &HeaderMap) -> Result<Uid, AppError> {
        Err(AppError::Unauthorized("not implemented".into()))
    }

    /// A user (`Authorization: Bearer`) or a service (`X-Service-Key` + `X-On-Behalf-Of`).
    pub async fn authenticate(&self, _headers: &HeaderMap) -> Result<Principal, AppError> {
        Err(AppError::Unauthorized("not implemented".into()))
    }
}
