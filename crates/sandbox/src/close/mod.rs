//! An emulator of the Close API (`/api/v1/`), faithful to the recorded real exchanges and
//! the documented contract.
//!
//! It serves leads (with nested contacts), contacts, opportunities, activities, tasks, lead
//! and opportunity statuses, pipelines, custom fields and their schemas, users, webhooks, the
//! event log, Advanced Filtering and OAuth 2.0 tokens; enforces rate limits per endpoint
//! group with Close's headers and 429 bodies; delivers signed webhooks with retries; and can
//! inject faults. Admin endpoints live under `/_sandbox/`:
//!
//! | endpoint | what it does |
//! |---|---|
//! | `GET /_sandbox/stats`, `POST /_sandbox/stats/reset` | request log and counters |
//! | `GET`/`PUT /_sandbox/faults` | read or set the [`Faults`] (optionally for one route) |
//! | `POST /_sandbox/oauth/code` | issue an authorization code to exchange |
//! | `POST /_sandbox/oauth/expire` | expire every access token now |
//!
//! What it honours, per Close's spec and docs (each rule cites its source where it is
//! implemented):
//!
//! - `GET /lead/` takes `_limit`, `_skip`, `_fields` and `query=` (the text search language,
//!   e.g. `sort:updated date_updated > "2024-01-01" date_updated <= "2024-06-01"`,
//!   `name:acme`, `status:"Potential"`; a syntax error is a 400). `GET /contact/` adds
//!   `lead_id`. Opportunities, tasks and activities take the filters their
//!   close-openapi.yml entry lists (field filters, date ranges, `_order_by`); every other
//!   parameter, including documented ones the sandbox does not model (`_group_by`,
//!   `query` on opportunities, `view`, `thread_emails`), is ignored, never a filter that
//!   matches nothing. Opportunity lists carry the documented aggregates over all matches.
//! - A `_limit` above a collection's maximum answers 400 "The limit you set is larger than
//!   the maximum limit for this resource (max_limit = N)." ("You will get a 400 response
//!   with an appropriate message if you exceed it", developer.close.com/api/overview/pagination;
//!   the maxima, leads and contacts 200, opportunities 250, tasks 1,000, activities 100,
//!   are page sizes known to work, not documented maxima). A `_skip` above its ceiling
//!   (leads and contacts 10,000, the sandbox's choice; opportunities, tasks and activities
//!   250,000; [`Config::max_skip`] overrides all) answers 400 "The skip you set is larger
//!   than the maximum skip for this resource (max_skip = N). Please refine your search
//!   query."
//! - `POST /data/search/` returns `{"__object_type", "id"}` per result unless `_fields`
//!   names fields per object type (any other `_fields` shape is a 400); its `_limit` is
//!   clamped to 200, unlike list endpoints; the cursor resumes where the last page ended and
//!   is a 400 under another sort; a sort without `field.field_name` is a 400.
//! - `GET /event/` accepts only the filter combinations the spec lists (plus
//!   `date_updated__gte/gt/lte/lt`), caps `_limit` at 50, answers newest first, pages with
//!   `_cursor` / `cursor_next` / `cursor_previous`; delete events carry `"data": null` and
//!   the whole prior object in `previous_data` (a lead's with its nested contacts,
//!   opportunities and tasks); deleting a lead also logs a `deleted` event for each of its
//!   contacts, opportunities, tasks and activities, as Close does; the events of one request
//!   share its `request_id`.
//! - `POST /activity/meeting/` is refused; `GET /activity/?id__in=a,b` finds any type.
//! - A POST or PUT stores only the fields Close documents for the collection (and defined
//!   `custom.cf_…` fields); other keys are dropped, as Close ignores them. A refused write
//!   leaves no row and no event behind.
//! - PUT is a partial update on every collection.
//! - Answers carry `RateLimit: limit=N, remaining=N, reset=N` (integer reset); a 429 adds
//!   `Retry-After` and `RateLimit-Reset`.

mod api_error;
mod data;
mod dispatch;
mod events;
mod gate;
mod kinds;
mod listing;
mod oauth;
mod params;
mod render;
mod search;
mod seed;
mod text_query;
mod validate;
mod webhooks;
mod writable;
mod writes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::faults::Faults;
use crate::shared::admin::{self, HasGate};
use crate::shared::gate::Gate;
use crate::shared::listen::Listening;
pub use crate::shared::stats::{RequestLog, Stats};
pub use seed::SeedIds;
pub use webhooks::sign;

use data::Data;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accepted API keys; any non-empty key when empty.
    pub api_keys: Vec<String>,
    /// Requests allowed per endpoint group and key in one window.
    pub rate_limit: u32,
    /// The rate-limit window (10 s like the real API; scale it down for fast tests).
    pub rate_window: Duration,
    /// Overrides every collection's largest `_limit` (a larger one answers 400); each
    /// collection has its own when `None`.
    pub max_limit: Option<usize>,
    /// Overrides every collection's largest `_skip` (beyond it Close answers 400); each
    /// collection has its own when `None`.
    pub max_skip: Option<usize>,
    /// OAuth client id and secret accepted at `/oauth2/token/`.
    pub oauth_client: (String, String),
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// First delay between webhook delivery attempts; it doubles each time.
    pub webhook_retry_base: Duration,
    /// Webhook delivery attempts before giving up.
    pub webhook_attempts: u32,
    /// Seed of all generated ids and data.
    pub seed: u64,
    /// How many leads to seed.
    pub leads: usize,
    /// Faults to inject from the start.
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            rate_limit: 100,
            rate_window: Duration::from_secs(10),
            max_limit: None,
            max_skip: None,
            oauth_client: ("sandbox-client".into(), "sandbox-secret".into()),
            token_ttl: Duration::from_secs(3600),
            webhook_retry_base: Duration::from_secs(1),
            webhook_attempts: 8,
            seed: 1,
            leads: 0,
            faults: Faults::default(),
        }
    }
}

