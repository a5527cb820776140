//! An emulator of a Salesforce org's REST API, serving at the root of its port like an
//! instance (`https://MyDomain.my.salesforce.com`): `/services/oauth2/token` (and
//! `revoke`, `userinfo`, the identity URL), SOAP `login` at `/services/Soap/u/{version}`,
//! and `/services/data/vXX.X/…` for any version.
//!
//! It serves the standard objects Account, Contact, Lead, Opportunity, Task and Event (and
//! read-only User for `OwnerId`), with their standard fields, required fields and
//! picklists; sObject create, read, update, delete and upsert by external id; describe
//! global and describe; SOQL `query` and `queryAll` with `nextRecordsUrl` paging; sObject
//! Collections, Composite and sObject Tree; Bulk API 2.0 ingest and query jobs over real
//! CSV; getUpdated and getDeleted; `/limits` and a daily request quota; Outbound Messages
//! (SOAP) to configured endpoints; and the shared gate's faults (a fault `route` names the
//! full path, `POST /services/data/v59.0/sobjects/Account`). Admin endpoints live under
//! `/_sandbox/` (`stats`, `stats/reset`, `faults`, and `POST /_sandbox/sessions/expire`).
//!
//! What it honours (each rule cites its public source where it is implemented):
//!
//! - Auth: lenient by default (any non-empty Bearer session; any non-empty client id,
//!   secret, username, password or refresh token; JWTs checked for form, RS256, `aud`,
//!   `exp` as a number or numeric string, and `sub`, signed by any key). Given an
//!   [`Auth`] (a certificate and the credentials to accept) it verifies the JWT signature
//!   against the certificate and refuses everything else with `invalid_grant` and friends;
//!   data calls then need a session it issued (or a configured one), else 401
//!   `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`.
//! - Records: 18-character ids with the object's key prefix (001 Account, 003 Contact, 00Q
//!   Lead, 006 Opportunity, 00T Task, 00U Event, 005 User); 15-character ids are accepted.
//!   `CreatedDate`, `LastModifiedDate`, `SystemModstamp`, `CreatedById`, `OwnerId` and
//!   `IsDeleted` are maintained; create answers 201 `{"id","success":true,"errors":[]}`,
//!   update and delete 204. Errors are Salesforce's array
//!   `[{"message","errorCode","fields"}]`: `REQUIRED_FIELD_MISSING`, `INVALID_FIELD`,
//!   `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST` (StageName, Lead and Task Status, Task
//!   Priority), `STRING_TOO_LONG`, `MALFORMED_ID`, `INVALID_CROSS_REFERENCE_KEY`,
//!   `NOT_FOUND`, `ENTITY_IS_DELETED`, `MALFORMED_QUERY`.
//! - SOQL: fields, relationship paths (`Account.Name`, `Owner.Name`), parent-child
//!   subqueries, WHERE with comparisons, `IN`/`NOT IN`, `LIKE`, `NOT`, `AND`, `OR`,
//!   semi-joins, date literals (`TODAY`, `LAST_N_DAYS:n`…), `ORDER BY`, `LIMIT`, `OFFSET`,
//!   `COUNT()`; pages of [`Config::page_size`] records (2,000 by default) continued by
//!   `nextRecordsUrl`, subquery pages of [`Config::subquery_page_size`] too.
//! - Limits: one org-wide daily quota ([`Config::daily_limit`]); every answer carries
//!   `Sforce-Limit-Info: api-usage=N/M`; beyond it 403 `REQUEST_LIMIT_EXCEEDED`.
//! - Composite: collections of at most 200 records answer a SaveResult per record
//!   (`statusCode` inside), `allOrNone` rolling all back with
//!   `ALL_OR_NONE_OPERATION_ROLLED_BACK`; composite takes 25 subrequests (5 queries at most)
//!   with `@{ref.path}` references and an `allOrNone` that also covers its collections;
//!   composite batch runs independent subrequests; trees are all-or-none (201 or 400).
//! - Bulk API 2.0: ingest jobs go `Open → UploadComplete → JobComplete` (or `Failed`,
//!   `Aborted`), results are CSV with `sf__Id`, `sf__Created` or `sf__Error`; query jobs
//!   answer CSV pages with `Sforce-Locator` (`null` on the last) and
//!   `Sforce-NumberOfRecords`.
//! - getUpdated and getDeleted take whole minutes (unless
//!   [`Config::replication_whole_minutes`] is off), a start more than a minute before the
//!   end, and at most 30 (getUpdated) or 15 (getDeleted) days back, else
//!   `INVALID_REPLICATION_DATE`; getDeleted's `earliestDateAvailable` is where its deletion
//!   log starts ([`RunningSalesforce::purge_deletions`] moves it).
//! - Outbound messages: creations and edits of a configured object are POSTed as SOAP
//!   `notifications` (up to 100) and retried with a doubling delay until the endpoint
//!   answers a `notificationsResponse` with `<Ack>true</Ack>`; deletions send nothing.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use crmkit_sandbox::salesforce::SalesforceSandbox;
//! let sandbox = SalesforceSandbox::builder().seed(7).companies(50).start().await?;
//! println!("Salesforce instance at {}", sandbox.instance_url());
//! # Ok(()) }
//! ```

