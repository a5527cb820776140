//! The Close client: configuration, credentials and the per-resource handlers.

use std::sync::Arc;
use std::time::Duration;

use crmkit_core::http::auth::{Auth, TokenSource};
use crmkit_core::http::rate::Quota;
use crmkit_core::http::retry::RetryPolicy;
use crmkit_core::http::{ApiRequest, Transport, TransportBuilder};
use crmkit_core::{Crm, Error, ErrorKind, Result, SecretString};
use serde_json::Value;

use crate::auth::{OAuthApp, RotatingRefresher, RotationHook, TokenSet};
use crate::dialect::CloseDialect;
use crate::models::{
    Activity, Contact, CustomField, Lead, Opportunity, Pipeline, Status, Task, User,
    WebhookSubscription,
};
use crate::resources::Resource;

/// The activity types with item endpoints (`activity/{type}/{id}/`).
pub const ACTIVITY_TYPES: [&str; 5] = ["note", "call", "email", "meeting", "sms"];

/// The real API root.
pub const DEFAULT_BASE_URL: &str = "https://api.close.com/api/v1/";

/// Builds a [`Client`]. Transport settings (base URL, budget, retries, timeout) go straight
/// to the core [`crmkit_core::http::TransportBuilder`]; only what is Close's lives here.
pub struct ClientBuilder {
    transport: TransportBuilder,
    auth: Option<Auth>,
    max_skip: usize,
}

impl ClientBuilder {
    /// Authenticates with an API key (HTTP Basic, key as user, empty password).
    pub fn api_key(mut self, key: SecretString) -> Self {
        self.auth = Some(Auth::Basic {
            user: key,
            password: None,
        });
        self
    }

    /// Authenticates with OAuth: starts with `tokens` and refreshes through `app`, keeping the
    /// rotated refresh token and passing each new one to `on_rotate`.
    pub fn oauth(
        mut self,
        app: OAuthApp,
        tokens: TokenSet,
        on_rotate: Option<RotationHook>,
    ) -> Result<Self> {
        let refresh = tokens.refresh_token.clone().ok_or_else(|| {
            Error::config("OAuth tokens have no refresh token; request the offline_access scope")
        })?;
        let refresher = Arc::new(RotatingRefresher::new(app, refresh, on_rotate));
        self.auth = Some(Auth::OAuth(TokenSource::new(
            Some(tokens.issued()),
            refresher,
        )));
        Ok(self)
    }

    /// Points the client at another API root, such as a sandbox's `…/api/v1/`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.transport = self.transport.base_url(url);
        self
    }

    /// Caps the budget per endpoint group. Without it the client starts at 100 requests per
    /// 10 s and follows the limit, window and remaining the server announces; with it, the
    /// server can slow the client down but never speed it up beyond this.
    pub fn rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.transport = self.transport.quota(Quota::new(limit, window));
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.transport = self.transport.retry(retry);
        self
    }

    /// Tells `observer` about admissions, rate-limit waits and retries (for progress
    /// displays).
    pub fn observer(mut self, observer: crmkit_core::http::Observer) -> Self {
        self.transport = self.transport.observer(observer);
        self
    }

    /// Sets the per-attempt timeout (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.transport = self.transport.timeout(timeout);
        self
    }

    /// The largest `_skip` the server accepts; listings start a new `date_created` slice
    /// before reaching it (default 10,000).
    pub fn max_skip(mut self, max: usize) -> Self {
        self.max_skip = max.max(1);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let auth = self.auth.ok_or_else(|| {
            Error::config("no Close credentials: set CLOSE_API_KEY or configure OAuth")
        })?;
        let transport = self.transport.auth(auth).build()?;
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                max_skip: self.max_skip,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    max_skip: usize,
}

