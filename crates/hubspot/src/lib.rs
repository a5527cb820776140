//! A typed client for the HubSpot CRM API, built on crmkit's shared transport.
//!
//! ```no_run
//! # async fn demo() -> crmkit_core::Result<()> {
//! use futures::TryStreamExt;
//! use crmkit_hubspot::objects::ReadOptions;
//! let hs = crmkit_hubspot::Client::from_env()?;
//! let contacts: Vec<_> = hs
//!     .contacts()
//!     .list(ReadOptions::default().properties(["email"]), 100)
//!     .try_collect()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! - [`auth`]: private-app tokens (`HUBSPOT_ACCESS_TOKEN`, Bearer) and OAuth 2.0 (authorize
//!   URL, code exchange, refresh through the core token endpoint client).
//! - [`Client`]: `HUBSPOT_BASE_URL` points it at a sandbox. Budgets: the 10-second burst
//!   window ([`RateTier`]), the search endpoints' own per-second budget and the daily quota,
//!   shared by every client of one token ([`dialect`]).
//! - [`objects`]: CRM v3 objects of any type: get, list as a stream, create, patch, archive.
//! - [`typed`]: typed properties of contacts, companies, deals, notes, calls, tasks,
//!   meetings and emails (only the fields set are sent).
//! - [`batch`]: batch create, read, update, upsert (by `idProperty`) and archive in chunks of
//!   100, with one outcome per record (207 multi-status answers included). Results are
//!   matched to inputs by `objectWriteTraceId`, id or `idProperty` value, never by position;
//!   a chunk refused whole with a 400 or 409 (a contact whose email exists, a duplicate id)
//!   is classified first: inputs the error names, or that carry a property it refuses
//!   whatever the value, get the error at once; otherwise it is halved, with at most
//!   `4·⌈log2 n⌉` extra requests per chunk, so the other records are still written and the
//!   refused ones get HubSpot's message.
//! - [`search`]: the typed filter builder with HubSpot's limits checked before sending, and
//!   `search_all`, which reads past the 10,000-result cap by keyset slicing on (modification
//!   time, `hs_object_id`) and never sends an `after` offset: an instant holding more than a
//!   page is walked by id. The bound is fixed when a run starts; records changed during a
//!   run come with the next one (at least once).
//! - [`associations`]: associations v4 (default and labelled create, list, batch read,
//!   delete) and the default type ids ([`association_types`]). A batch read follows each
//!   record's `paging.next.after` to the end, sends at most 1,000 ids per request and
//!   reports a record HubSpot failed to read as an error, never as "no associations".
//! - [`schema`]: pipelines and stages (label ↔ id), properties and property groups, owners.
//! - [`connector`]: [`HubSpotConnector`], the `crmkit_core::Connector` on HubSpot (unified
//!   records, change feed with tombstones for archives and merges, patches, batch outcomes,
//!   idempotent creates; deal confidence is read-only).
//! - [`webhook`]: signatures v1, v2 and v3 (with the 5-minute replay window) and batched
//!   event arrays as typed events.

pub mod association_types;
pub mod associations;
pub mod auth;
pub mod batch;
mod client;
pub mod connector;
pub mod dialect;
pub mod objects;
pub mod schema;
pub mod search;
pub mod typed;
pub mod webhook;

pub use client::{BURST_WINDOW, Client, ClientBuilder, DEFAULT_BASE_URL, RateTier};
pub use connector::HubSpotConnector;
pub use dialect::HubSpotDialect;
pub use objects::{HubSpotObject, ObjectType, Objects, Properties, ReadOptions};
pub use search::{Filter, FilterGroup, SearchRequest};
