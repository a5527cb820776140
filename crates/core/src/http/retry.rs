//! Retry decisions as a pure function of what happened, the server's hint and the attempt.
//!
//! Kept apart from I/O so every rule is unit-tested: a 429 was not processed and is always
//! retried (within its own, larger allowance); a 5xx, timeout or dropped connection is
//! retried only when the request is safe to repeat (GET, PUT, DELETE, or marked so); a
//! connection that was never established is always retried, since nothing was sent.
//!
//! 429s and failures are counted apart ([`Attempts`]): a storm of 429s does not use up the
//! allowance for 5xx answers, nor the other way round.

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
    /// The server refused the request for a passing rate limit with this 4xx status, not a 429
    /// (the CRM's error reads as [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited):
    /// Salesforce answers too many concurrent requests with 403 `REQUEST_LIMIT_EXCEEDED`).
    /// Retried like a 429: the request was refused, not served.
    Limited(u16),
    /// No answer in time; the server may have processed the request.
    Timeout,
    /// The connection could not be established; nothing was sent.
    Connect,
    /// The connection broke after the request was sent.
    Dropped,
}

impl Outcome {
    /// Whether the server refused the request for a rate limit: a 429, or [`Outcome::Limited`].
    pub fn is_rate_limit(self) -> bool {
        matches!(self, Outcome::Status(429) | Outcome::Limited(_))
    }
}

/// Whether to try again, and after how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send again.
    Retry(Duration),
    /// Stop and report the failure.
    GiveUp,
}

/// Retries made so far for one request, counted per cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Retries after a 429 or another rate-limit refusal ([`Outcome::is_rate_limit`]).
    pub rate_limited: u32,
    /// Retries after a 5xx, timeout, broken or refused connection.
    pub failed: u32,
}

impl Attempts {
    /// Counts one more retry after `outcome`, in the counter its cause uses.
    pub fn record(&mut self, outcome: Outcome) {
        if outcome.is_rate_limit() {
            self.rate_limited = self.rate_limited.saturating_add(1);
        } else {
            self.failed = self.failed.saturating_add(1);
        }
    }
}

/// Decides what to do after the retries in `attempts`: a 429 (or [`Outcome::Limited`]) is
/// judged against
/// `max_rate_limit_retries` and the 429 count, anything else against `max_retries` and the
/// failure count.
///
/// `hint` is the server's requested wait (`Retry-After` or a rate-limit reset); it beats the
/// computed backoff, and one longer than `max_hint` gives up at once. `jitter` is a number
/// in `[0, 1)` that spreads concurrent retries apart.
pub fn decide_counted(
    policy: &RetryPolicy,
    outcome: Outcome,
    repeat_safe: bool,
    hint: Option<Duration>,
    attempts: Attempts,
    jitter: f64,
) -> Decision {
    let (allowed, done, needs_safe) = match outcome {
        Outcome::Status(429) | Outcome::Limited(_) => {
            (policy.max_rate_limit_retries, attempts.rate_limited, false)
        }
        Outcome::Status(500 | 502 | 503 | 504) | Outcome::Timeout | Outcome::Dropped => {
            (policy.max_retries, attempts.failed, true)
        }
        Outcome::Connect => (policy.max_retries, attempts.failed, false),
        Outcome::Status(_) => return Decision::GiveUp,
    };
    if done >= allowed || (needs_safe && !repeat_safe) {
        return Decision::GiveUp;
    }
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    match hint {
        Some(wait) if wait > policy.max_hint => Decision::GiveUp,
        // A small spread keeps many waiting tasks from hitting the reset instant together.
        Some(wait) => Decision::Retry(wait.saturating_add(policy.base_delay.mul_f64(jitter * 0.2))),
        None => Decision::Retry(backoff(policy, done, jitter)),
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random, capped.
pub fn backoff(policy: &RetryPolicy, attempt: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(16));
    let step = policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    step.mul_f64(0.5 + jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`decide_counted`] with `attempt` retries in both counters.
    fn decide(
        policy: &RetryPolicy,
        outcome: Outcome,
        repeat_safe: bool,
        hint: Option<Duration>,
        attempt: u32,
        jitter: f64,
    ) -> Decision {
        let attempts = Attempts {
            rate_limited: attempt,
            failed: attempt,
        };
        decide_counted(policy, outcome, repeat_safe, hint, attempts, jitter)
    }

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
    fn a_429_storm_does_not_use_up_the_5xx_allowance() {
        let p = policy();
        let mut a = Attempts::default();
        for _ in 0..p.max_rate_limit_retries {
            assert!(matches!(
                decide_counted(&p, Outcome::Status(429), true, None, a, 0.0),
                Decision::Retry(_)
            ));
            a.record(Outcome::Status(429));
        }
        assert_eq!(
            decide_counted(&p, Outcome::Status(429), true, None, a, 0.0),
            Decision::GiveUp
        );
        assert_eq!(a.failed, 0);
        assert!(matches!(
            decide_counted(&p, Outcome::Status(503), true, None, a, 0.0),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn failures_do_not_use_up_the_429_allowance() {
        let p = policy();
        let mut a = Attempts::default();
        for o in [
            Outcome::Status(500),
            Outcome::Timeout,
            Outcome::Dropped,
            Outcome::Connect,
        ] {
            a.record(o);
        }
        assert_eq!(a.failed, p.max_retries);
        assert_eq!(
            decide_counted(&p, Outcome::Status(502), true, None, a, 0.0),
            Decision::GiveUp
        );
        assert_eq!(
            decide_counted(
                &p,
                Outcome::Status(429),
                true,
                Some(Duration::from_secs(1)),
                a,
                0.0
            ),
            Decision::Retry(Duration::from_secs(1))
        );
    }

    #[test]
    fn backoff_follows_the_failure_count_not_the_429_count() {
        let p = policy();
        let a = Attempts {
            rate_limited: 10,
            failed: 0,
        };
        assert_eq!(
            decide_counted(&p, Outcome::Status(503), true, None, a, 1.0),
            Decision::Retry(p.base_delay)
        );
    }

    #[test]
    fn odd_jitter_and_huge_hints_do_not_panic() {
        let p = RetryPolicy {
            max_hint: Duration::MAX,
            ..policy()
        };
        let d = decide_counted(
            &p,
            Outcome::Status(429),
            true,
            Some(Duration::MAX),
            Attempts::default(),
            f64::NAN,
        );
        assert_eq!(d, Decision::Retry(Duration::MAX));
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
