//! Retry decisions as a pure function of what happened, the server's hint and the attempt.
//!
//! Kept apart from I/O so every rule is unit-tested: a 429 was not processed and is always
//! retried (within its own, larger allowance); a 5xx, timeout or dropped connection is
//! retried only when the request is safe to repeat (GET, PUT, DELETE, or marked so); a
//! connection that was never established is always retried, since nothing was sent.

use std::time::Duration;

/// How hard to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after a 5xx, timeout or broken connection.
    pub max_retries: u32,
    /// Retries after a 429. A 429 means the request was not processed, so these are cheap.
    pub max_rate_limit_retries: u32,
    /// First backoff step; it doubles each attempt.
    pub base_delay: Duration,
    /// Longest backoff step.
    pub max_delay: Duration,
    /// Longest server-requested wait we honour; a longer one is returned as an error.
    pub max_hint: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            max_rate_limit_retries: 20,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_hint: Duration::from_secs(300),
        }
    }
}

/// What happened to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status.
    Status(u16),
    /// No answer in time; the server may have processed the request.
    Timeout,
    /// The connection could not be established; nothing was sent.
    Connect,
    /// The connection broke after the request was sent.
    Dropped,
}

/// Whether to try again, and after how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send again.
    Retry(Duration),
    /// Stop and report the failure.
    GiveUp,
}

/// Decides what to do after `attempt` retries have already been made.
///
/// `hint` is the server's requested wait (`Retry-After` or a rate-limit reset); it beats the
/// computed backoff. `jitter` is a number in `[0, 1)` that spreads concurrent retries apart.
pub fn decide(
    policy: &RetryPolicy,
    outcome: Outcome,
    repeat_safe: bool,
    hint: Option<Duration>,
    attempt: u32,
    jitter: f64,
) -> Decision {
    let (allowed, needs_safe) = match outcome {
        Outcome::Status(429) => (policy.max_rate_limit_retries, false),
        Outcome::Status(500 | 502 | 503 | 504) | Outcome::Timeout | Outcome::Dropped => {
            (policy.max_retries, true)
        }
        Outcome::Connect => (policy.max_retries, false),
        Outcome::Status(_) => return Decision::GiveUp,
    };
    if attempt >= allowed || (needs_safe && !repeat_safe) {
        return Decision::GiveUp;
    }
    match hint {
        Some(wait) if wait > policy.max_hint => Decision::GiveUp,
        // A small spread keeps many waiting tasks from hitting the reset instant together.
        Some(wait) => Decision::Retry(wait + policy.base_delay.mul_f64(jitter * 0.2)),
        None => Decision::Retry(backoff(policy, attempt, jitter)),
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random, capped.
pub fn backoff(policy: &RetryPolicy, attempt: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(16));
    let step = policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay);
    step.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn rate_limit_is_retried_for_any_method_and_honours_the_hint() {
        let d = decide(
            &policy(),
            Outcome::Status(429),
            false,
            Some(Duration::from_secs(3)),
            0,
            0.0,
        );
        assert_eq!(d, Decision::Retry(Duration::from_secs(3)));
    }

    #[test]
    fn server_error_is_not_retried_for_a_post() {
        for o in [Outcome::Status(500), Outcome::Timeout, Outcome::Dropped] {
            assert_eq!(decide(&policy(), o, false, None, 0, 0.5), Decision::GiveUp);
            assert!(matches!(
                decide(&policy(), o, true, None, 0, 0.5),
                Decision::Retry(_)
            ));
        }
    }

    #[test]
    fn connect_failure_is_retried_even_for_a_post() {
        assert!(matches!(
            decide(&policy(), Outcome::Connect, false, None, 1, 0.5),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn client_errors_are_final() {
        for s in [400, 401, 403, 404, 409] {
            assert_eq!(
                decide(&policy(), Outcome::Status(s), true, None, 0, 0.0),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn attempts_run_out() {
        let p = policy();
        assert_eq!(
            decide(&p, Outcome::Status(503), true, None, p.max_retries, 0.0),
            Decision::GiveUp
        );
        assert_eq!(
            decide(
                &p,
                Outcome::Status(429),
                true,
                None,
                p.max_rate_limit_retries,
                0.0
            ),
            Decision::GiveUp
        );
    }

    #[test]
    fn an_absurd_hint_is_not_slept_on() {
        let d = decide(
            &policy(),
            Outcome::Status(429),
            true,
            Some(Duration::from_secs(86_400)),
            0,
            0.0,
        );
        assert_eq!(d, Decision::GiveUp);
    }

    #[test]
    fn backoff_grows_then_caps_and_jitters_within_half() {
        let p = policy();
        assert_eq!(backoff(&p, 0, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&p, 0, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(&p, 3, 1.0), Duration::from_millis(2000));
        assert_eq!(backoff(&p, 30, 1.0), p.max_delay);
    }
}
