//! The time an invocation has left, and every outbound call's share of it.
//!
//! A Lambda is killed at its deadline, mid-write if need be, and API Gateway then answers
//! with a bare 503 that is not our JSON. So each invocation runs inside [`scope`] with its
//! deadline, every outbound call takes its timeout from [`budget`] (its own limit, cut to what
//! is left minus [`ANSWER_MARGIN`]), and the transports stop a handler that overruns at
//! [`answer_by`] to answer with the JSON error shape in time. Outside a scope (start-up, the
//! sweeper's own loop) calls keep their own limits.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Kept back from every call's budget so that the function can still answer after it.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the invocation's deadline.
pub async fn scope<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The deadline of the current invocation, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The instant by which a handler must have stopped so that the answer goes out in time:
/// half the margin before the deadline.
pub fn answer_by(deadline: Instant) -> Instant {
    deadline.checked_sub(ANSWER_MARGIN / 2).unwrap_or(deadline)
}

/// The timeout of one outbound call whose own limit is `limit`.
pub fn budget(limit: Duration) -> Duration {
    match current() {
        Some(deadline) => limit.min(
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(ANSWER_MARGIN),
        ),
        None => limit,
    }
}

/// Whether the invocation has less than `needed` left for more calls.
pub fn short_of(needed: Duration) -> bool {
    budget(needed) < needed
}

/// Runs one outbound call with the timeout [`budget`] gives it.
pub async fn limit<F: Future>(
    limit: Duration,
    call: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(budget(limit), call).await
}

/// Pause before retry `attempt` (1, 2, ...): 50 ms doubling up to 800 ms, with jitter so
/// that concurrent writers do not retry in lockstep; `None` when the budget cannot afford
/// the pause plus a call of `call_time`.
pub fn backoff(attempt: u32, call_time: Duration) -> Option<Duration> {
    use rand::Rng;
    let base = Duration::from_millis(50 << attempt.saturating_sub(1).min(4));
    let pause = base.mul_f64(rand::rng().random_range(0.5..1.0));
    (budget(Duration::MAX) > pause + call_time).then_some(pause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_get_what_is_left_minus_the_margin() {
        assert_eq!(budget(Duration::from_secs(10)), Duration::from_secs(10));
        let deadline = Instant::now() + Duration::from_secs(2);
        scope(deadline, async {
            let b = budget(Duration::from_secs(10));
            assert!(b <= Duration::from_millis(1500) && b > Duration::from_millis(1400));
            assert_eq!(
                budget(Duration::from_millis(100)),
                Duration::from_millis(100)
            );
            assert!(!short_of(Duration::from_secs(1)));
            assert!(short_of(Duration::from_secs(2)));
        })
        .await;
        let past = Instant::now();
        scope(past, async {
            assert_eq!(budget(Duration::from_secs(1)), Duration::ZERO);
            let r = limit(Duration::from_secs(5), std::future::pending::<()>()).await;
            assert!(r.is_err(), "a spent budget times out at once");
            assert_eq!(backoff(1, Duration::ZERO), None);
        })
        .await;
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1, Duration::ZERO).expect("no deadline: always affordable");
        assert!(first >= Duration::from_millis(25) && first <= Duration::from_millis(50));
        let late = backoff(30, Duration::ZERO).expect("affordable");
        assert!(late <= Duration::from_millis(800));
    }
}
