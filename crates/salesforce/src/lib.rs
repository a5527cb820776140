//! A typed client for the Salesforce REST API, built on crmkit's shared transport.
//!
//! ```no_run
//! # async fn demo() -> crmkit_core::Result<()> {
//! use futures::TryStreamExt;
//! use crmkit_salesforce::soql::{Condition, Soql};
//! // SF_CLIENT_ID, SF_USERNAME, SF_PRIVATE_KEY_PATH (JWT bearer), SF_LOGIN_URL, SF_INSTANCE_URL
//! let sf = crmkit_salesforce::Client::from_env()?;
//! let q = Soql::select(["Id", "Name", "Account.Name"])
//!     .from("Contact")
//!     .filter(Condition::eq("Email", "ada@example.com"));
//! let contacts: Vec<_> = sf.query_soql(&q).try_collect().await?;
//! # Ok(()) }
//! ```
//!
//! # Authentication
//!
//! [`Client::from_env`] picks the flow from the environment:
//!
//! - **JWT bearer** (server to server): `SF_CLIENT_ID` (the connected app's consumer key),
//!   `SF_USERNAME` and `SF_PRIVATE_KEY_PATH` (the PEM RSA key whose certificate is uploaded
//!   to the connected app). An RS256 assertion (`iss` client id, `sub` username, `aud` the
//!   login URL, `exp` three minutes ahead) is traded at `{SF_LOGIN_URL}/services/oauth2/token`
//!   (default `https://login.salesforce.com`; `https://test.salesforce.com` for sandboxes),
//!   and signed again whenever a new token is needed.
//! - **Refresh token**: `SF_CLIENT_ID`, `SF_CLIENT_SECRET`, `SF_REFRESH_TOKEN`.
//! - **Client credentials**: `SF_CLIENT_ID` and `SF_CLIENT_SECRET` against the My Domain in
//!   `SF_INSTANCE_URL`.
//! - **Access token**: `SF_ACCESS_TOKEN` with `SF_INSTANCE_URL` (no refresh).
//!
//! `SF_API_VERSION` sets the REST version (default 59.0). The token answer's `instance_url`
//! is followed only if it is https on a Salesforce domain or the configured host (plain http
//! only on `127.0.0.1`, a local sandbox); anything else fails with an
//! [`ErrorKind::Auth`](crmkit_core::ErrorKind::Auth) error and the token is never sent there
//! ([`auth::instance_url_policy`]). A 401 `INVALID_SESSION_ID` gets one new token for all
//! concurrent callers and each request is retried once. Keys and tokens are secrets: never
//! in `Debug`, logs or errors.
//!
//! # What it covers
//!
//! - [`Client`]: raw requests ([`Client::raw`]) with the org's daily budget (fed by
//!   `Sforce-Limit-Info`; a 403 `REQUEST_LIMIT_EXCEEDED` stops further spending with
//!   [`ErrorKind::QuotaExhausted`](crmkit_core::ErrorKind::QuotaExhausted)), a cap on
//!   concurrent requests per org (25, shared by every client of the org in the process),
//!   [`Client::limits`], and the describe cache.
//! - [`sobjects`]: create, read, patch, delete any sObject; upsert by external id (201
//!   created, 200/204 updated, 300 several matches as a `Conflict` listing them); describe
//!   (fields, picklists, required fields), read once per client; getUpdated/getDeleted.
//! - [`typed`]: Account, Contact, Lead, Opportunity, Task and Event as structs whose unset
//!   fields are never sent.
//! - [`ids`]: 15 ↔ 18 character ids with the case-safe checksum.
//! - [`soql`]: a builder whose values are always escaped literals (strings, `LIKE`
//!   patterns, dates, datetimes, lists), with child-to-parent paths, parent-to-child
//!   subqueries and semi-joins. [`query`]: `query` and `queryAll` as streams over
//!   `nextRecordsUrl`, with cut-short child results completed; never OFFSET.
//! - [`composite`]: sObject collections (200 per call, `allOrNone: false`, one outcome per
//!   record), composite requests with references, sObject trees.
//! - [`bulk`]: Bulk API 2.0 ingest and query jobs; [`Client::insert_many`] switches from
//!   collections to Bulk at the client's threshold (default 2,000 records).
//! - [`events`]: Outbound Message parsing and acknowledgement, Change Data Capture and
//!   Platform Event payloads, publishing a Platform Event.
//! - [`connector`]: [`SalesforceConnector`], the `crmkit_core::Connector` on Salesforce
//!   (keyset change feed on `(SystemModstamp, Id)` with getDeleted tombstones, patches, per
//!   record outcomes, idempotent creates through an external id field).

pub mod auth;
pub mod bulk;
mod client;
pub mod composite;
pub mod connector;
pub mod dialect;
pub mod events;
pub mod ids;
pub mod query;
pub mod sobjects;
pub mod soql;
pub mod typed;

pub use client::{
    Client, ClientBuilder, DEFAULT_API_VERSION, DEFAULT_BULK_THRESHOLD, DEFAULT_MAX_CONCURRENCY,
};
pub use connector::SalesforceConnector;
pub use dialect::SalesforceDialect;
pub use ids::SalesforceId;
pub use sobjects::{Describe, Fields, SObjects};
