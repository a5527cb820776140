//! Executes [`ApiRequest`]s: auth, rate budgets, retries and error mapping in one place.
//!
//! Each attempt gets the credential ready first (an OAuth refresh happens here), then takes a
//! slot in every budget the request is charged to ([`Dialect::budgets`]), then sends. A wait
//! for budget longer than the retry policy's `max_hint` fails the request at once with
//! [`ErrorKind::RateLimited`] instead of sleeping; a used-up daily quota fails with
//! [`ErrorKind::QuotaExhausted`].
//!
//! After a 429 (or another 4xx refusal the dialect's error reads as
//! [`ErrorKind::RateLimited`], as Salesforce's 403 for too many concurrent requests) the
//! transport pauses the budget the answer speaks about
//! ([`Dialect::limited_budget`], by default the request's first) for the longer of the
//! rate-limit `reset` and `Retry-After`, and never for less than the retry policy's backoff,
//! so a `Retry-After: 0` cannot spend every retry at once. A hint longer than `max_hint`
//! fails the request with the server's message attached. When the dialect maps an answer
//! to [`ErrorKind::QuotaExhausted`], that budget is marked used up, so later requests fail
//! locally instead of being sent to be refused. A 5xx is never taken as a rate limit,
//! whatever its body reads: the server may have processed the request before failing, so
//! it is a [`ErrorKind::Transient`] failure, retried only when the request is repeat-safe.
//!
//! When an OAuth token comes with an instance URL (Salesforce), the transport sends to it,
//! but only through the CRM's [`TransportBuilder::instance_url_policy`], which validates it:
//! a token endpoint must not be able to send credentials anywhere it likes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::Auth;
use super::rate::{self, Budget, BudgetSpec, Quota, RateBudgets, RateInfo};
use super::retry::{self, Attempts, Decision, Outcome, RetryPolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Crm;

/// A request body.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// A JSON document.
    Json(Value),
    /// An `application/x-www-form-urlencoded` form.
    Form(Vec<(String, String)>),
    /// Text of another type, such as the CSV of a Salesforce Bulk API upload.
    Text {
        /// The `Content-Type`, e.g. `text/csv`.
        content_type: String,
        /// The text.
        text: String,
    },
}

/// One API call: method, path relative to the base URL, query and body.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The HTTP method.
    pub method: Method,
    /// Path below the client's base URL, e.g. `lead/lead_abc/`.
    pub path: String,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// Whether sending it twice does no harm even though the method is not idempotent
    /// (searches sent as POST, for example).
    pub repeat_safe: bool,
    /// Extra headers (never credentials: the transport adds those). An `Accept` here
    /// replaces the default `application/json`.
    pub headers: Vec<(String, String)>,
}

impl ApiRequest {
    /// A request with `method` to `path`.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        let repeat_safe = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::Empty,
            repeat_safe,
            headers: Vec::new(),
        }
    }

    /// A GET.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// A POST with a JSON body.
    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path).json(body)
    }

    /// A PUT with a JSON body.
    pub fn put(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::PUT, path).json(body)
    }

    /// A DELETE.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header (a CSV `Accept`, a query batch size).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Marks a non-idempotent request as safe to send again after a 5xx or timeout.
    pub fn repeat_safe(mut self) -> Self {
        self.repeat_safe = true;
        self
    }

    /// `METHOD /path`, for logs and error messages.
    pub fn describe(&self) -> String {
        format!("{} /{}", self.method, self.path.trim_start_matches('/'))
    }
}

