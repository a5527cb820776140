//! The HubSpot client: configuration, credentials and the per-object handlers.

use std::sync::Arc;
use std::time::Duration;

use crmkit_core::http::auth::{Auth, TokenSource};
use crmkit_core::http::rate::Quota;
use crmkit_core::http::retry::RetryPolicy;
use crmkit_core::http::{ApiRequest, ApiResponse, Observer, Transport, TransportOptions};
use crmkit_core::{Crm, Error, ErrorKind, Result, SecretString};
use serde_json::Value;

use crate::auth::{OAuthApp, Refresher, TokenSet};
use crate::dialect::{DEFAULT_DAILY_LIMIT, DEFAULT_SEARCH_PER_SECOND, HubSpotDialect};
use crate::objects::{ObjectType, Objects};

/// The real API root.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com/";

/// The burst window HubSpot counts in (HubSpot API usage guidelines).
pub const BURST_WINDOW: Duration = Duration::from_secs(10);

/// The burst allowance of an account's API tier, per 10 seconds (HubSpot API usage
/// guidelines; the numbers change with plans and dates, so [`ClientBuilder::tier`] also takes
/// any other number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateTier {
    /// 100 requests per 10 s: Free and Starter accounts, and every OAuth app.
    Standard,
    /// 190 requests per 10 s: Professional and Enterprise private apps.
    Professional,
    /// Any other allowance per 10 s.
    Custom(u32),
}

impl RateTier {
    /// Requests per 10-second window.
    pub fn per_ten_seconds(self) -> u32 {
        match self {
            RateTier::Standard => 100,
            RateTier::Professional => 190,
            RateTier::Custom(n) => n.max(1),
        }
    }
}

/// `id` if it can go in a URL path as one segment: not empty, no path, query, fragment or
/// percent sign, no whitespace. Every id and type name the caller hands in goes through it.
pub(crate) fn path_segment<'a>(what: &str, id: &'a str) -> Result<&'a str> {
    if id.is_empty() || id.contains(['/', '?', '#', '%']) || id.contains(char::is_whitespace) {
        return Err(Error::new(
            ErrorKind::Validation,
            format!("{id:?} is not a valid {what}"),
        )
        .with_crm(Crm::HubSpot));
    }
    Ok(id)
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    auth: Option<Auth>,
    tier: RateTier,
    daily_limit: u32,
    search_per_second: u32,
    transport: TransportOptions,
}

impl ClientBuilder {
    /// Authenticates with a private-app access token (`Authorization: Bearer`).
    pub fn access_token(mut self, token: SecretString) -> Self {
        self.auth = Some(Auth::Bearer(token));
        self
    }

    /// Authenticates with OAuth: starts with `tokens` and refreshes through `app` ahead of
    /// expiry (once for many concurrent callers) and once after a 401.
    pub fn oauth(mut self, app: OAuthApp, tokens: TokenSet) -> Result<Self> {
        let refresh = tokens.refresh_token.clone().ok_or_else(|| {
            Error::config("the OAuth tokens have no refresh token").with_crm(Crm::HubSpot)
        })?;
        self.auth = Some(Auth::OAuth(TokenSource::new(
            Some(tokens.issued()),
            Refresher::new(app, refresh),
        )));
        Ok(self)
    }

