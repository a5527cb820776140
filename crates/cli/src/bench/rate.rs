//! How close a run came to the rate the server allows.

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
}
