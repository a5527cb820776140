//! Runs the built `crmkit` binary against in-process Close and HubSpot sandboxes.

mod bench;
mod bench_hubspot;
mod completions;
mod failures;
mod hubspot;
mod listing;
mod options;
mod support;
mod sync_commands;
mod sync_crash;
mod sync_faults;
mod sync_support;
