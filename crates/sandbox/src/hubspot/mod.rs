//! An emulator of the HubSpot API, serving at the root of its port like `api.hubapi.com`.
//!
//! It serves the CRM v3 objects (contacts, companies, deals, notes, calls, tasks, meetings,
//! emails; addressed by plural or singular name or by objectTypeId such as `0-1`, `0-2`,
//! `0-3`): read one, list, create, patch, archive, batch read/create/update/upsert/archive
//! and search; merges and GDPR deletes; associations v4 (default and labelled, batch);
//! the default deal pipeline; property definitions (v3, with custom properties, and the
//! older `/properties/v2/{object}/properties`); owners; webhook settings and subscriptions
//! with batched, signed deliveries; OAuth 2.0 tokens at `/oauth/v1/token`; private-app
//! token scopes at `POST /oauth/v2/private-apps/get/access-token-info`; and it plugs into
//! the shared gate for credentials, rate windows and faults. Admin endpoints live under
//! `/_sandbox/`:
//!
//! | endpoint | what it does |
//! |---|---|
//! | `GET /_sandbox/stats`, `POST /_sandbox/stats/reset` | request log and counters |
//! | `GET`/`PUT /_sandbox/faults` | read or set the [`Faults`] (optionally for one route) |
//! | `POST /_sandbox/oauth/code` | issue an authorization code to exchange |
//! | `POST /_sandbox/oauth/expire` | expire every access token now |
//! | `POST /_sandbox/hubspot/restore` | restore an archived record (`{"objectType": "contacts", "id": "…"}`), as from HubSpot's recycle bin |
//!
//! What it honours (each rule cites its source where it is implemented):
//!
//! - Status codes: 201 on create and batch create, 200 on read, list, patch, batch read,
//!   update and upsert, 204 on archive and batch archive, 207 when some batch inputs fail
//!   (`numErrors`, `errors[]`), 400 for a batch of more than 100 inputs, 404 for a missing
//!   record, 409 for a second contact with the same email ("Contact already exists. Existing
//!   ID: N") and for a second live record with the value of a custom unique property; a
//!   batch naming one record twice is refused whole with a 400 ("Duplicate IDs found in
//!   batch input"), and a batch create holding an existing contact's email with the 409 of
//!   the first one, writing nothing. Every JSON answer carries `Content-Type: application/json`; errors carry
//!   HubSpot's body (`status`, `message`, `correlationId`, `category`, `errors`).
//! - Properties: every value is a string; writing a property the type does not know (or a
//!   read-only one such as `hs_object_id`, `hs_merged_object_ids` or a deal's
//!   `hs_deal_stage_probability`, which follows its `dealstage`) is a 400
//!   `VALIDATION_ERROR`; an empty string clears a value. The default properties
//!   integrations use exist (contacts' `lifecyclestage`, `associatedcompanyid`, `company`,
//!   `jobtitle`, `phone`, `website`…; companies' `domain`, `website`, `industry`,
//!   `lifecyclestage`…; deals' `deal_currency_code`, `closedate`, `hubspot_owner_id`…). `hs_object_id`, `createdate` (`hs_createdate` on engagements),
//!   `lastmodifieddate` (contacts) or `hs_lastmodifieddate` (others), `createdAt`,
//!   `updatedAt` and `archived` are maintained; `propertiesWithHistory` returns each change,
//!   newest first. Reads take `properties`, `propertiesWithHistory`, `associations`,
//!   `archived` (a query parameter, batch read included) and `idProperty`: the id,
//!   contacts' `email`, or any custom property created with `hasUniqueValue: true` (batch
//!   read, update and upsert take it too).
//! - Associations: a primary association (contact → company 1, deal → company 5) comes with
//!   the unlabelled one and is listed with the label `Primary`; `batch/labels/archive`
//!   removes only the given types, except that the unlabelled one takes every label with it.
//! - Merges: the winner keeps its id and lists the other in `hs_merged_object_ids`; the
//!   merged-away id is in no listing (not even the archived one) and reads answer it with
//!   the winner.
//! - Lists: `limit` defaults to 10 and is capped at 100; `after` continues from
//!   `paging.next.after`, which is absent on the last page.
//! - Search: groups OR-ed, filters AND-ed, the thirteen operators; at most 5 groups, 6
//!   filters per group and 18 in all; one sort; `limit` ≤ 200; `after` is an offset and one
//!   at or beyond 10,000 is a 400; `total` counts every match. Its own window: 5 requests
//!   per second per account, shared by every token.
//! - Rate limits per token: a rolling ten-second window (100 by default, or 190 via
//!   [`HubSpotSandbox::burst_limit`]) and a daily one (250,000 by default), reported in
//!   `X-HubSpot-RateLimit-Max`, `-Remaining`, `-Interval-Milliseconds`, `-Daily` and
//!   `-Daily-Remaining`; a 429 names its `policyName` (`TEN_SECONDLY_ROLLING`, `DAILY`, or
//!   `SECONDLY` for search).
//! - Auth: any non-empty Bearer token unless tokens are configured, then only those (and
//!   OAuth access tokens it issued); anything else is a 401 `INVALID_AUTHENTICATION`.
//!   Developer APIs (webhooks) also take `hapikey=`.
//! - Restore: an archived record comes back with its id, properties and associations,
//!   a new modified time and a `{type}.restore` event, via the admin endpoint or
//!   [`RunningHubSpot::restore`] (HubSpot restores from the recycle bin in its UI within
//!   90 days and documents no API for it; source at `Data::restore`).
//! - Webhooks: the events of one request (`{type}.creation`, `.propertyChange`,
//!   `.deletion`, `.restore`, `.merge`, `.privacyDeletion`) go to the app's `targetUrl` as one JSON array
//!   (up to 100 events), signed with `X-HubSpot-Signature-v3` + `X-HubSpot-Request-Timestamp`
//!   ([`sign_v3`]) and `X-HubSpot-Signature` v1 ([`sign_v1`]) using the OAuth client secret,
//!   and retried with a doubling delay.
//! - Faults (besides 429, 5xx, drops and latency): `shuffle_batch_results` answers batch
//!   endpoints with their results out of input order, as HubSpot may.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use crmkit_sandbox::hubspot::HubSpotSandbox;
//! let sandbox = HubSpotSandbox::builder().seed(7).companies(50).start().await?;
//! println!("HubSpot API at {}", sandbox.base_url());
//! # Ok(()) }
//! ```

