//! Per-user (and per-connection) limits, so that no one caller can run up the AI bill or
//! starve the others: fixed-window budgets counted atomically in the registry (one write per
//! use, no read), refused with 429, `Retry-After` and the JSON error.

use std::time::Duration;

use crate::app::App;
use crate::error::AppError;
use crate::registry::{Allowance, Quota};

/// The budgets, all configurable (`RATE_*`, `MAX_CONNECTIONS_PER_USER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// AI generations a user may start per hour (each is billed by the provider).
    pub generations_per_hour: u32,
    /// Writes (creates, updates, deletes, uploads) a user may make per minute.
    pub mutations_per_minute: u32,
    /// Events a service may broadcast to one user per minute.
    pub broadcasts_per_minute: u32,
    /// WebSocket connections a user may hold at once.
    pub connections_per_user: u32,
    /// `resume` messages one connection may send per minute.
    pub resumes_per_minute: u32,
    /// `GET /events` pages a user may read per minute.
    pub event_pages_per_minute: u32,
}

impl RateLimits {
    /// The deployed defaults (argued in `docs/security.md`).
    pub const DEFAULT: Self = Self {
        generations_per_hour: 30,
        mutations_per_minute: 120,
        broadcasts_per_minute: 600,
        connections_per_user: 10,
        resumes_per_minute: 120,
        event_pages_per_minute: 120,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a use is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Generations,
    Mutations,
    Broadcasts,
    Resumes,
    EventPages,
}

impl Budget {
    /// The budget's name in keys and messages.
    fn name(self) -> &'static str {
        match self {
            Self::Generations => "generations",
            Self::Mutations => "mutations",
            Self::Broadcasts => "broadcasts",
            Self::Resumes => "resumes",
            Self::EventPages => "event-pages",
        }
    }

    /// Uses allowed per window, and the window.
    fn allowance(self, limits: &RateLimits) -> (u32, Duration) {
        let minute = Duration::from_secs(60);
        match self {
            Self::Generations => (limits.generations_per_hour, Duration::from_secs(3600)),
            Self::Mutations => (limits.mutations_per_minute, minute),
            Self::Broadcasts => (limits.broadcasts_per_minute, minute),
            Self::Resumes => (limits.resumes_per_minute, minute),
            Self::EventPages => (limits.event_pages_per_minute, minute),
        }
    }
}

/// `budget` of `app`'s limits as a quota spent by seq reservations.
pub fn quota(app: &App, budget: Budget) -> Quota {
    let (limit, window) = budget.allowance(&app.limits);
    Quota {
        name: budget.name(),
        limit,
        window,
    }
}

/// Counts one use of `budget` for `owner` (a uid, or a connection id for resumes); a 429 when
/// the budget of the current window is spent. A registry that cannot count fails the call:
/// a limit that fails open would be no limit when it matters.
pub async fn spend(app: &App, budget: Budget, owner: &str) -> Result<(), AppError> {
    let quota = quota(app, budget);
    let key = format!("{}#{owner}", quota.name);
    match app.budgets.spend(&key, quota.limit, quota.window).await? {
        Allowance::Allowed => Ok(()),
        Allowance::Refused { retry_after } => Err(too_many(quota, retry_after)),
    }
}

/// The 429 of a spent budget.
pub fn too_many(quota: Quota, retry_after: Duration) -> AppError {
    let per = if quota.window >= Duration::from_secs(3600) {
        "hour"
    } else {
        "minute"
    };
    AppError::TooManyRequests {
        message: format!(
            "too many {} (at most {} per {per}); try again in {} s",
            quota.name.replace('-', " "),
            quota.limit,
            retry_after.as_secs()
        ),
        retry_after_secs: retry_after.as_secs().max(1),
    }
}
