//! Executes [`ApiRequest`]s: auth, rate budgets, retries and error mapping in one place.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::Auth;
use super::rate::{Quota, RateBudgets, RateInfo};
use super::retry::{self, Decision, Outcome, RetryPolicy};
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
}

/// Builds a [`Transport`].
pub struct TransportBuilder {
    base_url: String,
    auth: Auth,
    dialect: Arc<dyn Dialect>,
    quota: Quota,
    retry: RetryPolicy,
    timeout: Duration,
    user_agent: String,
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

    /// Sets the starting budget of every endpoint group.
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
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
        let base_url = format!("{}/", self.base_url.trim_end_matches('/'));
        reqwest::Url::parse(&base_url)
            .map_err(|e| Error::config(format!("invalid base URL {base_url:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .user_agent(self.user_agent)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::config(format!("cannot build HTTP client: {e}")))?;
        let scope = format!("{}|{base_url}", self.dialect.crm());
        let budgets = RateBudgets::shared(&self.auth.fingerprint(&scope), self.quota);
        Ok(Transport {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth: self.auth,
                dialect: self.dialect,
                budgets,
                retry: self.retry,
                timeout: self.timeout,
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
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            user_agent: concat!("crmkit/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// The base URL requests are relative to (always ends in `/`).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
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
        let budget = inner.budgets.group(&inner.dialect.endpoint_group(req));
        let url = format!("{}{}", inner.base_url, req.path.trim_start_matches('/'));
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            budget.acquire().await;
            let mut builder = inner
                .http
                .request(req.method.clone(), &url)
                .timeout(inner.timeout)
                .header(reqwest::header::ACCEPT, "application/json");
            if !req.query.is_empty() {
                builder = builder.query(&req.query);
            }
            builder = match &req.body {
                Body::Empty => builder,
                Body::Json(v) => builder.json(v),
                Body::Form(f) => builder.form(f),
            };
            let (builder, generation) = inner
                .auth
                .apply(builder)
                .await
                .map_err(|e| self.fail(req, e))?;
            let (outcome, hint, failure) = match builder.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => {
                            let body = body.to_vec();
                            let info = inner.dialect.rate_info(status, &headers, &body);
                            if let Some(info) = info {
                                budget.observe(info);
                            }
                            tracing::debug!(
                                request = %req.describe(),
                                status,
                                attempt,
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
                                    (&inner.auth, generation)
                            {
                                refreshed = true;
                                src.invalidate(generation).await;
                                continue;
                            }
                            let hint = info
                                .and_then(|i| i.reset)
                                .filter(|_| status == 429)
                                .or_else(|| retry_after(&headers));
                            if status == 429 {
                                budget.pause(hint.unwrap_or(Duration::from_secs(2)));
                            }
                            let err = inner.dialect.error(status, &headers, &body);
                            let err = match hint {
                                Some(h) => err.with_retry_after(h),
                                None => err,
                            };
                            (Outcome::Status(status), hint, err.with_status(status))
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
            let decision = retry::decide(
                &inner.retry,
                outcome,
                req.repeat_safe,
                hint,
                attempt,
                fastrand::f64(),
            );
            match decision {
                Decision::Retry(wait) => {
                    tracing::debug!(request = %req.describe(), ?outcome, attempt, wait_ms = wait.as_millis() as u64, "Retrying request.");
                    if outcome != Outcome::Status(429) {
                        tokio::time::sleep(wait).await;
                    }
                    attempt += 1;
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
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}
