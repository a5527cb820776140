//! The crmkit sync engine.

pub mod bench;
pub mod config;
pub mod engine;
pub mod matching;
pub mod plan;
pub mod resolve;
pub mod values;
