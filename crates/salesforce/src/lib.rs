//! A typed client for the Salesforce REST API, built on crmkit's shared transport.
//!
//! (Crate documentation is completed below.)

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
