//! The Close client: configuration, credentials and the per-resource handlers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crmkit_core::http::auth::{Auth, TokenSource};
use crmkit_core::http::rate::Quota;
use crmkit_core::http::retry::RetryPolicy;
use crmkit_core::http::{ApiRequest, ApiResponse, Transport, TransportBuilder};
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

/// The item collection of an activity `_type` (`Call` → `activity/call/`).
pub(crate) fn activity_collection(kind: &str) -> Option<String> {
    let seg = kind.to_ascii_lowercase();
    ACTIVITY_TYPES
        .contains(&seg.as_str())
        .then(|| format!("activity/{seg}/"))
}

/// `id` if it can be a Close object id in a URL path or an `id__in` list: not empty, no
/// path, query, fragment or list separators, no whitespace. The one check every id the
/// caller hands in goes through.
pub(crate) fn close_id(id: &str) -> Result<&str> {
    if id.is_empty() || id.contains([',', '/', '?', '#', '%']) || id.contains(char::is_whitespace) {
        return Err(Error::new(
            ErrorKind::Validation,
            format!("{id:?} is not a valid Close id"),
        )
        .with_crm(Crm::Close));
    }
    Ok(id)
}

/// The API root for `url`: a server root such as the sandbox's `http://127.0.0.1:8080`
/// gets `/api/v1/` added; an API root keeps its path and gains a trailing slash.
pub(crate) fn api_root(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    let after_scheme = trimmed.find("://").map_or(0, |i| i + 3);
    if trimmed[after_scheme..].contains('/') {
        format!("{trimmed}/")
    } else {
        format!("{trimmed}/api/v1/")
    }
}

/// The real API root.
pub const DEFAULT_BASE_URL: &str = "https://api.close.com/api/v1/";

/// Builds a [`Client`]. Transport settings (base URL, budget, retries, timeout) go straight
/// to the core [`crmkit_core::http::TransportBuilder`]; only what is Close's lives here.
pub struct ClientBuilder {
    transport: TransportBuilder,
    auth: Option<Auth>,
    max_skip: usize,
    max_skip_by_resource: BTreeMap<String, usize>,
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

    /// Points the client at another server: an API root (`…/api/v1/`) or a server root such
    /// as the sandbox's `http://127.0.0.1:8080`, to which `/api/v1/` is added.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.transport = self.transport.base_url(api_root(&url.into()));
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

    /// The largest `_skip` the server accepts on any resource; listings start a new
    /// `date_created` slice before reaching it (default 10,000). A listing that meets a lower
    /// ceiling learns it from the server's 400 and slices there.
    pub fn max_skip(mut self, max: usize) -> Self {
        self.max_skip = max.max(1);
        self
    }

    /// The largest `_skip` of one resource (`opportunity/`, `activity/email/`…): Close's
    /// ceilings differ per resource (developer.close.com/topics/pagination).
    pub fn max_skip_for(mut self, resource: &str, max: usize) -> Self {
        self.max_skip_by_resource
            .insert(resource.trim_matches('/').to_string(), max.max(1));
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
                max_skip_by_resource: self.max_skip_by_resource,
                answered: AtomicBool::new(false),
                custom_ids: std::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    max_skip: usize,
    max_skip_by_resource: BTreeMap<String, usize>,
    /// Whether any call has succeeded: until one has, a bare 404 hints at the base URL.
    answered: AtomicBool,
    /// Custom field ids per object type, with when they were read (see
    /// [`Client::custom_field_ids`]).
    custom_ids: std::sync::Mutex<BTreeMap<String, (std::time::Instant, Vec<String>)>>,
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
            max_skip_by_resource: BTreeMap::new(),
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

    /// The `_skip` ceiling of the collection at `path`.
    pub(crate) fn max_skip(&self, path: &str) -> usize {
        self.inner
            .max_skip_by_resource
            .get(path.trim_matches('/'))
            .copied()
            .unwrap_or(self.inner.max_skip)
    }

    /// Sends `req` through the transport, remembering whether the server ever answered.
    pub(crate) async fn send(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let r = self.transport().send(req).await;
        self.observe(r)
    }

    /// Sends `req` and decodes the JSON answer.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(&self, req: &ApiRequest) -> Result<T> {
        let r = self.transport().json(req).await;
        self.observe(r)
    }