mod api_error;
mod associations;
mod batch;
mod data;
mod dispatch;
mod gate;
mod kinds;
mod merge;
mod oauth;
mod objects;
mod owners;
mod pipelines;
mod properties;
mod search;
mod seed;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::json;
use tokio::sync::mpsc;

use crate::faults::Faults;
use crate::shared::admin::{self, HasGate};
use crate::shared::gate::Gate;
use crate::shared::listen::Listening;
pub use crate::shared::stats::{RequestLog, Stats};
pub use oauth::DEFAULT_SCOPES;
pub use webhooks::{sign_v1, sign_v3};

use data::Data;
use kinds::TYPES;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accepted Bearer tokens; any non-empty token when empty.
    pub tokens: Vec<String>,
    /// Scopes of private-app tokens, as `access-token-info` reports them; a token not
    /// listed here has [`DEFAULT_SCOPES`].
    pub token_scopes: Vec<(String, Vec<String>)>,
    /// Requests per token in one burst window (100 for Free/Starter and OAuth apps, 190 for
    /// Professional/Enterprise private apps; developers.hubspot.com/docs/guides/apps/api-usage/usage-details).
    pub burst_limit: u32,
    /// The rolling burst window (10 s like the real API; scale it down for fast tests).
    pub burst_window: Duration,
    /// Requests per token per day (250,000 on the smallest tier, same source).
    pub daily_limit: u32,
    /// Search requests per second for the whole account, whatever the token (5; "The search
    /// endpoints are rate limited to five requests per second per account",
    /// developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm).
    pub search_limit: u32,
    /// OAuth client id and secret accepted at `/oauth/v1/token`.
    pub oauth_client: (String, String),
    /// Lifetime of issued access tokens (1,800 s as HubSpot's token responses show).
    pub token_ttl: Duration,
    /// The app id webhooks are managed under (`/webhooks/v3/{appId}/…`) and sent from.
    pub app_id: u64,
    /// The account id events carry as `portalId`.
    pub portal_id: u64,
    /// Developer API key accepted as `hapikey=`; any non-empty one when `None`.
    pub hapikey: Option<String>,
    /// First delay between webhook delivery attempts; it doubles each time.
    pub webhook_retry_base: Duration,
    /// Webhook delivery attempts before giving up (HubSpot makes up to 10).
    pub webhook_attempts: u32,
    /// Seed of the generated world.
    pub seed: u64,
    /// How many world companies to generate (HubSpot holds about 70% of them).
    pub companies: usize,
    /// Faults to inject from the start.
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            token_scopes: Vec::new(),
            burst_limit: 100,
            burst_window: Duration::from_secs(10),
            daily_limit: 250_000,
            search_limit: 5,
            oauth_client: ("sandbox-client".into(), "sandbox-secret".into()),
            token_ttl: Duration::from_secs(1800),
            app_id: 1,
            portal_id: 62515,
            hapikey: None,
            webhook_retry_base: Duration::from_secs(1),
            webhook_attempts: 10,
            seed: 1,
            companies: 0,
            faults: Faults::default(),
        }
    }
}

