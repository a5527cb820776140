//! Webhook delivery with retries, shared by the emulators: each attempt is a fresh POST
//! (so signatures can carry a fresh timestamp), retried with a doubling delay up to a cap.

use std::time::Duration;

use super::stats::StatsCell;

/// When to retry a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// The first delay; it doubles after each failure.
    pub base: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Attempts before giving up.
    pub attempts: u32,
}

/// Posts `body` to `url` until a 2xx answers or the attempts run out, counting each
/// attempt in `stats`. `headers` builds each attempt's headers (`None` stops delivery,
/// e.g. when the payload cannot be signed).
pub async fn deliver(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    schedule: RetrySchedule,
    stats: &StatsCell,
    headers: impl Fn() -> Option<Vec<(&'static str, String)>>,
) -> bool {
    deliver_as(http, url, body, Delivery::json(), schedule, stats, headers).await
}

fn two_xx(status: u16, _body: &str) -> bool {
    (200..300).contains(&status)
}

/// How a delivery is sent and what counts as its acknowledgement.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<A> {
    /// The body's `Content-Type`.
    pub content_type: &'static str,
    /// Whether an answer (status and body) acknowledges the delivery; anything else is
    /// retried (Salesforce's outbound messages need a SOAP `Ack` of true, not just a 2xx).
    pub acked: A,
}

impl Delivery<fn(u16, &str) -> bool> {
    /// JSON bodies acknowledged by any 2xx, as Close and HubSpot webhooks are.
    pub fn json() -> Self {
        Delivery {
            content_type: "application/json",
            acked: two_xx,
        }
    }
}

/// [`deliver`] with a chosen content type and acknowledgement rule.
pub async fn deliver_as(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    how: Delivery<impl Fn(u16, &str) -> bool>,
    schedule: RetrySchedule,
    stats: &StatsCell,
    headers: impl Fn() -> Option<Vec<(&'static str, String)>>,
) -> bool {
    deliver_each(http, url, how, schedule, stats, |_| {
        headers().map(|h| (body.to_string(), h))
    })
    .await
}

/// [`deliver_as`] for payloads that change between attempts (HubSpot numbers each attempt
/// in the events' `attemptNumber`): `attempt` builds the body and headers of attempt `n`,
/// counted from 0.
pub async fn deliver_each(
    http: &reqwest::Client,
    url: &str,
    how: Delivery<impl Fn(u16, &str) -> bool>,
    schedule: RetrySchedule,
    stats: &StatsCell,
    attempt: impl Fn(u32) -> Option<(String, Vec<(&'static str, String)>)>,
) -> bool {
    let mut delay = schedule.base;
    for n in 0..schedule.attempts {
        let Some((body, hs)) = attempt(n) else {
            return false;
        };
        let mut req = http
            .post(url)
            .header("content-type", how.content_type)
            .body(body);
        for (k, v) in hs {
            req = req.header(k, v);
        }
        let ok = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (how.acked)(status, &text)
            }
            Err(_) => false,
        };
        stats.lock().webhook_attempts += 1;
        if ok {
            stats.lock().webhook_delivered += 1;
            return true;
        }
        tracing::debug!(%url, attempt = n + 1, "Webhook delivery failed; will retry.");
        if n + 1 < schedule.attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(schedule.max_delay);
        }
    }
    stats.lock().webhook_failed += 1;
    false
}
