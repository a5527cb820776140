//! The crmkit sync engine.

pub mod config;
pub mod matching;
pub mod resolve;
pub mod values;
