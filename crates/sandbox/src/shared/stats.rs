//! The request log and counters every emulator keeps, read by tests, benchmarks and the
//! admin endpoint.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

/// One request as the emulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLog {
    /// Milliseconds since the emulator started.
    pub at_ms: f64,
    /// The HTTP method.
    pub method: String,
    /// The path below the API root.
    pub path: String,
    /// The rate-limit group it counted against (the emulator's own naming).
    pub group: String,
    /// The status it was answered with (0 when the connection was dropped instead).
    pub status: u16,
}

/// Counters and the request log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Every API request, in arrival order (the most recent 200,000).
    pub requests: Vec<RequestLog>,
    /// Requests answered 429 (by the limiter or by fault injection).
    pub rate_limited: u64,
    /// Successful refresh-token grants.
    pub token_refreshes: u64,
    /// Authorization-code grants.
    pub code_exchanges: u64,
    /// Webhook POSTs made.
    pub webhook_attempts: u64,
    /// Webhook events delivered with a 2xx.
    pub webhook_delivered: u64,
    /// Webhook events given up on.
    pub webhook_failed: u64,
}

const REQUEST_LOG_CAP: usize = 200_000;

/// The shared, lockable statistics of one running emulator.
#[derive(Debug)]
pub struct StatsCell {
    started: Instant,
    stats: Mutex<Stats>,
}

impl Default for StatsCell {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            stats: Mutex::new(Stats::default()),
        }
    }
}

impl StatsCell {
    /// The counters, locked briefly.
    pub fn lock(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one request to the log (dropping the older half when full).
    pub fn log(&self, method: &str, path: &str, group: &str, status: u16) {
        let at_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let mut stats = self.lock();
        if status == 429 {
            stats.rate_limited += 1;
        }
        if stats.requests.len() >= REQUEST_LOG_CAP {
            stats.requests.drain(..REQUEST_LOG_CAP / 2);
        }
        stats.requests.push(RequestLog {
            at_ms,
            method: method.to_string(),
            path: path.to_string(),
            group: group.to_string(),
            status,
        });
    }
}