pub(crate) struct State {
    config: Config,
    data: RwLock<Data>,
    gate: Gate,
    oauth: Mutex<oauth::OAuth>,
    hooks: Mutex<webhooks::Hooks>,
    events: mpsc::UnboundedSender<serde_json::Value>,
}

impl State {
    fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl HasGate for State {
    fn gate(&self) -> &Gate {
        &self.gate
    }
}

/// Builds and starts a HubSpot emulator.
#[derive(Debug, Clone, Default)]
pub struct HubSpotSandbox {
    config: Config,
    addr: Option<SocketAddr>,
}

impl HubSpotSandbox {
    /// Starts from the defaults (real limits, no seed data, any token accepted).
    pub fn builder() -> Self {
        Self::default()
    }

    /// Uses `config` as a whole.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Seeds the world from `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Generates a world of `n` companies and seeds the ones HubSpot holds, with their
    /// contacts and deals.
    pub fn companies(mut self, n: usize) -> Self {
        self.config.companies = n;
        self
    }

    /// Accepts only these Bearer tokens (and OAuth tokens it issues).
    pub fn tokens<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config
            .tokens
            .extend(tokens.into_iter().map(Into::into));
        self
    }

    /// Accepts the private-app token `token` and grants it only `scopes` (reported by
    /// `POST /oauth/v2/private-apps/get/access-token-info`).
    pub fn token_with_scopes<I, S>(mut self, token: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let token = token.into();
        self.config.tokens.push(token.clone());
        self.config
            .token_scopes
            .push((token, scopes.into_iter().map(Into::into).collect()));
        self
    }

    /// Sets the burst window: `limit` requests per token in each rolling `window`.
    pub fn burst_limit(mut self, limit: u32, window: Duration) -> Self {
        self.config.burst_limit = limit;
        self.config.burst_window = window;
        self
    }

    /// Sets the daily request budget per token.
    pub fn daily_limit(mut self, limit: u32) -> Self {
        self.config.daily_limit = limit;
        self
    }

    /// Sets the search requests allowed per token per second.
    pub fn search_limit(mut self, limit: u32) -> Self {
        self.config.search_limit = limit;
        self
    }

    /// Sets the webhook retry schedule.
    pub fn webhook_retry(mut self, base: Duration, attempts: u32) -> Self {
        self.config.webhook_retry_base = base;
        self.config.webhook_attempts = attempts;
        self
    }

    /// Injects `faults` from the start.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.config.faults = faults;
        self
    }

    /// Listens on `addr` instead of `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Seeds the data and starts serving.
    pub async fn start(self) -> std::io::Result<RunningHubSpot> {
        // Ids start high and seed-dependent, like HubSpot's large numeric ids.
        let mut data = Data::new(1_000 + (self.config.seed % 1_000) * 1_000);
        seed::seed(&mut data, self.config.seed, self.config.companies);
        // Seeding is history, not news: no webhooks for it.
        data.take_events();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            gate: Gate::new(self.config.faults.clone()),
            oauth: Mutex::new(oauth::OAuth::default()),
            config: self.config,
            data: RwLock::new(data),
            hooks: Mutex::new(webhooks::Hooks::default()),
            events: tx,
        });
        let deliverer = tokio::spawn(webhooks::run(state.clone(), rx));
        let served = Listening::start(router(state.clone()), self.addr, deliverer).await?;
        Ok(RunningHubSpot { served, state })
    }
}