/// A Close API client. Cheap to clone; clones share connections and rate budgets.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Starts configuring a client for the real API.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            // The core defaults (100 requests per 10 s, 60 s timeout) are Close's own.
            transport: Transport::builder(DEFAULT_BASE_URL, Arc::new(CloseDialect)),
            auth: None,
            max_skip: 10_000,
        }
    }

    /// A client from `CLOSE_API_KEY` and, if set, `CLOSE_BASE_URL`.
    pub fn from_env() -> Result<Client> {
        let key = std::env::var("CLOSE_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| Error::config("CLOSE_API_KEY is not set"))?;
        let mut b = Client::builder().api_key(SecretString::from(key));
        if let Ok(url) = std::env::var("CLOSE_BASE_URL")
            && !url.trim().is_empty()
        {
            b = b.base_url(url);
        }
        b.build()
    }

    /// The transport, for raw requests with budgets and retries.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub(crate) fn max_skip(&self) -> usize {
        self.inner.max_skip
    }

    /// Sends any request and returns the JSON answer (`Value::Null` for an empty body).
    pub async fn raw(&self, req: &ApiRequest) -> Result<Value> {
        let resp = self.transport().send(req).await?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&resp.body)?)
    }

    /// Any collection by path (`lead/`, `activity/sms/`…), decoded into `T`.
    pub fn resource<T: serde::de::DeserializeOwned>(&self, path: &str) -> Resource<T> {
        Resource::new(self.clone(), path)
    }

    /// Leads (`/lead/`).
    pub fn leads(&self) -> Resource<Lead> {
        Resource::new(self.clone(), "lead/")
    }

    /// Contacts (`/contact/`).
    pub fn contacts(&self) -> Resource<Contact> {
        Resource::new(self.clone(), "contact/")
    }

    /// Opportunities (`/opportunity/`).
    pub fn opportunities(&self) -> Resource<Opportunity> {
        Resource::new(self.clone(), "opportunity/")
    }

    /// All activities (`/activity/`), for listing; create through [`Self::activities_of`].
    pub fn activities(&self) -> Resource<Activity> {
        Resource::new(self.clone(), "activity/")
    }

    /// Activities of one type: `note`, `call`, `email`, `meeting`, `sms`.
    pub fn activities_of(&self, kind: &str) -> Resource<Activity> {
        Resource::new(
            self.clone(),
            format!("activity/{}/", kind.to_ascii_lowercase()),
        )
    }

    /// Finds activity `id` when its type is unknown: Close's activity ids do not say their
    /// type and its item endpoints are typed, so each type is tried in turn. Returns the
    /// typed collection (`activity/call/`) and the activity as Close sent it.
    pub async fn find_activity(&self, id: &str) -> Result<(String, Value)> {
        for kind in ACTIVITY_TYPES {
            let collection = format!("activity/{kind}/");
            match self
                .raw(&ApiRequest::get(format!("{collection}{id}/")))
                .await
            {
                Ok(v) => return Ok((collection, v)),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::NotFound,
            format!("no {} activity has this id", ACTIVITY_TYPES.join(", ")),
        )
        .with_crm(Crm::Close)
        .with_record(format!("activity {id}")))
    }

    /// Tasks (`/task/`).
    pub fn tasks(&self) -> Resource<Task> {
        Resource::new(self.clone(), "task/")
    }

    /// Lead statuses.
    pub fn lead_statuses(&self) -> Resource<Status> {
        Resource::new(self.clone(), "status/lead/")
    }

    /// Opportunity statuses.
    pub fn opportunity_statuses(&self) -> Resource<Status> {
        Resource::new(self.clone(), "status/opportunity/")
    }

    /// Pipelines.
    pub fn pipelines(&self) -> Resource<Pipeline> {
        Resource::new(self.clone(), "pipeline/")
    }

    /// Custom field definitions of `object`: `lead`, `contact`, `opportunity`, `activity`.
    pub fn custom_fields(&self, object: &str) -> Resource<CustomField> {
        Resource::new(self.clone(), format!("custom_field/{object}/"))
    }

    /// The custom field schema of `object` (`/custom_field_schema/{object}/`).
    pub async fn custom_field_schema(&self, object: &str) -> Result<Vec<CustomField>> {
        #[derive(serde::Deserialize)]
        struct Schema {
            fields: Vec<CustomField>,
        }
        let s: Schema = self
            .transport()
            .json(&ApiRequest::get(format!("custom_field_schema/{object}/")))
            .await?;
        Ok(s.fields)
    }

    /// Users of the organization.
    pub fn users(&self) -> Resource<User> {
        Resource::new(self.clone(), "user/")
    }

    /// The user the credentials belong to (`/me/`): a cheap call to check credentials.
    pub async fn me(&self) -> Result<User> {
        self.transport().json(&ApiRequest::get("me/")).await
    }

    /// Webhook subscriptions.
    pub fn webhooks(&self) -> Resource<WebhookSubscription> {
        Resource::new(self.clone(), "webhook/")
    }
}
