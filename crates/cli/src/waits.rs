//! What the Close client is waiting for, told by its transport, as a note for the progress
//! line: "waiting 3.2 s for the rate limit (GET lead/)" or "retrying after 503 in 1.0 s
//! (GET lead/)", counting down while the wait lasts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmkit_core::http::retry::Outcome;
use crmkit_core::http::{ApiRequest, Observer, TransportEvent};

/// Why a request is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Waiting for room in a rate budget.
    RateLimit,
    /// Pausing before sending again after this outcome.
    Retry(Outcome),
}

/// One request's wait.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wait {
    /// The request's address while the transport sends it, which tells concurrent requests
    /// apart even when they look the same.
    request: usize,
    /// `METHOD path`.
    label: String,
    cause: Cause,
    until: Instant,
}

/// The wait to show, shared by the client's observer and the progress display.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    current: Arc<Mutex<Option<Wait>>>,
}

impl Waits {
    /// An observer for `ClientBuilder::observer` that records the client's waits here.
    pub fn observer(&self) -> Observer {
        let waits = self.clone();
        Arc::new(move |event: &TransportEvent<'_>| waits.record(event, Instant::now()))
    }

    /// Takes in what the transport did at `now`.
    fn record(&self, event: &TransportEvent<'_>, now: Instant) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let (request, cause, wait) = match event {
            TransportEvent::Waiting { request, wait, .. } => (*request, Cause::RateLimit, *wait),
            TransportEvent::Retrying {
                request,
                outcome,
                wait,
            } => (*request, Cause::Retry(*outcome), *wait),
            TransportEvent::Admitted { request, .. } => {
                // The request left: its wait is over, even if sooner than announced.
                if current.as_ref().is_some_and(|w| w.request == id(request)) {
                    *current = None;
                }
                return;
            }
            _ => return,
        };
        let new = Wait {
            request: id(request),
            label: label(request),
            cause,
            until: now + wait,
        };
        // With several requests held back, the one free last says how long the wait lasts.
        let replace = current
            .as_ref()
            .is_none_or(|w| w.request == new.request || w.until <= now || new.until >= w.until);
        if replace {
            *current = Some(new);
        }
    }

    /// The note for the wait going on at `now`, if any.
    pub fn note(&self, now: Instant) -> Option<String> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let wait = current.as_ref()?;
        let left = wait
            .until
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())?;
        Some(describe(wait.cause, &wait.label, left))
    }
}

fn id(request: &ApiRequest) -> usize {
    std::ptr::from_ref(request) as usize
}

/// `GET lead/`: the method and the path below the API root, without the query (a search's
/// text has no place on a status line).
fn label(request: &ApiRequest) -> String {
    format!(
        "{} {}",
        request.method,
        request.path.trim_start_matches('/')
    )
}

/// The note for a wait with `left` to go, in tenths of a second rounded up so that a wait
/// still going on never reads "0.0 s".
pub fn describe(cause: Cause, label: &str, left: Duration) -> String {
    let tenths = left.as_millis().div_ceil(100);
    let secs = format!("{}.{}", tenths / 10, tenths % 10);
    match cause {
        Cause::RateLimit => format!("waiting {secs} s for the rate limit ({label})"),
        Cause::Retry(outcome) => {
            format!("retrying after {} in {secs} s ({label})", after(outcome))
        }
    }
}

