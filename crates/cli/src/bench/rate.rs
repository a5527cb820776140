//! How close a run came to the rate the server allows.

use crmkit_sandbox::shared::stats::Stats;

use crate::failure::Failure;

/// The steady achieved rate ÷ the allowed rate, from the times (ms) of admitted requests.
///
/// It counts the requests admitted in the whole windows that follow the first admitted one
/// and divides by what those windows allow. A budgeted client sends a window's worth at once
/// and then again one window later, so counting whole windows measures that pattern and an
/// evenly spaced sender alike, without crediting either for a part-filled last window.
/// `None` when the run spans less than one window (nothing steady to measure).
pub fn steady_ratio(admitted_ms: &[f64], limit: u32, window_ms: u64) -> Option<f64> {
    let first = admitted_ms.iter().copied().reduce(f64::min)?;
    let last = admitted_ms.iter().copied().reduce(f64::max)?;
    let window = window_ms as f64;
    let windows = ((last - first) / window).floor();
    if windows < 1.0 || limit == 0 {
        return None;
    }
    let end = first + windows * window;
    let inside = admitted_ms.iter().filter(|t| **t < end).count();
    Some(inside as f64 / (windows * f64::from(limit)))
}

/// [`steady_ratio`] of the requests in `stats` the sandbox admitted (all but its 429s).
/// A run too short to measure is a failure naming `what` ran and `hint` to lengthen it.
pub fn admitted_ratio(
    stats: &Stats,
    limit: u32,
    window_ms: u64,
    what: &str,
    hint: &str,
) -> Result<f64, Failure> {
    let admitted: Vec<f64> = stats
        .requests
        .iter()
        .filter(|r| r.status != 429)
        .map(|r| r.at_ms)
        .collect();
    steady_ratio(&admitted, limit, window_ms)
        .ok_or_else(|| Failure::Bench(format!("{what} spanned less than one rate window; {hint}")))
}

/// `part` as a share of `whole`; 0 when there is no whole.
pub fn share(part: usize, whole: usize) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_burst_every_window_is_the_allowed_rate() {
        // 4 bursts of 10 requests, 1 s apart, each spread over 200 ms.
        let times: Vec<f64> = (0..4)
            .flat_map(|w| (0..10).map(move |i| f64::from(w) * 1000.0 + f64::from(i) * 20.0))
            .collect();
        let r = steady_ratio(&times, 10, 1000).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn an_even_sender_at_half_the_limit_is_half() {
        let times: Vec<f64> = (0..50).map(|i| f64::from(i) * 200.0).collect();
        let r = steady_ratio(&times, 10, 1000).unwrap();
        assert!((r - 0.5).abs() < 1e-9, "{r}");
    }

    #[test]
    fn less_than_a_window_cannot_be_measured() {
        assert_eq!(steady_ratio(&[0.0, 500.0], 10, 1000), None);
        assert_eq!(steady_ratio(&[], 10, 1000), None);
    }

    #[test]
    fn a_share_of_nothing_is_zero() {
        assert_eq!(share(1, 4), 0.25);
        assert_eq!(share(0, 0), 0.0);
    }
}