    fn observe<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => {
                self.inner.answered.store(true, Ordering::Relaxed);
                Ok(v)
            }
            // Close answers a missing object with a JSON error body; a bare 404 before any
            // call worked means the requests go somewhere that is not the Close API.
            Err(e)
                if e.status() == Some(404)
                    && e.body().is_none()
                    && !self.inner.answered.load(Ordering::Relaxed) =>
            {
                let mut hint = Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{}; no call to {} has worked yet, so the base URL is probably wrong \
                         (use the API root {DEFAULT_BASE_URL} or a sandbox root such as http://127.0.0.1:8080)",
                        e.message(),
                        self.transport().base_url()
                    ),
                )
                .with_crm(Crm::Close)
                .with_status(404);
                if let Some(r) = e.record() {
                    hint = hint.with_record(r);
                }
                Err(hint)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends any request and returns the JSON answer (`Value::Null` for an empty body).
    pub async fn raw(&self, req: &ApiRequest) -> Result<Value> {
        let resp = self.send(req).await?;
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

    /// Finds activity `id` when its type is unknown, in one call (`GET /activity/?id__in=`
    /// finds any type; close-openapi.yml /activity/). Returns the typed item collection
    /// (`activity/call/`) and the activity as Close sent it.
    pub async fn find_activity(&self, id: &str) -> Result<(String, Value)> {
        let not_found = || {
            Error::new(ErrorKind::NotFound, "no activity has this id")
                .with_crm(Crm::Close)
                .with_record(format!("activity {id}"))
        };
        let id = close_id(id).map_err(|e| e.with_record(format!("activity {id}")))?;
        let page: crate::models::ListPage<Value> = self
            .json(&ApiRequest::get("activity/").query("id__in", id))
            .await?;
        let found = page
            .data
            .into_iter()
            .find(|a| a["id"] == id)
            .ok_or_else(not_found)?;
        let kind = found["_type"].as_str().unwrap_or_default();
        let collection = activity_collection(kind).ok_or_else(|| {
            Error::new(
                ErrorKind::Validation,
                format!("activity type {kind:?} has no item endpoint crmkit knows"),
            )
            .with_crm(Crm::Close)
            .with_record(format!("activity {id}"))
        })?;
        Ok((collection, found))
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
            .json(&ApiRequest::get(format!("custom_field_schema/{object}/")))
            .await?;
        Ok(s.fields)
    }

    /// The ids (`cf_…`) of `object`'s custom fields, read from its schema at most once a
    /// minute. Searches name custom fields one by one (`custom.cf_…`), the form Close's
    /// search `_fields` is known to take; a field created since is seen within a minute.
    pub(crate) async fn custom_field_ids(&self, object: &str) -> Result<Vec<String>> {
        const FRESH: Duration = Duration::from_secs(60);
        {
            let cache = self
                .inner
                .custom_ids
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((at, ids)) = cache.get(object)
                && at.elapsed() < FRESH
            {
                return Ok(ids.clone());
            }
        }
        let ids: Vec<String> = self
            .custom_field_schema(object)
            .await?
            .into_iter()
            .map(|f| f.id)
            .collect();
        self.inner
            .custom_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(object.to_string(), (std::time::Instant::now(), ids.clone()));
        Ok(ids)
    }

    /// Users of the organization.
    pub fn users(&self) -> Resource<User> {
        Resource::new(self.clone(), "user/")
    }

    /// The user the credentials belong to (`/me/`): a cheap call to check credentials.
    pub async fn me(&self) -> Result<User> {
        self.json(&ApiRequest::get("me/")).await
    }

    /// Webhook subscriptions.
    pub fn webhooks(&self) -> Resource<WebhookSubscription> {
        Resource::new(self.clone(), "webhook/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_ids_that_could_change_the_url_are_refused() {
        assert_eq!(close_id("lead_abc123").unwrap(), "lead_abc123");
        for bad in ["", "a/b", "a?x=1", "a#f", "a,b", "a b", "a%2F"] {
            let e = close_id(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation, "{bad:?}");
        }
    }

    #[test]
    fn server_roots_gain_the_api_path() {
        assert_eq!(
            api_root("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/api/v1/"
        );
        assert_eq!(
            api_root("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/api/v1/"
        );
        assert_eq!(api_root(" https://api.close.com/api/v1 "), DEFAULT_BASE_URL);
        assert_eq!(api_root(DEFAULT_BASE_URL), DEFAULT_BASE_URL);
    }
}
