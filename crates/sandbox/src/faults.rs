//! Fault injection shared by the emulators: a share of 429s and 5xx answers, added latency,
//! dropped connections, and writes that are applied but whose answer never arrives; set at
//! start or changed at run time through the admin endpoint, for every route or one.

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
    /// Close the connection without answering, before the request is processed.
    Drop,
    /// Process the request (a write is applied), then close the connection instead of
    /// answering: the client sees a broken connection for a change that happened.
    ProcessedThenDrop,
    /// No failure: answer normally. A gap in a queued schedule ([`Faults::next`],
    /// [`Faults::spaced`]).
    Pass,
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
    /// Share of requests processed and then dropped without an answer.
    pub rate_processed_drop: f64,
    /// Delay added to every answer, in milliseconds.
    pub latency_ms: u64,
    /// Batch answers list their `results` in an order other than the inputs' (on the
    /// targeted route): CRMs whose batch endpoints promise no order (HubSpot,
    /// github.com/HubSpot/hubspot-api-nodejs/issues/190) can be answered that way, so a
    /// client's matching of results to inputs is tested.
    pub shuffle_batch_results: bool,
    /// Failures for the next requests, in order, before the shares apply.
    pub next: Vec<Fault>,
    /// Only requests on this route get faults (latency still applies to all): `"POST /lead/"`
    /// for one method and path, or `"/lead/"` for any method; a trailing `*` matches any
    /// path that starts with the rest (`"GET /lead/*"`). Paths are below the API root.
    pub route: Option<String>,
}

impl Faults {
    /// Whether faults apply to a request with `method` on `path` (below the API root).
    pub fn targets(&self, method: &str, path: &str) -> bool {
        let Some(route) = self.route.as_deref().map(str::trim) else {
            return true;
        };
        let (want_method, want_path) = match route.split_once(' ') {
            Some((m, p)) => (Some(m.trim()), p.trim()),
            None => (None, route),
        };
        if want_method.is_some_and(|m| !m.eq_ignore_ascii_case(method)) {
            return false;
        }
        match want_path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == want_path,
        }
    }

    /// Whether a batch answer to `method` `path` is to list its results out of input order.
    pub fn shuffles(&self, method: &str, path: &str) -> bool {
        self.shuffle_batch_results && self.targets(method, path)
    }

    /// Reorders `results` so that, when there are two or more, none is where it was (a
    /// random rotation): a client that assumes input order fails every time, not by luck.
    pub fn shuffle<T>(results: &mut [T]) {
        if results.len() > 1 {
            let by = fastrand::usize(1..results.len());
            results.rotate_left(by);
        }
    }

    /// Picks the fault (if any) for the next request on `method` `path`, using `roll` in
    /// `[0, 1)`.
    pub fn pick_for(&mut self, method: &str, path: &str, roll: f64) -> Option<Fault> {
        if !self.targets(method, path) {
            return None;
        }
        self.pick(roll)
    }

    /// A deterministic schedule: `faults` in order, each after `gap` requests answered
    /// normally, then no faults. Where random shares may miss a CRM called only a few
    /// times, this makes every listed failure happen once its CRM saw
    /// `(gap + 1) * faults.len()` requests.
    pub fn spaced(gap: usize, faults: &[Fault]) -> Faults {
        Faults {
            next: faults
                .iter()
                .flat_map(|f| std::iter::repeat_n(Fault::Pass, gap).chain([*f]))
                .collect(),
            ..Faults::default()
        }
    }

    /// Picks the fault (if any) for the next request, using `roll` in `[0, 1)`.
    pub fn pick(&mut self, roll: f64) -> Option<Fault> {
        if !self.next.is_empty() {
            return match self.next.remove(0) {
                Fault::Pass => None,
                f => Some(f),
            };
        }
        let mut edge = 0.0;
        for (share, fault) in [
            (self.rate_429, Fault::RateLimit),
            (self.rate_500, Fault::ServerError),
            (self.rate_503, Fault::Unavailable),
            (self.rate_drop, Fault::Drop),
            (self.rate_processed_drop, Fault::ProcessedThenDrop),
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

    #[test]
    fn a_spaced_schedule_fails_every_gap_plus_one_requests_then_stops() {
        let mut f = Faults::spaced(2, &[Fault::RateLimit, Fault::Drop]);
        let got: Vec<Option<Fault>> = (0..8).map(|_| f.pick(0.0)).collect();
        assert_eq!(
            got,
            [
                None,
                None,
                Some(Fault::RateLimit),
                None,
                None,
                Some(Fault::Drop),
                None,
                None
            ]
        );
    }

    #[test]
    fn a_shuffle_moves_every_result() {
        for _ in 0..20 {
            let mut v: Vec<usize> = (0..5).collect();
            Faults::shuffle(&mut v);
            assert!(v.iter().enumerate().all(|(i, x)| i != *x), "{v:?}");
        }
    }

    #[test]
    fn a_route_limits_where_faults_land() {
        let mut f = Faults {
            next: vec![Fault::ProcessedThenDrop],
            route: Some("POST /lead/".into()),
            ..Faults::default()
        };
        assert_eq!(f.pick_for("GET", "/lead/", 0.0), None);
        assert_eq!(f.pick_for("POST", "/contact/", 0.0), None);
        assert_eq!(
            f.pick_for("POST", "/lead/", 0.0),
            Some(Fault::ProcessedThenDrop)
        );
        let prefix = Faults {
            route: Some("/lead/*".into()),
            ..Faults::default()
        };
        assert!(prefix.targets("PUT", "/lead/lead_1/"));
        assert!(!prefix.targets("PUT", "/contact/cont_1/"));
    }
}