/// A running HubSpot emulator; stops when dropped.
pub struct RunningHubSpot {
    served: Listening,
    state: Arc<State>,
}

impl std::fmt::Debug for RunningHubSpot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningHubSpot")
            .field("addr", &self.served.addr())
            .finish()
    }
}

impl RunningHubSpot {
    /// `http://127.0.0.1:PORT`, the API root to give a client (it stands for
    /// `https://api.hubapi.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.served.addr())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.served.addr()
    }

    /// A copy of the counters and request log.
    pub fn stats(&self) -> Stats {
        self.state.gate.stats.lock().clone()
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.state.gate.set_faults(faults);
    }

    /// Issues an OAuth authorization code, as if a user had approved the app.
    pub fn issue_oauth_code(&self) -> String {
        self.state
            .oauth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .issue_code()
    }

    /// Expires every access token now, so the next call answers 401.
    pub fn expire_tokens(&self) {
        self.state
            .oauth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expire_all();
    }

    /// Restores the archived record `id` of `object_type` (`contacts`, `0-2`…) as a user
    /// does from HubSpot's recycle bin: live again, modified now, a `.restore` event sent.
    /// Returns its new `updatedAt`.
    pub fn restore(&self, object_type: &str, id: &str) -> Result<String, String> {
        restore_now(&self.state, object_type, id)
    }

    /// How many live (not archived) records an object type holds (`contacts`, `0-2`…).
    pub fn count(&self, object_type: &str) -> usize {
        let data = self.state.read();
        kinds::ObjectType::parse(object_type)
            .and_then(|t| data.table(t))
            .map_or(0, |tb| {
                tb.iter().filter(|r| r["archived"] == json!(false)).count()
            })
    }
}

fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route("/crm/{*path}", any(dispatch::api))
        .route("/properties/{*path}", any(dispatch::api))
        .route("/webhooks/{*path}", any(dispatch::api))
        .fallback(dispatch::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::check,
        ));
    Router::new()
        .merge(admin::routes::<State>())
        .route("/oauth/v1/token", post(oauth::token))
        .route(
            "/oauth/v2/private-apps/get/access-token-info",
            post(oauth::private_app_token_info),
        )
        .route("/_sandbox/oauth/code", post(admin_code))
        .route("/_sandbox/oauth/expire", post(admin_expire))
        .route("/_sandbox/hubspot/restore", post(admin_restore))
        .merge(api)
        .with_state(state)
}

fn restore_now(state: &State, object_type: &str, id: &str) -> Result<String, String> {
    let t = kinds::ObjectType::parse(object_type)
        .ok_or_else(|| format!("unknown object type {object_type:?}"))?;
    let mut data = state.write();
    let row = data.restore(t, id).map_err(|e| e.message)?;
    for e in data.take_events() {
        let _ = state.events.send(e);
    }
    Ok(row["date_updated"].as_str().unwrap_or_default().to_string())
}

async fn admin_restore(
    AxState(state): AxState<Arc<State>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    let object_type = body["objectType"].as_str().unwrap_or_default();
    let id = body["id"].as_str().unwrap_or_default();
    match restore_now(&state, object_type, id) {
        Ok(updated) => axum::Json(json!({"restored": id, "updatedAt": updated})).into_response(),
        Err(message) => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"error": message})),
        )
            .into_response(),
    }
}

async fn admin_code(AxState(state): AxState<Arc<State>>) -> Response {
    let code = state
        .oauth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .issue_code();
    axum::Json(json!({"code": code})).into_response()
}

async fn admin_expire(AxState(state): AxState<Arc<State>>) -> Response {
    state
        .oauth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .expire_all();
    StatusCode::NO_CONTENT.into_response()
}