mod api_error;
mod bulk;
mod composite;
mod data;
mod dispatch;
mod gate;
mod ids;
mod oauth;
mod outbound;
mod query;
mod schema;
mod seed;
mod soap;
mod soql;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::mpsc;

use crate::faults::Faults;
use crate::shared::admin::{self, HasGate};
use crate::shared::gate::Gate;
use crate::shared::listen::Listening;
pub use crate::shared::stats::{RequestLog, Stats};
pub use oauth::Auth;
pub use outbound::OutboundMessage;

use data::Data;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The credentials to accept; lenient when nothing is configured.
    pub auth: Auth,
    /// API requests per day for the whole org (15,000 for a Developer Edition org;
    /// developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm).
    pub daily_limit: u32,
    /// Records per query page (2,000 by default, the REST API's default batch size;
    /// developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm).
    pub page_size: usize,
    /// Records per Bulk 2.0 query results page when the request names no `maxRecords`
    /// (the real service picks a size by itself; jsforce reads a single page correctly).
    pub bulk_results_page: usize,
    /// Child records per subquery page before the subquery answers its own
    /// `nextRecordsUrl`.
    pub subquery_page_size: usize,
    /// Whether getUpdated and getDeleted take their span in whole minutes, as the real
    /// API does (seconds are ignored, so changes of the current minute show up only after
    /// it ends); turn off for fast tests.
    pub replication_whole_minutes: bool,
    /// Outbound messages: objects whose creations and edits are POSTed as SOAP.
    pub outbound: Vec<OutboundMessage>,
    /// First delay between outbound message attempts; it doubles after each failure.
    pub outbound_retry_base: Duration,
    /// The longest delay between attempts (about two hours on the real service;
    /// sforce_api_om_outboundmessaging_understanding.htm).
    pub outbound_retry_max: Duration,
    /// Attempts before a message is given up (the real service keeps trying for 24 hours).
    pub outbound_attempts: u32,
    /// Serve `https://` with this certificate and key instead of plain HTTP (for clients
    /// that build `https://` URLs themselves, such as simple-salesforce).
    pub tls: Option<Tls>,
    /// Seed of the generated world.
    pub seed: u64,
    /// How many world companies to generate (Salesforce holds about half of them).
    pub companies: usize,
    /// Faults to inject from the start.
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auth: Auth::default(),
            daily_limit: 15_000,
            page_size: 2_000,
            subquery_page_size: 200,
            bulk_results_page: 100_000,
            replication_whole_minutes: true,
            outbound: Vec::new(),
            outbound_retry_base: Duration::from_secs(15),
            outbound_retry_max: Duration::from_secs(2 * 3600),
            outbound_attempts: 20,
            tls: None,
            seed: 1,
            companies: 0,
            faults: Faults::default(),
        }
    }
}

/// A PEM certificate chain and its PEM private key.
#[derive(Clone)]
pub struct Tls {
    /// The certificate chain (PEM).
    pub cert_pem: String,
    /// The private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches logs.
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

pub(crate) struct State {
    config: Config,
    data: RwLock<Data>,
    gate: Gate,
    sessions: Mutex<oauth::Sessions>,
    cursors: Mutex<query::Cursors>,
    jobs: Mutex<bulk::Jobs>,
    outbound: mpsc::UnboundedSender<outbound::Pending>,
    notifications: AtomicU64,
    instance: OnceLock<String>,
}

impl State {
    fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        self.gate.stats.lock()
    }

