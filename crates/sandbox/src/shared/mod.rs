//! The CRM-neutral layer every emulator plugs into: table storage with indexes and
//! timestamps.

pub mod store;
pub mod time;
