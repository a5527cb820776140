//! The Salesforce client: configuration, credentials, the org's concurrency cap and the
//! describe cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmkit_core::http::auth::{Auth, TokenRefresher, TokenSource};
use crmkit_core::http::rate::Quota;
use crmkit_core::http::retry::RetryPolicy;
use crmkit_core::http::{ApiRequest, ApiResponse, Observer, Transport, TransportOptions};
use crmkit_core::{Crm, Error, ErrorKind, Result, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::auth::{self, ClientCredentials, JwtBearer, LOGIN_URL, RefreshToken};
use crate::dialect::{DEFAULT_DAILY_LIMIT, SalesforceDialect};
use crate::sobjects::{Describe, SObjects};

/// The REST API version used unless configured.
pub const DEFAULT_API_VERSION: &str = "59.0";
/// How many requests the clients of one org send at once. Salesforce allows 25 concurrent
/// long-running (over 20 s) requests per production org (Salesforce Developer Limits and
/// Allocations Quick Reference, "API Request Limits and Allocations").
pub const DEFAULT_MAX_CONCURRENCY: usize = 25;
/// From how many records a large write goes through Bulk API 2.0 instead of sObject
/// collections.
pub const DEFAULT_BULK_THRESHOLD: usize = 2_000;

/// `value` if it can go in a URL path as one segment: not empty, no path, query, fragment or
/// percent sign, no whitespace. Object names, ids and field names go through it.
pub(crate) fn path_segment<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty()
        || value.contains(['/', '?', '#', '%', '\\'])
        || value.contains(char::is_whitespace)
        || value == "."
        || value == ".."
    {
        return Err(Error::new(
            ErrorKind::Validation,
            format!("{value:?} is not a valid {what}"),
        )
        .with_crm(Crm::Salesforce));
    }
    Ok(value)
}

/// Percent-encodes `value` as one path segment (external id values may hold anything).
pub(crate) fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The concurrency caps of the orgs clients of this process talk to, by org key: clients
/// built apart for one org share one cap.
fn org_permits(key: &str, size: usize) -> Arc<Semaphore> {
    static ORGS: std::sync::OnceLock<Mutex<HashMap<String, std::sync::Weak<Semaphore>>>> =
        std::sync::OnceLock::new();
    let mut orgs = ORGS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    orgs.retain(|_, w| w.strong_count() > 0);
    if let Some(s) = orgs.get(key).and_then(std::sync::Weak::upgrade) {
        return s;
    }
    let s = Arc::new(Semaphore::new(size));
    orgs.insert(key.to_string(), Arc::downgrade(&s));
    s
}

/// How the client authenticates.
#[derive(Clone)]
enum Credentials {
    Token(SecretString),
    Refresher(Arc<dyn TokenRefresher>),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    instance_url: Option<String>,
    login_url: String,
    api_version: String,
    credentials: Option<Credentials>,
    daily_limit: u32,
    quota: Option<Quota>,
    transport: TransportOptions,
    max_concurrency: usize,
    bulk_threshold: usize,
    /// What identifies the org before a token names its instance.
    org_hint: Option<String>,
}

impl ClientBuilder {
    /// The org's instance or My Domain URL (`https://acme.my.salesforce.com`, or a sandbox's
    /// `http://127.0.0.1:8080`). Needed with a static access token; with OAuth flows the
    /// token's `instance_url` is used once the policy accepted it.
    pub fn instance_url(mut self, url: impl Into<String>) -> Self {
        self.instance_url = Some(url.into().trim().to_string());
        self
    }

