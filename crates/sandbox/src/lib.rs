//! Local emulators of the CRM APIs, for tests, benchmarks and `crmkit demo`.
//!
//! Each emulator is a second, independent reading of its API contract: it imports no crmkit
//! client code, enforces the documented limits, and answers with the real status codes,
//! headers and error bodies. It runs in-process on `127.0.0.1` (port 0 in tests) or as
//! `crmkit sandbox close --port P`.
//!
//! Every emulator plugs into the CRM-neutral [`shared`] layer: the request gate (credential
//! hook, fixed, rolling and daily rate windows, faults aimed at one route including
//! "processed, then the connection dropped"), the request log and admin endpoints, indexed
//! table storage (lists and searches walk an index and touch only their page), webhook
//! delivery with retries, and one seeded [`shared::world::World`] of companies, people and
//! deals that each CRM maps into its own shapes, with a chosen overlap between CRMs.
//!
//! # Salesforce
//!
//! [`salesforce::SalesforceSandbox`] emulates one org's instance, serving at the root of its
//! port (`/services/oauth2/token`, `/services/Soap/u/{version}` for SOAP login, and
//! `/services/data/vXX.X/…` for any version): the standard objects Account, Contact, Lead,
//! Opportunity, Task and Event (and read-only User) with their required fields and restricted
//! picklists, 18-character ids with the right key prefixes (15-character ids accepted);
//! sObject CRUD and describe; upsert by external id (201 created, 200 `created: false` from
//! 46.0 or 204 before, 300 listing several matches); SOQL `query` and `queryAll` (relationship
//! paths, subqueries, semi-joins, date literals, `ORDER BY`, `LIMIT`, `OFFSET`, `COUNT()`)
//! with `nextRecordsUrl` pages of 2,000 records by default, subqueries paged too; sObject
//! Collections (200 records, `allOrNone`), Composite with `@{ref.field}` references and
//! sObject Tree; Bulk API 2.0 ingest and query jobs over real CSV; getUpdated and getDeleted;
//! `/limits`, `Sforce-Limit-Info: api-usage=N/M` on every REST answer and a daily quota that
//! really runs out (403 `REQUEST_LIMIT_EXCEEDED`); and Outbound Messages POSTed as SOAP to
//! configured endpoints, retried until a `notificationsResponse` acknowledges them. Errors
//! are Salesforce's array `[{"message","errorCode","fields"}]`.
//!
//! Auth is lenient by default (any non-empty session, client id, secret or refresh token;
//! JWTs checked for form, `aud`, `exp` (a number or a numeric string) and `sub` but signed
//! by any key). Given a [`salesforce::Auth`] with a certificate and the credentials to
//! accept, the token endpoint verifies the RS256 signature and refuses everything else with
//! the real `invalid_grant` answers, and data calls need a session it issued (else 401
//! `INVALID_SESSION_ID`). It can also serve `https://` with a given certificate, for clients
//! that build `https://` URLs themselves.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = crmkit_sandbox::close::CloseSandbox::builder().seed(7).leads(50).start().await?;
//! println!("Close API at {}", sandbox.api_url());
//! # Ok(()) }
//! ```

pub mod close;
pub mod faults;
pub mod hubspot;
mod names;
pub mod salesforce;
pub mod server;
pub mod shared;