/// What a retry comes after, as it reads after "retrying after".
fn after(outcome: Outcome) -> String {
    match outcome {
        Outcome::Status(status) => status.to_string(),
        Outcome::Limited(status) => format!("a {status} rate limit"),
        Outcome::Timeout => "a timeout".into(),
        Outcome::Connect => "a failed connection".into(),
        Outcome::Dropped => "a broken connection".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting<'a>(request: &'a ApiRequest, wait: Duration) -> TransportEvent<'a> {
        TransportEvent::Waiting {
            request,
            budget: "lead",
            wait,
        }
    }

    #[test]
    fn a_rate_limit_wait_names_its_length_and_request() {
        assert_eq!(
            describe(Cause::RateLimit, "GET lead/", Duration::from_millis(3_160)),
            "waiting 3.2 s for the rate limit (GET lead/)"
        );
    }

    #[test]
    fn the_countdown_rounds_up_to_a_tenth() {
        let note = |ms| describe(Cause::RateLimit, "GET lead/", Duration::from_millis(ms));
        assert_eq!(note(1), "waiting 0.1 s for the rate limit (GET lead/)");
        assert_eq!(note(3_200), "waiting 3.2 s for the rate limit (GET lead/)");
        assert_eq!(
            note(12_001),
            "waiting 12.1 s for the rate limit (GET lead/)"
        );
    }

    #[test]
    fn a_retry_names_what_it_follows() {
        let one_s = Duration::from_secs(1);
        assert_eq!(
            describe(Cause::Retry(Outcome::Status(503)), "GET lead/", one_s),
            "retrying after 503 in 1.0 s (GET lead/)"
        );
        assert_eq!(
            describe(Cause::Retry(Outcome::Timeout), "POST lead/", one_s),
            "retrying after a timeout in 1.0 s (POST lead/)"
        );
        assert_eq!(
            describe(Cause::Retry(Outcome::Connect), "GET lead/", one_s),
            "retrying after a failed connection in 1.0 s (GET lead/)"
        );
        assert_eq!(
            describe(Cause::Retry(Outcome::Dropped), "GET lead/", one_s),
            "retrying after a broken connection in 1.0 s (GET lead/)"
        );
    }

    #[test]
    fn the_label_drops_the_leading_slash_and_the_query() {
        let req = ApiRequest::get("/lead/").query("query", "secret plans");
        assert_eq!(label(&req), "GET lead/");
    }

    #[test]
    fn the_note_counts_down_and_ends_with_the_wait() {
        let waits = Waits::default();
        let req = ApiRequest::get("lead/");
        let t0 = Instant::now();
        assert_eq!(waits.note(t0), None);
        waits.record(&waiting(&req, Duration::from_secs(3)), t0);
        assert_eq!(
            waits.note(t0 + Duration::from_millis(800)).as_deref(),
            Some("waiting 2.2 s for the rate limit (GET lead/)")
        );
        assert_eq!(waits.note(t0 + Duration::from_secs(3)), None);
    }

    #[test]
    fn a_retry_is_shown_and_admission_ends_it() {
        let waits = Waits::default();
        let req = ApiRequest::get("lead/");
        let t0 = Instant::now();
        waits.record(
            &TransportEvent::Retrying {
                request: &req,
                outcome: Outcome::Status(503),
                wait: Duration::from_secs(1),
            },
            t0,
        );
        assert_eq!(
            waits.note(t0).as_deref(),
            Some("retrying after 503 in 1.0 s (GET lead/)")
        );
        waits.record(
            &TransportEvent::Admitted {
                request: &req,
                at: tokio::time::Instant::now(),
            },
            t0,
        );
        assert_eq!(waits.note(t0), None);
    }

    #[test]
    fn the_longest_of_concurrent_waits_is_shown_until_its_request_leaves() {
        let waits = Waits::default();
        let (a, b) = (
            ApiRequest::post("lead/", serde_json::json!({})),
            ApiRequest::get("contact/"),
        );
        let t0 = Instant::now();
        waits.record(&waiting(&a, Duration::from_secs(5)), t0);
        waits.record(&waiting(&b, Duration::from_secs(2)), t0);
        assert_eq!(
            waits.note(t0).as_deref(),
            Some("waiting 5.0 s for the rate limit (POST lead/)")
        );
        // Another request leaving does not end this one's wait.
        waits.record(
            &TransportEvent::Admitted {
                request: &b,
                at: tokio::time::Instant::now(),
            },
            t0,
        );
        assert!(waits.note(t0).is_some());
        // Once it is over, a shorter new wait shows.
        let later = t0 + Duration::from_secs(6);
        waits.record(&waiting(&b, Duration::from_secs(1)), later);
        assert_eq!(
            waits.note(later).as_deref(),
            Some("waiting 1.0 s for the rate limit (GET contact/)")
        );
    }
}