    /// The login URL whose token endpoint the OAuth flows use (default
    /// `https://login.salesforce.com`; `https://test.salesforce.com` for sandboxes).
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = url.into().trim().trim_end_matches('/').to_string();
        self
    }

    /// The REST API version, such as `59.0` (the default) or `v61.0`.
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into().trim().trim_start_matches('v').to_string();
        self
    }

    /// Authenticates with an access token obtained elsewhere (no refresh).
    pub fn access_token(mut self, token: SecretString) -> Self {
        self.credentials = Some(Credentials::Token(token));
        self
    }

    /// Authenticates with the JWT bearer flow.
    pub fn jwt(mut self, flow: JwtBearer) -> Self {
        self.org_hint = Some(flow.org_hint());
        self.credentials = Some(Credentials::Refresher(Arc::new(flow)));
        self
    }

    /// Authenticates with a refresh token.
    pub fn refresh_token(mut self, flow: RefreshToken) -> Self {
        self.org_hint = Some(flow.org_hint());
        self.credentials = Some(Credentials::Refresher(Arc::new(flow)));
        self
    }

    /// Authenticates with the client-credentials flow.
    pub fn client_credentials(mut self, flow: ClientCredentials) -> Self {
        self.org_hint = Some(flow.org_hint());
        self.credentials = Some(Credentials::Refresher(Arc::new(flow)));
        self
    }

    /// Authenticates with any token refresher.
    pub fn refresher(mut self, refresher: Arc<dyn TokenRefresher>) -> Self {
        self.credentials = Some(Credentials::Refresher(refresher));
        self
    }

    /// The daily API allowance assumed until `Sforce-Limit-Info` says the real one.
    pub fn daily_limit(mut self, limit: u32) -> Self {
        self.daily_limit = limit.max(1);
        self
    }

    /// Paces requests to at most this quota (Salesforce itself has no per-second limit).
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.transport.retry = Some(retry);
        self
    }

    /// Sets the per-attempt timeout (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.transport.timeout = Some(timeout);
        self
    }

    /// Tells `observer` about admissions and retries.
    pub fn observer(mut self, observer: Observer) -> Self {
        self.transport.observer = Some(observer);
        self
    }

    /// At most this many requests in flight at once for the org (default 25). Every client
    /// of this process for the same org (the same instance URL or, without one, the same
    /// login URL, app and user) shares one cap; the first client built sets its size.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// From how many records large writes use Bulk API 2.0 (default 2,000).
    pub fn bulk_threshold(mut self, n: usize) -> Self {
        self.bulk_threshold = n.max(1);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let credentials = self.credentials.ok_or_else(|| {
            Error::config(
                "no Salesforce credentials: set SF_CLIENT_ID, SF_USERNAME and SF_PRIVATE_KEY_PATH \
                 (JWT bearer), SF_REFRESH_TOKEN, or SF_ACCESS_TOKEN with SF_INSTANCE_URL",
            )
            .with_crm(Crm::Salesforce)
        })?;
        if self.api_version.is_empty()
            || !self
                .api_version
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err(Error::config(format!(
                "{:?} is not an API version such as 59.0",
                self.api_version
            ))
            .with_crm(Crm::Salesforce));
        }
        let mut trusted = vec![self.login_url.clone()];
        trusted.extend(self.instance_url.clone());
        let (auth, base) = match credentials {
            Credentials::Token(token) => {
                let instance = self.instance_url.clone().ok_or_else(|| {
                    Error::config("an access token needs the instance URL (SF_INSTANCE_URL)")
                        .with_crm(Crm::Salesforce)
                })?;
                let origin = auth::check_instance_url(&instance, &trusted)
                    .map_err(|e| Error::config(e.message()).with_crm(Crm::Salesforce))?;
                (
                    Auth::Bearer(token),
                    auth::rest_root(&origin, &self.api_version),
                )
            }
            Credentials::Refresher(r) => {
                // Until a token names its instance, requests would go to the configured one.
                let base = self.instance_url.clone().unwrap_or(self.login_url.clone());
                (
                    Auth::OAuth(TokenSource::new(None, r)),
                    auth::rest_root(&base, &self.api_version),
                )
            }
        };
        let org = match (&self.instance_url, &self.org_hint) {
            (Some(i), _) => format!("instance|{}", i.trim_end_matches('/')),
            (None, Some(h)) => format!("login|{h}"),
            (None, None) => format!("login|{}", self.login_url),
        };
        let permits = org_permits(&org, self.max_concurrency);
        let dialect = SalesforceDialect::new(self.daily_limit, self.quota.is_some());
        let mut t = Transport::builder(base, Arc::new(dialect))
            .auth(auth)
            .instance_url_policy(auth::instance_url_policy(trusted, self.api_version.clone()));
        if let Some(q) = self.quota {
            t = t.quota(q);
        }
        let t = self.transport.apply(t);
        Ok(Client {
            inner: Arc::new(Inner {
                transport: t.build()?,
                api_version: self.api_version,
                permits,
                describes: Mutex::new(HashMap::new()),
                bulk_threshold: self.bulk_threshold,
            }),
        })
    }
}

