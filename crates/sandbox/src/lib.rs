//! Local emulators of the CRM APIs, for tests, benchmarks and `crmkit demo`.
//!
//! Each emulator is a second, independent reading of its API contract: it imports no crmkit
//! client code, enforces the documented limits, and answers with the real status codes,
//! headers and error bodies. It runs in-process on `127.0.0.1` (port 0 in tests) or as
//! `crmkit sandbox close --port P`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = crmkit_sandbox::close::CloseSandbox::builder().seed(7).leads(50).start().await?;
//! println!("Close API at {}", sandbox.api_url());
//! # Ok(()) }
//! ```

pub mod close;
pub mod faults;
mod names;
pub mod server;
pub mod shared;