pub(crate) struct State {
    pub config: Config,
    pub data: RwLock<Data>,
    pub gate: Gate,
    pub oauth: Mutex<oauth::OAuth>,
    pub events: mpsc::UnboundedSender<Value>,
    pub seed_ids: SeedIds,
}

impl State {
    pub(crate) fn stats(&self) -> MutexGuard<'_, Stats> {
        self.gate.stats.lock()
    }

    /// The data for a change.
    fn data(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The data for a read; reads run side by side.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds and starts a Close emulator.
#[derive(Debug, Clone, Default)]
pub struct CloseSandbox {
    config: Config,
    addr: Option<SocketAddr>,
}

impl CloseSandbox {
    /// Starts from the defaults (real limits, no seed data, any key accepted).
    pub fn builder() -> Self {
        Self::default()
    }

    /// Uses `config` as a whole.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Seeds ids and data from `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Seeds `n` leads with contacts, opportunities and activities.
    pub fn leads(mut self, n: usize) -> Self {
        self.config.leads = n;
        self
    }

    /// Accepts `key` (once any key is given, only given keys are accepted).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_keys.push(key.into());
        self
    }

    /// Allows `limit` requests per endpoint group in each `window`.
    pub fn rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.config.rate_limit = limit;
        self.config.rate_window = window;
        self
    }

    /// Sets the `_skip` ceiling of every collection.
    pub fn max_skip(mut self, max: usize) -> Self {
        self.config.max_skip = Some(max);
        self
    }

    /// Injects `faults` from the start.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.config.faults = faults;
        self
    }

    /// Sets the webhook retry schedule.
    pub fn webhook_retry(mut self, base: Duration, attempts: u32) -> Self {
        self.config.webhook_retry_base = base;
        self.config.webhook_attempts = attempts;
        self
    }

    /// Listens on `addr` instead of `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Seeds the data and starts serving.
    pub async fn start(self) -> std::io::Result<RunningClose> {
        let mut data = Data::new(self.config.seed);
        let seed_ids = seed::seed(&mut data, self.config.seed, self.config.leads);
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            gate: Gate::new(self.config.faults.clone()),
            oauth: Mutex::new(oauth::OAuth::default()),
            config: self.config,
            data: RwLock::new(data),
            events: tx,
            seed_ids,
        });
        let deliverer = tokio::spawn(webhooks::run(state.clone(), rx));
        let served = Listening::start(router(state.clone()), self.addr, deliverer).await?;
        Ok(RunningClose { served, state })
    }
}

/// A running Close emulator; stops when dropped.
pub struct RunningClose {
    served: Listening,
    state: Arc<State>,
}

impl std::fmt::Debug for RunningClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningClose")
            .field("addr", &self.served.addr())
            .finish()
    }
}

impl RunningClose {
    /// `http://127.0.0.1:PORT`, where `/oauth2/token/` and `/_sandbox/` live.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.served.addr())
    }

    /// `http://127.0.0.1:PORT/api/v1/`, the API root to give a client.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1/", self.base_url())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.served.addr()
    }

    /// A copy of the counters and request log.
    pub fn stats(&self) -> Stats {
        self.state.stats().clone()
    }

    /// Clears the counters and request log.
    pub fn reset_stats(&self) {
        *self.state.stats() = Stats::default();
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

    /// Ids of the seeded configuration (custom fields, pipeline).
    pub fn seed_ids(&self) -> &SeedIds {
        &self.state.seed_ids
    }

    /// Rewrites every event in the log with `f`, for tests of event logs Close may give but
    /// the sandbox does not write by itself: Close may fold several actions on one object into
    /// one event ("existing events can be updated if multiple actions to the same object
    /// happen in a short time frame", developer.close.com/api/resources/events), and does not
    /// document every event a merge logs. The log keeps its order; `f` may edit any field.
    pub fn edit_events(&self, mut f: impl FnMut(&mut Value)) {
        for (_, event) in self.state.data().events.iter_mut() {
            f(event);
        }
    }

    /// How many records a collection holds (`lead`, `contact`, `opportunity`, `activity`…).
    pub fn count(&self, collection: &str) -> usize {
        let data = self.state.read();
        data.tables
            .iter()
            .find(|(name, _)| **name == collection)
            .map(|(_, t)| t.len())
            .unwrap_or(0)
    }
}

fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route("/api/v1/{*path}", any(dispatch::api))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::check,
        ));
    Router::new()
        .merge(api)
        .merge(admin::routes::<State>())
        .route("/oauth2/token/", post(oauth::token))
        .route("/_sandbox/oauth/code", post(admin_code))
        .route("/_sandbox/oauth/expire", post(admin_expire))
        .with_state(state)
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

impl HasGate for State {
    fn gate(&self) -> &Gate {
        &self.gate
    }
}
