//! The request gate every API request passes before its handler: the credential check,
//! fault injection (optionally aimed at one route), added latency, the rate windows, and
//! the request log. Each CRM module supplies its own answers through [`GateHooks`].

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::rate::{Admission, RateWindows, Window};
use super::stats::StatsCell;
use crate::faults::{Fault, Faults};
use crate::server::DropConnection;

/// What a CRM module decides at the gate: how it names groups, reads credentials and
/// shapes its error answers and rate-limit headers.
pub trait GateHooks: Send + Sync {
    /// The path prefix of the API (`/api/v1`), stripped before routes and groups are read.
    fn api_prefix(&self) -> &str;
    /// The caller's credential, or `None` to answer 401.
    fn credential(&self, req: &Request) -> Option<String>;
    /// The endpoint group of a request (the module's own reading).
    fn group(&self, method: &str, path: &str) -> String;
    /// The windows a group is charged to.
    fn windows(&self, group: &str) -> Vec<Window>;
    /// Whose allowance a request of `group` made with credential `cred` is counted against:
    /// by default the credential's own; a CRM whose limit for a group is per account
    /// returns one key for every credential.
    fn rate_key(&self, cred: &str, _group: &str) -> String {
        cred.to_string()
    }
    /// The 401 answer.
    fn unauthorized(&self) -> Response;
    /// The 429 answer for an exhausted window.
    fn too_many(&self, admission: &Admission, group: &str) -> Response;
    /// The answer to an injected [`Fault::RateLimit`] on a request of `group`, charged to
    /// `windows`: by default [`Self::too_many`] for the first window, as if it were spent.
    /// A CRM whose spent-window answer is not a passing rate limit (Salesforce's daily
    /// quota) answers with the passing one it has instead.
    fn injected_limit(&self, group: &str, windows: &[Window]) -> Response {
        let (limit, window) = windows
            .first()
            .map_or((0, 1.0), |w| (w.limit, w.length.as_secs_f64()));
        let injected = Admission {
            allowed: false,
            limit,
            remaining: 0,
            reset: 1.0,
            window,
        };
        self.too_many(&injected, group)
    }
    /// An injected 500 or 503.
    fn server_error(&self, status: u16) -> Response;
    /// Adds the rate-limit headers to an admitted answer.
    fn rate_headers(&self, resp: &mut Response, admission: &Admission);
}

/// The gate's state: rate counters, faults and statistics.
#[derive(Debug, Default)]
pub struct Gate {
    /// The rate counters.
    pub windows: RateWindows,
    /// The faults to inject.
    pub faults: std::sync::Mutex<Faults>,
    /// The request log and counters.
    pub stats: StatsCell,
}

impl Gate {
    /// A gate injecting `faults` from the start.
    pub fn new(faults: Faults) -> Self {
        Self {
            windows: RateWindows::new(),
            faults: std::sync::Mutex::new(faults),
            stats: StatsCell::default(),
        }
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// A copy of the faults.
    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs one request through the gate and, if admitted, its handler.
    pub async fn pass(&self, hooks: &dyn GateHooks, req: Request, next: Next) -> Response {
        let method = req.method().as_str().to_string();
        let full = req.uri().path();
        let path = full
            .strip_prefix(hooks.api_prefix())
            .unwrap_or(full)
            .to_string();
        let group = hooks.group(&method, &path);
        let log = |resp: Response| {
            let dropped = resp.extensions().get::<DropConnection>().is_some();
            let status = if dropped { 0 } else { resp.status().as_u16() };
            self.stats.log(&method, &path, &group, status);
            resp
        };
        let Some(cred) = hooks.credential(&req) else {
            return log(hooks.unauthorized());
        };
        let (fault, latency) = {
            let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
            (
                faults.pick_for(&method, &path, fastrand::f64()),
                faults.latency_ms,
            )
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let windows = hooks.windows(&group);
        // An injected failure is answered here, before the rate windows admit (and count)
        // the request: it stands for a refusal at the CRM's edge (a rate limiter, a load
        // balancer, a dropped connection) that never reached the API handling, and
        // counting, calls, so it uses none of the caller's allowance (a daily quota such
        // as Salesforce's included). `ProcessedThenDrop` was served, and is counted.
        match fault {
            Some(Fault::RateLimit) => return log(hooks.injected_limit(&group, &windows)),
            Some(Fault::ServerError) => return log(hooks.server_error(500)),
            Some(Fault::Unavailable) => return log(hooks.server_error(503)),
            Some(Fault::Drop) => {
                let mut r = hooks.server_error(500);
                r.extensions_mut().insert(DropConnection);
                return log(r);
            }
            Some(Fault::ProcessedThenDrop | Fault::Pass) | None => {}
        }
        let admission = self
            .windows
            .admit(&hooks.rate_key(&cred, &group), &group, &windows);
        if !admission.allowed {
            return log(hooks.too_many(&admission, &group));
        }
        let mut resp = next.run(req).await;
        hooks.rate_headers(&mut resp, &admission);
        if fault == Some(Fault::ProcessedThenDrop) {
            resp.extensions_mut().insert(DropConnection);
        }
        log(resp)
    }
}