struct Inner {
    transport: Transport,
    api_version: String,
    permits: Arc<Semaphore>,
    describes: Mutex<HashMap<String, Arc<Describe>>>,
    bulk_threshold: usize,
}

/// A Salesforce REST API client. Cheap to clone; clones share connections, the daily
/// budget, the concurrency cap and the describe cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.inner.transport)
            .field("api_version", &self.inner.api_version)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            instance_url: None,
            login_url: LOGIN_URL.to_string(),
            api_version: DEFAULT_API_VERSION.to_string(),
            credentials: None,
            daily_limit: DEFAULT_DAILY_LIMIT,
            quota: None,
            transport: TransportOptions::default(),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            bulk_threshold: DEFAULT_BULK_THRESHOLD,
            org_hint: None,
        }
    }

    /// A client from the environment: `SF_CLIENT_ID`, `SF_USERNAME` and
    /// `SF_PRIVATE_KEY_PATH` for the JWT bearer flow; or `SF_CLIENT_ID`, `SF_CLIENT_SECRET`
    /// and `SF_REFRESH_TOKEN`; or `SF_CLIENT_ID` and `SF_CLIENT_SECRET` alone for client
    /// credentials (against `SF_INSTANCE_URL`); or `SF_ACCESS_TOKEN`. `SF_INSTANCE_URL`,
    /// `SF_LOGIN_URL` (default `https://login.salesforce.com`), `SF_JWT_AUDIENCE` (default
    /// from the login URL, [`crate::auth::default_audience`]) and `SF_API_VERSION` are
    /// optional.
    pub fn from_env() -> Result<Client> {
        ClientBuilder::from_env()?.build()
    }

    /// [`Self::from_env`] with the variables read through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Client> {
        ClientBuilder::from_vars(var)?.build()
    }
}

impl ClientBuilder {
    /// A builder configured from the environment as [`Client::from_env`] describes, to set
    /// more (an observer, a quota) before building.
    pub fn from_env() -> Result<ClientBuilder> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] with the variables read through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ClientBuilder> {
        let get = |n: &str| {
            var(n)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut b = Client::builder();
        if let Some(u) = get("SF_INSTANCE_URL") {
            b = b.instance_url(u);
        }
        if let Some(u) = get("SF_LOGIN_URL") {
            b = b.login_url(u);
        }
        if let Some(v) = get("SF_API_VERSION") {
            b = b.api_version(v);
        }
        let login = b.login_url.clone();
        let client_id = get("SF_CLIENT_ID");
        let secret = get("SF_CLIENT_SECRET").map(SecretString::from);
        b = match (
            client_id,
            get("SF_USERNAME"),
            get("SF_PRIVATE_KEY_PATH"),
            get("SF_REFRESH_TOKEN"),
        ) {
            (Some(id), Some(user), Some(path), _) => {
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    Error::config(format!("cannot read SF_PRIVATE_KEY_PATH {path:?}: {e}"))
                        .with_crm(Crm::Salesforce)
                })?;
                let mut flow = JwtBearer::new(id, user, &SecretString::from(pem), &login)?;
                if let Some(aud) = get("SF_JWT_AUDIENCE") {
                    flow = flow.audience(aud);
                }
                b.jwt(flow)
            }
            (Some(id), _, _, Some(rt)) => b.refresh_token(RefreshToken::new(
                id,
                secret,
                SecretString::from(rt),
                &login,
            )),
            (Some(id), _, _, None) if secret.is_some() => {
                let domain = b.instance_url.clone().unwrap_or(login);
                b.client_credentials(ClientCredentials::new(
                    id,
                    secret.unwrap_or_else(|| SecretString::from(String::new())),
                    &domain,
                ))
            }
            _ => match get("SF_ACCESS_TOKEN") {
                Some(t) => b.access_token(SecretString::from(t)),
                None => b,
            },
        };
        Ok(b)
    }
}

