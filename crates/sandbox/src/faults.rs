//! Fault injection shared by the emulators: a share of 429s and 5xx answers, added latency,
//! and dropped connections, set at start or changed at run time through the admin endpoint.

use serde::{Deserialize, Serialize};

/// One injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer 429 as if the rate limit were exceeded.
    RateLimit,
    /// Answer 500.
    ServerError,
    /// Answer 503.
    Unavailable,
    /// Close the connection without answering.
    Drop,
}

/// What failures to inject, and how often.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share of requests answered 429 (0.0–1.0).
    pub rate_429: f64,
    /// Share of requests answered 500.
    pub rate_500: f64,
    /// Share of requests answered 503.
    pub rate_503: f64,
    /// Share of connections dropped without an answer.
    pub rate_drop: f64,
    /// Delay added to every answer, in milliseconds.
    pub latency_ms: u64,
    /// Failures for the next requests, in order, before the shares apply.
    pub next: Vec<Fault>,
}

impl Faults {
    /// Picks the fault (if any) for the next request, using `roll` in `[0, 1)`.
    pub fn pick(&mut self, roll: f64) -> Option<Fault> {
        if !self.next.is_empty() {
            return Some(self.next.remove(0));
        }
        let mut edge = 0.0;
        for (share, fault) in [
            (self.rate_429, Fault::RateLimit),
            (self.rate_500, Fault::ServerError),
            (self.rate_503, Fault::Unavailable),
            (self.rate_drop, Fault::Drop),
        ] {
            edge += share;
            if roll < edge {
                return Some(fault);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_come_first_then_shares() {
        let mut f = Faults {
            rate_500: 0.5,
            next: vec![Fault::Drop],
            ..Faults::default()
        };
        assert_eq!(f.pick(0.9), Some(Fault::Drop));
        assert_eq!(f.pick(0.9), None);
        assert_eq!(f.pick(0.1), Some(Fault::ServerError));
    }
}
