//! The CRM-neutral layer every emulator plugs into: the request gate (credential hook, rate
//! windows, targeted faults), the request log and admin endpoints, table storage with
//! indexes, webhook delivery with retries, and the seeded world the CRMs share.

pub mod admin;
pub mod gate;
pub mod listen;
pub mod rate;
pub mod stats;
pub mod store;
pub mod time;
pub mod webhook;
pub mod world;
