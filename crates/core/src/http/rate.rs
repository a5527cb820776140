//! Proactive rate budgets: requests wait for room before they leave.
//!
//! A [`Budget`] admits at most `limit` requests in any rolling `window` (a sliding log of
//! send times, so it never lets a burst through at a window edge), and can be paused: after a
//! 429, or when the server says `remaining=0`, the whole budget waits until the reset. It also
//! adopts the limit the server announces. [`RateBudgets`] keeps one budget per endpoint
//! group; [`RateBudgets::shared`] hands every client built with the same credential the same
//! budgets, so all tasks using one key draw from one allowance.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// A rate limit: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed in one window.
    pub limit: u32,
    /// The window length.
    pub window: Duration,
}

impl Quota {
    /// `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
        }
    }
}

/// What a response said about the budget it drew from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateInfo {
    /// The limit per window, as the server counts it.
    pub limit: Option<u32>,
    /// Requests left in the current window.
    pub remaining: Option<u32>,
    /// Time until the window resets.
    pub reset: Option<Duration>,
}

#[derive(Debug)]
struct State {
    quota: Quota,
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// The allowance of one endpoint group of one credential.
#[derive(Debug)]
pub struct Budget {
    state: Mutex<State>,
}

impl Budget {
    /// A budget that admits `quota`.
    pub fn new(quota: Quota) -> Self {
        Self {
            state: Mutex::new(State {
                quota,
                sent: VecDeque::new(),
                paused_until: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the log inconsistent, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until one more request fits, then counts it as sent.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                let window = s.quota.window;
                while s.sent.front().is_some_and(|t| *t + window <= now) {
                    s.sent.pop_front();
                }
                match s.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        s.paused_until = None;
                        if s.sent.len() < s.quota.limit as usize {
                            s.sent.push_back(now);
                            return;
                        }
                        let oldest = s.sent[s.sent.len() - s.quota.limit as usize];
                        oldest + window - now
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Learns from the limit headers of a response.
    pub fn observe(&self, info: RateInfo) {
        let mut s = self.lock();
        if let Some(limit) = info.limit.filter(|l| *l > 0) {
            s.quota.limit = limit;
        }
        if let (Some(0), Some(reset)) = (info.remaining, info.reset) {
            Self::pause_locked(&mut s, reset);
        }
    }

    /// Stops every request of this budget for `wait` (after a 429).
    pub fn pause(&self, wait: Duration) {
        Self::pause_locked(&mut self.lock(), wait);
    }

    fn pause_locked(s: &mut State, wait: Duration) {
        let until = Instant::now() + wait;
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
    }

    /// The quota in force now (after any adjustment from headers).
    pub fn quota(&self) -> Quota {
        self.lock().quota
    }
}

/// One budget per endpoint group of a credential.
#[derive(Debug)]
pub struct RateBudgets {
    default: Quota,
    groups: Mutex<HashMap<String, Arc<Budget>>>,
}

impl RateBudgets {
    /// Budgets that start every group at `default`.
    pub fn new(default: Quota) -> Self {
        Self {
            default,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// The budgets of the credential whose fingerprint is `key`, shared with every other
    /// client built with the same credential while any of them lives.
    pub fn shared(key: &str, default: Quota) -> Arc<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<RateBudgets>>>> = OnceLock::new();
        let mut reg = REGISTRY
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(existing) = reg.get(key).and_then(Weak::upgrade) {
            return existing;
        }
        let fresh = Arc::new(Self::new(default));
        reg.insert(key.to_string(), Arc::downgrade(&fresh));
        fresh
    }

    /// The budget of one endpoint group.
    pub fn group(&self, name: &str) -> Arc<Budget> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Budget::new(self.default)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_limit_per_rolling_window() {
        let b = Budget::new(Quota::new(3, Duration::from_secs(10)));
        let start = Instant::now();
        for _ in 0..3 {
            b.acquire().await;
        }
        assert_eq!(Instant::now(), start);
        b.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_everyone_until_reset() {
        let b = Budget::new(Quota::new(100, Duration::from_secs(10)));
        let start = Instant::now();
        b.observe(RateInfo {
            limit: Some(50),
            remaining: Some(0),
            reset: Some(Duration::from_millis(1500)),
        });
        assert_eq!(b.quota().limit, 50);
        b.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(1500));
        b.pause(Duration::from_secs(2));
        b.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(3500));
    }

    #[test]
    fn same_credential_shares_budgets() {
        let q = Quota::new(10, Duration::from_secs(1));
        let a = RateBudgets::shared("fp-test-1", q);
        let b = RateBudgets::shared("fp-test-1", q);
        let c = RateBudgets::shared("fp-test-2", q);
        assert!(Arc::ptr_eq(&a.group("g"), &b.group("g")));
        assert!(!Arc::ptr_eq(&a.group("g"), &c.group("g")));
    }
}
