//! A typed client for the Close CRM API, its search languages, webhooks, and the crmkit
//! [`Connector`](crmkit_core::Connector) for it.
//!
//! ```no_run
//! # async fn demo() -> crmkit_core::Result<()> {
//! use futures::TryStreamExt;
//! let close = crmkit_close::Client::from_env()?;
//! let leads: Vec<crmkit_close::Lead> = close.leads().list().limit(50).stream().try_collect().await?;
//! let hits = close.search_text("company:Coperniq sort:date_updated desc").await?;
//! # Ok(()) }
//! ```
//!
//! - [`auth`]: API keys (HTTP Basic) and OAuth 2.0 with rotating refresh tokens.
//! - [`Client`]: per-resource handlers (`leads()`, `contacts()`, `opportunities()`,
//!   `activities()`, `tasks()`, statuses, pipelines, custom fields, users, webhooks, events)
//!   plus [`Client::raw`] for anything else. Lists are streams that never stop at the `_skip`
//!   ceiling: leads and contacts page by keyset over `/data/search/`, the collections that
//!   document `_order_by` slice by `date_created`. `base_url` takes the API root or a
//!   sandbox root (`http://127.0.0.1:8080`); a 404 before any call worked says the base URL
//!   is probably wrong.
//! - [`filter`]: the Advanced Filtering (`/data/search/`) tree builder; [`text_query`]: the
//!   text query language compiled into it.
//! - [`webhook`]: signature verification with a replay window, and typed events.
//! - [`CloseConnector`]: the unified model (Company = lead, Person = contact, Deal =
//!   opportunity, Activity = note, call, email, meeting, task).

pub mod auth;
mod client;
mod connector;
mod dialect;
mod fields;
pub mod filter;
pub mod models;
mod resources;
pub mod text_query;
pub mod webhook;

pub use client::{ACTIVITY_TYPES, Client, ClientBuilder, DEFAULT_BASE_URL};
pub use connector::CloseConnector;
pub use dialect::CloseDialect;
pub use models::*;
pub use resources::{ListBuilder, Resource};