    /// `https` when serving TLS, else `http`.
    fn scheme(&self) -> &'static str {
        if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn next_notification(&self) -> u64 {
        self.notifications.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl HasGate for State {
    fn gate(&self) -> &Gate {
        &self.gate
    }
}

/// Builds and starts a Salesforce emulator.
#[derive(Debug, Clone, Default)]
pub struct SalesforceSandbox {
    config: Config,
    addr: Option<SocketAddr>,
}

impl SalesforceSandbox {
    /// Starts from the defaults (real limits, no seed data, lenient auth).
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

    /// Generates a world of `n` companies and seeds the ones Salesforce holds as Accounts
    /// with their Contacts and Opportunities.
    pub fn companies(mut self, n: usize) -> Self {
        self.config.companies = n;
        self
    }

    /// Accepts only these credentials (strict mode).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.config.auth = auth;
        self
    }

    /// Sets the org's daily API request quota.
    pub fn daily_limit(mut self, limit: u32) -> Self {
        self.config.daily_limit = limit;
        self
    }

    /// Sets the records per query page.
    pub fn page_size(mut self, n: usize) -> Self {
        self.config.page_size = n.max(1);
        self
    }

    /// Sets the child records per subquery page.
    pub fn subquery_page_size(mut self, n: usize) -> Self {
        self.config.subquery_page_size = n.max(1);
        self
    }

    /// Sends an outbound message to `url` for every creation and edit of `object`,
    /// carrying `fields` (every set field when empty).
    pub fn outbound_message<I, S>(mut self, object: &str, url: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.outbound.push(OutboundMessage {
            object: object.to_string(),
            url: url.to_string(),
            fields: fields.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Sets the outbound message retry schedule.
    pub fn outbound_retry(mut self, base: Duration, attempts: u32) -> Self {
        self.config.outbound_retry_base = base;
        self.config.outbound_attempts = attempts;
        self
    }

    /// Takes getUpdated and getDeleted spans to the millisecond instead of whole minutes.
    pub fn exact_replication(mut self) -> Self {
        self.config.replication_whole_minutes = false;
        self
    }

    /// Serves `https://` with this PEM certificate chain and private key.
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.config.tls = Some(Tls {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        });
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
    pub async fn start(self) -> std::io::Result<RunningSalesforce> {
        let mut data = Data::new(1_000 + (self.config.seed % 1_000) * 100_000);
        seed::seed(&mut data, self.config.seed, self.config.companies);
        data.events.clear();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            gate: Gate::new(self.config.faults.clone()),
            config: self.config,
            data: RwLock::new(data),
            sessions: Mutex::new(oauth::Sessions::default()),
            cursors: Mutex::new(query::Cursors::default()),
            jobs: Mutex::new(bulk::Jobs::default()),
            outbound: tx,
            notifications: AtomicU64::new(0),
            instance: OnceLock::new(),
        });
        let deliverer = tokio::spawn(outbound::run(state.clone(), rx));
        let served = match &state.config.tls {
            Some(tls) => {
                let acceptor = crate::server::tls_acceptor(&tls.cert_pem, &tls.key_pem)?;
                Listening::start_tls(router(state.clone()), self.addr, deliverer, acceptor).await?
            }
            None => Listening::start(router(state.clone()), self.addr, deliverer).await?,
        };
        let _ = state
            .instance
            .set(format!("{}://{}", state.scheme(), served.addr()));
        Ok(RunningSalesforce { served, state })
    }
}

/// A running Salesforce emulator; stops when dropped.
pub struct RunningSalesforce {
    served: Listening,
    state: Arc<State>,
}

impl std::fmt::Debug for RunningSalesforce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSalesforce")
            .field("addr", &self.served.addr())
            .finish()
    }
}

impl RunningSalesforce {
    /// `http://127.0.0.1:PORT` (`https://` with TLS), the instance URL to give a client
    /// (it stands for `https://MyDomain.my.salesforce.com`, and for the login host of the
    /// token endpoint).
    pub fn instance_url(&self) -> String {
        format!("{}://{}", self.state.scheme(), self.served.addr())
    }

    /// The same as [`RunningSalesforce::instance_url`].
    pub fn base_url(&self) -> String {
        self.instance_url()
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

    /// Ends every session the token endpoint issued, so their next call answers 401.
    pub fn expire_sessions(&self) {
        self.state
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expire_all();
    }

    /// Moves the org's clock `by` ahead (never back): audit stamps, getUpdated and
    /// getDeleted windows and the REST answers' `Date` header follow it, so a test can let
    /// weeks pass. (Token lifetimes and SOQL date literals stay on the machine's clock.)
    pub fn advance_clock(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        let mut data = self.state.write();
        data.clock_offset += by;
    }

    /// Empties the Recycle Bin as an administrator can: every deletion up to now leaves
    /// the deletion log, so getDeleted no longer lists them and its `earliestDateAvailable`
    /// moves here, later than any start before now: the caller must resync
    /// (<https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm>,
    /// <https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted_getdeletedresult.htm>).
    pub fn purge_deletions(&self) {
        let mut data = self.state.write();
        data.purged_through = Some(data.clock());
    }

    /// API requests used today and the daily maximum.
    pub fn api_usage(&self) -> (u32, u32) {
        self.state.usage()
    }

    /// How many live (not deleted) records an object holds (`Account`, `Contact`…).
    pub fn count(&self, object: &str) -> usize {
        let data = self.state.read();
        schema::object(object)
            .and_then(|o| data.table(o.name))
            .map_or(0, |t| {
                t.iter()
                    .filter(|r| r["IsDeleted"] != serde_json::json!(true))
                    .count()
            })
    }
}

fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route("/services/data/{*path}", any(dispatch::api))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::check,
        ));
    Router::new()
        .merge(admin::routes::<State>())
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/Soap/{kind}/{version}", post(soap::login))
        .route("/services/oauth2/revoke", post(oauth::revoke))
        .route("/services/oauth2/userinfo", get(oauth::identity))
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/services/data", get(dispatch::versions))
        .route("/services/data/", get(dispatch::versions))
        .route("/_sandbox/sessions/expire", post(admin_expire))
        .merge(api)
        .fallback(dispatch::not_found)
        .with_state(state)
}

async fn admin_expire(AxState(state): AxState<Arc<State>>) -> Response {
    state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .expire_all();
    StatusCode::NO_CONTENT.into_response()
}
