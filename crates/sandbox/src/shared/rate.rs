//! Rate windows an emulator enforces per (credential, endpoint group): fixed windows (Close),
//! rolling windows (HubSpot's 10-second burst) and daily quotas (HubSpot, Salesforce). One
//! request is charged to every window of its group and admitted only if all have room.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Counts reset at every multiple of the length since the emulator started.
    Fixed,
    /// Counts the requests of the last `length`, at any instant.
    Rolling,
    /// Counts reset at midnight UTC; the length is ignored.
    Daily,
}

/// One limit: at most `limit` requests per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How it counts.
    pub kind: WindowKind,
    /// Requests allowed per window.
    pub limit: u32,
    /// The window's length (not used by [`WindowKind::Daily`]).
    pub length: Duration,
}

/// The outcome of charging a request: the tightest window decides what the headers say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Admission {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit of the tightest window.
    pub limit: u32,
    /// Requests left in the tightest window.
    pub remaining: u32,
    /// Seconds until the tightest window frees a slot.
    pub reset: f64,
    /// The length of the tightest window, in seconds.
    pub window: f64,
}

#[derive(Debug, Default)]
struct Count {
    bucket: u64,
    used: u32,
    times: VecDeque<Duration>,
}

/// Counters for every (credential, group, window).
#[derive(Debug)]
pub struct RateWindows {
    started: Instant,
    counts: Mutex<HashMap<(String, String, usize), Count>>,
}

impl Default for RateWindows {
    fn default() -> Self {
        Self::new()
    }
}

impl RateWindows {
    /// Empty counters, with the clock starting now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// When the counters started (fixed windows align to it).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Charges one request of `cred` on `group` to every window; admits it only if each has
    /// room (a refused request is charged to none).
    pub fn admit(&self, cred: &str, group: &str, windows: &[Window]) -> Admission {
        self.admit_at(
            cred,
            group,
            windows,
            self.started.elapsed(),
            chrono::Utc::now(),
        )
    }

