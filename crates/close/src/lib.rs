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
//!   ceiling: they slice by `date_created` instead.
//! - [`search`]: the Advanced Filtering (`/data/search/`) query builder; [`query`]: the text
//!   query language compiled into it.
//! - [`webhook`]: signature verification with a replay window, and typed events.
//! - [`CloseConnector`]: the unified model (Company = lead, Person = contact, Deal =
//!   opportunity, Activity = note, call, email, meeting, task).

pub mod auth;
mod client;
mod connector;
mod dialect;
mod fields;
pub mod models;
pub mod query;
mod resources;
pub mod search;
pub mod webhook;

pub use client::{ACTIVITY_TYPES, Client, ClientBuilder, DEFAULT_BASE_URL};
pub use connector::CloseConnector;
pub use dialect::CloseDialect;
pub use models::*;
pub use resources::{ListBuilder, Resource};
