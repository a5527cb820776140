//! Runs the built `crmkit` binary against an in-process Close sandbox.

mod bench;
mod completions;
mod failures;
mod listing;
mod options;
mod support;