    /// What each window has left for `cred` on `group`, without charging anything (for
    /// emulators that report several windows in their headers).
    pub fn remaining(&self, cred: &str, group: &str, windows: &[Window]) -> Vec<u32> {
        let now = self.started.elapsed();
        let day = chrono::Utc::now().timestamp().div_euclid(86_400) as u64;
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let used = counts
                    .get(&(cred.to_string(), group.to_string(), i))
                    .map_or(0, |c| match w.kind {
                        WindowKind::Fixed => {
                            let bucket = (now.as_nanos() / w.length.as_nanos().max(1)) as u64;
                            if c.bucket == bucket { c.used } else { 0 }
                        }
                        WindowKind::Rolling => c
                            .times
                            .iter()
                            .filter(|t| now.saturating_sub(**t) < w.length)
                            .count() as u32,
                        WindowKind::Daily => {
                            if c.bucket == day {
                                c.used
                            } else {
                                0
                            }
                        }
                    });
                w.limit.saturating_sub(used)
            })
            .collect()
    }

    fn admit_at(
        &self,
        cred: &str,
        group: &str,
        windows: &[Window],
        now: Duration,
        wall: chrono::DateTime<chrono::Utc>,
    ) -> Admission {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut states = Vec::with_capacity(windows.len());
        for (i, w) in windows.iter().enumerate() {
            let c = counts
                .entry((cred.to_string(), group.to_string(), i))
                .or_default();
            let (used, reset, length) = match w.kind {
                WindowKind::Fixed => {
                    let len = w.length.as_nanos().max(1);
                    let bucket = (now.as_nanos() / len) as u64;
                    if c.bucket != bucket {
                        c.bucket = bucket;
                        c.used = 0;
                    }
                    // In u128 and saturating: a window of centuries must not overflow.
                    let end_nanos = (u128::from(bucket) + 1).saturating_mul(len);
                    let left = end_nanos.saturating_sub(now.as_nanos());
                    let left = Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX));
                    (c.used, left.as_secs_f64(), w.length.as_secs_f64())
                }
                WindowKind::Rolling => {
                    while c
                        .times
                        .front()
                        .is_some_and(|t| now.saturating_sub(*t) >= w.length)
                    {
                        c.times.pop_front();
                    }
                    let reset = c.times.front().map_or(w.length, |t| {
                        w.length.saturating_sub(now.saturating_sub(*t))
                    });
                    (
                        c.times.len() as u32,
                        reset.as_secs_f64(),
                        w.length.as_secs_f64(),
                    )
                }
                WindowKind::Daily => {
                    let day = wall.timestamp().div_euclid(86_400) as u64;
                    if c.bucket != day {
                        c.bucket = day;
                        c.used = 0;
                    }
                    let left = 86_400 - wall.timestamp().rem_euclid(86_400);
                    (c.used, left as f64, 86_400.0)
                }
            };
            states.push((used, reset, length));
        }
        let allowed = windows
            .iter()
            .zip(&states)
            .all(|(w, (used, _, _))| *used < w.limit);
        if allowed {
            for (i, w) in windows.iter().enumerate() {
                if let Some(c) = counts.get_mut(&(cred.to_string(), group.to_string(), i)) {
                    match w.kind {
                        WindowKind::Rolling => c.times.push_back(now),
                        _ => c.used += 1,
                    }
                }
            }
        }
        let charged = u32::from(allowed);
        let tightest = windows
            .iter()
            .zip(&states)
            .map(|(w, (used, reset, length))| {
                (
                    w.limit,
                    w.limit.saturating_sub(used + charged),
                    *reset,
                    *length,
                )
            })
            .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)));
        let (limit, remaining, reset, window) = tightest.unwrap_or((u32::MAX, u32::MAX, 0.0, 0.0));
        Admission {
            allowed,
            limit,
            remaining,
            reset,
            window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn window(kind: WindowKind, limit: u32, length: Duration) -> Window {
        Window {
            kind,
            limit,
            length,
        }
    }

    fn wall() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn fixed_window_admits_limit_then_refuses_until_the_next_window() {
        let r = RateWindows::new();
        let w = [window(WindowKind::Fixed, 2, at(1000))];
        assert!(r.admit_at("k", "g", &w, at(10), wall()).allowed);
        assert!(r.admit_at("k", "g", &w, at(20), wall()).allowed);
        let refused = r.admit_at("k", "g", &w, at(30), wall());
        assert!(!refused.allowed);
        assert!((refused.reset - 0.97).abs() < 1e-6);
        assert!(r.admit_at("other", "g", &w, at(30), wall()).allowed);
        assert!(r.admit_at("k", "g", &w, at(1001), wall()).allowed);
    }

    #[test]
    fn a_window_of_centuries_neither_panics_nor_resets() {
        let r = RateWindows::new();
        let w = [window(WindowKind::Fixed, 1, Duration::MAX)];
        assert!(r.admit_at("k", "g", &w, at(10), wall()).allowed);
        let refused = r.admit_at("k", "g", &w, at(20), wall());
        assert!(!refused.allowed);
        assert!(refused.reset > 1e9);
    }

    #[test]
    fn rolling_window_frees_slots_as_requests_age() {
        let r = RateWindows::new();
        let w = [window(WindowKind::Rolling, 2, at(1000))];
        assert!(r.admit_at("k", "g", &w, at(0), wall()).allowed);
        assert!(r.admit_at("k", "g", &w, at(600), wall()).allowed);
        // A fixed window would have reset at 1000 ms; the rolling one still holds both.
        assert!(!r.admit_at("k", "g", &w, at(999), wall()).allowed);
        assert!(r.admit_at("k", "g", &w, at(1000), wall()).allowed);
        assert!(!r.admit_at("k", "g", &w, at(1500), wall()).allowed);
    }

    #[test]
    fn remaining_reports_every_window_without_charging() {
        let r = RateWindows::new();
        let w = [
            window(WindowKind::Rolling, 10, Duration::from_secs(60)),
            window(WindowKind::Daily, 50, Duration::ZERO),
        ];
        assert!(r.admit("k", "g", &w).allowed);
        assert_eq!(r.remaining("k", "g", &w), [9, 49]);
        assert_eq!(r.remaining("k", "g", &w), [9, 49]);
        assert_eq!(r.remaining("other", "g", &w), [10, 50]);
    }

    #[test]
    fn every_window_must_have_room_and_the_daily_one_counts_all_day() {
        let r = RateWindows::new();
        let w = [
            window(WindowKind::Rolling, 10, at(1000)),
            window(WindowKind::Daily, 3, Duration::ZERO),
        ];
        for i in 0..3 {
            let a = r.admit_at("k", "g", &w, at(i * 5000), wall());
            assert!(a.allowed);
            assert_eq!(a.remaining, 2 - i as u32);
        }
        let refused = r.admit_at("k", "g", &w, at(20_000), wall());
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 3);
        let tomorrow = wall() + chrono::Duration::days(1);
        assert!(r.admit_at("k", "g", &w, at(30_000), tomorrow).allowed);
    }
}
