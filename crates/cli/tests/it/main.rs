//! Runs the built `crmkit` binary against in-process Close, HubSpot and Salesforce sandboxes.

mod bench;
mod bench_hubspot;
mod bench_salesforce;
mod completions;
mod demo;
mod failures;
mod hubspot;
mod listing;
mod options;
mod salesforce;
mod support;
mod sync_commands;
mod sync_crash;
mod sync_faults;
mod sync_support;
mod sync_three;
