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
