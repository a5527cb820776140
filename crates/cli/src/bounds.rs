//! Bounds of numeric options, checked when the command line is read: a value the sandbox or
//! the client cannot use (a window of centuries, a zero limit) is refused with a message
//! naming the allowed range instead of overflowing a clock later.

use clap::builder::RangedU64ValueParser;

/// Longest rate window an option accepts: one day in milliseconds, the longest window the
/// CRMs use (a daily quota).
pub const MAX_WINDOW_MS: u64 = 86_400_000;

/// Longest latency the sandbox may add to each answer: one minute in milliseconds.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// Most leads a sandbox may be seeded with; all of them live in memory.
const MAX_LEADS: u64 = 10_000_000;

/// Most requests a benchmark keeps in flight.
const MAX_CONCURRENCY: u64 = 1_000;

/// A rate window in milliseconds: 1 ms to one day.
pub fn window_ms() -> RangedU64ValueParser<u64> {
    RangedU64ValueParser::new().range(1..=MAX_WINDOW_MS)
}

/// Requests allowed per window: at least 1.
pub fn rate_limit() -> RangedU64ValueParser<u32> {
    RangedU64ValueParser::new().range(1..=u64::from(u32::MAX))
}

/// A latency in milliseconds: at most one minute.
pub fn latency_ms() -> RangedU64ValueParser<u64> {
    RangedU64ValueParser::new().range(0..=MAX_LATENCY_MS)
}

/// Leads to seed: at most ten million.
pub fn leads() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(0..=MAX_LEADS)
}

/// Requests in flight: 1 to 1,000.
pub fn concurrency() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=MAX_CONCURRENCY)
}
