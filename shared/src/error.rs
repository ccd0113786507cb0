//! The one error type of the backend, mapped to HTTP in one place (`status` and `code`).

use http::StatusCode;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A per-user (or per-connection) limit was reached; try again after `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// An upstream (AI provider) answered with an error.
    #[error("{0}")]
    BadGateway(String),
    /// An upstream (AI provider) did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// The request could not be finished within the function's time; it may or may not
    /// have taken effect (the events tell).
    #[error("{0}")]
    Unavailable(String),
    /// Our own dependency (Firestore, DynamoDB) failed; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {err}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::BadGateway(_) => "bad_gateway",
            Self::GatewayTimeout(_) => "gateway_timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// How long a caller should wait before trying again, when that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    /// One error of each kind: every status and `code` the API answers with (the API
    /// contracts list them from here).
    pub fn kinds() -> [AppError; 13] {
        [
            Self::BadRequest(String::new()),
            Self::Unauthorized(String::new()),
            Self::Forbidden(String::new()),
            Self::NotFound(String::new()),
            Self::MethodNotAllowed(String::new()),
            Self::Conflict(String::new()),
            Self::PayloadTooLarge { limit: 0 },
            Self::UnsupportedMediaType(String::new()),
            Self::TooManyRequests {
                message: String::new(),
                retry_after_secs: 0,
            },
            Self::BadGateway(String::new()),
            Self::GatewayTimeout(String::new()),
            Self::Unavailable(String::new()),
            Self::Internal(String::new()),
        ]
    }

    /// The kind of error a status is answered with.
    pub fn of_status(status: StatusCode) -> Option<AppError> {
        Self::kinds().into_iter().find(|e| e.status() == status)
    }

    /// `{"error": {"code", "message"}}`; internal details never leave the process.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_out_of_the_body() {
        let err = AppError::internal("firestore commit", "connection reset by 10.0.0.1");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = err.body().to_string();
        assert!(!body.contains("10.0.0.1"), "{body}");
        assert_eq!(err.body()["error"]["code"], "internal");
    }

    #[test]
    fn kinds_lists_every_variant_once() {
        // Exhaustive: a new variant does not compile until it has a place in `kinds`.
        let position = |e: &AppError| match e {
            AppError::BadRequest(_) => 0,
            AppError::Unauthorized(_) => 1,
            AppError::Forbidden(_) => 2,
            AppError::NotFound(_) => 3,
            AppError::MethodNotAllowed(_) => 4,
            AppError::Conflict(_) => 5,
            AppError::PayloadTooLarge { .. } => 6,
            AppError::UnsupportedMediaType(_) => 7,
            AppError::TooManyRequests { .. } => 8,
            AppError::BadGateway(_) => 9,
            AppError::GatewayTimeout(_) => 10,
            AppError::Unavailable(_) => 11,
            AppError::Internal(_) => 12,
        };
        let positions: Vec<usize> = AppError::kinds().iter().map(position).collect();
        assert_eq!(positions, (0..13).collect::<Vec<_>>());
        let mut statuses: Vec<u16> = AppError::kinds()
            .iter()
            .map(|e| e.status().as_u16())
            .collect();
        statuses.sort_unstable();
        statuses.dedup();
        assert_eq!(statuses.len(), 13, "one status per kind");
    }
}