impl Client {
    /// The transport, for raw requests with budgets and retries.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// The REST API version in use (`59.0`).
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    /// From how many records large writes use Bulk API 2.0.
    pub fn bulk_threshold(&self) -> usize {
        self.inner.bulk_threshold
    }

    /// A path Salesforce returned (`/services/data/v59.0/query/01g…-2000`) relative to the
    /// REST root, so it goes through the transport to the same instance.
    pub(crate) fn relative(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if let Some(rest) = path.strip_prefix("services/data/v")
            && let Some((_, tail)) = rest.split_once('/')
        {
            return tail.to_string();
        }
        path.to_string()
    }

    /// Sends `req` within the org's concurrency cap.
    pub async fn send(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let _permit = self.inner.permits.acquire().await.map_err(|_| {
            Error::new(ErrorKind::Config, "the client was shut down").with_crm(Crm::Salesforce)
        })?;
        self.transport().send(req).await
    }

    /// Sends `req` and decodes the JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, req: &ApiRequest) -> Result<T> {
        let _permit = self.inner.permits.acquire().await.map_err(|_| {
            Error::new(ErrorKind::Config, "the client was shut down").with_crm(Crm::Salesforce)
        })?;
        self.transport().json(req).await
    }

    /// Sends any request and returns the JSON answer (`Value::Null` for an empty body): the
    /// escape hatch for endpoints without a typed method.
    pub async fn raw(&self, req: &ApiRequest) -> Result<Value> {
        let resp = self.send(req).await?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&resp.body)?)
    }

    /// Any sObject type by API name (`Account`, `Invoice__c`, `Foo__e`).
    pub fn sobject(&self, name: impl Into<String>) -> SObjects {
        SObjects::new(self.clone(), name.into())
    }

    /// The describe of `name`, read once per client and kept.
    pub(crate) fn cached_describe(&self, name: &str) -> Option<Arc<Describe>> {
        self.inner
            .describes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn store_describe(&self, name: &str, d: Arc<Describe>) {
        self.inner
            .describes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), d);
    }

    /// Forgets every cached describe (after fields were added to the org, say).
    pub fn clear_describe_cache(&self) {
        self.inner
            .describes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// `GET limits/`: the org's limits by name (`DailyApiRequests`: `Max`, `Remaining`).
    pub async fn limits(&self) -> Result<crate::sobjects::Limits> {
        self.json(&ApiRequest::get("limits/")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vars_picks_the_flow_and_needs_an_instance_for_a_bare_token() {
        let e = Client::from_vars(|_| None).expect_err("nothing set");
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = Client::from_vars(|n| (n == "SF_ACCESS_TOKEN").then(|| "00D!x".into()))
            .expect_err("no instance");
        assert_eq!(e.kind(), ErrorKind::Config);
        let c = Client::from_vars(|n| match n {
            "SF_ACCESS_TOKEN" => Some("00D!secret".into()),
            "SF_INSTANCE_URL" => Some("https://acme.my.salesforce.com".into()),
            "SF_API_VERSION" => Some("v61.0".into()),
            _ => None,
        })
        .expect("builds");
        assert_eq!(
            c.transport().base_url(),
            "https://acme.my.salesforce.com/services/data/v61.0/"
        );
        assert!(!format!("{c:?}").contains("secret"));
        let e = Client::from_vars(|n| match n {
            "SF_ACCESS_TOKEN" => Some("t".into()),
            "SF_INSTANCE_URL" => Some("http://10.1.2.3".into()),
            _ => None,
        })
        .expect_err("plain http elsewhere");
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn returned_paths_are_made_relative_to_the_rest_root() {
        let c = Client::builder()
            .access_token(SecretString::from("t"))
            .instance_url("http://127.0.0.1:9")
            .build()
            .expect("builds");
        assert_eq!(
            c.relative("/services/data/v26.0/query/01gD0000002HU6KIAW-2000"),
            "query/01gD0000002HU6KIAW-2000"
        );
        assert_eq!(c.relative("sobjects/Account"), "sobjects/Account");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert!(path_segment("object", "Account/../x").is_err());
    }
}
