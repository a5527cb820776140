//! The HTTP transport every connector uses.
//!
//! A request ([`ApiRequest`]) says method, path, query and body; the [`Transport`] executes it:
//! it injects authentication ([`auth`]), waits for every rate budget the request is charged
//! to ([`rate`]), retries what is safe to retry ([`retry`]), and maps failures to
//! [`crate::Error`] through the CRM's [`Dialect`]. Listing endpoints become streams through
//! [`paginate`]. [`oauth::TokenEndpoint`] is the one OAuth token-endpoint client each CRM
//! configures.

pub mod auth;
pub mod oauth;
pub mod paginate;
pub mod rate;
pub mod retry;
#[cfg(test)]
mod test_server;
mod transport;

pub use rate::{BudgetKind, BudgetSpec, Quota, RateInfo};
pub use reqwest::Method;
pub use reqwest::header::HeaderMap;
pub use transport::{
    ApiRequest, ApiResponse, Body, Dialect, InstanceUrlPolicy, Observer, Transport,
    TransportBuilder, TransportEvent, TransportOptions,
};