/// A successful response.
#[derive(Debug)]
pub struct ApiResponse {
    /// The status (2xx).
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The server's clock from the `Date` header (RFC 9110 §6.6.1; whole seconds), so time
    /// bounds never depend on the client's clock. `None` without a valid header.
    pub fn server_date(&self) -> Option<DateTime<Utc>> {
        self.headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

/// What differs between CRMs at the HTTP level: how endpoints are grouped for rate limits,
/// how limit headers read, and how error bodies map to [`Error`].
pub trait Dialect: Send + Sync + 'static {
    /// Which CRM this is.
    fn crm(&self) -> Crm;
    /// The rate-limit group a request counts against.
    fn endpoint_group(&self, req: &ApiRequest) -> String;
    /// What the response's headers (or body) say about the budget.
    fn rate_info(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Option<RateInfo>;
    /// Maps a non-2xx response to an error; the transport adds status, CRM and request.
    fn error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error;
    /// Every budget a request is charged to. The first is the one the response's limit
    /// headers ([`Self::rate_info`]) speak about, and 429s unless
    /// [`Self::limited_budget`] names another. The default is the request's
    /// endpoint group with the transport's configured quota; a CRM with several limits adds
    /// more (a burst window, a per-second search limit, a daily quota).
    fn budgets(&self, req: &ApiRequest) -> Vec<BudgetSpec> {
        vec![BudgetSpec::rolling(self.endpoint_group(req))]
    }
    /// What the response says about budgets other than the first, by budget name (HubSpot's
    /// daily remaining, for example). Names the request was not charged to are ignored.
    fn budget_infos(
        &self,
        _status: u16,
        _headers: &HeaderMap,
        _body: &[u8],
    ) -> Vec<(String, RateInfo)> {
        Vec::new()
    }
    /// The budget a 429, or an error [`Self::error`] maps to [`ErrorKind::QuotaExhausted`],
    /// speaks about, by name (HubSpot's 429 body names the policy that tripped). That budget
    /// is paused, or marked used up, instead of the request's first. The default, `None`,
    /// means the first; a name the request was not charged to also falls back to it.
    fn limited_budget(&self, _status: u16, _headers: &HeaderMap, _body: &[u8]) -> Option<String> {
        None
    }
}

/// Something the transport did, for progress displays and tests.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportEvent<'a> {
    /// Every budget admitted `request`; it leaves now.
    Admitted {
        /// The request.
        request: &'a ApiRequest,
        /// The instant the budgets counted it (the same in every budget).
        at: tokio::time::Instant,
    },
    /// `request` waits `wait` for room in `budget`.
    Waiting {
        /// The request.
        request: &'a ApiRequest,
        /// The budget it waits for.
        budget: &'a str,
        /// How long.
        wait: Duration,
    },
    /// `request` failed with `outcome` and is sent again after `wait` (after a 429, the
    /// budget's pause does the waiting, so every request of that budget waits too).
    Retrying {
        /// The request.
        request: &'a ApiRequest,
        /// What happened.
        outcome: Outcome,
        /// The backoff.
        wait: Duration,
    },
}

/// Receives [`TransportEvent`]s; called inline, so it must be quick.
pub type Observer = Arc<dyn Fn(&TransportEvent<'_>) + Send + Sync>;

/// Validates an instance URL that came with an OAuth token and returns the API root to send
/// to (it may append a path such as `/services/data/v61.0/`); an error fails the request.
pub type InstanceUrlPolicy = Arc<dyn Fn(&str) -> Result<String> + Send + Sync>;

/// Builds a [`Transport`].
pub struct TransportBuilder {
    base_url: String,
    auth: Auth,
    dialect: Arc<dyn Dialect>,
    quota: Quota,
    quota_configured: bool,
    retry: RetryPolicy,
    timeout: Duration,
    user_agent: String,
    instance_url_policy: Option<InstanceUrlPolicy>,
    observer: Option<Observer>,
}

/// The transport settings a client builder collects before it knows its base URL and
/// dialect (retries, timeout, observer); [`TransportOptions::apply`] hands the ones set to
/// the [`TransportBuilder`] it then makes, leaving the transport's defaults for the rest.
#[derive(Default)]
pub struct TransportOptions {
    /// The retry policy, if set.
    pub retry: Option<RetryPolicy>,
    /// The per-attempt timeout, if set.
    pub timeout: Option<Duration>,
    /// Who hears about admissions, waits and retries, if anyone.
    pub observer: Option<Observer>,
}

impl TransportOptions {
    /// `builder` with every option that was set.
    pub fn apply(self, mut builder: TransportBuilder) -> TransportBuilder {
        if let Some(r) = self.retry {
            builder = builder.retry(r);
        }
        if let Some(d) = self.timeout {
            builder = builder.timeout(d);
        }
        if let Some(o) = self.observer {
            builder = builder.observer(o);
        }
        builder
    }
}

impl TransportBuilder {
    /// Sets the base URL requests are relative to.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets how requests authenticate.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the budget of every endpoint group. It is a ceiling: the server's headers may
    /// slow requests down further, never speed them up beyond it. Without it, the transport
    /// starts at the CRM's documented limit and follows what the server announces. Another
    /// client of the same credential and base URL shares the budgets; the slower of their
    /// configured quotas applies to both. A zero window is refused by [`Self::build`].
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self.quota_configured = true;
        self
    }

    /// Tells `observer` about admissions, rate-limit waits and retries.
    pub fn observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Follows the instance URL that comes with OAuth tokens, after `policy` validated it.
    /// Without a policy, the instance URL is ignored and the base URL stays put.
    pub fn instance_url_policy(mut self, policy: InstanceUrlPolicy) -> Self {
        self.instance_url_policy = Some(policy);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the `User-Agent`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Builds the transport. Clients with the same credential and base URL share budgets.
    pub fn build(self) -> Result<Transport> {
        if self.quota.window().is_zero() {
            return Err(Error::config(
                "the rate-limit window must be longer than zero",
            ));
        }
        let base_url = format!("{}/", self.base_url.trim_end_matches('/'));
        reqwest::Url::parse(&base_url)
            .map_err(|e| Error::config(format!("invalid base URL {base_url:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .user_agent(self.user_agent)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::config(format!("cannot build HTTP client: {e}")))?;
        let scope = format!("{}|{base_url}", self.dialect.crm());
        let budgets = RateBudgets::shared_configured(
            &self.auth.fingerprint(&scope),
            self.quota,
            self.quota_configured,
        );
        Ok(Transport {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth: self.auth,
                dialect: self.dialect,
                budgets,
                retry: self.retry,
                timeout: self.timeout,
                instance_url_policy: self.instance_url_policy,
                instance: std::sync::Mutex::new(None),
                observer: self.observer,
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    auth: Auth,
    dialect: Arc<dyn Dialect>,
    budgets: Arc<RateBudgets>,
    retry: RetryPolicy,
    timeout: Duration,
    instance_url_policy: Option<InstanceUrlPolicy>,
    /// The last instance URL seen and the API root the policy made of it.
    instance: std::sync::Mutex<Option<(String, String)>>,
    observer: Option<Observer>,
}

/// Sends requests to one CRM with one credential. Cheap to clone; clones share budgets.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("crm", &self.inner.dialect.crm())
            .field("base_url", &self.inner.base_url)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Starts a transport for `dialect` at `base_url`.
    pub fn builder(base_url: impl Into<String>, dialect: Arc<dyn Dialect>) -> TransportBuilder {
        TransportBuilder {
            base_url: base_url.into(),
            auth: Auth::None,
            dialect,
            quota: Quota::new(100, Duration::from_secs(10)),
            quota_configured: false,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            user_agent: concat!("crmkit/", env!("CARGO_PKG_VERSION")).to_string(),
            instance_url_policy: None,
            observer: None,
        }
    }

    /// The configured base URL (always ends in `/`); see [`Self::current_base_url`] for where
    /// requests go after an OAuth token named an instance URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Where requests go now: the validated instance URL of the current OAuth token, if the
    /// CRM set an [`TransportBuilder::instance_url_policy`] and a token named one, else the
    /// configured base URL.
    pub fn current_base_url(&self) -> String {
        self.inner
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, root)| root.clone())
            .unwrap_or_else(|| self.inner.base_url.clone())
    }

    fn emit(&self, event: &TransportEvent<'_>) {
        if let Some(o) = &self.inner.observer {
            o(event);
        }
    }

    /// The API root for a token's instance URL, validated once per distinct URL.
    fn root_for(&self, instance_url: Option<&str>) -> Result<String> {
        let inner = &self.inner;
        let (Some(policy), Some(raw)) = (&inner.instance_url_policy, instance_url) else {
            return Ok(inner.base_url.clone());
        };
        let mut cached = inner.instance.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, root)) = cached.as_ref()
            && seen == raw
        {
            return Ok(root.clone());
        }
        let root = policy(raw)?;
        let root = format!("{}/", root.trim_end_matches('/'));
        reqwest::Url::parse(&root)
            .map_err(|e| Error::config(format!("invalid instance URL {root:?}: {e}")))?;
        *cached = Some((raw.to_string(), root.clone()));
        Ok(root)
    }

    /// The budgets `req` is charged to, in name order so that two requests never wait on
    /// each other crosswise, and which of them is the primary one (the dialect's first).
    fn budgets_for(&self, req: &ApiRequest) -> (Vec<Arc<Budget>>, usize) {
        let mut specs = self.inner.dialect.budgets(req);
        if specs.is_empty() {
            specs.push(BudgetSpec::rolling(self.inner.dialect.endpoint_group(req)));
        }
        let primary = specs[0].name.clone();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        specs.dedup_by(|a, b| a.name == b.name);
        let index = specs.iter().position(|s| s.name == primary).unwrap_or(0);
        let budgets = specs.iter().map(|s| self.inner.budgets.budget(s)).collect();
        (budgets, index)
    }

    /// The CRM this transport talks to.
    pub fn crm(&self) -> Crm {
        self.inner.dialect.crm()
    }

    /// Sends `req` and decodes the JSON answer into `T`; a decode error names the JSON path.
    pub async fn json<T: DeserializeOwned>(&self, req: &ApiRequest) -> Result<T> {
        let resp = self.send(req).await?;
        decode(&resp.body).map_err(|e| self.fail(req, e))
    }

    fn fail(&self, req: &ApiRequest, e: Error) -> Error {
        let e = e.with_crm(self.crm());
        if e.record().is_some() {
            e
        } else {
            e.with_record(req.describe())
        }
    }

    /// Sends `req`, waiting for budget and retrying as the policy allows.
    pub async fn send(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let inner = &self.inner;
        let (budgets, primary) = self.budgets_for(req);
        let mut attempts = Attempts::default();
        let mut refreshed = false;
        loop {
            // The pause a 429 put on its budget, which does this request's waiting.
            let mut paused = None;
            // Token first: a slot is not held while the token endpoint answers.
            let credential = inner.auth.ready().await.map_err(|e| self.fail(req, e))?;
            let root = self
                .root_for(credential.instance_url.as_deref())
                .map_err(|e| self.fail(req, e))?;
            let url = format!("{root}{}", req.path.trim_start_matches('/'));
            let on_wait = |budget: &str, wait: Duration| {
                self.emit(&TransportEvent::Waiting {
                    request: req,
                    budget,
                    wait,
                });
            };
            let slot = rate::acquire_all_observed(&budgets, inner.retry.max_hint, &on_wait)
                .await
                .map_err(|e| self.fail(req, e))?;
            self.emit(&TransportEvent::Admitted {
                request: req,
                at: slot.at(),
            });
            let mut builder = inner
                .http
                .request(req.method.clone(), &url)
                .timeout(inner.timeout);
            if !req
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
            {
                builder = builder.header(reqwest::header::ACCEPT, "application/json");
            }
            for (k, v) in &req.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if !req.query.is_empty() {
                builder = builder.query(&req.query);
            }
            builder = match &req.body {
                Body::Empty => builder,
                Body::Json(v) => builder.json(v),
                Body::Form(f) => builder.form(f),
                Body::Text { content_type, text } => builder
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(text.clone()),
            };
            let builder = credential.apply(builder);
            let (outcome, hint, failure) = match builder.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => {
                            let body = body.to_vec();
                            let info = inner.dialect.rate_info(status, &headers, &body);
                            if let Some(info) = info {
                                budgets[primary].observe_after(info, &slot);
                            }
                            for (name, info) in inner.dialect.budget_infos(status, &headers, &body)
                            {
                                if let Some(b) = budgets.iter().find(|b| b.name() == name) {
                                    b.observe_after(info, &slot);
                                }
                            }
                            tracing::debug!(
                                request = %req.describe(),
                                status,
                                attempt = attempts.failed + attempts.rate_limited,
                                "Received response."
                            );
                            if (200..300).contains(&status) {
                                return Ok(ApiResponse {
                                    status,
                                    headers,
                                    body,
                                });
                            }
                            if status == 401
                                && !refreshed
                                && let (Auth::OAuth(src), Some(generation)) =
                                    (&inner.auth, credential.generation)
                            {
                                refreshed = true;
                                src.invalidate(generation);
                                continue;
                            }
                            // The longer of the two: a server may send a rate-limit reset
                            // and a larger explicit Retry-After together.
                            let reset = info.and_then(|i| i.reset).filter(|_| status == 429);
                            let hint = reset.max(retry_after(&headers));
                            let limited = inner
                                .dialect
                                .limited_budget(status, &headers, &body)
                                .and_then(|name| budgets.iter().find(|b| b.name() == name))
                                .unwrap_or(&budgets[primary]);
                            let err = inner.dialect.error(status, &headers, &body);
                            // A refusal the CRM's error says is a passing rate limit under
                            // another 4xx status (Salesforce's 403 for too many concurrent
                            // requests) is waited out and retried like a 429: a 4xx says
                            // the request was refused, not served. A 5xx says no such
                            // thing, whatever its body reads: the server may have done the
                            // work before failing, so it takes the 5xx path (retried only
                            // when repeat-safe) and is reported as the failure it is; a
                            // POST retried there could create the record twice.
                            let rate_limited = status == 429
                                || ((400..500).contains(&status)
                                    && err.kind() == ErrorKind::RateLimited);
                            let err = if status >= 500 && err.kind() == ErrorKind::RateLimited {
                                err.with_kind(ErrorKind::Transient)
                            } else {
                                err
                            };
                            if err.kind() == ErrorKind::QuotaExhausted {
                                // The dialect knows a quota is spent: no retry helps, and
                                // later requests fail here instead of being refused there.
                                limited.exhaust(err.retry_after().or(hint));
                                return Err(self.fail(req, err.with_status(status)));
                            }
                            if rate_limited {
                                if let Some(h) = hint.filter(|h| *h > inner.retry.max_hint) {
                                    limited.pause(h);
                                    let wait = Error::rate_limited_for(h, inner.retry.max_hint);
                                    let mut out = Error::new(
                                        ErrorKind::RateLimited,
                                        format!(
                                            "{}; the server said: {}",
                                            wait.message(),
                                            err.message()
                                        ),
                                    )
                                    .with_retry_after(h)
                                    .with_status(status);
                                    if let Some(b) = err.body() {
                                        out = out.with_body(b.clone());
                                    }
                                    return Err(self.fail(req, out));
                                }
                                // Never a zero pause: a `Retry-After: 0` or `reset=0` retried
                                // at once would spend every retry in a few milliseconds.
                                let pause = hint.unwrap_or_default().max(retry::backoff(
                                    &inner.retry,
                                    attempts.rate_limited,
                                    fastrand::f64(),
                                ));
                                limited.pause(pause);
                                paused = Some(pause);
                            }
                            let err = match hint {
                                Some(h) => err.with_retry_after(h),
                                None => err,
                            };
                            let outcome = if rate_limited && status != 429 {
                                Outcome::Limited(status)
                            } else {
                                Outcome::Status(status)
                            };
                            (outcome, hint, err.with_status(status))
                        }
                        Err(e) => (
                            Outcome::Dropped,
                            None,
                            Error::new(
                                ErrorKind::Transient,
                                "the connection broke while reading the response",
                            )
                            .with_source(e.without_url()),
                        ),
                    }
                }
                Err(e) => {
                    let outcome = if e.is_timeout() {
                        Outcome::Timeout
                    } else if e.is_connect() {
                        Outcome::Connect
                    } else {
                        Outcome::Dropped
                    };
                    let what = match outcome {
                        Outcome::Timeout => "no answer before the timeout",
                        Outcome::Connect => "could not connect",
                        _ => "the connection broke before an answer came",
                    };
                    let err =
                        Error::new(ErrorKind::Transient, format!("{what}: {}", root_cause(&e)))
                            .with_source(e.without_url());
                    (outcome, None, err)
                }
            };
            let decision = retry::decide_counted(
                &inner.retry,
                outcome,
                req.repeat_safe,
                hint,
                attempts,
                fastrand::f64(),
            );
            match decision {
                Decision::Retry(wait) => {
                    let wait = paused.map_or(wait, |p| p.max(wait));
                    tracing::debug!(request = %req.describe(), ?outcome, ?attempts, wait_ms = wait.as_millis() as u64, "Retrying request.");
                    self.emit(&TransportEvent::Retrying {
                        request: req,
                        outcome,
                        wait,
                    });
                    // After a 429 the budget's pause does the waiting, for every task at once.
                    if !outcome.is_rate_limit() {
                        tokio::time::sleep(wait).await;
                    }
                    attempts.record(outcome);
                }
                Decision::GiveUp => return Err(self.fail(req, failure)),
            }
        }
    }
}

/// Decodes JSON, naming the path of the first mismatch.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        Error::bad_response(format!(
            "response does not match the expected shape at `{}`: {}",
            e.path(),
            e.inner()
        ))
    })
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Reads `Retry-After` in seconds (decimals tolerated); HTTP dates are not used by these CRMs.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    rate::secs_to_duration(secs)
}

#[cfg(test)]
mod tests;