    /// Points the client at another server root (a sandbox's `http://127.0.0.1:8080`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim().to_string();
        self
    }

    /// The account's burst allowance per 10 s (default [`RateTier::Standard`], 100). It is a
    /// ceiling: the server's headers may slow the client down, never speed it up beyond it.
    pub fn tier(mut self, tier: RateTier) -> Self {
        self.tier = tier;
        self
    }

    /// The daily quota (default 250,000).
    pub fn daily_limit(mut self, limit: u32) -> Self {
        self.daily_limit = limit.max(1);
        self
    }

    /// Searches per second (default 5, HubSpot's CRM search guide).
    pub fn search_per_second(mut self, limit: u32) -> Self {
        self.search_per_second = limit.max(1);
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

    /// Tells `observer` about admissions, rate-limit waits and retries.
    pub fn observer(mut self, observer: Observer) -> Self {
        self.transport.observer = Some(observer);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let auth = self.auth.ok_or_else(|| {
            Error::config("no HubSpot credentials: set HUBSPOT_ACCESS_TOKEN or configure OAuth")
                .with_crm(Crm::HubSpot)
        })?;
        let dialect = HubSpotDialect::new(self.daily_limit, self.search_per_second);
        let t = self.transport.apply(
            Transport::builder(self.base_url, Arc::new(dialect))
                .auth(auth)
                .quota(Quota::new(self.tier.per_ten_seconds(), BURST_WINDOW)),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                transport: t.build()?,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
}

/// A HubSpot API client. Cheap to clone; clones share connections and rate budgets.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Starts configuring a client for the real API.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            base_url: DEFAULT_BASE_URL.to_string(),
            auth: None,
            tier: RateTier::Standard,
            daily_limit: DEFAULT_DAILY_LIMIT,
            search_per_second: DEFAULT_SEARCH_PER_SECOND,
            transport: TransportOptions::default(),
        }
    }

    /// A client from `HUBSPOT_ACCESS_TOKEN` and, if set, `HUBSPOT_BASE_URL`.
    pub fn from_env() -> Result<Client> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] with the variables read through `var`.
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Client> {
        let token = var("HUBSPOT_ACCESS_TOKEN")
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                Error::config("HUBSPOT_ACCESS_TOKEN is not set").with_crm(Crm::HubSpot)
            })?;
        let mut b = Client::builder().access_token(SecretString::from(token.trim().to_string()));
        if let Some(url) = var("HUBSPOT_BASE_URL").filter(|u| !u.trim().is_empty()) {
            b = b.base_url(url);
        }
        b.build()
    }

    /// The transport, for raw requests with budgets and retries.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// Sends `req` through the transport.
    pub(crate) async fn send(&self, req: &ApiRequest) -> Result<ApiResponse> {
        self.transport().send(req).await
    }

    /// Sends `req` and decodes the JSON answer.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(&self, req: &ApiRequest) -> Result<T> {
        self.transport().json(req).await
    }

    /// Sends any request and returns the JSON answer (`Value::Null` for an empty body).
    pub async fn raw(&self, req: &ApiRequest) -> Result<Value> {
        let resp = self.send(req).await?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&resp.body)?)
    }

    /// Any object type, by name (`contacts`, `contact`, `p_my_object`) or id (`0-1`).
    pub fn objects(&self, object_type: impl Into<ObjectType>) -> Objects {
        Objects::new(self.clone(), object_type.into())
    }

    /// Contacts (`0-1`).
    pub fn contacts(&self) -> Objects {
        self.objects(ObjectType::Contacts)
    }

    /// Companies (`0-2`).
    pub fn companies(&self) -> Objects {
        self.objects(ObjectType::Companies)
    }

    /// Deals (`0-3`).
    pub fn deals(&self) -> Objects {
        self.objects(ObjectType::Deals)
    }

    /// Notes.
    pub fn notes(&self) -> Objects {
        self.objects(ObjectType::Notes)
    }

    /// Calls.
    pub fn calls(&self) -> Objects {
        self.objects(ObjectType::Calls)
    }

    /// Tasks.
    pub fn tasks(&self) -> Objects {
        self.objects(ObjectType::Tasks)
    }

    /// Meetings.
    pub fn meetings(&self) -> Objects {
        self.objects(ObjectType::Meetings)
    }

    /// Emails (the engagement).
    pub fn emails(&self) -> Objects {
        self.objects(ObjectType::Emails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_change_the_url_are_refused() {
        assert_eq!(path_segment("id", "512").expect("ok"), "512");
        for bad in ["", "a/b", "a?x=1", "a#f", "a b", "a%2F"] {
            let e = path_segment("id", bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Validation, "{bad:?}");
        }
    }

    #[test]
    fn from_env_needs_a_token_and_takes_the_base_url() {
        let e = Client::from_vars(|_| None).expect_err("no token");
        assert_eq!(e.kind(), ErrorKind::Config);
        let c = Client::from_vars(|n| match n {
            "HUBSPOT_ACCESS_TOKEN" => Some("pat-na1-secret".into()),
            "HUBSPOT_BASE_URL" => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .expect("builds");
        assert_eq!(c.transport().base_url(), "http://127.0.0.1:9/");
        assert!(!format!("{c:?}").contains("pat-na1-secret"));
        let d = Client::from_vars(|n| (n == "HUBSPOT_ACCESS_TOKEN").then(|| "t".into()))
            .expect("builds");
        assert_eq!(d.transport().base_url(), DEFAULT_BASE_URL);
    }

    #[test]
    fn tiers() {
        assert_eq!(RateTier::Standard.per_ten_seconds(), 100);
        assert_eq!(RateTier::Professional.per_ten_seconds(), 190);
        assert_eq!(RateTier::Custom(0).per_ten_seconds(), 1);
    }
}
